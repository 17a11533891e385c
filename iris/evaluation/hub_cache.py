"""Which hub datasets a suite needs, and downloading them into the HF cache while online.

This module owns ``iris eval --prefetch``. :func:`prefetch_plan` walks lm-eval's task
configs (the index of YAML files, functions unresolved, nothing downloaded) from each
suite task down through groups, tags and included templates to the leaf tasks, and lists
every ``(dataset path, config name, revision)`` they load, marking the gated ones (GPQA).
:func:`prefetch` then loads each suite task through lm-eval's own loader, so the cache is
filled by exactly the calls an offline evaluation will make (and IFEval's NLTK data is
fetched on import), and optionally snapshots the model; after that, evaluation runs with
``HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from iris.evaluation.base import EvaluationError, MissingDatasetError
from iris.evaluation.suite import Suite, resolve_suite

if TYPE_CHECKING:
    from lm_eval.tasks import TaskManager

__all__ = [
    "GATED_DATASETS",
    "DatasetRef",
    "LeafTask",
    "PrefetchPlan",
    "hub_offline",
    "leaf_tasks",
    "prefetch",
    "prefetch_plan",
]

# Datasets whose terms must be accepted on the hub page (with the account of HF_TOKEN)
# before they download. The hub also reports gating at download time; this list lets the
# plan warn beforehand.
GATED_DATASETS = frozenset({"Idavidrein/gpqa"})
# `datasets` builders that read local files rather than a hub repository.
LOCAL_BUILDERS = frozenset({"json", "csv", "parquet", "text", "arrow", "pandas", "webdataset"})
_TRUE = ("1", "ON", "YES", "TRUE")


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set (nothing can be downloaded)."""
    return any(
        os.environ.get(var, "").strip().upper() in _TRUE
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


class LeafTask(NamedTuple):
    """A leaf task's name, its merged config (functions unresolved) and its YAML file."""

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
        text = self.path
        if self.name:
            text += f" (config {self.name!r})"
        if self.revision:
            text += f" @ {self.revision}"
        if self.gated:
            text += " [gated]"
        return text


@dataclasses.dataclass(frozen=True)
class PrefetchPlan:
    """Hub datasets to download, and leaf tasks whose data is local or not declared in YAML."""

    datasets: tuple[DatasetRef, ...]
    local_tasks: tuple[str, ...] = ()
    unresolved_tasks: tuple[str, ...] = ()

    @property
    def keys(self) -> list[tuple[str, str | None, str | None]]:
        """``[(dataset path, config name, revision), ...]``, sorted."""
        return [ref.key for ref in self.datasets]

    @property
    def gated(self) -> tuple[DatasetRef, ...]:
        return tuple(ref for ref in self.datasets if ref.gated)


def _group_field_names() -> frozenset[str]:
    from lm_eval.config.group import GroupConfig

    return frozenset(field.name for field in dataclasses.fields(GroupConfig))


class _Walker:
    """Mirrors lm-eval's TaskFactory override rules, on configs only (nothing is built)."""

    def __init__(self, index: Mapping[str, Any]):
        from lm_eval.tasks._index import Kind

        self.index = index
        self.kind = Kind
        self.group_fields = _group_field_names()
        self.leaves: list[LeafTask] = []
        self.unresolved: list[str] = []
        self._active: set[str] = set()

    def name(self, name: str, overrides: Mapping[str, Any]) -> None:
        entry = self.index.get(name)
        if entry is None:
            self.unresolved.append(name)
            return
        if name in self._active:  # a group including itself
            return
        self._active.add(name)
        try:
            self.entry(entry, overrides)
        finally:
            self._active.discard(name)

    def entry(self, entry: Any, overrides: Mapping[str, Any]) -> None:
        kind = entry.kind
        if kind == self.kind.TAG:
            for task in sorted(entry.tags):
                self.name(task, overrides)
        elif kind == self.kind.GROUP:
            self.group(dict(entry.cfg or {}), overrides)
        else:
            cfg = {**(entry.cfg or {}), **overrides}
            cfg.setdefault("task", entry.name)
            if kind == self.kind.PY_TASK and "dataset_path" not in cfg:
                self.unresolved.append(str(cfg["task"]))
                return
            self.leaves.append(LeafTask(str(cfg["task"]), cfg, entry.yaml_path))

    def group(self, cfg: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
        group_overrides = {k: v for k, v in cfg.items() if k not in self.group_fields}
        merged = {**group_overrides, **overrides}
        members = cfg.get("task") or []
        for item in members if isinstance(members, list) else [members]:
            self.item(item, merged)

    def item(self, item: Any, overrides: Mapping[str, Any]) -> None:
        if isinstance(item, str):
            self.name(item, overrides)
        elif isinstance(item, Mapping) and "group" in item:
            inline = {k: v for k, v in item.items() if k != "group"}
            if item["group"] in self.index:
                self.name(item["group"], {**overrides, **inline})
            else:
                self.group(item, overrides)
        elif isinstance(item, Mapping) and "task" in item:
            merged = {**overrides, **item}
            if item["task"] in self.index:
                self.name(item["task"], merged)
            else:
                self.leaves.append(LeafTask(str(item["task"]), dict(merged), None))
        else:
            raise EvaluationError(f"unsupported lm-eval group member {item!r}")


def _refs(leaves: Iterable[LeafTask]) -> tuple[list[DatasetRef], list[str], list[str]]:
    """``(hub datasets, tasks on local files, tasks whose data is not declared in YAML)``."""
    found: dict[tuple[str, str | None, str | None], list[str]] = {}
    local: list[str] = []
    undeclared: list[str] = []
    for task, cfg, _ in leaves:
        path = cfg.get("dataset_path")
        kwargs = cfg.get("dataset_kwargs") or {}
        if not isinstance(path, str) or "custom_dataset" in cfg:
            undeclared.append(task)  # e.g. a custom_dataset function
            continue
        if path in LOCAL_BUILDERS or Path(path).exists():
            local.append(task)
            continue
        name = cfg.get("dataset_name")
        revision = kwargs.get("revision") if isinstance(kwargs, Mapping) else None
        found.setdefault((path, name, revision), []).append(task)
    refs = [
        DatasetRef(path, name, revision, tuple(sorted(set(tasks))))
        for (path, name, revision), tasks in found.items()
    ]
    refs.sort(key=lambda r: (r.path, r.name or "", r.revision or ""))
    return refs, sorted(set(local)), sorted(set(undeclared))


def leaf_tasks(
    suite: str | Path | Suite, task_manager: TaskManager | None = None
) -> tuple[list[LeafTask], list[str]]:
    """Every leaf task config a suite's tasks expand to (through groups, tags, includes).

    Returns ``(leaves, unresolved)``: configs with lm-eval's override rules applied and
    functions unresolved, and names that could not be expanded from YAML (Python tasks).
    Reads configs only; unknown names raise :class:`~iris.evaluation.base.UnknownTaskError`.
    """
    from iris.evaluation.harness import check_task_names, suite_task_manager

    suite = resolve_suite(suite)
    tm = task_manager if task_manager is not None else suite_task_manager(suite)
    check_task_names(suite, tm)
    walker = _Walker(tm.task_index)
    for spec in suite.tasks:
        if spec.config is not None:
            walker.leaves.append(LeafTask(spec.task, dict(spec.config), None))
        else:
            walker.name(spec.task, {})
    return walker.leaves, sorted(set(walker.unresolved))


def prefetch_plan(
    suite: str | Path | Suite, task_manager: TaskManager | None = None
) -> PrefetchPlan:
    """The hub datasets (path, config, revision) a suite's tasks load, from lm-eval's configs.

    Reads configs only: nothing is downloaded and no task is built. Task names unknown to
    the registry raise :class:`~iris.evaluation.base.UnknownTaskError`.
    """
    leaves, unresolved = leaf_tasks(suite, task_manager)
    refs, local, undeclared = _refs(leaves)
    return PrefetchPlan(tuple(refs), tuple(local), tuple(sorted({*unresolved, *undeclared})))


def _is_gated_error(err: BaseException) -> bool:
    from huggingface_hub.errors import GatedRepoError

    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, GatedRepoError):
            return True
        # The hub's refusal text; our own MissingDatasetError mentions "gated" as advice.
        if not isinstance(seen, MissingDatasetError) and "gated" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def gated_message(path: str) -> str:
    """How to get access to the gated hub dataset ``path``."""
    return (
        f"{path} is gated: open https://huggingface.co/datasets/{path} with your Hugging Face "
        "account, accept its terms, then log in on this machine (`hf auth login` or export "
        "HF_TOKEN) and run the prefetch again."
    )


def prefetch(
    suite: str | Path | Suite,
    *,
    model: str | None = None,
    revision: str | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Download everything ``suite`` needs (and the ``model`` snapshot) into the HF cache.

    Returns the number of suite tasks (plus the model) that failed; each failure is
    explained on ``echo`` (gated datasets: how to get access). Needs the network: with
    HF_HUB_OFFLINE/HF_DATASETS_OFFLINE set it refuses.
    """
    from iris.evaluation.harness import load_suite_tasks, suite_task_manager

    if hub_offline():
        raise EvaluationError(
            "--prefetch downloads datasets and needs the network, but HF_HUB_OFFLINE or "
            "HF_DATASETS_OFFLINE is set (the Makefile exports them): run it with "
            "HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 on a machine that reaches huggingface.co."
        )
    suite = resolve_suite(suite)
    tm = suite_task_manager(suite)
    plan = prefetch_plan(suite, tm)
    echo(f"Suite {suite.name}: {len(plan.datasets)} dataset configurations to cache")
    for ref in plan.datasets:
        echo(
            f"  {ref.describe()}  <- {', '.join(ref.tasks[:3])}{' …' if len(ref.tasks) > 3 else ''}"
        )
    for path in sorted({ref.path for ref in plan.gated}):
        echo(f"note: {gated_message(path)}")
    failures = 0
    for spec in suite.tasks:
        one = dataclasses.replace(suite, tasks=(spec,))
        echo(f"[prefetch] {spec.task} …")
        try:
            load_suite_tasks(one, tm)
        except Exception as err:
            failures += 1
            if _is_gated_error(err):
                paths = sorted({ref.path for ref in prefetch_plan(one, tm).gated})
                advice = " ".join(gated_message(path) for path in paths)
                echo(f"[prefetch] {spec.task}: FAILED (gated dataset). {advice}")
            else:
                cause = err.__cause__ if isinstance(err, MissingDatasetError) else err
                cause = cause if cause is not None else err
                echo(f"[prefetch] {spec.task}: FAILED: {type(cause).__name__}: {cause}")
        else:
            echo(f"[prefetch] {spec.task}: cached")
    if model is not None and not Path(model).expanduser().is_dir():
        from huggingface_hub import snapshot_download

        echo(f"[prefetch] model {model}{' @ ' + revision if revision else ''} …")
        try:
            path = snapshot_download(repo_id=model, revision=revision)
            echo(f"[prefetch] model cached at {path}")
        except Exception as err:
            failures += 1
            echo(f"[prefetch] model {model}: FAILED: {type(err).__name__}: {err}")
    hf_home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    echo(
        f"Done, {failures} failure(s). Cache: HF_HOME={hf_home} (IFEval's NLTK data: "
        "NLTK_DATA or ~/nltk_data). Evaluate offline with the same cache:\n"
        f"  HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 iris eval --suite {suite.cli_argument} "
        f"--model {model or 'MODEL'}{' --revision ' + revision if revision else ''} --output-dir DIR"
    )
    return failures
