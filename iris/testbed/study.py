"""``iris study alpha-gap``: which order α helps most, as a function of the distance to the target.

The paper's thesis is that divergences "exhibit different strengths depending on the
distributional gap between model and target" (larger α far from the target, smaller α
near it) and that an adaptive order beats any fixed one. On the testbed the distance is
known exactly, so the thesis can be checked: warm starts at three distances (SFT for ¼, 1
and 4 epochs on the same annotated data), and from each IRIS at fixed α ∈ {¼, ½, 1, 2, 4},
adaptive IRIS (driven by the trained −L_α, or by the trained reward margin), the oracle
(the same map driven by the exact forward KL of the model entering each iteration: the
upper bound of the map), SPIN, SPACE and SPIF for T iterations over several seeds — every
run through the real self-play loop (:mod:`iris.testbed.demo`'s machinery), every method
at the demo's shared learning rate, β and batch (fixed before any result was seen).

Reported: the improvement (warm start minus final) of the exact forward KL, reverse KL
and total variation per (gap, method), mean ± std over seeds, with paired-by-seed 95%
t-intervals for the difference against the best fixed α (chosen per gap by mean forward-KL
improvement, on separate tuning seeds when ``tuning_seeds`` > 0, else on the same seeds)
and against SPIN; a heatmap (gap × α) and the learning curves per gap. Then two more
questions on the same runs:

- *Fair learning rates* (from the middle warm start): every method of :data:`LR_METHODS`
  — SFT, SPIN, SPACE, SPIF, T-SPIN at its paper's λ ∈ {0.1, 0.3, 0.5, 1}, IRIS — on a
  grid of learning rates, the best rate per method chosen on the tuning seeds and reported
  on the others, beside the shared rate.
- *Gap signals*: at every iteration of every run, each signal an α schedule can read
  (the trained −L_α, the trained reward margin, the free reference gap) beside the exact
  gap of the model entering the iteration; the default signal is the one whose α (the
  adaptive map applied to it) is closest to the oracle's (:func:`signal_agreement`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iris.runs import atomic_write_json, atomic_write_text
from iris.testbed.demo import (
    GAP_SIGNALS,
    METHODS,
    METRICS,
    DemoSettings,
    claim_output_dir,
    collect,
    collect_run,
    mean_std,
    run_config,
    run_jobs,
    save_png,
    to_jsonable,
    warm_start,
)
from iris.testbed.evaluator import renyi_gap_key
from iris.testbed.renyi import REPORTED_ALPHAS

ALPHAS = (0.25, 0.5, 1.0, 2.0, 4.0)
FIXED = tuple(f"iris-{alpha:g}" for alpha in ALPHAS)
_ADAPTIVE = METHODS["iris-adaptive"]["alpha_schedule"]  # [½, 2], per iteration, from −L_α
# Method name → training settings (added to the demo's shared lr / β / batch).
STUDY_METHODS: dict[str, dict[str, Any]] = {
    **{name: {"loss": "iris", "alpha": alpha} for name, alpha in zip(FIXED, ALPHAS, strict=True)},
    "iris-adaptive": METHODS["iris-adaptive"],
    # The same map driven by the trained reward margin instead of −L_α.
    "iris-adaptive-margin": {"loss": "iris", "alpha_schedule": {**_ADAPTIVE, "gap": "margin"}},
    # The upper bound of the map: driven by the exact forward KL of θt (an oracle).
    "iris-oracle": {
        "loss": "iris",
        "alpha_schedule": {
            **{k: v for k, v in _ADAPTIVE.items() if k != "smoothing"},
            "gap": "evaluation",
            "gap_metric": "testbed/forward_kl",
        },
    },
    "spin": METHODS["spin"],
    "space": METHODS["space"],
    "spif": METHODS["spif"],
}
TSPIN_LAMBDAS = (0.1, 0.3, 0.5, 1.0)  # T-SPIN's paper grid of its anchor weight λ
# The methods of the fair-learning-rate comparison (each at its best rate from a grid).
LR_METHODS: dict[str, dict[str, Any]] = {
    "sft": METHODS["sft"],
    "spin": METHODS["spin"],
    "space": METHODS["space"],
    "spif": METHODS["spif"],
    **{f"tspin-{lam:g}": {**METHODS["tspin"], "lam": lam} for lam in TSPIN_LAMBDAS},
    **{
        m: STUDY_METHODS[m]
        for m in ("iris-0.5", "iris-1", "iris-2", "iris-adaptive", "iris-oracle")
    },
}
ALL_METHODS = {**STUDY_METHODS, **LR_METHODS}
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
    tuning_seeds: int = 2  # extra seeds that pick the best α per gap and the best rates
    # Fair learning rates: every LR_METHODS method on this grid, from the warm start of
    # ``lr_warm_start_epochs``, the best rate per method chosen on the tuning seeds.
    lr_grid: tuple[float, ...] = (5e-5, 1e-4, 2e-4, 4e-4, 8e-4)
    lr_methods: tuple[str, ...] = tuple(LR_METHODS)
    lr_warm_start_epochs: float = 1.0

    @classmethod
    def quick(cls) -> StudySettings:
        methods = (
            "iris-0.5",
            "iris-2",
            "iris-adaptive",
            "iris-adaptive-margin",
            "iris-oracle",
            "spin",
        )
        demo = DemoSettings(n_annotated=64, iterations=2, seeds=2, methods=methods)
        return cls(
            demo=demo, tuning_seeds=0, lr_grid=(1e-4, 4e-4), lr_methods=("spin", "tspin-0.1")
        )

    def __post_init__(self) -> None:
        if self.lr_warm_start_epochs not in self.warm_start_epochs:
            raise ValueError(
                f"lr_warm_start_epochs {self.lr_warm_start_epochs:g} is not one of the warm "
                f"starts {list(self.warm_start_epochs)}"
            )
        unknown = sorted(set(self.lr_methods) - set(LR_METHODS))
        if unknown:
            raise ValueError(f"unknown lr_methods {unknown}; known: {sorted(LR_METHODS)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "demo": self.demo.to_dict(),
            "warm_start_epochs": list(self.warm_start_epochs),
            "tuning_seeds": self.tuning_seeds,
            "lr_grid": list(self.lr_grid),
            "lr_methods": list(self.lr_methods),
            "lr_warm_start_epochs": self.lr_warm_start_epochs,
        }

    @property
    def report_seeds(self) -> list[int]:
        return list(range(self.demo.seeds))

    @property
    def tuning_seed_list(self) -> list[int]:
        return list(range(self.demo.seeds, self.demo.seeds + self.tuning_seeds))

    @property
    def lr_tuning_seeds(self) -> list[int]:
        """The seeds that pick each method's rate: the tuning seeds, else the reported ones."""
        return self.tuning_seed_list or self.report_seeds


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
    if math.isinf(mean):
        return f"{mean:+}"  # a run diverged
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
    fixed = [m for m in FIXED if m in results["summary"][gaps[0]]["metrics"]["forward_kl"]]
    values = np.array(
        [
            [results["summary"][g]["metrics"]["forward_kl"][m]["improvement_mean"] for m in fixed]
            for g in gaps
        ]
    )
    # Colour: Δ relative to the best fixed α of the same warm start (the rows' scales differ).
    relative = values - np.nanmax(values, axis=1, keepdims=True)
    fig, ax = plt.subplots(figsize=(1.3 * len(fixed) + 2.6, 0.9 * len(gaps) + 1.8))
    image = ax.imshow(relative, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(fixed)), [m.removeprefix("iris-") for m in fixed])
    labels = [f"{g}\n(KL₀ {results['warm_starts'][g]['forward_kl']:.3f})" for g in gaps]
    ax.set_yticks(range(len(gaps)), labels)
    ax.set_xlabel("IRIS order α (fixed)")
    ax.set_ylabel("warm start (SFT epochs)")
    low = np.nanmin(relative)
    for i, gap in enumerate(gaps):
        for j, method in enumerate(fixed):
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
    return save_png(fig, path)


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
        {
            "iris-adaptive": "red",
            "iris-adaptive-margin": "tab:purple",
            "iris-oracle": "magenta",
            "spin": "black",
            "space": "tab:orange",
            "spif": "tab:brown",
        }
    )
    styles = {
        "spin": "--",
        "space": "--",
        "spif": "--",
        "iris-adaptive": "-.",
        "iris-adaptive-margin": "-.",
        "iris-oracle": ":",
    }
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
    return save_png(fig, path)


