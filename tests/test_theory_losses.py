"""Numerical ties between the claims of theory/ and the loss library `iris.losses`.

Each test here is named in the docstring of the claim(s) it enforces (see theory/RESULTS.md).
Expectations under the discrete distributions P = (1/2, 1/3, 1/6) (data) and
Q = (1/4, 1/4, 1/2) (previous iterate) are computed *exactly* by the batch losses: the
annotated batch holds outcome y in proportion p_y (6 atoms: 3, 2, 1) and the synthetic
batch in proportion q_y (4 atoms: 1, 1, 2), so every batch mean is an expectation. The
closed forms on the other side (R_α, KL, χ², BC, JS, …) are the sympy functions of
theory.divergences evaluated in float, so a disagreement means the library or the theory
is wrong. Everything runs in float64.
"""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iris.losses import iris_loss, space_loss, spif_loss, spin_loss, tilted_risk
from theory import divergences as th
from theory import regimes

pytestmark = pytest.mark.theory

P = [sp.Rational(1, 2), sp.Rational(1, 3), sp.Rational(1, 6)]
Q = [sp.Rational(1, 4), sp.Rational(1, 4), sp.Rational(1, 2)]
P_ATOMS = torch.tensor([0, 0, 0, 1, 1, 2])  # outcome of each annotated sample
Q_ATOMS = torch.tensor([0, 1, 2, 2])  # outcome of each synthetic sample
P_T = torch.tensor([float(x) for x in P], dtype=torch.float64)
Q_T = torch.tensor([float(x) for x in Q], dtype=torch.float64)
G_STAR = torch.log(P_T / Q_T)  # optimal discriminator log(P/Q)
ORDERS = (0.25, 0.5, 0.8, 1.5, 2.0, 3.0)


def value(expr) -> float:
    """A closed form of theory.divergences as a Python float."""
    return float(sp.N(expr, 30))


def renyi_bound(alpha: float) -> float:
    """R_α(P‖Q) from theory.divergences.rescaled_renyi; R_1 = KL(P‖Q) by continuity
    (theory.limits.alpha_one_renyi_limit)."""
    if alpha == 1.0:
        return value(th.kl_divergence(P, Q))
    return value(th.rescaled_renyi(P, Q, sp.Float(alpha, 30)))


def population_iris(g: torch.Tensor, alpha: float, beta: float = 1.0):
    """iris_loss on the exact-expectation batches, with log-ratios g/β (rewards g)."""
    return iris_loss(g[P_ATOMS] / beta, g[Q_ATOMS] / beta, alpha=alpha, beta=beta)


