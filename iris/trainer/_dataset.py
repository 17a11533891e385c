"""The self-play dataset convention and its checks.

A training dataset has one row per prompt with columns

- ``prompt``: the prompt (a string, or a list of chat messages);
- ``real``: the annotated response y ~ p_data(·|x);
- ``generated``: the synthetic response y' ~ p_θt(·|x) sampled from the previous iterate;
- ``proto`` (only for losses that name it, i.e. T-SPIN): the proto-synthetic response
  y0, generated once by the initial model.

Responses are strings (standard format; TRL appends the EOS token) or lists of messages
(conversational format, rendered with the tokenizer's chat template). Internally
``real``/``generated`` become TRL's ``chosen``/``rejected`` and the column ``iris_row``
(the row's index in the dataset given) is added, so errors can name rows after TRL has
filtered some out. Empty responses are rejected here, naming the row and the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasets import Dataset

from ._dispatch import GENERATED, REAL

# Dataset column of each response group → TRL's column name.
TRL_COLUMNS = {REAL: "chosen", GENERATED: "rejected"}
ROW_COLUMN = "iris_row"


def trl_column(group: str) -> str:
    return TRL_COLUMNS.get(group, group)


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Sequence):  # conversational: a list of {"role", "content"} messages
        return len(value) == 0 or all(_is_empty(message.get("content")) for message in value)
    return False


def check_columns(dataset: Dataset, groups: Sequence[str], name: str) -> None:
    """Raise ``ValueError`` if a required column is missing or ambiguous."""
    columns = set(dataset.column_names)
    required = ["prompt", *groups]
    missing = [c for c in required if c not in columns]
    if missing:
        hint = ""
        if {"chosen", "rejected"} & columns:
            hint = " (rename 'chosen' to 'real' and 'rejected' to 'generated')"
        raise ValueError(
            f"{name} dataset is missing column(s) {missing}; required: {required}, found: "
            f"{sorted(columns)}{hint}"
        )
    clash = [c for c in (*TRL_COLUMNS.values(), ROW_COLUMN) if c in columns]
    if clash:
        raise ValueError(
            f"{name} dataset has column(s) {clash}, reserved by the trainer; the responses belong in "
            f"{list(groups)}"
        )


def check_rows(dataset: Dataset, groups: Sequence[str], name: str) -> None:
    """Raise ``ValueError`` naming the first row and column with an empty prompt or response."""
    for column in ("prompt", *groups):
        for row, value in enumerate(dataset[column]):
            if _is_empty(value):
                raise ValueError(f"{name} dataset row {row}: column {column!r} is empty")


def to_trl_columns(dataset: Dataset, groups: Sequence[str], name: str) -> Dataset:
    """Check the dataset and rename its response columns to TRL's (``real`` → ``chosen``, ...).

    The ``iris_row`` index column is added by the trainer (it needs TRL's process
    ordering context to write the cache file once).
    """
    check_columns(dataset, groups, name)
    check_rows(dataset, groups, name)
    unused = [c for c in (*TRL_COLUMNS, "proto") if c in dataset.column_names and c not in groups]
    if unused:
        dataset = dataset.remove_columns(unused)
    return dataset.rename_columns({g: trl_column(g) for g in groups if trl_column(g) != g})
