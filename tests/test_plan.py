"""``iris plan``: hand-computed sizes, memory, tokens and steps; the CLI; the paper models.

The tiny architecture (Llama, vocabulary V = 100, hidden H = 16, MLP I = 40, 2 layers,
4 heads of size 4, 2 key-value heads) has, counted by hand:

- embedding V·H = 1600 (and an LM head of 1600 more when untied);
- per decoder layer: q and o 16·16 = 256 each, k and v 16·(2·4) = 128 each, gate/up/down
  3·16·40 = 1920, two RMSNorms 2·16 = 32: 2720;
- final norm 16.

So P = 1600 + 2·2720 + 16 = 7056 tied and 8656 untied; the largest module holds 1600
parameters itself (the embedding); the parameters outside the decoder layers are 1616
tied, 3216 untied.
"""

from __future__ import annotations

import doctest
import json
import math
import re
from pathlib import Path

import pytest
import yaml

import iris.plan
from iris.cli import main
from iris.plan import (
    PlanError,
    activation_bytes,
    ddp_model_states,
    fsdp_model_states,
    iteration_counts,
    lm_head_bytes,
    load_architecture,
    model_size,
    optimizer_states,
    plan,
    read_engine,
    zero2_model_states,
    zero3_model_states,
)

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = ROOT / "experiments" / "configs" / "accelerate"
ARCHITECTURES = ROOT / "experiments" / "configs" / "architectures"

V, H, MLP, LAYERS = 100, 16, 40, 2
EMBEDDING = V * H
DECODER_LAYER = 2 * H * H + 2 * H * (2 * 4) + 3 * H * MLP + 2 * H
TIED = EMBEDDING + LAYERS * DECODER_LAYER + H
UNTIED = TIED + V * H
STATES = {"adamw_torch": 2, "rmsprop": 1, "sgd": 0}


def test_hand_count_constants():
    assert (DECODER_LAYER, TIED, UNTIED) == (2720, 7056, 8656)


def _tiny_model_dir(directory: Path, *, tied: bool) -> Path:
    from transformers import LlamaConfig

    LlamaConfig(
        vocab_size=V,
        hidden_size=H,
        intermediate_size=MLP,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=tied,
    ).save_pretrained(directory)
    return directory


def _run_config(directory: Path, model_dir: Path, **changes) -> Path:
    """A tiny SelfPlayConfig YAML: 10 rows, ≤ 8 new tokens, 3 iterations, 2 rows × 2 accumulation."""
    config = {
        "model": {"name_or_path": str(model_dir), "dtype": "float32"},
        "data": {"source": "unused.jsonl", "n_train": 10},
        "generation": {"max_new_tokens": 8},
        "iterations": 3,
        "training": {
            "loss": "iris",
            "per_device_train_batch_size": 2,
            "gradient_accumulation_steps": 2,
            "num_train_epochs": 2,
            "max_length": 32,
            "optim": "rmsprop",
        },
    }
    for key, value in changes.items():
        if key == "training":
            config["training"].update(value)
        else:
            config[key] = value
    path = directory / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("plan")
    return {
        "tied": _tiny_model_dir(root / "tied", tied=True),
        "untied": _tiny_model_dir(root / "untied", tied=False),
    }


def test_docstring_examples():
    assert doctest.testmod(iris.plan).failed == 0


@pytest.mark.parametrize("tied", [True, False])
def test_parameter_count_by_hand(tiny, tied):
    directory = tiny["tied" if tied else "untied"]
    size = model_size(load_architecture(str(directory), None, None), str(directory))
    assert size.parameters == (TIED if tied else UNTIED)
    assert size.tied_embeddings is tied
    assert size.largest_layer == EMBEDDING
    assert size.decoder_layer == DECODER_LAYER
    assert size.outside_layers == (TIED if tied else UNTIED) - LAYERS * DECODER_LAYER
    assert (size.hidden_size, size.num_layers, size.vocab_size) == (H, LAYERS, V)


