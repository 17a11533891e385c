"""Bindings: every claim evaluated on the library `iris.losses`, at the claim's witness.

A binding computes, in float64, the quantity a claim is about with the library's own
function (`iris.losses.iris_loss`, `tilted_risk`, …) and with the claim's closed form
(`theory.divergences`, evaluated exactly with sympy rationals and 30-digit floats), and
returns the largest absolute deviation; `python -m theory.verify` fails the claim when it
exceeds the binding's tolerance, or when a binding raises (an inequality the library
violates). So a bug in the library fails `theory.verify`, not only the test suite.

Witness: the discrete distributions P = (1/2, 1/3, 1/6) (data) and Q = (1/4, 1/4, 1/2)
(previous iterate) as exact-expectation batches — the annotated batch holds outcome y in
proportion p_y (atoms 0, 0, 0, 1, 1, 2), the synthetic batch in proportion q_y
(0, 1, 2, 2) — so every batch mean the library takes is an exact expectation under P or Q;
the optimal discriminator g* = log(P/Q) and a generic one G. Library functions are looked
up on `iris.losses` at call time, so a monkeypatched (wrong) loss is what gets evaluated.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import sympy as sp
import torch

import iris.losses as lib
from theory import divergences as th
from theory.registry import ClaimFailed

F64 = torch.float64
P = (sp.Rational(1, 2), sp.Rational(1, 3), sp.Rational(1, 6))
Q = (sp.Rational(1, 4), sp.Rational(1, 4), sp.Rational(1, 2))
P_ATOMS = torch.tensor([0, 0, 0, 1, 1, 2])
Q_ATOMS = torch.tensor([0, 1, 2, 2])
P_T = torch.tensor([float(x) for x in P], dtype=F64)
Q_T = torch.tensor([float(x) for x in Q], dtype=F64)
G_STAR = torch.log(P_T / Q_T)
G = torch.tensor([0.4, -0.3, 0.9], dtype=F64)  # a generic discriminator
LOSSES = torch.tensor([0.3, -1.2, 2.0, 0.7, -0.4], dtype=F64)  # generic per-sample losses
COUNTS = torch.tensor([2, 1, 3, 1, 4])  # integer base weights π (combine_tilted_risks)
ORDERS = (0.25, 0.5, 2.0, 3.0)


@dataclasses.dataclass(frozen=True)
class Binding:
    """One claim ↔ library tie: `evaluate()` returns the max |library − closed form|."""

    claim: str
    functions: tuple[str, ...]
    witness: str
    tolerance: float
    evaluate: Callable[[], float]


_BINDINGS: dict[str, list[Binding]] = {}


def bind(claim: str, *, functions: tuple[str, ...], witness: str, tolerance: float) -> Callable:
    """Register the decorated function as a binding of `claim`."""

    def register(fn: Callable[[], float]) -> Callable[[], float]:
        _BINDINGS.setdefault(claim, []).append(Binding(claim, functions, witness, tolerance, fn))
        return fn

    return register


def bindings_of(claim: str) -> list[Binding]:
    return list(_BINDINGS.get(claim, []))


def all_bindings() -> dict[str, list[Binding]]:
    return {name: list(b) for name, b in _BINDINGS.items()}


def run_binding(binding: Binding) -> float:
    """The binding's deviation; ClaimFailed if it exceeds the tolerance (or is NaN)."""
    deviation = float(binding.evaluate())
    if not deviation <= binding.tolerance:
        raise ClaimFailed(
            f"library {', '.join(binding.functions)} deviates from the claim by "
            f"{deviation:.3e} > {binding.tolerance:.0e} on {binding.witness}"
        )
    return deviation


# --- helpers ----------------------------------------------------------------------------


def num(expr) -> float:
    return float(sp.N(expr, 30))


def sym(values: torch.Tensor) -> list[sp.Float]:
    return [sp.Float(x, 30) for x in values.tolist()]


def population_iris(g: torch.Tensor, alpha: float, beta: float = 1.0, data=P_ATOMS):
    """`iris_loss` on the exact-expectation batches with rewards g (log-ratios g/β)."""
    return lib.iris_loss(g[data] / beta, g[Q_ATOMS] / beta, alpha=alpha, beta=beta)


