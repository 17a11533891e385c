"""Configs: dataclasses are the schema, YAML supplies the values, dotted flags override them.

This module owns config loading for every entry point. A config class is a (nested)
dataclass whose fields carry ``metadata={"help": ...}`` and validate themselves in
``__post_init__``. :func:`load_config` reads a YAML file, applies ``--section.key value``
overrides parsed with the field's declared type, and builds the instance; unknown keys
fail loudly, naming the key and the file and suggesting close matches. The resolved
config dumps back to YAML/JSON (:func:`dump_yaml`, :func:`to_dict`) for the run manifest.

Fields that do not change results (output paths, logging) are declared with
``metadata={"affects_results": False}``, or for entries of free-form mapping fields in the
class attribute ``NON_RESULT_KEYS``; :func:`non_result_keys` collects them for the resume
check of :mod:`iris.runs`.

The self-play schema (:class:`SelfPlayConfig`) lives here too. Its ``training`` section is
a free-form mapping handed to the trainer's config class, which validates it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "DataConfig",
    "GenerationConfig",
    "ModelConfig",
    "SelfPlayConfig",
    "apply_overrides",
    "dump_json",
    "dump_yaml",
    "from_dict",
    "load_config",
    "load_yaml",
    "non_result_keys",
    "parse_overrides",
    "to_dict",
]


class ConfigError(ValueError):
    """An invalid config: unknown key, wrong type, bad value. The message names key and source."""


# --------------------------------------------------------------------------------------
# YAML with YAML-1.2 floats (PyYAML reads "5e-7" as a string)
# --------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``5e-7``, ``1E3`` and ``.inf`` as floats, as YAML 1.2 does."""


_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)
_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def load_yaml(text_or_path: str | os.PathLike) -> Any:
    """Parse YAML (a path or a YAML string) with YAML-1.2 float syntax."""
    if isinstance(text_or_path, os.PathLike):
        text = Path(text_or_path).read_text(encoding="utf-8")
    else:
        text = text_or_path
    return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader subclass


# --------------------------------------------------------------------------------------
# Type handling
# --------------------------------------------------------------------------------------

_NONE_STRINGS = {"none", "null", "~"}
_TRUE_STRINGS = {"true", "yes", "on", "1"}
_FALSE_STRINGS = {"false", "no", "off", "0"}


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_SCALARS = (bool, int, float, str, type(None))


