"""Every engine a cluster user launches, executed: the staged recipe with 2 CPU processes.

For each multi-process accelerate config of ``experiments/configs/accelerate/`` — DDP
(``multi_gpu.yaml``), DeepSpeed ZeRO-2 (``zero2.yaml``), ZeRO-3 with activation
checkpointing (``zero3.yaml``), FSDP2 (``fsdp2.yaml``) and ZeRO-3 over two nodes
(``multi_node.yaml``, two launches of one process each on this host, ``--machine_rank``
0 and 1, as on a cluster) — the staged commands of ``experiments/README.md`` run as a
user runs them:

    iris generate --config C --output-dir R --iteration 0
    accelerate launch --config_file experiments/configs/accelerate/<engine>.yaml \\
        --num_processes 2 --mixed_precision no -m iris.cli train --config C --output-dir R --iteration 0
    iris evaluate --config C --output-dir R --iteration 0

The only flags added to the README's commands are the process count and
``--mixed_precision no`` (fp32 on CPU: the configs' bf16 autocast is slow there and would
make the comparison inexact), plus a free rendezvous address on this host so that runs
never collide.

The run trains 2 steps of plain SGD on 8 self-play rows of the known-target testbed with
a global batch of 8 = 2 per device × 2 accumulation × 2 ranks, so IRIS's whole-batch
weight normalisation spans micro-batches and ranks; at the second step the weights are
far from uniform. The trained model must equal a single-process run's (8 = 2 × 4
accumulation) to 1e-5 relative on the update, and evaluate to the same exact distances.

FSDP2: accelerate (≤ 1.16) never selects FSDP for CPU processes — it forms plain DDP,
which ``iris.launch`` refuses (tested below). torch's ``fully_shard`` runs over gloo on
CPU, so the FSDP2 launch goes through ``tests/_fsdp_on_cpu.py``, which changes only that
one selection in accelerate and then runs the same CLI; everything else is the product's
path. The first DeepSpeed launch on a machine JIT-builds DeepSpeed's shared-memory
communication op (~35 s, cached in ~/.cache/torch_extensions).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from iris.cli import main
from iris.runs import RunDir, read_json
from iris.testbed.task import TargetSpec, make_testbed_model, write_annotated

REPO = Path(__file__).resolve().parents[1]
ACCELERATE_CONFIGS = REPO / "experiments" / "configs" / "accelerate"
TOLERANCE = 1e-5  # relative, on the parameter update
TARGET = {"num_prompts": 4, "num_symbols": 4, "max_length": 4, "seed": 0}

# engine → (accelerate config, what the run records as its engine, launcher script, nodes)
ENGINES = {
    "ddp": ("multi_gpu.yaml", "ddp", None, 1),
    "zero2": ("zero2.yaml", "deepspeed-zero2", None, 1),
    "zero3": ("zero3.yaml", "deepspeed-zero3", None, 1),
    "fsdp2": ("fsdp2.yaml", "fsdp2", REPO / "tests" / "_fsdp_on_cpu.py", 1),
    # ZeRO-3 over 2 "nodes" of one process each, launched as on a cluster (machine_rank 0 and 1).
    "multi_node": ("multi_node.yaml", "deepspeed-zero3", None, 2),
}


def _config(workspace: Path) -> Path:
    path = workspace / "engines.yaml"
    path.write_text(
        f"""
model: {{name_or_path: {workspace / "model"}}}
data: {{source: {workspace / "annotated.jsonl"}, n_train: 8, repeated_prompts: true}}
generation: {{max_new_tokens: 5, batch_size: 4, shard_size: 4}}
iterations: 1
seed: 0
training:
  loss: iris
  alpha: 2.0
  beta: 1.0
  per_device_train_batch_size: 2
  gradient_accumulation_steps: 2   # x 2 processes: a global batch of 8 (all rows), 2 epochs
  num_train_epochs: 2
  optim: sgd                       # the update is minus the gradient
  learning_rate: 0.5
  lr_scheduler_type: constant
  max_grad_norm: 0.0
  activation_checkpointing: true
  max_length: 32
  save_strategy: "no"
  report_to: []
  disable_tqdm: true
