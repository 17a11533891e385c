"""The IRIS objective: two independent tilted risks, over annotated and synthetic data.

``L_α(θ) = TR_{1−α}(−r⁺) + TR_α(r⁻)``, ``r = β (log p_θ − log p_θt)``   [paper + derived]

``−L_α`` is the Rényi–Donsker–Varadhan lower bound on ``R_α(p_data ‖ p_θt) = D_α/α``
(Birrell et al. 2021, arXiv 2007.03814). Its gradient weights the annotated samples by
``w⁺ = softmax((α−1) r⁺)`` and the synthetic ones by ``w⁻ = softmax(α r⁻)``; each set sums
to one over the optimisation batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._tilted import effective_sample_fraction, tilt_weights, tilted_risk
from ._types import LossOutput, TiltNormalizer, as_compute, compute_dtype, positive


def _tilts(
    alpha: float | Tensor, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor]:
    """The tilts (1 − α, α), with 1 − α formed in float64 before rounding to ``dtype``:
    in float32, α = 1 − 1e-9 rounds to 1 and the real tilt would vanish."""
    alpha64 = torch.as_tensor(alpha, dtype=torch.float64, device=device).detach()
    return (1.0 - alpha64).to(dtype), alpha64.to(dtype)


def _tilted_term(
    losses: Tensor, tilt: Tensor, normalizer: TiltNormalizer | None
) -> tuple[Tensor, Tensor, Tensor]:
    """(value, weights, batch risk) of one tilted-risk term.

    Without a normaliser: the tilted risk of ``losses`` and its softmax weights.
    With one (risk R and count N over the whole optimisation batch): this micro-batch's
    share ``Σ_i w_i (R + ℓ_i − sg(ℓ_i))`` with ``w_i = exp(τ (sg(ℓ_i) − R))/N``. Summed over
    all micro-batches its value is R (the weights sum to 1) and its gradient is
    ``Σ_i w_i ∇ℓ_i``, the gradient of the whole-batch tilted risk.
    """
    if normalizer is None:
        risk = tilted_risk(losses, tilt)
        return risk, tilt_weights(losses.detach(), tilt), risk.detach()
    risk = torch.as_tensor(normalizer.risk, dtype=losses.dtype, device=losses.device).detach()
    detached = losses.detach()
    weights = torch.exp(tilt * (detached - risk)) / normalizer.count
    share = (weights * (risk + losses - detached)).sum()
    return share, weights, risk


def iris_loss(
    real_logratios: Tensor,
    generated_logratios: Tensor,
    *,
    alpha: float | Tensor,
    beta: float = 1.0,
    real_normalizer: TiltNormalizer | None = None,
    generated_normalizer: TiltNormalizer | None = None,
) -> LossOutput:
    """IRIS loss of order α: ``L_α = TR_{1−α}(−β lr⁺) + TR_α(β lr⁻)``.

    ``= −(1/(α−1)) log mean_i exp((α−1) r⁺_i) + (1/α) log mean_j exp(α r⁻_j)`` with
    ``r = β · logratio``. Regimes: α → 1 gives ``−mean r⁺ + log mean e^{r⁻}`` (KL / SPIN
    regime), α = ½ the Bhattacharyya (JS-like, SPACE) regime, α = 2 the χ² (SPIF) regime,
    α → 0 ``log mean e^{−r⁺} + mean r⁻`` (reverse KL). Continuous in α on (0, ∞).

    Args:
        real_logratios: (B,) ``log p_θ(y|x) − log p_θt(y|x)`` of annotated responses,
            summed over response tokens, unscaled.
        generated_logratios: (B',) the same for synthetic responses y' ~ p_θt.
        alpha: order α > 0 (float or 0-d tensor, e.g. from a schedule).
        beta: β > 0, the reward scale.
        real_normalizer, generated_normalizer: optional whole-batch statistics (see
            :class:`TiltNormalizer` and :func:`iris_normalizers`). With them the returned
            loss is this micro-batch's share: summed over all micro-batches and ranks, the
            losses add up to the whole-batch loss and the gradients to its gradient.

    Returns:
        :class:`LossOutput` with ``real_weights = w⁺ = softmax((α−1) r⁺)`` and
        ``generated_weights = w⁻ = softmax(α r⁻)`` (each sums to 1 without normalisers;
        with them, to this micro-batch's share), and metrics ``variational_estimate``
        (−L_α over the whole batch, an estimate of R_α(p_data‖p_θt)), ``real_risk``,
        ``generated_risk``, ESS/n and max weight of both weight vectors, ``alpha``.

    Notes:
        Computed in float32 (float64 if given): the tilted risks are exact across
        α = 1 and α → 0 (no ``alpha == 1`` switch, see ``tilted_risk``) and finite for
        |logratio| up to 1e4 with α up to 1e3.

    >>> out = iris_loss(torch.zeros(4), torch.zeros(4), alpha=0.5)
    >>> out.loss.item(), out.real_weights.tolist()
    (0.0, [0.25, 0.25, 0.25, 0.25])
    """
    dtype = compute_dtype(real_logratios, generated_logratios)
    real = as_compute(real_logratios, "real_logratios", dtype)
    generated = as_compute(generated_logratios, "generated_logratios", dtype)
    positive(alpha, "alpha")
    positive(beta, "beta")
    if (real_normalizer is None) != (generated_normalizer is None):
        raise ValueError("give both real_normalizer and generated_normalizer, or neither")
    real_tilt, alpha_t = _tilts(alpha, dtype, real.device)

    real_value, real_weights, real_risk = _tilted_term(-beta * real, real_tilt, real_normalizer)
    generated_value, generated_weights, generated_risk = _tilted_term(
        beta * generated, alpha_t, generated_normalizer
    )
    loss = real_value + generated_value
    metrics = {
        "variational_estimate": -(real_risk + generated_risk),
        "real_risk": real_risk,
        "generated_risk": generated_risk,
        "real_ess_fraction": effective_sample_fraction(real_weights),
        "generated_ess_fraction": effective_sample_fraction(generated_weights),
        "real_max_weight": real_weights.max(),
        "generated_max_weight": generated_weights.max(),
        "alpha": alpha_t,
    }
    return LossOutput(loss, real_weights, generated_weights, metrics)


def iris_normalizers(
    real_logratios: Tensor,
    generated_logratios: Tensor,
    *,
    alpha: float | Tensor,
    beta: float = 1.0,
) -> tuple[TiltNormalizer, TiltNormalizer]:
    """Whole-batch normalisers of the two IRIS terms, from all of the batch's log-ratios.

    Pass the detached log-ratios of every sample of the optimisation batch (gathered over
    gradient-accumulation micro-batches and ranks); give the result to :func:`iris_loss`
    on each micro-batch.

    >>> lr = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=torch.float64)
    >>> real_n, gen_n = iris_normalizers(lr, -lr, alpha=2.0)
    >>> halves = [iris_loss(lr[i:i+2], -lr[i:i+2], alpha=2.0, real_normalizer=real_n,
    ...                     generated_normalizer=gen_n).loss for i in (0, 2)]
    >>> bool(torch.isclose(sum(halves), iris_loss(lr, -lr, alpha=2.0).loss))
    True
    """
    dtype = compute_dtype(real_logratios, generated_logratios)
    real = as_compute(real_logratios.detach(), "real_logratios", dtype)
    generated = as_compute(generated_logratios.detach(), "generated_logratios", dtype)
    positive(alpha, "alpha")
    positive(beta, "beta")
    real_tilt, alpha_t = _tilts(alpha, dtype, real.device)
    return (
        TiltNormalizer(tilted_risk(-beta * real, real_tilt), real.numel()),
        TiltNormalizer(tilted_risk(beta * generated, alpha_t), generated.numel()),
    )
