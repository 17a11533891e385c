"""analysis figures and paper_figures.make_all on the golden runs; analysis never imports torch."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import analysis
from analysis import MissingValueWarning, NoData, WeightProfiles, load_runs
from paper_figures import make_all as make_all_module
from paper_figures.weight_profiles import compute_weight_profiles

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "data" / "runs"
FIGURES = [
    "gradient_concentration",
    "alpha_trace",
    "training_curves",
    "testbed_distance",
    "data_efficiency",
]
TABLES = ["table_iris10", "table_reference_iris10", "table_testbed"]


def assert_figure_files(paths: list[Path]) -> None:
    suffixes = sorted(p.suffix for p in paths)
    assert suffixes == [".pdf", ".png"]
    for path in paths:
        data = path.read_bytes()
        assert len(data) > 2000, path
        assert data.startswith(b"%PDF" if path.suffix == ".pdf" else b"\x89PNG"), path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """make_all on the golden runs (once for the module), with its wall time."""
    out = tmp_path_factory.mktemp("figures")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        report = make_all_module.make_all(GOLDEN, out)
    return report, out, time.perf_counter() - start


def test_make_all_builds_everything_from_the_golden_runs(built):
    report, out, seconds = built
    assert report.ok, report.failed
    assert report.skipped == {}
    assert list(report.built) == list(make_all_module.SCRIPTS)
    assert seconds < 60
    for name in [*FIGURES, "weight_profiles"]:
        assert_figure_files([out / f"{name}.pdf", out / f"{name}.png"])
    # Each figure function returned exactly the files it wrote.
    for script, name in make_all_module.SCRIPTS.items():
        if name is not None and name != "weight_profiles":
            assert sorted(report.built[script]) == [out / f"{name}.pdf", out / f"{name}.png"]
    for name in TABLES:
        assert (out / f"{name}.md").read_text().startswith("**")
        assert (out / f"{name}.tex").read_text().count(r"\begin{tabular}") == 1
    index = (out / "INDEX.md").read_text()
    assert "## Built" in index and "(everything was built)" in index
    # The loading warnings (missing numbers read as NaN) are listed, naming the files.
    assert "space_missing/seed0/iter_1/eval/iris10.summary.json" in index
    assert "Gradient concentration of IRIS" in index  # captions are in the index


def test_golden_tables_written_by_make_all_match_the_table_functions(built):
    from analysis import benchmark_table

    _, out, _ = built
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingValueWarning)
        records = load_runs(GOLDEN)
    assert (out / "table_iris10.md").read_text() == benchmark_table(records, "iris10").to_markdown()


def test_make_all_reports_what_it_cannot_build(tmp_path):
    """Only SPIN runs: no adaptive-α run, no logged ESS, one n — skipped with reasons."""
    runs = tmp_path / "runs"
    for seed in (0, 1):
        shutil.copytree(GOLDEN / f"zephyr/spin/seed{seed}", runs / f"spin{seed}")
    only = [
        "table_benchmarks",
        "fig_gradient_concentration",
        "fig_alpha_trace",
        "fig_data_efficiency",
        "fig_testbed",
    ]
    report = make_all_module.make_all(runs, tmp_path / "out", only=only)
    assert report.ok
    assert set(report.skipped) == {
        "fig_gradient_concentration",
        "fig_alpha_trace",
        "fig_data_efficiency",
    }
    assert "no adaptive-α run found" in report.skipped["fig_alpha_trace"]
    assert "rewards/<side>_std" in report.skipped["fig_gradient_concentration"]
    assert "two or more numbers of annotated samples" in report.skipped["fig_data_efficiency"]
    assert set(report.built) == {"table_benchmarks", "fig_testbed"}
    index = (tmp_path / "out" / "INDEX.md").read_text()
    assert "**fig_alpha_trace** skipped: no adaptive-α run found" in index


def test_make_all_command_line(tmp_path, capsys):
    status = make_all_module.main(
        [
            "--runs",
            str(GOLDEN / "zephyr/spin"),
            "--out",
            str(tmp_path),
            "--only",
            "table_benchmarks",
            "fig_alpha_trace",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "built    table_benchmarks: table_iris10.md, table_iris10.tex" in printed
    assert "skipped  fig_alpha_trace: no adaptive-α run found" in printed
    assert "1 built, 1 skipped, 0 failed" in printed


def test_a_single_script_runs_alone(tmp_path, capsys):
    from paper_figures import fig_testbed

    assert fig_testbed.main(["--runs", str(GOLDEN / "zephyr/spin"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "testbed_distance.png").stat().st_size > 0
    from paper_figures import fig_alpha_trace

    assert (
        fig_alpha_trace.main(["--runs", str(GOLDEN / "zephyr/spin"), "--out", str(tmp_path)]) == 2
    )
    assert "skipped adaptive α trace: no adaptive-α run found" in capsys.readouterr().err


def test_figure_functions_raise_no_data_on_records_without_what_they_need(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(GOLDEN / "zephyr/sft_50k", runs / "sft")
    records = load_runs(runs)
    for function in (
        analysis.gradient_concentration,
        analysis.alpha_trace,
        analysis.testbed_distance,
        analysis.data_efficiency,
    ):
        with pytest.raises(NoData):
            function(records, tmp_path)
    assert not list(tmp_path.glob("*.png"))


def test_weight_profiles_follow_the_weight_contract(tmp_path):
    """IRIS: one sample with reward r among B − 1 zeros has weight e^{τr}/(e^{τr} + B − 1),
    so B·w = B e^{τr}/(e^{τr} + B − 1), τ = α − 1 (annotated) or α (synthetic).
    SPIN with the partner's reward 0: σ(∓r)/σ(0) = 2σ(∓r). Every profile is 1 at r = 0."""
    rewards = np.array([-2.0, -0.5, 0.0, 1.0, 2.5])
    batch = 16
    profiles = compute_weight_profiles(rewards, batch_size=batch, alphas=(0.5, 2.0))
    curves = {(c.label, c.side): c.weights for c in profiles.curves}
    assert {label for label, _ in curves} == {
        "SPIN",
        "SPACE μ=1",
        "SPIF c=2",
        "IRIS α=0.5",
        "IRIS α=2",
    }
    for alpha in (0.5, 2.0):
        for side, tau in (("real", alpha - 1), ("generated", alpha)):
            e = np.exp(tau * rewards)
            expected = batch * e / (e + batch - 1)
            np.testing.assert_allclose(curves[(f"IRIS α={alpha:g}", side)], expected, rtol=1e-12)
    sigmoid = 1 / (1 + np.exp(-rewards))
    np.testing.assert_allclose(curves[("SPIN", "real")], 2 * (1 - sigmoid), rtol=1e-12)
    np.testing.assert_allclose(curves[("SPIN", "generated")], 2 * sigmoid, rtol=1e-12)
    np.testing.assert_allclose(curves[("SPACE μ=1", "real")], curves[("SPIN", "real")], rtol=1e-12)
    for weights in curves.values():
        assert weights[2] == pytest.approx(1.0)
    # SPIF: 2 e^{r̃} sech²(r/c) / B with r̃ = c tanh(r/c), relative to its value 2/B at r = 0.
    c = 2.0
    spif = np.exp(c * np.tanh(rewards / c)) * (1 - np.tanh(rewards / c) ** 2)
    np.testing.assert_allclose(curves[("SPIF c=2", "real")], spif, rtol=1e-12)
    # The data round-trip through JSON and plot without torch objects.
    again = WeightProfiles.from_json(json.loads(json.dumps(profiles.to_json())))
    assert_figure_files(analysis.weight_profiles(again, tmp_path))


