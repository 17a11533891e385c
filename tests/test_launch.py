"""iris.launch: a launch whose processes do not form the requested training is refused."""

from __future__ import annotations

import pytest

from iris.launch import (
    LaunchError,
    check_accelerator,
    check_processes,
    engine_name,
    requested_engine,
)
from iris.trainer import IrisConfig
from iris.trainer._config import cpu_only, default_bf16

DEEPSPEED = {
    "WORLD_SIZE": "2",
    "ACCELERATE_USE_DEEPSPEED": "true",
    "ACCELERATE_MIXED_PRECISION": "bf16",
}
FSDP = {"WORLD_SIZE": "8", "ACCELERATE_USE_FSDP": "true"}


def test_requested_engine_reads_the_launcher_environment():
    assert requested_engine(DEEPSPEED) == "deepspeed"
    assert requested_engine(FSDP) == "fsdp"
    assert requested_engine({"WORLD_SIZE": "2"}) is None
    assert requested_engine({"ACCELERATE_USE_FSDP": "false"}) is None


def test_processes_that_do_not_form_the_launched_world_are_refused():
    check_processes(2, {"WORLD_SIZE": "2"})
    check_processes(1, {})
    with pytest.raises(LaunchError, match="started 2 processes but this one sees a world of 1"):
        check_processes(1, {"WORLD_SIZE": "2"})


def test_an_engine_that_was_not_formed_is_refused():
    check_accelerator("DEEPSPEED", 2, trainer_mixed_precision="bf16", environ=DEEPSPEED)
    check_accelerator("FSDP", 8, environ=FSDP)
    with pytest.raises(LaunchError, match=r"asks for FSDP but the processes formed MULTI_CPU.*CPU"):
        check_accelerator("MULTI_CPU", 8, environ=FSDP)
    with pytest.raises(LaunchError, match="asks for DEEPSPEED but the processes formed MULTI_GPU"):
        check_accelerator("MULTI_GPU", 2, trainer_mixed_precision="bf16", environ=DEEPSPEED)
    with pytest.raises(LaunchError, match="world of 1"):
        check_accelerator("NO", 1, environ=FSDP)


def test_deepspeed_precision_differing_from_the_launcher_is_refused():
    with pytest.raises(LaunchError, match=r"mixed_precision 'bf16'.*asks for 'no'"):
        check_accelerator("DEEPSPEED", 2, trainer_mixed_precision="no", environ=DEEPSPEED)


def test_engine_names():
    class Plugin:
        zero_stage, fsdp_version = 3, 2

    class State:
        deepspeed_plugin = fsdp_plugin = Plugin()

        def __init__(self, kind):
            self.distributed_type = f"DistributedType.{kind}"

    names = [engine_name(State(k)) for k in ("DEEPSPEED", "FSDP", "MULTI_CPU", "MULTI_GPU", "NO")]
    assert names == ["deepspeed-zero3", "fsdp2", "ddp", "ddp", "single"]


@pytest.mark.skipif(not cpu_only(), reason="checks the CPU default")
def test_cpu_machines_need_no_cpu_key(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    args = IrisConfig(output_dir=str(tmp_path), report_to=[])
    assert args.use_cpu and args.bf16 is False


def test_bf16_follows_the_launcher(monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert default_bf16(use_cpu=True)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    assert not default_bf16(use_cpu=False)
