"""Training and generation throughput on one GPU, at the real architectures' sizes.

    python experiments/benchmarks/gpu_benchmark.py [--model qwen2.5-3b|mistral-7b]
        [--batch 4] [--prompt-tokens 256] [--response-tokens 512] [--steps 10] [--warmup 3]
        [--configs trl-sigmoid,trl-sigmoid-live,iris,iris-live] [--gen-prompts 256]
        [--gen-new-tokens 256] [--skip-generation] [--json OUT.json]

One command on a single H100/H200. The model is random-initialised from the architecture
files in ``experiments/configs/architectures/`` (no download; ``iris plan`` reads the same
files): Qwen2.5-3B (``qwen2.5-3b.json``, 3.1B parameters) or Mistral-7B, the architecture
of Zephyr-7B (``zephyr-7b.json``, 7.2B). The tokenizer is a word-level one
(one word = one token, ids far below the real vocabulary size, which the embedding keeps),
so the sequence lengths are exact.

Training (each configuration in its own subprocess, so peak memory is its own): bf16
autocast, RMSProp, activation checkpointing, ``--batch`` pairs per step (each pair is two
sequences of prompt + response tokens), ``--steps`` timed steps after ``--warmup``:

- ``trl-sigmoid`` / ``trl-sigmoid-live``: ``trl.DPOTrainer`` with the sigmoid (SPIN/DPO)
  loss, reference log-probs precomputed before training / computed live by a second model;
- ``iris`` / ``iris-live``: :class:`iris.trainer.IrisTrainer`, IRIS loss (α = 2, global
  weight normalisation), the same two reference modes.

Reported: training tokens/s (prompt + response tokens of both sequences of every pair,
over the timed steps, with ``torch.cuda.synchronize``), MFU = tokens/s × FLOPs per token /
peak, with FLOPs per token from TRL's ``trl.trainer.utils.compute_flops_per_token``
(forward + backward = 3 × forward, non-causal attention convention; the live reference's
extra forward is not counted as useful work) and the peak from TRL's
``get_peak_flops(device, "bfloat16")`` (989 TFLOP/s dense bf16 for H100 SXM and H200; a
device not in TRL's table falls back to 989e12, said in the output); the trainer's
construction time (including the reference precompute); peak GPU memory
(``torch.cuda.max_memory_allocated``, from just before the model is built).

Generation: new tokens/s of :class:`iris.generation.HFBackend` (bf16) and of
:class:`iris.generation.VLLMBackend` (``gpu_memory_utilization`` 0.85), ``--gen-prompts``
prompts sampled at temperature 1 to ``--gen-new-tokens`` tokens (a random model seldom
stops early); vLLM is reported as "not installed" when it is missing.

The weights are kept in float32 for training (``--weights-dtype``; bf16 autocast
computes), as DeepSpeed/FSDP would keep master weights: Mistral-7B then needs ~90 GB
(weights, gradients, RMSProp state) before activations — an H200, or
``--weights-dtype bfloat16`` on an 80 GB H100 (pure-bf16 weights; say so when quoting).
It fails at once, with a message, where no CUDA device is visible.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ARCHITECTURES = REPO / "experiments" / "configs" / "architectures"
ARCHITECTURE_FILES = {"qwen2.5-3b": "qwen2.5-3b.json", "mistral-7b": "zephyr-7b.json"}
FALLBACK_PEAK_FLOPS = 989e12  # dense bf16, H100 SXM (TRL's table gives the same for H200)
CONFIGS = {
    # name: (trainer, loss, precompute reference log-probs)
    "trl-sigmoid": ("trl", "sigmoid", True),
    "trl-sigmoid-live": ("trl", "sigmoid", False),
    "iris": ("iris", "iris", True),
    "iris-live": ("iris", "iris", False),
}
NO_CUDA_MESSAGE = (
    "gpu_benchmark.py needs a CUDA GPU, and none is visible (torch.cuda.is_available() is "
    "False). Run it on an H100/H200 machine; on CPU use generation_benchmark.py and "
    "iteration_benchmark.py."
)
WORDS = [f"w{i}" for i in range(4000)]


def model_config(name: str):
    """The architecture of the real model, read from its file in ``ARCHITECTURES`` (no download)."""
    from transformers import AutoConfig

    if name not in ARCHITECTURE_FILES:
        raise ValueError(f"unknown model {name!r}; use {' or '.join(ARCHITECTURE_FILES)}")
    return AutoConfig.from_pretrained(ARCHITECTURES / ARCHITECTURE_FILES[name])


def parameter_count(config) -> int:
    """Parameters of the architecture, from the config (no weights allocated)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def training_args(name: str, args: argparse.Namespace, output_dir: str) -> Any:
    """The trainer config of one configuration (IrisConfig or trl.DPOConfig)."""
    trainer, loss, precompute = CONFIGS[name]
    common = {
        "output_dir": output_dir,
        "report_to": "none",
        "bf16": True,
        "optim": "rmsprop",
        "weight_decay": 0.0,
        "learning_rate": 5e-7,
        "lr_scheduler_type": "constant",
        "per_device_train_batch_size": args.batch,
        "gradient_accumulation_steps": 1,
        "max_steps": args.warmup + args.steps,
        "max_length": args.prompt_tokens + args.response_tokens + 16,
        "activation_checkpointing": True,
        "precompute_ref_log_probs": precompute,
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "seed": 0,
    }
    if trainer == "trl":
        from trl import DPOConfig

        return DPOConfig(**common, loss_type=[loss])
    from iris.trainer import IrisConfig

    return IrisConfig(**common, loss=loss, alpha=2.0, weight_normalization="global")


