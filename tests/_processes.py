"""Test helper: start the CLI in a subprocess and SIGKILL it at a chosen moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def kill_when(
    args: list[str],
    ready: Callable[[], bool],
    *,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``python -m iris.cli ARGS`` and SIGKILL it once ``ready()`` is true; fails when
    the command ends before that."""
    process = subprocess.Popen(
        [sys.executable, "-m", "iris.cli", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if ready():
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
