"""Logistic pair losses: SPIN (reference = previous iterate) and T-SPIN (reference-free)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._types import LossOutput, as_compute, compute_dtype, nonnegative, positive, same_shape


def spin_loss(
    real_logratios: Tensor,
    generated_logratios: Tensor,
    *,
    beta: float = 0.1,
) -> LossOutput:
    """SPIN loss: ``mean_i softplus(−β (lr⁺_i − lr⁻_i))``, one pair per prompt.

    Chen et al. 2024, arXiv 2401.01335, eq. 4.7 with the logistic ℓ; the same function as
    DPO's sigmoid loss with the annotated response as "chosen" and the synthetic one as
    "rejected". With margin ``m = β (lr⁺ − lr⁻)`` both responses of pair i are weighted
    by ``σ(−m_i)/B``: ``real_weights = −(1/β)∂loss/∂lr⁺ = generated_weights``.

    Args:
        real_logratios, generated_logratios: (B,) log-ratios of the paired annotated and
            synthetic responses (policy minus previous iterate, summed over tokens).
        beta: β > 0.

    Notes:
        ``softplus(−m) = −logsigmoid(m)``, accurate for all m (no threshold switch).

    >>> round(spin_loss(torch.zeros(3), torch.zeros(3)).loss.item(), 6)  # log 2
    0.693147
    """
    dtype = compute_dtype(real_logratios, generated_logratios)
    real = as_compute(real_logratios, "real_logratios", dtype)
    generated = as_compute(generated_logratios, "generated_logratios", dtype)
    same_shape(real, generated, "real_logratios and generated_logratios")
    positive(beta, "beta")
    margin = beta * (real - generated)
    loss = -F.logsigmoid(margin).mean()
    weights = torch.sigmoid(-margin.detach()) / margin.numel()
    metrics = {
        "margin": margin.detach().mean(),
        "pair_accuracy": (margin.detach() > 0).to(dtype).mean(),
    }
    return LossOutput(loss, weights, weights.clone(), metrics)


def tspin_loss(
    real_logps: Tensor,
    generated_logps: Tensor,
    proto_logps: Tensor,
    *,
    scale: float = 1.0,
    lam: float = 0.1,
) -> LossOutput:
    """T-SPIN triplet loss (arXiv 2601.08198), reference-free.

    ``mean_i [ softplus(−a (log π(y_i) − log π(y'_i))) + λ softplus(−a (log π(y'_i) − log π(y0_i))) ]``
    with y the annotated response, y' the current synthetic one and y0 the
    "proto-synthetic" response generated once by the initial model; a = ``scale``.
    The paper uses a = 1, λ = 0.1 (λ = 0 at iteration 0, set by the caller).

    Weights (reference-free analogue of the contract, with β → a):
    ``real_weights = −(1/a)∂loss/∂log π(y) = σ(−m₁)/B`` and
    ``generated_weights = (1/a)∂loss/∂log π(y') = (σ(−m₁) − λ σ(−m₂))/B``, where
    m₁ = a(log π(y) − log π(y')), m₂ = a(log π(y') − log π(y0)); the synthetic weight is
    negative when the anchor term dominates (y' is then pulled up).

    Args:
        real_logps, generated_logps, proto_logps: (B,) policy log-probs summed over
            response tokens, one triplet per prompt.
        scale: a > 0.  lam: λ ≥ 0.

    >>> out = tspin_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), lam=0.0)
    >>> round(out.loss.item(), 6), out.generated_weights.tolist()
    (0.693147, [0.25, 0.25])
    """
    dtype = compute_dtype(real_logps, generated_logps, proto_logps)
    real = as_compute(real_logps, "real_logps", dtype)
    generated = as_compute(generated_logps, "generated_logps", dtype)
    proto = as_compute(proto_logps, "proto_logps", dtype)
    same_shape(real, generated, "real_logps and generated_logps")
    same_shape(real, proto, "real_logps and proto_logps")
    positive(scale, "scale")
    nonnegative(lam, "lam")
    margin = scale * (real - generated)
    anchor_margin = scale * (generated - proto)
    loss = (-F.logsigmoid(margin) - lam * F.logsigmoid(anchor_margin)).mean()
    n = margin.numel()
    real_weights = torch.sigmoid(-margin.detach()) / n
    generated_weights = real_weights - lam * torch.sigmoid(-anchor_margin.detach()) / n
    metrics = {
        "margin": margin.detach().mean(),
        "anchor_margin": anchor_margin.detach().mean(),
        "pair_accuracy": (margin.detach() > 0).to(dtype).mean(),
    }
    return LossOutput(loss, real_weights, generated_weights, metrics)
