"""analysis: loading run directories, the paper's tables, the reference numbers, ESS theory.

The golden runs under ``tests/data/runs/zephyr`` are hand-made JSON (see its README.md):
SPIN and IRIS α=2 with two seeds and two iterations each, IRIS with the adaptive
schedule, a SPACE run with missing numbers, IRIS α=2 on 26k samples and SFT on 50k and
100k. Their iris10 scores are a base vector plus a per-run offset, so every cell below
can be checked by hand: SPIN seed s, iteration t scores base + 0.01 s + 0.01 t.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from _records import select

from analysis import (
    MissingValueError,
    MissingValueWarning,
    NoData,
    Records,
    benchmark_table,
    discover_runs,
    ess_fraction_theory,
    load_reference,
    load_runs,
    measured_concentration,
    method_label,
    reference_table,
    seed_stat,
    tilt,
)
from analysis.tables import Stat, Text, format_n, latex_escape

GOLDEN = Path(__file__).parent / "data" / "runs"
SPACE_MISSING = "zephyr/space_missing/seed0"


@pytest.fixture(scope="module")
def records() -> Records:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingValueWarning)
        return load_runs(GOLDEN)


def copy_runs(tmp_path: Path, *names: str) -> Path:
    """A runs root holding copies of the named golden runs (relative to GOLDEN)."""
    for name in names:
        shutil.copytree(GOLDEN / name, tmp_path / "runs" / name)
    return tmp_path / "runs"


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def test_discover_finds_every_golden_run_and_skips_model_folders(tmp_path):
    runs = discover_runs(GOLDEN)
    assert len(runs) == 9
    root = copy_runs(tmp_path, "zephyr/spin/seed0")
    hidden = root / "zephyr/spin/seed0/iter_0/model"
    hidden.mkdir()
    (hidden / "manifest.json").write_text("{}")  # never read: model folders are pruned
    assert discover_runs(root) == [root / "zephyr/spin/seed0"]
    # Outside run directories nothing but hidden folders is pruned: runs under data/ are found.
    shutil.copytree(GOLDEN / "zephyr/spin/seed1", tmp_path / "data" / "spin1")
    assert discover_runs(tmp_path) == [tmp_path / "data" / "spin1", root / "zephyr/spin/seed0"]


def test_run_metadata_comes_from_the_manifest(records):
    info = {run.run: run for run in records.runs.values()}
    assert {r: (i.method, i.seed, i.n_train) for r, i in info.items()} == {
        "zephyr/spin/seed0": ("SPIN", 0, 50000),
        "zephyr/spin/seed1": ("SPIN", 1, 50000),
        "zephyr/iris_a2/seed0": ("IRIS α=2", 0, 50000),
        "zephyr/iris_a2/seed1": ("IRIS α=2", 1, 50000),
        "zephyr/iris_a2_26k/seed0": ("IRIS α=2", 0, 26000),
        "zephyr/iris_adaptive/seed0": ("IRIS adaptive", 0, 50000),
        SPACE_MISSING: ("SPACE", 0, 50000),
        "zephyr/sft_50k/seed0": ("SFT", 0, 50000),
        "zephyr/sft_100k/seed0": ("SFT", 0, 100000),
    }
    adaptive = info["zephyr/iris_adaptive/seed0"]
    assert adaptive.schedule == "adaptive" and math.isnan(adaptive.alpha)
    assert adaptive.schedule_config["alpha_min"] == 0.5
    assert info["zephyr/iris_a2/seed0"].alpha == 2.0
    assert math.isnan(info["zephyr/spin/seed0"].alpha)
    assert {i.model for i in info.values()} == {"alignment-handbook/zephyr-7b-sft-full"}
    assert info["zephyr/spin/seed0"].completed == {"train": (0, 1), "eval": (0, 1)}


def test_method_labels():
    assert method_label("iris", 2.0) == "IRIS α=2"
    assert method_label("iris", 0.5) == "IRIS α=0.5"
    assert method_label("iris", schedule="adaptive") == "IRIS adaptive"
    assert method_label("tspin") == "T-SPIN"
    assert method_label("spif") == "SPIF"
    assert method_label("newloss") == "NEWLOSS"


def test_records_are_tidy_and_exact(records):
    assert records.methods() == ["SFT", "SPIN", "SPACE", "IRIS α=2", "IRIS adaptive"]
    evals = select(records, stage="eval", suite="iris10", run="zephyr/spin/seed1", iteration=1)
    assert len(evals) == 11  # ten benchmarks and the average
    by_metric = {r.metric: r.value for r in evals}
    assert by_metric["gsm8k/exact_match"] == pytest.approx(0.32)
    assert by_metric["average"] == pytest.approx(0.45)
    # Training metrics: one record per logged step and key; the closing row is its own stage.
    alpha = select(records, stage="train", run="zephyr/iris_adaptive/seed0", metric="alpha")
    assert [(r.iteration, r.step, r.value) for r in alpha] == [
        (0, 1, 2.0),
        (0, 2, 2.0),
        (0, 3, 1.7),
        (1, 1, 1.4),
        (1, 2, 1.1),
        (1, 3, 0.9),
    ]
    closing = select(
        records, stage="train_summary", run="zephyr/spin/seed0", metric="train_runtime"
    )
    assert [r.step for r in closing] == [3, 3]
    record = alpha[0]
    assert (record.model, record.loss, record.schedule, record.seed, record.n_train) == (
        "alignment-handbook/zephyr-7b-sft-full",
        "iris",
        "adaptive",
        0,
        50000,
    )
    # Testbed summaries: flat keys as written.
    kl = select(records, suite="testbed", metric="testbed/forward_kl", run="zephyr/spin/seed1")
    assert [r.value for r in kl] == [0.54, 0.42]


def test_missing_numbers_are_nan_with_a_warning_never_zero(tmp_path):
    root = copy_runs(tmp_path, SPACE_MISSING)
    with pytest.warns(MissingValueWarning) as caught:
        records = load_runs(root)
    messages = [str(w.message) for w in caught]
    assert any("iris10.summary.json" in m and "leaderboard_gpqa/acc_norm" in m for m in messages)
    assert any("metrics.jsonl" in m and "rewards/margin (1 of 3 steps)" in m for m in messages)
    assert len(records.problems) == 2
    gpqa = select(
        records, iteration=1, suite="iris10", metric={"leaderboard_gpqa/acc_norm", "average"}
    )
    assert len(gpqa) == 2 and all(math.isnan(r.value) for r in gpqa)
    margin = select(records, iteration=1, stage="train", metric="rewards/margin")
    assert [r.step for r in margin if math.isnan(r.value)] == [2]
    assert not any(r.value == 0 for r in gpqa)
    with pytest.raises(MissingValueError, match=r"leaderboard_gpqa|rewards/margin"):
        load_runs(root, strict=True)


def test_testbed_nans_by_design_are_not_reported_missing(tmp_path):
    """The testbed writes a NaN average (a distance suite has none): no record, no warning.
    A sampled (not exact) testbed evaluation has NaN for all but the forward KL: NaN
    records, no warning. A NaN forward KL is still missing."""
    root = copy_runs(tmp_path, "zephyr/spin/seed0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = load_runs(root)
    assert not select(records, suite="testbed", metric="average")
    path = root / "zephyr/spin/seed0/iter_0/eval/testbed.summary.json"
    summary = json.loads(path.read_text())
    summary["exact"] = False
    summary["flat"]["testbed/reverse_kl"] = math.nan
    path.write_text(json.dumps(summary))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = load_runs(root)
    (reverse,) = select(records, iteration=0, metric="testbed/reverse_kl")
    assert math.isnan(reverse.value)
    summary["flat"]["testbed/forward_kl"] = None
    path.write_text(json.dumps(summary))
    with pytest.warns(MissingValueWarning, match="testbed/forward_kl"):
        load_runs(root)


def test_a_key_absent_from_a_summary_is_nan(tmp_path):
    root = copy_runs(tmp_path, "zephyr/spin/seed0")
    path = root / "zephyr/spin/seed0/iter_0/eval/iris10.summary.json"
    summary = json.loads(path.read_text())
    del summary["flat"]["mmlu/acc"]  # the task is still listed under "tasks"
    path.write_text(json.dumps(summary))
    with pytest.warns(MissingValueWarning, match=r"mmlu/acc \(absent\)"):
        records = load_runs(root)
    (mmlu,) = select(records, iteration=0, metric="mmlu/acc")
    assert math.isnan(mmlu.value)


def test_truncated_last_line_is_skipped_but_a_bad_middle_line_is_an_error(tmp_path):
    root = copy_runs(tmp_path, "zephyr/spin/seed0")
    metrics = root / "zephyr/spin/seed0/iter_0/metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([*lines[:-1], lines[-1][:20]]))
    with pytest.warns(UserWarning, match="truncated last line"):
        records = load_runs(root)
    assert not select(records, iteration=0, stage="train_summary")
    metrics.write_text("\n".join([lines[0], "{not json", *lines[1:]]))
    with pytest.raises(ValueError, match="line 2: invalid JSON"):
        load_runs(root)


def test_a_folder_whose_manifest_has_no_config_is_skipped(tmp_path):
    root = copy_runs(tmp_path, "zephyr/spin/seed0")
    (root / "notarun").mkdir()
    (root / "notarun" / "manifest.json").write_text('{"name": "something else"}')
    with pytest.warns(UserWarning, match="not a run manifest"):
        records = load_runs(root)
    assert list(records.runs) == ["zephyr/spin/seed0"]


def test_runs_differing_beyond_the_seed_are_not_pooled(tmp_path):
    root = copy_runs(tmp_path, "zephyr/spin/seed0", "zephyr/spin/seed1")
    manifest = root / "zephyr/spin/seed1/manifest.json"
    data = json.loads(manifest.read_text())
    data["config"]["training"]["beta"] = 0.5
    manifest.write_text(json.dumps(data))
    records = load_runs(root)
    assert sorted(r.method for r in records.runs.values()) == [
        "SPIN [training.beta=0.1]",
        "SPIN [training.beta=0.5]",
    ]


def test_figure_series_never_pool_different_sample_sizes(records):
    series = records.series_labels()
    assert series["zephyr/iris_a2/seed1"] == "IRIS α=2 (n=50k)"
    assert series["zephyr/iris_a2_26k/seed0"] == "IRIS α=2 (n=26k)"
    assert series["zephyr/sft_100k/seed0"] == "SFT (n=100k)"
    assert series["zephyr/spin/seed0"] == "SPIN"  # one n: the method label alone
    assert records.series_order()[:3] == ["SFT (n=50k)", "SFT (n=100k)", "SPIN"]


def test_records_filter_semantics(records):
    assert len(select(records, iteration={0, 1}, stage="eval")) == len(
        select(records, stage="eval")
    )
    finite = select(records, stage="eval", value=math.isfinite)
    assert len(finite) == len(select(records, stage="eval")) - 2
    with pytest.raises(TypeError, match="unknown record field"):
        select(records, colour="red")


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------

IRIS10_MARKDOWN = """\
**Suite iris10: per-benchmark scores by method and iteration**

