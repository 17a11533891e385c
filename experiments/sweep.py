"""Expand a sweep (or one run config) into ``iris`` commands, and run the unfinished ones.

    python experiments/sweep.py SPEC.yaml [SPEC.yaml ...] --runs-dir DIR [--dry-run]
        [--launcher "accelerate launch --config_file experiments/configs/accelerate/zero3.yaml"]
        [--staged] [--only GLOB] [--no-verify] [--keep-going]

A SPEC is either a sweep file (top-level ``name`` and ``groups``) or a plain run config
(:class:`iris.config.SelfPlayConfig`, one run). A sweep file::

    name: data-efficiency                 # the sweep's folder under --runs-dir
    groups:
      - name: zephyr-7b/iris              # the group's folder under the sweep's
        config: ../zephyr-7b/iris.yaml    # base config, relative to this file
        overrides: {iterations: 2}        # applied to every run of the group
        grid: {data.n_train: [14000, 26000, 50000]}   # cartesian product, in key order

expands to one run per grid point, ``DIR/<sweep>/<group>/<key=value[,key=value]>`` (the
last component of each dotted key; a group without a grid is one run ``DIR/<sweep>/<group>``);
a plain config ``configs/<model>/<method>.yaml`` is the run ``DIR/<model>/<method>``. Every
run is validated (``load_config`` with its overrides, exactly as ``iris selfplay`` parses
them) before anything is printed or launched.

Each run becomes (default) one command, ``iris selfplay --config BASE --output-dir RUN
--key value ...``, prefixed by ``--launcher`` if given (``LAUNCHER -m iris.cli selfplay``).
With ``--staged`` it becomes one job per stage, the way a multi-GPU cluster should run it
(experiments/README.md): per iteration t, ``iris generate --iteration t`` in one process
(vLLM), then ``LAUNCHER -m iris.cli train --iteration t`` (the distributed training), and
finally ``iris selfplay`` in one process, which finds generation and training done and
runs the evaluations from the saved models.

A run is complete, and skipped, when every iteration's ``train.DONE`` marker — and
``eval.DONE`` where its evaluation config asks for one — verifies (:meth:`RunDir.stage_done`:
the sha256 of every output still matches; ``--no-verify`` checks sizes only, fast for 7B
models). With ``--staged``, stages already done are skipped too. Commands run one after
the other; the first failure stops the sweep (``--keep-going``: go on with the next run).
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import itertools
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from iris.config import ConfigError, SelfPlayConfig, from_dict, load_config, load_yaml  # noqa: E402
from iris.runs import RunDir, run_name  # noqa: E402

PYTHON = "python"  # printed; replaced by sys.executable when launching


@dataclasses.dataclass
class Group:
    """One base config and the runs made from it."""

    name: str = dataclasses.field(metadata={"help": "Folder of the group under the sweep's."})
    config: str = dataclasses.field(
        metadata={"help": "Base run config, relative to the sweep file."}
    )
    overrides: dict[str, Any] = dataclasses.field(
        default_factory=dict, metadata={"help": "Dotted key → value, for every run."}
    )
    grid: dict[str, list[Any]] = dataclasses.field(
        default_factory=dict, metadata={"help": "Dotted key → values; the cartesian product."}
    )

    def __post_init__(self) -> None:
        if not self.name or any(part in ("", ".", "..") for part in self.name.split("/")):
            raise ValueError(f"group name must be a relative folder path, got {self.name!r}")
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid.{key} must be a non-empty list, got {values!r}")


@dataclasses.dataclass
class Sweep:
    """A sweep file: a name and its groups."""

    name: str = dataclasses.field(metadata={"help": "Folder of the sweep under --runs-dir."})
    groups: list[dict[str, Any]] = dataclasses.field(metadata={"help": "The groups (Group)."})
    description: str = dataclasses.field(default="", metadata={"help": "Free text."})

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"sweep name must be a plain folder name, got {self.name!r}")
        if not self.groups:
            raise ValueError("a sweep needs at least one group")


@dataclasses.dataclass(frozen=True)
class Run:
    """One expanded run: base config, overrides (CLI text) and its run directory."""

    name: str
    config: Path
    overrides: tuple[tuple[str, str], ...]
    output_dir: Path

    @property
    def override_args(self) -> list[str]:
        return [arg for key, text in self.overrides for arg in (f"--{key}", text)]

    def load(self) -> SelfPlayConfig:
        """The resolved config, parsed as ``iris selfplay`` parses it."""
        return load_config(
            SelfPlayConfig, self.config, [*self.override_args, "--output_dir", str(self.output_dir)]
        )


def format_value(value: Any) -> str:
    """An override value as command-line text that ``iris.config`` parses back to ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return json.dumps(value)  # lists and mappings: JSON is YAML flow syntax


