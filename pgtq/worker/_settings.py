"""Worker runtime: how a worker runs (``WorkerSettings``) and its id."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import Literal

PoolKind = Literal["thread", "process"]


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs. Times are in seconds.

    ``concurrency``: jobs run at once. ``batch_size``: jobs claimed per pop
    and held at most (larger values prefetch; ``concurrency`` holds no job
    beyond the slots). Without it the worker adapts: it holds ``concurrency``
    jobs, and up to ``MAX_PREFETCH`` (100) while its handlers are quick
    enough to get through them in about 0.25 s (``_decisions.ClaimLimit``).
    ``lease``: how long a claimed job is reserved without a heartbeat;
    ``heartbeat_interval`` (default lease / 3) renews it while the job runs.
    ``poll_interval``: the fallback poll when no notification arrives.
    ``shutdown_timeout``: the grace period for running jobs on SIGTERM.

    A thread whose handler runs past its timeout is abandoned: it runs on
    until the handler returns (its result is ignored) and a fresh thread
    takes its slot, for at most ``max_abandoned_threads`` such threads
    running at once (default: ``concurrency``); past that the pool serves
    with fewer slots until one ends. ``interrupt_timed_out_threads`` also
    raises an exception in the abandoned thread (best effort: it lands
    wherever the thread next runs Python code, which may be a ``finally``
    block or the middle of a transaction).
    """

    concurrency: int = 1
    pool: PoolKind = "thread"
    batch_size: int | None = None
    lease: float = 30.0
    heartbeat_interval: float | None = None
    poll_interval: float = 2.0
    tick_interval: float = 1.0
    shutdown_timeout: float = 30.0
    reconnect_max_delay: float = 30.0
    max_abandoned_threads: int | None = None
    interrupt_timed_out_threads: bool = False

    def __post_init__(self) -> None:
        for name in ("lease", "poll_interval", "tick_interval", "reconnect_max_delay"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout must not be negative, got {self.shutdown_timeout!r}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size!r}")
        if self.heartbeat_interval is not None and not 0 < self.heartbeat_interval < self.lease:
            raise ValueError("heartbeat_interval must be positive and shorter than the lease")
        if self.max_abandoned_threads is not None and self.max_abandoned_threads < 0:
            raise ValueError(
                f"max_abandoned_threads must not be negative, got {self.max_abandoned_threads!r}"
            )
        if self.pool not in ("thread", "process"):
            raise ValueError(f"pool must be 'thread' or 'process', got {self.pool!r}")

    @property
    def jobs_in_hand(self) -> int:
        """How many claimed jobs (running or waiting for a slot) it holds at
        most with a fixed ``batch_size``; without one, the least it holds at
        most (the worker may hold more while its handlers are quick)."""
        return max(self.concurrency, self.batch_size or self.concurrency)

    @property
    def heartbeat_every(self) -> float:
        """Seconds between lease renewals."""
        return self.heartbeat_interval or self.lease / 3


def new_worker_id() -> str:
    """A unique, readable worker id: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
