"""Plotting helpers: the one style file, method colours, seed bands, saving PDF + PNG.

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``), never
``pyplot``: no GUI backend and no global figure state are involved, so the helpers work
headless and a figure function leaks nothing. Every figure is written as vector PDF and
PNG with the style of ``analysis/iris.mplstyle``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .records import Records, RunInfo

__all__ = [
    "FORMATS", "STYLE", "figure", "method_colors", "new_figure", "plot_band", "save_figure"
]  # fmt: skip

STYLE = Path(__file__).with_name("iris.mplstyle")
FORMATS = ("pdf", "png")
# Metadata that changes on every run (creation date, software version), left out.
_NO_METADATA = {
    "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
    "png": {"Software": None},
}

# loss family -> (colormap, lightest, darkest): shades within a family separate α values
# (IRIS) or variants; fixed per family so a method keeps its colour across figures.
_FAMILY_MAPS: dict[str, tuple[str, float, float]] = {
    "sft": ("Greys", 0.6, 0.95),
    "spin": ("Blues", 0.55, 0.9),
    "tspin": ("GnBu", 0.55, 0.9),
    "space": ("Greens", 0.55, 0.9),
    "spif": ("Purples", 0.55, 0.9),
    "iris": ("YlOrBr", 0.45, 0.9),
    "iris-schedule": ("RdPu", 0.6, 0.9),
}


def figure(default_name: str) -> Callable[[Callable[..., Figure]], Callable[..., list[Path]]]:
    """Make ``draw(data, **options) -> Figure`` a figure function of the paper.

    The figure function ``f(data, out_dir, *, name=default_name, formats=FORMATS,
    **options)`` draws inside the project's matplotlib style and writes
    ``<out_dir>/<name>.<fmt>`` for each format (:func:`save_figure`); it returns the paths.
    """

    def decorate(draw: Callable[..., Figure]) -> Callable[..., list[Path]]:
        @functools.wraps(draw)
        def build(data, out_dir, *, name=default_name, formats=FORMATS, **options):
            with matplotlib.style.context(str(STYLE)):
                return save_figure(draw(data, **options), out_dir, name, formats)

        return build

    return decorate


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` × ``height`` inches with constrained layout (call inside the style)."""
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(
    fig: Figure, out_dir: str | Path, name: str, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Write ``<out_dir>/<name>.<fmt>`` for each format; returns the paths.

    Metadata that changes on every run (creation date, software version) is left out, so
    re-running on the same records rewrites byte-identical PDFs.
    """
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    paths = [Path(out_dir, f"{name}.{fmt}") for fmt in formats]
    for path, fmt in zip(paths, formats, strict=True):
        fig.savefig(path, format=fmt, metadata=_NO_METADATA.get(fmt))
    return paths


def _family(run: RunInfo) -> str:
    if run.loss == "iris" and run.schedule:
        return "iris-schedule"
    return run.loss if run.loss in _FAMILY_MAPS else "sft"


def method_colors(records: Records, labels: Iterable[str] | None = None) -> dict[str, Any]:
    """A colour per series label (:meth:`Records.series_labels`, or a method label).

    One colormap per loss family (SPIN blues, IRIS oranges, …); the members of a family
    get evenly spaced shades in the canonical order, so IRIS α = 0.5 … 3 run light to dark.
    """
    runs = records.runs.values()
    representative: dict[str, RunInfo] = {}
    for label, run in [*((r.series, r) for r in runs), *((r.method, r) for r in runs)]:
        representative.setdefault(label, run)
    labels = list(labels) if labels is not None else records.series_order()
    families: dict[str, list[str]] = {}
    for label in labels:
        family = _family(representative[label]) if label in representative else "sft"
        families.setdefault(family, []).append(label)
    colors: dict[str, Any] = {}
    for family, members in families.items():
        shades = [0.5] if len(members) == 1 else np.linspace(0.0, 1.0, len(members))
        colors |= {m: family_color(family, s) for m, s in zip(members, shades, strict=True)}
    return colors


def family_color(loss: str, shade: float = 0.75) -> Any:
    """The colour of a loss family at a shade in [0, 1] of its colormap's range."""
    cmap_name, low, high = _FAMILY_MAPS.get(loss, _FAMILY_MAPS["sft"])
    return matplotlib.colormaps[cmap_name](low + shade * (high - low))


def plot_band(
    ax, x, mean, std, *, color, label: str | None = None, marker: str | None = None, **kwargs
) -> None:
    """A mean line and a ±std band where the std is finite (n > 1 seeds)."""
    x, mean, std = (np.asarray(a, dtype=float) for a in (x, mean, std))
    ax.plot(x, mean, color=color, label=label, marker=marker, **kwargs)
    has_band = np.isfinite(std) & np.isfinite(mean)
    if has_band.any():
        ax.fill_between(
            x,
            np.where(has_band, mean - std, np.nan),
            np.where(has_band, mean + std, np.nan),
            color=color,
            alpha=0.2,
            linewidth=0,
        )


def seed_bands(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group of ``by``: mean, std (ddof 1; NaN for one value) and count of the finite
    values, and size (all values). A group whose values are all NaN has a NaN mean (a gap)."""
    finite = frame["value"].where(np.isfinite(frame["value"]))
    return finite.groupby([frame[k] for k in by]).agg(["mean", "std", "count", "size"])
