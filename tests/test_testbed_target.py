"""The testbed's target distribution: normalised, exact, and sampled as specified."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from iris.testbed import make_target


@pytest.fixture(scope="module")
def target():
    return make_target(num_prompts=3, num_symbols=3, max_length=4, seed=1)


def test_support_is_normalised(target):
    log_probs = target.support_log_probs()
    assert log_probs.shape == (3, 3 + 9 + 27 + 81)
    np.testing.assert_allclose(np.exp(log_probs).sum(axis=1), 1.0, rtol=1e-12)


def test_vectorised_log_probs_match_the_scalar_formula(target):
    log_probs = target.support_log_probs()
    for j, seq in enumerate(target.support()):
        for k in range(target.num_prompts):
            assert log_probs[k, j] == pytest.approx(target.log_prob(k, seq), rel=1e-12)


def test_hand_worked_probability():
    """S = 2, L = 3, π = (0.25, 0.75), T = [[0.5, 0.5], [0.1, 0.9]], q = (0.2, 0.4):
    p((1, 0)) = π(1) · T(1,0) · (1 − q(1)) · q(0) = 0.75 · 0.1 · 0.6 · 0.2 = 0.009;
    p((1, 1, 1)) (at the cap, no stop factor) = 0.75 · 0.9 · 0.6 · 0.9 · 0.6 = 0.2187."""
    from iris.testbed import MarkovTarget

    t = MarkovTarget(
        np.array([[0.25, 0.75]]), np.array([[0.5, 0.5], [0.1, 0.9]]), np.array([0.2, 0.4]), 3
    )
    assert math.exp(t.log_prob(0, (1, 0))) == pytest.approx(0.009)
    assert math.exp(t.log_prob(0, (1, 1, 1))) == pytest.approx(0.2187)
    assert t.log_prob(0, (1, 1, 1, 1)) == -math.inf
    assert t.log_prob(0, ()) == -math.inf
    assert t.log_prob(0, (2,)) == -math.inf


def test_entropy_dynamic_programme_equals_enumeration(target):
    log_probs = target.support_log_probs()
    np.testing.assert_allclose(
        target.entropy(), -(np.exp(log_probs) * log_probs).sum(axis=1), rtol=1e-12
    )


def test_samples_follow_the_exact_probabilities(target):
    """Pearson χ² goodness of fit of 20k samples against the exact law (p > 1e-4)."""
    rng = np.random.default_rng(0)
    counts = Counter(target.sample(1, rng) for _ in range(20_000))
    support = target.support()
    expected = np.exp(target.support_log_probs()[1]) * 20_000
    observed = np.array([counts.get(seq, 0) for seq in support])
    keep = expected >= 5  # pool the rare cells
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    assert stats.chisquare(obs, exp).pvalue > 1e-4
    assert sum(counts.values()) == 20_000 and set(counts) <= set(support)


def test_deterministic_for_a_seed():
    a, b = make_target(seed=3), make_target(seed=3)
    np.testing.assert_array_equal(a.start, b.start)
    assert not np.array_equal(a.start, make_target(seed=4).start)
