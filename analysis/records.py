"""Run directories → one tidy :class:`pandas.DataFrame` (:class:`Records`), no torch.

This module owns reading what the self-play driver writes (:mod:`iris.runs` owns the
layout) and nothing else; tables and figures are pure functions of the frame it returns.

A run is any folder under the root holding a ``manifest.json`` with a ``config``, or a
plain TRL/transformers output folder (``trainer_state.json``, at its top or in its last
``checkpoint-*``; without one, tensorboard event files when ``tensorboard`` is
importable). From a manifest come the run's model, loss, configured IRIS order (or the
schedule, parsed by :func:`iris.schedules.make_schedule`), seed and ``data.n_train``; the
method label is the loss's display name plus α or the schedule ("SPIN", "IRIS α=2",
"IRIS adaptive"). A TRL folder is one iteration of loss ``"dpo"`` (it logged rewards) or
``"trl"``. Rows come from each ``iter_<t>/``:

* ``metrics.jsonl`` (TRL: the log history) → stage ``"train"``, one row per logged step
  and key; the Trainer's closing row with ``train_runtime`` is ``"train_summary"``, rows
  of ``eval_*`` keys ``"train_eval"``;
* ``eval/<name>.summary.json`` → stage ``"eval"``, ``suite`` = the summary's ``suite``,
  ``metric`` = each key of its ``flat`` mapping, value as written.

Columns: ``run model method series loss alpha schedule seed n_train iteration stage
suite step metric value``, then every config key whose value differs between the runs
(dotted, e.g. ``training.beta``). For a notebook: ``load_runs("runs/").query("stage ==
'eval'").pivot_table(index=["method", "iteration"], columns="metric", values="value")``.

**Missing numbers are NaN, never 0.** A value written as null/NaN/non-number, a task the
summary lists without a value, or a key that some logged steps carry and others do not,
becomes NaN and a :class:`MissingValueWarning` naming the file (``strict=True`` raises
:class:`MissingValueError`). A truncated last line of a metrics file still being written
is skipped with a warning; any other invalid JSON is an error naming file and line.

Runs that would get the same label (same model, n and method) but differ in a
result-affecting config key other than the seed get the differing keys appended
("SPIN [training.beta=0.5]"), so seeds are only ever pooled over runs alike otherwise.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from iris.runs import (
    EVAL_DIR,
    MANIFEST_NAME,
    MARKER_SUFFIX,
    METRICS_FILE,
    config_diff,
    flatten_config,
    read_json,
)
from iris.schedules import ConstantSchedule, make_schedule

__all__ = [
    "COLUMNS", "LOSS_LABELS", "MissingValueError", "MissingValueWarning", "NoData", "Records",
    "RunInfo", "SuiteInfo", "discover_runs", "format_n", "load_runs", "method_label",
    "method_sort_key"
]  # fmt: skip

SUMMARY_SUFFIX = ".summary.json"
TRAINER_STATE = "trainer_state.json"
TRAIN, TRAIN_SUMMARY, TRAIN_EVAL, EVAL = "train", "train_summary", "train_eval", "eval"
# The columns of every frame (before ``series`` and the differing config keys); the first
# eight come from the run (RunInfo), the rest from its files.
COLUMNS = ("run", "model", "method", "loss", "alpha", "schedule", "seed", "n_train",
           "iteration", "stage", "suite", "step", "metric", "value")  # fmt: skip

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
# Folders never searched for runs: hidden ones anywhere; inside a run directory, the
# large outputs (model weights, checkpoints, data, lm-eval samples).
_HIDDEN_DIRS = (".*", "__pycache__")
_RUN_OUTPUT_DIRS = ("model", "checkpoint-*", "data", "*.samples")


class MissingValueWarning(UserWarning):
    """A number the run directory should hold is missing; it is NaN in the records."""


class MissingValueError(ValueError):
    """Raised instead of :class:`MissingValueWarning` when loading with ``strict=True``."""


class NoData(LookupError):
    """The records hold nothing a table or figure needs; the message says what is missing."""


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What the manifest says about one run (``run`` is its path relative to the root)."""

    run: str
    path: Path
    model: str
    loss: str
    method: str
    alpha: float = math.nan
    schedule: str | None = None
    schedule_config: Mapping[str, Any] | None = None
    seed: int | None = None
    n_train: int | None = None
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # stage -> iterations with a <stage>.DONE marker
    completed: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    non_result_keys: tuple[str, ...] = ()
    series: str = ""  # the curve it belongs to in a figure (see Records.series_labels)

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


