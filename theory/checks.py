"""Shared symbolic machinery: assumption-carrying symbols and the equality checks.

Equality is decided by `sympy.simplify(lhs - rhs) == 0`, after `rewrite_exp_log`, a
rewrite that is valid under the symbols' assumptions (no `force=True`): it turns
`exp(k·log x)` into `x**k`, splits powers of products of positive factors, pulls common
factors out of sums inside logarithms and expands `log` of products. That is what lets
sympy see, e.g., that `log Σ_i p_i e^{(α−1)(log(p_i/q_i) + c)} = (α−1)c + log Σ_i p_i^α q_i^{1−α}`.
"""

from __future__ import annotations

import random

import sympy as sp

from theory.registry import ClaimFailed


def _normal_sum(expr: sp.Expr) -> sp.Expr:
    return sp.factor_terms(sp.powsimp(sp.expand(expr)))


def _rewrite_log(log_expr: sp.log) -> sp.Expr:
    numerator, denominator = sp.fraction(log_expr.args[0])
    if denominator != 1 and numerator.is_positive and denominator.is_positive:
        # log(a/b) = log a − log b for a, b > 0
        return sp.log(_normal_sum(numerator)) - sp.log(_normal_sum(denominator))
    return sp.log(_normal_sum(log_expr.args[0]))


def _rewrite_exp(exp_expr: sp.exp) -> sp.Expr:
    # exp(Σ_k c_k log x_k + rest) = Π_k x_k**c_k · exp(rest), valid for x_k > 0
    argument = sp.expand(sp.expand_log(exp_expr.args[0]))
    factors = []
    for term in sp.Add.make_args(argument):
        logs = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.log)]
        if len(logs) == 1 and logs[0].args[0].is_positive:
            factors.append(logs[0].args[0] ** (term / logs[0]))
        else:
            factors.append(sp.exp(term))
    return sp.Mul(*factors)


def rewrite_exp_log(expr: sp.Expr) -> sp.Expr:
    """Assumption-respecting normal form for sums of exponentials inside logarithms."""
    expr = expr.replace(lambda e: isinstance(e, sp.exp), _rewrite_exp)
    expr = sp.powsimp(sp.expand_power_base(sp.powdenest(expr)), combine="exp")
    expr = expr.replace(lambda e: isinstance(e, sp.log), _rewrite_log)
    return sp.expand_log(expr)


def _sample_value(symbol: sp.Symbol, rng: random.Random) -> sp.Rational:
    """A random rational value compatible with the symbol's assumptions."""
    magnitude = sp.Rational(rng.randint(30, 170), 100)
    if symbol.is_positive:
        return magnitude
    if symbol.is_nonzero:
        return magnitude * rng.choice((-1, 1))
    return magnitude - 1


def is_numerically_nonzero(expr: sp.Expr, trials: int = 3) -> bool:
    """True when `expr` is visibly nonzero (|value| > 1e-15 at 30 digits) at a random point.

    Only ever used to *refute* an identity quickly (a nonzero value is a counterexample),
    never to establish one.
    """
    rng = random.Random(0)
    symbols = sorted(expr.free_symbols, key=str)
    for _ in range(trials):
        point = {s: _sample_value(s, rng) for s in symbols}
        number = sp.N(expr.subs(point), 30)
        if number.is_number and number.is_finite and abs(number) > sp.Float("1e-15"):
            return True
    return False


def is_identity(lhs: sp.Expr, rhs: sp.Expr, *, rewrite: bool = True) -> bool:
    """True when `simplify(lhs − rhs) == 0`.

    With `rewrite=True` (default) the difference is first put through `rewrite_exp_log`, and
    plain `simplify` is the fallback; `rewrite=False` goes straight to plain `simplify`
    (faster where the expression has no exp-of-log structure to expose). A difference that
    is visibly nonzero at a random point is rejected before any simplification.
    """
    difference = sp.sympify(lhs - rhs)
    if is_numerically_nonzero(difference):
        return False
    if rewrite and sp.simplify(rewrite_exp_log(difference)) == 0:
        return True
    return sp.simplify(difference) == 0


def require_identity(lhs: sp.Expr, rhs: sp.Expr, what: str, *, rewrite: bool = True) -> None:
    """Raise `ClaimFailed` unless `lhs − rhs` simplifies to 0 (see `is_identity`)."""
    if not is_identity(lhs, rhs, rewrite=rewrite):
        raise ClaimFailed(f"{what}: lhs - rhs does not simplify to 0")


def require(condition: object, what: str) -> None:
    """Raise `ClaimFailed` unless `condition` is (sympy-)True."""
    if condition is not True and condition != sp.true:
        raise ClaimFailed(f"{what}: condition is {condition!r}")


def series_terms(expr: sp.Expr, x: sp.Symbol, order: int) -> sp.Expr:
    """Taylor polynomial of `expr` in `x` at 0 up to and including x**order.

    Terms with a negative power of x must have coefficients that simplify to 0 (e.g.
    `log(Σ p_i)/x` with Σ p_i = 1); otherwise there is no finite limit and `ClaimFailed` is
    raised. Those vanishing terms are dropped from the result.
    """
    polynomial = sp.expand(sp.series(expr, x, 0, order + 1).removeO())
    singular = sp.Add(
        *(t for t in sp.Add.make_args(polynomial) if t.as_coeff_exponent(x)[1].is_negative)
    )
    if singular != 0 and (
        is_numerically_nonzero(singular) or sp.simplify(sp.together(singular)) != 0
    ):
        raise ClaimFailed(f"series of {expr} in {x} has a pole: {singular}")
    return polynomial - singular


def positive_symbols(names: str) -> tuple[sp.Symbol, ...]:
    """`sympy.symbols(names, positive=True)` as a tuple."""
    return tuple(sp.symbols(names, positive=True, seq=True))


def real_symbols(names: str) -> tuple[sp.Symbol, ...]:
    """`sympy.symbols(names, real=True)` as a tuple."""
    return tuple(sp.symbols(names, real=True, seq=True))


def simplex_point(prefix: str, k: int) -> list[sp.Expr]:
    """A generic point of the open probability simplex with k atoms.

    `(1, s_1, …, s_{k−1}) / (1 + Σ s)` with `s_i > 0`: every coordinate is positive and they
    sum to 1, and sympy knows both from the assumptions alone.
    """
    s = positive_symbols(f"{prefix}1:{k}")
    total = 1 + sp.Add(*s)
    return [1 / total, *(x / total for x in s)]
