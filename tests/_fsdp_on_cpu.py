"""``iris`` CLI with FSDP allowed on CPU processes: the engine tests' only stand-in.

accelerate (≤ 1.16) selects FSDP only for accelerator devices; on CPU processes it forms
plain DDP instead (which ``iris.launch`` refuses). torch's ``fully_shard`` (FSDP2) itself
runs over gloo on CPU, so this launcher script makes exactly one change: when an
``AcceleratorState`` is built with an FSDP plugin and accelerate formed ``MULTI_CPU``, it
selects FSDP with that plugin, as accelerate does for GPUs. Everything else — the
accelerate config file, the CLI, the trainer, the FSDP2 wrapping and the saving — is the
product's own path. Launch it in place of ``-m iris.cli``::

    accelerate launch --config_file experiments/configs/accelerate/fsdp2.yaml \\
        --num_processes 2 --mixed_precision no tests/_fsdp_on_cpu.py train --config C ...
"""

from __future__ import annotations

import sys

from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType

_build_state = AcceleratorState.__init__


def _fsdp_on_cpu(
    self,
    mixed_precision=None,
    cpu=False,
    dynamo_plugin=None,
    deepspeed_plugin=None,
    fsdp_plugin=None,
    *args,
    **kwargs,
):
    _build_state(
        self, mixed_precision, cpu, dynamo_plugin, deepspeed_plugin, fsdp_plugin, *args, **kwargs
    )
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin
        if self._mixed_precision != "no":
            fsdp_plugin.set_mixed_precision(self._mixed_precision)
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP


AcceleratorState.__init__ = _fsdp_on_cpu

if __name__ == "__main__":
    from iris.cli import main

    sys.exit(main())