| n | Method | Iter. | Seeds | GSM8K | MATH (hard) | MuSR | MMLU | MMLU-Pro | GPQA | HellaSwag | WinoGrande | BBH | IFEval | Avg. | Δ Avg. |
|:--|:--|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|
| 26k | IRIS α=2 | 0 | 1 | 31.00 | 5.00 | 41.00 | 59.00 | 29.00 | 30.00 | 83.00 | 78.00 | 43.00 | 41.00 | 44.00 |  |
| 26k | IRIS α=2 | 1 | 1 | 33.00 | 7.00 | 43.00 | 61.00 | 31.00 | 32.00 | 85.00 | 80.00 | 45.00 | 43.00 | 46.00 | +2.00 |
| 50k | SFT | 0 | 1 | 31.20 | 5.20 | 41.20 | 59.20 | 29.20 | 30.20 | 83.20 | 78.20 | 43.20 | 41.20 | 44.20 |  |
| 50k | SPIN | 0 | 2 | 30.50 ± 0.71 | 4.50 ± 0.71 | 40.50 ± 0.71 | 58.50 ± 0.71 | 28.50 ± 0.71 | 29.50 ± 0.71 | 82.50 ± 0.71 | 77.50 ± 0.71 | 42.50 ± 0.71 | 40.50 ± 0.71 | 43.50 ± 0.71 |  |
| 50k | SPIN | 1 | 2 | 31.50 ± 0.71 | 5.50 ± 0.71 | 41.50 ± 0.71 | 59.50 ± 0.71 | 29.50 ± 0.71 | 30.50 ± 0.71 | 83.50 ± 0.71 | 78.50 ± 0.71 | 43.50 ± 0.71 | 41.50 ± 0.71 | 44.50 ± 0.71 | +1.00 |
| 50k | SPACE | 0 | 1 | 31.00 | 5.00 | 41.00 | 59.00 | 29.00 | 30.00 | 83.00 | 78.00 | 43.00 | 41.00 | 44.00 |  |
| 50k | SPACE | 1 | 1 | 31.50 | 5.50 | 41.50 | 59.50 | 29.50 | NaN | 83.50 | 78.50 | 43.50 | 41.50 | NaN | NaN |
| 50k | IRIS α=2 | 0 | 2 | 32.50 ± 0.71 | 6.50 ± 0.71 | 42.50 ± 0.71 | 60.50 ± 0.71 | 30.50 ± 0.71 | 31.50 ± 0.71 | 84.50 ± 0.71 | 79.50 ± 0.71 | 44.50 ± 0.71 | 42.50 ± 0.71 | 45.50 ± 0.71 |  |
| 50k | IRIS α=2 | 1 | 2 | 34.50 ± 0.71 | 8.50 ± 0.71 | 44.50 ± 0.71 | 62.50 ± 0.71 | 32.50 ± 0.71 | 33.50 ± 0.71 | 86.50 ± 0.71 | 81.50 ± 0.71 | 46.50 ± 0.71 | 44.50 ± 0.71 | 47.50 ± 0.71 | +2.00 |
| 50k | IRIS adaptive | 0 | 1 | 33.00 | 7.00 | 43.00 | 61.00 | 31.00 | 32.00 | 85.00 | 80.00 | 45.00 | 43.00 | 46.00 |  |
| 50k | IRIS adaptive | 1 | 1 | 35.00 | 9.00 | 45.00 | 63.00 | 33.00 | 34.00 | 87.00 | 82.00 | 47.00 | 45.00 | 48.00 | +2.00 |
| 100k | SFT | 0 | 1 | 32.00 | 6.00 | 42.00 | 60.00 | 30.00 | 31.00 | 84.00 | 79.00 | 44.00 | 42.00 | 45.00 |  |

