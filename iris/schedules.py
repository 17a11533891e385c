"""Schedules of the IRIS order α: constant, decaying, and adaptive to a measured gap.

This module owns how α changes over the optimisation steps of one self-play iteration
and across iterations. A schedule is a small object built from a name and parameters
(:func:`make_schedule`, e.g. ``{"name": "adaptive", "alpha_min": 0.5}``); the trainer
asks it for α at the start of every optimisation step (:meth:`AlphaSchedule.alpha`, given
a :class:`Progress`) and feeds it what it measured (:meth:`AlphaSchedule.observe`, given a
:class:`Measurement`). Whatever a schedule remembers between calls (the first measured
gap, a smoothed gap) is its *state*: ``state_dict()``/``load_state_dict()`` round-trip it
through plain JSON-able dicts, so the self-play loop can carry it from one iteration to
the next and a resumed run can restore it from a checkpoint. Schedules import nothing
from torch and are pure given their state.

Schedules:

- ``constant``: α fixed.
- ``linear`` / ``cosine``: α decays from ``start`` to ``end`` over the optimisation steps
  of an iteration (``over="steps"``) or over ``num_iterations`` self-play iterations
  (``over="iterations"``). The first step (iteration) gets ``start``, the last ``end``.
- ``adaptive``: a monotone map of a measured gap D̂ into ``[alpha_min, alpha_max]``
  (default [0.5, 2]): ``α = alpha_min + (alpha_max − alpha_min) · clip(D̂ / D̂₀, 0, 1)``.
  **This formula is a choice of this project** (objective.md, "Adaptive order
  schedule"): the IRIS paper states only that α is large when the estimated gap is
  large (mode-covering early) and small near convergence (mode-seeking). The defaults
  (``gap="margin"``, ``update="iteration"``, ``smoothing=0.9``) are measured: on the
  testbed's alpha-gap study the margin's α came closest to the oracle's (mean abs error
  0.355 vs 0.427 for −L_α and 1.005 for the reference gap; ``paper_figures/study/alpha-gap``).
  Gaps:

  * ``gap="reference"`` (free): D̂ = mean per-token log p_θt(y') − mean
    per-token log p_θt(y), synthetic minus annotated under the opponent θt, measured by
    the trainer from the precomputed reference log-probs once per iteration. It is 0
    when p_θt = p_data.
  * ``gap="variational"``: the running variational estimate −L_α (a lower bound on
    R_α(p_data ‖ p_θt)), measured after every optimisation step. It is 0 at the start of
    every iteration (θ = θt gives zero rewards) and grows as θ learns, so use it with
    ``normalizer="max"`` or ``update="iteration"``.
  * ``gap="margin"``: the running reward margin β·(mean log p_θ/p_θt of the annotated
    responses − mean of the synthetic ones) of the last optimisation batch (TRL's
    ``rewards/margins``; every pair loss reports it). Like −L_α it is 0 at the start of an
    iteration and grows as θ separates the two sides.
  * ``gap="evaluation"``: an evaluation of the model θt entering the iteration, the metric
    named by ``gap_metric`` (default ``testbed/forward_kl``, the exact forward KL on the
    testbed: an *oracle* no real run has). The self-play loop measures it before each
    iteration's training (:mod:`iris.selfplay`: the previous iteration's evaluation of θt
    when there is one) and checks ``gap_metric`` against the evaluator's metric names
    before any stage; used alone, the trainer measures nothing for it.

  D̂₀ is the first gap observed (``normalizer="first"``, objective.md's formula) or the
  largest gap observed so far (``normalizer="max"``); a non-positive D̂₀ maps a positive
  gap to ``alpha_max`` and a non-positive one to ``alpha_min``. ``smoothing`` ∈ [0, 1)
  applies an exponential moving average to the observed gaps. Before any observation α =
  ``alpha_max``.

  ``update="step"`` (default) recomputes α at every step from the gap observed so far.
  ``update="iteration"`` holds α fixed within a self-play iteration: at the first step of
  iteration t it is set from the gap as it stood when iteration t − 1 ended (for the
  variational gap: the trained −L_α, the estimate of R_α(p_data ‖ p_θt−1) that iteration
  reached), then the iteration's own observations start afresh. D̂₀ is then the gap at
  the end of the first iteration, and iteration 0 runs at ``alpha_max``. This is the
  per-iteration reading of "α large while the measured gap is large". [choice]
"""

