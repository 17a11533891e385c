"""Benchmark evaluation on lm-evaluation-harness: suites as data, one command, the loop hook.

This package owns scoring models on the paper's benchmarks, always through
``lm_eval.simple_evaluate`` (no benchmark is re-implemented here):

* :mod:`~iris.evaluation.suite` — suites as YAML (built-in ``iris10``: the ten benchmarks
  of IRIS/T-SPIN; ``openllm_v1``: SPIN's six), and :func:`summarize`, the averaging rule:
  the unweighted mean over the suite's tasks of each task's metric as lm-eval reports it
  (group tasks: lm-eval's group aggregate); a missing metric is NaN, never 0;
* :mod:`~iris.evaluation.harness` — :func:`evaluate_suite`: tasks (and the hub datasets
  they need), backends (HF, vLLM, in-memory model), lm-eval's own results layout + the
  compact summary with provenance;
* :mod:`~iris.evaluation.hub_cache` — ``--prefetch``: a suite's datasets cached while online;
* :mod:`~iris.evaluation.base` — the :class:`Evaluator` protocol of the self-play loop,
  :func:`make_evaluator` (registry of kinds; ``lm_eval`` is
  :class:`~iris.evaluation.lm_eval_evaluator.LmEvalEvaluator`) and :class:`EvalSettings`;
* :mod:`~iris.evaluation.cli` — ``iris eval`` (its flags generated from EvalSettings).

Importing this package does not import lm-eval or torch (lm-eval is the ``eval`` extra):
the modules import them inside the functions that run lm-eval.
"""

from iris.evaluation.base import (
    BackendUnavailableError,
    EvalSettings,
    EvaluationError,
    Evaluator,
    MissingDatasetError,
    MissingTokenizerError,
    UnknownTaskError,
    evaluator_kinds,
    make_evaluator,
    register_evaluator,
    runs_at,
)
from iris.evaluation.harness import EvalResult, PrefetchPlan, evaluate_suite, prefetch_plan
from iris.evaluation.hub_cache import prefetch
from iris.evaluation.lm_eval_evaluator import LmEvalEvaluator
from iris.evaluation.suite import (
    Suite,
    TaskSpec,
    builtin_suites,
    load_suite,
    resolve_suite,
    summarize,
)

__all__ = [
    "BackendUnavailableError",
    "EvalResult",
    "EvalSettings",
    "EvaluationError",
    "Evaluator",
    "LmEvalEvaluator",
    "MissingDatasetError",
    "MissingTokenizerError",
    "PrefetchPlan",
    "Suite",
    "TaskSpec",
    "UnknownTaskError",
    "builtin_suites",
    "evaluate_suite",
    "evaluator_kinds",
    "load_suite",
    "make_evaluator",
    "prefetch",
    "prefetch_plan",
    "register_evaluator",
    "resolve_suite",
    "runs_at",
    "summarize",
]
