"""Every YAML under experiments/configs/ parses and validates against the real schemas.

Self-play configs go through ``load_config(SelfPlayConfig, path)`` and then build the
trainer config of every iteration (``IrisConfig``, or ``trl.SFTConfig`` for ``loss: sft``)
and the evaluator; accelerate configs through accelerate's own ``ClusterConfig``; sweep
files through the sweep tool's expansion (expected run counts). Offline, CPU only.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from experiments import sweep
from iris.config import SelfPlayConfig, load_config, load_yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs"
ALL = sorted(CONFIGS.rglob("*.yaml"))
ACCELERATE = [p for p in ALL if p.parent.name == "accelerate"]
SWEEPS = [p for p in ALL if p.parent.name == "sweeps"]
RUNS = [p for p in ALL if p not in ACCELERATE and p not in SWEEPS]  # every run config
METHODS = {"sft", "spin", "space", "spif", "tspin", "iris", "iris-adaptive"}
MODELS = {
    "zephyr-7b": (
        "alignment-handbook/zephyr-7b-sft-full",
        "ac6e600eefcce74f5e8bae1035d4f66019e93190",
    ),
    "qwen2.5-3b": ("Qwen/Qwen2.5-3B-Instruct", None),
}
PAPER = [p for p in RUNS if p.parent.name in MODELS]  # the paper's model × method grid
EXPECTED_RUNS = {"data-efficiency.yaml": 9, "alpha.yaml": 10}


def _rel(path: Path) -> str:
    return str(path.relative_to(CONFIGS))


def test_every_config_is_found():
    assert len(ALL) > 0 and ACCELERATE and SWEEPS and RUNS
    found = {(p.parent.name, p.stem) for p in PAPER}
    assert found == {(m, k) for m in MODELS for k in METHODS}


def _trainer_configs(config: SelfPlayConfig, output_dir: Path) -> list:
    """The trainer config of every iteration, built as the self-play driver builds it."""
    from iris.sft import sft_config
    from iris.trainer import IrisConfig

    built = []
    for t in range(config.iterations):
        training = config.training_for_iteration(t)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if training.get("loss") == "sft":
                built.append(sft_config(training, output_dir=output_dir))
            else:
                built.append(IrisConfig(output_dir=str(output_dir), iteration=t, **training))
    return built


@pytest.mark.parametrize("path", RUNS, ids=_rel)
def test_run_config_validates_for_every_iteration(path, tmp_path):
    from iris.evaluation import make_evaluator

    config = load_config(SelfPlayConfig, path)
    assert len(_trainer_configs(config, tmp_path)) == config.iterations
    if config.evaluation:
        make_evaluator(config.evaluation)


@pytest.mark.parametrize("path", PAPER, ids=_rel)
def test_paper_recipe(path, tmp_path):
    from iris.evaluation import make_evaluator

    config = load_config(SelfPlayConfig, path)
    name, revision = MODELS[path.parent.name]
    assert (config.model.name_or_path, config.model.revision) == (name, revision)
    assert config.data.source == "HuggingFaceH4/ultrachat_200k"
    assert config.data.split == "train_sft"
    assert "revision" in load_yaml(path)["data"]  # the field is spelled out, to be pinned
    assert config.generation.max_new_tokens == 256
    header = path.read_text().split("\n\n", 1)[0]
    assert "sweep.py" in header and str(path.relative_to(ROOT)) in header  # launch command
    sft = config.training.get("loss") == "sft"
    assert config.iterations == (1 if sft else 5)
    if not sft:
        assert config.data.n_train == 50_000
    for args in _trainer_configs(config, tmp_path):
        assert args.num_train_epochs == 2
        assert args.optim == "rmsprop" and args.weight_decay == 0.0
        assert args.warmup_steps == 0.1 and args.max_length == 2048
        # 8 GPUs × per-device × accumulation = the paper's global batch of 64
        assert 8 * args.per_device_train_batch_size * args.gradient_accumulation_steps == 64
        if not sft:
            assert args.precompute_ref_log_probs
    settings = [config.training_for_iteration(t) for t in range(config.iterations)]
    lrs = [s["learning_rate"] for s in settings]
    if path.stem == "spin":
        assert lrs == [5e-7, 5e-7, 1e-7, 1e-7, 1e-7]
        assert [s["beta"] for s in settings] == [0.1, 0.1, 0.1, 0.1, 5.0]
    else:
        assert set(lrs) == {5e-7}
    if path.stem == "tspin":
        assert [s["lam"] for s in settings] == [0.0, 0.1, 0.1, 0.1, 0.1]
    evaluator = make_evaluator(config.evaluation)
    assert config.evaluation["kind"] == "lm_eval" and evaluator.suite == "iris10"


@pytest.mark.parametrize("path", ACCELERATE, ids=_rel)
def test_accelerate_config(path):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(path))  # rejects unknown keys
    assert config.mixed_precision == "bf16" and not config.use_cpu
    assert config.num_processes == 8 * config.num_machines or path.stem == "single_gpu"
    kind = str(config.distributed_type).rsplit(".", 1)[-1]
    expected = {
        "single_gpu": ("NO", None),
        "multi_gpu": ("MULTI_GPU", None),
        "zero2": ("DEEPSPEED", 2),
        "zero3": ("DEEPSPEED", 3),
        "multi_node": ("DEEPSPEED", 3),
        "fsdp2": ("FSDP", 2),
    }[path.stem]
    assert kind == expected[0]
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == expected[1]
    if kind == "FSDP":
        assert config.fsdp_config["fsdp_version"] == expected[1]
    assert "main_process_ip" not in load_yaml(path)  # no host baked in


@pytest.mark.parametrize("path", SWEEPS, ids=_rel)
def test_sweep_expands(path, tmp_path):
    runs = sweep.expand(path, tmp_path)
    assert len(runs) == EXPECTED_RUNS[path.name]
    assert len({r.output_dir for r in runs}) == len(runs)
    for run in runs:
        assert run.output_dir.is_relative_to(tmp_path)
        config = run.load()
        assert config.output_dir == str(run.output_dir)
        for t in range(config.iterations):  # per-iteration lists still fit the overrides
            config.training_for_iteration(t)


def _gpu_benchmark():
    import importlib.util

    path = ROOT / "experiments" / "benchmarks" / "gpu_benchmark.py"
    spec = importlib.util.spec_from_file_location("gpu_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_cpu_checkable_parts(monkeypatch):
    import torch

    bench = _gpu_benchmark()
    args = bench.parse_args(["--model", "mistral-7b", "--configs", "iris,trl-sigmoid"])
    assert args.configs == ["iris", "trl-sigmoid"] and args.weights_dtype == "float32"
    with pytest.raises(SystemExit):
        bench.parse_args(["--configs", "nope"])
    # the real architectures, built locally: 3.09B and 7.24B parameters
    assert round(bench.parameter_count(bench.model_config("qwen2.5-3b")) / 1e9, 2) == 3.09
    assert round(bench.parameter_count(bench.model_config("mistral-7b")) / 1e9, 2) == 7.24
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        bench.main(["--skip-generation"])
