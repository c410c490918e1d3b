"""Child processes of the benchmark: started, tracked, and always stopped.

Every worker the harness starts is registered here and stopped by its pid
(SIGTERM, then SIGKILL) when its scenario ends, or at exit on a failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

_running: list[subprocess.Popen[bytes]] = []


def start(argv: Sequence[str], env: dict[str, str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start a child with stdout and stderr going to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    _running.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """Stop one child by its pid: SIGTERM, then SIGKILL after ``grace``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    # Children of a process pool share the session: take any stragglers too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc in _running:
        _running.remove(proc)
    return proc.returncode


def stop_all(procs: Sequence[subprocess.Popen[bytes]] | None = None) -> None:
    """Stop the given children, or every child still running."""
    for proc in list(procs if procs is not None else _running):
        stop(proc)


def wait_all(procs: Sequence[subprocess.Popen[bytes]], timeout: float) -> bool:
    """Wait for children to exit by themselves; False if any is still up."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        remaining = deadline - time.monotonic()
        try:
            proc.wait(max(remaining, 0.01))
        except subprocess.TimeoutExpired:
            return False
    return True