def rescaled_renyi(alpha: float) -> float:
    return num(th.rescaled_renyi(P, Q, sp.nsimplify(alpha)))


def softmax_family(theta: torch.Tensor, alpha: float, beta: float, data=P_ATOMS):
    """IRIS loss of p_θ = softmax(θ) against Q = p_θt (θt = log Q), exact expectations."""
    logratio = torch.log_softmax(theta, -1) - torch.log(Q_T)
    return lib.iris_loss(logratio[data], logratio[Q_ATOMS], alpha=alpha, beta=beta)


def grad(fn: Callable[[torch.Tensor], torch.Tensor], at: torch.Tensor) -> torch.Tensor:
    x = at.clone().requires_grad_()
    (g,) = torch.autograd.grad(fn(x), x)
    return g


def max_abs(*differences) -> float:
    """The largest |difference|; NaN or inf anywhere gives inf (`max` would skip a NaN)."""
    values = [float(torch.as_tensor(d, dtype=F64).abs().max()) for d in differences]
    return math.inf if any(not math.isfinite(v) for v in values) else max(values)


def require(condition: bool, what: str) -> None:
    if not condition:
        raise ClaimFailed(what)


# --- theory.tilted_risk -----------------------------------------------------------------


@bind(
    "tilted_risk_gradient_is_softmax",
    functions=("tilted_risk", "combine_tilted_risks"),
    witness="5 losses, τ ∈ {−1.3, 0.8}; base weights π = counts",
    tolerance=1e-14,
)
def _tr_gradient() -> float:
    deviations = []
    for tau in (-1.3, 0.8):
        expected = th.tilted_weights(sym(LOSSES), sp.Float(tau, 30))
        g = grad(lambda x, tau=tau: lib.tilted_risk(x, tau), LOSSES)
        deviations.append(g - torch.tensor([num(e) for e in expected], dtype=F64))
        expected = th.tilted_weights(sym(LOSSES), sp.Float(tau, 30), COUNTS.tolist())
        g = grad(lambda x, tau=tau: lib.combine_tilted_risks(x, COUNTS, tau), LOSSES)
        deviations.append(g - torch.tensor([num(e) for e in expected], dtype=F64))
    return max_abs(*deviations)


@bind(
    "tilted_risk_small_tilt",
    functions=("tilted_risk", "combine_tilted_risks"),
    witness="5 losses, τ ∈ {0, ±1e-7}, uniform and count weights",
    tolerance=1e-13,
)
def _tr_small_tilt() -> float:
    deviations = []
    for weights in (None, COUNTS.tolist()):
        pi = [1] * len(LOSSES) if weights is None else weights
        ell = sym(LOSSES)
        centre = num(th.expectation(pi, ell) / sum(pi))
        half_var = num(th.variance(ell, pi)) / 2

        def risk(tau, weights=weights):
            if weights is None:
                return lib.tilted_risk(LOSSES, tau).item()
            return lib.combine_tilted_risks(LOSSES, COUNTS, tau).item()

        deviations.append(risk(0.0) - centre)
        for tau in (1e-7, -1e-7):  # the remainder τ²κ₃/6 is ~1e-15
            deviations.append(risk(tau) - (centre + tau * half_var))
    return max_abs(deviations)


@bind(
    "tilted_risk_shift_equivariance",
    functions=("tilted_risk", "tilt_weights"),
    witness="5 losses, τ ∈ {−2, 0, 0.7}, c ∈ {−3, 5.25}",
    tolerance=1e-12,
)
def _tr_shift() -> float:
    deviations = []
    for tau in (-2.0, 0.0, 0.7):
        for c in (-3.0, 5.25):
            deviations.append(lib.tilted_risk(LOSSES + c, tau) - lib.tilted_risk(LOSSES, tau) - c)
            deviations.append(lib.tilt_weights(LOSSES + c, tau) - lib.tilt_weights(LOSSES, tau))
    return max_abs(*deviations)


def _kl_over_tau2(tau: float, weights=None) -> float:
    w = th.tilted_weights(sym(LOSSES), sp.Float(tau, 30), weights)
    pi = [1] * len(LOSSES) if weights is None else weights
    return num(th.kl_divergence(w, [sp.Integer(x) / sum(pi) for x in pi]) / sp.Float(tau, 30) ** 2)


