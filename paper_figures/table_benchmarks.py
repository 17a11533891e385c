"""Table: per-benchmark scores, rows method × iteration, one table per lm-eval suite found.

Writes ``table_<suite>.md`` and ``table_<suite>.tex`` (iris10: the ten benchmarks, their
average and its change from the previous iteration; openllm_v1 likewise), in percent,
mean ± std over seeds.
"""

from __future__ import annotations

from pathlib import Path

from analysis import NoData, Records, benchmark_table

from ._common import script_main

NAME = "benchmark tables (lm-eval suites)"
NON_BENCHMARK_SUITES = {"testbed"}


def build(records: Records, out_dir: Path) -> list[Path]:
    suites = [s for s in records.suites if s not in NON_BENCHMARK_SUITES]
    if not suites:
        raise NoData("no lm-eval suite summaries (iter_<t>/eval/<suite>.summary.json) found")
    paths: list[Path] = []
    for suite in suites:
        paths += benchmark_table(records, suite).write(out_dir, f"table_{suite}")
    return paths


main = script_main(build, NAME)

if __name__ == "__main__":
    raise SystemExit(main())
