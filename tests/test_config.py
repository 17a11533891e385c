"""iris.config: YAML → pydantic models, loud unknown keys, typed dotted overrides, round trips."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from iris.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    SelfPlayConfig,
    apply_overrides,
    config_help,
    from_dict,
    load_config,
    load_yaml,
    non_result_keys,
    parse_overrides,
    to_dict,
)

FULL_YAML = textwrap.dedent(
    """\
    # launch: iris selfplay --config this.yaml
    model:
      name_or_path: alignment-handbook/zephyr-7b-sft-full
      revision: ac6e600eefcce74f5e8bae1035d4f66019e93190
      dtype: bfloat16
    data:
      source: HuggingFaceH4/ultrachat_200k
      split: train_sft
      revision: 8049631c405ae6576f93f445c6b8166f76f5505a
      n_train: 50000
      n_heldout: 500
      seed: 1
    generation:
      backend: hf
      temperature: 1.0
      top_p: 0.95
      max_new_tokens: 256
      batch_size: 32
      vllm_kwargs: {gpu_memory_utilization: 0.9}
    training:
      loss: iris
      alpha: 0.5
      learning_rate: 5e-7       # YAML 1.1 would read this as a string
      per_device_train_batch_size: 8
      gradient_accumulation_steps: 1   # 8 GPUs x 8 x 1 = 64
      logging_steps: 10
    iterations: 3
    synthetic_from: previous_and_current
    learning_rates: [5e-7, 5e-7, 1e-7]
    betas: [0.1, 0.1, 5.0]
    seed: 7
    evaluation: {tasks: [gsm8k, mmlu]}
    output_dir: runs/zephyr-iris
    """
)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "zephyr-iris.yaml"
    path.write_text(FULL_YAML)
    return path


def write(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


MINIMAL = """\
model: {name_or_path: tiny}
data: {source: data.jsonl}
"""


def test_load_full_config(config_file):
    cfg = load_config(SelfPlayConfig, config_file)
    assert cfg.model.revision.startswith("ac6e600e")
    assert cfg.data.n_train == 50_000 and cfg.data.seed == 1
    assert cfg.generation.top_p == 0.95 and cfg.generation.vllm_kwargs == {
        "gpu_memory_utilization": 0.9
    }
    assert cfg.training["learning_rate"] == 5e-7 and isinstance(
        cfg.training["learning_rate"], float
    )
    assert cfg.learning_rates == [5e-7, 5e-7, 1e-7]
    assert cfg.synthetic_from == "previous_and_current"
    assert cfg.evaluation == {"tasks": ["gsm8k", "mmlu"]}


def test_yaml_round_trip(config_file, tmp_path):
    cfg = load_config(SelfPlayConfig, config_file)
    dumped = tmp_path / "resolved.yaml"
    dumped.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    again = load_config(SelfPlayConfig, dumped)
    assert again == cfg
    assert to_dict(again) == to_dict(cfg)
    assert json.loads(json.dumps(to_dict(cfg))) == to_dict(cfg)  # JSON-safe


def test_defaults_fill_missing_sections(tmp_path):
    cfg = load_config(SelfPlayConfig, write(tmp_path, MINIMAL))
    assert cfg.generation.backend == "hf" and cfg.generation.max_new_tokens == 256
    assert cfg.iterations == 5 and cfg.training == {} and cfg.output_dir is None


def test_yaml_float_syntax():
    assert load_yaml("a: 5e-7\nb: 1E3\nc: .inf\nd: 1_000\ne: '5e-7'") == {
        "a": 5e-7,
        "b": 1000.0,
        "c": float("inf"),
        "d": 1000,
        "e": "5e-7",
    }


def test_unknown_key_names_key_file_and_suggestion(tmp_path):
    path = write(tmp_path, MINIMAL + "data2: 1\n", name="bad.yaml")
    with pytest.raises(ConfigError) as err:
        load_config(SelfPlayConfig, path)
    assert (
        "bad.yaml" in str(err.value) and "'data2'" in str(err.value) and "'data'" in str(err.value)
    )

    path = write(
        tmp_path, "model: {name_or_path: tiny}\ndata: {source: x, n_trian: 5}\n", name="typo.yaml"
    )
    with pytest.raises(ConfigError, match=r"typo\.yaml.*'data\.n_trian'.*Did you mean 'n_train'"):
        load_config(SelfPlayConfig, path)


def test_wrong_types_and_missing_keys_are_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'iterations'.*integer.*'five'"):
        load_config(SelfPlayConfig, write(tmp_path, MINIMAL + "iterations: five\n"))
    with pytest.raises(ConfigError, match=r"missing required key 'model\.name_or_path'"):
        load_config(SelfPlayConfig, write(tmp_path, "model: {}\ndata: {source: x}\n"))
    with pytest.raises(ConfigError, match=r"'synthetic_from'.*one of"):
        load_config(SelfPlayConfig, write(tmp_path, MINIMAL + "synthetic_from: previous\n"))
    with pytest.raises(ConfigError, match=r"config\.yaml:3: key 'data\.skip_invalid'.*boolean"):
        load_config(
            SelfPlayConfig, write(tmp_path, MINIMAL + "data: {source: x, skip_invalid: 1}\n")
        )
    with pytest.raises(ConfigError, match=r"key 'data\.n_train'.*integer.*'100'"):
        load_config(
            SelfPlayConfig,
            write(tmp_path, "model: {name_or_path: m}\ndata:\n  source: x\n  n_train: '100'\n"),
        )


def test_post_init_validation_names_the_file(tmp_path):
    path = write(
        tmp_path, MINIMAL + "iterations: 3\nlearning_rates: [1e-6, 1e-7]\n", name="lr.yaml"
    )
    with pytest.raises(
        ConfigError, match=r"lr\.yaml.*learning_rates has 2 values but iterations = 3"
    ):
        load_config(SelfPlayConfig, path)
    with pytest.raises(ConfigError, match="top_p"):
        load_config(SelfPlayConfig, write(tmp_path, MINIMAL + "generation: {top_p: 0}\n"))


def test_overrides_are_parsed_with_field_types(config_file):
    cfg = load_config(
        SelfPlayConfig,
        config_file,
        [
            "--data.n_train",
            "14000",
            "--generation.temperature=0.7",
            "--data.skip_invalid",
            "yes",
            "--model.revision",
            "null",
            "--synthetic_from",
            "current",
            "--learning_rates",
            "1e-6,1e-6,2e-7",
            "--betas=[0.2, 0.2, 0.2]",
            "--training.beta",
            "0.1",
            "--training.report_to",
            "none",
            "--training.lr_scheduler_kwargs",
            "{min_lr: 1e-8}",
            "seed=3",
        ],
    )
    assert cfg.data.n_train == 14000 and isinstance(cfg.data.n_train, int)
    assert cfg.generation.temperature == 0.7
    assert cfg.data.skip_invalid is True
    assert cfg.model.revision is None
    assert cfg.synthetic_from == "current"
    assert cfg.learning_rates == [1e-6, 1e-6, 2e-7]
    assert cfg.betas == [0.2, 0.2, 0.2]
    assert cfg.training["beta"] == 0.1 and cfg.training["report_to"] is None
    assert cfg.training["lr_scheduler_kwargs"] == {"min_lr": 1e-8}
    assert cfg.training["loss"] == "iris"  # untouched keys of the mapping stay
    assert cfg.seed == 3


def test_override_errors(config_file):
    with pytest.raises(ConfigError, match=r"--data\.n_train.*integer.*'abc'"):
        load_config(SelfPlayConfig, config_file, ["--data.n_train", "abc"])
    with pytest.raises(ConfigError, match=r"'data\.n_trian'.*Did you mean 'n_train'"):
        load_config(SelfPlayConfig, config_file, ["--data.n_trian", "5"])
    with pytest.raises(ConfigError, match="is a section"):
        load_config(SelfPlayConfig, config_file, ["--data", "x"])
    with pytest.raises(ConfigError, match="needs a value"):
        parse_overrides(["--seed"])
    with pytest.raises(ConfigError, match="one of"):
        load_config(SelfPlayConfig, config_file, ["--generation.backend", "tgi"])


def test_parse_overrides_forms():
    assert parse_overrides(["--a.b", "1", "--c=2", "d.e=x=y", "--neg", "-1"]) == [
        ("a.b", "1"),
        ("c", "2"),
        ("d.e", "x=y"),
        ("neg", "-1"),
    ]
    # overrides also apply to a raw mapping without a file
    data = apply_overrides(
        SelfPlayConfig, {"model": {"name_or_path": "m"}}, [("data.source", "d.jsonl")]
    )
    assert from_dict(SelfPlayConfig, data).data.source == "d.jsonl"


def test_load_without_file_from_overrides_only():
    cfg = load_config(
        SelfPlayConfig, None, {"model.name_or_path": "tiny", "data.source": "x.jsonl"}
    )
    assert cfg.model.name_or_path == "tiny"


def test_non_result_keys():
    keys = non_result_keys(SelfPlayConfig)
    assert (
        "output_dir" in keys
        and "generation.shard_size" in keys
        and "training.logging_steps" in keys
    )
    assert "data.n_train" not in keys and "generation.batch_size" not in keys


def test_training_for_iteration(config_file):
    cfg = load_config(SelfPlayConfig, config_file)
    assert cfg.training_for_iteration(2)["learning_rate"] == 1e-7
    assert cfg.training_for_iteration(2)["beta"] == 5.0
    assert cfg.training["learning_rate"] == 5e-7  # the shared mapping is not mutated
    with pytest.raises(ValueError):
        cfg.training_for_iteration(3)


def test_per_iteration_training_keys(config_file):
    """T-SPIN's λ = 0 at iteration 0: any training key can take one value per iteration."""
    cfg = load_config(SelfPlayConfig, config_file, ["--per_iteration", '{"lam": [0.0, 0.1, 0.1]}'])
    assert [cfg.training_for_iteration(t)["lam"] for t in range(3)] == [0.0, 0.1, 0.1]
    with pytest.raises(ConfigError, match=r"per_iteration\.lam needs one value per iteration"):
        load_config(SelfPlayConfig, config_file, ["--per_iteration", '{"lam": [0.0]}'])


