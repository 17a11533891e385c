"""The console of a run, for people: a header per stage, one progress bar with ETA, one
summary line.

Metrics go to files (``metrics.jsonl``, ``manifest.json``) and trackers (``report_to``),
not to the terminal. For a command-line run, :func:`quiet_libraries` silences what tells a
user nothing there: the libraries' own bars (weights loading and saving, dataset maps),
their notices and deprecation warnings; ``iris --debug`` keeps them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Iterator
from typing import Any

from transformers import TrainerCallback

__all__ = ["TrainProgress", "quiet_libraries", "show_progress", "stage", "stage_summary"]


def quiet_libraries() -> None:
    """Library bars, notices and deprecation warnings off (a CLI run's console)."""
    import datasets
    import transformers

    from iris.trainer._config import cpu_only

    if cpu_only():  # else DeepSpeed's import warns that it picked the CPU
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    transformers.logging.set_verbosity_warning()  # error would also set disable_tqdm
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    for name in ("accelerate", "torch.distributed", "DeepSpeed", "lm_eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    libraries = r"(transformers|trl|torch|accelerate|datasets|deepspeed|peft)(\.|$)"
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=libraries)


def stage_summary(stage: str, info: dict[str, Any]) -> str:
    """One line of what a stage produced, from what it recorded in the manifest."""
    if stage == "data":
        return f"{info.get('train', '?')} training prompts, {info.get('heldout', 0)} held out"
    if stage in ("generate", "proto"):
        if "given" in info:
            return f"{info.get('rows', '?')} responses given by {info['given']}"
        text = f"{info.get('rows', '?')} responses"
        if info.get("truncated_fraction") is not None:
            text += f", {info['truncated_fraction']:.0%} cut at max_new_tokens"
        if info.get("generated_tokens") and info.get("generation_s"):
            text += f", {info['generated_tokens'] / info['generation_s']:.0f} tokens/s"
        return text
    if stage == "train":
        steps = info.get("steps", "?")
        text = f"{steps} step{'' if steps == 1 else 's'} on {info.get('rows', '?')} rows"
        if info.get("train_loss") is not None:
            text += f", mean loss {info['train_loss']:.4g}"
        return text
    if stage == "eval" and info.get("scores"):
        shown = {k: v for k, v in info["scores"].items() if v == v}  # NaN: nothing to show
        scores = ", ".join(f"{k} {v:.4g}" for k, v in list(shown.items())[:3])
        return scores + (" …" if len(shown) > 3 else "")
    return "done"


@contextlib.contextmanager
def stage(run, name: str, iteration: int | None = None, *, show: bool = True) -> Iterator[dict]:
    """``run.stage(...)`` with a header line before it and a summary line after it."""
    label = name if iteration is None else f"iteration {iteration} · {name}"
    if show:
        print(f"── {label}", flush=True)
    start = time.perf_counter()
    with run.stage(name, iteration) as info:
        yield info
    if show:
        print(f"   {stage_summary(name, info)} ({time.perf_counter() - start:.1f} s)", flush=True)


class TrainProgress(TrainerCallback):
    """One bar over the training steps with ETA, the latest loss and α beside it; replaces
    transformers' ProgressCallback/PrinterCallback, which print every logged dict."""

    def __init__(self, desc: str = "train") -> None:
        self.desc, self.bar = desc, None

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if state.is_world_process_zero and not args.disable_tqdm:
            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, desc=self.desc, unit="step"
            )

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            shown = {"loss": logs["loss"], "α": logs.get("alpha")}
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items() if v is not None})

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def show_progress(trainer, desc: str) -> None:
    """Give ``trainer`` the console's progress bar instead of the printed metric dicts."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(TrainProgress(desc))