# ---------------------------------------------------------------------------------------
# Gap signals against the exact gap
# ---------------------------------------------------------------------------------------

SIGNAL_LABELS = {
    "variational_estimate": "trained −L_α (end of iteration t)",
    "reward_margin": "trained reward margin (end of iteration t)",
    "reference_gap": "reference gap D̂ (start of iteration t)",
}


def signal_points(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One point per (gap, method, seed, iteration t): every gap signal measured during
    iteration t beside the exact gap of θt, the model entering it (the warm start at t = 0,
    else the model iteration t − 1 produced): its forward KL and, where α is one of the
    reported orders, R_α(p_data ‖ p_θt) at the α iteration t trained with."""
    points = []
    for gap, runs in results["runs"].items():
        for method, by_seed in runs.items():
            for seed, rows in by_seed.items():
                entering = results["warm_starts"][gap]
                for t, row in enumerate(rows):
                    alpha = row.get("alpha", math.nan)
                    key = renyi_gap_key(alpha) if math.isfinite(alpha) else None
                    point = {
                        "gap": gap,
                        "method": method,
                        "seed": int(seed),
                        "iteration": t,
                        "alpha": alpha,
                        "exact_forward_kl": float(entering["forward_kl"]),
                        "exact_renyi": float(entering.get(key, math.nan)) if key else math.nan,
                        **{name: float(row.get(name, math.nan)) for name in GAP_SIGNALS},
                    }
                    points.append(point)
                    entering = row
    return points


def signal_agreement(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """How well each signal tracks the exact gap, over every run that logs it.

    ``spearman``: rank correlation of signal and exact gap over all points.
    ``alpha_error``: the criterion that decides the default signal — the mean over runs and
    iterations of |α the adaptive map would pick from the signal − α the oracle picks|,
    the map being the study's (``[½, 2]``, normaliser the first value, held per
    iteration). The oracle: α_t = map(g_t, g_0), g_t the exact forward KL of θt. A trained
    signal (−L_α, the margin) is known only once its iteration ends: α_0 = α_max and α_t =
    map(s_{t−1}, s_0). The reference gap is measured at the start of its iteration:
    α_t = map(r_t, r_0). Smoothing is left out.
    """
    from scipy import stats

    from iris.schedules import adaptive_alpha

    low, high = _ADAPTIVE["alpha_min"], _ADAPTIVE["alpha_max"]
    runs: dict[tuple, dict[int, Mapping[str, Any]]] = {}
    for p in points:
        runs.setdefault((p["gap"], p["method"], p["seed"]), {})[p["iteration"]] = p
    comparisons = [(name, "exact_forward_kl") for name in GAP_SIGNALS]
    comparisons.insert(1, ("variational_estimate", "exact_renyi"))
    out = []
    for signal, exact in comparisons:
        pairs = [p for p in points if math.isfinite(p[signal]) and math.isfinite(p[exact])]
        errors = []
        for by_t in runs.values():
            steps = [by_t[t] for t in sorted(by_t)]
            values = [p[signal] for p in steps]
            if exact != "exact_forward_kl" or not all(map(math.isfinite, values)):
                continue
            trained = GAP_SIGNALS[signal][1] == "end"
            gaps = [p["exact_forward_kl"] for p in steps]
            for t in range(len(steps)):
                oracle = adaptive_alpha(gaps[t], gaps[0], low, high)
                if trained:
                    alpha = high if t == 0 else adaptive_alpha(values[t - 1], values[0], low, high)
                else:
                    alpha = adaptive_alpha(values[t], values[0], low, high)
                errors.append(abs(alpha - oracle))
        rho = (
            float(stats.spearmanr([p[signal] for p in pairs], [p[exact] for p in pairs])[0])
            if len(pairs) > 2
            else math.nan
        )
        out.append(
            {
                "signal": signal,
                "exact": exact,
                "points": len(pairs),
                "spearman": rho,
                "alpha_error": float(np.mean(errors)) if errors else math.nan,
            }
        )
    return out


def best_signal(agreement: Sequence[Mapping[str, Any]]) -> str | None:
    """The signal whose α is closest to the oracle's (smallest ``alpha_error``)."""
    candidates = [a for a in agreement if math.isfinite(a["alpha_error"])]
    return min(candidates, key=lambda a: a["alpha_error"])["signal"] if candidates else None


