"""``iris eval --prefetch``: everything a suite needs, downloaded into the HF cache while online.

:func:`prefetch` lists the suite's hub datasets (:func:`~iris.evaluation.harness.prefetch_plan`,
from lm-eval's own task configs, gated ones marked), then loads each suite task through
lm-eval's own loader, so the cache is filled by exactly the calls an offline evaluation
makes (and IFEval's NLTK data is fetched on import), and snapshots the model with
``huggingface_hub.snapshot_download``. After that, evaluation runs with
``HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from iris.evaluation import harness
from iris.evaluation.base import EvaluationError, MissingDatasetError
from iris.evaluation.harness import leaf_tasks, prefetch_plan
from iris.evaluation.suite import Suite, resolve_suite

__all__ = ["leaf_tasks", "prefetch", "prefetch_plan"]  # (the plan's own home: harness)


def _is_gated_error(err: BaseException) -> bool:
    from huggingface_hub.errors import GatedRepoError

    # The hub's refusal, or its text; our own MissingDatasetError mentions "gated" as advice.
    return any(
        isinstance(e, GatedRepoError)
        or (not isinstance(e, MissingDatasetError) and "gated" in str(e).lower())
        for e in harness.causes(err)
    )


def prefetch(
    suite: str | Path | Suite,
    *,
    model: str | None = None,
    revision: str | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Download everything ``suite`` needs (and the ``model`` snapshot) into the HF cache.

    Returns the number of suite tasks (plus the model) that failed; each failure is
    explained on ``echo`` (gated datasets: how to get access). Needs the network: with
    HF_HUB_OFFLINE/HF_DATASETS_OFFLINE set it refuses.
    """
    if harness.hub_offline():
        raise EvaluationError(
            "--prefetch downloads datasets and needs the network, but HF_HUB_OFFLINE or "
            "HF_DATASETS_OFFLINE is set (the Makefile exports them): run it with "
            "HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 on a machine that reaches huggingface.co."
        )
    suite = resolve_suite(suite)
    tm = harness.suite_task_manager(suite)
    plan = prefetch_plan(suite, tm)
    echo(f"Suite {suite.name}: {len(plan.datasets)} dataset configurations to cache")
    for ref in plan.datasets:
        more = " …" if len(ref.tasks) > 3 else ""
        echo(f"  {ref.describe()}  <- {', '.join(ref.tasks[:3])}{more}")
    for path in sorted({ref.path for ref in plan.gated}):
        echo(f"note: {harness.gated_message(path)}")
    failures = 0
    for spec in suite.tasks:
        one = dataclasses.replace(suite, tasks=(spec,))
        echo(f"[prefetch] {spec.task} …")
        try:
            harness.load_suite_tasks(one, tm)
        except Exception as err:
            failures += 1
            if _is_gated_error(err):
                paths = sorted({ref.path for ref in prefetch_plan(one, tm).gated})
                advice = " ".join(harness.gated_message(path) for path in paths)
                echo(f"[prefetch] {spec.task}: FAILED (gated dataset). {advice}")
            else:
                cause = (err.__cause__ if isinstance(err, MissingDatasetError) else None) or err
                echo(f"[prefetch] {spec.task}: FAILED: {type(cause).__name__}: {cause}")
        else:
            echo(f"[prefetch] {spec.task}: cached")
    if model is not None and not Path(model).expanduser().is_dir():
        from huggingface_hub import snapshot_download

        echo(f"[prefetch] model {model}{' @ ' + revision if revision else ''} …")
        try:
            path = snapshot_download(repo_id=model, revision=revision)
            echo(f"[prefetch] model cached at {path}")
        except Exception as err:
            failures += 1
            echo(f"[prefetch] model {model}: FAILED: {type(err).__name__}: {err}")
    hf_home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    echo(
        f"Done, {failures} failure(s). Cache: HF_HOME={hf_home} (IFEval's NLTK data: "
        "NLTK_DATA or ~/nltk_data). Evaluate offline with the same cache:\n"
        f"  HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 iris eval --suite {suite.cli_argument} "
        f"--model {model or 'MODEL'}{' --revision ' + revision if revision else ''} --output-dir DIR"
    )
    return failures