@bind(
    "tilted_risk_tilt_derivative_is_kl",
    functions=("tilted_risk", "combine_tilted_risks"),
    witness="5 losses, τ ∈ {−1.5, 0.3, 2.5}, 5-point stencil h = 1e-3",
    tolerance=1e-9,
)
def _tr_tilt_derivative() -> float:
    deviations = []
    h = 1e-3
    for tau in (-1.5, 0.3, 2.5):
        for weights in (None, COUNTS.tolist()):

            def risk(t, weights=weights):
                if weights is None:
                    return lib.tilted_risk(LOSSES, t).item()
                return lib.combine_tilted_risks(LOSSES, COUNTS, t).item()

            slope = (
                -risk(tau + 2 * h) + 8 * risk(tau + h) - 8 * risk(tau - h) + risk(tau - 2 * h)
            ) / (12 * h)
            deviations.append(slope - _kl_over_tau2(tau, weights))
    return max_abs(deviations)


@bind(
    "gibbs_inequality",
    functions=("tilt_weights", "tilted_risk"),
    witness="KL(softmax(τℓ) ‖ uniform) = τ E_w ℓ − τ TR_τ from the library, τ ∈ {−1, 0.5, 3}",
    tolerance=1e-13,
)
def _gibbs() -> float:
    deviations = []
    for tau in (-1.0, 0.5, 3.0):
        w = lib.tilt_weights(LOSSES, tau)
        kl = tau * (w * LOSSES).sum().item() - tau * lib.tilted_risk(LOSSES, tau).item()
        require(kl >= 0, f"library KL(w_τ‖uniform) = {kl} < 0 at τ = {tau}")
        deviations.append(kl - _kl_over_tau2(tau) * tau**2)
    return max_abs(deviations)


@bind(
    "tilted_risk_monotone_and_bounded",
    functions=("tilted_risk",),
    witness="5 losses, τ on a grid of 161 points in [−40, 40]; τ = ±500, ±1e9",
    tolerance=1e-8,
)
def _tr_monotone() -> float:
    taus = torch.linspace(-40.0, 40.0, 161, dtype=F64)
    risks = torch.stack([lib.tilted_risk(LOSSES, t.item()) for t in taus])
    require(bool((risks.diff() >= -1e-13).all()), "library TR_τ decreases in τ")
    lo, hi = LOSSES.min(), LOSSES.max()
    require(
        bool((risks >= lo - 1e-13).all() and (risks <= hi + 1e-13).all()), "TR outside [min, max]"
    )
    # Large tilts (|τ(ℓ − mean)| up to ~1e3, the log-sum-exp route) against the closed form.
    large = [
        lib.tilted_risk(LOSSES, tau).item() - num(th.tilted_risk(sym(LOSSES), sp.Integer(tau)))
        for tau in (-500, 500)
    ]
    # |TR_τ − max| ≤ log(n)/τ for τ > 0: 1.6e-9 at τ = 1e9.
    return max_abs(lib.tilted_risk(LOSSES, 1e9) - hi, lib.tilted_risk(LOSSES, -1e9) - lo, large)


# --- theory.rdv ----------------------------------------------------------------------


@bind(
    "rdv_stationary_point",
    functions=("iris_loss",),
    witness="P, Q batches, g* + c, c ∈ {0, 0.7}, α ∈ {0.25, 0.5, 2, 3}",
    tolerance=1e-14,
)
def _rdv_stationary() -> float:
    return max_abs(
        *(
            grad(lambda g, a=alpha: population_iris(g, a).loss, G_STAR + c)
            for alpha in ORDERS
            for c in (0.0, 0.7)
        )
    )


