"""``iris demo``: every method on the known-target testbed, from one warm start.

Owns the embedded default job. It samples annotated data from the Markov target
(:mod:`iris.testbed.target`), warm-starts a tiny Llama by SFT (TRL's ``SFTTrainer``) to a
model clearly short of the target, then runs T self-play iterations of every method —
SPIN, SPACE, SPIF, T-SPIN, IRIS at α ∈ {½, 1, 2}, adaptive IRIS — and continued SFT on the
same annotated data, all from that start, each through :func:`iris.selfplay.run_selfplay`
(the same loop, trainer and losses as paper-scale runs) with the exact ``testbed``
evaluator. Runs execute in parallel worker processes; a re-run skips what is done.

Every method shares the same learning rate, β, batch and data: the settings are chosen
once for the testbed (see ``DemoSettings``), not per method, so differences between rows
are the objectives' own. Results: ``results.json`` (every run's per-iteration metrics),
``results.md`` (method × iteration, mean ± std over seeds) and ``figures/`` (every figure
and table ``paper_figures.make_all`` can build from the runs, listed in ``INDEX.md``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from iris.runs import RunDir, atomic_write_json, atomic_write_text, read_json, read_jsonl, to_json
from iris.testbed.evaluator import SUMMARY_NAME
from iris.testbed.task import TargetSpec, make_testbed_model, write_annotated

METRICS = ("forward_kl", "reverse_kl", "total_variation", "invalid_rate", "real_loglik")

# Method name → its training settings (added to the shared ones). One learning rate and
# β for all: the comparison is between objectives, not tunings.
METHODS: dict[str, dict[str, Any]] = {
    "sft": {"loss": "sft"},
    "spin": {"loss": "spin"},
    "space": {"loss": "space", "mu": 1.0},
    "spif": {"loss": "spif", "bound": 2.0},
    "tspin": {"loss": "tspin", "lam": 0.1, "scale": 1.0},
    "iris-0.5": {"loss": "iris", "alpha": 0.5},
    "iris-1": {"loss": "iris", "alpha": 1.0},
    "iris-2": {"loss": "iris", "alpha": 2.0},
    # α per iteration from the trained −L_α of the previous one (the free reference gap is
    # negative throughout on this testbed: see LOG.md, 2026-11-21).
    "iris-adaptive": {
        "loss": "iris",
        "alpha_schedule": {
            "name": "adaptive",
            "alpha_min": 0.5,
            "alpha_max": 2.0,
            "gap": "variational",
            "update": "iteration",
            "smoothing": 0.9,
        },
    },
    # The data-efficiency comparison: SFT on 8× the annotated data of every other row.
    "sft-8x": {"loss": "sft"},
}
# Annotated samples of a method, as a multiple of DemoSettings.n_annotated (nested subsets).
DATA_FACTORS = {"sft-8x": 8}
# Losses whose objective is not a function of β·logratio take no β.
_NO_BETA = {"sft", "tspin"}


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """The testbed experiment; ``quick()`` is the CI-sized variant."""

    target: TargetSpec = dataclasses.field(
        default_factory=lambda: TargetSpec(
            num_prompts=4, num_symbols=4, max_length=5, seed=0, concentration=0.3, mean_stop=0.35
        )
    )
    n_annotated: int = 512
    iterations: int = 4
    seeds: int = 2
    methods: tuple[str, ...] = tuple(METHODS)
    warm_start_epochs: float = 1.0
    warm_start_lr: float = 3e-3
    learning_rate: float = 2e-4
    beta: float = 2.0
    batch_size: int = 8
    gradient_accumulation_steps: int = 2
    epochs_per_iteration: float = 1.0
    temperature: float = 1.0
    model_seed: int = 0

    @classmethod
    def quick(cls, **changes: Any) -> DemoSettings:
        return cls(**{"n_annotated": 128, "iterations": 2, "seeds": 1, **changes})

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["methods"] = list(self.methods)
        return values


def _shared_training(settings: DemoSettings) -> dict[str, Any]:
    return {
        "learning_rate": settings.learning_rate,
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "num_train_epochs": settings.epochs_per_iteration,
        "lr_scheduler_type": "constant",
        "max_length": 4 * (settings.target.max_length + 8),
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
    }


def run_config(
    settings: DemoSettings,
    method: str,
    seed: int,
    *,
    start: Path,
    data: Path,
    out: Path,
    methods: Mapping[str, Mapping[str, Any]] = METHODS,
) -> dict:
    """The SelfPlayConfig mapping of one (method, seed) run (``methods``: name → settings)."""
    training = {**_shared_training(settings), **methods[method]}
    if methods[method]["loss"] not in _NO_BETA:
        training["beta"] = settings.beta
    per_iteration = {}
    if methods[method]["loss"] == "tspin":  # its anchor weight is 0 at iteration 0: the
        lam = methods[method]["lam"]  # proto responses are θ0's own
        per_iteration["lam"] = [0.0 if t == 0 else lam for t in range(settings.iterations)]
    n_train = settings.n_annotated * DATA_FACTORS.get(method, 1)
    return {
        "model": {"name_or_path": str(start)},
        "data": {"source": str(data), "n_train": n_train, "repeated_prompts": True, "seed": 0},
        "per_iteration": per_iteration,
        "generation": {
            "max_new_tokens": settings.target.max_length + 2,
            "batch_size": 256,
            "temperature": settings.temperature,
            "shard_size": 4096,
        },
        "training": training,
        "iterations": settings.iterations,
        "seed": seed,
        "evaluation": {"kind": "testbed", "target": settings.target.to_dict()},
        "output_dir": str(out),
    }


def init_worker() -> None:
    """A study worker process: one core, library notices off."""
    import torch

    torch.set_num_threads(1)  # one core per worker
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    logging.getLogger("iris").setLevel(logging.WARNING)


def _run_one(config: dict[str, Any]) -> str:
    """Worker: one (method, seed) self-play run through the real loop (resumable); its
    console output goes to ``<run dir>.log``."""
    import contextlib

    from iris.config import SelfPlayConfig, from_dict
    from iris.evaluation import make_evaluator
    from iris.selfplay import run_selfplay

    cfg = from_dict(SelfPlayConfig, config, source="iris demo")
    log = Path(cfg.output_dir).with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as file, contextlib.redirect_stdout(file), contextlib.redirect_stderr(file):
        run_selfplay(cfg, evaluator=make_evaluator(cfg.evaluation), command=["iris", "demo"])
    return cfg.output_dir


def run_jobs(
    jobs: Sequence[Mapping[str, Any]],
    *,
    workers: int,
    desc: str,
    work: Callable[[Any], str] | None = None,
    unit: str = "run",
) -> None:
    """Every job through ``work`` (default: a self-play run, :func:`_run_one`) in worker
    processes, with a progress bar (ETA); ``work`` returns the job's output path."""
    from tqdm.auto import tqdm

    with ProcessPoolExecutor(max_workers=workers, initializer=init_worker) as pool:
        futures = [pool.submit(work or _run_one, job) for job in jobs]
        with tqdm(total=len(jobs), desc=desc, unit=unit) as bar:
            for future in as_completed(futures):
                path = Path(future.result())  # its console went to <path>.log
                bar.set_postfix_str(f"{path.parent.name}/{path.name}")
                bar.update()


