"""Reading configs: YAML values and ``--section.key value`` overrides into pydantic models.

Why pydantic (the schema is :mod:`iris.schema`): it checks the types and ranges declared on
the fields and locates every failure (``("data", "n_train")``), which becomes a one-line
message with the key path, the file and its 1-based line; it comes with DeepSpeed, lm-eval
and typer. OmegaConf has no Literal or range constraints and would be a new dependency;
``HfArgumentParser``/``TrlParser`` flatten the sections (``model.*``, ``data.*``) that the
configs under ``experiments/`` use. What remains here: YAML-1.2 floats (PyYAML reads
``5e-7`` as a string), the line of each key, overrides parsed with the field's type,
did-you-mean for unknown keys, the help listing and the keys that do not change results.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import operator
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, with_config

from iris.schema import DataConfig, GenerationConfig, ModelConfig, SelfPlayConfig

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "DataConfig",
    "GenerationConfig",
    "ModelConfig",
    "SelfPlayConfig",
    "apply_overrides",
    "config_help",
    "from_dict",
    "load_config",
    "load_yaml",
    "non_result_keys",
    "parse_overrides",
    "to_dict",
]


class ConfigError(ValueError):
    """An invalid config: unknown key, wrong type, bad value. The message names key and source."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``5e-7``, ``1E3`` and ``.inf`` as floats, as YAML 1.2 does."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


def load_yaml(text_or_path: str | os.PathLike) -> Any:
    """Parse YAML (a path or a YAML string) with YAML-1.2 float syntax."""
    if isinstance(text_or_path, os.PathLike):
        text_or_path = Path(text_or_path).read_text(encoding="utf-8")
    return yaml.load(text_or_path, Loader=_Loader)  # a SafeLoader subclass


def _key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """1-based line of every key (and list item) of a YAML document, by location tuple."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(node: yaml.Node, loc: tuple[Any, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[(*loc, key.value)] = key.start_mark.line + 1
                walk(value, (*loc, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*loc, index)] = item.start_mark.line + 1
                walk(item, (*loc, index))

    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


def suggest(key: str, candidates: Sequence[str]) -> str:
    """' Did you mean ...?' for a mistyped key (or the valid keys), to end an error message."""
    close = difflib.get_close_matches(key, list(candidates), n=3, cutoff=0.6)
    if close:
        return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
    return f" Valid keys: {', '.join(sorted(candidates))}."


def _dotted(loc: Sequence[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).removeprefix(".")


def _fields_at(cls: Any, loc: Sequence[Any]) -> list[str]:
    """The field names of the section at ``loc`` (for a did-you-mean)."""
    for part in loc:
        if isinstance(part, int) or not _is_model(cls) or part not in cls.model_fields:
            return []
        cls = _section(cls.model_fields[part].annotation) or cls.model_fields[part].annotation
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls) if f.init]
    return list(cls.model_fields) if _is_model(cls) else []


def _explain(
    error: ValidationError,
    cls: Any,
    source: str,
    prefix: tuple[Any, ...] = (),
    lines: Mapping[tuple[Any, ...], int] | None = None,
    overridden: Mapping[tuple[Any, ...], str] | None = None,
) -> ConfigError:
    """One ConfigError from pydantic's errors: ``file:line: key 'a.b': what is wrong``."""
    messages = []
    for item in error.errors(include_url=False):
        loc = (*prefix, *item["loc"])
        key, kind, message = _dotted(loc), item["type"], item["msg"]
        where, what = source, f"key {key!r}: "
        if overridden and loc in overridden:
            where, what = f"override {overridden[loc]}", ""
        elif lines and (loc in lines or loc[:-1] in lines):
            where = f"{source}:{lines.get(loc, lines.get(loc[:-1]))}"
        if kind in ("extra_forbidden", "unexpected_keyword_argument"):
            names = _fields_at(cls, item["loc"][:-1])
            text = f"unknown key {key!r}." + (suggest(str(loc[-1]), names) if names else "")
        elif kind in ("missing", "missing_argument"):
            text = f"missing required key {key!r}"
        elif kind == "value_error":
            text = message.removeprefix("Value error, ")
            text = f"invalid {key}: {text}" if key else text
        else:
            if kind == "literal_error":
                message = f"must be one of {item['ctx']['expected']}"
            text = f"{what}{message} (got {item['input']!r})"
        messages.append(f"{where}: {text}" if where else text)
    return ConfigError("\n".join(messages[:3]) + (" …" if len(messages) > 3 else ""))


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _section(tp: Any) -> Any:
    """The section class of a field's type: a model, or the model of an optional section
    (``LoraConfig | None``); None for any other type."""
    if _is_model(tp):
        return tp
    models = [o for o in _options(tp) if o is not type(None)]
    return models[0] if len(models) == 1 and _is_model(models[0]) else None