@bind(
    "rdv_optimal_value",
    functions=("iris_loss",),
    witness="P, Q batches at g*, α ∈ {0.25, 0.5, 2, 3}, β ∈ {1, 0.1}; two micro-batches",
    tolerance=1e-14,
)
def _rdv_value() -> float:
    deviations = []
    for alpha in ORDERS:
        for beta in (1.0, 0.1):
            out = population_iris(G_STAR, alpha, beta)
            deviations += [
                -out.loss.item() - rescaled_renyi(alpha),
                out.metrics["variational_estimate"].item() - rescaled_renyi(alpha),
            ]
        # The same value summed over two micro-batches with whole-batch normalisers.
        real, generated = G_STAR[P_ATOMS], G_STAR[Q_ATOMS]
        real_n, gen_n = lib.iris_normalizers(real, generated, alpha=alpha)
        shares = [
            lib.iris_loss(r, s, alpha=alpha, real_normalizer=real_n, generated_normalizer=gen_n)
            for r, s in ((real[:2], generated[:3]), (real[2:], generated[3:]))
        ]
        total_share = sum(share.loss.item() for share in shares)
        weights = torch.cat([share.real_weights for share in shares])
        whole = population_iris(G_STAR, alpha)
        deviations += [-total_share - rescaled_renyi(alpha), weights - whole.real_weights]
    return max_abs(*deviations)


@bind(
    "rdv_shift_invariance",
    functions=("iris_loss",),
    witness="P, Q batches at G + c, c ∈ {−3, 0.5, 10}",
    tolerance=1e-13,
)
def _rdv_shift() -> float:
    return max_abs(
        *(
            population_iris(G + c, alpha).loss - population_iris(G, alpha).loss
            for alpha in ORDERS
            for c in (-3.0, 0.5, 10.0)
        )
    )


@bind(
    "rdv_gap_decomposition",
    functions=("iris_loss", "combine_tilted_risks"),
    witness="P, Q batches at G; the gap TR_α(h; π) − TR_{α−1}(h; π) in sympy",
    tolerance=1e-13,
)
def _rdv_gap() -> float:
    deviations = []
    h = G - G_STAR
    for alpha in ORDERS:
        a = sp.nsimplify(alpha)
        pi = [pi_**a * qi ** (1 - a) for pi_, qi in zip(P, Q, strict=True)]
        gap = num(th.tilted_risk(sym(h), a, pi) - th.tilted_risk(sym(h), a - 1, pi))
        require(gap >= 0, f"gap {gap} < 0")
        deviations.append(-population_iris(G, alpha).loss.item() - (rescaled_renyi(alpha) - gap))
    return max_abs(deviations)


@bind(
    "rdv_global_maximum",
    functions=("iris_loss",),
    witness="P, Q batches; 40 perturbations of g* per order, α ∈ {0.25, 0.5, 2, 3}",
    tolerance=1e-14,
)
def _rdv_max() -> float:
    gen = torch.Generator().manual_seed(20604)
    deviations = []
    for alpha in ORDERS:
        bound = rescaled_renyi(alpha)
        deviations.append(-population_iris(G_STAR, alpha).loss.item() - bound)
        for scale in (1e-2, 0.3, 2.0):
            for _ in range(13):
                g = G_STAR + scale * torch.randn(3, generator=gen, dtype=F64)
                require(
                    -population_iris(g, alpha).loss.item() < bound,
                    f"−iris_loss ≥ R_α away from g* (α = {alpha})",
                )
    return max_abs(deviations)


# --- theory.limits --------------------------------------------------------------------


@bind(
    "alpha_one_objective_limit",
    functions=("iris_loss",),
    witness="P, Q batches at G, α ∈ {1, 1 ± 1e-9}; slope in α at 1 (h = 1e-4)",
    tolerance=1e-8,
)
def _alpha_one_objective() -> float:
    g = sym(G)
    dv = num(th.dv_objective(g, P, Q))
    deviations = [population_iris(G, a).loss.item() + dv for a in (1.0, 1.0 - 1e-9, 1.0 + 1e-9)]
    first = num(th.variance(g, P) / 2 - th.kl_divergence(th.tilted_weights(g, 1, Q), Q))
    h = 1e-4
    slope = -(population_iris(G, 1 + h).loss - population_iris(G, 1 - h).loss).item() / (2 * h)
    deviations.append((slope - first) * 1e-2)  # central difference: O(h²) = 1e-8 · J'''
    return max_abs(deviations)


@bind(
    "alpha_one_renyi_limit",
    functions=("iris_loss",),
    witness="P, Q batches at g*, α ∈ {1, 1 ± 1e-9}",
    tolerance=1e-9,
)
def _alpha_one_renyi() -> float:
    kl = num(th.kl_divergence(P, Q))
    return max_abs(
        [-population_iris(G_STAR, a).loss.item() - kl for a in (1.0, 1 - 1e-9, 1 + 1e-9)]
    )


