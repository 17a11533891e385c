"""IrisTrainer and IrisConfig on a tiny model (CPU): losses, metrics, schedules, bad inputs.

The exactness of the IRIS weight normalisation across gradient accumulation and processes
is tested in ``test_trainer_distributed.py``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
from pathlib import Path

import pytest
import torch
from _trainer_common import (
    config_kwargs,
    flat_parameters,
    make_model_dirs,
    make_rows,
    response_logps,
    train_iris,
)
from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    HfArgumentParser,
    MixtralConfig,
    MixtralForCausalLM,
)
from trl import DPOConfig, DPOTrainer

import iris.trainer as iris_trainer
from iris.losses import LOSSES
from iris.schedules import AdaptiveSchedule, adaptive_alpha
from iris.trainer import (
    METRICS_FILE,
    SCHEDULE_FILE,
    AlphaScheduleCallback,
    IrisConfig,
    IrisDataCollator,
    IrisTrainer,
    loss_spec,
)


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Path:
    policy, _ = make_model_dirs(tmp_path_factory.mktemp("models"))
    return policy


def _trainer(policy: Path, rows, output_dir: Path, **overrides) -> IrisTrainer:
    return IrisTrainer(
        AutoModelForCausalLM.from_pretrained(policy),
        args=IrisConfig(**config_kwargs(output_dir, **overrides)),
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(policy),
    )


# What a dashboard keyed on TRL's DPOTrainer reads (chosen = real, rejected = generated).
TRL_DASHBOARD_KEYS = {
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
}


def _metrics_file(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / METRICS_FILE).read_text().splitlines()]


# --------------------------------------------------------------------------------------
# IrisConfig
# --------------------------------------------------------------------------------------


def test_config_defaults(tmp_path):
    config = IrisConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    assert config.loss == "iris"
    assert config.bf16 is False  # DPOConfig defaults to bf16=True, ~10x slower on CPU
    assert config.precompute_ref_log_probs is True
    assert config.weight_normalization == "global"
    assert config.logging_steps == 1


def test_every_iris_field_has_help():
    own = [f for f in dataclasses.fields(IrisConfig) if f.name in IrisConfig.__annotations__]
    assert len(own) >= 10
    for f in own:
        assert f.metadata.get("help"), f.name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"loss": "dpo"}, "unknown loss"),
        ({"alpha": 0.0}, "alpha must be"),
        ({"alpha": -1.0}, "alpha must be"),
        ({"loss": "spin", "alpha": 0.5}, "`alpha` does not apply to loss 'spin'"),
        ({"mu": 2.0}, "`mu` does not apply to loss 'iris'"),
        ({"loss": "space", "bound": 1.0}, "`bound` does not apply"),
        ({"loss": "spin", "lam": 0.1}, "`lam` does not apply"),
        (
            {"loss": "spin", "alpha_schedule": {"name": "constant", "alpha": 1.0}},
            "does not apply to loss 'spin'",
        ),
        ({"alpha": 1.0, "alpha_schedule": "adaptive"}, "not both"),
        ({"alpha_schedule": {"name": "exponential"}}, "unknown alpha schedule"),
        ({"alpha_schedule": {"name": "linear", "steps": 3}}, "unknown parameter"),
        ({"alpha_schedule": {"name": "adaptive", "alpha_min": 3.0}}, "alpha_min"),
        ({"loss": "spin", "weight_normalization": "micro_batch"}, "does not apply to loss 'spin'"),
        ({"weight_normalization": "rank"}, "weight_normalization must be"),
        ({"loss": "space", "mu": -1.0}, "mu must be"),
        ({"loss": "tspin", "lam": -0.1}, "lam must be"),
        ({"loss_type": ["ipo"]}, "loss_type"),
        ({"ld_alpha": 0.5}, "ld_alpha"),
        ({"use_weighting": True}, "use_weighting"),
        ({"truncation_mode": "keep_end"}, "truncation_mode"),
    ],
)
def test_config_rejects_invalid_options(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        IrisConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, **overrides)


def test_config_accepts_loss_specific_options(tmp_path):
    IrisConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, loss="space", mu=2.0)
    IrisConfig(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, loss="tspin", lam=0.0, scale=2.0
    )
    config = IrisConfig(
        output_dir=str(tmp_path),
        report_to="none",
        use_cpu=True,
        alpha_schedule='{"name": "cosine"}',
    )
    assert config.alpha_schedule == {"name": "cosine"}


def test_config_parses_from_the_command_line(tmp_path):
    parser = HfArgumentParser(IrisConfig)
    common = ["--output_dir", str(tmp_path), "--report_to", "none", "--use_cpu", "true"]
    (config,) = parser.parse_args_into_dataclasses(
        [*common, "--loss", "space", "--mu", "2", "--no_activation_checkpointing"]
    )
    assert (config.loss, config.mu, config.activation_checkpointing) == ("space", 2.0, False)
    (config,) = parser.parse_args_into_dataclasses(
        [*common, "--alpha_schedule", '{"name": "cosine"}']
    )
    assert config.alpha_schedule == {"name": "cosine"}


# --------------------------------------------------------------------------------------
# Dispatch by signature, collator
# --------------------------------------------------------------------------------------


def test_loss_specs_follow_the_signatures():
    assert loss_spec("iris").groups == ("real", "generated")
    assert loss_spec("iris").normalizer is not None
    assert loss_spec("spin").normalizer is None
    assert loss_spec("tspin").groups == ("real", "generated", "proto")
    assert loss_spec("tspin").tensor_names == ("real_logps", "generated_logps", "proto_logps")
    assert loss_spec("iris").required_hyperparameters() == {"alpha"}


def test_trainer_has_no_loss_names():
    """The trainer dispatches by signature: no loss name appears in its code."""
    package = Path(inspect.getfile(iris_trainer)).parent
    for module in ("_trainer.py", "_dispatch.py", "_collator.py", "_dataset.py"):
        # The hub tag "iris" names the project, not the loss.
        lines = (package / module).read_text().splitlines()
        source = "\n".join(line for line in lines if "_tag_names" not in line)
        for name in LOSSES:
            assert f'"{name}"' not in source and f"'{name}'" not in source, (module, name)


def test_collator_stacks_extra_groups_and_marks_truncation():
    collator = IrisDataCollator(pad_token_id=0, max_length=6, extra_groups=("proto",))
    examples = [
        {
            "prompt_ids": [5, 6],
            "chosen_ids": [7],
            "rejected_ids": [8, 9],
            "proto_ids": [10, 11, 12, 13, 14],
            "iris_row": 4,
        },
        {
            "prompt_ids": [5],
            "chosen_ids": [7, 7],
            "rejected_ids": [9],
            "proto_ids": [10],
            "iris_row": 9,
        },
    ]
    batch = collator(examples)
    assert batch["input_ids"].shape == (6, 6)
    assert batch["row_index"].tolist() == [4, 9]
    # rows: real (2), generated (2), proto (2); the first proto (2 + 5 tokens) exceeds max_length 6.
    assert batch["truncated"].tolist() == [False, False, False, False, True, False]
    assert batch["input_ids"][4].tolist() == [5, 6, 10, 11, 12, 13]
    assert batch["completion_mask"][4].tolist() == [0, 0, 1, 1, 1, 1]
    assert batch["completion_mask"][5].tolist() == [0, 1, 0, 0, 0, 0]


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


def test_spin_matches_trl_sigmoid_dpo(policy, tmp_path):
    """SPIN through IrisTrainer = TRL's DPOTrainer with loss_type sigmoid (same data, seed, SGD).

    SPIN's loss mean_i softplus(−β((log p_θ − log p_θt)(y_i) − (log p_θ − log p_θt)(y'_i))) is
    DPO's sigmoid loss with the annotated response as "chosen" and the synthetic one as
    "rejected". Two SGD steps of 2 × 2 accumulation: the second step starts away from the
    reference, so the losses and updates are not those of the fixed point.
    """
    rows = make_rows(8, seed=3)
    common = {
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 2,
        "max_steps": 2,
        "learning_rate": 0.5,
        "beta": 0.1,
    }
    _, iris_update, iris_rows = train_iris(
        policy, Dataset.from_list(rows), tmp_path / "iris", loss="spin", **common
    )

    model = AutoModelForCausalLM.from_pretrained(policy)
    before = flat_parameters(model)
    trl_rows = [
        {"prompt": r["prompt"], "chosen": r["real"], "rejected": r["generated"]} for r in rows
    ]
    trainer = DPOTrainer(
        model,
        args=DPOConfig(
            **config_kwargs(tmp_path / "trl", **common),
            loss_type=["sigmoid"],
            precompute_ref_log_probs=True,
        ),
        train_dataset=Dataset.from_list(trl_rows),
        processing_class=AutoTokenizer.from_pretrained(policy),
    )
    trainer.train()
    trl_update = flat_parameters(trainer.model) - before
    trl_logged = [row for row in trainer.state.log_history if "loss" in row]

    assert float((iris_update - trl_update).norm() / trl_update.norm()) < 1e-5
    assert [r["loss"] for r in iris_rows] == pytest.approx(
        [r["loss"] for r in trl_logged], rel=1e-5
    )
    assert iris_rows[1]["loss"] != pytest.approx(math.log(2), abs=1e-4)  # moved off the fixed point
    for ours, theirs in zip(iris_rows, trl_logged, strict=True):
        assert ours["rewards/margin"] == pytest.approx(
            theirs["rewards/margins"], rel=1e-4, abs=1e-7
        )
        assert ours["logps/real"] == pytest.approx(theirs["logps/chosen"], rel=1e-5)
        assert ours["logps/generated"] == pytest.approx(theirs["logps/rejected"], rel=1e-5)
        for key in TRL_DASHBOARD_KEYS:  # TRL's names, with TRL's values
            assert ours[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-7), key
    assert iris_rows[1]["rewards/accuracies"] not in (0.0, 1.0)  # a fraction, compared as TRL does


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_registry_loss_trains(policy, tmp_path, loss):
    rows = make_rows(8, seed=1)
    trainer, update, logged = train_iris(
        policy,
        Dataset.from_list(rows),
        tmp_path,
        loss=loss,
        per_device_train_batch_size=4,
        max_steps=3,
        learning_rate=0.1,
    )
    assert update.abs().max() > 0
    assert len(logged) == 3
    for row in logged:
        for key, value in row.items():
            assert math.isfinite(value), (key, value)
    expected = {
        "loss",
        "grad_norm",
        "learning_rate",
        "tokens_per_second",
        "rewards/margin",
        "rewards/real_std",
        "rewards/generated_std",
        "num_tokens",
    }
    expected |= {
        f"{kind}/{group}" for kind in ("logps", "logratios") for group in ("real", "generated")
    }
    expected |= {
        f"weights/{side}_{stat}"
        for side in ("real", "generated")
        for stat in ("ess_fraction", "max_weight")
    }
    expected |= TRL_DASHBOARD_KEYS
    assert expected <= set(logged[0])
    assert ("alpha" in logged[0]) == (loss == "iris")
    assert "logps/proto" in logged[0] or "proto" not in trainer.loss_spec.groups
    file_rows = [row for row in _metrics_file(tmp_path) if "loss" in row]
    assert [row["step"] for row in file_rows] == [1, 2, 3]
    assert logged[0]["rewards/real_std"] == 0.0  # θ = θt at the first step: every reward is 0
    assert logged[-1]["rewards/real_std"] > 0.0
    assert file_rows[-1]["loss"] == pytest.approx(logged[-1]["loss"])
    assert TRL_DASHBOARD_KEYS <= set(file_rows[-1])
    last = logged[-1]
    assert last["rewards/margins"] == last["rewards/margin"]
    assert last["logps/chosen"] == last["logps/real"]
    assert last["logps/rejected"] == last["logps/generated"]
    beta = trainer.args.beta
    assert last["rewards/chosen"] == pytest.approx(beta * last["logratios/real"], rel=1e-6)
    assert last["rewards/chosen"] - last["rewards/rejected"] == pytest.approx(
        last["rewards/margins"], rel=1e-5, abs=1e-9
    )
    assert "aux_loss" not in last  # a dense model has no router


def test_tspin_sees_the_proto_responses(policy, tmp_path):
    """The collator's third group reaches T-SPIN: logged mean log-probs match a plain forward."""
    rows = make_rows(8, seed=9)
    trainer, _, logged = train_iris(
        policy, Dataset.from_list(rows), tmp_path, loss="tspin", per_device_train_batch_size=8
    )
    data = trainer.train_dataset
    model = AutoModelForCausalLM.from_pretrained(policy)
    for group, column in (
        ("real", "chosen_ids"),
        ("generated", "rejected_ids"),
        ("proto", "proto_ids"),
    ):
        values = [
            response_logps(model, p, r)
            for p, r in zip(data["prompt_ids"], data[column], strict=True)
        ]
        assert logged[0][f"logps/{group}"] == pytest.approx(sum(values) / len(values), rel=1e-5), (
            group
        )
    assert data["proto_ids"] != data["rejected_ids"]


