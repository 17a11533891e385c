"""``iris eval``: score a model on a suite, or prefetch a suite's datasets for offline use.

This module owns the command-line surface of :mod:`iris.evaluation`;
``iris/cli.py`` wires it as a sub-command with :func:`add_eval_arguments` and
:func:`run_eval`::

    iris eval --model DIR_OR_HUB_ID --suite iris10|openllm_v1|PATH.yaml|TASK[,TASK] \\
              [--limit N] --output-dir DIR
    iris eval --prefetch --suite iris10 [--model HUB_ID --revision REV]

Exit status: 0 when every metric was computed, 1 when some metric is missing (NaN) or a
prefetch step failed, 2 for a usage or evaluation error (the message says how to fix it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from iris.config import ConfigError

__all__ = ["add_eval_arguments", "run_eval"]


def _limit(text: str) -> int | float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--limit must be positive, got {text}")
    return int(value) if value >= 1 and value.is_integer() else value


def _batch_size(text: str) -> int | str:
    if text.startswith("auto"):
        return text
    try:
        return int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--batch-size must be an integer or auto[:N], got {text!r}"
        ) from err


def _model_args(text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(
                f"--model-args expects KEY=VALUE[,KEY=VALUE], got {item!r}"
            )
        args[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return args


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``iris eval`` options to ``parser`` (returns it)."""
    parser.add_argument("--model", help="Model directory or hub id (with --prefetch: also cached).")
    parser.add_argument(
        "--suite",
        default="iris10",
        help="iris10 (default), openllm_v1, a suite YAML, an lm-eval task YAML, or lm-eval "
        "task names separated by commas.",
    )
    parser.add_argument("--output-dir", type=Path, help="Where the JSON results are written.")
    parser.add_argument(
        "--prefetch",
        action="store_true",
        help="Download the suite's datasets (and --model) into the HF cache, then stop. Needs "
        "the network; afterwards evaluate with HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1.",
    )
    parser.add_argument("--limit", type=_limit, help="Samples per (sub)task (testing only).")
    parser.add_argument("--revision", help="Hub revision of --model (branch, tag or commit).")
    parser.add_argument("--tokenizer", help="Tokenizer directory or hub id (default: the model's).")
    parser.add_argument(
        "--backend", choices=("hf", "vllm"), default="hf", help="Inference backend."
    )
    parser.add_argument("--batch-size", type=_batch_size, default=8, help="Integer or auto[:N].")
    parser.add_argument("--dtype", default="auto", help="auto, bfloat16, float16 or float32.")
    parser.add_argument("--device", help="cuda, cuda:0, cpu… (default: cuda when available).")
    parser.add_argument(
        "--apply-chat-template",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Wrap prompts in the tokenizer's chat template (recorded in the summary).",
    )
    parser.add_argument(
        "--fewshot-as-multiturn",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="With the chat template, few-shot examples as conversation turns.",
    )
    parser.add_argument("--system-instruction", help="System message prepended to prompts.")
    parser.add_argument(
        "--bootstrap-iters", type=int, default=100_000, help="Resamples for bootstrap stderrs."
    )
    parser.add_argument("--log-samples", action="store_true", help="Write per-sample outputs.")
    parser.add_argument(
        "--model-args",
        type=_model_args,
        default={},
        help="Extra lm-eval model arguments, KEY=VALUE[,KEY=VALUE] (e.g. max_length=4096).",
    )
    parser.add_argument("--name", help="File prefix in --output-dir (default: the suite name).")
    return parser


def run_eval(args: argparse.Namespace) -> int:
    """Run ``iris eval`` for parsed ``args``; returns the exit status (see the module docstring)."""
    from iris.evaluation.base import EvaluationError

    try:
        return _run(args)
    except (EvaluationError, ConfigError) as err:
        print(f"iris eval: error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from iris.evaluation.harness import EvalSettings, evaluate_suite, is_complete
    from iris.evaluation.hub_cache import prefetch
    from iris.evaluation.suite import format_summary

    if args.prefetch:
        failures = prefetch(args.suite, model=args.model, revision=args.revision)
        return 0 if failures == 0 else 1
    missing = [
        flag
        for flag, value in (("--model", args.model), ("--output-dir", args.output_dir))
        if not value
    ]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} required (or --prefetch)")
    try:
        settings = EvalSettings(
            backend=args.backend,
            batch_size=args.batch_size,
            dtype=args.dtype,
            device=args.device,
            revision=args.revision,
            tokenizer=args.tokenizer,
            apply_chat_template=args.apply_chat_template,
            fewshot_as_multiturn=args.fewshot_as_multiturn,
            system_instruction=args.system_instruction,
            limit=args.limit,
            bootstrap_iters=args.bootstrap_iters,
            log_samples=args.log_samples,
            model_args=dict(args.model_args),
        )
    except ValueError as err:
        raise ConfigError(str(err)) from err
    result = evaluate_suite(
        args.suite,
        args.model,
        output_dir=args.output_dir,
        settings=settings,
        name=args.name,
        extra_provenance={"command": sys.argv},
    )
    if result is None:  # a non-main process of a multi-process launch: rank 0 reports
        return 0
    print(format_summary(result.summary))
    print(f"\nlm-eval results: {result.results_path}\nsummary:         {result.summary_path}")
    if not is_complete(result.summary):
        print("missing metrics (NaN): " + "; ".join(result.summary["missing"]), file=sys.stderr)
        return 1
    return 0
