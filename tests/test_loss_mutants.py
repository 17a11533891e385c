"""Tests that kill the mutants of iris/losses an audit found surviving the rest of the suite.

Each test names the mutant it kills (experiments/benchmarks/mutants.py applies them as
source patches and records which test kills which): the ``*_max_weight`` metrics, the
float64 formation of 1 − α, the gradient of ``combine_tilted_risks``, detached weights and
metrics, SPACE's accuracy metrics and the promotion of mixed float32/float64 inputs. All
float64 references are naive formulas written out here.
"""

from __future__ import annotations

import math

import pytest
import torch

from iris.losses import (
    LOSSES,
    combine_tilted_risks,
    iris_loss,
    iris_normalizers,
    space_loss,
    tilted_risk,
    tspin_loss,
)

TWO_SIDED = ("iris", "spin", "space", "spif")  # LOSSES taking (real, generated) log-ratios
HYPER = {"iris": {"alpha": 2.0}, "spin": {}, "space": {"mu": 2.0}, "spif": {}}


def _pair(seed: int, n: int = 6, dtype: torch.dtype = torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, generator=gen, dtype=torch.float64).to(dtype),
        torch.randn(n, generator=gen, dtype=torch.float64).to(dtype),
    )


# --- mutant: `*_max_weight` computed with .min (or anything but the largest weight) --------


@pytest.mark.parametrize("alpha", [0.3, 2.0])
def test_iris_max_weight_metrics_are_the_largest_weights(alpha: float) -> None:
    """``real_max_weight = max_i w⁺_i`` and ``generated_max_weight = max_j w⁻_j`` on random
    rewards, whose weights are far from uniform (so a min, mean or sum is visibly wrong)."""
    real, generated = _pair(0)
    out = iris_loss(3 * real, 3 * generated, alpha=alpha)
    w_real = torch.softmax((alpha - 1) * 3 * real, -1)
    w_generated = torch.softmax(alpha * 3 * generated, -1)
    assert out.metrics["real_max_weight"].item() == pytest.approx(w_real.max().item(), rel=1e-12)
    assert out.metrics["generated_max_weight"].item() == pytest.approx(
        w_generated.max().item(), rel=1e-12
    )
    assert out.metrics["real_max_weight"] > w_real.min() + 0.05


def test_iris_max_weight_hand_worked() -> None:
    """α = 2, r⁺ = (0, log 3): w⁺ = softmax(r⁺) = (1/4, 3/4); r⁻ = (0, ½ log 3):
    w⁻ = softmax(2 r⁻) = (1/4, 3/4). Both max weights are 3/4."""
    real = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64)
    generated = torch.tensor([0.0, 0.5 * math.log(3.0)], dtype=torch.float64)
    out = iris_loss(real, generated, alpha=2.0)
    assert out.metrics["real_max_weight"].item() == pytest.approx(0.75, abs=1e-15)
    assert out.metrics["generated_max_weight"].item() == pytest.approx(0.75, abs=1e-15)


# --- mutant: 1 − α formed in the compute dtype (float32) instead of float64 ----------------


@pytest.mark.parametrize("alpha", [1.0 - 1e-9, 1.0 + 1e-9])
def test_real_tilt_formed_in_float64_near_alpha_one(alpha: float) -> None:
    """float32 inputs, α = 1 ∓ 1e-9, |r| up to 1e4: the annotated weights are
    softmax((α − 1) r⁺) with (α − 1) = ∓1e-9 exactly, not the uniform weights of a tilt that
    rounded to 0 (in float32, 1 − 1e-9 == 1).

    (α − 1) r spans ±1e-5, so the true weights differ from 1/n by a relative ~1e-5; formed
    in float64 the float32 result is within ~1e-7 relative of the float64 reference.
    """
    real = torch.linspace(-1e4, 1e4, 9, dtype=torch.float32)
    generated = torch.linspace(-1.0, 1.0, 5, dtype=torch.float32)
    out = iris_loss(real, generated, alpha=alpha)
    reference = torch.softmax((alpha - 1.0) * real.double(), -1)
    relative = ((out.real_weights.double() - reference) / reference).abs().max().item()
    assert relative < 1e-6
    assert torch.tensor(alpha, dtype=torch.float32).item() == 1.0  # why float64 is needed
    # The real risk is −mean r⁺ + (1−α)/2 · Var r⁺: its O(1−α) term is ±1e-9 · 1.5e7/2 ≈ ∓0.014.
    variance = real.double().var(unbiased=False).item()
    expected_risk = (1.0 - alpha) / 2 * variance  # mean r⁺ = 0
    assert out.metrics["real_risk"].item() == pytest.approx(expected_risk, rel=1e-3)
    real_n, _ = iris_normalizers(real, generated, alpha=alpha)
    assert real_n.risk.item() == pytest.approx(expected_risk, rel=1e-3)