def to_jsonable(value: Any) -> Any:
    """``value`` as JSON reads it back (numpy scalars as numbers, keys as strings)."""
    return json.loads(to_json(value))


def claim_output_dir(output_dir: str | Path, settings: Mapping[str, Any], what: str) -> Path:
    """Create ``output_dir`` for a demo or study of ``settings``; refuse one that holds
    another ``what`` (its ``settings.json`` differs), so a re-run resumes only its own runs."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "settings.json"
    if saved.is_file() and read_json(saved) != to_jsonable(settings):
        raise ValueError(
            f"{out} holds a {what} with other settings ({saved}); use another --output-dir"
        )
    atomic_write_json(saved, settings)
    return out


def save_png(fig, path: Path) -> Path:
    """Write ``fig`` as a 130-dpi PNG with analysis.plotting's byte-stable metadata; close it."""
    import matplotlib.pyplot as plt

    from analysis.plotting import save_figure

    fig.tight_layout()
    with plt.rc_context({"savefig.dpi": 130}):
        (saved,) = save_figure(fig, path.parent, path.stem, formats=("png",))
    plt.close(fig)
    return saved


def warm_start(settings: DemoSettings, out: Path) -> tuple[Path, Path, dict[str, float]]:
    """Data, initial model and the SFT warm start (skipped when already there)."""
    from iris.testbed.evaluator import TestbedEvaluator

    target = settings.target.build()
    data = out / "data" / "annotated.jsonl"
    start = out / "warm_start" / "model"
    metrics_path = out / "warm_start" / "testbed.json"
    if not data.is_file():
        pool = settings.n_annotated * max(DATA_FACTORS.get(m, 1) for m in settings.methods)
        write_annotated(target, pool, data, seed=settings.target.seed + 1)
    if not (start / "model.safetensors").is_file():
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from iris.data import load_annotated, select_subsets
        from iris.sft import sft_config, sft_rows, train_sft

        init = make_testbed_model(target, out / "warm_start" / "init", seed=settings.model_seed)
        model = AutoModelForCausalLM.from_pretrained(init)
        tokenizer = AutoTokenizer.from_pretrained(init)
        # The same n_annotated records every self-play run selects (nested subsets, seed 0).
        pool = load_annotated(data, repeated_prompts=True).records
        records = select_subsets(pool, n_train=settings.n_annotated, n_heldout=0, seed=0).train
        args = sft_config(
            {
                "num_train_epochs": settings.warm_start_epochs,
                "learning_rate": settings.warm_start_lr,
                "per_device_train_batch_size": settings.batch_size,
                "lr_scheduler_type": "constant",
                "save_strategy": "no",
                "report_to": [],
                "logging_steps": 1,
                "seed": settings.model_seed,
            },
            output_dir=out / "warm_start" / "sft",
        )
        dataset = Dataset.from_list(sft_rows(records, tokenizer))
        trainer = train_sft(model, tokenizer, dataset, args, resume=False, desc="[demo] warm start")
        trainer.save_model(str(start))
        tokenizer.save_pretrained(str(start))
        metrics_path.unlink(missing_ok=True)  # scored below, as the saved model
    if not metrics_path.is_file():  # scored from the saved model (alone if only this is missing)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(start)
        tokenizer = AutoTokenizer.from_pretrained(start)
        scores = TestbedEvaluator(target=settings.target.to_dict()).score(model, tokenizer)
        atomic_write_json(metrics_path, scores)
    return data, start, read_json(metrics_path)


