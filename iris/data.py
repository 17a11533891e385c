"""Annotated data, subsets, and the one chat format shared by generation and training.

This module owns everything between a dataset on disk (or on the hub) and the rows the
trainer reads:

* loading annotated pairs from a hub id (``HuggingFaceH4/ultrachat_200k``, split
  ``train_sft``, pinned ``revision``) through ``datasets.load_dataset``, or from local
  JSONL/JSON/Parquet/Arrow files or a saved dataset (a ``pkg:`` file of an installed
  package, :mod:`iris.packages`; a JSON array cut off inside a record is diagnosed, and
  its whole records kept under ``skip_invalid``); the layout of each row is detected
  from its fields (:data:`LAYOUTS`: chat ``messages`` and ShareGPT ``conversations``, one
  turn taken by :func:`conversation_turn`; ``prompt`` + ``real`` pairs; SPIN's
  ``real``/``generated``; TRL's preference ``prompt``/``chosen``/``rejected``, standard or
  conversational); every schema error names the file, the row and the field;
* the canonical record ``{"id", "prompt", "real", "source_index"[, "generated"]}``, where
  ``prompt`` is a string (one user message) or the chat messages before the response
  (:data:`Prompt`), ``id`` is a hash of the whitespace-normalised prompt (so deduplication
  by prompt is deduplication by id) and ``generated`` is the synthetic response a row
  gives (SPIN's ``generated``, TRL's ``rejected``), read and checked by
  :func:`given_synthetic`;
* deterministic, nested subset selection: records are ranked by ``sha256(seed, id)`` and
  training sets are prefixes of that ranking (14k ⊂ 26k ⊂ 50k ⊂ 100k ⊂ 200k for any
  seed, independent of file order), held-out prompts come from the other end of the
  ranking (or from another split) and never overlap training prompts;
* :func:`format_prompt` / :func:`encode_prompts` / :func:`format_completion`, the single
  definition of how a prompt and a response are rendered by the tokenizer's chat template,
  used by :mod:`iris.generation` and by the self-play training set
  (:func:`build_selfplay_records`), so the two formats cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iris.packages import resolve
from iris.runs import atomic_write_jsonl, read_jsonl

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from iris.config import DataConfig

logger = logging.getLogger(__name__)

Record = dict[str, Any]
"""``{"id": str, "prompt": str, "real": str, "source_index": int}``, plus ``"generated": str``
(possibly empty) when the row's layout gives a synthetic response."""

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow")
_RESPONSE_FIELDS = ("real", "response")

LAYOUTS: dict[str, str] = {
    "chat": "'messages': [system?, user, assistant, ...] chat messages; one turn is used "
    "(data.turn), the messages before it are the prompt",
    "sharegpt": "ShareGPT's 'conversations': [{from, value}, ...] turns (human/gpt/system, ...); "
    "as 'chat'",
    "pairs": "'prompt' and 'real' (or 'response') strings; optional 'generated' string",
    "spin": "SPIN's 'real' and 'generated': [user, assistant] message lists sharing the user turn",
    "preference": "TRL's 'prompt', 'chosen' and 'rejected': strings (standard) or message "
    "lists (conversational; 'prompt' optional when chosen/rejected start with it)",
}
"""The accepted row layouts, detected per row from its fields in this order: ``preference``
(``chosen`` and ``rejected``), ``spin`` (``real`` and ``generated``, ``real`` not a string),
``chat`` (``messages``), ``sharegpt`` (``conversations``), ``pairs`` (``prompt`` and ``real``/``response``). The annotated
response is ``real``/``chosen``; the synthetic one, when given, ``generated``/``rejected``."""

SYNTHETIC_FIELDS = {"spin": "generated", "preference": "rejected", "pairs": "generated"}
"""The field holding a row's given synthetic response, per layout that can have one."""

MAX_PLACES = 20
"""How many rows an error about many rows names (it gives their count too)."""

_UNKNOWN_LAYOUT = (
    "needs field 'messages' (chat), 'conversations' (ShareGPT) or fields 'prompt' and 'real' (pairs), 'real' and "
    "'generated' (SPIN) or 'prompt', 'chosen' and 'rejected' (TRL preference)"
)


# --------------------------------------------------------------------------------------
# Records and ids
# --------------------------------------------------------------------------------------


def normalize_prompt(prompt: str) -> str:
    """Whitespace-normalised prompt used for identity (deduplication and overlap checks)."""
    return " ".join(prompt.split())


def prompt_key(prompt: str | Sequence[Mapping[str, str]]) -> str:
    """The identity text of a prompt: its whitespace-normalised text, or for chat messages
    each role and normalised content (a lone user message is its own text)."""
    if isinstance(prompt, str):
        return normalize_prompt(prompt)
    if len(prompt) == 1 and prompt[0]["role"] == "user":
        return normalize_prompt(prompt[0]["content"])
    return "\u0000".join(f"{m['role']}\u0001{normalize_prompt(m['content'])}" for m in prompt)


def prompt_id(prompt: str | Sequence[Mapping[str, str]]) -> str:
    """Stable 16-hex-digit id of a prompt: sha256 of :func:`prompt_key`.

    >>> prompt_id("What is  2+2?") == prompt_id(" What is 2+2? ")
    True
    """
    return hashlib.sha256(prompt_key(prompt).encode("utf-8")).hexdigest()[:16]


class DataError(ValueError):
    """The annotated data cannot be used; the message names the source and the 1-based line
    (JSON Lines) or row (other formats) of the culprit."""


def _invalid(where: str, field: str, problem: str) -> DataError:
    return DataError(f"{where}: field {field!r} {problem}")


CHAT_ROLES = ("system", "user", "assistant")
"""The roles of a chat ``messages`` list."""