# --- mutant: combine_tilted_risks' backward ignores the group counts ----------------------


@pytest.mark.parametrize("tau", [-0.8, 0.0, 0.6, 30.0])
def test_combine_tilted_risks_gradient_weights_groups_by_size(tau: float) -> None:
    """∂/∂R_k of ``(1/τ) log Σ_k (n_k/N) e^{τ R_k}`` is ``n_k e^{τR_k} / Σ_j n_j e^{τR_j}``
    (at τ = 0: n_k/N), and through the groups' own risks the gradient is that of the
    tilted risk of the union, ``softmax(τ ℓ)``, sample by sample."""
    gen = torch.Generator().manual_seed(4)
    samples = torch.randn(8, generator=gen, dtype=torch.float64)
    counts = torch.tensor([1, 5, 2])
    risks = torch.stack([tilted_risk(part, tau) for part in samples.split([1, 5, 2])])
    risks = risks.detach().requires_grad_()
    combine_tilted_risks(risks, counts, tau).backward()
    logits = tau * risks.detach() + torch.log(counts.double() / 8)
    torch.testing.assert_close(risks.grad, torch.softmax(logits, -1), rtol=1e-12, atol=1e-14)

    leaves = samples.clone().requires_grad_()
    parts = torch.stack([tilted_risk(part, tau) for part in leaves.split([1, 5, 2])])
    combined = combine_tilted_risks(parts, counts, tau)
    combined.backward()
    torch.testing.assert_close(
        leaves.grad, torch.softmax(tau * samples, -1), rtol=1e-10, atol=1e-14
    )
    assert combined.item() == pytest.approx(tilted_risk(samples, tau).item(), rel=1e-12, abs=1e-14)


# --- mutant: returned weights (or metrics) not detached -----------------------------------


@pytest.mark.parametrize("name", TWO_SIDED)
def test_weights_and_metrics_are_detached(name: str) -> None:
    """Weights and metrics are diagnostics: no autograd history, whatever the inputs."""
    real, generated = (x.requires_grad_() for x in _pair(1))
    out = LOSSES[name](real, generated, **HYPER[name])
    assert out.loss.requires_grad
    for label, tensor in (
        ("real_weights", out.real_weights),
        ("generated_weights", out.generated_weights),
        *out.metrics.items(),
    ):
        assert not tensor.requires_grad and tensor.grad_fn is None, f"{name}: {label}"


def test_weights_detached_with_normalizers_and_for_tspin() -> None:
    real, generated = (x.requires_grad_() for x in _pair(2))
    real_n, gen_n = iris_normalizers(real, generated, alpha=1.5)
    out = iris_loss(
        real[:3], generated[:3], alpha=1.5, real_normalizer=real_n, generated_normalizer=gen_n
    )
    proto = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    outputs = (out, tspin_loss(real, generated, proto))
    for o in outputs:
        for tensor in (o.real_weights, o.generated_weights, *o.metrics.values()):
            assert not tensor.requires_grad


# --- mutant: SPACE's accuracy metrics inverted --------------------------------------------


