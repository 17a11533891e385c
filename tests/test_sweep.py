"""experiments/sweep.py: expansion, command lines, validation and skipping finished runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import sweep
from iris.config import ConfigError, SelfPlayConfig, load_config, to_dict
from iris.runs import RunDir

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs"
DATA_EFFICIENCY = CONFIGS / "sweeps" / "data-efficiency.yaml"
LAUNCHER = "accelerate launch --config_file experiments/configs/accelerate/zero3.yaml"


def test_run_names_are_deterministic(tmp_path):
    runs = sweep.expand(DATA_EFFICIENCY, tmp_path)
    names = [r.name for r in runs]
    assert names[:3] == [
        f"data-efficiency/zephyr-7b/iris/n_train={n}" for n in (14000, 26000, 50000)
    ]
    assert names == [r.name for r in sweep.expand(DATA_EFFICIENCY, tmp_path)]
    sft = [r for r in runs if "/sft/" in r.name]
    assert [r.load().data.n_train for r in sft] == [50_000, 100_000, 200_000]
    tspin = runs[3].load()
    assert tspin.iterations == 2 and tspin.per_iteration == {"lam": [0.0, 0.1]}


def test_plain_config_is_one_run(tmp_path):
    (run,) = sweep.expand(CONFIGS / "zephyr-7b" / "spin.yaml", tmp_path)
    assert run.name == "zephyr-7b/spin" and run.output_dir == tmp_path / "zephyr-7b" / "spin"
    (command,) = sweep.commands(run, launcher=LAUNCHER)
    assert command.shell().startswith(LAUNCHER + " -m iris.cli selfplay --config ")


def test_override_values_round_trip():
    for value in (3, 0.5, 5e-7, True, None, "x", [0.0, 0.1], {"lam": [0.0, 0.1]}):
        text = sweep.format_value(value)
        parsed = load_config(
            SelfPlayConfig,
            None,
            {
                "model.name_or_path": "m",
                "data.source": "d",
                "evaluation": json.dumps({"v": value}),
            },
        ).evaluation["v"]
        assert parsed == value, (value, text)
    assert (
        sweep.run_label({"data.n_train": 14000, "training.alpha": 0.5}) == "n_train=14000,alpha=0.5"
    )
    assert sweep.run_label({"a.x": 1, "b.x": 2}) == "a.x=1,b.x=2"


def test_staged_commands(tmp_path):
    runs = sweep.expand(DATA_EFFICIENCY, tmp_path)
    iris_run, sft_run = runs[0], runs[-1]
    staged = sweep.commands(iris_run, launcher=LAUNCHER, staged=True)
    assert [(c.stage, c.iteration) for c in staged] == [
        ("generate", 0),
        ("train", 0),
        ("generate", 1),
        ("train", 1),
        (None, None),
    ]
    assert staged[0].argv[:4] == ("python", "-m", "iris.cli", "generate")  # one process
    assert staged[1].shell().startswith(LAUNCHER + " -m iris.cli train")
    assert "--iteration" in staged[1].argv and "--data.n_train" in staged[1].argv
    assert staged[-1].argv[3] == "selfplay"  # evaluations, from the saved models
    sft = sweep.commands(sft_run, launcher=LAUNCHER, staged=True)
    assert [(c.stage, c.iteration) for c in sft] == [("train", 0), (None, None)]  # no generation


def test_invalid_sweep_fails_before_anything_runs(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"name: bad\ngroups:\n  - name: spin\n    config: {CONFIGS / 'zephyr-7b' / 'spin.yaml'}\n"
        "    overrides: {iterations: 2}\n"  # SPIN's 5 learning rates no longer fit
    )
    with pytest.raises(ConfigError, match="learning_rates"):
        sweep.expand(bad, tmp_path)
    assert sweep.main([str(bad), "--runs-dir", str(tmp_path), "--dry-run"]) == 2
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        f"name: t\ngroups:\n  - name: g\n    config: {CONFIGS / 'zephyr-7b' / 'iris.yaml'}\n    gird: {{}}\n"
    )
    with pytest.raises(ConfigError, match="gird"):
        sweep.expand(typo, tmp_path)


def _fake_complete(run: sweep.Run) -> RunDir:
    """A run directory whose every train/eval marker verifies (no training done)."""
    config = run.load()
    directory = RunDir(run.output_dir)
    directory.start(to_dict(config), command=["test"])
    for t in range(config.iterations):
        model = directory.model_dir(t)
        model.mkdir(parents=True)
        (model / "model.safetensors").write_bytes(b"weights %d" % t)
        directory.mark_done("train", [model], t)
        evals = directory.eval_dir(t)
        evals.mkdir()
        (evals / "iris10.json").write_text("{}")
        directory.mark_done("eval", [evals], t)
    return directory


def test_skips_finished_runs(tmp_path, capsys):
    runs = sweep.expand(DATA_EFFICIENCY, tmp_path)
    done = next(r for r in runs if r.name.endswith("sft/n_train=50000"))
    directory = _fake_complete(done)
    assert sweep.is_complete(done) and not any(sweep.is_complete(r) for r in runs if r != done)
    args = [
        str(DATA_EFFICIENCY),
        "--runs-dir",
        str(tmp_path),
        "--dry-run",
        "--staged",
        "--launcher",
        LAUNCHER,
    ]
    assert sweep.main(args) == 0
    out = capsys.readouterr().out
    assert "# 9 runs: 1 complete (skipped), 8 to run" in out
    assert f"# complete: {done.name}" in out and f"# run {done.name} " not in out
    assert out.count(" -m iris.cli train ") == 2 * 6 + 3 - 1  # the other 8 runs' training jobs
    # A tampered output invalidates the marker: the run is to be (re-)run.
    (directory.model_dir(0) / "model.safetensors").write_bytes(b"weights X")
    assert sweep.is_complete(done, verify=False)  # same size: only the checksum tells
    assert not sweep.is_complete(done)
    # Partly done: the finished stage's command is shown as done, the rest still printed.
    directory.marker_path("eval", 0).unlink()
    (directory.model_dir(0) / "model.safetensors").write_bytes(b"weights 0")
    assert sweep.main([*args, "--only", "*sft/n_train=50000"]) == 0
    out = capsys.readouterr().out
    assert "# 1 runs: 0 complete (skipped), 1 to run" in out
    assert "# done: " in out and out.strip().splitlines()[-1].startswith(
        "python -m iris.cli selfplay"
    )


def test_launches_commands_in_order(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(
        sweep, "_execute", lambda c: calls.append(c) or (1 if len(calls) == 2 else 0)
    )
    args = [str(DATA_EFFICIENCY), "--runs-dir", str(tmp_path), "--staged", "--only", "*/iris/*"]
    assert sweep.main(args) == 1  # stops at the first failure
    assert [(c.stage, c.iteration) for c in calls] == [("generate", 0), ("train", 0)]
    calls.clear()
    assert sweep.main([*args, "--keep-going"]) == 1
    assert len(calls) == 2 + 5 + 5  # the failing run stops; the next two runs go on
