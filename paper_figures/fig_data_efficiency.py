"""Figure: data efficiency — :func:`analysis.figures.data_efficiency` (caption in analysis.CAPTIONS)."""

from __future__ import annotations

from pathlib import Path

from analysis import CAPTIONS, Records, data_efficiency
from analysis.figures import data_efficiency_score

from ._common import script_main

NAME = "data efficiency"


def build(records: Records, out_dir: Path) -> list[Path]:
    return data_efficiency(records, out_dir)


def caption(records: Records) -> str:
    _, _, _, score, higher_is_better = data_efficiency_score(records)
    better = "higher" if higher_is_better else "lower"
    return CAPTIONS["data_efficiency"].format(
        score=f"{score} ({better} is better)", iteration="each run's last evaluated iteration"
    )


main = script_main(build, NAME)

if __name__ == "__main__":
    raise SystemExit(main())
