"""Claim 7: the self-play fixed point and the non-parametric minimiser.

Setting: a softmax family on three outcomes, `p_θ(y) = e^{θ_y} / Σ_z e^{θ_z}` with real θ,
the opponent `Q = p_θt`, data `P`, reward `r_θ(y) = β (log p_θ(y) − log p_θt(y))`, and the
population IRIS loss `L_α(θ) = −J_α(r_θ; P, Q)` (objective.md "Fixed point"). P and Q are
generic points of the open simplex (generic positive weights where normalisation plays no
role); the opponent's logits are θt = log Q (any θt is log Q + const, and the family is
invariant to that constant).

General n: every claim is also proved for a softmax family on n outcomes, n symbolic, with
indexed sums (theory.general): θ, P, Q are `IndexedBase`s, the normaliser Σ_j e^{θ_j} is a
sum over a second index j, and gradients are taken as directional derivatives
d/dt L(θ + t v)|_{t=0} = Σ_k v_k ∂L/∂θ_k for a generic direction v [stated: chain rule].
"""

from __future__ import annotations

import sympy as sp

from theory import general as G
from theory.checks import (
    positive_symbols,
    real_symbols,
    require,
    require_identity,
    simplex_point,
)
from theory.divergences import (
    rdv_objective,
    rescaled_renyi,
    tilted_risk,
    tilted_weights,
    variance,
)
from theory.registry import claim
from theory.tilted_risk import require_substitutable, tilt_derivative_nonnegative

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


def _general_setting():
    """P, Q positive indexed weights (Σp = Σq = 1 by substitution, for both indices),
    θ and a direction v real, t the step along v."""
    pb, qb = G.positive_base("p"), G.positive_base("q")
    theta, v = G.real_base("theta"), G.real_base("v")
    normalised = {G.total(b[x], x): 1 for b in (pb, qb) for x in (G.IX, G.JX)}
    return pb, qb, theta, v, sp.Symbol("t", real=True), normalised


def general_rewards(theta, q, beta):
    """`r_θ(y) = β (θ_y − log Σ_j e^{θ_j} − log q_y)` for n outcomes (θt = log Q)."""
    normaliser = sp.log(G.total(sp.exp(theta(G.JX)), G.JX))
    return lambda y: beta * (theta(y) - normaliser - sp.log(q(y)))


def _setting():
    theta = real_symbols("theta1:4")
    alpha = sp.Symbol("alpha", real=True, nonzero=True)
    (beta,) = positive_symbols("beta")
    return theta, alpha, beta


@claim(
    source="[paper] abstract: exponential importance weights; [derived] objective.md",
    method="symbolic",
    theorems=("chain rule (directional derivatives)",),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[iris_gradient_importance_weights]",
        f"{LOSS_TESTS}::test_fixed_point_gradient_autograd",
    ),
)
def iris_gradient_importance_weights() -> None:
    """∇_θ L_α = −Σ_y w⁺_y ∇r_θ(y) + Σ_y w⁻_y ∇r_θ(y), w⁺ ∝ P e^{(α−1)r}, w⁻ ∝ Q e^{αr}, for
    every differentiable parametrisation θ ↦ r_θ.

    Source: [paper] ("exponential importance weights") and [derived] objective.md
    "Gradient". The batch version replaces P, Q by the empirical measures of the annotated
    and synthetic samples: w⁺ = softmax((α−1) r⁺), w⁻ = softmax(α r⁻), each summing to one
    over the whole optimisation batch. Checked symbolically for a general parametrisation
    — each reward r_y(θ) an undefined sympy function of θ, so the chain rule is checked with
    symbolic derivatives r_y'(θ) — for every α, β, with generic positive weights for P and Q
    (the chain rule does not use normalisation); and for the tabular softmax family, the
    parametrisation of the other claims of this module.
    General n: for rewards r_1..r_n and any path r(t) with r(0) = r, r'(0) = d, the chain
    rule [stated] gives d/dt L(r(t))|₀ = Σ_y (∂L/∂r_y) d_y, so it suffices to take
    r(t) = r + t d: d/dt L_α(r + t d)|₀ = Σ_y (−w⁺_y + w⁻_y) d_y is checked with indexed sums
    (n symbolic, d generic, P, Q generic positive weights).
    Enforced by tests/test_theory.py::test_claim[iris_gradient_importance_weights] and
    tests/test_theory_losses.py::test_fixed_point_gradient_autograd.
    """
    theta, alpha, beta = _setting()
    p = positive_symbols("p1:4")
    q = positive_symbols("q1:4")
    t = sp.Symbol("t", real=True)
    r = [sp.Function(f"r{i}", real=True)(t) for i in range(1, 4)]
    loss = -rdv_objective(r, p, q, alpha)
    weighted = sp.Add(
        *(
            -(a - b) * sp.diff(ri, t)
            for a, b, ri in zip(
                tilted_weights(r, alpha - 1, p), tilted_weights(r, alpha, q), r, strict=True
            )
        )
    )
    # Name r_y(t) and r_y'(t) by real symbols (derivatives first), so that the comparison is
    # an identity in ordinary symbols (and a false one is refuted numerically at once).
    values, slopes = real_symbols("s1:4"), real_symbols("d1:4")
    named = {sp.Derivative(ri, t): di for ri, di in zip(r, slopes, strict=True)}
    named_values = dict(zip(r, values, strict=True))
    lhs = sp.diff(loss, t).subs(named).subs(named_values)
    rhs = weighted.subs(named).subs(named_values)
    require(not lhs.has(t) and not rhs.has(t), "r(t), r'(t) named")
    require_identity(lhs, rhs, "dL/dt, general r(t)", rewrite=False)
    r = rewards(theta, [sp.log(qi) for qi in q], beta)
    loss = population_loss(theta, p, q, alpha, beta)
    w_real = tilted_weights(r, alpha - 1, p)
    w_synthetic = tilted_weights(r, alpha, q)
    dr = [sp.diff(ri, theta[0]) for ri in r]
    weighted = sp.Add(*(-(a - b) * d for a, b, d in zip(w_real, w_synthetic, dr, strict=True)))
    require_identity(sp.diff(loss, theta[0]), weighted, "dL/dtheta1, softmax", rewrite=False)
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, _, _, t, _ = _general_setting()
    r, d = G.real_base("r"), G.real_base("d")
    loss = -G.rdv_objective(lambda j: r[j] + t * d[j], lambda j: pb[j], lambda j: qb[j], alpha)
    real_i = pb[G.IX] * sp.exp((alpha - 1) * r[G.IX])
    synthetic_i = qb[G.IX] * sp.exp(alpha * r[G.IX])
    weighted = G.total((-real_i / G.total(real_i) + synthetic_i / G.total(synthetic_i)) * d[G.IX])
    G.require_zero(sp.diff(loss, t).subs(t, 0) - weighted, "dL/dt along d")


