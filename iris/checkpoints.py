"""The starting checkpoint as every stage reads it: a plain transformers folder.

``model.name_or_path`` may name a hub id, a local folder, a GGUF file (or a folder with
``model.gguf_file``), or a ``pkg:`` file (:mod:`iris.packages`). A GGUF checkpoint is
de-quantised once by transformers' GGUF loader into a plain float32 safetensors folder with
its tokenizer, cached by the file's content under ``$IRIS_CACHE_DIR/gguf/`` (default
``~/.cache/iris``), so generation (HF or vLLM), training and evaluation all load an
ordinary checkpoint and every model a run writes is plain safetensors.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

from iris.packages import resolve
from iris.runs import sha256_file

__all__ = ["GGUF_SUFFIX", "cache_dir", "gguf_source", "plain_checkpoint", "start_checkpoint"]

GGUF_SUFFIX = ".gguf"
_DONE = "iris-converted.txt"


def cache_dir() -> Path:
    """Where converted checkpoints are kept: ``$IRIS_CACHE_DIR`` or ``~/.cache/iris``."""
    return Path(os.environ.get("IRIS_CACHE_DIR") or Path.home() / ".cache" / "iris")


def gguf_source(name_or_path: str, gguf_file: str | None = None) -> Path | None:
    """The GGUF file a model setting names (``pkg:`` resolved), or None for any other model.

    >>> gguf_source("org/model") is None
    True
    """
    path = Path(resolve(name_or_path)).expanduser()
    if gguf_file is not None:
        return path / gguf_file
    return path if path.suffix.lower() == GGUF_SUFFIX else None


@functools.lru_cache(maxsize=16)
def _cached_digest(path: Path, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def _digest(path: Path) -> str:
    """sha256 of a file's bytes, computed once per (path, size, modification time)."""
    stat = path.stat()
    return _cached_digest(path.resolve(), stat.st_size, stat.st_mtime_ns)


def _convert(gguf: Path, target: Path) -> None:
    """De-quantise ``gguf`` into ``target``: float32 safetensors, config and tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # marks the model unserialisable
        del config.quantization_config
    # A model built from the plain config holds the same tensors and saves like any other.
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))


def plain_checkpoint(gguf: str | os.PathLike) -> Path:
    """The plain folder of a GGUF file, converted on first use (about a minute for 135M
    parameters on 2 cores) and then read from the cache.

    The folder is named ``<stem>-<sha256[:12]>`` of the file's bytes and written atomically
    (a temporary folder renamed), so concurrent or interrupted conversions never leave a
    half-written checkpoint. Raises FileNotFoundError when the file does not exist.
    """
    gguf = Path(gguf)
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file {gguf} does not exist")
    digest = _digest(gguf)
    target = cache_dir() / "gguf" / f"{gguf.stem}-{digest[:12]}"
    if (target / _DONE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _convert(gguf, scratch)
        (scratch / _DONE).write_text(f"{gguf}\nsha256 {digest}\n")
        try:
            os.replace(scratch, target)
        except OSError:  # another process finished first: keep its folder
            if not (target / _DONE).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def start_checkpoint(name_or_path: str, gguf_file: str | None = None) -> str:
    """What ``from_pretrained`` loads for a model setting: the plain folder of a GGUF file
    (:func:`plain_checkpoint`), the local path of a ``pkg:`` folder, else ``name_or_path``."""
    gguf = gguf_source(name_or_path, gguf_file)
    if gguf is not None:
        return str(plain_checkpoint(gguf))
    return resolve(name_or_path)
