"""Claim 6: properties of the tilted risk `TR_τ(ℓ; π) = (1/τ) log(Σ π_i e^{τℓ_i} / Σ π_i)`.

TERM (Li et al. 2021). The IRIS loss is a sum of two tilted risks (objective.md, "Tilted
risk"), and the global-maximum part of the Rényi–DV claim (theory.rdv) rests on the
monotonicity in τ proved here. Claims are checked on three generic losses ℓ_1..ℓ_3 (real
symbols) with generic positive base weights π_1..π_3 (the batch version is π uniform).
"""

from __future__ import annotations

import sympy as sp

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


@claim(
    source="[derived] objective.md 'Tilted risk': gradient of TR is softmax-weighted",
    method="symbolic",
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


@claim(
    source="[derived] objective.md 'Tilted risk': TR_0 = mean",
    method="symbolic",
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


@claim(
    source="[derived] objective.md 'Tilted risk': TR_τ(ℓ + c) = TR_τ(ℓ) + c",
    method="symbolic",
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


@claim(
    source="[derived] needed for monotonicity of TR in τ",
    method="symbolic",
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


@claim(
    source="[derived] standard lemma (Gibbs' inequality)",
    method="symbolic",
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
    properties of f with sympy's assumption system.
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


@claim(
    source="[derived] objective.md 'Tilted risk': min ≤ TR ≤ max, nondecreasing, limits ±∞",
    method="symbolic",
    tests=(
        f"{CLAIM_TEST}[tilted_risk_monotone_and_bounded]",
        f"{LOSS_TESTS}::test_tilted_risk_monotone_and_bounded",
    ),
)
def tilted_risk_monotone_and_bounded() -> None:
    """TR_τ(ℓ) is nondecreasing in τ, → max ℓ as τ → +∞, → min ℓ as τ → −∞; so min ≤ TR ≤ max.

    Source: [derived] objective.md "Tilted risk". Monotone: theory.tilted_risk.
    tilted_risk_tilt_derivative_is_kl and gibbs_inequality for τ ≠ 0, and at τ = 0 the
    derivative is Var/2 ≥ 0 (tilted_risk_small_tilt). Limits: checked with `limit` for
    sorted losses (m, m + d_1, m + d_1 + d_2), d_i > 0, after removing m by
    tilted_risk_shift_equivariance (gruntz needs the sign of each exponent). The bounds
    follow: TR_{−∞} ≤ TR_τ ≤ TR_{+∞}.
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
    losses = real_symbols("l1:4")
    require(variance(losses).is_nonnegative, "Var >= 0 (derivative at tau = 0)")
