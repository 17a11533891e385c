"""Claim 6: properties of the tilted risk `TR_τ(ℓ; π) = (1/τ) log(Σ π_i e^{τℓ_i} / Σ π_i)`.

TERM (Li et al. 2021). The IRIS loss is a sum of two tilted risks (objective.md, "Tilted
risk"), and the global-maximum part of the Rényi–DV claim (theory.rdv) rests on the
monotonicity in τ proved here. Claims are checked on three generic losses ℓ_1..ℓ_3 (real
symbols) with generic positive base weights π_1..π_3 (the batch version is π uniform).
"""

from __future__ import annotations

import functools

import sympy as sp

from theory import general as G
from theory.checks import positive_symbols, real_symbols, require, require_identity, series_terms
from theory.divergences import (
    expectation,
    kl_divergence,
    tilted_risk,
    tilted_weights,
    variance,
)
from theory.registry import claim

CLAIM_TEST = "tests/test_theory.py::test_claim"
LOSS_TESTS = "tests/test_theory_losses.py"


def _setting():
    losses = real_symbols("l1:4")
    base = positive_symbols("pi1:4")
    tau = sp.Symbol("tau", real=True, nonzero=True)
    return losses, base, tau


@functools.cache  # a proof that succeeded once (exceptions are not cached)
def gibbs_function_certificate() -> None:
    """Every step of f(x) = x − 1 − log x = (x − 1)² h(x) with h(x) > 0 for x > 0 (sympy).

    (1) f(x) = ∫_1^x (1 − 1/t) dt (sympy integrates); (2) with t = 1 + u(x − 1), u ∈ [0, 1]
    (change of variables, dt = (x − 1) du) the integrand becomes (x − 1)² u/(1 + u(x − 1)),
    an identity in u, x; (3) h(x) = ∫_0^1 u/(1 + u(x − 1)) du has a positive integrand on
    u ∈ (0, 1): with u = s/(1 + s), s > 0, it is s/(1 + s x) > 0 by the assumptions. So
    f ≥ 0, with equality iff x = 1 — a sum-of-squares certificate for Gibbs' inequality.
    """
    x, t, u, s = positive_symbols("x t u s")
    f = x - 1 - sp.log(x)
    require_identity(sp.integrate(1 - 1 / t, (t, 1, x)), f, "f = integral of 1 - 1/t")
    substituted = (1 - 1 / (1 + u * (x - 1))) * (x - 1)  # integrand · dt/du
    require_identity(substituted, (x - 1) ** 2 * u / (1 + u * (x - 1)), "t = 1 + u(x - 1)")
    integrand = sp.simplify((u / (1 + u * (x - 1))).subs(u, s / (1 + s)))
    require(integrand.is_positive, "h's integrand > 0 on u in (0, 1)")