def check_scalar_fields(cls: type, values: Mapping[str, Any], prefix: str) -> None:
    """Check ``values`` against the scalar fields (bool/int/float/str, optional) of a
    dataclass such as a trainer config, naming the key (``training.beta: expected a
    number, got 'two'``); other fields are left to the class itself."""
    hints = _field_types(cls)
    for key, value in values.items():
        tp = hints.get(key)
        options = typing.get_args(tp) if _is_union(tp) else (tp,)
        if tp is not None and all(option in _SCALARS for option in options):
            _check_value(value, tp, f"{prefix}{key}")


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _check_value(value: Any, tp: Any, where: str) -> Any:
    """Check (and lightly normalise) a YAML/JSON value against a type annotation."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if _is_union(tp):
        for option in typing.get_args(tp):
            try:
                return _check_value(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected None, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: must be one of {list(choices)}, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected a boolean, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if origin in (list, Sequence, tuple) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item_type = args[0] if args else Any
        checked = [_check_value(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(checked) if origin is tuple or tp is tuple else checked
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    raise ConfigError(f"{where}: unsupported field type {_type_name(tp)}")


def _parse_scalar_text(text: str) -> Any:
    """A free-form override value: int, float, bool, null, a YAML flow list/map, else the string."""
    stripped = text.strip()
    if stripped.lower() in _NONE_STRINGS:
        return None
    if stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    for convert in (int, float):
        try:
            return convert(stripped)
        except ValueError:
            pass
    if stripped[:1] in ("[", "{"):
        return load_yaml(stripped)
    return text


def _parse_typed(text: str, tp: Any, where: str) -> Any:
    """Parse an override string with the field's declared type."""
    if tp is Any:
        return _parse_scalar_text(text)
    if _is_union(tp):
        options = typing.get_args(tp)
        if type(None) in options and text.strip().lower() in _NONE_STRINGS:
            return None
        errors: list[ConfigError] = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _parse_typed(text, option, where)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:  # Optional[X]: X's own message is the useful one
            raise errors[0]
        raise ConfigError(f"{where}: cannot parse {text!r} as {_type_name(tp)}")
    origin = typing.get_origin(tp)
    if origin is Literal:
        for choice in typing.get_args(tp):
            if str(choice) == text:
                return choice
        raise ConfigError(f"{where}: must be one of {list(typing.get_args(tp))}, got {text!r}")
    if tp is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE_STRINGS:
            return True
        if lowered in _FALSE_STRINGS:
            return False
        raise ConfigError(f"{where}: expected a boolean (true/false), got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {text!r}") from None
    if tp is str:
        return text
    if origin in (list, Sequence, tuple) or tp in (list, tuple):
        stripped = text.strip()
        if stripped.startswith("["):
            parsed = load_yaml(stripped)
            if not isinstance(parsed, list):
                raise ConfigError(f"{where}: expected a list, got {text!r}")
            items = parsed
            args = typing.get_args(tp)
            return _check_value(items, tp if args else list, where)
        args = typing.get_args(tp)
        item_type = args[0] if args else Any
        parts = [p for p in stripped.split(",") if p.strip()] if stripped else []
        values = [_parse_typed(p.strip(), item_type, f"{where}[{i}]") for i, p in enumerate(parts)]
        return tuple(values) if origin is tuple or tp is tuple else values
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        parsed = load_yaml(text) if text.strip() else {}
        if not isinstance(parsed, Mapping):
            raise ConfigError(f"{where}: expected a mapping such as '{{a: 1}}', got {text!r}")
        return dict(parsed)
    raise ConfigError(f"{where}: unsupported field type {_type_name(tp)}")


def suggest(key: str, candidates: Sequence[str]) -> str:
    """' Did you mean ...?' for a mistyped key (or the valid keys), to end an error message."""
    close = difflib.get_close_matches(key, list(candidates), n=3, cutoff=0.6)
    if close:
        return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
    return f" Valid keys: {', '.join(sorted(candidates))}."


# --------------------------------------------------------------------------------------
# Building, dumping, overriding
# --------------------------------------------------------------------------------------


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def from_dict(
    cls: type[T], data: Mapping[str, Any] | None, *, source: str = "<dict>", _prefix: str = ""
) -> T:
    """Build dataclass ``cls`` from a nested mapping, checking keys and value types.

    Unknown keys raise :class:`ConfigError` naming the dotted key and ``source`` with close
    matches; missing required fields and wrongly typed values likewise. Validation in
    ``__post_init__`` runs last and its ``ValueError`` is re-raised naming ``source``.
    """
    data = dict(data or {})
    if not _is_dataclass_type(cls):
        raise TypeError(f"{cls!r} is not a dataclass type")
    hints = _field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        raise ConfigError(
            f"{source}: unknown key {_prefix + str(key)!r} ({cls.__name__} has no field {key!r})."
            + suggest(str(key), list(fields))
        )
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        dotted = _prefix + name
        tp = hints[name]
        if name not in data:
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                if _is_dataclass_type(tp):
                    kwargs[name] = from_dict(tp, {}, source=source, _prefix=dotted + ".")
                    continue
                raise ConfigError(f"{source}: missing required key {dotted!r}")
            continue
        value = data[name]
        if _is_dataclass_type(tp):
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"{source}: key {dotted!r} must be a mapping (section), got {value!r}"
                )
            kwargs[name] = from_dict(tp, value, source=source, _prefix=dotted + ".")
        else:
            kwargs[name] = _check_value(value, tp, f"{source}: key {dotted!r}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        section = _prefix.rstrip(".") or cls.__name__
        raise ConfigError(f"{source}: invalid {section}: {err}") from err


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain nested dicts/lists (JSON- and YAML-safe)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    return json.loads(json.dumps(dataclasses.asdict(config)))


def dump_yaml(config: Any, path: str | os.PathLike | None = None) -> str:
    """The resolved config as YAML (field order kept); also written atomically to ``path`` if given."""
    text = yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)
    if path is not None:
        from iris.runs import atomic_write_text

        atomic_write_text(path, text)
    return text