def test_alpha_schedule_is_followed_and_logged(policy, tmp_path):
    _, _, logged = train_iris(
        policy,
        Dataset.from_list(make_rows(8, seed=2)),
        tmp_path,
        alpha_schedule={"name": "linear", "start": 2.0, "end": 0.5},
        per_device_train_batch_size=2,
        max_steps=4,
        learning_rate=0.01,
    )
    assert [row["alpha"] for row in logged] == pytest.approx([2.0, 1.5, 1.0, 0.5])
    record = json.loads((tmp_path / SCHEDULE_FILE).read_text())
    assert record["config"]["name"] == "linear"


def test_adaptive_alpha_follows_the_reference_gap(policy, tmp_path):
    """D̂ = mean per-token log p_θt(y') − mean per-token log p_θt(y), measured with the policy at construction.

    Recomputed here with a plain forward of the untouched model; α is the adaptive map of
    D̂ against the D̂₀ carried over (as by the self-play loop) in the schedule's state.
    """
    rows = make_rows(8, seed=4)
    schedule = AdaptiveSchedule(
        alpha_min=0.5, alpha_max=2.0, gap="reference", update="step", smoothing=0.0
    )
    schedule.load_state_dict({"initial_gap": 0.05, "current_gap": None, "observations": 1})
    trainer = IrisTrainer(
        AutoModelForCausalLM.from_pretrained(policy),
        args=IrisConfig(
            **config_kwargs(
                tmp_path, per_device_train_batch_size=4, max_steps=2, learning_rate=0.01
            )
        ),
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(policy),
        alpha_schedule=schedule,
    )
    data = trainer.train_dataset
    model = AutoModelForCausalLM.from_pretrained(policy)
    per_token = {}
    for column in ("chosen_ids", "rejected_ids"):
        values = [
            response_logps(model, prompt, response) / len(response)
            for prompt, response in zip(data["prompt_ids"], data[column], strict=True)
        ]
        per_token[column] = sum(values) / len(values)
    gap = per_token["rejected_ids"] - per_token["chosen_ids"]

    trainer.train()
    logged = [row for row in trainer.state.log_history if "loss" in row]
    assert logged[0]["gap/reference"] == pytest.approx(gap, rel=1e-4, abs=1e-6)
    assert logged[0]["alpha"] == pytest.approx(adaptive_alpha(gap, 0.05, 0.5, 2.0))
    state = json.loads((tmp_path / SCHEDULE_FILE).read_text())["state"]
    assert state["initial_gap"] == 0.05
    assert state["current_gap"] == pytest.approx(gap, rel=1e-4, abs=1e-6)


