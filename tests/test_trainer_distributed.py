"""IRIS weight normalisation is exact across gradient accumulation and processes.

IRIS's gradient weights are softmaxes over the optimisation batch,
``w⁺ = softmax((α−1) β lr⁺)`` and ``w⁻ = softmax(α β lr⁻)``, so the objective of a batch of
8 is not the average of the objectives of two batches of 4. With
``weight_normalization="global"`` the trainer must give the optimiser exactly the
gradient of the objective on the whole batch of 8, however the batch is split:

    (1 process, batch 8) = (1 process, batch 4 × 2 accumulation) = (1 process, 2 × 4)
                         = (2 processes × batch 4) = (2 processes × batch 2 × 2)

With plain SGD at learning rate 1 the parameter update of one step is minus the
gradient, so comparing updates compares gradients. The reference is the policy plus
noise, so that the log-ratios, and hence the weights, are far from uniform (ESS/n ≈ 0.4
for the synthetic responses at α = 2): with uniform weights every split would agree
trivially. The per-micro-batch variant must differ (the test can fail).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _trainer_common import make_model_dirs, make_rows, save_dataset, train_iris
from datasets import load_from_disk

REPO = Path(__file__).resolve().parents[1]
IRIS = {"loss": "iris", "alpha": 2.0, "beta": 1.0}
TOLERANCE = 1e-5  # relative, float32 forward/backward with different padding


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("normalisation")
    make_model_dirs(root, noise=0.05)
    save_dataset(make_rows(8, seed=0), root / "data")
    return root


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _run_processes(root: Path, processes: int, **overrides) -> dict:
    out = root / f"ddp-{processes}-{'-'.join(f'{k}{v}' for k, v in overrides.items())}.pt"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
    }
    args = [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        str(REPO / "tests" / "_trainer_ddp.py"),
        str(root),
        str(out),
        *args,
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return torch.load(out)


@pytest.fixture(scope="module")
def single_process(setup):
    """Updates and logged metrics of one step on one process, for several splits of the batch of 8."""
    dataset = load_from_disk(os.fspath(setup / "data"))
    splits = {
        "8": {"per_device_train_batch_size": 8},
        "4x2": {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2},
        "2x4": {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4},
        "4x2 micro_batch": {
            "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 2,
            "weight_normalization": "micro_batch",
        },
    }
    results = {}
    for name, split in splits.items():
        _, update, rows = train_iris(
            setup / "policy",
            dataset,
            setup / f"out-{name}",
            reference=setup / "reference",
            **IRIS,
            **split,
        )
        results[name] = (update, rows[0])
    return results


def test_weights_are_far_from_uniform(single_process):
    _, row = single_process["8"]
    assert row["weights/generated_ess_fraction"] < 0.6
    assert row["weights/real_ess_fraction"] < 0.9


@pytest.mark.parametrize("split", ["4x2", "2x4"])
def test_gradient_accumulation_gives_the_global_batch_update(single_process, split):
    whole, whole_row = single_process["8"]
    update, row = single_process[split]
    assert _relative(update, whole) < TOLERANCE
    for key in (
        "loss",
        "objective/variational_estimate",
        "weights/generated_ess_fraction",
        "logratios/real",
    ):
        assert row[key] == pytest.approx(whole_row[key], rel=1e-5, abs=1e-6), key


def test_micro_batch_normalisation_differs(single_process):
    """The per-micro-batch variant optimises a different objective: its update is off by > 1%."""
    whole, _ = single_process["8"]
    update, _ = single_process["4x2 micro_batch"]
    assert _relative(update, whole) > 1e-2


@pytest.mark.parametrize(
    "split",
    [
        {"per_device_train_batch_size": 4},
        {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2},
    ],
    ids=["2 processes x 4", "2 processes x 2 x 2 accumulation"],
)
def test_two_processes_give_the_global_batch_update(setup, single_process, split):
    whole, whole_row = single_process["8"]
    result = _run_processes(setup, 2, **IRIS, **split)
    assert result["world"] == 2
    assert _relative(result["update"], whole) < TOLERANCE
    row = result["rows"][0]
    # Metrics are reduced over both ranks (sums and counts), not taken from rank 0.
    for key in (
        "loss",
        "num_tokens",
        "logps/real",
        "logratios/generated",
        "weights/real_ess_fraction",
        "rewards/chosen",
        "rewards/accuracies",
        "logps/rejected",
    ):
        assert row[key] == pytest.approx(whole_row[key], rel=1e-5, abs=1e-6), key


def test_two_processes_mean_loss_matches_one_process(setup):
    """SPIN (a mean over pairs): each rank's share B_k/N, times the world size, gives the batch mean."""
    dataset = load_from_disk(os.fspath(setup / "data"))
    spin = {"loss": "spin", "beta": 1.0}
    _, whole, whole_rows = train_iris(
        setup / "policy",
        dataset,
        setup / "out-spin-8",
        reference=setup / "reference",
        per_device_train_batch_size=8,
        **spin,
    )
    result = _run_processes(setup, 2, per_device_train_batch_size=4, **spin)
    assert _relative(result["update"], whole) < TOLERANCE
    assert result["rows"][0]["loss"] == pytest.approx(whole_rows[0]["loss"], rel=1e-5)


@pytest.mark.parametrize("loss", [IRIS, {"loss": "spin", "beta": 1.0}], ids=["iris", "spin"])
def test_uneven_micro_batches_give_the_global_batch_update(setup, tmp_path, loss):
    """6 rows as micro-batches of 4 + 2 = one batch of 6: shares are weighted by size, not 1/K."""
    dataset = load_from_disk(os.fspath(setup / "data")).select(range(6))
    common = {"reference": setup / "reference", **loss}
    _, whole, _ = train_iris(
        setup / "policy", dataset, tmp_path / "6", per_device_train_batch_size=6, **common
    )
    _, split, _ = train_iris(
        setup / "policy",
        dataset,
        tmp_path / "4+2",
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        **common,
    )
    assert _relative(split, whole) < TOLERANCE
