"""The self-play loop end to end on a tiny local model and dataset, through the CLI."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _processes import kill_when
from safetensors.torch import load_file

from iris.cli import main
from iris.config import ConfigError, SelfPlayConfig, non_result_keys
from iris.runs import RunDir, read_jsonl
from iris.tiny_models import save_tiny_model

WORDS = [f"w{i}" for i in range(24)]
ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A tiny model directory and 24 (prompt, response) pairs."""
    base = tmp_path_factory.mktemp("selfplay")
    save_tiny_model(base / "model", WORDS, seed=0)
    rng = random.Random(0)
    with (base / "data.jsonl").open("w") as file:
        for i in range(24):
            prompt = f"{WORDS[i % 8]} {WORDS[i // 8]} " + rng.choice(WORDS[:8])  # 24 distinct
            real = " ".join(rng.choice(WORDS[8:]) for _ in range(rng.randint(2, 5)))
            file.write(json.dumps({"prompt": prompt, "real": real}) + "\n")
    return base


def write_config(workspace: Path, name: str, *, loss: str = "iris", extra: str = "") -> Path:
    path = workspace / f"{name}.yaml"
    path.write_text(
        f"""
model: {{name_or_path: {workspace / "model"}}}
data: {{source: {workspace / "data.jsonl"}, n_train: 24}}
generation: {{max_new_tokens: 6, batch_size: 4, shard_size: 4, temperature: 1.0}}
iterations: 2
seed: 3
training:
  loss: {loss}
  beta: 0.5
  per_device_train_batch_size: 4
  gradient_accumulation_steps: 2
  num_train_epochs: 1
  learning_rate: 1.0e-3
  max_length: 64
  save_steps: 1
  report_to: []
  disable_tqdm: true
{extra}
"""
    )
    return path


def model_weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "model.safetensors")


def test_two_iterations_end_to_end(workspace, tmp_path, capsys):
    config = write_config(workspace, "iris", extra="  alpha: 2.0\n")
    out = tmp_path / "run"
    assert main(["selfplay", "--config", str(config), "--output-dir", str(out)]) == 0
    run = RunDir(out)
    for t in (0, 1):
        assert run.stage_done("generate", t) and run.stage_done("train", t)
        rows = read_jsonl(run.generated_path(t))
        assert len(rows) == 24 and len({r["id"] for r in rows}) == 24
        metrics = read_jsonl(run.metrics_path(t))
        assert metrics and all(m["alpha"] == 2.0 for m in metrics if "alpha" in m)
        assert all(json.dumps(m).count("NaN") == 0 for m in metrics)
    # θ1 ≠ θ0 and θ2 ≠ θ1: each iteration trained.
    first, second = model_weights(run.model_dir(0)), model_weights(run.model_dir(1))
    start = model_weights(workspace / "model")
    assert any(not torch.equal(first[k], start[k]) for k in start)
    assert any(not torch.equal(second[k], first[k]) for k in first)
    manifest = run.read_manifest()
    assert manifest["config"]["training"]["loss"] == "iris"
    assert {"iter_0/train", "iter_1/generate"} <= set(manifest["stages"])

    # Re-running the finished run does nothing and changes nothing.
    before = (run.model_dir(1) / "model.safetensors").stat().st_mtime_ns
    assert main(["selfplay", "--config", str(config), "--output-dir", str(out)]) == 0
    assert (run.model_dir(1) / "model.safetensors").stat().st_mtime_ns == before

    # A changed result-affecting setting is refused, in one plain message.
    capsys.readouterr()
    changed = ["--training.learning_rate", "0.1"]
    assert main(["selfplay", "--config", str(config), "--output-dir", str(out), *changed]) == 2
    error = capsys.readouterr().err
    assert (
        error.startswith("iris selfplay: error: refusing to resume")
        and "training.learning_rate" in error
    )


