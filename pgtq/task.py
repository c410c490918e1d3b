"""Client API, at the bottom: the records pgtq hands back (claimed tasks,
job details, queue stats) and ``current_task()``, the task whose handler
runs in this context.

The SQL-engine layer builds these records from rows, so it sits above this
module; everything else reads them.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class Task:
    """A job claimed by ``pop``: run it, then complete or fail it with its lease."""

    id: int
    queue: str
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    attempt: int = 1
    max_attempts: int = 25
    lease: UUID | None = None
    lease_expires_at: datetime | None = None

    @property
    def is_last_attempt(self) -> bool:
        """Whether a failure now makes the job ``failed`` for good."""
        return self.attempt >= self.max_attempts


@dataclass(frozen=True)
class JobInfo:
    """A job as the ``pgtq.jobs`` view shows it."""

    id: int
    queue: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    state: str
    priority: int
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    last_error: str | None
    result: Any


@dataclass(frozen=True)
class QueueInfo:
    """One row of ``pgtq.queues``: a queue's pause and limits (None: no
    limit), what counts against them now (``running``: its running jobs
    whose lease is live; ``rate_used``: the jobs started in its rate window),
    and its backlog. ``configured_at`` is when its pause or limits last
    changed (None: the queue has jobs and nothing configured)."""

    queue: str
    paused: bool
    paused_at: datetime | None
    max_running: int | None
    rate_limit: int | None
    rate_period: timedelta | None
    running: int
    rate_used: int | None
    ready: int
    scheduled: int
    configured_at: datetime | None


@dataclass(frozen=True)
class QueueStat:
    """One row of ``pgtq.queue_stats``: jobs of a queue in one state."""

    queue: str
    state: str
    jobs: int
    oldest_age: timedelta


# Set by the worker runtime around each handler call (pgtq/worker/_execution.py).
_current_task: contextvars.ContextVar[Task | None] = contextvars.ContextVar("pgtq_current_task", default=None)


def current_task() -> Task | None:
    """The task whose handler is running in this context (its id, attempt,
    ...), or None outside a worker's handler call."""
    return _current_task.get()


@dataclass(frozen=True)
class Metric:
    """One row of ``pgtq.metrics()``: a queue-level figure and its labels
    (None where the metric has no such label)."""

    metric: str
    queue: str | None
    task: str | None
    state: str | None
    value: float


@dataclass(frozen=True)
class WorkerInfo:
    """One row of ``pgtq.workers``: a live worker."""

    id: str
    host: str
    pid: int
    queues: list[str]
    started_at: datetime
    last_seen_at: datetime
