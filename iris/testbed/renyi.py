"""The exact gap the IRIS objective estimates: ``R_α(p_data ‖ p_θ) = D_α / α``, in float64.

``−L_α`` (``iris.losses``) is the Rényi–Donsker–Varadhan lower bound on

    R_α(P ‖ Q) = log Σ_z P(z)^α Q(z)^{1−α} / (α (α − 1))

with P the law of annotated and Q that of synthetic (prompt, response) pairs. On the
testbed every term is known, so the gap can be computed exactly by enumerating the
support (see :mod:`iris.testbed.evaluator`).

**Averaging over prompts.** The two tilted risks of ``L_α`` normalise over the whole
batch of (prompt, response) pairs, prompts drawn from the prompt distribution w(x) and
shared by P and Q; the variational function is a function of the pair. So ``−L_α``
estimates the divergence of the *joint* laws ``P = w(x) p_data(y|x)`` and
``Q = w(x) p_θ(y|x)``:

    R_α(P ‖ Q) = log Σ_x w(x) exp(α(α−1) R_α(x)) / (α(α−1)),

a tilted mean (tilt α(α−1)) of the per-prompt conditional gaps ``R_α(x) =
R_α(p_data(·|x) ‖ p_θ(·|x))`` — not their plain average. The two agree at α = 1 (the chain
rule of KL: the joint forward KL is the mean conditional one) and for a single prompt;
otherwise, by Jensen, the joint gap is below the mean conditional one for α ∈ (0, 1)
and above it for α > 1. :func:`renyi_gap` returns the joint value (what the objective
estimates), :func:`renyi_gap_per_prompt` the conditional ones (their mean is one line).

**Limits.** α → 1 is a removable singularity (the forward KL); α → 0 gives the reverse
KL(Q ‖ P) when Q's mass on P's support is 1, and +∞ otherwise (a model putting mass off
the target's support, as the testbed's models do, has R_α → +∞ as α → 0). Both are
handled by writing the gap as a scaled cumulant generating function of the log-ratio
``l = log p_data − log p_θ``, computed with ``expm1``/``log1p`` around its mean:

    α ≥ ½:  R_α = (1/α) · (1/c) log E_{p_data} e^{c l},           c = α − 1
    α < ½:  R_α = ((log m)/α + (1/α) log E_{q̃} e^{α l}) / (α − 1)

with m = Q's mass on the support and q̃ = Q renormalised there (both exact identities).
Q need not sum to one (the testbed's invalid mass is simply left out of the sum).
"""

from __future__ import annotations

import math

import numpy as np

# Orders at which the testbed evaluator reports the exact gap: the α-gap study's fixed orders
# (½, 1 and 2: the SPACE, SPIN and SPIF regimes).
REPORTED_ALPHAS = (0.25, 0.5, 1.0, 2.0, 4.0)

_ROUNDING = 1e-12  # a model mass this close to one on the support counts as one
_SMALL = 0.5  # below this |t (v − mean)|, expm1/log1p; above it, a shifted log-sum-exp


