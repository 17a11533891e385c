"""Claim 4: the orders α = ½ (Bhattacharyya, symmetric) and α = 2 (χ²).

Setting: three atoms; generic positive weights where normalisation is not needed, generic
points of the open 3-simplex where it is (α = 2).
"""

from __future__ import annotations

import sympy as sp

from theory import general as G
from theory.checks import positive_symbols, real_symbols, require_identity, simplex_point
from theory.divergences import (
    bhattacharyya_coefficient,
    chi_square,
    rdv_objective,
    rescaled_renyi,
)
from theory.registry import claim

CLAIM_TEST = "tests/test_theory.py::test_claim"
LOSS_TESTS = "tests/test_theory_losses.py"
HALF = sp.Rational(1, 2)


@claim(
    source="[secondary] objective.md 'Regimes': α = ½ row, symmetric under (P,Q,g) → (Q,P,−g)",
    method="symbolic",
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[half_order_symmetry]",
        f"{LOSS_TESTS}::test_iris_loss_half_order_symmetry",
    ),
)
def half_order_symmetry() -> None:
    """J_½(g; P, Q) = J_½(−g; Q, P) = −2 log E_P e^{−g/2} − 2 log E_Q e^{g/2}.

    Source: [secondary] objective.md "Regimes in α" (α = ½ row); the special case α = ½ of
    theory.duality.objective_duality (½ is the fixed point of α ↦ 1 − α). In the batch loss:
    iris_loss(r⁺, r⁻, α=½) = iris_loss(−r⁻, −r⁺, α=½), i.e. the annotated and synthetic
    samples play symmetric roles. Checked symbolically for generic weights and g.
    General n: also checked with indexed sums over n atoms, n symbolic (theory.general).
    Enforced by tests/test_theory.py::test_claim[half_order_symmetry] and
    tests/test_theory_losses.py::test_iris_loss_half_order_symmetry.
    """
    p = positive_symbols("p1:4")
    q = positive_symbols("q1:4")
    g = real_symbols("g1:4")
    minus_g = [-gi for gi in g]
    value = rdv_objective(g, p, q, HALF)
    require_identity(value, rdv_objective(minus_g, q, p, HALF), "J_1/2 symmetry")
    closed = -2 * sp.log(
        sp.Add(*(pi * sp.exp(-gi / 2) for pi, gi in zip(p, g, strict=True)))
    ) - 2 * sp.log(sp.Add(*(qi * sp.exp(gi / 2) for qi, gi in zip(q, g, strict=True))))
    require_identity(value, closed, "J_1/2 closed form")
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, gb = G.positive_base("p"), G.positive_base("q"), G.real_base("g")
    P_, Q_ = (lambda j: pb[j]), (lambda j: qb[j])
    value = G.rdv_objective(lambda j: gb[j], P_, Q_, HALF)
    G.require_zero(value - G.rdv_objective(lambda j: -gb[j], Q_, P_, HALF), "J_1/2 symmetry")
    closed = -2 * sp.log(G.total(pb[G.IX] * sp.exp(-gb[G.IX] / 2))) - 2 * sp.log(
        G.total(qb[G.IX] * sp.exp(gb[G.IX] / 2))
    )
    G.require_zero(value - closed, "J_1/2 closed form")


@claim(
    source="[secondary] objective.md 'Regimes': R_½ = −4 log BC(P, Q)",
    method="symbolic",
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[half_order_bhattacharyya]",
        f"{LOSS_TESTS}::test_iris_loss_half_and_two_closed_forms",
    ),
)
def half_order_bhattacharyya() -> None:
    """R_½(P‖Q) = −4 log BC(P, Q), BC = Σ sqrt(p q); symmetric in (P, Q).

    Source: [secondary] objective.md "Regimes in α" (α = ½ row). Proof: α(α−1) = −¼ and
    p^½ q^½ = sqrt(pq). For probability vectors BC = 1 − H² (squared Hellinger distance),
    so R_½ = −4 log(1 − H²). Checked symbolically for generic positive weights.
    General n: also checked with indexed sums over n atoms, n symbolic (theory.general).
    Enforced by tests/test_theory.py::test_claim[half_order_bhattacharyya] and
    tests/test_theory_losses.py::test_iris_loss_half_and_two_closed_forms.
    """
    p = positive_symbols("p1:4")
    q = positive_symbols("q1:4")
    value = rescaled_renyi(p, q, HALF)
    require_identity(value, -4 * sp.log(bhattacharyya_coefficient(p, q)), "R_1/2 = -4 log BC")
    require_identity(value, rescaled_renyi(q, p, HALF), "R_1/2 symmetric")
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb = G.positive_base("p"), G.positive_base("q")
    value = G.rescaled_renyi(lambda j: pb[j], lambda j: qb[j], HALF)
    G.require_zero(value + 4 * sp.log(G.total(sp.sqrt(pb[G.IX] * qb[G.IX]))), "R_1/2 = -4 log BC")


@claim(
    source="[secondary] objective.md 'Regimes': R_2 = ½ log(1 + χ²(P‖Q))",
    method="symbolic",
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[order_two_chi_square]",
        f"{LOSS_TESTS}::test_iris_loss_half_and_two_closed_forms",
    ),
)
def order_two_chi_square() -> None:
    """R_2(P‖Q) = ½ log(1 + χ²(P‖Q)), χ² = Σ (p − q)²/q (Pearson).

    Source: [secondary] objective.md "Regimes in α" (α = 2 row). Proof: Σ p²/q = 1 + χ²
    when Σ p = Σ q = 1, and α(α−1) = 2. Checked symbolically for normalised 3-atom P, Q.
    General n: also checked with indexed sums over n atoms, n symbolic (theory.general).
    Enforced by tests/test_theory.py::test_claim[order_two_chi_square] and
    tests/test_theory_losses.py::test_iris_loss_half_and_two_closed_forms.
    """
    p = simplex_point("s", 3)
    q = simplex_point("t", 3)
    require_identity(
        rescaled_renyi(p, q, 2), sp.log(1 + chi_square(p, q)) / 2, "R_2 = log(1 + chi2)/2"
    )
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb = G.positive_base("p"), G.positive_base("q")
    value = G.rescaled_renyi(lambda j: pb[j], lambda j: qb[j], 2)
    chi2 = G.total((pb[G.IX] - qb[G.IX]) ** 2 / qb[G.IX])
    normalised = {G.total(pb[G.IX]): 1, G.total(qb[G.IX]): 1}
    G.require_zero(value - sp.log(1 + chi2) / 2, "R_2 = log(1 + chi2)/2", normalised)
