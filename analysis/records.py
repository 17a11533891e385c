"""Run directories → tidy records: one row per (run, iteration, stage, step, metric).

This module owns reading what the self-play driver writes (:mod:`iris.runs` owns the
layout) and nothing else; tables and figures are pure functions of the :class:`Records`
it returns. It imports neither torch nor transformers.

A run is any folder under the root holding a ``manifest.json`` with a ``config``. From
its manifest come the run's model (``model.name_or_path``), loss (``training.loss``), the
IRIS order (``training.alpha``, or the name of ``training.alpha_schedule``), seed
(``seed``) and number of annotated samples (``data.n_train``); the method label is the
loss's display name plus α or the schedule ("SPIN", "IRIS α=2", "IRIS adaptive"). From
each ``iter_<t>/`` come:

* ``metrics.jsonl`` → stage ``"train"`` (one record per logged step and key; the
  Trainer's closing row with ``train_runtime`` is stage ``"train_summary"``, rows of
  ``eval_*`` keys stage ``"train_eval"``);
* ``eval/<name>.summary.json`` → stage ``"eval"``, ``suite`` = the summary's ``suite``,
  ``metric`` = each key of its ``flat`` mapping (``"gsm8k/exact_match"``,
  ``"average"``, ``"testbed/forward_kl"``), value as written (fractions for lm-eval).

**Missing numbers are NaN, never 0.** A value written as null/NaN/non-number, a task the
summary lists without a value, or a key that some logged steps of a file carry and
others do not, becomes a NaN record and a :class:`MissingValueWarning` naming the file
(``strict=True`` raises :class:`MissingValueError` instead). A truncated last line of a
metrics file that is still being written is skipped with a warning; any other invalid
JSON is an error naming file and line.

Runs that differ in a result-affecting config key other than the seed but would get the
same label (same model, n and method) get the differing keys appended to the label
("SPIN [training.beta=0.5]"), so that seeds are only ever pooled over runs that differ
in nothing else.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iris.runs import (
    EVAL_DIR,
    MANIFEST_NAME,
    MARKER_SUFFIX,
    METRICS_FILE,
    flatten_config,
    read_json,
)

__all__ = [
    "LOSS_LABELS",
    "MissingValueError",
    "MissingValueWarning",
    "NoData",
    "Record",
    "Records",
    "RunInfo",
    "SuiteInfo",
    "discover_runs",
    "load_runs",
    "method_label",
    "method_sort_key",
]

SUMMARY_SUFFIX = ".summary.json"
TRAIN, TRAIN_SUMMARY, TRAIN_EVAL, EVAL = "train", "train_summary", "train_eval", "eval"

# Display names of the losses, in the order tables list them.
LOSS_LABELS: dict[str, str] = {
    "sft": "SFT",
    "spin": "SPIN",
    "tspin": "T-SPIN",
    "space": "SPACE",
    "spif": "SPIF",
    "iris": "IRIS",
}
# Config keys that never separate two runs into different methods: seeds (what is pooled),
# where the run lives, how many iterations were asked for (iteration t does not depend on
# it) and how it is evaluated; plus each manifest's own ``non_result_keys``.
POOLED_KEYS = ("seed", "*.seed", "training.data_seed", "output_dir", "iterations", "evaluation")
# Display labels of metrics whose summaries carry none (the testbed's flat keys).
DEFAULT_LABELS: dict[str, str] = {
    "testbed/forward_kl": "KL(p_data ‖ p_θ)",
    "testbed/reverse_kl": "KL(p_θ ‖ p_data)",
    "testbed/total_variation": "TV",
    "testbed/invalid_rate": "invalid rate",
    "testbed/real_loglik": "log p_θ(annotated)",
}
# Folders never searched for runs: hidden ones anywhere; inside a run directory and its
# iteration folders, the large outputs (model weights, checkpoints, data, lm-eval samples).
_HIDDEN_DIRS = (".*", "__pycache__")
_RUN_OUTPUT_DIRS = ("model", "checkpoint-*", "data", "*.samples")


class MissingValueWarning(UserWarning):
    """A number the run directory should hold is missing; it is NaN in the records."""


class MissingValueError(ValueError):
    """Raised instead of :class:`MissingValueWarning` when loading with ``strict=True``."""


class NoData(LookupError):
    """The records hold nothing a table or figure needs; the message says what is missing."""


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Record:
    """One number of one run.

    ``alpha`` is the configured IRIS order (NaN for a schedule or a loss without α; the
    α actually used at each step is the ``"alpha"`` metric); ``step`` is the logged
    optimisation step within the iteration (None for evaluations); ``suite`` the
    evaluation suite (None for training metrics).
    """

    run: str
    model: str
    method: str
    loss: str
    alpha: float
    schedule: str | None
    seed: int | None
    n_train: int | None
    iteration: int
    stage: str
    suite: str | None
    step: int | None
    metric: str
    value: float


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What the manifest says about one run (``run`` is its path relative to the root)."""

    run: str
    path: Path
    model: str
    loss: str
    method: str
    alpha: float
    schedule: str | None
    schedule_config: Mapping[str, Any] | None
    seed: int | None
    n_train: int | None
    beta: float
    config: Mapping[str, Any]
    completed: Mapping[str, tuple[int, ...]]  # stage -> iterations with a <stage>.DONE marker

    @property
    def group(self) -> tuple[str, int | None, str]:
        """(model, n_train, method): the runs whose seeds are pooled."""
        return (self.model, self.n_train, self.method)