@bind(
    "alpha_zero_objective_limit",
    functions=("iris_loss",),
    witness="P, Q batches at G, α ∈ {1e-12, 1e-9}",
    tolerance=1e-8,
)
def _alpha_zero_objective() -> float:
    reverse = num(th.reverse_dv_objective(sym(G), P, Q))
    return max_abs([population_iris(G, a).loss.item() + reverse for a in (1e-12, 1e-9)])


@bind(
    "alpha_zero_renyi_limit",
    functions=("iris_loss",),
    witness="P, Q batches at g*, α ∈ {1e-12, 1e-9}",
    tolerance=1e-8,
)
def _alpha_zero_renyi() -> float:
    reverse_kl = num(th.kl_divergence(Q, P))
    return max_abs([-population_iris(G_STAR, a).loss.item() - reverse_kl for a in (1e-12, 1e-9)])


# --- theory.special_orders, theory.duality ----------------------------------------------


@bind(
    "half_order_symmetry",
    functions=("iris_loss",),
    witness="r⁺ = G[P atoms], r⁻ = G[Q atoms], β = 0.7; closed form in sympy",
    tolerance=1e-13,
)
def _half_symmetry() -> float:
    real, generated = G[P_ATOMS], G[Q_ATOMS]
    a = lib.iris_loss(real, generated, alpha=0.5, beta=0.7)
    b = lib.iris_loss(-generated, -real, alpha=0.5, beta=0.7)
    g = sym(0.7 * G)
    closed = -num(
        -2 * sp.log(th.expectation(P, [sp.exp(-x / 2) for x in g]))
        - 2 * sp.log(th.expectation(Q, [sp.exp(x / 2) for x in g]))
    )
    return max_abs(
        a.loss - b.loss,
        a.real_weights - b.generated_weights,
        a.generated_weights - b.real_weights,
        a.loss.item() - closed,
    )


@bind(
    "half_order_bhattacharyya",
    functions=("iris_loss",),
    witness="P, Q batches at g*, α = ½",
    tolerance=1e-14,
)
def _half_bc() -> float:
    bc = num(th.bhattacharyya_coefficient(P, Q))
    return max_abs(-population_iris(G_STAR, 0.5).loss.item() + 4 * math.log(bc))


@bind(
    "order_two_chi_square",
    functions=("iris_loss",),
    witness="P, Q batches at g*, α = 2",
    tolerance=1e-14,
)
def _order_two() -> float:
    chi2 = num(th.chi_square(P, Q))
    return max_abs(-population_iris(G_STAR, 2.0).loss.item() - 0.5 * math.log1p(chi2))


@bind(
    "renyi_duality",
    functions=("iris_loss",),
    witness="−iris_loss(−g*; Q, P; 1 − α) vs R_α(P‖Q), α ∈ {0.25, 0.5, 0.75}",
    tolerance=1e-14,
)
def _renyi_duality() -> float:
    deviations = []
    for alpha in (0.25, 0.5, 0.75):
        swapped = lib.iris_loss(-G_STAR[Q_ATOMS], -G_STAR[P_ATOMS], alpha=1 - alpha)
        deviations.append(-swapped.loss.item() - rescaled_renyi(alpha))
    return max_abs(deviations)


@bind(
    "objective_duality",
    functions=("iris_loss",),
    witness="r⁺ = G[P atoms], r⁻ = G[Q atoms], α ∈ {0.25, 0.6}; J_α in sympy",
    tolerance=1e-13,
)
def _objective_duality() -> float:
    deviations = []
    real, generated = G[P_ATOMS], G[Q_ATOMS]
    for alpha in (0.25, 0.6):
        a = lib.iris_loss(real, generated, alpha=alpha)
        b = lib.iris_loss(-generated, -real, alpha=1 - alpha)
        closed = -num(th.rdv_objective(sym(G), P, Q, sp.nsimplify(alpha)))
        deviations += [
            a.loss - b.loss,
            a.real_weights - b.generated_weights,
            a.generated_weights - b.real_weights,
            a.loss.item() - closed,
        ]
    return max_abs(*deviations)


