"""Claim 9: how IRIS relates to SPIN, SPACE and SPIF — what is an identity and what is a regime.

Exact statements proved here:

- near the fixed point (all rewards 0) every method weights all samples equally, so the
  gradients agree in direction; their first-order weight corrections differ;
- the population objectives of IRIS (every α, up to a constant), DV-KL (α = 1), SPACE
  (every μ, exactly) and SPIN's pair loss (up to a constant) share the optimal
  discriminator g* = log(P/Q);
- α = 2 ↔ χ²: sup_g J_2 = ½ log(1 + χ²) with χ² the sup of the Pearson form SPIF uses,
  and unbounded SPIF has the IRIS α = 2 weight profile;
- SPACE (μ = 1) at its optimum is the Jensen–Shannon (NCE) value 2 log 2 − 2 JS(P, Q).

Only regimes (same divergence family, not equal losses): SPIN's logistic pair loss is NOT
L_1 (their values differ, checked below); SPACE is NOT L_½ (JS vs Bhattacharyya); SPIF is
NOT L_2 (same weight profile, different per-side scale), and its bounded critic is NOT the
optimal Pearson critic (it matches it through order r²).
Batch losses are written as in `iris.losses` with per-sample log-ratios r⁺ (annotated) and
r⁻ (synthetic) and scale β; weights are `w⁺ = −(1/β) ∂loss/∂r⁺`, `w⁻ = (1/β) ∂loss/∂r⁻`.

General n: every claim is also proved with indexed sums over n samples (batch losses) or n
outcomes (population losses), n symbolic (theory.general); Hessians enter as second
directional derivatives d²/dt² F(g + t v)|₀ = vᵀ∇²F v, written as sums of squares.
"""

from __future__ import annotations

import sympy as sp

from theory import general as G
from theory.checks import (
    positive_symbols,
    real_symbols,
    require,
    require_identity,
    series_terms,
    simplex_point,
)
from theory.divergences import (
    chi_square,
    dv_objective,
    jensen_shannon,
    kl_divergence,
    mean,
    pearson_objective,
    softplus,
    tilted_risk,
)
from theory.registry import ClaimFailed, claim

CLAIM_TEST = "tests/test_theory.py::test_claim"
LOSS_TESTS = "tests/test_theory_losses.py"


# Batch losses, as specified for iris.losses (n = number of samples per side).
def iris_batch_loss(real, generated, alpha, beta):
    """`TR_{1−α}(−β r⁺) + TR_α(β r⁻)`."""
    return tilted_risk([-beta * r for r in real], 1 - alpha) + tilted_risk(
        [beta * r for r in generated], alpha
    )


def spin_batch_loss(real, generated, beta):
    """`mean_i softplus(−β (r⁺_i − r⁻_i))` (SPIN eq. 4.7, pairs i)."""
    return mean([softplus(-beta * (a - b)) for a, b in zip(real, generated, strict=True)])


def space_batch_loss(real, generated, mu, beta):
    """`mean softplus(log μ − β r⁺) + μ · mean softplus(β r⁻ − log μ)` (SPACE)."""
    return mean([softplus(sp.log(mu) - beta * r) for r in real]) + mu * mean(
        [softplus(beta * r - sp.log(mu)) for r in generated]
    )


def spif_critic(x, bound):
    """This project's SPIF critic [choice] (iris/losses/_spif.py): `T = 2(e^{r̃} − 1)`,
    `r̃ = c · tanh(x / c)` the bounded reward, c = `bound`."""
    return 2 * (sp.exp(bound * sp.tanh(x / bound)) - 1)


def spif_batch_loss(real, generated, beta, bound):
    """`−mean T(β r⁺) + mean(T(β r⁻) + T(β r⁻)²/4)`, the negative Pearson form
    (= −2 mean e^{r̃⁺} + mean e^{2r̃⁻} + 1 for this critic)."""
    t_real = [spif_critic(beta * r, bound) for r in real]
    t_generated = [spif_critic(beta * r, bound) for r in generated]
    return -mean(t_real) + mean([t + t**2 / 4 for t in t_generated])