def random_tensor(gen: torch.Generator, n: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(n, generator=gen, dtype=torch.float64)


# --- claim 6: tilted risk ----------------------------------------------------------------


@pytest.mark.parametrize("tau", [-3.0, -0.3, 0.0, 1e-8, 0.5, 2.0])
def test_tilted_risk_gradient_is_softmax_autograd(tau: float) -> None:
    """∂TR_τ/∂ℓ = softmax(τℓ) (theory.tilted_risk.tilted_risk_gradient_is_softmax)."""
    gen = torch.Generator().manual_seed(0)
    losses = random_tensor(gen, 7, 2.0).requires_grad_()
    tilted_risk(losses, tau).backward()
    torch.testing.assert_close(losses.grad, torch.softmax(tau * losses.detach(), -1))


def test_tilted_risk_small_tilt_matches_mean_plus_half_variance() -> None:
    """TR_τ = mean + (τ/2) Var + O(τ²): at τ = 0 the mean, and (TR_τ − mean)/τ → Var/2.

    theory.tilted_risk.tilted_risk_small_tilt. With τ = ±1e-4 the O(τ) remainder of
    (TR − mean)/τ is ~1e-4·(third cumulant)/6, well inside the 1e-3 tolerance, while a
    wrong coefficient (Var or Var/4) would miss by ~Var/2.
    """
    gen = torch.Generator().manual_seed(1)
    losses = random_tensor(gen, 9)
    mean, var = losses.mean().item(), losses.var(unbiased=False).item()
    assert tilted_risk(losses, 0.0).item() == pytest.approx(mean, abs=1e-15)
    assert tilted_risk(losses, 1e-12).item() == pytest.approx(mean, abs=1e-12)
    for tau in (1e-4, -1e-4):
        slope = (tilted_risk(losses, tau).item() - mean) / tau
        assert slope == pytest.approx(var / 2, rel=1e-3)
    # and the value against the sympy expansion of theory.divergences.tilted_risk
    symbolic = th.tilted_risk([sp.Float(x, 30) for x in losses.tolist()], sp.Float("0.01", 30))
    assert tilted_risk(losses, 0.01).item() == pytest.approx(value(symbolic), rel=1e-13)


def test_tilted_risk_monotone_and_bounded() -> None:
    """Nondecreasing in τ, min ≤ TR ≤ max, → max/min at τ → ±∞, TR(ℓ + c) = TR(ℓ) + c.

    theory.tilted_risk.tilted_risk_monotone_and_bounded and tilted_risk_shift_equivariance.
    """
    gen = torch.Generator().manual_seed(2)
    losses = random_tensor(gen, 11, 3.0)
    taus = torch.linspace(-40.0, 40.0, 401, dtype=torch.float64)
    risks = torch.stack([tilted_risk(losses, t.item()) for t in taus])
    assert bool((risks.diff() >= -1e-12).all())
    assert bool((risks >= losses.min() - 1e-12).all() and (risks <= losses.max() + 1e-12).all())
    assert tilted_risk(losses, 1e4).item() == pytest.approx(losses.max().item(), abs=1e-3)
    assert tilted_risk(losses, -1e4).item() == pytest.approx(losses.min().item(), abs=1e-3)
    for tau in (-2.0, 0.0, 0.7):
        shifted = tilted_risk(losses + 5.25, tau).item()
        assert shifted == pytest.approx(tilted_risk(losses, tau).item() + 5.25, abs=1e-12)


@pytest.mark.parametrize("tau", [-1.5, -0.2, 0.3, 2.5])
def test_tilted_risk_tilt_derivative_matches_kl(tau: float) -> None:
    """d/dτ TR_τ = KL(softmax(τℓ) ‖ uniform)/τ² ≥ 0, by central differences.

    theory.tilted_risk.tilted_risk_tilt_derivative_is_kl and gibbs_inequality.
    """
    gen = torch.Generator().manual_seed(3)
    losses = random_tensor(gen, 8)
    h = 1e-5
    derivative = (tilted_risk(losses, tau + h) - tilted_risk(losses, tau - h)).item() / (2 * h)
    w = torch.softmax(tau * losses, -1)
    kl = (w * torch.log(w * len(losses))).sum().item()
    assert kl > 0
    assert derivative == pytest.approx(kl / tau**2, rel=1e-7)


# --- claim 1: Rényi–Donsker–Varadhan --------------------------------------------------


@pytest.mark.parametrize("alpha", ORDERS)
@pytest.mark.parametrize("beta", [1.0, 0.1])
def test_iris_loss_at_log_ratio_equals_rescaled_renyi(alpha: float, beta: float) -> None:
    """−iris_loss at rewards g* = log(P/Q) is R_α(P‖Q), and its gradient in g vanishes.

    theory.rdv.rdv_optimal_value and rdv_stationary_point; the rewards β·logratio are held
    fixed across β (logratios g*/β).
    """
    g = G_STAR.clone().requires_grad_()
    out = population_iris(g, alpha, beta)
    assert -out.loss.item() == pytest.approx(renyi_bound(alpha), rel=1e-12)
    assert out.metrics["variational_estimate"].item() == pytest.approx(-out.loss.item())
    out.loss.backward()
    torch.testing.assert_close(g.grad, torch.zeros(3, dtype=torch.float64), atol=1e-14, rtol=0)


@pytest.mark.parametrize("alpha", ORDERS)
def test_iris_loss_shift_invariant(alpha: float) -> None:
    """iris_loss(g + c) = iris_loss(g), same weights (theory.rdv.rdv_shift_invariance)."""
    gen = torch.Generator().manual_seed(4)
    real, generated = random_tensor(gen, 6), random_tensor(gen, 5)
    base = iris_loss(real, generated, alpha=alpha)
    for c in (-3.0, 0.5, 10.0):
        shifted = iris_loss(real + c, generated + c, alpha=alpha)
        assert shifted.loss.item() == pytest.approx(base.loss.item(), abs=1e-12)
        torch.testing.assert_close(shifted.real_weights, base.real_weights)
        torch.testing.assert_close(shifted.generated_weights, base.generated_weights)


@pytest.mark.parametrize("alpha", ORDERS)
def test_iris_loss_below_bound_away_from_optimum(alpha: float) -> None:
    """−iris_loss(g) < R_α(P‖Q) for g ≠ g* + c (theory.rdv.rdv_gap_decomposition)."""
    gen = torch.Generator().manual_seed(5)
    bound = renyi_bound(alpha)
    for scale in (1e-2, 0.3, 2.0):
        for _ in range(20):
            g = G_STAR + random_tensor(gen, 3, scale)
            assert -population_iris(g, alpha).loss.item() < bound


# --- claims 2, 3: α → 1 and α → 0 -------------------------------------------------------


def test_iris_loss_near_alpha_one_is_dv() -> None:
    """At α = 1 and 1 ± 1e-9: L = −E_P g + log E_Q e^g; at g*: −L = KL(P‖Q); slope in α.

    theory.limits.alpha_one_objective_limit: dL_α/dα at α = 1 is −(½Var_P g − KL(Q^g‖Q));
    alpha_one_renyi_limit: R_α → KL(P‖Q).
    """
    gen = torch.Generator().manual_seed(6)
    g = random_tensor(gen, 3)
    dv_loss = -value(th.dv_objective([sp.Float(x, 30) for x in g.tolist()], P, Q))
    for alpha in (1.0, 1.0 - 1e-9, 1.0 + 1e-9):
        assert population_iris(g, alpha).loss.item() == pytest.approx(dv_loss, abs=1e-9)
    kl = value(th.kl_divergence(P, Q))
    for alpha in (1.0, 1.0 - 1e-9, 1.0 + 1e-9):
        assert -population_iris(G_STAR, alpha).loss.item() == pytest.approx(kl, abs=1e-9)
    h = 1e-4
    slope = (population_iris(g, 1 + h).loss - population_iris(g, 1 - h).loss).item() / (2 * h)
    var_p = (P_T * (g - (P_T * g).sum()) ** 2).sum()
    tilted_q = Q_T * g.exp() / (Q_T * g.exp()).sum()
    kl_tilted = (tilted_q * torch.log(tilted_q / Q_T)).sum()
    assert slope == pytest.approx(-(var_p / 2 - kl_tilted).item(), rel=1e-6)


def test_iris_loss_near_alpha_zero_is_reverse_dv() -> None:
    """At α = 1e-9: L = log E_P e^{−g} + E_Q g; at g*: −L = KL(Q‖P) (R_α → KL(Q‖P)).

    theory.limits.alpha_zero_objective_limit and alpha_zero_renyi_limit.
    """
    gen = torch.Generator().manual_seed(7)
    g = random_tensor(gen, 3)
    reverse = -value(th.reverse_dv_objective([sp.Float(x, 30) for x in g.tolist()], P, Q))
    assert population_iris(g, 1e-9).loss.item() == pytest.approx(reverse, abs=1e-8)
    reverse_kl = value(th.kl_divergence(Q, P))
    assert -population_iris(G_STAR, 1e-9).loss.item() == pytest.approx(reverse_kl, abs=1e-8)
    assert -population_iris(G_STAR, 1e-3).loss.item() == pytest.approx(reverse_kl, abs=1e-3)


# --- claims 4, 5: α = ½, α = 2, duality -------------------------------------------------


def test_iris_loss_half_order_symmetry() -> None:
    """iris_loss(r⁺, r⁻, ½) = iris_loss(−r⁻, −r⁺, ½) with the weights exchanged.

    theory.special_orders.half_order_symmetry.
    """
    gen = torch.Generator().manual_seed(8)
    real, generated = random_tensor(gen, 5), random_tensor(gen, 7)
    a = iris_loss(real, generated, alpha=0.5, beta=0.7)
    b = iris_loss(-generated, -real, alpha=0.5, beta=0.7)
    assert a.loss.item() == pytest.approx(b.loss.item(), abs=1e-13)
    torch.testing.assert_close(a.real_weights, b.generated_weights)
    torch.testing.assert_close(a.generated_weights, b.real_weights)


def test_iris_loss_half_and_two_closed_forms() -> None:
    """At g*: −L_½ = −4 log BC(P, Q) and −L_2 = ½ log(1 + χ²(P‖Q)).

    theory.special_orders.half_order_bhattacharyya and order_two_chi_square.
    """
    bc = value(th.bhattacharyya_coefficient(P, Q))
    chi2 = value(th.chi_square(P, Q))
    assert -population_iris(G_STAR, 0.5).loss.item() == pytest.approx(-4 * math.log(bc), rel=1e-12)
    assert -population_iris(G_STAR, 2.0).loss.item() == pytest.approx(
        0.5 * math.log1p(chi2), rel=1e-12
    )


@settings(deadline=None, derandomize=True, max_examples=40)
@given(
    alpha=st.floats(0.05, 0.95),
    real=st.lists(st.floats(-5, 5), min_size=1, max_size=8),
    generated=st.lists(st.floats(-5, 5), min_size=1, max_size=8),
)
def test_iris_loss_duality(alpha: float, real: list[float], generated: list[float]) -> None:
    """iris_loss(r⁺, r⁻, α) = iris_loss(−r⁻, −r⁺, 1 − α), weights exchanged; and
    R_α(P‖Q) = R_{1−α}(Q‖P) through the loss at g*.

    theory.duality.objective_duality and renyi_duality.
    """
    r_plus = torch.tensor(real, dtype=torch.float64)
    r_minus = torch.tensor(generated, dtype=torch.float64)
    a = iris_loss(r_plus, r_minus, alpha=alpha)
    b = iris_loss(-r_minus, -r_plus, alpha=1 - alpha)
    assert a.loss.item() == pytest.approx(b.loss.item(), abs=1e-10)
    torch.testing.assert_close(a.real_weights, b.generated_weights)
    torch.testing.assert_close(a.generated_weights, b.real_weights)
    swapped = iris_loss(-G_STAR[Q_ATOMS], -G_STAR[P_ATOMS], alpha=1 - alpha)
    assert -swapped.loss.item() == pytest.approx(renyi_bound(alpha), rel=1e-10)


# --- claim 7: fixed point -------------------------------------------------------------


def softmax_family_loss(theta, data_atoms, opponent, alpha, beta):
    """IRIS loss of p_θ = softmax(θ) against the opponent Q = p_θt, exact expectations."""
    logratio = torch.log_softmax(theta, -1) - torch.log(opponent)
    return iris_loss(logratio[data_atoms], logratio[Q_ATOMS], alpha=alpha, beta=beta)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.0])
