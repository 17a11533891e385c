"""Claim 8: gradient concentration — effective sample size of exponential weights.

Weights `w_i = e^{τ r_i} / Σ_j e^{τ r_j}` over n samples; `ESS = 1 / Σ w_i²`, reported as
`ESS/n = (Σ e^{τr})² / (n Σ e^{2τr}) ∈ (0, 1]` (objective.md "Gradient concentration").
"""

from __future__ import annotations

import sympy as sp

from theory import general as G
from theory.checks import positive_symbols, real_symbols, require, require_identity
from theory.registry import claim

CLAIM_TEST = "tests/test_theory.py::test_claim"
LOSS_TESTS = "tests/test_theory_losses.py"


def gaussian_mgf(t: sp.Expr, mu: sp.Expr, sigma: sp.Expr) -> sp.Expr:
    """`E e^{t r}` for r ~ N(μ, σ²), by integrating against the density."""
    r = sp.Symbol("r", real=True)
    density = sp.exp(-((r - mu) ** 2) / (2 * sigma**2)) / sp.sqrt(2 * sp.pi * sigma**2)
    return sp.integrate(sp.exp(t * r) * density, (r, -sp.oo, sp.oo), conds="none")


def ess_fraction_limit(tau: sp.Expr, mu: sp.Expr, sigma: sp.Expr) -> sp.Expr:
    """`lim_{n→∞} ESS/n = (E e^{τr})² / E e^{2τr}` for r ~ N(μ, σ²)."""
    return gaussian_mgf(tau, mu, sigma) ** 2 / gaussian_mgf(2 * tau, mu, sigma)


@claim(
    source="[derived] objective.md 'Gradient concentration' (lognormal weights)",
    method="symbolic",
    theorems=(
        "strong law of large numbers",
        "continuous mapping",
        "bounded convergence",
    ),
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[gaussian_ess_fraction]",
        f"{LOSS_TESTS}::test_weights_ess_gaussian",
    ),
)
def gaussian_ess_fraction() -> None:
    """For r ~ N(μ, σ²) and weights ∝ e^{τr}: ESS/n → (E e^{τr})² / E e^{2τr} = e^{−τ²σ²}.

    Source: [derived] objective.md "Gradient concentration". Proof, with x_i = e^{τ r_i}:
    (1) ESS/n = 1/(n Σ w_i²) = (Σ x)²/(n Σ x²) = M_n(τ)²/M_n(2τ), M_n(t) = mean e^{t r_i}
    (identity, checked for n = 4 generic x > 0); (2) 0 < ESS/n ≤ 1 by the Lagrange identity
    n Σ x² − (Σ x)² = ½ Σ_{i,j} (x_i − x_j)² ≥ 0 (identity checked for n = 4, ≥ 0 by sympy's
    assumptions); (3) [stated theorem: Kolmogorov's strong law of large numbers] M_n(t) →
    M(t) = E e^{tr} almost surely for t = τ, 2τ, since the Gaussian MGF is finite for every
    t; (4) [stated theorem: continuous mapping] (a, b) ↦ a²/b is continuous on b > 0, so
    ESS/n → M(τ)²/M(2τ) almost surely; (5) [stated theorem: bounded convergence] by (2),
    E[ESS/n] → the same limit. With the Gaussian MGF M(t) = e^{μt + σ²t²/2} (obtained here
    by symbolic integration) the ratio is e^{−τ²σ²}, independent of μ — consistent with the
    shift invariance of the weights. Steps (1), (2) and the MGF ratio are checked
    symbolically, (1) and (2) for n = 4 and for n samples, n symbolic (indexed sums; the
    Lagrange identity as a double sum over i, j); the hypotheses of (3)–(5) are checked:
    M(t) is finite for every real t (the closed form), M(2τ) > 0, and 0 < ESS/n ≤ 1.
    Enforced by tests/test_theory.py::test_claim[gaussian_ess_fraction] and
    tests/test_theory_losses.py::test_weights_ess_gaussian (ESS of iris_loss weights on
    Gaussian rewards, n = 200 000, seeded).
    """
    x = positive_symbols("x1:5")
    n = len(x)
    w = [xi / sp.Add(*x) for xi in x]
    ess_fraction = 1 / (n * sp.Add(*(wi**2 for wi in w)))
    sum_x, sum_x2 = sp.Add(*x), sp.Add(*(xi**2 for xi in x))
    require_identity(ess_fraction, sum_x**2 / (n * sum_x2), "ESS/n = (sum x)^2/(n sum x^2)")
    lagrange = sp.Add(*((xi - xj) ** 2 for xi in x for xj in x)) / 2
    require_identity(n * sum_x2 - sum_x**2, lagrange, "Lagrange identity")
    require(lagrange.is_nonnegative, "n sum x^2 - (sum x)^2 >= 0, so ESS/n <= 1")
    require(ess_fraction.is_positive, "ESS/n > 0")
    (mu, tau) = real_symbols("mu tau")
    (sigma,) = positive_symbols("sigma")
    require_identity(
        gaussian_mgf(tau, mu, sigma), sp.exp(mu * tau + sigma**2 * tau**2 / 2), "Gaussian MGF"
    )
    require_identity(ess_fraction_limit(tau, mu, sigma), sp.exp(-(tau**2) * sigma**2), "ESS/n")
    mgf = sp.exp(mu * tau + sigma**2 * tau**2 / 2)
    require(mgf.is_finite and mgf.is_positive, "M(t) finite and > 0 for every real t")
    # General n (theory.general): n samples, n symbolic.
    xb = G.positive_base("x")
    x_i, x_j = xb[G.IX], xb[G.JX]
    sum_x, sum_x2 = G.total(x_i), G.total(x_i**2)
    fraction = G.ess_fraction(lambda j: xb[j] / G.total(xb[G.IX]))
    G.require_zero(fraction - sum_x**2 / (G.N * sum_x2), "ESS/n = (sum x)^2/(n sum x^2)")
    lagrange = G.total(G.total((x_i - x_j) ** 2, G.JX)) / 2
    G.require_zero(G.N * sum_x2 - sum_x**2 - lagrange, "Lagrange identity")
    require(lagrange.is_nonnegative, "n sum x^2 - (sum x)^2 >= 0 (general n)")
    require(fraction.is_positive, "ESS/n > 0 (general n)")