@functools.cache  # a proof that succeeded once (exceptions are not cached)
def tilt_derivative_nonnegative() -> None:
    """Every step of d/dτ TR_τ(ℓ; π) = KL(w_τ ‖ π̄)/τ² ≥ 0, for n atoms, n symbolic (sympy).

    ℓ_i real, π_i > 0, τ real ≠ 0, w_τ ∝ π e^{τℓ}, π̄ = π/Σπ, sums over i = 1..n
    (theory.general). (1) the derivative identity; (2) KL(w‖π̄) = Σ_i w_i f(π̄_i/w_i), an
    identity (the correction Σw − Σπ̄ is 0); (3) f(x) = (x − 1)² h(x), h > 0
    (gibbs_function_certificate); (4) with H_i > 0 standing for h(π̄_i/w_i),
    Σ_i w_i (π̄_i/w_i − 1)² H_i / τ² and the derivative at τ = 0, Var_π(ℓ)/2 =
    Σ_i π_i (ℓ_i − m)²/(2Σπ), are decided ≥ 0 by sympy's assumption system (positive
    weights times squares of reals). Other claims apply this to their own ℓ, π by
    substitution, after checking the substituted π is positive and ℓ real.
    """
    ell, base, h = G.real_base("l"), G.positive_base("pi"), G.positive_base("H")
    tau = sp.Symbol("tau", real=True, nonzero=True)
    x = sp.Symbol("x", positive=True)
    f = x - 1 - sp.log(x)
    z = G.total(base[G.IX] * sp.exp(tau * ell[G.IX]))
    mass = G.total(base[G.IX])
    w_i = base[G.IX] * sp.exp(tau * ell[G.IX]) / z
    normalised_i = base[G.IX] / mass
    kl = G.total(w_i * sp.log(w_i / normalised_i))
    value = G.tilted_risk(lambda j: ell[j], tau, lambda j: base[j])
    G.require_zero(sp.diff(value, tau) - kl / tau**2, "dTR/dtau = KL/tau^2")
    G.require_zero(kl - G.total(w_i * f.subs(x, normalised_i / w_i)), "KL = sum w f(pi/w)")
    gibbs_function_certificate()
    certificate = G.total(w_i * (normalised_i / w_i - 1) ** 2 * h[G.IX]) / tau**2
    require(certificate.is_nonnegative, "sum of w (pi/w - 1)^2 h / tau^2 >= 0")
    centre = G.total(base[G.IX] * ell[G.IX]) / mass
    half_variance = G.total(base[G.IX] * (ell[G.IX] - centre) ** 2) / (2 * mass)
    require(half_variance.is_nonnegative, "Var/2 >= 0 (derivative at tau = 0)")


def require_substitutable(base, losses) -> None:
    """The values substituted for π (positive) and ℓ (real) satisfy the symbols' assumptions."""
    for b in base:
        require(sp.sympify(b).is_positive, f"base weight {b} > 0")
    for value in losses:
        require(sp.sympify(value).is_extended_real, f"loss {value} real")


@claim(
    source="[derived] objective.md 'Tilted risk': gradient of TR is softmax-weighted",
    method="symbolic",
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[tilted_risk_gradient_is_softmax]",
        f"{LOSS_TESTS}::test_tilted_risk_gradient_is_softmax_autograd",
    ),
)
def tilted_risk_gradient_is_softmax() -> None:
    """∂TR_τ(ℓ; π)/∂ℓ_i = π_i e^{τℓ_i} / Σ_j π_j e^{τℓ_j}; for uniform π this is softmax(τℓ)_i.

    Source: [derived] objective.md "Tilted risk" (TERM, Li et al. 2021): `∇TR_τ = Σ w_i ∇ℓ_i`,
    `w = softmax(τℓ)`; the weights do not depend on the 1/n of the mean. Checked for three
    symbolic losses, any real τ ≠ 0, generic positive π and for π uniform.
    General n: also checked with indexed sums over n atoms, n symbolic (theory.general).
    Enforced by tests/test_theory.py::test_claim[tilted_risk_gradient_is_softmax] and
    tests/test_theory_losses.py::test_tilted_risk_gradient_is_softmax_autograd (autograd of
    `iris.losses.tilted_risk` against `softmax(τℓ)`).
    """
    losses, base, tau = _setting()
    for weights in (base, None):
        value = tilted_risk(losses, tau, weights)
        w = tilted_weights(losses, tau, weights)
        for li, wi in zip(losses, w, strict=True):
            require_identity(sp.diff(value, li), wi, f"dTR/d{li} (weights={weights})")
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    ell, base = G.real_base("l"), G.positive_base("pi")
    value = G.tilted_risk(lambda j: ell[j], tau, lambda j: base[j])
    weight = base[G.K] * sp.exp(tau * ell[G.K]) / G.total(base[G.IX] * sp.exp(tau * ell[G.IX]))
    G.require_zero(G.partial(value, ell) - weight, "dTR/dl_k")


