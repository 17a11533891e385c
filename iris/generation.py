"""Sampling synthetic responses: backends, seeding, truncation flags, resumable output files.

This module owns how the self-play loop turns formatted prompts into synthetic responses:

* :class:`GenerationBackend`, the interface of a backend —
  ``generate(prompts, params, seed, *, offset=0, progress=None) -> list[Generation]`` —
  with two implementations: :class:`HFBackend` (transformers ``generate``; the default;
  batched and left-padded) and :class:`VLLMBackend` (optional GPU extra, imported lazily).
  Both encode prompts with :func:`iris.data.encode_prompts`, the encoding the trainer uses,
  and only the sampling parameters given are applied (the checkpoint's own
  ``generation_config`` — top-k, repetition penalty … — is ignored), so the recorded
  :class:`SamplingParams` are the whole story.
* Seeding: HF batches are seeded from ``(seed, global index of the batch's first prompt)``
  and vLLM requests from ``(seed, global prompt index)``, so output depends on the seed and
  batch size, not on where a resumed run restarted or how the work was sharded.
* Truncation: a response that hits ``max_new_tokens`` without an end-of-turn/EOS token is
  flagged ``truncated: true`` and counted; no end-of-turn token is invented for it.
* :func:`generate_to_file`: prompts are processed in shards, each shard file written
  atomically; a restart skips finished shards; the final JSONL and its ``.meta.json``
  (sampling params, backend, counts, fingerprint) are written atomically, and an existing
  output is never appended to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from iris.data import encode_prompts, turn_format
from iris.runs import atomic_write_json, atomic_write_jsonl, iter_jsonl, read_json, utc_now

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int], None]


class BackendUnavailableError(RuntimeError):
    """The requested generation backend cannot run here (e.g. vLLM without a GPU)."""


# --------------------------------------------------------------------------------------
# Parameters, results, seeds
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """Sampling settings, recorded with every generated file.

    ``temperature=0`` means greedy decoding; ``top_k=0`` and ``top_p=1`` switch those
    filters off (unlike transformers' implicit ``top_k=50``).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be positive, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Any) -> SamplingParams:
        """From an object with ``temperature``, ``top_p``, ``top_k``, ``max_new_tokens`` (e.g.
        :class:`iris.config.GenerationConfig`)."""
        return cls(
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=config.top_k,
            max_new_tokens=config.max_new_tokens,
        )


@dataclasses.dataclass(frozen=True)
class Generation:
    """One sampled response: decoded text (special tokens removed, stripped), whether it hit
    the token limit without ending its turn, and the number of generated tokens (including
    the end-of-turn token when there is one)."""

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
    """What :func:`generate_to_file` needs from a backend.

    ``prompts`` are formatted prompts (:func:`iris.data.format_prompt`); prompt ``i`` of a
    call has global index ``offset + i`` (seeds derive from it). ``progress(n)`` is called as
    prompts finish. ``batch_size`` is the backend's batching unit (None: no batching
    constraint); ``describe()`` returns what to record about the backend.
    """

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
    ids: list[int] = []

    def add(value: Any) -> None:
        if value is None:
            return
        if isinstance(value, int):
            if value not in ids:
                ids.append(value)
        else:
            for item in value:
                add(item)

    add(getattr(tokenizer, "eos_token_id", None))
    add(model_eos)
    end_token = turn_format(tokenizer).end_token
    if end_token is not None:
        end_id = tokenizer.convert_tokens_to_ids(end_token)
        if isinstance(end_id, int) and end_id != getattr(tokenizer, "unk_token_id", None):
            add(end_id)
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


# --------------------------------------------------------------------------------------
# transformers backend
# --------------------------------------------------------------------------------------

DTYPE_NAMES = ("float32", "bfloat16", "float16", "auto")


def resolve_dtype(name: str) -> Any:
    """``"bfloat16"`` → ``torch.bfloat16``; ``"auto"`` stays ``"auto"`` (the checkpoint's dtype)."""
    import torch

    if name == "auto":
        return "auto"
    if name not in DTYPE_NAMES:
        raise ValueError(f"unknown dtype {name!r}; use one of {DTYPE_NAMES}")
    return getattr(torch, name)


class HFBackend:
    """Batched, left-padded sampling with ``model.generate`` (transformers).

    Prompts are encoded with :func:`iris.data.encode_prompts` and left-padded by hand (the
    tokenizer's ``padding_side`` does not matter); the model is put in eval mode for the
    call and restored after. Each batch runs under its own RNG seed,
    ``derive_seed(seed, offset + first index of the batch)``, inside
    ``torch.random.fork_rng`` (the caller's RNG state is untouched).
    """

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
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.source = dict(source or {})
        self.stop_ids = stop_token_ids(
            tokenizer, getattr(model.generation_config, "eos_token_id", None)
        )
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = pad if pad is not None else self.stop_ids[0]

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
        """Load model and tokenizer (hub id or local directory) onto ``device`` (default: CUDA when present)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), revision=revision)
        model = AutoModelForCausalLM.from_pretrained(
            str(name_or_path), revision=revision, dtype=resolve_dtype(dtype)
        )
        model.to(device)
        source = {
            "name_or_path": str(name_or_path),
            "revision": revision,
            "dtype": dtype,
            "device": device,
        }
        return cls(model, tokenizer, batch_size=batch_size, source=source)

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

    def _generation_config(self, params: SamplingParams) -> Any:
        from transformers import GenerationConfig

        settings: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "eos_token_id": list(self.stop_ids),
            "pad_token_id": self.pad_id,
            "num_beams": 1,
            "num_return_sequences": 1,
            "repetition_penalty": 1.0,
        }
        if params.greedy:
            settings["do_sample"] = False
        else:
            settings.update(
                do_sample=True,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k,
            )
        if getattr(self.tokenizer, "bos_token_id", None) is not None:
            settings["bos_token_id"] = self.tokenizer.bos_token_id
        return GenerationConfig(**settings)

    def _generate_batch(
        self, batch: Sequence[Sequence[int]], params: SamplingParams, seed: int
    ) -> list[Generation]:
        import torch
        from transformers import GenerationConfig

        device = self.model.device
        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor(
            [[self.pad_id] * (width - len(ids)) + list(ids) for ids in batch], device=device
        )
        attention_mask = torch.tensor(
            [[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device
        )
        forked = [device.index if device.index is not None else 0] if device.type == "cuda" else []
        config = self._generation_config(params)
        # Only our settings apply: the checkpoint's generation_config (sampling defaults,
        # repetition penalty, …) would otherwise fill every field we leave unset.
        saved_config, was_training = self.model.generation_config, self.model.training
        self.model.generation_config = GenerationConfig()
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=forked), torch.inference_mode():
                torch.manual_seed(seed)
                sequences = self.model.generate(
                    input_ids=input_ids, attention_mask=attention_mask, generation_config=config
                )
        finally:
            self.model.generation_config = saved_config
            self.model.train(was_training)
        new_tokens = sequences[:, width:].tolist()
        stops = set(self.stop_ids)
        results = []
        for row in new_tokens:
            content, truncated, length = _split_at_stop(row, stops)
            text = self.tokenizer.decode(content, skip_special_tokens=True).strip()
            results.append(Generation(text=text, truncated=truncated, num_tokens=length))
        return results

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
        results: list[Generation] = []
        for start in range(0, len(encoded), self.batch_size):
            batch = encoded[start : start + self.batch_size]
            results.extend(self._generate_batch(batch, params, derive_seed(seed, offset + start)))
            if progress is not None:
                progress(len(batch))
        return results


# --------------------------------------------------------------------------------------
# vLLM backend (optional GPU extra)
# --------------------------------------------------------------------------------------


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
            "generation backend 'vllm' requested but vLLM is not installed; install the GPU extra "
            "(pip install 'iris-selfplay[vllm]') on a CUDA machine, or set generation.backend: hf"
        )
    if not cuda_available():
        raise BackendUnavailableError(
            "generation backend 'vllm' requested but no CUDA GPU is visible; vLLM has no CPU "
            "build here — set generation.backend: hf"
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


class VLLMBackend:
    """Sampling with vLLM (``vllm.LLM``), imported only when this backend is built.

    Prompts are encoded with the HF tokenizer by :func:`iris.data.encode_prompts` and sent
    as token ids, so vLLM sees exactly the tokens the trainer does. Each request is seeded
    with ``derive_seed(seed, global prompt index)``. ``tensor_parallel_size`` splits one
    model over GPUs; for data parallelism run one process per GPU and give each a
    ``rank``/``world_size`` in :func:`generate_shards`. The checkpoint's generation config is
    ignored (``generation_config="vllm"``) so only :class:`SamplingParams` apply.
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
        vllm = _import_vllm()
        from transformers import AutoTokenizer

        self._vllm = vllm
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(
            str(name_or_path), revision=revision
        )
        self.stop_ids = stop_token_ids(self.tokenizer, _checkpoint_eos(name_or_path, revision))
        llm_kwargs.setdefault("generation_config", "vllm")
        self.llm = vllm.LLM(
            model=str(name_or_path),
            revision=revision,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            **llm_kwargs,
        )
        self.info = {
            "backend": self.name,
            "name_or_path": str(name_or_path),
            "revision": revision,
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
            "stop_token_ids": self.stop_ids,
            "vllm_version": getattr(vllm, "__version__", None),
            "llm_kwargs": {
                k: v
                for k, v in llm_kwargs.items()
                if isinstance(v, str | int | float | bool | None)
            },
        }

    def describe(self) -> dict[str, Any]:
        return dict(self.info)

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
        sampling = [
            self._vllm.SamplingParams(
                n=1,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k if params.top_k > 0 else -1,
                max_tokens=params.max_new_tokens,
                seed=derive_seed(seed, offset + i),
                stop_token_ids=list(self.stop_ids),
                skip_special_tokens=True,
            )
            for i in range(len(encoded))
        ]
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in encoded], sampling, use_tqdm=False
        )
        stops = set(self.stop_ids)
        results = []
        for output in outputs:
            completion = output.outputs[0]
            _, truncated, length = _split_at_stop(list(completion.token_ids), stops)
            truncated = truncated and completion.finish_reason == "length"
            results.append(
                Generation(text=completion.text.strip(), truncated=truncated, num_tokens=length)
            )
        if progress is not None:
            progress(len(encoded))
        return results