SHAREGPT_ROLES: dict[str, str] = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "assistant": "assistant",
    "model": "assistant",
}
"""ShareGPT's ``from`` names (lower-cased) and the chat role each maps to."""

TURNS = ("first", "last")
"""Which assistant turn of a conversation is the annotated response (``data.turn``)."""

Prompt = str | list[dict[str, str]]
"""A record's prompt: one user message as a string, or the chat messages (system, earlier
turns) before the annotated response, ending with a user message."""


def prompt_messages(prompt: Prompt) -> list[dict[str, str]]:
    """The chat messages of a record's prompt (a string is one user message)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def _as_prompt(messages: list[dict[str, str]]) -> Prompt:
    """The record form of prompt messages: a lone user message is kept as its string."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return messages


def conversation_turn(
    messages: Any, where: str, *, turn: str = "first", field: str = "messages"
) -> tuple[Prompt, str]:
    """(prompt, annotated response) of a chat conversation, by the ``turn`` rule.

    The response is the first (``turn="first"``, as SPIN) or the last (``"last"``)
    assistant message that directly follows a user message; the prompt is every message
    before it — system messages and earlier turns included — except assistant messages
    that come before the first user message (a conversation cut out of a longer one
    starts with an answer whose question is missing). Every kept message must be
    non-empty. A prompt of one user message is returned as its string.

    Raises :class:`DataError` prefixed with ``where`` (e.g. ``"data.jsonl line 17"``).

    >>> conversation_turn([{"role": "user", "content": "Hi"},
    ...                    {"role": "assistant", "content": "Hello"}], "row 1")
    ('Hi', 'Hello')
    """
    if turn not in TURNS:
        raise ValueError(f"turn must be one of {TURNS}, got {turn!r}")
    items = _messages(messages, field, where)
    for index, message in enumerate(items):
        if message["role"] not in CHAT_ROLES:
            raise _invalid(
                where,
                field,
                f"item {index} has role {message['role']!r}; roles are "
                + ", ".join(map(repr, CHAT_ROLES)),
            )
    roles = [m["role"] for m in items]
    answers = [
        i for i in range(1, len(items)) if roles[i] == "assistant" and roles[i - 1] == "user"
    ]
    if not answers:
        raise _invalid(
            where,
            field,
            f"needs a user and an assistant message, got {len(items)} message(s)"
            + (f" with roles {roles}" if items else ""),
        )
    answer = answers[0] if turn == "first" else answers[-1]
    first_user = roles.index("user")
    kept = [i for i in range(answer + 1) if i >= first_user or roles[i] != "assistant"]
    for index in kept:
        if not items[index]["content"].strip():
            raise _invalid(where, field, f"item {index} 'content' is empty")
    prompt = [items[i] for i in kept[:-1]]
    return _as_prompt(prompt), items[answer]["content"]


def sharegpt_messages(conversations: Any, where: str) -> list[dict[str, str]]:
    """ShareGPT's ``conversations`` (``{"from", "value"}`` items) as chat messages.

    Roles are mapped by :data:`SHAREGPT_ROLES`; an unknown one raises :class:`DataError`.
    """
    field = "conversations"
    if not isinstance(conversations, list | tuple):
        raise _invalid(
            where,
            field,
            f"must be a list of {{from, value}} turns, got {type(conversations).__name__}",
        )
    messages = []
    for index, item in enumerate(conversations):
        if not isinstance(item, Mapping):
            raise _invalid(
                where,
                field,
                f"item {index} must be a mapping with 'from' and 'value', got {type(item).__name__}",
            )
        for key in ("from", "value"):
            if not isinstance(item.get(key), str):
                raise _invalid(
                    where,
                    field,
                    f"item {index} {key!r} must be a string, got {type(item.get(key)).__name__}",
                )
        role = SHAREGPT_ROLES.get(item["from"].strip().lower())
        if role is None:
            raise _invalid(
                where,
                field,
                f"item {index} has an unknown speaker {item['from']!r}; known: "
                + ", ".join(sorted(SHAREGPT_ROLES)),
            )
        messages.append({"role": role, "content": item["value"]})
    return messages


def _present(row: Mapping[str, Any], field: str) -> bool:
    return field in row and row[field] is not None


def detect_layout(row: Mapping[str, Any]) -> str | None:
    """The :data:`LAYOUTS` name of a row, from its fields (None when none fits)."""
    if _present(row, "chosen") and _present(row, "rejected"):
        return "preference"
    if _present(row, "real") and _present(row, "generated") and not isinstance(row["real"], str):
        return "spin"
    if _present(row, "messages"):
        return "chat"
    if _present(row, "conversations"):
        return "sharegpt"
    if "prompt" in row and any(f in row for f in _RESPONSE_FIELDS):
        return "pairs"
    return None


