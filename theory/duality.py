"""Claim 5: the duality α ↔ 1 − α, P ↔ Q, g ↔ −g.

Setting: three atoms with generic positive weights, generic real g, real α ∉ {0, 1}.
"""

from __future__ import annotations

import sympy as sp

from theory.checks import positive_symbols, real_symbols, require_identity
from theory.divergences import rdv_objective, renyi_divergence, rescaled_renyi
from theory.registry import claim

CLAIM_TEST = "tests/test_theory.py::test_claim"
LOSS_TESTS = "tests/test_theory_losses.py"


@claim(
    source="[secondary] objective.md 'Regimes': R_α(P‖Q) = R_{1−α}(Q‖P)",
    method="symbolic",
    tests=(
        f"{CLAIM_TEST}[renyi_duality]",
        f"{LOSS_TESTS}::test_iris_loss_duality",
    ),
)
def renyi_duality() -> None:
    """R_α(P‖Q) = R_{1−α}(Q‖P) for every α ∉ {0, 1}.

    Source: [secondary] objective.md "Regimes in α" (any-α row). Proof: the exponents
    (α, 1−α) on (p, q) are the same on both sides, and α(α−1) = (1−α)((1−α)−1). So the
    rescaling by 1/α is exactly what makes the family symmetric; D_α alone satisfies
    D_α(P‖Q) = (α/(1−α)) D_{1−α}(Q‖P) instead (also checked). Checked symbolically.
    Enforced by tests/test_theory.py::test_claim[renyi_duality] and
    tests/test_theory_losses.py::test_iris_loss_duality.
    """
    p = positive_symbols("p1:4")
    q = positive_symbols("q1:4")
    alpha = sp.Symbol("alpha", real=True, nonzero=True)
    require_identity(rescaled_renyi(p, q, alpha), rescaled_renyi(q, p, 1 - alpha), "R duality")
    require_identity(
        renyi_divergence(p, q, alpha),
        alpha / (1 - alpha) * renyi_divergence(q, p, 1 - alpha),
        "D duality",
    )


@claim(
    source="[secondary] objective.md 'Regimes': L_α(g; P, Q) = L_{1−α}(−g; Q, P)",
    method="symbolic",
    tests=(
        f"{CLAIM_TEST}[objective_duality]",
        f"{LOSS_TESTS}::test_iris_loss_duality",
    ),
)
def objective_duality() -> None:
    """J_α(g; P, Q) = J_{1−α}(−g; Q, P), hence L_α(g; P, Q) = L_{1−α}(−g; Q, P).

    Source: [secondary] objective.md "Regimes in α" (any-α row). Proof: with α' = 1 − α the
    annotated term of J_{α'}(−g; Q, P) is (1/(−α)) log E_Q e^{αg}, the synthetic term of
    J_α(g; P, Q), and vice versa. In the batch loss: iris_loss(r⁺, r⁻, α) =
    iris_loss(−r⁻, −r⁺, 1 − α), with the two weight vectors exchanged. With
    theory.rdv.rdv_optimal_value this re-proves renyi_duality. Checked symbolically.
    Enforced by tests/test_theory.py::test_claim[objective_duality] and
    tests/test_theory_losses.py::test_iris_loss_duality.
    """
    p = positive_symbols("p1:4")
    q = positive_symbols("q1:4")
    g = real_symbols("g1:4")
    alpha = sp.Symbol("alpha", real=True, nonzero=True)
    require_identity(
        rdv_objective(g, p, q, alpha),
        rdv_objective([-gi for gi in g], q, p, 1 - alpha),
        "J duality",
    )