@claim(
    source="[derived] objective.md 'Tilted risk': TR_0 = mean",
    method="symbolic",
    theorems=("Taylor's theorem (per-term series of a finite sum)",),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[tilted_risk_small_tilt]",
        f"{LOSS_TESTS}::test_tilted_risk_small_tilt_matches_mean_plus_half_variance",
    ),
)
def tilted_risk_small_tilt() -> None:
    """lim_{τ→0} TR_τ(ℓ; π) = E_π ℓ and TR_τ(ℓ; π) = E_π ℓ + (τ/2) Var_π ℓ + O(τ²).

    Source: [derived] objective.md "Tilted risk" (`TR_0(ℓ) = mean(ℓ)`); the expansion is the
    cumulant series of log E_π e^{τℓ}. So τ = 0 is a removable singularity whose value is
    the mean, and the first-order term is half the variance. For the annotated IRIS term,
    τ = 1 − α and ℓ = −r⁺ (see theory.limits.alpha_one_objective_limit).
    Checked with `limit` and `series` for three symbolic losses, uniform and generic π.
    General n (theory.general.sum_series, n symbolic): (1) per term π_i e^{τℓ_i} =
    π_i (1 + τℓ_i + τ²ℓ_i²/2) + O(τ³) (sympy `series` of the generic term); (2) linearity of
    finite sums; (3) `series` of (1/τ) log(Σ…/Σπ) in the three sums as symbols, the
    remainder checked not to reach order τ; the result equals Σπℓ/Σπ +
    (τ/2) Σπ(ℓ − m)²/Σπ (identity of indexed sums). The limit is the τ⁰ term (no pole).
    Enforced by tests/test_theory.py::test_claim[tilted_risk_small_tilt] and
    tests/test_theory_losses.py::test_tilted_risk_small_tilt_matches_mean_plus_half_variance.
    """
    losses, base, tau = _setting()
    uniform = [sp.Integer(1)] * len(losses)
    for weights in (uniform, base):
        value = tilted_risk(losses, tau, weights)
        centre = expectation(weights, losses) / sp.Add(*weights)
        require_identity(sp.limit(value, tau, 0), centre, "limit tau->0 of TR")
        expansion = series_terms(value, tau, 1)
        require_identity(expansion, centre + tau / 2 * variance(losses, weights), "series of TR")
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    ell, base = G.real_base("l"), G.positive_base("pi")
    value = G.tilted_risk(lambda j: ell[j], tau, lambda j: base[j])
    expansion = G.sum_series(value, tau, 1, 2)
    mass = G.total(base[G.IX])
    centre = G.total(base[G.IX] * ell[G.IX]) / mass
    spread = G.total(base[G.IX] * (ell[G.IX] - centre) ** 2) / mass
    G.require_zero(expansion - (centre + tau / 2 * spread), "series of TR in tau")


@claim(
    source="[derived] objective.md 'Tilted risk': TR_τ(ℓ + c) = TR_τ(ℓ) + c",
    method="symbolic",
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[tilted_risk_shift_equivariance]",
        f"{LOSS_TESTS}::test_tilted_risk_monotone_and_bounded",
    ),
)
def tilted_risk_shift_equivariance() -> None:
    """TR_τ(ℓ + c; π) = TR_τ(ℓ; π) + c for every constant c, and the weights are unchanged.

    Source: [derived] objective.md "Tilted risk". This is why −L_α is invariant to adding a
    constant to all rewards (theory.rdv.rdv_shift_invariance): the shift enters both tilted
    risks with opposite signs. Checked for symbolic ℓ, c, π and τ ≠ 0.
    General n: also checked with indexed sums over n atoms, n symbolic (theory.general).
    Enforced by tests/test_theory.py::test_claim[tilted_risk_shift_equivariance] and
    tests/test_theory_losses.py::test_tilted_risk_monotone_and_bounded.
    """
    losses, base, tau = _setting()
    c = sp.Symbol("c", real=True)
    shifted = [li + c for li in losses]
    require_identity(
        tilted_risk(shifted, tau, base), tilted_risk(losses, tau, base) + c, "TR(l + c)"
    )
    weights = zip(
        tilted_weights(shifted, tau, base), tilted_weights(losses, tau, base), strict=True
    )
    for a, b in weights:
        require_identity(a, b, "weights of l + c")
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    ell, base = G.real_base("l"), G.positive_base("pi")
    value = G.tilted_risk(lambda j: ell[j], tau, lambda j: base[j])
    shifted_value = G.tilted_risk(lambda j: ell[j] + c, tau, lambda j: base[j])
    G.require_zero(shifted_value - value - c, "TR(l + c)")


