"""Benchmark suites as data, and the one rule that turns lm-eval results into a suite score.

This module owns what a suite is and how it is scored, with no lm-eval import:

* a suite is a YAML file (``iris/evaluation/suites/*.yaml`` for the built-in ``iris10`` and
  ``openllm_v1``, or a user's file): a list of lm-eval task or group names, each with its
  number of shots, the metric (and lm-eval filter) that scores it, and an optional label;
  plus ``include_path`` folders of user task YAMLs. :func:`resolve_suite` also accepts an
  lm-eval task YAML or comma-separated lm-eval task names (an ad-hoc suite scored by each
  task's first metric, with lm-eval's default shots);
* :func:`summarize` reads lm-eval's results dict and returns the compact summary: for each
  task its metric value, standard error and sample count, and the suite average.

Averaging rule (the same for every suite; ``average: mean`` in the YAML)::

    average = (1/K) * sum_k score_k        over the K tasks of the suite, unweighted,

where ``score_k`` is the task's metric exactly as lm-eval reports it under the suite's
filter (``results[task]["<metric>,<filter>"]``). For a group task (``mmlu``,
``leaderboard_bbh``, ``leaderboard_math_hard``, ``leaderboard_musr``, ``leaderboard_gpqa``)
that is lm-eval's group aggregate, computed as the group's ``aggregate_metric_list`` says
(for these groups: the mean over all their samples, i.e. subtasks weighted by size). A
task whose ``metric`` lists several metrics scores their unweighted mean (IFEval in
``iris10``: prompt- and instruction-level strict accuracy, the Open LLM Leaderboard v2
convention). Values are fractions in [0, 1]; the paper's percentages are 100 × these.
A metric missing from the results is NaN (never 0), and so is every score and average it
enters.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from iris.config import ConfigError, from_dict, load_yaml
from iris.evaluation.base import setting
from iris.runs import sha256_file

BUILTIN_SUITES_DIR = Path(__file__).parent / "suites"
NO_FILTER = "none"
SUMMARY_SCHEMA_VERSION = 1
_METRIC_KEY = re.compile(r"^(?P<metric>[^,]+),(?P<filter>.+)$")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One benchmark of a suite: an lm-eval task, group or tag, and how it is scored."""

    task: str = setting(dataclasses.MISSING, "lm-eval task/group/tag name (a registry key).")
    num_fewshot: int | None = setting(None, "Shots, set on every subtask; None: the config's.")
    metric: str | list[str] | None = dataclasses.field(
        default=None,
        metadata={"help": "Metric scoring the task (several: their mean); None: lm-eval's first."},
    )
    filter: str = setting(NO_FILTER, "lm-eval filter of the metric (e.g. gsm8k's 'strict-match').")
    label: str | None = setting(None, "Display name (defaults to the task name).")
    config: dict[str, Any] | None = dataclasses.field(
        default=None, metadata={"help": "Inline lm-eval task config (with 'task': this name)."}
    )

    def __post_init__(self) -> None:
        if not self.task or not isinstance(self.task, str):
            raise ValueError(f"task must be a non-empty string, got {self.task!r}")
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise ValueError(f"{self.task}: num_fewshot must be >= 0, got {self.num_fewshot}")
        if isinstance(self.metric, list):
            if not self.metric or not all(isinstance(m, str) and m for m in self.metric):
                raise ValueError(f"{self.task}: metric list must hold metric names")
            object.__setattr__(self, "metric", tuple(self.metric))
        if self.config is not None and self.config.get("task") != self.task:
            raise ValueError(
                f"{self.task}: inline config must have task: {self.task!r}, "
                f"got {self.config.get('task')!r}"
            )

    @property
    def metrics(self) -> tuple[str, ...] | None:
        """The component metric names (None: resolved from the results)."""
        return (self.metric,) if isinstance(self.metric, str) else self.metric


@dataclasses.dataclass(frozen=True)
class Suite:
    """A named list of :class:`TaskSpec` and the averaging rule (see the module docstring)."""

    name: str
    tasks: tuple[TaskSpec, ...]
    description: str = ""
    average: Literal["mean"] = "mean"
    include_path: tuple[str, ...] = ()
    include_defaults: bool | None = None
    source: str | None = None
    reference: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError(f"suite {self.name!r} has no tasks")
        twice = [task for task, count in Counter(self.task_names).items() if count > 1]
        if twice:
            raise ValueError(f"suite {self.name!r} lists task {twice[0]!r} twice")
        if self.average != "mean":
            raise ValueError(f"suite {self.name!r}: average must be 'mean', got {self.average!r}")

    @property
    def task_names(self) -> list[str]:
        return [spec.task for spec in self.tasks]

    @property
    def cli_argument(self) -> str:
        """What ``iris eval --suite`` takes to get this suite back (name, file, or task names)."""
        if self.source and not _is_builtin(self.source):
            return self.source
        if self.source:
            return self.name
        return ",".join(self.task_names)

    @property
    def prefetch_command(self) -> str:
        """The command that fills the HF cache for this suite (used in error messages)."""
        return f"iris eval --prefetch --suite {self.cli_argument}"

    def file_sha256(self) -> str | None:
        return sha256_file(self.source) if self.source and Path(self.source).is_file() else None


