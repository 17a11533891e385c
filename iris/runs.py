"""Run directories: the on-disk contract between the self-play driver and ``analysis/``.

This module owns the layout of a run directory and every write into it::

    RUN/
      manifest.json            resolved config, git revision + dirty flag, package versions,
                               hardware, seeds, command lines, start/end time of every stage
      data/                    train.jsonl, heldout.jsonl (the selected records)
      proto.jsonl              T-SPIN's proto-synthetic responses from θ0 (generated once)
      data.DONE proto.DONE     run-level stages keep their markers at the root
      iter_0/
        generated.jsonl        synthetic responses sampled from θ0 (+ generated.meta.json)
        train.jsonl            the self-play training rows of the iteration
        model/                 the trained model (or adapter) θ1
        metrics.jsonl          one JSON object per logged training step
        eval/*.json            one file per evaluation
        generate.DONE          {"outputs": {relative path: entry}, ...} (entries below)
        train.DONE eval.DONE ...
      iter_1/ ...

Every file is written atomically (a temporary file in the same folder, fsync, then
``os.replace``), so a killed job leaves either the old file or the new one, never a
truncated one, and nothing is ever opened in append mode. A stage is complete when its
``<stage>.DONE`` marker exists and every output it lists still verifies against its
entry. Resuming into a directory whose saved config differs in a key that changes
results is refused with the list of differing keys; keys declared as not affecting
results (output paths, logging) may change.

A marker entry costs the same to verify whatever the model's size. A file of at most
``FULL_HASH_MAX_BYTES`` (16 MiB: configs, tokenizer, the safetensors index, jsonl data,
evaluation results) records ``{"sha256", "size"}``, the hash of all its bytes. A larger
file records its size and a fingerprint, ``{"size", "kind", ...}``:

* ``"kind": "safetensors"`` (``*.safetensors``): ``header_sha256``, the sha256 of the
  8-byte length and the JSON header, which holds every tensor's name, dtype, shape and
  data offsets. Verifying also checks the file's structure: 8 + header length + the
  largest data end offset must equal the file size.
* ``"kind": "ends"`` (any other large file): ``ends_sha256``, the sha256 of its first and
  last ``ENDS_BYTES`` (1 MiB).

So ``stage_done(verify=True)`` reads a few KiB per weights file instead of all of it (a
7B model: 15 GB, about 30 s per rank at 0.47 GB/s before). The trade-off: a bit flip or
an overwrite in the middle of a large file, with its size and header (or ends) intact, is
no longer detected. Still detected: a missing, truncated or padded file, a missing shard,
a shard replaced by one with other tensor names, dtypes or shapes, a changed header, and
any change to a small file (config, tokenizer, the index, data). Markers written before
this scheme (a full ``sha256`` for every file) still verify, by hashing the whole file as
before. ``stage_done(verify=False)`` checks only that every output exists with its
recorded size.

Nothing here imports torch at module level: ``analysis/`` can read run directories
without it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fnmatch
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MARKER_SUFFIX = ".DONE"

# File names inside a run directory (the contract analysis/ reads).
DATA_DIR = "data"  # data/train.jsonl, data/heldout.jsonl, data/stats.json (run-level)
HELDOUT_FILE = "heldout.jsonl"  # data/heldout.jsonl: held-out records (never trained on)
PROTO_FILE = "proto.jsonl"  # T-SPIN's proto-synthetic responses from θ0 (run-level, once)
GENERATED_FILE = "generated.jsonl"  # iter_<t>/: synthetic responses sampled from θt
TRAIN_DATA_FILE = "train.jsonl"  # iter_<t>/: the self-play training rows of iteration t
MODEL_DIR = "model"  # iter_<t>/: the trained model (or adapter) θt+1
METRICS_FILE = "metrics.jsonl"  # iter_<t>/: one JSON object per logged training step
EVAL_DIR = "eval"  # iter_<t>/eval/<task or suite>.json
MANIFEST_SCHEMA_VERSION = 1

# Marker entries (see the module docstring): files up to this size get a full sha256,
# larger ones a size + fingerprint, so verifying a stage costs the same for any model size.
FULL_HASH_MAX_BYTES = 16 * 1024 * 1024
ENDS_BYTES = 1 << 20  # bytes hashed at each end of a large file that is not safetensors
SAFETENSORS_MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on its JSON header

# Distributions whose versions go into every manifest (None when not installed).
TRACKED_PACKAGES = (
    "iris-selfplay",
    "torch",
    "transformers",
    "trl",
    "datasets",
    "accelerate",
    "tokenizers",
    "numpy",
    "pyyaml",
    "vllm",
    "deepspeed",
    "lm-eval",
)


def run_name(config_path: str | os.PathLike) -> str:
    """The run directory of ``configs/<model>/<method>.yaml`` under a runs root:
    ``<model>/<method>`` (``iris`` without ``--output-dir``, ``experiments/sweep.py``)."""
    path = Path(config_path)
    return f"{path.parent.name}/{path.stem}"


class ConfigMismatchError(RuntimeError):
    """Raised when resuming into a run directory whose saved config differs in a result key."""


# --------------------------------------------------------------------------------------
# Atomic writes and reads
# --------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not supported everywhere (e.g. Windows), hence best-effort.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left untouched (an old
    version stays, a missing file stays missing). ``mode`` must be a write mode ("w", "wb").

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_output(p) as f:
    ...     _ = f.write("hello")
    >>> p.read_text()
    'hello'
    """
    if mode not in ("w", "wb", "wt"):
        raise ValueError(
            f"atomic_output writes whole files; mode must be 'w' or 'wb', got {mode!r}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_output(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_output(path, "w") as handle:
        handle.write(text)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def to_json(obj: Any, *, indent: int | None = 2) -> str:
    """Serialise ``obj`` to JSON; NaN/inf are written as JSON ``NaN``/``Infinity`` (Python reads them back)."""
    return json.dumps(obj, indent=indent, ensure_ascii=False, default=_json_default)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically; returns the path."""
    return atomic_write_text(path, to_json(obj, indent=indent) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as JSON Lines to ``path`` atomically (streamed; never appends); returns the path."""
    with atomic_output(path, "w") as handle:
        for row in rows:
            handle.write(to_json(row, indent=None))
            handle.write("\n")
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    """Read one JSON document; a parse error names the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON: {err}") from err


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSON Lines file (blank lines skipped); errors name file and line."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {line_number}: invalid JSON: {err}") from err
            if not isinstance(row, dict):
                raise ValueError(
                    f"{path} line {line_number}: expected a JSON object, got {type(row).__name__}"
                )
            yield row


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSON Lines file into a list of dicts; errors name file and line."""
    return list(iter_jsonl(path))


# --------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def safetensors_header(path: str | os.PathLike) -> bytes:
    """The raw header of a safetensors file (8-byte little-endian length + JSON), checked.

    Reads only the header. Raises ``ValueError`` unless the file is a complete safetensors
    file: a length within safetensors' own limit, a JSON object of tensors with
    ``data_offsets``, and 8 + header length + the largest data end offset equal to the
    file size (safetensors leaves no holes, so a truncated or padded file fails here).
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{path}: {size} bytes, too short for a safetensors header")
        (header_length,) = struct.unpack("<Q", prefix)
        if header_length > SAFETENSORS_MAX_HEADER_BYTES or 8 + header_length > size:
            raise ValueError(
                f"{path}: header length {header_length} does not fit a {size}-byte safetensors file"
            )
        header_bytes = handle.read(header_length)
    try:
        header = json.loads(header_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: safetensors header is not valid JSON: {err}") from err
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header is not a JSON object")
    data_end = 0
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        offsets = tensor.get("data_offsets") if isinstance(tensor, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in offsets)
        ):
            raise ValueError(f"{path}: tensor {name!r} has no valid data_offsets in its header")
        data_end = max(data_end, offsets[1])
    expected_size = 8 + header_length + data_end
    if expected_size != size:
        raise ValueError(
            f"{path}: its header describes {expected_size} bytes but the file has {size} "
            "(truncated or padded)"
        )
    return prefix + header_bytes


def ends_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's first and last ``ENDS_BYTES`` (each byte once if they overlap)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(ENDS_BYTES)
        digest.update(head)
        handle.seek(max(len(head), size - ENDS_BYTES))
        digest.update(handle.read(ENDS_BYTES))
    return digest.hexdigest()


def output_entry(path: str | os.PathLike) -> dict[str, Any]:
    """The marker entry of one output file: what :func:`check_output` verifies later.

    ``{"sha256", "size"}`` for a file of at most ``FULL_HASH_MAX_BYTES``; otherwise
    ``{"size", "kind": "safetensors", "header_sha256"}`` for ``*.safetensors`` (raises
    ``ValueError`` when the file is not a complete safetensors file) and
    ``{"size", "kind": "ends", "ends_sha256"}`` for any other file. Reading cost: the
    whole file up to the limit, then O(header) or 2 × ``ENDS_BYTES``.
    """
    path = Path(path)
    size = path.stat().st_size
    if size <= FULL_HASH_MAX_BYTES:
        return {"sha256": sha256_file(path), "size": size}
    if path.name.endswith(".safetensors"):
        header_sha256 = hashlib.sha256(safetensors_header(path)).hexdigest()
        return {"size": size, "kind": "safetensors", "header_sha256": header_sha256}
    return {"size": size, "kind": "ends", "ends_sha256": ends_sha256(path)}


def check_output(
    path: str | os.PathLike, entry: Mapping[str, Any], *, verify: bool = True
) -> str | None:
    """Why ``path`` no longer matches its marker ``entry``, or None when it does.

    Existence and size are always checked; with ``verify`` also the content the entry
    records: the full sha256 (entries without ``"kind"``, including every entry of markers
    written before fingerprints), or the safetensors header and structure, or the two
    ends. An entry of an unknown kind never verifies.
    """
    path = Path(path)
    if not isinstance(entry, Mapping):
        return f"has an invalid marker entry {entry!r}"
    if not path.is_file():
        return "is missing"
    size = path.stat().st_size
    if size != entry.get("size"):
        return f"changed size ({entry.get('size')} bytes recorded, {size} now)"
    if not verify:
        return None
    kind = entry.get("kind")
    if kind is None:
        matches = sha256_file(path) == entry.get("sha256")
        return None if matches else "does not match its sha256"
    if kind == "safetensors":
        try:
            header = safetensors_header(path)
        except ValueError as err:
            return f"is not a complete safetensors file: {err}"
        matches = hashlib.sha256(header).hexdigest() == entry.get("header_sha256")
        return None if matches else "has a different safetensors header (names, dtypes, shapes)"
    if kind == "ends":
        matches = ends_sha256(path) == entry.get("ends_sha256")
        return None if matches else "does not match the sha256 of its first and last bytes"
    return f"has a marker entry of unknown kind {kind!r}"


def _expand_outputs(root: Path, outputs: Iterable[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for output in outputs:
        path = Path(output)
        if not path.is_absolute():
            path = root / path
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"stage output {path} does not exist")
    return files


def checksum_outputs(
    root: str | os.PathLike, outputs: Iterable[str | os.PathLike]
) -> dict[str, dict[str, Any]]:
    """``{path relative to root: marker entry}`` for each file (folders are expanded).

    Entries are :func:`output_entry`'s. Every output must lie inside ``root`` (markers
    store relative paths, so a run directory can be moved or copied and still verify).
    """
    root = Path(root).resolve()
    result: dict[str, dict[str, Any]] = {}
    for file in _expand_outputs(root, outputs):
        resolved = file.resolve()
        try:
            relative = resolved.relative_to(root)
        except ValueError as err:
            raise ValueError(f"stage output {file} lies outside the run directory {root}") from err
        result[relative.as_posix()] = output_entry(resolved)
    return dict(sorted(result.items()))


# --------------------------------------------------------------------------------------
# Provenance: git, packages, hardware
# --------------------------------------------------------------------------------------


def last_complete_checkpoint(directory: str | os.PathLike) -> str | None:
    """The newest Trainer checkpoint (``checkpoint-<step>``) in ``directory`` that was saved
    whole, or None.

    The Trainer writes ``trainer_state.json`` last, in place: a checkpoint whose state file
    is missing or does not parse was being written when the process died, and resuming
    from it would fail; the one before it is taken instead.
    """
    folder = Path(directory)
    if not folder.is_dir():
        return None
    steps = []
    for path in folder.glob("checkpoint-*"):
        suffix = path.name.removeprefix("checkpoint-")
        if path.is_dir() and suffix.isdigit():
            steps.append((int(suffix), path))
    for _, path in sorted(steps, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        return str(path)
    return None


def utc_now() -> str:
    """The current time, ISO 8601 in UTC with an explicit offset (second resolution)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _git(repo: Path, *args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout


def git_info(repo_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Revision, branch and dirty flag of the repository holding ``repo_dir``.

    Defaults to the repository of the ``iris`` package itself. ``dirty`` covers changes to
    tracked files; ``diff_sha256`` identifies the uncommitted changes (so two dirty runs
    can be told apart). Every value is None when git or a commit is unavailable.
    """
    repo = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parents[1]
    info: dict[str, Any] = {"revision": None, "branch": None, "dirty": None, "diff_sha256": None}
    top = _git(repo, "rev-parse", "--show-toplevel")
    if top is None:
        return info
    info["root"] = top.strip()
    revision = _git(repo, "rev-parse", "HEAD")
    info["revision"] = revision.strip() if revision else None
    branch = _git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    info["branch"] = branch.strip() if branch else None
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    if status is not None:
        info["dirty"] = bool(status.strip())
    if info["dirty"] and info["revision"]:
        diff = _git(repo, "diff", "HEAD")
        if diff is not None:
            info["diff_sha256"] = hashlib.sha256(diff.encode()).hexdigest()
    return info


def package_versions(names: Sequence[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when it is not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


def hardware_info() -> dict[str, Any]:
    """Host, CPU model and counts, memory, and GPU names/counts/memory (via torch when importable)."""
    try:
        usable_cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cpus = os.cpu_count()
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable_cpus,
        "memory_bytes": _memory_bytes(),
        "gpu_count": 0,
        "gpus": [],
        "cuda": None,
    }
    try:
        import torch  # lazy: analysis/ reads manifests without torch
    except ImportError:
        return info
    info["cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        info["gpu_count"] = count
        for index in range(count):
            props = torch.cuda.get_device_properties(index)
            info["gpus"].append({"name": props.name, "memory_bytes": props.total_memory})
    return info


# --------------------------------------------------------------------------------------
# Config comparison
# --------------------------------------------------------------------------------------


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings → ``{"a.b.c": value}``; lists and scalars are leaves.

    >>> flatten_config({"a": {"b": 1, "c": [1, 2]}, "d": None})
    {'a.b': 1, 'a.c': [1, 2], 'd': None}
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, prefix=f"{dotted}."))
        else:
            flat[dotted] = dict(value) if isinstance(value, Mapping) else value
    return flat


def _is_ignored(key: str, patterns: Iterable[str]) -> bool:
    return any(
        key == pattern or key.startswith(pattern + ".") or fnmatch.fnmatchcase(key, pattern)
        for pattern in patterns
    )


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _same(a: Any, b: Any) -> bool:
    """Equality for JSON-like values: 1 == 1.0, NaN == NaN, True != 1, list == tuple."""
    if _is_number(a) and _is_number(b):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def config_diff(
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    ignore: Iterable[str] = (),
) -> dict[str, tuple[Any, Any]]:
    """Keys (dotted) whose values differ between two configs, as ``{key: (saved, current)}``.

    A key missing on one side counts as a difference (shown as ``"<missing>"``). ``ignore``
    holds dotted keys, prefixes of keys (``"training.logging"`` covers
    ``"training.logging.steps"``) or shell patterns (``"training.logging_*"``).

    >>> config_diff({"a": 1, "out": "x"}, {"a": 2, "out": "y"}, ignore=["out"])
    {'a': (1, 2)}
    """
    ignore = list(ignore)
    flat_saved, flat_current = flatten_config(saved), flatten_config(current)
    missing = "<missing>"
    diff: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(flat_saved) | set(flat_current)):
        if _is_ignored(key, ignore):
            continue
        a, b = flat_saved.get(key, missing), flat_current.get(key, missing)
        if not _same(a, b):
            diff[key] = (a, b)
    return diff


# --------------------------------------------------------------------------------------
# The run directory
# --------------------------------------------------------------------------------------


class RunDir:
    """One run directory: manifest, per-iteration folders, stage markers and timings.

    Only the main process writes (``main_process=False`` makes every write a no-op, so all
    ranks can run the same driver code); every process may read markers.

    Typical use by the driver::

        run = RunDir(cfg.output_dir)
        run.start(to_dict(cfg), non_result_keys=non_result_keys(cfg), seeds={"seed": cfg.seed})
        for t in range(cfg.iterations):
            if not run.stage_done("generate", t):
                with run.stage("generate", t):
                    out = run.iteration_dir(t) / "generated.jsonl"
                    ...  # write out atomically
                    run.mark_done("generate", [out], t)
        run.finish()
    """

    def __init__(self, root: str | os.PathLike, *, main_process: bool = True) -> None:
        # Absolute: stage outputs are recorded relative to the root, whatever the cwd.
        self.root = Path(root).absolute()
        self.main_process = main_process

    # ---- paths -----------------------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def iteration_dir(self, iteration: int, *, create: bool = True) -> Path:
        """``ROOT/iter_<t>`` (created unless ``create=False``)."""
        if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
            raise ValueError(f"iteration must be a non-negative int, got {iteration!r}")
        path = self.root / f"iter_{iteration}"
        if create and self.main_process:
            path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def data_dir(self) -> Path:
        """``ROOT/data``: the selected training and held-out records (run-level)."""
        return self.root / DATA_DIR

    @property
    def heldout_path(self) -> Path:
        """``ROOT/data/heldout.jsonl``: the held-out records the data stage selected."""
        return self.data_dir / HELDOUT_FILE

    @property
    def proto_path(self) -> Path:
        """``ROOT/proto.jsonl``: proto-synthetic responses from θ0 (T-SPIN), generated once."""
        return self.root / PROTO_FILE

    def generated_path(self, iteration: int) -> Path:
        """``iter_<t>/generated.jsonl``: responses sampled from the model entering iteration t."""
        return self.iteration_dir(iteration) / GENERATED_FILE

    def train_data_path(self, iteration: int) -> Path:
        """``iter_<t>/train.jsonl``: the self-play rows trained on in iteration t."""
        return self.iteration_dir(iteration) / TRAIN_DATA_FILE

    def model_dir(self, iteration: int) -> Path:
        """``iter_<t>/model``: the model produced by iteration t."""
        return self.iteration_dir(iteration) / MODEL_DIR

    def metrics_path(self, iteration: int) -> Path:
        """``iter_<t>/metrics.jsonl``: per-step training metrics of iteration t."""
        return self.iteration_dir(iteration) / METRICS_FILE

    def eval_dir(self, iteration: int) -> Path:
        """``iter_<t>/eval``: one JSON file per evaluation of the model of iteration t."""
        return self.iteration_dir(iteration) / EVAL_DIR

    def stage_key(self, stage: str, iteration: int | None = None) -> str:
        """``"iter_<t>/<stage>"`` or ``"<stage>"`` for run-level stages."""
        if not stage or "/" in stage or stage.startswith("."):
            raise ValueError(f"invalid stage name {stage!r}")
        return stage if iteration is None else f"iter_{iteration}/{stage}"

    def marker_path(self, stage: str, iteration: int | None = None) -> Path:
        """Path of the ``<stage>.DONE`` marker."""
        return self.root / f"{self.stage_key(stage, iteration)}{MARKER_SUFFIX}"

    # ---- manifest --------------------------------------------------------------------

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def read_manifest(self) -> dict[str, Any]:
        if not self.exists():
            raise FileNotFoundError(f"{self.manifest_path} does not exist (run not started)")
        return read_json(self.manifest_path)

    def _write_manifest(self, manifest: Mapping[str, Any]) -> None:
        if self.main_process:
            atomic_write_json(self.manifest_path, manifest)

    def start(
        self,
        config: Mapping[str, Any],
        *,
        non_result_keys: Iterable[str] = (),
        seeds: Mapping[str, Any] | None = None,
        command: Sequence[str] | None = None,
        extra: Mapping[str, Any] | None = None,
        inputs: Callable[[str], Iterable[str] | None] | None = None,
    ) -> dict[str, Any]:
        """Create the run directory and its manifest, or verify and resume an existing one.

        On resume the saved config is compared with ``config``. A differing key outside
        ``non_result_keys`` that a completed stage used raises :class:`ConfigMismatchError`
        listing each such key, both values and the stages it would invalidate; keys that no
        completed stage used are accepted (recorded in the invocation). ``inputs(stage_key)``
        gives the keys (dotted prefixes) a stage reads; None, or no ``inputs``: every key.
        Each call appends an ``invocations`` entry (time, command line, git state, host), so
        a resumed run records every process that wrote into it. Returns the manifest.
        """
        config = json.loads(to_json(dict(config)))  # JSON-normal form, as it will be saved
        non_result = sorted(set(non_result_keys))
        invocation = {
            "started_at": utc_now(),
            "ended_at": None,
            "command": list(command) if command is not None else [sys.executable, *sys.argv],
            "cwd": os.getcwd(),
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "git": git_info(),
        }
        if self.exists():
            manifest = self.read_manifest()
            saved = manifest.get("config", {})
            ignore = set(non_result) | set(manifest.get("non_result_keys", []))
            diff = config_diff(saved, config, ignore=ignore)
            done = sorted(
                m.relative_to(self.root).as_posix().removesuffix(MARKER_SUFFIX)
                for m in self.root.rglob(f"*{MARKER_SUFFIX}")
            )
            used = {stage: None if inputs is None else inputs(stage) for stage in done}
            users = {
                key: [s for s in done if used[s] is None or _is_ignored(key, used[s])]
                for key in diff
            }
            blocking = {key: users[key] for key in diff if users[key]}
            if diff and not blocking:
                # No completed stage read a changed key (none at all after a failed start):
                # the corrected config replaces the saved one.
                invocation["replaced_config"] = {
                    k: {"saved": a, "now": b} for k, (a, b) in diff.items()
                }
                manifest["config"] = config
            if blocking:
                lines = "\n".join(
                    f"  {key}: saved={diff[key][0]!r} now={diff[key][1]!r} "
                    f"(invalidates {', '.join(stages)})"
                    for key, stages in blocking.items()
                )
                raise ConfigMismatchError(
                    f"refusing to resume into {self.root}: its saved config differs in "
                    f"{len(blocking)} key(s) that completed stages used:\n{lines}\n"
                    f"Completed with the saved config: {', '.join(done)}.\n"
                    "Use a new output directory, or restore the saved values."
                )
            changed = {k: v for k, v in config_diff(saved, config).items() if k not in diff}
            if changed:
                # The manifest's config is the latest invocation's; earlier values stay here.
                invocation["changed_non_result_keys"] = {
                    key: {"saved": a, "now": b} for key, (a, b) in changed.items()
                }
                manifest["config"] = config
            first_git = manifest.get("git", {})
            if first_git.get("revision") != invocation["git"].get("revision") or (
                invocation["git"].get("diff_sha256") != first_git.get("diff_sha256")
            ):
                logger.warning(
                    "resuming %s with different code: started at git %s (dirty=%s), now %s (dirty=%s)",
                    self.root,
                    first_git.get("revision"),
                    first_git.get("dirty"),
                    invocation["git"].get("revision"),
                    invocation["git"].get("dirty"),
                )
            manifest.setdefault("invocations", []).append(invocation)
            self._close_interrupted_attempts(manifest)
        else:
            manifest = {
                "schema_version": MANIFEST_SCHEMA_VERSION,
                "created_at": invocation["started_at"],
                "config": config,
                "non_result_keys": non_result,
                "seeds": dict(seeds or {}),
                "git": invocation["git"],
                "packages": package_versions(),
                "hardware": hardware_info(),
                "command": invocation["command"],
                "invocations": [invocation],
                "stages": {},
            }
            if extra:
                manifest["extra"] = dict(extra)
            if self.main_process:
                self.root.mkdir(parents=True, exist_ok=True)
        self._write_manifest(manifest)
        return manifest

    def _close_interrupted_attempts(self, manifest: dict[str, Any]) -> None:
        """Attempts still ``running`` belong to a killed invocation: close them.

        A job killed between writing a stage's marker and recording the attempt's end
        leaves ``running`` behind; its status becomes ``done`` when the marker exists,
        else ``interrupted``.
        """
        for key, attempts in manifest.get("stages", {}).items():
            if attempts and attempts[-1].get("status") == "running":
                done = (self.root / f"{key}{MARKER_SUFFIX}").is_file()
                attempts[-1].update(status="done" if done else "interrupted", closed_at=utc_now())

    def finish(self) -> None:
        """Record the end time of the current invocation (call once the driver has finished)."""
        if not self.main_process:
            return
        manifest = self.read_manifest()
        invocations = manifest.get("invocations") or []
        if invocations:
            invocations[-1]["ended_at"] = utc_now()
        self._write_manifest(manifest)

    def _record_stage(self, key: str, attempt: Mapping[str, Any], *, replace_last: bool) -> None:
        if not self.main_process:
            return
        manifest = self.read_manifest()
        attempts = manifest.setdefault("stages", {}).setdefault(key, [])
        if replace_last and attempts:
            attempts[-1] = dict(attempt)
        else:
            attempts.append(dict(attempt))
        self._write_manifest(manifest)

    @contextlib.contextmanager
    def stage(self, stage: str, iteration: int | None = None) -> Iterator[dict[str, Any]]:
        """Record start/end time, duration and status of one attempt at a stage in the manifest.

        Each attempt is appended to ``manifest["stages"]["iter_<t>/<stage>"]`` with status
        ``"running"`` and rewritten on exit as ``"done"`` or ``"failed"`` (with the error).
        The yielded dict may be filled with extra fields to record (e.g. token counts).
        """
        key = self.stage_key(stage, iteration)
        if iteration is not None:
            self.iteration_dir(iteration)
        attempt: dict[str, Any] = {"started_at": utc_now(), "ended_at": None, "status": "running"}
        self._record_stage(key, attempt, replace_last=False)
        start = time.monotonic()
        info: dict[str, Any] = {}
        try:
            yield info
        except BaseException as err:
            attempt.update(
                ended_at=utc_now(),
                duration_s=round(time.monotonic() - start, 3),
                status="failed",
                error=f"{type(err).__name__}: {err}",
                **info,
            )
            self._record_stage(key, attempt, replace_last=True)
            raise
        attempt.update(
            ended_at=utc_now(), duration_s=round(time.monotonic() - start, 3), status="done", **info
        )
        self._record_stage(key, attempt, replace_last=True)

    # ---- markers ---------------------------------------------------------------------

    def mark_done(
        self,
        stage: str,
        outputs: Iterable[str | os.PathLike],
        iteration: int | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write ``<stage>.DONE`` with an entry for every output (folders expanded).

        Entries are :func:`output_entry`'s: a full sha256 for small files, size and
        fingerprint for large ones. Outputs are paths inside the run directory (absolute or
        relative to it); a missing output raises ``FileNotFoundError``. Call it only after
        the outputs are final. On a non-main process nothing is read or written: it returns
        the marker's path at once.
        """
        marker = self.marker_path(stage, iteration)
        if not self.main_process:
            return marker
        content = {
            "stage": stage,
            "iteration": iteration,
            "completed_at": utc_now(),
            "outputs": checksum_outputs(self.root, outputs),
            "info": dict(info or {}),
        }
        atomic_write_json(marker, content)
        return marker

    def read_marker(self, stage: str, iteration: int | None = None) -> dict[str, Any] | None:
        """The marker's content, or None when there is none (or it is unreadable)."""
        marker = self.marker_path(stage, iteration)
        if not marker.is_file():
            return None
        try:
            content = read_json(marker)
        except (ValueError, OSError) as err:
            logger.warning("ignoring unreadable marker %s: %s", marker, err)
            return None
        return content if isinstance(content, dict) else None

    def stage_done(self, stage: str, iteration: int | None = None, *, verify: bool = True) -> bool:
        """True when the stage's marker exists and every listed output is intact.

        ``verify=True`` checks each output's content as its entry records it (full sha256
        of small files; header or ends fingerprint of large ones, so the cost does not grow
        with the model: see the module docstring); ``verify=False`` checks existence and
        size only.
        """
        content = self.read_marker(stage, iteration)
        if content is None:
            return False
        outputs = content.get("outputs")
        if not isinstance(outputs, dict):
            return False
        for relative, entry in outputs.items():
            path = self.root / relative
            problem = check_output(path, entry, verify=verify)
            if problem is not None:
                logger.warning(
                    "stage %s: output %s %s", self.stage_key(stage, iteration), path, problem
                )
                return False
        return True