@claim(
    source="[derived] needed for monotonicity of TR in τ",
    method="symbolic",
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[tilted_risk_tilt_derivative_is_kl]",
        f"{LOSS_TESTS}::test_tilted_risk_tilt_derivative_matches_kl",
    ),
)
def tilted_risk_tilt_derivative_is_kl() -> None:
    """d/dτ TR_τ(ℓ; π) = KL(w_τ ‖ π̄) / τ², with w_τ ∝ π e^{τℓ} and π̄ = π / Σπ.

    Source: [derived]. Proof: d/dτ[(1/τ) log Z_τ] = E_{w_τ}ℓ/τ − log Z_τ/τ² and
    KL(w_τ‖π̄) = Σ w_τ (τℓ − log Z_τ) = τ E_{w_τ}ℓ − log Z_τ (Z_τ = E_π̄ e^{τℓ}). With
    theory.tilted_risk.gibbs_inequality (KL ≥ 0) TR is nondecreasing in τ, strictly unless
    ℓ is constant (KL = 0 iff w_τ = π̄). Checked for symbolic ℓ, π and τ ≠ 0.
    General n: also checked with indexed sums over n atoms, n symbolic (theory.general).
    Enforced by tests/test_theory.py::test_claim[tilted_risk_tilt_derivative_is_kl] and
    tests/test_theory_losses.py::test_tilted_risk_tilt_derivative_matches_kl.
    """
    losses, base, tau = _setting()
    w = tilted_weights(losses, tau, base)
    normalised = [b / sp.Add(*base) for b in base]
    require_identity(
        sp.diff(tilted_risk(losses, tau, base), tau),
        kl_divergence(w, normalised) / tau**2,
        "dTR/dtau",
    )
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    ell, base = G.real_base("l"), G.positive_base("pi")
    value = G.tilted_risk(lambda j: ell[j], tau, lambda j: base[j])
    z = G.total(base[G.IX] * sp.exp(tau * ell[G.IX]))
    w_i = base[G.IX] * sp.exp(tau * ell[G.IX]) / z
    kl = G.total(w_i * sp.log(w_i * G.total(base[G.IX]) / base[G.IX]))
    G.require_zero(sp.diff(value, tau) - kl / tau**2, "dTR/dtau")


@claim(
    source="[derived] standard lemma (Gibbs' inequality)",
    method="symbolic",
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[gibbs_inequality]",
        f"{LOSS_TESTS}::test_tilted_risk_tilt_derivative_matches_kl",
    ),
)
def gibbs_inequality() -> None:
    """KL(w‖π) ≥ 0 for probability vectors w, π, with equality iff w = π.

    Source: [derived] (standard). Proof: f(x) = x − 1 − log x has f(1) = 0, f'(1) = 0 and
    f''(x) = 1/x² > 0 on x > 0, so f ≥ 0 with equality only at x = 1; and for positive
    weights KL(w‖π) = Σ_i w_i f(π_i/w_i) + (Σ w − Σ π), whose last bracket is 0 for
    probability vectors. The identity is checked for three generic positive w, π; the
    properties of f with sympy's assumption system, and f ≥ 0 itself by the certificate
    f(x) = (x − 1)² ∫_0^1 u/(1 + u(x − 1)) du with a positive integrand
    (gibbs_function_certificate, every step checked by sympy).
    General n: also checked with indexed sums over n atoms, n symbolic (theory.general).
    Enforced by tests/test_theory.py::test_claim[gibbs_inequality] and
    tests/test_theory_losses.py::test_tilted_risk_tilt_derivative_matches_kl.
    """
    x = sp.Symbol("x", positive=True)
    f = x - 1 - sp.log(x)
    require_identity(f.subs(x, 1), 0, "f(1)")
    require_identity(sp.diff(f, x).subs(x, 1), 0, "f'(1)")
    require(sp.diff(f, x, 2).is_positive, "f'' > 0 on x > 0")
    w = positive_symbols("w1:4")
    pi = positive_symbols("pi1:4")
    rhs = (
        sp.Add(*(wi * f.subs(x, pii / wi) for wi, pii in zip(w, pi, strict=True)))
        + sp.Add(*w)
        - sp.Add(*pi)
    )
    require_identity(kl_divergence(w, pi), rhs, "KL as a sum of f(pi/w)")
    gibbs_function_certificate()
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    wb, pb = G.positive_base("w"), G.positive_base("pi")
    w_i, pi_i = wb[G.IX], pb[G.IX]
    kl = G.total(w_i * sp.log(w_i / pi_i))
    rhs = G.total(w_i * f.subs(x, pi_i / w_i)) + G.total(w_i) - G.total(pi_i)
    G.require_zero(kl - rhs, "KL as a sum of f(pi/w)")


