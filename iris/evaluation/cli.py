"""``iris eval``: score a model on a suite, or prefetch a suite's datasets for offline use.

This module owns the command-line surface of :mod:`iris.evaluation`;
``iris/cli.py`` wires it as a sub-command with :func:`add_eval_arguments` and
:func:`run_eval`::

    iris eval --model DIR_OR_HUB_ID --suite iris10|openllm_v1|PATH.yaml|TASK[,TASK] \\
              [--limit N] --output-dir DIR
    iris eval --prefetch --suite iris10 [--model HUB_ID --revision REV]

Besides these, the flags are :class:`~iris.evaluation.base.EvalSettings`' fields (name,
type, default and help generated from them). Exit status: 0 when every metric was
computed, 1 when some metric is missing (NaN) or a prefetch step failed, 2 for a usage or
evaluation error (the message says how to fix it).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any

from iris.config import ConfigError
from iris.evaluation.base import EvalSettings, EvaluationError
from iris.evaluation.harness import evaluate_suite, is_complete
from iris.evaluation.hub_cache import prefetch
from iris.evaluation.suite import format_summary


def add_settings_arguments(parser: argparse.ArgumentParser, settings: type = EvalSettings) -> None:
    """One ``--flag`` per field of the ``settings`` dataclass (``bool``: ``--x/--no-x``)."""
    hints = typing.get_type_hints(settings)
    for field in dataclasses.fields(settings):
        kind, meta = hints[field.name], field.metadata
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        options: dict[str, Any] = {"default": default, "help": meta.get("help")}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is typing.Literal:
            options["choices"] = typing.get_args(kind)
        else:
            options["type"] = meta.get("parse") or (int if kind is int else str)
        parser.add_argument("--" + field.name.replace("_", "-"), **options)


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``iris eval`` options to ``parser`` (returns it)."""
    parser.add_argument("--model", help="Model directory or hub id (with --prefetch: also cached).")
    parser.add_argument(
        "--suite",
        default="iris10",
        help="iris10 (default), openllm_v1, a suite YAML, an lm-eval task YAML, or lm-eval "
        "task names separated by commas.",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="Where the results go: <name>.summary.json, <name>.lm_eval.json, and lm-eval's "
        "own layout <model>/results_<time>.json.",
    )
    parser.add_argument("--name", help="File prefix in --output-dir (default: the suite name).")
    parser.add_argument(
        "--prefetch",
        action="store_true",
        help="Download the suite's datasets (and --model) into the HF cache, then stop. Needs "
        "the network; afterwards evaluate with HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1.",
    )
    add_settings_arguments(parser)
    return parser


def run_eval(args: argparse.Namespace) -> int:
    """Run ``iris eval`` for parsed ``args``; returns the exit status (see the module docstring)."""
    try:
        if args.prefetch:
            return 0 if prefetch(args.suite, model=args.model, revision=args.revision) == 0 else 1
        required = {"--model": args.model, "--output-dir": args.output_dir}
        if missing := [flag for flag, value in required.items() if not value]:
            raise ConfigError(f"{' and '.join(missing)} required (or --prefetch)")
        try:
            settings = EvalSettings.of(args)
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
    except (EvaluationError, ConfigError) as err:
        print(f"iris eval: error: {err}", file=sys.stderr)
        return 2
    if result is None:  # a non-main process of a multi-process launch: rank 0 reports
        return 0
    print(format_summary(result.summary))
    print(
        f"\nsummary:         {result.summary_path}\nlm-eval results: {result.results_path}"
        f"\nlm-eval layout:  {result.lm_eval_path}"
    )
    if not is_complete(result.summary):
        print("missing metrics (NaN): " + "; ".join(result.summary["missing"]), file=sys.stderr)
        return 1
    return 0
