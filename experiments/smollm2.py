"""The real-model recipe: SmolLM2-135M-Instruct on ShareGPT conversations, on a CPU.

    python -m experiments.smollm2 [--runs-dir runs/smollm2-135m] [--out paper_figures/real]
                                  [--methods sft,spin,iris,iris-adaptive] [--render-only]

Runs ``iris selfplay`` for each config of ``experiments/configs/smollm2-135m/`` (resumable:
a finished run is skipped, an interrupted one continues), evaluates the starting model θ0
with the same ``chat`` evaluator on the same held-out conversations, and writes to
``--out``: ``results.json`` (every number below), ``results.md`` (the table),
``loglik.png`` (held-out log-likelihood per token by iteration, 95% intervals),
``generation.png`` (generation statistics by iteration) and ``INDEX.md``.

Intervals: the runs are one seed each, so the uncertainty reported is over the 32 held-out
conversations: the token-weighted log-likelihood's standard error (responses as units), and
paired differences between two models on the same conversations (mean per-token
log-likelihood difference per conversation, t-interval over conversations).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs" / "smollm2-135m"
METHODS = ("sft", "spin", "iris", "iris-adaptive")
LABELS = {
    "base": "θ0 (SmolLM2-135M-Instruct)",
    "sft": "SFT (same data)",
    "spin": "SPIN",
    "iris": "IRIS α=½",
    "iris-adaptive": "IRIS adaptive",
}
GEN_METRICS = {
    "gen_length": "mean new tokens",
    "gen_eos_fraction": "ended by EOS",
    "gen_distinct2": "distinct-2",
    "gen_repetition": "repeated 4-grams",
}


def run_method(method: str, runs_dir: Path) -> None:
    """``iris selfplay`` of one recipe config (its console passes through)."""
    command = [
        sys.executable,
        "-m",
        "iris.cli",
        "selfplay",
        "--config",
        str(CONFIGS / f"{method}.yaml"),
        "--output-dir",
        str(runs_dir / method),
    ]
    print(f"══ {LABELS[method]}", flush=True)
    subprocess.run(command, check=True)


def evaluate_base(runs_dir: Path, methods: Sequence[str]) -> Path:
    """θ0 scored by the recipe's ``chat`` evaluator on the runs' held-out records."""
    from iris.checkpoints import start_checkpoint
    from iris.config import SelfPlayConfig, load_config
    from iris.evaluation import make_evaluator
    from iris.runs import RunDir

    out = runs_dir / "base" / "eval"
    summary = out / "chat.summary.json"
    if summary.is_file():
        return summary
    config = load_config(SelfPlayConfig, CONFIGS / f"{methods[0]}.yaml")
    heldout = RunDir(runs_dir / methods[0]).heldout_path
    evaluator = make_evaluator({**config.evaluation, "heldout": str(heldout)})
    print(f"══ {LABELS['base']}: evaluation", flush=True)
    start = time.perf_counter()
    model_dir = start_checkpoint(config.model.name_or_path, config.model.gguf_file)
    evaluator.evaluate(Path(model_dir), iteration=-1, output_dir=out)
    print(f"   {time.perf_counter() - start:.0f} s", flush=True)
    return summary


# --------------------------------------------------------------------------------------
# Reading the runs
# --------------------------------------------------------------------------------------


def _per_conversation(summary: Mapping[str, Any]) -> dict[str, float]:
    """Per held-out conversation id: log-likelihood per response token."""
    return {r["id"]: r["logprob_sum"] / r["tokens"] for r in summary["real"]["records"]}


def _alpha(iteration_dir: Path) -> float | None:
    """The mean order α the trainer logged in an iteration (None for SFT)."""
    from iris.runs import read_jsonl
    from iris.trainer import METRICS_FILE

    path = iteration_dir / METRICS_FILE
    if not path.is_file():
        return None
    values = [row["alpha"] for row in read_jsonl(path) if "alpha" in row]
    return sum(values) / len(values) if values else None


COMPARED_WITH = ("base", "sft", "spin")
"""The models every row is compared with (paired by held-out conversation, same iteration)."""


def collect(runs_dir: Path, methods: Sequence[str]) -> dict[str, Any]:
    """Every number the rendering shows, from the run directories."""
    from iris.runs import RunDir, read_json
    from iris.testbed.study import paired_ci

    base = read_json(runs_dir / "base" / "eval" / "chat.summary.json")
    rows = [{"method": "base", "iteration": 0, **_row(base)}]
    per = {("base", 0): _per_conversation(base)}
    timings: dict[str, float] = {}
    for method in methods:
        run = RunDir(runs_dir / method)
        manifest = run.read_manifest()
        stages = manifest.get("stages", {})
        timings[method] = sum(
            a[-1].get("duration_s") or 0.0 for a in stages.values() if a[-1].get("status") == "done"
        )
        for t in range(manifest["config"]["iterations"]):
            path = run.eval_dir(t) / "chat.summary.json"
            if not path.is_file():
                continue
            summary = read_json(path)
            per[method, t + 1] = _per_conversation(summary)
            generated = stages.get(f"iter_{t}/generate", [{}])[-1]
            rows.append(
                {
                    "method": method,
                    "iteration": t + 1,
                    **_row(summary),
                    "alpha": _alpha(run.iteration_dir(t)),
                    "train_truncated_fraction": generated.get("truncated_fraction"),
                    "train_s": stages.get(f"iter_{t}/train", [{}])[-1].get("duration_s"),
                    "generate_s": generated.get("duration_s"),
                }
            )
    for row in rows:
        ours = per[row["method"], row["iteration"]]
        for other in COMPARED_WITH:
            key = (other, 0 if other == "base" else row["iteration"])
            if other == row["method"] or key not in per:
                continue
            ids = sorted(per[key])
            mean, low, high, n = paired_ci([ours[i] for i in ids], [per[key][i] for i in ids])
            row[f"vs_{other}"] = {"mean": mean, "low": low, "high": high, "n": n}
    return {
        "n_heldout": base["n_heldout"],
        "heldout_sha256": base["heldout"]["sha256"],
        "rows": rows,
        "run_seconds": timings,
    }


def _row(summary: Mapping[str, Any]) -> dict[str, Any]:
    flat = summary["flat"]
    return {
        "logprob_per_token": flat["chat/real_logprob_per_token"],
        "logprob_se": flat["chat/real_nll_per_token_se"],
        "bits_per_byte": flat.get("chat_heldout/bits_per_byte"),
        **{name: flat[f"chat/{name}"] for name in GEN_METRICS},
    }


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def _interval(stat: Mapping[str, float] | None) -> str:
    if not stat or stat.get("mean") is None or math.isnan(stat["mean"]):
        return "—"
    return f"{stat['mean']:+.3f} [{stat['low']:+.3f}, {stat['high']:+.3f}]"


def table(results: Mapping[str, Any]) -> str:
    """The results as a Markdown table (pandas)."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "method": LABELS[r["method"]],
            "iteration": r["iteration"],
            "log-lik/token (± s.e.)": f"{r['logprob_per_token']:.3f} ± {r['logprob_se']:.3f}",
            "Δ vs θ0 [95% CI]": _interval(r.get("vs_base")),
            "Δ vs SFT [95% CI]": _interval(r.get("vs_sft")),
            "Δ vs SPIN [95% CI]": _interval(r.get("vs_spin")),
            "bits/byte": f"{r['bits_per_byte']:.4f}" if r.get("bits_per_byte") is not None else "—",
            **{label: f"{r[name]:.3f}" for name, label in GEN_METRICS.items()},
            "α": f"{r['alpha']:.2f}" if r.get("alpha") is not None else "—",
        }
        for r in results["rows"]
    )
    return frame.to_markdown(index=False)


