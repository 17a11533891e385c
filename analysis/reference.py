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
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULT_REFERENCE", "Reference", "ReferenceEntry", "Source", "load_reference"]

DEFAULT_REFERENCE = Path(__file__).with_name("reference_numbers.yaml")
START, FINAL = "start", "final"


@dataclasses.dataclass(frozen=True)
class Source:
    """Where published numbers come from."""

    key: str
    citation: str
    url: str
    location: str
    short: str


@dataclasses.dataclass(frozen=True)
class ReferenceEntry:
    """One published curve: a model × method on a suite, value (%) per iteration."""

    key: str
    source: str
    suite: str
    model: str | None
    method: str
    label: str
    values: Mapping[int | str, float]
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


_SOURCE_KEYS = {"citation", "url", "location", "short"}
_ENTRY_KEYS = {"key", "source", "suite", "model", "method", "label", "values", "n_train", "note"}
_ENTRY_TEXT = ("key", "source", "suite", "method", "label")  # required, read as text


def _check_keys(where: str, data: Any, allowed: set[str], required: set[str]) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping")
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = required - set(data)
    if missing:
        raise ValueError(f"{where}: missing key(s) {sorted(missing)}")


def load_reference(path: str | Path | None = None) -> Reference:
    """Read and validate a reference-numbers YAML (default: the one shipped with analysis)."""
    path = Path(path) if path is not None else DEFAULT_REFERENCE
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, Mapping) or set(data) - {"sources", "entries"}:
        raise ValueError(f"{path}: expected a mapping with 'sources' and 'entries'")
    sources: dict[str, Source] = {}
    for key, raw in (data.get("sources") or {}).items():
        _check_keys(f"{path}: sources.{key}", raw, _SOURCE_KEYS, _SOURCE_KEYS)
        sources[key] = Source(key=key, **{k: str(raw[k]).strip() for k in _SOURCE_KEYS})
    entries: list[ReferenceEntry] = []
    for index, raw in enumerate(data.get("entries") or []):
        where = f"{path}: entries[{index}]"
        _check_keys(where, raw, _ENTRY_KEYS, {*_ENTRY_TEXT, "values"})
        if raw["source"] not in sources:
            raise ValueError(f"{where}: unknown source {raw['source']!r}; known: {sorted(sources)}")
        values: dict[int | str, float] = {}
        for it, value in (raw["values"] or {}).items():
            if type(value) not in (int, float) or not math.isfinite(value):  # (a bool is no number)
                raise ValueError(f"{where}: value of {it!r} must be a finite number, got {value!r}")
            values[it if isinstance(it, int) else str(it)] = float(value)
        if not values:
            raise ValueError(f"{where}: no values")
        options = {"n_train": raw.get("n_train"), "note": str(raw.get("note") or "")}
        text = {k: str(raw[k]) for k in _ENTRY_TEXT}
        entries.append(ReferenceEntry(**text, model=raw.get("model"), values=values, **options))
    keys = [e.key for e in entries]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{path}: duplicate entry keys")
    return Reference(sources, tuple(entries), path)