def dump_json(config: Any, path: str | os.PathLike | None = None) -> str:
    """The resolved config as JSON; also written atomically to ``path`` if given."""
    text = json.dumps(to_dict(config), indent=2) + "\n"
    if path is not None:
        from iris.runs import atomic_write_text

        atomic_write_text(path, text)
    return text


def parse_overrides(args: Sequence[str]) -> list[tuple[str, str]]:
    """``["--data.n_train", "100", "--seed=3", "model.dtype=bfloat16"]`` → ``[(key, text), ...]``.

    Accepted forms: ``--key value``, ``--key=value`` and ``key=value``; keys are dotted
    paths (``section.key``; ``training.learning_rate`` reaches into a mapping field).
    Values stay strings here; :func:`apply_overrides` parses them with the field's type.

    >>> parse_overrides(["--data.n_train", "100", "--seed=3", "model.dtype=bfloat16"])
    [('data.n_train', '100'), ('seed', '3'), ('model.dtype', 'bfloat16')]
    """
    pairs: list[tuple[str, str]] = []
    i = 0
    args = list(args)
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            body = arg[2:]
            if "=" in body:
                key, value = body.split("=", 1)
            else:
                if i + 1 >= len(args) or (args[i + 1].startswith("--") and len(args[i + 1]) > 2):
                    raise ConfigError(
                        f"override {arg!r} needs a value: use '{arg} VALUE' or '{arg}=VALUE'"
                    )
                key, value = body, args[i + 1]
                i += 1
        elif "=" in arg:
            key, value = arg.split("=", 1)
        else:
            raise ConfigError(
                f"cannot parse override {arg!r}: expected '--key value' or 'key=value'"
            )
        key = key.strip().replace("-", "_")
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"invalid override key in {arg!r}")
        pairs.append((key, value))
        i += 1
    return pairs


def apply_overrides(
    cls: type,
    data: Mapping[str, Any] | None,
    overrides: Sequence[tuple[str, str]] | Mapping[str, str],
    *,
    source: str = "overrides",
) -> dict[str, Any]:
    """Apply dotted overrides to a raw config mapping, parsing each value with the field's type.

    Returns a new nested dict (``data`` is not modified); the keys are checked against the
    schema of ``cls`` (unknown keys fail with suggestions). Inside a free-form mapping field
    (e.g. ``training``) values are parsed as int/float/bool/null/YAML flow, else kept as strings.
    """
    result: dict[str, Any] = json.loads(json.dumps(dict(data or {})))
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    for key, text in items:
        parts = key.split(".")
        where = f"{source}: --{key}"
        current_cls: Any = cls
        target = result
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if current_cls is None:  # inside a free-form mapping
                if last:
                    target[part] = _parse_scalar_text(text)
                else:
                    nxt = target.setdefault(part, {})
                    if not isinstance(nxt, dict):
                        raise ConfigError(
                            f"{where}: {'.'.join(parts[: depth + 1])!r} is not a mapping"
                        )
                    target = nxt
                continue
            fields = {f.name: f for f in dataclasses.fields(current_cls) if f.init}
            if part not in fields:
                raise ConfigError(
                    f"{where}: unknown key {'.'.join(parts[: depth + 1])!r} "
                    f"({current_cls.__name__} has no field {part!r})." + suggest(part, list(fields))
                )
            tp = _field_types(current_cls)[part]
            if last:
                if _is_dataclass_type(tp):
                    raise ConfigError(
                        f"{where}: {key!r} is a section; override its keys ({key}.KEY VALUE)"
                    )
                target[part] = _parse_typed(text, tp, where)
                continue
            if _is_dataclass_type(tp):
                current_cls = tp
            elif (
                typing.get_origin(tp) in (dict, Mapping)
                or tp in (dict, Mapping)
                or (
                    _is_union(tp)
                    and any(
                        typing.get_origin(o) in (dict, Mapping) or o in (dict, Mapping)
                        for o in typing.get_args(tp)
                    )
                )
            ):
                current_cls = None
            else:
                raise ConfigError(
                    f"{where}: {'.'.join(parts[: depth + 1])!r} is not a section or mapping"
                )
            nxt = target.get(part)
            if nxt is None:
                nxt = target[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"{where}: {'.'.join(parts[: depth + 1])!r} is not a mapping")
            target = nxt
    return result