def test_tspin_generates_proto_once_and_single_stages(workspace, tmp_path):
    config = write_config(workspace, "tspin", loss="tspin")
    out = str(tmp_path / "run")
    with pytest.raises(RuntimeError, match="'proto' is not complete"):
        main(["train", "--config", str(config), "--output-dir", out, "--iteration", "0"])
    assert main(["generate", "--config", str(config), "--output-dir", out, "--iteration", "0"]) == 0
    run = RunDir(out)
    assert run.stage_done("proto") and run.stage_done("generate", 0)
    assert not run.stage_done("train", 0)
    # No completed stage read the training keys: a changed learning rate is accepted.
    train = ["train", "--config", str(config), "--output-dir", out, "--iteration", "0"]
    assert main([*train, "--training.learning_rate", "0.02"]) == 0
    assert run.read_manifest()["config"]["training"]["learning_rate"] == 0.02
    rows = read_jsonl(run.train_data_path(0))
    assert all("proto" in r for r in rows)
    assert run.stage_done("train", 0) and not run.generated_path(1).exists()
    # Now iter_0/train has read it: another change is refused.
    assert main([*train, "--training.learning_rate", "0.05"]) == 2


def test_killed_runs_resume_to_the_uninterrupted_result(workspace, tmp_path):
    """SIGKILL during generation and during training; re-running gives the same final data
    and model as an uninterrupted run with the same seed, with no duplicated rows."""
    config = write_config(workspace, "resume", extra="  alpha: 0.5\n")
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert main(["selfplay", "--config", str(config), "--output-dir", str(reference)]) == 0
    args = ["selfplay", "--config", str(config), "--output-dir", str(killed)]

    shards = killed / "iter_0" / "generated.jsonl.shards"
    kill_when(args, lambda: shards.is_dir() and any(shards.glob("*.jsonl")), env=ONE_THREAD)
    run = RunDir(killed)
    assert not run.stage_done("generate", 0), "killed after generation, not during it"
    kill_when(
        args,
        lambda: any((killed / "iter_0").glob("checkpoint-*/trainer_state.json")),
        env=ONE_THREAD,
    )
    assert run.stage_done("generate", 0) and not run.stage_done("train", 0)
    assert main(args) == 0

    a, b = RunDir(reference), RunDir(killed)
    for t in (0, 1):
        assert read_jsonl(a.generated_path(t)) == read_jsonl(b.generated_path(t))
        assert read_jsonl(a.train_data_path(t)) == read_jsonl(b.train_data_path(t))
        wa, wb = model_weights(a.model_dir(t)), model_weights(b.model_dir(t))
        for key in wa:
            torch.testing.assert_close(wb[key], wa[key], rtol=1e-5, atol=1e-6)
        steps = [m["step"] for m in read_jsonl(b.metrics_path(t)) if "loss" in m]
        assert steps == sorted(set(steps)), "metrics rows duplicated after resume"
        # Whole-iteration totals are those of the uninterrupted run, not of the resumed part.
        (end_a,), (end_b,) = (
            [m for m in read_jsonl(r.metrics_path(t)) if "train_loss" in m] for r in (a, b)
        )
        assert end_b["train_loss"] == pytest.approx(end_a["train_loss"], rel=1e-4, abs=1e-6)
        last_a, last_b = (read_jsonl(r.metrics_path(t))[-2] for r in (a, b))
        assert last_b["num_tokens"] == last_a["num_tokens"]


def test_runs_dir_default_and_generation_stats(workspace, tmp_path, monkeypatch):
    """No --output-dir: $IRIS_RUNS_DIR/<config's folder>/<config name>, as experiments/sweep.py."""
    config = write_config(workspace, "stats")
    monkeypatch.setenv("IRIS_RUNS_DIR", str(tmp_path / "runs"))
    assert main(["generate", "--config", str(config), "--iteration", "0"]) == 0
    run = RunDir(tmp_path / "runs" / workspace.name / "stats")
    generate = run.read_manifest()["stages"]["iter_0/generate"][-1]
    rows = read_jsonl(run.generated_path(0))
    assert generate["rows"] == len(rows) == 24
    assert generate["truncated_fraction"] == sum(r["truncated"] for r in rows) / 24
    assert generate["generated_tokens"] == sum(r["num_tokens"] for r in rows)
    assert generate["generation_s"] > 0


