"""The ``iris`` console script: one sub-command per job, each a thin call into the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _check(args: argparse.Namespace) -> int:
    """Verify the installation end to end: the loss library against its 50-digit reference."""
    from iris.accuracy import accuracy_rows, format_table

    start = time.perf_counter()
    rows = accuracy_rows(n=args.samples)
    print("Loss library vs 50-digit mpmath reference (inputs rounded to each dtype first):\n")
    print(format_table(rows))
    limit = 1e-5
    failed = sorted({r.function for r in rows if r.dtype != "float64" and r.worst_error > limit})
    verdict = "FAIL" if failed else "PASS"
    print(
        f"\nfloat32/bfloat16 worst relative error ≤ {limit:g}: {verdict}"
        f" ({time.perf_counter() - start:.1f} s)"
    )
    return 1 if failed else 0


def _selfplay(args: argparse.Namespace) -> int:
    """Run (or resume) the self-play loop of a config: generate → train → evaluate, T times."""
    from iris.config import SelfPlayConfig, load_config
    from iris.selfplay import run_selfplay, summary

    overrides = list(args.overrides)  # --section.key value pairs after the known options
    if args.output_dir is not None:
        overrides += ["--output_dir", args.output_dir]
    config = load_config(SelfPlayConfig, args.config, overrides)
    if config.output_dir is None and os.environ.get("IRIS_RUNS_DIR"):
        from iris.runs import run_name

        config.output_dir = str(Path(os.environ["IRIS_RUNS_DIR"]) / run_name(args.config))
    evaluator = None
    if config.evaluation:
        from iris.evaluation import make_evaluator

        evaluator = make_evaluator(config.evaluation)
    run = run_selfplay(
        config,
        evaluator=evaluator,
        command=sys.argv,
        stage=getattr(args, "stage", None),
        iteration=getattr(args, "iteration", None),
    )
    if run.main_process:  # once per launch
        print(summary(run))
    return 0


def _config(args: argparse.Namespace) -> int:
    """Show a run config as iris reads it: every key with its value, type and help."""
    from iris.config import SelfPlayConfig, config_help, load_config, to_dict
    from iris.runs import flatten_config

    values = flatten_config(to_dict(load_config(SelfPlayConfig, args.config, args.overrides)))
    rows = {key: (kind, text) for key, kind, text in config_help(SelfPlayConfig)}
    if args.verbose:  # training.* keys are the trainer config's fields
        import dataclasses

        from iris.trainer import IrisConfig

        for field in dataclasses.fields(IrisConfig):
            help_text = " ".join(field.metadata.get("help", "").split())
            rows[f"training.{field.name}"] = (str(field.type), help_text)
    for key, value in values.items():
        # a key inside a free-form mapping (training.alpha_schedule.name) takes its field's help
        row = rows.get(key) or rows.get(".".join(key.split(".")[:2]))
        comment = f"  # {row[0]}: {row[1]}" if args.verbose and row else ""
        print(f"{key}: {json.dumps(value)}{comment}")
    return 0


def _add_selfplay_arguments(parser: argparse.ArgumentParser, *, stage: str | None) -> None:
    parser.add_argument("--config", required=True, help="YAML file of a SelfPlayConfig")
    parser.add_argument("--output-dir", default=None, help="run directory (overrides output_dir)")
    if stage is not None:
        parser.set_defaults(stage=stage)
        if stage not in ("data", "proto"):
            parser.add_argument(
                "--iteration", type=int, required=True, help="iteration t (0-based)"
            )
    from iris.config import SelfPlayConfig, config_help

    parser.set_defaults(run=_selfplay, accepts_overrides=True)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Any further --section.key value pairs override the config. Its keys ('training' takes "
        "the keys of iris.trainer.IrisConfig, a trl.DPOConfig):\n\n"
        + "\n".join(
            f"  {key} ({kind})\n      {text}" for key, kind, text in config_help(SelfPlayConfig)
        )
    )


def _print_results(results: dict, out: str, runs: str, last: str = "") -> None:
    """The table of a testbed demo or study, then where its files are."""
    print(f"\n{results['table']}\n\n{out}/results.md\n{out}/results.json\n{out}/{runs}")
    for path in results["figures"]:
        print(path)
    print(f"{last}({results['seconds']:.0f} s)")


def _demo(args: argparse.Namespace) -> int:
    """Every method on the known-target testbed from one warm start; prints the table."""
    from iris.testbed.demo import DemoSettings, run_demo

    changes = {} if args.seeds is None else {"seeds": args.seeds}
    settings = DemoSettings.quick(**changes) if args.quick else DemoSettings(**changes)
    results = run_demo(args.output_dir, settings, workers=args.workers)
    _print_results(results, args.output_dir, "runs/", f"{args.output_dir}/figures/INDEX.md  ")
    return 0


def _study(args: argparse.Namespace) -> int:
    """Testbed studies of the paper's claims (alpha-gap: the best α per distance to the
    target; data-efficiency: self-play on n annotated samples vs SFT on 2n, 4n, 8n)."""
    if args.name == "data-efficiency":
        from iris.testbed.efficiency import EfficiencySettings, run_data_efficiency

        settings = EfficiencySettings.quick() if args.quick else EfficiencySettings()
        results = run_data_efficiency(args.output_dir, settings, workers=args.workers)
        _print_results(results, args.output_dir, "runs/", f"{args.output_dir}/sft/  ")
        return 0
    from iris.testbed.study import StudySettings, run_alpha_gap

    settings = StudySettings.quick() if args.quick else StudySettings()
    results = run_alpha_gap(args.output_dir, settings, workers=args.workers)
    _print_results(results, args.output_dir, "<gap>/runs/")
    return 0


def _plan(args: argparse.Namespace) -> int:
    """Plan a run offline: parameters, memory per GPU, tokens and steps per iteration, fit."""
    from iris.plan import PlanError, format_plan, plan, plan_to_json

    try:
        result = plan(
            args.config,
            args.overrides,
            accelerate_config=args.accelerate_config,
            gpus=args.gpus,
            gpu_memory_gib=args.gpu_memory,
            model_config=args.model_config,
        )
    except PlanError as err:
        print(f"iris plan: error: {err}", file=sys.stderr)
        return 2
    print(format_plan(result))
    if args.json is not None:
        args.json.write_text(plan_to_json(result), encoding="utf-8")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iris", description=__doc__)
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of errors (also IRIS_DEBUG=1)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help=_check.__doc__)
    check.add_argument("--samples", type=int, default=16, help="samples per loss vector")
    check.set_defaults(run=_check)

    from iris.evaluation.cli import add_eval_arguments, run_eval

    evaluate = commands.add_parser(
        "eval", help="score a model on a benchmark suite (lm-eval), or --prefetch its datasets"
    )
    add_eval_arguments(evaluate)
    evaluate.set_defaults(run=run_eval)

    demo = commands.add_parser("demo", help=_demo.__doc__)
    demo.add_argument("--output-dir", default="outputs/demo", help="where runs and results go")
    demo.add_argument(
        "--seeds", type=int, default=None, help="seeds per method (default 2; quick 1)"
    )
    demo.add_argument("--quick", action="store_true", help="CI-sized: 128 samples, 2 iterations")
    demo.add_argument("--workers", type=int, default=2, help="parallel worker processes")
    demo.set_defaults(run=_demo)

    study = commands.add_parser("study", help=_study.__doc__)
    study.add_argument("name", choices=["alpha-gap", "data-efficiency"], help="which study")
    study.add_argument("--output-dir", required=True, help="where runs and results go")
    study.add_argument(
        "--quick",
        action="store_true",
        help="CI-sized: 2 seeds, 2 iterations; alpha-gap 64 samples, data-efficiency 32–256",
    )
    study.add_argument("--workers", type=int, default=2, help="parallel worker processes")
    study.set_defaults(run=_study)

    selfplay = commands.add_parser("selfplay", help=_selfplay.__doc__)
    _add_selfplay_arguments(selfplay, stage=None)
    for command, stage, text in (
        ("generate", "generate", "sample iteration t's responses from θt (one stage of selfplay)"),
        (
            "train",
            "train",
            "train iteration t from θt on its self-play rows (one stage of selfplay)",
        ),
        (
            "evaluate",
            "eval",
            "evaluate iteration t's model with the config's evaluator (one stage)",
        ),
    ):
        _add_selfplay_arguments(commands.add_parser(command, help=text), stage=stage)

    config = commands.add_parser(
        "config",
        help=_config.__doc__,
        epilog="Any further --section.key value pairs override the config, as for selfplay.",
    )
    config.add_argument("config", help="YAML file of a SelfPlayConfig")
    config.add_argument("-v", "--verbose", action="store_true", help="add each key's type and help")
    config.set_defaults(run=_config, accepts_overrides=True)

    from iris.plan import DEFAULT_GPU_MEMORY_GIB

    plan = commands.add_parser(
        "plan",
        help=_plan.__doc__,
        epilog="Any further --section.key value pairs override the config. No weights are "
        "loaded or downloaded.",
    )
    plan.add_argument("config", help="YAML file of a SelfPlayConfig")
    plan.add_argument(
        "--accelerate-config",
        required=True,
        help="accelerate config YAML (experiments/configs/accelerate/)",
    )
    plan.add_argument("--gpus", type=int, default=None, help="total GPUs (overrides num_processes)")
    plan.add_argument(
        "--gpu-memory",
        type=float,
        default=DEFAULT_GPU_MEMORY_GIB,
        help=f"memory of one GPU in GiB (default {DEFAULT_GPU_MEMORY_GIB:g})",
    )
    plan.add_argument(
        "--model-config",
        default=None,
        help="the model's config.json or its directory (default: model.name_or_path, local "
        "files only); experiments/configs/architectures/ has the paper models",
    )
    plan.add_argument("--json", type=Path, default=None, help="also write the plan here")
    plan.set_defaults(run=_plan, accepts_overrides=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides = unknown
    from iris.config import ConfigError, locate
    from iris.data import DataError
    from iris.launch import LaunchError
    from iris.runs import ConfigMismatchError

    debug = args.debug or os.environ.get("IRIS_DEBUG", "") not in ("", "0")
    if not debug and args.command in (
        "selfplay",
        "generate",
        "train",
        "evaluate",
        "demo",
        "eval",
        "study",
    ):
        from iris.console import quiet_libraries

        quiet_libraries()
    try:
        return args.run(args)
    except (ConfigError, ConfigMismatchError, DataError, LaunchError) as err:
        if debug:
            raise
        # A user's mistake, said plainly once (by the main process of a launch).
        if os.environ.get("RANK", "0") == "0":
            message = str(err)
            if isinstance(err, ConfigError) and getattr(args, "config", None):
                message = locate(message, args.config, args.overrides)
            print(f"iris {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        _close_process_group()


def _close_process_group() -> None:
    """Under a launcher, leave the process group before exit (its threads end cleanly)."""
    if "torch" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