@dataclasses.dataclass
class _SuiteFile:
    """Schema of a suite YAML file (validated with iris.config.from_dict)."""

    name: str
    tasks: list[dict[str, Any] | str]
    description: str = ""
    average: Literal["mean"] = "mean"
    include_path: list[str] = dataclasses.field(default_factory=list)
    include_defaults: bool | None = None
    reference: dict[str, Any] | None = None


def _is_builtin(path: str | Path) -> bool:
    return Path(path).resolve().parent == BUILTIN_SUITES_DIR.resolve()


def builtin_suites() -> dict[str, Path]:
    """``{suite name: YAML path}`` of the suites shipped with iris."""
    return {path.stem: path for path in sorted(BUILTIN_SUITES_DIR.glob("*.yaml"))}


def suite_from_mapping(
    data: Mapping[str, Any], *, source: str = "<dict>", base_dir: Path | None = None
) -> Suite:
    """Build a :class:`Suite` from a parsed suite YAML; unknown keys fail, naming ``source``."""
    raw = from_dict(_SuiteFile, data, source=source)
    specs = []
    for index, entry in enumerate(raw.tasks):
        entry = {"task": entry} if isinstance(entry, str) else entry
        specs.append(from_dict(TaskSpec, entry, source=source, _prefix=f"tasks[{index}]."))
    base = base_dir if base_dir is not None else Path.cwd()
    include = tuple(str((base / p).resolve()) for p in raw.include_path)
    for folder in include:
        if not Path(folder).is_dir():
            raise ConfigError(f"{source}: include_path folder {folder} does not exist")
    try:
        return Suite(
            name=raw.name,
            tasks=tuple(specs),
            description=raw.description,
            average=raw.average,
            include_path=include,
            include_defaults=raw.include_defaults,
            source=source if Path(source).is_file() else None,
            reference=raw.reference,
        )
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from err


def load_suite(path: str | Path) -> Suite:
    """Read a suite YAML file; relative ``include_path`` entries are relative to the file."""
    path = Path(path).resolve()
    data = load_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a suite file must be a mapping, got {type(data).__name__}")
    return suite_from_mapping(data, source=str(path), base_dir=path.parent)


def resolve_suite(suite: str | Path | Suite) -> Suite:
    """A suite from a built-in name, a suite YAML, an lm-eval task YAML, or task names.

    * ``"iris10"``, ``"openllm_v1"``: the built-in suites;
    * a path to a suite YAML (a mapping with ``name`` and ``tasks``);
    * a path to an lm-eval task or group YAML: a one-task suite whose folder is added to
      lm-eval's ``include_path`` (so sibling YAMLs it includes resolve);
    * otherwise comma-separated lm-eval task names (``"gsm8k,hellaswag"``), scored by each
      task's first reported metric with lm-eval's default shots.
    """
    if isinstance(suite, Suite):
        return suite
    text = str(suite)
    builtins = builtin_suites()
    if text in builtins:
        return load_suite(builtins[text])
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(
                f"suite file {path} does not exist (built-in suites: {sorted(builtins)})"
            )
        # lm-eval task YAMLs use custom tags (!function); peek without resolving them.
        data = _peek_yaml(path)
        name = data.get("task") or data.get("group") if isinstance(data, Mapping) else None
        if name and "tasks" not in data:  # an lm-eval task or group YAML
            return Suite(
                name=str(name),
                tasks=(TaskSpec(task=str(name)),),
                include_path=(str(path.resolve().parent),),
                source=str(path.resolve()),
            )
        return load_suite(path)
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"empty suite {text!r}")
    return Suite(name="+".join(names), tasks=tuple(TaskSpec(task=name) for name in names))


def _peek_yaml(path: Path) -> Any:
    import yaml

    class _Peek(yaml.SafeLoader):
        pass

    _Peek.add_multi_constructor("!", lambda loader, suffix, node: None)
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Peek)  # a SafeLoader subclass


def _number(value: Any) -> float:
    """A finite-or-NaN float from a results entry; non-numbers ("N/A", None) are NaN."""
    try:
        return math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return math.nan