def general_batch_losses(alpha, beta, mu, bound):
    """The four batch losses over n samples per side (a_i = r⁺_i, b_i = r⁻_i), indexed sums."""
    a, b = G.real_base("a"), G.real_base("b")
    mean = lambda f: G.total(f) / G.N  # noqa: E731
    a_i, b_i = a[G.IX], b[G.IX]
    iris = G.tilted_risk(lambda j: -beta * a[j], 1 - alpha, lambda j: 1) + G.tilted_risk(
        lambda j: beta * b[j], alpha, lambda j: 1
    )
    spin = mean(softplus(-beta * (a_i - b_i)))
    space = mean(softplus(sp.log(mu) - beta * a_i)) + mu * mean(softplus(beta * b_i - sp.log(mu)))
    t_real, t_generated = spif_critic(beta * a_i, bound), spif_critic(beta * b_i, bound)
    spif = -mean(t_real) + mean(t_generated + t_generated**2 / 4)
    return a, b, {"iris": iris, "spin": spin, "space": space, "spif": spif}


def _general_weights(loss, a, b, beta):
    """(w⁺_k, w⁻_k) for a sample k of the range."""
    return -G.partial(loss, a) / beta, G.partial(loss, b) / beta


def _weights(loss, real, generated, beta):
    w_real = [-sp.diff(loss, r) / beta for r in real]
    w_generated = [sp.diff(loss, r) / beta for r in generated]
    return w_real, w_generated


@claim(
    source="[derived] objective.md 'Regimes': near r = 0 all methods give the same direction",
    method="symbolic",
    theorems=("Taylor's theorem (per-term series of a finite sum)",),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[near_fixed_point_weights]",
        f"{LOSS_TESTS}::test_baseline_weights_uniform_at_zero",
        f"{LOSS_TESTS}::test_theory_batch_losses_match_library",
    ),
)
def near_fixed_point_weights() -> None:
    """At r⁺ = r⁻ = 0 every method's weights are c/n on both sides: c = 1 (IRIS, any α),
    ½ (SPIN), μ/(1+μ) (SPACE), 2 (SPIF); first-order corrections differ.

    Source: [derived] objective.md "Regimes in α" ("near the fixed point all of them give
    the same gradient direction up to scale"). So at r = 0 all gradients are positive
    multiples of −mean ∇r⁺ + mean ∇r⁻. To first order in r they differ (checked for IRIS and
    SPIN): IRIS w⁺_i = (1/n)(1 + (α−1)β(r⁺_i − mean r⁺)) and w⁻_j = (1/n)(1 + αβ(r⁻_j −
    mean r⁻)) — each side centred on its own batch mean — whereas SPIN's pair weight is
    (1/(2n))(1 − β(r⁺_i − r⁻_i)/2), coupled through the pair margin. Checked symbolically
    with three samples per side, symbolic α, β > 0, μ > 0 and SPIF bound b > 0.
    General n: the same, n samples per side, n symbolic (indexed sums; the first-order
    IRIS weights by theory.general.sum_series, term by term).
    Enforced by tests/test_theory.py::test_claim[near_fixed_point_weights],
    tests/test_theory_losses.py::test_baseline_weights_uniform_at_zero and
    tests/test_theory_losses.py::test_theory_batch_losses_match_library (the batch losses
    written here equal iris.losses').
    """
    real = real_symbols("a1:4")
    generated = real_symbols("b1:4")
    alpha = sp.Symbol("alpha", real=True, nonzero=True)
    beta, mu, bound = positive_symbols("beta mu bound")
    eps = sp.Symbol("epsilon", real=True)
    n = len(real)
    at_zero = {r: 0 for r in (*real, *generated)}
    losses = {
        "iris": (iris_batch_loss(real, generated, alpha, beta), sp.Integer(1)),
        "spin": (spin_batch_loss(real, generated, beta), sp.Rational(1, 2)),
        "space": (space_batch_loss(real, generated, mu, beta), mu / (1 + mu)),
        "spif": (spif_batch_loss(real, generated, beta, bound), sp.Integer(2)),
    }
    weights = {}
    for name, (loss, scale) in losses.items():
        w_real, w_generated = _weights(loss, real, generated, beta)
        weights[name] = (w_real, w_generated)
        for w in (*w_real, *w_generated):
            require_identity(w.subs(at_zero), scale / n, f"{name} weight at r = 0")

    scaled = {r: eps * r for r in (*real, *generated)}
    w_real, w_generated = weights["iris"]
    for w, r, side, tilt in (
        *((w, r, real, alpha - 1) for w, r in zip(w_real, real, strict=True)),
        *((w, r, generated, alpha) for w, r in zip(w_generated, generated, strict=True)),
    ):
        first_order = (1 + eps * tilt * beta * (r - mean(side))) / n
        require_identity(series_terms(w.subs(scaled), eps, 1), first_order, "IRIS weight O(r)")
    w_real, _ = weights["spin"]
    for w, a, b in zip(w_real, real, generated, strict=True):
        first_order = (1 - eps * beta * (a - b) / 2) / (2 * n)
        require_identity(series_terms(w.subs(scaled), eps, 1), first_order, "SPIN weight O(r)")
    # General n (theory.general): n samples per side, n symbolic.
    a, b, general = general_batch_losses(alpha, beta, mu, bound)
    scales = {name: scale for name, (_, scale) in losses.items()}
    zero = lambda e: G.on_index(G.on_index(e, a, lambda j: 0), b, lambda j: 0)  # noqa: E731
    small = lambda e: G.on_index(G.on_index(e, a, lambda j: eps * a[j]), b, lambda j: eps * b[j])  # noqa: E731
    for name, loss in general.items():
        for w in _general_weights(loss, a, b, beta):
            G.require_zero(zero(w).doit() - scales[name] / G.N, f"{name} weight at r = 0")
    w_real, w_generated = _general_weights(general["iris"], a, b, beta)
    for w, side, tilt in ((w_real, a, alpha - 1), (w_generated, b, alpha)):
        first_order = (1 + eps * tilt * beta * (side[G.K] - G.total(side[G.IX]) / G.N)) / G.N
        G.require_zero(G.sum_series(small(w), eps, 1, 1) - first_order, "IRIS weight O(r)")
    w_real, _ = _general_weights(general["spin"], a, b, beta)
    first_order = (1 - eps * beta * (a[G.K] - b[G.K]) / 2) / (2 * G.N)
    G.require_zero(series_terms(small(w_real), eps, 1) - first_order, "SPIN weight O(r)")


