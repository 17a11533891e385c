"""Training one self-play iteration with any loss of :data:`iris.losses.LOSSES`, on TRL.

This package owns the glue between the loss library and ``trl.DPOTrainer``:
:class:`IrisConfig` (a ``trl.DPOConfig`` plus the loss, α and its schedule, the
loss-specific hyper-parameters and how IRIS weights are normalised),
:class:`IrisTrainer` (per-sequence log-probs through TRL's fused head, reference
log-probs precomputed once, the registry loss called by its signature, exact whole-batch
weight normalisation under gradient accumulation and data parallelism, per-step metrics
in ``metrics.jsonl``) and :class:`IrisDataCollator` (TRL's preference collator plus extra
response groups such as T-SPIN's ``proto``). It holds no loss formula.

Dataset convention: columns ``prompt``, ``real`` (annotated response), ``generated``
(synthetic response from the previous iterate) and, for T-SPIN, ``proto``.
"""

from ._callbacks import METRICS_FILE, SCHEDULE_FILE, AlphaScheduleCallback, MetricsFileCallback
from ._collator import IrisDataCollator
from ._config import IrisConfig
from ._dispatch import LossSpec, loss_spec
from ._trainer import IrisTrainer

__all__ = [
    "METRICS_FILE",
    "SCHEDULE_FILE",
    "AlphaScheduleCallback",
    "IrisConfig",
    "IrisDataCollator",
    "IrisTrainer",
    "LossSpec",
    "MetricsFileCallback",
    "loss_spec",
]
