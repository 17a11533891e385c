"""Rewrites the golden runs under ``zephyr/`` (numbers chosen by hand; see README.md).

    python tests/data/runs/make_golden.py

The JSON files are what the tests read; this script only records how they were made and
regenerates them after a deliberate change (the tests' expected tables change with it).
"""

import json
import math
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if (ROOT / "zephyr").exists():
    shutil.rmtree(ROOT / "zephyr")
ZEPHYR = "alignment-handbook/zephyr-7b-sft-full"
TASKS = [  # task, metric, label, base value (SPIN seed 0 iteration 0)
    ("gsm8k", "exact_match", "GSM8K", 0.30),
    ("leaderboard_math_hard", "exact_match", "MATH (hard)", 0.04),
    ("leaderboard_musr", "acc_norm", "MuSR", 0.40),
    ("mmlu", "acc", "MMLU", 0.58),
    ("leaderboard_mmlu_pro", "acc", "MMLU-Pro", 0.28),
    ("leaderboard_gpqa", "acc_norm", "GPQA", 0.29),
    ("hellaswag", "acc_norm", "HellaSwag", 0.82),
    ("winogrande", "acc", "WinoGrande", 0.77),
    ("leaderboard_bbh", "acc_norm", "BBH", 0.42),
    ("leaderboard_ifeval", "prompt_level_strict_acc+inst_level_strict_acc", "IFEval", 0.40),
]


def dump(path, obj, indent=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=indent) + "\n")


def manifest(path, loss, seed, n_train=50000, iterations=2, **training):
    config = {
        "model": {"name_or_path": ZEPHYR, "revision": None, "dtype": "bfloat16"},
        "data": {"source": "HuggingFaceH4/ultrachat_200k", "n_train": n_train, "seed": seed},
        "training": {"loss": loss, "beta": 0.1, **training},
        "iterations": iterations,
        "seed": seed,
        "output_dir": str(path),
    }
    dump(
        path / "manifest.json",
        {"schema_version": 1, "config": config, "non_result_keys": ["output_dir"], "stages": {}},
        indent=1,
    )


def done(path, t, stage):
    dump(
        path / f"iter_{t}" / f"{stage}.DONE",
        {"stage": stage, "iteration": t, "outputs": {}, "info": {}},
    )


def iris10(path, t, offset, missing=()):
    flat, tasks = {}, {}
    for task, metric, label, base in TASKS:
        value = math.nan if task in missing else round(base + offset, 4)
        flat[f"{task}/{metric}"] = value
        tasks[task] = {"label": label, "metric": metric}
    values = list(flat.values())
    average = (
        math.nan if any(math.isnan(v) for v in values) else round(sum(values) / len(values), 6)
    )
    flat["average"] = average
    dump(
        path / f"iter_{t}" / "eval" / "iris10.summary.json",
        {
            "suite": "iris10",
            "average": average,
            "flat": flat,
            "tasks": tasks,
            "missing": [f"{task}/acc_norm (task absent from results)" for task in missing],
        },
    )
    done(path, t, "eval")


def testbed(path, t, fkl, rkl, tv):
    flat = {
        "testbed/forward_kl": fkl,
        "testbed/forward_kl_se": 0.01,
        "testbed/reverse_kl": rkl,
        "testbed/reverse_kl_se": 0.01,
        "testbed/invalid_rate": 0.0,
        "testbed/total_variation": tv,
        "testbed/real_loglik": round(-4.0 - fkl, 4),
    }
    flat["average"] = (
        math.nan
    )  # as iris.testbed.evaluator writes it: a distance suite has no average
    dump(
        path / f"iter_{t}" / "eval" / "testbed.summary.json",
        {"suite": "testbed", "iteration": t, "exact": True, "average": math.nan, "flat": flat},
    )


def metrics(path, t, rows):
    path = path / f"iter_{t}" / "metrics.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    last = rows[-1]["step"]
    closing = {
        "step": last,
        "train_runtime": 1.0,
        "train_loss": round(sum(r["loss"] for r in rows) / len(rows), 4),
        "epoch": 2.0,
    }
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, closing]))
    done(path.parent.parent, t, "train")


