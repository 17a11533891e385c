"""Closed forms the claims are about, as pure functions returning sympy expressions.

Arguments are sequences of sympy-compatible numbers or expressions (symbols, Rationals,
Floats): `p`, `q` are the atoms of discrete distributions P (data) and Q (previous iterate),
`g` a discriminator / reward per atom, `losses` per-sample losses. Expectations are plain
sums `E_P f = Σ_i p_i f_i`; where an identity also holds for unnormalised positive weights
the claims check it for those, and say so. With numbers in, `float(...)` of the result is
the value, which is how the tests compare `iris.losses` with these formulas.

Notation as in `docs/objective.md`:

- `D_α(P‖Q) = (1/(α−1)) log Σ p^α q^{1−α}`          Rényi divergence
- `R_α(P‖Q) = D_α(P‖Q) / α`                          rescaled Rényi divergence
- `J_α(g; P, Q) = (1/(α−1)) log E_P e^{(α−1)g} − (1/α) log E_Q e^{αg}`
                                                      Rényi–Donsker–Varadhan objective
- `L_α = −J_α`                                        the (population) IRIS loss
- `TR_τ(ℓ; π) = (1/τ) log(Σ π_i e^{τℓ_i} / Σ π_i)`   tilted risk (π uniform by default)
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

Values = Sequence[sp.Expr | float | int]


def _sum(terms) -> sp.Expr:
    return sp.Add(*terms)


def expectation(p: Values, f: Values) -> sp.Expr:
    """`E_P f = Σ_i p_i f_i`."""
    return _sum(pi * fi for pi, fi in zip(p, f, strict=True))


def renyi_divergence(p: Values, q: Values, alpha: sp.Expr) -> sp.Expr:
    """`D_α(P‖Q) = (1/(α−1)) log Σ_i p_i^α q_i^{1−α}` (α ∉ {0, 1})."""
    return sp.log(_sum(pi**alpha * qi ** (1 - alpha) for pi, qi in zip(p, q, strict=True))) / (
        alpha - 1
    )


def rescaled_renyi(p: Values, q: Values, alpha: sp.Expr) -> sp.Expr:
    """`R_α(P‖Q) = D_α(P‖Q) / α = log Σ p^α q^{1−α} / (α(α−1))`."""
    return renyi_divergence(p, q, alpha) / alpha


def kl_divergence(p: Values, q: Values) -> sp.Expr:
    """`KL(P‖Q) = Σ_i p_i log(p_i / q_i)`."""
    return _sum(pi * sp.log(pi / qi) for pi, qi in zip(p, q, strict=True))


def chi_square(p: Values, q: Values) -> sp.Expr:
    """Pearson `χ²(P‖Q) = Σ_i (p_i − q_i)² / q_i`."""
    return _sum((pi - qi) ** 2 / qi for pi, qi in zip(p, q, strict=True))


def bhattacharyya_coefficient(p: Values, q: Values) -> sp.Expr:
    """`BC(P, Q) = Σ_i sqrt(p_i q_i)`."""
    return _sum(sp.sqrt(pi * qi) for pi, qi in zip(p, q, strict=True))


def jensen_shannon(p: Values, q: Values) -> sp.Expr:
    """`JS(P, Q) = ½ KL(P‖M) + ½ KL(Q‖M)` with `M = (P + Q)/2`."""
    m = [(pi + qi) / 2 for pi, qi in zip(p, q, strict=True)]
    return (kl_divergence(p, m) + kl_divergence(q, m)) / 2


def rdv_objective(g: Values, p: Values, q: Values, alpha: sp.Expr) -> sp.Expr:
    """Rényi–DV objective `J_α(g; P, Q) = (1/(α−1)) log E_P e^{(α−1)g} − (1/α) log E_Q e^{αg}`.

    Birrell et al. 2021 (arXiv 2007.03814): `sup_g J_α = R_α(P‖Q)`. The IRIS loss is −J_α.
    """
    real = sp.log(expectation(p, [sp.exp((alpha - 1) * gi) for gi in g])) / (alpha - 1)
    synthetic = sp.log(expectation(q, [sp.exp(alpha * gi) for gi in g])) / alpha
    return real - synthetic


def dv_objective(g: Values, p: Values, q: Values) -> sp.Expr:
    """Donsker–Varadhan `E_P g − log E_Q e^g` (sup over g is KL(P‖Q))."""
    return expectation(p, g) - sp.log(expectation(q, [sp.exp(gi) for gi in g]))


def reverse_dv_objective(g: Values, p: Values, q: Values) -> sp.Expr:
    """Reverse DV `−log E_P e^{−g} − E_Q g` (sup over g is KL(Q‖P)); its negative is a loss."""
    return -sp.log(expectation(p, [sp.exp(-gi) for gi in g])) - expectation(q, g)


def tilted_risk(losses: Values, tau: sp.Expr, weights: Values | None = None) -> sp.Expr:
    """`TR_τ(ℓ; π) = (1/τ) log(Σ_i π_i e^{τℓ_i} / Σ_i π_i)`; π uniform when omitted (τ ≠ 0)."""
    pi = [sp.Integer(1)] * len(losses) if weights is None else list(weights)
    return sp.log(expectation(pi, [sp.exp(tau * li) for li in losses]) / _sum(pi)) / tau


def tilted_weights(losses: Values, tau: sp.Expr, weights: Values | None = None) -> list[sp.Expr]:
    """`w_i = π_i e^{τℓ_i} / Σ_j π_j e^{τℓ_j}` (softmax(τℓ) when π is uniform)."""
    pi = [sp.Integer(1)] * len(losses) if weights is None else list(weights)
    unnormalised = [pii * sp.exp(tau * li) for pii, li in zip(pi, losses, strict=True)]
    total = _sum(unnormalised)
    return [u / total for u in unnormalised]


def mean(values: Values) -> sp.Expr:
    """Arithmetic mean."""
    return _sum(values) / len(values)


def variance(values: Values, weights: Values | None = None) -> sp.Expr:
    """`Var_π[v] = Σ π_i (v_i − E_π v)² / Σ π_i` (population variance, π uniform by default)."""
    pi = [sp.Integer(1)] * len(values) if weights is None else list(weights)
    total = _sum(pi)
    centre = expectation(pi, values) / total
    return expectation(pi, [(v - centre) ** 2 for v in values]) / total


def softplus(x: sp.Expr) -> sp.Expr:
    """`softplus(x) = log(1 + e^x)`."""
    return sp.log(1 + sp.exp(x))


def pearson_objective(t: Values, p: Values, q: Values) -> sp.Expr:
    """Pearson-χ² variational form `E_P T − E_Q (T + T²/4)` (sup over T is χ²(P‖Q))."""
    return expectation(p, t) - expectation(q, [ti + ti**2 / 4 for ti in t])