def figures(results: Mapping[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    base = next(r for r in rows if r["method"] == "base")
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    markers = dict(zip(METHODS, "soD^", strict=True))
    paths = []

    fig, (ax, delta) = plt.subplots(1, 2, figsize=(10.4, 4.2), constrained_layout=True)
    for k, method in enumerate(methods):
        series = [
            base,
            *sorted((r for r in rows if r["method"] == method), key=lambda r: r["iteration"]),
        ]
        x = [r["iteration"] + (k - (len(methods) - 1) / 2) * 0.06 for r in series]
        y = [r["logprob_per_token"] for r in series]
        err = [1.96 * r["logprob_se"] for r in series]
        ax.errorbar(x, y, yerr=err, marker=markers[method], capsize=3, label=LABELS[method])
        paired = [r.get("vs_base") or {"mean": 0.0, "low": 0.0, "high": 0.0} for r in series]
        mid = [p["mean"] for p in paired]
        bars = [
            [m - p["low"] for m, p in zip(mid, paired, strict=True)],
            [p["high"] - m for m, p in zip(mid, paired, strict=True)],
        ]
        delta.errorbar(x, mid, yerr=bars, marker=markers[method], capsize=3, label=LABELS[method])
    ax.set_xticks(range(3), ["θ0", "iteration 1", "iteration 2"])
    ax.set_ylabel("held-out log-likelihood per response token")
    ax.set_title("absolute (± 1.96 s.e. over conversations)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    delta.set_xticks(range(3), ["θ0", "iteration 1", "iteration 2"])
    delta.set_ylabel("Δ vs θ0, paired by conversation")
    delta.set_title("paired difference from θ0 (95% t-interval)", fontsize=10)
    delta.axhline(0.0, color="0.5", lw=0.8)
    delta.grid(alpha=0.3)
    fig.suptitle(f"SmolLM2-135M-Instruct, {results['n_heldout']} held-out ShareGPT conversations")
    paths.append(out / "loglik.png")
    fig.savefig(paths[-1], dpi=150)
    plt.close(fig)

    fig, axes = plt.subplots(2, 2, figsize=(8.4, 6.0), constrained_layout=True)
    for ax, (name, label) in zip(axes.flat, GEN_METRICS.items(), strict=True):
        for k, method in enumerate(methods):
            series = [
                base,
                *sorted((r for r in rows if r["method"] == method), key=lambda r: r["iteration"]),
            ]
            x = [r["iteration"] + (k - (len(methods) - 1) / 2) * 0.06 for r in series]
            ax.plot(x, [r[name] for r in series], marker=markers[method], label=LABELS[method])
        ax.set_xticks(range(3), ["θ0", "it. 1", "it. 2"])
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Greedy answers to the {results['n_heldout']} held-out prompts")
    paths.append(out / "generation.png")
    fig.savefig(paths[-1], dpi=150)
    plt.close(fig)
    return paths


def render(results: Mapping[str, Any], out: Path, command: str) -> None:
    from iris.runs import atomic_write_json, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", results)
    text = table(results)
    atomic_write_text(out / "results.md", text + "\n")
    images = figures(results, out)
    minutes = {m: s / 60 for m, s in results["run_seconds"].items()}
    lines = [
        "# SmolLM2-135M-Instruct on ShareGPT: the real-model recipe",
        "",
        f"Made by `{command}` from the configs in `experiments/configs/smollm2-135m/`: 32",
        "training conversations, 2 iterations, one seed per method; every model scored on the",
        f"same {results['n_heldout']} held-out conversations by the `chat` evaluator (held-out file",
        f"sha256 {results['heldout_sha256'][:12]}…). Wall time per run on 2 CPU cores: "
        + ", ".join(f"{LABELS[m]} {v:.0f} min" for m, v in minutes.items())
        + f" ({sum(minutes.values()):.0f} min in all).",
        "",
        "Intervals are over held-out conversations, not seeds: `± s.e.` is the token-weighted",
        "log-likelihood's standard error; `Δ` columns are paired differences of per-conversation",
        "log-likelihood per token (95% t-intervals, n = conversations).",
        "",
        "## Table (`results.md`)",
        "",
        text,
        "",
        "## Figures",
        "",
        "- `loglik.png`: held-out log-likelihood per response token by iteration: absolute",
        "  (± 1.96 s.e.) and paired difference from θ0 (95% t-intervals).",
        "- `generation.png`: length, EOS fraction, distinct-2 and repeated 4-grams of greedy",
        "  answers to the held-out prompts, by iteration.",
        "",
        "`results.json` holds every number above. `speed/` holds the speed tables of",
        "`experiments/benchmarks/smollm2_benchmark.py` and `lora_benchmark.py` on this model",
        "(their commands and conditions: LOG.md, 2026-12-07).",
    ]
    atomic_write_text(out / "INDEX.md", "\n".join(lines) + "\n")
    for path in [out / "results.json", out / "results.md", *images, out / "INDEX.md"]:
        print(f"   wrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "smollm2-135m")
    parser.add_argument("--out", type=Path, default=ROOT / "paper_figures" / "real")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--render-only", action="store_true", help="only read the runs and render")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"--methods: unknown {unknown}; the recipe has {', '.join(METHODS)}")
    if not args.render_only:
        for method in methods:
            run_method(method, args.runs_dir)
    evaluate_base(args.runs_dir, methods)
    print("══ rendering", flush=True)
    render(collect(args.runs_dir, methods), args.out, "python -m experiments.smollm2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