@dataclasses.dataclass
class SuiteInfo:
    """Column order and display labels of an evaluation suite, as its summaries give them."""

    name: str
    metrics: list[str] = dataclasses.field(default_factory=list)  # flat keys, first-seen order
    labels: dict[str, str] = dataclasses.field(default_factory=dict)  # flat key -> label

    def label(self, metric: str) -> str:
        return self.labels.get(metric, DEFAULT_LABELS.get(metric, metric))


def _matches(value: Any, criterion: Any) -> bool:
    if callable(criterion):
        return bool(criterion(value))
    if isinstance(criterion, set | frozenset | list | tuple):
        return value in criterion
    return value == criterion


class Records(Sequence[Record]):
    """An immutable list of :class:`Record` plus the runs and suites they come from.

    >>> r = Records([])
    >>> len(r.filter(stage="eval"))
    0
    """

    def __init__(
        self,
        records: Iterable[Record],
        runs: Mapping[str, RunInfo] | None = None,
        suites: Mapping[str, SuiteInfo] | None = None,
        problems: Sequence[str] = (),
    ) -> None:
        self._records = tuple(records)
        self.runs: dict[str, RunInfo] = dict(runs or {})
        self.suites: dict[str, SuiteInfo] = dict(suites or {})
        self.problems: tuple[str, ...] = tuple(problems)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return self._derive(self._records[index])
        return self._records[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records)

    def __repr__(self) -> str:
        return f"Records({len(self)} records from {len(self.runs)} runs)"

    def _derive(self, records: Iterable[Record]) -> Records:
        return Records(records, self.runs, self.suites, self.problems)

    def filter(self, predicate: Callable[[Record], bool] | None = None, **criteria: Any) -> Records:
        """Records whose fields match every criterion.

        A criterion is a value (equality), a set/list/tuple (membership) or a callable
        (predicate on the field): ``filter(stage="eval", iteration={0, 1}, value=math.isfinite)``.
        """
        fields = {f.name for f in dataclasses.fields(Record)}
        unknown = set(criteria) - fields
        if unknown:
            raise TypeError(
                f"unknown record field(s) {sorted(unknown)}; fields are {sorted(fields)}"
            )
        kept = (
            r
            for r in self._records
            if all(_matches(getattr(r, name), c) for name, c in criteria.items())
            and (predicate is None or predicate(r))
        )
        return self._derive(kept)

    def unique(self, field: str) -> list[Any]:
        """Distinct values of a field, in first-seen order."""
        seen: dict[Any, None] = {}
        for record in self._records:
            seen.setdefault(getattr(record, field), None)
        return list(seen)

    def values(self) -> np.ndarray:
        return np.array([r.value for r in self._records], dtype=float)

    def methods(self) -> list[str]:
        """Method labels present, in the canonical order (SFT, SPIN, …, IRIS by α)."""
        labels = {r.method for r in self._records}
        infos = {run.method: run for run in self.runs.values() if run.method in labels}
        return sorted(
            labels,
            key=lambda label: method_sort_key(infos[label]) if label in infos else (99, label),
        )

    def series_labels(self) -> dict[str, str]:
        """run → the label of the curve it belongs to in a figure (seeds pooled).

        The method label, plus the number of annotated samples when runs of that method
        differ in it, plus the model when the runs use several models: so a figure never
        pools runs that a table would keep apart.
        """
        models = {run.model for run in self.runs.values()}
        sizes: dict[tuple[str, str], set] = {}
        for run in self.runs.values():
            sizes.setdefault((run.model, run.method), set()).add(run.n_train)
        labels = {}
        for run in self.runs.values():
            label = run.method
            if len(sizes[(run.model, run.method)]) > 1:
                n = run.n_train
                label += f" (n={n // 1000}k)" if n and n >= 1000 and n % 1000 == 0 else f" (n={n})"
            if len(models) > 1:
                label += f" · {run.model.rstrip('/').rsplit('/', 1)[-1]}"
            labels[run.run] = label
        return labels

    def series_order(self, labels: Iterable[str] | None = None) -> list[str]:
        """Series labels in the canonical method order (then model, then n)."""
        series = self.series_labels()
        representative: dict[str, RunInfo] = {}
        for run, label in series.items():
            representative.setdefault(label, self.runs[run])
        wanted = set(series.values()) if labels is None else set(labels)

        def key(label: str) -> tuple:
            run = representative.get(label)
            if run is None:
                return ((99, label), "", 0)
            return (method_sort_key(run), run.model, run.n_train or 0)

        return sorted(wanted, key=key)

    def to_rows(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(r) for r in self._records]

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write every record as CSV (NaN written as ``nan``)."""
        import csv

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        names = [f.name for f in dataclasses.fields(Record)]
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(names)
            for record in self._records:
                writer.writerow(["" if v is None else v for v in dataclasses.astuple(record)])
        return path


# --------------------------------------------------------------------------------------
# Method labels
# --------------------------------------------------------------------------------------


def _fmt_number(value: float) -> str:
    return f"{value:g}"


def method_label(loss: str, alpha: float = math.nan, schedule: str | None = None) -> str:
    """Display label of a method.

    >>> method_label("iris", 2.0), method_label("iris", schedule="adaptive"), method_label("tspin")
    ('IRIS α=2', 'IRIS adaptive', 'T-SPIN')
    """
    name = LOSS_LABELS.get(loss, loss.upper())
    if schedule:
        return f"{name} {schedule}"
    if not math.isnan(alpha):
        return f"{name} α={_fmt_number(alpha)}"
    return name


def method_sort_key(run: RunInfo) -> tuple:
    """Canonical order: SFT, SPIN, T-SPIN, SPACE, SPIF, IRIS by α, then IRIS schedules."""
    order = list(LOSS_LABELS)
    rank = order.index(run.loss) if run.loss in order else len(order)
    alpha = run.alpha if not math.isnan(run.alpha) else math.inf
    return (rank, run.loss, alpha, run.schedule or "", run.method)


def _schedule(training: Mapping[str, Any]) -> tuple[float, str | None, Mapping[str, Any] | None]:
    """(configured α, schedule name, schedule config) of a training config."""
    raw = training.get("alpha_schedule")
    if isinstance(raw, str) and raw.lstrip().startswith("{"):
        raw = json.loads(raw)
    if isinstance(raw, str):
        raw = {"name": raw}
    alpha = training.get("alpha")
    if isinstance(raw, Mapping):
        name = str(raw.get("name", "schedule"))
        if name == "constant":
            return float(raw.get("alpha", 1.0)), None, raw
        return math.nan, name, raw
    if alpha is not None:
        return float(alpha), None, None
    return math.nan, None, None


def _is_pooled(key: str, patterns: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") or fnmatch.fnmatchcase(key, p) for p in patterns)


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def discover_runs(root: str | os.PathLike) -> list[Path]:
    """Every folder under ``root`` (itself included) holding a ``manifest.json``, sorted.

    Hidden folders, and the model, checkpoint, data and sample folders of a run and of its
    iterations, are not searched.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs root {root} is not a folder")
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        in_run = MANIFEST_NAME in files or (
            here.name.startswith("iter_") and (here.parent / MANIFEST_NAME).is_file()
        )
        pruned = _HIDDEN_DIRS + (_RUN_OUTPUT_DIRS if in_run else ())
        dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatchcase(d, p) for p in pruned))
        if MANIFEST_NAME in files:
            found.append(Path(folder))
    return sorted(found)


