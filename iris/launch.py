"""The launch a job runs under: what the launcher asked for, and whether the processes formed it.

``accelerate launch --config_file <engine>.yaml`` passes its request to every process in
environment variables (``WORLD_SIZE``, ``ACCELERATE_USE_DEEPSPEED``, ``ACCELERATE_USE_FSDP``,
``ACCELERATE_MIXED_PRECISION``); the processes then form a training through accelerate and
transformers, which can quietly form another one: accelerate (≤ 1.16) never selects FSDP
for CPU processes and trains plain DDP instead, and processes that each see a world of
one train independent models on a share of the data each. This module compares the
request with what was formed and stops with one plain message when they differ:

- :func:`check_processes` before any stage (the process group the driver joined);
- :func:`check_accelerator` when a trainer has built its ``Accelerator``, before any
  reference log-prob or training step (engine, world size, mixed precision).

Nothing here imports torch or accelerate at module level.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ENGINES = {"deepspeed": "DEEPSPEED", "fsdp": "FSDP"}


class LaunchError(RuntimeError):
    """The launcher's request and the training the processes formed disagree."""


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "false").strip().lower() in ("1", "true", "yes")


def requested_engine(environ: Mapping[str, str] | None = None) -> str | None:
    """``"deepspeed"``, ``"fsdp"`` or None (DDP or one process), as the launcher set it."""
    environ = os.environ if environ is None else environ
    if _flag(environ, "ACCELERATE_USE_DEEPSPEED"):
        return "deepspeed"
    if _flag(environ, "ACCELERATE_USE_FSDP"):
        return "fsdp"
    return None


def requested_processes(environ: Mapping[str, str] | None = None) -> int:
    """The world size the launcher started (``WORLD_SIZE``; 1 without a launcher)."""
    environ = os.environ if environ is None else environ
    return int(environ.get("WORLD_SIZE", "1"))


def check_processes(num_processes: int, environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`LaunchError` unless the processes joined one group of the launched size."""
    launched = requested_processes(environ)
    if num_processes != launched:
        raise LaunchError(
            f"the launcher started {launched} processes but this one sees a world of "
            f"{num_processes}: they would train {launched} separate models on a share of the "
            "data each. Launch with `accelerate launch` (or torchrun) and leave WORLD_SIZE, "
            "RANK and MASTER_ADDR to the launcher."
        )


def check_accelerator(
    distributed_type: str,
    num_processes: int,
    *,
    trainer_mixed_precision: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Raise :class:`LaunchError` when the accelerator formed is not the one launched.

    ``distributed_type`` is accelerate's ``DistributedType`` value (``"DEEPSPEED"``,
    ``"FSDP"``, ``"MULTI_GPU"``, ``"MULTI_CPU"``, ``"NO"``, ...);
    ``trainer_mixed_precision`` the training arguments' (``"no"``, ``"bf16"``, ``"fp16"``):
    DeepSpeed rejects one that differs from the launcher's, but only after the reference
    log-probs are computed.
    """
    environ = os.environ if environ is None else environ
    check_processes(num_processes, environ)
    engine = requested_engine(environ)
    if engine is not None and distributed_type != ENGINES[engine]:
        hint = (
            " accelerate cannot run FSDP on CPU processes; use multi_gpu.yaml (DDP) or a DeepSpeed "
            "config there."
            if engine == "fsdp" and distributed_type == "MULTI_CPU"
            else ""
        )
        raise LaunchError(
            f"the accelerate config asks for {engine.upper()} but the processes formed "
            f"{distributed_type}: training would silently run without it.{hint}"
        )
    launched = environ.get("ACCELERATE_MIXED_PRECISION")
    if (
        engine == "deepspeed"
        and launched is not None
        and trainer_mixed_precision is not None
        and launched != trainer_mixed_precision
    ):
        raise LaunchError(
            f"the accelerate config sets mixed_precision {launched!r} but the run config's "
            f"training asks for {trainer_mixed_precision!r} (training.bf16/fp16): leave them "
            "unset to follow the launcher, or launch with --mixed_precision "
            f"{trainer_mixed_precision}."
        )


def _kind(state) -> str:
    """accelerate's ``DistributedType`` of a state as its name (``"DEEPSPEED"``, ...)."""
    return str(state.distributed_type).rsplit(".", 1)[-1]


def check_trainer(trainer) -> None:
    """:func:`check_accelerator` for a transformers ``Trainer`` whose accelerator is built."""
    state = trainer.accelerator.state
    check_accelerator(
        _kind(state),
        state.num_processes,
        trainer_mixed_precision=getattr(trainer.args, "mixed_precision", None),
    )


def engine_name(state) -> str:
    """A run's engine as recorded in its manifest: ``deepspeed-zero3``, ``fsdp2``, ``ddp``, ``single``."""
    kind = _kind(state)
    if kind == "DEEPSPEED":
        return f"deepspeed-zero{state.deepspeed_plugin.zero_stage}"
    if kind == "FSDP":
        return f"fsdp{state.fsdp_plugin.fsdp_version}"
    return "ddp" if kind.startswith("MULTI_") else "single"
