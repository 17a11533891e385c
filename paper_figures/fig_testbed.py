"""Figure: testbed distance to the target — :func:`analysis.figures.testbed_distance` (caption in analysis.CAPTIONS)."""

from __future__ import annotations

from pathlib import Path

from analysis import Records, testbed_distance

from ._common import script_main

NAME = "testbed distance to the target"


def build(records: Records, out_dir: Path) -> list[Path]:
    return testbed_distance(records, out_dir)


main = script_main(build, NAME)

if __name__ == "__main__":
    raise SystemExit(main())