# --- theory.fixed_point -------------------------------------------------------------------


THETA = torch.log(Q_T) + torch.tensor([0.5, -0.2, 0.1], dtype=F64)  # a generic θ ≠ θt


@bind(
    "iris_gradient_importance_weights",
    functions=("iris_loss",),
    witness="softmax family at θt + (0.5, −0.2, 0.1), α ∈ {0.3, 1, 2}, β ∈ {0.1, 1}",
    tolerance=1e-14,
)
def _importance_weights() -> float:
    deviations = []
    p_theta = torch.softmax(THETA, -1)
    r_unit = torch.log_softmax(THETA, -1) - torch.log(Q_T)
    jacobian = torch.eye(3, dtype=F64) - p_theta  # ∇_θ log p_θ(y), row y
    for alpha in (0.3, 1.0, 2.0):
        for beta in (0.1, 1.0):
            r = beta * r_unit
            w_plus = P_T * torch.exp((alpha - 1) * r)
            w_minus = Q_T * torch.exp(alpha * r)
            w_plus, w_minus = w_plus / w_plus.sum(), w_minus / w_minus.sum()
            expected = beta * ((w_minus - w_plus)[:, None] * jacobian).sum(0)
            got = grad(lambda t, a=alpha, b=beta: softmax_family(t, a, b).loss, THETA)
            deviations.append(got - expected)
    return max_abs(*deviations)


@bind(
    "fixed_point_gradient",
    functions=("iris_loss",),
    witness="softmax family at θt = log Q, data P and data Q, α ∈ {0.3, 1, 2}, β ∈ {0.1, 1}",
    tolerance=1e-14,
)
def _fixed_point_gradient() -> float:
    deviations = []
    for alpha in (0.3, 1.0, 2.0):
        for beta in (0.1, 1.0):
            for atoms, data in ((P_ATOMS, P_T), (Q_ATOMS, Q_T)):
                got = grad(
                    lambda t, a=alpha, b=beta, d=atoms: softmax_family(t, a, b, d).loss,
                    torch.log(Q_T),
                )
                deviations.append(got - beta * (Q_T - data))
    return max_abs(*deviations)


@bind(
    "fixed_point_global_minimum",
    functions=("iris_loss",),
    witness="softmax family, data = Q; θt and θt + (0.5, −0.2, 0.1); gap in sympy",
    tolerance=1e-14,
)
def _fixed_point_minimum() -> float:
    deviations = []
    for alpha in (0.3, 1.0, 2.0):
        deviations.append(softmax_family(torch.log(Q_T), alpha, 1.0, Q_ATOMS).loss.item())
        loss = softmax_family(THETA, alpha, 1.0, Q_ATOMS).loss.item()
        r = sym(torch.log_softmax(THETA, -1) - torch.log(Q_T))
        a = sp.nsimplify(alpha)
        gap = (
            num(th.tilted_risk(r, a, Q) - th.tilted_risk(r, a - 1, Q))
            if alpha != 1.0
            else num(th.tilted_risk(r, 1, Q) - th.expectation(Q, r))
        )
        require(loss > 0, f"iris_loss = {loss} ≤ 0 away from θt with P = p_θt")
        deviations.append(loss - gap)
    return max_abs(deviations)


@bind(
    "nonparametric_minimiser",
    functions=("iris_loss",),
    witness="softmax family at θ* = log Q + log(P/Q)/β, α ∈ {0.3, 2}, β ∈ {0.25, 3}",
    tolerance=1e-13,
)
def _nonparametric() -> float:
    deviations = []
    for alpha in (0.3, 2.0):
        for beta in (0.25, 3.0):
            theta = torch.log(Q_T) + torch.log(P_T / Q_T) / beta
            deviations.append(grad(lambda t, a=alpha, b=beta: softmax_family(t, a, b).loss, theta))
            deviations.append(softmax_family(theta, alpha, beta).loss + rescaled_renyi(alpha))
    return max_abs(*deviations)


# --- theory.concentration -----------------------------------------------------------------


def _gaussian_quantiles(n: int, mu: float, sigma: float) -> torch.Tensor:
    """Deterministic N(μ, σ²) sample: the quantiles at (i − ½)/n (no Monte-Carlo noise)."""
    u = (torch.arange(n, dtype=F64) + 0.5) / n
    return mu + sigma * torch.special.ndtri(u)


