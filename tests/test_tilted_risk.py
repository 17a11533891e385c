"""tilted_risk, combine_tilted_risks, effective_sample_fraction against the maths."""

from __future__ import annotations

import itertools
import math

import mpmath
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import loss_vectors, tilts

from iris import reference
from iris.losses import combine_tilted_risks, effective_sample_fraction, tilt_weights, tilted_risk

F64 = torch.float64


def normwise_error(x: torch.Tensor, tau: float, computed: float) -> float:
    values = x.double().tolist()
    exact = reference.tilted_risk(values, tau)
    return float(
        abs(mpmath.mpf(computed) - exact) / max(reference.condition_scale(values, tau), 1e-300)
    )


def test_hand_worked_two_points():
    """ℓ = (0, 1):
    TR_0 = 1/2;  TR_1 = log((1 + e)/2) = 0.6201145069582775;
    TR_{−1} = −log((1 + e^{−1})/2) = 0.37988549304172247 = 1 − TR_1 (two symmetric points);
    TR_τ → 1 as τ → ∞: TR_{1000} = 1 − log(2)/1000 + O(e^{−1000}).
    """
    x = torch.tensor([0.0, 1.0], dtype=F64)
    assert tilted_risk(x, 0.0).item() == 0.5
    assert tilted_risk(x, 1.0).item() == pytest.approx(0.6201145069582775, rel=1e-15)
    assert tilted_risk(x, -1.0).item() == pytest.approx(0.37988549304172247, rel=1e-15)
    assert tilted_risk(x, 1000.0).item() == pytest.approx(1 - math.log(2) / 1000, rel=1e-15)


@pytest.mark.parametrize(
    "dtype, tol", [(torch.float64, 1e-14), (torch.float32, 1e-5), (torch.bfloat16, 1e-5)]
)
@given(x=loss_vectors(), tau=tilts)
def test_matches_reference(dtype, tol, x, tau):
    """Normwise relative error against the 50-digit reference, on inputs rounded to dtype."""
    rounded = x.to(dtype)
    computed = tilted_risk(rounded, tau)
    assert computed.dtype == (F64 if dtype == F64 else torch.float32)
    assert normwise_error(rounded, tau, float(computed)) <= tol


def test_naive_formula_fails_where_the_stable_one_does_not():
    """The cancellation the series form removes: (lse(τℓ) − log n)/τ at τ = 1e-12."""
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float32)
    tau = 1e-12
    naive = ((torch.logsumexp(tau * x, 0) - math.log(3)) / tau).item()
    assert normwise_error(x, tau, naive) > 1e-3
    assert normwise_error(x, tau, tilted_risk(x, tau).item()) < 1e-6


@given(x=loss_vectors(min_size=2, max_abs=100.0))
def test_continuous_at_zero_tilt_with_variance_slope(x):
    """TR_τ = κ1 + τ κ2/2 + τ² κ3/6 + O(τ³ max|ℓ − mean|⁴) (cumulant expansion of
    (1/τ) log E e^{τℓ}), on both sides of τ = 0: continuous at 0 with slope Var/2."""
    mean, var = x.mean().item(), x.var(unbiased=False).item()
    deviation = x - x.mean()
    third = (deviation**3).mean().abs().item()
    fourth = (deviation.abs() ** 4).max().item()
    for tau in (1e-12, -1e-12, 1e-9, -1e-7, 1e-6):
        expansion = mean + tau / 2 * var
        bound = (
            tau**2 * third / 6 + abs(tau) ** 3 * fourth + 1e-15 * (abs(mean) + x.abs().max().item())
        )
        assert abs(tilted_risk(x, tau).item() - expansion) <= bound + 1e-300
    assert tilted_risk(x, 0.0).item() == pytest.approx(mean, rel=1e-15, abs=1e-300)


@given(x=loss_vectors(), tau=tilts)
def test_bounds(x, tau):
    value = tilted_risk(x, tau).item()
    slack = 1e-12 * x.abs().max().item()
    assert x.min().item() - slack <= value <= x.max().item() + slack


@given(x=loss_vectors(min_size=2, max_abs=100.0))
def test_monotone_in_tilt(x):
    grid = [-1e3, -10.0, -1.0, -1e-3, -1e-9, 0.0, 1e-9, 1e-3, 1.0, 10.0, 1e3]
    values = [tilted_risk(x, tau).item() for tau in grid]
    slack = 1e-13 * x.abs().max().item()
    assert all(b >= a - slack for a, b in itertools.pairwise(values))


