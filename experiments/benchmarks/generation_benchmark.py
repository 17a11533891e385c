"""Generation throughput of the HF backend on a tiny model, for N and 2N prompts (CPU).

Prints a Markdown table: prompts, wall seconds, new tokens, new tokens/s, and the ratio of
the 2N run's time to the N run's (≈ 2 when generation is linear in the number of
prompts, as it should be: prompts are processed in fixed-size batches). The model is a
random-initialised Llama from :func:`iris.tiny_models.save_tiny_model` (it rarely emits
its end-of-turn token, so most responses run to ``--max-new-tokens``).

Usage:
    python experiments/benchmarks/generation_benchmark.py [--prompts 32] [--max-new-tokens 32]
        [--batch-size 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

WORDS = [f"w{i}" for i in range(500)]
MODEL = {"hidden_size": 128, "num_layers": 2, "num_heads": 4, "max_position_embeddings": 512}


def _prompts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 15))) for _ in range(n)]


def measure(backend, n: int, max_new_tokens: int) -> dict[str, float]:
    from iris.data import format_prompts
    from iris.generation import SamplingParams

    prompts = format_prompts(backend.tokenizer, _prompts(n))
    params = SamplingParams(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens)
    start = time.perf_counter()
    generations = backend.generate(prompts, params, seed=0)
    seconds = time.perf_counter() - start
    tokens = sum(g.num_tokens for g in generations)
    return {"prompts": n, "seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}


def table(rows: list[dict[str, float]]) -> str:
    base = rows[0]["seconds"]
    lines = [
        "| prompts | wall s | new tokens | new tokens/s | time vs N |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['prompts']} | {row['seconds']:.2f} | {row['tokens']} | "
            f"{row['tokens_per_s']:.0f} | {row['seconds'] / base:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=32, help="N (the second run uses 2N)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    import torch

    from iris.generation import HFBackend
    from iris.tiny_models import save_tiny_model

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        save_tiny_model(Path(tmp) / "model", WORDS, **MODEL)
        backend = HFBackend.from_pretrained(
            Path(tmp) / "model", device="cpu", batch_size=args.batch_size
        )
        measure(backend, args.batch_size, 4)  # warm-up
        rows = [measure(backend, n, args.max_new_tokens) for n in (args.prompts, 2 * args.prompts)]
    print(
        f"HF backend, tiny Llama ({sum(p.numel() for p in backend.model.parameters()) / 1e6:.2f}M "
        f"parameters), batch {args.batch_size}, ≤{args.max_new_tokens} new tokens, "
        f"{args.threads} thread(s), CPU\n"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
