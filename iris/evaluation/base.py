"""The evaluator protocol of the self-play loop, its registry of kinds, and evaluation errors.

This module owns the seam between the self-play driver and whatever scores a model: the
:class:`Evaluator` protocol (when to run, and ``evaluate`` → a flat ``{"<task>/<metric>":
value, ..., "average": value}``), the registry that builds one from a config mapping
(``{"kind": "lm_eval", ...}`` → :func:`make_evaluator`), the "every k iterations and always
the last" schedule, the error types every evaluation path raises, and
:class:`EvalSettings`, how a model is run, declared once: the loop's ``evaluation`` keys
and the ``iris eval`` flags are generated from its fields. It imports neither lm-eval nor
torch: the driver, the testbed and ``analysis/`` can use it without them.

A new kind registers itself with :func:`register_evaluator`; the built-in ``lm_eval`` kind
is imported on first use, so ``make_evaluator`` needs no if/elif over kinds.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import yaml

__all__ = [
    "BackendUnavailableError",
    "EvalSettings",
    "EvaluationError",
    "Evaluator",
    "MissingDatasetError",
    "MissingTokenizerError",
    "UnknownTaskError",
    "evaluator_kinds",
    "make_evaluator",
    "register_evaluator",
    "runs_at",
]


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# How a model is run
# --------------------------------------------------------------------------------------

BACKENDS = ("hf", "vllm")


def parse_limit(text: str) -> int | float:
    """``--limit`` text: a count (``10``) or a fraction (``0.5``)."""
    value = float(text)
    if value <= 0:
        raise ValueError(f"--limit must be positive, got {text}")
    return int(value) if value >= 1 and value.is_integer() else value


def parse_batch_size(text: str) -> int | str:
    """``--batch-size`` text: an integer or ``auto[:N]``."""
    if text.startswith("auto"):
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--batch-size must be an integer or auto[:N], got {text!r}") from None


def parse_model_args(text: str) -> dict[str, Any]:
    """``--model-args`` text ``KEY=VALUE[,KEY=VALUE]``; values read as YAML scalars."""
    args: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--model-args expects KEY=VALUE[,KEY=VALUE], got {item!r}")
        args[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return args


def _setting(default: Any, help: str, parse: Callable[[str], Any] | None = None) -> Any:
    metadata = {"help": help} if parse is None else {"help": help, "parse": parse}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How a model is run (all recorded in the summary's provenance).

    The one declaration of these settings: the ``iris eval`` flags (``--batch-size``…) and
    the loop's ``evaluation`` keys (:class:`~iris.evaluation.lm_eval_evaluator.LmEvalEvaluator`
    extends this class) are generated from the fields; ``metadata["parse"]`` reads a flag's
    text where the type alone does not say how.
    """

    backend: Literal["hf", "vllm"] = _setting("hf", "lm-eval model backend: hf or vllm (GPU).")
    batch_size: int | str = _setting(
        8, "Integer, or auto / auto:N (lm-eval's search).", parse_batch_size
    )
    dtype: str = _setting("auto", "auto (the checkpoint's), bfloat16, float16 or float32.")
    device: str | None = _setting(None, "cuda, cuda:0, cpu… (default: cuda when available).")
    revision: str | None = _setting(None, "Hub revision of the model (branch, tag or commit).")
    tokenizer: str | None = _setting(None, "Tokenizer directory or hub id (default: the model's).")
    apply_chat_template: bool = _setting(False, "Wrap prompts in the tokenizer's chat template.")
    fewshot_as_multiturn: bool = _setting(
        True, "With the chat template, few-shot examples as conversation turns."
    )
    system_instruction: str | None = _setting(None, "System message prepended to every prompt.")
    limit: int | float | None = _setting(
        None, "Samples per (sub)task (testing only; <1: a fraction); default all.", parse_limit
    )
    bootstrap_iters: int = _setting(100_000, "Bootstrap resamples for non-mean stderrs (0: none).")
    log_samples: bool = _setting(False, "Also write every sample's prompt, response and score.")
    model_args: dict[str, Any] = dataclasses.field(
        default_factory=dict,
        metadata={
            "help": "Extra lm-eval model arguments, KEY=VALUE[,KEY=VALUE] (e.g. max_length=4096).",
            "parse": parse_model_args,
        },
    )

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if isinstance(self.batch_size, str) and not re.fullmatch(r"auto(:\d+)?", self.batch_size):
            raise ValueError(
                f"batch_size must be an integer or 'auto[:N]', got {self.batch_size!r}"
            )
        if isinstance(self.batch_size, int) and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.limit is not None and not self.limit > 0:
            raise ValueError(f"limit must be positive, got {self.limit}")
        if self.bootstrap_iters < 0:
            raise ValueError(f"bootstrap_iters must be >= 0, got {self.bootstrap_iters}")

    @classmethod
    def of(cls, obj: Any) -> EvalSettings:
        """The settings part of ``obj`` (a subclass instance or an argparse namespace)."""
        return cls(**{field.name: getattr(obj, field.name) for field in dataclasses.fields(cls)})


# --------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------


@runtime_checkable
class Evaluator(Protocol):
    """Scores the model of a self-play iteration; implemented by lm-eval and by the testbed.

    ``name`` identifies the evaluator's files in an output directory. ``evaluate`` writes
    its JSON files atomically into ``output_dir`` and returns the flat summary
    ``{"<task>/<metric>": value, ..., "average": value}``; a metric that could not be
    computed is NaN, never 0.
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


# --------------------------------------------------------------------------------------
# Registry of kinds
# --------------------------------------------------------------------------------------

EvaluatorFactory = Callable[[Mapping[str, Any]], Evaluator]
_F = TypeVar("_F", bound=Callable[..., Any])

# kind -> (the registered class or function, the factory built from it)
_REGISTRY: dict[str, tuple[Any, EvaluatorFactory]] = {}
# Built-in kinds whose module registers them on import (kept lazy: lm-eval is an extra).
_BUILTIN_MODULES: dict[str, str] = {
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
        build = getattr(target, "from_config", None)
        if build is None:

            def build(config: Mapping[str, Any]) -> Evaluator:
                return target(**config)

        _REGISTRY[kind] = (target, build)
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
    iris.config.ConfigError: evaluation.kind: unknown evaluator kind 'nope'; known kinds: ['lm_eval', 'testbed']
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
    settings = {key: value for key, value in config.items() if key != "kind"}
    return _REGISTRY[kind][1](settings)
