"""The paper's figures as functions of loaded records: each writes PDF + PNG and returns the paths.

Every function takes :class:`~analysis.records.Records` (or, for the weighting
profiles, the profile data computed by ``paper_figures``) and an output folder, and
raises :class:`~analysis.records.NoData` naming what is missing when the records cannot
make the figure. :data:`CAPTIONS` holds each figure's caption: what it shows, and how.

Training curves are drawn against training progress ``t + s/S`` (iteration t, logged
step s of the S steps of that iteration), so runs with different step counts line up
and integer x marks the end of an iteration.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from .concentration import SIDES, ess_fraction_theory, measured_concentration, tilt
from .plotting import family_color, figure, method_colors, new_figure, plot_band, seed_bands
from .records import EVAL, TRAIN, TRAIN_SUMMARY, NoData, Records, format_n

__all__ = [
    "CAPTIONS", "ProfileCurve", "WeightProfiles", "alpha_trace", "data_efficiency",
    "gradient_concentration", "testbed_distance", "training_curves", "training_progress",
    "weight_profiles"
]  # fmt: skip

CAPTIONS: dict[str, str] = {
    "gradient_concentration": (
        "Gradient concentration of IRIS. Effective sample size ESS/n = 1/(n Σ w²) of the "
        "annotated weights softmax((α−1) r⁺) (left) and synthetic weights softmax(α r⁻) "
        "(middle) against the order α. Lines: the Gaussian-reward prediction exp(−τ²σ²) "
        "(τ = α−1 annotated, τ = α synthetic) for the 10th, 50th and 90th percentile of the "
        "logged reward standard deviations σ; markers: the ESS/n logged at each training step "
        "at the α of that step. Right: logged ESS/n against the prediction from the same "
        "step's logged σ (rewards/*_std); the diagonal is exact agreement."
    ),
    "weight_profiles": (
        "Weighting profiles: the gradient weight a method gives one sample as a function of "
        "its reward r = β·logratio, annotated samples (left, weight on +∇r⁺) and synthetic "
        "samples (right, weight on −∇r⁻), from the weight contract of iris.losses. The sample "
        "sits in a batch of {batch_size} whose other rewards are all 0 (SPIN: its pair partner "
        "has reward 0); weights are relative to a batch of equal rewards (= 1 at r = 0; for "
        "IRIS this is batch size × weight, uniform = 1). IRIS's weight depends on the whole "
        "batch through the softmax; SPACE (μ = {mu:g}) and SPIF (bound {bound:g}) weigh "
        "each sample on its own; with the partner's reward at 0, SPIN's weight 2σ(∓r) equals "
        "SPACE's at μ = 1 (the wide translucent line under SPACE's)."
    ),
    "alpha_trace": (
        "Adaptive order. Left: α used at every logged step (solid) and the measured gaps "
        "(right axis): the reference gap D̂ = mean per-token log p_θt(y′) − log p_θt(y) "
        "(dashed) and the variational estimate −L_α (dotted), against training progress "
        "(iteration + fraction of its steps). Right: per iteration, the mean α over its steps "
        "(error bars: min–max) and the reference gap measured at its start."
    ),
    "training_curves": (
        "Training curves, mean over seeds (band: ± one standard deviation where there are "
        "several seeds), against training progress (iteration + fraction of its steps): the "
        "loss (self-play losses only), the variational estimate −L_α (IRIS), the mean "
        "log-likelihood log p_θ of the annotated and of the synthetic responses, and the "
        "reward margin β(lr⁺ − lr⁻). Gaps are steps where the metric was not logged (NaN)."
    ),
    "testbed_distance": (
        "Testbed: distance from the trained model to the known target distribution after each "
        "self-play iteration, mean over seeds (band: ± one standard deviation): forward "
        "KL(p_data ‖ p_θ), reverse KL(p_θ ‖ p_data) where logged, and total variation; log scale."
    ),
    "data_efficiency": (
        "Data efficiency: {score} against the number of annotated samples n (log scale), "
        "SFT (grey, dashed) against the self-play methods, at {iteration}; mean over "
        "seeds, error bars ± one standard deviation where there are several seeds."
    ),
}
DOTS = {"s": 14, "edgecolor": "white", "linewidth": 0.3, "zorder": 3}  # one logged step


def training_progress(records: Records) -> pd.Series:
    """(run, iteration) → the number of optimisation steps S of that iteration.

    S is the step of the Trainer's closing row when logged, else the largest logged step.
    """
    logged = records[records.stage.isin([TRAIN, TRAIN_SUMMARY]) & records.step.notna()]
    last = logged.groupby(["run", "iteration", "stage"]).step.max().unstack("stage")
    total = last.reindex(columns=[TRAIN_SUMMARY, TRAIN]).bfill(axis=1)[TRAIN_SUMMARY]
    return total[total > 0].astype(float)


def training_points(records: Records, metrics) -> pd.DataFrame:
    """Training rows of ``metrics`` with x = training progress t + s/S (rounded to 1e-6)."""
    rows = records[(records.stage == TRAIN) & records.metric.isin(list(metrics))]
    total = training_progress(records).reindex(pd.MultiIndex.from_frame(rows[["run", "iteration"]]))
    x = rows.iteration + rows.step.astype(float) / total.to_numpy()
    return rows.assign(x=x.round(6)).dropna(subset="x")


def _note(ax, text: str, **kwargs) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", color="0.4", **kwargs)


def _iteration_lines(ax, iterations: Sequence[int]) -> None:
    for t in iterations:
        ax.axvline(t, color="0.6", linewidth=0.6, linestyle=":", zorder=0)


def _bands(ax, bands: pd.DataFrame, series: Sequence[str], colors, marker: str) -> None:
    """Mean ± std lines of ``bands`` (:func:`seed_bands` by series, [iteration,] x) in the
    order of ``series``; one segment per iteration when the index has an iteration level."""
    for label in (s for s in series if s in bands.index.get_level_values("series")):
        mine = bands.loc[label]
        segments = mine.groupby(level="iteration") if mine.index.nlevels > 1 else [(0, mine)]
        for t, band in segments:
            x = band.index.get_level_values(-1)
            mean, std, legend = band["mean"], band["std"], label if t == 0 else None
            plot_band(ax, x, mean, std, color=colors[label], label=legend, marker=marker)


@figure("gradient_concentration")
def gradient_concentration(records: Records) -> Figure:
    """ESS/n of the annotated and synthetic weights vs α: exp(−τ²σ²) against logged values."""
    series = records.series_labels()  # curves are series (method, and n or model when they vary)
    points = {
        side: (p := measured_concentration(records, side)).assign(method=p.run.map(series))
        for side in SIDES
    }
    if not any(len(p) for p in points.values()):
        raise NoData(
            "no run logged alpha together with weights/<side>_ess_fraction and rewards/<side>_std "
            "(IRIS runs with reward-std logging)"
        )
    colors = method_colors(records)
    markers = {"real": "o", "generated": "^"}

    def scatter(ax, pts, x: str, marker: str, legend: bool) -> None:
        """Logged ESS/n against column ``x``, one colour (and legend entry) per series."""
        for method, mine in pts.groupby("method", sort=False):
            label, color = method if legend else None, colors.get(method)
            ax.scatter(mine[x], mine.ess_fraction, marker=marker, color=color, label=label, **DOTS)

    fig = new_figure(7.2, 2.5)
    axes = fig.subplots(1, 3)
    alpha_max = max(3.0, *(1.1 * float(p.alpha.max()) for p in points.values() if len(p)))
    grid = np.linspace(0.0, alpha_max, 301)
    for ax, (side, pts) in zip(axes[:2], points.items(), strict=True):
        display, _, std_metric = SIDES[side]
        ax.set_title(f"{display} weights, tilt {'α−1' if side == 'real' else 'α'}")
        ax.set(xlabel="order α", ylabel="ESS / n", ylim=(0, 1.05), xlim=(0, alpha_max))
        if not len(pts):
            _note(ax, f"no steps logged {std_metric}")
            continue
        for q, style in zip((10, 50, 90), (":", "-", "--"), strict=True):
            sigma = float(np.percentile(pts.sigma, q))
            label = f"exp(−τ²σ²), σ={sigma:.2g} (p{q})"
            theory = ess_fraction_theory(tilt(grid, side), sigma)
            ax.plot(grid, theory, color="0.25", linestyle=style, linewidth=1.0, label=label)
        scatter(ax, pts, "alpha", "o", legend=True)
        ax.legend(loc="lower left")
    ax = axes[2]
    ax.set_title("logged vs predicted, per step")
    ax.plot([0, 1], [0, 1], color="0.5", linewidth=0.8)
    for side, pts in points.items():
        scatter(ax, pts, "predicted", markers[side], legend=False)
    ax.set(xlabel="predicted exp(−τ²σ²) from the step's σ", ylabel="logged ESS / n")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.05))
    handles = [
        Line2D([], [], marker=m, linestyle="", color="0.3", label=SIDES[s][0])
        for s, m in markers.items()
    ]
    ax.legend(handles=handles, loc="upper left")
    return fig


@dataclasses.dataclass(frozen=True)
class ProfileCurve:
    """One method's relative weight of one sample as a function of its reward, on one side."""

    label: str
    loss: str
    side: str  # "real" (annotated) or "generated" (synthetic)
    weights: np.ndarray
    alpha: float = math.nan


