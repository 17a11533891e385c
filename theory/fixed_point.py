"""Claim 7: the self-play fixed point and the non-parametric minimiser.

Setting: a softmax family on three outcomes, `p_θ(y) = e^{θ_y} / Σ_z e^{θ_z}` with real θ,
the opponent `Q = p_θt`, data `P`, reward `r_θ(y) = β (log p_θ(y) − log p_θt(y))`, and the
population IRIS loss `L_α(θ) = −J_α(r_θ; P, Q)` (objective.md "Fixed point"). P and Q are
generic points of the open simplex (generic positive weights where normalisation plays no
role); the opponent's logits are θt = log Q (any θt is log Q + const, and the family is
invariant to that constant).
"""

from __future__ import annotations

import sympy as sp

from theory.checks import (
    positive_symbols,
    real_symbols,
    require,
    require_identity,
    simplex_point,
)
from theory.divergences import rdv_objective, rescaled_renyi, tilted_risk, tilted_weights
from theory.registry import claim

CLAIM_TEST = "tests/test_theory.py::test_claim"
LOSS_TESTS = "tests/test_theory_losses.py"


def softmax_log_probs(theta):
    """`log p_θ(y) = θ_y − log Σ_z e^{θ_z}`."""
    log_normaliser = sp.log(sp.Add(*(sp.exp(t) for t in theta)))
    return [t - log_normaliser for t in theta]


def rewards(theta, reference_log_probs, beta):
    """`r_θ(y) = β (log p_θ(y) − log p_θt(y))`."""
    return [
        beta * (lp - ref)
        for lp, ref in zip(softmax_log_probs(theta), reference_log_probs, strict=True)
    ]


def population_loss(theta, p, q, alpha, beta):
    """`L_α(θ) = −J_α(r_θ; P, Q)` with Q = p_θt = softmax(log q)."""
    return -rdv_objective(rewards(theta, [sp.log(qi) for qi in q], beta), p, q, alpha)


def _setting():
    theta = real_symbols("theta1:4")
    alpha = sp.Symbol("alpha", real=True, nonzero=True)
    (beta,) = positive_symbols("beta")
    return theta, alpha, beta


@claim(
    source="[paper] abstract: exponential importance weights; [derived] objective.md",
    method="symbolic",
    tests=(
        f"{CLAIM_TEST}[iris_gradient_importance_weights]",
        f"{LOSS_TESTS}::test_fixed_point_gradient_autograd",
    ),
)
def iris_gradient_importance_weights() -> None:
    """∇_θ L_α = −Σ_y w⁺_y ∇r_θ(y) + Σ_y w⁻_y ∇r_θ(y), w⁺ ∝ P e^{(α−1)r}, w⁻ ∝ Q e^{αr}.

    Source: [paper] ("exponential importance weights") and [derived] objective.md
    "Gradient". The batch version replaces P, Q by the empirical measures of the annotated
    and synthetic samples: w⁺ = softmax((α−1) r⁺), w⁻ = softmax(α r⁻), each summing to one
    over the whole optimisation batch. Checked symbolically at a generic θ, for every α, β,
    with generic positive weights for P and Q (the chain rule does not use normalisation).
    Enforced by tests/test_theory.py::test_claim[iris_gradient_importance_weights] and
    tests/test_theory_losses.py::test_fixed_point_gradient_autograd.
    """
    theta, alpha, beta = _setting()
    p = positive_symbols("p1:4")
    q = positive_symbols("q1:4")
    r = rewards(theta, [sp.log(qi) for qi in q], beta)
    loss = population_loss(theta, p, q, alpha, beta)
    w_real = tilted_weights(r, alpha - 1, p)
    w_synthetic = tilted_weights(r, alpha, q)
    for t in theta:
        dr = [sp.diff(ri, t) for ri in r]
        weighted = sp.Add(*(-(a - b) * d for a, b, d in zip(w_real, w_synthetic, dr, strict=True)))
        require_identity(sp.diff(loss, t), weighted, f"dL/d{t}", rewrite=False)


@claim(
    source="[paper] abstract: fixed point at p_θt = p_data; [derived] objective.md",
    method="symbolic",
    tests=(
        f"{CLAIM_TEST}[fixed_point_gradient]",
        f"{LOSS_TESTS}::test_fixed_point_gradient_autograd",
    ),
)
def fixed_point_gradient() -> None:
    """At θ = θt: ∇_θ L_α = β (p_θt − P) for every α, β; so it is 0 exactly when P = p_θt.

    Source: [paper] (fixed point) and [derived] objective.md "Fixed point". Proof: at θ = θt
    all rewards are 0, so w⁺ = P and w⁻ = Q = p_θt; ∇_θ r(y) = β(e_y − p_θ), so
    ∇L = −β(P − p_θt) + β(p_θt − p_θt). Checked symbolically for generic P ≠ Q (the formula,
    which is nonzero) and for P = Q (zero).
    Enforced by tests/test_theory.py::test_claim[fixed_point_gradient] and
    tests/test_theory_losses.py::test_fixed_point_gradient_autograd.
    """
    theta, alpha, beta = _setting()
    p = simplex_point("s", 3)
    q = simplex_point("t", 3)
    at_opponent = {t: sp.log(qi) for t, qi in zip(theta, q, strict=True)}
    for data in (p, q):
        loss = population_loss(theta, data, q, alpha, beta)
        for t, pi, qi in zip(theta, data, q, strict=True):
            require_identity(
                sp.diff(loss, t).subs(at_opponent), beta * (qi - pi), f"dL/d{t} at theta_t"
            )