@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_fixed_point_gradient_autograd(alpha: float, beta: float) -> None:
    """Autograd on a softmax family at θ = θt: gradient β(p_θt − P), zero iff P = p_θt;
    with P = p_θt the loss is ≥ 0 everywhere and 0 at θt; at any θ the gradient is the
    importance-weighted sum −β Σ w⁺ ∇lr⁺ + β Σ w⁻ ∇lr⁻ with the returned weights.

    theory.fixed_point.fixed_point_gradient, fixed_point_global_minimum and
    iris_gradient_importance_weights.
    """
    theta_t = torch.log(Q_T)
    for data_atoms, data in ((P_ATOMS, P_T), (Q_ATOMS, Q_T)):
        theta = theta_t.clone().requires_grad_()
        out = softmax_family_loss(theta, data_atoms, Q_T, alpha, beta)
        out.loss.backward()
        torch.testing.assert_close(theta.grad, beta * (Q_T - data), atol=1e-14, rtol=1e-12)
    assert softmax_family_loss(theta_t, Q_ATOMS, Q_T, alpha, beta).loss.item() == pytest.approx(
        0.0, abs=1e-15
    )
    gen = torch.Generator().manual_seed(9)
    for _ in range(10):
        theta = theta_t + random_tensor(gen, 3)
        assert softmax_family_loss(theta, Q_ATOMS, Q_T, alpha, beta).loss.item() > 0
    theta = (theta_t + random_tensor(gen, 3)).requires_grad_()
    out = softmax_family_loss(theta, P_ATOMS, Q_T, alpha, beta)
    (grad,) = torch.autograd.grad(out.loss, theta)
    jacobian = torch.eye(3, dtype=torch.float64) - torch.softmax(theta.detach(), -1)  # ∇lr(y)
    weighted = beta * (
        -(out.real_weights[:, None] * jacobian[P_ATOMS]).sum(0)
        + (out.generated_weights[:, None] * jacobian[Q_ATOMS]).sum(0)
    )
    torch.testing.assert_close(grad, weighted)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.0])