def signals_table(agreement: Sequence[Mapping[str, Any]]) -> str:
    exact_labels = {
        "exact_forward_kl": "forward KL of θt",
        "exact_renyi": "R_α(p_data ‖ p_θt) at the run's α",
    }
    lines = [
        "| signal | against the exact | points | Spearman ρ | mean abs α − α(oracle) |",
        "|---|---|---:|---:|---:|",
    ]
    for a in agreement:
        rho = "—" if math.isnan(a["spearman"]) else f"{a['spearman']:+.3f}"
        err = "—" if math.isnan(a["alpha_error"]) else f"{a['alpha_error']:.3f}"
        lines.append(
            f"| {SIGNAL_LABELS[a['signal']]} | {exact_labels[a['exact']]} | {a['points']} | "
            f"{rho} | {err} |"
        )
    return "\n".join(lines)


def signals_figure(points: Sequence[Mapping[str, Any]], gaps: Sequence[str], path: Path) -> Path:
    """Each signal against the exact gap of θt, one panel per signal, colour = warm start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("variational_estimate", "exact_renyi", "exact R_α(p_data ‖ p_θt), α of the run"),
        ("reward_margin", "exact_forward_kl", "exact forward KL of θt"),
        ("reference_gap", "exact_forward_kl", "exact forward KL of θt"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 4.4), squeeze=False)
    colors = dict(zip(gaps, ("tab:red", "tab:blue", "tab:green", "tab:purple"), strict=False))
    for ax, (signal, exact, xlabel) in zip(axes[0], panels, strict=True):
        for gap in gaps:
            xs = [p[exact] for p in points if p["gap"] == gap]
            ys = [p[signal] for p in points if p["gap"] == gap]
            ax.scatter(xs, ys, s=9, alpha=0.55, color=colors[gap], label=gap)
        finite = [p[exact] for p in points if math.isfinite(p[exact]) and math.isfinite(p[signal])]
        if signal == "variational_estimate" and finite:
            top = max(finite)
            ax.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="y = x (the bound)")
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(SIGNAL_LABELS[signal])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, title="warm start")
    fig.suptitle(
        "Gap signals an α schedule can use, against the exact gap of the model entering "
        "each iteration\n(every run × seed × iteration of the study; −L_α only where α is a "
        "reported order)"
    )
    return save_png(fig, path)


# ---------------------------------------------------------------------------------------
# Fair learning rates
# ---------------------------------------------------------------------------------------


def _lr_key(lr: float) -> str:
    return f"{lr:g}"


def _lr_dir(out: Path, settings: StudySettings, method: str, lr: float, seed: int) -> Path:
    """A (method, rate, seed) run's directory; the alpha-gap runs at the shared rate are reused."""
    gap = gap_name(settings.lr_warm_start_epochs)
    demo = settings.demo
    if (
        math.isclose(lr, demo.learning_rate)
        and method in demo.methods
        and (seed in settings.report_seeds or method in FIXED)
    ):
        return out / gap / "runs" / method / f"seed{seed}"
    return out / gap / "learning_rates" / method / f"lr{_lr_key(lr)}" / f"seed{seed}"