def _rows(n: int, prompt_tokens: int, response_tokens: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k))

    return [
        {
            "prompt": [{"role": "user", "content": text(prompt_tokens)}],
            "real": [{"role": "assistant", "content": text(response_tokens)}],
            "generated": [{"role": "assistant", "content": text(response_tokens)}],
        }
        for _ in range(n)
    ]


def _tokens_per_pair(tokenizer, row: dict) -> int:
    """Tokens of the two sequences (prompt + response each) of one pair, template included."""
    return sum(
        len(
            tokenizer.apply_chat_template(
                row["prompt"] + row[key], tokenize=True, return_dict=False
            )
        )
        for key in ("real", "generated")
    )


def _peak_flops() -> tuple[float, str]:
    import torch
    from trl.trainer.utils import get_peak_flops

    device = torch.cuda.get_device_name(0)
    peak = get_peak_flops(device, "bfloat16")
    if peak is None:
        return FALLBACK_PEAK_FLOPS, f"{device} not in TRL's table: assumed H100 SXM 989 TFLOP/s"
    return peak, f"{device}: {peak / 1e12:.0f} TFLOP/s dense bf16 (TRL's table)"


def _train_child(name: str, args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl.trainer.utils import compute_flops_per_token

    from iris.tiny_models import make_word_tokenizer

    trainer_kind = CONFIGS[name][0]
    tokenizer = make_word_tokenizer(WORDS)
    config = model_config(args.model)
    config.pad_token_id, config.bos_token_id = tokenizer.pad_token_id, tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    rows = _rows(args.batch * (args.warmup + args.steps), args.prompt_tokens, args.response_tokens)
    tokens_per_step = args.batch * _tokens_per_pair(tokenizer, rows[0])

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_end(self, *unused, **kwargs):
            torch.cuda.synchronize()
            self.times.append(time.perf_counter())

    clock = Clock()
    torch.cuda.reset_peak_memory_stats()
    dtype = getattr(torch, args.weights_dtype)
    with tempfile.TemporaryDirectory() as tmp:
        train_args = training_args(name, args, tmp)
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        dataset = Dataset.from_list(rows)
        start = time.perf_counter()
        if trainer_kind == "trl":
            from trl import DPOTrainer

            trainer = DPOTrainer(
                model,
                args=train_args,
                train_dataset=dataset.rename_columns({"real": "chosen", "generated": "rejected"}),
                processing_class=tokenizer,
                callbacks=[clock],
            )
        else:
            from iris.trainer import IrisTrainer

            trainer = IrisTrainer(
                model,
                args=train_args,
                train_dataset=dataset,
                processing_class=tokenizer,
                callbacks=[clock],
            )
        construction = time.perf_counter() - start
        trainer.train()
    timed = clock.times[args.warmup - 1 :]
    seconds = timed[-1] - timed[0]
    tokens_per_s = tokens_per_step * (len(timed) - 1) / seconds
    seq_len = args.prompt_tokens + args.response_tokens
    flops_per_token = compute_flops_per_token(config, seq_len)
    peak, peak_note = _peak_flops()
    return {
        "config": name,
        "tokens_per_step": tokens_per_step,
        "steps_per_s": (len(timed) - 1) / seconds,
        "tokens_per_s": tokens_per_s,
        "mfu": tokens_per_s * flops_per_token / peak,
        "flops_per_token": flops_per_token,
        "peak_note": peak_note,
        "construction_s": construction,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def _generation_child(backend_name: str, args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from iris.data import format_prompts
    from iris.generation import HFBackend, SamplingParams, vllm_installed
    from iris.tiny_models import make_word_tokenizer

    if backend_name == "vllm" and not vllm_installed():
        return {"backend": "vllm", "status": "not installed"}
    tokenizer = make_word_tokenizer(WORDS)
    config = model_config(args.model)
    config.pad_token_id, config.bos_token_id = tokenizer.pad_token_id, tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    rng = random.Random(0)
    prompts = format_prompts(
        tokenizer,
        [
            " ".join(rng.choice(WORDS) for _ in range(args.prompt_tokens))
            for _ in range(args.gen_prompts)
        ],
    )
    params = SamplingParams(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=args.gen_new_tokens)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if backend_name == "hf":
            with torch.device("cuda"):
                model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
            model.generation_config.do_sample = False
            backend = HFBackend(model, tokenizer, batch_size=args.gen_batch)
        else:
            from iris.generation import VLLMBackend

            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            del model
            backend = VLLMBackend(
                tmp, dtype="bfloat16", gpu_memory_utilization=0.85, tokenizer=tokenizer
            )
        backend.generate(prompts[: min(8, len(prompts))], params, seed=1)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        generations = backend.generate(prompts, params, seed=0)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    tokens = sum(g.num_tokens for g in generations)
    return {
        "backend": backend_name,
        "status": "ok",
        "prompts": len(prompts),
        "new_tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
    }


def _run_child(kind: str, name: str, argv: list[str]) -> dict:
    command = [sys.executable, __file__, *argv, "--child", f"{kind}:{name}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout)[-3000:]
        return {"config" if kind == "train" else "backend": name, "status": f"failed: {tail}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def training_table(rows: list[dict]) -> str:
    lines = [
        "| configuration | tokens/step | steps/s | tokens/s | MFU | construction s | peak memory GiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "tokens_per_s" not in r:
            lines.append(f"| {r['config']} | {r.get('status', '?')[:120]} | | | | | |")
            continue
        lines.append(
            f"| {r['config']} | {r['tokens_per_step']} | {r['steps_per_s']:.3f} | "
            f"{r['tokens_per_s']:.0f} | {100 * r['mfu']:.1f}% | {r['construction_s']:.1f} | "
            f"{r['peak_memory_gib']:.1f} |"
        )
    return "\n".join(lines)


def generation_table(rows: list[dict]) -> str:
    lines = [
        "| backend | prompts | new tokens | seconds | new tokens/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['backend']} | {r.get('status', '?')[:120]} | | | |")
            continue
        lines.append(
            f"| {r['backend']} | {r['prompts']} | {r['new_tokens']} | {r['seconds']:.1f} | "
            f"{r['tokens_per_s']:.0f} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=tuple(ARCHITECTURE_FILES), default="qwen2.5-3b")
    parser.add_argument("--batch", type=int, default=4, help="pairs per training step")
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--response-tokens", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps (>= 1)")
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"comma-separated subset of {', '.join(CONFIGS)}",
    )
    parser.add_argument(
        "--weights-dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="training weights",
    )
    parser.add_argument("--gen-prompts", type=int, default=256)
    parser.add_argument("--gen-new-tokens", type=int, default=256)
    parser.add_argument("--gen-batch", type=int, default=64, help="HF backend batch size")
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    if args.warmup < 1 or args.steps < 1:
        raise SystemExit("--warmup and --steps must be >= 1")
    return args


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit(NO_CUDA_MESSAGE)


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    require_cuda()
    os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    if args.child:
        kind, name = args.child.split(":", 1)
        result = _train_child(name, args) if kind == "train" else _generation_child(name, args)
        print(json.dumps(result))
        return 0
    parent_argv = [a for a in raw if not a.startswith("--child")]
    n_params = parameter_count(model_config(args.model))
    print(
        f"{args.model}: {n_params / 1e9:.2f}B parameters (random init), weights {args.weights_dtype}, "
        f"bf16 autocast, batch {args.batch} pairs × 2 × ({args.prompt_tokens} + "
        f"{args.response_tokens}) tokens\n",
        flush=True,
    )
    results: dict[str, Any] = {"model": args.model, "parameters": n_params}
    if not args.skip_training:
        train = [_run_child("train", name, parent_argv) for name in args.configs]
        results["training"] = train
        notes = {r["peak_note"] for r in train if "peak_note" in r}
        print(training_table(train))
        print(f"\nMFU peak: {'; '.join(sorted(notes)) or 'n/a'}\n", flush=True)
    if not args.skip_generation:
        gen = [_run_child("generate", name, parent_argv) for name in ("hf", "vllm")]
        results["generation"] = gen
        print(generation_table(gen))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