@claim(
    source="[paper] abstract: self-play stops at p_θt = p_data; [derived] objective.md",
    method="symbolic",
    tests=(
        f"{CLAIM_TEST}[fixed_point_global_minimum]",
        f"{LOSS_TESTS}::test_fixed_point_gradient_autograd",
    ),
)
def fixed_point_global_minimum() -> None:
    """If P = p_θt then L_α(θ) = TR_α(r_θ; Q) − TR_{α−1}(r_θ; Q) ≥ 0 = L_α(θt) = −R_α(Q‖Q).

    Source: [paper] and [derived] objective.md "Fixed point". The identity (checked
    symbolically at a generic θ) is theory.rdv.rdv_gap_decomposition with log(P/Q) = 0; the
    bracket is ≥ 0 by the monotonicity of TR in the tilt (theory.tilted_risk), with
    equality iff r_θ is constant, i.e. p_θ = p_θt. So θt is a global minimiser of the
    population loss for every α: self-play stops when the model matches the data.
    Enforced by tests/test_theory.py::test_claim[fixed_point_global_minimum] and
    tests/test_theory_losses.py::test_fixed_point_gradient_autograd.
    """
    theta, alpha, beta = _setting()
    q = simplex_point("t", 3)
    r = rewards(theta, [sp.log(qi) for qi in q], beta)
    loss = population_loss(theta, q, q, alpha, beta)
    gap = tilted_risk(r, alpha, q) - tilted_risk(r, alpha - 1, q)
    require_identity(loss, gap, "L(theta) = TR_alpha - TR_(alpha-1)")
    at_opponent = {t: sp.log(qi) for t, qi in zip(theta, q, strict=True)}
    require_identity(loss.subs(at_opponent), 0, "L(theta_t) = 0")
    require_identity(rescaled_renyi(q, q, alpha), 0, "R_alpha(Q||Q) = 0")


@claim(
    source="[derived] objective.md 'Fixed point' (as SPIN's Theorem 5.4)",
    method="symbolic",
    tests=(
        f"{CLAIM_TEST}[nonparametric_minimiser]",
        f"{LOSS_TESTS}::test_nonparametric_minimiser_autograd",
    ),
)
def nonparametric_minimiser() -> None:
    """p_θ ∝ p_θt (P/p_θt)^{1/β} minimises L_α for every α: ∇_θ L_α = 0 and L_α = −R_α(P‖Q).

    Source: [derived] objective.md "Fixed point" (the analogue of SPIN's Theorem 5.4). Proof:
    for θ*_y = log q_y + (1/β) log(p_y/q_y) the reward is r = log(P/Q) − β log Z with
    Z = Σ_z e^{θ*_z}, the optimal discriminator of theory.rdv for every α (a softmax family
    on a finite set reaches every positive p_θ, so this is the non-parametric optimum).
    Checked symbolically: r − log(P/Q) is the same for all outcomes, the gradient in θ
    vanishes and the loss equals −R_α(P‖Q). In the last two checks the normaliser
    Σ_z e^{θ*_z} is named Z > 0 (an identity for every Z > 0 holds for the actual one).
    Enforced by tests/test_theory.py::test_claim[nonparametric_minimiser] and
    tests/test_theory_losses.py::test_nonparametric_minimiser_autograd.
    """
    theta, alpha, beta = _setting()
    p = simplex_point("s", 3)
    q = simplex_point("t", 3)
    (z,) = positive_symbols("Z")
    optimum = {
        t: sp.log(qi) + sp.log(pi / qi) / beta for t, pi, qi in zip(theta, p, q, strict=True)
    }
    normaliser = sp.Add(*(sp.exp(t) for t in theta)).subs(optimum)
    r = [ri.subs(optimum) for ri in rewards(theta, [sp.log(qi) for qi in q], beta)]
    offsets = [ri - sp.log(pi / qi) for ri, pi, qi in zip(r, p, q, strict=True)]
    for offset in offsets[1:]:
        require_identity(offset, offsets[0], "r - log(P/Q) is constant")
    loss = population_loss(theta, p, q, alpha, beta)
    for t in theta:
        gradient = sp.diff(loss, t).subs(optimum).subs(normaliser, z)
        require(not gradient.has(normaliser), "normaliser named Z")
        require_identity(gradient, 0, f"dL/d{t} at the minimiser")
    value = loss.subs(optimum).subs(normaliser, z)
    require_identity(value, -rescaled_renyi(p, q, alpha), "L = -R_alpha")
