"""Running a suite through ``lm_eval.simple_evaluate`` and writing its results.

This module owns the bridge to lm-evaluation-harness (imported here, lazily, and nowhere
else at module level): building lm-eval's task registry for a suite (built-in tasks
plus the suite's ``include_path``), resolving and loading the suite's tasks with the
suite's shots set on every subtask, building the model backend (HF from a directory or
hub id, an in-memory ``PreTrainedModel`` without a save/load round-trip, or vLLM when
installed), calling ``simple_evaluate``, and writing into the output directory, each
file atomically:

* ``<name>.lm_eval.json``: lm-eval's own results dict (per-sample logs excluded);
* ``<name>.summary.json``: :func:`iris.evaluation.suite.summarize` plus provenance
  (lm-eval and task versions, model revision, seeds, settings, packages, git);
* ``<name>.samples/<task>.jsonl`` when ``log_samples`` is on.

Errors name what is missing and the fix: unknown task names (with close matches), datasets
absent from the HF cache while offline (with the prefetch command), a model directory
without a tokenizer, an uninstalled backend.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from iris.evaluation.base import (
    BackendUnavailableError,
    EvaluationError,
    MissingDatasetError,
    MissingTokenizerError,
    UnknownTaskError,
)
from iris.evaluation.suite import Suite, resolve_suite, summarize
from iris.runs import (
    atomic_output,
    atomic_write_json,
    atomic_write_text,
    git_info,
    package_versions,
    utc_now,
)

if TYPE_CHECKING:
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager

logger = logging.getLogger(__name__)

__all__ = [
    "EvalResult",
    "EvalSettings",
    "build_lm",
    "check_suite",
    "check_task_names",
    "evaluate_suite",
    "load_suite_tasks",
    "suite_task_manager",
]

BACKENDS = ("hf", "vllm")
# Files that make a directory loadable by AutoTokenizer.from_pretrained.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How a model is run (all recorded in the summary's provenance)."""

    backend: Literal["hf", "vllm"] = dataclasses.field(
        default="hf", metadata={"help": "lm-eval model backend: hf (default) or vllm (GPU extra)."}
    )
    batch_size: int | str = dataclasses.field(
        default=8, metadata={"help": "Batch size, or 'auto' / 'auto:N' (lm-eval's search)."}
    )
    dtype: str = dataclasses.field(
        default="auto", metadata={"help": "Weights dtype (auto: the checkpoint's)."}
    )
    device: str | None = dataclasses.field(
        default=None, metadata={"help": "cuda, cuda:0, cpu…; None: cuda when available."}
    )
    revision: str | None = dataclasses.field(
        default=None, metadata={"help": "Hub revision (branch, tag or commit) of the model."}
    )
    tokenizer: str | None = dataclasses.field(
        default=None, metadata={"help": "Tokenizer directory or hub id (default: the model's)."}
    )
    apply_chat_template: bool = dataclasses.field(
        default=False, metadata={"help": "Wrap prompts in the tokenizer's chat template."}
    )
    fewshot_as_multiturn: bool = dataclasses.field(
        default=True,
        metadata={"help": "With the chat template, few-shot examples as turns (lm-eval default)."},
    )
    system_instruction: str | None = dataclasses.field(
        default=None, metadata={"help": "System message prepended to every prompt."}
    )
    limit: int | float | None = dataclasses.field(
        default=None,
        metadata={"help": "Samples per (sub)task (testing only; <1: a fraction); None: all."},
    )
    bootstrap_iters: int = dataclasses.field(
        default=100_000, metadata={"help": "Bootstrap resamples for non-mean stderrs (0: none)."}
    )
    log_samples: bool = dataclasses.field(
        default=False, metadata={"help": "Also write every sample's prompt/response/score."}
    )
    model_args: dict[str, Any] = dataclasses.field(
        default_factory=dict,
        metadata={"help": "Extra constructor arguments of the lm-eval model (max_length, …)."},
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


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """What :func:`evaluate_suite` wrote and returned."""

    summary: dict[str, Any]
    results_path: Path
    summary_path: Path
    samples_dir: Path | None = None

    @property
    def flat(self) -> dict[str, float]:
        """``{"<task>/<metric>": value, ..., "average": value}``."""
        return dict(self.summary["flat"])


# --------------------------------------------------------------------------------------
# lm-eval's task registry
# --------------------------------------------------------------------------------------


def _require_lm_eval() -> None:
    if importlib.util.find_spec("lm_eval") is None:
        raise EvaluationError(
            "lm-eval is not installed: pip install 'iris-selfplay[eval]' "
            "(lm-eval[math,ifeval]==0.4.13)"
        )


@functools.lru_cache(maxsize=8)
def _task_manager(include_path: tuple[str, ...], include_defaults: bool) -> TaskManager:
    _require_lm_eval()
    from lm_eval.tasks import TaskManager

    start = time.perf_counter()
    tm = TaskManager(include_path=list(include_path) or None, include_defaults=include_defaults)
    logger.info(
        "lm-eval task index (%d names, defaults=%s) built in %.1f s",
        len(tm.all_tasks),
        include_defaults,
        time.perf_counter() - start,
    )
    return tm


def suite_task_manager(suite: Suite) -> TaskManager:
    """lm-eval's TaskManager for ``suite`` (cached per include path).

    With ``include_defaults: null`` (the default) the built-in tasks are indexed (~7–15 s)
    only when some task name is not found in the suite's ``include_path``.
    """
    include = tuple(suite.include_path)
    if suite.include_defaults is not None:
        return _task_manager(include, bool(suite.include_defaults))
    needed = [spec.task for spec in suite.tasks if spec.config is None]
    if include:
        local = _task_manager(include, False)
        if all(name in local.task_index for name in needed):
            return local
    elif not needed:
        return _task_manager((), False)
    return _task_manager(include, True)


def check_task_names(suite: Suite, tm: TaskManager) -> None:
    """Raise :class:`UnknownTaskError` listing close matches for names lm-eval does not know."""
    unknown = [
        spec.task for spec in suite.tasks if spec.config is None and spec.task not in tm.task_index
    ]
    if not unknown:
        return
    names = tm.all_tasks
    lines = []
    for name in unknown:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
        hint = f"close matches: {', '.join(close)}" if close else "no close match"
        lines.append(f"  {name!r} ({hint})")
    paths = f" (include_path {list(suite.include_path)})" if suite.include_path else ""
    raise UnknownTaskError(
        f"suite {suite.name!r}: unknown lm-eval task name(s), not in lm-eval's task "
        f"registry{paths}:\n" + "\n".join(lines) + "\n(list all with `lm-eval ls tasks`)"
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def declared_metrics(cfg: Mapping[str, Any], *, group: bool) -> tuple[set[str], set[str]] | None:
    """``(metric names, filter names)`` a task or group config declares (None: not declared).

    A group reports what its ``aggregate_metric_list`` aggregates; a task reports its
    ``metric_list`` under each filter of its ``filter_list`` (``none`` without one).
    """
    if group:
        entries = _as_list(cfg.get("aggregate_metric_list"))
        metrics = {
            e["metric"]
            for e in entries
            if isinstance(e, Mapping) and isinstance(e.get("metric"), str)
        }
        filters = {
            f
            for e in entries
            if isinstance(e, Mapping)
            for f in _as_list(e.get("filter_list", "none"))
        }
        return metrics, filters or {"none"}
    entries = _as_list(cfg.get("metric_list"))
    if not entries:
        return None
    metrics = {
        e["metric"] for e in entries if isinstance(e, Mapping) and isinstance(e.get("metric"), str)
    }
    filters = {
        f["name"]
        for f in _as_list(cfg.get("filter_list"))
        if isinstance(f, Mapping) and "name" in f
    }
    return metrics, filters or {"none"}


def check_suite(suite: Suite, tm: TaskManager) -> None:
    """Check names (:func:`check_task_names`) and that each metric/filter is one lm-eval reports.

    Reads configs only (nothing is downloaded), so a typo fails before any model is loaded.
    """
    from lm_eval.tasks._index import Kind

    check_task_names(suite, tm)
    problems = []
    for spec in suite.tasks:
        if spec.metrics is None:
            continue
        if spec.config is not None:
            cfg, group = spec.config, False
        else:
            entry = tm.task_index[spec.task]
            if entry.kind not in (Kind.TASK, Kind.GROUP):
                continue  # tags and Python tasks: checked when results come back
            cfg, group = entry.cfg or {}, entry.kind == Kind.GROUP
        declared = declared_metrics(cfg, group=group)
        if declared is None:
            continue
        metrics, filters = declared
        absent = [m for m in spec.metrics if m not in metrics]
        if absent:
            what = "aggregates" if group else "declares"
            problems.append(
                f"  {spec.task}: metric(s) {absent} not among those lm-eval {what} for it: "
                f"{sorted(metrics) or 'none (a group without aggregate_metric_list has no score)'}"
            )
        if spec.filter not in filters:
            problems.append(f"  {spec.task}: filter {spec.filter!r} not among {sorted(filters)}")
    if problems:
        raise EvaluationError(
            f"suite {suite.name!r} does not match lm-eval's task configs:\n" + "\n".join(problems)
        )


def _error_chain(err: BaseException) -> list[BaseException]:
    chain, seen = [], err
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


def _is_cache_miss(err: BaseException) -> bool:
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
    )

    kinds = (
        ConnectionError,
        DatasetNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
    )
    return any(isinstance(e, kinds) for e in _error_chain(err))


def _missing_dataset_error(
    suite: Suite, spec_index: int, tm: TaskManager, err: BaseException
) -> MissingDatasetError:
    from iris.evaluation.hub_cache import gated_message, hub_offline, prefetch_plan

    spec = suite.tasks[spec_index]
    try:
        plan = prefetch_plan(dataclasses.replace(suite, tasks=(spec,)), tm)
        needed = (
            "\n".join(f"  {ref.describe()}" for ref in plan.datasets)
            or "  (no hub dataset declared)"
        )
        gated = " ".join(gated_message(path) for path in sorted({r.path for r in plan.gated}))
    except Exception:  # the plan is advice only; never mask the original error
        needed, gated = "  (could not list them)", ""
    state = (
        "the hub is offline here (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE)"
        if hub_offline()
        else "the hub could not be reached or refused access"
    )
    return MissingDatasetError(
        f"task {spec.task!r} of suite {suite.name!r}: its data is not in the Hugging Face cache "
        f"and {state}. It needs:\n{needed}\n"
        f"On a machine with network access and the same HF_HOME, run:\n  {suite.prefetch_command}\n"
        f"then evaluate again offline. {gated}\n(original error: {type(err).__name__}: {err})"
    )


def _missing_model_error(
    suite: Suite, model: str, revision: str | None, err: BaseException
) -> EvaluationError:
    from iris.evaluation.hub_cache import hub_offline

    state = "the hub is offline here" if hub_offline() else "the hub could not be reached"
    pinned = f" --revision {revision}" if revision else ""
    return EvaluationError(
        f"model {model!r}{' @ ' + revision if revision else ''} is not a local directory, not "
        f"in the Hugging Face cache, and {state}. Cache it first, online:\n"
        f"  {suite.prefetch_command} --model {model}{pinned}\n"
        f"(original error: {type(err).__name__}: {err})"
    )


def load_suite_tasks(suite: Suite, tm: TaskManager | None = None) -> list[Any]:
    """Build the suite's lm-eval Task/Group objects with the suite's shots on every subtask.

    Loading a task loads its dataset (from the HF cache offline). Returns the top-level
    objects in suite order (a tag contributes its tasks).
    """
    tm = tm if tm is not None else suite_task_manager(suite)
    check_suite(suite, tm)
    objects: list[Any] = []
    for index, spec in enumerate(suite.tasks):
        try:
            loaded = tm.load([spec.config if spec.config is not None else spec.task])
        except Exception as err:
            if _is_cache_miss(err):
                raise _missing_dataset_error(suite, index, tm, err) from err
            raise
        leaves = list(loaded["tasks"].values())
        if spec.num_fewshot is not None:
            for task in leaves:
                task.set_config(key="num_fewshot", value=spec.num_fewshot)
        groups = loaded.get("groups", {})
        if spec.task in groups:
            objects.append(groups[spec.task])
        elif spec.task in loaded["tasks"]:
            objects.append(loaded["tasks"][spec.task])
        else:  # a tag: its tasks, with no aggregate of their own
            objects.extend(leaves)
    return objects


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


def check_backend(backend: str, *, in_memory: bool = False) -> None:
    """Fail early, with the fix, when ``backend`` cannot serve this evaluation."""
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "vllm":
        if in_memory:
            raise BackendUnavailableError(
                "the vllm backend loads weights itself: in-memory evaluation needs backend "
                "'hf' (or save the model and pass its directory)"
            )
        if importlib.util.find_spec("vllm") is None:
            raise BackendUnavailableError(
                "backend 'vllm' needs vLLM, which is not installed: pip install "
                "'iris-selfplay[vllm]' on a CUDA machine (no CPU wheel exists), or use "
                "--backend hf"
            )


def check_tokenizer(model_dir: str | Path) -> None:
    """Raise :class:`MissingTokenizerError` when a local model directory has no tokenizer files."""
    directory = Path(model_dir)
    if directory.is_dir() and not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise MissingTokenizerError(
            f"model directory {directory} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}): "
            "save it next to the weights (tokenizer.save_pretrained(DIR)) or pass --tokenizer "
            "DIR_OR_HUB_ID"
        )


def _resolve_device(device: str | None) -> str:
    if device is not None:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_lm(
    model: str | Path | Any,
    settings: EvalSettings,
    *,
    tokenizer: Any = None,
) -> LM:
    """lm-eval's model wrapper: from a directory / hub id, or around an in-memory model.

    An in-memory ``PreTrainedModel`` is wrapped by ``HFLM`` as it is (its device and dtype
    are kept); the tokenizer is copied, since lm-eval may set its padding token.
    """
    _require_lm_eval()
    in_memory = not isinstance(model, str | Path)
    check_backend(settings.backend, in_memory=in_memory)
    if in_memory:
        from lm_eval.models.huggingface import HFLM

        if tokenizer is None:
            raise MissingTokenizerError("an in-memory model needs its tokenizer (tokenizer=...)")
        return HFLM(
            pretrained=model,
            tokenizer=copy.deepcopy(tokenizer),
            batch_size=settings.batch_size,
            **settings.model_args,
        )
    import lm_eval.api.registry

    model = str(model)
    if settings.tokenizer is None and tokenizer is None:
        check_tokenizer(model)
    args: dict[str, Any] = {"pretrained": model, "dtype": settings.dtype}
    if settings.revision is not None:
        args["revision"] = settings.revision
    if tokenizer is not None or settings.tokenizer is not None:
        args["tokenizer"] = tokenizer if tokenizer is not None else settings.tokenizer
    args.update(settings.model_args)
    extra = {"batch_size": settings.batch_size}
    if settings.backend == "hf":
        extra["device"] = _resolve_device(settings.device)
    elif settings.device is not None:
        extra["device"] = settings.device
    return lm_eval.api.registry.get_model(settings.backend).create_from_arg_obj(args, extra)


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_provenance(
    model: Any, settings: EvalSettings, *, model_dir: str | Path | None = None
) -> dict[str, Any]:
    """Where the evaluated weights came from: hub id + resolved commit, local path, or memory."""
    if not isinstance(model, str | Path):
        config = getattr(model, "config", None)
        return {
            "source": "in-memory",
            "model_dir": str(model_dir) if model_dir is not None else None,
            "name_or_path": getattr(config, "_name_or_path", None),
            "class": type(model).__name__,
        }
    path = Path(model).expanduser()
    if path.is_dir():
        info: dict[str, Any] = {"source": "local", "path": str(path.resolve())}
        if (path / "config.json").is_file():
            info["config_sha256"] = _sha256_file(path / "config.json")
        info["weight_files"] = {
            p.name: p.stat().st_size
            for p in sorted(path.iterdir())
            if p.suffix in (".safetensors", ".bin", ".pt", ".gguf")
        }
        return info
    info = {"source": "hub", "repo_id": str(model), "revision": settings.revision, "commit": None}
    with contextlib.suppress(Exception):  # provenance is best-effort offline
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(model), "config.json", revision=settings.revision)
        if isinstance(cached, str):
            info["commit"] = Path(cached).parent.name  # .../snapshots/<commit>/config.json
    return info


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name)


