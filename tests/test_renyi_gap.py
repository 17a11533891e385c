"""The exact gap R_α(p_data ‖ p_θ) = D_α/α of the testbed, in float64 (iris.testbed.renyi)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import iris.scoring
from iris.testbed.evaluator import exact_metrics, renyi_gap_key
from iris.testbed.renyi import REPORTED_ALPHAS, renyi_gap, renyi_gap_per_prompt, tilted_mean
from iris.testbed.task import TargetSpec

SPEC = TargetSpec(num_prompts=2, num_symbols=3, max_length=3, seed=1)
ALPHAS = (0.05, 0.25, 0.5 - 1e-6, 0.5, 0.75, 0.99, 1.01, 1.5, 2.0, 4.0)


def _tiny_target_and_model(invalid: float = 0.1):
    """The tiny target's exact log-probs and a random model with mass ``invalid`` off the support."""
    target = SPEC.build()
    data = target.support_log_probs()
    rng = np.random.default_rng(0)
    model = np.log(rng.dirichlet(np.ones(data.shape[1]), size=data.shape[0]) * (1 - invalid))
    return data, model


def _brute_force_sums(data: np.ndarray, model: np.ndarray, alpha: float) -> np.ndarray:
    """Σ_y p(y)^α q(y)^{1−α} per prompt, term by term over the enumerated support."""
    return np.array(
        [
            math.fsum(p**alpha * q ** (1 - alpha) for p, q in zip(row_p, row_q, strict=True))
            for row_p, row_q in zip(np.exp(data), np.exp(model), strict=True)
        ]
    )


@pytest.mark.parametrize("alpha", ALPHAS)
def test_matches_brute_force_enumeration_on_a_tiny_target(alpha):
    data, model = _tiny_target_and_model()
    sums = _brute_force_sums(data, model, alpha)
    scale = alpha * (alpha - 1)
    np.testing.assert_allclose(
        renyi_gap_per_prompt(data, model, alpha), np.log(sums) / scale, rtol=1e-10
    )
    # The joint gap (prompts uniform): the sums average over prompts inside the log.
    assert renyi_gap(data, model, alpha) == pytest.approx(math.log(sums.mean()) / scale, rel=1e-10)


def _categoricals():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    q = np.array([0.25, 0.25, 0.1, 0.4])
    return p, q


def test_closed_forms_of_two_categoricals():
    """α = ½: −4 log BC (Bhattacharyya); α = 2: ½ log(1 + χ²); α = 1: KL(P‖Q); α = 0: KL(Q‖P)."""
    p, q = _categoricals()
    lp, lq = np.log(p), np.log(q)
    bhattacharyya = np.sum(np.sqrt(p * q))
    chi2 = np.sum((p - q) ** 2 / q)
    assert renyi_gap(lp, lq, 0.5) == pytest.approx(-4 * math.log(bhattacharyya), rel=1e-13)
    assert renyi_gap(lp, lq, 2.0) == pytest.approx(0.5 * math.log1p(chi2), rel=1e-13)
    assert renyi_gap(lp, lq, 1.0) == pytest.approx(np.sum(p * np.log(p / q)), rel=1e-13)
    assert renyi_gap(lp, lq, 0.0) == pytest.approx(np.sum(q * np.log(q / p)), rel=1e-13)
    # Duality R_α(P‖Q) = R_{1−α}(Q‖P), across the switch of formulation at α = ½.
    for alpha in (0.1, 0.4, 0.5, 0.6, 0.9, 1.0):
        assert renyi_gap(lp, lq, alpha) == pytest.approx(renyi_gap(lq, lp, 1 - alpha), rel=1e-12)