@dataclasses.dataclass(frozen=True)
class WeightProfiles:
    """Reward grid, batch size and curves of the weighting-profile figure."""

    rewards: np.ndarray
    batch_size: int
    curves: tuple[ProfileCurve, ...]
    mu: float = 1.0
    bound: float = 2.0

    def to_json(self) -> dict:
        curves = [dataclasses.asdict(c) | {"weights": c.weights.tolist()} for c in self.curves]
        curves = [{k: c[k] for k in ("label", "loss", "side", "alpha", "weights")} for c in curves]
        data = {"rewards": self.rewards.tolist(), "batch_size": self.batch_size}
        return data | {"mu": self.mu, "bound": self.bound, "curves": curves}

    @classmethod
    def from_json(cls, data: dict) -> WeightProfiles:
        def curve(c: dict) -> ProfileCurve:
            weights = np.asarray(c["weights"], dtype=float)
            return ProfileCurve(c["label"], c["loss"], c["side"], weights, float(c["alpha"]))

        options = {k: float(data[k]) for k in ("mu", "bound") if k in data}
        rewards = np.asarray(data["rewards"], dtype=float)
        return cls(rewards, int(data["batch_size"]), tuple(map(curve, data["curves"])), **options)


# side → (its reward, the panel's title) of the weighting-profile figure
PROFILE_SIDES = {
    "real": ("r⁺", "annotated sample (weight on +∇r⁺)"),
    "generated": ("r⁻", "synthetic sample (weight on −∇r⁻)"),
}


