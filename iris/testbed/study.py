"""``iris study alpha-gap``: which order α helps most, as a function of the distance to the target.

The paper's thesis is that divergences "exhibit different strengths depending on the
distributional gap between model and target" (larger α far from the target, smaller α
near it) and that an adaptive order beats any fixed one. On the testbed the distance is
known exactly, so the thesis can be checked: warm starts at three distances (SFT for ¼, 1
and 4 epochs on the same annotated data), and from each IRIS at fixed α ∈ {¼, ½, 1, 2, 4},
adaptive IRIS, SPIN, SPACE and SPIF for T iterations over several seeds — every run
through the real self-play loop (:mod:`iris.testbed.demo`'s machinery), every method at
the demo's shared learning rate, β and batch (fixed before any result was seen).

Reported: the improvement (warm start minus final) of the exact forward KL, reverse KL
and total variation per (gap, method), mean ± std over seeds, with paired-by-seed 95%
t-intervals for the difference against the best fixed α (chosen per gap by mean forward-KL
improvement, on separate tuning seeds when ``tuning_seeds`` > 0, else on the same seeds)
and against SPIN; a heatmap (gap × α) and the learning curves per gap.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iris.runs import atomic_write_json, atomic_write_text, read_json, to_json
from iris.testbed.demo import (
    METHODS,
    METRICS,
    DemoSettings,
    collect,
    run_config,
    run_jobs,
    warm_start,
)
from iris.testbed.renyi import REPORTED_ALPHAS

ALPHAS = (0.25, 0.5, 1.0, 2.0, 4.0)
FIXED = tuple(f"iris-{alpha:g}" for alpha in ALPHAS)
# Method name → training settings (added to the demo's shared lr / β / batch).
STUDY_METHODS: dict[str, dict[str, Any]] = {
    **{name: {"loss": "iris", "alpha": alpha} for name, alpha in zip(FIXED, ALPHAS, strict=True)},
    "iris-adaptive": METHODS["iris-adaptive"],
    "spin": METHODS["spin"],
    "space": METHODS["space"],
    "spif": METHODS["spif"],
}
GAP_KEYS = tuple(f"renyi_gap/alpha={alpha:g}" for alpha in REPORTED_ALPHAS)
# The distances whose improvement is tabulated (forward KL first: it picks the best α).
DISTANCES = ("forward_kl", "reverse_kl", "total_variation")
_LABELS = {"forward_kl": "forward KL", "reverse_kl": "reverse KL", "total_variation": "TV"}


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """The α-gap study; ``quick()`` is the CI-sized variant."""

    demo: DemoSettings = dataclasses.field(
        default_factory=lambda: DemoSettings(seeds=5, methods=tuple(STUDY_METHODS))
    )
    warm_start_epochs: tuple[float, ...] = (0.25, 1.0, 4.0)
    tuning_seeds: int = 2  # extra seeds, fixed α only, that pick the best α per gap

    @classmethod
    def quick(cls) -> StudySettings:
        demo = DemoSettings(n_annotated=64, iterations=2, seeds=2, methods=tuple(STUDY_METHODS))
        return cls(demo=demo, tuning_seeds=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "demo": self.demo.to_dict(),
            "warm_start_epochs": list(self.warm_start_epochs),
            "tuning_seeds": self.tuning_seeds,
        }

    @property
    def report_seeds(self) -> list[int]:
        return list(range(self.demo.seeds))

    @property
    def tuning_seed_list(self) -> list[int]:
        return list(range(self.demo.seeds, self.demo.seeds + self.tuning_seeds))


def gap_name(epochs: float) -> str:
    return f"sft-{epochs:g}ep"


def paired_ci(
    a: Sequence[float], b: Sequence[float], level: float = 0.95
) -> tuple[float, float, float, int]:
    """Mean of the seed-paired differences a − b and its t-interval: (mean, low, high, n).

    Pairs with a NaN are dropped; with fewer than two pairs the interval is NaN.
    """
    from scipy import stats

    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    diff = diff[~np.isnan(diff)]
    n = int(diff.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(diff.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * diff.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def improvements(
    runs: Mapping[str, Mapping[int, list[Mapping[str, float]]]],
    start: Mapping[str, float],
    metric: str,
) -> dict[str, dict[int, float]]:
    """method → seed → warm-start metric minus the final iteration's (positive: closer)."""
    return {
        method: {
            seed: float(start[metric]) - float(rows[-1][metric]) for seed, rows in seeds.items()
        }
        for method, seeds in runs.items()
    }