def _label_value(value: Any) -> str:
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, list | tuple):
        return "-".join(_label_value(v) for v in value)
    return format_value(value).replace("/", "-").replace(" ", "")


def run_label(point: Mapping[str, Any]) -> str:
    """``{"data.n_train": 14000, "training.alpha": 0.5}`` → ``"n_train=14000,alpha=0.5"``."""
    short = [key.rsplit(".", 1)[-1] for key in point]
    names = short if len(set(short)) == len(short) else list(point)
    return ",".join(f"{n}={_label_value(v)}" for n, v in zip(names, point.values(), strict=True))


def _display_path(path: Path) -> Path:
    """``path`` relative to the working directory when it lies below it (shorter commands)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def is_sweep_file(data: Any) -> bool:
    return isinstance(data, Mapping) and "groups" in data


def expand(spec: str | os.PathLike, runs_dir: str | os.PathLike) -> list[Run]:
    """The runs of a sweep file or of one run config, validated, in a deterministic order."""
    spec = Path(spec)
    runs_dir = Path(runs_dir)
    data = load_yaml(spec)
    if not is_sweep_file(data):
        name = run_name(spec)
        run = Run(name=name, config=spec, overrides=(), output_dir=runs_dir / name)
        run.load()
        return [run]
    sweep = from_dict(Sweep, data, source=str(spec))
    runs: list[Run] = []
    for index, raw in enumerate(sweep.groups):
        group = from_dict(Group, raw, source=f"{spec}: groups[{index}]")
        config = _display_path((spec.parent / group.config).resolve())
        if not config.is_file():
            raise ConfigError(f"{spec}: groups[{index}].config: {config} does not exist")
        base = tuple((k, format_value(v)) for k, v in group.overrides.items())
        keys = list(group.grid)
        for values in itertools.product(*(group.grid[k] for k in keys)):
            point = dict(zip(keys, values, strict=True))
            name = f"{sweep.name}/{group.name}"
            if point:
                name += "/" + run_label(point)
            overrides = base + tuple((k, format_value(v)) for k, v in point.items())
            runs.append(Run(name, config, overrides, runs_dir / name))
    names = [r.name for r in runs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{spec}: runs with the same directory: {duplicates}")
    for run in runs:
        try:
            run.load()
        except (ConfigError, ValueError) as err:
            raise ConfigError(f"{spec}: run {run.name}: {err}") from err
    return runs


def _eval_iterations(config: SelfPlayConfig) -> list[int]:
    from iris.evaluation.base import runs_at

    if not config.evaluation:
        return []
    every = int(config.evaluation.get("every", 1))
    final = bool(config.evaluation.get("final", True))
    return [
        t
        for t in range(config.iterations)
        if runs_at(t, config.iterations, every=every, final=final)
    ]


def is_complete(run: Run, *, verify: bool = True) -> bool:
    """Every iteration trained and every asked-for evaluation done, with intact outputs."""
    directory = RunDir(run.output_dir, main_process=False)
    if not directory.exists():
        return False
    config = run.load()
    for t in range(config.iterations):
        if not directory.stage_done("train", t, verify=verify):
            return False
    return all(directory.stage_done("eval", t, verify=verify) for t in _eval_iterations(config))


@dataclasses.dataclass(frozen=True)
class Command:
    """One command of a run; ``stage``/``iteration`` say which marker makes it unnecessary."""

    argv: tuple[str, ...]
    stage: str | None = None
    iteration: int | None = None

    def shell(self) -> str:
        return " ".join(shlex.quote(a) for a in self.argv)


def commands(run: Run, *, launcher: str | None = None, staged: bool = False) -> list[Command]:
    """The commands that carry ``run`` out (see the module docstring)."""
    prefix = shlex.split(launcher) if launcher else [PYTHON]
    common = ["--config", str(run.config), "--output-dir", str(run.output_dir), *run.override_args]
    if not staged:
        return [Command((*prefix, "-m", "iris.cli", "selfplay", *common))]
    config = run.load()
    supervised = config.training.get("loss") == "sft"
    out: list[Command] = []
    for t in range(config.iterations):
        iteration = ["--iteration", str(t)]
        if not supervised:
            argv = (PYTHON, "-m", "iris.cli", "generate", *common, *iteration)
            out.append(Command(argv, "generate", t))
        out.append(Command((*prefix, "-m", "iris.cli", "train", *common, *iteration), "train", t))
    if config.evaluation:
        out.append(Command((PYTHON, "-m", "iris.cli", "selfplay", *common)))
    return out


def _pending(command: Command, run: Run, verify: bool) -> bool:
    if command.stage is None:
        return True
    return not RunDir(run.output_dir, main_process=False).stage_done(
        command.stage, command.iteration, verify=verify
    )


def _execute(command: Command) -> int:
    argv = [sys.executable if a == PYTHON else a for a in command.argv]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    print(f"$ {command.shell()}", flush=True)
    return subprocess.run(argv, env=env, check=False).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="experiments/sweep.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("specs", nargs="+", type=Path, help="sweep files or run configs")
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=Path(os.environ.get("IRIS_RUNS_DIR", "runs")),
        help="root of the run directories (default: $IRIS_RUNS_DIR or ./runs)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands, launch nothing")
    parser.add_argument(
        "--launcher",
        default=None,
        help='prefix of the training command, e.g. "accelerate launch --config_file F.yaml"',
    )
    parser.add_argument(
        "--staged", action="store_true", help="one job per stage (generate / train / evaluate)"
    )
    parser.add_argument("--only", action="append", default=[], help="run-name glob (repeatable)")
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="completeness from marker sizes, without re-hashing outputs",
    )
    parser.add_argument("--keep-going", action="store_true", help="continue after a failed run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        runs = [run for spec in args.specs for run in expand(spec, args.runs_dir)]
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.only:
        runs = [r for r in runs if any(fnmatch.fnmatch(r.name, p) for p in args.only)]
    complete = [r for r in runs if is_complete(r, verify=args.verify)]
    todo = [r for r in runs if r not in complete]
    print(f"# {len(runs)} runs: {len(complete)} complete (skipped), {len(todo)} to run")
    for run in complete:
        print(f"# complete: {run.name}  ({run.output_dir})")
    failed: list[str] = []
    for run in todo:
        print(f"\n# run {run.name}  ->  {run.output_dir}")
        for command in commands(run, launcher=args.launcher, staged=args.staged):
            if not _pending(command, run, args.verify):
                print(f"# done: {command.shell()}")
                continue
            if args.dry_run:
                print(command.shell())
                continue
            code = _execute(command)
            if code != 0:
                print(f"# FAILED (exit {code}): {run.name}", file=sys.stderr)
                failed.append(run.name)
                break
        if failed and not args.keep_going:
            break
    if failed:
        print(f"\n# failed runs: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
