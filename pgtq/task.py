"""Client API, at the bottom: the records pgtq hands back (claimed tasks,
job details, queue stats, the outcomes waiters get) and ``current_task()``,
the task whose handler runs in this context.

The SQL-engine layer builds these records from rows, so it sits above this
module; everything else reads them.
"""

from __future__ import annotations

import contextvars
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pgtq.errors import JobCancelledError, JobFailedError


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
class QueueStat:
    """One row of ``pgtq.queue_stats``: jobs of a queue in one state (of
    running ones, ``cancel_requested`` were asked to cancel)."""

    queue: str
    state: str
    jobs: int
    oldest_age: timedelta
    cancel_requested: int = 0


FINISHED_STATES = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class JobOutcome:
    """A job's state and outcome as a waiter reads it (``pgtq.outcomes``,
    ``pgtq.watch``; ``PgTq.wait_many`` returns these): ``result`` for a done
    job (kept too for one cancelled after its run completed), ``error`` the
    last error it stored (for a failed or cancelled one: why)."""

    id: int
    state: str
    result: Any = None
    error: str | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """Whether the job has ended: done, failed or cancelled."""
        return self.state in FINISHED_STATES

    @property
    def ok(self) -> bool:
        """Whether the job is done (its handler returned)."""
        return self.state == "done"

    def value(self) -> Any:
        """The job's result when it is done; raises ``JobFailedError`` for a
        failed job, ``JobCancelledError`` for a cancelled one, and
        ``ValueError`` for one that has not finished."""
        if self.state == "done":
            return self.result
        if self.state == "failed":
            raise JobFailedError(self.id, self.error)
        if self.state == "cancelled":
            raise JobCancelledError(self.id, self.error, self.result)
        raise ValueError(f"job {self.id} has not finished: it is {self.state}")


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


@dataclass(frozen=True)
class PeriodicTask:
    """A periodic task declared with ``@q.periodic``: the schedule ``name``
    that enqueues ``task`` into ``queue`` at each occurrence of ``cron`` in
    ``timezone`` (``pgtq.schedule``), with these arguments (JSON, checked
    when declared), priority and max_attempts."""

    name: str
    cron: str
    queue: str
    task: str
    args_json: str = "[]"
    kwargs_json: str = "{}"
    timezone: str = "UTC"
    priority: int = 0
    max_attempts: int = 25

    @property
    def args(self) -> list[Any]:
        """The positional arguments of each job it enqueues."""
        return list(json.loads(self.args_json))

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of each job it enqueues."""
        return dict(json.loads(self.kwargs_json))
