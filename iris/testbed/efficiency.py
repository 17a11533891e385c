"""``iris study data-efficiency``: does self-play on n annotated samples beat SFT on 2n, 4n, 8n?

The paper's headline is that self-play on N annotated responses beats SFT on 8N. On the
testbed (a known Markov target: exact distances by enumerating the support) this is
checked exactly. The protocol, fixed before any result was seen:

- One target (:class:`~iris.testbed.demo.DemoSettings`' default ``TargetSpec``). An
  annotated pool of max(sizes) responses drawn from it (seed ``target.seed + 1``, the
  demo's), and a separate held-out set (``heldout`` responses, seed ``target.seed + 2``)
  used only to stop SFT early.
- Sizes n ∈ ``sizes`` and seeds s = 0..``seeds``−1. For seed s the subsets are nested: a
  seed-s permutation of the pool (``numpy.random.default_rng(s)``), subset n = its first n
  rows, each written as its own JSON Lines file (so a run reads exactly those n rows).
- SFT(n, s): from the testbed's initial model (``make_testbed_model``, the demo's
  ``model_seed``), TRL's ``SFTTrainer`` on subset n at the demo's warm-start learning rate
  (constant) and batch, training seed s, evaluated every epoch on the held-out set's loss
  (per-token NLL of the annotated responses, ``eval_loss``), stopped after ``patience``
  epochs without improvement (transformers' ``EarlyStoppingCallback``; at most
  ``max_epochs``), the best epoch's model kept (``load_best_model_at_end``). Its exact
  testbed metrics and the epochs it used are recorded. An unfinished SFT restarts from
  scratch (it is cheap and stays deterministic).
- Self-play from SFT(n, s) on the same n annotated responses: ``iterations`` (2, the
  paper's) iterations of SPIN and adaptive IRIS (:data:`~iris.testbed.demo.METHODS`, the
  demo's shared learning rate, β and batch), run seed s, each through
  :func:`iris.selfplay.run_selfplay` with the exact ``testbed`` evaluator (the demo's
  :func:`~iris.testbed.demo.run_config` / :func:`~iris.testbed.demo.run_jobs`).
- Reported: per (n, method ∈ {sft, spin, iris-adaptive}) mean ± std over seeds of the exact
  forward KL, reverse KL and TV (SFT: also the epochs used); the forward-KL curve against
  n; and, for each self-play method, n and k ∈ {2, 4, 8} with k·n among the sizes, the
  seed-paired difference KL(SFT(k·n)) − KL(method(n)) with its 95% t-interval (positive:
  self-play on n is closer to the target than SFT on k·n).

Everything is resumable: a re-run skips finished SFT models and self-play runs and
re-renders the same results.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iris.runs import atomic_write_json, atomic_write_text, read_json
from iris.testbed.demo import (
    METHODS,
    DemoSettings,
    claim_output_dir,
    collect,
    mean_std,
    run_config,
    run_jobs,
    save_png,
    to_jsonable,
)
from iris.testbed.study import paired_ci
from iris.testbed.task import make_testbed_model, write_annotated

SELFPLAY_METHODS = ("spin", "iris-adaptive")
REPORTED = ("sft", *SELFPLAY_METHODS)
FACTORS = (2, 4, 8)
DISTANCES = ("forward_kl", "reverse_kl", "total_variation")
_LABELS = {"forward_kl": "forward KL", "reverse_kl": "reverse KL", "total_variation": "TV"}


@dataclasses.dataclass(frozen=True)
class EfficiencySettings:
    """The data-efficiency study; ``quick()`` is the CI-sized variant.

    ``demo``: the shared training settings (target, warm-start lr and batch for SFT,
    self-play lr / β / batch, iterations, seeds, methods); its ``n_annotated`` is replaced
    by each size in turn.
    """

    demo: DemoSettings = dataclasses.field(
        default_factory=lambda: DemoSettings(iterations=2, seeds=3, methods=SELFPLAY_METHODS)
    )
    sizes: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096)
    heldout: int = 512
    max_epochs: int = 100
    patience: int = 3

    @classmethod
    def quick(cls) -> EfficiencySettings:
        demo = DemoSettings(iterations=2, seeds=2, methods=SELFPLAY_METHODS)
        return cls(demo=demo, sizes=(32, 64, 128, 256), heldout=64, max_epochs=30)

    def to_dict(self) -> dict[str, Any]:
        return {
            "demo": self.demo.to_dict(),
            "sizes": list(self.sizes),
            "heldout": self.heldout,
            "max_epochs": self.max_epochs,
            "patience": self.patience,
        }

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.demo.seeds))


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def nested_subsets(pool: Path, sizes: Sequence[int], seed: int, directory: Path) -> dict[int, Path]:
    """``{n: file}``: the first n rows of a seed-``seed`` permutation of ``pool``'s rows,
    each subset its own JSON Lines file (rows copied verbatim); existing files are kept."""
    lines = pool.read_text().splitlines(keepends=True)
    if max(sizes) > len(lines):
        raise ValueError(f"{pool} has {len(lines)} rows; the largest subset needs {max(sizes)}")
    order = np.random.default_rng(seed).permutation(len(lines))
    paths = {}
    for n in sorted(sizes):
        path = directory / f"n{n}.jsonl"
        if not path.is_file():
            atomic_write_text(path, "".join(lines[i] for i in order[:n]))
        paths[n] = path
    return paths


# --------------------------------------------------------------------------------------
# SFT to convergence (worker processes)
# --------------------------------------------------------------------------------------


def _sft_done(out: Path) -> bool:
    return (out / "sft.json").is_file() and (out / "model" / "model.safetensors").is_file()


def _sft_one(job: Mapping[str, Any]) -> str:
    """Worker: SFT of one (n, seed) to the held-out loss's best epoch; its model, exact
    testbed metrics and epochs to ``job["out"]`` (console output to ``<out>.log``)."""
    import contextlib

    out = Path(job["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        Path(f"{out}.log").open("w") as file,
        contextlib.redirect_stdout(file),
        contextlib.redirect_stderr(file),
    ):
        _train_to_convergence(job, out)
    return str(out)


def _train_to_convergence(job: Mapping[str, Any], out: Path) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, EarlyStoppingCallback
    from trl import SFTTrainer

    from iris.data import load_annotated
    from iris.launch import check_trainer
    from iris.sft import sft_config, sft_rows
    from iris.testbed.evaluator import TestbedEvaluator
    from iris.trainer import MetricsFileCallback

    trainer_dir = out / "trainer"
    shutil.rmtree(trainer_dir, ignore_errors=True)  # an unfinished run restarts from scratch
    model = AutoModelForCausalLM.from_pretrained(job["init"])
    tokenizer = AutoTokenizer.from_pretrained(job["init"])
    train = load_annotated(job["data"], repeated_prompts=True).records
    heldout = load_annotated(job["heldout"], repeated_prompts=True).records
    args = sft_config(
        {
            "num_train_epochs": job["max_epochs"],
            "learning_rate": job["learning_rate"],
            "per_device_train_batch_size": job["batch_size"],
            "per_device_eval_batch_size": 256,
            "lr_scheduler_type": "constant",
            "eval_strategy": "epoch",
            "save_strategy": "epoch",
            "logging_strategy": "epoch",
            "save_total_limit": 1,  # the best checkpoint is kept besides the latest
            "save_only_model": True,
            "load_best_model_at_end": True,
            "metric_for_best_model": "eval_loss",
            "greater_is_better": False,
            "report_to": [],
            "disable_tqdm": True,
            "seed": job["seed"],
        },
        output_dir=trainer_dir,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(sft_rows(train, tokenizer)),
        eval_dataset=Dataset.from_list(sft_rows(heldout, tokenizer)),
        processing_class=tokenizer,
        callbacks=[
            MetricsFileCallback(),
            EarlyStoppingCallback(early_stopping_patience=job["patience"]),
        ],
    )
    check_trainer(trainer)
    trainer.train()
    losses = [row["eval_loss"] for row in trainer.state.log_history if "eval_loss" in row]
    best = int(np.argmin(losses))
    trainer.save_model(str(out / "model"))
    tokenizer.save_pretrained(str(out / "model"))
    scores = TestbedEvaluator(target=job["target"]).score(trainer.model, tokenizer)
    for path in trainer_dir.glob("checkpoint-*"):
        shutil.rmtree(path)  # the best model is saved above
    atomic_write_json(
        out / "sft.json",
        {
            "n": len(train),
            "seed": job["seed"],
            "epochs_trained": len(losses),
            "best_epoch": best + 1,
            "best_eval_loss": float(losses[best]),
            "eval_losses": [float(x) for x in losses],
            "stopped_early": len(losses) < job["max_epochs"],
            "metrics": scores,
        },
    )


# --------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------


def versus_sft(
    sft: Mapping[int, Mapping[int, float]],
    method: Mapping[int, Mapping[int, float]],
    factors: Sequence[int] = FACTORS,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """For each n of ``method`` and k in ``factors`` with k·n in ``sft``: the seed-paired
    difference ``sft[k·n][s] − method[n][s]`` (mean, t-interval), over the seeds both have.

    ``sft`` and ``method``: size → seed → distance. Positive: the method on n is closer to
    the target than SFT on k·n.
    """
    rows = []
    for n in sorted(method):
        for k in factors:
            if k * n not in sft:
                continue
            seeds = sorted(set(method[n]) & set(sft[k * n]))
            mean, low, high, pairs = paired_ci(
                [sft[k * n][s] for s in seeds], [method[n][s] for s in seeds], level
            )
            rows.append(
                {
                    "n": n,
                    "k": k,
                    "mean": mean,
                    "low": low,
                    "high": high,
                    "pairs": pairs,
                    "excludes_zero": bool(low > 0 or high < 0),  # False when NaN
                }
            )
    return rows


def finals(results: Mapping[str, Any], metric: str) -> dict[str, dict[int, dict[int, float]]]:
    """method → n → seed → the final model's ``metric`` (SFT: the early-stopped model)."""
    out: dict[str, dict[int, dict[int, float]]] = {"sft": {}}
    for n, by_seed in results["sft"].items():
        out["sft"][int(n)] = {int(s): float(r["metrics"][metric]) for s, r in by_seed.items()}
    for n, by_method in results["runs"].items():
        for method, by_seed in by_method.items():
            out.setdefault(method, {})[int(n)] = {
                int(s): float(rows[-1][metric]) for s, rows in by_seed.items()
            }
    return out


