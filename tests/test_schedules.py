"""α schedules: values, bounds, monotonicity of the adaptive map, state round-trip, specs."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iris.schedules import (
    SCHEDULES,
    AdaptiveSchedule,
    ConstantSchedule,
    CosineDecaySchedule,
    LinearDecaySchedule,
    Measurement,
    Progress,
    adaptive_alpha,
    make_schedule,
)

gaps = st.floats(-1e6, 1e6, allow_nan=False)
bounds = st.tuples(st.floats(1e-3, 10.0), st.floats(1e-3, 10.0)).map(sorted)


def _steps(schedule, total: int, iteration: int = 0) -> list[float]:
    return [schedule.alpha(Progress(step, total, iteration)) for step in range(total)]


def test_constant():
    schedule = make_schedule({"name": "constant", "alpha": 0.7})
    assert isinstance(schedule, ConstantSchedule)
    assert _steps(schedule, 5) == [0.7] * 5
    assert make_schedule(1.5).alpha(Progress(0, 1)) == 1.5
    assert schedule.state_dict() == {}


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_decay_over_steps_runs_from_start_to_end(name):
    values = _steps(make_schedule({"name": name, "start": 2.0, "end": 0.5}), 11)
    assert values[0] == pytest.approx(2.0) and values[-1] == pytest.approx(0.5)
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_linear_and_cosine_values():
    linear = LinearDecaySchedule(start=2.0, end=1.0)
    assert _steps(linear, 3) == pytest.approx([2.0, 1.5, 1.0])
    cosine = CosineDecaySchedule(start=2.0, end=1.0)
    assert cosine.alpha(Progress(1, 3)) == pytest.approx(1.5)
    assert cosine.alpha(Progress(1, 5)) == pytest.approx(1.0 + 0.5 * (1 + math.cos(math.pi / 4)))
    assert linear.alpha(Progress(0, 1)) == 1.0  # a single step is the last one


def test_decay_over_iterations_ignores_steps():
    schedule = make_schedule(
        {"name": "linear", "start": 2.0, "end": 0.5, "over": "iterations", "num_iterations": 4}
    )
    assert [schedule.alpha(Progress(3, 10, iteration)) for iteration in range(5)] == pytest.approx(
        [2.0, 1.5, 1.0, 0.5, 0.5]
    )
    assert _steps(schedule, 4, iteration=1) == pytest.approx([1.5] * 4)


@given(gaps, gaps, gaps, bounds)
def test_adaptive_map_is_monotone_and_bounded(gap_a, gap_b, initial, alpha_range):
    low, high = alpha_range
    a = adaptive_alpha(min(gap_a, gap_b), initial, low, high)
    b = adaptive_alpha(max(gap_a, gap_b), initial, low, high)
    assert low <= a <= b <= high


def test_adaptive_map_values():
    """objective.md's [choice]: α = α_min + (α_max − α_min) · min(1, D̂/D̂₀), clipped at 0."""
    assert adaptive_alpha(1.0, 1.0, 0.5, 2.0) == 2.0
    assert adaptive_alpha(0.25, 1.0, 0.5, 2.0) == pytest.approx(0.875)
    assert adaptive_alpha(3.0, 1.0, 0.5, 2.0) == 2.0
    assert adaptive_alpha(-1.0, 1.0, 0.5, 2.0) == 0.5
    assert adaptive_alpha(0.1, 0.0, 0.5, 2.0) == 2.0  # no scale: a positive gap is large
    assert adaptive_alpha(0.0, 0.0, 0.5, 2.0) == 0.5


def test_adaptive_schedule_uses_its_gap_and_first_observation():
    schedule = AdaptiveSchedule(gap="reference", update="step", smoothing=0.0)  # D̂₀ = first
    assert schedule.alpha(Progress(0, 1)) == 2.0  # nothing measured yet
    assert schedule.measurements() == {"reference_gap"}
    schedule.observe(Measurement(reference_gap=0.4))
    assert schedule.alpha(Progress(0, 1)) == 2.0
    schedule.observe(Measurement(variational_gap=5.0))  # not its gap: ignored
    schedule.observe(Measurement(reference_gap=0.1))
    assert schedule.alpha(Progress(0, 1)) == pytest.approx(0.5 + 1.5 * 0.25)
    assert schedule.initial_gap == 0.4


def test_adaptive_schedule_max_normalizer_and_smoothing():
    schedule = AdaptiveSchedule(gap="variational", normalizer="max", smoothing=0.5, update="step")
    for value in (0.0, 0.4, 0.4):
        schedule.observe(Measurement(variational_gap=value))
    # EMA: 0 → 0.2 → 0.3; D̂₀ = running max of the smoothed gap = 0.3.
    assert schedule.current_gap == pytest.approx(0.3)
    assert schedule.alpha(Progress(0, 1)) == 2.0
    schedule.observe(Measurement(variational_gap=0.0))
    assert schedule.alpha(Progress(0, 1)) == pytest.approx(0.5 + 1.5 * 0.15 / 0.3)