def test_metrics_file_is_written_fresh(policy, tmp_path):
    (tmp_path / METRICS_FILE).write_text('{"step": 7, "loss": 123.0}\n')
    train_iris(
        policy,
        Dataset.from_list(make_rows(4)),
        tmp_path,
        loss="spin",
        per_device_train_batch_size=4,
    )
    rows = _metrics_file(tmp_path)
    assert all(row.get("loss") != 123.0 for row in rows)
    assert rows[0]["step"] == 1


def test_resume_keeps_metrics_up_to_the_checkpoint_and_restores_the_schedule(policy, tmp_path):
    rows = make_rows(8, seed=5)
    overrides = {
        "per_device_train_batch_size": 2,
        "max_steps": 3,
        "learning_rate": 0.05,
        "save_strategy": "steps",
        "save_steps": 1,
        "alpha_schedule": {"name": "adaptive", "gap": "variational", "normalizer": "max"},
    }
    first = _trainer(policy, rows, tmp_path, **overrides)
    first.train()
    first_rows = [row for row in _metrics_file(tmp_path) if "loss" in row]
    assert (
        json.loads((tmp_path / "checkpoint-1" / SCHEDULE_FILE).read_text())["state"]["observations"]
        == 1
    )

    # The iteration's trainer is rebuilt from θt (the reference), then resumes the checkpoint's weights.
    second = _trainer(policy, rows, tmp_path, **overrides)
    second.train(resume_from_checkpoint=str(tmp_path / "checkpoint-1"))
    resumed_rows = [row for row in _metrics_file(tmp_path) if "loss" in row]
    assert [row["step"] for row in resumed_rows] == [1, 2, 3]
    assert resumed_rows[0] == first_rows[0]
    for ours, theirs in zip(resumed_rows[1:], first_rows[1:], strict=True):
        assert ours["alpha"] == pytest.approx(theirs["alpha"])
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-5)