def _gain(rows: Sequence[Mapping[str, float]], start: Mapping[str, float]) -> float:
    """Δ forward KL of a run; −∞ for a run that left the finite range (diverged)."""
    value = float(start["forward_kl"]) - float(rows[-1]["forward_kl"])
    return value if math.isfinite(value) else -math.inf


def best_rate(grid: Mapping[str, Mapping[int, Any]], start: Mapping[str, float]) -> str:
    """The rate (key of ``grid``: rate → seed → rows) of largest mean Δ forward KL."""
    means = {
        lr: float(np.mean([_gain(rows, start) for rows in seeds.values()]))
        for lr, seeds in grid.items()
    }
    return max(means, key=lambda lr: -math.inf if math.isnan(means[lr]) else means[lr])


def run_fair_lr(
    out: Path,
    settings: StudySettings,
    data: Path,
    start: Path,
    scores: Mapping[str, float],
    *,
    workers: int,
) -> dict[str, Any]:
    """Every lr method on the grid (tuning seeds), then at its best rate (reported seeds)."""
    demo = settings.demo
    metrics = (*METRICS, *GAP_KEYS)

    def job(method: str, lr: float, seed: int) -> dict[str, Any]:
        at = dataclasses.replace(demo, learning_rate=lr)
        where = _lr_dir(out, settings, method, lr, seed)
        return run_config(at, method, seed, start=start, data=data, out=where, methods=ALL_METHODS)

    def rows(method: str, lr: float, seed: int) -> list[dict[str, float]]:
        return collect_run(_lr_dir(out, settings, method, lr, seed), demo.iterations, metrics)

    def run_unique(jobs: list[dict[str, Any]], desc: str) -> None:
        unique = {j["output_dir"]: j for j in jobs}
        run_jobs(list(unique.values()), workers=workers, desc=desc)

    tuning, report = settings.lr_tuning_seeds, settings.report_seeds
    methods = settings.lr_methods
    run_unique(
        [job(m, lr, s) for m in methods for lr in settings.lr_grid for s in tuning]
        + [job(m, demo.learning_rate, s) for m in methods for s in report],
        "[study] learning-rate grid",
    )
    grid = {
        m: {_lr_key(lr): {s: rows(m, lr, s) for s in tuning} for lr in settings.lr_grid}
        for m in methods
    }
    best = {m: best_rate(grid[m], scores) for m in methods}
    run_unique([job(m, float(best[m]), s) for m in methods for s in report], "[study] best rates")
    return {
        "gap": gap_name(settings.lr_warm_start_epochs),
        "tuning_seeds": tuning,
        "grid": grid,
        "best_lr": best,
        "shared": {m: {s: rows(m, demo.learning_rate, s) for s in report} for m in methods},
        "best": {m: {s: rows(m, float(best[m]), s) for s in report} for m in methods},
    }