def test_space_accuracy_metrics_hand_worked() -> None:
    """The NCE classifier says "annotated" iff σ_μ(u) > ½, i.e. u > log μ.

    μ = e (log μ = 1), β = 1: u⁺ = (2, −1, 0.5, 3) → classified annotated: 2 of 4 → ½;
    u⁻ = (−1, 3, 0.9) → classified synthetic (u < 1): 2 of 3 → ⅔. With μ = 1 (log μ = 0):
    u⁺ > 0 for 3 of 4 → ¾; u⁻ < 0 for 1 of 3 → ⅓. These are accuracies (fractions of
    correctly classified samples), not posterior probabilities.
    """
    real = torch.tensor([2.0, -1.0, 0.5, 3.0], dtype=torch.float64)
    generated = torch.tensor([-1.0, 3.0, 0.9], dtype=torch.float64)
    out = space_loss(real, generated, mu=math.e)
    assert out.metrics["real_accuracy"].item() == pytest.approx(0.5)
    assert out.metrics["generated_accuracy"].item() == pytest.approx(2 / 3)
    out = space_loss(real, generated, mu=1.0)
    assert out.metrics["real_accuracy"].item() == pytest.approx(0.75)
    assert out.metrics["generated_accuracy"].item() == pytest.approx(1 / 3)


# --- mutant: mixed float32/float64 inputs computed in float32 -----------------------------


@pytest.mark.parametrize("name", TWO_SIDED)
def test_mixed_precision_inputs_promote_to_float64(name: str) -> None:
    """One float64 input makes the whole computation float64: the result equals the
    all-float64 result on the same (exactly representable) values, bit for bit up to 1e-15."""
    real32, generated32 = _pair(3, dtype=torch.float32)
    generated64 = generated32.double()
    mixed = LOSSES[name](real32, generated64, **HYPER[name])
    both = LOSSES[name](real32.double(), generated64, **HYPER[name])
    for a, b in (
        (mixed.loss, both.loss),
        (mixed.real_weights, both.real_weights),
        (mixed.generated_weights, both.generated_weights),
    ):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, b, rtol=1e-15, atol=1e-15)


def test_mixed_precision_tspin_and_float32_stays_float32() -> None:
    real32, generated32 = _pair(5, dtype=torch.float32)
    proto64 = torch.zeros(6, dtype=torch.float64)
    assert tspin_loss(real32, generated32, proto64).loss.dtype == torch.float64
    assert iris_loss(real32, generated32, alpha=0.5).loss.dtype == torch.float32
    assert iris_loss(real32.bfloat16(), generated32, alpha=0.5).loss.dtype == torch.float32


# --- the mutation check itself (experiments/benchmarks/mutants.py) -----------------------


def _mutants_module():
    import importlib.util
    import sys
    from pathlib import Path

    if "iris_mutants" in sys.modules:
        return sys.modules["iris_mutants"]
    path = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks" / "mutants.py"
    spec = importlib.util.spec_from_file_location("iris_mutants", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["iris_mutants"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_every_mutant_still_applies() -> None:
    """Each mutant's source line occurs exactly once in the library (the list cannot rot),
    ids are unique, and the six audit survivors of issue 18 are in the list."""
    mutants = _mutants_module()
    ids = [m.id for m in mutants.MUTANTS]
    assert len(ids) == len(set(ids)) >= 19
    for m in mutants.MUTANTS:
        text = (mutants.ROOT / m.path).read_text(encoding="utf-8")
        assert text.count(m.old) == 1, m.id
        assert m.old != m.new
    assert {
        "real_max_weight_min",
        "one_minus_alpha_float32",
        "combine_backward_ignores_counts",
        "weights_not_detached",
        "space_accuracy_inverted",
        "mixed_dtype_float32",
    } <= set(ids)


@pytest.mark.slow
def test_every_mutant_is_killed() -> None:
    """Runs the whole mutation check (about 5 minutes on 2 cores): every mutant killed."""
    assert _mutants_module().main(["--jobs", "2"]) == 0
