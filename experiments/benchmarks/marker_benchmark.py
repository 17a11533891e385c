"""Cost of a stage marker for one large safetensors file: size + header fingerprint vs full sha256.

Writes a safetensors file of ``--size-gib`` GiB (default 1) made of ``--tensors`` bf16
tensors into a temporary folder, then times, once each: :meth:`iris.runs.RunDir.mark_done`
and :meth:`~iris.runs.RunDir.stage_done` (``verify=True``) with the marker entries of
:mod:`iris.runs` (a file over ``FULL_HASH_MAX_BYTES`` records its size and the sha256 of
its header), and a full sha256 of the same file, which is what ``mark_done`` and
``stage_done(verify=True)`` each cost before (and still cost for a marker written then).

Prints a Markdown table: operation, file size, bytes the operation reads (for a
fingerprint 8 + the header length, as tests/test_runs.py checks by counting reads),
seconds, and GB/s (file size / seconds: the rate at which a stage of that size is
checked). Before each timing the file is dropped from the page cache
(``posix_fadvise(DONTNEED)``, Linux; ``--warm`` keeps it cached), so the full hash reads
from disk as a resume would.

Usage:
    python experiments/benchmarks/marker_benchmark.py [--size-gib 1] [--tensors 256] [--warm]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from iris import runs  # noqa: E402

CHUNK = 64 << 20  # bytes written at a time


def write_safetensors(path: Path, size: int, n_tensors: int) -> int:
    """Write a valid safetensors file of about ``size`` bytes (bf16, 1-D tensors); returns its header length.

    Streams the data in chunks, so any size fits in memory. The bytes are pseudo-random
    (a repeated random block), not zeros, so no filesystem can store them sparsely.
    """
    elements = max(1, size // 2 // n_tensors)
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    for i in range(n_tensors):
        begin = 2 * elements * i
        header[f"model.layers.{i}.weight"] = {
            "dtype": "BF16",
            "shape": [elements],
            "data_offsets": [begin, begin + 2 * elements],
        }
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)  # safetensors aligns the data to 8 bytes
    remaining = 2 * elements * n_tensors
    block = os.urandom(CHUNK)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(header_bytes)) + header_bytes)
        while remaining:
            n = min(remaining, CHUNK)
            handle.write(block[:n])
            remaining -= n
        handle.flush()
        os.fsync(handle.fileno())
    return len(header_bytes)


def drop_from_cache(path: Path) -> None:
    """Ask the kernel to forget the file's cached pages (best effort; Linux only)."""
    if not hasattr(os, "posix_fadvise"):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed(function: Callable[[], object], path: Path, *, warm: bool) -> tuple[float, object]:
    if not warm:
        drop_from_cache(path)
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def table(size: int, times: dict[str, tuple[float, int]]) -> str:
    lines = [
        "| operation | file size | bytes read | seconds | GB/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (seconds, read) in times.items():
        lines.append(
            f"| {name} | {size / 2**30:.2f} GiB | {read:,} | {seconds:.4f} | "
            f"{size / seconds / 1e9:,.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gib", type=float, default=1.0, help="size of the file (GiB)")
    parser.add_argument("--tensors", type=int, default=256, help="number of tensors in it")
    parser.add_argument("--warm", action="store_true", help="keep the file in the page cache")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the temporary run")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="marker-benchmark-", dir=args.dir) as tmp:
        run = runs.RunDir(Path(tmp) / "run")
        weights = run.model_dir(0) / "model.safetensors"
        header_length = write_safetensors(weights, int(args.size_gib * 2**30), args.tensors)
        size = weights.stat().st_size
        header_read = 8 + header_length
        warm = args.warm

        mark, _ = timed(lambda: run.mark_done("train", [weights], 0), weights, warm=warm)
        verify, done = timed(lambda: run.stage_done("train", 0), weights, warm=warm)
        entry = runs.read_json(run.marker_path("train", 0))["outputs"][
            "iter_0/model/model.safetensors"
        ]
        assert done and entry["kind"] == "safetensors", entry
        full, _ = timed(lambda: runs.sha256_file(weights), weights, warm=warm)

        times = {
            "fingerprint: mark_done": (mark, header_read),
            "fingerprint: stage_done(verify=True)": (verify, header_read),
            "fingerprint: mark_done + stage_done": (mark + verify, 2 * header_read),
            "full sha256 (before: each of mark_done, stage_done)": (full, size),
            "full sha256: mark_done + stage_done (2 ×)": (2 * full, 2 * size),
        }
        print(
            f"# one safetensors file, {args.tensors} tensors, header {header_length:,} bytes; "
            f"page cache {'warm' if warm else 'dropped before each timing'}\n"
        )
        print(table(size, times))
        print(f"\nfingerprint mark + verify is {2 * full / (mark + verify):,.0f}× faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
