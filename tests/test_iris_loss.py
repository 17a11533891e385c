"""iris_loss and iris_normalizers against objective.md."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import alphas, betas, loss_vectors

from iris import reference
from iris.losses import TiltNormalizer, iris_loss, iris_normalizers

F64 = torch.float64


def two_vectors(seed: int, n: int = 6, m: int = 5, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, generator=g, dtype=F64), scale * torch.randn(
        m, generator=g, dtype=F64
    )


def test_hand_worked_orders():
    """r⁺ = r⁻ = (0, 1), β = 1:
    α = 2:  −log((1+e)/2) + ½ log((1+e²)/2)              = 0.3391794793...
    α = ½:  2 log((1+e^{−½})/2) + 2 log((1+e^{½})/2)      = 0.1224806236...
    α = 1:  −mean r⁺ + log mean e^{r⁻} = −½ + log((1+e)/2) = 0.1201145069...
    and at α = 2 the weights are w⁺ ∝ e^{r⁺} = (1, e)/(1+e), w⁻ ∝ e^{2r⁻} = (1, e²)/(1+e²).
    """
    r = torch.tensor([0.0, 1.0], dtype=F64)
    e = math.e
    cases = {
        2.0: -math.log((1 + e) / 2) + 0.5 * math.log((1 + e**2) / 2),
        0.5: 2 * math.log((1 + e**-0.5) / 2) + 2 * math.log((1 + e**0.5) / 2),
        1.0: -0.5 + math.log((1 + e) / 2),
    }
    for alpha, expected in cases.items():
        assert iris_loss(r, r, alpha=alpha).loss.item() == pytest.approx(expected, rel=1e-14)
    out = iris_loss(r, r, alpha=2.0)
    torch.testing.assert_close(out.real_weights, torch.tensor([1, e], dtype=F64) / (1 + e))
    torch.testing.assert_close(
        out.generated_weights, torch.tensor([1, e**2], dtype=F64) / (1 + e**2)
    )
    assert out.metrics["variational_estimate"].item() == pytest.approx(-cases[2.0], rel=1e-14)


@pytest.mark.parametrize(
    "dtype, tol", [(torch.float64, 1e-13), (torch.float32, 1e-5), (torch.bfloat16, 1e-5)]
)
@given(real=loss_vectors(), generated=loss_vectors(), alpha=alphas, beta=betas)
def test_matches_reference(dtype, tol, real, generated, alpha, beta):
    real, generated = real.to(dtype), generated.to(dtype)
    out = iris_loss(real, generated, alpha=alpha, beta=beta)
    r, g = real.double().tolist(), generated.double().tolist()
    exact = reference.iris_loss(r, g, alpha, beta)
    scale = reference.iris_scale(r, g, alpha, beta)
    assert float(abs(mpmath.mpf(out.loss.item()) - exact) / scale) <= tol


@given(
    real=loss_vectors(max_abs=50.0), generated=loss_vectors(max_abs=50.0), alpha=alphas, beta=betas
)
def test_weight_contract_matches_autograd(real, generated, alpha, beta):
    """real_weights = −(1/β) ∂L/∂lr⁺, generated_weights = (1/β) ∂L/∂lr⁻; each sums to 1."""
    real, generated = real.clone().requires_grad_(True), generated.clone().requires_grad_(True)
    out = iris_loss(real, generated, alpha=alpha, beta=beta)
    out.loss.backward()
    torch.testing.assert_close(out.real_weights, -real.grad / beta, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(out.generated_weights, generated.grad / beta, rtol=1e-10, atol=1e-14)
    assert out.real_weights.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert out.generated_weights.sum().item() == pytest.approx(1.0, abs=1e-12)


@given(
    real=loss_vectors(max_abs=100.0),
    generated=loss_vectors(max_abs=100.0),
    alpha=alphas,
    shift=st.floats(-100.0, 100.0),
)
def test_invariant_to_a_constant_added_to_all_rewards(real, generated, alpha, shift):
    """TR_{1−α}(−r⁺ − c) = TR_{1−α}(−r⁺) − c and TR_α(r⁻ + c) = TR_α(r⁻) + c: L unchanged."""
    base = iris_loss(real, generated, alpha=alpha).loss.item()
    shifted = iris_loss(real + shift, generated + shift, alpha=alpha).loss.item()
    assert shifted == pytest.approx(
        base, abs=1e-11 * (abs(shift) + real.abs().max().item() + generated.abs().max().item())
    )


@given(real=loss_vectors(), generated=loss_vectors(), alpha=alphas, seed=st.integers(0, 1000))
def test_permutation_equivariant(real, generated, alpha, seed):
    g = torch.Generator().manual_seed(seed)
    p, q = torch.randperm(real.numel(), generator=g), torch.randperm(generated.numel(), generator=g)
    out, permuted = (
        iris_loss(real, generated, alpha=alpha),
        iris_loss(real[p], generated[q], alpha=alpha),
    )
    scale = 1 + real.abs().max().item() + generated.abs().max().item()
    assert permuted.loss.item() == pytest.approx(out.loss.item(), abs=1e-14 * scale)
    torch.testing.assert_close(permuted.real_weights, out.real_weights[p])
    torch.testing.assert_close(permuted.generated_weights, out.generated_weights[q])


@given(real=loss_vectors(max_abs=100.0), generated=loss_vectors(max_abs=100.0), alpha=alphas)
def test_duality(real, generated, alpha):
    """L_α(g; P, Q) = L_{1−α}(−g; Q, P): swap the samples and negate the rewards (α < 1 here
    so that both orders are > 0)."""
    if alpha >= 1:
        alpha = 1.0 / (1.0 + alpha)
    lhs = iris_loss(real, generated, alpha=alpha).loss.item()
    rhs = iris_loss(-generated, -real, alpha=1.0 - alpha).loss.item()
    assert lhs == pytest.approx(
        rhs, abs=1e-12 * (1 + real.abs().max().item() + generated.abs().max().item())
    )


@given(real=loss_vectors(max_abs=100.0), generated=loss_vectors(max_abs=100.0))
def test_half_is_self_dual(real, generated):
    """α = ½: L_½(g; P, Q) = L_½(−g; Q, P), the symmetric (Bhattacharyya) member."""
    lhs = iris_loss(real, generated, alpha=0.5).loss.item()
    rhs = iris_loss(-generated, -real, alpha=0.5).loss.item()
    assert lhs == pytest.approx(rhs, rel=1e-13, abs=1e-13)


@given(real=loss_vectors(max_abs=30.0), generated=loss_vectors(max_abs=30.0), beta=betas)
def test_alpha_one_is_the_kl_donsker_varadhan_form(real, generated, beta):
    """α → 1: L_1 = −mean r⁺ + log mean e^{r⁻}, uniform real weights, w⁻ = softmax(r⁻);
    continuous from both sides, the gap shrinking linearly in |α − 1|."""
    dv = (
        -beta * real.mean() + torch.logsumexp(beta * generated, 0) - math.log(generated.numel())
    ).item()
    scale = 1 + beta * (real.abs().max().item() + generated.abs().max().item())
    at_one = iris_loss(real, generated, alpha=1.0, beta=beta)
    assert at_one.loss.item() == pytest.approx(dv, abs=1e-13 * scale)
    torch.testing.assert_close(at_one.real_weights, torch.full_like(real, 1 / real.numel()))
    torch.testing.assert_close(at_one.generated_weights, torch.softmax(beta * generated, 0))
    gaps = [
        abs(iris_loss(real, generated, alpha=1 + s * d, beta=beta).loss.item() - dv)
        for d in (1e-3, 1e-6, 1e-9)
        for s in (1, -1)
    ]
    assert gaps[2] <= gaps[0] * 1e-2 + 1e-13 * scale and gaps[3] <= gaps[1] * 1e-2 + 1e-13 * scale
    assert max(gaps[4:]) <= 1e-9 * scale**2 + 1e-13 * scale


@given(real=loss_vectors(max_abs=30.0), generated=loss_vectors(max_abs=30.0))
def test_alpha_to_zero_is_the_reverse_kl_form(real, generated):
    """α → 0⁺: L → log mean e^{−r⁺} + mean r⁻ (Donsker–Varadhan for KL(Q‖P))."""
    limit = (torch.logsumexp(-real, 0) - math.log(real.numel()) + generated.mean()).item()
    scale = 1 + real.abs().max().item() + generated.abs().max().item()
    for alpha in (1e-9, 1e-12, 1e-15):
        assert iris_loss(real, generated, alpha=alpha).loss.item() == pytest.approx(
            limit, abs=alpha * scale**2 + 1e-13 * scale
        )


@given(n=st.integers(1, 16), m=st.integers(1, 16), alpha=alphas, beta=betas)
def test_fixed_point_rewards_zero(n, m, alpha, beta):
    """At θ = θt every log-ratio is 0: loss 0, both weight vectors uniform, ESS/n = 1."""
    out = iris_loss(torch.zeros(n, dtype=F64), torch.zeros(m, dtype=F64), alpha=alpha, beta=beta)
    assert out.loss.item() == 0.0
    torch.testing.assert_close(out.real_weights, torch.full((n,), 1 / n, dtype=F64))
    torch.testing.assert_close(out.generated_weights, torch.full((m,), 1 / m, dtype=F64))
    assert out.metrics["real_ess_fraction"].item() == pytest.approx(1.0)
    assert out.metrics["generated_ess_fraction"].item() == pytest.approx(1.0)


@pytest.mark.parametrize("alpha", [1e-3, 0.5, 1.0, 2.0, 1e3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_finite_at_extreme_inputs(alpha, dtype):
    real = torch.tensor([1e4, -1e4, 0.0, 3e3], dtype=dtype, requires_grad=True)
    generated = torch.tensor([-1e4, 1e4, 5.0], dtype=dtype, requires_grad=True)
    out = iris_loss(real, generated, alpha=alpha)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert torch.isfinite(real.grad).all() and torch.isfinite(generated.grad).all()
    assert all(torch.isfinite(v) for v in out.metrics.values())
    assert out.loss.dtype == torch.float32 and real.grad.dtype == dtype


@pytest.mark.parametrize("alpha", [1e-3, 0.5, 1.0, 1.0 + 1e-12, 2.0, 7.0])
def test_gradcheck_float64(alpha):
    real, generated = two_vectors(0)
    real.requires_grad_(True)
    generated.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: iris_loss(a, b, alpha=alpha, beta=0.7).loss, (real, generated)
    )


def test_alpha_may_be_a_tensor():
    real, generated = two_vectors(1)
    a = iris_loss(real, generated, alpha=torch.tensor(1.7)).loss
    b = iris_loss(real, generated, alpha=1.7).loss
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


@given(
    real=loss_vectors(min_size=2, max_abs=30.0),
    generated=loss_vectors(min_size=2, max_abs=30.0),
    alpha=alphas,
    beta=betas,
    data=st.data(),
)
def test_normalizers_split_the_batch_exactly(real, generated, alpha, beta, data):
    """Micro-batch shares with whole-batch normalisers add up to the whole-batch loss, and
    their gradients to the whole-batch gradient (the global-normalisation contract)."""
    k = data.draw(st.integers(1, min(real.numel(), generated.numel(), 4)))
    real_n, gen_n = iris_normalizers(real, generated, alpha=alpha, beta=beta)
    assert real_n.count == real.numel() and gen_n.count == generated.numel()

    whole_real, whole_gen = (
        real.clone().requires_grad_(True),
        generated.clone().requires_grad_(True),
    )
    whole = iris_loss(whole_real, whole_gen, alpha=alpha, beta=beta)
    whole.loss.backward()

    part_real, part_gen = real.clone().requires_grad_(True), generated.clone().requires_grad_(True)
    shares = [
        iris_loss(r, g, alpha=alpha, beta=beta, real_normalizer=real_n, generated_normalizer=gen_n)
        for r, g in zip(
            torch.tensor_split(part_real, k), torch.tensor_split(part_gen, k), strict=True
        )
    ]
    total = sum(s.loss for s in shares)
    total.backward()
    # Rounding of ℓ − R is amplified by the tilt: the weights carry relative error
    # eps · |τ| · max|ℓ| (the conditioning of the softmax), hence the tolerance.
    reward = beta * max(real.abs().max().item(), generated.abs().max().item())
    conditioning = 1 + max(abs(1 - alpha), alpha) * reward
    scale = (1 + reward) * conditioning
    assert total.item() == pytest.approx(whole.loss.item(), abs=1e-13 * scale)
    rtol = 1e-13 * conditioning + 1e-10
    torch.testing.assert_close(part_real.grad, whole_real.grad, rtol=rtol, atol=1e-13)
    torch.testing.assert_close(part_gen.grad, whole_gen.grad, rtol=rtol, atol=1e-13)
    torch.testing.assert_close(
        torch.cat([s.real_weights for s in shares]), whole.real_weights, rtol=rtol, atol=1e-13
    )
    for s in shares:
        assert s.metrics["variational_estimate"].item() == pytest.approx(
            -whole.loss.item(), abs=1e-13 * scale
        )


def test_per_micro_batch_normalisation_differs():
    """Without normalisers, summed micro-batch losses are a different objective."""
    real, generated = two_vectors(2, n=8, m=8, scale=2.0)
    whole = iris_loss(real, generated, alpha=2.0).loss.item()
    halves = sum(
        iris_loss(r, g, alpha=2.0).loss.item() / 2
        for r, g in zip(real.chunk(2), generated.chunk(2), strict=True)
    )
    assert abs(whole - halves) > 1e-3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": 0.0}, "alpha must be finite and > 0"),
        ({"alpha": -1.0}, "alpha must be finite and > 0"),
        ({"alpha": float("nan")}, "alpha must be finite"),
        ({"alpha": 1.0, "beta": 0.0}, "beta must be finite and > 0"),
        ({"alpha": 1.0, "real_normalizer": TiltNormalizer(torch.tensor(0.0), 3)}, "both"),
    ],
)
def test_bad_hyper_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        iris_loss(torch.zeros(3), torch.zeros(3), **kwargs)


@pytest.mark.parametrize(
    "real, generated, message",
    [
        (torch.zeros(0), torch.zeros(3), "real_logratios is empty"),
        (torch.zeros(3), torch.zeros(2, 2), "generated_logratios must be 1-D"),
        (
            torch.tensor([0.0, float("nan")]),
            torch.zeros(3),
            r"non-finite values at positions \[1\]",
        ),
        (torch.zeros(3), torch.tensor([float("-inf")]), "non-finite"),
        (torch.zeros(3, dtype=torch.long), torch.zeros(3), "floating-point"),
    ],
)
def test_bad_tensors(real, generated, message):
    with pytest.raises(ValueError, match=message):
        iris_loss(real, generated, alpha=1.0)


def test_normalizer_count_must_be_positive():
    with pytest.raises(ValueError, match="count"):
        TiltNormalizer(torch.tensor(0.0), 0)