def fair_lr_table(
    fair: Mapping[str, Any], start: Mapping[str, float], settings: StudySettings
) -> str:
    """Markdown: the grid on the tuning seeds, then each method at the shared and its best rate."""
    grid, best = fair["grid"], fair["best_lr"]
    rates = list(next(iter(grid.values()))) if grid else []
    report = settings.report_seeds
    lines = [
        f"Mean Δ forward KL per learning rate on the tuning seeds {fair['tuning_seeds']} "
        "(the best rate in bold; −inf: a run diverged):",
        "",
        "| method | " + " | ".join(f"lr {r}" for r in rates) + " |",
        "|---" * (len(rates) + 1) + "|",
    ]
    for method, by_rate in grid.items():
        cells = []
        for rate in rates:
            mean = float(np.mean([_gain(rows, start) for rows in by_rate[rate].values()]))
            text = f"{mean:+.3f}"
            cells.append(f"**{text}**" if rate == best[method] else text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")

    def gains(runs: Mapping[int, Any]) -> list[float]:
        return [_gain(runs[s], start) for s in report]

    spin = gains(fair["best"]["spin"]) if "spin" in fair["best"] else None
    lines += [
        "",
        f"Each method at the shared rate {settings.demo.learning_rate:g} and at its best rate, "
        f"on the reported seeds {report}:",
        "",
        "| method | best lr | Δ at the shared lr (mean ± std) | Δ at the best lr (mean ± std) | "
        "final forward KL at the best lr | Δ(best) − Δ(shared) [95% CI] | "
        "Δ − Δ(SPIN at its best lr) [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in grid:
        shared, tuned = gains(fair["shared"][method]), gains(fair["best"][method])
        finals = [fair["best"][method][s][-1]["forward_kl"] for s in report]
        versus = "(reference)" if method == "spin" or spin is None else _ci(paired_ci(tuned, spin))
        lines.append(
            f"| {method} | {best[method]} | {_fmt(*mean_std(shared))} | {_fmt(*mean_std(tuned))} | "
            f"{np.mean(finals):.3f} | {_ci(paired_ci(tuned, shared))} | {versus} |"
        )
    return "\n".join(lines)


def run_alpha_gap(
    output_dir: str | Path,
    settings: StudySettings | None = None,
    *,
    workers: int = 2,
    log=print,
) -> dict[str, Any]:
    """Warm-start at every distance, run every (gap, method, seed), write the results."""
    settings = settings or StudySettings()
    out = claim_output_dir(output_dir, settings.to_dict(), "study")
    started = time.perf_counter()
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
                        methods=ALL_METHODS,
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
    lr_gap = gap_name(settings.lr_warm_start_epochs)
    data, start, scores = starts[lr_gap]
    results["fair_lr"] = run_fair_lr(out, settings, data, start, scores, workers=workers)
    points = signal_points(results)  # derived from the runs: not saved again
    agreement = signal_agreement(points)
    results["signals"] = {"agreement": agreement, "best": best_signal(agreement)}
    table = results_table(results, settings)
    lr_table = fair_lr_table(results["fair_lr"], scores, settings)
    signal_table = signals_table(results["signals"]["agreement"])
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
        f"{chosen}. Exact metrics by enumerating the support. iris-oracle: the adaptive map "
        "driven by the exact forward KL of the model entering each iteration (an upper bound "
        "no real run has).\n\n"
        f"{table}\n\n"
        f"## Fair learning rates (warm start {lr_gap})\n\n{lr_table}\n\n"
        "## Gap signals against the exact gap\n\n"
        "Every run × seed × iteration t above: each signal an α schedule can read, measured "
        "during iteration t, against the exact gap of θt (the model entering it). The "
        "adaptive map turns a signal into α, so the default signal is the one whose α is "
        "closest to the oracle's (mean abs α − α(oracle), over every run and iteration, "
        "the map applied to each run's logged signals; `signal_agreement`): "
        f"**{results['signals']['best']}**.\n\n{signal_table}\n\n"
        "Figures: `alpha_gap_heatmap.png` (gap × α, Δ forward KL), "
        "`learning_curves.png` (forward KL per iteration, per gap), "
        "`gap_signals.png` (each signal against the exact gap).\n",
    )
    figures = [
        heatmap(results, out / "alpha_gap_heatmap.png"),
        learning_curves(results, settings, out / "learning_curves.png"),
        signals_figure(points, list(starts), out / "gap_signals.png"),
    ]
    results["seconds"] = time.perf_counter() - started
    atomic_write_json(out / "results.json", to_jsonable(results))
    results["table"] = table
    results["figures"] = [str(p) for p in figures]
    return results