@pytest.mark.parametrize("restore", ["transformers", "callback", "legacy checkpoint"])
def test_schedule_state_travels_in_the_trainer_state(policy, tmp_path, restore):
    """The schedule's state is in each checkpoint's trainer_state.json (stateful_callbacks).

    Resuming restores it whether transformers rebuilds the callback
    (``restore_callback_states_from_checkpoint``) or not; a checkpoint whose trainer state
    has no entry (written before it had one) is restored from its alpha_schedule.json.
    """
    rows = make_rows(6, seed=5)
    overrides = {
        "per_device_train_batch_size": 2,
        "max_steps": 2,
        "learning_rate": 0.05,
        "save_strategy": "steps",
        "save_steps": 1,
        "alpha_schedule": {"name": "adaptive", "gap": "variational", "normalizer": "max"},
        "restore_callback_states_from_checkpoint": restore == "transformers",
    }
    first = _trainer(policy, rows, tmp_path, **overrides)
    first.train()
    checkpoint = tmp_path / "checkpoint-1"
    saved = json.loads((checkpoint / "trainer_state.json").read_text())["stateful_callbacks"]
    record = json.loads((checkpoint / SCHEDULE_FILE).read_text())
    assert saved[AlphaScheduleCallback.__name__]["args"]["state"] == record["state"]
    assert record["state"]["observations"] == 1
    if restore == "legacy checkpoint":
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        del state["stateful_callbacks"][AlphaScheduleCallback.__name__]
        (checkpoint / "trainer_state.json").write_text(json.dumps(state))

    second = _trainer(policy, rows, tmp_path, **overrides)
    second.train(resume_from_checkpoint=str(checkpoint))
    alphas = [row["alpha"] for row in second.state.log_history if "loss" in row]
    assert alphas == pytest.approx(
        [row["alpha"] for row in first.state.log_history if "loss" in row]
    )
    assert second.alpha_schedule.state_dict() == first.alpha_schedule.state_dict()
    final = json.loads((tmp_path / SCHEDULE_FILE).read_text())
    assert final["state"] == first.alpha_schedule.state_dict()