@figure("weight_profiles")
def weight_profiles(profiles: WeightProfiles) -> Figure:
    """Each method's per-sample gradient weight vs reward, annotated and synthetic sides."""
    if not profiles.curves:
        raise NoData("no weighting profiles given")
    fig = new_figure(7.0, 2.8)
    axes = fig.subplots(1, 2, sharey=True)
    iris_alphas = sorted({c.alpha for c in profiles.curves if c.loss == "iris"})
    shades = dict(zip(iris_alphas, np.linspace(0.0, 1.0, max(len(iris_alphas), 1)), strict=False))
    styles = {"space": "-.", "spif": (0, (1, 1)), "tspin": "--"}
    for ax, (side, (reward, title)) in zip(axes, PROFILE_SIDES.items(), strict=True):
        for curve in (c for c in profiles.curves if c.side == side):
            if curve.loss == "iris":
                color, style, width = family_color("iris", shades[curve.alpha]), "-", 1.4
            elif curve.loss == "spin":  # wide and translucent: SPACE μ=1 coincides with it here
                color, style, width = (*family_color("spin")[:3], 0.35), "-", 4.0
            else:
                color, style, width = family_color(curve.loss), styles.get(curve.loss, "--"), 1.6
            line = {"color": color, "linestyle": style, "linewidth": width, "label": curve.label}
            ax.plot(profiles.rewards, curve.weights, **line)
        ax.axhline(1.0, color="0.5", linewidth=0.6)
        ax.axvline(0.0, color="0.5", linewidth=0.6)
        ax.set_yscale("log")
        ax.set_xlim(profiles.rewards.min(), profiles.rewards.max())
        ax.set_xlabel(f"reward {reward} = β·logratio of the sample")
        ax.set_title(title)
    axes[0].set_ylabel("weight relative to equal rewards")
    axes[1].legend(loc="lower right", ncols=2)
    return fig