Mean ± sample standard deviation over seeds (%); NaN: a number missing from a run; Δ: change of the average from the method's previous evaluated iteration; iteration t is the model after self-play iteration t.
"""


def test_iris10_table_markdown_is_the_golden_text(records):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every golden run has every column: nothing to warn about
        table = benchmark_table(records, "iris10")
    assert table.to_markdown() == IRIS10_MARKDOWN


def test_iris10_table_numbers_by_hand(records):
    """SPIN, 50k, iteration 0: GSM8K of seeds 0 and 1 is 0.30 and 0.31 → 30.50 ± 0.7071 %;
    the average is 0.43 + 0.01 s → 43.50 ± 0.71; at iteration 1 it is 44.50, Δ = +1.00."""
    table = benchmark_table(records, "iris10")
    zephyr = "alignment-handbook/zephyr-7b-sft-full"
    gsm8k = table.get((zephyr, 50000, "SPIN", 0), "gsm8k/exact_match")
    assert gsm8k.mean == pytest.approx(30.5) and gsm8k.std == pytest.approx(
        100 * np.std([0.30, 0.31], ddof=1)
    )
    assert gsm8k.n == 2
    delta = table.get((zephyr, 50000, "SPIN", 1), "delta/average")
    assert delta.mean == pytest.approx(1.0) and delta.signed
    assert table.get((zephyr, 50000, "SPIN", 0), "delta/average") == Text("")
    # The run with a missing number: NaN, never 0, and the average and Δ follow.
    for column in ("leaderboard_gpqa/acc_norm", "average", "delta/average"):
        assert math.isnan(table.get((zephyr, 50000, "SPACE", 1), column).mean)
    assert table.get((zephyr, 50000, "SPACE", 1), "gsm8k/exact_match").mean == pytest.approx(31.5)
    assert table.get((zephyr, 50000, "IRIS adaptive", 1), "average").mean == pytest.approx(48.0)
    assert table.header[:4] == ["n", "Method", "Iter.", "Seeds"]


def test_iris10_table_latex(records):
    latex = benchmark_table(records, "iris10").to_latex()
    lines = latex.splitlines()
    assert lines[2] == r"\begin{tabular}{llllrrrrrrrrrrrr}"
    assert lines[4].startswith(r"n & Method & Iter. & Seeds & GSM8K & MATH (hard) & MuSR")
    assert lines[4].endswith(r"Avg. & $\Delta$ Avg. \\")
    assert r"50k & SPIN & 0 & 2 & $30.50 \pm 0.71$ & $4.50 \pm 0.71$" in latex
    assert r"50k & IRIS $\alpha$=2 & 1 & 2 & $34.50 \pm 0.71$" in latex
    assert r"& NaN & $83.50$ & $78.50$ & $43.50$ & $41.50$ & NaN & NaN \\" in latex
    assert latex.count(r"\midrule") == 1 + 6  # after the header, then between the 7 groups
    assert lines[-2:] == [r"\bottomrule", r"\end{tabular}"]


def test_testbed_table(records):
    table = benchmark_table(records, "testbed", delta_of="testbed/forward_kl", digits=3)
    assert table.header == [
        "Method",
        "Iter.",
        "Seeds",
        "KL(p_data ‖ p_θ)",
        "KL(p_θ ‖ p_data)",
        "invalid rate",
        "TV",
        "log p_θ(annotated)",
        "Δ KL(p_data ‖ p_θ)",
    ]
    markdown = table.to_markdown()
    assert (
        "| SPIN | 0 | 2 | 0.520 ± 0.028 | 0.630 ± 0.042 | 0.000 ± 0.000 | 0.310 ± 0.014 |"
        in markdown
    )
    assert "| IRIS adaptive | 1 | 1 | 0.280 | 0.330 | 0.000 | 0.190 | -4.280 | -0.160 |" in markdown
    assert "forward_kl_se" not in " ".join(table.column_keys)


def test_a_seed_without_the_evaluation_makes_the_cell_nan(tmp_path):
    root = copy_runs(tmp_path, "zephyr/spin/seed0", "zephyr/spin/seed1")
    (root / "zephyr/spin/seed1/iter_1/eval/iris10.summary.json").unlink()
    records = load_runs(root)
    with pytest.warns(MissingValueWarning, match="no iris10 evaluation at iteration 1"):
        table = benchmark_table(records, "iris10")
    cell = table.get(("alignment-handbook/zephyr-7b-sft-full", 50000, "SPIN", 1), "average")
    assert math.isnan(cell.mean) and cell.n == 2


def test_no_summaries_of_a_suite_is_no_data(records):
    with pytest.raises(NoData, match="openllm_v1"):
        benchmark_table(records, "openllm_v1")


def test_seed_stat_and_formatting():
    assert seed_stat([0.5]) == Stat(0.5, math.nan, 1)
    stat = seed_stat([1.0, math.nan])
    assert math.isnan(stat.mean) and stat.n == 2
    assert format_n(50000) == "50k" and format_n(200000) == "200k" and format_n(14) == "14"
    assert latex_escape("a_b & 5% — θ") == r"a\_b \& 5\% --- $\theta$"


# --------------------------------------------------------------------------------------
# Reference numbers
# --------------------------------------------------------------------------------------


def test_reference_numbers_are_data_with_sources():
    reference = load_reference()
    assert reference.path.name == "reference_numbers.yaml"
    for source in reference.sources.values():
        assert (
            source.url.startswith("https://arxiv.org/abs/") and source.citation and source.location
        )
    entries = {e.key: e for e in reference.entries}
    # paper-setup.md, "Reference numbers (average over the ten tasks above, %)"
    assert list(entries["zephyr_spin"].values.values()) == [40.07, 39.84, 41.14, 40.92, 40.62]
    assert list(entries["zephyr_tspin"].values.values()) == [39.75, 42.56, 42.79, 43.23, 43.47]
    assert list(entries["mistral_tspin"].values.values()) == [42.71, 43.32, 43.56, 44.90, 45.02]
    assert entries["zephyr_start"].values == {"start": 38.56}
    assert entries["zephyr_sft_200k"].values == {"final": 42.01}
    assert entries["zephyr_sft_200k"].n_train == 200000
    assert entries["iris_abstract"].values == {"unstated": 44.57}
    assert list(entries["zephyr_spin_v1"].values.values()) == [60.80, 62.12, 62.97, 63.16]
    assert {e.source for e in reference.entries} == {"tspin", "spin", "iris"}


def test_reference_file_validation(tmp_path):
    bad = tmp_path / "ref.yaml"
    bad.write_text(
        "sources: {s: {short: s, citation: c, url: u, location: l}}\n"
        "entries: [{key: a, source: nope, suite: x, method: spin, label: A, values: {0: 1}}]\n"
    )
    with pytest.raises(ValueError, match="unknown source 'nope'"):
        load_reference(bad)
    bad.write_text(bad.read_text().replace("nope", "s").replace("{0: 1}", "{0: 1}, colour: red"))
    with pytest.raises(ValueError, match="unknown key"):
        load_reference(bad)


def test_reference_table_side_by_side(records):
    """Ours (SPIN, 50k, iteration 0): 43.50 ± 0.71 against T-SPIN's transcription 40.07."""
    table = reference_table(records)
    ours = table.get(("zephyr_spin", 0, "SPIN"), "ours")
    assert (round(ours.mean, 2), round(ours.std, 2), ours.n) == (43.5, 0.71, 2)
    assert table.get(("zephyr_spin", 0, "SPIN"), "published") == Stat(40.07)
    assert table.get(("zephyr_spin", 1, "SPIN"), "difference").mean == pytest.approx(44.5 - 39.84)
    assert table.get(("zephyr_spin", 2, None), "ours") == Text("—")  # no iteration 2 here
    assert table.get(("zephyr_start", "start", None), "published") == Stat(38.56)
    assert table.get(("zephyr_sft_200k", "final", None), "ours") == Text(
        "—"
    )  # SFT ran on 50k, 100k
    markdown = table.to_markdown()
    assert (
        "| Zephyr-7B + SPIN (50k) | 0 | SPIN | 2 | 40.07 | 43.50 ± 0.71 | +3.43 | T-SPIN, arXiv 2601.08198 |"
        in markdown
    )
    assert "Mistral" not in markdown  # only the models this project ran
    assert "arXiv:2601.08198" in markdown  # the citation is in the notes
    assert r"$40.07$ & $43.50 \pm 0.71$ & $+3.43$" in table.to_latex()