def test_every_field_has_help():
    rows = config_help(SelfPlayConfig)
    assert len(rows) > 20
    assert all(help_text for _, _, help_text in rows), [key for key, _, h in rows if not h]
    kinds = {key: kind for key, kind, _ in rows}
    assert kinds["model.name_or_path"] == "str, required"
    assert kinds["generation.max_new_tokens"] == "int = 256"


def test_selfplay_help_lists_every_key(capsys):
    from iris.cli import main

    with pytest.raises(SystemExit):
        main(["selfplay", "--help"])
    text = capsys.readouterr().out
    assert all(f"  {key} (" in text for key, _, _ in config_help(SelfPlayConfig))


def test_direct_construction_validates():
    with pytest.raises(ValueError, match="n_train"):
        DataConfig(source="x", n_train=0)
    cfg = SelfPlayConfig(model={"name_or_path": "m"}, data={"source": "d"})
    assert isinstance(cfg.model, ModelConfig) and cfg.data.split == "train_sft"


def test_locate_names_the_file_line_or_override(tmp_path):
    from iris.config import locate

    path = write(tmp_path, MINIMAL + "training:\n  loss: iris\n  beta: two\n")
    message = "key 'training.beta': Input should be a valid number (got 'two')"
    assert locate(message, path) == f"{path}:5: {message}"
    assert locate(message, path, ["--training.beta", "two"]).startswith("override --training.beta:")
    assert (
        locate("data.source: x does not exist", path) == f"{path}:2: data.source: x does not exist"
    )
    assert locate("--iteration 2 is outside", path) == "--iteration 2 is outside"


