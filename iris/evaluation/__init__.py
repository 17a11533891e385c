"""Benchmark evaluation on lm-evaluation-harness: suites as data, one command, the loop hook.

This package owns scoring models on the paper's benchmarks, always through
``lm_eval.simple_evaluate`` (no benchmark is re-implemented here):

* :mod:`~iris.evaluation.suite` — suites as YAML (built-in ``iris10``, ``openllm_v1``) and
  :func:`summarize`, the averaging rule (a missing metric is NaN, never 0);
* :mod:`~iris.evaluation.harness` — :func:`evaluate_suite`: tasks, the hub datasets they
  need, backends (HF, vLLM, in-memory model), results with provenance;
* :mod:`~iris.evaluation.hub_cache` — ``--prefetch``: a suite's datasets cached while online;
* :mod:`~iris.evaluation.base` — the loop's :class:`Evaluator` protocol, its registry
  (:func:`make_evaluator`; kind ``lm_eval``: :mod:`~iris.evaluation.lm_eval_evaluator`)
  and :class:`EvalSettings`;
* :mod:`~iris.evaluation.chat` — kind ``chat``: a chat model on the run's held-out
  conversations (annotated responses' log-likelihood per token, generation statistics,
  lm-eval's rolling perplexities);
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
from iris.evaluation.chat import ChatEvaluator
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
    "ChatEvaluator",
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
