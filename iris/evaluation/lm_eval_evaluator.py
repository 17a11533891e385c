"""The self-play loop's lm-eval evaluator: a suite, every k iterations, in memory or from disk.

This module owns :class:`LmEvalEvaluator`, registered as evaluator kind ``"lm_eval"``: the
run config's ``evaluation`` mapping, e.g. ::

    evaluation: {kind: lm_eval, suite: iris10, every: 1, limit: null, batch_size: 8,
                 apply_chat_template: false}

becomes an evaluator (via :func:`iris.evaluation.make_evaluator`) that the driver asks
``should_run(t, T)`` after each iteration and then ``evaluate(model_dir, iteration=t,
output_dir=..., model=..., tokenizer=...)``. Its keys are the schedule's (``suite``,
``every``, ``final``, ``name``) plus every :class:`~iris.evaluation.base.EvalSettings`
field, inherited rather than restated. Unknown keys and bad values fail when the run
starts, not after the first iteration's training. lm-eval's task index is built once and
reused across iterations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from iris.config import from_dict
from iris.evaluation.base import EvalSettings, register_evaluator, runs_at, setting
from iris.evaluation.harness import check_backend, evaluate_suite
from iris.evaluation.suite import Suite, flat_key, resolve_suite


@register_evaluator("lm_eval")
@dataclasses.dataclass(frozen=True)
class LmEvalEvaluator(EvalSettings):
    """Scores an iteration's model on a suite with lm-eval (see :mod:`iris.evaluation.harness`)."""

    suite: str = setting("iris10", "iris10, openllm_v1, a suite/task YAML, or lm-eval task names.")
    every: int = setting(1, "Evaluate after every k-th iteration (and the last).")
    final: bool = setting(True, "Always evaluate after the last iteration.")
    name: str = setting("", "File prefix in the output directory (default: the suite name).")

    _suite: Suite = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()  # validates batch size, limit and bootstrap values now
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        object.__setattr__(self, "_suite", resolve_suite(self.suite))
        check_backend(self.backend)
        if not self.name:
            object.__setattr__(self, "name", self._suite.name)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LmEvalEvaluator:
        """Build from the ``evaluation`` mapping (without ``kind``); unknown keys and bad values
        raise :class:`~iris.config.ConfigError`."""
        return from_dict(cls, config, source="evaluation config")

    @property
    def settings(self) -> EvalSettings:
        """How the model is run (the :class:`EvalSettings` fields of this config)."""
        return EvalSettings.of(self)

    def metric_names(self) -> frozenset[str] | None:
        """The flat keys :meth:`evaluate` reports (None: a task scored by lm-eval's first
        metric, known only from its results)."""
        if any(spec.metrics is None for spec in self._suite.tasks):
            return None
        return frozenset([*(flat_key(s.task, s.metrics) for s in self._suite.tasks), "average"])

    def should_run(self, iteration: int, num_iterations: int) -> bool:
        return runs_at(iteration, num_iterations, every=self.every, final=self.final)

    def evaluate(
        self,
        model_dir: Path,
        *,
        iteration: int,
        output_dir: Path,
        model: Any = None,
        tokenizer: Any = None,
    ) -> dict[str, float]:
        """Score the in-memory ``model`` (or ``model_dir``), write JSON into ``output_dir``.

        Without ``tokenizer``, an in-memory model's tokenizer is loaded from ``model_dir``.
        Returns ``{"<task>/<metric>": value, ..., "average": value}`` (NaN where missing).
        Call it on the main process only: an in-memory model is evaluated by one process
        (lm-eval's HFLM); a model directory under a multi-process launch returns ``{}`` on
        the other processes.
        """
        result = evaluate_suite(
            self._suite,
            model if model is not None else Path(model_dir),
            output_dir=output_dir,
            tokenizer=tokenizer,
            settings=self.settings,
            name=self.name,
            model_dir=model_dir,
            extra_provenance={"iteration": iteration, "model_dir": str(model_dir)},
        )
        return result.flat if result is not None else {}