def best_fixed_alpha(gains: Mapping[str, Mapping[int, float]], seeds: Sequence[int]) -> str:
    """The fixed-α method of largest mean improvement over ``seeds``."""
    means = {m: float(np.nanmean([gains[m][s] for s in seeds])) for m in FIXED if m in gains}
    return max(means, key=lambda m: -math.inf if math.isnan(means[m]) else means[m])


def _fmt(mean: float, std: float = math.nan) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:+.3f}" if math.isnan(std) else f"{mean:+.3f} ± {std:.3f}"


def _ci(values: tuple[float, float, float, int]) -> str:
    mean, low, high, _ = values
    if math.isnan(mean):
        return "—"
    if math.isnan(low):
        return f"{mean:+.3f}"
    mark = " *" if low > 0 or high < 0 else ""
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]{mark}"


def summarise(results: Mapping[str, Any], settings: StudySettings) -> dict[str, Any]:
    """Per gap: the best fixed α and, per distance and method, improvement and paired CIs."""
    seeds = settings.report_seeds
    tuning = settings.tuning_seed_list
    summary: dict[str, Any] = {}
    for gap, runs in results["runs"].items():
        start = results["warm_starts"][gap]
        report = {m: {s: runs[m][s] for s in seeds} for m in runs}
        forward = improvements(runs, start, "forward_kl")
        best = best_fixed_alpha(forward, tuning or seeds)
        per_metric: dict[str, Any] = {}
        for metric in DISTANCES:
            gains = improvements(report, start, metric)
            rows = {}
            for method, by_seed in gains.items():
                values = [by_seed[s] for s in seeds]
                finals = [report[method][s][-1][metric] for s in seeds]
                rows[method] = {
                    "improvement_mean": float(np.nanmean(values)),
                    "improvement_std": float(np.nanstd(values, ddof=1))
                    if len(values) > 1
                    else math.nan,
                    "final_mean": float(np.nanmean(finals)),
                    "vs_best_alpha": paired_ci(values, [gains[best][s] for s in seeds]),
                    "vs_spin": paired_ci(values, [gains["spin"][s] for s in seeds]),
                }
            per_metric[metric] = rows
        summary[gap] = {"best_alpha": best, "metrics": per_metric}
    return summary


def results_table(results: Mapping[str, Any], settings: StudySettings) -> str:
    """Markdown: the warm starts, then per distance one row per (gap, method)."""
    summary = results["summary"]
    lines = [
        "| warm start | forward KL | reverse KL | TV | invalid | "
        + " | ".join(f"R_{a:g}" for a in REPORTED_ALPHAS)
        + " |",
        "|---" * (5 + len(REPORTED_ALPHAS)) + "|",
    ]
    for gap, start in results["warm_starts"].items():
        lines.append(
            f"| {gap} | {start['forward_kl']:.3f} | {start['reverse_kl']:.3f} | "
            f"{start['total_variation']:.3f} | {start['invalid_rate']:.3f} | "
            + " | ".join(f"{start[key]:.3f}" for key in GAP_KEYS)
            + " |"
        )
    for metric in DISTANCES:
        label = _LABELS[metric]
        lines += [
            "",
            f"**Improvement in exact {label}** (warm start − after T iterations; positive = "
            "closer to the target):",
            "",
            f"| gap | method | Δ {label} (mean ± std) | final {label} | Δ − Δ(best fixed α) "
            "[95% CI] | Δ − Δ(SPIN) [95% CI] |",
            "|---|---|---|---|---|---|",
        ]
        for gap, per_gap in summary.items():
            best = per_gap["best_alpha"]
            for method, row in per_gap["metrics"][metric].items():
                name = f"**{method}**" if method == best else method
                lines.append(
                    f"| {gap} | {name} | {_fmt(row['improvement_mean'], row['improvement_std'])} | "
                    f"{row['final_mean']:.3f} | "
                    f"{'(reference)' if method == best else _ci(tuple(row['vs_best_alpha']))} | "
                    f"{'(reference)' if method == 'spin' else _ci(tuple(row['vs_spin']))} |"
                )
    return "\n".join(lines)


