"""A new user's mistakes, through the CLI: each fails in one plain line, before any stage.

Every case runs ``iris generate`` (the first job of the staged recipe) with one mistake and
checks: exit status 2, the culprit named on stderr, no traceback, no stage completed in the
run directory — and then that the corrected config runs in the same directory (a failed
start never locks a run).
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest
import torch

from iris.cli import main
from iris.config import ConfigError
from iris.tiny_models import save_tiny_model

WORDS = [f"w{i}" for i in range(24)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("bad_inputs")
    save_tiny_model(base / "model", WORDS, seed=0)
    rng = random.Random(0)
    rows = [
        {"prompt": f"{WORDS[i % 8]} {WORDS[i // 8]}", "real": " ".join(rng.sample(WORDS[8:], 3))}
        for i in range(24)
    ]
    (base / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return base


def _config(
    workspace: Path, name: str, *, model=None, data=None, backend="hf", top="", training=""
) -> Path:
    path = workspace / f"{name}.yaml"
    path.write_text(
        f"""
model: {{name_or_path: {model or workspace / "model"}}}
data: {{source: {data or workspace / "data.jsonl"}, n_train: 24}}
generation: {{backend: {backend}, max_new_tokens: 4, batch_size: 8, shard_size: 8}}
iterations: 2
{top}
training:
  loss: iris
  beta: 0.5
  per_device_train_batch_size: 4
  max_length: 64
  report_to: []
{training}
"""
    )
    return path


def _data(workspace: Path, name: str, content: bytes) -> Path:
    path = workspace / name
    path.write_bytes(content)
    return path


def _rows(workspace: Path) -> bytes:
    return (workspace / "data.jsonl").read_bytes()


# name → (config from the workspace, extra CLI arguments, message on stderr)
CASES = {
    "missing config file": (
        lambda w: w / "nope.yaml",
        [],
        "config file {w}/nope.yaml does not exist",
    ),
    "top-level typo": (
        lambda w: _config(w, "c", top="iteratons: 3"),
        [],
        "'iteratons'",
    ),
    "training typo": (
        lambda w: _config(w, "c", training="  learnig_rate: 0.1"),
        [],
        "training.learnig_rate: unknown key of the trainer config. Did you mean 'learning_rate'",
    ),
    "alpha 0": (
        lambda w: _config(w, "c", training="  alpha: 0"),
        [],
        "alpha must be > 0, got 0",
    ),
    "beta not a number": (
        lambda w: _config(w, "c", training="  beta: two"),
        [],
        "key 'training.beta': Input should be a valid number (got 'two')",
    ),
    "negative learning rate": (
        lambda w: _config(w, "c", training="  learning_rate: -0.05"),
        [],
        "training.learning_rate must be >= 0, got -0.05",
    ),
    "key of another loss": (
        lambda w: _config(w, "c", training="  mu: 0.5"),
        [],
        "`mu` does not apply to loss 'iris'",
    ),
    "bad override": (lambda w: _config(w, "c"), ["--data.n_train", "abc"], "--data.n_train"),
    "model path missing": (
        lambda w: _config(w, "c", model="/no/such/model"),
        [],
        "model.name_or_path: /no/such/model does not exist",
    ),
    "hub model not cached offline": (
        lambda w: _config(w, "c", model="someone/uncached-model"),
        [],
        "model.name_or_path: someone/uncached-model is neither a local directory nor a hub model",
    ),
    "data file missing": (
        lambda w: _config(w, "c", data="/no/such/data.jsonl"),
        [],
        "data.source: /no/such/data.jsonl does not exist",
    ),
    "non-UTF-8 data": (
        lambda w: _config(
            w,
            "c",
            data=_data(w, "latin1.jsonl", _rows(w) + b'{"prompt": "caf\xe9", "real": "x"}\n'),
        ),
        [],
        "latin1.jsonl line 25: not UTF-8 text (byte b'\\xe9')",
    ),
    "malformed JSON line": (
        lambda w: _config(w, "c", data=_data(w, "broken.jsonl", _rows(w) + b"{oops\n")),
        [],
        "broken.jsonl line 25: invalid JSON",
    ),
    "row without a response": (
        lambda w: _config(w, "c", data=_data(w, "field.jsonl", b'{"prompt": "p"}\n' + _rows(w))),
        [],
        "field.jsonl line 1: needs field 'messages' (chat), 'conversations' (ShareGPT) or "
        "fields 'prompt' and 'real'",
    ),
    "empty data file": (
        lambda w: _config(w, "c", data=_data(w, "empty.jsonl", b"")),
        [],
        "empty.jsonl: no rows",
    ),
    "repeated prompts": (
        lambda w: _config(
            w, "c", data=_data(w, "repeats.jsonl", b"".join(_rows(w).splitlines(True)[:20] * 2))
        ),
        [],
        "only 20 unique prompts are available (20 rows repeat an earlier prompt: line 21 repeats line 1",
    ),
    "iteration out of range": (
        lambda w: _config(w, "c"),
        ["--iteration", "2"],
        "--iteration 2 is outside this run's iterations 0..1",
    ),
    "negative iteration": (
        lambda w: _config(w, "c"),
        ["--iteration", "-1"],
        "--iteration -1 is outside this run's iterations 0..1",
    ),
    "tracker not installed": (
        lambda w: _config(w, "c", training="  report_to: [wandb]"),
        [],
        "training.report_to: WandbCallback requires wandb to be installed",
    ),
    "fp16 without a GPU": (
        lambda w: _config(w, "c", training="  fp16: true"),
        [],
        "training.fp16: fp16 mixed precision needs a GPU",
    ),
    "vLLM cannot run here": (
        lambda w: _config(w, "c", backend="vllm"),
        [],
        "generation.backend: ",
    ),
}

CANNOT_HAPPEN_HERE = {
    "tracker not installed": importlib.util.find_spec("wandb") is not None,
    "fp16 without a GPU": torch.cuda.is_available(),
    "vLLM cannot run here": importlib.util.find_spec("vllm") is not None,
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_mistake_fails_in_one_line_before_any_stage(case, workspace, tmp_path, capsys):
    if CANNOT_HAPPEN_HERE.get(case):
        pytest.skip("this mistake is not one on this machine")
    make, extra, message = CASES[case]
    config = make(workspace)
    out = tmp_path / "run"
    iteration = [] if "--iteration" in extra else ["--iteration", "0"]
    args = ["generate", "--config", str(config), "--output-dir", str(out), *iteration, *extra]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert error.startswith("iris generate: error: "), error
    assert message.format(w=workspace) in error, error
    assert "Traceback" not in error
    assert not list(out.rglob("*.DONE")), "a stage completed"
    assert not list(out.rglob("generated.jsonl")), "something was generated"

    fixed = _config(workspace, "fixed")
    good = ["generate", "--config", str(fixed), "--output-dir", str(out), "--iteration", "0"]
    assert main(good) == 0  # the corrected config runs in the same directory
    assert (out / "iter_0" / "generate.DONE").is_file()


def test_debug_shows_the_exception(workspace, tmp_path):
    config = str(_config(workspace, "debug"))
    args = ["generate", "--config", config, "--output-dir", str(tmp_path), "--iteration", "5"]
    with pytest.raises(ConfigError, match="outside"):
        main(["--debug", *args])
