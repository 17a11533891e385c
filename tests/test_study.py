"""``iris study alpha-gap``: the paired intervals, and ``--quick`` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from iris.cli import main
from iris.schedules import adaptive_alpha
from iris.testbed.study import (
    FIXED,
    STUDY_METHODS,
    best_fixed_alpha,
    best_rate,
    best_signal,
    paired_ci,
    signal_agreement,
)


def test_paired_ci_matches_a_hand_computed_t_interval():
    a = np.array([1.1, 1.3, 1.2, 1.4], dtype=np.float64)
    b = np.array([1.0, 1.0, 1.0, 1.0], dtype=np.float64)
    # d = (0.1, 0.3, 0.2, 0.4): mean 0.25, sample sd √(0.05/3), t_{0.975, 3} = 3.182446305284263.
    half = 3.182446305284263 * math.sqrt(0.05 / 3) / 2
    mean, low, high, n = paired_ci(a, b)
    assert n == 4
    assert mean == pytest.approx(0.25, abs=1e-12)
    assert low == pytest.approx(0.25 - half, abs=1e-12)
    assert high == pytest.approx(0.25 + half, abs=1e-12)
    assert half == pytest.approx(0.2054260, abs=1e-6)


def test_paired_ci_pairs_by_seed_and_drops_nan_pairs():
    # A shared per-seed offset cancels: the difference is exactly 1 on every seed.
    offsets = np.array([0.0, 10.0, -5.0])
    mean, low, high, n = paired_ci(offsets + 1.0, offsets)
    assert (mean, n) == (1.0, 3) and low == pytest.approx(1.0) and high == pytest.approx(1.0)
    mean, low, high, n = paired_ci([1.0, math.nan, 3.0], [0.0, 0.0, 0.0])
    assert n == 2 and mean == 2.0 and low < 2.0 < high
    mean, low, high, n = paired_ci([1.0], [0.5])
    assert n == 1 and mean == 0.5 and math.isnan(low) and math.isnan(high)


def test_best_fixed_alpha_is_the_largest_mean_on_the_given_seeds():
    gains = {m: {0: 0.0, 1: 0.0} for m in STUDY_METHODS}
    gains["iris-2"] = {0: 0.5, 1: -0.4}  # best on seed 0 only
    gains["iris-0.5"] = {0: 0.2, 1: 0.2}
    gains["spin"] = {0: 9.0, 1: 9.0}  # not a fixed α
    assert best_fixed_alpha(gains, [0, 1]) == "iris-0.5"
    assert best_fixed_alpha(gains, [0]) == "iris-2"


def test_signal_agreement_maps_each_signal_as_the_schedule_would():
    """One run, three iterations; exact forward KL of θt g = (2, 1, ½). Oracle α (map [½, 2],
    normaliser g_0): (2, 1.25, 0.875). A trained signal s = (1, ½, ¼) is known at the end of
    its iteration: α = (2, map(s0, s0) = 2, map(s1, s0) = 1.25), errors (0, 0.75, 0.375).
    The reference gap r = (−1, −½, −¼) has a non-positive normaliser: α_min throughout,
    errors (1.5, 0.75, 0.375). No margin logged: no error."""
    g, s, r = (2.0, 1.0, 0.5), (1.0, 0.5, 0.25), (-1.0, -0.5, -0.25)
    points = [
        {
            "gap": "a",
            "method": "m",
            "seed": 0,
            "iteration": t,
            "alpha": 1.0,
            "exact_forward_kl": g[t],
            "exact_renyi": g[t],
            "variational_estimate": s[t],
            "reward_margin": math.nan,
            "reference_gap": r[t],
        }
        for t in range(3)
    ]
    rows = {(a["signal"], a["exact"]): a for a in signal_agreement(points)}
    assert rows["variational_estimate", "exact_forward_kl"]["alpha_error"] == pytest.approx(
        (0.0 + 0.75 + 0.375) / 3, abs=1e-15
    )
    assert rows["reference_gap", "exact_forward_kl"]["alpha_error"] == pytest.approx(
        (1.5 + 0.75 + 0.375) / 3, abs=1e-15
    )
    assert math.isnan(rows["reward_margin", "exact_forward_kl"]["alpha_error"])
    assert rows["variational_estimate", "exact_forward_kl"]["spearman"] == pytest.approx(1.0)
    assert rows["reference_gap", "exact_forward_kl"]["spearman"] == pytest.approx(-1.0)
    assert best_signal(list(rows.values())) == "variational_estimate"


def test_best_rate_ranks_a_diverged_run_last():
    start = {"forward_kl": 1.0}
    grid = {
        "1e-4": {0: [{"forward_kl": 0.9}], 1: [{"forward_kl": 0.8}]},  # mean gain 0.15
        "4e-4": {0: [{"forward_kl": 0.5}], 1: [{"forward_kl": math.nan}]},  # diverged once
        "8e-4": {0: [{"forward_kl": 0.95}], 1: [{"forward_kl": 0.95}]},
    }
    assert best_rate(grid, start) == "1e-4"


def test_quick_alpha_gap_study_end_to_end(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["study", "alpha-gap", "--quick", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out / "results.md") in printed
    for name in ("results.json", "results.md", "alpha_gap_heatmap.png", "learning_curves.png"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    gaps = list(results["warm_starts"])
    assert len(gaps) == 3
    # Longer SFT starts closer to the target (exact forward KL).
    kls = [results["warm_starts"][g]["forward_kl"] for g in gaps]
    assert kls[0] > kls[1] > kls[2]
    table = (out / "results.md").read_text()
    for gap in gaps:
        methods = results["settings"]["demo"]["methods"]
        assert set(results["runs"][gap]) == set(methods) and set(methods) <= set(STUDY_METHODS)
        assert results["summary"][gap]["best_alpha"] in FIXED
        for method in methods:
            rows = results["runs"][gap][method]["0"]
            assert len(rows) == results["settings"]["demo"]["iterations"]
            assert all(math.isfinite(r["forward_kl"]) for r in rows)
            # one row per distance (forward KL, reverse KL, TV); the best α in bold
            assert (
                table.count(f"| {gap} | {method} |") + table.count(f"| {gap} | **{method}** |") == 3
            ), (gap, method)
    # The oracle's α follows the exact forward KL of the model entering each iteration.
    for gap in gaps:
        start = results["warm_starts"][gap]["forward_kl"]
        for rows in results["runs"][gap]["iris-oracle"].values():
            assert rows[0]["alpha"] == pytest.approx(2.0)
            assert rows[1]["alpha"] == pytest.approx(
                adaptive_alpha(rows[0]["forward_kl"], start, 0.5, 2.0), abs=1e-6
            )
    # Fair learning rates: every method's best rate is on the grid and its runs are reported.
    fair = results["fair_lr"]
    grid = [f"{lr:g}" for lr in results["settings"]["lr_grid"]]
    for method in results["settings"]["lr_methods"]:
        assert fair["best_lr"][method] in grid
        assert set(fair["best"][method]) == {"0", "1"}
        assert f"| {method} | {fair['best_lr'][method]} |" in table
    assert "## Fair learning rates" in table and "## Gap signals" in table
    assert results["signals"]["best"] in {"variational_estimate", "reward_margin", "reference_gap"}
    assert (out / "gap_signals.png").is_file()
    # Re-running skips every finished run and reproduces the table.
    assert main(["study", "alpha-gap", "--quick", "--output-dir", str(out)]) == 0
    assert (out / "results.md").read_text() == table
