"""analysis and paper_figures.make_all on a plain TRL DPOTrainer output folder (tiny model, CPU)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _records import select
from _trainer_common import make_model_dirs
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

from analysis import load_runs
from paper_figures import make_all as make_all_module


def train_dpo(root: Path, *, report_to: str = "none") -> Path:
    """Two DPO steps of a tiny model, a checkpoint at the end: what a plain TRL run leaves."""
    policy, _ = make_model_dirs(root / "models")

    def say(role: str, text: str) -> list[dict[str, str]]:
        return [{"role": role, "content": text}]

    rows = [
        {
            "prompt": say("user", f"w{i}"),
            "chosen": say("assistant", f"w{i + 2} w3"),
            "rejected": say("assistant", f"w{i + 4}"),
        }
        for i in range(8)
    ]
    output_dir = root / "trl_run"
    args = DPOConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        max_steps=2,
        logging_steps=1,
        save_strategy="steps",
        save_steps=2,
        report_to=report_to,
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = DPOTrainer(
        AutoModelForCausalLM.from_pretrained(policy),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(policy),
    )
    trainer.train()
    return output_dir


@pytest.fixture(scope="module")
def trl_run(tmp_path_factory) -> Path:
    return train_dpo(tmp_path_factory.mktemp("trl"))


def test_load_runs_reads_a_trl_output_folder(trl_run, tmp_path):
    assert list(trl_run.glob("checkpoint-*/trainer_state.json"))  # the log history lives there
    records = load_runs(trl_run.parent)
    (run,) = records.runs.values()
    assert (run.run, run.loss, run.method) == ("trl_run", "dpo", "DPO")
    loss = select(records, stage="train", metric="loss")
    assert [(r.iteration, r.step) for r in loss] == [(0, 1), (0, 2)]
    assert all(r.value > 0 for r in loss)
    assert {"rewards/chosen", "logps/chosen", "rewards/margins"} <= set(records.metric)
    # make_all draws the training curves from it; what needs self-play runs is skipped.
    report = make_all_module.make_all(trl_run.parent, tmp_path, only=["fig_training_curves"])
    assert report.ok and list(report.built) == ["fig_training_curves"]
    assert (tmp_path / "training_curves.png").stat().st_size > 2000


def test_tensorboard_events_alone_are_read(tmp_path):
    pytest.importorskip("tensorboard")
    output_dir = train_dpo(tmp_path, report_to="tensorboard")
    for checkpoint in output_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    records = load_runs(output_dir.parent)
    assert [r.step for r in select(records, stage="train", metric="loss")] == [1, 2]