def load_config(
    cls: type[T],
    path: str | os.PathLike | None = None,
    overrides: Sequence[str] | Sequence[tuple[str, str]] | Mapping[str, str] = (),
) -> T:
    """Load ``cls`` from a YAML file (optional) plus overrides; the generic config entry point.

    ``overrides`` is either raw command-line arguments (``["--data.n_train", "100"]``), a
    list of ``(dotted key, text)`` pairs or a mapping of them. Every error names the key and
    the file (or ``overrides``).
    """
    source = str(path) if path is not None else "<defaults>"
    data: Any = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = load_yaml(path)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: invalid YAML: {err}") from err
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    if isinstance(overrides, Mapping):
        pairs: list[tuple[str, str]] = [(str(k), str(v)) for k, v in overrides.items()]
    else:
        overrides = list(overrides)
        if overrides and all(isinstance(o, str) for o in overrides):
            pairs = parse_overrides(overrides)  # type: ignore[arg-type]
        else:
            pairs = [(str(k), str(v)) for k, v in overrides]  # type: ignore[misc]
    if pairs:
        # Unknown keys in the file are reported before override errors.
        _check_keys(cls, data, source)
        data = apply_overrides(cls, data, pairs, source=f"{source} overrides")
        source = f"{source} (with overrides)"
    return from_dict(cls, data, source=source)


def _check_keys(cls: type, data: Mapping[str, Any], source: str, prefix: str = "") -> None:
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = _field_types(cls)
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(
                f"{source}: unknown key {prefix + str(key)!r} ({cls.__name__} has no field {key!r})."
                + suggest(str(key), list(fields))
            )
        if _is_dataclass_type(hints[key]) and isinstance(value, Mapping):
            _check_keys(hints[key], value, source, prefix + key + ".")


def non_result_keys(config_or_cls: Any) -> list[str]:
    """Dotted keys declared as not affecting results (for :func:`iris.runs.config_diff`).

    Collected from field metadata ``{"affects_results": False}`` and the class attribute
    ``NON_RESULT_KEYS`` (dotted keys or shell patterns inside mapping fields), recursively.
    """
    cls = config_or_cls if isinstance(config_or_cls, type) else type(config_or_cls)
    keys: list[str] = []

    def walk(klass: type, prefix: str) -> None:
        keys.extend(prefix + k for k in getattr(klass, "NON_RESULT_KEYS", ()))
        hints = _field_types(klass)
        for field in dataclasses.fields(klass):
            if not field.metadata.get("affects_results", True):
                keys.append(prefix + field.name)
            elif _is_dataclass_type(hints[field.name]):
                walk(hints[field.name], prefix + field.name + ".")

    walk(cls, "")
    return sorted(set(keys))


