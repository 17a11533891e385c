"""Figure: training curves — :func:`analysis.figures.training_curves` (caption in analysis.CAPTIONS)."""

from __future__ import annotations

from pathlib import Path

from analysis import Records, training_curves

from ._common import script_main

NAME = "training curves"


def build(records: Records, out_dir: Path) -> list[Path]:
    return training_curves(records, out_dir)


main = script_main(build, NAME)

if __name__ == "__main__":
    raise SystemExit(main())