@pytest.mark.parametrize("beta", [0.25, 1.0, 3.0])
def test_nonparametric_minimiser_autograd(alpha: float, beta: float) -> None:
    """θ* = log p_θt + (1/β) log(P/p_θt): zero gradient and −loss = R_α(P‖Q).

    theory.fixed_point.nonparametric_minimiser.
    """
    theta = (torch.log(Q_T) + torch.log(P_T / Q_T) / beta).requires_grad_()
    out = softmax_family_loss(theta, P_ATOMS, Q_T, alpha, beta)
    out.loss.backward()
    torch.testing.assert_close(theta.grad, torch.zeros(3, dtype=torch.float64), atol=1e-13, rtol=0)
    assert -out.loss.item() == pytest.approx(renyi_bound(alpha), rel=1e-12)


# --- claim 8: gradient concentration ---------------------------------------------------


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_weights_ess_gaussian(alpha: float) -> None:
    """ESS/n of iris_loss's weights on N(μ, σ²) rewards ≈ e^{−τ²σ²}, τ = α − 1 and α.

    theory.concentration.gaussian_ess_fraction and iris_tilts_ess; n = 200 000, σ = 0.5,
    seeded. The tolerance is 5 Monte-Carlo standard errors of the estimate,
    sqrt((e^{4τ²σ²} − 1)/n) relative (0.6% at τ = ½, 4% at τ = 2), below the gap to a
    wrong exponent such as e^{−τ²σ²/2} (3% at τ = ½, 65% at τ = 2); at τ = 0 it is exact.
    """
    gen = torch.Generator().manual_seed(10)
    n, sigma = 200_000, 0.5
    real = 0.3 + sigma * torch.randn(n, generator=gen, dtype=torch.float64)
    generated = -1.0 + sigma * torch.randn(n, generator=gen, dtype=torch.float64)
    out = iris_loss(real, generated, alpha=alpha)
    for weights, tilt, metric in (
        (out.real_weights, alpha - 1, "real_ess_fraction"),
        (out.generated_weights, alpha, "generated_ess_fraction"),
    ):
        ess_fraction = (1.0 / weights.square().sum() / n).item()
        expected = math.exp(-(tilt**2) * sigma**2)
        tolerance = 5 * math.sqrt(math.expm1(4 * tilt**2 * sigma**2) / n) + 1e-12
        assert ess_fraction == pytest.approx(expected, rel=tolerance)
        if tilt != 0:  # the test can tell the claimed exponent from a wrong one
            wrong = math.exp(-(tilt**2) * sigma**2 / 2)
            assert ess_fraction != pytest.approx(wrong, rel=tolerance)
        assert out.metrics[metric].item() == pytest.approx(ess_fraction, rel=1e-9)