def heatmap(results: Mapping[str, Any], path: Path) -> Path:
    """Gap × α: mean improvement in exact forward KL, the best α per gap boxed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    gaps = list(results["summary"])
    values = np.array(
        [
            [results["summary"][g]["metrics"]["forward_kl"][m]["improvement_mean"] for m in FIXED]
            for g in gaps
        ]
    )
    # Colour: Δ relative to the best fixed α of the same warm start (the rows' scales differ).
    relative = values - np.nanmax(values, axis=1, keepdims=True)
    fig, ax = plt.subplots(figsize=(1.3 * len(FIXED) + 2.6, 0.9 * len(gaps) + 1.8))
    image = ax.imshow(relative, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(FIXED)), [f"{a:g}" for a in ALPHAS])
    labels = [f"{g}\n(KL₀ {results['warm_starts'][g]['forward_kl']:.3f})" for g in gaps]
    ax.set_yticks(range(len(gaps)), labels)
    ax.set_xlabel("IRIS order α (fixed)")
    ax.set_ylabel("warm start (SFT epochs)")
    low = np.nanmin(relative)
    for i, gap in enumerate(gaps):
        for j, method in enumerate(FIXED):
            dark = relative[i, j] < low / 2
            ax.text(
                j, i, f"Δ {values[i, j]:+.3f}\n({relative[i, j]:+.3f})", ha="center",
                va="center", color="white" if dark else "black", fontsize=9,
            )  # fmt: skip
            if method == results["summary"][gap]["best_alpha"]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=2))
    fig.colorbar(image, ax=ax, label="Δ − (best α's Δ), same warm start")
    ax.set_title(
        "Improvement Δ in exact forward KL after T iterations (mean over seeds)\n"
        "colour and (…): Δ minus the row's best; red box: the best α chosen for the table"
    )
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Write ``fig`` as PNG with analysis.plotting's byte-stable metadata; close it."""
    import matplotlib.pyplot as plt

    from analysis.plotting import save_figure

    fig.tight_layout()
    with plt.rc_context({"savefig.dpi": 130}):
        (saved,) = save_figure(fig, path.parent, path.stem, formats=("png",))
    plt.close(fig)
    return saved