@given(st.lists(gaps, max_size=6), bounds)
def test_adaptive_state_round_trips_through_json(observations, alpha_range):
    low, high = alpha_range
    schedule = AdaptiveSchedule(alpha_min=low, alpha_max=high, smoothing=0.3)
    for value in observations:
        schedule.observe(Measurement(reference_gap=value))
    state = json.loads(json.dumps(schedule.state_dict()))
    restored = make_schedule(json.loads(json.dumps(schedule.config())))
    restored.load_state_dict(state)
    assert restored.state_dict() == schedule.state_dict()
    assert restored.alpha(Progress(0, 1)) == schedule.alpha(Progress(0, 1))
    assert low <= restored.alpha(Progress(0, 1)) <= high


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_config_round_trips(name):
    schedule = make_schedule(name)
    assert make_schedule(schedule.config()).config() == schedule.config()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "step"}, "unknown alpha schedule"),
        ({"alpha": 1.0}, "unknown alpha schedule"),
        ({"name": "linear", "begin": 1.0}, "unknown parameter"),
        ({"name": "constant", "alpha": 0.0}, "alpha must be > 0"),
        ({"name": "linear", "end": -1.0}, "end must be > 0"),
        ({"name": "linear", "over": "epochs"}, "over must be"),
        ({"name": "cosine", "over": "iterations"}, "num_iterations"),
        ({"name": "linear", "num_iterations": 3}, "applies only"),
        ({"name": "adaptive", "alpha_min": 2.0, "alpha_max": 1.0}, "alpha_min"),
        ({"name": "adaptive", "gap": "kl"}, "gap must be"),
        ({"name": "adaptive", "smoothing": 1.0}, "smoothing"),
        ({"name": "adaptive", "normalizer": "mean"}, "normalizer"),
        (True, "not a schedule"),
    ],
)
def test_bad_specs_are_rejected(spec, message):
    with pytest.raises(ValueError, match=message):
        make_schedule(spec)


def test_bad_state_and_measurements_are_rejected():
    with pytest.raises(ValueError, match="unknown adaptive-schedule state"):
        AdaptiveSchedule().load_state_dict({"gap": 1.0})
    with pytest.raises(ValueError, match="has no state"):
        ConstantSchedule().load_state_dict({"x": 1})
    with pytest.raises(ValueError, match="finite"):
        AdaptiveSchedule(gap="reference").observe(Measurement(reference_gap=float("nan")))
    with pytest.raises(ValueError, match="invalid progress"):
        Progress(step=0, total_steps=0)


def test_json_string_specs():
    assert make_schedule('{"name": "linear", "start": 3.0}').config()["start"] == 3.0


def test_adaptive_per_iteration_holds_alpha_and_follows_the_end_of_iteration_gap():
    """update="iteration": iteration 0 at alpha_max; iteration t at the map of the gap with
    which iteration t − 1 ended (D̂₀ = the first such gap); α constant within an iteration."""
    schedule = make_schedule(
        {
            "name": "adaptive",
            "gap": "variational",
            "update": "iteration",
            "smoothing": 0.0,
            "alpha_min": 0.5,
            "alpha_max": 2.0,
        }
    )
    for step, gap in enumerate((0.0, 0.3, 1.0)):  # −L_α grows from 0 as iteration 0 trains
        assert schedule.alpha(Progress(step, 3, iteration=0)) == 2.0
        schedule.observe(Measurement(variational_gap=gap))
    assert schedule.alpha(Progress(0, 3, iteration=1)) == 2.0  # gap 1.0 = D̂₀
    for gap in (0.0, 0.2, 0.4):
        schedule.observe(Measurement(variational_gap=gap))
        assert schedule.alpha(Progress(1, 3, iteration=1)) == 2.0  # held
    state = json.loads(json.dumps(schedule.state_dict()))
    resumed = make_schedule(schedule.config())
    resumed.load_state_dict(state)
    expected = 0.5 + 1.5 * 0.4
    assert resumed.alpha(Progress(0, 3, iteration=2)) == pytest.approx(expected)
    assert schedule.alpha(Progress(0, 3, iteration=2)) == pytest.approx(expected)


def test_adaptive_per_iteration_with_the_reference_gap():
    """The reference gap is observed once, before the iteration's first step: α follows it."""
    schedule = make_schedule({"name": "adaptive", "gap": "reference", "smoothing": 0.0})
    schedule.observe(Measurement(reference_gap=0.8))
    assert schedule.alpha(Progress(0, 4, iteration=0)) == 2.0  # D̂₀ = 0.8
    schedule.observe(Measurement(reference_gap=0.2))
    assert schedule.alpha(Progress(0, 4, iteration=1)) == pytest.approx(0.5 + 1.5 * 0.25)
    with pytest.raises(ValueError, match="update"):
        make_schedule({"name": "adaptive", "update": "epoch"})


@pytest.mark.parametrize(
    ("gap", "field"), [("margin", "margin_gap"), ("evaluation", "evaluated_gap")]
)
def test_adaptive_margin_and_evaluated_gaps_read_their_own_measurement(gap, field):
    """gap="margin" reads the trained reward margin, gap="evaluation" the evaluated gap of θt
    (the oracle the self-play loop measures); each ignores the other measurements."""
    schedule = make_schedule({"name": "adaptive", "gap": gap, "update": "iteration"})
    assert schedule.measurements() == {field}
    schedule.observe(Measurement(reference_gap=9.0, variational_gap=9.0))  # not its gap
    assert schedule.current_gap is None
    schedule.observe(Measurement(**{field: 0.8}))
    assert schedule.alpha(Progress(0, 4, iteration=0)) == 2.0  # D̂₀ = 0.8
    schedule.observe(Measurement(**{field: 0.2}))
    assert schedule.alpha(Progress(0, 4, iteration=1)) == pytest.approx(0.5 + 1.5 * 0.25)
    config = schedule.config()
    assert ("gap_metric" in config) == (gap == "evaluation")
    assert make_schedule(config).config() == config
