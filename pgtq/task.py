"""Client API, at the bottom: the records pgtq hands back (claimed tasks,
job details, queue stats, the outcomes waiters get), ``current_task()``,
the task whose handler runs in this context, and the ``Cancellation`` by
which the worker tells a running handler that its job was asked to stop.

The SQL-engine layer builds these records from rows, so it sits above this
module; everything else reads them.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pgtq.errors import JobCancelledError, JobFailedError

if TYPE_CHECKING:
    import psycopg

# One lock for every Cancellation: taken only when a cancel request comes
# or a handler asks for the event, never on the hot path of a job.
_CANCEL_LOCK = threading.Lock()


class Cancellation:
    """Whether this process was told that a claimed job was asked to stop
    (``pgtq.cancel`` on a running job). The worker calls ``request()`` once
    it learns of it (a notification on ``pgtq_cancel``, checked with
    ``pgtq.heartbeat_many``, or the next heartbeat); handlers read it
    through ``Task.cancel_requested`` and ``Task.cancel_event``.

    Cheap to make (one per claimed job): the ``threading.Event`` exists only
    once a handler asks for it. A copy sent to another process (a process
    pool's child) starts unrequested: that child is stopped instead.
    """

    __slots__ = ("_callbacks", "_event", "_requested")

    def __init__(self) -> None:
        self._requested = False
        self._event: threading.Event | None = None
        self._callbacks: list[Callable[[], object]] | None = None

    def __reduce__(self) -> tuple[type[Cancellation], tuple[()]]:
        return (Cancellation, ())

    @property
    def requested(self) -> bool:
        """Whether a cancel request reached this process."""
        return self._requested

    def event(self) -> threading.Event:
        """An event set when the request comes (already set if it came)."""
        with _CANCEL_LOCK:
            if self._event is None:
                self._event = threading.Event()
                if self._requested:
                    self._event.set()
            return self._event

    def on_request(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` when the request comes (at once if it came),
        in the thread that requests."""
        with _CANCEL_LOCK:
            if not self._requested:
                self._callbacks = [*(self._callbacks or ()), callback]
                return
        callback()

    def request(self) -> bool:
        """Record the request, set the event and run the callbacks; whether
        this was the first request."""
        with _CANCEL_LOCK:
            if self._requested:
                return False
            self._requested = True
            callbacks, self._callbacks = self._callbacks or [], None
            if self._event is not None:
                self._event.set()
        for callback in callbacks:
            callback()
        return True


@dataclass(frozen=True)
class Task:
    """A job claimed by ``pop``: run it, then complete or fail it with its lease.

    Inside a worker's handler (``pgtq.current_task()``), ``cancel_requested``
    and ``cancel_event`` say whether the job was asked to stop.
    """

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
    cancellation: Cancellation = field(default_factory=Cancellation, init=False, repr=False, compare=False)

    @property
    def is_last_attempt(self) -> bool:
        """Whether a failure now makes the job ``failed`` for good."""
        return self.attempt >= self.max_attempts

    @property
    def cancel_requested(self) -> bool:
        """Whether the worker running this job learnt that it was asked to
        stop (``pgtq.cancel``). A thread handler that sees it should return
        (or raise) soon: the job ends ``cancelled`` whatever it does."""
        return self.cancellation.requested

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """In a transactional plain-function handler
        (``@q.handler(transactional=True)``) run by a worker: the connection whose open transaction will also
        complete this job. Write with it and neither commit nor roll back:
        the worker completes the job in the same transaction and commits,
        so the writes and the completion commit together or not at all.
        Raises ``RuntimeError`` anywhere else (a handler that is not
        transactional, or after its run)."""
        conn = _transaction_conn.get()
        if conn is None:
            raise RuntimeError(self._no_transaction("conn", "aconn" if _transaction_aconn.get() else None))
        return conn

    @property
    def aconn(self) -> psycopg.AsyncConnection[Any]:
        """``conn`` for an ``async def`` transactional handler: the
        ``AsyncConnection`` whose open transaction will also complete this
        job. Raises ``RuntimeError`` anywhere else."""
        conn = _transaction_aconn.get()
        if conn is None:
            raise RuntimeError(self._no_transaction("aconn", "conn" if _transaction_conn.get() else None))
        return conn

    def _no_transaction(self, asked: str, instead: str | None) -> str:
        if instead is not None:
            kind = "an async def" if instead == "aconn" else "a plain (not async def)"
            return f"job {self.id} (task {self.name!r}) has {kind} handler: its connection is task.{instead}"
        return (
            f"job {self.id} (task {self.name!r}) has no transaction: only a handler declared with "
            f"@handler(transactional=True) gets one (task.{asked}), while a worker runs it"
        )

    @property
    def cancel_event(self) -> threading.Event:
        """A ``threading.Event`` set when a cancel request reaches the worker:
        ``task.cancel_event.wait(5)`` instead of ``time.sleep(5)`` stops
        waiting at once."""
        return self.cancellation.event()


_new_object = object.__new__
_set_attribute = object.__setattr__


def claimed_task(
    job_id: int,
    queue: str,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    priority: int,
    attempt: int,
    max_attempts: int,
    lease: UUID | None,
    lease_expires_at: datetime | None,
) -> Task:
    """The ``Task`` that ``Task(job_id, queue, ...)`` makes (equal to it,
    fields in the same order, a cancellation of its own), built with one
    call instead of the frozen dataclass's ``object.__setattr__`` per
    field: 0.9 us against 2.0 on this project's bench machine. A worker
    makes one for every job it claims."""
    task = _new_object(Task)
    _set_attribute(
        task,
        "__dict__",
        {
            "id": job_id,
            "queue": queue,
            "name": name,
            "args": args,
            "kwargs": kwargs,
            "priority": priority,
            "attempt": attempt,
            "max_attempts": max_attempts,
            "lease": lease,
            "lease_expires_at": lease_expires_at,
            "cancellation": Cancellation(),
        },
    )
    return task


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
# Set around a transactional handler's call: the connection of its
# transaction (pgtq/worker/_transactional.py), read by ``Task.conn``.
_transaction_conn: contextvars.ContextVar[psycopg.Connection[Any] | None] = contextvars.ContextVar(
    "pgtq_transaction_conn", default=None
)
# The same for an async def transactional handler, read by ``Task.aconn``.
_transaction_aconn: contextvars.ContextVar[psycopg.AsyncConnection[Any] | None] = contextvars.ContextVar(
    "pgtq_transaction_aconn", default=None
)


def current_task() -> Task | None:
    """The task whose handler is running in this context (its id, attempt,
    ..., and for a transactional handler its ``conn``), or None outside a
    worker's handler call (a handler called directly runs as a plain
    function: no task, no transaction)."""
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
class HealthCheck:
    """One row of ``pgtq.health()``: a check (``queues``, ``cleanup``,
    ``schedules``, from schema 0.36.0 ``vacuum``), its status (``ok``, ``warning``, ``unknown``: it could
    not see enough to tell) and what it found, in a sentence."""

    name: str
    status: str
    detail: str

    @property
    def ok(self) -> bool:
        """Whether the check found nothing that needs a look."""
        return self.status == "ok"

    @property
    def warns(self) -> bool:
        """Whether the check found something that needs a look (not
        ``unknown``: that one could not tell)."""
        return self.status == "warning"


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