# --- claim 9: regimes -------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.0])
def test_baseline_weights_uniform_at_zero(alpha: float) -> None:
    """At zero log-ratios: IRIS weights 1/n (any α), SPIN 1/(2n), SPACE μ/(1+μ)/n, SPIF 2/n;
    near zero, IRIS weights are (1/n)(1 + τβ(r − mean r)) + O(r²).

    theory.regimes.near_fixed_point_weights.
    """
    n = 4
    zeros = torch.zeros(n, dtype=torch.float64)
    uniform = torch.full((n,), 1.0 / n, dtype=torch.float64)
    cases = [(iris_loss(zeros, zeros, alpha=alpha, beta=0.5), 1.0)]
    cases.append((spin_loss(zeros, zeros, beta=0.5), 0.5))
    cases += [(space_loss(zeros, zeros, mu=mu, beta=0.5), mu / (1 + mu)) for mu in (0.5, 1.0, 3.0)]
    cases.append((spif_loss(zeros, zeros, beta=0.5, bound=2.0), 2.0))
    for out, scale in cases:
        torch.testing.assert_close(out.real_weights, scale * uniform)
        torch.testing.assert_close(out.generated_weights, scale * uniform)
    gen = torch.Generator().manual_seed(11)
    eps, beta = 1e-4, 0.5
    real, generated = random_tensor(gen, n, eps), random_tensor(gen, n, eps)
    out = iris_loss(real, generated, alpha=alpha, beta=beta)
    for weights, r, tilt in (
        (out.real_weights, real, alpha - 1),
        (out.generated_weights, generated, alpha),
    ):
        first_order = (1 + tilt * beta * (r - r.mean())) / n
        torch.testing.assert_close(weights, first_order, atol=1e-8, rtol=0)


