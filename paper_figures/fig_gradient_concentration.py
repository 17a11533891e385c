"""Figure: gradient concentration (ESS/n vs α) — :func:`analysis.figures.gradient_concentration` (caption in analysis.CAPTIONS)."""

from __future__ import annotations

from pathlib import Path

from analysis import Records, gradient_concentration

from ._common import script_main

NAME = "gradient concentration (ESS/n vs α)"


def build(records: Records, out_dir: Path) -> list[Path]:
    return gradient_concentration(records, out_dir)


main = script_main(build, NAME)

if __name__ == "__main__":
    raise SystemExit(main())