@claim(
    source="[derived] objective.md 'Tilted risk': min ≤ TR ≤ max, nondecreasing, limits ±∞",
    method="symbolic",
    theorems=(
        "mean-value theorem",
        "squeeze theorem",
    ),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[tilted_risk_monotone_and_bounded]",
        f"{LOSS_TESTS}::test_tilted_risk_monotone_and_bounded",
    ),
)
def tilted_risk_monotone_and_bounded() -> None:
    """TR_τ(ℓ) is nondecreasing in τ, → max ℓ as τ → +∞, → min ℓ as τ → −∞; so min ≤ TR ≤ max.

    Source: [derived] objective.md "Tilted risk". Monotone, proved here step by step for
    n atoms, n symbolic (tilt_derivative_nonnegative): for τ ≠ 0, d/dτ TR_τ = KL(w_τ‖π̄)/τ² =
    Σ_i w_i (π̄_i/w_i − 1)² h(π̄_i/w_i)/τ² with h > 0, a sum of nonnegative terms; at τ = 0 the
    derivative is Var_π(ℓ)/2 (tilted_risk_small_tilt) = Σ π_i (ℓ_i − m)²/(2Σπ) ≥ 0, a sum of
    squares (checked). TR_τ is C¹ in τ (analytic, with the removable point τ = 0), so by the
    mean-value theorem [stated theorem] a nonnegative derivative makes it nondecreasing.
    Limits, for n atoms, n symbolic (tilted_risk_limits, every step checked by sympy or a
    stated theorem): with M = max ℓ = ℓ_m write ℓ_i = M − d_i, d_i ≥ 0, d_m = 0;
    (1) TR_τ(ℓ) = M + TR_τ(−d) (identity); for τ > 0:
    (2) upper bound: TR_τ(−d) = −log(1 + V)/τ with V = Σ_i π_i u_i / Σ_i π_i e^{−τd_i},
        u_i = 1 − e^{−τd_i} = ∫_0^{τd_i} e^{−s} ds ≥ 0 (identities; ≥ 0 by assumptions), so
        TR_τ(−d) ≤ 0;
    (3) lower bound: Σ_i π_i e^{−τd_i} = π_m + R with R ≥ 0 the sum over the other atoms
        [a sum of positive terms], and TR_τ(−d) − log(π_m/Σπ)/τ = log(1 + R/π_m)/τ ≥ 0;
    (4) log(π_m/Σπ)/τ → 0 as τ → +∞ (`limit`), so TR_τ(ℓ) → M [stated: squeeze theorem];
    (5) TR_{−τ}(ℓ) = −TR_τ(−ℓ) (identity), so TR_τ(ℓ) → −max(−ℓ) = min ℓ as τ → −∞.
    The limits are also checked with `limit` on three sorted losses (0, d_1, d_1 + d_2),
    d_i > 0 (gruntz needs the sign of each exponent). The bounds follow:
    TR_{−∞} ≤ TR_τ ≤ TR_{+∞}.
    Enforced by tests/test_theory.py::test_claim[tilted_risk_monotone_and_bounded] and
    tests/test_theory_losses.py::test_tilted_risk_monotone_and_bounded.
    """
    d1, d2 = positive_symbols("d1 d2")
    tau = sp.Symbol("tau", real=True, nonzero=True)
    sorted_losses = [sp.Integer(0), d1, d1 + d2]
    for weights in (None, positive_symbols("pi1:4")):
        value = tilted_risk(sorted_losses, tau, weights)
        require_identity(sp.limit(value, tau, sp.oo), d1 + d2, "TR at tau -> +oo")
        require_identity(sp.limit(value, tau, -sp.oo), 0, "TR at tau -> -oo")
    tilt_derivative_nonnegative()
    losses = real_symbols("l1:4")
    base = positive_symbols("pi1:4")
    require(variance(losses, base).is_nonnegative, "Var >= 0 (derivative at tau = 0)")
    tilted_risk_limits()