def test_interrupted_attempts_are_closed_and_launch_keys_never_block(workspace, tmp_path):
    """A kill after a stage's marker but before the manifest's update leaves `running`
    behind: the next invocation closes it (done: its marker exists; else interrupted).
    Launch settings such as training.ddp_backend/ddp_timeout do not change results: they never block."""
    config = str(write_config(workspace, "stale"))
    out = tmp_path / "run"
    assert main(["generate", "--config", config, "--output-dir", str(out), "--iteration", "0"]) == 0
    run = RunDir(out)
    manifest = run.read_manifest()
    manifest["stages"]["iter_0/generate"][-1]["status"] = "running"
    manifest["stages"]["iter_0/train"] = [
        {"started_at": "2026-12-02T00:00:00+00:00", "status": "running"}
    ]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert main(["generate", "--config", config, "--output-dir", str(out), "--iteration", "0",
                 "--training.ddp_timeout", "600"]) == 0  # fmt: skip
    stages = run.read_manifest()["stages"]
    assert stages["iter_0/generate"][-1]["status"] == "done"
    assert stages["iter_0/train"][-1]["status"] == "interrupted"
    assert "closed_at" in stages["iter_0/train"][-1]
    assert {"training.ddp_backend", "training.ddp_timeout"} <= set(non_result_keys(SelfPlayConfig))


def test_a_start_that_failed_never_blocks_the_corrected_run(workspace, tmp_path):
    """The data stage fails (more rows asked than exist); the manifest exists but no stage
    completed, so the corrected config runs in the same directory instead of being refused."""
    config = str(write_config(workspace, "unblocked"))
    out = str(tmp_path / "run")
    args = ["generate", "--config", config, "--output-dir", out, "--iteration", "0"]
    assert main([*args, "--data.n_train", "1000"]) == 2  # "only 24 unique prompts"
    assert (tmp_path / "run" / "manifest.json").is_file()
    assert main(args) == 0
    manifest = RunDir(out).read_manifest()
    assert manifest["config"]["data"]["n_train"] == 24
    assert manifest["invocations"][-1]["replaced_config"]["data.n_train"] == {
        "saved": 1000,
        "now": 24,
    }


def test_raising_iterations_extends_a_finished_run(workspace, tmp_path, capsys):
    """A finished 2-iteration run extended to 3 trains only iteration 2, from θ2, and equals
    a 3-iteration run from the start; changing an earlier iteration's value is refused."""
    config = write_config(workspace, "extend", extra="  alpha: 2.0\n")
    extended, direct = tmp_path / "extended", tmp_path / "direct"
    lrs = ["--learning_rates", "[1.0e-3, 1.0e-3]"]
    assert main(["selfplay", "--config", str(config), "--output-dir", str(extended), *lrs]) == 0
    before = (extended / "iter_1" / "model" / "model.safetensors").stat().st_mtime_ns
    three = ["--iterations", "3", "--learning_rates", "[1.0e-3, 1.0e-3, 5.0e-4]"]
    assert main(["selfplay", "--config", str(config), "--output-dir", str(extended), *three]) == 0
    assert (extended / "iter_1" / "model" / "model.safetensors").stat().st_mtime_ns == before
    assert main(["selfplay", "--config", str(config), "--output-dir", str(direct), *three]) == 0
    a, b = model_weights(RunDir(extended).model_dir(2)), model_weights(RunDir(direct).model_dir(2))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert RunDir(extended).read_manifest()["config"]["iterations"] == 3

    capsys.readouterr()
    changed = ["--iterations", "4", "--learning_rates", "[1.0e-3, 2.0e-3, 5.0e-4, 5.0e-4]"]
    assert main(["selfplay", "--config", str(config), "--output-dir", str(extended), *changed]) == 2
    assert "learning_rates" in capsys.readouterr().err


