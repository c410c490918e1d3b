"""Client API: ``Database``, the operations that concern a whole pgtq
database rather than one queue.

Stats and ticks of every queue, pruning, and jobs by id. ``PgTq`` (one
queue) holds a ``Database`` and hands it these calls; the CLI and the
scheduler use it directly. Every method is one call of the SQL API through
the gateway (``pgtq._db.gateway``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from pgtq._db import gateway
from pgtq._db.schema import parse_version, schema_version
from pgtq._inspection import RuleBreak, Schedule
from pgtq._json import encode_arguments
from pgtq._values import as_interval, as_seconds
from pgtq._waiting import wait_for
from pgtq.errors import SchemaMissingError, SchemaVersionError
from pgtq.periodic import register as register_periodic
from pgtq.task import HealthCheck, JobInfo, JobOutcome, Metric, PeriodicTask, QueueInfo, QueueStat, WorkerInfo

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """The pgtq database at ``dsn``: every queue in it.

    Example::

        db = Database("dbname=app")
        db.stats()                        # job counts of every queue
        db.prune(timedelta(days=7))       # delete old finished jobs

    It opens one autocommit connection lazily, shared by its methods
    (psycopg serialises its use across threads); ``close()`` closes it.
    With ``pool`` (a ``psycopg_pool.ConnectionPool``, e.g. a web app's) it
    opens none: each call borrows a connection of the pool for its one
    round trip, so threads do not wait for each other. ``dsn`` then
    defaults to the pool's; workers open their own connections with it.
    """

    def __init__(self, dsn: str | None = None, *, pool: ConnectionPool[Any] | None = None) -> None:
        if dsn is None:
            if pool is None:
                raise ValueError("give a DSN or a connection pool")
            dsn = pool.conninfo
        self.dsn = dsn
        self.pool = pool
        self._conn: psycopg.Connection[Any] | None = None
        self._conn_lock = threading.Lock()

    def __repr__(self) -> str:
        return "<pgtq.Database>"

    # -- connections -------------------------------------------------------

    def connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection to the database."""
        return gateway.connect(self.dsn)

    @contextmanager
    def _session(self, conn: psycopg.Connection[Any] | None = None) -> Iterator[psycopg.Connection[Any]]:
        """The connection for one call: ``conn`` if given, else one borrowed
        from the pool, else the shared connection (reopened when lost)."""
        if conn is not None:
            yield conn
        elif self.pool is not None:
            with gateway.borrow(self.pool) as borrowed:
                yield borrowed
        else:
            with self._conn_lock:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._conn = self.connect()
                shared = self._conn
            yield shared

    def _call(
        self,
        conn: psycopg.Connection[Any] | None,
        call: Callable[Concatenate[psycopg.Connection[Any], P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run the gateway function ``call`` on the connection for this call
        (see ``_session``)."""
        with self._session(conn) as session:
            return call(session, *args, **kwargs)

    def close(self) -> None:
        """Close the shared connection (it reopens on the next call). A
        pool is the caller's: it stays open."""
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the SQL API -------------------------------------------------------

    def check_schema(self, conn: psycopg.Connection[Any] | None = None) -> str:
        """The installed schema version; raises when it is missing or not
        the version this package was written for."""
        return self._call(conn, check_schema)

    def installed_version(self) -> str | None:
        """The installed schema version, or None without a pgtq schema."""
        return self._call(None, gateway.installed_version)

    def stats(self, queue: str | None = None) -> list[QueueStat]:
        """Job counts per queue and state (``pgtq.queue_stats``), of every
        queue or of ``queue`` only."""
        return self._call(None, gateway.queue_stats, queue)

    def tick(self, queue: str | None = None, *, conn: psycopg.Connection[Any] | None = None) -> int:
        """Promote due jobs and rescue expired leases (``pgtq.tick``) in every
        queue, or in ``queue`` only; returns how many jobs moved."""
        return self._call(conn, gateway.tick, queue)

    def prune(
        self, older_than: timedelta | float, *, include_failed: bool = False, batch: int = 10000
    ) -> int:
        """Delete finished jobs older than ``older_than`` (``pgtq.prune``):
        done and cancelled ones, and failed ones with ``include_failed``. At
        most ``batch`` per call (a short transaction); returns how many were
        deleted, so call it again while that equals ``batch``."""
        older = as_interval(older_than, "older_than")
        return self._call(None, gateway.prune, older, include_failed, batch)

    def job(self, job_id: int) -> JobInfo | None:
        """A job's details and history, or None for an unknown id."""
        return self._call(None, gateway.job, job_id)

    def cancel(self, job_id: int) -> bool:
        """Cancel a job that has not started, or ask a running one to stop
        (``pgtq.cancel``); False for a finished job or an unknown id."""
        return self._call(None, gateway.cancel, job_id)

    def retry(self, job_id: int) -> bool:
        """Run a failed or cancelled job again (``pgtq.retry``)."""
        return self._call(None, gateway.retry, job_id)

    # -- waiting for outcomes ------------------------------------------------

    def wait(self, job_id: int, timeout: float | timedelta | None = None) -> Any:
        """Wait until job ``job_id`` finishes and return its result (the
        handler's return value, as JSON gave it back).

        Raises ``JobFailedError`` (with the stored error and traceback) when
        it failed, ``JobCancelledError`` when it was cancelled,
        ``WaitTimeoutError`` (a ``TimeoutError``) when it has not finished
        after ``timeout`` seconds (None: wait as long as it takes; 0: look
        once), and ``JobNotFoundError`` for a job this login role may not
        wait for (only the jobs it pushed: SECURITY.md). It waits for a
        notification (``pgtq.watch``'s protocol, on a connection of its own
        for the duration of the call), not by polling: see ``wait_many``.
        """
        (outcome,) = self.wait_many([job_id], timeout)
        return outcome.value()

    def wait_many(self, job_ids: Iterable[int], timeout: float | timedelta | None = None) -> list[JobOutcome]:
        """Wait until every job of ``job_ids`` has finished; their outcomes
        (``JobOutcome``: state, result, error), in the order of ``job_ids``.

        A failed or cancelled job does not raise here: look at each
        outcome's ``state`` (or ``ok``), or call its ``value()``, which
        returns the result or raises as ``wait`` does. ``WaitTimeoutError``
        after ``timeout`` seconds names the jobs not yet finished and holds
        the outcomes of the others; ``JobNotFoundError`` names ids this
        login role may not wait for (nothing is waited for then).

        One connection of its own LISTENs on ``pgtq_finished`` and registers
        with ``pgtq.watch`` for every job (pipelined, one transaction each),
        then waits for their notifications; at the timeout it takes its
        registrations back. LISTEN needs a session: through PgBouncer in
        transaction mode, wait on a ``Database``/``PgTq`` with a direct DSN.
        """
        return wait_for(self.dsn, job_ids, as_seconds(timeout, "timeout"))

    # -- periodic schedules --------------------------------------------------

    def schedule(
        self,
        name: str,
        cron: str,
        queue: str,
        task: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timezone: str = "UTC",
        priority: int = 0,
        max_attempts: int = 25,
    ) -> Schedule:
        """Create or change the periodic schedule ``name`` (``pgtq.schedule``,
        an upsert): from then on ``tick`` enqueues ``task`` into ``queue``
        with these arguments at each occurrence of ``cron`` in ``timezone``.
        Returns the schedule; a bad cron expression or time zone raises
        ``InvalidJobError`` naming it. ``@q.periodic`` declares the same
        from code."""
        args_json, kwargs_json = encode_arguments(task, args, kwargs or {})
        periodic = PeriodicTask(
            name, cron, queue, task, args_json, kwargs_json, timezone, priority, max_attempts
        )
        return self.register_periodic([periodic])[0]

    def register_periodic(self, periodic: Sequence[PeriodicTask]) -> list[Schedule]:
        """``pgtq.schedule`` of each periodic task in one transaction (what
        a worker does at start for those of its queues); the schedules."""
        return self._call(None, register_periodic, periodic)

    def unschedule(self, name: str) -> bool:
        """Remove the periodic schedule ``name`` (``pgtq.unschedule``);
        whether it existed. Jobs it enqueued stay."""
        return self._call(None, gateway.unschedule, name)

    # -- the operator's reads and actions ----------------------------------

    def metrics(self, period: timedelta | float = 300) -> list[Metric]:
        """The queue-level figures (``pgtq.metrics``): live jobs by state,
        oldest ready age, live workers, and what the history recorded over
        the last ``period`` (seconds or a timedelta, 1 minute to 31 days)."""
        return self._call(None, gateway.metrics, as_interval(period, "period"))

    def jobs(
        self,
        *,
        queue: str | None = None,
        task: str | None = None,
        state: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[JobInfo]:
        """Jobs newest first, filtered by queue, task and state (None: any);
        the next page starts ``before`` the last id of this one."""
        return self._call(None, gateway.jobs, queue=queue, task=task, state=state, before=before, limit=limit)

    def workers(self) -> list[WorkerInfo]:
        """The live workers (``pgtq.workers``)."""
        return self._call(None, gateway.workers)

    def retry_failed(self, queue: str | None = None, task: str | None = None) -> int:
        """Retry every failed job of ``queue`` and ``task`` (None: any) in
        one call (``pgtq.retry_failed``); returns how many. A failed job
        whose job key a pending job holds stays failed, and of failed jobs
        sharing a key only the newest is retried (schema 0.27.0)."""
        return self._call(None, gateway.retry_failed, queue, task)

    def purge(
        self,
        older_than: timedelta | float,
        states: Sequence[str] = ("done", "cancelled"),
        *,
        queue: str | None = None,
        batch: int = 10000,
    ) -> int:
        """Delete finished jobs in ``states`` older than ``older_than``
        (``pgtq.purge``), at most ``batch`` per call; returns how many."""
        older = as_interval(older_than, "older_than")
        return self._call(None, gateway.purge, older, states, queue, batch)

    def delete_job(self, job_id: int) -> bool:
        """Delete one finished job (``pgtq.delete_job``); False for a live
        job or an unknown id."""
        return self._call(None, gateway.delete_job, job_id)

    # -- flow control: pause, resume, limits -------------------------------

    def pause(self, queue: str) -> bool:
        """Pause ``queue`` (``pgtq.pause``): from the commit on, no worker
        takes its jobs; pushes still enqueue and running jobs finish.
        False when it was paused already."""
        return self._call(None, gateway.pause, queue)

    def resume(self, queue: str) -> bool:
        """Resume a paused ``queue`` (``pgtq.resume``); its idle workers are
        woken. False when it was not paused."""
        return self._call(None, gateway.resume, queue)

    def configure_queue(
        self,
        queue: str,
        *,
        max_running: int | None = None,
        rate_limit: int | None = None,
        rate_period: timedelta | float | None = None,
    ) -> bool:
        """Set the limits of ``queue`` to exactly these (``pgtq.configure_queue``):
        at most ``max_running`` of its jobs run at once, at most ``rate_limit``
        start in any window of ``rate_period`` (seconds or a timedelta), across
        all workers. A limit left out is no limit, so ``configure_queue(q)``
        lifts both; the pause is not touched. Returns whether that changed them."""
        period = as_interval(rate_period, "rate_period")
        return self._call(
            None,
            gateway.configure_queue,
            queue,
            max_running=max_running,
            rate_limit=rate_limit,
            rate_period=period,
        )

    def queues(self, queue: str | None = None) -> list[QueueInfo] | None:
        """Every known queue (``pgtq.queues``: paused or limited, or with live
        jobs) with its pause, limits and backlog, by name; only ``queue``
        when given. None when the schema has no pause and limits (before 0.3.0)."""
        with self._session() as conn:
            return gateway.queues(conn, queue) if gateway.queues_exist(conn) else None

    def cron_version(self) -> str | None:
        """The version of pg_cron in this database, or None without it."""
        return self._call(None, gateway.cron_version)

    def cron_schedule(self, name: str, schedule: str, command: str) -> int:
        """Create or replace the pg_cron job ``name`` (``cron.schedule``)."""
        return self._call(None, gateway.cron_schedule, name, schedule, command)

    def cron_unschedule(self, names: Sequence[str]) -> int:
        """Remove the pg_cron jobs of these names; how many there were."""
        return self._call(None, gateway.cron_unschedule, names)

    def schedules(self) -> list[Schedule] | None:
        """The periodic schedules (``pgtq.schedules``) by name, or None when
        this schema has none (they arrive with 0.2.0's cron feature)."""
        with self._session() as conn:
            return gateway.schedules(conn) if gateway.schedules_exist(conn) else None

    def health(
        self, late: timedelta | float | None = None, old_transaction: timedelta | float | None = None
    ) -> list[HealthCheck] | None:
        """What needs an operator's look (``pgtq.health``), one record per
        check, in order: ``queues`` (jobs due longer than ``late`` that no
        live worker serves, or that nothing ticks), ``cleanup`` (what
        holds back the cleanup of dead rows: a replication slot a standby
        left, or a transaction, or from schema 0.34.0 a connected
        standby's oldest snapshot, older than ``old_transaction``),
        ``schedules`` (periodic schedules whose last run failed) and, from
        schema 0.36.0, ``vacuum`` (tables of pgtq with dead rows that no
        vacuum reaches). Durations in seconds or timedeltas; None takes the
        function's default (1 and 5 minutes). None when the schema has no
        health check (before 0.14.0)."""
        late_interval = as_interval(late, "late")
        old_interval = as_interval(old_transaction, "old_transaction")
        with self._session() as conn:
            if not gateway.health_exists(conn):
                return None
            return gateway.health(conn, late_interval, old_interval)

    def rule_breaks(self, limit: int = 10) -> list[RuleBreak]:
        """The first ``limit`` job rows that break a bookkeeping rule the
        functions keep (``pgtq.job_rule_breaks``: empty unless ``pgtq._job``
        was written by hand). It reads the whole job table: an operator's
        check, not something to poll."""
        return self._call(None, gateway.rule_breaks, limit)

    def may_check_health(self) -> bool:
        """Whether ``health`` answers here: the schema has it (0.14.0) and
        this role may call it (pgtq_admin, pgtq_observer; pgtq_worker from
        schema 0.15.0)."""
        return self._call(None, gateway.health_allowed)


def check_schema(conn: psycopg.Connection[Any], *, allow_newer: bool = False) -> str:
    """The schema version installed where ``conn`` points; raises
    ``SchemaMissingError`` without one and ``SchemaVersionError`` when it is
    not the version this package was written for (a newer one passes with
    ``allow_newer``: a running worker's reconnection, see ``schema_problem``)."""
    return check_version(gateway.installed_version(conn), allow_newer=allow_newer)


def check_version(installed: str | None, *, allow_newer: bool = False) -> str:
    """``installed`` (a schema version, None: no schema) when this package
    can use it; else the error ``check_schema`` raises."""
    problem = schema_problem(installed, schema_version(), allow_newer=allow_newer)
    if problem is not None:
        raise problem
    assert installed is not None
    return installed


def schema_problem(
    installed: str | None, known: str, *, allow_newer: bool = False
) -> SchemaMissingError | SchemaVersionError | None:
    """What is wrong with schema ``installed`` (None: no schema) for a
    package written for schema ``known``, or None when nothing is.

    A newer schema is refused, unless ``allow_newer``: a worker that was
    running when the database was upgraded (it finds the newer version when
    it reconnects) goes on, because every upgrade keeps the SQL calls of
    the release before it working (tested by tests/py/test_rolling_upgrade.py);
    a worker that starts refuses it."""
    if installed is None:
        return SchemaMissingError("this database has no pgtq schema; install it with `pgtq migrate DSN`")
    if parse_version(installed) > parse_version(known) and not allow_newer:
        return SchemaVersionError(
            f"the database has pgtq schema {installed}, newer than {known} that this "
            "package knows; upgrade the pgtq Python package"
        )
    if parse_version(installed) < parse_version(known):
        return SchemaVersionError(
            f"the database has pgtq schema {installed}, older than {known} that this "
            "package needs; upgrade it with `pgtq migrate DSN`"
        )
    return None