def tilted_risk_limits() -> None:
    """TR_τ(ℓ) → max ℓ (τ → +∞) and → min ℓ (τ → −∞) for n atoms, n symbolic: the steps
    (1)–(5) of tilted_risk_monotone_and_bounded's docstring, each checked here."""
    d = sp.IndexedBase("d", nonnegative=True)
    u = sp.IndexedBase("u", nonnegative=True)
    ell, base = G.real_base("l"), G.positive_base("pi")
    top = sp.Symbol("M", real=True)
    tau = sp.Symbol("tau", positive=True)
    s = sp.Symbol("s", real=True)
    pi_m, mass = positive_symbols("pi_m Pi")  # π_m and Σ_i π_i
    other = sp.Symbol("R", nonnegative=True)  # Σ_{i ≠ m} π_i e^{−τd_i}
    pi_ = lambda j: base[j]  # noqa: E731
    down = G.tilted_risk(lambda j: -d[j], tau, pi_)
    # (1) shift: TR(M − d) = M + TR(−d).
    G.require_zero(G.tilted_risk(lambda j: top - d[j], tau, pi_) - top - down, "TR(M - d)")
    # (2) upper bound.
    decay = G.total(base[G.IX] * sp.exp(-tau * d[G.IX]))
    G.require_zero(down + sp.log(G.total(base[G.IX]) / decay) / tau, "TR(-d) = -log(1+V)/tau")
    G.require_zero(
        G.total(base[G.IX]) / decay
        - 1
        - G.total(base[G.IX] * (1 - sp.exp(-tau * d[G.IX]))) / decay,
        "1 + V = sum pi / sum pi e^(-tau d)",
    )
    x = sp.Symbol("x", nonnegative=True)
    require_identity(sp.integrate(sp.exp(-s), (s, 0, x)), 1 - sp.exp(-x), "1 - e^-x = int e^-s")
    require(sp.exp(-s).is_positive, "e^-s > 0")
    v = G.total(base[G.IX] * u[G.IX]) / decay
    require((-sp.log(1 + v) / tau).is_nonpositive, "TR(-d) = -log(1 + V)/tau <= 0")
    # (3) lower bound.
    require_identity(
        sp.log((pi_m + other) / mass) / tau - sp.log(pi_m / mass) / tau,
        sp.log(1 + other / pi_m) / tau,
        "TR(-d) - log(pi_m/sum pi)/tau",
    )
    require((sp.log(1 + other / pi_m) / tau).is_nonnegative, "lower bound gap >= 0")
    # (4) the lower bound tends to 0 (then the squeeze theorem, stated).
    require_identity(sp.limit(sp.log(pi_m / mass) / tau, tau, sp.oo), 0, "log(pi_m/Pi)/tau -> 0")
    # (5) reflection: TR_{−τ}(ℓ) = −TR_τ(−ℓ).
    sigma = sp.Symbol("sigma", real=True, nonzero=True)
    G.require_zero(
        G.tilted_risk(lambda j: ell[j], -sigma, pi_) + G.tilted_risk(lambda j: -ell[j], sigma, pi_),
        "TR_(-tau)(l) = -TR_tau(-l)",
    )