def _json_text(obj: Any) -> str:
    from lm_eval.utils import handle_non_serializable

    return json.dumps(obj, indent=2, ensure_ascii=False, default=handle_non_serializable)


def _plain(obj: Any) -> Any:
    """JSON-safe copy (torch dtypes and other objects become strings)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return str(obj)


@contextlib.contextmanager
def _no_grad():
    import torch

    with torch.no_grad():
        yield


def evaluate_suite(
    suite: str | Path | Suite,
    model: str | Path | Any,
    *,
    output_dir: str | Path,
    tokenizer: Any = None,
    settings: EvalSettings | None = None,
    name: str | None = None,
    model_dir: str | Path | None = None,
    extra_provenance: Mapping[str, Any] | None = None,
) -> EvalResult | None:
    """Score ``model`` on ``suite`` with ``lm_eval.simple_evaluate`` and write the results.

    ``model`` is a model directory, a hub id (``settings.revision`` pins it) or an
    in-memory ``PreTrainedModel`` (then ``tokenizer`` is required and ``model_dir`` is
    recorded); an in-memory model's train/eval mode is restored afterwards. Tasks are
    resolved and their datasets loaded before the model is, so a bad suite fails fast.
    Writes ``<name>.lm_eval.json`` and ``<name>.summary.json`` (``name`` defaults to the
    suite's) into ``output_dir`` and returns them with the summary; under a multi-process
    launch (``accelerate launch``) only the main process writes, the others return None.
    """
    settings = settings or EvalSettings()
    suite = resolve_suite(suite)
    in_memory = not isinstance(model, str | Path)
    check_backend(settings.backend, in_memory=in_memory)
    if not in_memory and settings.tokenizer is None and tokenizer is None:
        check_tokenizer(model)
    _require_lm_eval()
    import lm_eval

    output_dir = Path(output_dir)
    name = _safe_name(name or suite.name)
    started, start = utc_now(), time.perf_counter()

    tm = suite_task_manager(suite)
    task_objects = load_suite_tasks(suite, tm)
    was_training = bool(getattr(model, "training", False)) if in_memory else False
    try:
        try:
            lm = build_lm(model, settings, tokenizer=tokenizer)  # HFLM switches to eval mode
        except Exception as err:
            if not in_memory and not Path(model).is_dir() and _is_cache_miss(err):
                raise _missing_model_error(suite, str(model), settings.revision, err) from err
            raise
        with _no_grad():
            results = lm_eval.simple_evaluate(
                model=lm,
                tasks=task_objects,
                num_fewshot=None,  # the suite's shots are already set per task
                batch_size=settings.batch_size,
                device=str(getattr(lm, "device", settings.device)),
                limit=settings.limit,
                bootstrap_iters=settings.bootstrap_iters,
                log_samples=settings.log_samples,
                system_instruction=settings.system_instruction,
                apply_chat_template=settings.apply_chat_template,
                fewshot_as_multiturn=settings.fewshot_as_multiturn,
                task_manager=tm,
            )
    finally:
        if was_training:
            model.train()
    if results is None:  # a non-main process of a distributed lm-eval run: rank 0 writes
        return None

    samples = results.pop("samples", None)
    results_path = atomic_write_text(
        output_dir / f"{name}.lm_eval.json", _json_text(results) + "\n"
    )
    samples_dir = None
    if samples:
        samples_dir = output_dir / f"{name}.samples"
        for task, rows in samples.items():
            with atomic_output(samples_dir / f"{_safe_name(task)}.jsonl") as handle:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    summary = summarize(results, suite)
    if summary["missing"]:
        logger.warning(
            "suite %s: missing metrics (NaN): %s", suite.name, "; ".join(summary["missing"])
        )
    config = results.get("config", {})
    chat_template = None
    if settings.apply_chat_template:
        with contextlib.suppress(Exception):
            chat_template = lm.chat_template(settings.apply_chat_template)
    summary["provenance"] = _plain(
        {
            "lm_eval_version": results.get("lm_eval_version"),
            "transformers_version": results.get("transformers_version"),
            "task_versions": results.get("versions", {}),
            "n_shot": results.get("n-shot", {}),
            "seeds": {
                key: config.get(key)
                for key in ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed")
            },
            "model": {
                **model_provenance(model, settings, model_dir=model_dir),
                "lm_eval_model_revision": config.get("model_revision"),
                "lm_eval_model_sha": config.get("model_sha") or None,
                "dtype": config.get("model_dtype"),
                "num_parameters": config.get("model_num_parameters"),
            },
            "settings": {
                **dataclasses.asdict(settings),
                "device": str(getattr(lm, "device", settings.device)),
                "chat_template_sha256": hashlib.sha256(chat_template.encode()).hexdigest()
                if isinstance(chat_template, str)
                else None,
            },
            "suite": {
                "name": suite.name,
                "source": suite.source,
                "sha256": suite.file_sha256(),
                "tasks": [dataclasses.asdict(spec) for spec in suite.tasks],
            },
            "packages": package_versions(),
            "git": git_info(),
            "started": started,
            "finished": utc_now(),
            "wall_time_s": round(time.perf_counter() - start, 3),
            "results_file": results_path.name,
            **(extra_provenance or {}),
        }
    )
    summary_path = atomic_write_json(output_dir / f"{name}.summary.json", summary)
    return EvalResult(summary, results_path, summary_path, samples_dir)


def is_complete(summary: Mapping[str, Any]) -> bool:
    """True when every metric of the summary is present (the average is not NaN)."""
    return not summary.get("missing") and not math.isnan(summary.get("average", math.nan))
