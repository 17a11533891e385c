"""Table: testbed distances to the target by method and iteration (``table_testbed.md`` / ``.tex``)."""

from __future__ import annotations

from pathlib import Path

from analysis import Records, benchmark_table

from ._common import script_main

NAME = "testbed table"


# Distances first, then the diagnostics; any other key the summaries hold follows.
ORDER = (
    "testbed/forward_kl",
    "testbed/reverse_kl",
    "testbed/total_variation",
    "testbed/invalid_rate",
    "testbed/real_loglik",
)


def build(records: Records, out_dir: Path) -> list[Path]:
    info = records.suites.get("testbed")
    present = [m for m in (info.metrics if info else []) if not m.endswith("_se")]
    metrics = [m for m in ORDER if m in present] + [m for m in present if m not in ORDER]
    table = benchmark_table(
        records,
        "testbed",
        metrics=metrics or None,
        delta_of="testbed/forward_kl",
        digits=3,
        caption="Testbed: distance of the trained model to the target, by method and iteration",
    )
    return table.write(out_dir, "table_testbed")


main = script_main(build, NAME)

if __name__ == "__main__":
    raise SystemExit(main())