def selfplay_rows(t, seed, loss, alphas=None, gap=0.2, missing_margin_at=None):
    """Three logged steps of one iteration; numbers hand-chosen to look like training."""
    rows = []
    sig_real = [0.0, 0.2, 0.35]
    sig_gen = [0.0, 0.15, 0.3]
    for i, step in enumerate((1, 2, 3)):
        row = {
            "step": step,
            "loss": round(
                (0.69 if loss == "spin" else (1.386 if loss == "space" else 0.0))
                - 0.05 * i
                - 0.02 * t
                - 0.01 * seed,
                4,
            ),
            "learning_rate": 5e-7,
            "logps/real": round(
                -120.0 + {"spin": -1.0, "space": 0.5, "iris": 2.0}[loss] * i + 3.0 * t + seed, 2
            ),
            "logps/generated": round(
                -110.0 - {"spin": 6.0, "space": 2.0, "iris": 4.0}[loss] * i - 5.0 * t - seed, 2
            ),
            "rewards/margin": round(
                {"spin": 0.15, "space": 0.08, "iris": 0.1}[loss] * i + 0.05 * t + 0.01 * seed, 4
            ),
            "gap/reference": round(gap, 4),
            "epoch": round(2.0 * step / 3, 4),
        }
        if loss == "iris":
            alpha = alphas[i]
            row["alpha"] = alpha
            row["objective/variational_estimate"] = round(0.04 * i + 0.005 * seed + 0.01 * t, 4)
            row["loss"] = -row["objective/variational_estimate"]
            row["rewards/real_std"] = sig_real[i]
            row["rewards/generated_std"] = sig_gen[i]
            # ESS/n a little below exp(−τ²σ²) (finite batch), hand-rounded
            row["weights/real_ess_fraction"] = round(
                math.exp(-(((alpha - 1) * sig_real[i]) ** 2)) - 0.01 * (i > 0), 3
            )
            row["weights/generated_ess_fraction"] = round(
                math.exp(-((alpha * sig_gen[i]) ** 2)) - 0.015 * (i > 0), 3
            )
        if missing_margin_at == step:
            del row["rewards/margin"]
        rows.append(row)
    return rows


runs = ROOT / "zephyr"
# SPIN and IRIS α=2, two seeds each, two iterations, iris10 + testbed + metrics.
for seed in (0, 1):
    p = runs / "spin" / f"seed{seed}"
    manifest(p, "spin", seed)
    for t in (0, 1):
        metrics(p, t, selfplay_rows(t, seed, "spin", gap=0.3 - 0.1 * t))
        iris10(p, t, 0.01 * seed + 0.01 * t)
        testbed(
            p,
            t,
            [[0.50, 0.40], [0.54, 0.42]][seed][t],
            [[0.60, 0.50], [0.66, 0.52]][seed][t],
            [[0.30, 0.25], [0.32, 0.27]][seed][t],
        )
    p = runs / "iris_a2" / f"seed{seed}"
    manifest(p, "iris", seed, alpha=2.0)
    for t in (0, 1):
        metrics(p, t, selfplay_rows(t, seed, "iris", alphas=[2.0, 2.0, 2.0], gap=0.3 - 0.1 * t))
        iris10(p, t, 0.02 + 0.01 * seed + 0.02 * t)
        testbed(
            p,
            t,
            [[0.45, 0.30], [0.47, 0.34]][seed][t],
            [[0.50, 0.36], [0.54, 0.40]][seed][t],
            [[0.28, 0.20], [0.30, 0.22]][seed][t],
        )
# IRIS with the adaptive schedule: α moves with the variational gap.
p = runs / "iris_adaptive" / "seed0"
manifest(
    p,
    "iris",
    0,
    alpha_schedule={
        "name": "adaptive",
        "alpha_min": 0.5,
        "alpha_max": 2.0,
        "gap": "variational",
        "normalizer": "max",
    },
)
for t, alphas in ((0, [2.0, 2.0, 1.7]), (1, [1.4, 1.1, 0.9])):
    metrics(p, t, selfplay_rows(t, 0, "iris", alphas=alphas, gap=0.3 - 0.12 * t))
    iris10(p, t, 0.03 + 0.02 * t)
    testbed(p, t, [0.44, 0.28][t], [0.48, 0.33][t], [0.27, 0.19][t])
# SPACE: the run with missing numbers (GPQA absent at iteration 1, a step without rewards/margin).
p = runs / "space_missing" / "seed0"
manifest(p, "space", 0, mu=1.0)
for t in (0, 1):
    metrics(
        p,
        t,
        selfplay_rows(t, 0, "space", gap=0.3 - 0.1 * t, missing_margin_at=2 if t == 1 else None),
    )
    iris10(p, t, 0.01 + 0.005 * t, missing=("leaderboard_gpqa",) if t == 1 else ())
    testbed(p, t, [0.55, 0.43][t], [0.64, 0.47][t], [0.33, 0.24][t])
# Data efficiency: IRIS α=2 on 26k annotated samples, SFT on 50k and 100k (one training stage).
p = runs / "iris_a2_26k" / "seed0"
manifest(p, "iris", 0, n_train=26000, alpha=2.0)
for t in (0, 1):
    iris10(p, t, 0.01 + 0.02 * t)
for n, offset in ((50000, 0.012), (100000, 0.02)):
    p = runs / f"sft_{n // 1000}k" / "seed0"
    manifest(p, "sft", 0, n_train=n, iterations=1)
    metrics(p, 0, [{"step": 1, "loss": 1.2}, {"step": 2, "loss": 1.1}])
    iris10(p, 0, offset)