def test_iris_config_shows_every_resolved_key(config_file, capsys):
    from iris.cli import main

    assert main(["config", str(config_file), "--data.n_train", "7", "-v"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shown = dict(line.split(": ", 1) for line in lines)
    assert shown["data.n_train"].startswith("7  # int | None = 50000: Training pairs")
    assert shown["generation.backend"].startswith("\"hf\"  # 'hf' | 'vllm' | 'auto' = 'hf'")
    assert shown["training.learning_rate"].startswith("5e-07  # ")  # the trainer's own help
    assert all(
        f"{key}: " in "\n".join(lines)
        for key, _, _ in config_help(SelfPlayConfig)
        # model.lora is null here: its keys exist only when the section is set
        if not key.startswith(
            ("training", "evaluation", "per_iteration", "generation.vllm", "model.lora.")
        )
    )


def test_overrides_reach_an_optional_section():
    from iris.config import apply_overrides, config_help, from_dict

    raw = {"model": {"name_or_path": "m"}, "data": {"source": "d.jsonl"}}
    lora = apply_overrides(SelfPlayConfig, raw, [("model.lora.r", "8")])
    assert from_dict(SelfPlayConfig, lora).model.lora.r == 8
    assert apply_overrides(SelfPlayConfig, lora, [("model.lora", "null")])["model"]["lora"] is None
    with pytest.raises(ConfigError, match=r"unknown key 'model\.lora\.rank'.*\br\b"):
        apply_overrides(SelfPlayConfig, raw, [("model.lora.rank", "8")])
    with pytest.raises(ConfigError, match=r"'model\.lora' is a section; use --model\.lora\.KEY"):
        apply_overrides(SelfPlayConfig, raw, [("model.lora", "8")])
    keys = [row[0] for row in config_help(SelfPlayConfig)]
    assert "model.lora" in keys and "model.lora.lora_alpha" in keys
