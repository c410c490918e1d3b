"""Records of what an operator inspects (the dashboard's reads), at the
bottom beside ``pgtq.task``: queue figures, history samples, job lists and
their page keys, schedules, and what the installed schema offers (the figures of
``pgtq.metrics()`` and the workers are ``pgtq.task``'s Metric and
WorkerInfo, the CLI's records too).

The SQL-engine layer builds them from rows (``pgtq._db.queries``); the
dashboard reads them. Pure: nothing here talks to the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from pgtq.task import JobInfo, Metric, WorkerInfo

__all__ = [
    "FINISHED_STATES",
    "JOB_STATES",
    "LIVE_STATES",
    "HistoryPoint",
    "JobDetail",
    "JobFilter",
    "JobPage",
    "JobRow",
    "ListOrder",
    "Metric",
    "PageKey",
    "RoleRights",
    "RuleBreak",
    "Schedule",
    "SchemaFeatures",
    "WorkerInfo",
]

JOB_STATES = ("scheduled", "ready", "running", "done", "failed", "cancelled")
LIVE_STATES = ("scheduled", "ready", "running")
FINISHED_STATES = ("done", "failed", "cancelled")

PageKey = tuple[Any, ...]


class ListOrder(Enum):
    """How a job list is sorted. Each order follows an index of the job
    table, so that every page (the first, one in the middle, the last) is
    one short index range scan that starts at the key of the page before
    (keyset paging: no OFFSET)."""

    NEWEST_FINISHED = "finished"  # done, failed, cancelled: finished_at DESC, id DESC (job_finished_idx)
    NEXT_DUE = "due"  # scheduled: run_at, id (job_scheduled_idx)
    LEASE_EXPIRY = "lease"  # running: lease_expires_at, id (job_running_idx)
    POP_ORDER = "pop"  # ready: queue, priority DESC, id, pop's order (job_ready_idx, job_keyed_ready_idx)
    NEWEST = "newest"  # any state: id DESC (the primary key)

    @classmethod
    def for_state(cls, state: str | None) -> ListOrder:
        """The order of a list of jobs in ``state`` (None: any state)."""
        if state is None:
            return cls.NEWEST
        if state in FINISHED_STATES:
            return cls.NEWEST_FINISHED
        return {"scheduled": cls.NEXT_DUE, "running": cls.LEASE_EXPIRY, "ready": cls.POP_ORDER}[state]


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a list shows: of one queue, task and state (None: any)."""

    queue: str | None = None
    task: str | None = None
    state: str | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in JOB_STATES:
            raise ValueError(f"unknown job state {self.state!r}: one of {', '.join(JOB_STATES)}")

    @property
    def order(self) -> ListOrder:
        return ListOrder.for_state(self.state)


@dataclass(frozen=True)
class JobRow:
    """One line of a job list: the job without its payload, with the start
    of its arguments and the first line of its last error."""

    id: int
    queue: str
    task: str
    state: str
    priority: int
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None
    worker: str | None
    args_preview: str
    error_summary: str | None

    def key(self, order: ListOrder) -> PageKey:
        """This row's place in a list sorted by ``order``: the next page
        starts after it."""
        if order is ListOrder.NEWEST_FINISHED:
            return (self.finished_at, self.id)
        if order is ListOrder.NEXT_DUE:
            return (self.run_at, self.id)
        if order is ListOrder.LEASE_EXPIRY:
            return (self.lease_expires_at, self.id)
        if order is ListOrder.POP_ORDER:
            return (self.queue, self.priority, self.id)
        return (self.id,)


@dataclass(frozen=True)
class JobPage:
    """One page of a job list, and the key of its last row when more follow."""

    rows: list[JobRow]
    next_key: PageKey | None


@dataclass(frozen=True)
class JobDetail(JobInfo):
    """A job as the ``pgtq.jobs`` view shows it, every column but the lease
    token: ``JobInfo``, its lease expiry, and in ``extra`` the columns of
    later schema versions that the installed one has (``job_key``,
    ``cancel_requested_at``), by name."""

    lease_expires_at: datetime | None
    extra: dict[str, Any]


@dataclass(frozen=True)
class HistoryPoint:
    """One queue at one sample of ``pgtq.queue_history`` (its tasks summed):
    depth by live state, and what finished since the sample before."""

    sampled_at: datetime
    queue: str
    scheduled: int
    ready: int
    running: int
    completed: int
    failed: int
    lease_expired: int

    @property
    def depth(self) -> int:
        return self.scheduled + self.ready + self.running


@dataclass(frozen=True)
class Schedule:
    """One periodic schedule of ``pgtq.schedules``."""

    name: str
    cron: str
    timezone: str
    queue: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int
    max_attempts: int
    next_run_at: datetime
    last_run_at: datetime | None
    last_job_id: int | None
    last_error: str | None


@dataclass(frozen=True)
class RuleBreak:
    """One row of ``pgtq.job_rule_breaks``: a job whose row breaks a
    bookkeeping rule that the functions keep (only a hand-written change
    of ``pgtq._job`` does that)."""

    id: int
    queue: str
    task: str
    state: str
    rule: str


@dataclass(frozen=True)
class SchemaFeatures:
    """What the installed schema offers beyond the version this package
    was written for: the columns of the ``pgtq.jobs`` view and the names of
    the public functions of schema pgtq. Read from the catalog, never
    guessed from a version number."""

    job_columns: frozenset[str]
    functions: frozenset[str]


@dataclass(frozen=True)
class RoleRights:
    """What the role of a connection may do with pgtq."""

    user: str
    reads_jobs: bool  # SELECT on the view pgtq.jobs (pgtq_observer, pgtq_admin)
    retries_jobs: bool  # EXECUTE on pgtq.retry (pgtq_admin)
