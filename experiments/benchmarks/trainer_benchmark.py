"""Speed and memory of IrisTrainer against plain trl.DPOTrainer on a tiny model (CPU).

Prints a Markdown table. Every configuration runs in its own subprocess (so peak memory
is its own): speed is measured over the training steps after a warm-up, both as steps
per CPU-second of the process (``time.process_time``, one torch thread: insensitive to
other jobs on a shared machine) and as wall-clock steps/s (trainer construction,
including the reference precompute, is reported separately), peak memory
is the child process's peak resident set size (``resource.getrusage(RUSAGE_SELF)
.ru_maxrss``; it includes the ~0.5 GB of imported libraries, so the increase over the RSS
measured just before the trainer is built is reported too). Configurations are run
round-robin ``--repeats`` times and the median is reported, because the machine may be
shared.

Usage:
    python experiments/benchmarks/trainer_benchmark.py [--steps 30] [--repeats 3] [--threads 1]

Compared at equal settings (model, data, batch, AdamW, fp32, no activation checkpointing):
TRL's sigmoid DPO loss, IrisTrainer with SPIN (the same function) and IRIS, with the
reference log-probs precomputed or computed live by a reference model, and, with
gradient accumulation, IRIS's exact global weight normalisation against the cheap
per-micro-batch one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# name: (trainer, loss, precompute reference, weight normalisation, micro-batch, accumulation)
CONFIGS: dict[str, tuple[str, str, bool, str | None, int, int]] = {
    "trl-sigmoid": ("trl", "sigmoid", True, None, 8, 1),
    "iris-spin": ("iris", "spin", True, None, 8, 1),
    "iris-iris": ("iris", "iris", True, "global", 8, 1),
    "trl-sigmoid-live": ("trl", "sigmoid", False, None, 8, 1),
    "iris-spin-live": ("iris", "spin", False, None, 8, 1),
    "iris-iris-live": ("iris", "iris", False, "global", 8, 1),
    "trl-sigmoid-ga2": ("trl", "sigmoid", True, None, 4, 2),
    "iris-spin-ga2": ("iris", "spin", True, None, 4, 2),
    "iris-iris-ga2-global": ("iris", "iris", True, "global", 4, 2),
    "iris-iris-ga2-micro": ("iris", "iris", True, "micro_batch", 4, 2),
}
# Which TRL configuration each row is compared with.
BASELINE = {
    name: ("trl-sigmoid-ga2" if name.endswith(("ga2", "global", "micro")) else "trl-sigmoid")
    for name in CONFIGS
}
for _name in CONFIGS:
    if _name.endswith("-live"):
        BASELINE[_name] = "trl-sigmoid-live"

WORDS = [f"w{i}" for i in range(2000)]
MODEL = {"hidden_size": 256, "num_layers": 4, "num_heads": 4}


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    return [
        {
            "prompt": [{"role": "user", "content": text(5, 15)}],
            "real": [{"role": "assistant", "content": text(20, 40)}],
            "generated": [{"role": "assistant", "content": text(20, 40)}],
        }
        for _ in range(n)
    ]


def _child(config_name: str, root: Path, steps: int, warmup: int, threads: int) -> dict:
    """Run one configuration; return its measurements."""
    os.environ.update(
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", TQDM_DISABLE="1"
    )
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from iris.trainer import IrisConfig, IrisTrainer

    torch.set_num_threads(threads)
    trainer_kind, loss, precompute, normalization, batch, accumulation = CONFIGS[config_name]

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[tuple[float, float]] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append((time.perf_counter(), time.process_time()))

    common = {
        "output_dir": str(root / f"out-{config_name}"),
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "activation_checkpointing": False,
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": accumulation,
        "max_steps": warmup + steps,
        "learning_rate": 1e-5,
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "precompute_ref_log_probs": precompute,
        "seed": 0,
    }
    # A private copy of the data: TRL caches reference log-probs next to the dataset's files,
    # and every run should pay for its own precompute.
    data = Path(tempfile.mkdtemp(prefix=f"data-{config_name}-", dir=root))
    shutil.copytree(root / "data", data, dirs_exist_ok=True)
    dataset = load_from_disk(str(data))
    tokenizer = AutoTokenizer.from_pretrained(root / "model")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(root / "model")
    clock = Clock()
    if trainer_kind == "trl":
        dataset = dataset.rename_columns({"real": "chosen", "generated": "rejected"})
        trainer = DPOTrainer(
            model,
            args=DPOConfig(**common, loss_type=[loss]),
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[clock],
        )
    else:
        extra = {"weight_normalization": normalization} if normalization else {}
        trainer = IrisTrainer(
            model,
            args=IrisConfig(**common, loss=loss, **extra),
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[clock],
        )
    init_seconds = time.perf_counter() - start
    trainer.train()
    timed = clock.times[warmup - 1 :]
    return {
        "steps_per_second": (len(timed) - 1) / (timed[-1][0] - timed[0][0]),
        "steps_per_cpu_second": (len(timed) - 1) / (timed[-1][1] - timed[0][1]),
        "init_seconds": init_seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_increase_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before)
        / 1024,
    }


def _prepare(root: Path, rows: int) -> None:
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    from datasets import Dataset

    from iris.tiny_models import save_tiny_model

    save_tiny_model(root / "model", WORDS, **MODEL)
    Dataset.from_list(_rows(rows)).save_to_disk(str(root / "data"))


def _run(config_name: str, root: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        config_name,
        "--root",
        str(root),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(args.threads)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{config_name} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _table(results: dict[str, list[dict]], args: argparse.Namespace) -> str:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    lines = [
        "| configuration | trainer | loss | reference | normalisation | batch | steps/CPU-s | vs TRL (CPU) | "
        "steps/s wall | vs TRL (wall) | construction s | peak RSS MiB | RSS increase MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, (kind, loss, precompute, normalization, batch, accumulation) in CONFIGS.items():
        cpu, wall = median(name, "steps_per_cpu_second"), median(name, "steps_per_second")
        cpu_base = median(BASELINE[name], "steps_per_cpu_second")
        wall_base = median(BASELINE[name], "steps_per_second")
        lines.append(
            f"| {name} | {kind} | {loss} | {'precomputed' if precompute else 'live model'} | "
            f"{normalization or '—'} | {batch} × {accumulation} | {cpu:.2f} | {cpu / cpu_base - 1:+.1%} | "
            f"{wall:.2f} | {wall / wall_base - 1:+.1%} | {median(name, 'init_seconds'):.2f} | "
            f"{median(name, 'peak_rss_mib'):.0f} | {median(name, 'rss_increase_mib'):.0f} |"
        )
    spread = {
        n: (min(r["steps_per_cpu_second"] for r in rs), max(r["steps_per_cpu_second"] for r in rs))
        for n, rs in results.items()
    }
    lines.append("")
    lines.append(
        f"Tiny Llama ({MODEL['hidden_size']} hidden, {MODEL['num_layers']} layers, vocab {len(WORDS) + 6}), "
        f"{args.rows} conversational rows (prompts 5-15 words, responses 20-40), global batch 8, AdamW, fp32, CPU, "
        f"{args.threads} thread(s); {args.steps} timed steps after {args.warmup} warm-up, median of {args.repeats} "
        "round-robin runs. Steps per CPU-second (process time, 1 thread) is robust to other jobs on a shared "
        "machine; wall-clock steps/s is not. Construction (wall) includes tokenisation and, when precomputed, "
        f"the reference log-probs of all {args.rows} rows. Min-max steps/CPU-s: "
        + ", ".join(f"{n} {lo:.2f}-{hi:.2f}" for n, (lo, hi) in spread.items())
        + "."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed optimisation steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument(
        "--repeats", type=int, default=3, help="round-robin repetitions (median reported)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument(
        "--rows", type=int, default=512, help="dataset rows (≥ 8 × (warmup + steps))"
    )
    parser.add_argument(
        "--only", nargs="*", default=None, help="configurations to run (default: all)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(_child(args.child, Path(args.root), args.steps, args.warmup, args.threads))
        )
        return
    if args.only:
        for name in list(CONFIGS):
            if name not in args.only and name not in {BASELINE[o] for o in args.only}:
                del CONFIGS[name]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _prepare(root, args.rows)
        results: dict[str, list[dict]] = {name: [] for name in CONFIGS}
        for repeat in range(args.repeats):
            for name in CONFIGS:
                results[name].append(_run(name, root, args))
                print(
                    f"[{repeat + 1}/{args.repeats}] {name}: {results[name][-1]}",
                    file=sys.stderr,
                    flush=True,
                )
        print(_table(results, args))


if __name__ == "__main__":
    main()
