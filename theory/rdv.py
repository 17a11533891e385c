"""Claim 1: the Rényi–Donsker–Varadhan variational formula behind the IRIS objective.

`J_α(g; P, Q) = (1/(α−1)) log E_P e^{(α−1)g} − (1/α) log E_Q e^{αg}` (so L_α = −J_α) satisfies
`sup_g J_α = R_α(P‖Q) = D_α(P‖Q)/α`, attained exactly on `g = log(P/Q) + c`
(Birrell, Dupuis, Katsoulakis, Rey-Bellet, Wang 2021, arXiv 2007.03814; objective.md "IRIS").

Setting: three atoms with generic positive weights p_i, q_i (the algebra never uses
Σp = Σq = 1, so it holds for probability vectors in particular), generic real g_i, and a
real order α ∉ {0, 1} (negative orders included).
"""

from __future__ import annotations

import random

import mpmath
import sympy as sp

from theory import general as G
from theory.checks import positive_symbols, real_symbols, require, require_identity
from theory.divergences import rdv_objective, rescaled_renyi, tilted_risk, variance
from theory.registry import ClaimFailed, claim
from theory.tilted_risk import require_substitutable, tilt_derivative_nonnegative

CLAIM_TEST = "tests/test_theory.py::test_claim"
LOSS_TESTS = "tests/test_theory_losses.py"


def _setting():
    p = positive_symbols("p1:4")
    q = positive_symbols("q1:4")
    g = real_symbols("g1:4")
    alpha = sp.Symbol("alpha", real=True, nonzero=True)
    c = sp.Symbol("c", real=True)
    return p, q, g, alpha, c


def optimal_discriminator(p, q, c=0):
    """`g*_i = log(p_i / q_i) + c`, the maximiser of J_α for every α."""
    return [sp.log(pi / qi) + c for pi, qi in zip(p, q, strict=True)]


@claim(
    source="[paper] abstract: Rényi variational objective; [derived] Birrell et al. 2021",
    method="symbolic",
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[rdv_stationary_point]",
        f"{LOSS_TESTS}::test_iris_loss_at_log_ratio_equals_rescaled_renyi",
    ),
)
def rdv_stationary_point() -> None:
    """∂J_α/∂g_i = 0 at g = log(P/Q) + c, for every order α ∉ {0, 1} and every constant c.

    Source: [paper] (IRIS is a Rényi variational objective) and [derived] from Birrell et al.
    2021. Proof: ∂J_α/∂g_i = w⁺_i − w⁻_i with w⁺ ∝ p e^{(α−1)g}, w⁻ ∝ q e^{αg}; at g* both
    are ∝ p^α q^{1−α}. Checked symbolically for three atoms with generic weights.
    General n: also checked with indexed sums over n atoms, n symbolic (theory.general).
    Enforced by tests/test_theory.py::test_claim[rdv_stationary_point] and
    tests/test_theory_losses.py::test_iris_loss_at_log_ratio_equals_rescaled_renyi (the
    autograd gradient of iris_loss at g* vanishes).
    """
    p, q, g, alpha, c = _setting()
    objective = rdv_objective(g, p, q, alpha)
    at_optimum = dict(zip(g, optimal_discriminator(p, q, c), strict=True))
    for gi in g:
        require_identity(sp.diff(objective, gi).subs(at_optimum), 0, f"dJ/d{gi} at g*")
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, gb = G.positive_base("p"), G.positive_base("q"), G.real_base("g")
    objective = G.rdv_objective(lambda j: gb[j], lambda j: pb[j], lambda j: qb[j], alpha)
    derivative = G.on_index(G.partial(objective, gb), gb, lambda j: sp.log(pb[j] / qb[j]) + c)
    G.require_zero(derivative, "dJ/dg_k at g*")


