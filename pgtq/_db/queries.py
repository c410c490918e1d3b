"""SQL-engine layer: each call of the SQL API as a value: its statement, its
parameters, and how its rows become a typed result.

Pure: nothing here opens a connection or sends anything. ``gateway.py``
runs these queries on a psycopg connection; an asyncio gateway can run the
very same ones on an async connection, so each statement, its parameters
and the reading of its rows exist once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import psycopg.sql

from pgtq._db import statements
from pgtq._inspection import (
    HistoryPoint,
    JobDetail,
    JobFilter,
    JobPage,
    JobRow,
    ListOrder,
    PageKey,
    RoleRights,
    RuleBreak,
    Schedule,
    SchemaFeatures,
)
from pgtq._records import Heartbeat, Outcome, WorkerIdentity
from pgtq.task import (
    HealthCheck,
    JobInfo,
    JobOutcome,
    Metric,
    PeriodicTask,
    QueueInfo,
    QueueStat,
    Task,
    WorkerInfo,
    claimed_task,
)

T = TypeVar("T")
Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Query(Generic[T]):
    """One statement, its parameters (None: a statement without any), and
    how the rows it returns become the result."""

    sql: str | psycopg.sql.Composable
    params: Mapping[str, Any] | None
    result: Callable[[list[Row]], T]


# -- reading rows --------------------------------------------------------------


def _nothing(_rows: list[Row]) -> None:
    return None


def _integer(rows: list[Row]) -> int:
    return int(rows[0][0])


def _boolean(rows: list[Row]) -> bool:
    return bool(rows[0][0])


def _text_or_none(rows: list[Row]) -> str | None:
    value = rows[0][0] if rows else None
    return None if value is None else str(value)


def _text(rows: list[Row]) -> str:
    return str(rows[0][0])


def _integers(rows: list[Row]) -> list[int]:
    return [int(row[0]) for row in rows]


def _id_set(rows: list[Row]) -> set[int]:
    return {row[0] for row in rows}


def _tasks(queue: str, claimed: Row) -> list[Task]:
    """Tasks of ``queue`` from the arrays of claimed jobs that ``POP`` and
    ``COMPLETE_MANY_AND_POP`` return (all NULL when none was claimed)."""
    ids, names, payloads, priorities, attempts, max_attempts, leases, expiries = claimed
    if ids is None:
        return []
    return [
        claimed_task(job_id, queue, name, tuple(args), kwargs, priority, attempt, most, lease, expires)
        for job_id, name, (args, kwargs), priority, attempt, most, lease, expires in zip(
            ids, names, payloads, priorities, attempts, max_attempts, leases, expiries, strict=True
        )
    ]


def _claimed(queue: str) -> Callable[[list[Row]], list[Task]]:
    """How the row of ``POP`` becomes the tasks it claimed."""
    return lambda rows: _tasks(queue, rows[0])


def _completed_and_claimed(queue: str) -> Callable[[list[Row]], tuple[set[int], list[Task]]]:
    """How the row of ``COMPLETE_MANY_AND_POP`` becomes the ids it
    completed and the tasks it claimed."""
    return lambda rows: (set(rows[0][0]), _tasks(queue, rows[0][1:]))


def _heartbeats(rows: list[Row]) -> list[Heartbeat]:
    return [Heartbeat(held, cancel_requested) for held, cancel_requested in rows]


def _job(rows: list[Row]) -> JobInfo | None:
    return JobInfo(*rows[0]) if rows else None


def _queue_stats(rows: list[Row]) -> list[QueueStat]:
    return [QueueStat(*row) for row in rows]


def _jobs(rows: list[Row]) -> list[JobInfo]:
    return [JobInfo(*row) for row in rows]


def _metrics(rows: list[Row]) -> list[Metric]:
    return [Metric(*row) for row in rows]


def _workers(rows: list[Row]) -> list[WorkerInfo]:
    return [WorkerInfo(*row) for row in rows]


def _health(rows: list[Row]) -> list[HealthCheck]:
    return [HealthCheck(*row) for row in rows]


# -- the calls -------------------------------------------------------------------


def schema_exists() -> Query[bool]:
    """Whether the database has a pgtq schema (``pgtq.version`` exists)."""
    return Query(statements.SCHEMA_EXISTS, None, _boolean)


def version() -> Query[str]:
    """The installed schema version (``pgtq.version``)."""
    return Query(statements.VERSION, None, _text)


def extension_version() -> Query[str | None]:
    """The version of the pgtq extension, or None when pgtq was not
    installed as an extension."""
    return Query(statements.EXTENSION_INSTALLED, None, _text_or_none)


def update_extension(version: str | None) -> Query[None]:
    """``ALTER EXTENSION pgtq UPDATE`` to the newest version, or to ``version``."""
    if version is None:
        return Query(statements.UPDATE_EXTENSION, None, _nothing)
    return Query(statements.UPDATE_EXTENSION_TO.format(version=psycopg.sql.Literal(version)), None, _nothing)


def migration_lock_timeout(timeout: timedelta) -> Query[None]:
    """For the rest of the transaction, wait at most ``timeout`` for a lock."""
    milliseconds = max(1, int(timeout.total_seconds() * 1000))
    return Query(statements.MIGRATION_LOCK_TIMEOUT, {"timeout": f"{milliseconds}ms"}, _nothing)


def lock_pgtq_tables() -> Query[None]:
    """Lock every table of schema pgtq (if any) for an upgrade, at once."""
    return Query(statements.LOCK_PGTQ_TABLES, None, _nothing)


def push(
    *,
    queue: str,
    task: str,
    args_json: str,
    kwargs_json: str,
    run_at: datetime | None,
    delay: timedelta | None,
    priority: int,
    max_attempts: int,
    backoff_base: timedelta | None = None,
    backoff_cap: timedelta | None = None,
    job_key: str | None = None,
    job_key_mode: str = "keep",
    lock_key: str | None = None,
) -> Query[int]:
    """``pgtq.push`` of one job (due at ``run_at``, or ``delay`` from the
    database's now, with its own backoff when given), with its job key and
    ``lock_key`` if given; its result is the job's id (with a job key, the
    pending job's that has it, if there was one)."""
    params = _push_params(
        queue, task, args_json, kwargs_json, run_at, delay, priority, max_attempts, backoff_base, backoff_cap
    )
    params |= {"job_key": job_key, "job_key_mode": job_key_mode, "lock_key": lock_key}
    return Query(statements.PUSH if delay is None else statements.PUSH_DELAYED, params, _integer)


def push_many(
    *,
    queue: str,
    task: str,
    args_json: list[str],
    kwargs_json: list[str] | None,
    run_at: datetime | None,
    delay: timedelta | None,
    priority: int,
    max_attempts: int,
    backoff_base: timedelta | None = None,
    backoff_cap: timedelta | None = None,
    job_keys: Sequence[str | None] | None = None,
    job_key_mode: str = "keep",
    lock_key: str | None = None,
) -> Query[list[int]]:
    """``pgtq.push_many``: one job per element of ``args_json`` (with the
    job key at its position in ``job_keys``), each with ``lock_key`` if
    given; the ids in order."""
    params = _push_params(
        queue, task, args_json, kwargs_json, run_at, delay, priority, max_attempts, backoff_base, backoff_cap
    )
    params |= {"job_keys": None if job_keys is None else list(job_keys), "job_key_mode": job_key_mode}
    params["lock_keys"] = None if lock_key is None else [lock_key] * len(args_json)
    return Query(statements.PUSH_MANY, params, _integers)


def _push_params(
    queue: str,
    task: str,
    args: str | list[str],
    kwargs: str | list[str] | None,
    run_at: datetime | None,
    delay: timedelta | None,
    priority: int,
    max_attempts: int,
    backoff_base: timedelta | None,
    backoff_cap: timedelta | None,
) -> dict[str, Any]:
    return {
        "queue": queue,
        "task": task,
        "args": args,
        "kwargs": kwargs,
        "run_at": run_at,
        "delay": delay,
        "priority": priority,
        "max_attempts": max_attempts,
        "backoff_base": backoff_base,
        "backoff_cap": backoff_cap,
    }


def pop(*, queue: str, worker: str | None, n: int, lease: timedelta | None) -> Query[list[Task]]:
    """``pgtq.pop``: claim up to ``n`` ready jobs of ``queue``."""
    return Query(statements.POP, {"queue": queue, "worker": worker, "n": n, "lease": lease}, _claimed(queue))


def complete(task: Task, result_json: str | None) -> Query[bool]:
    """``pgtq.complete``: False when the lease is stale."""
    return Query(statements.COMPLETE, {"id": task.id, "lease": task.lease, "result": result_json}, _boolean)


def _completions(done: Sequence[Outcome]) -> dict[str, Any]:
    """The arrays ``pgtq.complete_many`` takes for the runs ``done``. The
    results go as NULL when no run returned one (complete_many's default):
    an array of NULLs costs the driver as much to encode as real results."""
    results = [outcome.result_json for outcome in done]
    return {
        "ids": [outcome.task.id for outcome in done],
        "leases": [outcome.task.lease for outcome in done],
        "results": results if any(result is not None for result in results) else None,
    }


def complete_many(done: Sequence[Outcome]) -> Query[set[int]]:
    """``pgtq.complete_many`` of successful runs: the ids it completed."""
    return Query(statements.COMPLETE_MANY, _completions(done), _id_set)


def complete_many_and_pop(
    done: Sequence[Outcome], *, queue: str, worker: str | None, n: int, lease: timedelta | None
) -> Query[tuple[set[int], list[Task]]]:
    """``pgtq.complete_many_and_pop``: the successful runs completed, then
    up to ``n`` jobs of ``queue`` claimed, in one statement: the ids
    completed and the claimed tasks."""
    params = _completions(done) | {
        "queue": queue,
        "worker": worker,
        "n": n,
        "lease": lease,
    }
    return Query(statements.COMPLETE_MANY_AND_POP, params, _completed_and_claimed(queue))


def fail(task: Task, error: str | None, retry_in: timedelta | None = None) -> Query[str | None]:
    """``pgtq.fail``: the job's new state, or None when the lease is stale."""
    params = {"id": task.id, "lease": task.lease, "error": error, "retry_in": retry_in}
    return Query(statements.FAIL, params, _text_or_none)


def heartbeat(task: Task, extend_by: timedelta | None) -> Query[bool]:
    """``pgtq.heartbeat``: False when the lease is stale."""
    params = {"id": task.id, "lease": task.lease, "extend_by": extend_by}
    return Query(statements.HEARTBEAT, params, _boolean)


def heartbeat_many(tasks: Sequence[Task], extend_by: timedelta | None) -> Query[list[Heartbeat]]:
    """``pgtq.heartbeat_many``: per task, in order, whether its lease is
    still held (and now extended) and whether a cancel was requested."""
    params = {
        "ids": [task.id for task in tasks],
        "leases": [task.lease for task in tasks],
        "extend_by": extend_by,
    }
    return Query(statements.HEARTBEAT_MANY, params, _heartbeats)


def abort(task: Task, error: str | None) -> Query[str | None]:
    """``pgtq.abort``: the job's new state (failed, or cancelled), or None
    when the lease is stale."""
    return Query(statements.ABORT, {"id": task.id, "lease": task.lease, "error": error}, _text_or_none)


def release(task: Task) -> Query[bool]:
    """``pgtq.release``: False when the lease is stale."""
    return Query(statements.RELEASE, {"id": task.id, "lease": task.lease}, _boolean)


def tick(queue: str | None) -> Query[int]:
    """``pgtq.tick`` of one queue, or of every queue with None: jobs moved."""
    return Query(statements.TICK, {"queue": queue}, _integer)


def cancel(job_id: int) -> Query[bool]:
    """``pgtq.cancel``: False when the job had started or is unknown."""
    return Query(statements.CANCEL, {"id": job_id}, _boolean)


def retry(job_id: int) -> Query[bool]:
    """``pgtq.retry``: False unless the job was failed or cancelled."""
    return Query(statements.RETRY, {"id": job_id}, _boolean)


def prune(older_than: timedelta | None, include_failed: bool, batch: int) -> Query[int]:
    """``pgtq.prune``: how many finished jobs it deleted (at most ``batch``)."""
    params = {"older_than": older_than, "include_failed": include_failed, "batch": batch}
    return Query(statements.PRUNE, params, _integer)


def job(job_id: int) -> Query[JobInfo | None]:
    """One job of the ``pgtq.jobs`` view, or None."""
    return Query(statements.JOB, {"id": job_id}, _job)


def queue_stats(queue: str | None) -> Query[list[QueueStat]]:
    """``pgtq.queue_stats`` of one queue, or of every queue with None."""
    return Query(statements.QUEUE_STATS, {"queue": queue}, _queue_stats)


def register_worker(identity: WorkerIdentity) -> Query[None]:
    """``pgtq.register_worker``: record (or refresh) a live worker."""
    params = {
        "worker": identity.worker,
        "host": identity.host,
        "pid": identity.pid,
        "queues": list(identity.queues),
    }
    return Query(statements.REGISTER_WORKER, params, _nothing)


def unregister_worker(worker: str) -> Query[None]:
    """``pgtq.unregister_worker``: forget a worker that stops."""
    return Query(statements.UNREGISTER_WORKER, {"worker": worker}, _nothing)


def metrics(period: timedelta) -> Query[list[Metric]]:
    """``pgtq.metrics``: the queue-level figures, recent ones over ``period``."""
    return Query(statements.METRICS, {"period": period}, _metrics)


def jobs(
    *, queue: str | None, task: str | None, state: str | None, before: int | None, limit: int
) -> Query[list[JobInfo]]:
    """Jobs of ``pgtq.jobs``, newest first, filtered (None: any), with ids
    below ``before`` (keyset paging), at most ``limit``."""
    params = {"queue": queue, "task": task, "state": state, "before": before, "limit": limit}
    return Query(statements.JOBS, params, _jobs)


def workers() -> Query[list[WorkerInfo]]:
    """The live workers of ``pgtq.workers``."""
    return Query(statements.WORKERS, None, _workers)


def retry_failed(queue: str | None, task: str | None) -> Query[int]:
    """``pgtq.retry_failed``: how many failed jobs it retried."""
    return Query(statements.RETRY_FAILED, {"queue": queue, "task": task}, _integer)


def purge(older_than: timedelta, states: Sequence[str], queue: str | None, batch: int) -> Query[int]:
    """``pgtq.purge``: how many finished jobs it deleted (at most ``batch``)."""
    params = {"older_than": older_than, "states": list(states), "queue": queue, "batch": batch}
    return Query(statements.PURGE, params, _integer)


def delete_job(job_id: int) -> Query[bool]:
    """``pgtq.delete_job``: False for a live job or an unknown id."""
    return Query(statements.DELETE_JOB, {"id": job_id}, _boolean)


def pause(queue: str) -> Query[bool]:
    """``pgtq.pause``: False when the queue was paused already."""
    return Query(statements.PAUSE, {"queue": queue}, _boolean)


def resume(queue: str) -> Query[bool]:
    """``pgtq.resume``: False when the queue was not paused."""
    return Query(statements.RESUME, {"queue": queue}, _boolean)


def configure_queue(
    queue: str, *, max_running: int | None, rate_limit: int | None, rate_period: timedelta | None
) -> Query[bool]:
    """``pgtq.configure_queue``: set the queue's limits to these (None: no
    such limit); whether that changed them."""
    limits = {"max_running": max_running, "rate_limit": rate_limit, "rate_period": rate_period}
    return Query(statements.CONFIGURE_QUEUE, {"queue": queue, **limits}, _boolean)


def queues(queue: str | None) -> Query[list[QueueInfo]]:
    """``pgtq.queues``: every known queue by name, or ``queue`` only."""
    return Query(statements.QUEUES, {"queue": queue}, lambda rows: [QueueInfo(*row) for row in rows])


def queues_exist() -> Query[bool]:
    """Whether the schema has the view ``pgtq.queues`` (pause and limits)."""
    return Query(statements.QUEUES_EXIST, None, _boolean)


def rule_breaks(limit: int) -> Query[list[RuleBreak]]:
    """The first ``limit`` rows of ``pgtq.job_rule_breaks``, by job id."""
    return Query(statements.RULE_BREAKS, {"limit": limit}, lambda rows: [RuleBreak(*row) for row in rows])


def health_exists() -> Query[bool]:
    """Whether the schema has ``pgtq.health`` (0.14.0)."""
    return Query(statements.HEALTH_EXISTS, None, _boolean)


def health_allowed() -> Query[bool]:
    """Whether the schema has ``pgtq.health`` and this role may call it."""
    return Query(statements.HEALTH_ALLOWED, None, _boolean)


def health(late: timedelta | None, old_transaction: timedelta | None) -> Query[list[HealthCheck]]:
    """``pgtq.health``: its checks in order, with these thresholds (None:
    the function's default)."""
    given = {
        name: value
        for name, value in (("late", late), ("old_transaction", old_transaction))
        if value is not None
    }
    thresholds = ", ".join(statements.HEALTH_THRESHOLDS[name] for name in given)
    return Query(statements.HEALTH.format(thresholds=thresholds), given, _health)


def schedules_exist() -> Query[bool]:
    """Whether the schema has the view ``pgtq.schedules``."""
    return Query(statements.SCHEDULES_EXIST, None, _boolean)


def cron_version() -> Query[str | None]:
    """The version of the pg_cron extension in this database, or None."""
    return Query(statements.CRON_VERSION, None, _text_or_none)


def cron_schedule(name: str, schedule: str, command: str) -> Query[int]:
    """``cron.schedule``: create or replace the pg_cron job ``name``."""
    return Query(statements.CRON_SCHEDULE, {"name": name, "schedule": schedule, "command": command}, _integer)


def cron_unschedule(names: Sequence[str]) -> Query[int]:
    """``cron.unschedule`` of the pg_cron jobs of these names: how many there were."""
    return Query(statements.CRON_UNSCHEDULE, {"names": list(names)}, _integer)


def listen() -> Query[None]:
    """LISTEN on the channel ``pgtq._announce`` notifies."""
    return Query(statements.LISTEN, None, _nothing)


def listen_cancel() -> Query[None]:
    """LISTEN on the channel ``pgtq.cancel`` notifies for a running job."""
    return Query(statements.LISTEN_CANCEL, None, _nothing)


def mark_waiting(queues: Sequence[str]) -> Query[bool]:
    """``pgtq.mark_waiting``: mark the session waiting for ``queues``;
    whether the pushes that skipped their notification all ended."""
    return Query(statements.MARK_WAITING, {"queues": list(queues)}, _boolean)


def waiting_settled(queues: Sequence[str]) -> Query[bool]:
    """``pgtq.waiting_settled``: whether the pushes of ``queues`` that
    skipped their notification all ended."""
    return Query(statements.WAITING_SETTLED, {"queues": list(queues)}, _boolean)


def clear_waiting(queues: Sequence[str]) -> Query[None]:
    """``pgtq.clear_waiting``: let go of the session's marks of ``queues``."""
    return Query(statements.CLEAR_WAITING, {"queues": list(queues)}, _nothing)


def offer_handoffs(worker: str, queues: Sequence[str], lease: timedelta) -> Query[str]:
    """``pgtq.offer_handoffs``: make the session a hand-off offer of
    ``worker`` for ``queues``; the channel its handed jobs come on."""
    return Query(statements.OFFER_HANDOFFS, {"worker": worker, "queues": list(queues), "lease": lease}, _text)


def open_handoff() -> Query[bool]:
    """``pgtq.open_handoff``: open the session's offer (False: it made none)."""
    return Query(statements.OPEN_HANDOFF, None, _boolean)


def close_handoff(wait: bool) -> Query[bool]:
    """``pgtq.close_handoff``: close the session's offer; with ``wait``,
    after the pushes handing it a job ended. Whether it was open."""
    return Query(statements.CLOSE_HANDOFF, {"wait": wait}, _boolean)


def notify(payload: str) -> Query[None]:
    """Send ``payload`` on the channel ``pgtq`` (the listener's probe)."""
    return Query(statements.NOTIFY, {"payload": payload}, _nothing)


# -- waiting for outcomes (pgtq.watch's protocol: pgtq/_waiting.py) ---------------


def _outcomes(rows: list[Row]) -> list[JobOutcome]:
    return [JobOutcome(*row) for row in rows]


def _outcome_or_none(rows: list[Row]) -> JobOutcome | None:
    return JobOutcome(*rows[0]) if rows else None


def listen_finished() -> Query[None]:
    """LISTEN on ``pgtq_finished``, where watched jobs that finish are told."""
    return Query(statements.LISTEN_FINISHED, None, _nothing)


def begin() -> Query[None]:
    """Start a transaction (on an autocommit connection, in a pipeline)."""
    return Query(statements.BEGIN, None, _nothing)


def commit() -> Query[None]:
    """Commit the transaction ``begin`` started."""
    return Query(statements.COMMIT, None, _nothing)


def watch(job_id: int) -> Query[JobOutcome | None]:
    """``pgtq.watch``: register as a waiter of an unfinished job; the job's
    state and outcome, or None for a job the caller may not see."""
    return Query(statements.WATCH, {"id": job_id}, _outcome_or_none)


def unwatch(job_id: int) -> Query[bool]:
    """``pgtq.unwatch``: take one registration back; whether there was one."""
    return Query(statements.UNWATCH, {"id": job_id}, _boolean)


# pgtq.outcomes reads at most this many ids per call.
OUTCOMES_PER_CALL = 10_000


def outcomes(job_ids: Sequence[int]) -> Query[list[JobOutcome]]:
    """``pgtq.outcomes``: state and outcome of the jobs among ``job_ids``
    (at most OUTCOMES_PER_CALL) that the caller may see, in no order."""
    return Query(statements.OUTCOMES, {"ids": list(job_ids)}, _outcomes)


# -- periodic schedules -------------------------------------------------------------


def schedule(periodic: PeriodicTask) -> Query[Schedule]:
    """``pgtq.schedule``: create or change the periodic schedule of
    ``periodic`` (an upsert: the same definition again changes nothing);
    the schedule as it now is."""
    params = {
        "name": periodic.name,
        "cron": periodic.cron,
        "queue": periodic.queue,
        "task": periodic.task,
        "args": periodic.args_json,
        "kwargs": periodic.kwargs_json,
        "timezone": periodic.timezone,
        "priority": periodic.priority,
        "max_attempts": periodic.max_attempts,
    }
    return Query(statements.SCHEDULE, params, lambda rows: Schedule(*rows[0]))


def unschedule(name: str) -> Query[bool]:
    """``pgtq.unschedule``: remove a schedule; whether it existed."""
    return Query(statements.UNSCHEDULE, {"name": name}, _boolean)


# -- inspection and operator actions (the dashboard) -------------------------------

# Columns of pgtq.jobs that later schema versions add and the job page shows
# when the installed schema has them (SchemaFeatures.job_columns).
OPTIONAL_JOB_COLUMNS = ("job_key", "cancel_requested_at")


def read_only_session() -> Query[None]:
    """Make every later transaction of the session read-only."""
    return Query(statements.READ_ONLY_SESSION, None, _nothing)


def statement_timeout(timeout: timedelta) -> Query[None]:
    """Cancel any later statement of the session that runs longer than ``timeout``."""
    milliseconds = max(1, int(timeout.total_seconds() * 1000))
    return Query(statements.STATEMENT_TIMEOUT, {"timeout": f"{milliseconds}ms"}, _nothing)


def schema_features() -> Query[SchemaFeatures]:
    """The columns of ``pgtq.jobs`` and the public function names of the
    installed schema, from the catalog."""
    return Query(
        statements.SCHEMA_FEATURES,
        None,
        lambda rows: SchemaFeatures(frozenset(rows[0][0]), frozenset(rows[0][1])),
    )


def role_rights() -> Query[RoleRights]:
    """What the connection's role may do: read the jobs, retry them."""
    return Query(statements.ROLE_RIGHTS, None, lambda rows: RoleRights(*rows[0]))


def failed_by_queue() -> Query[dict[str, int]]:
    """How many failed jobs each queue keeps."""
    return Query(statements.FAILED_BY_QUEUE, None, lambda rows: {queue: int(n) for queue, n in rows})


def failed_count(queue: str | None, task: str | None) -> Query[int]:
    """How many failed jobs a queue and/or task keeps (None: any)."""
    return Query(statements.FAILED_COUNT, {"queue": queue, "task": task}, _integer)


def history_queues() -> Query[list[str]]:
    """The queues the kept history names."""
    return Query(statements.HISTORY_QUEUES, None, lambda rows: [row[0] for row in rows])


def history(window: timedelta) -> Query[list[HistoryPoint]]:
    """The history samples of the last ``window``, per queue (tasks summed), oldest first."""
    return Query(statements.HISTORY, {"window": window}, lambda rows: [HistoryPoint(*row) for row in rows])


def schedules() -> Query[list[Schedule]]:
    """Every periodic schedule, by name."""
    return Query(statements.SCHEDULES, None, lambda rows: [Schedule(*row) for row in rows])


def job_detail(job_id: int, extra_columns: Sequence[str] = ()) -> Query[JobDetail | None]:
    """One job of ``pgtq.jobs`` with every column but the lease, and the
    ``extra_columns`` (names from OPTIONAL_JOB_COLUMNS only); None when unknown."""
    unknown = set(extra_columns) - set(OPTIONAL_JOB_COLUMNS)
    if unknown:
        raise ValueError(f"not an optional column of pgtq.jobs: {sorted(unknown)}")
    names = list(extra_columns)
    extra = psycopg.sql.SQL("").join(psycopg.sql.SQL(", {}").format(psycopg.sql.Identifier(n)) for n in names)
    fixed = len(fields(JobDetail)) - 1  # all but extra

    def read(rows: list[Row]) -> JobDetail | None:
        if not rows:
            return None
        row = rows[0]
        return JobDetail(*row[:fixed], extra=dict(zip(names, row[fixed:], strict=True)))

    return Query(statements.JOB_DETAIL.format(extra=extra), {"id": job_id}, read)


_JOB_LISTS = {
    ListOrder.NEWEST_FINISHED: statements.JOBS_NEWEST_FINISHED,
    ListOrder.NEXT_DUE: statements.JOBS_NEXT_DUE,
    ListOrder.LEASE_EXPIRY: statements.JOBS_LEASE_EXPIRY,
    ListOrder.POP_ORDER: statements.JOBS_POP_ORDER,
    ListOrder.NEWEST: statements.JOBS_NEWEST,
}


def job_page(where: JobFilter, after: PageKey | None, limit: int) -> Query[JobPage]:
    """Up to ``limit`` jobs that ``where`` selects, in the list order of its
    state, after the row whose key is ``after`` (None: from the start)."""
    order = where.order
    params: dict[str, Any] = {
        "queue": where.queue,
        "task": where.task,
        "state": where.state,
        "limit": limit + 1,  # one more tells whether a next page exists
        "after_id": None,
        "after_time": None,
        "after_queue": None,
        "after_priority": None,
    }
    if after is not None:
        if order is ListOrder.POP_ORDER:
            params["after_queue"], params["after_priority"], params["after_id"] = after
        elif order is ListOrder.NEWEST:
            (params["after_id"],) = after
        else:
            params["after_time"], params["after_id"] = after

    def read(rows: list[Row]) -> JobPage:
        jobs = [JobRow(*row) for row in rows[:limit]]
        return JobPage(jobs, jobs[-1].key(order) if len(rows) > limit else None)

    return Query(_JOB_LISTS[order], params, read)
