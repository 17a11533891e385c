"""IrisTrainer: one self-play iteration with any registry loss, as a thin adapter on trl.DPOTrainer.

**Seams.** IrisTrainer overrides public methods of ``transformers.Trainer`` and
``trl.DPOTrainer`` (``compute_loss``, ``training_step``, ``prediction_step``,
``get_batch_samples``, ``log``, ``save_model``, ``compute_ref_log_probs``,
``create_accelerator_and_postprocess``); the α schedule's state travels in checkpoints
through a stateful callback (:class:`AlphaScheduleCallback`, transformers'
``ExportableState``), and a resumed run's whole-run totals start from an
``on_train_begin`` callback (``train`` and ``_save_checkpoint`` are not overridden).
The private seams that remain, each with what it is for:

- ``DPOTrainer._prepare_dataset`` (overridden, calls TRL's): TRL tokenises the pairs and
  applies its truncation and EOS policy; iris renames its columns to TRL's before, and
  after adds the row index, the extra response groups (T-SPIN's ``proto``, tokenised as
  TRL tokenises a response) and removes the EOS TRL appends to unterminated generations.
  TRL has no public hook for extra columns or per-row EOS.
- ``Trainer._set_signature_columns_if_needed`` (overridden, extends TRL's
  ``_signature_columns``): keeps the row index and extra response columns from
  ``remove_unused_columns``.
- ``Trainer._prepare_inputs`` (called, as TRL's ``prediction_step`` does): moves a batch
  to the device; also the step's other prefetched micro-batches, for the whole-batch
  normalisers' no-grad forwards.

The metrics are kept by the trainer itself and merged into the Trainer's logs in
:meth:`IrisTrainer.log` (TRL's private ``_metrics`` is not used).
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow.compute as pc
import torch
import torch.nn.functional as F
from datasets import Dataset, IterableDataset, concatenate_datasets
from torch import Tensor
from transformers import TrainerCallback, TrainerState
from trl import DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import global_then_local_main_first

from iris.launch import check_trainer
from iris.losses import LossOutput
from iris.schedules import AlphaSchedule, ConstantSchedule, Measurement, Progress, make_schedule

from ._callbacks import AlphaScheduleCallback, MetricsFileCallback
from ._collator import ROW_INDEX, TRUNCATED, IrisDataCollator
from ._config import IrisConfig
from ._dataset import ROW_COLUMN, to_trl_columns, trl_column
from ._dispatch import GENERATED, REAL, LossSpec, loss_spec

logger = logging.getLogger(__name__)

# Precomputed reference log-probs of each response group, as TRL names them.
REFERENCE_KEYS = {REAL: "ref_chosen_logps", GENERATED: "ref_rejected_logps"}
_NOT_MODEL_INPUTS = {"completion_mask", ROW_INDEX, TRUNCATED}


def _add_row_index(example: dict[str, Any], index: int) -> dict[str, int]:
    return {ROW_COLUMN: index}


def _duplicate_chosen(example: dict[str, Any]) -> dict[str, Any]:
    return {"rejected": example["chosen"]}


def _column(dataset: Dataset, name: str):
    """A column as an Arrow array (no Python lists: token columns can be large)."""
    return dataset.with_format("arrow")[name]


def _lengths(dataset: Dataset, name: str) -> np.ndarray:
    return pc.list_value_length(_column(dataset, name)).to_numpy(zero_copy_only=False)


def _is_model_input(key: str) -> bool:
    return key not in _NOT_MODEL_INPUTS and not (key.startswith("ref_") and key.endswith("_logps"))


def _drop_appended_eos(dataset: Dataset, flag: str, column: str, eos_id: int | None) -> Dataset:
    """Undo TRL's EOS on responses flagged unterminated (``<group>_truncated``).

    For string data TRL appends the EOS token to every response that does not end with
    it. A generation cut at ``max_new_tokens`` did not stop: training it with an EOS would
    teach the model to stop where it did not, so the appended token is removed again.
    """
    if flag not in dataset.column_names or eos_id is None:
        return dataset

    def drop(example: dict[str, Any]) -> dict[str, Any]:
        ids = example[column]
        if example[flag] and ids and ids[-1] == eos_id:
            return {column: ids[:-1]}
        return {column: ids}

    with global_then_local_main_first():
        return dataset.map(drop, desc=f"Unterminated responses ({flag}): no EOS")


def _is_step_level(metric: str) -> bool:
    """Loss diagnostics the trainer recomputes over the whole step (weights) or logs itself (α)."""
    return metric == "alpha" or metric.endswith(("_ess_fraction", "_max_weight"))


def _take_rows(inputs: Mapping[str, Any], rows: int, total_rows: int) -> dict[str, Any]:
    """The first ``rows`` rows of every per-row tensor of a batch."""
    return {
        k: v[:rows] if isinstance(v, Tensor) and v.dim() >= 1 and v.size(0) == total_rows else v
        for k, v in inputs.items()
    }


@dataclass
class _Step:
    """What every micro-batch of one optimisation step shares.

    ``normalizers`` are the whole-batch normalisers (``None``: each micro-batch is its own
    batch); when ``exact`` they are computed during the step's first micro-batch, from
    ``batches`` (this rank's micro-batches, as the Trainer prefetched them).
    ``total_pairs`` counts the prompts of the whole optimisation batch (all ranks).
    """

    alpha: float | None
    normalizers: tuple[Any, ...] | None
    total_pairs: int
    micro_batches_left: int
    exact: bool = False
    batches: list[dict[str, Any]] = field(default_factory=list)
    current: dict[str, Any] | None = None  # the micro-batch being processed (as prefetched)
    sums: dict[str, Tensor] = field(default_factory=dict)
    maxima: dict[str, Tensor] = field(default_factory=dict)

    def add(self, name: str, value: Tensor | float) -> None:
        value = torch.as_tensor(value).detach().to(torch.float64)
        self.sums[name] = self.sums[name] + value if name in self.sums else value

    def maximum(self, name: str, value: Tensor) -> None:
        value = value.detach().to(torch.float64)
        self.maxima[name] = (
            torch.maximum(self.maxima[name], value) if name in self.maxima else value
        )


class _OnTrainBegin(TrainerCallback):
    """Calls ``hook(state)`` when training starts (``state`` is a resumed checkpoint's)."""

    def __init__(self, hook: Callable[[TrainerState], None]) -> None:
        self._hook = hook

    def on_train_begin(self, args, state, control, **kwargs):
        self._hook(state)


class IrisTrainer(DPOTrainer):
    r"""One self-play iteration (policy θ from θt, reference θt) with any loss of :data:`iris.losses.LOSSES`.

    A thin adapter on :class:`trl.DPOTrainer`: TRL tokenises the data, precomputes the
    reference log-probs (``precompute_ref_log_probs=True``, ``ref_model=None``: the
    reference is the policy as it is when the trainer is built; with a PEFT model, the
    adapter-disabled model, as TRL does) and runs the training loop; this class computes
    per-sequence log-probs with TRL's fused LM head, calls the registry loss with the
    tensors its signature names (:mod:`iris.trainer._dispatch`) and logs. It contains no
    loss formula and no branch on the loss name.

    **Data** (:mod:`iris.trainer._dataset`): columns ``prompt``, ``real`` (annotated),
    ``generated`` (synthetic, from θt) and, for T-SPIN, ``proto``. Truncation: TRL's
    ``keep_start`` policy, prompt + response cut to ``max_length`` tokens (the end of the
    response is lost); rows whose prompt alone has ``max_length`` tokens are dropped by
    TRL (a warning gives the count); the fraction of truncated responses of each step is
    logged as ``truncated/<group>``.

    **Weight normalisation.** IRIS's gradient weights are softmaxes over the optimisation
    batch, so the objective of a batch is not the sum of the objectives of its parts.
    With ``weight_normalization="global"`` (default) the optimiser sees exactly the
    gradient of the IRIS objective on the global batch (all micro-batches of the
    gradient-accumulation cycle, all ranks):

    1. in the step's first micro-batch (the Trainer prefetches all K micro-batches of a
       step, :meth:`get_batch_samples`), before any backward: a no-grad forward of this
       rank's K − 1 other micro-batches, then the micro-batch's own grad forward, give the
       log-ratios of every real and generated response of the rank; they are all-gathered
       across ranks and :func:`iris.losses.iris_normalizers` computes each term's tilted
       risk R and sample count N over the whole batch;
    2. every micro-batch's loss is computed with those normalisers; it returns the
       micro-batch's share ``S_k = Σ_{i∈k} w_i (R + ℓ_i − sg(ℓ_i))`` with
       ``w_i = exp(τ (sg(ℓ_i) − R))/N``, so ``Σ_k S_k`` is the batch objective and
       ``Σ_k ∇S_k = Σ_i w_i ∇ℓ_i`` its gradient (the whole-batch softmax weights);
    3. the trainer returns ``W · S_k`` (W processes) and tells the Trainer not to divide
       by the accumulation steps (``loss_is_scaled_for_ga``), which undoes DDP's (and
       DeepSpeed's, FSDP's) averaging over ranks: the summed gradient is ``Σ_k ∇S_k``.

    Exactness needs the no-grad forwards to reproduce the grad passes' log-ratios: same
    parameters (true within a step) and no dropout (``disable_dropout=True``, TRL's
    default). Cost: K − 1 no-grad forwards of real and generated responses per K
    micro-batches, i.e. (K − 1)/K of a forward of the step (a forward is ≈ 1/3 of a
    forward-backward): nothing without gradient accumulation, however many processes;
    one all-gather of 3 floats per prompt per step; no extra memory beyond one no-grad
    forward's transient activations. A single micro-batch on a single process skips
    all of it. With ``weight_normalization="micro_batch"`` each micro-batch is normalised
    on its own and the step averages the per-micro-batch objectives (weighted by their
    sizes): no extra cost, but the gradient is that of a different (biased,
    batch-size-dependent) objective. Losses without batch normalisation (SPIN, SPACE,
    SPIF, T-SPIN) are sums of per-sample terms: each micro-batch returns its share
    ``loss_k · B_k / N`` (times W), the exact global-batch mean, at no extra cost.

    **α** comes from an :class:`iris.schedules.AlphaSchedule` (``alpha_schedule``
    argument, e.g. with state carried from the previous iteration, or built from
    ``args.alpha_schedule`` / ``args.alpha``). It is asked for α at the start of every
    optimisation step and given the reference gap once (from the precomputed reference
    log-probs) and the variational estimate −L_α after every step. Its state is saved in
    each checkpoint (``trainer_state.json``, through :class:`AlphaScheduleCallback`, with a
    readable copy in ``alpha_schedule.json``) and at the end of training in
    ``<output_dir>/alpha_schedule.json``, and restored when resuming from a checkpoint.

    **Metrics** of every optimisation step, reduced over all micro-batches and ranks as
    sums and counts (or maxima), go to ``report_to`` and to ``<output_dir>/metrics.jsonl``:
    ``loss``, ``grad_norm``, ``learning_rate``, ``alpha``, ``objective/*`` (the loss's own
    diagnostics, e.g. ``objective/variational_estimate`` = −L_α; sample-weighted means over
    micro-batches; its per-micro-batch weight statistics are replaced by the step's),
    ``weights/{real,generated}_{ess_fraction,max_weight}`` (ESS/n and largest share of the
    step's effective gradient weights), ``logps/<group>`` and ``logratios/<group>`` (mean
    over responses: a falling ``logps/real`` is likelihood displacement of the annotated
    responses), ``rewards/margin`` (mean β(lr⁺ − lr⁻)), ``rewards/{real,generated}_std``
    (standard deviation of β·logratio over the step's batch), ``truncated/<group>``,
    ``gap/reference``, ``num_tokens``, ``tokens_per_second``, ``aux_loss`` (a
    mixture-of-experts model's load-balancing loss, before its coefficient, as TRL logs
    it). TRL's names, with TRL's meaning (chosen = the annotated response ``real``,
    rejected = the synthetic ``generated``, reward = β·logratio), are logged alongside:
    ``rewards/chosen``, ``rewards/rejected`` (mean rewards), ``rewards/accuracies``
    (fraction of pairs whose annotated reward is the larger), ``rewards/margins`` (=
    ``rewards/margin``), ``logps/chosen``, ``logps/rejected`` (= ``logps/real``,
    ``logps/generated``). Evaluation logs the same names with the ``eval_`` prefix;
    ``compute_metrics`` is not accepted (the fused LM head builds no logits to give it).

    **Bad input** raises: a dataset missing a column or with an empty prompt/response
    (``ValueError`` naming row and column); non-finite reference log-probs (at
    construction) or policy log-probs / loss (at the step, before any optimiser update:
    ``FloatingPointError`` naming the step, the row and the response); a checkpoint or
    ``save_model`` with non-finite parameters is refused. The step's log-probs are checked
    where they enter the loss, by the loss library (which rejects non-finite inputs; the
    trainer then names the row and response), and the loss where it leaves it, inside the
    step's metric reduction: no device synchronisation of its own.
    """

    loss_is_scaled_for_ga = True
    _tag_names: ClassVar[list[str]] = ["trl", "dpo", "iris"]
    _name = "IRIS"
    # For the model card (TRL's template); the authors are not known to this project.
    _paper: ClassVar[dict[str, str]] = {
        "title": "IRIS: Interpolative Rényi Iterative Self-play for Large Language Model Fine-Tuning",
        "id": "2604.20933",
    }

    def __init__(
        self,
        model,
        ref_model=None,
        args: IrisConfig | None = None,
        data_collator=None,
        train_dataset: Dataset | None = None,
        eval_dataset=None,
        processing_class=None,
        compute_metrics=None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers=(None, None),
        quantization_config=None,
        peft_config=None,
        alpha_schedule: AlphaSchedule | None = None,
    ):
        if not isinstance(args, IrisConfig):
            raise TypeError(f"IrisTrainer needs an IrisConfig, got {type(args).__name__}")
        if compute_metrics is not None:
            raise ValueError(
                "IrisTrainer does not take compute_metrics: its fused LM head builds no logits to give it "
                "(TRL recomputes them with an extra forward, deprecated in TRL and removed in 2.0). "
                "Evaluation reports the loss and every training metric with the eval_ prefix "
                "(eval_rewards/accuracies, eval_rewards/margins, eval_logps/chosen, "
                "eval_objective/variational_estimate, ...); derive others from them in a callback's on_evaluate."
            )
        self.loss_spec: LossSpec = loss_spec(args.loss)
        schedule = self._build_schedule(self.loss_spec, args, alpha_schedule)
        self._step: _Step | None = None
        self._reference_gap: float | None = None
        self._step_metrics: dict[str, defaultdict[str, list[float]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }
        self._start_training(TrainerState())
        own = [MetricsFileCallback(), _OnTrainBegin(self._start_training)]
        if schedule is not None:
            own.append(AlphaScheduleCallback(schedule))
        super().__init__(
            model,
            ref_model=ref_model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=[*(callbacks or []), *own],
            optimizers=optimizers,
            quantization_config=quantization_config,
            peft_config=peft_config,
        )
        # TRL's collator served the reference precompute (real and generated responses);
        # training also needs the extra response groups and the row bookkeeping.
        if data_collator is None and isinstance(self.data_collator, DataCollatorForPreference):
            self.data_collator = IrisDataCollator.from_preference_collator(
                self.data_collator, self.loss_spec.extra_groups
            )
        self._check_reference_logps(self.train_dataset, "train")
        evals = (
            self.eval_dataset
            if isinstance(self.eval_dataset, Mapping)
            else {"eval": self.eval_dataset}
        )
        for name, dataset in evals.items():
            self._check_reference_logps(dataset, name)
        self._reference_gap = self._summarise_dataset(self.train_dataset)
        self._connect_schedule()

    @property
    def alpha_schedule(self) -> AlphaSchedule | None:
        """The α schedule (``None`` for a loss without α), held by its checkpointed callback."""
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, AlphaScheduleCallback):
                return callback.schedule
        return None

    # ----------------------------------------------------------------------------------
    # Construction helpers
    # ----------------------------------------------------------------------------------

    def create_accelerator_and_postprocess(self) -> None:
        """Build the Accelerator, then check it is the training the launcher asked for.

        Runs inside ``Trainer.__init__``, before TRL computes the reference log-probs: a
        launch whose engine, world size or mixed precision differs from the accelerate
        config stops here (:mod:`iris.launch`), not after hours of work.
        """
        super().create_accelerator_and_postprocess()
        check_trainer(self)

    @staticmethod
    def _build_schedule(
        spec: LossSpec, args: IrisConfig, schedule: AlphaSchedule | None
    ) -> AlphaSchedule | None:
        if not spec.takes_alpha:
            if schedule is not None:
                raise ValueError(
                    f"an alpha schedule does not apply to loss {args.loss!r}, which has no α"
                )
            return None
        if schedule is not None:
            return schedule
        if args.alpha_schedule is not None:
            return make_schedule(args.alpha_schedule)
        return ConstantSchedule(args.alpha if args.alpha is not None else 1.0)

    def _connect_schedule(self) -> None:
        if self.alpha_schedule is None:
            return
        needed = self.alpha_schedule.measurements()
        if "reference_gap" in needed and self._reference_gap is None:
            raise ValueError(
                "the alpha schedule adapts to the reference gap, which needs precompute_ref_log_probs=True"
            )
        if "variational_gap" in needed:
            probe = self.loss_spec.probe(self.args.loss_hyperparameters(alpha=1.0))
            if "variational_estimate" not in probe.metrics:
                raise ValueError(
                    f"loss {self.args.loss!r} reports no variational estimate to adapt α to"
                )
        if self._reference_gap is not None:
            self.alpha_schedule.observe(Measurement(reference_gap=self._reference_gap))

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        if isinstance(dataset, IterableDataset):
            raise ValueError(
                "IrisTrainer needs a map-style datasets.Dataset (rows are checked and indexed)"
            )
        if "prompt_ids" in dataset.column_names:  # already prepared
            return dataset
        groups, extra = self.loss_spec.groups, self.loss_spec.extra_groups
        dataset = to_trl_columns(dataset, groups, dataset_name)
        with global_then_local_main_first():
            dataset = dataset.map(
                _add_row_index, with_indices=True, desc=f"Indexing {dataset_name} rows"
            )
        core = dataset.remove_columns(list(extra)) if extra else dataset
        prepared = super()._prepare_dataset(core, processing_class, args, dataset_name)
        eos_id = getattr(processing_class, "tokenizer", processing_class).eos_token_id
        prepared = _drop_appended_eos(prepared, f"{GENERATED}_truncated", "rejected_ids", eos_id)
        if len(prepared) < len(core):
            logger.warning(
                "%d of %d rows of the %s dataset were dropped: their prompt alone has >= max_length (%s) tokens",
                len(core) - len(prepared),
                len(core),
                dataset_name,
                args.max_length,
            )
        if len(prepared) == 0:
            raise ValueError(
                f"no row of the {dataset_name} dataset is left after truncation to max_length"
            )
        for group in extra:
            # TRL tokenises pairs: tokenise the extra response as a pair with itself.
            flag = f"{group}_truncated"
            keep = ["prompt", group, ROW_COLUMN, *([flag] if flag in dataset.column_names else [])]
            view = dataset.select_columns(keep).rename_column(group, "chosen")
            with global_then_local_main_first():
                view = view.map(_duplicate_chosen, desc=f"Pairing {group} responses")
            view = super()._prepare_dataset(
                view, processing_class, args, f"{dataset_name} ({group})"
            )
            view = _drop_appended_eos(view, flag, "chosen_ids", eos_id)
            if not all(
                _column(view, c).equals(_column(prepared, c)) for c in (ROW_COLUMN, "prompt_ids")
            ):
                raise ValueError(
                    f"the prompts of the {dataset_name} dataset tokenise differently with the {group!r} response "
                    "than with the real/generated ones; check the chat template"
                )
            ids = view.select_columns(["chosen_ids"]).rename_column("chosen_ids", f"{group}_ids")
            prepared = concatenate_datasets([prepared, ids], axis=1)
        return prepared

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        wanted = [ROW_COLUMN, *(f"{g}_ids" for g in self.loss_spec.extra_groups)]
        self._signature_columns = [
            *self._signature_columns,
            *(c for c in wanted if c not in self._signature_columns),
        ]

    def _check_reference_logps(self, dataset: Dataset | None, name: str) -> None:
        if not isinstance(dataset, Dataset):
            return
        for group, column in REFERENCE_KEYS.items():
            if column not in dataset.column_names:
                continue
            values = _column(dataset, column).to_numpy().astype(np.float64)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                row = dataset[int(bad[0])].get(ROW_COLUMN, int(bad[0]))
                raise FloatingPointError(
                    f"{name} dataset row {row}, response {group!r}: the reference log-prob is {values[bad[0]]} "
                    f"({bad.size} non-finite in all); the reference model (θt) produces non-finite log-probs"
                )

    def _summarise_dataset(self, dataset: Dataset | None) -> float | None:
        """Warn about truncated responses; return the reference gap D̂ (``None`` without precomputed references)."""
        if not isinstance(dataset, Dataset) or "prompt_ids" not in dataset.column_names:
            return None
        limit = self.args.max_length
        prompt_lengths = _lengths(dataset, "prompt_ids")
        per_token: dict[str, float] = {}
        for group, column in REFERENCE_KEYS.items():
            lengths = _lengths(dataset, f"{trl_column(group)}_ids")
            if limit is not None:
                kept = np.minimum(lengths, limit - prompt_lengths)
                truncated = int((kept < lengths).sum())
                if truncated:
                    logger.warning(
                        "%d of %d %s responses exceed max_length=%d with their prompt and are truncated (keep_start)",
                        truncated,
                        len(lengths),
                        group,
                        limit,
                    )
                lengths = kept
            if column in dataset.column_names:
                reference = _column(dataset, column).to_numpy().astype(np.float64)
                per_token[group] = float(np.mean(reference / np.maximum(lengths, 1)))
        if len(per_token) < 2:
            return None
        # D̂ = mean per-token log p_θt(y') − mean per-token log p_θt(y): synthetic minus annotated.
        return per_token[GENERATED] - per_token[REAL]

    # ----------------------------------------------------------------------------------
    # Log-probs
    # ----------------------------------------------------------------------------------

    def compute_ref_log_probs(self, model, inputs):
        """TRL's reference log-probs of the real and generated rows (extra groups and bookkeeping dropped)."""
        total_rows = inputs["input_ids"].size(0)
        pair_rows = 2 * inputs[ROW_INDEX].numel() if ROW_INDEX in inputs else total_rows
        core = {
            k: v
            for k, v in _take_rows(inputs, pair_rows, total_rows).items()
            if k not in (ROW_INDEX, TRUNCATED)
        }
        return super().compute_ref_log_probs(model, core)

    def _policy_logps(self, model, inputs: Mapping[str, Any]) -> tuple[Tensor, Any]:
        """Per-sequence log-probs summed over response tokens, through TRL's fused LM head."""
        completion_mask = inputs["completion_mask"]
        model_kwargs = {k: v for k, v in inputs.items() if _is_model_input(k)}
        model_kwargs["use_cache"] = False
        if self.aux_loss_enabled:
            model_kwargs["output_router_logits"] = True
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        # Prompt-learning PEFT prepends virtual tokens to the outputs; keep the real positions.
        seq_len = completion_mask.size(1) - 1
        return outputs.log_probs[:, -seq_len:].sum(dim=1), outputs

    def _reference_logps(
        self, inputs: Mapping[str, Any], stash: dict[str, Any] | None = None
    ) -> dict[str, Tensor]:
        if REFERENCE_KEYS[REAL] in inputs:
            return {group: inputs[key] for group, key in REFERENCE_KEYS.items()}
        ref_model = self.ref_model if self.ref_model is not None else self.model
        real, generated = self.compute_ref_log_probs(ref_model, inputs)
        if stash is not None:  # reused by the grad pass of the same micro-batch
            stash[REFERENCE_KEYS[REAL]], stash[REFERENCE_KEYS[GENERATED]] = real, generated
        return {REAL: real, GENERATED: generated}

    def _rows(self, inputs: Mapping[str, Any]) -> Tensor:
        """Dataset rows of a batch's prompts (positions in the batch if the collator gave none)."""
        if ROW_INDEX in inputs:
            return inputs[ROW_INDEX]
        return torch.arange(inputs["input_ids"].size(0) // len(self.loss_spec.groups))

    def _loss_tensors(
        self,
        model,
        inputs: Mapping[str, Any],
        groups: Sequence[str],
        stash: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Tensor], Any]:
        """``<group>_logps`` for ``groups`` (a prefix of the spec's groups) and ``<group>_logratios`` for real/generated."""
        all_groups = self.loss_spec.groups
        total_rows = inputs["input_ids"].size(0)
        pairs = total_rows // len(all_groups)
        rows = len(groups) * pairs
        sub = _take_rows(inputs, rows, total_rows) if rows < total_rows else inputs
        logps, outputs = self._policy_logps(model, sub)
        tensors = {f"{g}_logps": logps[i * pairs : (i + 1) * pairs] for i, g in enumerate(groups)}
        reference = self._reference_logps(inputs, stash)
        for group in (REAL, GENERATED):
            if group in groups:
                tensors[f"{group}_logratios"] = tensors[f"{group}_logps"] - reference[group].to(
                    logps.dtype
                )
        return tensors, outputs

    # ----------------------------------------------------------------------------------
    # Optimisation steps
    # ----------------------------------------------------------------------------------

    def _current_alpha(self) -> float | None:
        if self.alpha_schedule is None:
            return None
        progress = Progress(
            step=self.state.global_step,
            total_steps=max(int(self.state.max_steps or 1), 1),
            iteration=self.args.iteration,
        )
        return float(self.alpha_schedule.alpha(progress))

    def _hyperparameters(self, alpha: float | None) -> dict[str, Any]:
        return self.args.loss_hyperparameters(alpha=alpha)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples, num_items_in_batch = super().get_batch_samples(
            epoch_iterator, num_batches, device
        )
        self._step = self._begin_step(batch_samples) if batch_samples else None
        return batch_samples, num_items_in_batch

    def _begin_step(self, batch_samples: list[dict[str, Any]]) -> _Step:
        alpha = self._current_alpha()
        spec = self.loss_spec
        world = self.accelerator.num_processes
        pairs = sum(b["input_ids"].size(0) // len(spec.groups) for b in batch_samples)
        # A single micro-batch on a single process is the whole batch: nothing to do.
        if spec.normalizer is not None and self.args.weight_normalization == "global":
            if world > 1 or len(batch_samples) > 1:
                return _Step(alpha, None, 0, len(batch_samples), exact=True, batches=batch_samples)
        if world > 1:
            device = batch_samples[0]["input_ids"].device
            pairs = int(self.accelerator.gather(torch.tensor([pairs], device=device)).sum())
        return _Step(alpha, None, pairs, len(batch_samples))

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self._step is not None:
            self._step.current = inputs
        return super().training_step(model, inputs, num_items_in_batch)

    def _first_micro_batch_tensors(self, model, inputs: Mapping[str, Any], step: _Step):
        """The loss tensors of the step's first micro-batch, and the step's whole-batch normalisers.

        The other micro-batches of this rank go through a no-grad forward first (their
        log-ratios only); this micro-batch's own grad forward gives its log-ratios; all are
        all-gathered over ranks and the normalisers computed, before any backward.
        """
        spec = self.loss_spec
        names = spec.normalizer_tensor_names
        others = [batch for batch in step.batches if batch is not step.current]
        assert len(others) == len(step.batches) - 1, "the micro-batch is not one of the step's"
        columns: dict[str, list[Tensor]] = {name: [] for name in (*names, ROW_INDEX)}

        def collect(tensors: Mapping[str, Tensor], rows: Tensor) -> None:
            for name in names:
                columns[name].append(tensors[name].detach().to(torch.float64))
            columns[ROW_INDEX].append(rows.to(device=tensors[names[0]].device, dtype=torch.float64))

        # Activation checkpointing may stay on: under no_grad it is a plain forward.
        with torch.no_grad():
            for batch in others:
                other = self._prepare_inputs(batch)
                tensors, _ = self._loss_tensors(self.model, other, spec.groups[:2], stash=batch)
                collect(tensors, self._rows(other))
        tensors, outputs = self._loss_tensors(model, inputs, spec.groups)
        collect(tensors, self._rows(inputs))
        gathered = self._gather_columns(
            torch.stack([torch.cat(columns[n]) for n in (*names, ROW_INDEX)])
        )
        batch = {name: gathered[i] for i, name in enumerate((*names, ROW_INDEX))}
        step.normalizers = self._at_loss_boundary(
            lambda: spec.normalizers(batch, self._hyperparameters(step.alpha)),
            batch,
            batch[ROW_INDEX].long(),
        )
        step.total_pairs = batch[ROW_INDEX].numel()
        return tensors, outputs

    def _gather_columns(self, local: Tensor) -> Tensor:
        """All-gather a (k, n_rank) tensor into (k, Σ n_rank), ranks in order (ragged n allowed)."""
        if self.accelerator.num_processes == 1:
            return local
        counts = self.accelerator.gather(torch.tensor([local.size(1)], device=local.device))
        width = int(counts.max())
        padded = F.pad(local, (0, width - local.size(1))).unsqueeze(0)
        gathered = self.accelerator.gather(padded)
        return torch.cat([gathered[r, :, : int(n)] for r, n in enumerate(counts.tolist())], dim=1)

    def _at_loss_boundary(
        self, call: Callable[[], Any], tensors: Mapping[str, Tensor], rows: Tensor
    ) -> Any:
        """``call()`` of the loss library on ``tensors``; a non-finite input is named.

        The loss library checks that its inputs are finite (``ValueError`` otherwise, one
        device synchronisation per input, which it makes anyway); only then does the
        trainer look for the first non-finite log-prob or log-ratio, to name its dataset
        row and response. Any other error of the loss library is raised as it is.
        """
        try:
            return call()
        except ValueError as error:
            self._name_non_finite(tensors, rows, error)
            raise

    def _name_non_finite(
        self, tensors: Mapping[str, Tensor], rows: Tensor, error: Exception
    ) -> None:
        """Raise ``FloatingPointError`` naming the first non-finite log-prob (then log-ratio), if any."""
        names = sorted(
            (n for n in tensors if n.endswith(("_logps", "_logratios"))),
            key=lambda n: n.endswith("_logratios"),
        )
        step = self.state.global_step + 1
        for name in names:
            value = tensors[name].detach()
            bad = torch.nonzero(~torch.isfinite(value)).flatten()
            if bad.numel():
                i = int(bad[0])
                group, _, kind = name.partition("_")
                what = "policy log-prob" if kind == "logps" else "log-ratio to the reference"
                raise FloatingPointError(
                    f"optimisation step {step}: non-finite {what} ({float(value[i])}) for dataset row "
                    f"{int(rows[i])}, response {group!r} ({bad.numel()} non-finite in this batch); training stopped "
                    "before the optimiser update, no checkpoint of this step was saved"
                ) from error

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs:
            raise ValueError(
                "IrisTrainer.compute_loss returns the loss only (the fused head builds no logits)"
            )
        training = self.model.training and self._step is not None
        step = self._step if training else _Step(self._current_alpha(), None, 0, 1)
        if step.exact and step.normalizers is None:
            tensors, outputs = self._first_micro_batch_tensors(model, inputs, step)
        else:
            tensors, outputs = self._loss_tensors(model, inputs, self.loss_spec.groups)
        pairs = tensors[f"{REAL}_logps"].numel()
        result: LossOutput = self._at_loss_boundary(
            lambda: self.loss_spec(tensors, self._hyperparameters(step.alpha), step.normalizers),
            tensors,
            self._rows(inputs),
        )
        if not training:
            step.total_pairs = pairs
        # Normalised losses return this micro-batch's share of the batch objective; the
        # others the micro-batch mean, whose share is B_k / N of it.
        share = 1.0 if step.normalizers is not None else pairs / step.total_pairs
        loss = result.loss * share
        self._accumulate(step, tensors, result, share, inputs)
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss * (pairs / step.total_pairs)
            step.add("aux_loss", outputs.aux_loss * pairs)
        step.micro_batches_left -= 1
        if step.micro_batches_left == 0:
            self._flush(step, "train" if training else "eval")
            if training:
                self._step = None
        if training:
            # Undo the averaging over ranks of DDP / DeepSpeed / FSDP: the summed gradient is Σ_k ∇S_k.
            loss = loss * self.accelerator.num_processes
        return loss

    def _accumulate(
        self, step: _Step, tensors: dict[str, Tensor], result: LossOutput, share: float, inputs
    ) -> None:
        pairs = tensors[f"{REAL}_logps"].numel()
        step.add("pairs", pairs)
        # The loss's finiteness is checked with the step's other sums (one transfer per step).
        step.add("loss_sum", result.loss)
        step.add("tokens", inputs["attention_mask"].sum())
        truncated = inputs.get(TRUNCATED)
        for i, group in enumerate(self.loss_spec.groups):
            step.add(f"logps/{group}", tensors[f"{group}_logps"].sum())
            if f"{group}_logratios" in tensors:
                step.add(f"logratios/{group}", tensors[f"{group}_logratios"].sum())
            if truncated is not None:
                step.add(f"truncated/{group}", truncated[i * pairs : (i + 1) * pairs].sum())
        margin = self.args.beta * (tensors[f"{REAL}_logratios"] - tensors[f"{GENERATED}_logratios"])
        step.add("rewards/margin", margin.sum())
        # TRL's reward accuracy: the annotated ("chosen") reward is the larger, compared as TRL does.
        chosen, rejected = (
            self.args.beta * tensors[f"{side}_logratios"].detach() for side in (REAL, GENERATED)
        )
        step.add("rewards/accuracies", (chosen > rejected).sum())
        for side in (REAL, GENERATED):  # reward spread: σ of the gradient-concentration law
            reward = self.args.beta * tensors[f"{side}_logratios"].detach().to(torch.float64)
            step.add(f"rewards/{side}_sum", reward.sum())
            step.add(f"rewards/{side}_sum_sq", reward.square().sum())
        for side, weights in ((REAL, result.real_weights), (GENERATED, result.generated_weights)):
            effective = weights.detach().to(torch.float64).abs() * share
            step.add(f"weights/{side}_sum", effective.sum())
            step.add(f"weights/{side}_sum_sq", effective.square().sum())
            step.maximum(f"weights/{side}_max", effective.max())
        for name, value in result.metrics.items():
            if not _is_step_level(name):
                step.add(f"objective/{name}", value * pairs)

    def _flush(self, step: _Step, mode: str) -> None:
        """Reduce the step's sums over ranks (the step's one device transfer), check its loss, record its metrics."""
        sum_names, max_names = list(step.sums), list(step.maxima)
        local = torch.stack(
            [*(step.sums[n] for n in sum_names), *(step.maxima[n] for n in max_names)]
        )
        if self.accelerator.num_processes > 1:  # one collective: sums are added, maxima compared
            ranks = self.accelerator.gather(local.unsqueeze(0))
            local = torch.cat(
                [ranks[:, : len(sum_names)].sum(dim=0), ranks[:, len(sum_names) :].amax(dim=0)]
            )
        values = local.tolist()  # the step's one device-to-host transfer
        total = dict(zip(sum_names, values[: len(sum_names)], strict=True))
        largest = dict(zip(max_names, values[len(sum_names) :], strict=True))
        pairs = total.pop("pairs")
        tokens = total.pop("tokens")
        loss_sum = total.pop("loss_sum")
        if not math.isfinite(loss_sum):
            raise FloatingPointError(
                f"optimisation step {self.state.global_step + 1}: the loss is non-finite ({loss_sum}) although "
                "all log-probs are finite; training stopped before the optimiser update"
            )
        metrics: dict[str, float] = {}
        if step.alpha is not None:
            metrics["alpha"] = step.alpha
        for side in (REAL, GENERATED):
            weight_sum, weight_sq = (
                total.pop(f"weights/{side}_sum"),
                total.pop(f"weights/{side}_sum_sq"),
            )
            metrics[f"weights/{side}_ess_fraction"] = (
                weight_sum**2 / weight_sq / pairs if weight_sq > 0 else math.nan
            )
            metrics[f"weights/{side}_max_weight"] = (
                largest[f"weights/{side}_max"] / weight_sum if weight_sum > 0 else math.nan
            )
        for side, trl_side in ((REAL, "chosen"), (GENERATED, "rejected")):
            mean = total.pop(f"rewards/{side}_sum") / pairs
            mean_sq = total.pop(f"rewards/{side}_sum_sq") / pairs
            metrics[f"rewards/{side}_std"] = math.sqrt(max(mean_sq - mean * mean, 0.0))
            metrics[f"rewards/{trl_side}"] = mean
        metrics.update({name: value / pairs for name, value in total.items()})
        # TRL's names of the same means (chosen = real, rejected = generated).
        metrics["rewards/margins"] = metrics["rewards/margin"]
        metrics["logps/chosen"] = metrics[f"logps/{REAL}"]
        metrics["logps/rejected"] = metrics[f"logps/{GENERATED}"]
        if self._reference_gap is not None:
            metrics["gap/reference"] = self._reference_gap
        if mode == "train":
            self._tokens_since_log += tokens
            self._train_tokens += int(tokens)
            self._step_metrics[mode]["num_tokens"] = [self._train_tokens]
        for name, value in metrics.items():
            self._step_metrics[mode][name].append(value)
        if mode == "train" and self.alpha_schedule is not None:
            self.alpha_schedule.observe(
                Measurement(
                    variational_gap=metrics.get("objective/variational_estimate"),
                    margin_gap=metrics["rewards/margins"],
                )
            )

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    # ----------------------------------------------------------------------------------
    # Logging, saving, resuming
    # ----------------------------------------------------------------------------------

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        prefix = "" if mode == "train" else "eval_"
        recorded = self._step_metrics[mode]
        logs.update({f"{prefix}{name}": sum(v) / len(v) for name, v in recorded.items() if v})
        recorded.clear()
        if "loss" in logs and self.model.training:
            now = time.perf_counter()
            logs["tokens_per_second"] = self._tokens_since_log / max(
                now - self._last_log_time, 1e-9
            )
            self._tokens_since_log, self._last_log_time = 0.0, now
        if "train_loss" in logs and getattr(self, "_resumed_history", None):
            logs["train_loss"] = self._whole_run_train_loss(logs["train_loss"])
        super().log(logs, start_time)

    def _whole_run_train_loss(self, since_resume: float) -> float:
        """transformers' ``train_loss`` of a resumed run covers the steps since the resume:
        add the checkpoint's logged steps back (each logged loss is the mean over its
        logging interval), so a resumed run reports what an uninterrupted one does."""
        resumed, step, before = self._resumed_history[-1]["step"], 0, 0.0
        for row in self._resumed_history:
            before += row["loss"] * (row["step"] - step)
            step = row["step"]
        total_steps = self.state.global_step
        return (before + since_resume * (total_steps - resumed)) / max(total_steps, 1)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        if not self._parameters_are_finite():
            raise FloatingPointError(
                f"refusing to save a model with non-finite parameters (after step {self.state.global_step})"
            )
        super().save_model(output_dir, _internal_call)

    def _parameters_are_finite(self) -> bool:
        """Whether every parameter is finite, on every rank (each checks its own shards)."""
        flags = []
        for parameter in self.model.parameters():
            local = getattr(parameter, "ds_tensor", None)  # DeepSpeed ZeRO-3 shard
            if local is None:
                local = (
                    parameter.to_local() if hasattr(parameter, "to_local") else parameter
                )  # DTensor
            if local.numel():
                flags.append(torch.isfinite(local.detach()).all())
        device = flags[0].device if flags else self.accelerator.device
        finite = (
            torch.stack(flags).all().to(torch.float32) if flags else torch.ones((), device=device)
        )
        if self.accelerator.num_processes > 1:
            finite = self.accelerator.gather(finite.reshape(1)).min()
        return bool(finite > 0)

    def _start_training(self, state: TrainerState) -> None:
        """At the start of training (fresh, or resumed from a checkpoint: ``state`` is then
        the checkpoint's): a resumed run reports whole-run ``train_loss`` and ``num_tokens``."""
        resumed = state.global_step > 0
        self._resumed_history = (
            [row for row in state.log_history if "loss" in row] if resumed else []
        )
        self._train_tokens = int(
            max((row.get("num_tokens", 0) for row in self._resumed_history), default=0)
        )
        self._tokens_since_log, self._last_log_time = 0.0, time.perf_counter()