@claim(
    source="[derived] objective.md 'IRIS': R_α = D_α/α at g* = log dP/dQ",
    method="symbolic",
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[rdv_optimal_value]",
        f"{LOSS_TESTS}::test_iris_loss_at_log_ratio_equals_rescaled_renyi",
    ),
)
def rdv_optimal_value() -> None:
    """J_α(log(P/Q) + c; P, Q) = R_α(P‖Q) = D_α(P‖Q)/α = log Σ p^α q^{1−α} / (α(α−1)).

    Source: [derived] objective.md "IRIS: two independent tilted risks". Proof:
    Σ p e^{(α−1)g*} = e^{(α−1)c} S and Σ q e^{αg*} = e^{αc} S with S = Σ p^α q^{1−α}; the c's
    cancel and log S (1/(α−1) − 1/α) = log S/(α(α−1)). Checked symbolically.
    General n: also checked with indexed sums over n atoms, n symbolic (theory.general).
    Enforced by tests/test_theory.py::test_claim[rdv_optimal_value] and
    tests/test_theory_losses.py::test_iris_loss_at_log_ratio_equals_rescaled_renyi
    (−iris_loss on exact-expectation atoms equals R_α).
    """
    p, q, _, alpha, c = _setting()
    value = rdv_objective(optimal_discriminator(p, q, c), p, q, alpha)
    require_identity(value, rescaled_renyi(p, q, alpha), "J(g*) = R_alpha")
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb = G.positive_base("p"), G.positive_base("q")
    value = G.rdv_objective(
        lambda j: sp.log(pb[j] / qb[j]) + c, lambda j: pb[j], lambda j: qb[j], alpha
    )
    G.require_zero(value - G.rescaled_renyi(lambda j: pb[j], lambda j: qb[j], alpha), "J(g*)")


@claim(
    source="[derived] objective.md 'IRIS': invariant to adding a constant to all rewards",
    method="symbolic",
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[rdv_shift_invariance]",
        f"{LOSS_TESTS}::test_iris_loss_shift_invariant",
    ),
)
def rdv_shift_invariance() -> None:
    """J_α(g + c; P, Q) = J_α(g; P, Q) for every constant c (and every g, α).

    Source: [derived] objective.md "IRIS". Proof: g → g + c adds c to the first term and
    subtracts c from the second (tilted_risk_shift_equivariance). Hence the optimum is the
    whole line g* + c and −L_α does not depend on the reward offset. Checked symbolically.
    General n: also checked with indexed sums over n atoms, n symbolic (theory.general).
    Enforced by tests/test_theory.py::test_claim[rdv_shift_invariance] and
    tests/test_theory_losses.py::test_iris_loss_shift_invariant.
    """
    p, q, g, alpha, c = _setting()
    shifted = [gi + c for gi in g]
    require_identity(
        rdv_objective(shifted, p, q, alpha), rdv_objective(g, p, q, alpha), "J(g + c) = J(g)"
    )
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, gb = G.positive_base("p"), G.positive_base("q"), G.real_base("g")
    shifted_value = G.rdv_objective(lambda j: gb[j] + c, lambda j: pb[j], lambda j: qb[j], alpha)
    value = G.rdv_objective(lambda j: gb[j], lambda j: pb[j], lambda j: qb[j], alpha)
    G.require_zero(shifted_value - value, "J(g + c) = J(g)")


@claim(
    source="[derived] global maximality of g* (this project's proof)",
    method="symbolic",
    theorems=("fundamental theorem of calculus",),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[rdv_gap_decomposition]",
        f"{LOSS_TESTS}::test_iris_loss_below_bound_away_from_optimum",
    ),
)
def rdv_gap_decomposition() -> None:
    """J_α(g) = R_α(P‖Q) − [TR_α(h; π) − TR_{α−1}(h; π)] with h = g − log(P/Q), π ∝ p^α q^{1−α}.

    Source: [derived]. This identity proves that g* is the global maximiser for every
    α ∉ {0, 1}: the bracket is ∫_{α−1}^{α} (d/dτ) TR_τ(h; π) dτ (fundamental theorem of
    calculus [stated theorem]; TR_τ is C¹ in τ, τ = 0 included), and the integrand is ≥ 0:
    for τ ≠ 0 it is KL(w_τ‖π̄)/τ², a sum of terms w_i (π̄_i/w_i − 1)² h_i/τ² with h_i > 0
    (theory.tilted_risk.tilt_derivative_nonnegative, every step checked by sympy for generic
    ℓ, π and applied here by substitution ℓ := h, π_i := p_i^α q_i^{1−α}, whose positivity
    and realness are checked); at τ = 0 it is Var_π(h)/2 ≥ 0 (checked). So J_α(g) ≤ R_α(P‖Q)
    — the Rényi–DV bound, equivalently Hölder's inequality — with equality iff h is
    constant, i.e. g = log(P/Q) + c. No concavity is needed (J_α is not concave in g for
    α > 1). Checked symbolically for three atoms, generic g.
    General n: the identity is also checked with indexed sums over n atoms (theory.general),
    and tilt_derivative_nonnegative is itself proved for n atoms.
    Enforced by tests/test_theory.py::test_claim[rdv_gap_decomposition] and
    tests/test_theory_losses.py::test_iris_loss_below_bound_away_from_optimum.
    """
    p, q, _, alpha, _ = _setting()
    h = real_symbols("h1:4")
    g = [hi + gi for hi, gi in zip(h, optimal_discriminator(p, q), strict=True)]
    pi = [pi_**alpha * qi ** (1 - alpha) for pi_, qi in zip(p, q, strict=True)]
    gap = tilted_risk(h, alpha, pi) - tilted_risk(h, alpha - 1, pi)
    require_identity(rdv_objective(g, p, q, alpha), rescaled_renyi(p, q, alpha) - gap, "gap")
    require_substitutable(pi, h)
    tilt_derivative_nonnegative()
    require(variance(h, pi).is_nonnegative, "Var_pi(h) >= 0 (integrand at tau = 0)")
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, hb = G.positive_base("p"), G.positive_base("q"), G.real_base("h")
    P_, Q_ = (lambda j: pb[j]), (lambda j: qb[j])
    base = lambda j: pb[j] ** alpha * qb[j] ** (1 - alpha)  # noqa: E731
    bracket = G.tilted_risk(lambda j: hb[j], alpha, base) - G.tilted_risk(
        lambda j: hb[j], alpha - 1, base
    )
    objective = G.rdv_objective(lambda j: hb[j] + sp.log(pb[j] / qb[j]), P_, Q_, alpha)
    G.require_zero(objective - (G.rescaled_renyi(P_, Q_, alpha) - bracket), "gap")


