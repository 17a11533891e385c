"""The self-play loop's evaluator protocol and registry, how a model is run, and the errors.

This module owns the seam between the self-play driver and whatever scores a model: the
:class:`Evaluator` protocol (when to run, and ``evaluate`` → a flat ``{"<task>/<metric>":
value, ..., "average": value}``), the registry that builds one from a config mapping
(``{"kind": "lm_eval", ...}`` → :func:`make_evaluator`; a new kind registers itself with
:func:`register_evaluator`, so there is no if/elif over kinds), the "every k iterations
and always the last" schedule, the errors every evaluation path raises, and
:class:`EvalSettings`, declared once: the ``iris eval`` flags and the loop's
``evaluation`` keys are generated from its fields. It imports neither lm-eval nor torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import yaml


class EvaluationError(RuntimeError):
    """An evaluation that cannot run; the message says what is missing and how to fix it."""


class UnknownTaskError(EvaluationError, KeyError):
    """A task name that lm-eval's task registry does not know (the message lists close matches)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingDatasetError(EvaluationError):
    """A dataset a task needs is not in the Hugging Face cache and the hub is unreachable/offline."""


class MissingTokenizerError(EvaluationError):
    """A model directory without tokenizer files (and no tokenizer given)."""


class BackendUnavailableError(EvaluationError):
    """The requested inference backend (e.g. vLLM) is not installed or cannot serve this request."""


BACKENDS = ("hf", "vllm")


def _count_or_fraction(text: str) -> int | float:
    value = float(text)
    return int(value) if value >= 1 and value.is_integer() else value