def config_help(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(dotted key, type and default, help)`` for every field, for ``--help`` and docs."""
    rows: list[tuple[str, str, str]] = []
    hints = _field_types(cls)
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        if _is_dataclass_type(tp):
            rows.extend(config_help(tp, prefix + field.name + "."))
            continue
        kind = _type_name(tp)
        if field.default is not dataclasses.MISSING:
            kind += f" = {field.default!r}"
        elif field.default_factory is dataclasses.MISSING:
            kind += ", required"
        rows.append((prefix + field.name, kind, field.metadata.get("help", "")))
    return rows


def format_config_help(cls: type) -> str:
    """Every key of a config class as an indented list (the epilog of ``iris selfplay --help``)."""
    return "\n".join(f"  {key} ({kind})\n      {text}" for key, kind, text in config_help(cls))


# --------------------------------------------------------------------------------------
# The self-play schema
# --------------------------------------------------------------------------------------


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


DTYPES = ("float32", "bfloat16", "float16", "auto")


@dataclasses.dataclass
class ModelConfig:
    """The starting checkpoint θ0."""

    name_or_path: str = dataclasses.field(
        metadata=_help("Hub id (e.g. alignment-handbook/zephyr-7b-sft-full) or local directory.")
    )
    revision: str | None = dataclasses.field(
        default=None,
        metadata=_help("Hub commit/tag to pin (record it: ac6e600e... for Zephyr in SPIN)."),
    )
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = dataclasses.field(
        default="float32",
        metadata=_help("Weights dtype; 'auto' keeps the checkpoint's dtype. Use bfloat16 on GPUs."),
    )
    train_dtype: Literal["float32", "bfloat16", "float16", "auto"] | None = dataclasses.field(
        default=None,
        metadata=_help(
            "Dtype the training stage loads the weights in (null: model.dtype). Keep float32 "
            "under plain DDP (bf16 mixed precision computes in bf16 but updates fp32 weights; "
            "pure-bf16 weights lose updates at lr 5e-7); ZeRO/FSDP keep fp32 masters anyway."
        ),
    )

    def __post_init__(self) -> None:
        _require(bool(self.name_or_path), "model.name_or_path must not be empty")
        _require(self.dtype in DTYPES, f"model.dtype must be one of {DTYPES}, got {self.dtype!r}")
        _require(
            self.train_dtype is None or self.train_dtype in DTYPES,
            f"model.train_dtype must be one of {DTYPES} or null, got {self.train_dtype!r}",
        )


@dataclasses.dataclass
class DataConfig:
    """Annotated (prompt, response) pairs: source, subset sizes and held-out prompts."""

    source: str = dataclasses.field(
        metadata=_help(
            "Hub dataset id (HuggingFaceH4/ultrachat_200k) or a local .jsonl/.json/.parquet/.arrow file or saved dataset."
        )
    )
    split: str = dataclasses.field(
        default="train_sft", metadata=_help("Split to read (hub or saved DatasetDict).")
    )
    revision: str | None = dataclasses.field(
        default=None, metadata=_help("Hub dataset commit to pin.")
    )
    n_train: int | None = dataclasses.field(
        default=50_000,
        metadata=_help(
            "Training pairs (nested subsets: a smaller n is a prefix of a larger one); null = all."
        ),
    )
    n_heldout: int = dataclasses.field(
        default=0, metadata=_help("Held-out prompts (never among the training prompts).")
    )
    heldout_split: str | None = dataclasses.field(
        default=None,
        metadata=_help(
            "Take held-out prompts from this split (e.g. test_sft) instead of the training pool."
        ),
    )
    seed: int = dataclasses.field(default=0, metadata=_help("Seed of the subset selection."))
    skip_invalid: bool = dataclasses.field(
        default=False,
        metadata=_help("Skip (and count) rows failing validation instead of raising."),
    )
    repeated_prompts: bool = dataclasses.field(
        default=False,
        metadata=_help(
            "Several annotated responses per prompt (the embedded testbed): rows are not "
            "deduplicated by prompt; no held-out prompts."
        ),
    )

    def __post_init__(self) -> None:
        _require(bool(self.source), "data.source must not be empty")
        _require(
            not (self.repeated_prompts and self.n_heldout),
            "data.n_heldout must be 0 with data.repeated_prompts (held-out prompts would repeat training prompts)",
        )
        _require(
            self.n_train is None or self.n_train > 0,
            f"data.n_train must be positive, got {self.n_train}",
        )
        _require(self.n_heldout >= 0, f"data.n_heldout must be >= 0, got {self.n_heldout}")


@dataclasses.dataclass
class GenerationConfig:
    """Sampling of the synthetic responses."""

    backend: Literal["hf", "vllm", "auto"] = dataclasses.field(
        default="hf",
        metadata=_help(
            "'hf' (transformers generate), 'vllm' (GPU extra), or 'auto' (vllm when installed and a GPU is present)."
        ),
    )
    temperature: float = dataclasses.field(
        default=1.0, metadata=_help("Sampling temperature; 0 = greedy.")
    )
    top_p: float = dataclasses.field(default=1.0, metadata=_help("Nucleus sampling mass; 1 = off."))
    top_k: int = dataclasses.field(default=0, metadata=_help("Top-k sampling; 0 = off."))
    max_new_tokens: int = dataclasses.field(
        default=256, metadata=_help("Generation limit (SPIN: 256).")
    )
    batch_size: int = dataclasses.field(
        default=16, metadata=_help("Prompts per HF generate call (changes padding, so results).")
    )
    shard_size: int = dataclasses.field(
        default=1024,
        metadata=_help(
            "Prompts per resumable shard (rounded up to a multiple of batch_size).",
            affects_results=False,
        ),
    )
    tensor_parallel_size: int = dataclasses.field(
        default=1, metadata=_help("vLLM tensor parallelism.")
    )
    vllm_kwargs: dict[str, Any] = dataclasses.field(
        default_factory=dict,
        metadata=_help("Extra keyword arguments for vllm.LLM (e.g. gpu_memory_utilization)."),
    )

    def __post_init__(self) -> None:
        _require(
            self.backend in ("hf", "vllm", "auto"), f"generation.backend: unknown {self.backend!r}"
        )
        _require(
            self.temperature >= 0 and math.isfinite(self.temperature),
            f"generation.temperature must be >= 0, got {self.temperature}",
        )
        _require(0 < self.top_p <= 1, f"generation.top_p must be in (0, 1], got {self.top_p}")
        _require(self.top_k >= 0, f"generation.top_k must be >= 0, got {self.top_k}")
        _require(
            self.max_new_tokens > 0,
            f"generation.max_new_tokens must be positive, got {self.max_new_tokens}",
        )
        _require(
            self.batch_size > 0, f"generation.batch_size must be positive, got {self.batch_size}"
        )
        _require(
            self.shard_size > 0, f"generation.shard_size must be positive, got {self.shard_size}"
        )
        _require(self.tensor_parallel_size > 0, "generation.tensor_parallel_size must be positive")


@dataclasses.dataclass
class SelfPlayConfig:
    """One self-play run: model × data × method, for ``iterations`` iterations.

    ``learning_rates``/``betas`` give per-iteration values (one per iteration) that replace
    ``training.learning_rate``/``training.beta`` (SPIN: 5e-7 then 1e-7 from iteration 2;
    β raised at the last iteration). See :meth:`training_for_iteration`.
    """

    # Entries of free-form mappings that do not change results.
    NON_RESULT_KEYS: ClassVar[tuple[str, ...]] = (
        "training.output_dir",
        "training.logging_dir",
        "training.logging_steps",
        "training.logging_first_step",
        "training.logging_strategy",
        "training.log_level",
        "training.report_to",
        "training.run_name",
        "training.disable_tqdm",
        "training.save_steps",
        "training.save_strategy",
        "training.save_total_limit",
        "training.dataloader_num_workers",
        "training.ddp_backend",
        "training.ddp_timeout",
        "generation.vllm_kwargs.gpu_memory_utilization",
    )

    model: ModelConfig = dataclasses.field(metadata=_help("Starting checkpoint θ0."))
    data: DataConfig = dataclasses.field(metadata=_help("Annotated data and subsets."))
    generation: GenerationConfig = dataclasses.field(
        default_factory=GenerationConfig, metadata=_help("Synthetic-response sampling.")
    )
    training: dict[str, Any] = dataclasses.field(
        default_factory=dict,
        metadata=_help(
            "Passed to the trainer's config (IrisConfig, a trl.DPOConfig); validated there."
        ),
    )
    iterations: int = dataclasses.field(
        default=5, metadata=_help("Self-play iterations (0 … T−1).")
    )
    synthetic_from: Literal["current", "previous_and_current"] = dataclasses.field(
        default="current",
        metadata=_help(
            "Synthetic responses of iteration t: from θt, or from θt−1 ∪ θt (SPIN's option)."
        ),
    )
    learning_rates: list[float] | None = dataclasses.field(
        default=None,
        metadata=_help(
            "Per-iteration learning rate (one per iteration) replacing training.learning_rate."
        ),
    )
    betas: list[float] | None = dataclasses.field(
        default=None, metadata=_help("Per-iteration β (one per iteration) replacing training.beta.")
    )
    per_iteration: dict[str, list[Any]] = dataclasses.field(
        default_factory=dict,
        metadata=_help(
            "Other training keys with one value per iteration, e.g. T-SPIN's {lam: [0, 0.1, 0.1]}."
        ),
    )
    seed: int = dataclasses.field(
        default=0, metadata=_help("Run seed (generation and training seeds derive from it).")
    )
    evaluation: dict[str, Any] = dataclasses.field(
        default_factory=dict,
        metadata=_help("Evaluation settings (tasks, limits), read by the evaluation stage."),
    )
    output_dir: str | None = dataclasses.field(
        default=None,
        metadata=_help(
            "Run directory (default: $IRIS_RUNS_DIR/<config's folder>/<config name>, as "
            "experiments/sweep.py names it).",
            affects_results=False,
        ),
    )

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            self.model = from_dict(ModelConfig, self.model, _prefix="model.")
        if isinstance(self.data, Mapping):
            self.data = from_dict(DataConfig, self.data, _prefix="data.")
        if isinstance(self.generation, Mapping):
            self.generation = from_dict(GenerationConfig, self.generation, _prefix="generation.")
        _require(self.iterations >= 1, f"iterations must be >= 1, got {self.iterations}")
        _require(
            self.synthetic_from in ("current", "previous_and_current"),
            f"synthetic_from must be 'current' or 'previous_and_current', got {self.synthetic_from!r}",
        )
        for name in ("learning_rates", "betas"):
            values = getattr(self, name)
            if values is None:
                continue
            _require(
                len(values) == self.iterations,
                f"{name} has {len(values)} values but iterations = {self.iterations} (give one per iteration)",
            )
            _require(
                all(v > 0 and math.isfinite(v) for v in values),
                f"{name} must be positive and finite, got {values}",
            )
        self._check_per_iteration()

    def _check_per_iteration(self) -> None:
        for key, values in self.per_iteration.items():
            _require(
                isinstance(values, list) and len(values) == self.iterations,
                f"per_iteration.{key} needs one value per iteration ({self.iterations}), got {values!r}",
            )

    def training_for_iteration(self, iteration: int) -> dict[str, Any]:
        """The ``training`` mapping for iteration ``t`` with its learning rate and β applied."""
        _require(
            0 <= iteration < self.iterations,
            f"iteration {iteration} outside 0..{self.iterations - 1}",
        )
        training = dict(self.training)
        if self.learning_rates is not None:
            training["learning_rate"] = self.learning_rates[iteration]
        if self.betas is not None:
            training["beta"] = self.betas[iteration]
        for key, values in self.per_iteration.items():
            training[key] = values[iteration]
        return training
