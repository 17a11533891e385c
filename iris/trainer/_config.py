"""IrisConfig: trl.DPOConfig plus what one self-play iteration with a registry loss needs."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from trl import DPOConfig

from iris.losses import LOSSES
from iris.schedules import make_schedule

from ._dispatch import loss_spec

# Loss-specific hyper-parameters of IrisConfig, all ``None`` = "use the loss's default".
# A value set for a loss whose signature does not name it is rejected.
LOSS_HYPERPARAMETERS = ("alpha", "mu", "bound", "lam", "scale")

WEIGHT_NORMALIZATIONS = ("global", "micro_batch")


def default_bf16(use_cpu: bool) -> bool:
    """bf16 mixed precision when the run config leaves it unset.

    Under ``accelerate launch`` the accelerate config's ``mixed_precision`` decides (the
    DeepSpeed engine rejects a trainer that disagrees with it); otherwise on where a CUDA
    device supports it, off on CPU (where bf16 is ~10x slower).
    """
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if launched is not None:
        return launched == "bf16"
    return bool(not use_cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def cpu_only() -> bool:
    """True on a machine without an accelerator (CUDA, XPU, MPS, ...): train on the CPU.

    TrainingArguments must then have ``use_cpu=True``: otherwise, under a multi-process
    launcher, it computes a world size of 1 (DeepSpeed then rejects the batch size and
    plain DDP trains one independent model per process).
    """
    return not torch.accelerator.is_available()


@dataclass
class IrisConfig(DPOConfig):
    r"""Configuration of :class:`iris.trainer.IrisTrainer`: one self-play iteration.

    A :class:`trl.DPOConfig` (so every TRL/transformers training argument applies:
    batch sizes, gradient accumulation, optimiser, ``max_length``, ``report_to``, ...),
    with these additions and changed defaults:

    - ``loss`` picks a function of :data:`iris.losses.LOSSES`; ``beta`` (TRL's) is its β.
    - ``alpha`` / ``alpha_schedule``: the IRIS order, constant or scheduled
      (:mod:`iris.schedules`); ``mu`` (SPACE), ``bound`` (SPIF), ``lam`` and ``scale``
      (T-SPIN): set only for a loss that takes them, ``None`` keeps the loss's default.
    - ``weight_normalization``: ``"global"`` (exact, default) or ``"micro_batch"``; see
      :class:`iris.trainer.IrisTrainer` for the cost of each.
    - ``precompute_ref_log_probs`` defaults to ``True`` (the reference θt is the policy
      when the trainer is built; no second model in memory); ``bf16`` defaults to ``True``
      as the accelerate config's ``mixed_precision`` under ``accelerate launch``, else only
      on a CUDA device that supports it (``False`` on CPU, where bf16 is ~10× slower);
      ``use_cpu`` is switched on when the machine has no accelerator (:func:`cpu_only`);
      ``logging_steps`` defaults to 1 (one metrics row per optimisation step);
      ``gradient_checkpointing`` (deprecated) is unset: use ``activation_checkpointing``
      (default ``True``, as TRL).
    - TRL options that the IRIS trainer does not implement (``loss_type`` other than the
      default, ``loss_weights``, ``ld_alpha``, ``f_divergence_type``, ``use_weighting``,
      ``label_smoothing``, ``sync_ref_model``, ``truncation_mode="keep_end"``) are rejected.
    """

    _VALID_DICT_FIELDS: ClassVar[list[str]] = [*DPOConfig._VALID_DICT_FIELDS, "alpha_schedule"]

    loss: str = field(
        default="iris",
        metadata={
            "help": "Self-play loss, a name of iris.losses.LOSSES: 'iris' (Rényi objective of order alpha), 'spin', "
            "'space', 'spif', 'tspin' (reference-free; needs a 'proto' column).",
            "choices": sorted(LOSSES),
        },
    )
    alpha: float | None = field(
        default=None,
        metadata={
            "help": "Constant order α > 0 of the IRIS objective (α → 1: KL/SPIN regime, 1/2: Hellinger, 2: χ²). "
            "Unset: 1.0, or the value of `alpha_schedule`. Only for losses that take α."
        },
    )
    alpha_schedule: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": 'Schedule of α over steps/iterations, as a name or a JSON object {"name": ..., **params}: '
            "'constant' (alpha), 'linear'/'cosine' (start, end, over='steps'|'iterations', num_iterations), "
            "'adaptive' (alpha_min=0.5, alpha_max=2, gap='margin' (default)|'variational'|'reference'|'evaluation', "
            "normalizer='first'|'max', smoothing=0.9, update='iteration'|'step', gap_metric). See iris.schedules. Exclusive with `alpha`."
        },
    )
    mu: float | None = field(
        default=None,
        metadata={"help": "SPACE noise ratio μ > 0 (loss default 1.0). Only for loss='space'."},
    )
    bound: float | None = field(
        default=None,
        metadata={
            "help": "SPIF bound c > 0 on the reward |r̃| (loss default 2.0). Only for loss='spif'."
        },
    )
    lam: float | None = field(
        default=None,
        metadata={
            "help": "T-SPIN weight λ ≥ 0 of the proto-synthetic anchor term (loss default 0.1; the paper uses 0 "
            "at iteration 0). Only for loss='tspin'."
        },
    )
    scale: float | None = field(
        default=None,
        metadata={
            "help": "T-SPIN scale a > 0 of the log-prob margins (loss default 1.0). Only for loss='tspin'."
        },
    )
    weight_normalization: str = field(
        default="global",
        metadata={
            "help": "How the IRIS weights (softmaxes over the batch) are normalised with gradient accumulation or "
            "several processes. 'global': over the whole optimisation batch, exact (the step's gradient is the "
            "gradient of the objective on the global batch); with K accumulated micro-batches it costs K-1 extra "
            "no-grad forwards per step (nothing without accumulation, even on several processes) and one "
            "all-gather. 'micro_batch': each micro-batch is its "
            "own batch (the step averages per-micro-batch objectives); no extra cost, biased. Only for losses "
            "with whole-batch normalisers ('iris').",
            "choices": list(WEIGHT_NORMALIZATIONS),
        },
    )
    iteration: int = field(
        default=0,
        metadata={
            "help": "Index (0-based) of this self-play iteration; read by α schedules over iterations."
        },
    )

    # Changed defaults of DPOConfig / TrainingArguments.
    precompute_ref_log_probs: bool = field(
        default=True,
        metadata={
            "help": "Compute the reference log-probs once, before training, with the policy as it is when the "
            "trainer is built (the previous iterate θt); no reference model is kept in memory."
        },
    )
    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "bf16 mixed precision. Unset: the accelerate config's mixed_precision under `accelerate "
            "launch`, else True on a CUDA device with bf16 support, False otherwise (on CPU bf16 is ~10x slower)."
        },
    )
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Deprecated alias of `activation_checkpointing`; leave unset."},
    )
    activation_checkpointing: bool | None = field(
        default=True,
        metadata={
            "help": "Recompute activations in the backward pass to save memory (~20%% slower). TRL's default is on."
        },
    )
    logging_steps: float = field(
        default=1,
        metadata={"help": "Log every X optimisation steps (1: one row of metrics.jsonl per step)."},
    )

    def __post_init__(self) -> None:
        self._validate_iris_options()
        if not self.use_cpu and cpu_only():
            self.use_cpu = True  # no run config needs a CPU-specific key
        if self.bf16 is None:
            self.bf16 = False if self.fp16 else default_bf16(self.use_cpu)
        super().__post_init__()

    def _validate_iris_options(self) -> None:
        spec = loss_spec(self.loss)
        if isinstance(self.alpha_schedule, str) and self.alpha_schedule.lstrip().startswith("{"):
            self.alpha_schedule = json.loads(self.alpha_schedule)
        for name in LOSS_HYPERPARAMETERS:
            if getattr(self, name) is not None and not spec.accepts(name):
                raise ValueError(
                    f"`{name}` does not apply to loss {self.loss!r} (its parameters: "
                    f"{sorted(n for n in spec.hyperparameters if spec.accepts(n))}); leave it unset"
                )
        if self.alpha is not None and not float(self.alpha) > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if self.alpha_schedule is not None:
            if not spec.takes_alpha:
                raise ValueError(
                    f"`alpha_schedule` does not apply to loss {self.loss!r}, which has no α"
                )
            if self.alpha is not None:
                raise ValueError("set either `alpha` (constant) or `alpha_schedule`, not both")
            make_schedule(self.alpha_schedule)  # raises on unknown names/parameters and bad values
        if self.weight_normalization not in WEIGHT_NORMALIZATIONS:
            raise ValueError(
                f"weight_normalization must be one of {WEIGHT_NORMALIZATIONS}, got {self.weight_normalization!r}"
            )
        if self.weight_normalization != "global" and spec.normalizer is None:
            raise ValueError(
                f"weight_normalization={self.weight_normalization!r} does not apply to loss {self.loss!r}: its "
                "per-sample terms add up over micro-batches, there are no batch-normalised weights"
            )
        if self.iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {self.iteration}")
        # Values: let the loss validate them on dummy inputs (α > 0, μ > 0, λ ≥ 0, ...).
        spec.probe(self.loss_hyperparameters(alpha=self.alpha if self.alpha is not None else 1.0))
        self._reject_unsupported_trl_options()
        if (
            spec.normalizer is not None
            and self.weight_normalization == "global"
            and not self.disable_dropout
        ):
            warnings.warn(
                "weight_normalization='global' with dropout: the normalisers come from a separate forward with "
                "other dropout masks, so the step's gradient is not exactly the global-batch gradient",
                stacklevel=3,
            )

    def _reject_unsupported_trl_options(self) -> None:
        loss_type = [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)
        unsupported = {
            "loss_type": (loss_type != ["sigmoid"], "use `loss`"),
            "loss_weights": (self.loss_weights is not None, "one loss per run"),
            "ld_alpha": (
                self.ld_alpha is not None,
                "log-probs are summed over all response tokens",
            ),
            "f_divergence_type": (self.f_divergence_type != "reverse_kl", "not an IRIS option"),
            "use_weighting": (bool(self.use_weighting), "not an IRIS option"),
            "label_smoothing": (self.label_smoothing != 0.0, "not an IRIS option"),
            "truncation_mode": (
                self.truncation_mode != "keep_start",
                "responses are truncated at the end (keep_start), as documented and counted",
            ),
            "sync_ref_model": (
                bool(self.sync_ref_model),
                "the reference is the previous iterate, fixed",
            ),
        }
        for name, (is_set, why) in unsupported.items():
            if is_set:
                raise ValueError(
                    f"IrisConfig does not support TRL's `{name}` ({why}); leave it at its default"
                )

    def loss_hyperparameters(self, *, alpha: float | None = None) -> dict[str, Any]:
        """Keyword arguments for the loss function: β, the set loss-specific values, and α if given."""
        values: dict[str, Any] = {"beta": self.beta}
        for name in LOSS_HYPERPARAMETERS:
            if name != "alpha" and getattr(self, name) is not None:
                values[name] = getattr(self, name)
        if alpha is not None:
            values["alpha"] = alpha
        return values