def _int_or_auto(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


def _key_values(text: str) -> dict[str, Any]:
    """``KEY=VALUE[,KEY=VALUE]``, values read as YAML scalars (``max_length=4096``)."""
    pairs = [item.partition("=") for item in filter(None, map(str.strip, text.split(",")))]
    if any(not sep or not key for key, sep, _ in pairs):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE[,KEY=VALUE], got {text!r}")
    return {key.strip(): yaml.safe_load(value) if value.strip() else "" for key, _, value in pairs}


def setting(default: Any, help: str, parse: Callable[[str], Any] | None = None) -> Any:
    """A dataclass field with its help (and the parser of its ``iris eval`` flag)."""
    metadata = {"help": help} if parse is None else {"help": help, "parse": parse}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How a model is run, recorded in the summary's provenance; ``iris eval``'s flags and
    (extended by :class:`~iris.evaluation.lm_eval_evaluator.LmEvalEvaluator`) the loop's
    ``evaluation`` keys. ``metadata["parse"]`` reads a flag whose type does not say how."""

    backend: Literal["hf", "vllm"] = setting("hf", "lm-eval model backend: hf or vllm (GPU).")
    batch_size: int | str = setting(
        8, "Integer, or auto / auto:N (lm-eval's search).", _int_or_auto
    )
    dtype: str = setting("auto", "auto (the checkpoint's), bfloat16, float16 or float32.")
    device: str | None = setting(None, "cuda, cuda:0, cpu… (default: cuda when available).")
    revision: str | None = setting(None, "Hub revision of the model (branch, tag or commit).")
    tokenizer: str | None = setting(None, "Tokenizer directory or hub id (default: the model's).")
    apply_chat_template: bool = setting(False, "Wrap prompts in the tokenizer's chat template.")
    fewshot_as_multiturn: bool = setting(
        True, "With the chat template, few-shot examples as conversation turns."
    )
    system_instruction: str | None = setting(None, "System message prepended to every prompt.")
    limit: int | float | None = setting(
        None,
        "Samples per (sub)task (testing only; <1: a fraction); default all.",
        _count_or_fraction,
    )
    bootstrap_iters: int = setting(100_000, "Bootstrap resamples for non-mean stderrs (0: none).")
    log_samples: bool = setting(False, "Also write every sample's prompt, response and score.")
    model_args: dict[str, Any] = dataclasses.field(
        default_factory=dict,
        metadata={
            "help": "Extra lm-eval model arguments, KEY=VALUE[,KEY=VALUE] (e.g. max_length=4096).",
            "parse": _key_values,
        },
    )

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        size = self.batch_size
        if not (size >= 1 if isinstance(size, int) else re.fullmatch(r"auto(:\d+)?", size)):
            raise ValueError(f"batch_size must be an integer >= 1 or 'auto[:N]', got {size!r}")
        if self.limit is not None and not self.limit > 0:
            raise ValueError(f"limit must be positive, got {self.limit}")
        if self.bootstrap_iters < 0:
            raise ValueError(f"bootstrap_iters must be >= 0, got {self.bootstrap_iters}")

    @classmethod
    def of(cls, obj: Any) -> EvalSettings:
        """The settings part of ``obj`` (a subclass instance or an argparse namespace)."""
        return cls(**{field.name: getattr(obj, field.name) for field in dataclasses.fields(cls)})


@runtime_checkable
class Evaluator(Protocol):
    """Scores the model of a self-play iteration; implemented by lm-eval and by the testbed.

    ``name`` identifies the evaluator's files in an output directory. ``evaluate`` writes
    its JSON files atomically into ``output_dir`` and returns the flat summary
    ``{"<task>/<metric>": value, ..., "average": value}``; a metric that could not be
    computed is NaN, never 0. An evaluator may also have ``metric_names()``: the flat keys
    it reports as numbers, or None when only its results tell (the self-play loop checks an
    α schedule's ``gap_metric`` against them before any stage runs).
    """

    name: str

    def should_run(self, iteration: int, num_iterations: int) -> bool:
        """Whether to evaluate after iteration ``iteration`` (0-based) of ``num_iterations``."""
        ...

    def evaluate(
        self,
        model_dir: Path,
        *,
        iteration: int,
        output_dir: Path,
        model: Any = None,
        tokenizer: Any = None,
    ) -> dict[str, float]:
        """Score the model (in-memory ``model``/``tokenizer`` if given, else load ``model_dir``)."""
        ...


def runs_at(iteration: int, num_iterations: int, *, every: int, final: bool = True) -> bool:
    """True after every ``every``-th iteration (1-based count), and after the last one if ``final``.

    Iterations are 0-based: with ``every=2`` and 5 iterations, evaluation follows
    iterations 1 and 3 (the 2nd and 4th) and, with ``final``, iteration 4.

    >>> [t for t in range(5) if runs_at(t, 5, every=2)]
    [1, 3, 4]
    >>> [t for t in range(5) if runs_at(t, 5, every=1)]
    [0, 1, 2, 3, 4]
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if not 0 <= iteration < num_iterations:
        raise ValueError(f"iteration {iteration} outside 0..{num_iterations - 1}")
    return (iteration + 1) % every == 0 or (final and iteration == num_iterations - 1)


_F = TypeVar("_F", bound=Callable[..., Any])
# kind -> (the registered class or function, the factory config mapping -> Evaluator)
_REGISTRY: dict[str, tuple[Any, Callable[[Mapping[str, Any]], Evaluator]]] = {}
# Built-in kinds whose module registers them on import (kept lazy: lm-eval is an extra).
_BUILTIN_MODULES = {
    "chat": "iris.evaluation.chat",
    "lm_eval": "iris.evaluation.lm_eval_evaluator",
    "testbed": "iris.testbed.evaluator",
}


def register_evaluator(kind: str) -> Callable[[_F], _F]:
    """Class/function decorator registering a factory ``config mapping -> Evaluator`` for ``kind``.

    A class is built through its ``from_config`` classmethod when it has one; otherwise the
    decorated callable is called with the mapping's items as keyword arguments.
    Registering a different object under a taken kind is an error.
    """

    def decorate(target: _F) -> _F:
        existing = _REGISTRY.get(kind)
        if existing is not None and existing[0] is not target:
            raise ValueError(f"evaluator kind {kind!r} is already registered to {existing[0]!r}")
        _REGISTRY[kind] = (target, getattr(target, "from_config", lambda c: target(**c)))
        return target

    return decorate


def evaluator_kinds() -> list[str]:
    """Registered kinds plus the built-in ones not imported yet."""
    return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))


def make_evaluator(config: Mapping[str, Any]) -> Evaluator:
    """Build an evaluator from ``{"kind": ..., **settings}`` (e.g. the run config's ``evaluation``).

    >>> make_evaluator({"kind": "nope"})
    Traceback (most recent call last):
    ...
    iris.config.ConfigError: evaluation.kind: unknown evaluator kind 'nope'; known kinds: ['chat', 'lm_eval', 'testbed']
    """
    from iris.config import ConfigError

    if not isinstance(config, Mapping):
        raise ConfigError(f"evaluation: expected a mapping, got {config!r}")
    if "kind" not in config:
        raise ConfigError(
            f"evaluation: missing key 'kind' (one of {evaluator_kinds()}), got {dict(config)!r}"
        )
    kind = config["kind"]
    if kind not in _REGISTRY and kind in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[kind])
    if kind not in _REGISTRY:
        raise ConfigError(
            f"evaluation.kind: unknown evaluator kind {kind!r}; known kinds: {evaluator_kinds()}"
        )
    return _REGISTRY[kind][1]({key: value for key, value in config.items() if key != "kind"})
