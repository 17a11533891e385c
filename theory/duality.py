"""Claim 5: the duality α ↔ 1 − α, P ↔ Q, g ↔ −g.

Setting: three atoms with generic positive weights, generic real g, real α ∉ {0, 1}.
"""

from __future__ import annotations

import sympy as sp

from theory import general as G
from theory.checks import positive_symbols, real_symbols, require_identity, simplex_point
from theory.divergences import rdv_objective, renyi_divergence, rescaled_renyi, tilted_risk
from theory.registry import claim

CLAIM_TEST = "tests/test_theory.py::test_claim"
LOSS_TESTS = "tests/test_theory_losses.py"


@claim(
    source="[secondary] objective.md 'Regimes': R_α(P‖Q) = R_{1−α}(Q‖P)",
    method="symbolic",
    scope="general n",
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
    General n: also checked with indexed sums over n atoms, n symbolic (theory.general).
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
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb = G.positive_base("p"), G.positive_base("q")
    P_, Q_ = (lambda j: pb[j]), (lambda j: qb[j])
    G.require_zero(G.rescaled_renyi(P_, Q_, alpha) - G.rescaled_renyi(Q_, P_, 1 - alpha), "R")


@claim(
    source="[secondary] objective.md 'Regimes': L_α(g; P, Q) = L_{1−α}(−g; Q, P)",
    method="symbolic",
    scope="general n",
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
    iris_loss(−r⁻, −r⁺, 1 − α), with the two weight vectors exchanged.
    The exchange alone is blind to the coefficients: J with 1/α and 1/(α−1) swapped obeys
    it too. So the claim also pins J to two independent statements: (a) J_α(g) =
    −TR_{1−α}(−g; P) − TR_α(g; Q), the two tilted risks of objective.md (normalised P, Q),
    and (b) the dual objective at the dual optimum, J_{1−α}(−g*; Q, P) with
    g* = log(P/Q), equals R_α(P‖Q) = log Σ p^α q^{1−α}/(α(α−1)) — which re-proves
    renyi_duality through the objective. Both fail for the swapped J
    (tests/test_theory.py::test_negative_control). Checked symbolically.
    General n: also checked with indexed sums over n atoms, n symbolic (theory.general).
    Enforced by tests/test_theory.py::test_claim[objective_duality] and
    tests/test_theory_losses.py::test_iris_loss_duality.
    """
    p = positive_symbols("p1:4")
    q = positive_symbols("q1:4")
    g = real_symbols("g1:4")
    alpha = sp.Symbol("alpha", real=True, nonzero=True)
    minus_g = [-gi for gi in g]
    require_identity(
        rdv_objective(g, p, q, alpha), rdv_objective(minus_g, q, p, 1 - alpha), "J duality"
    )
    ps, qs = simplex_point("s", 3), simplex_point("t", 3)
    require_identity(
        rdv_objective(g, ps, qs, alpha),
        -tilted_risk(minus_g, 1 - alpha, ps) - tilted_risk(g, alpha, qs),
        "J = -TR_(1-alpha)(-g; P) - TR_alpha(g; Q)",
    )
    dual_optimum = [-sp.log(pi / qi) for pi, qi in zip(p, q, strict=True)]
    require_identity(
        rdv_objective(dual_optimum, q, p, 1 - alpha), rescaled_renyi(p, q, alpha), "J dual at g*"
    )
    # General n (theory.general): indexed sums over atoms 1..n, n symbolic.
    pb, qb, gb = G.positive_base("p"), G.positive_base("q"), G.real_base("g")
    P_, Q_ = (lambda j: pb[j]), (lambda j: qb[j])
    value = G.rdv_objective(lambda j: gb[j], P_, Q_, alpha)
    G.require_zero(value - G.rdv_objective(lambda j: -gb[j], Q_, P_, 1 - alpha), "J duality")
    two_risks = -G.tilted_risk(lambda j: -gb[j], 1 - alpha, P_) - G.tilted_risk(
        lambda j: gb[j], alpha, Q_
    )
    normalised = {G.total(pb[G.IX]): 1, G.total(qb[G.IX]): 1}
    G.require_zero(value - two_risks, "J = -TR - TR", normalised)
    dual = G.rdv_objective(lambda j: -sp.log(pb[j] / qb[j]), Q_, P_, 1 - alpha)
    G.require_zero(dual - G.rescaled_renyi(P_, Q_, alpha), "J dual at g*")