@claim(
    source="[derived] objective.md 'Regimes' (SPIN/SPACE/DV share the fixed point with IRIS)",
    method="symbolic",
    theorems=(
        "convex iff second directional derivatives >= 0",
        "a stationary point of a convex function is a minimiser",
    ),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[shared_optimal_discriminator]",
        f"{LOSS_TESTS}::test_shared_optimal_discriminator_autograd",
        f"{LOSS_TESTS}::test_spin_is_not_iris_alpha_one",
    ),
)
def shared_optimal_discriminator() -> None:
    """g* = log(P/Q) is a stationary point (hence, being convex, a minimiser) of the population
    losses of DV-KL (+c), SPACE (any μ, exactly) and SPIN's pair loss (+c), like IRIS.

    Source: [derived] objective.md "Regimes in α". Population losses over outcomes y:
    DV: −E_P g + log E_Q e^g (= L_1, the α → 1 limit of IRIS);
    SPACE: E_P softplus(log μ − g) + μ E_Q softplus(g − log μ) (pointwise, so g* is exact,
    with no free constant, for every μ);
    SPIN: E_{y∼P, y'∼Q} softplus(−(g(y) − g(y'))) (depends on g only through differences).
    All three are convex in g, proved by sum-of-squares forms of their Hessians
    (require_convex_dv_and_spin: vᵀ∇²v = Σ w_i (v_i − E_w v)² for DV and
    Σ p_i q_j σ'(g_j − g_i)(v_i − v_j)² for SPIN, identities checked by sympy and ≥ 0 by its
    assumption system; SPACE's Hessian is diagonal with positive entries, checked), so the
    stationary point is a global minimiser [stated theorem: a stationary point of a convex
    differentiable function is a global minimiser]; IRIS's is theory.rdv.rdv_stationary_point. The minimisers
    agree, the losses do not: at P = (2/3, 1/3), Q = (1/3, 2/3), g = g* the SPIN pair loss
    and L_1 = −KL(P‖Q) differ (checked), so SPIN is a KL regime, not L_1.
    Checked symbolically with three outcomes (DV: normalised P, Q; SPACE, SPIN: generic
    positive weights) and symbolic μ > 0.
    General n (require_general_shared_optimum; n outcomes, n symbolic, indexed sums): the
    three stationarity conditions (∂/∂g_k at g*, DV with Σp = Σq = 1), DV's value −KL(P‖Q),
    and convexity through second directional derivatives: DV's is Σ_i w_i (v_i − E_w v)²,
    SPACE's Σ_i s_i'' v_i² with s_i'' > 0, SPIN's Σ_{i,j} p_i q_j σ'(g_j − g_i)(v_i − v_j)²
    (identities of the summands, differentiation being linear over a finite sum; ≥ 0 by the
    assumption system). The SPIN ≠ L_1 witness is a counterexample, so one instance is all
    it needs.
    Enforced by tests/test_theory.py::test_claim[shared_optimal_discriminator],
    tests/test_theory_losses.py::test_shared_optimal_discriminator_autograd and
    tests/test_theory_losses.py::test_spin_is_not_iris_alpha_one.
    """
    g = real_symbols("g1:4")
    c = sp.Symbol("c", real=True)
    (mu,) = positive_symbols("mu")

    p = simplex_point("s", 3)
    q = simplex_point("t", 3)
    optimum = {gi: sp.log(pi / qi) + c for gi, pi, qi in zip(g, p, q, strict=True)}
    dv_loss = -dv_objective(g, p, q)
    for gi in g:
        require_identity(sp.diff(dv_loss, gi).subs(optimum), 0, "DV stationary")
    require_identity(dv_loss.subs(optimum), -kl_divergence(p, q), "DV value = -KL")

    p = positive_symbols("p1:4")
    q = positive_symbols("q1:4")
    space = sp.Add(
        *(
            pi * softplus(sp.log(mu) - gi) + mu * qi * softplus(gi - sp.log(mu))
            for gi, pi, qi in zip(g, p, q, strict=True)
        )
    )
    exact = {gi: sp.log(pi / qi) for gi, pi, qi in zip(g, p, q, strict=True)}
    for gi in g:
        require_identity(sp.diff(space, gi).subs(exact), 0, "SPACE stationary")
        require(sp.simplify(sp.diff(space, gi, 2)).is_positive, "SPACE convex")

    spin = spin_population_loss(g, p, q)
    optimum = {gi: sp.log(pi / qi) + c for gi, pi, qi in zip(g, p, q, strict=True)}
    for gi in g:
        require_identity(sp.diff(spin, gi).subs(optimum), 0, "SPIN stationary")
    require_convex_dv_and_spin()
    require_general_shared_optimum()

    p2 = [sp.Rational(2, 3), sp.Rational(1, 3)]
    q2 = [sp.Rational(1, 3), sp.Rational(2, 3)]
    g2 = [sp.log(pi / qi) for pi, qi in zip(p2, q2, strict=True)]
    gap = spin_population_loss(g2, p2, q2) - (-kl_divergence(p2, q2))
    if abs(sp.N(gap, 30)) < sp.Float("1e-20"):
        raise ClaimFailed("SPIN pair loss equals L_1 at the test point")