def _first_metric(entry: Mapping[str, Any]) -> tuple[str, str] | None:
    for key in entry:
        match = _METRIC_KEY.match(str(key))
        if match and not match["metric"].endswith("_stderr"):
            return match["metric"], match["filter"]
    return None


def flat_key(task: str, metrics: tuple[str, ...]) -> str:
    """A task's key in a summary's ``flat`` mapping: ``"<task>/<metric>[+<metric>...]"``."""
    return f"{task}/{'+'.join(metrics)}"


def summarize(results: Mapping[str, Any], suite: Suite) -> dict[str, Any]:
    """The compact summary of lm-eval ``results`` for ``suite`` (rule in the module docstring).

    Returns ``{"suite", "average", "average_rule", "tasks": {task: {...}}, "flat",
    "missing"}`` where ``tasks[task]`` holds ``label, metric, filter, value, stderr, n,
    num_fewshot, version`` and ``metrics`` (each component metric's value and stderr), and
    ``flat`` is ``{"<task>/<metric>": value, ..., "average": value}``. The stderr of a
    several-metric score is NaN (the components' covariance is not reported).

    >>> suite = Suite("s", (TaskSpec("a", metric="acc"), TaskSpec("b", metric="acc_norm")))
    >>> res = {"results": {"a": {"acc,none": 0.5}, "b": {"acc_norm,none": 0.25}}}
    >>> summarize(res, suite)["flat"]
    {'a/acc': 0.5, 'b/acc_norm': 0.25, 'average': 0.375}
    """
    per_task = results.get("results", {})
    tasks: dict[str, dict[str, Any]] = {}
    flat: dict[str, float] = {}
    missing: list[str] = []
    for spec in suite.tasks:
        entry = per_task.get(spec.task, {})
        components, filter_name = spec.metrics, spec.filter
        if components is None:  # lm-eval's first metric, under its filter
            metric, filter_name = _first_metric(entry) or ("<unknown>", filter_name)
            components = (metric,)
        metrics: dict[str, dict[str, float]] = {}
        for metric in components:
            key = f"{metric},{filter_name}"
            value = _number(entry.get(key))
            if key not in entry or math.isnan(value):
                reason = "task absent from results" if not entry else f"no {key!r} in results"
                missing.append(f"{spec.task}/{metric} ({reason})")
            metrics[metric] = {
                "value": value,
                "stderr": _number(entry.get(f"{metric}_stderr,{filter_name}")),
            }
        values = [m["value"] for m in metrics.values()]
        score = math.fsum(values) / len(values)  # NaN if any component is NaN
        stderr = metrics[components[0]]["stderr"] if len(components) == 1 else math.nan
        name = "+".join(components)
        shots = results.get("n-shot", {}).get(spec.task)
        samples = results.get("n-samples", {}).get(spec.task) or {}
        tasks[spec.task] = {
            "label": spec.label or spec.task,
            "metric": name,
            "filter": filter_name,
            "value": score,
            "stderr": stderr,
            "n": entry.get("sample_len", samples.get("effective")),
            "num_fewshot": spec.num_fewshot if spec.num_fewshot is not None else shots,
            "version": results.get("versions", {}).get(spec.task),
            "metrics": metrics,
        }
        flat[flat_key(spec.task, components)] = score
    average = math.fsum(flat.values()) / len(flat)
    flat["average"] = average
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "suite": suite.name,
        "average": average,
        "average_rule": (
            "unweighted mean over the suite's tasks of each task's metric as lm-eval reports "
            "it (group tasks: lm-eval's group aggregate; several metrics: their mean); "
            "fractions in [0, 1]; NaN if any metric is missing"
        ),
        "tasks": tasks,
        "flat": flat,
        "missing": missing,
    }


def format_summary(summary: Mapping[str, Any]) -> str:
    """A plain-text table of a summary (values in percent, as papers report them)."""
    rows = [("task", "metric", "shots", "n", "value %", "± stderr %")]
    for task, info in summary["tasks"].items():
        label = info["label"] if info["label"] == task else f"{info['label']} [{task}]"
        metric = info["metric"] + ("" if info["filter"] == NO_FILTER else f" ({info['filter']})")
        shots, n = ("" if v is None else str(v) for v in (info["num_fewshot"], info["n"]))
        stderr = "" if math.isnan(info["stderr"]) else f"{100 * info['stderr']:.2f}"
        rows.append((label, metric, shots, n, f"{100 * info['value']:.2f}", stderr))
    rows.append(("average", "", "", "", f"{100 * summary['average']:.2f}", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.insert(len(lines) - 1, lines[1])
    return "\n".join(lines)