def from_dict(
    cls: type[T], data: Mapping[str, Any] | None, *, source: str = "<dict>", _prefix: str = ""
) -> T:
    """Build ``cls`` (a pydantic model, or a plain dataclass: lax types, unknown keys
    refused) from a nested mapping. Unknown keys, missing required keys, wrong types and
    failed checks raise :class:`ConfigError` naming the dotted key (after ``_prefix``)."""
    if not _is_model(cls):
        cls = with_config(ConfigDict(extra="forbid"))(cls)
    try:
        return TypeAdapter(cls).validate_python(dict(data or {}))
    except ValidationError as err:
        prefix = tuple(p for p in _prefix.rstrip(".").split(".") if p)
        raise _explain(err, cls, source, prefix) from None


def to_dict(config: BaseModel) -> dict[str, Any]:
    """A config as plain nested dicts/lists (JSON-safe), as the run manifest records it."""
    return config.model_dump(mode="json")


def parse_overrides(args: Sequence[str]) -> list[tuple[str, str]]:
    """``["--data.n_train", "100", "--seed=3", "model.dtype=bfloat16"]`` → ``[(key, text), ...]``.

    Accepted forms: ``--key value``, ``--key=value`` and ``key=value``; keys are dotted
    paths (``section.key``; ``training.learning_rate`` reaches into a mapping field).

    >>> parse_overrides(["--data.n_train", "100", "--seed=3", "model.dtype=bfloat16"])
    [('data.n_train', '100'), ('seed', '3'), ('model.dtype', 'bfloat16')]
    """
    pairs: list[tuple[str, str]] = []
    args, i = list(args), 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "=" not in arg:
            if i + 1 >= len(args) or (args[i + 1].startswith("--") and len(args[i + 1]) > 2):
                raise ConfigError(
                    f"override {arg!r} needs a value: use '{arg} VALUE' or '{arg}=VALUE'"
                )
            key, value = arg[2:], args[i + 1]
            i += 1
        elif "=" in arg:
            key, value = arg.removeprefix("--").split("=", 1)
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


_NULLS = ("none", "null", "~")


