"""Claims 2 and 3: the removable singularities α → 1 (KL) and α → 0 (reverse KL).

Setting: P, Q generic points of the open 3-simplex (`theory.checks.simplex_point`, so
Σp = Σq = 1 is built in, which these limits need), g three real symbols. Limits are taken
with `series` in ε = α − 1 (resp. ε = α), whose constant term is the limit; `series_terms`
fails the claim if a negative power of ε appears.

General n: each claim is also proved with indexed sums over n atoms, n symbolic, by
`theory.general.sum_series` (per-term Taylor polynomials of the summands, linearity of finite
sums, `series` of the outer expression in the sums as symbols, with a check that the
remainders do not reach the order of the statement) and Σp = Σq = 1 substituted.
"""

from __future__ import annotations

import sympy as sp

from theory import general as G
from theory.checks import (
    positive_symbols,
    real_symbols,
    require_identity,
    series_terms,
    simplex_point,
)
from theory.divergences import (
    dv_objective,
    expectation,
    kl_divergence,
    rdv_objective,
    renyi_divergence,
    rescaled_renyi,
    reverse_dv_objective,
    tilted_weights,
    variance,
)
from theory.registry import claim

CLAIM_TEST = "tests/test_theory.py::test_claim"
LOSS_TESTS = "tests/test_theory_losses.py"


def _setting():
    p = simplex_point("s", 3)
    q = simplex_point("t", 3)
    g = real_symbols("g1:4")
    eps = sp.Symbol("epsilon", real=True)
    return p, q, g, eps


def _general_setting():
    """P, Q as positive indexed weights with Σp = Σq = 1 (the substitution), g real."""
    pb, qb, gb = G.positive_base("p"), G.positive_base("q"), G.real_base("g")
    normalised = {G.total(pb[G.IX]): 1, G.total(qb[G.IX]): 1}
    return pb, qb, gb, normalised


@claim(
    source="[secondary] objective.md 'Regimes': α → 1 is the KL / Donsker–Varadhan member",
    method="symbolic",
    theorems=("Taylor's theorem (per-term series of a finite sum)",),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[alpha_one_objective_limit]",
        f"{LOSS_TESTS}::test_iris_loss_near_alpha_one_is_dv",
    ),
)
def alpha_one_objective_limit() -> None:
    """J_{1+ε}(g) = [E_P g − log E_Q e^g] + ε [½ Var_P g − KL(Q^g‖Q)] + O(ε²), Q^g ∝ Q e^g.

    Source: [secondary] objective.md "Regimes in α" (α → 1 row), [derived] here. So α = 1 is
    a removable singularity of the IRIS objective whose value is the Donsker–Varadhan form
    of KL(P‖Q), i.e. L_1 = −E_P g + log E_Q e^g. The annotated term alone,
    (1/(α−1)) log E_P e^{(α−1)g} = −TR_{1−α}(−g; P), expands as E_P g + (ε/2) Var_P g: with
    τ = 1 − α, TR_τ(−g) = −E_P g + (τ/2) Var_P g + O(τ²) (theory.tilted_risk.
    tilted_risk_small_tilt). The synthetic term's first-order coefficient is
    d/dτ TR_τ(g; Q) at τ = 1, i.e. KL(Q^g‖Q) (tilted_risk_tilt_derivative_is_kl).
    Checked with `series` in ε for normalised 3-atom P, Q and symbolic g.
    General n: the same expansion with indexed sums (theory.general.sum_series, summands to
    order ε²), KL(Q^g‖Q) = Σ_i (q_i e^{g_i}/Z) log(e^{g_i}/Z), Z = Σ_i q_i e^{g_i}.
    Enforced by tests/test_theory.py::test_claim[alpha_one_objective_limit] and
    tests/test_theory_losses.py::test_iris_loss_near_alpha_one_is_dv.
    """
    p, q, g, eps = _setting()
    real_term = sp.log(expectation(p, [sp.exp(eps * gi) for gi in g])) / eps
    require_identity(
        series_terms(real_term, eps, 1),
        expectation(p, g) + eps / 2 * variance(g, p),
        "annotated term at alpha = 1 + eps",
    )
    tilted_q = tilted_weights(g, 1, q)
    expected = dv_objective(g, p, q) + eps * (variance(g, p) / 2 - kl_divergence(tilted_q, q))
    require_identity(
        series_terms(rdv_objective(g, p, q, 1 + eps), eps, 1), expected, "J at alpha = 1 + eps"
    )
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, gb, normalised = _general_setting()
    p_i, q_i, g_i = pb[G.IX], qb[G.IX], gb[G.IX]
    objective = G.rdv_objective(lambda j: gb[j], lambda j: pb[j], lambda j: qb[j], 1 + eps)
    expansion = G.sum_series(objective, eps, 1, 2, normalised)
    centre = G.total(p_i * g_i)
    z = G.total(q_i * sp.exp(g_i))
    kl = G.total(q_i * sp.exp(g_i) / z * sp.log(sp.exp(g_i) / z))
    expected = centre - sp.log(z) + eps * (G.total(p_i * (g_i - centre) ** 2) / 2 - kl)
    G.require_zero(expansion - expected, "J at alpha = 1 + eps", normalised)


