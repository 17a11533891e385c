"""Published reference numbers as data: ``reference_numbers.yaml`` and its loader.

This module owns the numbers this project compares itself with. They live in
``analysis/reference_numbers.yaml`` (never in code), each entry naming its source; the
loader validates the file (unknown keys, unknown sources and non-numbers fail, naming
the entry) and matches entries to this project's runs by model (same name, or same last
path component, case-insensitive), loss and, when the entry gives one, ``n_train``.

An entry's ``values`` map an iteration to the published value in percent: an integer t
(the model after self-play iteration t, 0-based as in the papers' "iter0"), ``start``
(the starting checkpoint; this project's run directories do not evaluate it, so it is
shown without a match), ``final`` (after the whole training, e.g. SFT after its epochs;
matched to a run's last evaluated iteration) or another word (shown, never matched).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AllowInfNan, ConfigDict, Strict, with_config

from iris.config import from_dict

__all__ = ["DEFAULT_REFERENCE", "Reference", "ReferenceEntry", "Source", "load_reference"]

DEFAULT_REFERENCE = Path(__file__).with_name("reference_numbers.yaml")
START, FINAL = "start", "final"
# A published value: a finite number (a bool or a numeric string is refused).
Value = Annotated[float, Strict(), AllowInfNan(False)]


@with_config(ConfigDict(extra="forbid"))
@dataclasses.dataclass(frozen=True)
class Source:
    """Where published numbers come from."""

    citation: str
    url: str
    location: str
    short: str


@with_config(ConfigDict(extra="forbid"))
@dataclasses.dataclass(frozen=True)
class ReferenceEntry:
    """One published curve: a model × method on a suite, value (%) per iteration."""

    key: str
    source: str
    suite: str
    method: str
    label: str
    values: dict[int | str, Value]
    model: str | None = None
    n_train: int | None = None
    note: str = ""

    def matches_model(self, model: str) -> bool:
        if self.model is None:
            return False
        return _basename(self.model) == _basename(model)


def _basename(model: str) -> str:
    return model.rstrip("/").rsplit("/", 1)[-1].lower()


@dataclasses.dataclass(frozen=True)
class Reference:
    """All sources and entries of a reference file."""

    sources: Mapping[str, Source]
    entries: tuple[ReferenceEntry, ...]
    path: Path | None = None

    def for_suite(self, suite: str) -> list[ReferenceEntry]:
        return [e for e in self.entries if e.suite == suite]

    @property
    def suites(self) -> list[str]:
        return list(dict.fromkeys(e.suite for e in self.entries))


@dataclasses.dataclass(frozen=True)
class _File:
    sources: dict[str, Source]
    entries: list[ReferenceEntry]


def load_reference(path: str | Path | None = None) -> Reference:
    """Read and validate a reference-numbers YAML (default: the one shipped with analysis).

    Unknown or missing keys, non-numbers and unknown sources raise ``ValueError`` naming
    the entry.
    """
    path = Path(path) if path is not None else DEFAULT_REFERENCE
    data = from_dict(_File, yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path))
    for index, entry in enumerate(data.entries):
        where = f"{path}: entries[{index}]"
        if entry.source not in data.sources:
            known = sorted(data.sources)
            raise ValueError(f"{where}: unknown source {entry.source!r}; known: {known}")
        if not entry.values:
            raise ValueError(f"{where}: no values")
    keys = [e.key for e in data.entries]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{path}: duplicate entry keys")
    return Reference(data.sources, tuple(data.entries), path)