def test_evaluate_reports_the_loss_and_metrics(policy, tmp_path):
    trainer = IrisTrainer(
        AutoModelForCausalLM.from_pretrained(policy),
        args=IrisConfig(**config_kwargs(tmp_path, per_device_eval_batch_size=4)),
        train_dataset=Dataset.from_list(make_rows(4, seed=6)),
        eval_dataset=Dataset.from_list(make_rows(6, seed=7)),
        processing_class=AutoTokenizer.from_pretrained(policy),
    )
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] == pytest.approx(0.0, abs=1e-6)  # θ = θt: all rewards are zero
    assert math.isfinite(metrics["eval_logps/real"])
    assert metrics["eval_weights/generated_ess_fraction"] == pytest.approx(1.0)
    assert {f"eval_{key}" for key in TRL_DASHBOARD_KEYS} <= set(metrics)
    assert metrics["eval_logps/chosen"] == metrics["eval_logps/real"]
    assert (
        metrics["eval_rewards/accuracies"] == 0.0
    )  # equal rewards: the annotated one is not larger


def test_compute_metrics_is_rejected_at_construction(policy, tmp_path):
    """The fused LM head builds no logits: a compute_metrics would never be called, so it is refused."""
    with pytest.raises(ValueError, match=r"does not take compute_metrics.*eval_rewards/accuracies"):
        IrisTrainer(
            AutoModelForCausalLM.from_pretrained(policy),
            args=IrisConfig(**config_kwargs(tmp_path)),
            train_dataset=Dataset.from_list(make_rows(4)),
            processing_class=AutoTokenizer.from_pretrained(policy),
            compute_metrics=lambda prediction: {"accuracy": 1.0},
        )


