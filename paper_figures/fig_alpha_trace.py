"""Figure: adaptive α trace — :func:`analysis.figures.alpha_trace` (caption in analysis.CAPTIONS)."""

from __future__ import annotations

from pathlib import Path

from analysis import Records, alpha_trace

from ._common import script_main

NAME = "adaptive α trace"


def build(records: Records, out_dir: Path) -> list[Path]:
    return alpha_trace(records, out_dir)


main = script_main(build, NAME)

if __name__ == "__main__":
    raise SystemExit(main())
