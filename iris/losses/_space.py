"""SPACE: self-play as noise-contrastive estimation (arXiv 2512.07175)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._types import LossOutput, as_compute, compute_dtype, positive


def space_loss(
    real_logratios: Tensor,
    generated_logratios: Tensor,
    *,
    mu: float = 1.0,
    beta: float = 1.0,
) -> LossOutput:
    """SPACE loss: ``mean_i softplus(log μ − u⁺_i) + μ · mean_j softplus(u⁻_j − log μ)``.

    With ``σ_μ(z) = 1/(1 + μ e^{−z})`` and ``u = β · logratio`` this is
    ``−log σ_μ(u⁺) − μ log σ_{1/μ}(−u⁻)``: a logistic (NCE) classifier between annotated
    and synthetic responses with noise ratio μ, whose optimum is the Jensen–Shannon-type
    divergence of the two. Annotated and synthetic samples are independent terms (their
    counts may differ). μ = 1 in the paper's main runs.

    Weights: ``real_weights = σ(log μ − u⁺)/B``, ``generated_weights = μ σ(u⁻ − log μ)/B'``.

    Args:
        real_logratios: (B,) annotated log-ratios.  generated_logratios: (B',) synthetic.
        mu: noise ratio μ > 0.  beta: β > 0.

    Notes:
        ``softplus(x) = −logsigmoid(−x)``, accurate for all x.

    >>> round(space_loss(torch.zeros(2), torch.zeros(3)).loss.item(), 6)  # 2 log 2
    1.386294
    """
    dtype = compute_dtype(real_logratios, generated_logratios)
    real = as_compute(real_logratios, "real_logratios", dtype)
    generated = as_compute(generated_logratios, "generated_logratios", dtype)
    positive(mu, "mu")
    positive(beta, "beta")
    log_mu = math.log(float(mu))
    real_margin = beta * real - log_mu  # u⁺ − log μ
    generated_margin = beta * generated - log_mu  # u⁻ − log μ
    loss = -F.logsigmoid(real_margin).mean() - mu * F.logsigmoid(-generated_margin).mean()
    real_weights = torch.sigmoid(-real_margin.detach()) / real.numel()
    generated_weights = mu * torch.sigmoid(generated_margin.detach()) / generated.numel()
    metrics = {
        # Accuracies, not posterior probabilities: the classifier σ_μ(u) says "annotated"
        # iff u > log μ; the fraction of annotated samples it classifies as annotated and
        # of synthetic samples it classifies as synthetic.
        "real_accuracy": (real_margin.detach() > 0).to(dtype).mean(),
        "generated_accuracy": (generated_margin.detach() < 0).to(dtype).mean(),
    }
    return LossOutput(loss, real_weights, generated_weights, metrics)
