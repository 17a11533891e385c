"""Offline planning of a self-play run (``iris plan``): size, memory per GPU, tokens, steps.

This module owns the arithmetic a cluster user does before launching a paper-scale run,
without loading or downloading any weights: the model's parameter count (its architecture
built on the meta device from its config), the per-GPU memory of the model states for the
accelerate engine (DDP or one GPU, DeepSpeed ZeRO-2/3 through DeepSpeed's own estimators,
FSDP) and the configured optimiser, an activation estimate, the tokens and optimisation
steps of every iteration, and whether the whole fits the GPUs. The formulas are pure
functions of numbers, each documented where it is defined; thin adapters read the run
config (:class:`iris.config.SelfPlayConfig`, the trainer config of every iteration built
exactly as the train stage builds it), the accelerate config (accelerate's own loader)
and the architecture (``transformers.AutoConfig``, local files only). Every number is an
estimate or an upper bound, and the table says which.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

GIB = 2**30
DEFAULT_GPU_MEMORY_GIB = 80.0
# The paper's global batch: 8 GPUs × 8 per device × 1 accumulation (docs/paper-setup.md).
PAPER_GLOBAL_BATCH = 64
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
COMPUTE_BYTES = 2  # bf16 mixed precision: activations and gathered weights are bf16
DEEPSPEED_BUFFER_FACTOR = 1.5  # DeepSpeed's default additional_buffer_factor (host memory only)

# Optimiser states per parameter of the optimisers whose state is a fixed number of
# parameter-sized tensors (torch.optim keeps each as ``zeros_like(param)``); the ZeRO and
# FSDP master copies make them fp32. RMSprop and SGD as the Trainer builds them: RMSprop
# keeps ``square_avg`` (+ ``momentum_buffer`` with momentum, + ``grad_avg`` if centered),
# SGD with momentum 0 keeps nothing (+ ``momentum_buffer`` with momentum), Adagrad ``sum``.
OPTIMIZER_STATES = {
    "adamw_torch": 2,
    "adamw_torch_fused": 2,
    "adamw_torch_xla": 2,
    "adamw_torch_npu_fused": 2,
    "paged_adamw_32bit": 2,
    "adagrad": 1,
    "rmsprop": 1,
    "sgd": 0,
}

# TRL 1.16's fused LM head (trl/kernels/chunked_logprob.py, ChunkedLogProbFunction, called
# from trl.trainer.utils.add_fused_lm_head): the logits are computed in
# [TOKEN_CHUNK_SIZE, _CHUNKED_LOGPROB_CHUNK_SIZE] tiles, never whole.
FUSED_HEAD_TOKENS = 4096
FUSED_HEAD_VOCAB = 32768

# Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
# Models", eq. (1): one transformer layer stores s·b·h·(34 + 5·a·s/h) bytes of activations
# (16-bit, with dropout masks); flash/SDPA attention does not store the 5·a·s/h scores.
LAYER_ACTIVATION_BYTES_PER_SBH = 34


class PlanError(ValueError):
    """An input the planner cannot use; the message is one line saying what to pass."""


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / GIB:.2f}"


def _first_line(err: Exception) -> str:
    """A wrapped library error, shortened to one line for :class:`PlanError`."""
    return str(err).strip().splitlines()[0]


def _plural(n: int | float, word: str) -> str:
    return f"{n:g} {word}{'' if n == 1 else 's'}"


def _not_cpu_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Setting accelerator to CPU")


def _deepspeed_estimator(stage: int):
    """DeepSpeed's own model-states estimator of ZeRO stage 2 or 3.

    Imported without DeepSpeed's stdout notice that it found no GPU (planning runs on
    login nodes without one).
    """
    logger = logging.getLogger("DeepSpeed")
    logger.addFilter(_not_cpu_notice)
    try:
        if stage == 2:
            from deepspeed.runtime.zero.stage_1_and_2 import (
                estimate_zero2_model_states_mem_needs as estimator,
            )
        else:
            from deepspeed.runtime.zero.stage3 import (
                estimate_zero3_model_states_mem_needs as estimator,
            )
    except ImportError as err:
        raise PlanError(
            "ZeRO plans call DeepSpeed's estimators: pip install deepspeed (or -e '.[deepspeed]')"
        ) from err
    finally:
        logger.removeFilter(_not_cpu_notice)
    return estimator


# --------------------------------------------------------------------------------------
# The arithmetic (pure functions of numbers)
# --------------------------------------------------------------------------------------


def optimizer_states(optim: str, optim_args: str | None = None) -> int:
    """Parameter-sized optimiser state tensors of ``training.optim`` (``optim_args`` as the Trainer parses them).

    >>> optimizer_states("adamw_torch"), optimizer_states("rmsprop"), optimizer_states("sgd")
    (2, 1, 0)
    >>> optimizer_states("rmsprop", "momentum=0.9,centered=True")
    3
    """
    if optim not in OPTIMIZER_STATES:
        raise PlanError(
            f"training.optim {optim!r}: the planner knows {', '.join(OPTIMIZER_STATES)} "
            "(factored, 8-bit and layer-wise optimisers keep other state sizes)"
        )
    options = dict(
        pair.split("=", 1) for pair in (optim_args or "").replace(" ", "").split(",") if pair
    )
    states = OPTIMIZER_STATES[optim]
    if optim in ("rmsprop", "sgd") and float(options.get("momentum", 0)) != 0:
        states += 1
    if optim == "rmsprop" and options.get("centered", "false").lower() in ("true", "1", "yes"):
        states += 1
    return states


def adam_correction(total_params: int, num_gpus: int, states: int) -> int:
    """Bytes per GPU to add to DeepSpeed's Adam estimate for an optimiser with ``states`` states.

    DeepSpeed's estimators count two fp32 states (Adam's momentum and variance, 8 bytes
    per parameter) sharded over the N GPUs; ``states`` states need
    ``(states − 2)·4·P/N`` bytes more (negative: fewer), e.g. −4·P/N for RMSProp.

    >>> adam_correction(8_000, 8, 1), adam_correction(8_000, 8, 0)
    (-4000, -8000)
    """
    return (states - 2) * 4 * total_params // num_gpus


def zero2_model_states(
    total_params: int,
    *,
    gpus_per_node: int,
    num_nodes: int,
    states: int,
    offload_optimizer: bool,
) -> tuple[int, int]:
    """(bytes per GPU, host bytes per node) of the model states under DeepSpeed ZeRO-2.

    DeepSpeed's ``estimate_zero2_model_states_mem_needs`` (deepspeed/runtime/zero/
    stage_1_and_2.py): per GPU ``2·P + 18·P/N`` without offload — bf16 weights replicated,
    and sharded over the N GPUs 2 (bf16 gradients) + 4 (fp32 gradients) + 4 (fp32 master
    weights) + 8 (Adam's two fp32 states) bytes per parameter — and ``2·P`` with the
    optimiser offloaded; host memory per node as DeepSpeed estimates it (with its buffer
    factor 1.5). Corrected here by :func:`adam_correction` for the optimiser's number of
    states where the states are on the GPU; the host estimate stays DeepSpeed's (Adam, an
    upper bound for fewer states).
    """
    host, gpu = _deepspeed_estimator(2)(
        total_params, gpus_per_node, num_nodes, offload_optimizer, DEEPSPEED_BUFFER_FACTOR
    )
    if not offload_optimizer:
        gpu += adam_correction(total_params, gpus_per_node * num_nodes, states)
    return gpu, host


def zero3_model_states(
    total_params: int,
    largest_layer_params: int,
    *,
    gpus_per_node: int,
    num_nodes: int,
    states: int,
    offload_optimizer: bool,
    offload_params: bool,
    zero_init: bool,
) -> tuple[int, int]:
    """(bytes per GPU, host bytes per node) of the model states under DeepSpeed ZeRO-3.

    DeepSpeed's ``estimate_zero3_model_states_mem_needs`` (deepspeed/runtime/zero/
    stage3.py): per GPU ``4·L + 18·P/N`` without offload (L: the largest layer's
    parameters, gathered; 18 bytes per parameter as for ZeRO-2, all sharded), ``4·L +
    2·P/N`` with the optimiser offloaded, ``4·L`` with parameters offloaded too; host
    memory per node as DeepSpeed estimates it. Corrected by :func:`adam_correction` for the
    optimiser's number of states where the states are on the GPU.
    """
    host, gpu, _ = _deepspeed_estimator(3)(
        total_params,
        largest_layer_params,
        gpus_per_node,
        num_nodes,
        offload_optimizer,
        offload_params,
        zero_init,
        DEEPSPEED_BUFFER_FACTOR,
    )
    if not offload_optimizer:
        gpu += adam_correction(total_params, gpus_per_node * num_nodes, states)
    return gpu, host


def fsdp_model_states(
    total_params: int,
    gathered_params: int,
    *,
    gpus_per_node: int,
    num_nodes: int,
    states: int,
    offload_params: bool,
) -> tuple[int, int]:
    """(bytes per GPU, host bytes per node) of the model states under FSDP with bf16 mixed precision.

    accelerate upcasts the trainable weights to fp32 before sharding
    (``fsdp2_prepare_model``), so each GPU holds ``(4 + 4 + 4·k)·P/N`` bytes — fp32 master
    weights, fp32 gradients and k fp32 optimiser states, sharded over the N GPUs — plus
    the transient bf16 all-gather ``2·G`` of the parameters in use, G = ``gathered_params``
    (see :func:`memory_per_gpu` for G). With ``fsdp_offload_params`` the sharded states live in host
    memory (``gpus_per_node`` shards per node) and only the all-gather stays on the GPU.

    >>> fsdp_model_states(8_000, 100, gpus_per_node=8, num_nodes=1, states=1, offload_params=False)
    (12200, 0)
    """
    sharded = (4 + 4 + 4 * states) * total_params // (gpus_per_node * num_nodes)
    gathered = COMPUTE_BYTES * gathered_params
    if offload_params:
        return gathered, sharded * gpus_per_node
    return sharded + gathered, 0


def ddp_model_states(
    total_params: int, *, param_bytes: int, states: int, gradient_buckets: bool
) -> int:
    """Bytes per GPU of the model states without sharding (one GPU, or DDP).

    Every GPU holds the weights in the dtype they were loaded in (``model.train_dtype``,
    else ``model.dtype``; bf16 autocast computes in bf16 but keeps them), gradients of the
    same dtype and ``states`` optimiser states, which torch.optim allocates like the
    parameter: ``(1 + 1 + k)·b·P`` (b = 4 for fp32 weights: ``(8 + 4k)·P``). DDP adds its
    gradient buckets, a second copy of the gradients (``b·P``; accelerate's
    ``DistributedDataParallelKwargs.gradient_as_bucket_view`` is False by default).

    >>> ddp_model_states(1_000, param_bytes=4, states=1, gradient_buckets=False)
    12000
    >>> ddp_model_states(1_000, param_bytes=4, states=1, gradient_buckets=True)
    16000
    """
    copies = 1 + 1 + states + (1 if gradient_buckets else 0)
    return copies * param_bytes * total_params


def activation_bytes(
    *, sequences: int, max_length: int, hidden_size: int, num_layers: int, checkpointing: bool
) -> int:
    """Activation memory of one micro-batch in bf16 (an estimate; s·b·h = max_length × sequences × hidden).

    ``sequences`` = micro-batch rows × responses per row (the responses of a row go
    through the model as one batch). With activation checkpointing each layer keeps its
    input, ``2·s·b·h`` bytes per layer, and one layer's activations exist while it is
    recomputed for the backward, ``34·s·b·h`` (Korthikanti et al. 2022, eq. 1, without
    the attention-score term that flash/SDPA attention does not store; derived for a GPT
    block with a 4h MLP and dropout, so an estimate for SwiGLU blocks); without
    checkpointing every layer keeps ``34·s·b·h``. Sequences are counted at ``max_length``
    (padding to the longest in the batch makes shorter batches cheaper).

    >>> activation_bytes(sequences=2, max_length=10, hidden_size=4, num_layers=3, checkpointing=True)
    3200
    >>> activation_bytes(sequences=2, max_length=10, hidden_size=4, num_layers=3, checkpointing=False)
    8160
    """
    sbh = sequences * max_length * hidden_size
    if checkpointing:
        return COMPUTE_BYTES * sbh * num_layers + LAYER_ACTIVATION_BYTES_PER_SBH * sbh
    return LAYER_ACTIVATION_BYTES_PER_SBH * sbh * num_layers


def lm_head_bytes(*, tokens: int, vocab_size: int, hidden_size: int) -> int:
    """Transient memory of TRL's fused LM head for ``tokens`` scored tokens (no full logits).

    ``ChunkedLogProbFunction`` (trl/kernels/chunked_logprob.py, TRL 1.16) projects in one
    reused bf16 tile of ``min(tokens, 4096) × min(V, 32768)`` logits, and its backward
    accumulates the gradients of the hidden states (``tokens·h``) and of the LM-head weight
    (``V·h``) in fp32. The full ``tokens × V`` logits are never materialised.

    >>> lm_head_bytes(tokens=10, vocab_size=100, hidden_size=4)
    3760
    """
    tile = COMPUTE_BYTES * min(tokens, FUSED_HEAD_TOKENS) * min(vocab_size, FUSED_HEAD_VOCAB)
    return tile + 4 * tokens * hidden_size + 4 * vocab_size * hidden_size


@dataclass(frozen=True)
class IterationCounts:
    """Rows, tokens and steps of one iteration (or of several with equal counts)."""

    iterations: tuple[int, ...]
    rows: int
    generated_responses: int
    generated_tokens_max: int
    training_sequences: int
    training_tokens_max: int
    steps: int


def iteration_counts(
    iteration: int,
    *,
    n_train: int,
    synthetic_from: str,
    responses_per_row: int,
    generates: bool,
    proto: bool,
    max_new_tokens: int,
    epochs: float,
    max_length: int,
    global_batch: int,
) -> IterationCounts:
    """What iteration ``iteration`` generates and trains on (token counts are upper bounds).

    - rows = n_train, doubled from iteration 1 with ``synthetic_from:
      previous_and_current`` (the synthetic responses of t − 1 and t);
    - generated responses = n_train (one per prompt) when the loss generates, plus
      n_train proto-synthetic responses from θ0 at iteration 0 (T-SPIN); tokens ≤
      responses × ``max_new_tokens``;
    - training sequences = ceil(rows × epochs) × responses per row (2: annotated and
      synthetic; 3 with T-SPIN's proto; 1 for SFT), tokens ≤ sequences × ``max_length``;
    - steps = ceil(ceil(rows / global batch) × epochs), as the Trainer counts them
      (ceil(ceil(rows / (per-device × GPUs)) / accumulation) = ceil(rows / global batch)).

    >>> c = iteration_counts(1, n_train=100, synthetic_from="previous_and_current",
    ...     responses_per_row=2, generates=True, proto=False, max_new_tokens=8, epochs=2,
    ...     max_length=32, global_batch=64)
    >>> c.rows, c.generated_tokens_max, c.training_sequences, c.steps
    (200, 800, 800, 8)
    """
    rows = n_train
    if synthetic_from == "previous_and_current" and iteration > 0:
        rows = 2 * n_train
    generated = n_train if generates else 0
    if proto and iteration == 0:
        generated += n_train
    sequences = math.ceil(rows * epochs) * responses_per_row
    return IterationCounts(
        iterations=(iteration,),
        rows=rows,
        generated_responses=generated,
        generated_tokens_max=generated * max_new_tokens,
        training_sequences=sequences,
        training_tokens_max=sequences * max_length,
        steps=math.ceil(math.ceil(rows / global_batch) * epochs),
    )


# --------------------------------------------------------------------------------------
# What the adapters read
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSize:
    """Sizes of an architecture, counted on the meta device."""

    architecture: str
    source: str
    parameters: int  # unique parameters: tied embeddings counted once
    tied_embeddings: bool
    largest_layer: int  # most parameters held directly by one module (DeepSpeed's definition)
    decoder_layer: int  # parameters of the largest decoder layer (the FSDP wrap unit)
    outside_layers: int  # parameters outside the decoder layers (embeddings, final norm, head)
    hidden_size: int
    num_layers: int
    vocab_size: int
    checkpoint_dtype: str | None


@dataclass(frozen=True)
class Engine:
    """The distributed engine of an accelerate config."""

    kind: Literal["single", "ddp", "zero2", "zero3", "fsdp"]
    gpus_per_node: int
    num_nodes: int
    offload_optimizer: bool = False
    offload_params: bool = False
    zero_init: bool = False
    mixed_precision: str = "bf16"  # accelerate's setting; the estimates assume bf16

    @property
    def num_gpus(self) -> int:
        return self.gpus_per_node * self.num_nodes

    def describe(self) -> str:
        if self.kind == "single":
            return "one GPU, no distribution"
        name = {
            "ddp": "DDP",
            "zero2": "DeepSpeed ZeRO-2",
            "zero3": "DeepSpeed ZeRO-3",
            "fsdp": "FSDP (bf16 compute, fp32 master weights)",
        }[self.kind]
        parts = [
            name,
            f"{self.num_gpus} GPUs ({_plural(self.num_nodes, 'node')} × {self.gpus_per_node})",
        ]
        if self.offload_optimizer:
            parts.append("optimizer offloaded to CPU")
        if self.offload_params:
            parts.append("parameters offloaded to CPU")
        if self.zero_init:
            parts.append("zero_init")
        return ", ".join(parts)


@dataclass(frozen=True)
class TrainingSettings:
    """What the plan needs from one iteration's trainer config."""

    loss: str
    groups: tuple[str, ...]  # the responses of a row: real, generated[, proto]; SFT: real
    per_device_batch: int
    accumulation: int
    epochs: float
    max_length: int
    optim: str
    optimizer_states: int
    activation_checkpointing: bool
    reference_model: bool  # a reference model stays in memory (no precomputed reference)

    @property
    def responses_per_row(self) -> int:
        return len(self.groups)


@dataclass(frozen=True)
class Memory:
    """Estimated memory per GPU (bytes) and the verdict against the GPU's memory."""

    model_states: int
    model_states_note: str
    reference_model: int
    activations: int
    activations_note: str
    lm_head: int
    total: int
    gpu_memory: int
    fits: bool
    host_per_node: int
    host_note: str


@dataclass(frozen=True)
class Plan:
    """Everything ``iris plan`` reports (:func:`format_plan` prints it, :func:`plan_to_json` saves it)."""

    config: str
    model: str
    size: ModelSize
    engine: Engine
    training: TrainingSettings
    global_batch: int
    train_dtype: str
    counts: list[IterationCounts]
    memory: Memory
    warnings: list[str]


# --------------------------------------------------------------------------------------
# Adapters: transformers, accelerate, the run config
# --------------------------------------------------------------------------------------


def load_architecture(
    name_or_path: str,
    revision: str | None,
    model_config: str | os.PathLike | None,
    gguf_file: str | None = None,
):
    """The model's ``transformers`` config from local files only (no download).

    ``model_config`` (a config.json file or a directory) if given, else the run config's
    ``model.name_or_path`` at ``model.revision``: a local directory or a hub config already
    in the local cache.
    """
    from transformers import AutoConfig

    if model_config is not None:
        if not Path(model_config).exists():
            raise PlanError(f"--model-config {model_config} does not exist")
        source, revision = str(model_config), None
    else:
        source = name_or_path
    from iris.checkpoints import gguf_source

    gguf = gguf_source(source, gguf_file) if model_config is None else None
    try:
        if gguf is not None:  # read from the GGUF file's metadata, nothing de-quantised
            return AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        return AutoConfig.from_pretrained(source, revision=revision, local_files_only=True)
    except (OSError, ValueError) as err:
        if model_config is not None:
            raise PlanError(
                f"--model-config {model_config}: not a model config ({_first_line(err)})"
            ) from err
        raise PlanError(
            f"no config of {name_or_path!r} is available offline: pass --model-config with its "
            "config.json (experiments/configs/architectures/ has the paper models)"
        ) from err


def model_size(config, source: str) -> ModelSize:
    """Parameter counts of the architecture of ``config``, built on the meta device (no memory)."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    try:
        with init_empty_weights(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForCausalLM.from_config(config)
    except ValueError as err:  # not a causal LM
        raise PlanError(f"{source}: {_first_line(err)}") from err
    model.tie_weights()
    parameters = sum(p.numel() for p in model.parameters())  # a shared parameter once
    largest_layer = max(
        sum(p.numel() for p in module.parameters(recurse=False)) for module in model.modules()
    )
    block_classes = set(model._no_split_modules or ())
    blocks = [
        sum(p.numel() for p in module.parameters())
        for module in model.modules()
        if type(module).__name__ in block_classes
    ]
    if not blocks:
        raise PlanError(f"{source}: {type(model).__name__} names no decoder-layer class")
    text = config.get_text_config()
    dtype = getattr(config, "dtype", None)
    return ModelSize(
        architecture=type(model).__name__,
        source=source,
        parameters=parameters,
        tied_embeddings=model.get_output_embeddings().weight is model.get_input_embeddings().weight,
        largest_layer=largest_layer,
        decoder_layer=max(blocks),
        outside_layers=parameters - sum(blocks),
        hidden_size=text.hidden_size,
        num_layers=text.num_hidden_layers,
        vocab_size=text.vocab_size,
        checkpoint_dtype=None if dtype is None else str(dtype).removeprefix("torch."),
    )


def read_engine(path: str | os.PathLike, gpus: int | None = None) -> Engine:
    """The engine of an accelerate config file (accelerate's own loader); ``gpus`` overrides its process count."""
    import yaml
    from accelerate.commands.config.config_args import load_config_from_file

    if not Path(path).is_file():
        raise PlanError(f"--accelerate-config {path} does not exist")
    try:
        config = load_config_from_file(str(path))
    except (AttributeError, TypeError, ValueError, yaml.YAMLError) as err:
        raise PlanError(
            f"--accelerate-config {path}: not an accelerate config ({_first_line(err)})"
        ) from err
    kind = str(config.distributed_type).rsplit(".", 1)[-1]
    nodes = config.num_machines or 1
    total = gpus if gpus is not None else config.num_processes
    if total is None or total < 1 or total % nodes:
        raise PlanError(
            f"{total} GPUs cannot be split over the {nodes} machines of {path} (pass --gpus)"
        )
    per_node = total // nodes
    precision = str(config.mixed_precision)
    if kind == "NO":
        if total != 1:
            raise PlanError(
                f"{path} runs one process (distributed_type NO); for {total} GPUs use multi_gpu.yaml"
            )
        return Engine("single", 1, 1, mixed_precision=precision)
    if kind == "MULTI_GPU":
        return Engine("ddp", per_node, nodes, mixed_precision=precision)
    if kind == "DEEPSPEED":
        ds = config.deepspeed_config or {}
        if "deepspeed_config_file" in ds:
            raise PlanError(
                f"{path}: the planner reads zero_stage and offload settings from an inline "
                "deepspeed_config, not from deepspeed_config_file"
            )
        stage = int(ds.get("zero_stage", 0))
        if stage not in (2, 3):
            raise PlanError(
                f"{path}: DeepSpeed zero_stage {stage}; the planner knows stages 2 and 3"
            )
        return Engine(
            "zero2" if stage == 2 else "zero3",
            per_node,
            nodes,
            offload_optimizer=ds.get("offload_optimizer_device", "none") != "none",
            offload_params=stage == 3 and ds.get("offload_param_device", "none") != "none",
            zero_init=stage == 3 and bool(ds.get("zero3_init_flag", False)),
            mixed_precision=precision,
        )
    if kind == "FSDP":
        fsdp = config.fsdp_config or {}
        offload = bool(fsdp.get("fsdp_offload_params"))
        return Engine("fsdp", per_node, nodes, offload_params=offload, mixed_precision=precision)
    raise PlanError(
        f"{path}: distributed_type {kind}; the planner knows NO, MULTI_GPU, DEEPSPEED, FSDP"
    )


def training_settings(config, iteration: int) -> TrainingSettings:
    """Iteration ``iteration``'s trainer config, built as the train stage builds it, reduced to what the plan needs."""
    from iris.config import ConfigError
    from iris.selfplay import trainer_args
    from iris.sft import SFT_LOSS
    from iris.trainer import loss_spec

    loss = str(config.training_for_iteration(iteration).get("loss", "iris"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            args = trainer_args(config, iteration, "plan")
    except ConfigError as err:
        raise PlanError(_first_line(err)) from err
    if args.max_steps > 0:
        raise PlanError(
            "training.max_steps replaces the epochs; the planner counts epochs: unset it"
        )
    if loss == SFT_LOSS:
        groups, reference = ("real",), False
    else:
        spec = loss_spec(loss)
        groups = spec.groups
        uses_reference = any(name.endswith("_logratios") for name in spec.tensor_names)
        reference = uses_reference and not args.precompute_ref_log_probs
    optim = str(getattr(args.optim, "value", args.optim))
    return TrainingSettings(
        loss=loss,
        groups=groups,
        per_device_batch=args.per_device_train_batch_size,
        accumulation=args.gradient_accumulation_steps,
        epochs=float(args.num_train_epochs),
        max_length=args.max_length,
        optim=optim,
        optimizer_states=optimizer_states(optim, args.optim_args),
        activation_checkpointing=bool(args.activation_checkpointing),
        reference_model=reference,
    )


# --------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------


def memory_per_gpu(
    size: ModelSize,
    engine: Engine,
    training: TrainingSettings,
    *,
    train_dtype: str,
    gpu_memory: int,
) -> Memory:
    """Model states (by engine) + reference model + activations + LM head, against ``gpu_memory`` bytes.

    The FSDP all-gather G is the root unit (the parameters outside the decoder layers:
    FSDP2 keeps the root gathered through forward and backward) plus one decoder layer
    (the wrap unit of ``TRANSFORMER_BASED_WRAP``); the prefetch of the next layer is not
    counted. A reference model (only without ``precompute_ref_log_probs``) is held in the
    training dtype, sharded under ZeRO-3 and FSDP (TRL prepares it like the policy). Not counted: the CUDA context, NCCL
    buffers and allocator fragmentation (leave a few GiB of headroom), and the no-grad
    reference precompute before training (smaller than a training step).
    """
    p, n, k = size.parameters, engine.num_gpus, training.optimizer_states
    host, host_note = 0, ""
    if engine.kind in ("zero2", "zero3"):
        if engine.kind == "zero2":
            states, host = zero2_model_states(
                p,
                gpus_per_node=engine.gpus_per_node,
                num_nodes=engine.num_nodes,
                states=k,
                offload_optimizer=engine.offload_optimizer,
            )
        else:
            states, host = zero3_model_states(
                p,
                size.largest_layer,
                gpus_per_node=engine.gpus_per_node,
                num_nodes=engine.num_nodes,
                states=k,
                offload_optimizer=engine.offload_optimizer,
                offload_params=engine.offload_params,
                zero_init=engine.zero_init,
            )
        correction = 0 if engine.offload_optimizer else adam_correction(p, n, k)
        note = f"DeepSpeed's ZeRO-{engine.kind[-1]} estimate {_gib(states - correction)} (Adam)"
        if correction:
            sign = "−" if correction < 0 else "+"
            note += f" {sign} {_gib(abs(correction))} for {_plural(k, 'optimizer state')}, not 2"
        host_note = "DeepSpeed's estimate"
    elif engine.kind == "fsdp":
        states, host = fsdp_model_states(
            p,
            size.outside_layers + size.decoder_layer,
            gpus_per_node=engine.gpus_per_node,
            num_nodes=engine.num_nodes,
            states=k,
            offload_params=engine.offload_params,
        )
        note = f"(4 + 4 + 4·{k})·P/N fp32 + bf16 all-gather of the root and one layer"
        host_note = "the offloaded FSDP shards"
    else:
        b = DTYPE_BYTES[train_dtype]
        buckets = engine.kind == "ddp" and n > 1
        states = ddp_model_states(p, param_bytes=b, states=k, gradient_buckets=buckets)
        note = f"{train_dtype} weights, gradients, {_plural(k, 'optimizer state')}"
        note += " and DDP's gradient buckets" if buckets else ""
        note += f": {(3 + k if buckets else 2 + k) * b} B/param"
    reference = 0
    if training.reference_model:
        reference = DTYPE_BYTES[train_dtype] * p
        if engine.kind in ("zero3", "fsdp"):
            reference //= n
    sequences = training.per_device_batch * training.responses_per_row
    activations = activation_bytes(
        sequences=sequences,
        max_length=training.max_length,
        hidden_size=size.hidden_size,
        num_layers=size.num_layers,
        checkpointing=training.activation_checkpointing,
    )
    shape = f"{training.per_device_batch} rows × {training.responses_per_row} × {training.max_length} tokens"
    if training.activation_checkpointing:
        inputs = (
            COMPUTE_BYTES * sequences * training.max_length * size.hidden_size * size.num_layers
        )
        activations_note = (
            f"checkpointed layer inputs {_gib(inputs)} + one layer recomputed "
            f"{_gib(activations - inputs)} ({shape})"
        )
    else:
        activations_note = f"34·s·b·h per layer, no checkpointing ({shape})"
    head = lm_head_bytes(
        tokens=sequences * training.max_length,
        vocab_size=size.vocab_size,
        hidden_size=size.hidden_size,
    )
    total = states + reference + activations + head
    return Memory(
        model_states=states,
        model_states_note=note,
        reference_model=reference,
        activations=activations,
        activations_note=activations_note,
        lm_head=head,
        total=total,
        gpu_memory=gpu_memory,
        fits=total <= gpu_memory,
        host_per_node=host,
        host_note=host_note,
    )


def _merge_equal(counts: Sequence[IterationCounts]) -> list[IterationCounts]:
    """Consecutive iterations with equal counts as one entry."""
    merged: list[IterationCounts] = []
    for c in counts:
        if merged and dataclasses.replace(merged[-1], iterations=c.iterations) == c:
            merged[-1] = dataclasses.replace(
                merged[-1], iterations=merged[-1].iterations + c.iterations
            )
        else:
            merged.append(c)
    return merged


def plan(
    config_path: str | os.PathLike,
    overrides: Sequence[str] = (),
    *,
    accelerate_config: str | os.PathLike,
    gpus: int | None = None,
    gpu_memory_gib: float = DEFAULT_GPU_MEMORY_GIB,
    model_config: str | os.PathLike | None = None,
) -> Plan:
    """Plan the run of ``config_path`` (with ``--section.key value`` ``overrides``) on an accelerate engine.

    Memory is that of the iteration whose settings need the most (the settings rarely
    change between iterations); counts are per iteration, equal ones merged.
    """
    from iris.config import ConfigError, SelfPlayConfig, load_config

    try:
        config = load_config(SelfPlayConfig, config_path, overrides)
    except (ConfigError, FileNotFoundError) as err:
        raise PlanError(_first_line(err)) from err
    if config.data.n_train is None:
        raise PlanError(
            "data.n_train is null (all rows): pass --data.n_train with the dataset's size"
        )
    if gpus is not None and gpus < 1:
        raise PlanError(f"--gpus must be >= 1, got {gpus}")
    engine = read_engine(accelerate_config, gpus)
    architecture = load_architecture(
        config.model.name_or_path, config.model.revision, model_config, config.model.gguf_file
    )
    size = model_size(architecture, str(model_config or config.model.name_or_path))
    train_dtype = config.model.train_dtype or config.model.dtype
    if train_dtype == "auto":
        train_dtype = size.checkpoint_dtype or "float32"
    if train_dtype not in DTYPE_BYTES:
        raise PlanError(
            f"training dtype {train_dtype!r}: the planner knows {', '.join(DTYPE_BYTES)}"
        )
    settings = [training_settings(config, t) for t in range(config.iterations)]
    gpu_memory = int(gpu_memory_gib * GIB)
    memories = [
        memory_per_gpu(size, engine, s, train_dtype=train_dtype, gpu_memory=gpu_memory)
        for s in settings
    ]
    worst = max(range(len(settings)), key=lambda t: memories[t].total)
    training = settings[worst]
    counts = [
        iteration_counts(
            t,
            n_train=config.data.n_train,
            synthetic_from=config.synthetic_from,
            responses_per_row=s.responses_per_row,
            generates="generated" in s.groups,
            proto="proto" in s.groups,
            max_new_tokens=config.generation.max_new_tokens,
            epochs=s.epochs,
            max_length=s.max_length,
            global_batch=s.per_device_batch * s.accumulation * engine.num_gpus,
        )
        for t, s in enumerate(settings)
    ]
    global_batch = training.per_device_batch * training.accumulation * engine.num_gpus
    notes = []
    if engine.mixed_precision != "bf16":
        notes.append(
            f"mixed_precision {engine.mixed_precision!r} in {accelerate_config}: the estimates "
            "assume bf16 (activations, gathered weights)"
        )
    if global_batch != PAPER_GLOBAL_BATCH:
        notes.append(
            f"global batch {global_batch} differs from the paper's {PAPER_GLOBAL_BATCH} "
            "(8 GPUs × 8 per device × 1 accumulation): change per_device_train_batch_size or "
            "gradient_accumulation_steps"
        )
    if engine.kind in ("single", "ddp") and train_dtype != "float32":
        notes.append(
            f"without ZeRO/FSDP the {train_dtype} weights train as loaded (no fp32 master "
            "copy) and lose small updates such as lr 5e-7: add --model.train_dtype float32"
        )
    if training.reference_model:
        notes.append("precompute_ref_log_probs is off: a reference model is held during training")
    return Plan(
        config=str(config_path),
        model=config.model.name_or_path
        + (f" @ {config.model.revision}" if config.model.revision else ""),
        size=size,
        engine=engine,
        training=training,
        global_batch=global_batch,
        train_dtype=train_dtype,
        counts=_merge_equal(counts),
        memory=memories[worst],
        warnings=notes,
    )


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def _iterations_label(iterations: tuple[int, ...]) -> str:
    if len(iterations) == 1:
        return f"iteration {iterations[0]}"
    return f"iterations {iterations[0]}-{iterations[-1]}"


def format_plan(plan: Plan) -> str:
    """The plan as a readable table (GiB = 2^30 bytes)."""
    size, engine, training, memory = plan.size, plan.engine, plan.training, plan.memory
    tied = "tied embeddings" if size.tied_embeddings else "untied embeddings"
    states = training.optimizer_states
    lines = [
        f"iris plan: {plan.config} (estimates; no weights loaded)",
        "",
        f"model          {plan.model}",
        f"architecture   {size.architecture} from {size.source}",
        f"parameters     {size.parameters / 1e9:.3f}B ({size.parameters:,}; {tied}); "
        f"largest layer {size.largest_layer / 1e6:.1f}M, decoder layer {size.decoder_layer / 1e6:.1f}M",
        f"engine         {engine.describe()}",
        f"training       loss {training.loss}, {_plural(training.responses_per_row, 'response')} "
        f"per row, max_length {training.max_length}, {_plural(training.epochs, 'epoch')} per "
        f"iteration, activation checkpointing {'on' if training.activation_checkpointing else 'off'}",
        f"optimizer      {training.optim}: {_plural(states, 'state')} per parameter",
        f"global batch   {plan.global_batch} = {training.per_device_batch} per device × "
        f"{training.accumulation} accumulation × {_plural(engine.num_gpus, 'GPU')}",
        "",
    ]
    rows = [
        ("rows", "rows"),
        ("generated responses", "generated_responses"),
        ("generated tokens ≤", "generated_tokens_max"),
        ("training sequences", "training_sequences"),
        ("training tokens ≤", "training_tokens_max"),
        ("optimisation steps", "steps"),
    ]
    header = ["per iteration", *(_iterations_label(c.iterations) for c in plan.counts)]
    table = [header] + [
        [label] + [f"{getattr(c, key):,}" for c in plan.counts] for label, key in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for label, *cells in table:
        right = [cell.rjust(width) for cell, width in zip(cells, widths[1:], strict=True)]
        lines.append("  ".join([label.ljust(widths[0]), *right]))
    verdict = "fits" if memory.fits else "does not fit"
    headroom = (memory.gpu_memory - memory.total) / GIB
    memory_rows = [
        ("model states", memory.model_states, memory.model_states_note),
        ("activations", memory.activations, memory.activations_note),
        (
            "LM head",
            memory.lm_head,
            "TRL's fused head: one bf16 logits tile + fp32 gradient accumulators",
        ),
    ]
    if memory.reference_model:
        memory_rows.insert(
            1, ("reference model", memory.reference_model, "no precomputed reference")
        )
    lines += ["", "memory per GPU (GiB)"]
    lines += [f"  {label:<16}{value / GIB:>7.2f}  {note}" for label, value, note in memory_rows]
    lines.append(
        f"  {'total':<16}{memory.total / GIB:>7.2f}  {verdict} in {memory.gpu_memory / GIB:g} GiB "
        f"(headroom {headroom:.2f} GiB, before CUDA context and fragmentation)"
    )
    if memory.host_per_node:
        lines.append(
            f"host memory per node: {memory.host_per_node / GIB:.1f} GiB ({memory.host_note})"
        )
    lines += [f"warning: {note}" for note in plan.warnings]
    return "\n".join(lines)


def plan_to_json(plan: Plan) -> str:
    """The plan as JSON (bytes and counts as integers)."""
    data: dict[str, Any] = dataclasses.asdict(plan)
    data["engine"]["num_gpus"] = plan.engine.num_gpus
    return json.dumps(data, indent=2) + "\n"
