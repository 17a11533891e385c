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
  (0, True))` after `doit`; for an atom k of the range (1 ≤ k ≤ n) the first branch holds;
- `canonical_sums`: a sum over j = 1..n is renamed to the index i (a bound variable's name
  does not matter) and a sum of an index-free term c is n·c;
- `sum_series`: the Taylor polynomial in x of a smooth function of sums Σ_i f(i, x), term
  by term (see its docstring: every step is a sympy computation or a stated theorem).

Derivatives along a direction: where a gradient over n coordinates is needed, the claims
take d/dt F(θ + t v) at t = 0, which is Σ_k v_k ∂F/∂θ_k [stated: chain rule]; an identity
d/dt F(θ + t v)|₀ = Σ_k v_k G_k for every v gives ∂F/∂θ_k = G_k (v = e_k). Likewise
d²/dt² F(θ + t v)|₀ = vᵀ ∇²F v, and F is convex iff this is ≥ 0 for every θ, v [stated].
"""

from __future__ import annotations

import sympy as sp
from sympy.core.function import AppliedUndef

from theory.checks import rewrite_exp_log, series_terms
from theory.registry import ClaimFailed

N = sp.Symbol("n", integer=True, positive=True)
IX = sp.Symbol("i", integer=True, positive=True)
JX = sp.Symbol("j", integer=True, positive=True)  # a second summation index
K = sp.Symbol("k", integer=True, positive=True)


def positive_base(name: str) -> sp.IndexedBase:
    return sp.IndexedBase(name, positive=True)


def real_base(name: str) -> sp.IndexedBase:
    return sp.IndexedBase(name, real=True)


def total(summand: sp.Expr, index: sp.Symbol = IX) -> sp.Sum:
    """`Σ_{i=1}^n summand` (summand written in `index`, `IX` by default)."""
    return sp.Sum(summand, (index, 1, N))


def linear_sums(expr: sp.Expr) -> sp.Expr:
    """Split every sum over its expanded terms and pull index-free factors out of it."""

    def split_one(summand: sp.Expr, limit: tuple) -> sp.Expr:
        result = sp.Integer(0)
        for term in sp.Add.make_args(sp.expand(summand)):
            constant, rest = term.as_independent(limit[0], as_Add=False)
            result += constant * sp.Sum(rest, limit)
        return result

    def split(s: sp.Sum) -> sp.Expr:
        # Σ_{(j, i)} f = Σ_i (Σ_j f): split the innermost sum first, then each outer one
        # (sympy writes a nested sum as one Sum with several limits, innermost first).
        result = s.function
        for limit in s.limits:
            result = split_one(result, limit)
        return result

    return expr.replace(lambda e: isinstance(e, sp.Sum), split)


def canonical_sums(expr: sp.Expr) -> sp.Expr:
    """Rename the index of every single sum Σ_{j=1}^n f(j) to `IX` (when f has no free `IX`)
    and evaluate a sum of an index-free term, Σ_{j=1}^n c = n c."""

    def rename(s: sp.Sum) -> sp.Expr:
        ((index, low, high),) = s.limits
        if not s.function.has(index):
            return s.function * (high - low + 1)
        if index == IX or IX in s.function.free_symbols or s.function.has(sp.Sum):
            return s
        return sp.Sum(s.function.xreplace({index: IX}), (IX, low, high))

    return expr.replace(lambda e: isinstance(e, sp.Sum) and len(e.limits) == 1, rename)


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
        expr = canonical_sums(linear_sums(rewrite_exp_log(expr)))
        if normalised:
            expr = expr.subs(normalised)
        return sp.simplify(expr) == 0
    except (StopIteration, ValueError, TypeError):  # sympy gave up: not a proof
        return False


def require_zero(expr: sp.Expr, what: str, normalised: dict | None = None) -> None:
    if not is_zero(expr, normalised):
        raise ClaimFailed(f"{what} (general n): does not simplify to 0")


def sum_series(
    expr: sp.Expr, x: sp.Symbol, order: int, sum_order: int, normalised: dict | None = None
) -> sp.Expr:
    """Taylor polynomial in `x` at 0, up to x**order, of a smooth function of `x` and of
    finite sums `Σ_{i=1}^n f(i, x)`, n symbolic. Every step is checked or a stated theorem:

    (1) per term: sympy's `series` of the generic summand, f(i, x) = Σ_{k ≤ m} c_k(i) x^k +
        x^{m+1} ρ_i(x) with ρ_i smooth [stated: Taylor's theorem], m = `sum_order`;
    (2) linearity of finite sums: Σ_i f(i, x) = Σ_{k ≤ m} x^k Σ_i c_k(i) + x^{m+1} ρ(x) with
        ρ = Σ_i ρ_i smooth (n is finite); each Σ_i c_k(i) is named by a fresh symbol (a sum
        in `normalised`, e.g. Σ p = 1, by its value) and ρ by an undefined function ρ(x);
    (3) the outer expression, a function of finitely many symbols, is expanded with sympy's
        `series`; a negative power of x that does not cancel fails the claim
        (`checks.series_terms`), and so does any ρ left in the result — that is the check
        that m is large enough for the remainders not to reach x**order;
    (4) the sums are substituted back.
    """
    normalised = normalised or {}
    names: dict[sp.Sum, sp.Symbol] = {}
    replacement = {}
    for number, s in enumerate(sorted(expr.atoms(sp.Sum), key=sp.default_sort_key)):
        polynomial = sp.expand(sp.series(s.function, x, 0, sum_order + 1).removeO())
        value = sp.Integer(0)
        for k in range(sum_order + 1):
            coefficient = polynomial.coeff(x, k)
            if coefficient == 0:
                continue
            partial_sum = sp.Sum(coefficient, *s.limits)
            if partial_sum in normalised:
                value += normalised[partial_sum] * x**k
                continue
            if partial_sum not in names:
                positive = True if coefficient.is_positive else None
                names[partial_sum] = sp.Symbol(f"S_{len(names)}", real=True, positive=positive)
            value += names[partial_sum] * x**k
        if s.function.has(x):
            value += x ** (sum_order + 1) * sp.Function(f"rho_{number}")(x)
        replacement[s] = value
    try:
        polynomial = series_terms(expr.xreplace(replacement), x, order)
    except ClaimFailed as error:
        raise ClaimFailed(f"sum_series (general n): {error}") from error
    if polynomial.atoms(AppliedUndef):
        raise ClaimFailed(f"sum_series (general n): a remainder reaches order {order}")
    return polynomial.xreplace({symbol: s for s, symbol in names.items()})


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


def dv_objective(g, p, q) -> sp.Expr:
    """Donsker–Varadhan `Σ_i p_i g_i − log Σ_i q_i e^{g_i}`."""
    return total(p(IX) * g(IX)) - sp.log(total(q(IX) * sp.exp(g(IX))))


def pearson_objective(t, p, q) -> sp.Expr:
    """Pearson-χ² variational form `Σ_i p_i T_i − Σ_i q_i (T_i + T_i²/4)`."""
    return total(p(IX) * t(IX)) - total(q(IX) * (t(IX) + t(IX) ** 2 / 4))


def jensen_shannon(p, q) -> sp.Expr:
    """`JS(P, Q) = ½ Σ_i p_i log(2p_i/(p_i + q_i)) + ½ Σ_i q_i log(2q_i/(p_i + q_i))`."""
    p_i, q_i = p(IX), q(IX)
    return (
        total(p_i * sp.log(2 * p_i / (p_i + q_i))) + total(q_i * sp.log(2 * q_i / (p_i + q_i)))
    ) / 2


def ess_fraction(weight) -> sp.Expr:
    """`ESS/n = 1/(n Σ_i w_i²)` for normalised weights; `weight(j)` gives w_j."""
    return 1 / (N * total(weight(IX) ** 2))
