"""Rebuild every table and figure from run directories, and list what could not be built.

    python -m paper_figures.make_all --runs RUNS_DIR --out OUT_DIR [--only NAME ...] [--strict]

Loads the runs once (:func:`analysis.load_runs`), then calls every script's ``build``.
A script whose data are absent is *skipped* with the reason (e.g. "no adaptive-α run
found"); one that needs a package that is not installed (the weighting profiles need
torch) is skipped naming it; one that raises anything else has *failed* (traceback
printed, exit status 1). ``OUT_DIR/INDEX.md`` lists every artefact with its caption,
the skipped ones with their reasons, and every warning given while loading (missing
numbers read as NaN).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from analysis import CAPTIONS, NoData, Records, load_runs

from ._common import parser

# script module → the caption key in analysis.CAPTIONS (None: a table, captioned in its file)
SCRIPTS: dict[str, str | None] = {
    "table_benchmarks": None,
    "table_reference": None,
    "table_testbed": None,
    "fig_gradient_concentration": "gradient_concentration",
    "fig_weight_profiles": "weight_profiles",
    "fig_alpha_trace": "alpha_trace",
    "fig_training_curves": "training_curves",
    "fig_testbed": "testbed_distance",
    "fig_data_efficiency": "data_efficiency",
}


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


def _caption(script: str, module, records: Records) -> str:
    key = SCRIPTS[script]
    if key is None:
        return ""
    if hasattr(module, "caption"):
        return module.caption(records)
    return CAPTIONS[key]


def _index(
    report: Report, runs: Path, out: Path, captions: dict[str, str], records: Records
) -> str:
    lines = [
        "# Paper figures and tables",
        "",
        f"Built by `python -m paper_figures.make_all --runs {runs} --out {out}` "
        f"from {len(records.runs)} runs in {report.seconds:.1f} s.",
        "",
        "## Built",
        "",
    ]
    for script, paths in report.built.items():
        files = ", ".join(f"`{p.relative_to(out) if p.is_relative_to(out) else p}`" for p in paths)
        lines.append(f"- **{script}**: {files}")
        if captions.get(script):
            lines.append(f"  {captions[script]}")
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
    unknown = set(only or ()) - set(SCRIPTS)
    if unknown:
        raise ValueError(f"unknown script(s) {sorted(unknown)}; known: {list(SCRIPTS)}")
    start = time.perf_counter()
    records = load_runs(runs, strict=strict)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(problems=records.problems)
    captions: dict[str, str] = {}
    for script in SCRIPTS:
        if only and script not in only:
            continue
        try:
            module = importlib.import_module(f"paper_figures.{script}")
            report.built[script] = module.build(records, out)
            captions[script] = _caption(script, module, records)
        except NoData as err:
            report.skipped[script] = str(err)
        except ImportError as err:
            report.skipped[script] = (
                f"needs {err.name or 'a package'} which is not importable ({err})"
            )
        except Exception:
            report.failed[script] = traceback.format_exc()
    report.seconds = time.perf_counter() - start
    (out / "INDEX.md").write_text(_index(report, runs, out, captions, records), encoding="utf-8")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = parser("Rebuild every paper table and figure from run directories.")
    p.add_argument("--only", nargs="+", choices=list(SCRIPTS), help="build only these scripts")
    args = p.parse_args(argv)
    report = make_all(args.runs, args.out, only=args.only, strict=args.strict)
    for script, paths in report.built.items():
        print(f"built    {script}: " + ", ".join(p.name for p in paths))
    for script, reason in report.skipped.items():
        print(f"skipped  {script}: {reason}")
    for script, trace in report.failed.items():
        print(f"FAILED   {script}:\n{trace}", file=sys.stderr)
    if report.problems:
        print(f"{len(report.problems)} warning(s) while loading; see {Path(args.out) / 'INDEX.md'}")
    print(
        f"{len(report.built)} built, {len(report.skipped)} skipped, {len(report.failed)} failed "
        f"in {report.seconds:.1f} s"
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