@pytest.mark.parametrize("precompute", [True, False], ids=["precomputed", "live"])
def test_lora_reference_is_the_adapter_at_construction(policy, tmp_path, precompute):
    """Self-play with LoRA: θt includes the adapter trained so far; the reference must be it.

    TRL copies an existing adapter into a frozen "ref" adapter (a new one is compared with
    the adapter-disabled model). At the first step the log-ratios are zero, and only the
    trained adapter's weights move.
    """
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(
        AutoModelForCausalLM.from_pretrained(policy),
        peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
    )
    with torch.no_grad():  # an adapter trained in earlier iterations: B ≠ 0
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.3)
    trainer = IrisTrainer(
        model,
        args=IrisConfig(
            **config_kwargs(
                tmp_path,
                per_device_train_batch_size=8,
                max_steps=2,
                learning_rate=0.5,
                precompute_ref_log_probs=precompute,
            )
        ),
        train_dataset=Dataset.from_list(make_rows(8, seed=11)),
        processing_class=AutoTokenizer.from_pretrained(policy),
    )
    data = trainer.train_dataset
    adapted = [
        response_logps(trainer.model, p, r)
        for p, r in zip(data["prompt_ids"], data["chosen_ids"], strict=True)
    ]
    with trainer.model.disable_adapter():
        base = [
            response_logps(trainer.model, p, r)
            for p, r in zip(data["prompt_ids"], data["chosen_ids"], strict=True)
        ]
    assert max(abs(a - b) for a, b in zip(adapted, base, strict=True)) > 0.05
    if precompute:
        assert data["ref_chosen_logps"] == pytest.approx(adapted, abs=1e-4)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    logged = [row for row in trainer.state.log_history if "loss" in row]
    assert logged[0]["logratios/real"] == pytest.approx(0.0, abs=1e-5)
    moved = {
        name for name, p in trainer.model.named_parameters() if not torch.equal(p, before[name])
    }
    assert moved and all("lora_" in name and ".default." in name for name in moved)


# --------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------


def test_missing_columns_are_named(policy, tmp_path):
    rows = [{k: v for k, v in row.items() if k != "generated"} for row in make_rows(4)]
    with pytest.raises(ValueError, match=r"missing column\(s\) \['generated'\]"):
        _trainer(policy, rows, tmp_path)
    renamed = [
        {"prompt": r["prompt"], "chosen": r["real"], "rejected": r["generated"]}
        for r in make_rows(4)
    ]
    with pytest.raises(ValueError, match="rename 'chosen' to 'real'"):
        _trainer(policy, renamed, tmp_path)
    without_proto = [{k: v for k, v in row.items() if k != "proto"} for row in make_rows(4)]
    with pytest.raises(ValueError, match=r"missing column\(s\) \['proto'\]"):
        _trainer(policy, without_proto, tmp_path, loss="tspin")


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_responses_are_named(policy, tmp_path, empty):
    rows = make_rows(6)
    rows[4]["generated"][0]["content"] = empty
    with pytest.raises(ValueError, match="train dataset row 4: column 'generated' is empty"):
        _trainer(policy, rows, tmp_path)
    plain = [
        {"prompt": "w1 w2", "real": " w3", "generated": " w4"},
        {"prompt": "w1", "real": "", "generated": " w5"},
    ]
    with pytest.raises(ValueError, match="row 1: column 'real' is empty"):
        _trainer(policy, plain, tmp_path)


