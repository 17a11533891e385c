"""LoRA from the run config (``model.lora``): the schema, the adapter-disabled reference,
the saved adapter and merged model, and the 2-process engines (DDP, DeepSpeed ZeRO-2, and
ZeRO-3, whose sharded parameters take the other merge path: θt reloaded, adapter merged in).

Each iteration trains a fresh adapter on θt (reference: θt, the adapter-disabled model)
and saves ``iter_<t>/adapter/`` and θt+1 = θt + the adapter's delta, merged, as a plain
model in ``iter_<t>/model/``.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from iris.cli import main
from iris.runs import RunDir, read_json, read_jsonl
from iris.testbed.task import TargetSpec, make_testbed_model, write_annotated
from iris.tiny_models import save_tiny_model

WORDS = [f"w{i}" for i in range(24)]
LORA = "{r: 2, lora_alpha: 4, target_modules: all-linear}"
SCALING = 4 / 2  # lora_alpha / r
LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A tiny model directory and 24 (prompt, response) pairs (as tests/test_selfplay.py)."""
    base = tmp_path_factory.mktemp("lora")
    save_tiny_model(base / "model", WORDS, seed=0)
    rng = random.Random(0)
    with (base / "data.jsonl").open("w") as file:
        for i in range(24):
            prompt = f"{WORDS[i % 8]} {WORDS[i // 8]} " + rng.choice(WORDS[:8])
            real = " ".join(rng.choice(WORDS[8:]) for _ in range(rng.randint(2, 5)))
            file.write(json.dumps({"prompt": prompt, "real": real}) + "\n")
    return base


def write_config(
    workspace: Path, name: str, *, lora: str = LORA, iterations: int = 1, extra: str = ""
) -> Path:
    path = workspace / f"{name}.yaml"
    path.write_text(
        f"""
model: {{name_or_path: {workspace / "model"}, lora: {lora}}}
data: {{source: {workspace / "data.jsonl"}, n_train: 24}}
generation: {{max_new_tokens: 6, batch_size: 8, shard_size: 8}}
iterations: {iterations}
seed: 3
training:
  loss: iris
  alpha: 2.0
  beta: 0.5
  per_device_train_batch_size: 4
  gradient_accumulation_steps: 2
  num_train_epochs: 1
  learning_rate: 1.0e-2
  max_length: 64
  report_to: []
  disable_tqdm: true
{extra}
"""
    )
    return path


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "model.safetensors")


def lora_delta(adapter_dir: Path) -> dict[str, torch.Tensor]:
    """The merged update of every adapted weight: scaling · B A, by plain-model key."""
    adapter = load_file(adapter_dir / "adapter_model.safetensors")
    delta = {}
    for key in adapter:
        if ".lora_A." in key:
            name = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
            b = adapter[key.replace(".lora_A.", ".lora_B.")]
            delta[name] = SCALING * b.double() @ adapter[key].double()
    return delta


