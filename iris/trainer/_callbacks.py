"""Trainer callbacks of one self-play iteration: the metrics file and the α schedule's state."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from iris.schedules import AlphaSchedule, make_schedule

METRICS_FILE = "metrics.jsonl"
SCHEDULE_FILE = "alpha_schedule.json"


class MetricsFileCallback(TrainerCallback):
    """Writes every log event to ``<output_dir>/metrics.jsonl``, one JSON object per line (main process).

    The file is written fresh by each run; a run resumed from a checkpoint keeps only the
    rows up to the step it resumes from.
    """

    def __init__(self) -> None:
        self._opened = False

    def _path(self, args: Any) -> Path:
        return Path(args.output_dir) / METRICS_FILE

    def _open(self, args: Any, resumed_step: int) -> None:
        path = self._path(args)
        path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[str] = []
        if resumed_step > 0 and path.exists():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resumed_step
            ]
        path.write_text("".join(f"{line}\n" for line in kept))
        self._opened = True

    def on_train_begin(self, args, state, control, **kwargs):
        # Fresh at the first event of this run (an evaluation may precede training);
        # cut back to the checkpoint's step when resuming.
        if state.is_world_process_zero and (state.global_step > 0 or not self._opened):
            self._open(args, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or logs is None:
            return
        if not self._opened:
            self._open(args, 0)
        with self._path(args).open("a") as file:
            file.write(json.dumps({"step": state.global_step, **logs}) + "\n")


class AlphaScheduleCallback(TrainerCallback, ExportableState):
    """Holds the trainer's α schedule; its state travels in the checkpoints.

    As an ``ExportableState`` callback, transformers writes :meth:`state` (the schedule's
    config and mutable state) into every checkpoint's ``trainer_state.json``
    (``stateful_callbacks``) and reads it back with the rest of the trainer state when
    training resumes from a checkpoint. The state is restored at the start of the resumed
    training: by transformers, which rebuilds the callback from :meth:`state` when
    ``restore_callback_states_from_checkpoint`` is set, otherwise here, from the state it
    loaded. A checkpoint written before the state went into ``trainer_state.json`` is
    restored from its ``alpha_schedule.json``.

    Readable copies: ``<checkpoint>/alpha_schedule.json`` at every checkpoint and
    ``<output_dir>/alpha_schedule.json`` at the end of training (the self-play loop reads
    it to carry the state into the next iteration), ``{"config": ..., "state": ...}``.
    """

    def __init__(
        self, schedule: AlphaSchedule | Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> None:
        self.schedule = schedule if isinstance(schedule, AlphaSchedule) else make_schedule(schedule)
        if state is not None:
            self.schedule.load_state_dict(state)

    def state(self) -> dict[str, Any]:
        return {
            "args": {"schedule": self.schedule.config(), "state": self.schedule.state_dict()},
            "attributes": {},
        }

    def record(self) -> dict[str, Any]:
        """The readable copy: ``{"config": ..., "state": ...}``."""
        return {"config": self.schedule.config(), "state": self.schedule.state_dict()}

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:  # not resumed
            return
        name = type(self).__name__
        saved = state.stateful_callbacks.get(name)
        if isinstance(saved, list):
            saved = saved[0] if saved else None
        if saved is not None:
            self.schedule.load_state_dict(saved["args"]["state"])
            return
        legacy = (
            Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}" / SCHEDULE_FILE
        )
        if legacy.is_file():
            self.schedule.load_state_dict(json.loads(legacy.read_text())["state"])
        # transformers updates the entries it finds when it saves the next checkpoint.
        state.stateful_callbacks[name] = self.state()

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if args.should_save and folder.is_dir():
            self._write(folder / SCHEDULE_FILE)

    def on_train_end(self, args, state, control, **kwargs):
        if args.should_save:
            self._write(Path(args.output_dir) / SCHEDULE_FILE)

    def _write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record(), indent=2) + "\n")