def collect(
    runs_root: Path,
    settings: DemoSettings,
    *,
    metrics: Sequence[str] = METRICS,
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Per (method, seed, iteration) testbed metrics and the last logged α / ESS of each iteration."""
    return {
        method: {
            seed: collect_run(runs_root / method / f"seed{seed}", settings.iterations, metrics)
            for seed in (range(settings.seeds) if seeds is None else seeds)
        }
        for method in settings.methods
    }


def collect_run(
    path: Path, iterations: int, metrics: Sequence[str] = METRICS
) -> list[dict[str, float]]:
    """One run's rows, one per iteration: its testbed metrics and training diagnostics."""
    run = RunDir(path, main_process=False)  # read only
    rows = []
    for t in range(iterations):
        summary = run.eval_dir(t) / f"{SUMMARY_NAME}.summary.json"
        flat = read_json(summary)["flat"] if summary.is_file() else {}
        row = {m: float(flat.get(f"testbed/{m}", math.nan)) for m in metrics}
        row.update(_training_diagnostics(run.metrics_path(t)))
        rows.append(row)
    return rows


# Gap signals an α schedule can use, as logged by the trainer: name → (metric, reading).
# "end": mean over the last quarter of the iteration's logged steps (where the trained
# estimate has settled); "first": the first step's value (measured once per iteration).
GAP_SIGNALS = {
    "variational_estimate": ("objective/variational_estimate", "end"),
    "reward_margin": ("rewards/margins", "end"),
    "reference_gap": ("gap/reference", "first"),
}
# Every training diagnostic of an iteration: the mean α and ESS/n, and the gap signals.
_DIAGNOSTICS = {
    "alpha": ("alpha", "mean"),
    "generated_ess_fraction": ("weights/generated_ess_fraction", "mean"),
    "real_ess_fraction": ("weights/real_ess_fraction", "mean"),
    **GAP_SIGNALS,
}


def _training_diagnostics(path: Path) -> dict[str, float]:
    """An iteration's :data:`_DIAGNOSTICS` from its logged steps (NaN where not logged)."""
    out = dict.fromkeys(_DIAGNOSTICS, math.nan)
    if not path.is_file():
        return out
    steps = [s for s in read_jsonl(path) if "loss" in s]  # per-step rows, not the summary
    for name, (key, reading) in _DIAGNOSTICS.items():
        values = [s[key] for s in steps if key in s]
        if not values:
            continue
        if reading == "end":
            values = values[-max(1, len(values) // 4) :]
        out[name] = float(values[0] if reading == "first" else np.mean(values))
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std over the non-NaN values (NaN when there are none, or one for the std)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0 or np.isnan(array).all():
        return math.nan, math.nan
    std = float(np.nanstd(array, ddof=1)) if np.count_nonzero(~np.isnan(array)) > 1 else math.nan
    return float(np.nanmean(array)), std


def _cell(values: Sequence[float], digits: int = 3) -> str:
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def results_table(
    runs: Mapping[str, Any], start: Mapping[str, float], settings: DemoSettings
) -> str:
    """Markdown: one row per method × iteration, mean ± std over seeds."""
    header = "| method | iteration | forward KL | reverse KL | TV | invalid | log-lik (annotated) | α | ESS/n (synthetic) |"
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    lines.append(
        f"| warm start | — | {start['forward_kl']:.3f} | {start['reverse_kl']:.3f} | "
        f"{start['total_variation']:.3f} | {start['invalid_rate']:.3f} | {start['real_loglik']:.3f} | — | — |"
    )
    for method, per_seed in runs.items():
        for t in range(settings.iterations):
            column = {
                k: [per_seed[s][t][k] for s in per_seed]
                for k in (*METRICS, "alpha", "generated_ess_fraction")
            }
            lines.append(
                f"| {method} | {t + 1} | {_cell(column['forward_kl'])} | {_cell(column['reverse_kl'])} | "
                f"{_cell(column['total_variation'])} | {_cell(column['invalid_rate'])} | "
                f"{_cell(column['real_loglik'])} | {_cell(column['alpha'], 2)} | "
                f"{_cell(column['generated_ess_fraction'], 2)} |"
            )
    return "\n".join(lines)


def run_demo(
    output_dir: str | Path,
    settings: DemoSettings | None = None,
    *,
    workers: int = 2,
    log=print,
) -> dict[str, Any]:
    """Warm-start once, run every (method, seed), write results.{json,md}; returns the results."""
    settings = settings or DemoSettings()
    unknown = sorted(set(settings.methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown demo methods {unknown}; known: {sorted(METHODS)}")
    out = claim_output_dir(output_dir, settings.to_dict(), "demo")
    started = time.perf_counter()

    log(f"[demo] target: {settings.target.to_dict()}; {settings.n_annotated} annotated responses")
    data, start, start_scores = warm_start(settings, out)
    log(
        f"[demo] warm start (SFT, {settings.warm_start_epochs:g} epoch): forward KL "
        f"{start_scores['forward_kl']:.3f}, invalid {start_scores['invalid_rate']:.3f} "
        f"({time.perf_counter() - started:.0f} s)"
    )
    jobs = [
        run_config(
            settings,
            method,
            seed,
            start=start,
            data=data,
            out=out / "runs" / method / f"seed{seed}",
        )
        for seed in range(settings.seeds)
        for method in settings.methods
    ]
    log(f"[demo] {len(jobs)} runs × {settings.iterations} iterations on {workers} worker(s)")
    run_jobs(jobs, workers=workers, desc="[demo] runs")

    runs = collect(out / "runs", settings)
    results = {"settings": settings.to_dict(), "warm_start": start_scores, "runs": runs}
    atomic_write_json(out / "results.json", results)
    table = results_table(runs, start_scores, settings)
    atomic_write_text(
        out / "results.md",
        "# iris demo: distance to the known target per method and iteration\n\n"
        f"Mean ± std over {settings.seeds} seed(s); iteration t is the model after t self-play "
        "iterations (SFT: t more epochs). Exact metrics by enumerating the support.\n\n"
        f"{table}\n",
    )
    from paper_figures.make_all import make_all

    report = make_all(out / "runs", out / "figures")
    results["figures"] = [
        str(p) for paths in report.built.values() for p in paths if p.suffix == ".png"
    ]
    if report.skipped:  # the benchmark tables need lm-eval runs; INDEX.md says why
        log(f"[demo] {len(report.skipped)} figure(s) not built: see {out}/figures/INDEX.md")
    results["table"] = table
    results["seconds"] = time.perf_counter() - started
    return results
