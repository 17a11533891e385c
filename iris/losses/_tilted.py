"""Tilted risk (TERM, Li et al. 2021) with an analytic form at tilt 0, and its weights.

``TR_τ(ℓ) = (1/τ) log Σ_i p_i exp(τ ℓ_i)`` (``p`` uniform unless given), ``TR_0 = Σ p ℓ``.

The naive ``(logsumexp(τℓ) − log n)/τ`` divides a rounding error by τ and loses every
digit as τ → 0. Here the risk is written around the mean ``m = Σ p ℓ`` with
``d = ℓ − m`` and ``z = τ d``:

    TR_τ = m + (1/τ) log(1 + s),      s = Σ p (e^z − 1 − z)        (Σ p z = 0)
         = m + B · log1p(s)/s,        B = Σ p d ψ(z),  ψ(z) = (e^z − 1 − z)/z

since ``s = τ B``. ``ψ`` and ``log1p(s)/s`` are entire/smooth with ψ(0) = 0 and value 1 at
s = 0, evaluated by Taylor series near 0, so there is no division by τ anywhere and τ = 0
needs no special case. Every term ``d_i ψ(τ d_i)`` has the sign of τ (no cancellation)
and every ``e^z − 1 − z`` is ≥ 0. When some |z| exceeds ``_Z_SWITCH`` the exponentials
could overflow, but then |τ| is large enough for the log-sum-exp form to be exact.

The gradient is the paper's exponential importance weighting,
``∂TR_τ/∂ℓ_i = softmax(τ ℓ + log p)_i``, implemented directly in a custom autograd function.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._types import compute_dtype

# |z| = |τ (ℓ − mean)| up to which the series form is used (exp(20) ≈ 5e8: no overflow).
_Z_SWITCH = 20.0
# ψ(z) = Σ_{k≥1} z^k/(k+1)!; 16 terms give float64 accuracy for |z| ≤ 1/2.
_PSI_SERIES_RADIUS = 0.5
_PSI_COEFFS = [
    1.0 / float(torch.arange(1, k + 2, dtype=torch.float64).prod()) for k in range(1, 17)
]
# log1p(s)/s = 1 − s/2 + s²/3 − …; three terms are exact to float64 for s < 1e-6.
_LOG1P_SERIES_RADIUS = 1e-6


def _psi(z: Tensor) -> Tensor:
    """ψ(z) = (e^z − 1 − z)/z, with ψ(0) = 0; accurate near 0 by its Taylor series."""
    near = z.abs() < _PSI_SERIES_RADIUS
    z_near = torch.where(near, z, torch.zeros_like(z))
    series = torch.zeros_like(z)
    for coeff in reversed(_PSI_COEFFS):  # Horner: z (c1 + z (c2 + …))
        series = z_near * (coeff + series)
    z_far = torch.where(near, torch.ones_like(z), z)
    direct = (torch.expm1(z_far) - z_far) / z_far
    return torch.where(near, series, direct)


def _log1p_ratio(s: Tensor) -> Tensor:
    """log(1 + s)/s for s ≥ 0, equal to 1 at s = 0."""
    near = s < _LOG1P_SERIES_RADIUS
    s_far = torch.where(near, torch.ones_like(s), s)
    series = 1.0 - s * (0.5 - s / 3.0)
    return torch.where(near, series, torch.log1p(s_far) / s_far)


def _risk_value(losses: Tensor, tilt: Tensor, log_probs: Tensor | None) -> Tensor:
    """Forward value of the tilted risk over the last dim (no autograd needed)."""
    if log_probs is None:
        probs = None
        mean = losses.mean(dim=-1, keepdim=True)
    else:
        probs = log_probs.exp()
        mean = (probs * losses).sum(dim=-1, keepdim=True)
    deviation = losses - mean
    z = tilt * deviation
    small = z.abs().amax(dim=-1, keepdim=True) <= _Z_SWITCH

    # Series route: TR = m + B · log1p(s)/s.
    z_small = torch.where(small, z, torch.zeros_like(z))
    psi = _psi(z_small)
    b_terms, s_terms = deviation * psi, z_small * psi
    if probs is None:
        b, s = b_terms.mean(dim=-1, keepdim=True), s_terms.mean(dim=-1, keepdim=True)
    else:
        b, s = (
            (probs * b_terms).sum(dim=-1, keepdim=True),
            (probs * s_terms).sum(dim=-1, keepdim=True),
        )
    series_risk = mean + b * _log1p_ratio(s.clamp_min(0.0))

    # Log-sum-exp route for large |τ d|: TR = m + (logsumexp(τ d + log p))/τ.
    tilt_large = torch.where(small, torch.ones_like(tilt), tilt)
    shifted = tilt_large * deviation
    if log_probs is None:
        log_mean = torch.logsumexp(shifted, dim=-1, keepdim=True) - torch.log(
            torch.tensor(losses.shape[-1], dtype=losses.dtype, device=losses.device)
        )
    else:
        log_mean = torch.logsumexp(shifted + log_probs, dim=-1, keepdim=True)
    lse_risk = mean + log_mean / tilt_large

    return torch.where(small, series_risk, lse_risk).squeeze(-1)


def tilt_weights(losses: Tensor, tilt: Tensor | float, log_probs: Tensor | None = None) -> Tensor:
    """The weights ``softmax(τ ℓ + log p)`` over the last dim: ∂TR_τ/∂ℓ."""
    logits = tilt * losses
    if log_probs is not None:
        logits = logits + log_probs
    return torch.softmax(logits, dim=-1)


class _TiltedRisk(torch.autograd.Function):
    @staticmethod
    def forward(ctx, losses: Tensor, tilt: Tensor, log_probs: Tensor | None) -> Tensor:
        ctx.save_for_backward(tilt_weights(losses, tilt, log_probs))
        return _risk_value(losses, tilt, log_probs)

    @staticmethod
    def backward(ctx, grad_risk: Tensor):
        (weights,) = ctx.saved_tensors
        return grad_risk.unsqueeze(-1) * weights, None, None


def _prepare(losses: Tensor, tilt: float | Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(losses, Tensor) or not losses.is_floating_point():
        raise ValueError("losses must be a floating-point torch.Tensor")
    if losses.dim() == 0 or losses.shape[-1] == 0:
        raise ValueError(
            f"losses must have a non-empty last dimension, got shape {tuple(losses.shape)}"
        )
    if not bool(torch.isfinite(losses).all()):
        raise ValueError("losses has non-finite values")
    dtype = compute_dtype(losses)
    tilt_t = torch.as_tensor(tilt, dtype=dtype, device=losses.device)
    if tilt_t.requires_grad:
        raise ValueError(
            "the tilt is a hyper-parameter: tilted_risk does not differentiate through it"
        )
    if not bool(torch.isfinite(tilt_t).all()):
        raise ValueError(f"tilt must be finite, got {tilt}")
    # A tilt per leading index broadcasts against (..., 1).
    return losses.to(dtype), tilt_t.unsqueeze(-1) if tilt_t.dim() > 0 else tilt_t


def tilted_risk(losses: Tensor, tilt: float | Tensor) -> Tensor:
    """Tilted risk ``TR_τ(ℓ) = (1/τ) log mean_i exp(τ ℓ_i)`` over the last dimension.

    TERM (Li, Beirami, Sanjabi, Smith 2021). ``TR_0 = mean(ℓ)``; TR is nondecreasing in τ,
    lies in [min ℓ, max ℓ], tends to max ℓ as τ → +∞ and min ℓ as τ → −∞, and
    ``TR_τ(ℓ + c) = TR_τ(ℓ) + c``. Its gradient is ``∂TR/∂ℓ_i = softmax(τ ℓ)_i``.

    Args:
        losses: (..., n) per-sample losses; bf16/fp16 are upcast to float32, float64 is kept.
        tilt: τ, a float or a tensor broadcastable to the leading shape. Not differentiated.

    Returns:
        (...) tilted risks in the compute dtype.

    Notes:
        Accurate for every τ including 0 and |τ| ≤ 1e-12 (series form around the mean, no
        division by τ), and free of overflow for |τ ℓ| ≫ 700 (log-sum-exp form).

    >>> tilted_risk(torch.tensor([0.0, 1.0], dtype=torch.float64), 0.0).item()
    0.5
    >>> round(tilted_risk(torch.tensor([0.0, 1.0], dtype=torch.float64), 1.0).item(), 6)
    0.620115
    """
    values, tilt_t = _prepare(losses, tilt)
    return _TiltedRisk.apply(values, tilt_t, None)


def combine_tilted_risks(risks: Tensor, counts: Tensor, tilt: float | Tensor) -> Tensor:
    """Tilted risk of a union of groups from each group's tilted risk and size.

    ``TR_τ(∪_k G_k) = (1/τ) log Σ_k (n_k/N) exp(τ TR_τ(G_k))`` — exact, since
    ``exp(τ TR_τ(G_k)) = mean_{G_k} exp(τ ℓ)``. Used to merge per-micro-batch or per-rank
    statistics into the optimisation-batch normaliser without gathering every sample.

    Args:
        risks: (K,) tilted risks of the groups (same τ).
        counts: (K,) group sizes (> 0).
        tilt: τ.

    >>> x = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    >>> parts = torch.stack([tilted_risk(x[:1], 0.7), tilted_risk(x[1:], 0.7)])
    >>> bool(torch.isclose(combine_tilted_risks(parts, torch.tensor([1, 2]), 0.7), tilted_risk(x, 0.7)))
    True
    """
    values, tilt_t = _prepare(risks, tilt)
    counts = torch.as_tensor(counts, device=values.device)
    if counts.shape != values.shape or bool((counts <= 0).any()):
        raise ValueError("counts must be positive and have the shape of risks")
    log_probs = torch.log(counts.to(values.dtype)) - torch.log(counts.sum().to(values.dtype))
    return _TiltedRisk.apply(values, tilt_t, log_probs)


def effective_sample_fraction(weights: Tensor) -> Tensor:
    """Kish effective sample size over n: ``(Σ w)² / (n Σ w²)`` ∈ (0, 1] over the last dim.

    Equals ``1/(n Σ w²)`` for normalised weights; 1 for uniform weights, 1/n when one
    weight carries everything.

    >>> effective_sample_fraction(torch.tensor([0.25, 0.25, 0.25, 0.25])).item()
    1.0
    """
    total = weights.sum(dim=-1)
    return total.square() / (weights.shape[-1] * weights.square().sum(dim=-1))