@claim(
    source="[derived] objective.md 'Regimes': D_α → KL(P‖Q) as α → 1",
    method="symbolic",
    theorems=("Taylor's theorem (per-term series of a finite sum)",),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[alpha_one_renyi_limit]",
        f"{LOSS_TESTS}::test_iris_loss_near_alpha_one_is_dv",
    ),
)
def alpha_one_renyi_limit() -> None:
    """D_{1+ε}(P‖Q) = KL(P‖Q) + (ε/2) Var_P[log(P/Q)] + O(ε²); hence R_α, D_α → KL as α → 1.

    Source: [derived] (standard; the cumulant expansion of log E_P e^{ε log(P/Q)}).
    Checked with `series` in ε for normalised 3-atom P, Q.
    General n: the same with indexed sums (theory.general.sum_series; Σp = 1; summands
    p_i e^{ε log(p_i/q_i)} to order ε², so D to order ε).
    Enforced by tests/test_theory.py::test_claim[alpha_one_renyi_limit] and
    tests/test_theory_losses.py::test_iris_loss_near_alpha_one_is_dv (−iris_loss at
    α = 1 ± 1e-9 and g = log P/Q equals KL(P‖Q)).
    """
    p, _, _, eps = _setting()
    q = positive_symbols("q1:4")  # S(1) = Σ p = 1 is all the limit needs
    log_ratio = [sp.log(pi / qi) for pi, qi in zip(p, q, strict=True)]
    expected = kl_divergence(p, q) + eps / 2 * variance(log_ratio, p)
    expansion = series_terms(renyi_divergence(p, q, 1 + eps), eps, 1)
    require_identity(expansion, expected, "D at alpha = 1 + eps")
    # R_{1+ε} = D_{1+ε}/(1 + ε), so its constant term is that of D.
    require_identity(series_terms(expansion / (1 + eps), eps, 0), kl_divergence(p, q), "R at 1")
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, _, normalised = _general_setting()
    p_i, q_i = pb[G.IX], qb[G.IX]
    log_ratio = sp.log(p_i / q_i)
    divergence = G.rescaled_renyi(lambda j: pb[j], lambda j: qb[j], 1 + eps) * (1 + eps)
    kl = G.total(p_i * log_ratio)
    expected = kl + eps / 2 * G.total(p_i * (log_ratio - kl) ** 2)
    G.require_zero(
        G.sum_series(divergence, eps, 1, 2, normalised) - expected, "D at 1 + eps", normalised
    )
    rescaled = G.rescaled_renyi(lambda j: pb[j], lambda j: qb[j], 1 + eps)
    G.require_zero(G.sum_series(rescaled, eps, 0, 1, normalised) - kl, "R at 1", normalised)