def require_strict_maximum() -> None:
    """Steps (1)–(4) of rdv_global_maximum's docstring, for n atoms, n symbolic."""
    alpha = sp.Symbol("alpha", real=True, nonzero=True)
    pb, qb, hb = G.positive_base("p"), G.positive_base("q"), G.real_base("h")
    P_, Q_ = (lambda j: pb[j]), (lambda j: qb[j])
    base = lambda j: pb[j] ** alpha * qb[j] ** (1 - alpha)  # noqa: E731
    # (1) the gap identity and (3) the value at g*.
    bracket = G.tilted_risk(lambda j: hb[j], alpha, base) - G.tilted_risk(
        lambda j: hb[j], alpha - 1, base
    )
    objective = G.rdv_objective(lambda j: hb[j] + sp.log(pb[j] / qb[j]), P_, Q_, alpha)
    bound = G.rescaled_renyi(P_, Q_, alpha)
    G.require_zero(objective - (bound - bracket), "J = R - B")
    at_optimum = G.rdv_objective(lambda j: sp.log(pb[j] / qb[j]), P_, Q_, alpha)
    G.require_zero(at_optimum - bound, "J(g*) = R")
    require(base(G.K).is_positive, "pi_k = p_k^alpha q_k^(1-alpha) > 0 (general n)")
    # (2) the integrand is >= 0.
    tilt_derivative_nonnegative()
    # (4) strictness: atoms a = k and b = j with h_a != h_b.
    tau = sp.Symbol("tau", real=True, nonzero=True)
    z = G.total(base(G.IX) * sp.exp(tau * hb[G.IX]))
    mass = G.total(base(G.IX))
    relative = lambda j: (base(j) * sp.exp(tau * hb[j]) / z) / (base(j) / mass)  # noqa: E731
    ratio = relative(G.K) / relative(G.JX)
    G.require_zero(ratio - sp.exp(tau * (hb[G.K] - hb[G.JX])), "ratio of w/pi-bar")
    difference = sp.Symbol("delta", real=True, nonzero=True)  # h_a − h_b
    require(sp.log(sp.exp(tau * difference)).is_nonzero, "log of the ratio != 0 (general n)")
    weight, certificate = positive_symbols("w H")
    gap = sp.Symbol("y", real=True, nonzero=True)  # π̄_i/w_i − 1 for that i
    require((weight * gap**2 * certificate).is_positive, "one KL term > 0 (general n)")
    spread = sp.Symbol("d", real=True, nonzero=True)  # h_i − m for that i
    require((weight * spread**2).is_positive, "one variance term > 0 (general n)")


def _mp_objective(g, p, q, alpha):
    first = mpmath.log(
        mpmath.fsum(pi * mpmath.exp((alpha - 1) * gi) for pi, gi in zip(p, g, strict=True))
    )
    second = mpmath.log(
        mpmath.fsum(qi * mpmath.exp(alpha * gi) for qi, gi in zip(q, g, strict=True))
    )
    return first / (alpha - 1) - second / alpha