def _number(value: Any) -> float | None:
    """A float (NaN for null / NaN / non-number text); None for a non-scalar (list, dict, bool)."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return None


class _Loader:
    """Reads one root; collects problems and turns them into warnings (or errors)."""

    def __init__(self, root: Path, strict: bool) -> None:
        self.root = root
        self.strict = strict
        self.problems: list[str] = []
        self.suites: dict[str, SuiteInfo] = {}
        self.warnings: list[tuple[str, type[Warning]]] = []

    def missing(self, message: str) -> None:
        """A number read as NaN: warned about at the end of loading (strict: raised now)."""
        if self.strict:
            raise MissingValueError(message)
        self._report(message, MissingValueWarning)

    def note(self, message: str) -> None:
        """A problem that is not a missing number (warned about, never raised)."""
        self._report(message, UserWarning)

    def _report(self, message: str, category: type[Warning]) -> None:
        if message not in self.problems:
            self.problems.append(message)
            self.warnings.append((message, category))

    # ---- manifest ----------------------------------------------------------------------

    def run_info(self, path: Path) -> RunInfo | None:
        manifest = read_json(path / MANIFEST_NAME)
        config = manifest.get("config") if isinstance(manifest, Mapping) else None
        if not isinstance(config, Mapping):
            self.note(f"{path / MANIFEST_NAME}: no 'config' mapping; not a run manifest, skipped")
            return None
        relative = path.relative_to(self.root).as_posix() if path != self.root else path.name
        model_cfg = config.get("model") or {}
        model = model_cfg.get("name_or_path") if isinstance(model_cfg, Mapping) else None
        if not model:
            self.note(f"{path / MANIFEST_NAME}: config.model.name_or_path is missing")
            model = "unknown"
        training = config.get("training") or {}
        loss = str(training.get("loss", "iris")).lower()
        alpha, schedule, schedule_config = _schedule(training)
        if loss == "iris" and math.isnan(alpha) and schedule is None:
            alpha = 1.0  # the trainer's default order
        data = config.get("data") or {}
        n_train = data.get("n_train") if isinstance(data, Mapping) else None
        seed = config.get("seed")
        beta = _number(training.get("beta"))
        completed: dict[str, list[int]] = {}
        for marker in path.glob(f"iter_*/*{MARKER_SUFFIX}"):
            suffix = marker.parent.name.removeprefix("iter_")
            if suffix.isdigit():
                stage = marker.name.removesuffix(MARKER_SUFFIX)
                completed.setdefault(stage, []).append(int(suffix))
        return RunInfo(
            run=relative,
            path=path,
            model=str(model),
            loss=loss,
            method=method_label(loss, alpha, schedule),
            alpha=alpha,
            schedule=schedule,
            schedule_config=schedule_config,
            seed=int(seed)
            if isinstance(seed, int | float) and not isinstance(seed, bool)
            else None,
            n_train=int(n_train)
            if isinstance(n_train, int | float) and not isinstance(n_train, bool)
            else None,
            beta=math.nan if beta is None else beta,
            config=config,
            completed={k: tuple(sorted(v)) for k, v in completed.items()},
        )

    # ---- per-iteration files ----------------------------------------------------------

    def metrics(self, path: Path) -> list[tuple[str, int | None, str, float]]:
        """(stage, step, metric, value) of a metrics.jsonl; NaN-fills keys absent from some steps."""
        lines = path.read_text(encoding="utf-8").splitlines()
        rows: list[dict[str, Any]] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                if number == len(lines):
                    self.note(
                        f"{path} line {number}: truncated last line skipped (still being written?)"
                    )
                    continue
                raise ValueError(f"{path} line {number}: invalid JSON: {err}") from err
            if not isinstance(row, dict):
                raise ValueError(f"{path} line {number}: expected a JSON object")
            rows.append(row)
        out: list[tuple[str, int | None, str, float]] = []
        staged = []
        for row in rows:
            if "train_runtime" in row:
                stage = TRAIN_SUMMARY
            elif any(str(k).startswith("eval_") for k in row):
                stage = TRAIN_EVAL
            else:
                stage = TRAIN
            staged.append((stage, row))
        train_keys: dict[str, None] = {}
        for stage, row in staged:
            if stage == TRAIN:
                for key in row:
                    if key != "step" and _number(row[key]) is not None:
                        train_keys.setdefault(key, None)
        absent: dict[str, int] = {}
        nan_valued: dict[str, int] = {}
        n_train_rows = 0
        for stage, row in staged:
            step = row.get("step")
            step = (
                int(step) if isinstance(step, int | float) and not isinstance(step, bool) else None
            )
            if stage == TRAIN:
                n_train_rows += 1
                for key in train_keys:
                    if key not in row:
                        absent[key] = absent.get(key, 0) + 1
                        out.append((stage, step, key, math.nan))
            for key, raw in row.items():
                if key == "step":
                    continue
                value = _number(raw)
                if value is None:
                    continue  # non-scalar entries are not metrics
                if math.isnan(value) and stage == TRAIN:
                    nan_valued[key] = nan_valued.get(key, 0) + 1
                out.append((stage, step, key, value))
        if absent:
            listed = ", ".join(f"{k} ({n} of {n_train_rows} steps)" for k, n in absent.items())
            self.missing(f"{path}: missing at some logged steps, read as NaN: {listed}")
        if nan_valued:
            listed = ", ".join(f"{k} ({n} of {n_train_rows} steps)" for k, n in nan_valued.items())
            self.missing(f"{path}: NaN or null at some logged steps: {listed}")
        return out

    def summary(self, path: Path) -> tuple[str, list[tuple[str, float]]]:
        """(suite, [(flat key, value)]) of one ``<name>.summary.json``."""
        summary = read_json(path)
        if not isinstance(summary, Mapping):
            raise ValueError(f"{path}: a summary must be a JSON object")
        suite = str(summary.get("suite") or path.name.removesuffix(SUMMARY_SUFFIX))
        flat = summary.get("flat")
        if not isinstance(flat, Mapping):
            raise ValueError(f"{path}: no 'flat' mapping of metric values")
        info = self.suites.setdefault(suite, SuiteInfo(suite))
        tasks = summary.get("tasks") if isinstance(summary.get("tasks"), Mapping) else {}
        keys: dict[str, None] = {}
        for task, entry in tasks.items():
            if not isinstance(entry, Mapping) or "metric" not in entry:
                continue
            key = f"{task}/{entry['metric']}"
            keys.setdefault(key, None)
            if entry.get("label"):
                info.labels.setdefault(key, str(entry["label"]))
        for key in flat:
            keys.setdefault(str(key), None)
        if "average" in keys:  # the average goes last
            keys.pop("average")
            keys["average"] = None
        values: list[tuple[str, float]] = []
        missing: list[str] = []
        # A suite of distances (the testbed) has no benchmark average: it writes NaN there
        # by design, and a sampled (not exact) testbed evaluation only estimates the forward
        # KL; those NaNs are kept as NaN records but are not reported as missing.
        by_design = set()
        if not tasks:
            by_design.add("average")
        if summary.get("exact") is False:
            by_design |= {k for k in keys if not k.startswith("testbed/forward_kl")}
        for key in keys:
            value = _number(flat.get(key))
            if value is None:
                value = math.nan
            if math.isnan(value) and key not in by_design:
                missing.append(key if key in flat else f"{key} (absent)")
            if key == "average" and "average" in by_design and math.isnan(value):
                continue  # no average at all rather than a NaN one
            values.append((key, value))
            if key not in info.metrics:
                info.metrics.append(key)
        if missing:
            self.missing(f"{path}: missing values, read as NaN: {', '.join(missing)}")
        return suite, values

    def run_records(self, run: RunInfo) -> list[Record]:
        records: list[Record] = []
        base = dict(
            run=run.run,
            model=run.model,
            method=run.method,
            loss=run.loss,
            alpha=run.alpha,
            schedule=run.schedule,
            seed=run.seed,
            n_train=run.n_train,
        )
        iterations = sorted(
            int(p.name.removeprefix("iter_"))
            for p in run.path.glob("iter_*")
            if p.is_dir() and p.name.removeprefix("iter_").isdigit()
        )
        trained = set(run.completed.get("train", ()))
        for t in iterations:
            folder = run.path / f"iter_{t}"
            metrics = folder / METRICS_FILE
            if metrics.is_file():
                if t not in trained:
                    self.note(f"{folder}: no train{MARKER_SUFFIX} marker; its metrics are partial")
                for stage, step, metric, value in self.metrics(metrics):
                    records.append(
                        Record(
                            **base,
                            iteration=t,
                            stage=stage,
                            suite=None,
                            step=step,
                            metric=metric,
                            value=value,
                        )
                    )
            elif t in trained:
                self.note(f"{folder}: train is marked done but {METRICS_FILE} is missing")
            for summary in sorted((folder / EVAL_DIR).glob(f"*{SUMMARY_SUFFIX}")):
                suite, values = self.summary(summary)
                for metric, value in values:
                    records.append(
                        Record(
                            **base,
                            iteration=t,
                            stage=EVAL,
                            suite=suite,
                            step=None,
                            metric=metric,
                            value=value,
                        )
                    )
        return records


def _disambiguate(runs: list[RunInfo], manifests_ignore: Mapping[str, list[str]]) -> list[RunInfo]:
    """Append the differing config keys to labels shared by runs that differ beyond the seed."""
    signatures: dict[str, dict[str, Any]] = {}
    for run in runs:
        ignore = [*POOLED_KEYS, *manifests_ignore.get(run.run, [])]
        flat = flatten_config(run.config)
        signatures[run.run] = {
            k: json.dumps(v, sort_keys=True) for k, v in flat.items() if not _is_pooled(k, ignore)
        }
    groups: dict[tuple, list[RunInfo]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    renamed: dict[str, str] = {}
    for members in groups.values():
        distinct = {json.dumps(signatures[r.run], sort_keys=True) for r in members}
        if len(distinct) < 2:
            continue
        keys = sorted({k for r in members for k in signatures[r.run]})
        differing = [
            k for k in keys if len({signatures[r.run].get(k, "<unset>") for r in members}) > 1
        ]
        for r in members:
            parts = [
                f"{k}={json.loads(signatures[r.run][k]) if k in signatures[r.run] else '<unset>'}"
                for k in differing
            ]
            renamed[r.run] = f"{r.method} [{', '.join(parts)}]"
    return [dataclasses.replace(r, method=renamed.get(r.run, r.method)) for r in runs]


def load_runs(root: str | os.PathLike, *, strict: bool = False) -> Records:
    """Load every run under ``root`` into :class:`Records`.

    Missing numbers become NaN records and :class:`MissingValueWarning` s (``strict=True``:
    :class:`MissingValueError`); ``Records.problems`` lists every warning given.
    """
    root = Path(root)
    loader = _Loader(root, strict)
    infos: list[RunInfo] = []
    ignore: dict[str, list[str]] = {}
    for path in discover_runs(root):
        info = loader.run_info(path)
        if info is None:
            continue
        infos.append(info)
        manifest = read_json(path / MANIFEST_NAME)
        ignore[info.run] = list(manifest.get("non_result_keys") or [])
    infos = _disambiguate(infos, ignore)
    records: list[Record] = []
    for info in infos:
        records.extend(loader.run_records(info))
    for message, category in loader.warnings:
        warnings.warn(message, category, stacklevel=2)
    return Records(records, {i.run: i for i in infos}, loader.suites, loader.problems)