def _sample_ess(r: torch.Tensor, tau: float) -> float:
    """(mean e^{τr})² / mean e^{2τr} of the sample, naively in float64 (shifted by max)."""
    e = torch.exp(tau * (r - r.max()))
    return (e.mean() ** 2 / (e * e).mean()).item()


def _ess_check(out, real, generated, alpha, sigma, limit_tolerance=5e-3) -> list[float]:
    """Library ESS/n vs the sample formula (returned) and vs the limit e^{−τ²σ²} (required:
    the quantile sample's discretisation error of the tails is ~2e-3 at τσ = 1)."""
    deviations = []
    for metric, tau, r in (
        ("real_ess_fraction", alpha - 1, real),
        ("generated_ess_fraction", alpha, generated),
    ):
        got = out.metrics[metric].item()
        deviations.append(got - _sample_ess(r, tau))
        limit = math.exp(-(tau**2) * sigma**2)
        require(
            abs(got / limit - 1) < limit_tolerance,
            f"{metric} = {got} is not e^(-tau^2 sigma^2) = {limit} (α = {alpha})",
        )
    return deviations


@bind(
    "gaussian_ess_fraction",
    functions=("iris_loss",),
    witness="200 000 Gaussian quantiles, σ = 0.5, tilts α − 1 and α, α ∈ {0.5, 2}",
    tolerance=1e-12,
)
def _gaussian_ess() -> float:
    deviations = []
    n, sigma = 200_000, 0.5
    real, generated = _gaussian_quantiles(n, 0.3, sigma), _gaussian_quantiles(n, -1.0, sigma)
    for alpha in (0.5, 2.0):
        out = lib.iris_loss(real, generated, alpha=alpha)
        deviations += _ess_check(out, real, generated, alpha, sigma)
    return max_abs(deviations)


@bind(
    "iris_tilts_ess",
    functions=("iris_loss",),
    witness="200 000 Gaussian quantiles, σ = 0.5: min(ESS⁺, ESS⁻)/n ≥ e^{−σ²} iff α ∈ [0, 1]",
    tolerance=1e-12,
)
def _tilts_ess() -> float:
    n, sigma = 200_000, 0.5
    r = _gaussian_quantiles(n, 0.0, sigma)
    deviations = []
    for alpha in (0.25, 0.5, 1.0, 1.5, 2.0):
        out = lib.iris_loss(r, r, alpha=alpha)
        deviations += _ess_check(out, r, r, alpha, sigma)
        worst = min(
            out.metrics["real_ess_fraction"].item(), out.metrics["generated_ess_fraction"].item()
        )
        inside = worst >= math.exp(-(sigma**2)) * (1 - 5e-3)
        require(inside == (alpha <= 1.0), f"ESS criterion wrong at α = {alpha}")
    return max_abs(deviations)


# --- theory.regimes -------------------------------------------------------------------


@bind(
    "near_fixed_point_weights",
    functions=("iris_loss", "spin_loss", "space_loss", "spif_loss"),
    witness="zero log-ratios (n = 4); IRIS and SPIN weights at log-ratios 1e-4·G",
    tolerance=1e-8,
)
def _near_fixed_point() -> float:
    n, beta = 4, 0.5
    zeros = torch.zeros(n, dtype=F64)
    cases = [(lib.iris_loss(zeros, zeros, alpha=a, beta=beta), 1.0) for a in (0.3, 2.0)]
    cases.append((lib.spin_loss(zeros, zeros, beta=beta), 0.5))
    cases += [(lib.space_loss(zeros, zeros, mu=mu, beta=beta), mu / (1 + mu)) for mu in (0.5, 3.0)]
    cases.append((lib.spif_loss(zeros, zeros, beta=beta, bound=2.0), 2.0))
    deviations = []
    for out, c in cases:
        deviations += [out.real_weights - c / n, out.generated_weights - c / n]
    eps = 1e-4
    real = eps * torch.tensor([0.4, -0.3, 0.9, 0.1], dtype=F64)
    generated = eps * torch.tensor([-0.2, 0.5, 0.0, -0.6], dtype=F64)
    alpha = 2.0
    out = lib.iris_loss(real, generated, alpha=alpha, beta=beta)
    deviations.append(out.real_weights - (1 + (alpha - 1) * beta * (real - real.mean())) / n)
    deviations.append(
        out.generated_weights - (1 + alpha * beta * (generated - generated.mean())) / n
    )
    out = lib.spin_loss(real, generated, beta=beta)
    deviations.append(out.real_weights - (1 - beta * (real - generated) / 2) / (2 * n))
    return max_abs(*deviations)


