"""Accuracy of the loss library against its 50-digit reference, over the contract's ranges.

Owns the measured error table quoted in the README: for each dtype, the worst normwise
relative error of ``tilted_risk`` (tilts in [−1e3, 1e3], including 0 and ±1e-12, losses
up to 1e4 in magnitude), of ``iris_loss`` (α in [1e-3, 1e3], including 1 ± 1e-9), of the
weights, and of the baseline losses. Inputs are rounded to the dtype first and the
reference is evaluated on the rounded values, so the table measures the arithmetic,
not the input rounding.

Error measure: ``|computed − reference| / Σ_i w_i |ℓ_i|`` (the sensitivity of the risk to
relative perturbations of its inputs; equal to the plain relative error when all losses
share a sign). Weights: the largest absolute error of any weight divided by
``eps · max(1, max_i |τ ℓ_i|)``, with eps the unit roundoff of the arithmetic dtype — the
error that rounding the logits ``τ ℓ`` alone causes (float32 cannot resolve a logit of 1e7
to better than 1), so a ratio of order 1 means the weights are as accurate as the
arithmetic allows.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import mpmath
import torch

from iris import reference
from iris.losses import iris_loss, space_loss, spif_loss, spin_loss, tilt_weights, tilted_risk

TILTS = (
    0.0,
    1e-15,
    -1e-12,
    1e-12,
    1e-9,
    -1e-6,
    1e-4,
    -1e-2,
    0.1,
    -0.5,
    1.0,
    2.0,
    -3.0,
    10.0,
    100.0,
    -1e3,
    1e3,
)
ALPHAS = (1e-3, 1e-2, 0.1, 0.5, 1.0 - 1e-9, 1.0, 1.0 + 1e-9, 1.5, 2.0, 10.0, 100.0, 1e3)
SCALES = (1e-3, 1.0, 30.0, 1e3, 1e4)
OFFSETS = (0.0, 5.0, -1e4)
DTYPES = (torch.float64, torch.float32, torch.bfloat16)


@dataclass(frozen=True)
class AccuracyRow:
    function: str
    dtype: str
    cases: int
    worst_error: float
    worst_weight_error: float
    worst_case: str


def _rel(computed: float, exact: mpmath.mpf, scale: mpmath.mpf) -> float:
    return float(abs(mpmath.mpf(computed) - exact) / max(scale, mpmath.mpf("1e-300")))


def _weight_error(got: torch.Tensor, exact: list, logits_size: float, dtype: torch.dtype) -> float:
    eps = torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32).eps / 2
    err = max(
        float(abs(mpmath.mpf(float(g)) - e)) for g, e in zip(got.tolist(), exact, strict=True)
    )
    return err / (eps * max(1.0, logits_size))


def _samples(n: int, seed: int, dtype: torch.dtype):
    """Inputs of every (scale, offset), rounded to ``dtype``."""
    generator = torch.Generator().manual_seed(seed)
    for scale, offset in itertools.product(SCALES, OFFSETS):
        x = (offset + scale * torch.randn(n, generator=generator, dtype=torch.float64)).to(dtype)
        yield f"scale={scale:g} offset={offset:g}", x


def tilted_risk_rows(n: int = 16, seed: int = 0) -> list[AccuracyRow]:
    rows = []
    for dtype in DTYPES:
        worst, worst_w, where, cases = 0.0, 0.0, "", 0
        for (label, x), tau in itertools.product(list(_samples(n, seed, dtype)), TILTS):
            values = x.double().tolist()
            err = _rel(
                float(tilted_risk(x, tau)),
                reference.tilted_risk(values, tau),
                reference.condition_scale(values, tau),
            )
            exact_w = reference.tilt_weights(values, tau)
            got_w = tilt_weights(
                x.to(torch.float64 if dtype == torch.float64 else torch.float32), tau
            )
            err_w = _weight_error(got_w, exact_w, abs(tau) * max(abs(v) for v in values), dtype)
            cases += 1
            if err > worst:
                worst, where = err, f"tilt={tau:g} {label}"
            worst_w = max(worst_w, err_w)
        rows.append(
            AccuracyRow(
                "tilted_risk", str(dtype).removeprefix("torch."), cases, worst, worst_w, where
            )
        )
    return rows


def iris_rows(n: int = 16, seed: int = 1) -> list[AccuracyRow]:
    rows = []
    for dtype in DTYPES:
        worst, worst_w, where, cases = 0.0, 0.0, "", 0
        samples = list(_samples(2 * n, seed, dtype))
        for (label, x), alpha in itertools.product(samples, ALPHAS):
            real, generated = x[:n], x[n:]
            out = iris_loss(real, generated, alpha=alpha)
            r, g = real.double().tolist(), generated.double().tolist()
            err = _rel(
                float(out.loss), reference.iris_loss(r, g, alpha), reference.iris_scale(r, g, alpha)
            )
            exact_w = reference.tilt_weights([-v for v in r], 1 - alpha) + reference.tilt_weights(
                g, alpha
            )
            got_w = torch.cat([out.real_weights, out.generated_weights])
            logits = max(abs(1 - alpha), alpha) * max(abs(v) for v in r + g)
            err_w = _weight_error(got_w, exact_w, logits, dtype)
            cases += 1
            if err > worst:
                worst, where = err, f"alpha={alpha:.10g} {label}"
            worst_w = max(worst_w, err_w)
        rows.append(
            AccuracyRow(
                "iris_loss", str(dtype).removeprefix("torch."), cases, worst, worst_w, where
            )
        )
    return rows


def baseline_rows(n: int = 16, seed: int = 2) -> list[AccuracyRow]:
    """SPIN, SPACE and SPIF values against the reference (relative to max(|exact|, 1))."""
    specs = {
        "spin_loss": (spin_loss, reference.spin_loss, {"beta": 0.1}),
        "space_loss": (space_loss, reference.space_loss, {"mu": 1.0, "beta": 1.0}),
        "spif_loss": (spif_loss, reference.spif_loss, {"beta": 0.1, "bound": 2.0}),
    }
    rows = []
    for name, (fn, ref_fn, kwargs) in specs.items():
        for dtype in DTYPES:
            worst, where, cases = 0.0, "", 0
            for label, x in _samples(2 * n, seed, dtype):
                real, generated = x[:n], x[n:]
                exact = ref_fn(real.double().tolist(), generated.double().tolist(), **kwargs)
                err = _rel(
                    float(fn(real, generated, **kwargs).loss), exact, max(abs(exact), mpmath.mpf(1))
                )
                cases += 1
                if err > worst:
                    worst, where = err, label
            rows.append(
                AccuracyRow(name, str(dtype).removeprefix("torch."), cases, worst, math.nan, where)
            )
    return rows


def accuracy_rows(n: int = 16) -> list[AccuracyRow]:
    return tilted_risk_rows(n) + iris_rows(n) + baseline_rows(n)


def format_table(rows: list[AccuracyRow]) -> str:
    lines = [
        "| function | dtype | cases | worst rel. error | worst weight error / (eps·max|τℓ|) | worst case |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        weight = "—" if math.isnan(row.worst_weight_error) else f"{row.worst_weight_error:.2f}"
        lines.append(
            f"| {row.function} | {row.dtype} | {row.cases} | {row.worst_error:.1e} | {weight} | {row.worst_case} |"
        )
    return "\n".join(lines)