def test_long_responses_are_truncated_and_counted(policy, tmp_path, caplog):
    rows = make_rows(8, seed=8, response_length=(6, 9))
    rows[2]["prompt"][0]["content"] = " ".join(["w1"] * 20)  # the prompt alone exceeds max_length
    with caplog.at_level(logging.WARNING):
        trainer, update, logged = train_iris(
            policy, Dataset.from_list(rows), tmp_path, per_device_train_batch_size=7, max_length=12
        )
    assert "1 of 8 rows of the train dataset were dropped" in caplog.text
    assert "responses exceed max_length=12" in caplog.text
    assert 2 not in trainer.train_dataset["iris_row"]
    assert logged[0]["truncated/real"] > 0 and logged[0]["truncated/generated"] > 0
    assert math.isfinite(logged[0]["loss"]) and update.abs().max() > 0


def test_non_finite_policy_log_probs_stop_before_any_update_or_checkpoint(policy, tmp_path):
    trainer = _trainer(
        policy,
        make_rows(8),
        tmp_path,
        per_device_train_batch_size=4,
        save_strategy="steps",
        save_steps=1,
    )
    with torch.no_grad():
        trainer.model.lm_head.weight[7].fill_(float("nan"))
    with pytest.raises(
        FloatingPointError,
        match=r"optimisation step 1: non-finite policy log-prob .* row \d+, response 'real'",
    ):
        trainer.train()
    assert not list(tmp_path.glob("checkpoint-*"))
    with pytest.raises(FloatingPointError, match="non-finite parameters"):
        trainer.save_model(str(tmp_path / "final"))
    assert not (tmp_path / "final").exists()


def test_non_finite_log_ratios_of_the_whole_batch_are_named(policy, tmp_path):
    """With gradient accumulation the check happens in the whole-batch forward, before any backward."""
    trainer = _trainer(
        policy, make_rows(8), tmp_path, per_device_train_batch_size=2, gradient_accumulation_steps=2
    )
    with torch.no_grad():
        trainer.model.model.embed_tokens.weight.fill_(float("inf"))
    with pytest.raises(
        FloatingPointError, match=r"optimisation step 1: non-finite .* row \d+, response 'real'"
    ):
        trainer.train()


def test_non_finite_loss_of_finite_log_probs_stops_before_the_update(policy, tmp_path):
    """A loss that is non-finite although its inputs are finite (an overflow) is caught with the
    step's metrics, before the optimiser update, even in an earlier micro-batch of the step."""
    trainer = _trainer(
        policy, make_rows(8), tmp_path, per_device_train_batch_size=2, gradient_accumulation_steps=2
    )
    spec = trainer.loss_spec
    calls = []

    def overflowing(real_logratios, generated_logratios, *, beta=0.1):
        out = spec.function(real_logratios, generated_logratios, alpha=1.0, beta=beta)
        calls.append(len(calls))
        loss = out.loss * (math.inf if len(calls) == 1 else 1.0)  # the first micro-batch only
        return dataclasses.replace(out, loss=loss)

    trainer.loss_spec = dataclasses.replace(
        spec,
        function=overflowing,
        hyperparameters={"beta": inspect.Parameter("beta", inspect.Parameter.KEYWORD_ONLY)},
        normalizer=None,
        normalizer_tensor_names=(),
    )
    before = flat_parameters(trainer.model)
    with pytest.raises(
        FloatingPointError,
        match=r"optimisation step 1: the loss is non-finite \((nan|inf)\) although all log-probs are finite",
    ):
        trainer.train()
    assert len(calls) == 2
    assert torch.equal(flat_parameters(trainer.model), before)