from __future__ import annotations

import dataclasses
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "SCHEDULES",
    "AdaptiveSchedule",
    "AlphaSchedule",
    "ConstantSchedule",
    "CosineDecaySchedule",
    "LinearDecaySchedule",
    "Measurement",
    "Progress",
    "adaptive_alpha",
    "make_schedule",
]


@dataclass(frozen=True)
class Progress:
    """Where training stands when α is requested.

    Attributes:
        step: optimisation steps completed in this iteration (0 for the first step).
        total_steps: optimisation steps this iteration will run (≥ 1).
        iteration: index of the self-play iteration (0-based).
    """

    step: int
    total_steps: int
    iteration: int = 0

    def __post_init__(self) -> None:
        if self.total_steps < 1 or not 0 <= self.step or self.iteration < 0:
            raise ValueError(f"invalid progress {self}")


@dataclass(frozen=True)
class Measurement:
    """Quantities the trainer measured; ``None`` means "not measured this time".

    Attributes:
        reference_gap: D̂ = mean per-token log p_θt(y') − mean per-token log p_θt(y)
            (synthetic minus annotated under the opponent θt), once per iteration.
        variational_gap: −L_α over the last optimisation batch (IRIS only).
        margin_gap: the reward margin (annotated minus synthetic) of the last batch.
        evaluated_gap: the evaluated distance of θt to the data (the self-play loop's).
    """

    reference_gap: float | None = None
    variational_gap: float | None = None
    margin_gap: float | None = None
    evaluated_gap: float | None = None


def _finite(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _positive(value: float, name: str) -> float:
    value = _finite(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


class AlphaSchedule(ABC):
    """Base class: α for a :class:`Progress`, updated by :class:`Measurement` s.

    Subclasses are dataclasses whose fields are the schedule's parameters (fixed) and
    whose mutable state, if any, is returned by :meth:`state_dict`.
    """

    name: ClassVar[str]

    @abstractmethod
    def alpha(self, progress: Progress) -> float:
        """α for the optimisation step described by ``progress``."""

    def observe(self, measurement: Measurement) -> None:  # noqa: B027 - optional hook
        """Record a measurement (no-op for schedules that do not adapt)."""

    def measurements(self) -> frozenset[str]:
        """Names of the :class:`Measurement` fields this schedule reads."""
        return frozenset()

    def state_dict(self) -> dict[str, Any]:
        """The mutable state, as a JSON-able dict (empty for stateless schedules)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the state returned by :meth:`state_dict`."""
        if state:
            raise ValueError(f"schedule {self.name!r} has no state, got keys {sorted(state)}")

    def config(self) -> dict[str, Any]:
        """The schedule as ``{"name": ..., **parameters}``, accepted by :func:`make_schedule`."""
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}  # type: ignore[arg-type]
        return {"name": self.name, **params}


@dataclass
class ConstantSchedule(AlphaSchedule):
    """α fixed at ``alpha``."""

    name: ClassVar[str] = "constant"
    alpha_value: float = 1.0

    def __post_init__(self) -> None:
        self.alpha_value = _positive(self.alpha_value, "alpha")

    def alpha(self, progress: Progress) -> float:
        return self.alpha_value

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "alpha": self.alpha_value}


def _fraction(progress: Progress, over: str, num_iterations: int | None) -> float:
    """How far through the decay we are, in [0, 1]: 0 at the first step/iteration, 1 at the last."""
    if over == "steps":
        position, last = progress.step, progress.total_steps - 1
    else:
        assert num_iterations is not None
        position, last = progress.iteration, num_iterations - 1
    return 1.0 if last <= 0 else min(1.0, position / last)