def test_continuous_through_alpha_one():
    """α = 1 is a removable singularity: R_{1±ε} = KL ± ε R'(1) + O(ε²), no cancellation."""
    data, model = _tiny_target_and_model()
    forward_kl = np.sum(np.exp(data) * (data - model), axis=1)
    np.testing.assert_allclose(renyi_gap_per_prompt(data, model, 1.0), forward_kl, rtol=1e-13)
    slope = (renyi_gap(data, model, 1 + 1e-4) - renyi_gap(data, model, 1 - 1e-4)) / 2e-4
    for eps in (1e-9, -1e-9, 1e-12):
        value = renyi_gap(data, model, 1 + eps)
        assert value == pytest.approx(forward_kl.mean() + eps * slope, abs=1e-14)
        per_prompt = renyi_gap_per_prompt(data, model, 1 + eps)
        np.testing.assert_allclose(per_prompt, forward_kl, atol=1e-8)


def test_alpha_to_zero():
    """→ KL(Q‖P) when Q lives on P's support; → +∞ when Q has mass off it."""
    p, q = _categoricals()
    reverse_kl = np.sum(q * np.log(q / p))
    assert renyi_gap(np.log(p), np.log(q), 1e-9) == pytest.approx(reverse_kl, abs=1e-8)
    data, model = _tiny_target_and_model(invalid=0.1)
    assert np.isinf(renyi_gap_per_prompt(data, model, 0.0)).all()
    small = renyi_gap_per_prompt(data, model, 1e-6)
    assert (small > 0.9 * -math.log(0.9) / 1e-6).all()  # ≈ −log m / α


def test_zero_at_the_target_and_jensen_between_joint_and_mean():
    data, model = _tiny_target_and_model()
    for alpha in (0.0, 0.5, 1.0, 2.0):
        np.testing.assert_allclose(renyi_gap_per_prompt(data, data, alpha), 0.0, atol=1e-13)
    for alpha in ALPHAS:  # joint = tilted mean (tilt α(α−1)) of the conditional gaps
        joint, conditional = renyi_gap(data, model, alpha), renyi_gap_per_prompt(data, model, alpha)
        assert (
            (joint <= conditional.mean() + 1e-12)
            if alpha < 1
            else (joint >= conditional.mean() - 1e-12)
        )
        assert renyi_gap(data[:1], model[:1], alpha) == pytest.approx(conditional[0], rel=1e-13)


def test_tilted_mean_is_continuous_and_handles_infinities():
    v, w = np.array([0.3, -1.2, 2.0]), np.array([0.2, 0.5, 0.3])
    assert tilted_mean(v, w, 0.0) == pytest.approx(np.dot(w, v), rel=1e-15)
    assert tilted_mean(v, w, 1e-10) == pytest.approx(np.dot(w, v), abs=1e-9)
    assert tilted_mean(v, w, 3.0) == pytest.approx(
        math.log(np.dot(w, np.exp(3 * v))) / 3, rel=1e-13
    )
    assert tilted_mean(np.array([1.0, math.inf]), np.array([0.5, 0.5]), -1.0) == pytest.approx(
        1.0 + math.log(2.0)
    )
    assert tilted_mean(np.array([1.0, math.inf]), np.array([0.5, 0.5]), 1.0) == math.inf
    with pytest.raises(ValueError):
        renyi_gap_per_prompt(np.zeros((1, 1)), np.zeros((1, 1)), -0.5)


def test_the_testbed_evaluator_reports_the_exact_gaps(monkeypatch):
    target = SPEC.build()
    data = target.support_log_probs()
    _, model = _tiny_target_and_model()
    monkeypatch.setattr(iris.scoring, "encoded_log_probs", lambda m, encoded: model.ravel())
    metrics = exact_metrics(target, None, None)
    for alpha in REPORTED_ALPHAS:
        assert metrics[renyi_gap_key(alpha)] == renyi_gap(data, model, alpha)
    assert [renyi_gap_key(a) for a in REPORTED_ALPHAS] == [
        "renyi_gap/alpha=0.25",
        "renyi_gap/alpha=0.5",
        "renyi_gap/alpha=1",
        "renyi_gap/alpha=2",
        "renyi_gap/alpha=4",
    ]
    # At α = 1 the joint gap is the (prompt-averaged) forward KL.
    assert metrics["renyi_gap/alpha=1"] == pytest.approx(metrics["forward_kl"], rel=1e-13)
