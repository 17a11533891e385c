"""Wall time of one whole tiny self-play iteration, per stage, for N and 2N prompts (CPU).

Runs :func:`iris.selfplay.run_selfplay` (data → generate → train, IRIS loss, one
iteration, no evaluation) on a tiny random-initialised Llama and N, then 2N, synthetic
(prompt, response) pairs, and prints a Markdown table of each stage's wall time as the
run manifest records it (``manifest["stages"]``), with the ratio 2N/N (≈ 2 for stages
linear in the data; the fixed costs — model loading, trainer construction — pull it
below 2 at these sizes).

Usage:
    python experiments/benchmarks/iteration_benchmark.py [--prompts 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

WORDS = [f"w{i}" for i in range(200)]
MODEL = {"hidden_size": 64, "num_layers": 2, "num_heads": 4}
STAGES = ("data", "iter_0/generate", "iter_0/train")


def _write_data(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as file:
        for i in range(n):
            prompt = f"q{i} " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))
            real = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 15)))
            file.write(json.dumps({"prompt": prompt, "real": real}) + "\n")


def run_one(root: Path, n: int, max_new_tokens: int) -> dict[str, float]:
    from iris.config import SelfPlayConfig, from_dict
    from iris.runs import RunDir
    from iris.selfplay import run_selfplay

    data = root / f"data-{n}.jsonl"
    _write_data(data, n)
    config = from_dict(
        SelfPlayConfig,
        {
            "model": {"name_or_path": str(root / "model")},
            "data": {"source": str(data), "n_train": n},
            "generation": {"max_new_tokens": max_new_tokens, "batch_size": 16, "shard_size": 64},
            "iterations": 1,
            "training": {
                "loss": "iris",
                "alpha": 2.0,
                "beta": 0.1,
                "per_device_train_batch_size": 8,
                "num_train_epochs": 1,
                "learning_rate": 1e-4,
                "max_length": 64,
                "use_cpu": True,
                "save_strategy": "no",
                "report_to": [],
                "disable_tqdm": True,
            },
            "output_dir": str(root / f"run-{n}"),
        },
    )
    run = run_selfplay(config, command=["iteration_benchmark"])
    stages = RunDir(run.root).read_manifest()["stages"]
    times = {key: stages[key][-1]["duration_s"] for key in STAGES}
    times["rows"] = stages["iter_0/train"][-1].get("rows")  # 2N really trains on 2N rows
    return times


def table(times: dict[int, dict[str, float]]) -> str:
    n, n2 = sorted(times)
    lines = [f"| stage | N = {n} s | 2N = {n2} s | 2N / N |", "|---|---:|---:|---:|"]
    for key in (*STAGES, "total"):
        a = sum(times[n][k] for k in STAGES) if key == "total" else times[n][key]
        b = sum(times[n2][k] for k in STAGES) if key == "total" else times[n2][key]
        lines.append(f"| {key} | {a:.2f} | {b:.2f} | {b / a:.2f} |")
    rows = f"training rows: N {times[n]['rows']}, 2N {times[n2]['rows']}"
    return "\n".join(lines) + "\n\n" + rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=32, help="N (the second run uses 2N)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    os.environ.update(
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", TQDM_DISABLE="1"
    )
    import torch

    from iris.tiny_models import save_tiny_model

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        save_tiny_model(
            root / "model", [*WORDS, *(f"q{i}" for i in range(2 * args.prompts))], **MODEL
        )
        run_one(root, 8, args.max_new_tokens)  # warm-up: one-time costs (imports, kernels)
        times = {n: run_one(root, n, args.max_new_tokens) for n in (args.prompts, 2 * args.prompts)}
    print(
        f"\nOne self-play iteration (IRIS α=2), tiny Llama, batch 8, ≤{args.max_new_tokens} new "
        f"tokens, {args.threads} thread(s), CPU; stage wall times from the run manifest\n"
    )
    print(table(times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