def test_moe_aux_loss_is_logged_as_trl_logs_it(policy, tmp_path):
    """A mixture-of-experts model: the router's load-balancing loss is added with its coefficient
    and logged as ``aux_loss``, the values TRL's DPOTrainer adds and logs (SPIN = TRL's sigmoid)."""
    tokenizer = AutoTokenizer.from_pretrained(policy)
    config = MixtralConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        moe = MixtralForCausalLM(config)
    moe.save_pretrained(tmp_path / "moe")
    tokenizer.save_pretrained(tmp_path / "moe")
    rows = make_rows(8, seed=3)
    common = {
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 2,
        "max_steps": 2,
        "learning_rate": 0.05,
        "beta": 0.1,
    }
    trainer, _, ours = train_iris(
        tmp_path / "moe", Dataset.from_list(rows), tmp_path / "iris", loss="spin", **common
    )
    assert trainer.aux_loss_enabled and trainer.router_aux_loss_coef == pytest.approx(0.001)
    # θ = θt at the first step: SPIN's loss is log 2, the rest is the weighted aux loss.
    assert ours[0]["loss"] == pytest.approx(
        math.log(2) + trainer.router_aux_loss_coef * ours[0]["aux_loss"], rel=1e-6
    )

    trl = DPOTrainer(
        MixtralForCausalLM.from_pretrained(tmp_path / "moe"),
        args=DPOConfig(
            **config_kwargs(tmp_path / "trl", **common),
            loss_type=["sigmoid"],
            precompute_ref_log_probs=True,
        ),
        train_dataset=Dataset.from_list(
            [{"prompt": r["prompt"], "chosen": r["real"], "rejected": r["generated"]} for r in rows]
        ),
        processing_class=tokenizer,
    )
    trl.train()
    theirs = [row for row in trl.state.log_history if "loss" in row]
    for our_row, their_row in zip(ours, theirs, strict=True):
        assert our_row["aux_loss"] == pytest.approx(their_row["aux_loss"], rel=1e-5)
        assert our_row["loss"] == pytest.approx(their_row["loss"], rel=1e-5)
    assert "aux_loss" in _metrics_file(tmp_path / "iris")[0]


def test_non_finite_reference_log_probs_are_named(policy, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(policy)
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(
        FloatingPointError,
        match="train dataset row 0, response 'real': the reference log-prob is nan",
    ):
        IrisTrainer(
            model,
            args=IrisConfig(**config_kwargs(tmp_path)),
            train_dataset=Dataset.from_list(make_rows(4)),
            processing_class=AutoTokenizer.from_pretrained(policy),
        )


def test_trainer_needs_an_iris_config(policy, tmp_path):
    with pytest.raises(TypeError, match="IrisConfig"):
        IrisTrainer(
            AutoModelForCausalLM.from_pretrained(policy),
            args=DPOConfig(output_dir=str(tmp_path), report_to="none", bf16=False),
            train_dataset=Dataset.from_list(make_rows(4)),
        )


def test_unterminated_generations_get_no_eos(policy, tmp_path):
    """String rows: TRL appends EOS to every response; rows flagged ``<group>_truncated``
    (cut at max_new_tokens) have it removed again, terminated ones keep it."""
    tokenizer = AutoTokenizer.from_pretrained(policy)
    eos = tokenizer.eos_token
    rows = [
        {
            "prompt": "<|user|> w1 <|assistant|>",
            "real": " w2 w3 <eos>",
            "generated": " w4 w5",
            "generated_truncated": True,
            "proto": " w6",
            "proto_truncated": True,
        },
        {
            "prompt": "<|user|> w2 <|assistant|>",
            "real": " w3 <eos>",
            "generated": " w7 <eos>",
            "generated_truncated": False,
            "proto": " w8 <eos>",
            "proto_truncated": False,
        },
    ]
    assert eos == "<eos>"
    data = _trainer(policy, rows, tmp_path, loss="tspin").train_dataset
    eos_id = tokenizer.eos_token_id
    by_row = dict(
        zip(
            data["iris_row"],
            zip(data["rejected_ids"], data["proto_ids"], data["chosen_ids"], strict=True),
            strict=True,
        )
    )
    generated, proto, real = by_row[0]
    assert generated[-1] != eos_id and proto[-1] != eos_id and real[-1] == eos_id
    generated, proto, real = by_row[1]
    assert generated[-1] == eos_id and proto[-1] == eos_id and generated.count(eos_id) == 1