# ---------------------------------------------------------------------------------------
# (a) the schema refuses a bad lora section before any stage
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lora", "message"),
    [
        ("{r: 0}", r"key 'model\.lora\.r': Input should be greater than 0"),
        ("{rank: 8}", r"unknown key 'model\.lora\.rank'"),
        ("{lora_alpha: -1}", r"key 'model\.lora\.lora_alpha': Input should be greater than 0"),
        ("{dropout: 1.0}", r"key 'model\.lora\.dropout': Input should be less than 1"),
        ("{target_modules: all}", r"invalid model\.lora\.target_modules: must be 'all-linear'"),
        ("{target_modules: []}", r"invalid model\.lora\.target_modules: must be 'all-linear'"),
        ("{r: '8'}", r"key 'model\.lora\.r': Input should be a valid integer"),
    ],
)
def test_a_bad_lora_key_or_value_is_refused_before_any_stage(
    workspace, tmp_path, capsys, lora, message
):
    config = write_config(workspace, "bad", lora=lora)
    out = tmp_path / "run"
    assert main(["selfplay", "--config", str(config), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert f"{config}:2:" in err  # located at the line of the model section
    assert "Traceback" not in err and not out.exists()


def test_lora_without_peft_is_refused_before_any_stage(workspace, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft raises ImportError
    config = write_config(workspace, "nopeft", lora="{r: 4}")
    out = tmp_path / "run"
    assert main(["selfplay", "--config", str(config), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model.lora: LoRA needs the peft package" in err
    assert "Traceback" not in err and not out.exists()


def test_lora_defaults_follow_the_alignment_handbook(workspace):
    from iris.config import load_config
    from iris.schema import SelfPlayConfig

    config = load_config(SelfPlayConfig, write_config(workspace, "defaults", lora="{}"))
    lora = config.model.lora
    assert (lora.r, lora.lora_alpha, lora.dropout) == (16, 32.0, 0.05)
    assert (lora.target_modules, lora.modules_to_save) == ("all-linear", None)
    assert (
        load_config(SelfPlayConfig, write_config(workspace, "none", lora="null")).model.lora is None
    )


# ---------------------------------------------------------------------------------------
# (b)–(d) tiny runs: adapter only, adapter-disabled reference, both reference paths
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def precomputed(workspace) -> Path:
    """Two iterations with the reference log-probs precomputed (TRL's default here)."""
    out = workspace / "run-precomputed"
    config = write_config(workspace, "precomputed", iterations=2)
    assert main(["selfplay", "--config", str(config), "--output-dir", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def live(workspace) -> Path:
    """One iteration with the reference log-probs computed at every step."""
    out = workspace / "run-live"
    extra = "  precompute_ref_log_probs: false\n"
    config = write_config(workspace, "live", extra=extra)
    assert main(["selfplay", "--config", str(config), "--output-dir", str(out)]) == 0
    return out


def test_lora_trains_only_the_adapter_and_saves_it_and_the_merged_model(workspace, precomputed):
    from transformers import AutoModelForCausalLM

    run = RunDir(precomputed)
    start = weights(workspace / "model")
    previous = start
    for t in (0, 1):
        assert run.stage_done("train", t)
        adapter_dir = run.iteration_dir(t) / "adapter"
        assert (adapter_dir / "adapter_model.safetensors").is_file()
        adapter_config = read_json(adapter_dir / "adapter_config.json")
        assert (adapter_config["r"], adapter_config["lora_alpha"]) == (2, 4.0)
        assert adapter_config["task_type"] == "CAUSAL_LM"
        # Each iteration's fresh adapter sits on θt: θ0, then the merged model of iteration 0.
        expected_base = workspace / "model" if t == 0 else run.model_dir(0)
        assert Path(adapter_config["base_model_name_or_path"]) == expected_base

        # θt+1 = θt + scaling · B A on the adapted weights; every other weight unchanged.
        merged = weights(run.model_dir(t))
        assert sorted(merged) == sorted(start)  # plain keys: no base_model., lora_A/B
        delta = lora_delta(adapter_dir)
        assert sorted(delta) == sorted(k for k in start if k.split(".")[-2] in LORA_MODULES)
        for key in start:
            change = merged[key].double() - previous[key].double()
            if key in delta:
                assert float(delta[key].abs().max()) > 1e-4, key  # the adapter trained
                torch.testing.assert_close(change, delta[key], rtol=0, atol=1e-6)
            else:
                assert torch.equal(merged[key], previous[key]), key
        previous = merged

        # The merged model loads as a plain model.
        model = AutoModelForCausalLM.from_pretrained(run.model_dir(t))
        assert not hasattr(model, "peft_config")
        assert not any("lora" in name for name, _ in model.named_parameters())

    stages = run.read_manifest()["stages"]
    train = stages["iter_0/train"][-1]
    assert train["adapter"] == "adapter"
    # peft's count (print_trainable_parameters): all parameters, the adapter's included.
    trainable = sum(
        t.numel()
        for t in load_file(run.iteration_dir(0) / "adapter" / "adapter_model.safetensors").values()
    )
    assert train["trainable_parameters"] == trainable
    assert train["parameters"] == sum(t.numel() for t in start.values()) + trainable
    assert trainable < train["parameters"] / 10
    # The adapter is among the stage's verified outputs.
    recorded = (run.iteration_dir(0) / "train.DONE").read_text()
    assert "adapter/adapter_model.safetensors" in recorded


def test_the_reference_is_the_adapter_disabled_model(precomputed, live):
    """Step 1 (before any update) has zero log-ratios; later steps do not, and the live
    reference (computed at every step with the adapter disabled) gives exactly the
    precomputed one's metrics: the reference stayed θt while the policy moved."""
    for out in (precomputed, live):
        steps = [m for m in read_jsonl(Path(out) / "iter_0" / "metrics.jsonl") if "loss" in m]
        assert len(steps) == 3
        first, last = steps[0], steps[-1]
        for key in ("rewards/margins", "logratios/real", "logratios/generated"):
            assert first[key] == pytest.approx(0.0, abs=1e-5), key
        assert abs(last["logratios/real"]) > 1e-2 and abs(last["rewards/margins"]) > 1e-2
    live_steps = read_jsonl(Path(live) / "iter_0" / "metrics.jsonl")
    precomputed_steps = read_jsonl(Path(precomputed) / "iter_0" / "metrics.jsonl")
    for a, b in zip(live_steps, precomputed_steps, strict=True):
        for key in ("loss", "rewards/margins", "logratios/real", "logratios/generated"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


def test_precomputed_and_live_references_train_the_same_model(workspace, precomputed, live):
    start = weights(workspace / "model")
    a, b = weights(RunDir(live).model_dir(0)), weights(RunDir(precomputed).model_dir(0))
    update = torch.cat([(b[k].double() - start[k].double()).flatten() for k in start])
    gap = torch.cat([(a[k].double() - b[k].double()).flatten() for k in start])
    assert float(update.norm()) > 1e-3
    assert float(gap.norm() / update.norm()) < 1e-5
    assert (Path(live) / "iter_0" / "adapter" / "adapter_model.safetensors").is_file()


def test_live_reference_log_probs_are_the_base_models_after_training(workspace, tmp_path):
    """Directly: after updates, the trainer's reference log-probs (``ref_model=None``, a PEFT
    model) are θ0's, and the policy's are not; LoRA's dropout is off (TRL's disable_dropout)."""
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.utils import add_fused_lm_head

    from iris.trainer import IrisConfig, IrisTrainer

    tokenizer = AutoTokenizer.from_pretrained(workspace / "model")
    rows = [
        {"prompt": f"{WORDS[i]} {WORDS[i + 1]}", "real": f"{WORDS[8 + i]} {WORDS[9 + i]}",
         "generated": f"{WORDS[16 + i]}"}
        for i in range(8)
    ]  # fmt: skip
    args = IrisConfig(
        output_dir=str(tmp_path / "out"),
        loss="iris",
        alpha=2.0,
        beta=0.5,
        per_device_train_batch_size=4,
        max_steps=4,
        learning_rate=5e-2,
        max_length=32,
        precompute_ref_log_probs=False,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
    )
    trainer = IrisTrainer(
        AutoModelForCausalLM.from_pretrained(workspace / "model"),
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=LoraConfig(task_type="CAUSAL_LM", r=2, lora_alpha=4, lora_dropout=0.3),
    )
    assert trainer.ref_model is None
    dropouts = [
        m
        for n, m in trainer.model.named_modules()
        if "lora_dropout" in n and isinstance(m, torch.nn.Dropout)
    ]
    assert dropouts and all(m.p == 0 for m in dropouts)
    trainer.train()

    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    trainer.model.eval()
    with torch.no_grad():
        reference = torch.cat(trainer.compute_ref_log_probs(trainer.model, batch))
        policy, _ = trainer._policy_logps(trainer.model, batch)
        start = AutoModelForCausalLM.from_pretrained(workspace / "model").eval()
        add_fused_lm_head(start)  # as TRL patches its models: per-token log-probs
        base = torch.cat(trainer.compute_ref_log_probs(start, batch))
    torch.testing.assert_close(reference, base, rtol=1e-5, atol=1e-5)
    assert float((policy - base).abs().max()) > 1e-3


def test_sft_with_lora_saves_the_adapter_and_the_merged_model(workspace, tmp_path):
    config = write_config(workspace, "sft")
    config.write_text(
        config.read_text().replace("loss: iris\n  alpha: 2.0\n  beta: 0.5\n", "loss: sft\n")
    )
    out = tmp_path / "run"
    assert main(["selfplay", "--config", str(config), "--output-dir", str(out)]) == 0
    run = RunDir(out)
    merged, start = weights(run.model_dir(0)), weights(workspace / "model")
    delta = lora_delta(run.iteration_dir(0) / "adapter")
    assert delta and sorted(merged) == sorted(start)
    for key, value in delta.items():
        torch.testing.assert_close(
            merged[key].double() - start[key].double(), value, rtol=0, atol=1e-6
        )
    assert run.read_manifest()["stages"]["iter_0/train"][-1]["trainable_parameters"] > 0


# ---------------------------------------------------------------------------------------
# (e) 2 CPU processes: DDP, DeepSpeed ZeRO-2 and ZeRO-3 (launched as tests/test_engines.py does)
# ---------------------------------------------------------------------------------------

TARGET = {"num_prompts": 4, "num_symbols": 4, "max_length": 4, "seed": 0}
ENGINES = {
    "ddp": ("multi_gpu.yaml", "ddp"),
    "zero2": ("zero2.yaml", "deepspeed-zero2"),
    "zero3": ("zero3.yaml", "deepspeed-zero3"),
}


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> Path:
    """The engine tests' testbed (8 rows, global batch 8 = 2 × 2 accumulation × 2 ranks,
    2 steps of SGD) with LoRA; the single-process run (2 × 4 accumulation) and the staged
    generation of iteration 0."""
    root = tmp_path_factory.mktemp("lora-engines")
    target = TargetSpec(**TARGET).build()
    make_testbed_model(target, root / "model", hidden_size=32, num_heads=2, seed=0)
    write_annotated(target, 8, root / "annotated.jsonl", seed=1)
    (root / "engines.yaml").write_text(
        f"""
model: {{name_or_path: {root / "model"}, lora: {{r: 4, lora_alpha: 8, dropout: 0.0}}}}
data: {{source: {root / "annotated.jsonl"}, n_train: 8, repeated_prompts: true}}
generation: {{max_new_tokens: 5, batch_size: 4, shard_size: 4}}
iterations: 1
seed: 0
training:
  loss: iris
  alpha: 2.0
  beta: 1.0
  per_device_train_batch_size: 2
  gradient_accumulation_steps: 2
  num_train_epochs: 2
  optim: sgd
  learning_rate: 0.5
  lr_scheduler_type: constant
  max_grad_norm: 0.0
  max_length: 32
  save_strategy: "no"
  report_to: []
  disable_tqdm: true
"""
    )
    config = str(root / "engines.yaml")
    assert main(["selfplay", "--config", config, "--output-dir", str(root / "single"),
                 "--training.gradient_accumulation_steps", "4"]) == 0  # fmt: skip
    assert main(["generate", "--config", config, "--output-dir", str(root / "generated"),
                 "--iteration", "0"]) == 0  # fmt: skip
    return root


@pytest.mark.parametrize(
    "engine",
    # ZeRO-3 (the reload-and-merge path) in the slow lane: DDP and ZeRO-2 cover the default one
    [pytest.param(e, marks=pytest.mark.slow) if e == "zero3" else e for e in ENGINES],
)
def test_lora_under_two_processes_equals_one_process(engine, engines):
    from test_engines import launch

    accelerate_config, recorded = ENGINES[engine]
    run = engines / engine
    shutil.copytree(engines / "generated", run)
    train = ["train", "--config", str(engines / "engines.yaml"), "--output-dir", str(run),
             "--iteration", "0"]  # fmt: skip
    result = launch(accelerate_config, train)
    assert result.returncode == 0, result.stdout[-6000:]

    stage = read_json(run / "manifest.json")["stages"]["iter_0/train"][-1]
    assert (stage["status"], stage["engine"], stage["processes"], stage["steps"]) == (
        "done",
        recorded,
        2,
        2,
    )
    single = engines / "single"
    assert (
        stage["trainable_parameters"]
        == (
            read_json(single / "manifest.json")["stages"]["iter_0/train"][-1][
                "trainable_parameters"
            ]
        )
    )
    start = weights(engines / "model")

    def update(root: Path) -> torch.Tensor:
        trained = weights(root / "iter_0" / "model")
        assert sorted(trained) == sorted(start)
        return torch.cat(
            [(trained[k].double() - start[k].double()).flatten() for k in sorted(start)]
        )

    reference = update(single)
    assert float(reference.norm()) > 1e-3
    assert float((update(run) - reference).norm() / reference.norm()) < 1e-5
    adapter, expected = (
        load_file(root / "iter_0" / "adapter" / "adapter_model.safetensors")
        for root in (run, single)
    )
    assert sorted(adapter) == sorted(expected)
    for key in expected:
        torch.testing.assert_close(adapter[key], expected[key], rtol=1e-4, atol=1e-6)

    # Written once, by one process: the single-process run's files, no rank's copies.
    def files(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in (root / "iter_0").rglob("*") if p.is_file()}

    assert files(run) == files(single)
    assert RunDir(run).stage_done("train", 0)