def require_general_shared_optimum() -> None:
    """The general-n part of shared_optimal_discriminator (see its docstring)."""
    pb, qb, g, v = G.positive_base("p"), G.positive_base("q"), G.real_base("g"), G.real_base("v")
    p_i, q_i, g_i, v_i = pb[G.IX], qb[G.IX], g[G.IX], v[G.IX]
    P_, Q_ = (lambda j: pb[j]), (lambda j: qb[j])
    c, t = sp.Symbol("c", real=True), sp.Symbol("t", real=True)
    (mu,) = positive_symbols("mu")
    normalised = {G.total(p_i): 1, G.total(q_i): 1}
    optimum = lambda j: sp.log(pb[j] / qb[j]) + c  # noqa: E731
    along = lambda e: G.on_index(e, g, lambda j: g[j] + t * v[j])  # noqa: E731

    def second_directional(e):
        return sp.diff(along(e), t, 2).subs(t, 0)

    dv_loss = -G.dv_objective(lambda j: g[j], P_, Q_)
    stationary = G.on_index(G.partial(dv_loss, g), g, optimum)
    G.require_zero(stationary, "DV stationary", normalised)
    kl = G.total(p_i * sp.log(p_i / q_i))
    G.require_zero(G.on_index(dv_loss, g, optimum) + kl, "DV value = -KL", normalised)
    w_i = q_i * sp.exp(g_i) / G.total(q_i * sp.exp(g_i))
    dv_sos = G.total(w_i * (v_i - G.total(w_i * v_i)) ** 2)
    G.require_zero(second_directional(dv_loss) - dv_sos, "DV Hessian form = sum of squares")
    require(dv_sos.is_nonnegative, "DV Hessian form >= 0 (general n)")

    space_i = p_i * softplus(sp.log(mu) - g_i) + mu * q_i * softplus(g_i - sp.log(mu))
    space = G.total(space_i)
    exact = lambda j: sp.log(pb[j] / qb[j])  # noqa: E731
    G.require_zero(G.on_index(G.partial(space, g), g, exact), "SPACE stationary")
    curvature = sp.simplify(sp.diff(space_i, g_i, 2))
    G.require_zero(second_directional(space) - G.total(curvature * v_i**2), "SPACE Hessian form")
    require(curvature.is_positive, "SPACE curvature > 0 (general n)")

    pair = p_i * qb[G.JX] * softplus(-(g_i - g[G.JX]))
    spin = G.total(G.total(pair, G.JX))
    derivative = G.on_index(G.partial(spin, g), g, optimum)
    G.require_zero(derivative, "SPIN stationary")
    pair_along = pair.xreplace({g_i: g_i + t * v_i, g[G.JX]: g[G.JX] + t * v[G.JX]})
    z = g[G.JX] - g_i
    sos_term = p_i * qb[G.JX] * sp.exp(z) / (1 + sp.exp(z)) ** 2 * (v_i - v[G.JX]) ** 2
    G.require_zero(sp.diff(pair_along, t, 2).subs(t, 0) - sos_term, "SPIN pair Hessian form")
    require(sos_term.is_nonnegative, "SPIN Hessian form term >= 0 (general n)")