def test_theory_batch_losses_match_library() -> None:
    """The batch losses written in theory.regimes (from the spec) equal iris.losses' values.

    theory.regimes.near_fixed_point_weights reasons about these formulas; this pins them
    to the library, including this project's SPIF critic [choice].
    """
    gen = torch.Generator().manual_seed(12)
    real, generated = random_tensor(gen, 4), random_tensor(gen, 4)
    r = [sp.Float(x, 30) for x in real.tolist()]
    s = [sp.Float(x, 30) for x in generated.tolist()]
    beta, mu, bound, alpha = 0.7, 1.7, 1.5, 0.6
    pairs = [
        (
            iris_loss(real, generated, alpha=alpha, beta=beta),
            regimes.iris_batch_loss(r, s, alpha, beta),
        ),
        (spin_loss(real, generated, beta=beta), regimes.spin_batch_loss(r, s, beta)),
        (space_loss(real, generated, mu=mu, beta=beta), regimes.space_batch_loss(r, s, mu, beta)),
        (
            spif_loss(real, generated, beta=beta, bound=bound),
            regimes.spif_batch_loss(r, s, beta, bound),
        ),
    ]
    for out, expr in pairs:
        assert out.loss.item() == pytest.approx(value(expr), rel=1e-12, abs=1e-14)


def test_shared_optimal_discriminator_autograd() -> None:
    """Zero gradient at g = log(P/Q) for SPACE (every μ, exactly), the SPIN pair loss over
    all (P, Q) pairs (+c) and IRIS at α = 1 (+c); nonzero when g is perturbed.

    theory.regimes.shared_optimal_discriminator.
    """
    zero = torch.zeros(3, dtype=torch.float64)
    pairs_real = P_ATOMS.repeat_interleave(len(Q_ATOMS))  # every (annotated, synthetic) pair
    pairs_generated = Q_ATOMS.repeat(len(P_ATOMS))
    losses = {
        "space 0.5": lambda g: space_loss(g[P_ATOMS], g[Q_ATOMS], mu=0.5).loss,
        "space 1": lambda g: space_loss(g[P_ATOMS], g[Q_ATOMS], mu=1.0).loss,
        "space 4": lambda g: space_loss(g[P_ATOMS], g[Q_ATOMS], mu=4.0).loss,
        "spin": lambda g: spin_loss(g[pairs_real] + 0.8, g[pairs_generated] + 0.8, beta=1.0).loss,
        "iris 1": lambda g: iris_loss(g[P_ATOMS] - 2.0, g[Q_ATOMS] - 2.0, alpha=1.0).loss,
    }
    gen = torch.Generator().manual_seed(13)
    for name, loss_fn in losses.items():
        g = G_STAR.clone().requires_grad_()
        (grad,) = torch.autograd.grad(loss_fn(g), g)
        torch.testing.assert_close(grad, zero, atol=1e-14, rtol=0, msg=name)
        g = (G_STAR + random_tensor(gen, 3, 0.5)).requires_grad_()
        (grad,) = torch.autograd.grad(loss_fn(g), g)
        assert grad.abs().max().item() > 1e-4, name


