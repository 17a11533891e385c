"""General-n machinery: n atoms as sympy indexed sums with a symbolic upper limit n.

Distributions are `IndexedBase`s with assumptions (`p[i] > 0`, `g[i]` real), sums are
`Sum(·, (i, 1, n))` with n a positive integer symbol, so a proof here holds for every
number of atoms and every (unnormalised) positive weight vector; normalisation, where a
claim needs it, is the substitution `Σ_i p_i = 1`. The manipulations sympy needs and does
not do on its own are made explicit and are all valid rewrites:

- `linear_sums`: a sum of an expanded summand is split term by term and factors that do
  not depend on the index are pulled out (linearity of finite sums);
- `on_index`: replace every `x[j]` of an `IndexedBase` x by an expression in j (the
  substitution of a value for a free function of the atom);
- `inside_range`: the derivative of `Σ_i f(x_i)` in `x_k` is `Piecewise((f'(x_k), k ≤ n),
  (0, True))` after `doit`; for an atom k of the range (1 ≤ k ≤ n) the first branch holds.
"""

from __future__ import annotations

import sympy as sp

from theory.checks import rewrite_exp_log
from theory.registry import ClaimFailed

N = sp.Symbol("n", integer=True, positive=True)
IX = sp.Symbol("i", integer=True, positive=True)
K = sp.Symbol("k", integer=True, positive=True)


def positive_base(name: str) -> sp.IndexedBase:
    return sp.IndexedBase(name, positive=True)


def real_base(name: str) -> sp.IndexedBase:
    return sp.IndexedBase(name, real=True)


def total(summand: sp.Expr) -> sp.Sum:
    """`Σ_{i=1}^n summand` (summand written in the index `IX`)."""
    return sp.Sum(summand, (IX, 1, N))


def linear_sums(expr: sp.Expr) -> sp.Expr:
    """Split every sum over its expanded terms and pull index-free factors out of it."""

    def split(s: sp.Sum) -> sp.Expr:
        (index, *_), *_ = s.limits
        result = sp.Integer(0)
        for term in sp.Add.make_args(sp.expand(s.function)):
            constant, rest = term.as_independent(index, as_Add=False)
            result += constant * sp.Sum(rest, *s.limits)
        return result

    return expr.replace(lambda e: isinstance(e, sp.Sum), split)


def on_index(expr: sp.Expr, base: sp.IndexedBase, value) -> sp.Expr:
    """Replace every `base[j]` by `value(j)`."""
    return expr.replace(
        lambda e: isinstance(e, sp.Indexed) and e.base == base, lambda e: value(e.indices[0])
    )


def inside_range(expr: sp.Expr) -> sp.Expr:
    """Take the `k ≤ n` branch of the Piecewise that `doit` makes of ∂/∂x_k Σ_i f(x_i)."""

    def branch(piecewise: sp.Piecewise) -> sp.Expr:
        (value, condition), *_ = piecewise.args
        if condition not in (sp.Le(K, N), sp.Ge(N, K), sp.true):
            raise ClaimFailed(f"unexpected condition {condition} (expected k <= n)")
        return value

    return expr.replace(lambda e: isinstance(e, sp.Piecewise), branch)


def partial(expr: sp.Expr, base: sp.IndexedBase) -> sp.Expr:
    """∂ expr / ∂ base[k] for an atom k in the range."""
    return inside_range(sp.diff(expr, base[K]).doit())


def is_zero(expr: sp.Expr, normalised: dict | None = None) -> bool:
    """True when `expr` simplifies to 0 after the exp/log rewrite, splitting the sums and
    the substitutions `normalised` (e.g. {Σ p: 1})."""
    try:
        expr = linear_sums(rewrite_exp_log(expr))
        if normalised:
            expr = expr.subs(normalised)
        return sp.simplify(expr) == 0
    except (StopIteration, ValueError, TypeError):  # sympy gave up: not a proof
        return False


def require_zero(expr: sp.Expr, what: str, normalised: dict | None = None) -> None:
    if not is_zero(expr, normalised):
        raise ClaimFailed(f"{what} (general n): does not simplify to 0")


# Closed forms over n atoms (as in theory.divergences, with sums over the index IX).


def tilted_risk(loss, tau, base) -> sp.Expr:
    """`TR_τ(ℓ; π) = (1/τ) log(Σ π_i e^{τℓ_i} / Σ π_i)`; `loss(j)`, `base(j)` give atom j."""
    return sp.log(total(base(IX) * sp.exp(tau * loss(IX))) / total(base(IX))) / tau


def rdv_objective(g, p, q, alpha) -> sp.Expr:
    """`J_α(g; P, Q) = (1/(α−1)) log Σ p_i e^{(α−1)g_i} − (1/α) log Σ q_i e^{αg_i}`."""
    real = sp.log(total(p(IX) * sp.exp((alpha - 1) * g(IX)))) / (alpha - 1)
    synthetic = sp.log(total(q(IX) * sp.exp(alpha * g(IX)))) / alpha
    return real - synthetic


def rescaled_renyi(p, q, alpha) -> sp.Expr:
    """`R_α(P‖Q) = log Σ p_i^α q_i^{1−α} / (α(α−1))`."""
    return sp.log(total(p(IX) ** alpha * q(IX) ** (1 - alpha))) / (alpha * (alpha - 1))
