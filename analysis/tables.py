"""Tables as pure functions of :class:`~analysis.records.Records`: Markdown and LaTeX.

This module owns the paper's table layout: rows method × iteration (grouped by model
and number of annotated samples when those vary), columns the suite's benchmarks in the
suite's order, its average and the change of the average from the method's previous
evaluated iteration. Cells are mean ± sample standard deviation over seeds (the seed
count is a column); a missing number is printed ``NaN`` (and was warned about), never 0;
"—" means no such run. :func:`reference_table` puts the averages next to the published
ones of :mod:`analysis.reference`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .records import (
    EVAL,
    MissingValueWarning,
    NoData,
    Records,
    RunInfo,
    format_n,
    method_sort_key,
    short_model,
)
from .reference import FINAL, Reference, load_reference

__all__ = [
    "Stat", "Table", "Text", "benchmark_table", "format_n", "reference_table", "seed_stat"
]  # fmt: skip

NOT_APPLICABLE = ""
NO_RUN = "—"


@dataclasses.dataclass(frozen=True)
class Stat:
    """A number cell: mean over ``n`` seeds and their sample standard deviation (NaN if n = 1)."""

    mean: float
    std: float = math.nan
    n: int = 1
    signed: bool = False


@dataclasses.dataclass(frozen=True)
class Text:
    """A text cell."""

    text: str


Cell = Stat | Text


def seed_stat(values: Sequence[float], *, scale: float = 1.0) -> Stat:
    """Mean ± sample std (ddof = 1) of per-seed values; any NaN makes the cell NaN.

    >>> stat = seed_stat([0.30, 0.32], scale=100)
    >>> round(stat.mean, 6), round(stat.std, 6), stat.n
    (31.0, 1.414214, 2)
    """
    array = pd.Series(values, dtype=float) * scale
    std = array.std(ddof=1, skipna=False) if array.size > 1 else math.nan
    return Stat(float(array.mean(skipna=False)), float(std), int(array.size))


# character → LaTeX, as space-separated pairs
_LATEX_PAIRS = r"""
\ \textbackslash{} & \& % \% $ \$ # \# _ \_ { \{ } \} ~ \textasciitilde{} ^ \textasciicircum{}
α $\alpha$ β $\beta$ μ $\mu$ θ $\theta$ Δ $\Delta$ ± $\pm$ — --- – -- → $\to$ ‖ $\|$ − $-$
σ $\sigma$ τ $\tau$ · $\cdot$ ≈ $\approx$ ⁺ $^{+}$ ⁻ $^{-}$ ′ '
""".split()
_LATEX = str.maketrans(dict(zip(_LATEX_PAIRS[::2], _LATEX_PAIRS[1::2], strict=True)))


def latex_escape(text: str) -> str:
    r"""Escape LaTeX specials and write Greek letters as math.

    >>> latex_escape("IRIS α=2 & 5%")
    'IRIS $\\alpha$=2 \\& 5\\%'
    """
    return text.translate(_LATEX)


@dataclasses.dataclass
class Table:
    """A rendered-on-demand table: key columns (text) then value columns.

    ``row_keys[i]`` and ``column_keys[j]`` are machine keys for :meth:`get`;
    ``groups`` are the row indices where a new block starts (a rule in LaTeX).
    """

    header: list[str]
    n_keys: int
    rows: list[list[Cell]]
    row_keys: list[tuple]
    column_keys: list[str]
    caption: str = ""
    notes: list[str] = dataclasses.field(default_factory=list)
    groups: list[int] = dataclasses.field(default_factory=list)
    digits: int = 2

    def get(self, row_key: tuple, column_key: str) -> Cell:
        """The cell of a row (by its key) and value column (by its key)."""
        row = self.row_keys.index(row_key)
        return self.rows[row][self.n_keys + self.column_keys.index(column_key)]

    def _number(self, cell: Cell, latex: bool) -> str:
        if isinstance(cell, Text):
            return latex_escape(cell.text) if latex else cell.text
        if math.isnan(cell.mean):
            return "NaN"
        sign = "+" if cell.signed else ""
        text = f"{cell.mean:{sign}.{self.digits}f}"
        if cell.n > 1 and not math.isnan(cell.std):
            text += (r" \pm " if latex else " ± ") + f"{cell.std:.{self.digits}f}"
        return f"${text}$" if latex else text

    def to_markdown(self) -> str:
        lines = []
        if self.caption:
            lines += [f"**{self.caption}**", ""]
        lines.append("| " + " | ".join(self.header) + " |")
        align = [":--"] * self.n_keys + ["--:"] * (len(self.header) - self.n_keys)
        lines.append("|" + "|".join(align) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(self._number(c, latex=False) for c in row) + " |")
        lines += ["", *self.notes] if self.notes else []
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        spec = "l" * self.n_keys + "r" * (len(self.header) - self.n_keys)
        lines = [f"% {line}" for line in [self.caption, *self.notes] if line]
        lines += [
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            " & ".join(latex_escape(h) for h in self.header) + r" \\",
            r"\midrule",
        ]
        for index, row in enumerate(self.rows):
            if index in self.groups and index > 0:
                lines.append(r"\midrule")
            lines.append(" & ".join(self._number(c, latex=True) for c in row) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path, name: str) -> list[Path]:
        """Write ``<name>.md`` and ``<name>.tex``; returns both paths."""
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        paths = [Path(out_dir, f"{name}.md"), Path(out_dir, f"{name}.tex")]
        for path, text in zip(paths, (self.to_markdown(), self.to_latex()), strict=True):
            path.write_text(text, encoding="utf-8")
        return paths


def _warn(message: str) -> None:
    warnings.warn(message, MissingValueWarning, stacklevel=3)


def _default_scale(suite: str) -> float:
    return 1.0 if suite == "testbed" else 100.0


def _groups(records: Records, runs) -> dict[tuple, list[RunInfo]]:
    """(model, n_train, method) → runs, in table order."""
    groups: dict[tuple, list[RunInfo]] = {}
    for run in sorted(runs):
        groups.setdefault(records.runs[run].group, []).append(records.runs[run])
    return dict(
        sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, method_sort_key(kv[1][0])))
    )


def _seed_stats(
    records: Records, suite: str, metrics: Sequence[str], scale: float
) -> tuple[pd.DataFrame, dict[tuple, list[RunInfo]]]:
    """Mean, sample std and count over seeds of each metric per (group, iteration), and the groups.

    The iterations of a group are those any of its runs evaluated; a seed without that
    evaluation, or whose summary lacks a metric, counts as NaN (with a warning).
    """
    evals = records[(records.stage == EVAL) & (records.suite == suite)]
    if evals.empty:
        raise NoData(f"no evaluation summaries of suite {suite!r} found")
    values = evals.drop_duplicates(["run", "iteration", "metric"])
    values = values.set_index(["run", "iteration", "metric"])["value"]
    groups = _groups(records, set(evals.run))
    evaluated = set(values.index.droplevel("metric"))
    index = []
    for key, members in groups.items():
        for t in sorted(set(evals.iteration[evals.run.isin([m.run for m in members])])):
            index += [(key, m.run, t) for m in members]
    for _, run, t in index:
        if (run, t) not in evaluated:
            _warn(f"{run}: no {suite} evaluation at iteration {t}; its cells are NaN")
            continue
        for metric in metrics:
            if (run, t, metric) not in values.index:
                _warn(f"{run} iteration {t}: {suite} summary lacks {metric}; read as NaN")
    wide = values.unstack("metric").reindex(columns=list(metrics))
    grid = wide.reindex(pd.MultiIndex.from_tuples([i[1:] for i in index])) * scale
    grid.index = pd.MultiIndex.from_tuples([(group, t) for group, _, t in index])
    return grid.groupby(level=[0, 1], sort=False).agg(seed_stat), groups


def benchmark_table(
    records: Records,
    suite: str = "iris10",
    *,
    metrics: Sequence[str] | None = None,
    scale: float | None = None,
    delta_of: str | None = "average",
    digits: int = 2,
    caption: str | None = None,
) -> Table:
    """The paper's layout: rows method × iteration, columns the suite's benchmarks, average, Δ.

    ``metrics``: flat keys to show (default: every key the suite's summaries hold, except
    standard errors ``*_se``, in the summaries' order, the average last). ``scale``:
    multiplier of the stored values (default 100 — percent — for lm-eval suites, 1 for
    ``testbed``). ``delta_of``: the column whose change from the method's previous
    evaluated iteration is the last column (None: no Δ column). A seed that lacks a value
    makes the cell NaN, with a :class:`MissingValueWarning`.
    """
    scale = _default_scale(suite) if scale is None else scale
    info = records.suites.get(suite)
    if metrics is None:
        metrics = [m for m in (info.metrics if info else []) if not m.endswith("_se")]
    metrics = list(metrics)
    stats, groups = _seed_stats(records, suite, metrics, scale)
    label = info.label if info else (lambda m: m)
    delta = delta_of if delta_of in metrics else None
    models = {key[0] for key in groups}
    sizes = {key[1] for key in groups}
    key_header = (["Model"] if len(models) > 1 else []) + (["n"] if len(sizes) > 1 else [])
    key_header += ["Method", "Iter.", "Seeds"]
    header = (
        key_header
        + ["Avg." if m == "average" else label(m) for m in metrics]
        + ([f"Δ {'Avg.' if delta == 'average' else label(delta)}"] if delta else [])
    )
    rows: list[list[Cell]] = []
    row_keys: list[tuple] = []
    previous: dict[tuple, Stat] = {}  # each group's cell of the Δ column at its last row
    for (group, t), stat in stats.iterrows():
        model, n_train, method = group
        keys = [short_model(model)] * (len(models) > 1) + [format_n(n_train)] * (len(sizes) > 1)
        cells = [Text(k) for k in [*keys, method, str(t), str(len(groups[group]))]] + list(stat)
        if delta:
            before = previous.get(group)
            change = None if before is None else Stat(stat[delta].mean - before.mean, signed=True)
            cells.append(change or Text(NOT_APPLICABLE))
            previous[group] = stat[delta]
        rows.append(cells)
        row_keys.append((model, n_train, method, t))
    group_starts = [i for i, key in enumerate(row_keys) if i == 0 or key[:3] != row_keys[i - 1][:3]]
    unit = "%" if scale == 100 else ""
    delta_text = (
        f"Δ: change of {'the average' if delta == 'average' else label(delta)} from the method's "
        "previous evaluated iteration; "
        if delta
        else ""
    )
    notes = [
        f"Mean ± sample standard deviation over seeds{f' ({unit})' if unit else ''}; "
        f"NaN: a number missing from a run; {delta_text}iteration t is the model after "
        "self-play iteration t."
    ]
    return Table(
        header=header,
        n_keys=len(key_header),
        rows=rows,
        row_keys=row_keys,
        column_keys=[*metrics, *([f"delta/{delta}"] if delta else [])],
        caption=caption or f"Suite {suite}: per-benchmark scores by method and iteration",
        notes=notes,
        groups=group_starts,
        digits=digits,
    )


def reference_table(
    records: Records,
    reference: Reference | None = None,
    *,
    suite: str = "iris10",
    metric: str = "average",
    scale: float | None = None,
    digits: int = 2,
) -> Table:
    """This project's suite average next to the published one, per reference entry × iteration.

    Rows: every published value of ``suite`` for the models this project ran (matched
    by model name, loss and ``n_train`` when the entry gives one; see
    :mod:`analysis.reference`). Columns: published value, this project's mean ± std over
    seeds, their difference, the source. "—": this project has no matching run.
    """
    reference = reference or load_reference()
    entries = reference.for_suite(suite)
    if not entries:
        raise NoData(f"the reference file has no published numbers for suite {suite!r}")
    scale = _default_scale(suite) if scale is None else scale
    stats, groups = _seed_stats(records, suite, [metric], scale)
    our_models = {key[0] for key in groups}
    entries = [e for e in entries if any(e.matches_model(m) for m in our_models)]
    if not entries:
        raise NoData(
            f"no run of a model with published {suite} numbers "
            f"(runs: {sorted(our_models)}; reference models: "
            f"{sorted({str(e.model) for e in reference.for_suite(suite)})})"
        )
    header = [
        "Published setting",
        "Iter.",
        "Our method",
        "Seeds",
        "Published",
        "Ours",
        "Ours − published",
        "Source",
    ]
    rows: list[list[Cell]] = []
    row_keys: list[tuple] = []
    starts: list[int] = []
    for entry in entries:
        starts.append(len(rows))
        matched = [
            (key, members)
            for key, members in groups.items()
            if entry.matches_model(key[0])
            and members[0].loss == entry.method
            and (entry.n_train is None or key[1] == entry.n_train)
        ]
        source = Text(reference.sources[entry.source].short)
        for iteration, published in entry.values.items():
            found = []  # (iteration label, our method, seeds, ours, difference) per matching group
            for group, members in matched:
                evaluated = [t for g, t in stats.index if g == group]
                t = evaluated[-1] if iteration == FINAL and evaluated else iteration
                if isinstance(t, int) and t in evaluated:
                    ours = stats.loc[(group, t), metric]
                    label = f"{iteration} ({t})" if iteration == FINAL else str(iteration)
                    difference = Stat(ours.mean - published, signed=True)
                    found.append((label, group[2], str(len(members)), ours, difference))
            unmatched = (str(iteration), None, NO_RUN, Text(NO_RUN), Text(NO_RUN))
            for label, method, seeds, ours, difference in found or [unmatched]:
                cells = [Text(label), Text(method or NO_RUN), Text(seeds), Stat(published)]
                rows.append([Text(entry.label), *cells, ours, difference, source])
                row_keys.append((entry.key, iteration, method))
    used = [reference.sources[s] for s in dict.fromkeys(e.source for e in entries)]
    notes = [
        f"{'Values in %; ' if scale == 100 else ''}ours: mean ± sample std over seeds of the {suite} "
        f"{metric}; —: no matching run of this project (the start checkpoint is not evaluated by "
        "the run directories).",
        *(f"{s.short}: {s.citation} ({s.location}; {s.url})" for s in used),
    ]
    return Table(
        header=header,
        n_keys=4,
        rows=rows,
        row_keys=row_keys,
        column_keys=["published", "ours", "difference", "source"],
        caption=f"Suite {suite}: this project's {metric} next to published numbers",
        notes=notes,
        groups=starts,
        digits=digits,
    )