@given(x=loss_vectors(max_abs=100.0), tau=tilts, shift=st.floats(-1e3, 1e3))
def test_shift_equivariant(x, tau, shift):
    lhs = tilted_risk(x + shift, tau).item()
    rhs = tilted_risk(x, tau).item() + shift
    assert lhs == pytest.approx(rhs, abs=1e-12 * (abs(shift) + x.abs().max().item() + 1))


@given(x=loss_vectors(min_size=2, max_abs=10.0))
def test_limits_are_max_and_min(x):
    """|TR_τ − max ℓ| ≤ log(n)/τ for τ > 0 (and the mirror image for τ < 0)."""
    n = x.numel()
    for tau in (1e2, 1e3, 1e5):
        assert 0 <= x.max().item() - tilted_risk(x, tau).item() <= math.log(n) / tau + 1e-12
        assert 0 <= tilted_risk(x, -tau).item() - x.min().item() <= math.log(n) / tau + 1e-12


@given(x=loss_vectors(max_abs=100.0), tau=tilts)
def test_gradient_is_the_softmax_weighting(x, tau):
    x = x.clone().requires_grad_(True)
    tilted_risk(x, tau).backward()
    expected = torch.softmax(tau * x.detach(), dim=0)
    torch.testing.assert_close(x.grad, expected, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(tilt_weights(x.detach(), tau), expected, rtol=0, atol=0)


@pytest.mark.parametrize("tau", [0.0, 1e-12, -0.3, 2.0, 50.0])
def test_gradcheck_float64(tau):
    x = torch.tensor([0.3, -1.2, 2.5, 0.0, 0.7], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: tilted_risk(v, tau), (x,))


def test_batched_rows_and_per_row_tilts():
    x = torch.randn(3, 5, dtype=F64, generator=torch.Generator().manual_seed(0))
    taus = torch.tensor([0.0, 0.5, -30.0], dtype=F64)
    rows = tilted_risk(x, taus)
    assert rows.shape == (3,)
    for i in range(3):
        assert rows[i].item() == pytest.approx(tilted_risk(x[i], taus[i].item()).item(), rel=1e-15)


@pytest.mark.parametrize("tau", [1e3, -1e3])
def test_finite_at_extremes(tau):
    x = torch.tensor([1e4, -1e4, 0.0, 5e3], dtype=torch.float32, requires_grad=True)
    value = tilted_risk(x, tau)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    assert value.item() == pytest.approx(1e4 if tau > 0 else -1e4, rel=1e-6)


@given(x=loss_vectors(min_size=2, max_abs=100.0), tau=tilts, data=st.data())
def test_combine_equals_whole(x, tau, data):
    """Merging per-group risks with their sizes gives the risk of the union."""
    cuts = sorted(data.draw(st.sets(st.integers(1, x.numel() - 1), max_size=4)))
    groups = torch.tensor_split(x, cuts)
    risks = torch.stack([tilted_risk(g, tau) for g in groups])
    counts = torch.tensor([g.numel() for g in groups])
    merged = combine_tilted_risks(risks, counts, tau).item()
    assert merged == pytest.approx(
        tilted_risk(x, tau).item(), abs=1e-12 * (x.abs().max().item() + 1)
    )


def test_effective_sample_fraction():
    assert effective_sample_fraction(torch.full((8,), 1 / 8)).item() == pytest.approx(1.0)
    one_hot = torch.zeros(8)
    one_hot[3] = 1.0
    assert effective_sample_fraction(one_hot).item() == pytest.approx(1 / 8)
    # Scale-free: unnormalised weights give the same fraction.
    w = torch.tensor([1.0, 2.0, 3.0])
    assert effective_sample_fraction(5 * w).item() == pytest.approx(
        effective_sample_fraction(w).item()
    )
    assert effective_sample_fraction(w).item() == pytest.approx(36 / (3 * 14))


@pytest.mark.parametrize(
    "losses, tilt, message",
    [
        (torch.tensor([]), 1.0, "non-empty"),
        (torch.tensor([1.0, float("nan")]), 1.0, "non-finite"),
        (torch.tensor([1.0, float("inf")]), 1.0, "non-finite"),
        (torch.tensor([1, 2]), 1.0, "floating-point"),
        (torch.tensor([1.0, 2.0]), float("nan"), "tilt must be finite"),
        (torch.tensor([1.0, 2.0]), torch.tensor(1.0, requires_grad=True), "hyper-parameter"),
    ],
)
def test_bad_input(losses, tilt, message):
    with pytest.raises(ValueError, match=message):
        tilted_risk(losses, tilt)