def _mp_rescaled_renyi(p, q, alpha):
    total = mpmath.fsum(pi**alpha * qi ** (1 - alpha) for pi, qi in zip(p, q, strict=True))
    return mpmath.log(total) / (alpha * (alpha - 1))


@claim(
    source="[derived] Birrell et al. 2021, Thm. (Rényi–DV), proof and cross-check",
    method="symbolic",
    theorems=(
        "fundamental theorem of calculus",
        "a positive continuous integrand has a positive integral",
        "exp is injective",
    ),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[rdv_global_maximum]",
        f"{LOSS_TESTS}::test_iris_loss_below_bound_away_from_optimum",
    ),
)
def rdv_global_maximum() -> None:
    """sup_g J_α(g; P, Q) = R_α(P‖Q), attained at g* and strictly below it elsewhere.

    Source: [derived] (Birrell et al. 2021). Proof for n atoms, n symbolic, α ∉ {0, 1}
    (require_strict_maximum; every algebraic step checked by sympy with indexed sums):
    (1) J_α(g) = R_α − B, B = TR_α(h; π) − TR_{α−1}(h; π), h = g − log(P/Q),
        π_i = p_i^α q_i^{1−α} > 0 (rdv_gap_decomposition, identity);
    (2) B = ∫_{α−1}^{α} (d/dτ) TR_τ(h; π) dτ [stated: fundamental theorem of calculus, TR_τ
        being C¹ in τ], and the integrand is ≥ 0: KL(w_τ‖π̄)/τ² for τ ≠ 0, Var_π(h)/2 at
        τ = 0 (tilt_derivative_nonnegative, general n); so J_α ≤ R_α;
    (3) attained: J_α(g*) = R_α (rdv_optimal_value, identity);
    (4) strict: if h is not constant, h_a ≠ h_b for two atoms a, b; for τ ≠ 0 the ratio
        (w_a/π̄_a)/(w_b/π̄_b) = e^{τ(h_a − h_b)} (identity) has a nonzero logarithm, so
        not every w_i/π̄_i is 1 [exp is injective] and the term w_i (π̄_i/w_i − 1)² H_i of
        the KL certificate is > 0 for that i (assumption system; the other terms ≥ 0), so
        the integrand is > 0; at τ = 0, not both h_a, h_b equal the mean m, and a term
        π_i (h_i − m)² of the variance is > 0; a continuous integrand > 0 on an interval of
        length 1 has a positive integral [stated], so B > 0 and J_α(g) < R_α.
    Also a 40-digit mpmath cross-check on random 4-atom distributions, random g and
    α ∈ {−0.7, 0.25, 0.5, 0.75, 1.5, 2, 4}: J_α(g) < R_α for perturbed g, J_α(g*) = R_α to
    30 digits (seeded, deterministic).
    Enforced by tests/test_theory.py::test_claim[rdv_global_maximum] and
    tests/test_theory_losses.py::test_iris_loss_below_bound_away_from_optimum.
    """
    require_strict_maximum()
    rng = random.Random(20604)
    with mpmath.workdps(40):
        for alpha in (-0.7, 0.25, 0.5, 0.75, 1.5, 2, 4):
            a = mpmath.mpf(alpha)
            for _ in range(25):
                p = [mpmath.mpf(rng.uniform(0.05, 1)) for _ in range(4)]
                q = [mpmath.mpf(rng.uniform(0.05, 1)) for _ in range(4)]
                p = [x / mpmath.fsum(p) for x in p]
                q = [x / mpmath.fsum(q) for x in q]
                bound = _mp_rescaled_renyi(p, q, a)
                best = [mpmath.log(pi / qi) + 0.3 for pi, qi in zip(p, q, strict=True)]
                if abs(_mp_objective(best, p, q, a) - bound) > mpmath.mpf(10) ** -30:
                    raise ClaimFailed(f"J(g*) != R_alpha at alpha={alpha}")
                for scale in (1e-3, 0.1, 1.0, 3.0):
                    g = [b + scale * rng.gauss(0, 1) for b in best]
                    if not _mp_objective(g, p, q, a) < bound:
                        raise ClaimFailed(f"J(g) >= R_alpha at alpha={alpha}, g={g}")
                require(bound >= 0, "R_alpha >= 0")
