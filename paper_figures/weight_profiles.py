"""Figure: weighting profiles of SPIN, SPACE, SPIF and IRIS at several α (needs torch).

The profile data come from the losses' weight contract (:mod:`iris.losses`):
``real_weights = −(1/β) ∂loss/∂real_logratios`` and ``generated_weights = (1/β)
∂loss/∂generated_logratios``. With β = 1 the reward is the log-ratio, and every loss's
weights depend on β only through r = β·logratio, so the profiles hold for any β.

For one sample with reward r in a batch of ``batch_size`` whose other rewards are 0 (for
SPIN, whose loss pairs an annotated and a synthetic response, its partner has reward 0),
the plotted value is the sample's weight divided by its weight when r = 0 as well (all
rewards equal): for IRIS that is batch size × weight, uniform = 1.

Writes ``weight_profiles.json`` (the data) next to the figure; :func:`analysis.weight_profiles`
draws it, so the plot itself needs no torch. This script ignores the run directories.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from analysis import ProfileCurve, Records, WeightProfiles, weight_profiles

from ._common import script_main

NAME = "weighting profiles"
ALPHAS = (0.5, 1.0, 2.0, 3.0)
BATCH_SIZE = 64  # the papers' global batch
MU = 1.0  # SPACE's noise ratio in its main runs
BOUND = 2.0  # SPIF's reward bound (iris.losses default)


def compute_weight_profiles(
    rewards: np.ndarray | None = None,
    *,
    batch_size: int = BATCH_SIZE,
    alphas: Sequence[float] = ALPHAS,
    mu: float = MU,
    bound: float = BOUND,
) -> WeightProfiles:
    """Relative per-sample weights of each loss along a reward grid (float64, via iris.losses)."""
    import torch

    from iris.losses import iris_loss, space_loss, spif_loss, spin_loss

    rewards = np.linspace(-3.0, 3.0, 121) if rewards is None else np.asarray(rewards, dtype=float)
    # (label, loss name, α, loss(real_logratios, generated_logratios), batch-independent weights?)
    methods: list[tuple[str, str, float, Callable, bool]] = [
        ("SPIN", "spin", math.nan, lambda a, b: spin_loss(a, b, beta=1.0), True),
        (
            f"SPACE μ={mu:g}",
            "space",
            math.nan,
            lambda a, b: space_loss(a, b, mu=mu, beta=1.0),
            True,
        ),
        (
            f"SPIF c={bound:g}",
            "spif",
            math.nan,
            lambda a, b: spif_loss(a, b, beta=1.0, bound=bound),
            True,
        ),
    ]
    for alpha in alphas:
        methods.append(
            (
                f"IRIS α={alpha:g}",
                "iris",
                float(alpha),
                lambda a, b, alpha=alpha: iris_loss(a, b, alpha=alpha, beta=1.0),
                False,
            )
        )

    def side_weights(out, side: str) -> np.ndarray:
        return (out.real_weights if side == "real" else out.generated_weights).numpy()

    def one_sample(loss, side: str, r: float) -> float:
        """Weight of sample 0 with reward r in a batch whose other rewards are 0."""
        real = torch.zeros(batch_size, dtype=torch.float64)
        generated = torch.zeros(batch_size, dtype=torch.float64)
        (real if side == "real" else generated)[0] = r
        return float(side_weights(loss(real, generated), side)[0])

    def batched(loss, side: str) -> np.ndarray:
        """All rewards in one batch: exact for losses whose weight of a sample (a pair for
        SPIN) depends on that sample only, up to the 1/batch factor the ratio removes."""
        grid = torch.as_tensor(rewards, dtype=torch.float64)
        zeros = torch.zeros_like(grid)
        out = loss(grid, zeros) if side == "real" else loss(zeros, grid)
        return side_weights(out, side) / side_weights(loss(zeros, zeros.clone()), side)

    curves = []
    for label, loss_name, alpha, loss, independent in methods:
        for side in ("real", "generated"):
            at_zero = one_sample(loss, side, 0.0)
            if independent:
                values = batched(loss, side)
                for index in (0, len(rewards) // 3, len(rewards) - 1):  # the shortcut's premise
                    expected = one_sample(loss, side, float(rewards[index])) / at_zero
                    if not math.isclose(values[index], expected, rel_tol=1e-9):
                        raise AssertionError(
                            f"{label} {side}: weights are not per-sample; batched {values[index]} != {expected}"
                        )
            else:
                values = np.array([one_sample(loss, side, float(r)) for r in rewards]) / at_zero
            curves.append(ProfileCurve(label, loss_name, side, values, alpha))
    return WeightProfiles(rewards, batch_size, tuple(curves), mu=mu, bound=bound)


def build(records: Records | None, out_dir: Path) -> list[Path]:
    profiles = compute_weight_profiles()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / "weight_profiles.json"
    data.write_text(json.dumps(profiles.to_json()) + "\n", encoding="utf-8")
    return [*weight_profiles(profiles, out_dir), data]


def caption(records: Records | None = None) -> str:
    from analysis import CAPTIONS

    return CAPTIONS["weight_profiles"].format(batch_size=BATCH_SIZE, mu=MU, bound=BOUND)


main = script_main(build, NAME)

if __name__ == "__main__":
    raise SystemExit(main())