@claim(
    source="[paper] abstract: fixed point at p_θt = p_data; [derived] objective.md",
    method="symbolic",
    theorems=("chain rule (directional derivatives)",),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[fixed_point_gradient]",
        f"{LOSS_TESTS}::test_fixed_point_gradient_autograd",
    ),
)
def fixed_point_gradient() -> None:
    """Tabular softmax family p_θ = softmax(θ): at θ = θt, ∇_θ L_α = β (p_θt − P) for every
    α, β; so it is 0 exactly when P = p_θt.

    Source: [paper] (fixed point) and [derived] objective.md "Fixed point". The formula is
    specific to the tabular softmax parametrisation (one logit per outcome); for a general
    one, iris_gradient_importance_weights at r = 0 gives ∇_θ L_α = −β E_P ∇ log p_θ +
    β E_{p_θt} ∇ log p_θ = −β E_P ∇ log p_θ (the score has mean 0 under p_θ = p_θt), which
    is 0 when P = p_θt. Proof for the softmax: at θ = θt all rewards are 0, so w⁺ = P and
    w⁻ = Q = p_θt; ∇_θ r(y) = β(e_y − p_θ), so ∇L = −β(P − p_θt) + β(p_θt − p_θt). Checked symbolically for generic P ≠ Q (the formula,
    which is nonzero) and for P = Q (zero).
    General n: with θ = log Q + t v (n outcomes, n symbolic, Σp = Σq = 1),
    d/dt L_α(θ)|₀ = β Σ_k v_k (q_k − p_k) is checked with indexed sums; for every v this
    gives ∂L_α/∂θ_k = β(q_k − p_k) (v = e_k), which is 0 for all k iff P = Q.
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
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, _, v, t, normalised = _general_setting()
    r = general_rewards(lambda j: sp.log(qb[j]) + t * v[j], lambda j: qb[j], beta)
    loss = -G.rdv_objective(r, lambda j: pb[j], lambda j: qb[j], alpha)
    slope = sp.diff(loss, t).subs(t, 0).doit()
    expected = beta * G.total(v[G.IX] * (qb[G.IX] - pb[G.IX]))
    G.require_zero(slope - expected, "dL/dt at theta_t along v", normalised)


@claim(
    source="[paper] abstract: self-play stops at p_θt = p_data; [derived] objective.md",
    method="symbolic",
    theorems=("fundamental theorem of calculus",),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[fixed_point_global_minimum]",
        f"{LOSS_TESTS}::test_fixed_point_gradient_autograd",
    ),
)
def fixed_point_global_minimum() -> None:
    """If P = p_θt then L_α(θ) = TR_α(r_θ; Q) − TR_{α−1}(r_θ; Q) ≥ 0 = L_α(θt) = −R_α(Q‖Q).

    Source: [paper] and [derived] objective.md "Fixed point". The identity (checked
    symbolically at a generic θ) is theory.rdv.rdv_gap_decomposition with log(P/Q) = 0; the
    bracket is ∫_{α−1}^{α} (d/dτ) TR_τ(r_θ; Q) dτ [fundamental theorem of calculus, stated]
    with a nonnegative integrand: theory.tilted_risk.tilt_derivative_nonnegative (every step
    checked by sympy) applied by substitution ℓ := r_θ (real, checked), π := Q (positive,
    checked), and Var_Q(r_θ)/2 ≥ 0 at τ = 0 (checked). Equality iff r_θ is constant, i.e.
    p_θ = p_θt. So θt is a global minimiser of the
    population loss for every α: self-play stops when the model matches the data.
    General n: the identity, L_α(θt) = 0 and R_α(Q‖Q) = 0 are checked with indexed sums
    over n outcomes, n symbolic (Σq = 1), and tilt_derivative_nonnegative is itself a
    general-n proof, applied by the same substitution (r_θ real, Q positive).
    Enforced by tests/test_theory.py::test_claim[fixed_point_global_minimum] and
    tests/test_theory_losses.py::test_fixed_point_gradient_autograd.
    """
    theta, alpha, beta = _setting()
    q = simplex_point("t", 3)
    r = rewards(theta, [sp.log(qi) for qi in q], beta)
    loss = population_loss(theta, q, q, alpha, beta)
    gap = tilted_risk(r, alpha, q) - tilted_risk(r, alpha - 1, q)
    require_identity(loss, gap, "L(theta) = TR_alpha - TR_(alpha-1)")
    require_substitutable(q, r)
    tilt_derivative_nonnegative()
    require(variance(r, q).is_nonnegative, "Var_Q(r) >= 0 (integrand at tau = 0)")
    at_opponent = {t: sp.log(qi) for t, qi in zip(theta, q, strict=True)}
    require_identity(loss.subs(at_opponent), 0, "L(theta_t) = 0")
    require_identity(rescaled_renyi(q, q, alpha), 0, "R_alpha(Q||Q) = 0")
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    _, qb, theta, _, _, normalised = _general_setting()
    Q_ = lambda j: qb[j]  # noqa: E731
    r = general_rewards(lambda j: theta[j], Q_, beta)
    loss = -G.rdv_objective(r, Q_, Q_, alpha)
    gap = G.tilted_risk(r, alpha, Q_) - G.tilted_risk(r, alpha - 1, Q_)
    G.require_zero(loss - gap, "L(theta) = TR_alpha - TR_(alpha-1)", normalised)
    require(r(G.K).is_extended_real, "r_theta real (substitution into the KL certificate)")
    at_opponent = G.on_index(loss, theta, lambda j: sp.log(qb[j]))
    G.require_zero(at_opponent, "L(theta_t) = 0", normalised)
    G.require_zero(G.rescaled_renyi(Q_, Q_, alpha), "R_alpha(Q||Q) = 0", normalised)


@claim(
    source="[derived] objective.md 'Fixed point' (as SPIN's Theorem 5.4)",
    method="symbolic",
    theorems=("chain rule (directional derivatives)",),
    scope="general n",
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
    General n: the same three checks with indexed sums over n outcomes, n symbolic
    (Σp = Σq = 1), the gradient as d/dt L_α(θ* + t v)|₀ = 0 for a generic direction v.
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
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, _, v, t, normalised = _general_setting()
    P_, Q_ = (lambda j: pb[j]), (lambda j: qb[j])
    best = lambda j: sp.log(qb[j]) + sp.log(pb[j] / qb[j]) / beta  # noqa: E731
    normaliser = G.total(sp.exp(best(G.JX)), G.JX)
    r_k = general_rewards(best, Q_, beta)(G.K).subs(normaliser, z)
    G.require_zero(r_k - sp.log(pb[G.K] / qb[G.K]) + beta * sp.log(z), "r = log(P/Q) - beta log Z")
    loss = -G.rdv_objective(general_rewards(lambda j: best(j) + t * v[j], Q_, beta), P_, Q_, alpha)
    slope = sp.diff(loss, t).subs(t, 0).doit().subs(normaliser, z)
    require(not slope.has(normaliser), "normaliser named Z")
    G.require_zero(slope, "dL/dt at the minimiser along v", normalised)
    value = loss.subs(t, 0).subs(normaliser, z)
    G.require_zero(value + G.rescaled_renyi(P_, Q_, alpha), "L = -R_alpha", normalised)
