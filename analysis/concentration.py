"""Gradient concentration: the effective sample size of IRIS's weights, theory and measured.

IRIS weights the gradient of the annotated samples by ``softmax((α−1) r⁺)`` and of the
synthetic ones by ``softmax(α r⁻)`` over the batch (objective.md). For rewards with
variance σ² and tilt τ the weights are lognormal and ``E[ESS/n] ≈ exp(−τ²σ²)``
(large-n limit; a batch of n samples has ESS/n ≥ 1/n). This module owns that formula and
the measured counterpart read from training logs: at every logged step, the logged α,
the logged ESS/n (``weights/<side>_ess_fraction``) and the logged standard deviation of
the rewards β·logratio over the step's batch (``rewards/<side>_std``) as σ.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .records import TRAIN, Records

__all__ = ["SIDES", "ess_fraction_theory", "measured_concentration", "tilt"]

# side -> (display name, weights metric, reward-std metric)
SIDES: dict[str, tuple[str, str, str]] = {
    "real": ("annotated", "weights/real_ess_fraction", "rewards/real_std"),
    "generated": ("synthetic", "weights/generated_ess_fraction", "rewards/generated_std"),
}


def tilt(alpha: np.ndarray | float, side: str) -> np.ndarray:
    """The tilt of a side's weights: α − 1 for annotated ("real"), α for synthetic ("generated").

    >>> float(tilt(2.0, "real")), float(tilt(2.0, "generated"))
    (1.0, 2.0)
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {sorted(SIDES)}, got {side!r}")
    alpha = np.asarray(alpha, dtype=float)
    return alpha - 1.0 if side == "real" else alpha


def ess_fraction_theory(tau: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    """``exp(−τ²σ²)``: expected ESS/n of ``softmax(τ r)`` for Gaussian r of std σ (n → ∞).

    >>> round(float(ess_fraction_theory(1.0, 0.5)), 6)
    0.778801
    """
    tau = np.asarray(tau, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    return np.exp(-np.square(tau) * np.square(sigma))


def measured_concentration(records: Records, side: str) -> pd.DataFrame:
    """Steps (of any run) that logged α, ``weights/<side>_ess_fraction`` and ``rewards/<side>_std``.

    One row per step: ``run, method, alpha, sigma, ess_fraction`` and ``predicted`` (the
    ESS/n of :func:`ess_fraction_theory` at the step's α and σ). Steps where any of the
    three is NaN are left out (NaN was already warned about).
    """
    _, ess_metric, std_metric = SIDES[side]
    wanted = ["alpha", ess_metric, std_metric]
    logged = records[(records.stage == TRAIN) & records.metric.isin(wanted)]
    steps = logged.pivot_table(
        index=["run", "iteration", "step"], columns="metric", values="value", aggfunc="last"
    )
    steps = steps.reindex(columns=wanted).dropna().reset_index()
    steps = steps.rename(columns={ess_metric: "ess_fraction", std_metric: "sigma"})
    methods = {run.run: run.method for run in records.runs.values()}
    return steps.assign(
        method=steps.run.map(methods),
        predicted=ess_fraction_theory(tilt(steps.alpha, side), steps.sigma),
    )[["run", "method", "alpha", "sigma", "ess_fraction", "predicted"]]