def _quadratic_form(expr, variables, direction):
    """vᵀ (∇² expr) v."""
    hessian = sp.hessian(expr, variables)
    v = sp.Matrix(direction)
    return (v.T * hessian * v)[0, 0]


def _as_rational(expr, g, y):
    """Replace every e^{±g_i} (also inside e^{g_j − g_i}) by y_i^{±1}: the Hessians below are
    rational functions of y_i = e^{g_i} > 0, q, p and v, compared exactly."""
    expanded = sp.expand(sp.powsimp(expr), power_exp=True, mul=False, multinomial=False)
    return expanded.subs({sp.exp(gi): yi for gi, yi in zip(g, y, strict=True)})


def _rational_zero(expr) -> bool:
    """A rational function is 0 iff the expanded numerator of `together(expr)` is 0."""
    numerator, _ = sp.fraction(sp.together(expr))
    return sp.expand(numerator) == 0


def require_convex_dv_and_spin() -> None:
    """The Hessians of the DV and SPIN population losses are positive semidefinite, by
    sum-of-squares forms of their quadratic forms (sympy identities + assumptions).

    DV: ∇² log E_Q e^g = diag(w) − w wᵀ with w ∝ Q e^g, so vᵀ∇²v = Σ_i w_i (v_i − Σ_j w_j v_j)²;
    SPIN: vᵀ∇²v = Σ_{i,j} p_i q_j σ'(g_j − g_i) (v_i − v_j)² with σ'(z) = e^z/(1 + e^z)² > 0.
    Both right-hand sides are sums of positive weights times squares of reals: sympy's
    assumption system decides they are ≥ 0. (The −E_P g term of DV is linear.) The
    identities are checked as rational functions of y_i = e^{g_i} (exact: expanded numerator is 0).
    """
    g = real_symbols("g1:4")
    v = real_symbols("v1:4")
    y = positive_symbols("y1:4")
    p = positive_symbols("p1:4")
    q = positive_symbols("q1:4")
    dv_loss = -dv_objective(g, p, q)
    exps = [qi * yi for qi, yi in zip(q, y, strict=True)]
    w = [e / sp.Add(*exps) for e in exps]
    centre = sp.Add(*(wi * vi for wi, vi in zip(w, v, strict=True)))
    dv_sos = sp.Add(*(wi * (vi - centre) ** 2 for wi, vi in zip(w, v, strict=True)))
    dv_form = _as_rational(_quadratic_form(dv_loss, g, v), g, y)
    require(_rational_zero(dv_form - dv_sos), "DV Hessian = sum of squares")
    require(dv_sos.is_nonnegative, "DV quadratic form >= 0")

    spin_sos = sp.Add(
        *(
            pi * qj * (yj / yi) / (1 + yj / yi) ** 2 * (vi - vj) ** 2  # σ'(g_j − g_i)
            for yi, pi, vi in zip(y, p, v, strict=True)
            for yj, qj, vj in zip(y, q, v, strict=True)
        )
    )
    spin_form = _as_rational(_quadratic_form(spin_population_loss(g, p, q), g, v), g, y)
    require(not spin_form.has(*g), "SPIN Hessian rational in e^g")
    require(_rational_zero(spin_form - spin_sos), "SPIN Hessian = sum of squares")
    require(spin_sos.is_nonnegative, "SPIN quadratic form >= 0")