class Records(pd.DataFrame):
    """The tidy frame of :func:`load_runs`, carrying the runs, the suites and the warnings given.

    ``runs`` (run → :class:`RunInfo`), ``suites`` (name → :class:`SuiteInfo`) and
    ``problems`` (every warning of the load) follow every row selection.
    """

    _metadata: ClassVar[list[str]] = ["runs", "suites", "problems"]

    @property
    def _constructor(self):
        return Records

    def methods(self) -> list[str]:
        """Method labels present, in the canonical order (SFT, SPIN, …, IRIS by α)."""
        infos = {run.method: run for run in self.runs.values()}
        return sorted(
            set(self["method"]),
            key=lambda label: method_sort_key(infos[label]) if label in infos else (99, label),
        )

    def series_labels(self) -> dict[str, str]:
        """run → the label of the curve it belongs to in a figure (seeds pooled).

        The method label, plus the number of annotated samples when runs of that method
        differ in it, plus the model when the runs use several models: so a figure never
        pools runs that a table would keep apart.
        """
        return {run.run: run.series for run in self.runs.values()}

    def series_order(self, labels: Iterable[str] | None = None) -> list[str]:
        """Series labels in the canonical method order (then model, then n)."""
        first = {run.series: run for run in reversed(self.runs.values())}  # each series' first run
        wanted = set(first) if labels is None else set(labels)

        def key(label: str) -> tuple:
            run = first.get(label)
            if run is None:
                return ((99, label), "", 0)
            return (method_sort_key(run), run.model, run.n_train or 0)

        return sorted(wanted, key=key)


def format_n(n: int | None) -> str:
    """Annotated-sample counts as papers write them: 50000 → "50k".

    >>> format_n(26000), format_n(1500), format_n(None)
    ('26k', '1500', '—')
    """
    if n is None:
        return "—"
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def short_model(model: str) -> str:
    """The last path component of a model name or folder."""
    return model.rstrip("/").rsplit("/", 1)[-1]


def method_label(loss: str, alpha: float = math.nan, schedule: str | None = None) -> str:
    """Display label of a method.

    >>> method_label("iris", 2.0), method_label("iris", schedule="adaptive"), method_label("tspin")
    ('IRIS α=2', 'IRIS adaptive', 'T-SPIN')
    """
    name = LOSS_LABELS.get(loss, loss.upper())
    if schedule:
        return f"{name} {schedule}"
    return name if math.isnan(alpha) else f"{name} α={alpha:g}"


def method_sort_key(run: RunInfo) -> tuple:
    """Canonical order: SFT, SPIN, T-SPIN, SPACE, SPIF, IRIS by α, then IRIS schedules."""
    order = list(LOSS_LABELS)
    rank = order.index(run.loss) if run.loss in order else len(order)
    alpha = run.alpha if not math.isnan(run.alpha) else math.inf
    return (rank, run.loss, alpha, run.schedule or "", run.method)


def _schedule(training: Mapping[str, Any]) -> tuple[float, str | None, Mapping[str, Any] | None]:
    """(configured α, schedule name, schedule config) of a training config.

    The schedule is parsed by :func:`iris.schedules.make_schedule` (a constant one is an
    α); its config has every parameter, defaults included.
    """
    raw = training.get("alpha_schedule")
    if raw is None:
        alpha = training.get("alpha")
        return (math.nan if alpha is None else float(alpha)), None, None
    schedule = make_schedule(raw)
    if isinstance(schedule, ConstantSchedule):
        return schedule.alpha_value, None, schedule.config()
    return math.nan, schedule.name, schedule.config()


def _trainer_state(folder: Path) -> Path | None:
    """A TRL/transformers output folder's ``trainer_state.json`` (top, else last checkpoint)."""
    if (folder / TRAINER_STATE).is_file():
        return folder / TRAINER_STATE
    checkpoints = [
        p for p in folder.glob(f"checkpoint-*/{TRAINER_STATE}") if p.parent.name[11:].isdigit()
    ]
    return max(checkpoints, key=lambda p: int(p.parent.name[11:]), default=None)


