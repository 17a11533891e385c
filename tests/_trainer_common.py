"""Shared builders for the trainer tests and their multi-process helper script.

Imported by ``tests/test_trainer*.py`` (pytest puts ``tests/`` on ``sys.path``) and by
``tests/_trainer_ddp.py`` (run with torchrun; its own directory is on ``sys.path``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from iris.tiny_models import save_tiny_model

WORDS = [f"w{i}" for i in range(24)]
MODEL_KWARGS = {"hidden_size": 32, "num_layers": 2, "num_heads": 2}


def make_rows(
    n: int, seed: int = 0, response_length: tuple[int, int] = (2, 7)
) -> list[dict[str, Any]]:
    """Conversational self-play rows: prompt, real, generated and proto responses of random words."""
    rng = random.Random(seed)

    def text(length: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(length))

    def assistant(length: int) -> list[dict[str, str]]:
        return [{"role": "assistant", "content": text(length)}]

    return [
        {
            "prompt": [{"role": "user", "content": text(rng.randint(1, 4))}],
            "real": assistant(rng.randint(*response_length)),
            "generated": assistant(rng.randint(*response_length)),
            "proto": assistant(rng.randint(*response_length)),
        }
        for _ in range(n)
    ]


def make_model_dirs(root: Path, noise: float = 0.0) -> tuple[Path, Path]:
    """A tiny policy and a reference: the same model with Gaussian noise of scale ``noise`` on its weights."""
    policy = save_tiny_model(root / "policy", WORDS, seed=0, **MODEL_KWARGS)
    model = AutoModelForCausalLM.from_pretrained(policy)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(noise * torch.randn(parameter.shape, generator=generator))
    reference = root / "reference"
    model.save_pretrained(reference)
    AutoTokenizer.from_pretrained(policy).save_pretrained(reference)
    return policy, reference


def save_dataset(rows: list[dict[str, Any]], directory: Path) -> Path:
    Dataset.from_list(rows).save_to_disk(os.fspath(directory))
    return directory


def config_kwargs(output_dir: Path, **overrides: Any) -> dict[str, Any]:
    """IrisConfig arguments for exact CPU comparisons: plain SGD, lr 1 (update = −gradient), no clipping."""
    kwargs: dict[str, Any] = {
        "output_dir": os.fspath(output_dir),
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "activation_checkpointing": False,
        "optim": "sgd",
        "learning_rate": 1.0,
        "lr_scheduler_type": "constant",
        "max_grad_norm": 0.0,
        "weight_decay": 0.0,
        "max_steps": 1,
        "save_strategy": "no",
        "logging_steps": 1,
        "seed": 0,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }
    kwargs.update(overrides)
    return kwargs


def flat_parameters(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).to(torch.float64).cpu() for p in model.parameters()])


def train_iris(
    policy: Path,
    dataset: Dataset,
    output_dir: Path,
    *,
    reference: Path | None = None,
    **overrides: Any,
):
    """Build and train an IrisTrainer; return (trainer, parameter update, logged step rows)."""
    from iris.trainer import IrisConfig, IrisTrainer

    model = AutoModelForCausalLM.from_pretrained(policy)
    before = flat_parameters(model)
    ref_model = AutoModelForCausalLM.from_pretrained(reference) if reference is not None else None
    trainer = IrisTrainer(
        model,
        ref_model=ref_model,
        args=IrisConfig(**config_kwargs(output_dir, **overrides)),
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(policy),
    )
    trainer.train()
    update = flat_parameters(trainer.model) - before
    rows = [row for row in trainer.state.log_history if "loss" in row]
    return trainer, update, rows


def response_logps(model: torch.nn.Module, prompt_ids: list[int], response_ids: list[int]) -> float:
    """log p(response | prompt) summed over the response tokens, by a plain forward."""
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logprobs = model(ids).logits.log_softmax(-1)[0, len(prompt_ids) - 1 : -1]
    return float(logprobs.gather(1, torch.tensor(response_ids)[:, None]).sum())