def test_optimizer_states():
    assert {name: optimizer_states(name) for name in STATES} == STATES
    assert optimizer_states("sgd", "momentum=0.9") == 1
    with pytest.raises(PlanError, match="adafactor"):
        optimizer_states("adafactor")


@pytest.mark.parametrize("optim", sorted(STATES))
def test_model_states_by_hand(optim):
    """P = 8656 (untied) on N = 2 GPUs of one node, k optimiser states.

    DDP, fp32: (4 weights + 4 gradients + 4k states + 4 DDP buckets)·P; one GPU: no buckets.
    ZeRO-2 (DeepSpeed, Adam): 2P + 18P/N, minus (2 − k)·4·P/N.
    ZeRO-3 (DeepSpeed, Adam): 4·1600 (largest layer) + 18P/N, minus (2 − k)·4·P/N.
    FSDP: (4 + 4 + 4k)·P/N + 2·(3216 outside the layers + 2720 one layer).
    """
    k, p, n = STATES[optim], UNTIED, 2
    assert ddp_model_states(p, param_bytes=4, states=k, gradient_buckets=True) == (3 + k) * 4 * p
    assert ddp_model_states(p, param_bytes=4, states=k, gradient_buckets=False) == (2 + k) * 4 * p
    assert ddp_model_states(p, param_bytes=2, states=k, gradient_buckets=False) == (2 + k) * 2 * p
    adam_sharded = 18 * p // n  # 77904
    correction = (2 - k) * 4 * p // n
    zero2, _ = zero2_model_states(
        p, gpus_per_node=n, num_nodes=1, states=k, offload_optimizer=False
    )
    assert zero2 == 2 * p + adam_sharded - correction
    zero3, _ = zero3_model_states(
        p,
        EMBEDDING,
        gpus_per_node=n,
        num_nodes=1,
        states=k,
        offload_optimizer=False,
        offload_params=False,
        zero_init=True,
    )
    assert zero3 == 4 * EMBEDDING + adam_sharded - correction
    fsdp, host = fsdp_model_states(
        p, 3216 + DECODER_LAYER, gpus_per_node=n, num_nodes=1, states=k, offload_params=False
    )
    assert (fsdp, host) == ((8 + 4 * k) * p // n + 2 * (3216 + 2720), 0)
    expected = {  # the same numbers written out
        "adamw_torch": (95216, 84304, 81120),
        "rmsprop": (77904, 66992, 63808),
        "sgd": (60592, 49680, 46496),
    }
    assert (zero2, zero3, fsdp) == expected[optim]


def test_offloaded_optimizer_keeps_only_weights_on_the_gpu():
    gpu, host = zero2_model_states(
        UNTIED, gpus_per_node=2, num_nodes=1, states=1, offload_optimizer=True
    )
    assert gpu == 2 * UNTIED and host > 0  # DeepSpeed: bf16 weights only; host: its estimate


def test_activations_and_lm_head_by_hand():
    """2 rows × 2 responses × 32 tokens, H = 16, 2 layers: s·b·h = 4·32·16 = 2048.

    Checkpointed: 2·2048·2 layer inputs + 34·2048 one layer recomputed = 77824 bytes.
    LM head on 128 tokens: bf16 tile 2·128·100 + fp32 gradients 4·128·16 + 4·100·16 = 40192.
    """
    kwargs = {"sequences": 4, "max_length": 32, "hidden_size": H, "num_layers": LAYERS}
    assert activation_bytes(**kwargs, checkpointing=True) == 77824
    assert activation_bytes(**kwargs, checkpointing=False) == 34 * 2048 * 2
    assert lm_head_bytes(tokens=128, vocab_size=V, hidden_size=H) == 40192
    # the tile is capped at 4096 tokens × 32768 vocabulary entries
    tile = lm_head_bytes(tokens=10_000, vocab_size=50_000, hidden_size=1) - 4 * 60_000
    assert tile == 2 * 4096 * 32768


def test_iteration_counts_by_hand():
    """10 rows, global batch 8, 2 epochs: ceil(10/8)·2 = 4 steps; 20 rows: ceil(20/8)·2 = 6."""
    common = {
        "n_train": 10,
        "max_new_tokens": 8,
        "epochs": 2,
        "max_length": 32,
        "global_batch": 8,
        "generates": True,
        "proto": False,
        "responses_per_row": 2,
    }
    first = iteration_counts(0, synthetic_from="previous_and_current", **common)
    later = iteration_counts(1, synthetic_from="previous_and_current", **common)
    assert (first.rows, first.training_sequences, first.steps) == (10, 40, 4)
    assert (later.rows, later.generated_responses, later.training_sequences) == (20, 10, 80)
    assert (later.training_tokens_max, later.steps) == (80 * 32, 6)
    assert later.generated_tokens_max == 10 * 8
    with_proto = {**common, "proto": True, "responses_per_row": 3}
    tspin = iteration_counts(0, synthetic_from="current", **with_proto)
    assert (tspin.generated_responses, tspin.training_sequences) == (20, 60)


@pytest.mark.parametrize(
    ("loss", "synthetic_from", "expected"),
    [
        # (iterations, rows, generated responses, training sequences, steps) per column
        ("iris", "current", [((0, 1, 2), 10, 10, 40, 4)]),
        ("spin", "previous_and_current", [((0,), 10, 10, 40, 4), ((1, 2), 20, 10, 80, 6)]),
        ("tspin", "current", [((0,), 10, 20, 60, 4), ((1, 2), 10, 10, 60, 4)]),
        ("sft", "current", [((0, 1, 2), 10, 0, 20, 4)]),
    ],
)
def test_plan_counts_of_a_run_config(tiny, tmp_path, loss, synthetic_from, expected):
    """The tiny run on 2 GPUs: global batch 2 rows × 2 accumulation × 2 GPUs = 8."""
    training = {"loss": loss}
    extra = {"per_iteration": {"lam": [0.0, 0.1, 0.1]}} if loss == "tspin" else {}
    path = _run_config(
        tmp_path, tiny["untied"], training=training, synthetic_from=synthetic_from, **extra
    )
    result = plan(path, accelerate_config=ACCELERATE / "multi_gpu.yaml", gpus=2)
    assert result.global_batch == 8
    got = [
        (c.iterations, c.rows, c.generated_responses, c.training_sequences, c.steps)
        for c in result.counts
    ]
    assert got == expected
    for c in result.counts:
        assert c.training_tokens_max == c.training_sequences * 32
        assert c.generated_tokens_max == c.generated_responses * 8
    assert any("global batch 8 differs" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("engine", "optim", "states"),
    [
        ("single_gpu", "adamw_torch", (2 + 2) * 4 * UNTIED),
        ("multi_gpu", "sgd", (3 + 0) * 4 * UNTIED),
        ("zero2", "rmsprop", 77904),
        ("zero3", "adamw_torch", 84304),
        ("fsdp2", "sgd", 46496),
    ],
)
def test_plan_memory_of_a_run_config(tiny, tmp_path, engine, optim, states):
    """Model states as in test_model_states_by_hand; activations 77824 and LM head 40192 bytes."""
    path = _run_config(tmp_path, tiny["untied"], training={"optim": optim})
    gpus = 1 if engine == "single_gpu" else 2
    result = plan(path, accelerate_config=ACCELERATE / f"{engine}.yaml", gpus=gpus)
    memory = result.memory
    assert (memory.model_states, memory.activations, memory.lm_head) == (states, 77824, 40192)
    assert memory.total == states + 77824 + 40192 and memory.fits
    small = plan(
        path, accelerate_config=ACCELERATE / f"{engine}.yaml", gpus=gpus, gpu_memory_gib=1e-4
    )
    assert not small.memory.fits


def test_read_engine_of_every_accelerate_config():
    kinds = {path.stem: read_engine(path) for path in sorted(ACCELERATE.glob("*.yaml"))}
    assert len(kinds) > 0
    assert {name: e.kind for name, e in kinds.items()} == {
        "fsdp2": "fsdp",
        "multi_gpu": "ddp",
        "multi_node": "zero3",
        "single_gpu": "single",
        "zero2": "zero2",
        "zero3": "zero3",
    }
    assert (kinds["multi_node"].num_nodes, kinds["multi_node"].gpus_per_node) == (2, 8)
    assert read_engine(ACCELERATE / "multi_node.yaml", gpus=12).gpus_per_node == 6
    with pytest.raises(PlanError, match="cannot be split"):
        read_engine(ACCELERATE / "multi_node.yaml", gpus=3)
    with pytest.raises(PlanError, match="one process"):
        read_engine(ACCELERATE / "single_gpu.yaml", gpus=2)


def test_cli_prints_the_table_and_writes_json(tiny, tmp_path, capsys):
    path = _run_config(tmp_path, tiny["tied"])
    out = tmp_path / "plan.json"
    argv = ["plan", str(path), "--accelerate-config", str(ACCELERATE / "multi_gpu.yaml")]
    argv += ["--gpus", "2", "--json", str(out), "--training.optim", "sgd"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"{TIED:,}; tied embeddings" in printed
    assert "sgd: 0 states per parameter" in printed
    assert "fits in 80 GiB" in printed and "training tokens ≤" in printed
    data = json.loads(out.read_text())
    assert data["size"]["parameters"] == TIED
    assert data["memory"]["model_states"] == 3 * 4 * TIED  # the override took effect


def test_cli_missing_model_config_is_one_line(tmp_path, capsys):
    path = _run_config(tmp_path, Path("no-such-org/no-such-model"))
    argv = ["plan", str(path), "--accelerate-config", str(ACCELERATE / "multi_gpu.yaml")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("iris plan: error: ")
    assert "--model-config" in lines[0] and "Traceback" not in captured.err


def test_cli_rejects_an_unknown_optimizer(tiny, tmp_path, capsys):
    path = _run_config(tmp_path, tiny["tied"], training={"optim": "adafactor"})
    argv = ["plan", str(path), "--accelerate-config", str(ACCELERATE / "multi_gpu.yaml")]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("iris plan: error: training.optim 'adafactor'")


def test_every_architecture_file_builds():
    files = sorted(ARCHITECTURES.glob("*.json"))
    assert len(files) > 0
    for path in files:
        config = json.loads(path.read_text())
        assert config["model_type"] and config["architectures"]
        size = model_size(load_architecture("unused", None, path), str(path))
        assert size.architecture == config["architectures"][0]


def test_qwen_tied_and_untied():
    """Qwen2.5-3B: 3.086B with its tied embeddings, 3.397B (+ 151936 × 2048) untied."""
    from transformers import AutoConfig

    path = ARCHITECTURES / "qwen2.5-3b.json"
    tied = model_size(load_architecture("unused", None, path), str(path))
    untied = model_size(AutoConfig.from_pretrained(path, tie_word_embeddings=False), str(path))
    assert round(tied.parameters / 1e9, 3) == 3.086
    assert untied.parameters - tied.parameters == 151936 * 2048
    assert round(untied.parameters / 1e9, 3) == 3.397


@pytest.mark.parametrize(
    ("model", "accelerate", "count"),
    [("zephyr-7b", "zero3", "7.242B"), ("qwen2.5-3b", "zero2", "3.086B")],
)
def test_paper_planning_commands(capsys, model, accelerate, count):
    """The two commands quoted in experiments/README.md ("Plan before you launch")."""
    argv = ["plan", str(ROOT / "experiments" / "configs" / model / "iris.yaml")]
    argv += ["--accelerate-config", str(ACCELERATE / f"{accelerate}.yaml"), "--gpus", "8"]
    argv += ["--model-config", str(ARCHITECTURES / f"{model}.json")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert count in printed and "global batch   64 = 8 per device" in printed
    assert "iterations 0-4" in printed and "fits in 80 GiB" in printed
    steps = math.ceil(50_000 / 64) * 2
    assert re.search(rf"optimisation steps +{steps:,}\n", printed)
    assert "warning" not in printed