def _layout_file(workspace: Path, layout: str) -> Path:
    """The workspace's pairs as SPIN (real/generated) or TRL preference (prompt/chosen/rejected)
    rows; the synthetic response of row i is 'w23' repeated i % 3 + 1 times."""
    path = workspace / f"{layout}.jsonl"
    with path.open("w") as out:
        for i, row in enumerate(read_jsonl(workspace / "data.jsonl")):
            synthetic = " ".join(["w23"] * (i % 3 + 1))
            user = {"role": "user", "content": row["prompt"]}
            if layout == "spin":
                row = {
                    "real": [user, {"role": "assistant", "content": row["real"]}],
                    "generated": [user, {"role": "assistant", "content": synthetic}],
                }
            else:
                row = {"prompt": row["prompt"], "chosen": row["real"], "rejected": synthetic}
            out.write(json.dumps(row) + "\n")
    return path


@pytest.mark.parametrize("layout", ["spin", "trl"])
def test_spin_and_trl_data_train_on_their_given_synthetic_responses(workspace, tmp_path, layout):
    """SPIN's published iteration data trains as is: iteration 0 takes the file's own synthetic
    responses (SPIN 'generated', TRL 'rejected'); iteration 1 generates from θ1."""
    data = _layout_file(workspace, layout)
    config = write_config(workspace, f"given-{layout}")
    text = config.read_text().replace(str(workspace / "data.jsonl"), str(data))
    config.write_text(text.replace("temperature: 1.0}", "temperature: 1.0, given: [data]}"))
    out = tmp_path / "run"
    assert main(["selfplay", "--config", str(config), "--output-dir", str(out)]) == 0
    run = RunDir(out)
    given = read_jsonl(run.generated_path(0))
    assert len(given) == 24 and {g["text"] for g in given} == {"w23", "w23 w23", "w23 w23 w23"}
    trained = read_jsonl(run.train_data_path(0))  # rendered turns: text, then end of turn
    reals = {r["real"] for r in read_jsonl(workspace / "data.jsonl")}
    assert {r["real"].removesuffix(" <eos>") for r in trained} == reals
    assert all(
        r["generated"].removesuffix(" <eos>").split() == ["w23"] * len(r["generated"].split()[:-1])
        for r in trained
    )
    assert run.stage_done("train", 1) and run.read_manifest()["stages"]["iter_0/generate"][-1][
        "given"
    ] == str(data)
    assert not {g["text"] for g in read_jsonl(run.generated_path(1))} <= {"w23", "w23 w23"}


def test_given_synthetic_responses_are_checked_before_any_stage(workspace, tmp_path, capsys):
    config = write_config(workspace, "given-chat")  # chat-style pairs carry no synthetic response
    config.write_text(
        config.read_text().replace("temperature: 1.0}", "temperature: 1.0, given: [data]}")
    )
    out = tmp_path / "run"
    assert main(["selfplay", "--config", str(config), "--output-dir", str(out)]) == 2
    assert "24 row(s) give no synthetic response" in capsys.readouterr().err
    run = RunDir(out)
    assert not run.stage_done("generate", 0) and not run.iteration_dir(0, create=False).exists()