def _string(value: Any, field: str, where: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _invalid(where, field, f"must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise _invalid(where, field, "is empty")
    return value


def _messages(value: Any, field: str, where: str) -> list[dict[str, str]]:
    """``value`` as a list of plain ``{"role", "content"}`` dicts (string role and content)."""
    if not isinstance(value, list | tuple):
        raise _invalid(
            where,
            field,
            f"must be a list of {{role, content}} messages, got {type(value).__name__}",
        )
    messages = []
    for index, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise _invalid(
                where,
                field,
                f"item {index} must be a mapping with 'role' and 'content', got {type(message).__name__}",
            )
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                raise _invalid(
                    where,
                    field,
                    f"item {index} {key!r} must be a string, got {type(message.get(key)).__name__}",
                )
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def _response(messages: list[dict[str, str]], field: str, where: str, *, given: bool) -> str:
    """The assistant turn after the prompt: one assistant message (none: an empty synthetic)."""
    if not messages and given:
        return ""
    roles = [m["role"] for m in messages]
    if roles != ["assistant"]:
        raise _invalid(
            where, field, f"must end with one assistant message after the prompt, got roles {roles}"
        )
    content = messages[0]["content"]
    if not given and not content.strip():
        raise _invalid(where, field, "assistant 'content' is empty")
    return content


def _preference_row(
    row: Mapping[str, Any], where: str, annotated: str, synthetic: str
) -> tuple[Prompt, str, str]:
    """(prompt, annotated response, synthetic response) of a SPIN or TRL preference row.

    Standard rows hold strings; conversational rows hold message lists, with the prompt
    either in ``prompt`` or as the messages ``annotated`` and ``synthetic`` start with
    (TRL's implicit prompt, SPIN's layout), extracted by :func:`trl.data_utils.maybe_extract_prompt`.
    A conversational prompt may hold system messages and earlier turns; it ends with a
    user message.
    """
    from trl.data_utils import maybe_extract_prompt

    first, second = row[annotated], row[synthetic]
    has_prompt = _present(row, "prompt")
    if isinstance(first, str) or isinstance(second, str):  # standard (TRL's strings)
        _string(first, annotated, where)
        _string(second, synthetic, where, allow_empty=True)
        if has_prompt:
            return _string(row["prompt"], "prompt", where), first, second
        if not second:
            raise _invalid(where, "prompt", f"is missing, and {synthetic!r} is empty")
        example = maybe_extract_prompt({"chosen": first, "rejected": second})
        prompt = example["prompt"]
        if not prompt.strip():
            raise _invalid(
                where, "prompt", f"is missing, and {annotated!r} and {synthetic!r} share no prefix"
            )
        return prompt, example["chosen"], example["rejected"]
    chosen, rejected = _messages(first, annotated, where), _messages(second, synthetic, where)
    if not chosen:
        raise _invalid(where, annotated, "is an empty list of messages")
    example: dict[str, Any] = {"chosen": chosen, "rejected": rejected}
    if has_prompt:
        prompt_value = row["prompt"]
        if isinstance(prompt_value, str):
            example["prompt"] = _string(prompt_value, "prompt", where)
        else:
            example["prompt"] = _messages(prompt_value, "prompt", where)
            if not example["prompt"]:
                raise _invalid(where, "prompt", "is an empty list of messages")
    given_prompt = example.get("prompt")
    if (
        isinstance(given_prompt, list)
        and given_prompt
        and chosen[: len(given_prompt)] == given_prompt
    ):
        n = len(given_prompt)  # the prompt is given and repeated in chosen/rejected
        example = {**example, "chosen": chosen[n:], "rejected": rejected[n:]}
    elif (
        not isinstance(given_prompt, list)
        and len(rejected) < len(chosen)
        and rejected == chosen[: len(rejected)]
    ):
        # the synthetic conversation stops before its response: an empty synthetic response
        example = {"prompt": rejected, "chosen": chosen[len(rejected) :], "rejected": []}
    else:
        example = maybe_extract_prompt(example)
    turns = example["prompt"]
    if has_prompt and isinstance(row["prompt"], list):
        subject = "field 'prompt'"
    else:
        subject = f"the prompt shared by {annotated!r} and {synthetic!r}"
    if not turns:
        raise DataError(
            f"{where}: {annotated!r} and {synthetic!r} share no prompt: "
            "both must start with the same user message"
        )
    roles = [m["role"] for m in turns]
    if roles[-1] != "user" or any(role not in CHAT_ROLES for role in roles):
        raise DataError(
            f"{where}: {subject} must be chat messages ending with a user message "
            f"(roles {', '.join(map(repr, CHAT_ROLES))}), got roles {roles}"
        )
    for index, message in enumerate(turns):
        if not message["content"].strip():
            raise DataError(f"{where}: {subject}: item {index} 'content' is empty")
    return (
        _as_prompt(turns),
        _response(example["chosen"], annotated, where, given=False),
        _response(example["rejected"], synthetic, where, given=True),
    )


def row_to_record(
    row: Mapping[str, Any],
    *,
    where: str,
    index: int,
    repeated_prompts: bool = False,
    turn: str = "first",
) -> Record:
    """Validate one source row and convert it to a canonical record.

    Accepted rows (:data:`LAYOUTS`, detected by :func:`detect_layout`): chat rows with
    ``messages`` and ShareGPT rows with ``conversations`` (one turn taken by
    :func:`conversation_turn` with ``turn``: the first, as for UltraChat and SPIN, or the last),
    pair rows with ``prompt`` and ``real`` (alias ``response``), SPIN rows (``real`` and
    ``generated`` message lists) and TRL preference rows (``prompt``, ``chosen``,
    ``rejected``; standard or conversational). The annotated response is ``real`` /
    ``chosen``; a synthetic response the row gives (``generated`` / ``rejected``) is kept,
    possibly empty, as ``generated``. The id is the prompt's (:func:`prompt_id`); with
    ``repeated_prompts`` (several annotated responses per prompt, as in the embedded
    testbed) it is the id of (prompt, row index), so rows with the same prompt stay distinct.
    """
    if not isinstance(row, Mapping):
        raise DataError(f"{where}: expected an object, got {type(row).__name__}")
    layout = detect_layout(row)
    generated: str | None = None
    if layout == "preference":
        prompt, real, generated = _preference_row(row, where, "chosen", "rejected")
    elif layout == "spin":
        prompt, real, generated = _preference_row(row, where, "real", "generated")
    elif layout == "chat":
        prompt, real = conversation_turn(row["messages"], where, turn=turn)
    elif layout == "sharegpt":
        messages = sharegpt_messages(row["conversations"], where)
        prompt, real = conversation_turn(messages, where, turn=turn, field="conversations")
    elif layout == "pairs":
        response_field = next(f for f in _RESPONSE_FIELDS if f in row)
        prompt = _string(row["prompt"], "prompt", where)
        real = _string(row[response_field], response_field, where)
        if _present(row, "generated"):
            generated = _string(row["generated"], "generated", where, allow_empty=True)
    else:
        raise DataError(f"{where}: {_UNKNOWN_LAYOUT}; found fields {sorted(row)}")
    record_id = prompt_id(f"{prompt_key(prompt)}\u0000{index}" if repeated_prompts else prompt)
    record: Record = {"id": record_id, "prompt": prompt, "real": real, "source_index": index}
    if generated is not None:
        record["generated"] = generated
    return record


def deduplicate(records: Iterable[Record]) -> tuple[list[Record], int]:
    """Keep the first record of each prompt id; returns (records, number dropped)."""
    seen: set[str] = set()
    kept: list[Record] = []
    dropped = 0
    for record in records:
        if record["id"] in seen:
            dropped += 1
            continue
        seen.add(record["id"])
        kept.append(record)
    return kept, dropped


# --------------------------------------------------------------------------------------
# Reading sources
# --------------------------------------------------------------------------------------


def is_local_source(source: str | os.PathLike) -> bool:
    """True when ``source`` names an existing local file or folder (else it is a hub id)."""
    return Path(source).exists()


def is_missing_local_file(source: str | os.PathLike) -> bool:
    """True when ``source`` reads as a local path (a data suffix, or starts with ``.``,
    ``/`` or ``~``) that does not exist, rather than as a hub dataset id."""
    text = str(source)
    looks_local = Path(text).suffix.lower() in LOCAL_SUFFIXES or text.startswith((".", "/", "~"))
    return looks_local and not Path(text).expanduser().exists()


def _decode(raw: bytes, path: Path, first_line: int = 1) -> str:
    """UTF-8 text of ``raw`` (the bytes of ``path`` from line ``first_line`` on)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + raw[: err.start].count(b"\n")
        raise DataError(
            f"{path} line {line}: not UTF-8 text (byte {raw[err.start : err.start + 1]!r}); "
            "re-encode the file as UTF-8"
        ) from err


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """(``"<path> line <n>"``, row) of each non-blank line, numbered from 1."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path} line {number}"
            line = _decode(raw, path, number).removeprefix("\ufeff")
            if not line.strip():
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: invalid JSON: {err.msg} (column {err.colno})") from err


def _numbered(label: str, rows: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    return ((f"{label} row {index}", row) for index, row in enumerate(rows, start=1))


class CutOffError(DataError):
    """A JSON array that ends inside a record (a truncated download or copy).

    ``rows`` holds the ``whole`` complete records before the cut (as (where, row) pairs);
    ``line`` is the 1-based line where the cut record starts."""

    def __init__(self, path: Path, line: int, rows: list[tuple[str, Any]]):
        self.path, self.line, self.rows, self.whole = path, line, rows, len(rows)
        super().__init__(
            f"{path} line {line}: the file is cut off inside record {self.whole + 1} "
            f"({self.whole} whole records precede the cut); set data.skip_invalid: true to "
            "use those records"
        )


def _ends_early(err: json.JSONDecodeError, text: str) -> bool:
    """Whether a decoding error is the end of the text arriving inside a value."""
    return err.msg.startswith("Unterminated string") or err.pos >= len(text.rstrip())


def _salvage(path: Path, text: str, error: json.JSONDecodeError) -> CutOffError:
    """The whole records of a JSON array cut off inside a record, decoded one by one, as
    the :class:`CutOffError` to raise; any other fault raises its own DataError."""
    decoder = json.JSONDecoder()
    rows: list[tuple[str, Any]] = []
    position = text.index("[") + 1
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text):  # the array stops between two records
            return CutOffError(path, text.count("\n") + 1, rows)
        if text[position] == "]":
            raise DataError(f"{path} line {error.lineno}: invalid JSON: {error.msg}") from error
        try:
            row, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as err:
            if not _ends_early(err, text):
                raise DataError(f"{path} line {err.lineno}: invalid JSON: {err.msg}") from err
            return CutOffError(path, text.count("\n", 0, position) + 1, rows)
        rows.append((f"{path} row {len(rows) + 1}", row))
        position = end


def _read_json_file(path: Path) -> Iterable[tuple[str, Any]]:
    text = _decode(path.read_bytes(), path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if "Extra data" in str(err):  # JSON Lines saved as .json (as datasets' to_json does)
            return _jsonl_rows(path)
        if text.lstrip().startswith("[") and _ends_early(err, text):
            raise _salvage(path, text, err) from err
        raise DataError(f"{path} line {err.lineno}: invalid JSON: {err.msg}") from err
    if isinstance(data, list):
        return _numbered(str(path), data)
    if isinstance(data, Mapping):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            return _numbered(str(path), lists[0])
    raise DataError(
        f"{path}: expected a JSON list of rows (or an object holding one list), got {type(data).__name__}"
    )


def _read_arrow_file(path: Path) -> list[dict[str, Any]]:
    import pyarrow as pa

    with pa.memory_map(str(path), "r") as source:
        try:
            table = pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            table = pa.ipc.open_file(source).read_all()
    return table.to_pylist()


def _local_rows(path: Path, split: str) -> tuple[str, Iterable[tuple[str, Any]]]:
    label = str(path)
    if path.is_dir():
        import datasets

        try:
            loaded = datasets.load_from_disk(str(path))
        except FileNotFoundError as err:
            raise ValueError(
                f"{path}: a folder source must be a dataset saved with save_to_disk; "
                f"for files pass one {'/'.join(LOCAL_SUFFIXES)} file"
            ) from err
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"{path}: no split {split!r}; available: {sorted(loaded)}")
            loaded = loaded[split]
            label = f"{path}[{split}]"
        return label, _numbered(label, loaded)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return label, _jsonl_rows(path)
    if suffix == ".json":
        return label, _read_json_file(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return label, _numbered(label, pq.read_table(path).to_pylist())
    if suffix == ".arrow":
        return label, _numbered(label, _read_arrow_file(path))
    raise ValueError(
        f"{path}: unsupported file type {suffix!r}; use one of {', '.join(LOCAL_SUFFIXES)}"
    )


def _hub_rows(
    source: str, split: str, revision: str | None
) -> tuple[str, Iterable[tuple[str, Any]]]:
    import datasets

    if revision is None:
        logger.warning(
            "loading %s without a pinned revision: record one for reproducibility", source
        )
    dataset = datasets.load_dataset(source, split=split, revision=revision)
    fields = ("messages", "prompt", "real", "response", "generated", "chosen", "rejected")
    columns = [c for c in fields if c in dataset.column_names]
    if {"chosen", "rejected"} <= set(columns) or {"real", "generated"} <= set(columns):
        columns = [c for c in columns if c != "messages"]  # a preference layout is read first
    elif "messages" in columns:
        columns = ["messages"]  # UltraChat: prompt == messages[0].content; read one copy
    if columns:
        dataset = dataset.select_columns(columns)
    label = f"{source}@{revision or 'unpinned'}[{split}]"
    return label, _numbered(label, dataset)


def read_rows(
    source: str | os.PathLike, *, split: str = "train_sft", revision: str | None = None
) -> tuple[str, Iterable[tuple[str, Any]]]:
    """(label, iterable of (where, raw row)) for a local path or a hub dataset id; ``where``
    names the row for error messages: ``<file> line <n>`` (JSON Lines) or ``<label> row <n>``,
    numbered from 1. A ``pkg:`` source is the file an installed distribution ships
    (:mod:`iris.packages`)."""
    source = resolve(source)
    if is_local_source(source):
        return _local_rows(Path(source), split)
    source = str(source)
    if is_missing_local_file(source):
        raise FileNotFoundError(f"data file {source} does not exist")
    return _hub_rows(source, split, revision)


@dataclasses.dataclass
class LoadedData:
    """Validated, deduplicated records of one source, with counts for the run record."""

    records: list[Record]
    label: str
    n_rows: int
    n_invalid: int
    n_duplicates: int
    duplicate_examples: list[str] = dataclasses.field(default_factory=list)
    layouts: dict[str, int] = dataclasses.field(default_factory=dict)
    """Valid rows per :data:`LAYOUTS` name."""
    n_without_synthetic: int = 0
    """Kept rows (one per prompt) whose layout gives no synthetic response."""
    n_empty_synthetic: int = 0
    """Kept rows whose given synthetic response is empty."""
    without_synthetic: list[str] = dataclasses.field(default_factory=list)
    """Where (``line 3`` / ``row 3``) the first of those rows are (at most :data:`MAX_PLACES`)."""
    empty_synthetic: list[str] = dataclasses.field(default_factory=list)
    """Where the first rows with an empty given synthetic response are, with its field."""
    cut: dict[str, Any] | None = None
    """``{"line", "whole_records"}`` of a JSON file cut off inside a record (read with
    ``skip_invalid``: the whole records before the cut are used), else None."""

    def stats(self) -> dict[str, Any]:
        stats = {
            "source": self.label,
            "n_rows": self.n_rows,
            "n_invalid_skipped": self.n_invalid,
            "n_duplicate_prompts": self.n_duplicates,
            "n_unique": len(self.records),
            "layouts": dict(self.layouts),
        }
        if any(layout in SYNTHETIC_FIELDS for layout in self.layouts):
            stats["n_empty_given_synthetic"] = self.n_empty_synthetic
        if self.cut is not None:
            stats["cut_off"] = dict(self.cut)
        return stats


def load_annotated(
    source: str | os.PathLike,
    *,
    split: str = "train_sft",
    revision: str | None = None,
    skip_invalid: bool = False,
    repeated_prompts: bool = False,
    turn: str = "first",
) -> LoadedData:
    """Load (prompt, annotated response) records from a hub id or a local file.

    Rows are validated (errors name source, 1-based line or row, and field; with
    ``skip_invalid=True`` invalid rows are skipped and counted, and a JSON file cut off
    inside a record gives its whole records, the cut recorded in ``cut``), converted to
    records (conversations by the ``turn`` rule of :func:`conversation_turn`) and
    deduplicated by prompt (first occurrence kept).
    """
    cut: dict[str, Any] | None = None
    try:
        label, rows = read_rows(source, split=split, revision=revision)
    except CutOffError as err:
        if not skip_invalid:
            raise
        logger.warning(
            "%s line %d: the file is cut off inside record %d; using the %d whole records "
            "before the cut",
            err.path,
            err.line,
            err.whole + 1,
            err.whole,
        )
        label, rows = str(err.path), err.rows
        cut = {"line": err.line, "whole_records": err.whole}

    records: list[Record] = []
    first_seen: dict[str, str] = {}
    duplicates: list[str] = []
    layouts: dict[str, int] = {}
    without_synthetic: list[str] = []
    empty_synthetic: list[str] = []
    n_rows = n_invalid = n_without_synthetic = n_empty_synthetic = 0
    for index, (where, row) in enumerate(rows):
        n_rows += 1
        try:
            record = row_to_record(
                row, where=where, index=index, repeated_prompts=repeated_prompts, turn=turn
            )
        except DataError:
            if not skip_invalid:
                raise
            n_invalid += 1
            continue
        records.append(record)
        layout = detect_layout(row)
        layouts[layout] = layouts.get(layout, 0) + 1
        place = where.removeprefix(label).strip()
        if record["id"] in first_seen:
            duplicates.append(f"{place} repeats {first_seen[record['id']]}")
            continue
        first_seen[record["id"]] = place
        if "generated" not in record:
            n_without_synthetic += 1
            if len(without_synthetic) < MAX_PLACES:
                without_synthetic.append(place)
        elif not record["generated"].strip():
            n_empty_synthetic += 1
            if len(empty_synthetic) < MAX_PLACES:
                empty_synthetic.append(f"{place} ({SYNTHETIC_FIELDS[layout]!r})")
    if n_rows == 0:
        raise DataError(f"{label}: no rows (the source is empty)")
    if n_invalid:
        logger.warning("%s: skipped %d invalid row(s) of %d", label, n_invalid, n_rows)
    records, n_duplicates = deduplicate(records)
    return LoadedData(
        records,
        label,
        n_rows,
        n_invalid,
        n_duplicates,
        duplicates[:3],
        layouts,
        n_without_synthetic,
        n_empty_synthetic,
        without_synthetic,
        empty_synthetic,
        cut,
    )


def _places(places: Sequence[str], total: int) -> str:
    return ", ".join(places) + (", ..." if total > len(places) else "")


def given_synthetic(
    source: str | os.PathLike,
    *,
    split: str = "train_sft",
    revision: str | None = None,
    skip_invalid: bool = False,
    repeated_prompts: bool = False,
) -> dict[str, dict[str, Any]]:
    """The synthetic responses a source gives (SPIN's ``generated``, TRL's ``rejected``).

    Returns ``{record id: {"id", "text", "truncated": False}}``, the generation table
    :func:`build_selfplay_records` takes as ``generated`` (ids are those of
    :func:`load_annotated` with the same arguments, i.e. of the prompts, so a table read
    from one file matches the records of another file holding the same prompts). Given
    responses are taken as complete turns (they end with the end-of-turn token in
    training). Raises :class:`DataError`, naming the source and the 1-based lines/rows,
    when a row's layout gives no synthetic response (chat rows, pairs without
    ``generated``) or a given synthetic response is empty. Of rows repeating a prompt, the
    first is used (as for the annotated records).
    """
    loaded = load_annotated(
        source,
        split=split,
        revision=revision,
        skip_invalid=skip_invalid,
        repeated_prompts=repeated_prompts,
    )
    if loaded.n_without_synthetic:
        raise DataError(
            f"{loaded.label}: {loaded.n_without_synthetic} row(s) give no synthetic response "
            f"({_places(loaded.without_synthetic, loaded.n_without_synthetic)}); it is read "
            "from SPIN's 'generated' or TRL's 'rejected' field"
        )
    if loaded.n_empty_synthetic:
        raise DataError(
            f"{loaded.label}: {loaded.n_empty_synthetic} row(s) give an empty synthetic "
            f"response: {_places(loaded.empty_synthetic, loaded.n_empty_synthetic)}; "
            "fill them in or remove those rows"
        )
    return {
        r["id"]: {"id": r["id"], "text": r["generated"], "truncated": False} for r in loaded.records
    }


# --------------------------------------------------------------------------------------
# Subsets
# --------------------------------------------------------------------------------------


def selection_rank(record_id: str, seed: int) -> bytes:
    """Sort key of a record for subset selection: sha256 of (seed, id)."""
    return hashlib.sha256(f"{seed}\x1f{record_id}".encode()).digest()


def rank_records(records: Iterable[Record], seed: int) -> list[Record]:
    """Records in selection order for ``seed`` (independent of the input order)."""
    return sorted(records, key=lambda r: selection_rank(r["id"], seed))


@dataclasses.dataclass
class DataSplit:
    """Training records (in selection order), held-out records, and provenance counts."""

    train: list[Record]
    heldout: list[Record]
    stats: dict[str, Any]


def select_subsets(
    records: Sequence[Record],
    *,
    n_train: int | None,
    n_heldout: int = 0,
    seed: int = 0,
    heldout_candidates: Sequence[Record] | None = None,
) -> DataSplit:
    """Seeded, nested training subset and disjoint held-out prompts.

    Records are deduplicated by prompt and ranked by ``sha256(seed, id)``. The training set
    is the first ``n_train`` of the ranking (all but the held-out ones when None), so for a
    fixed seed a smaller subset is always a prefix of a larger one. Held-out records are the
    last ``n_heldout`` of the ranking or, with ``heldout_candidates`` (another split), the
    first ``n_heldout`` candidates — ranked the same way — whose prompt is not in
    ``records`` at all. Raises when there are not enough unique prompts.
    """
    if n_train is not None and n_train <= 0:
        raise ValueError(f"n_train must be positive, got {n_train}")
    if n_heldout < 0:
        raise ValueError(f"n_heldout must be >= 0, got {n_heldout}")
    unique, n_duplicates = deduplicate(records)
    ranked = rank_records(unique, seed)
    stats: dict[str, Any] = {
        "seed": seed,
        "n_pool": len(ranked),
        "n_duplicate_prompts": n_duplicates,
    }
    if heldout_candidates is None:
        wanted = (len(ranked) - n_heldout) if n_train is None else n_train
        if wanted <= 0 or wanted + n_heldout > len(ranked):
            raise ValueError(
                f"requested n_train={n_train} and n_heldout={n_heldout}, but only "
                f"{len(ranked)} unique prompts are available"
            )
        train = ranked[:wanted]
        heldout = ranked[::-1][:n_heldout]
    else:
        wanted = len(ranked) if n_train is None else n_train
        if wanted > len(ranked):
            raise ValueError(
                f"requested n_train={n_train}, but only {len(ranked)} unique prompts are available"
            )
        pool_ids = {r["id"] for r in ranked}
        candidates, _ = deduplicate(r for r in heldout_candidates if r["id"] not in pool_ids)
        stats["n_heldout_candidates"] = len(candidates)
        if n_heldout > len(candidates):
            raise ValueError(
                f"requested n_heldout={n_heldout}, but only {len(candidates)} held-out prompts "
                "are not among the training prompts"
            )
        train = ranked[:wanted]
        heldout = rank_records(candidates, seed)[:n_heldout]
    stats.update(n_train=len(train), n_heldout=len(heldout))
    return DataSplit(train=train, heldout=heldout, stats=stats)


def prepare_data(config: DataConfig) -> DataSplit:
    """Load, validate, deduplicate and split the annotated data described by a ``DataConfig``."""
    loaded = load_annotated(
        config.source,
        split=config.split,
        revision=config.revision,
        skip_invalid=config.skip_invalid,
        repeated_prompts=config.repeated_prompts,
        turn=config.turn,
    )
    loaded.records, n_long = within_length(loaded.records, config)
    candidates = None
    heldout_stats: dict[str, Any] = {}
    if config.heldout_split is not None and config.n_heldout > 0:
        held = load_annotated(
            config.source,
            split=config.heldout_split,
            revision=config.revision,
            skip_invalid=config.skip_invalid,
            turn=config.turn,
        )
        candidates, n_long_heldout = within_length(held.records, config)
        heldout_stats = {"heldout_source": {**held.stats(), "n_too_long": n_long_heldout}}
    try:
        split = select_subsets(
            loaded.records,
            n_train=config.n_train,
            n_heldout=config.n_heldout,
            seed=config.seed,
            heldout_candidates=candidates,
        )
    except ValueError as err:
        repeated = ""
        if loaded.n_duplicates:
            examples = "; ".join(loaded.duplicate_examples)
            repeated = f" ({loaded.n_duplicates} rows repeat an earlier prompt: {examples}, ...)"
        raise DataError(f"{loaded.label}: {err}{repeated}") from err
    split.stats = {**loaded.stats(), "n_too_long": n_long, **heldout_stats, **split.stats}
    return split


def within_length(records: Sequence[Record], config: DataConfig) -> tuple[list[Record], int]:
    """The records whose prompt and annotated response fit ``data.max_prompt_chars`` and
    ``data.max_response_chars`` (characters of all prompt messages; None: no limit), and
    how many were dropped."""
    limits = (config.max_prompt_chars, config.max_response_chars)
    if limits == (None, None):
        return list(records), 0
    kept = [
        r
        for r in records
        if (
            limits[0] is None
            or sum(len(m["content"]) for m in prompt_messages(r["prompt"])) <= limits[0]
        )
        and (limits[1] is None or len(r["real"]) <= limits[1])
    ]
    return kept, len(records) - len(kept)


def write_records(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write records as JSON Lines atomically."""
    return atomic_write_jsonl(path, records)


def read_records(path: str | os.PathLike) -> list[Record]:
    """Read records written by :func:`write_records` (or any JSONL of records)."""
    return read_jsonl(path)


# --------------------------------------------------------------------------------------
# The chat format shared by generation and training
# --------------------------------------------------------------------------------------

_SENTINEL = "\u2063IRIS\u2063RESPONSE\u2063"


def _render(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, str]],
    *,
    add_generation_prompt: bool,
) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; "
            "generation and training both need one (set tokenizer.chat_template)"
        )
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    if not isinstance(text, str):
        raise TypeError(
            f"apply_chat_template(tokenize=False) returned {type(text).__name__}, expected str"
        )
    return text


def _adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == bos_id


def format_prompt(tokenizer: PreTrainedTokenizerBase, prompt: Prompt) -> str:
    """The prompt rendered by the tokenizer's chat template, ending with the generation prompt.

    This string is what the model sees, both when sampling synthetic responses and in the
    training pairs. When the template writes the BOS token and the tokenizer also adds one
    while encoding (Llama/Mistral tokenizers), the template's copy is removed, so that
    :func:`encode_prompts` (and TRL, which encodes with ``tokenizer(text)``) see one BOS.
    """
    return format_prompts(tokenizer, [prompt])[0]


def format_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Prompt]) -> list[str]:
    """:func:`format_prompt` for many prompts (strings or chat messages, :data:`Prompt`)."""
    bos = getattr(tokenizer, "bos_token", None)
    strip_bos = bool(bos) and _adds_bos(tokenizer)
    formatted = []
    for prompt in prompts:
        text = _render(tokenizer, prompt_messages(prompt), add_generation_prompt=True)
        if strip_bos and text.startswith(bos):
            text = text[len(bos) :]
        formatted.append(text)
    return formatted


def encode_prompts(tokenizer: PreTrainedTokenizerBase, formatted: Sequence[str]) -> list[list[int]]:
    """Token ids of formatted prompts, encoded exactly as TRL encodes a string prompt
    (``tokenizer(text)``, the tokenizer's default special tokens)."""
    if not formatted:
        return []
    return [list(ids) for ids in tokenizer(list(formatted))["input_ids"]]


@dataclasses.dataclass(frozen=True)
class TurnFormat:
    """How the chat template wraps an assistant response: ``prefix + content + suffix``.

    ``end`` is ``suffix`` cut right after its first special token (the end-of-turn token,
    e.g. ``</s>``, ``<|im_end|>``, ``<|eot_id|>``): what a response that stopped by itself
    ends with. ``end_token`` is that token (None when the suffix holds none).
    """

    prefix: str
    suffix: str
    end: str
    end_token: str | None


_TURN_FORMATS: dict[tuple[str, tuple[str, ...]], TurnFormat] = {}


def _compute_turn_format(tokenizer: PreTrainedTokenizerBase, specials: Iterable[str]) -> TurnFormat:
    head = _render(tokenizer, [{"role": "user", "content": "x"}], add_generation_prompt=True)
    full = _render(
        tokenizer,
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": _SENTINEL}],
        add_generation_prompt=False,
    )
    if not full.startswith(head) or _SENTINEL not in full[len(head) :]:
        raise ValueError(
            "the chat template renders the prompt differently with and without a response; "
            "generation and training would see different prompts"
        )
    completion = full[len(head) :]
    cut = completion.index(_SENTINEL)
    prefix, suffix = completion[:cut], completion[cut + len(_SENTINEL) :]
    positions = [(suffix.find(tok), tok) for tok in specials if tok and tok in suffix]
    if positions:
        position, token = min(positions, key=lambda p: (p[0], -len(p[1])))
        return TurnFormat(prefix, suffix, suffix[: position + len(token)], token)
    return TurnFormat(prefix, suffix, suffix, None)


def turn_format(tokenizer: PreTrainedTokenizerBase) -> TurnFormat:
    """The assistant-turn wrapping of ``tokenizer``'s chat template (see :class:`TurnFormat`).

    Cached per (template, special tokens), the only inputs of the rendering.
    """
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        _render(tokenizer, [], add_generation_prompt=True)  # raises the no-template error
    specials = tuple(
        sorted({*getattr(tokenizer, "all_special_tokens", []), *tokenizer.get_added_vocab()})
    )
    key = (str(template), specials)
    if key not in _TURN_FORMATS:
        if len(_TURN_FORMATS) > 64:
            _TURN_FORMATS.clear()
        _TURN_FORMATS[key] = _compute_turn_format(tokenizer, specials)
    return _TURN_FORMATS[key]


def format_completion(
    tokenizer: PreTrainedTokenizerBase, prompt: Prompt, response: str, *, terminated: bool = True
) -> str:
    """The response as the chat template renders it after :func:`format_prompt`.

    ``terminated=True``: the response ends its turn (annotated responses, generations that
    stopped at an end-of-turn token) and the text ends with the end-of-turn token.
    ``terminated=False``: a generation cut at ``max_new_tokens`` — no end-of-turn token is
    added, so training never teaches the model to stop where it did not.
    Anything the template writes after the end-of-turn token (a newline before the next
    turn) is left out: generation stops at that token, so it is never sampled.
    """
    fmt = turn_format(tokenizer)
    messages = prompt_messages(prompt)
    head = _render(tokenizer, messages, add_generation_prompt=True)
    full = _render(
        tokenizer,
        [*messages, {"role": "assistant", "content": response}],
        add_generation_prompt=False,
    )
    if not full.startswith(head):
        raise ValueError(
            "the chat template renders this prompt differently with and without a response"
        )
    completion = full[len(head) :]
    if not completion.endswith(fmt.suffix):
        raise ValueError(
            f"the chat template does not end this response with its usual suffix {fmt.suffix!r}"
        )
    body = completion[: len(completion) - len(fmt.suffix)]
    return body + (fmt.end if terminated else "")


def build_selfplay_records(
    records: Sequence[Record],
    generated: Mapping[str, Mapping[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    *,
    proto: Mapping[str, Mapping[str, Any]] | None = None,
    tag: str | None = None,
) -> list[dict[str, Any]]:
    """The self-play training rows: ``{"id", "prompt", "real", "generated"[, "proto"]}``.

    ``prompt`` is :func:`format_prompt` of the record's prompt; ``real``, ``generated`` and
    ``proto`` are :func:`format_completion` strings (so ``prompt + real`` is exactly what
    the chat template renders). ``generated``/``proto`` map record ids to generation rows
    (``{"prompt", "text", "truncated", ...}`` as written by :mod:`iris.generation`); a
    generation made from a different prompt string (the format drifted) raises. Truncated
    generations keep no end-of-turn token and are flagged in ``generated_truncated`` /
    ``proto_truncated``. ``tag`` (e.g. ``"iter_1"``) is stored as ``generated_by``.
    """
    formatted = format_prompts(tokenizer, [r["prompt"] for r in records])
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    sources = {"generated": generated, **({"proto": proto} if proto is not None else {})}
    for record, prompt_text in zip(records, formatted, strict=True):
        row: dict[str, Any] = {
            "id": record["id"],
            "prompt": prompt_text,
            "real": format_completion(tokenizer, record["prompt"], record["real"]),
        }
        for name, table in sources.items():
            generation = table.get(record["id"])
            if generation is None:
                missing.append(f"{name}:{record['id']}")
                continue
            if "prompt" in generation and generation["prompt"] != prompt_text:
                raise ValueError(
                    f"record {record['id']}: the {name} response was generated from the prompt "
                    f"{generation['prompt']!r}, but training formats it as {prompt_text!r}"
                )
            truncated = bool(generation["truncated"])
            row[name] = format_completion(
                tokenizer, record["prompt"], generation["text"], terminated=not truncated
            )
            row[f"{name}_truncated"] = truncated
        if tag is not None:
            row["generated_by"] = tag
        rows.append(row)
    if missing:
        raise ValueError(f"{len(missing)} record(s) have no generation, e.g. {missing[:5]}")
    return rows
