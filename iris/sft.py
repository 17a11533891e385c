"""Supervised fine-tuning on the annotated responses, on TRL's ``SFTTrainer``.

This module owns the SFT baseline of the paper (SFT on the same annotated data, e.g. the
full 200k UltraChat pairs for 2 epochs) and the embedded testbed's warm start. Rows are
formatted exactly as the self-play rows are (:func:`iris.data.format_prompt` for the
prompt, :func:`iris.data.format_completion` for the response, ending at the chat
template's end-of-turn token), and the loss is on the completion tokens only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iris.data import format_completion, format_prompts

SFT_LOSS = "sft"


def sft_rows(records: Sequence[Mapping[str, Any]], tokenizer) -> list[dict[str, str]]:
    """``{"prompt", "completion"}`` rows for TRL's prompt-completion format."""
    prompts = format_prompts(tokenizer, [r["prompt"] for r in records])
    return [
        {"prompt": prompt, "completion": format_completion(tokenizer, r["prompt"], r["real"])}
        for r, prompt in zip(records, prompts, strict=True)
    ]


def sft_config(settings: Mapping[str, Any], *, output_dir: str | Path):
    """A ``trl.SFTConfig`` from a run's ``training`` mapping (its ``loss: sft`` removed).

    bf16 defaults to on only where a CUDA device supports it (TRL's default, bf16, is ~10×
    slower on CPU).
    """
    import torch
    from trl import SFTConfig

    values = {k: v for k, v in settings.items() if k != "loss"}
    if "bf16" not in values:
        values["bf16"] = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return SFTConfig(output_dir=str(output_dir), **values)


def train_sft(
    model,
    tokenizer,
    records: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    *,
    output_dir: str | Path,
    resume: bool = True,
):
    """Fine-tune ``model`` on ``records``; checkpoints go to ``output_dir`` and a killed
    run resumes from the last one. Returns the trainer (the model is ``trainer.model``)."""
    from datasets import Dataset
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTTrainer

    args = sft_config(settings, output_dir=output_dir)
    from iris.trainer import MetricsFileCallback

    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(sft_rows(records, tokenizer)),
        processing_class=tokenizer,
        callbacks=[MetricsFileCallback()],  # <output_dir>/metrics.jsonl, as for self-play
    )
    checkpoint = None
    if resume and Path(output_dir).is_dir():
        checkpoint = get_last_checkpoint(str(output_dir))
    trainer.train(resume_from_checkpoint=checkpoint)
    return trainer