def test_spin_is_not_iris_alpha_one() -> None:
    """Same minimiser, different loss: at P = (2/3, 1/3), Q = (1/3, 2/3), g = log(P/Q) the
    SPIN pair loss is not L_1 = −KL(P‖Q) (nor an affine image of it with slope 1).

    theory.regimes.shared_optimal_discriminator (the non-identity part).
    """
    p2 = [sp.Rational(2, 3), sp.Rational(1, 3)]
    q2 = [sp.Rational(1, 3), sp.Rational(2, 3)]
    g = torch.tensor([math.log(2.0), -math.log(2.0)], dtype=torch.float64)
    p_atoms, q_atoms = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])
    pairs_real, pairs_generated = p_atoms.repeat_interleave(3), q_atoms.repeat(3)
    spin = spin_loss(g[pairs_real], g[pairs_generated], beta=1.0).loss.item()
    l1 = iris_loss(g[p_atoms], g[q_atoms], alpha=1.0).loss.item()
    g_sym = [sp.log(a / b) for a, b in zip(p2, q2, strict=True)]
    assert spin == pytest.approx(value(regimes.spin_population_loss(g_sym, p2, q2)), rel=1e-12)
    assert l1 == pytest.approx(-value(th.kl_divergence(p2, q2)), rel=1e-12)
    assert abs(spin - l1) > 0.1
    # not even up to a constant: moving away from g* changes the two by different amounts
    g2 = g + torch.tensor([0.5, -0.5], dtype=torch.float64)
    spin2 = spin_loss(g2[pairs_real], g2[pairs_generated], beta=1.0).loss.item()
    l12 = iris_loss(g2[p_atoms], g2[q_atoms], alpha=1.0).loss.item()
    assert abs((spin2 - spin) - (l12 - l1)) > 1e-3


def test_spif_pearson_value() -> None:
    """chi2_estimate = χ²(P‖Q) exactly when the bounded reward equals log(P/Q), and is
    smaller elsewhere (a Pearson lower bound). theory.regimes.pearson_chi2_variational.
    """
    beta, bound = 0.1, 2.0
    logratio = bound * torch.atanh(G_STAR / bound) / beta  # c tanh(β lr / c) = log(P/Q)
    out = spif_loss(logratio[P_ATOMS], logratio[Q_ATOMS], beta=beta, bound=bound)
    chi2 = value(th.chi_square(P, Q))
    assert out.metrics["chi2_estimate"].item() == pytest.approx(chi2, rel=1e-12)
    gen = torch.Generator().manual_seed(14)
    for _ in range(20):
        other = logratio + random_tensor(gen, 3, 2.0)
        estimate = spif_loss(other[P_ATOMS], other[Q_ATOMS], beta=beta, bound=bound)
        assert estimate.metrics["chi2_estimate"].item() < chi2


def test_spif_weights_are_scaled_order_two_weights() -> None:
    """For a huge bound, SPIF weights = 2A · (IRIS α = 2 annotated weights) and 2C · (IRIS
    α = 2 synthetic weights), A = mean e^{βlr⁺}, C = mean e^{2βlr⁻}.

    theory.regimes.spif_linearises_order_two.
    """
    gen = torch.Generator().manual_seed(15)
    real, generated = random_tensor(gen, 6, 0.5), random_tensor(gen, 6, 0.5)
    beta = 0.8
    spif = spif_loss(real, generated, beta=beta, bound=1e7)
    iris = iris_loss(real, generated, alpha=2.0, beta=beta)
    a = (beta * real).exp().mean()
    c = (2 * beta * generated).exp().mean()
    torch.testing.assert_close(spif.real_weights, 2 * a * iris.real_weights, rtol=1e-9, atol=0)
    torch.testing.assert_close(
        spif.generated_weights, 2 * c * iris.generated_weights, rtol=1e-9, atol=0
    )


def test_space_jensen_shannon_value() -> None:
    """space_loss(μ = 1) at u = log(P/Q) equals 2 log 2 − 2 JS(P, Q), its minimum.

    theory.regimes.space_jensen_shannon.
    """
    js = value(th.jensen_shannon(P, Q))
    at_optimum = space_loss(G_STAR[P_ATOMS], G_STAR[Q_ATOMS], mu=1.0).loss.item()
    assert at_optimum == pytest.approx(2 * math.log(2) - 2 * js, rel=1e-12)
    gen = torch.Generator().manual_seed(16)
    for _ in range(20):
        u = G_STAR + random_tensor(gen, 3, 0.5)
        assert space_loss(u[P_ATOMS], u[Q_ATOMS], mu=1.0).loss.item() > at_optimum