def test_reference_table_matches_final_to_the_last_iteration(tmp_path):
    root = copy_runs(tmp_path, "zephyr/sft_100k/seed0")
    manifest = root / "zephyr/sft_100k/seed0/manifest.json"
    data = json.loads(manifest.read_text())
    data["config"]["data"]["n_train"] = 200000
    manifest.write_text(json.dumps(data))
    table = reference_table(load_runs(root))
    cell = table.get(("zephyr_sft_200k", "final", "SFT"), "ours")
    assert cell.mean == pytest.approx(45.0)
    assert (
        "| Zephyr-7B + SFT on 200k | final (0) | SFT | 1 | 42.01 | 45.00 | +2.99 |"
        in table.to_markdown()
    )


def test_reference_table_without_a_published_model_is_no_data(tmp_path):
    root = copy_runs(tmp_path, "zephyr/spin/seed0")
    manifest = root / "zephyr/spin/seed0/manifest.json"
    data = json.loads(manifest.read_text())
    data["config"]["model"]["name_or_path"] = "/tmp/tiny-model"
    manifest.write_text(json.dumps(data))
    with pytest.raises(NoData, match="no run of a model with published iris10 numbers"):
        reference_table(load_runs(root))


# --------------------------------------------------------------------------------------
# Gradient concentration
# --------------------------------------------------------------------------------------