@dataclass
class _DecaySchedule(AlphaSchedule):
    start: float = 2.0
    end: float = 0.5
    over: str = "steps"
    num_iterations: int | None = None

    def __post_init__(self) -> None:
        self.start = _positive(self.start, "start")
        self.end = _positive(self.end, "end")
        if self.over not in ("steps", "iterations"):
            raise ValueError(f"over must be 'steps' or 'iterations', got {self.over!r}")
        if self.over == "iterations":
            if self.num_iterations is None or int(self.num_iterations) < 1:
                raise ValueError("over='iterations' needs num_iterations >= 1")
            self.num_iterations = int(self.num_iterations)
        elif self.num_iterations is not None:
            raise ValueError("num_iterations applies only to over='iterations'")

    def alpha(self, progress: Progress) -> float:
        return self._interpolate(_fraction(progress, self.over, self.num_iterations))

    @abstractmethod
    def _interpolate(self, fraction: float) -> float: ...


@dataclass
class LinearDecaySchedule(_DecaySchedule):
    """``α = start + (end − start) · f``, f the fraction of steps (or iterations) done."""

    name: ClassVar[str] = "linear"

    def _interpolate(self, fraction: float) -> float:
        return self.start + (self.end - self.start) * fraction


@dataclass
class CosineDecaySchedule(_DecaySchedule):
    """``α = end + (start − end) · (1 + cos(π f)) / 2``."""

    name: ClassVar[str] = "cosine"

    def _interpolate(self, fraction: float) -> float:
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * fraction))


def adaptive_alpha(gap: float, initial_gap: float, alpha_min: float, alpha_max: float) -> float:
    """The adaptive map ``α_min + (α_max − α_min) · clip(gap / initial_gap, 0, 1)``.

    Nondecreasing in ``gap`` for any fixed ``initial_gap``; a non-positive ``initial_gap``
    maps ``gap > 0`` to ``alpha_max`` and ``gap ≤ 0`` to ``alpha_min``. [choice]

    >>> adaptive_alpha(0.5, 1.0, 0.5, 2.0)
    1.25
    """
    if initial_gap > 0:
        ratio = min(1.0, max(0.0, gap / initial_gap))
    else:
        ratio = 1.0 if gap > 0 else 0.0
    # Clamped: in floating point alpha_min + (alpha_max − alpha_min) · 1 may exceed alpha_max by an ulp.
    return min(alpha_max, max(alpha_min, alpha_min + (alpha_max - alpha_min) * ratio))


