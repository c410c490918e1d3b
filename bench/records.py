"""Handler records: what each handler writes when it starts a job.

A handler appends one line ``<seq> <unix time>`` to a file of its own
process in the record folder (one ``os.write`` on an ``O_APPEND`` file: safe
across threads and processes). ``seq`` is the number the benchmark gave the
job when it pushed it, so records can be matched to pushes and to the queue's
own tables without knowing each queue's job ids.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RECORD_DIR_ENV = "BENCH_RECORD_DIR"

_fds: dict[int, int] = {}


def record(seq: int, prefix: str = "rec") -> None:
    """Record that the job numbered ``seq`` starts now (called by handlers)."""
    now = time.time()
    pid = os.getpid()
    fd = _fds.get(pid)
    if fd is None:
        folder = os.environ[RECORD_DIR_ENV]
        fd = os.open(
            os.path.join(folder, f"{prefix}-{pid}.rec"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        _fds[pid] = fd
    os.write(fd, f"{seq} {now:.6f}\n".encode())


def count_lines(folder: Path) -> int:
    """How many records the folder holds so far (cheap enough to poll)."""
    return LineCounter(folder).count()


class LineCounter:
    """Counts the records of a folder as they come, reading each file only
    from where the last count stopped (for a poll every second of a run
    that writes millions of records)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.offsets: dict[Path, int] = {}
        self.total = 0

    def count(self) -> int:
        """How many records the folder holds so far."""
        for path in self.folder.glob("*.rec"):
            try:
                with path.open("rb") as handle:
                    handle.seek(self.offsets.get(path, 0))
                    chunk = handle.read()
            except FileNotFoundError:
                continue
            complete = chunk.rfind(b"\n") + 1  # a line still being written counts next time
            self.total += chunk.count(b"\n", 0, complete)
            self.offsets[path] = self.offsets.get(path, 0) + complete
        return self.total


@dataclass(frozen=True)
class Records:
    """Every record of a run: start time per job number, and duplicates."""

    starts: dict[int, float]
    duplicates: int

    @property
    def times(self) -> list[float]:
        return sorted(self.starts.values())


def read_records(folder: Path) -> Records:
    """Read every record; a job number seen twice counts as a duplicate."""
    starts: dict[int, float] = {}
    seen: Counter[int] = Counter()
    for path in folder.glob("*.rec"):
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            seq_text, _, when = line.partition(" ")
            seq = int(seq_text)
            seen[seq] += 1
            starts.setdefault(seq, float(when))
    duplicates = sum(count - 1 for count in seen.values() if count > 1)
    return Records(starts=starts, duplicates=duplicates)


def clear(folder: Path) -> None:
    """Empty the record folder before a run."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.rec"):
        path.unlink()