def spin_population_loss(g, p, q):
    """`E_{y∼P, y'∼Q} softplus(−(g(y) − g(y')))` (SPIN's pair loss with β absorbed in g)."""
    return sp.Add(
        *(
            pi * qj * softplus(-(gi - gj))
            for gi, pi in zip(g, p, strict=True)
            for gj, qj in zip(g, q, strict=True)
        )
    )


@claim(
    source="[secondary] objective.md 'Regimes' α = 2 ↔ χ² (SPIF); [choice] SPIF's critic",
    method="symbolic",
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[pearson_chi2_variational]",
        f"{LOSS_TESTS}::test_spif_pearson_value",
    ),
)
def pearson_chi2_variational() -> None:
    """sup_T E_P T − E_Q(T + T²/4) = χ²(P‖Q), attained at T* = 2(P/Q − 1) = 2(e^{g*} − 1);
    SPIF's bounded critic T = 2(e^{c tanh(r/c)} − 1) equals T*(r) up to O(r³) and as c → ∞.

    Source: [secondary] objective.md "Regimes in α" (α = 2 ↔ χ²) and "Baselines" (SPIF);
    the critic is this project's [choice] (iris/losses/_spif.py). Proof: the form is a sum
    over outcomes of p T − q(T + T²/4), concave in T (second derivative −q/2), stationary at
    T* = 2(p/q − 1) with value (p − q)²/q. With theory.special_orders.order_two_chi_square,
    sup_g J_2 = R_2 = ½ log(1 + χ²): IRIS at α = 2 and SPIF estimate monotonically related
    divergences with the same optimal log-ratio g* = log(P/Q) — a regime, not the same loss.
    The critic T(r) is > −2 for all r, matches T*(r) = 2(e^r − 1) through order r² but not
    r³ (coefficient differs by −2/(3c²)), and → T*(r) as c → ∞; so the SPIF value is a
    lower bound on χ², equal to it when c tanh(r/c) = log(P/Q). Checked symbolically.
    General n: the form's stationarity at T*, its curvature (second directional derivative
    −Σ_i q_i v_i²/2 ≤ 0, so concave) and its value χ² are checked with indexed sums over n
    outcomes, n symbolic; the critic statements are about one scalar r.
    Enforced by tests/test_theory.py::test_claim[pearson_chi2_variational] and
    tests/test_theory_losses.py::test_spif_pearson_value.
    """
    p = positive_symbols("p1:4")
    q = positive_symbols("q1:4")
    t = real_symbols("T1:4")
    form = pearson_objective(t, p, q)
    optimum = {ti: 2 * (pi / qi - 1) for ti, pi, qi in zip(t, p, q, strict=True)}
    for ti, qi in zip(t, q, strict=True):
        require_identity(sp.diff(form, ti).subs(optimum), 0, "Pearson stationary")
        require_identity(sp.diff(form, ti, 2), -qi / 2, "Pearson concave")
    require_identity(form.subs(optimum), chi_square(p, q), "Pearson value = chi2")
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, tb, v = G.positive_base("p"), G.positive_base("q"), G.real_base("T"), G.real_base("v")
    P_, Q_ = (lambda j: pb[j]), (lambda j: qb[j])
    s_ = sp.Symbol("t", real=True)
    form = G.pearson_objective(lambda j: tb[j], P_, Q_)
    best = lambda j: 2 * (pb[j] / qb[j] - 1)  # noqa: E731
    G.require_zero(G.on_index(G.partial(form, tb), tb, best), "Pearson stationary")
    along = G.on_index(form, tb, lambda j: tb[j] + s_ * v[j])
    curvature = sp.diff(along, s_, 2).subs(s_, 0)
    G.require_zero(curvature + G.total(qb[G.IX] * v[G.IX] ** 2) / 2, "Pearson curvature")
    require((-G.total(qb[G.IX] * v[G.IX] ** 2) / 2).is_nonpositive, "concave (general n)")
    chi2 = G.total((pb[G.IX] - qb[G.IX]) ** 2 / qb[G.IX])
    G.require_zero(G.on_index(form, tb, best) - chi2, "Pearson value = chi2")

    r = sp.Symbol("r", real=True)
    (bound,) = positive_symbols("c")
    optimal_critic = 2 * (sp.exp(r) - 1)
    critic = spif_critic(r, bound)
    require((critic + 2).is_positive, "SPIF critic > -2")
    require_identity(series_terms(critic - optimal_critic, r, 2), 0, "T = T* + O(r^3)")
    third = sp.expand(series_terms(critic - optimal_critic, r, 3)).coeff(r, 3)
    require_identity(third, -2 / (3 * bound**2), "r^3 coefficient of T - T*")
    require_identity(sp.limit(critic, bound, sp.oo), optimal_critic, "T -> T* as c -> oo")