def test_analysis_never_imports_torch_or_transformers(tmp_path):
    """Load, tabulate and plot everything analysis can in a fresh interpreter, then look at sys.modules."""
    profile = {
        "rewards": [-1.0, 0.0, 1.0],
        "batch_size": 4,
        "curves": [
            {
                "label": "IRIS α=2",
                "loss": "iris",
                "side": side,
                "alpha": 2.0,
                "weights": [0.5, 1.0, 2.0],
            }
            for side in ("real", "generated")
        ],
    }
    (tmp_path / "profile.json").write_text(json.dumps(profile))
    script = textwrap.dedent(
        f"""
        import json, sys, warnings
        warnings.simplefilter("ignore")
        import analysis
        from analysis import concentration, figures, plotting, records, reference, tables
        out = {str(tmp_path)!r}
        r = analysis.load_runs({str(GOLDEN)!r})
        analysis.benchmark_table(r, "iris10").write(out, "t")
        analysis.reference_table(r).write(out, "ref")
        for f in (analysis.gradient_concentration, analysis.alpha_trace, analysis.data_efficiency):
            f(r, out, formats=("png",))
        profile = json.loads(open({str(tmp_path / "profile.json")!r}).read())
        analysis.weight_profiles(analysis.WeightProfiles.from_json(profile), out, formats=("png",))
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "trl"))
        print(json.dumps(heavy))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert (tmp_path / "gradient_concentration.png").stat().st_size > 0


def test_nan_never_becomes_zero_in_figure_data(tmp_path):
    """The SPACE run's missing margin is a gap (NaN) in its training curve, not a 0."""
    from analysis.figures import training_points

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingValueWarning)
        records = load_runs(GOLDEN)
    points = training_points(records, ["rewards/margin"])
    curve = (
        points[(points.series == "SPACE") & (points.iteration == 1)].groupby("x").value.agg(list)
    )
    assert math.isnan(curve[round(1 + 2 / 3, 6)][0])
    assert curve[round(1 + 3 / 3, 6)] == [0.21]