# --------------------------------------------------------------------------------------
# Backend selection
# --------------------------------------------------------------------------------------


def resolve_backend_name(name: Literal["hf", "vllm", "auto"] | str) -> str:
    """``"auto"`` → ``"vllm"`` when vLLM is installed and a GPU is present, else ``"hf"``.

    ``"vllm"`` where it cannot run raises :class:`BackendUnavailableError` saying why.
    """
    if name == "hf":
        return "hf"
    if name == "vllm":
        _import_vllm_check()
        return "vllm"
    if name == "auto":
        return "vllm" if vllm_installed() and cuda_available() else "hf"
    raise ValueError(f"unknown generation backend {name!r}; use 'hf', 'vllm' or 'auto'")


def _import_vllm_check() -> None:
    if not vllm_installed() or not cuda_available():
        _import_vllm()  # raises with the specific reason


def make_backend(
    backend: str,
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    dtype: str = "float32",
    batch_size: int = 16,
    tensor_parallel_size: int = 1,
    device: str | None = None,
    vllm_kwargs: Mapping[str, Any] | None = None,
) -> GenerationBackend:
    """Build the backend named by ``generation.backend`` for a checkpoint (hub id or directory)."""
    resolved = resolve_backend_name(backend)
    if resolved == "vllm":
        return VLLMBackend(
            name_or_path,
            revision=revision,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            **dict(vllm_kwargs or {}),
        )
    return HFBackend.from_pretrained(
        name_or_path, revision=revision, dtype=dtype, device=device, batch_size=batch_size
    )


