"""``iris demo --quick`` end to end: every method from one warm start, exact distances."""

from __future__ import annotations

import json
import math

from iris.cli import main
from iris.testbed.demo import METHODS, METRICS


def test_quick_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| warm start |" in printed and str(out / "results.md") in printed
    results = json.loads((out / "results.json").read_text())
    assert set(results["runs"]) == set(METHODS)
    warm = results["warm_start"]
    for method, seeds in results["runs"].items():
        rows = seeds["0"]
        assert len(rows) == results["settings"]["iterations"], method
        for row in rows:
            assert all(math.isfinite(row[m]) for m in METRICS), (method, row)
            assert 0.0 <= row["invalid_rate"] <= 1.0 and row["forward_kl"] >= 0.0
    # Continued SFT on the same data moves towards the target from the warm start.
    assert results["runs"]["sft"]["0"][-1]["forward_kl"] < warm["forward_kl"]
    # α as configured: IRIS at α = 2 logs 2; the adaptive schedule stays in [0.5, 2].
    assert all(row["alpha"] == 2.0 for row in results["runs"]["iris-2"]["0"])
    assert all(0.5 <= row["alpha"] <= 2.0 for row in results["runs"]["iris-adaptive"]["0"])
    table = (out / "results.md").read_text()
    assert table.count("| iris-0.5 |") == results["settings"]["iterations"]
    # Re-running finds everything done and reproduces the table exactly.
    assert main(["demo", "--quick", "--output-dir", str(out)]) == 0
    assert (out / "results.md").read_text() == table