def tilted_mean(values: np.ndarray, weights: np.ndarray, tilt: float) -> float:
    """``(1/t) log Σ_i w_i e^{t v_i}`` for weights summing to one; at t = 0, ``Σ_i w_i v_i``.

    Continuous through t = 0: computed as ``v̄ + (1/t) log1p(Σ_i w_i expm1(t (v_i − v̄)))``
    around the weighted mean v̄. Entries of zero weight are ignored; ±∞ values are allowed
    (they dominate or vanish as the sign of t says).
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    keep = weights > 0
    v, w = values[keep], weights[keep]
    if v.size == 0:
        raise ValueError("tilted_mean: no entry of positive weight")
    if tilt == 0.0 or not np.isfinite(v).all():
        if tilt == 0.0:
            if np.isposinf(v).any() and np.isneginf(v).any():
                return math.nan
            return float(np.dot(w, v)) if np.isfinite(v).all() else float(v[~np.isfinite(v)][0])
        with np.errstate(invalid="ignore"):
            exponent = np.log(w) + tilt * v  # t·(±∞) is ±∞: those terms dominate or vanish
        top = exponent.max()
        if not np.isfinite(top):
            return float(top / tilt)
        return float((top + math.log(np.exp(exponent - top).sum())) / tilt)
    mean = float(np.dot(w, v))
    x = tilt * (v - mean)
    if np.abs(x).max() < _SMALL:
        return mean + math.log1p(float(np.dot(w, np.expm1(x)))) / tilt
    top = x.max()
    return mean + (top + math.log(float(np.dot(w, np.exp(x - top))))) / tilt


def _conditional_gap(
    data_log_probs: np.ndarray, model_log_probs: np.ndarray, alpha: float
) -> float:
    """R_α(P ‖ Q) of two laws on one enumerated support, from their log-probabilities."""
    lp, lq = np.asarray(data_log_probs, np.float64), np.asarray(model_log_probs, np.float64)
    p, q = np.exp(lp), np.exp(lq)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = lp - lq  # log(p/q); +∞ where q = 0 < p, −∞ where p = 0 < q
    # P is a probability on the support (its rows sum to one up to rounding: renormalise).
    p_mass = p.sum()
    ratio = ratio - math.log(p_mass)
    if alpha >= 0.5:
        return tilted_mean(ratio, p / p_mass, alpha - 1.0) / alpha  # (1/α)(1/c) log E_p e^{c l}
    on_support = np.where(p > 0, q, 0.0)
    mass = float(on_support.sum())
    if mass == 0.0:
        return math.inf  # Q and P are mutually singular: Σ p^α q^{1−α} = 0
    # A mass within _ROUNDING of one is a distribution on the support, rounded.
    log_mass = math.log(mass) if mass < 1.0 - _ROUNDING else 0.0
    if alpha == 0.0:
        if log_mass < 0.0:
            return math.inf
        return -tilted_mean(ratio, on_support / mass, 0.0)  # KL(q̃ ‖ p)
    return (log_mass / alpha + tilted_mean(ratio, on_support / mass, alpha)) / (alpha - 1.0)


def renyi_gap_per_prompt(
    data_log_probs: np.ndarray, model_log_probs: np.ndarray, alpha: float
) -> np.ndarray:
    """(K,) conditional gaps ``R_α(p_data(·|x) ‖ p_θ(·|x))``, one per prompt.

    Args:
        data_log_probs: (K, N) exact ``log p_data(y|x)`` over an enumerated support of N
            responses per prompt (each row sums to one in probability).
        model_log_probs: (K, N) ``log p_θ(y|x)`` on the same support; a row may sum to less
            than one (mass off the support).
        alpha: the order α ≥ 0 (α = 0 and α = 1 as limits).
    """
    alpha = float(alpha)
    if not alpha >= 0.0 or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number ≥ 0, got {alpha}")
    lp = np.atleast_2d(np.asarray(data_log_probs, np.float64))
    lq = np.atleast_2d(np.asarray(model_log_probs, np.float64))
    if lp.shape != lq.shape:
        raise ValueError(f"shapes differ: {lp.shape} vs {lq.shape}")
    return np.array([_conditional_gap(a, b, alpha) for a, b in zip(lp, lq, strict=True)])


def renyi_gap(
    data_log_probs: np.ndarray,
    model_log_probs: np.ndarray,
    alpha: float,
    prompt_weights: np.ndarray | None = None,
) -> float:
    """The joint gap ``R_α(w·p_data ‖ w·p_θ)`` that ``−L_α`` estimates (module docstring).

    ``prompt_weights``: the prompt distribution w (default uniform, as the testbed's data
    and evaluator draw prompts). Equal to the tilted mean, tilt α(α−1), of
    :func:`renyi_gap_per_prompt`.
    """
    per_prompt = renyi_gap_per_prompt(data_log_probs, model_log_probs, alpha)
    k = per_prompt.size
    w = np.full(k, 1.0 / k) if prompt_weights is None else np.asarray(prompt_weights, np.float64)
    if w.shape != (k,) or (w < 0).any() or not w.sum() > 0:
        raise ValueError("prompt_weights: one non-negative weight per prompt, not all zero")
    alpha = float(alpha)
    return tilted_mean(per_prompt, w / w.sum(), alpha * (alpha - 1.0))