@bind(
    "shared_optimal_discriminator",
    functions=("space_loss", "spin_loss", "iris_loss"),
    witness="P, Q batches (all P×Q pairs for SPIN) at g* (+ c where allowed)",
    tolerance=1e-14,
)
def _shared_optimum() -> float:
    pairs_real = P_ATOMS.repeat_interleave(len(Q_ATOMS))
    pairs_generated = Q_ATOMS.repeat(len(P_ATOMS))
    losses = (
        lambda g: lib.space_loss(g[P_ATOMS], g[Q_ATOMS], mu=0.5).loss,
        lambda g: lib.space_loss(g[P_ATOMS], g[Q_ATOMS], mu=4.0).loss,
        lambda g: lib.spin_loss(g[pairs_real] + 0.8, g[pairs_generated] + 0.8, beta=1.0).loss,
        lambda g: lib.iris_loss(g[P_ATOMS] - 2.0, g[Q_ATOMS] - 2.0, alpha=1.0).loss,
    )
    dv_value = lib.iris_loss(G_STAR[P_ATOMS], G_STAR[Q_ATOMS], alpha=1.0).loss.item()
    return max_abs(*(grad(fn, G_STAR) for fn in losses), dv_value + num(th.kl_divergence(P, Q)))


@bind(
    "pearson_chi2_variational",
    functions=("spif_loss",),
    witness="P, Q batches, bounded reward c tanh(β lr/c) = g*, β = 0.1, c = 2",
    tolerance=1e-13,
)
def _pearson() -> float:
    beta, bound = 0.1, 2.0
    logratio = bound * torch.atanh(G_STAR / bound) / beta
    out = lib.spif_loss(logratio[P_ATOMS], logratio[Q_ATOMS], beta=beta, bound=bound)
    real, generated = (logratio[P_ATOMS].requires_grad_(), logratio[Q_ATOMS].requires_grad_())
    graded = lib.spif_loss(real, generated, beta=beta, bound=bound)
    d_real, d_generated = torch.autograd.grad(graded.loss, (real, generated))
    contract = max_abs(  # weights = ∓(1/β) ∂loss/∂lr (iris.losses' weight contract)
        graded.real_weights + d_real / beta, graded.generated_weights - d_generated / beta
    )
    return max_abs(
        contract,
        out.metrics["chi2_estimate"].item() - num(th.chi_square(P, Q)),
        out.loss.item() + num(th.chi_square(P, Q)),
    )


@bind(
    "spif_linearises_order_two",
    functions=("spif_loss", "iris_loss"),
    witness="r⁺ = G[P atoms], r⁻ = G[Q atoms], β = 0.8, bound c = 1e7",
    tolerance=1e-12,
)
def _spif_order_two() -> float:
    beta = 0.8
    real, generated = G[P_ATOMS], G[Q_ATOMS]
    spif = lib.spif_loss(real, generated, beta=beta, bound=1e7)
    iris = lib.iris_loss(real, generated, alpha=2.0, beta=beta)
    a = (beta * real).exp().mean()
    c = (2 * beta * generated).exp().mean()
    return max_abs(
        spif.real_weights - 2 * a * iris.real_weights,
        spif.generated_weights - 2 * c * iris.generated_weights,
        spif.loss - (-2 * a + c + 1),
    )


@bind(
    "space_jensen_shannon",
    functions=("space_loss",),
    witness="P, Q batches at u = g*, μ = 1",
    tolerance=1e-14,
)
def _space_js() -> float:
    js = num(th.jensen_shannon(P, Q))
    at_optimum = lib.space_loss(G_STAR[P_ATOMS], G_STAR[Q_ATOMS], mu=1.0).loss.item()
    return max_abs(at_optimum - (2 * math.log(2) - 2 * js))