def summarise(results: Mapping[str, Any]) -> dict[str, Any]:
    """Per (method, n): mean ± std of each distance; per method: the comparisons to SFT."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for metric in DISTANCES:
        for method, by_n in finals(results, metric).items():
            for n, by_seed in by_n.items():
                mean, std = mean_std(list(by_seed.values()))
                cell = table.setdefault(method, {}).setdefault(str(n), {})
                cell[metric] = {"mean": mean, "std": std}
    for n, by_seed in results["sft"].items():
        for key in ("best_epoch", "epochs_trained"):
            mean, std = mean_std([r[key] for r in by_seed.values()])
            table["sft"][n][key] = {"mean": mean, "std": std}
    forward = finals(results, "forward_kl")
    comparisons = {m: versus_sft(forward["sft"], forward[m]) for m in forward if m != "sft"}
    return {"table": table, "versus_sft": comparisons}


def _cell(stats: Mapping[str, float], digits: int = 3) -> str:
    mean, std = stats["mean"], stats["std"]
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _interval(row: Mapping[str, Any]) -> str:
    if math.isnan(row["mean"]):
        return "—"
    if math.isnan(row["low"]):
        return f"{row['mean']:+.3f}"
    mark = " *" if row["excludes_zero"] else ""
    return f"{row['mean']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]{mark}"


def results_tables(summary: Mapping[str, Any], settings: EfficiencySettings) -> str:
    """Markdown: distances per (n, method), then self-play on n against SFT on k·n."""
    lines = [
        "| n | method | forward KL | reverse KL | TV | SFT epochs: best / trained |",
        "|---|---|---|---|---|---|",
    ]
    table = summary["table"]
    for n in settings.sizes:
        for method in table:  # sft, then the self-play methods
            cell = table[method].get(str(n))
            if cell is None:
                continue
            epochs = (
                f"{_cell(cell['best_epoch'], 1)} / {_cell(cell['epochs_trained'], 1)}"
                if method == "sft"
                else "—"
            )
            lines.append(
                f"| {n} | {method} | {_cell(cell['forward_kl'])} | {_cell(cell['reverse_kl'])} | "
                f"{_cell(cell['total_variation'])} | {epochs} |"
            )
    lines += [
        "",
        "**Does self-play on n beat SFT on k·n?** KL(SFT(k·n)) − KL(method(n)), exact forward "
        "KL, seed-paired mean [95% t-interval] (positive: self-play on n is closer to the "
        "target; * = the interval excludes 0):",
        "",
        "| method | n | " + " | ".join(f"vs SFT on {k}n" for k in FACTORS) + " |",
        "|---|---|" + "---|" * len(FACTORS),
    ]
    for method, rows in summary["versus_sft"].items():
        by_n: dict[int, dict[int, str]] = {}
        for row in rows:
            by_n.setdefault(row["n"], {})[row["k"]] = _interval(row)
        for n in settings.sizes:
            if n in by_n:
                cells = " | ".join(by_n[n].get(k, "—") for k in FACTORS)
                lines.append(f"| {method} | {n} | {cells} |")
    return "\n".join(lines)


def _limit_note(results: Mapping[str, Any], settings: EfficiencySettings) -> str:
    """Whether early stopping ended every SFT run before the epoch limit."""
    runs = [r for by_seed in results["sft"].values() for r in by_seed.values()]
    capped = sum(not r["stopped_early"] for r in runs)
    if not capped:
        return f"Early stopping ended all {len(runs)} SFT runs before the {settings.max_epochs}-epoch limit."
    return (
        f"**{capped} of {len(runs)} SFT runs reached the {settings.max_epochs}-epoch limit** "
        f"without {settings.patience} epochs of no improvement (their best epoch is still kept)."
    )


def figure(results: Mapping[str, Any], settings: EfficiencySettings, path: Path) -> Path:
    """Exact forward KL against n (log₂ axis): mean ± std over seeds, one line per method,
    and SFT on 8n drawn at n (grey) for the headline comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    forward = finals(results, "forward_kl")
    colors = {"sft": "black", "spin": "tab:blue", "iris-adaptive": "tab:red"}
    markers = {"sft": "s", "spin": "o", "iris-adaptive": "^"}
    others = iter(("tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink"))
    colors.update({m: next(others, "tab:gray") for m in forward if m not in colors})
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    for i, method in enumerate(forward):  # sft, then the self-play methods
        sizes = sorted(forward[method])
        stats = [mean_std(list(forward[method][n].values())) for n in sizes]
        shift = 2 ** (0.03 * (i - 1))  # a small horizontal offset keeps error bars apart
        ax.errorbar(
            [n * shift for n in sizes],
            [m for m, _ in stats],
            yerr=[0.0 if math.isnan(s) else s for _, s in stats],
            color=colors[method],
            marker=markers.get(method, "D"),
            ms=5,
            capsize=3,
            label="SFT on n (early-stopped)" if method == "sft" else f"{method} on n",
        )
    eight = [n for n in sorted(forward["sft"]) if 8 * n in forward["sft"]]
    if eight:
        means = [mean_std(list(forward["sft"][8 * n].values()))[0] for n in eight]
        ax.plot(eight, means, ":", color="grey", marker="s", ms=4, label="SFT on 8n (drawn at n)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(settings.sizes), [str(n) for n in settings.sizes])
    ax.set_xlabel("annotated responses n")
    ax.set_ylabel("exact forward KL(p_data ‖ p_θ)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i].startswith("SFT on 8n"))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=9)
    ax.set_title(
        f"Data efficiency: self-play ({settings.demo.iterations} iterations) vs SFT\n"
        f"mean ± std over {settings.demo.seeds} seeds (paired intervals: results.md)",
        fontsize=11,
    )
    return save_png(fig, path)


# --------------------------------------------------------------------------------------
# The study
# --------------------------------------------------------------------------------------


def run_data_efficiency(
    output_dir: str | Path,
    settings: EfficiencySettings | None = None,
    *,
    workers: int = 2,
    log=print,
) -> dict[str, Any]:
    """Data, SFT(n, s) for every size and seed, self-play from each, then the results."""
    settings = settings or EfficiencySettings()
    demo = settings.demo
    unknown = sorted(set(demo.methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {sorted(METHODS)}")
    out = claim_output_dir(output_dir, settings.to_dict(), "study")
    started = time.perf_counter()

    target = demo.target.build()
    pool, heldout = out / "data" / "pool.jsonl", out / "data" / "heldout.jsonl"
    if not pool.is_file():
        write_annotated(target, max(settings.sizes), pool, seed=demo.target.seed + 1)
    if not heldout.is_file():
        write_annotated(target, settings.heldout, heldout, seed=demo.target.seed + 2)
    init = out / "init"
    if not (init / "model.safetensors").is_file():
        make_testbed_model(target, init, seed=demo.model_seed)
    subsets = {
        s: nested_subsets(pool, settings.sizes, s, out / "data" / f"seed{s}")
        for s in settings.seed_list
    }
    log(
        f"[study] target: {demo.target.to_dict()}; sizes {list(settings.sizes)}, seeds "
        f"{settings.seed_list}, held-out {settings.heldout}"
    )

    sft_jobs = [
        {
            "init": str(init),
            "data": str(subsets[s][n]),
            "heldout": str(heldout),
            "out": str(out / "sft" / f"n{n}" / f"seed{s}"),
            "learning_rate": demo.warm_start_lr,
            "batch_size": demo.batch_size,
            "max_epochs": settings.max_epochs,
            "patience": settings.patience,
            "seed": s,
            "target": demo.target.to_dict(),
        }
        for n in sorted(settings.sizes, reverse=True)  # the longest first
        for s in settings.seed_list
    ]
    log(f"[study] {len(sft_jobs)} SFT models to convergence on {workers} worker(s)")
    todo = [job for job in sft_jobs if not _sft_done(Path(job["out"]))]  # resumable
    run_jobs(todo, workers=workers, desc="[study] SFT", work=_sft_one, unit="model")
    sft = {
        str(n): {
            str(s): read_json(out / "sft" / f"n{n}" / f"seed{s}" / "sft.json")
            for s in settings.seed_list
        }
        for n in settings.sizes
    }
    log(
        "[study] SFT epochs, best/trained per n (mean over seeds): "
        + ", ".join(
            f"{n}: {np.mean([r['best_epoch'] for r in by_seed.values()]):.1f}/"
            f"{np.mean([r['epochs_trained'] for r in by_seed.values()]):.1f}"
            for n, by_seed in sft.items()
        )
    )

    jobs = [
        run_config(
            dataclasses.replace(demo, n_annotated=n),
            method,
            s,
            start=out / "sft" / f"n{n}" / f"seed{s}" / "model",
            data=subsets[s][n],
            out=out / "runs" / f"n{n}" / method / f"seed{s}",
        )
        for n in sorted(settings.sizes, reverse=True)
        for s in settings.seed_list
        for method in demo.methods
    ]
    log(f"[study] {len(jobs)} runs × {demo.iterations} iterations on {workers} worker(s)")
    run_jobs(jobs, workers=workers, desc="[study] runs")

    results: dict[str, Any] = {
        "settings": settings.to_dict(),
        "sft": sft,
        "runs": {
            str(n): collect(out / "runs" / f"n{n}", demo, metrics=DISTANCES) for n in settings.sizes
        },
    }
    results = to_jsonable(results)
    results["summary"] = to_jsonable(summarise(results))
    table = results_tables(results["summary"], settings)
    atomic_write_text(
        out / "results.md",
        "# iris study data-efficiency: self-play on n annotated responses vs SFT on k·n\n\n"
        f"One target ({demo.target.to_dict()}); an annotated pool of {max(settings.sizes)} "
        f"responses and a separate held-out set of {settings.heldout} (used only to stop SFT "
        "early). Protocol fixed before any result was seen. For seed s "
        f"(s = {', '.join(map(str, settings.seed_list))}) subset n is the first n rows of a "
        "seed-s permutation of the pool (nested). SFT(n, s): from the initial model, lr "
        f"{demo.warm_start_lr:g} (constant), batch {demo.batch_size}, evaluated every epoch "
        f"on the held-out loss, stopped after {settings.patience} epochs without improvement "
        f"(at most {settings.max_epochs}), best epoch kept (epochs: the best one / those trained). Self-play: {demo.iterations} "
        f"iterations of {', '.join(demo.methods)} from SFT(n, s) on the same n responses "
        f"(lr {demo.learning_rate:g}, β {demo.beta:g}, batch {demo.batch_size}×"
        f"{demo.gradient_accumulation_steps}), run seed s. Exact metrics by enumerating the "
        "support; mean ± std over seeds.\n\n"
        f"{table}\n\n{_limit_note(results, settings)}\n\n"
        "Figure: `data_efficiency.png` (exact forward KL against n).\n",
    )
    figures = [figure(results, settings, out / "data_efficiency.png")]
    results["seconds"] = time.perf_counter() - started
    atomic_write_json(out / "results.json", results)
    results["table"] = table
    results["figures"] = [str(p) for p in figures]
    return results