def _event_files(folder: Path) -> list[Path]:
    """Tensorboard event files of an output folder, when ``tensorboard`` can read them."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return []
    return sorted(folder.glob("**/events.out.tfevents.*"))


def _event_rows(files: list[Path]) -> list[dict[str, Any]]:
    """Log rows (``{"step": s, key: value}``) of tensorboard event files (``train/`` stripped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # The end-of-training summary (train_runtime, train_loss, ...) is its own log row, as in
    # trainer_state.json, though it shares the last step.
    summary = {
        "train_runtime",
        "train_samples_per_second",
        "train_steps_per_second",
        "total_flos",
        "train_loss",
    }
    rows: dict[tuple[int, bool], dict[str, Any]] = {}
    for path in files:
        events = EventAccumulator(str(path), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags().get("scalars", []):
            key = tag.removeprefix("train/")
            for event in events.Scalars(tag):
                row = rows.setdefault((event.step, key in summary), {"step": event.step})
                row[key] = event.value
    return [rows[key] for key in sorted(rows)]


def discover_runs(root: str | os.PathLike) -> list[Path]:
    """Every folder under ``root`` (itself included) holding a run, sorted.

    A run holds a ``manifest.json``, or is a TRL output folder (not inside another run).
    Hidden folders, and the model, checkpoint, data and sample folders inside a run, are
    not searched.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs root {root} is not a folder")
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        inside = any(here.is_relative_to(run) for run in found)
        if MANIFEST_NAME in files or (not inside and (_trainer_state(here) or _event_files(here))):
            found.append(here)
        pruned = _HIDDEN_DIRS + (_RUN_OUTPUT_DIRS if inside or found[-1:] == [here] else ())
        dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatchcase(d, p) for p in pruned))
    return sorted(found)


def _number(value: Any) -> float | None:
    """A float (NaN for null / NaN / non-number text); None for a non-scalar (list, dict, bool)."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return math.nan


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class _Loader:
    """Reads one root; collects problems and turns them into warnings (or errors)."""

    def __init__(self, root: Path, strict: bool) -> None:
        self.root = root
        self.strict = strict
        self.problems: dict[str, type[Warning]] = {}  # message → warning category, in order
        self.suites: dict[str, SuiteInfo] = {}

    def missing(self, message: str) -> None:
        """A number read as NaN: warned about at the end of loading (strict: raised now)."""
        if self.strict:
            raise MissingValueError(message)
        self.problems.setdefault(message, MissingValueWarning)

    def note(self, message: str) -> None:
        """A problem that is not a missing number (warned about, never raised)."""
        self.problems.setdefault(message, UserWarning)

    def run_info(self, path: Path) -> RunInfo | None:
        relative = path.relative_to(self.root).as_posix() if path != self.root else path.name
        if not (path / MANIFEST_NAME).is_file():
            return self.trl_info(path, relative)
        manifest = read_json(path / MANIFEST_NAME)
        config = manifest.get("config") if isinstance(manifest, Mapping) else None
        if not isinstance(config, Mapping):
            self.note(f"{path / MANIFEST_NAME}: no 'config' mapping; not a run manifest, skipped")
            return None
        model_cfg = config.get("model") or {}
        model = model_cfg.get("name_or_path") if isinstance(model_cfg, Mapping) else None
        if not model:
            self.note(f"{path / MANIFEST_NAME}: config.model.name_or_path is missing")
        training = config.get("training") or {}
        loss = str(training.get("loss", "iris")).lower()
        try:
            alpha, schedule, schedule_config = _schedule(training)
        except ValueError as err:
            self.note(f"{path / MANIFEST_NAME}: training.alpha_schedule: {err}")
            alpha, schedule, schedule_config = math.nan, "schedule", None
        if loss == "iris" and math.isnan(alpha) and schedule is None:
            alpha = 1.0  # the trainer's default order
        data = config.get("data") or {}
        completed: dict[str, list[int]] = {}
        for marker in path.glob(f"iter_*/*{MARKER_SUFFIX}"):
            if marker.parent.name[5:].isdigit():
                stage = marker.name.removesuffix(MARKER_SUFFIX)
                completed.setdefault(stage, []).append(int(marker.parent.name[5:]))
        return RunInfo(
            run=relative,
            path=path,
            model=str(model or "unknown"),
            loss=loss,
            method=method_label(loss, alpha, schedule),
            alpha=alpha,
            schedule=schedule,
            schedule_config=schedule_config,
            seed=_int(config.get("seed")),
            n_train=_int(data.get("n_train")) if isinstance(data, Mapping) else None,
            config=config,
            completed={k: tuple(sorted(v)) for k, v in completed.items()},
            non_result_keys=tuple(manifest.get("non_result_keys") or ()),
        )

    def trl_info(self, path: Path, relative: str) -> RunInfo:
        """A plain TRL output folder: one iteration; the model named by its saved config."""
        state = _trainer_state(path)
        configs = [path / "config.json", *([state.parent / "config.json"] if state else [])]
        model = next(
            (read_json(c).get("_name_or_path") for c in configs if c.is_file()), None
        ) or str(relative)
        loss = "dpo" if any("rewards/chosen" in row for row in self.log_history(path)) else "trl"
        completed = {"train": (0,)} if state else {}
        return RunInfo(relative, path, model, loss, method_label(loss), completed=completed)

    def log_history(self, path: Path) -> list[dict[str, Any]]:
        state = _trainer_state(path)
        if state is not None:
            return list(read_json(state).get("log_history") or [])
        return _event_rows(_event_files(path))

    def metrics(self, path: Path, rows: list[dict[str, Any]] | None = None) -> pd.DataFrame:
        """(stage, step, metric, value) rows of a metrics.jsonl (or of given log rows).

        Keys absent from some logged training steps are NaN at those steps.
        """
        if rows is None:
            rows = []
            lines = path.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, start=1):
                try:
                    row = json.loads(line) if line.strip() else {}
                except json.JSONDecodeError as err:
                    if number < len(lines):
                        raise ValueError(f"{path} line {number}: invalid JSON: {err}") from err
                    self.note(
                        f"{path} line {number}: truncated last line skipped (still being written?)"
                    )
                    continue
                if not isinstance(row, dict):
                    raise ValueError(f"{path} line {number}: expected a JSON object")
                rows += [row] if row else []
        parts = []
        for stage in (TRAIN, TRAIN_SUMMARY, TRAIN_EVAL):
            chosen = [r for r in rows if _stage(r) == stage]
            steps = [_int(r.get("step")) for r in chosen]
            values = [
                {k: x for k, v in r.items() if k != "step" and (x := _number(v)) is not None}
                for r in chosen
            ]
            if stage != TRAIN:  # only the keys each row holds
                long = [
                    (s, k, v) for s, row in zip(steps, values, strict=True) for k, v in row.items()
                ]
                parts.append(pd.DataFrame(long, columns=["step", "metric", "value"]))
                parts[-1]["stage"] = stage
                continue
            wide = pd.DataFrame(values, index=pd.Index(steps, name="step"))  # absent keys: NaN
            absent = pd.DataFrame([dict.fromkeys(v, 0) for v in values]).isna().sum()
            for label, counts in (
                ("missing at some logged steps, read as NaN", absent),
                ("NaN or null at some logged steps", wide.isna().sum().values - absent),
            ):
                listed = [f"{k} ({n} of {len(wide)} steps)" for k, n in counts.items() if n]
                if listed:
                    self.missing(f"{path}: {label}: {', '.join(listed)}")
            long = wide.reset_index().melt(id_vars="step", var_name="metric")
            parts.append(long.assign(stage=stage))
        return pd.concat(parts, ignore_index=True)

    def summary(self, path: Path) -> pd.DataFrame:
        """(suite, metric, value) rows of one ``<name>.summary.json``."""
        summary = read_json(path)
        if not isinstance(summary, Mapping):
            raise ValueError(f"{path}: a summary must be a JSON object")
        suite = str(summary.get("suite") or path.name.removesuffix(SUMMARY_SUFFIX))
        flat = summary.get("flat")
        if not isinstance(flat, Mapping):
            raise ValueError(f"{path}: no 'flat' mapping of metric values")
        info = self.suites.setdefault(suite, SuiteInfo(suite))
        tasks = summary.get("tasks") if isinstance(summary.get("tasks"), Mapping) else {}
        listed = {
            f"{task}/{entry['metric']}": entry.get("label")
            for task, entry in tasks.items()
            if isinstance(entry, Mapping) and "metric" in entry
        }
        info.labels = {k: str(label) for k, label in listed.items() if label} | info.labels
        keys = list(dict.fromkeys([*listed, *map(str, flat)]))
        keys.sort(key=lambda key: key == "average")  # the average goes last
        # A suite of distances (the testbed) has no benchmark average: it writes NaN there
        # by design, and a sampled (not exact) testbed evaluation only estimates the forward
        # KL; those NaNs are kept as NaN rows but are not reported as missing.
        by_design = set() if tasks else {"average"}
        if summary.get("exact") is False:
            by_design |= {k for k in keys if not k.startswith("testbed/forward_kl")}
        values, missing = {}, []
        for key in keys:
            value = _number(flat.get(key))
            value = math.nan if value is None else value
            if math.isnan(value) and key not in by_design:
                missing.append(key if key in flat else f"{key} (absent)")
            if not (key == "average" and "average" in by_design and math.isnan(value)):
                values[key] = value  # (no average at all rather than a NaN one)
                if key not in info.metrics:
                    info.metrics.append(key)
        if missing:
            self.missing(f"{path}: missing values, read as NaN: {', '.join(missing)}")
        return pd.DataFrame(
            {"suite": suite, "metric": list(values), "value": list(values.values())}
        )

    def run_rows(self, run: RunInfo) -> pd.DataFrame:
        if not (run.path / MANIFEST_NAME).is_file():  # a TRL output folder: one iteration
            return self.metrics(run.path, self.log_history(run.path)).assign(iteration=0)
        parts = []
        iterations = sorted(
            int(p.name[5:]) for p in run.path.glob("iter_*") if p.is_dir() and p.name[5:].isdigit()
        )
        trained = set(run.completed.get("train", ()))
        for t in iterations:
            folder = run.path / f"iter_{t}"
            if (folder / METRICS_FILE).is_file():
                if t not in trained:
                    self.note(f"{folder}: no train{MARKER_SUFFIX} marker; its metrics are partial")
                parts.append(self.metrics(folder / METRICS_FILE).assign(iteration=t))
            elif t in trained:
                self.note(f"{folder}: train is marked done but {METRICS_FILE} is missing")
            for summary in sorted((folder / EVAL_DIR).glob(f"*{SUMMARY_SUFFIX}")):
                parts.append(self.summary(summary).assign(iteration=t, stage=EVAL))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _stage(row: Mapping[str, Any]) -> str:
    if "train_runtime" in row:
        return TRAIN_SUMMARY
    return TRAIN_EVAL if any(str(k).startswith("eval_") for k in row) else TRAIN


def _differing(runs: list[RunInfo], pooled: Iterable[str] = ()) -> list[str]:
    """Config keys (dotted) whose values differ between any of the runs, ignoring ``pooled``
    and every run's ``non_result_keys`` (:func:`iris.runs.config_diff`'s rules)."""
    ignore = {*pooled, *(k for run in runs for k in run.non_result_keys)}
    keys = {k for run in runs[1:] for k in config_diff(runs[0].config, run.config, ignore=ignore)}
    return sorted(keys)


def _disambiguate(runs: list[RunInfo]) -> list[RunInfo]:
    """Append the differing config keys to labels shared by runs that differ beyond the seed;
    then give each run its series label (the method, plus n and the model where they vary)."""
    groups: dict[tuple, list[RunInfo]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    renamed: dict[str, str] = {}
    for members in groups.values():
        differing = _differing(members, POOLED_KEYS)
        for r in members if differing else ():
            flat = flatten_config(r.config)
            parts = [f"{k}={flat.get(k, '<unset>')}" for k in differing]
            renamed[r.run] = f"{r.method} [{', '.join(parts)}]"
    runs = [dataclasses.replace(r, method=renamed.get(r.run, r.method)) for r in runs]
    several_models = len({run.model for run in runs}) > 1

    def series(run: RunInfo) -> str:
        sizes = {r.n_train for r in runs if (r.model, r.method) == (run.model, run.method)}
        label = run.method + (f" (n={format_n(run.n_train)})" if len(sizes) > 1 else "")
        return label + (f" · {short_model(run.model)}" if several_models else "")

    return [dataclasses.replace(r, series=series(r)) for r in runs]


def _config_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


def load_runs(root: str | os.PathLike, *, strict: bool = False) -> Records:
    """Every run under ``root`` as one tidy :class:`Records` frame (module docstring).

    Missing numbers are NaN rows and :class:`MissingValueWarning` s (``strict=True``:
    :class:`MissingValueError`); ``Records.problems`` lists every warning given.
    """
    loader = _Loader(Path(root), strict)
    infos = [i for path in discover_runs(root) if (i := loader.run_info(path)) is not None]
    infos = _disambiguate(infos)
    columns = list(COLUMNS)
    config_keys = [k for k in _differing(infos) if k not in columns] if len(infos) > 1 else []
    frames = []
    for info in infos:
        rows = loader.run_rows(info)
        flat = flatten_config(info.config)
        fields = {f: getattr(info, f) for f in columns[:8]}
        fields |= {k: _config_value(flat.get(k)) for k in config_keys}
        frames.append(rows.assign(**fields).assign(series=info.series))
    for message, category in loader.problems.items():
        warnings.warn(message, category, stacklevel=2)
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True) if frames else None
    if frame is None or frame.empty:
        frame = pd.DataFrame(columns=[*columns, "series", *config_keys])
    if "suite" not in frame:
        frame["suite"] = None
    frame = frame.astype({"seed": "Int64", "n_train": "Int64", "step": "Int64", "value": float})
    records = Records(frame[[*columns[:3], "series", *columns[3:], *config_keys]])
    records.runs = {i.run: i for i in infos}
    records.suites = loader.suites
    records.problems = tuple(loader.problems)
    return records
