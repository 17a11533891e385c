"""``iris study data-efficiency``: the paired comparison, nested subsets, ``--quick`` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from iris.cli import main
from iris.data import load_annotated
from iris.testbed.demo import DemoSettings
from iris.testbed.efficiency import (
    REPORTED,
    SELFPLAY_METHODS,
    EfficiencySettings,
    nested_subsets,
    run_data_efficiency,
    versus_sft,
)
from iris.testbed.study import paired_ci
from iris.testbed.task import write_annotated

T_975_1 = 12.706204736174707  # t_{0.975} with 1 and 2 degrees of freedom
T_975_2 = 4.302652729749464


def test_versus_sft_is_a_seed_paired_t_interval():
    # size → seed → forward KL; the seeds are listed in different orders on purpose.
    sft = {
        64: {0: 0.9, 1: 0.8, 2: 1.0},
        128: {2: 1.4, 0: 1.5, 1: 1.2},
    }
    method = {
        32: {1: 1.0, 2: 1.0, 0: 1.2},
        64: {0: 0.5, 1: 0.6, 3: 9.9},  # seed 3 has no SFT(128) partner: dropped
    }
    rows = versus_sft(sft, method)
    assert [(r["n"], r["k"]) for r in rows] == [(32, 2), (32, 4), (64, 2)]  # k·n ∈ sizes only
    by = {(r["n"], r["k"]): r for r in rows}

    # n=32 vs SFT(64): d = (0.9−1.2, 0.8−1.0, 1.0−1.0) = (−0.3, −0.2, 0): mean −1/6,
    # sample variance ((−2/15)² + (−1/30)² + (1/6)²)/2 = 7/300.
    row = by[(32, 2)]
    half = T_975_2 * math.sqrt(7 / 300) / math.sqrt(3)
    assert row["pairs"] == 3
    assert row["mean"] == pytest.approx(-1 / 6, abs=1e-12)
    assert row["low"] == pytest.approx(-1 / 6 - half, abs=1e-12)
    assert row["high"] == pytest.approx(-1 / 6 + half, abs=1e-12)
    assert not row["excludes_zero"]

    # n=32 vs SFT(128): d = (1.5−1.2, 1.2−1.0, 1.4−1.0) = (0.3, 0.2, 0.4): mean 0.3, sd 0.1.
    row = by[(32, 4)]
    half = T_975_2 * 0.1 / math.sqrt(3)
    assert half == pytest.approx(0.2484138, abs=1e-7)
    assert row["mean"] == pytest.approx(0.3, abs=1e-12)
    assert row["low"] == pytest.approx(0.3 - half, abs=1e-12)
    assert row["high"] == pytest.approx(0.3 + half, abs=1e-12)
    assert row["excludes_zero"]  # 0.0516 > 0: self-play on 32 beats SFT on 128

    # n=64 vs SFT(128) over the shared seeds 0, 1: d = (1.0, 0.6): mean 0.8, sd 0.2·√2.
    row = by[(64, 2)]
    half = T_975_1 * 0.2 * math.sqrt(2) / math.sqrt(2)
    assert row["pairs"] == 2
    assert row["mean"] == pytest.approx(0.8, abs=1e-12)
    assert row["low"] == pytest.approx(0.8 - half, abs=1e-11)
    assert row["high"] == pytest.approx(0.8 + half, abs=1e-11)
    assert not row["excludes_zero"]

    # Pairing by position instead of by seed would give d = (0.4, 0.5, 0.0): another interval.
    by_position = paired_ci(np.array([1.4, 1.5, 1.2]), np.array([1.0, 1.0, 1.2]))
    assert by_position[1] != pytest.approx(by[(32, 4)]["low"], abs=1e-3)


def test_subsets_are_nested_seeded_and_read_whole(tmp_path):
    target = DemoSettings().target.build()
    pool = write_annotated(target, 200, tmp_path / "pool.jsonl", seed=1)
    rows = pool.read_text().splitlines()
    sizes = (16, 50, 100, 200)
    subsets = {s: nested_subsets(pool, sizes, s, tmp_path / f"seed{s}") for s in (0, 1)}
    for paths in subsets.values():
        assert sorted(paths) == list(sizes)
        previous: list[str] = []
        for n in sizes:
            lines = paths[n].read_text().splitlines()
            assert len(lines) == n
            assert lines[: len(previous)] == previous  # nested: a prefix of the next size
            previous = lines
            # a run reads exactly these n rows (repeated prompts stay distinct)
            assert len(load_annotated(paths[n], repeated_prompts=True).records) == n
        assert sorted(previous) == sorted(rows)  # the largest subset: the whole pool, permuted
    first = [subsets[s][16].read_text() for s in (0, 1)]
    assert first[0] != first[1]  # another seed, another permutation
    again = nested_subsets(pool, sizes, 0, tmp_path / "again")
    assert all(again[n].read_bytes() == subsets[0][n].read_bytes() for n in sizes)
    with pytest.raises(ValueError, match="largest subset"):
        nested_subsets(pool, (400,), 0, tmp_path / "too_many")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_quick_data_efficiency_study_end_to_end(tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["study", "data-efficiency", "--quick", "--output-dir", str(out)]
    assert main(argv) == 0
    assert str(out / "results.md") in capsys.readouterr().out
    for name in ("results.json", "results.md", "data_efficiency.png", "settings.json"):
        assert (out / name).is_file(), name
    settings = EfficiencySettings.quick()
    results = json.loads((out / "results.json").read_text())
    table = results["summary"]["table"]
    seeds = [str(s) for s in settings.seed_list]
    for n in map(str, settings.sizes):
        for s in seeds:
            sft = results["sft"][n][s]
            assert 1 <= sft["best_epoch"] <= sft["epochs_trained"] <= settings.max_epochs
            assert sft["n"] == int(n)
            for method in SELFPLAY_METHODS:
                assert len(results["runs"][n][method][s]) == settings.demo.iterations
        for method in REPORTED:
            for metric in ("forward_kl", "reverse_kl", "total_variation"):
                cell = table[method][n][metric]
                assert _finite(cell["mean"]) and _finite(cell["std"]), (method, n, metric)
    for method in SELFPLAY_METHODS:
        rows = results["summary"]["versus_sft"][method]
        # (32, 64, 128, 256): n=32 against 2n, 4n, 8n; 64 against 2n, 4n; 128 against 2n
        assert [(r["n"], r["k"]) for r in rows] == [
            (32, 2), (32, 4), (32, 8), (64, 2), (64, 4), (128, 2)
        ]  # fmt: skip
        assert all(_finite(r[k]) for r in rows for k in ("mean", "low", "high"))
    text = (out / "results.md").read_text()
    for n in settings.sizes:
        for method in REPORTED:
            assert text.count(f"| {n} | {method} |") == 1, (n, method)
    for line in text.split("**Does self-play")[0].splitlines():
        if line.startswith(tuple(f"| {n} |" for n in settings.sizes)):
            assert "—" not in line.split("|")[3:6], line  # the distances all filled

    # A re-run skips every finished SFT model and self-play run and reproduces the table.
    done = [*out.glob("sft/*/*/sft.json"), *out.glob("runs/*/*/*/iter_*/eval/*.summary.json")]
    assert len(done) == len(settings.sizes) * len(seeds) * (1 + 2 * settings.demo.iterations)
    stamps = {path: path.stat().st_mtime_ns for path in done}
    assert main(argv) == 0
    assert (out / "results.md").read_text() == text
    assert {path: path.stat().st_mtime_ns for path in done} == stamps
    # Other settings in the same directory are refused.
    with pytest.raises(ValueError, match="other settings"):
        run_data_efficiency(out, EfficiencySettings(sizes=(32, 64)), log=lambda *_: None)
