"""Hypothesis strategies for loss inputs: vectors over many scales, tilts and orders."""

from __future__ import annotations

import torch
from hypothesis import strategies as st


@st.composite
def loss_vectors(draw, min_size: int = 1, max_size: int = 24, max_abs: float = 1e4) -> torch.Tensor:
    """A float64 vector: offset + scale · N(0, 1) with scale and offset across 1e-3..max_abs."""
    n = draw(st.integers(min_size, max_size))
    scale = draw(st.sampled_from([1e-3, 0.1, 1.0, 10.0, 100.0, max_abs]))
    offset = draw(st.sampled_from([0.0, 1.0, -5.0, 50.0])) * draw(
        st.sampled_from([1.0, max_abs / 50])
    )
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    x = offset + scale * torch.randn(n, generator=generator, dtype=torch.float64)
    return x.clamp(-max_abs, max_abs)


tilts = st.one_of(
    st.sampled_from([0.0, 1e-15, -1e-12, 1e-12, 1e-9, -1e-6]),
    st.floats(-10.0, 10.0, allow_nan=False),
    st.floats(-1e3, 1e3, allow_nan=False),
)

alphas = st.one_of(
    st.sampled_from([1e-3, 1e-12, 0.5, 1.0, 1.0 - 1e-9, 1.0 + 1e-9, 2.0, 1e3]),
    st.floats(1e-3, 5.0),
    st.floats(1e-3, 1e3),
)

betas = st.sampled_from([0.01, 0.1, 1.0, 5.0])