def _options(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return tuple(o for arg in typing.get_args(tp) for o in _options(arg))
    return (tp,)


def _parse_override(text: str, tp: Any) -> Any:
    """An override's text as a value for a field of type ``tp`` (None: a free-form mapping).

    Scalars are parsed by pydantic's lax mode (``"100"`` → 100, ``"yes"`` → True); lists take
    YAML flow (``[1e-7, 2e-7]``) or commas (``1e-7,2e-7``); mappings YAML flow; free-form
    entries YAML. A value that does not parse stays text, for the schema to report.
    """
    options = _options(tp) if tp is not None else (Any, type(None))
    if text.strip().lower() in _NULLS and type(None) in options:
        return None
    kinds = {typing.get_origin(o) or o for o in options}
    if Any in kinds or dict in kinds:
        return load_yaml(text) if text.strip() else {}
    if list in kinds:
        if text.lstrip().startswith("["):
            return load_yaml(text)
        return [load_yaml(part) for part in text.split(",") if part.strip()]
    bare = tuple(o for o in options if o is not type(None))  # without range constraints
    try:
        return TypeAdapter(functools.reduce(operator.or_, bare)).validate_python(text)
    except ValidationError:
        return text


def apply_overrides(
    cls: type,
    data: Mapping[str, Any] | None,
    overrides: Sequence[tuple[str, str]] | Mapping[str, str],
) -> dict[str, Any]:
    """Apply dotted overrides to a raw config mapping, parsing each value with the field's
    type; returns a new nested dict. Unknown keys fail with a did-you-mean."""
    result = copy.deepcopy(dict(data or {}))
    for key, text in overrides.items() if isinstance(overrides, Mapping) else overrides:
        parts = key.split(".")
        section: Any = cls  # None inside a free-form mapping
        target = result
        for depth, part in enumerate(parts):
            here = ".".join(parts[: depth + 1])
            tp = None
            if section is not None:
                if part not in section.model_fields:
                    raise ConfigError(
                        f"overrides: --{key}: unknown key {here!r}."
                        + suggest(part, list(section.model_fields))
                    )
                tp = section.model_fields[part].annotation
            if depth == len(parts) - 1:
                if _is_model(tp) or (_section(tp) and text.strip().lower() not in _NULLS):
                    raise ConfigError(f"overrides: --{key}: {key!r} is a section; use --{key}.KEY")
                target[part] = _parse_override(text, tp)
            elif (
                section is not None
                and _section(tp) is None
                and dict not in map(typing.get_origin, _options(tp))
            ):
                raise ConfigError(f"overrides: --{key}: {here!r} is not a section or mapping")
            else:
                section = _section(tp)
                if target.get(part) is None:
                    target[part] = {}
                target = target[part]
                if not isinstance(target, dict):
                    raise ConfigError(f"overrides: --{key}: {here!r} is not a mapping")
    return result


def load_config(
    cls: type[T],
    path: str | os.PathLike | None = None,
    overrides: Sequence[str] | Mapping[str, str] = (),
) -> T:
    """Load ``cls`` from a YAML file (optional) plus overrides (raw arguments such as
    ``["--data.n_train", "100"]``, or a mapping ``{"data.n_train": "100"}``). Every error
    names the key, and the file and line or the override."""
    source, data, lines = "<defaults>", {}, {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        source, text = str(path), path.read_text(encoding="utf-8")
        try:
            data = load_yaml(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: invalid YAML: {err}") from None
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
        lines = _key_lines(text)
    mapping = isinstance(overrides, Mapping)
    pairs = [(k, str(v)) for k, v in overrides.items()] if mapping else parse_overrides(overrides)
    data = apply_overrides(cls, data, pairs)
    try:
        return cls.model_validate(data)  # type: ignore[attr-defined,return-value]
    except ValidationError as err:
        overridden = {tuple(k.split(".")): f"--{k}" for k, _ in pairs}
        raise _explain(err, cls, source, lines=lines, overridden=overridden) from None


def locate(message: str, path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> str:
    """``message`` about a key (``training.beta: …``, ``key 'training.beta': …``) prefixed
    with where the key was set: ``FILE:LINE`` or ``override --training.beta``."""
    key = re.match(r"(?:key ')?([A-Za-z_][\w.]*)", message)
    if key is None or path is None or "." not in key.group(1) or message.startswith(str(path)):
        return message
    dotted = key.group(1)
    if f"--{dotted}" in overrides or any(o.startswith(f"--{dotted}=") for o in overrides):
        return f"override --{dotted}: {message}"
    line = _key_lines(Path(path).read_text(encoding="utf-8")).get(tuple(dotted.split(".")))
    return f"{path}:{line}: {message}" if line else message


def check_scalar_fields(cls: type, values: Mapping[str, Any], prefix: str) -> None:
    """Check ``values`` strictly against the scalar (bool/int/float/str, optional) fields of a
    dataclass such as a trainer config; other fields are left to the class itself."""
    hints = typing.get_type_hints(cls)
    scalars = (bool, int, float, str, type(None))
    for key, value in values.items():
        if key in hints and all(o in scalars for o in _options(hints[key])):
            try:
                TypeAdapter(hints[key]).validate_python(value, strict=True)
            except ValidationError as err:
                raise _explain(err, None, "", (*prefix.rstrip(".").split("."), key)) from None


def _type_name(tp: Any) -> str:
    """``int | None``, ``'hf' | 'vllm'``, ``list[float]``: a field's type as a reader writes it."""
    names = []
    for option in _options(tp):
        args = typing.get_args(option)
        if typing.get_origin(option) is Literal:
            names.append(" | ".join(map(repr, args)))
        elif args:
            names.append(
                f"{typing.get_origin(option).__name__}[{', '.join(map(_type_name, args))}]"
            )
        else:
            names.append("None" if option is type(None) else getattr(option, "__name__", "Any"))
    return " | ".join(names)


def config_help(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(dotted key, type and default, help)`` for every field, for ``--help`` and docs."""
    rows: list[tuple[str, str, str]] = []
    for name, field in cls.model_fields.items():  # type: ignore[attr-defined]
        section = _section(field.annotation)
        if section is not None:
            if not _is_model(field.annotation):  # an optional section: null, or its keys
                rows.append((prefix + name, "section | None = None", field.description or ""))
            rows.extend(config_help(section, f"{prefix}{name}."))
            continue
        kind = _type_name(field.annotation)
        if field.is_required():
            kind += ", required"
        elif field.default_factory is None:
            kind += f" = {field.default!r}"
        rows.append((prefix + name, kind, field.description or ""))
    return rows


def non_result_keys(config_or_cls: Any) -> list[str]:
    """Dotted keys declared as not affecting results (for :func:`iris.runs.config_diff`):
    fields marked ``affects_results: False`` and the class attribute ``NON_RESULT_KEYS``."""
    cls = config_or_cls if isinstance(config_or_cls, type) else type(config_or_cls)
    keys = list(getattr(cls, "NON_RESULT_KEYS", ()))
    for name, field in cls.model_fields.items():
        if (field.json_schema_extra or {}).get("affects_results") is False:
            keys.append(name)
        elif _section(field.annotation) is not None:
            keys.extend(f"{name}.{k}" for k in non_result_keys(_section(field.annotation)))
    return sorted(set(keys))