# --------------------------------------------------------------------------------------
# Resumable, atomic output files
# --------------------------------------------------------------------------------------


def meta_path(output: str | os.PathLike) -> Path:
    """``generated.jsonl`` → ``generated.meta.json``."""
    output = Path(output)
    return output.with_name(output.name.removesuffix(".jsonl") + ".meta.json")


def shard_dir(output: str | os.PathLike) -> Path:
    """Where the shards of ``output`` live while it is being generated."""
    output = Path(output)
    return output.with_name(output.name + ".shards")


def _effective_shard_size(backend: GenerationBackend, shard_size: int) -> int:
    if shard_size <= 0:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    batch = getattr(backend, "batch_size", None)
    if batch:
        # Shards on batch boundaries: batches (and their seeds) are those of an unsharded run.
        shard_size = -(-shard_size // batch) * batch
    return shard_size


def _check_items(items: Sequence[Mapping[str, Any]]) -> None:
    seen: set[str] = set()
    for index, item in enumerate(items):
        if "id" not in item or "prompt" not in item:
            raise ValueError(
                f"item {index}: needs 'id' and 'prompt' (a formatted prompt), got {sorted(item)}"
            )
        if item["id"] in seen:
            raise ValueError(f"item {index}: duplicate id {item['id']!r}")
        seen.add(item["id"])


def generation_fingerprint(
    items: Sequence[Mapping[str, Any]],
    params: SamplingParams,
    seed: int,
    *,
    backend: GenerationBackend,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """sha256 over everything that determines the output: ids and prompts, sampling params,
    seed, backend name and batch size, and ``extra`` (e.g. the model's path and iteration)."""
    digest = hashlib.sha256()
    header = {
        "params": params.to_dict(),
        "seed": seed,
        "backend": backend.name,
        "batch_size": getattr(backend, "batch_size", None),
        "extra": dict(extra or {}),
    }
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for item in items:
        digest.update(json.dumps([item["id"], item["prompt"]]).encode())
    return digest.hexdigest()


@dataclasses.dataclass
class _Plan:
    shard_size: int
    n_shards: int
    directory: Path
    fingerprint: str

    def shard_path(self, index: int) -> Path:
        return self.directory / f"shard_{index:05d}.jsonl"


def _plan(
    backend: GenerationBackend,
    items: Sequence[Mapping[str, Any]],
    output: Path,
    params: SamplingParams,
    seed: int,
    shard_size: int,
    extra: Mapping[str, Any] | None,
) -> _Plan:
    _check_items(items)
    size = _effective_shard_size(backend, shard_size)
    fingerprint = generation_fingerprint(items, params, seed, backend=backend, extra=extra)
    saved = shard_dir(output) / "plan.json"
    if saved.is_file():
        # Seeds follow the global prompt index, not the shard: an interrupted generation of
        # the same fingerprint keeps its shard size (a changed shard_size never blocks it).
        state = read_json(saved)
        if state.get("fingerprint") == fingerprint and state.get("shard_size") != size:
            logger.info("%s: continuing with the shard size %s it started with", saved.parent, state["shard_size"])
            size = int(state["shard_size"])
    n_shards = -(-len(items) // size) if items else 0
    return _Plan(size, n_shards, shard_dir(output), fingerprint)


def _plan_state(plan: _Plan) -> dict[str, Any]:
    return {
        "fingerprint": plan.fingerprint,
        "shard_size": plan.shard_size,
        "n_shards": plan.n_shards,
    }


def _shard_dir_matches(plan: _Plan) -> bool:
    state = plan.directory / "plan.json"
    return state.is_file() and read_json(state) == _plan_state(plan)


def _prepare_shard_dir(plan: _Plan, main_process: bool) -> None:
    state = plan.directory / "plan.json"
    expected = _plan_state(plan)
    if state.is_file():
        saved = read_json(state)
        if saved != expected:
            raise RuntimeError(
                f"{plan.directory} holds shards of a different generation (fingerprint or shard size "
                f"differ: saved {saved}, now {expected}); delete the folder to start over"
            )
        return
    if main_process:
        atomic_write_json(state, expected)


def _shard_rows(
    items: Sequence[Mapping[str, Any]], generations: Sequence[Generation]
) -> list[dict[str, Any]]:
    return [
        {
            "id": item["id"],
            "prompt": item["prompt"],
            "text": generation.text,
            "truncated": generation.truncated,
            "num_tokens": generation.num_tokens,
        }
        for item, generation in zip(items, generations, strict=True)
    ]


def _shard_complete(path: Path, expected_ids: Sequence[str]) -> bool:
    if not path.is_file():
        return False
    try:
        ids = [row.get("id") for row in iter_jsonl(path)]
    except (ValueError, OSError):
        return False
    return ids == list(expected_ids)


def generate_shards(
    backend: GenerationBackend,
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
    """Generate this rank's missing shards of ``output`` (shard ``k`` belongs to rank ``k % world_size``).

    ``items`` are ``{"id", "prompt"}`` mappings with formatted prompts. Shards already
    complete (the ids they hold match the plan) are skipped; each new shard is written
    atomically. A shard folder left by a different generation (other prompts, params, seed,
    backend or ``fingerprint_extra``) raises rather than mixing outputs. Returns the paths of
    this rank's shards.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
    output = Path(output)
    plan = _plan(backend, items, output, params, seed, shard_size, fingerprint_extra)
    _prepare_shard_dir(plan, main_process=rank == 0)
    mine = [k for k in range(plan.n_shards) if k % world_size == rank]
    todo = []
    for k in mine:
        chunk = items[k * plan.shard_size : (k + 1) * plan.shard_size]
        if not _shard_complete(plan.shard_path(k), [it["id"] for it in chunk]):
            todo.append(k)
    total = sum(len(items[k * plan.shard_size : (k + 1) * plan.shard_size]) for k in mine)
    done = total - sum(len(items[k * plan.shard_size : (k + 1) * plan.shard_size]) for k in todo)
    bar = _progress_bar(total, done, f"generate {output.name}", show_progress)
    try:
        for k in todo:
            chunk = items[k * plan.shard_size : (k + 1) * plan.shard_size]
            generations = backend.generate(
                [it["prompt"] for it in chunk],
                params,
                seed,
                offset=k * plan.shard_size,
                progress=bar.update,
            )
            if len(generations) != len(chunk):
                raise RuntimeError(
                    f"backend returned {len(generations)} generations for {len(chunk)} prompts"
                )
            atomic_write_jsonl(plan.shard_path(k), _shard_rows(chunk, generations))
    finally:
        bar.close()
    return [plan.shard_path(k) for k in mine]


def merge_shards(
    backend: GenerationBackend,
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
    """Concatenate the complete shards into ``output`` (atomically), write ``.meta.json``, and
    remove the shard folder. Raises when a shard is missing or incomplete. Returns the meta."""
    output = Path(output)
    plan = _plan(backend, items, output, params, seed, shard_size, fingerprint_extra)
    paths = []
    for k in range(plan.n_shards):
        chunk = items[k * plan.shard_size : (k + 1) * plan.shard_size]
        if not _shard_complete(plan.shard_path(k), [it["id"] for it in chunk]):
            raise RuntimeError(
                f"shard {plan.shard_path(k)} is missing or incomplete; run generate_shards first"
            )
        paths.append(plan.shard_path(k))
    counts = {"n": 0, "n_truncated": 0, "tokens": 0}
    for path in paths:
        for row in iter_jsonl(path):
            counts["n"] += 1
            counts["n_truncated"] += bool(row["truncated"])
            counts["tokens"] += int(row["num_tokens"])

    def rows():
        for path in paths:
            yield from iter_jsonl(path)

    meta = {
        "output": output.name,
        "fingerprint": plan.fingerprint,
        "params": params.to_dict(),
        "seed": seed,
        "backend": backend.describe(),
        "shard_size": plan.shard_size,
        "n": counts["n"],
        "n_truncated": counts["n_truncated"],
        "truncated_fraction": counts["n_truncated"] / counts["n"] if counts["n"] else 0.0,
        "generated_tokens": counts["tokens"],
        "mean_tokens": counts["tokens"] / counts["n"] if counts["n"] else 0.0,
        "elapsed_s": elapsed_s,
        "finished_at": utc_now(),
        "extra": dict(fingerprint_extra or {}),
    }
    # Meta first, output last: the output's atomic rename is what marks completion.
    atomic_write_json(meta_path(output), meta)
    atomic_write_jsonl(output, rows())
    if counts["n_truncated"]:
        logger.warning(
            "%s: %d of %d responses hit max_new_tokens=%d without ending (flagged truncated)",
            output,
            counts["n_truncated"],
            counts["n"],
            params.max_new_tokens,
        )
    if not keep_shards:
        shutil.rmtree(plan.directory, ignore_errors=True)
    return meta


def generate_to_file(
    backend: GenerationBackend,
    items: Sequence[Mapping[str, Any]],
    output: str | os.PathLike,
    params: SamplingParams,
    *,
    seed: int,
    shard_size: int = 1024,
    fingerprint_extra: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Generate one response per item into ``output`` (JSONL) resumably; returns the meta.

    Rows: ``{"id", "prompt", "text", "truncated", "num_tokens"}`` in item order. If
    ``output`` already exists from the same generation (same fingerprint in its
    ``.meta.json``) it is kept and its meta returned; if it exists from another generation
    it is an error unless ``overwrite=True`` (then it is replaced — never appended to).
    """
    output = Path(output)
    plan = _plan(backend, items, output, params, seed, shard_size, fingerprint_extra)
    if output.exists():
        meta_file = meta_path(output)
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
    if overwrite and plan.directory.is_dir() and not _shard_dir_matches(plan):
        shutil.rmtree(plan.directory)
    start = time.monotonic()
    generate_shards(
        backend,
        items,
        output,
        params,
        seed=seed,
        shard_size=shard_size,
        fingerprint_extra=fingerprint_extra,
        show_progress=show_progress,
    )
    return merge_shards(
        backend,
        items,
        output,
        params,
        seed=seed,
        shard_size=shard_size,
        fingerprint_extra=fingerprint_extra,
        elapsed_s=round(time.monotonic() - start, 3),
    )


def read_generations(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{id: row}`` of a generated file (for :func:`iris.data.build_selfplay_records`)."""
    table: dict[str, dict[str, Any]] = {}
    for row in iter_jsonl(path):
        if row["id"] in table:
            raise ValueError(f"{path}: duplicate id {row['id']!r}")
        table[row["id"]] = row
    return table


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, initial: int, description: str, enabled: bool) -> Any:
    if not enabled:
        return _NullBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with transformers
        return _NullBar()
    return tqdm(total=total, initial=initial, desc=description, unit="prompt", dynamic_ncols=True)
