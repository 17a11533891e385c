"""Table: this project's suite averages next to the published ones (analysis/reference_numbers.yaml).

Writes ``table_reference_<suite>.md`` / ``.tex`` for every suite that has both published
numbers and runs of a model the reference file lists.
"""

from __future__ import annotations

from pathlib import Path

from analysis import NoData, Records, load_reference, reference_table

from ._common import script_main

NAME = "comparison with published numbers"


def build(records: Records, out_dir: Path) -> list[Path]:
    reference = load_reference()
    paths: list[Path] = []
    reasons: list[str] = []
    for suite in reference.suites:
        try:
            table = reference_table(records, reference, suite=suite)
        except NoData as err:
            reasons.append(str(err))
            continue
        paths += table.write(out_dir, f"table_reference_{suite}")
    if not paths:
        raise NoData("; ".join(reasons))
    return paths


main = script_main(build, NAME)

if __name__ == "__main__":
    raise SystemExit(main())