@claim(
    source="[choice] iris/losses/_spif.py: SPIF as the linearisation of IRIS at α = 2",
    method="symbolic",
    theorems=("the limit of a finite sum is the sum of the limits",),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[spif_linearises_order_two]",
        f"{LOSS_TESTS}::test_spif_weights_are_scaled_order_two_weights",
    ),
)
def spif_linearises_order_two() -> None:
    """Unbounded SPIF (c → ∞) has weights 2A·w⁺ and 2C·w⁻ with (w⁺, w⁻) the IRIS α = 2
    weights, A = mean e^{βr⁺}, C = mean e^{2βr⁻}; its loss is 2 L_2 + O((A−1)² + (C−1)²).

    Source: [choice] (this project's SPIF form, iris/losses/_spif.py) and [derived]. With
    c → ∞ the SPIF loss is −2A + C + 1, while L_2 = −log A + ½ log C. So the two have the
    same per-side weighting profile (∝ e^{r⁺} annotated, ∝ e^{2r⁻} synthetic), rescaled by
    the data-dependent factors 2A and 2C, and agree to first order around A = C = 1 (which
    holds at the fixed point). Exact for the profile, approximate for the loss: a regime.
    Checked symbolically with three samples per side, β > 0.
    General n (n samples per side, n symbolic): the c → ∞ limit is taken per term — the
    summands T(βa_i) and T(βb_i) + T(βb_i)²/4 tend to 2(e^{βa_i} − 1) and e^{2βb_i} − 1
    (sympy `limit` of the generic term) and a finite sum of convergent terms converges to
    the sum of the limits [stated: linearity of limits] — and the weights are compared with
    indexed sums; the last step is about the two scalars A, C.
    Enforced by tests/test_theory.py::test_claim[spif_linearises_order_two] and
    tests/test_theory_losses.py::test_spif_weights_are_scaled_order_two_weights.
    """
    real = real_symbols("a1:4")
    generated = real_symbols("b1:4")
    (beta,) = positive_symbols("beta")
    (bound,) = positive_symbols("c")
    unbounded = sp.limit(spif_batch_loss(real, generated, beta, bound), bound, sp.oo)
    a = mean([sp.exp(beta * r) for r in real])
    c = mean([sp.exp(2 * beta * r) for r in generated])
    require_identity(unbounded, -2 * a + c + 1, "SPIF at c -> oo")
    spif_real, spif_generated = _weights(unbounded, real, generated, beta)
    iris_real, iris_generated = _weights(
        iris_batch_loss(real, generated, 2, beta), real, generated, beta
    )
    for s, w in zip(spif_real, iris_real, strict=True):
        require_identity(s, 2 * a * w, "annotated weights")
    for s, w in zip(spif_generated, iris_generated, strict=True):
        require_identity(s, 2 * c * w, "synthetic weights")
    x, y, eps = real_symbols("x y epsilon")
    l2 = -sp.log(1 + eps * x) + sp.log(1 + eps * y) / 2  # L_2 at A = 1 + εx, C = 1 + εy
    spif = -2 * (1 + eps * x) + (1 + eps * y) + 1
    require_identity(series_terms(spif - 2 * l2, eps, 1), 0, "SPIF = 2 L_2 + O(eps^2)")
    # General n (theory.general): n samples per side, n symbolic.
    a_b, b_b, general = general_batch_losses(2, beta, sp.Integer(1), bound)
    a_i, b_i = a_b[G.IX], b_b[G.IX]
    t_real, t_generated = spif_critic(beta * a_i, bound), spif_critic(beta * b_i, bound)
    G.require_zero(sp.limit(t_real, bound, sp.oo) - 2 * (sp.exp(beta * a_i) - 1), "T(beta a)")
    limit_generated = sp.limit(t_generated + t_generated**2 / 4, bound, sp.oo)
    G.require_zero(limit_generated - (sp.exp(2 * beta * b_i) - 1), "T + T^2/4 at c -> oo")
    mean_a = G.total(sp.exp(beta * a_i)) / G.N
    mean_c = G.total(sp.exp(2 * beta * b_i)) / G.N
    unbounded = (
        -G.total(2 * (sp.exp(beta * a_i) - 1)) / G.N + G.total(sp.exp(2 * beta * b_i) - 1) / G.N
    )
    G.require_zero(unbounded - (-2 * mean_a + mean_c + 1), "SPIF at c -> oo")
    spif_weights = _general_weights(unbounded, a_b, b_b, beta)
    iris_weights = _general_weights(general["iris"], a_b, b_b, beta)
    for s_w, i_w, scale in zip(spif_weights, iris_weights, (mean_a, mean_c), strict=True):
        G.require_zero(s_w - 2 * scale * i_w, "SPIF weights = 2 x IRIS alpha = 2 weights")


