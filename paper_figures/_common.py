"""What every paper_figures script shares: the command line and the build protocol.

A script is a module with ``NAME`` (a short title), ``build(records, out_dir) -> list of
written paths`` (raising :class:`analysis.NoData` when the records cannot make it) and
``main = script_main(build, NAME)``, so that each one runs alone::

    python -m paper_figures.fig_training_curves --runs runs/ --out figures/
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from analysis import NoData, Records, load_runs

Build = Callable[[Records, Path], list[Path]]


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--runs", required=True, type=Path, help="folder searched (recursively) for run directories"
    )
    p.add_argument(
        "--out", required=True, type=Path, help="folder the figures and tables are written to"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="a missing number is an error instead of NaN + warning",
    )
    return p


def script_main(build: Build, name: str) -> Callable[[Sequence[str] | None], int]:
    """A ``main(argv)`` that loads the runs, builds one artefact and prints what it wrote."""

    def main(argv: Sequence[str] | None = None) -> int:
        args = parser(f"Build {name} from run directories.").parse_args(argv)
        start = time.perf_counter()
        records = load_runs(args.runs, strict=args.strict)
        try:
            paths = build(records, args.out)
        except NoData as err:
            print(f"skipped {name}: {err}", file=sys.stderr)
            return 2
        for path in paths:
            print(path)
        print(f"{name}: {len(paths)} files in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        return 0

    return main