def test_an_evaluated_gap_schedule_needs_an_evaluator_before_any_stage(workspace, tmp_path, capsys):
    config = write_config(workspace, "oracle")
    config.write_text(
        config.read_text().replace(
            "  disable_tqdm: true",
            "  disable_tqdm: true\n  alpha_schedule: {name: adaptive, gap: evaluation, update: iteration}",
        )
    )
    out = tmp_path / "run"
    assert main(["selfplay", "--config", str(config), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "gap 'evaluation'" in err and "evaluation.kind" in err and "Traceback" not in err
    assert not RunDir(out).stage_done("data")


def test_an_evaluated_gap_metric_the_evaluator_lacks_is_refused_before_any_stage(
    workspace, tmp_path, capsys
):
    """A gap_metric the evaluator does not report is a typo found before the data stage."""
    schedule = "{name: adaptive, gap: evaluation, gap_metric: testbed/renyi_gap/alpha=3}"
    config = write_config(
        workspace,
        "oracle-typo",
        extra=f"  alpha_schedule: {schedule}\nevaluation: {{kind: testbed}}",
    )
    out = tmp_path / "run"
    assert main(["selfplay", "--config", str(config), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "training.alpha_schedule.gap_metric" in err and "'testbed/renyi_gap/alpha=3'" in err
    assert "testbed/renyi_gap/alpha=2" in err and "Traceback" not in err
    assert not RunDir(out).stage_done("data")


def test_the_entering_gap_reads_back_the_previous_iterations_evaluation(tmp_path):
    """θ1 is the model iteration 0 evaluated: its summary is read, not evaluated again; θ0
    (no earlier evaluation) is evaluated into entering_eval/; a NaN gap is refused."""
    from types import SimpleNamespace

    from iris.selfplay import ENTERING_EVAL, _entering_gap

    class Scores:
        name, calls, value = "testbed", [], 0.7

        def evaluate(self, model_dir, *, iteration, output_dir):
            self.calls.append((str(model_dir), iteration))
            return {"testbed/forward_kl": self.value}

    run = RunDir(tmp_path / "run")
    state = SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None)
    config = SimpleNamespace(
        model=SimpleNamespace(name_or_path="start", gguf_file=None, revision=None)
    )
    evaluator = Scores()
    summary = run.eval_dir(0) / "testbed.summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"flat": {"testbed/forward_kl": 0.3, "average": None}}))
    run.mark_done("eval", [run.eval_dir(0)], 0)
    assert _entering_gap(config, run, state, 1, evaluator, "testbed/forward_kl") == 0.3
    assert evaluator.calls == []
    gap = json.loads((run.iteration_dir(1) / ENTERING_EVAL / "gap.json").read_text())
    assert gap["source"] == "iter_0/eval/testbed.summary.json" and gap["value"] == 0.3
    assert _entering_gap(config, run, state, 0, evaluator, "testbed/forward_kl") == 0.7
    assert evaluator.calls == [("start", 0)]
    evaluator.value = float("nan")
    with pytest.raises(ConfigError, match="reports no 'testbed/forward_kl' as a number"):
        _entering_gap(config, run, state, 2, evaluator, "testbed/forward_kl")


def test_tensorboard_events_hold_the_iris_metrics(workspace, tmp_path):
    """report_to: [tensorboard] (the paper configs' tracker) writes α, ESS/n and −L_α live."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = write_config(workspace, "tb")
    text = config.read_text().replace("report_to: []", "report_to: [tensorboard]")
    config.write_text(text.replace("iterations: 2", "iterations: 1"))
    out = tmp_path / "run"
    assert main(["selfplay", "--config", str(config), "--output-dir", str(out)]) == 0
    (events,) = {p.parent for p in (out / "iter_0").rglob("events.out.tfevents.*")}
    tags = set(EventAccumulator(str(events)).Reload().Tags()["scalars"])
    for name in (
        "alpha",
        "weights/real_ess_fraction",
        "weights/generated_ess_fraction",
        "objective/variational_estimate",
        "loss",
    ):
        assert f"train/{name}" in tags, sorted(tags)


def test_console_of_a_two_iteration_run_is_for_people(workspace, tmp_path):
    """Header, one bar and one summary line per stage; no metric dicts, no library chatter."""
    config = write_config(workspace, "console")
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "iris.cli",
            "selfplay",
            "--config",
            str(config),
            "--output-dir",
            str(out),
        ],
        capture_output=True,  # bytes: text mode would turn a bar's carriage returns into lines
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output[-3000:]
    lines = [line for line in output.split("\n") if line.strip()]  # as a redirected file
    assert len(lines) <= 25, "\n".join(lines)
    text = "\n".join(lines)
    assert "{'loss'" not in text and "Warning" not in text and "Loading weights" not in text
    for header in ("── data", "── iteration 0 · generate", "── iteration 1 · train"):
        assert header in text
    assert "3 steps on 24 rows, mean loss" in text and "5 of 5 stages done" in text


def test_readme_tiny_model_example_runs(tmp_path):
    """The README's "Try the loop on a tiny local model" commands, as a reader pastes them."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Try the loop on a tiny local model", 1)[1]
    script = section.split("```bash\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, timeout=600
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output[-3000:]
    assert "5 of 5 stages done" in output and RunDir(tmp_path / "tiny" / "run").stage_done(
        "train", 1
    )
