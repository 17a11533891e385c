"""Data of the weighting-profile figure: SPIN, SPACE, SPIF and IRIS at several α (needs torch).

The profile data come from the losses' weight contract (:mod:`iris.losses`):
``real_weights = −(1/β) ∂loss/∂real_logratios`` and ``generated_weights = (1/β)
∂loss/∂generated_logratios``. With β = 1 the reward is the log-ratio, and every loss's
weights depend on β only through r = β·logratio, so the profiles hold for any β.

For one sample with reward r in a batch of ``batch_size`` whose other rewards are 0 (for
SPIN, whose loss pairs an annotated and a synthetic response, its partner has reward 0),
the plotted value is the sample's weight divided by its weight when r = 0 as well (all
rewards equal): for IRIS that is batch size × weight, uniform = 1.

``make_all`` writes ``weight_profiles.json`` (the data) next to the figure;
:func:`analysis.weight_profiles` draws it, so the plot itself needs no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from analysis import ProfileCurve, WeightProfiles

ALPHAS = (0.5, 1.0, 2.0, 3.0)
BATCH_SIZE = 64  # the papers' global batch
MU = 1.0  # SPACE's noise ratio in its main runs
BOUND = 2.0  # SPIF's reward bound (iris.losses default)


def compute_weight_profiles(
    rewards: np.ndarray | None = None,
    *,
    batch_size: int = BATCH_SIZE,
    alphas: Sequence[float] = ALPHAS,
    mu: float = MU,
    bound: float = BOUND,
) -> WeightProfiles:
    """Relative per-sample weights of each loss along a reward grid (float64, via iris.losses)."""
    import torch

    from iris.losses import iris_loss, space_loss, spif_loss, spin_loss

    rewards = np.linspace(-3.0, 3.0, 121) if rewards is None else np.asarray(rewards, dtype=float)
    # (label, loss name, α, loss(real_logratios, generated_logratios))
    space, spif = partial(space_loss, mu=mu, beta=1.0), partial(spif_loss, beta=1.0, bound=bound)
    methods: list[tuple[str, str, float, Callable]] = [
        ("SPIN", "spin", math.nan, partial(spin_loss, beta=1.0)),
        (f"SPACE μ={mu:g}", "space", math.nan, space),
        (f"SPIF c={bound:g}", "spif", math.nan, spif),
    ]
    for alpha in alphas:
        iris = partial(iris_loss, alpha=alpha, beta=1.0)
        methods.append((f"IRIS α={alpha:g}", "iris", float(alpha), iris))

    def side_weights(out, side: str) -> np.ndarray:
        return (out.real_weights if side == "real" else out.generated_weights).numpy()

    def one_sample(loss, side: str, r: float) -> float:
        """Weight of sample 0 with reward r in a batch whose other rewards are 0."""
        real = torch.zeros(batch_size, dtype=torch.float64)
        generated = torch.zeros(batch_size, dtype=torch.float64)
        (real if side == "real" else generated)[0] = r
        return float(side_weights(loss(real, generated), side)[0])

    curves = []
    for label, loss_name, alpha, loss in methods:
        for side in ("real", "generated"):
            weights = np.array([one_sample(loss, side, float(r)) for r in rewards])
            curves.append(
                ProfileCurve(label, loss_name, side, weights / one_sample(loss, side, 0.0), alpha)
            )
    return WeightProfiles(rewards, batch_size, tuple(curves), mu=mu, bound=bound)