def test_ess_theory_matches_lognormal_weights():
    """For r ~ N(0, σ²) and w ∝ exp(τ r): ESS/n → (E w)² / E w² = exp(−τ²σ²)."""
    rng = np.random.default_rng(0)
    sigma, n = 0.4, 200_000
    r = rng.normal(0.0, sigma, n)
    for alpha in (0.5, 2.0, 3.0):
        for side in ("real", "generated"):
            tau = float(tilt(alpha, side))
            w = np.exp(tau * r)
            w /= w.sum()
            measured = 1.0 / (n * np.sum(w**2))
            assert measured == pytest.approx(float(ess_fraction_theory(tau, sigma)), abs=5e-3)
    assert float(tilt(1.0, "real")) == 0.0 and float(ess_fraction_theory(0.0, 10.0)) == 1.0


def test_measured_concentration_reads_the_logged_steps(records):
    real = measured_concentration(records, "real")
    generated = measured_concentration(records, "generated")
    # IRIS α=2: 2 seeds × 2 iterations × 3 steps; IRIS adaptive: 2 × 3.
    assert len(real) == len(generated) == 18
    assert set(real.method) == {"IRIS α=2", "IRIS adaptive"}
    assert sorted(set(real.alpha)) == [0.9, 1.1, 1.4, 1.7, 2.0]
    # The golden ESS values are exp(−τ²σ²) minus 0.01 (annotated) / 0.015 (synthetic), rounded.
    assert np.all(real.predicted - real.ess_fraction <= 0.0105)
    assert np.all(generated.predicted - generated.ess_fraction <= 0.0155)
    with pytest.raises(ValueError, match="side must be one of"):
        tilt(1.0, "both")