def iris_tilts(alpha: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """The tilts of IRIS's weights: (α − 1) annotated, α synthetic (objective.md)."""
    return alpha - 1, alpha


@claim(
    source="[derived] objective.md 'Gradient concentration': α far from [0, 1] concentrates",
    method="symbolic",
    scope="general n",
    tests=(
        f"{CLAIM_TEST}[iris_tilts_ess]",
        f"{LOSS_TESTS}::test_weights_ess_gaussian",
    ),
)
def iris_tilts_ess() -> None:
    """With tilts α − 1 (annotated) and α (synthetic), exactly for α ∈ [0, 1] both |tilts| ≤ 1.

    Source: [derived] objective.md "Gradient concentration". With reward variance σ² on
    both sides the limiting fractions are e^{−(α−1)²σ²} and e^{−α²σ²}. Exactly true
    (checked symbolically):
    (a) both |α − 1| ≤ 1 and |α| ≤ 1  ⇔  α ∈ [0, 1];
    (b) the smaller fraction, e^{−σ² max((α−1)², α²)}, is maximal at α = ½ (value e^{−σ²/4})
        and is ≥ e^{−σ²} (its value at α ∈ {0, 1}) iff α ∈ [0, 1];
    (c) the product, e^{−σ²((α−1)² + α²)}, is maximal at α = ½ (value e^{−σ²/2}) and is
        ≥ e^{−σ²} iff α ∈ [0, 1].
    General n: the statement involves no atoms (scalars α, σ), so the check is general.
    Not true: that the ESS is constant on [0, 1] — both profiles are unimodal in α with
    their peak at ½ and decrease as |α − ½| grows, so α = 2 (tilt 2 on synthetic samples)
    has synthetic ESS/n = e^{−4σ²}.
    Enforced by tests/test_theory.py::test_claim[iris_tilts_ess] and
    tests/test_theory_losses.py::test_weights_ess_gaussian.
    """
    alpha = sp.Symbol("alpha", real=True)
    (sigma,) = positive_symbols("sigma")
    real_tilt, synthetic_tilt = iris_tilts(alpha)
    unit = sp.Interval(0, 1)
    both_small = sp.solve_univariate_inequality(
        sp.Max(sp.Abs(real_tilt), sp.Abs(synthetic_tilt)) <= 1, alpha, relational=False
    )
    require(both_small == unit, f"{{|alpha-1| <= 1, |alpha| <= 1}} = {both_small}")
    worst = sp.Max(real_tilt**2, synthetic_tilt**2)
    below_half = sp.solve_univariate_inequality(worst < sp.Rational(1, 4), alpha, relational=False)
    require(below_half == sp.EmptySet, "max((alpha-1)^2, alpha^2) >= 1/4")
    require_identity(worst.subs(alpha, sp.Rational(1, 2)), sp.Rational(1, 4), "worst at 1/2")
    worst_ok = sp.solve_univariate_inequality(worst <= 1, alpha, relational=False)
    require(worst_ok == unit, f"min fraction >= e^-sigma^2 on {worst_ok}")
    exponent = real_tilt**2 + synthetic_tilt**2
    stationary = sp.solve(sp.diff(exponent, alpha), alpha)
    require(stationary == [sp.Rational(1, 2)], f"stationary points {stationary}")
    require(sp.diff(exponent, alpha, 2).is_positive, "exponent convex")
    require_identity(exponent.subs(alpha, sp.Rational(1, 2)), sp.Rational(1, 2), "product at 1/2")
    product_ok = sp.solve_univariate_inequality(exponent <= 1, alpha, relational=False)
    require(product_ok == unit, f"product >= e^-sigma^2 on {product_ok}")
    require_identity(
        sp.exp(-(sigma**2) * real_tilt**2) * sp.exp(-(sigma**2) * synthetic_tilt**2),
        sp.exp(-(sigma**2) * exponent),
        "product of fractions",
    )
