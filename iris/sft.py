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

    As for :class:`iris.trainer.IrisConfig`: bf16 follows the accelerate config under
    ``accelerate launch``, else is on only where a CUDA device supports it (TRL's default,
    bf16, is ~10× slower on CPU); ``use_cpu`` is switched on without an accelerator.
    """
    from trl import SFTConfig

    from iris.trainer._config import cpu_only, default_bf16

    values = {k: v for k, v in settings.items() if k != "loss"}
    if not values.get("use_cpu") and cpu_only():
        values["use_cpu"] = True  # as IrisConfig: one training under a multi-process launch
    if values.get("bf16") is None and not values.get("fp16"):
        values["bf16"] = default_bf16(bool(values.get("use_cpu")))
    return SFTConfig(output_dir=str(output_dir), **values)


def train_sft(
    model,
    tokenizer,
    train_dataset,
    args,
    *,
    resume: bool = True,
    desc: str = "train",
    peft_config=None,
):
    """Fine-tune ``model`` on ``train_dataset`` (a ``datasets.Dataset`` of :func:`sft_rows`)
    with ``args`` (:func:`sft_config`); checkpoints go to ``args.output_dir`` and a killed run
    resumes from the last one. Returns the trainer (the model is ``trainer.model``).

    With ``peft_config`` (e.g. a ``peft.LoraConfig``) only the adapter it adds is trained;
    ``trainer.model`` is then the PEFT model.

    Under several processes give every rank the same dataset loaded from disk
    (``load_from_disk``): TRL's tokenisation caches then lie beside it, written by the
    main process and read by the others.
    """
    from trl import SFTTrainer

    from iris.console import show_progress
    from iris.launch import check_trainer
    from iris.runs import last_complete_checkpoint
    from iris.trainer import MetricsFileCallback

    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        callbacks=[MetricsFileCallback()],  # <output_dir>/metrics.jsonl, as for self-play
        peft_config=peft_config,
    )
    check_trainer(trainer)  # the training the launcher asked for (iris.launch)
    show_progress(trainer, desc)  # one bar; the metrics go to metrics.jsonl
    checkpoint = last_complete_checkpoint(args.output_dir) if resume else None
    trainer.train(resume_from_checkpoint=checkpoint)
    return trainer