evaluation: {{kind: testbed, target: {json.dumps(TARGET)}}}
"""
    )
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }


def launch(
    accelerate_config: str, iris: list[str], script: Path | None = None, machines: int = 1
) -> subprocess.CompletedProcess:
    """``accelerate launch`` of an ``iris`` command with 2 CPU processes (on ``machines``
    "nodes" of this host, each launched as a cluster's node is); returns the completed
    processes' joint return code and output."""
    entry = [str(script)] if script is not None else ["-m", "iris.cli"]
    port = str(_free_port())
    nodes = []
    for rank in range(machines):
        node = (
            ["--num_machines", str(machines), "--machine_rank", str(rank)] if machines > 1 else []
        )
        command = [
            sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(ACCELERATE_CONFIGS / accelerate_config),
            "--num_processes", "2", *node, "--mixed_precision", "no",
            "--main_process_ip", "127.0.0.1", "--main_process_port", port,
            *entry, *iris,
        ]  # fmt: skip
        output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
        nodes.append(subprocess.Popen(command, env=_environment(), cwd=REPO, **output))
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    code = next((node.returncode for node in nodes if node.returncode), 0)
    return subprocess.CompletedProcess(nodes[0].args, code, "\n".join(outputs), "")


def _update(run: Path, start: dict[str, torch.Tensor], iteration: int = 0) -> torch.Tensor:
    trained = load_file(run / f"iter_{iteration}" / "model" / "model.safetensors")
    assert sorted(trained) == sorted(start)
    return torch.cat([(trained[k].double() - start[k].double()).flatten() for k in sorted(start)])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("engines")
    target = TargetSpec(**TARGET).build()
    make_testbed_model(target, root / "model", hidden_size=32, num_heads=2, seed=0)
    write_annotated(target, 8, root / "annotated.jsonl", seed=1)
    _config(root)
    return root


@pytest.fixture(scope="module")
def single_process(workspace) -> Path:
    """The whole run in one process, the global batch of 8 as 2 × 4 accumulation."""
    run = workspace / "single"
    config = str(workspace / "engines.yaml")
    assert main(["selfplay", "--config", config, "--output-dir", str(run),
                 "--training.gradient_accumulation_steps", "4"]) == 0  # fmt: skip
    return run


@pytest.fixture(scope="module")
def generated(workspace) -> Path:
    """Stage 1 of the staged recipe, once: data and iteration 0's generation."""
    run = workspace / "generated"
    config = str(workspace / "engines.yaml")
    assert main(["generate", "--config", config, "--output-dir", str(run), "--iteration", "0"]) == 0
    return run


def test_generation_is_the_same_in_both_recipes(single_process, generated):
    assert (generated / "iter_0" / "generated.jsonl").read_bytes() == (
        single_process / "iter_0" / "generated.jsonl"
    ).read_bytes()


# The 2-"node" simulation on one host is in the slow lane: in this session 2 of ~12 of its
# launches had rank 1 abort at start-up ("terminate called without an active exception"
# right after DeepSpeed's shm comm op loaded) and rank 0 wait 300 s at the exit barrier;
# cause not found (LOG.md, 2026-12-07). ZeRO-3 on one node stays in the default suite.
FLAKY = {"multi_node"}


@pytest.mark.parametrize(
    "engine", [pytest.param(e, marks=pytest.mark.slow) if e in FLAKY else e for e in ENGINES]
)
def test_staged_run_equals_one_process(engine, workspace, single_process, generated):
    accelerate_config, recorded, script, machines = ENGINES[engine]
    config = workspace / "engines.yaml"
    run = workspace / engine
    shutil.copytree(generated, run)

    train = ["train", "--config", str(config), "--output-dir", str(run), "--iteration", "0"]
    result = launch(accelerate_config, train, script, machines)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-6000:]
    assert main(["evaluate", "--config", str(config), "--output-dir", str(run),
                 "--iteration", "0"]) == 0  # fmt: skip

    manifest = read_json(run / "manifest.json")
    train = manifest["stages"]["iter_0/train"][-1]
    assert (train["status"], train["engine"], train["processes"], train["steps"]) == (
        "done",
        recorded,
        2,
        2,
    )
    start = load_file(workspace / "model" / "model.safetensors")
    reference = _update(single_process, start)
    update = _update(run, start)
    assert float((update - reference).norm() / reference.norm()) < TOLERANCE
    assert float(reference.norm()) > 0.1  # a real update, not a no-op

    # The second step's weights are far from uniform: normalisation across ranks matters.
    steps = [json.loads(line) for line in (run / "iter_0" / "metrics.jsonl").open()]
    assert steps[1]["weights/generated_ess_fraction"] < 0.9
    single_steps = [
        json.loads(line) for line in (single_process / "iter_0" / "metrics.jsonl").open()
    ]
    for key in ("loss", "objective/variational_estimate", "weights/generated_ess_fraction"):
        assert steps[1][key] == pytest.approx(single_steps[1][key], rel=1e-4, abs=1e-6), key

    scores = read_json(run / "iter_0" / "eval" / "testbed.summary.json")["flat"]
    expected = read_json(single_process / "iter_0" / "eval" / "testbed.summary.json")["flat"]
    for key, value in expected.items():
        if key != "average":
            assert scores[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key

    # Written once, by one process: the same files as the single-process run, no rank's copies.
    def files(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}

    assert files(run / "iter_0") == files(single_process / "iter_0")
    assert RunDir(run).stage_done("train", 0) and RunDir(run).stage_done("eval", 0)


def test_fsdp_that_accelerate_cannot_form_stops_before_training(workspace, generated):
    """Without the stand-in, accelerate forms DDP from the FSDP config on CPU: refused."""
    run = workspace / "fsdp-refused"
    shutil.copytree(generated, run)
    config = str(workspace / "engines.yaml")
    result = launch(
        "fsdp2.yaml", ["train", "--config", config, "--output-dir", str(run), "--iteration", "0"]
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "asks for FSDP but the processes formed MULTI_CPU" in output
    assert "iris.launch.LaunchError" not in output  # one plain message, no traceback of ours
    assert not (run / "iter_0" / "model").exists()
    train = read_json(run / "manifest.json")["stages"]["iter_0/train"][-1]
    assert train["status"] == "failed" and "LaunchError" in train["error"]


def test_selfplay_loop_under_zero3_equals_one_process(workspace):
    """The whole loop in one launch (``iris selfplay`` under ZeRO-3): 2 iterations of
    generation sharded over the ranks, training, and evaluation of the saved model by rank 0
    while the other rank waits — with an α schedule carried across iterations."""
    config = workspace / "selfplay.yaml"
    text = (workspace / "engines.yaml").read_text()
    config.write_text(
        text.replace("iterations: 1", "iterations: 2")
        .replace(
            "alpha: 2.0", "alpha_schedule: {name: adaptive, gap: variational, update: iteration}"
        )
        .replace("optim: sgd", "optim: adamw_torch")
        .replace("learning_rate: 0.5", "learning_rate: 1.0e-3")
    )
    single, launched = workspace / "selfplay-single", workspace / "selfplay-zero3"
    assert main(["selfplay", "--config", str(config), "--output-dir", str(single),
                 "--training.gradient_accumulation_steps", "4"]) == 0  # fmt: skip
    result = launch(
        "zero3.yaml", ["selfplay", "--config", str(config), "--output-dir", str(launched)]
    )
    assert result.returncode == 0, result.stdout[-6000:]
    assert result.stdout.count("run directory:") == 1  # the summary, once per launch

    start = load_file(workspace / "model" / "model.safetensors")
    for t in (0, 1):
        generated = f"iter_{t}/generated.jsonl"
        assert (launched / generated).read_bytes() == (single / generated).read_bytes()
        reference = _update(single, start, t)
        assert (
            float((_update(launched, start, t) - reference).norm() / reference.norm()) < TOLERANCE
        )
        scores = read_json(launched / f"iter_{t}" / "eval" / "testbed.summary.json")["flat"]
        expected = read_json(single / f"iter_{t}" / "eval" / "testbed.summary.json")["flat"]
        for key, value in expected.items():
            if key != "average":
                assert scores[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    stages = read_json(launched / "manifest.json")["stages"]
    assert {stages[f"iter_{t}/train"][-1]["engine"] for t in (0, 1)} == {"deepspeed-zero3"}
    schedule, expected = (
        read_json(r / "iter_1" / "alpha_schedule.json") for r in (launched, single)
    )
    assert schedule["state"] == pytest.approx(expected["state"], rel=1e-5)