@claim(
    source="[derived] objective.md 'Regimes' α = ½ ↔ SPACE (JS/NCE-style)",
    method="symbolic",
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[space_jensen_shannon]",
        f"{LOSS_TESTS}::test_space_jensen_shannon_value",
    ),
)
def space_jensen_shannon() -> None:
    """min_u E_P softplus(−u) + E_Q softplus(u) = 2 log 2 − 2 JS(P, Q), attained at u = log(P/Q).

    Source: [derived] objective.md "Regimes in α" (α = ½ ↔ SPACE). SPACE with μ = 1 is the
    NCE / GAN-discriminator loss; its optimum is the Jensen–Shannon divergence, while IRIS at
    α = ½ gives R_½ = −4 log BC (theory.special_orders.half_order_bhattacharyya). Both are
    symmetric divergences with the same optimal discriminator: a regime, not an identity.
    Proof: pointwise, p softplus(−u) + q softplus(u) is convex with minimiser e^u = p/q and
    minimum −p log(p/(p+q)) − q log(q/(p+q)); summing with Σp = Σq = 1 gives the JS form.
    Checked symbolically with normalised 3-atom P, Q.
    General n: stationarity and the value are checked with indexed sums over n outcomes,
    n symbolic (Σp = Σq = 1); convexity is that of shared_optimal_discriminator's SPACE
    loss at μ = 1 (positive curvature of every summand).
    Enforced by tests/test_theory.py::test_claim[space_jensen_shannon] and
    tests/test_theory_losses.py::test_space_jensen_shannon_value.
    """
    p = simplex_point("s", 3)
    q = simplex_point("t", 3)
    u = real_symbols("u1:4")
    loss = sp.Add(
        *(pi * softplus(-ui) + qi * softplus(ui) for ui, pi, qi in zip(u, p, q, strict=True))
    )
    optimum = {ui: sp.log(pi / qi) for ui, pi, qi in zip(u, p, q, strict=True)}
    for ui in u:
        require_identity(sp.diff(loss, ui).subs(optimum), 0, "SPACE stationary")
    require_identity(
        loss.subs(optimum), 2 * sp.log(2) - 2 * jensen_shannon(p, q), "SPACE value = JS form"
    )
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, ub = G.positive_base("p"), G.positive_base("q"), G.real_base("u")
    p_i, q_i, u_i = pb[G.IX], qb[G.IX], ub[G.IX]
    normalised = {G.total(p_i): 1, G.total(q_i): 1}
    loss = G.total(p_i * softplus(-u_i) + q_i * softplus(u_i))
    best = lambda j: sp.log(pb[j] / qb[j])  # noqa: E731
    G.require_zero(G.on_index(G.partial(loss, ub), ub, best), "SPACE stationary")
    js = G.jensen_shannon(lambda j: pb[j], lambda j: qb[j])
    value = G.on_index(loss, ub, best)
    G.require_zero(value - (2 * sp.log(2) - 2 * js), "SPACE value = JS form", normalised)
