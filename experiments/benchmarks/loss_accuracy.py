"""Print the accuracy table of iris.losses against the 50-digit reference (Markdown).

    python experiments/benchmarks/loss_accuracy.py [--samples 16]
"""

import argparse

from iris.accuracy import accuracy_rows, format_table

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=16)
    print(format_table(accuracy_rows(parser.parse_args().samples)))
