"""One IRIS step on several processes (run by tests/test_trainer_distributed.py with torchrun).

Usage: torchrun --standalone --nproc_per_node N tests/_trainer_ddp.py ROOT OUT_FILE [key=value ...]

ROOT holds ``policy/``, ``reference/`` and ``data/`` (a dataset saved to disk: precomputing
reference log-probs on an in-memory dataset crashes on rank > 0). Rank 0 saves the
parameter update and the logged rows to OUT_FILE (torch.save).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from _trainer_common import train_iris
from datasets import load_from_disk


def main() -> None:
    root, out_file = Path(sys.argv[1]), Path(sys.argv[2])
    overrides = {k: json.loads(v) for k, v in (arg.split("=", 1) for arg in sys.argv[3:])}
    torch.set_num_threads(1)
    dataset = load_from_disk(os.fspath(root / "data"))
    trainer, update, rows = train_iris(
        root / "policy", dataset, root / "out-ddp", reference=root / "reference", **overrides
    )
    if trainer.accelerator.is_main_process:
        torch.save(
            {"update": update, "rows": rows, "world": trainer.accelerator.num_processes}, out_file
        )
    if torch.distributed.is_initialized():  # leave the group before exit: its threads end cleanly
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
