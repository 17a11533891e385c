"""The ``iris`` console script: one sub-command per job, each a thin call into the library."""

from __future__ import annotations

import argparse
import sys
import time


def _check(args: argparse.Namespace) -> int:
    """Verify the installation end to end: the loss library against its 50-digit reference."""
    from iris.accuracy import accuracy_rows, format_table

    start = time.perf_counter()
    rows = accuracy_rows(n=args.samples)
    print("Loss library vs 50-digit mpmath reference (inputs rounded to each dtype first):\n")
    print(format_table(rows))
    worst = {row.function: max(r.worst_error for r in rows if r.function == row.function and r.dtype != "float64")
             for row in rows}
    limit = 1e-5
    failed = [name for name, err in worst.items() if err > limit]
    verdict = "FAIL" if failed else "PASS"
    print(f"\nfloat32/bfloat16 worst relative error ≤ {limit:g}: {verdict}"
          f" ({time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iris", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help=_check.__doc__)
    check.add_argument("--samples", type=int, default=16, help="samples per loss vector")
    check.set_defaults(run=_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