@figure("alpha_trace")
def alpha_trace(records: Records) -> Figure:
    """The α of runs with an α schedule, against the measured gaps, per step and per iteration."""
    runs = [r for r in records.runs.values() if r.schedule is not None]
    wanted = ["alpha", "gap/reference", "objective/variational_estimate"]
    points = training_points(records, wanted)
    points = points[points.run.isin([r.run for r in runs])]
    if not (points.metric == "alpha").any():
        raise NoData(
            "no adaptive-α run found (no run with training.alpha_schedule that logged alpha)"
        )
    fig = new_figure(7.2, 3.0)
    left, right = fig.subplots(1, 2)
    left_gap, right_gap = left.twinx(), right.twinx()
    palette = [family_color("iris-schedule", s) for s in np.linspace(1.0, 0.2, len(runs))]
    handles = []
    iterations_seen = sorted(set(points.iteration))
    for run, color in zip(runs, palette, strict=True):
        own = points[points.run == run.run]
        mine = own.drop_duplicates(["metric", "x"], keep="last")
        for metric, style, axis in zip(
            wanted, ("-", "--", ":"), (left, left_gap, left_gap), strict=True
        ):
            for _, segment in mine[mine.metric == metric].groupby("iteration"):
                segment = segment.sort_values("x")
                marker = "." if metric == "alpha" else None
                axis.plot(segment.x, segment.value, color=color, linestyle=style, marker=marker)
        alpha = own[own.metric == "alpha"].groupby("iteration").value.agg(["mean", "min", "max"])
        right.errorbar(
            alpha.index,
            alpha["mean"],
            yerr=[alpha["mean"] - alpha["min"], alpha["max"] - alpha["mean"]],
            color=color,
            marker="o",
            linestyle="-",
        )
        gaps = own[own.metric == "gap/reference"]
        gap = gaps.groupby("iteration").value.agg(lambda v: v.iloc[0])  # at the iteration's start
        if len(gap):
            right_gap.plot(
                gap.index, gap, color=color, marker="s", linestyle="--", markerfacecolor="white"
            )
        label = run.method if len(runs) == 1 else f"{run.method} ({run.run})"
        handles.append(Line2D([], [], color=color, label=label))
        bounds = [(run.schedule_config or {}).get(b) for b in ("alpha_min", "alpha_max")]
        for axis, bound in itertools.product((left, right), bounds):
            if isinstance(bound, int | float):
                axis.axhline(bound, color="0.6", linewidth=0.6, linestyle="-.")
    _iteration_lines(left, [t + 1 for t in iterations_seen][:-1])
    left.set_xlim(min(iterations_seen), max(iterations_seen) + 1)
    left.set_xlabel("training progress (iteration + fraction of its steps)")
    left.set_ylabel("α (solid)")
    left_gap.set_ylabel("gap: D̂ reference (dashed), −L_α (dotted)")
    left.set_title("per logged step")
    right.set_xlabel("self-play iteration")
    right.set_ylabel("mean α over the iteration (min–max)")
    right_gap.set_ylabel("reference gap D̂ (squares)")
    right.set_title("per iteration")
    right.xaxis.set_major_locator(FixedLocator(iterations_seen))
    right.xaxis.set_minor_locator(NullLocator())
    for axis in (left_gap, right_gap):
        axis.grid(False)
        axis.spines["right"].set_visible(True)
    styles = [("-", "α"), ("--", "reference gap D̂"), (":", "variational −L_α")]
    handles += [Line2D([], [], color="0.3", linestyle=s, label=label) for s, label in styles]
    handles.append(Line2D([], [], color="0.6", linestyle="-.", label="α_min, α_max"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    return fig


# TRL's names of the same quantities (chosen = annotated, rejected = synthetic).
TRL_NAMES = {
    "logps/chosen": "logps/real",
    "logps/rejected": "logps/generated",
    "rewards/margins": "rewards/margin",
}
TRAINING_PANELS = (
    ("loss", "loss"),
    ("objective/variational_estimate", "variational estimate −L_α"),
    ("logps/real", "log p_θ(annotated)"),
    ("logps/generated", "log p_θ(synthetic)"),
    ("rewards/margin", "reward margin β(lr⁺ − lr⁻)"),
)


@figure("training_curves")
def training_curves(records: Records) -> Figure:
    """Loss, variational estimate, log-likelihoods and reward margin over training, per method."""
    points = training_points(records, [*(m for m, _ in TRAINING_PANELS), *TRL_NAMES])
    points = points.assign(metric=points.metric.replace(TRL_NAMES))
    points = points[(points.metric != "loss") | (points.loss != "sft")]  # self-play losses only
    if points.empty:
        raise NoData(
            "no run logged training metrics (" + ", ".join(m for m, _ in TRAINING_PANELS) + ")"
        )
    curves = seed_bands(points, ["metric", "series", "iteration", "x"])
    methods = records.series_order(set(points.series))
    colors = method_colors(records)  # over every series: the same colours in every figure
    fig = new_figure(7.2, 4.4)
    axes = fig.subplots(2, 3).ravel()
    iterations = sorted(set(records.iteration[records.stage == TRAIN]))
    for ax, (metric, title) in zip(axes, TRAINING_PANELS, strict=False):
        ax.set_title(title)
        ax.set_xlabel("training progress (iteration)")
        _iteration_lines(ax, [t for t in iterations if t > 0])
        if metric not in curves.index.get_level_values("metric"):
            _note(ax, f"no run logged\n{metric}", va="center")
        else:  # one segment per iteration: the policy restarts from θt against a new opponent
            _bands(ax, curves.loc[metric], methods, colors, marker=".")
    legend_ax = axes[-1]
    legend_ax.axis("off")
    legend_ax.legend(
        handles=[Line2D([], [], color=colors[m], marker=".", label=m) for m in methods],
        loc="center",
        title="method (mean ± std over seeds)",
    )
    return fig


TESTBED_PANELS = (
    ("testbed/forward_kl", "forward KL(p_data ‖ p_θ)"),
    ("testbed/reverse_kl", "reverse KL(p_θ ‖ p_data)"),
    ("testbed/total_variation", "total variation"),
)


@figure("testbed_distance")
def testbed_distance(records: Records) -> Figure:
    """Forward KL, reverse KL and TV to the testbed target vs iteration, per method (seed bands)."""
    evals = records[(records.stage == EVAL) & (records.suite == "testbed")]
    bands = seed_bands(evals, ["metric", "series", "iteration"])
    present = set(bands.index.get_level_values("metric"))
    panels = [(metric, title) for metric, title in TESTBED_PANELS if metric in present]
    if not panels:
        raise NoData(
            "no testbed evaluation (eval/testbed.summary.json with testbed/forward_kl or total_variation)"
        )
    shown = evals[evals.metric.isin(dict(panels))]
    methods, colors = records.series_order(set(shown.series)), method_colors(records)
    fig = new_figure(2.4 * len(panels) + 1.4, 2.6)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (metric, title) in zip(axes, panels, strict=True):
        _bands(ax, bands.loc[metric], methods, colors, marker="o")
        ax.set_title(title)
        ax.set_xlabel("self-play iteration")
        ax.set_yscale("log")  # distances span decades when a method diverges
    for ax in axes:
        ax.xaxis.set_major_locator(FixedLocator(sorted(set(shown.iteration.astype(float)))))
        ax.xaxis.set_minor_locator(NullLocator())
    axes[0].set_ylabel("distance to the target")
    handles: dict[str, Line2D] = {}  # one legend entry per series, over all panels
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(handles=list(handles.values()), loc="outside right upper")
    return fig


# (suite, metric, scale, axis label, higher is better), in order of preference.
DATA_EFFICIENCY_SCORES = (
    ("iris10", "average", 100.0, "iris10 average (%)", True),
    ("openllm_v1", "average", 100.0, "Open LLM v1 average (%)", True),
    ("testbed", "testbed/forward_kl", 1.0, "testbed forward KL(p_data ‖ p_θ)", False),
)


def data_efficiency_score(records: Records) -> tuple[str, str, float, str, bool]:
    """The first score of :data:`DATA_EFFICIENCY_SCORES` the records hold."""
    evals = records[records.stage == EVAL]
    for score in DATA_EFFICIENCY_SCORES:
        if ((evals.suite == score[0]) & (evals.metric == score[1])).any():
            return score
    raise NoData(
        "no evaluation score for the data-efficiency figure (iris10, openllm_v1 or testbed)"
    )


@figure("data_efficiency")
def data_efficiency(
    records: Records,
    *,
    score: tuple[str, str, float, str, bool] | None = None,
    iteration: int | str = "last",
) -> Figure:
    """Score vs number of annotated samples, SFT against self-play methods.

    ``iteration``: ``"last"`` (each run's last evaluated iteration; SFT's after its
    epochs) or an iteration index (the papers compare self-play after 2 iterations, t = 1).
    """
    suite, metric, scale, ylabel, higher_is_better = score or data_efficiency_score(records)
    chosen = records[
        (records.stage == EVAL)
        & (records.suite == suite)
        & (records.metric == metric)
        & records.n_train.notna()
    ]
    last = chosen.groupby("run").iteration.transform("max")
    chosen = chosen[chosen.iteration == (last if iteration == "last" else iteration)]
    points = seed_bands(chosen.assign(value=chosen.value * scale), ["method", "n_train"])
    sizes = sorted(set(points.index.get_level_values("n_train")))
    if len(sizes) < 2:
        raise NoData(
            f"the data-efficiency figure needs runs at two or more numbers of annotated samples; "
            f"{suite} {metric} is available at n = {[int(n) for n in sizes]}"
        )
    # One curve per method across n, in the colour its first series has in other figures.
    series_colors, methods = method_colors(records), {}
    for label in records.series_order():
        method = next(r.method for r in records.runs.values() if r.series == label)
        methods.setdefault(method, series_colors[label])
    fig = new_figure(4.8, 2.6)
    ax = fig.subplots()
    for method in (m for m in records.methods() if m in points.index):
        band = points.loc[method]
        is_sft = chosen.loss[chosen.method == method].iloc[0] == "sft"
        missing = [format_n(int(n)) for n in band.index[band["count"] < band["size"]]]
        label = f"{method} (NaN at n={', '.join(missing)})" if missing else method
        std = band["std"].to_numpy()
        ax.errorbar(
            band.index.to_numpy(dtype=float),
            band["mean"],
            yerr=std if np.isfinite(std).any() else None,
            color=methods[method],
            marker="s" if is_sft else "o",
            linestyle="--" if is_sft else "-",
            label=label,
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(sizes, [format_n(int(n)) for n in sizes])
    ax.set_xlabel("annotated samples n")
    ax.set_ylabel(ylabel)
    if not higher_is_better:
        ax.set_yscale("log")  # a distance: spans decades when a method diverges
    when = (
        "each run’s last evaluated iteration" if iteration == "last" else f"iteration {iteration}"
    )
    ax.set_title(f"at {when}")
    fig.legend(loc="outside right upper")
    return fig
