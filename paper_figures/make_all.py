"""Rebuild every table and figure from run directories, and list what could not be built.

    python -m paper_figures.make_all --runs RUNS_DIR --out OUT_DIR [--only NAME ...] [--strict]

Loads the runs once (:func:`analysis.load_runs`), then calls the builder of every entry
of :data:`ARTEFACTS` (name → title, builder, caption). An artefact whose data are absent
is *skipped* with the reason (e.g. "no adaptive-α run found"); one that needs a package
that is not installed (the weighting profiles need torch) is skipped naming it; one that
raises anything else has *failed* (traceback printed, exit status 1). ``OUT_DIR/INDEX.md``
lists every artefact with its caption, the skipped ones with their reasons, and every
warning given while loading (missing numbers read as NaN). One artefact alone:
``--only fig_training_curves``, or ``paper_figures.fig_training_curves.main(argv)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import analysis
from analysis import CAPTIONS, NoData, Records, benchmark_table, load_runs
from analysis.figures import data_efficiency_score

NON_BENCHMARK_SUITES = {"testbed"}
# Testbed table columns: distances first, then the diagnostics, then any other key.
TESTBED_ORDER = ("forward_kl", "reverse_kl", "total_variation", "invalid_rate", "real_loglik")
RENYI_GAP_PREFIX = "testbed/renyi_gap/"  # the exact R_α gaps: not distances of this table


def benchmark_tables(records: Records, out_dir: Path) -> list[Path]:
    """``table_<suite>.md/.tex`` per lm-eval suite: method × iteration, benchmarks, Avg., Δ (%)."""
    suites = [s for s in records.suites if s not in NON_BENCHMARK_SUITES]
    if not suites:
        raise NoData("no lm-eval suite summaries (iter_<t>/eval/<suite>.summary.json) found")
    return [p for s in suites for p in benchmark_table(records, s).write(out_dir, f"table_{s}")]


def reference_tables(records: Records, out_dir: Path) -> list[Path]:
    """``table_reference_<suite>.md/.tex``: averages next to the published numbers."""
    reference, paths, reasons = analysis.load_reference(), [], []
    for suite in reference.suites:
        try:
            table = analysis.reference_table(records, reference, suite=suite)
        except NoData as err:
            reasons.append(str(err))
            continue
        paths += table.write(out_dir, f"table_reference_{suite}")
    if not paths:
        raise NoData("; ".join(reasons))
    return paths


def testbed_table(records: Records, out_dir: Path) -> list[Path]:
    """``table_testbed.md/.tex``: distances to the testbed target by method and iteration."""
    info = records.suites.get("testbed")
    present = [
        m
        for m in (info.metrics if info else [])
        if not m.endswith("_se") and not m.startswith(RENYI_GAP_PREFIX)
    ]
    order = [f"testbed/{m}" for m in TESTBED_ORDER]
    metrics = [m for m in order if m in present] + [m for m in present if m not in order]
    caption = "Testbed: distance of the trained model to the target, by method and iteration"
    options = {"delta_of": "testbed/forward_kl", "digits": 3, "caption": caption}
    table = benchmark_table(records, "testbed", metrics=metrics or None, **options)
    return table.write(out_dir, "table_testbed")


def weight_profiles(records: Records | None, out_dir: Path) -> list[Path]:
    """The profiles computed with iris.losses (torch), their JSON and the figure."""
    from .weight_profiles import compute_weight_profiles

    profiles = compute_weight_profiles()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    data = Path(out_dir) / "weight_profiles.json"
    data.write_text(json.dumps(profiles.to_json()) + "\n", encoding="utf-8")
    return [*analysis.weight_profiles(profiles, out_dir), data]


def _weight_profiles_caption(records: Records | None = None) -> str:
    from .weight_profiles import BATCH_SIZE, BOUND, MU

    return CAPTIONS["weight_profiles"].format(batch_size=BATCH_SIZE, mu=MU, bound=BOUND)


def _data_efficiency_caption(records: Records) -> str:
    _, _, _, score, higher_is_better = data_efficiency_score(records)
    better = "higher" if higher_is_better else "lower"
    return CAPTIONS["data_efficiency"].format(
        score=f"{score} ({better} is better)", iteration="each run's last evaluated iteration"
    )


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    runs, out = (
        "folder searched (recursively) for run directories",
        "folder the figures and tables are written to",
    )
    p.add_argument("--runs", required=True, type=Path, help=runs)
    p.add_argument("--out", required=True, type=Path, help=out)
    strict = "a missing number is an error instead of NaN + warning"
    p.add_argument("--strict", action="store_true", help=strict)
    return p


@dataclasses.dataclass(frozen=True)
class Artefact:
    """A table or figure: its title, its builder and (figures) its file name and caption."""

    title: str
    build: Callable[[Records, Path], list[Path]]
    figure: str | None = None  # the figure's file name and key in analysis.CAPTIONS
    caption: Callable[[Records], str] | None = None  # when the caption depends on the records

    def caption_of(self, records: Records) -> str:
        if self.caption is not None:
            return self.caption(records)
        return CAPTIONS[self.figure] if self.figure else ""  # a table: captioned in its file

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Load the runs, build this artefact alone and print what it wrote (2: skipped)."""
        args = parser(f"Build {self.title} from run directories.").parse_args(argv)
        start = time.perf_counter()
        try:
            paths = self.build(load_runs(args.runs, strict=args.strict), args.out)
        except NoData as err:
            print(f"skipped {self.title}: {err}", file=sys.stderr)
            return 2
        print(*paths, sep="\n")
        print(
            f"{self.title}: {len(paths)} files in {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )
        return 0


ARTEFACTS: dict[str, Artefact] = {
    "table_benchmarks": Artefact("benchmark tables (lm-eval suites)", benchmark_tables),
    "table_reference": Artefact("comparison with published numbers", reference_tables),
    "table_testbed": Artefact("testbed table", testbed_table),
    "fig_gradient_concentration": Artefact("gradient concentration (ESS/n vs α)", analysis.gradient_concentration, "gradient_concentration"),
    "fig_weight_profiles": Artefact("weighting profiles", weight_profiles, "weight_profiles", _weight_profiles_caption),
    "fig_alpha_trace": Artefact("adaptive α trace", analysis.alpha_trace, "alpha_trace"),
    "fig_training_curves": Artefact("training curves", analysis.training_curves, "training_curves"),
    "fig_testbed": Artefact("testbed distance to the target", analysis.testbed_distance, "testbed_distance"),
    "fig_data_efficiency": Artefact("data efficiency", analysis.data_efficiency, "data_efficiency", _data_efficiency_caption),
}  # fmt: skip
# name → figure file name (None: a table)
SCRIPTS: dict[str, str | None] = {name: a.figure for name, a in ARTEFACTS.items()}


@dataclasses.dataclass
class Report:
    """What one ``make_all`` produced."""

    built: dict[str, list[Path]] = dataclasses.field(default_factory=dict)
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    problems: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def _index(report: Report, runs: Path, out: Path, captions: dict[str, str], n_runs: int) -> str:
    command = f"python -m paper_figures.make_all --runs {runs} --out {out}"
    lines = ["# Paper figures and tables", "", f"Built by `{command}` from {n_runs} runs in {report.seconds:.1f} s.", "", "## Built", ""]  # fmt: skip
    for name, paths in report.built.items():
        files = ", ".join(f"`{p.relative_to(out) if p.is_relative_to(out) else p}`" for p in paths)
        lines += [f"- **{name}**: {files}"] + ([f"  {captions[name]}"] if captions[name] else [])
    lines += ["", "## Not built", ""]
    lines += [f"- **{s}** skipped: {reason}" for s, reason in report.skipped.items()]
    lines += [f"- **{s}** FAILED: {reason.splitlines()[-1]}" for s, reason in report.failed.items()]
    if not report.skipped and not report.failed:
        lines.append("(everything was built)")
    lines += ["", "## Warnings while loading (numbers read as NaN)", ""]
    lines += [f"- {p}" for p in report.problems] or ["(none)"]
    return "\n".join(lines) + "\n"


def make_all(
    runs: str | Path, out: str | Path, *, only: Sequence[str] | None = None, strict: bool = False
) -> Report:
    """Build every artefact (or those named in ``only``) from the runs under ``runs`` into ``out``."""
    runs, out = Path(runs), Path(out)
    unknown = set(only or ()) - set(ARTEFACTS)
    if unknown:
        raise ValueError(f"unknown script(s) {sorted(unknown)}; known: {list(ARTEFACTS)}")
    start = time.perf_counter()
    records = load_runs(runs, strict=strict)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(problems=records.problems)
    captions: dict[str, str] = {}
    for name, artefact in ARTEFACTS.items():
        if only and name not in only:
            continue
        try:
            report.built[name] = artefact.build(records, out)
            captions[name] = artefact.caption_of(records)
        except NoData as err:
            report.skipped[name] = str(err)
        except ImportError as err:
            report.skipped[name] = (
                f"needs {err.name or 'a package'} which is not importable ({err})"
            )
        except Exception:
            report.failed[name] = traceback.format_exc()
    report.seconds = time.perf_counter() - start
    index = _index(report, runs, out, captions, len(records.runs))
    (out / "INDEX.md").write_text(index, encoding="utf-8")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = parser("Rebuild every paper table and figure from run directories.")
    p.add_argument("--only", nargs="+", choices=list(ARTEFACTS), help="build only these scripts")
    args = p.parse_args(argv)
    report = make_all(args.runs, args.out, only=args.only, strict=args.strict)
    for name, paths in report.built.items():
        print(f"built    {name}: " + ", ".join(p.name for p in paths))
    for name, reason in report.skipped.items():
        print(f"skipped  {name}: {reason}")
    for name, trace in report.failed.items():
        print(f"FAILED   {name}:\n{trace}", file=sys.stderr)
    if report.problems:
        print(f"{len(report.problems)} warning(s) while loading; see {Path(args.out) / 'INDEX.md'}")
    print(
        f"{len(report.built)} built, {len(report.skipped)} skipped, {len(report.failed)} failed "
        f"in {report.seconds:.1f} s"
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
