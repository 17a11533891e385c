"""The tests' reading aid: rows of an :class:`analysis.Records` frame as named tuples."""

from __future__ import annotations

import collections
from typing import Any

import pandas as pd

from analysis.records import COLUMNS as FIELDS

Row = collections.namedtuple("Row", FIELDS)
OPTIONAL = {"schedule", "seed", "n_train", "suite", "step"}  # None where missing


def _plain(field: str, value: Any) -> Any:
    if field in OPTIONAL and (value is None or value is pd.NA or value != value):
        return None
    return value.item() if hasattr(value, "item") else value


def _matches(value: Any, criterion: Any) -> bool:
    if callable(criterion):
        return bool(criterion(value))
    if isinstance(criterion, set | frozenset | list | tuple):
        return value in criterion
    return value == criterion


def select(records: pd.DataFrame, **criteria: Any) -> tuple[Row, ...]:
    """The rows whose fields match every criterion: a value (equality), a set/list/tuple
    (membership) or a callable (predicate): ``select(r, stage="eval", value=math.isfinite)``."""
    if unknown := set(criteria) - set(FIELDS):
        raise TypeError(f"unknown record field(s) {sorted(unknown)}; fields are {FIELDS}")
    rows = (
        Row(*(_plain(f, v) for f, v in zip(FIELDS, row, strict=True)))
        for row in records[list(FIELDS)].itertuples(index=False)
    )
    return tuple(r for r in rows if all(_matches(getattr(r, k), c) for k, c in criteria.items()))
