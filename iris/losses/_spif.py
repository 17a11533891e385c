"""SPIF regime: χ²-divergence self-play with a bounded reward. [choice]

The SPIF paper's exact loss is not available to this project (likely arXiv 2602.01357,
"χ²-regularised self-play"). This module implements the Pearson-χ² variational form

    χ²(P‖Q) = sup_T  E_P[T] − E_Q[T + T²/4]                 (f-GAN, f(t) = (t − 1)²)

whose maximiser is ``T* = 2 (dP/dQ − 1) ≥ −2``. The critic is parameterised by the
reward as ``T = 2 (e^{r̃} − 1)`` — exact at the optimum when ``r̃ = log dP/dQ`` — with the
bounded reward ``r̃ = c · tanh(r / c)``, ``r = β · logratio``. Then ``T + T²/4 = e^{2r̃} − 1``
and the loss (the negative variational objective) is

    L = −2 mean_i e^{r̃⁺_i} + mean_j e^{2 r̃⁻_j} + 1.

Why this form: (1) T > −2 always, so the synthetic weights stay positive (the quadratic
f* is decreasing below −2); (2) the bound c caps every weight at e^{2c}·(2/B) — the χ²
objective's known instability is its unbounded e^{2r} term; (3) as c → ∞ it is the
linearisation of IRIS at α = 2: with A = mean e^{r⁺}, C = mean e^{2r⁻},
L_2 = −log A + ½ log C and L = −2A + C + 1 have the same weights profile
(∝ e^{r⁺} and ∝ e^{2r⁻}) and ∇L = 2 ∇L_2 where A = C = 1 (at the fixed point).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._types import LossOutput, as_compute, compute_dtype, positive


def spif_loss(
    real_logratios: Tensor,
    generated_logratios: Tensor,
    *,
    beta: float = 0.1,
    bound: float = 2.0,
) -> LossOutput:
    """χ² self-play loss ``−2 mean e^{r̃⁺} + mean e^{2r̃⁻} + 1``, ``r̃ = c tanh(β lr / c)``.

    The negative Pearson-χ² variational objective with critic ``T = 2(e^{r̃} − 1)``
    (module docstring: the exact form is this project's choice). ``−loss`` is a lower
    bound on χ²(p_data ‖ p_θt) (up to the reward bound) and is reported as
    ``chi2_estimate``.

    Weights (``sech²`` is the derivative of the bound):
    ``real_weights = 2 e^{r̃⁺} sech²(r⁺/c)/B``, ``generated_weights = 2 e^{2r̃⁻} sech²(r⁻/c)/B'``;
    both are 2/B at r = 0.

    Args:
        real_logratios: (B,) annotated log-ratios.  generated_logratios: (B',) synthetic.
        beta: β > 0.  bound: c > 0, the bound on |r̃|.

    >>> spif_loss(torch.zeros(2), torch.zeros(2)).loss.item()
    0.0
    """
    dtype = compute_dtype(real_logratios, generated_logratios)
    real = as_compute(real_logratios, "real_logratios", dtype)
    generated = as_compute(generated_logratios, "generated_logratios", dtype)
    positive(beta, "beta")
    positive(bound, "bound")
    real_reward = bound * torch.tanh(beta * real / bound)
    generated_reward = bound * torch.tanh(beta * generated / bound)
    # −E_P[T] + E_Q[T + T²/4] with T = 2(e^r̃ − 1):  −2 E_P e^r̃ + 2 + E_Q e^{2r̃} − 1.
    loss = -2.0 * real_reward.exp().mean() + (2.0 * generated_reward).exp().mean() + 1.0

    def slope(reward: Tensor) -> Tensor:  # d r̃ / d r = sech²(r/c) = 1 − tanh²
        return 1.0 - (reward.detach() / bound).square()

    real_weights = 2.0 * real_reward.detach().exp() * slope(real_reward) / real.numel()
    generated_weights = (
        2.0 * (2.0 * generated_reward.detach()).exp() * slope(generated_reward) / generated.numel()
    )
    metrics = {
        "chi2_estimate": -loss.detach(),
        "real_reward_saturation": (real_reward.detach().abs() / bound).max(),
        "generated_reward_saturation": (generated_reward.detach().abs() / bound).max(),
    }
    return LossOutput(loss, real_weights, generated_weights, metrics)