@dataclass
class AdaptiveSchedule(AlphaSchedule):
    """α from a measured gap, mapped monotonically into ``[alpha_min, alpha_max]`` (module docstring)."""

    name: ClassVar[str] = "adaptive"
    alpha_min: float = 0.5
    alpha_max: float = 2.0
    gap: str = "margin"  # measured default: the alpha-gap study's gap signals (LOG.md)
    normalizer: str = "first"
    smoothing: float = 0.9
    update: str = "iteration"
    gap_metric: str = "testbed/forward_kl"  # read with gap="evaluation" only
    # State (not constructor arguments).
    initial_gap: float | None = field(default=None, init=False)
    current_gap: float | None = field(default=None, init=False)
    observations: int = field(default=0, init=False)
    held_iteration: int | None = field(default=None, init=False)
    held_alpha: float | None = field(default=None, init=False)

    _STATE: ClassVar[tuple[str, ...]] = (
        "initial_gap",
        "current_gap",
        "observations",
        "held_iteration",
        "held_alpha",
    )

    _GAPS: ClassVar[dict[str, str]] = {
        "reference": "reference_gap",
        "variational": "variational_gap",
        "margin": "margin_gap",
        "evaluation": "evaluated_gap",
    }

    def __post_init__(self) -> None:
        self.alpha_min = _positive(self.alpha_min, "alpha_min")
        self.alpha_max = _positive(self.alpha_max, "alpha_max")
        if self.alpha_min > self.alpha_max:
            raise ValueError(
                f"alpha_min ({self.alpha_min}) must be <= alpha_max ({self.alpha_max})"
            )
        if self.gap not in self._GAPS:
            raise ValueError(f"gap must be one of {sorted(self._GAPS)}, got {self.gap!r}")
        if self.normalizer not in ("first", "max"):
            raise ValueError(f"normalizer must be 'first' or 'max', got {self.normalizer!r}")
        self.smoothing = _finite(self.smoothing, "smoothing")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if self.update not in ("step", "iteration"):
            raise ValueError(f"update must be 'step' or 'iteration', got {self.update!r}")

    def measurements(self) -> frozenset[str]:
        return frozenset({self._GAPS[self.gap]})

    def observe(self, measurement: Measurement) -> None:
        value = getattr(measurement, self._GAPS[self.gap])
        if value is None:
            return
        value = _finite(value, self._GAPS[self.gap])
        if self.current_gap is None:
            self.current_gap = value
        else:
            self.current_gap = self.smoothing * self.current_gap + (1.0 - self.smoothing) * value
        if self.update == "step":
            self._update_normalizer(self.current_gap)
        self.observations += 1

    def _update_normalizer(self, gap: float) -> None:
        if self.initial_gap is None:
            self.initial_gap = gap
        elif self.normalizer == "max":
            self.initial_gap = max(self.initial_gap, gap)

    def alpha(self, progress: Progress) -> float:
        if self.update == "iteration":
            return self._iteration_alpha(progress.iteration)
        if self.current_gap is None or self.initial_gap is None:
            return self.alpha_max
        return adaptive_alpha(self.current_gap, self.initial_gap, self.alpha_min, self.alpha_max)

    def _iteration_alpha(self, iteration: int) -> float:
        """α held for ``iteration``, set at its first request from the gap left by the last."""
        if self.held_iteration != iteration or self.held_alpha is None:
            gap = self.current_gap  # where the previous iteration ended (None at the start)
            if gap is None:
                self.held_alpha = self.alpha_max
            else:
                self._update_normalizer(gap)
                assert self.initial_gap is not None
                self.held_alpha = adaptive_alpha(
                    gap, self.initial_gap, self.alpha_min, self.alpha_max
                )
            self.held_iteration, self.current_gap = iteration, None
        return self.held_alpha

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._STATE}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        unknown = set(state) - set(self._STATE)
        if unknown:
            raise ValueError(f"unknown adaptive-schedule state keys {sorted(unknown)}")

        def number(name: str) -> float | None:
            return None if state.get(name) is None else float(state[name])

        self.initial_gap, self.current_gap = number("initial_gap"), number("current_gap")
        self.held_alpha = number("held_alpha")
        held = state.get("held_iteration")
        self.held_iteration = None if held is None else int(held)
        self.observations = int(state.get("observations", 0))

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alpha_min": self.alpha_min,
            "alpha_max": self.alpha_max,
            "gap": self.gap,
            "normalizer": self.normalizer,
            "smoothing": self.smoothing,
            "update": self.update,
            **({"gap_metric": self.gap_metric} if self.gap == "evaluation" else {}),
        }


SCHEDULES: dict[str, type[AlphaSchedule]] = {
    "constant": ConstantSchedule,
    "linear": LinearDecaySchedule,
    "cosine": CosineDecaySchedule,
    "adaptive": AdaptiveSchedule,
}


def make_schedule(spec: Mapping[str, Any] | str | float) -> AlphaSchedule:
    """Build a schedule from ``{"name": ..., **params}``, a name, a JSON object string, or a number.

    A number means ``{"name": "constant", "alpha": number}``. Unknown names and unknown
    parameters raise ``ValueError`` naming the allowed ones.

    >>> make_schedule({"name": "linear", "start": 2.0, "end": 1.0}).alpha(Progress(1, 3))
    1.5
    """
    if isinstance(spec, bool):
        raise ValueError(f"not a schedule: {spec!r}")
    if isinstance(spec, int | float):
        return ConstantSchedule(float(spec))
    if isinstance(spec, str):
        spec = json.loads(spec) if spec.lstrip().startswith("{") else {"name": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"a schedule is a mapping with a 'name', got {type(spec).__name__}")
    params = dict(spec)
    name = params.pop("name", None)
    if name not in SCHEDULES:
        raise ValueError(f"unknown alpha schedule {name!r}; known: {sorted(SCHEDULES)}")
    cls = SCHEDULES[name]
    if cls is ConstantSchedule:
        allowed = {"alpha"}
        if "alpha" in params:
            params["alpha_value"] = params.pop("alpha")
    else:
        allowed = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(params) - allowed - ({"alpha_value"} if cls is ConstantSchedule else set())
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {sorted(unknown)} for alpha schedule {name!r}; allowed: {sorted(allowed)}"
        )
    return cls(**params)