@claim(
    source="[secondary] objective.md 'Regimes': α → 0 is the mode-seeking (reverse KL) end",
    method="symbolic",
    theorems=("Taylor's theorem (per-term series of a finite sum)",),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[alpha_zero_objective_limit]",
        f"{LOSS_TESTS}::test_iris_loss_near_alpha_zero_is_reverse_dv",
    ),
)
def alpha_zero_objective_limit() -> None:
    """lim_{α→0⁺} J_α(g) = −log E_P e^{−g} − E_Q g, so L_0 = log E_P e^{−g} + E_Q g.

    Source: [secondary] objective.md "Regimes in α" (α → 0 row). The limit is the reverse
    Donsker–Varadhan form: sup_g of it is KL(Q‖P) (DV with the roles of P and Q swapped and
    g → −g; see theory.duality.objective_duality). Checked with `series` in α.
    General n: the same with indexed sums (theory.general.sum_series; Σp = Σq = 1).
    Enforced by tests/test_theory.py::test_claim[alpha_zero_objective_limit] and
    tests/test_theory_losses.py::test_iris_loss_near_alpha_zero_is_reverse_dv.
    """
    p, q, g, eps = _setting()
    require_identity(
        series_terms(rdv_objective(g, p, q, eps), eps, 0),
        reverse_dv_objective(g, p, q),
        "J at alpha -> 0",
    )
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, gb, normalised = _general_setting()
    objective = G.rdv_objective(lambda j: gb[j], lambda j: pb[j], lambda j: qb[j], eps)
    expected = -sp.log(G.total(pb[G.IX] * sp.exp(-gb[G.IX]))) - G.total(qb[G.IX] * gb[G.IX])
    G.require_zero(
        G.sum_series(objective, eps, 0, 1, normalised) - expected, "J at alpha -> 0", normalised
    )


@claim(
    source="[secondary] objective.md 'Regimes': R_α(P‖Q) → KL(Q‖P) as α → 0",
    method="symbolic",
    theorems=("Taylor's theorem (per-term series of a finite sum)",),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[alpha_zero_renyi_limit]",
        f"{LOSS_TESTS}::test_iris_loss_near_alpha_zero_is_reverse_dv",
    ),
)
def alpha_zero_renyi_limit() -> None:
    """lim_{α→0⁺} R_α(P‖Q) = KL(Q‖P) (full supports), while D_α = α R_α → 0.

    Source: [secondary] objective.md "Regimes in α". Proof: log Σ p^α q^{1−α} = −α KL(Q‖P)
    + O(α²), divided by α(α−1) → KL(Q‖P). This is why IRIS rescales D_α by 1/α: D_α itself
    degenerates at α = 0. Checked with `series` in α for normalised 3-atom P, Q.
    General n: the same with indexed sums (theory.general.sum_series; Σq = 1).
    Enforced by tests/test_theory.py::test_claim[alpha_zero_renyi_limit] and
    tests/test_theory_losses.py::test_iris_loss_near_alpha_zero_is_reverse_dv.
    """
    _, q, _, eps = _setting()
    p = positive_symbols("p1:4")  # S(0) = Σ q = 1 is all the limit needs
    require_identity(
        series_terms(rescaled_renyi(p, q, eps), eps, 0), kl_divergence(q, p), "R at alpha -> 0"
    )
    require_identity(series_terms(renyi_divergence(p, q, eps), eps, 0), 0, "D at alpha -> 0")
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, _, normalised = _general_setting()
    rescaled = G.rescaled_renyi(lambda j: pb[j], lambda j: qb[j], eps)
    reverse_kl = G.total(qb[G.IX] * sp.log(qb[G.IX] / pb[G.IX]))
    G.require_zero(
        G.sum_series(rescaled, eps, 0, 1, normalised) - reverse_kl, "R at alpha -> 0", normalised
    )
    G.require_zero(G.sum_series(rescaled * eps, eps, 0, 1, normalised), "D at 0", normalised)