def learning_curves(results: Mapping[str, Any], settings: StudySettings, path: Path) -> Path:
    """Exact forward KL per iteration (0 = the warm start), one panel per gap, mean over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gaps = list(results["runs"])
    seeds = settings.report_seeds
    fig, axes = plt.subplots(1, len(gaps), figsize=(4.6 * len(gaps), 4.2), squeeze=False)
    cmap = plt.get_cmap("viridis")
    colors = {m: cmap(0.85 * i / (len(FIXED) - 1)) for i, m in enumerate(FIXED)}
    colors.update(
        {"iris-adaptive": "red", "spin": "black", "space": "tab:orange", "spif": "tab:brown"}
    )
    styles = {"spin": "--", "space": "--", "spif": "--", "iris-adaptive": "-."}
    x = np.arange(settings.demo.iterations + 1)
    for ax, gap in zip(axes[0], gaps, strict=True):
        start = results["warm_starts"][gap]["forward_kl"]
        for method, by_seed in results["runs"][gap].items():
            curves = np.array([[start] + [r["forward_kl"] for r in by_seed[s]] for s in seeds])
            mean = np.nanmean(curves, axis=0)
            ax.plot(
                x,
                mean,
                styles.get(method, "-"),
                color=colors[method],
                label=method,
                marker="o",
                ms=3,
            )
        ax.set_title(f"{gap} (warm start KL {start:.3f})")
        ax.set_xlabel("self-play iteration")
        ax.set_xticks(x)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("exact forward KL(p_data ‖ p_θ)")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(
        f"Exact forward KL per self-play iteration, mean over {len(seeds)} seed(s) "
        "(spread over seeds: results.md)"
    )
    return _save(fig, path)


def _to_jsonable(value: Any) -> Any:
    return json.loads(to_json(value))  # numpy scalars as numbers, as the manifest writes them


def run_alpha_gap(
    output_dir: str | Path,
    settings: StudySettings | None = None,
    *,
    workers: int = 2,
    log=print,
) -> dict[str, Any]:
    """Warm-start at every distance, run every (gap, method, seed), write the results."""
    settings = settings or StudySettings()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    saved = out / "settings.json"
    if saved.is_file() and read_json(saved) != _to_jsonable(settings.to_dict()):
        raise ValueError(
            f"{out} holds a study with other settings ({saved}); use another --output-dir"
        )
    atomic_write_json(saved, settings.to_dict())
    demo = settings.demo
    log(f"[study] target: {demo.target.to_dict()}; {demo.n_annotated} annotated responses")

    starts: dict[str, tuple[Path, Path, dict[str, float]]] = {}
    for epochs in settings.warm_start_epochs:
        gap = gap_name(epochs)
        at = dataclasses.replace(demo, warm_start_epochs=epochs)
        starts[gap] = warm_start(at, out / gap)
        scores = starts[gap][2]
        log(
            f"[study] warm start {gap}: forward KL {scores['forward_kl']:.3f}, "
            + ", ".join(f"{k} {scores[k]:.3f}" for k in GAP_KEYS)
        )
    jobs = []
    for gap, (data, start, _) in starts.items():
        for seed in settings.report_seeds + settings.tuning_seed_list:
            tuning = seed >= demo.seeds
            for method in demo.methods:
                if tuning and method not in FIXED:
                    continue
                out_dir = out / gap / "runs" / method / f"seed{seed}"
                jobs.append(
                    run_config(
                        demo,
                        method,
                        seed,
                        start=start,
                        data=data,
                        out=out_dir,
                        methods=STUDY_METHODS,
                    )
                )
    log(f"[study] {len(jobs)} runs × {demo.iterations} iterations on {workers} worker(s)")
    run_jobs(jobs, workers=workers, desc="[study] runs")

    metrics = (*METRICS, *GAP_KEYS)
    runs = {}
    for gap in starts:
        root = out / gap / "runs"
        per_gap = collect(root, demo, metrics=metrics)
        if settings.tuning_seeds:
            fixed = dataclasses.replace(demo, methods=tuple(m for m in demo.methods if m in FIXED))
            for method, rows in collect(
                root, fixed, metrics=metrics, seeds=settings.tuning_seed_list
            ).items():
                per_gap[method].update(rows)
        runs[gap] = per_gap
    results: dict[str, Any] = {
        "settings": settings.to_dict(),
        "warm_starts": {gap: s[2] for gap, s in starts.items()},
        "runs": runs,
    }
    results["summary"] = summarise(results, settings)
    table = results_table(results, settings)
    chosen = (
        f"on {settings.tuning_seeds} separate tuning seed(s) "
        f"({', '.join(map(str, settings.tuning_seed_list))})"
        if settings.tuning_seeds
        else "on the same seeds as reported (no separate tuning seeds: optimistic for it)"
    )
    atomic_write_text(
        out / "results.md",
        "# iris study alpha-gap: improvement in exact distance to the target per warm start\n\n"
        f"Warm starts: SFT for {', '.join(f'{e:g}' for e in settings.warm_start_epochs)} "
        f"epoch(s) on the same {demo.n_annotated} annotated responses. Every method: "
        f"{demo.iterations} self-play iterations at the demo's shared settings (lr "
        f"{demo.learning_rate:g}, β {demo.beta:g}, batch {demo.batch_size}×"
        f"{demo.gradient_accumulation_steps}), seeds {settings.report_seeds}. Δ = warm start − "
        "final (positive: closer). 95% intervals: t-intervals over seed-paired differences "
        "(* = excludes 0). The best fixed α (bold) is chosen per gap by mean Δ forward KL "
        f"{chosen}. Exact metrics by enumerating the support.\n\n{table}\n\n"
        "Figures: `alpha_gap_heatmap.png` (gap × α, Δ forward KL), "
        "`learning_curves.png` (forward KL per iteration, per gap).\n",
    )
    figures = [
        heatmap(results, out / "alpha_gap_heatmap.png"),
        learning_curves(results, settings, out / "learning_curves.png"),
    ]
    results["seconds"] = time.perf_counter() - started
    atomic_write_json(out / "results.json", _to_jsonable(results))
    results["table"] = table
    results["figures"] = [str(p) for p in figures]
    return results
