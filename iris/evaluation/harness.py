"""Running a suite through lm-eval: its tasks, the data they need, the model, the results.

This module owns the bridge to lm-evaluation-harness (imported here, lazily, and nowhere
else at module level):

* tasks: lm-eval's TaskManager for a suite (built-in tasks plus its ``include_path``),
  names, metrics and filters checked against lm-eval's configs, :func:`load_suite_tasks`
  (the suite's shots set on every subtask). What a suite task expands to (groups, tags,
  includes, group overrides) is read from lm-eval's own task loading run without data
  (:func:`leaf_tasks`), so :func:`prefetch_plan` lists the hub datasets a suite needs
  without downloading anything and without restating lm-eval's rules;
* models: HF from a directory or hub id, an in-memory ``PreTrainedModel`` (no save/load
  round-trip), or vLLM when installed;
* :func:`evaluate_suite`: ``lm_eval.simple_evaluate``, then into the output directory
  ``<model>/results_<time>.json`` (and ``samples_<task>_<time>.jsonl`` with
  ``log_samples``), lm-eval's own layout written by its ``EvaluationTracker`` as
  ``lm-eval --output_path`` writes it, so lm-eval's tools find it; ``<name>.lm_eval.json``,
  the same bytes under the suite's name; ``<name>.summary.json``,
  :func:`~iris.evaluation.suite.summarize` plus provenance (versions, model revision,
  seeds, settings, packages, git); ``<name>.samples/<task>.jsonl`` with ``log_samples``.
  A re-run under the same name replaces its previous files.

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
import importlib.util
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from unittest import mock

from iris import runs
from iris.evaluation.base import (
    BACKENDS,
    BackendUnavailableError,
    EvalSettings,
    EvaluationError,
    MissingDatasetError,
    MissingTokenizerError,
    UnknownTaskError,
)
from iris.evaluation.suite import Suite, TaskSpec, resolve_suite, summarize

if TYPE_CHECKING:
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager

logger = logging.getLogger(__name__)

# Files that make a directory loadable by AutoTokenizer.from_pretrained.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)
# Datasets whose terms must be accepted on the hub page (with the account of HF_TOKEN)
# before they download; the hub also says so at download time, this lets a plan warn first.
GATED_DATASETS = frozenset({"Idavidrein/gpqa"})
# `datasets` builders that read local files rather than a hub repository.
LOCAL_BUILDERS = frozenset({"json", "csv", "parquet", "text", "arrow", "pandas", "webdataset"})


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """What :func:`evaluate_suite` wrote and returned."""

    summary: dict[str, Any]
    results_path: Path
    summary_path: Path
    samples_dir: Path | None = None
    lm_eval_path: Path | None = None  # <output>/<model>/results_<time>.json

    @property
    def flat(self) -> dict[str, float]:
        """``{"<task>/<metric>": value, ..., "average": value}``."""
        return dict(self.summary["flat"])


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set (nothing can be downloaded)."""
    flags = (os.environ.get(v, "") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(flag.strip().upper() in ("1", "ON", "YES", "TRUE") for flag in flags)


def gated_message(path: str) -> str:
    """How to get access to the gated hub dataset ``path``."""
    return (
        f"{path} is gated: open https://huggingface.co/datasets/{path} with your Hugging Face "
        "account, accept its terms, then log in on this machine (`hf auth login` or export "
        "HF_TOKEN) and run the prefetch again."
    )


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
        *(len(tm.all_tasks), include_defaults, time.perf_counter() - start),
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
    unknown = [s.task for s in suite.tasks if s.config is None and s.task not in tm.task_index]
    if not unknown:
        return
    closest = {name: difflib.get_close_matches(name, tm.all_tasks, n=5) for name in unknown}
    lines = [
        f"  {name!r} ({'close matches: ' + ', '.join(close) if close else 'no close match'})"
        for name, close in closest.items()
    ]
    paths = f" (include_path {list(suite.include_path)})" if suite.include_path else ""
    raise UnknownTaskError(
        f"suite {suite.name!r}: unknown lm-eval task name(s), not in lm-eval's task "
        f"registry{paths}:\n" + "\n".join(lines) + "\n(list all with `lm-eval ls tasks`)"
    )


def _load(spec: TaskSpec, tm: TaskManager) -> tuple[Any, dict[str, Any]]:
    """``(the spec's Task or Group, None for a tag; {name: leaf Task})`` as lm-eval builds them."""
    loaded = tm.load([spec.config if spec.config is not None else spec.task])
    groups, tasks = loaded.get("groups", {}), loaded["tasks"]
    return (groups[spec.task] if spec.task in groups else tasks.get(spec.task)), tasks


@contextlib.contextmanager
def _without_data() -> Iterator[None]:
    """lm-eval's task building as it is, except that a task records its config, loads no data.

    Groups, tags, includes and overrides resolve by lm-eval's own code; only the task
    constructors (which load the dataset) are replaced, by one keeping the merged config
    (``task.merged_config``; ``task.config`` is lm-eval's TaskConfig of it).
    """
    from lm_eval.api.task import ConfigurableTask, Task, TaskConfig

    known = {field.name for field in dataclasses.fields(TaskConfig)}

    def keep_config(self: Any, *_: Any, config: Mapping[str, Any] | None = None, **__: Any):
        config = dict(config or {})
        cls = type(self)
        self.merged_config = {"dataset_path": cls.DATASET_PATH, "dataset_name": cls.DATASET_NAME}
        self.merged_config.update(config)
        self.task_config = TaskConfig(**{k: v for k, v in config.items() if k in known})

    with (
        mock.patch.object(ConfigurableTask, "__init__", keep_config),
        mock.patch.object(Task, "__init__", keep_config),
        mock.patch.object(Task, "config", property(lambda self: self.task_config)),
    ):
        yield


def _filters(task: Any) -> set[str]:
    entries = task.config.filter_list if isinstance(task.config.filter_list, list) else []
    return {f["name"] for f in entries if isinstance(f, Mapping) and "name" in f} or {"none"}


def _declared(top: Any, leaves: Iterable[Any]) -> tuple[set[str], set[str]] | None:
    """``(metric names, filter names)`` lm-eval reports for a task or group (None: undeclared).

    A group reports what its ``aggregate_metric_list`` aggregates (filters unnamed there:
    its members'); a task its ``metric_list`` under each filter of its ``filter_list``.
    """
    from lm_eval.api.group import Group

    if isinstance(top, Group):
        entries = top.aggregate_metric_list or []
        filters = {name for entry in entries for name in entry.filter_list or ()}
        filters = filters or set().union(*(_filters(task) for task in leaves))
        return {entry.metric for entry in entries}, filters or {"none"}
    metrics = top.config.metric_list
    if not metrics:
        return None
    return {m["metric"] for m in metrics if isinstance(m.get("metric"), str)}, _filters(top)


def check_suite(suite: Suite, tm: TaskManager) -> None:
    """Check names (:func:`check_task_names`) and that each metric/filter is one lm-eval reports.

    Reads configs only (nothing is downloaded), so a typo fails before any data or model
    is loaded. Tags (no score of their own) are checked when results come back.
    """
    check_task_names(suite, tm)
    problems = []
    for spec in suite.tasks:
        if spec.metrics is None:
            continue
        with _without_data():  # (TaskConfig read inside)
            top, leaves = _load(spec, tm)
            declared = None if top is None else _declared(top, leaves.values())
        if declared is None:
            continue
        metrics, filters = declared
        absent = [m for m in spec.metrics if m not in metrics]
        if absent:
            problems.append(
                f"  {spec.task}: metric(s) {absent} not among those lm-eval "
                f"{'declares' if spec.task in leaves else 'aggregates'} for it: "
                f"{sorted(metrics) or 'none (a group without aggregate_metric_list has no score)'}"
            )
        if spec.filter not in filters:
            problems.append(f"  {spec.task}: filter {spec.filter!r} not among {sorted(filters)}")
    if problems:
        raise EvaluationError(
            f"suite {suite.name!r} does not match lm-eval's task configs:\n" + "\n".join(problems)
        )


class LeafTask(NamedTuple):
    """A leaf task's name, its merged config (as lm-eval builds it) and its YAML file."""

    name: str
    config: dict[str, Any]
    yaml_path: Path | None


@dataclasses.dataclass(frozen=True, order=True)
class DatasetRef:
    """One hub dataset configuration a suite loads, and the leaf tasks that load it."""

    path: str
    name: str | None = None
    revision: str | None = None
    tasks: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (self.path, self.name, self.revision)

    @property
    def gated(self) -> bool:
        return self.path in GATED_DATASETS

    def describe(self) -> str:
        config = f" (config {self.name!r})" if self.name else ""
        revision = f" @ {self.revision}" if self.revision else ""
        return self.path + config + revision + (" [gated]" if self.gated else "")


@dataclasses.dataclass(frozen=True)
class PrefetchPlan:
    """Hub datasets to download, and leaf tasks whose data is local or not declared."""

    datasets: tuple[DatasetRef, ...]
    local_tasks: tuple[str, ...] = ()
    unresolved_tasks: tuple[str, ...] = ()

    @property
    def gated(self) -> tuple[DatasetRef, ...]:
        return tuple(ref for ref in self.datasets if ref.gated)


def leaf_tasks(
    suite: str | Path | Suite, task_manager: TaskManager | None = None
) -> tuple[list[LeafTask], list[str]]:
    """Every leaf task config a suite's tasks expand to (through groups, tags, includes).

    Returns ``(leaves, unresolved)``: the configs lm-eval's own loader builds (overrides
    applied), read without loading any data, and the suite tasks that cannot be built
    without their data (some Python tasks). Unknown names raise :class:`UnknownTaskError`.
    """
    suite = resolve_suite(suite)
    tm = task_manager if task_manager is not None else suite_task_manager(suite)
    check_task_names(suite, tm)
    leaves, unresolved = [], []
    for spec in suite.tasks:
        try:
            with _without_data():
                tasks = _load(spec, tm)[1]
        except Exception as err:  # a Python task whose constructor needs its data
            logger.warning("%s: configs not readable without its data (%s)", spec.task, err)
            unresolved.append(spec.task)
            continue
        for name, task in tasks.items():
            config = getattr(task, "merged_config", {})
            source = (config.get("metadata") or {}).get("config_source", "inline")
            leaves.append(LeafTask(name, config, None if source == "inline" else Path(source)))
    return leaves, sorted(set(unresolved))


def prefetch_plan(
    suite: str | Path | Suite, task_manager: TaskManager | None = None
) -> PrefetchPlan:
    """The hub datasets (path, config, revision) a suite's tasks load, from lm-eval's configs.

    Nothing is downloaded. Unknown task names raise :class:`UnknownTaskError`.
    """
    leaves, unresolved = leaf_tasks(suite, task_manager)
    found: dict[tuple[str, str | None, str | None], set[str]] = {}
    local, undeclared = set(), set(unresolved)
    for task, cfg, _ in leaves:
        path, kwargs = cfg.get("dataset_path"), cfg.get("dataset_kwargs") or {}
        if not isinstance(path, str) or cfg.get("custom_dataset"):
            undeclared.add(task)  # e.g. a custom_dataset function
        elif path in LOCAL_BUILDERS or Path(path).exists():
            local.add(task)
        else:
            revision = kwargs.get("revision") if isinstance(kwargs, Mapping) else None
            found.setdefault((path, cfg.get("dataset_name"), revision), set()).add(task)
    refs = sorted(
        (DatasetRef(*key, tasks=tuple(sorted(tasks))) for key, tasks in found.items()),
        key=lambda r: (r.path, r.name or "", r.revision or ""),
    )
    return PrefetchPlan(tuple(refs), tuple(sorted(local)), tuple(sorted(undeclared)))


def causes(err: BaseException | None) -> Iterator[BaseException]:
    """``err`` and the exceptions it was raised from or during, innermost last."""
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        yield err
        err = err.__cause__ or err.__context__


def _is_cache_miss(err: BaseException | None) -> bool:
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import errors

    kinds = (ConnectionError, DatasetNotFoundError, errors.GatedRepoError)
    kinds += (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled)
    return any(isinstance(e, kinds) for e in causes(err))


def _cache_miss_error(
    cls: type[EvaluationError], what: str, advice: str, err: BaseException
) -> EvaluationError:
    """What is neither local nor in the HF cache while the hub cannot serve it, and the fix."""
    state = (
        "the hub is offline here (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE)"
        if hub_offline()
        else "the hub could not be reached or refused access"
    )
    return cls(f"{what} and {state}. {advice}\n(original error: {type(err).__name__}: {err})")


def _missing_dataset_error(
    suite: Suite, spec: TaskSpec, tm: TaskManager, err: BaseException
) -> EvaluationError:
    try:
        plan = prefetch_plan(dataclasses.replace(suite, tasks=(spec,)), tm)
        needed = "\n".join(f"  {r.describe()}" for r in plan.datasets) or "  (none declared)"
        gated = " ".join(gated_message(path) for path in sorted({r.path for r in plan.gated}))
    except Exception:  # the plan is advice only; never mask the original error
        needed, gated = "  (could not list them)", ""
    return _cache_miss_error(
        MissingDatasetError,
        f"task {spec.task!r} of suite {suite.name!r}: its data is not in the Hugging Face cache",
        f"It needs:\n{needed}\nOn a machine with network access and the same HF_HOME, run:\n"
        f"  {suite.prefetch_command}\nthen evaluate again offline. {gated}",
        err,
    )


def load_suite_tasks(suite: Suite, tm: TaskManager | None = None) -> list[Any]:
    """Build the suite's lm-eval Task/Group objects with the suite's shots on every subtask.

    Loading a task loads its dataset (from the HF cache offline). Returns the top-level
    objects in suite order (a tag contributes its tasks).
    """
    tm = tm if tm is not None else suite_task_manager(suite)
    check_suite(suite, tm)
    objects: list[Any] = []
    for spec in suite.tasks:
        try:
            top, leaves = _load(spec, tm)
        except Exception as err:
            if _is_cache_miss(err):
                raise _missing_dataset_error(suite, spec, tm, err) from err
            raise
        if spec.num_fewshot is not None:
            for task in leaves.values():
                task.set_config(key="num_fewshot", value=spec.num_fewshot)
        objects.extend([top] if top is not None else leaves.values())
    return objects


def check_backend(backend: str, *, in_memory: bool = False) -> None:
    """Fail early, with the fix, when ``backend`` cannot serve this evaluation."""
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "vllm" and in_memory:
        raise BackendUnavailableError(
            "the vllm backend loads weights itself: in-memory evaluation needs backend "
            "'hf' (or save the model and pass its directory)"
        )
    if backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise BackendUnavailableError(
            "backend 'vllm' needs vLLM, which is not installed: pip install "
            "'iris-selfplay[vllm]' on a CUDA machine (no CPU wheel exists), or use --backend hf"
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


def build_lm(model: str | Path | Any, settings: EvalSettings, *, tokenizer: Any = None) -> LM:
    """lm-eval's model wrapper: from a directory / hub id, or around an in-memory model.

    An in-memory ``PreTrainedModel`` is wrapped by ``HFLM`` as it is (its device and dtype
    are kept); the tokenizer is copied, since lm-eval may set its padding token. The
    backend and tokenizer checks are the caller's (:func:`evaluate_suite` runs them first).
    """
    if not isinstance(model, str | Path):
        from lm_eval.models.huggingface import HFLM

        copied = copy.deepcopy(tokenizer)
        return HFLM(model, tokenizer=copied, batch_size=settings.batch_size, **settings.model_args)
    import lm_eval.api.registry

    tokenizer = tokenizer if tokenizer is not None else settings.tokenizer
    given = {"revision": settings.revision, "tokenizer": tokenizer}
    args = {"pretrained": str(model), "dtype": settings.dtype}
    args |= {key: value for key, value in given.items() if value is not None}
    device = settings.device
    if device is None and settings.backend == "hf":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    extra = {"batch_size": settings.batch_size} | ({"device": device} if device else {})
    model_class = lm_eval.api.registry.get_model(settings.backend)
    return model_class.create_from_arg_obj({**args, **settings.model_args}, extra)


def model_provenance(
    model: Any, settings: EvalSettings, *, model_dir: str | Path | None = None
) -> dict[str, Any]:
    """Where the evaluated weights came from: hub id + resolved commit, local path, or memory."""
    if not isinstance(model, str | Path):
        return {
            "source": "in-memory",
            "model_dir": str(model_dir) if model_dir is not None else None,
            "name_or_path": getattr(getattr(model, "config", None), "_name_or_path", None),
            "class": type(model).__name__,
        }
    path = Path(model).expanduser()
    if path.is_dir():
        info: dict[str, Any] = {"source": "local", "path": str(path.resolve())}
        if (path / "config.json").is_file():
            info["config_sha256"] = runs.sha256_file(path / "config.json")
        weights = (".safetensors", ".bin", ".pt", ".gguf")
        info["weight_files"] = {
            p.name: p.stat().st_size for p in sorted(path.iterdir()) if p.suffix in weights
        }
        return info
    info = {"source": "hub", "repo_id": str(model), "revision": settings.revision, "commit": None}
    with contextlib.suppress(Exception):  # provenance is best-effort offline
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(model), "config.json", revision=settings.revision)
        if isinstance(cached, str):
            info["commit"] = Path(cached).parent.name  # .../snapshots/<commit>/config.json
    return info


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
    in-memory ``PreTrainedModel`` (its tokenizer: ``tokenizer``, else the one saved in
    ``model_dir``, which is recorded and names it in lm-eval's layout); an in-memory
    model's train/eval mode is restored afterwards. Tasks are resolved and their datasets loaded before the model
    is, so a bad suite fails fast. Writes the files of the module docstring (``name``
    defaults to the suite's); under a multi-process launch (``accelerate launch``) only
    the main process writes, the others return None.
    """
    settings = settings or EvalSettings()
    suite = resolve_suite(suite)
    in_memory = not isinstance(model, str | Path)
    check_backend(settings.backend, in_memory=in_memory)
    if in_memory and tokenizer is None:  # the one saved next to the weights
        if model_dir is None or not Path(model_dir).is_dir():
            raise MissingTokenizerError(
                f"in-memory model without tokenizer, and model_dir {model_dir} is not a directory"
            )
        check_tokenizer(model_dir)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    elif not in_memory and settings.tokenizer is None and tokenizer is None:
        check_tokenizer(model)
    _require_lm_eval()
    import lm_eval
    import torch
    from lm_eval.loggers import EvaluationTracker

    output_dir, name = Path(output_dir), _file_name(name or suite.name)
    started, start = runs.utc_now(), time.perf_counter()
    tracker = EvaluationTracker(output_path=str(output_dir))  # starts lm-eval's clock
    tm = suite_task_manager(suite)
    task_objects = load_suite_tasks(suite, tm)
    was_training = in_memory and bool(getattr(model, "training", False))
    try:
        try:
            lm = build_lm(model, settings, tokenizer=tokenizer)  # HFLM switches to eval mode
        except Exception as err:
            if in_memory or Path(model).is_dir() or not _is_cache_miss(err):
                raise
            pinned = f" --revision {settings.revision}" if settings.revision else ""
            raise _cache_miss_error(
                EvaluationError,
                f"model {str(model)!r}{pinned.replace(' --revision', ' @')} is not a local "
                "directory, not in the Hugging Face cache,",
                f"Cache it first, online:\n  {suite.prefetch_command} --model {model}{pinned}",
                err,
            ) from err
        device = str(getattr(lm, "device", settings.device))
        with torch.no_grad():
            results = lm_eval.simple_evaluate(
                model=lm,
                tasks=task_objects,
                num_fewshot=None,  # the suite's shots are already set per task
                device=device,
                evaluation_tracker=tracker,  # records the chat template lm-eval applies
                task_manager=tm,
                batch_size=settings.batch_size,
                limit=settings.limit,
                bootstrap_iters=settings.bootstrap_iters,
                log_samples=settings.log_samples,
                system_instruction=settings.system_instruction,
                apply_chat_template=settings.apply_chat_template,
                fewshot_as_multiturn=settings.fewshot_as_multiturn,
            )
    finally:
        if was_training:
            model.train()
    if results is None:  # a non-main process of a distributed lm-eval run: rank 0 writes
        return None

    samples = results.pop("samples", None) or {}
    samples_dir = output_dir / f"{name}.samples" if samples else None
    for task, rows in samples.items():
        with runs.atomic_output(samples_dir / f"{_file_name(task)}.jsonl") as out:
            out.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
    summary_path = output_dir / f"{name}.summary.json"
    previous: list[str] = []
    with contextlib.suppress(Exception):  # the files of the last run under this name
        previous = list(runs.read_json(summary_path)["provenance"]["lm_eval_files"])
    model_name = str(model)
    if in_memory:  # the name lm-eval would record for the saved model, its directory
        config = getattr(model, "config", None)
        model_name = str(model_dir or getattr(config, "_name_or_path", "") or type(model).__name__)
    # lm-eval's own files through its EvaluationTracker (the model as lm-eval's CLI names
    # it, not the wrapper object simple_evaluate was given): the results, then the samples
    general = tracker.general_config_tracker
    general.log_experiment_args(
        model_source=settings.backend,
        model_args={"pretrained": model_name, **settings.model_args},
        system_instruction=settings.system_instruction,
        chat_template=general.chat_template,
        fewshot_as_multiturn=settings.fewshot_as_multiturn,
    )
    tracker.save_results_aggregated(results=dict(results), samples=samples)
    folder = output_dir / general.model_name_sanitized
    lm_eval_path = folder / f"results_{getattr(tracker, 'date_id', '')}.json"
    if not lm_eval_path.is_file():  # the tracker logs its failure and goes on
        raise EvaluationError(f"lm-eval's EvaluationTracker wrote no results file in {folder}")
    for task, rows in samples.items():  # rewrites the rows: after iris's own copy
        tracker.save_results_samples(task_name=task, samples=rows)
    lm_eval_files = [lm_eval_path, *sorted(folder.glob(f"samples_*_{tracker.date_id}.jsonl"))]
    lm_eval_text = lm_eval_path.read_text(encoding="utf-8")
    results_path = runs.atomic_write_text(output_dir / f"{name}.lm_eval.json", lm_eval_text)

    summary = summarize(results, suite)
    if summary["missing"]:
        logger.warning(
            "suite %s: missing metrics (NaN): %s", suite.name, "; ".join(summary["missing"])
        )
    config = results.get("config", {})
    current = [path.relative_to(output_dir).as_posix() for path in lm_eval_files]
    provenance = {
        "lm_eval_version": results.get("lm_eval_version"),
        "transformers_version": results.get("transformers_version"),
        "task_versions": results.get("versions", {}),
        "n_shot": results.get("n-shot", {}),
        "seeds": {
            k: config.get(k) for k in ("random_seed", "numpy_seed", "torch_seed", "fewshot_seed")
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
            "device": device,
            "chat_template_sha256": general.chat_template_sha,
        },
        "suite": {
            "name": suite.name,
            "source": suite.source,
            "sha256": suite.file_sha256(),
            "tasks": [dataclasses.asdict(spec) for spec in suite.tasks],
        },
        "packages": runs.package_versions(),
        "git": runs.git_info(),
        "started": started,
        "finished": runs.utc_now(),
        "wall_time_s": round(time.perf_counter() - start, 3),
        "results_file": results_path.name,
        "lm_eval_files": current,
        **(extra_provenance or {}),
    }
    # JSON-safe (torch dtypes and other objects become strings)
    summary["provenance"] = json.loads(json.dumps(provenance, default=str))
    runs.atomic_write_json(summary_path, summary)
    for stale in set(previous) - set(current):  # a re-run replaces the last run's files
        (output_dir / stale).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the model's folder, once empty
            (output_dir / stale).parent.rmdir()
    return EvalResult(summary, results_path, summary_path, samples_dir, lm_eval_path)


def _file_name(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9._+-]`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def is_complete(summary: Mapping[str, Any]) -> bool:
    """True when every metric of the summary is present (the average is not NaN)."""
    return not summary.get("missing") and not math.isnan(summary.get("average", math.nan))
