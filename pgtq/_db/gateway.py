"""SQL-engine layer: the one way to the database.

Plain functions that take a psycopg connection (autocommit, opened by
``connect``) and the call's parameters, run one call of the SQL API (a
``queries.Query``), and return typed records; database errors become pgtq's
exceptions here (``pgtq.errors.database_errors``). The client API
(``PgTq``, ``Database``), the worker runtime, the scheduler and the CLI all
call these; no other module opens a connection or sends SQL.

The worker's batched calls are here too: its outcomes and its next claim
go in one round trip and one transaction (``write_outcomes_and_pop``: one
statement when all succeeded, else pipelined), its lease
renewals (one ``pgtq.heartbeat_many``) in another (``renew_leases``).
"""

from __future__ import annotations

import json
import logging
import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar
from uuid import UUID

import psycopg

from pgtq._db import queries, statements
from pgtq._db.queries import Query
from pgtq._inspection import Schedule
from pgtq._records import Heartbeat, Outcome, WorkerIdentity
from pgtq.errors import ConnectionFailedError, InvalidJobError, database_errors
from pgtq.task import JobOutcome, PeriodicTask, Task, claimed_task

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

T = TypeVar("T")
P = ParamSpec("P")
Connection = psycopg.Connection[Any]

logger = logging.getLogger("pgtq")

# -- connections and prepared statements -------------------------------------------
#
# psycopg prepares a statement on the server once a connection has run it
# ``prepare_threshold`` times (5). Behind a pooler in transaction mode
# (PgBouncer 1.18) consecutive transactions of one client run on different
# server connections, so a statement prepared on one is missing on the next
# (``InvalidSqlStatementName``) or clashes with another client's of the same
# name (``DuplicatePreparedStatement: prepared statement "_pg3_0" already
# exists``). pgtq therefore turns prepared statements off on a connection
# that goes through a pooler, and keeps them on a direct one (they save the
# parse and plan of every call). The policy, set with the environment
# variable PGTQ_PREPARED_STATEMENTS:
#
#   auto (default)  off when a pooler is detected (below), else psycopg's default
#   off             never prepare (any pooler, whatever it reports)
#   on              always psycopg's default (direct or session-mode only)

PREPARED_STATEMENTS_VARIABLE = "PGTQ_PREPARED_STATEMENTS"
_POLICIES = ("auto", "on", "off")

# Set (under ``auto``) once a pgtq call met a prepared-statement error that
# detection missed: every later connection of this process then prepares nothing.
_prepared_statements_failed = False
# Connections (of a pool) the policy was already applied to.
_configured: weakref.WeakSet[Connection] = weakref.WeakSet()


def prepared_statements_policy() -> str:
    """The policy of PGTQ_PREPARED_STATEMENTS: ``auto``, ``on`` or ``off``."""
    policy = os.environ.get(PREPARED_STATEMENTS_VARIABLE, "auto").strip().lower() or "auto"
    if policy not in _POLICIES:
        raise ValueError(f"{PREPARED_STATEMENTS_VARIABLE} must be auto, on or off, got {policy!r}")
    return policy


def is_connection(conn: object) -> bool:
    """Whether ``conn`` is a (sync) psycopg ``Connection``: the integrations
    check what a framework hands them with it."""
    return isinstance(conn, psycopg.Connection)


def behind_pooler(conn: Connection) -> bool:
    """Whether a connection pooler sits between ``conn`` and PostgreSQL.

    At login the server names its backend process (the key for cancelling
    queries). A pooler cannot hand the client the key of a server
    connection it will swap, so PgBouncer (and the other poolers) send a
    key of their own: the pid the client was given differs from the pid of
    the backend that runs its queries."""
    row = conn.execute(statements.BACKEND_PID, prepare=False).fetchone()
    return row is not None and row[0] != conn.info.backend_pid


def prepares_nothing() -> bool | None:
    """Whether new connections must prepare nothing: True or False when the
    policy says so without looking (``off``, ``on``, or a failure seen
    before under ``auto``), None when the connection must be probed
    (``behind_pooler``)."""
    policy = prepared_statements_policy()
    if policy == "off" or _prepared_statements_failed:
        return True
    return None if policy == "auto" else False


def configure(conn: Connection) -> None:
    """Apply the prepared-statement policy to ``conn`` (see above); one
    round trip under ``auto``, none otherwise."""
    off = prepares_nothing()
    if off or (off is None and behind_pooler(conn)):
        conn.prepare_threshold = None
    _configured.add(conn)


def connect(dsn: str, *, autocommit: bool = True) -> Connection:
    """A new connection to ``dsn`` (autocommit unless told otherwise).
    Every connection pgtq opens comes from here, so connection options (the
    prepared-statement policy) are set in this one place."""
    with database_errors():
        try:
            conn = psycopg.connect(dsn, autocommit=True)
        except (psycopg.OperationalError, psycopg.ProgrammingError) as error:  # unreachable or malformed
            raise ConnectionFailedError(
                f"cannot connect to the pgtq database: {str(error).strip()}"
            ) from error
        try:
            configure(conn)
            conn.autocommit = autocommit
        except BaseException:
            conn.close()
            raise
    return conn


@contextmanager
def borrow(pool: ConnectionPool[Any]) -> Iterator[Connection]:
    """A connection of ``pool`` (a ``psycopg_pool.ConnectionPool``; see
    ``Database(pool=...)``) for the duration of the block, with the
    prepared-statement policy applied the first time pgtq uses it. A pool
    that has no connection to give in time raises ``ConnectionFailedError``."""
    with database_errors(), pool.connection() as conn:
        if conn not in _configured:
            configure(conn)
        yield conn


# The errors of a prepared statement that a pooler lost or shared.
_PREPARED_STATEMENT_ERRORS = (
    psycopg.errors.DuplicatePreparedStatement,
    psycopg.errors.InvalidSqlStatementName,
)


class calling(database_errors):
    """Around every call (sync or async): pgtq's errors for psycopg's
    (``database_errors``); and after a prepared-statement error that
    detection missed (a pooler that passes the server's key on), no more
    prepared statements in this process.

    Classes rather than generator context managers: every round trip
    enters it, and the two nested generators it replaced cost a one-job
    push about 9 us of the client's CPU (of about 100 us)."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection | psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        super().__exit__(kind, error, tb)  # raises the pgtq error, if pgtq knows the error's meaning
        if isinstance(error, _PREPARED_STATEMENT_ERRORS):
            _stop_preparing(self.conn)


def _stop_preparing(conn: Connection | psycopg.AsyncConnection[Any]) -> None:
    """After a prepared-statement error with the policy "auto": ``conn``
    and (from now on) every new connection of this process prepare nothing;
    the first time, a warning says so. The error itself passes on."""
    global _prepared_statements_failed
    if prepared_statements_policy() != "auto":  # "on" was asked for, "off" prepares nothing
        return
    conn.prepare_threshold = None
    if not _prepared_statements_failed:
        _prepared_statements_failed = True
        logger.warning(
            "prepared statements fail on this connection (a pooler in transaction mode?); "
            "pgtq prepares no more statements in this process (set %s=off to start so)",
            PREPARED_STATEMENTS_VARIABLE,
        )


def run(conn: Connection, query: Query[T]) -> T:
    """Send one query and return its result."""
    with calling(conn):
        cursor = conn.execute(query.sql, query.params)
        # rownumber is None when the statement returned no rows to fetch
        # (cheaper to ask than description, which builds its columns).
        rows = cursor.fetchall() if cursor.rownumber is not None else []
    return query.result(rows)


def _runs(build: Callable[P, Query[T]]) -> Callable[Concatenate[Connection, P], T]:
    """The gateway function for a query builder: ``f(conn, ...)`` runs
    ``build(...)`` on ``conn``."""

    def call(conn: Connection, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return run(conn, build(*args, **kwargs))

    call.__name__ = call.__qualname__ = build.__name__
    call.__doc__ = build.__doc__
    return call


extension_version = _runs(queries.extension_version)
pop = _runs(queries.pop)
complete = _runs(queries.complete)
fail = _runs(queries.fail)
heartbeat = _runs(queries.heartbeat)
heartbeat_many = _runs(queries.heartbeat_many)
abort = _runs(queries.abort)
release = _runs(queries.release)
tick = _runs(queries.tick)
cancel = _runs(queries.cancel)
retry = _runs(queries.retry)
prune = _runs(queries.prune)
job = _runs(queries.job)
queue_stats = _runs(queries.queue_stats)
register_worker = _runs(queries.register_worker)
unregister_worker = _runs(queries.unregister_worker)
notify = _runs(queries.notify)
metrics = _runs(queries.metrics)
jobs = _runs(queries.jobs)
workers = _runs(queries.workers)
retry_failed = _runs(queries.retry_failed)
purge = _runs(queries.purge)
delete_job = _runs(queries.delete_job)
cron_version = _runs(queries.cron_version)
cron_schedule = _runs(queries.cron_schedule)
cron_unschedule = _runs(queries.cron_unschedule)
schedules_exist = _runs(queries.schedules_exist)
health_exists = _runs(queries.health_exists)
health_allowed = _runs(queries.health_allowed)
health = _runs(queries.health)
rule_breaks = _runs(queries.rule_breaks)
pause = _runs(queries.pause)
resume = _runs(queries.resume)
configure_queue = _runs(queries.configure_queue)
queues = _runs(queries.queues)
queues_exist = _runs(queries.queues_exist)
schema_features = _runs(queries.schema_features)
role_rights = _runs(queries.role_rights)
failed_by_queue = _runs(queries.failed_by_queue)
failed_count = _runs(queries.failed_count)
history_queues = _runs(queries.history_queues)
history = _runs(queries.history)
schedules = _runs(queries.schedules)
job_detail = _runs(queries.job_detail)
job_page = _runs(queries.job_page)
outcomes = _runs(queries.outcomes)
unschedule = _runs(queries.unschedule)


# How long an upgrade's transaction waits for each lock before it gives up
# (and ``pgtq.migrate`` tries again): workers queue behind a waiting lock.
MIGRATION_LOCK_WAIT = timedelta(seconds=5)


def update_extension(conn: Connection, version: str | None) -> None:
    """``ALTER EXTENSION pgtq UPDATE`` (to ``version``, or the newest), in
    one transaction that first takes every pgtq table (see
    ``statements.LOCK_PGTQ_TABLES``), waiting at most MIGRATION_LOCK_WAIT
    for each lock."""
    with calling(conn), conn.transaction():
        run(conn, queries.migration_lock_timeout(MIGRATION_LOCK_WAIT))
        run(conn, queries.lock_pgtq_tables())
        run(conn, queries.update_extension(version))


@contextmanager
def transaction(conn: Connection) -> Iterator[None]:
    """A transaction on ``conn`` (autocommit) for the block: COMMIT at its
    end, ROLLBACK when it raises (the exception goes on unchanged: it may
    be a handler's own). Only BEGIN, COMMIT and ROLLBACK are sent here."""
    with conn.transaction():
        yield


def usable(conn: Connection) -> bool:
    """Whether ``conn`` can take the next call as it is: open, not broken,
    and outside any transaction (a failed call in autocommit leaves it so)."""
    return (
        not (conn.closed or conn.broken) and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    )


def installed_version(conn: Connection) -> str | None:
    """The installed pgtq schema version, or None when there is none."""
    if not run(conn, queries.schema_exists()):
        return None
    return run(conn, queries.version())


# -- the worker's batched calls --------------------------------------------------


@dataclass(frozen=True)
class Written:
    """The replies to a batch of outcomes: the ids ``complete_many``
    completed, and the state ``fail`` or ``abort`` gave each other job by id
    (None: its lease was stale)."""

    completed: set[int]
    failed: dict[int, str | None]


@dataclass(frozen=True, slots=True)
class _Sent(Generic[T]):
    """A query sent in an open pipeline, and the cursor its reply comes on."""

    query: Query[T]
    cursor: psycopg.Cursor[Any]

    def result(self) -> T:
        """Read the reply (once the pipeline has synced)."""
        return self.query.result(self.cursor.fetchall())


def _send(conn: Connection, query: Query[T]) -> _Sent[T]:
    return _Sent(query, conn.execute(query.sql, query.params))


def _ending(outcome: Outcome) -> Query[str | None]:
    """The call that writes an unsuccessful run: ``pgtq.abort`` (no further
    attempt) or ``pgtq.fail`` (a retry by the usual rule, or at ``retry_in``)."""
    if outcome.kind == "abort":
        return queries.abort(outcome.task, outcome.error)
    return queries.fail(outcome.task, outcome.error, outcome.retry_in)


class _SentOutcomes:
    """Outcomes queued in an open pipeline and transaction (the caller's:
    one WAL flush for the lot): the successes with one
    ``pgtq.complete_many``, each other run with ``pgtq.fail`` or
    ``pgtq.abort``."""

    def __init__(self, conn: Connection, outcomes: Sequence[Outcome]) -> None:
        done = [outcome for outcome in outcomes if outcome.kind == "done"]
        failed = [outcome for outcome in outcomes if outcome.kind != "done"]
        self._completing = _send(conn, queries.complete_many(done)) if done else None
        self._failing = [(o.task.id, _send(conn, _ending(o))) for o in failed]

    def replies(self) -> Written:
        """Read the replies (once the pipeline has synced)."""
        completed = self._completing.result() if self._completing is not None else set()
        return Written(completed, {job_id: sent.result() for job_id, sent in self._failing})


def write_outcomes(conn: Connection, outcomes: Sequence[Outcome]) -> Written:
    """Write finished runs in one round trip and one transaction: the
    successes with one ``pgtq.complete_many``, each other run with
    ``pgtq.fail`` or ``pgtq.abort`` (successes alone: that one statement,
    with no pipeline, BEGIN or COMMIT around it)."""
    if not outcomes:
        return Written(set(), {})
    if all(outcome.kind == "done" for outcome in outcomes):
        return Written(run(conn, queries.complete_many(outcomes)), {})
    with calling(conn):
        with conn.pipeline(), conn.transaction():
            sent = _SentOutcomes(conn, outcomes)
        return sent.replies()


def write_outcomes_and_pop(
    conn: Connection, outcomes: Sequence[Outcome], *, queue: str, worker: str, n: int, lease: timedelta
) -> tuple[Written | None, list[Task]]:
    """One round trip and one transaction (one commit, one WAL flush) for
    both directions: write ``outcomes`` (as ``write_outcomes``; None when
    there are none) and claim up to ``n`` jobs of ``queue`` (``pgtq.pop``).
    Both take effect or neither does: after an error the outcomes stay to
    be written again and nothing was claimed.

    Without outcomes the claim is one statement; with successes only, the
    completions and the claim are one statement too
    (``COMPLETE_MANY_AND_POP``); a failure among them sends each call,
    pipelined, in one transaction. One statement is its own transaction,
    with no BEGIN, COMMIT or pipeline syncs: measured, the pipelined
    transaction made a lone claim about 1 ms slower, which an idle worker's
    wake-up waits for."""
    if not outcomes:
        return None, run(conn, queries.pop(queue=queue, worker=worker, n=n, lease=lease))
    if all(outcome.kind == "done" for outcome in outcomes):
        query = queries.complete_many_and_pop(outcomes, queue=queue, worker=worker, n=n, lease=lease)
        completed, tasks = run(conn, query)
        return Written(completed, {}), tasks
    with calling(conn):
        with conn.pipeline(), conn.transaction():
            sent = _SentOutcomes(conn, outcomes)
            claiming = _send(conn, queries.pop(queue=queue, worker=worker, n=n, lease=lease))
        return sent.replies(), claiming.result()


# pgtq.heartbeat_many takes at most this many jobs per call.
HEARTBEAT_BATCH = 10_000


def renew_leases(
    conn: Connection, identity: WorkerIdentity, held: Sequence[Task], extend_by: timedelta
) -> list[Heartbeat]:
    """Refresh the worker's registration and extend the lease of each held
    task with ``pgtq.heartbeat_many``, in one transaction and one round
    trip; per task, in order, whether its lease was still held and whether
    a cancel was requested."""
    with calling(conn):
        with conn.transaction(), conn.pipeline():
            _send(conn, queries.register_worker(identity))
            renewals = [
                _send(conn, queries.heartbeat_many(held[start : start + HEARTBEAT_BATCH], extend_by))
                for start in range(0, len(held), HEARTBEAT_BATCH)
            ]
        return [beat for renewal in renewals for beat in renewal.result()]


def release_all(conn: Connection, tasks: Sequence[Task]) -> None:
    """Hand back claimed tasks (``pgtq.release``) in one transaction and
    one round trip."""
    with calling(conn), conn.transaction(), conn.pipeline():
        for task in tasks:
            _send(conn, queries.release(task))


# -- periodic schedules ---------------------------------------------------------------


def schedule_all(conn: Connection, periodic: Sequence[PeriodicTask]) -> list[Schedule]:
    """``pgtq.schedule`` of each periodic task (an idempotent upsert), in
    one transaction and one round trip; the schedules, by name. The rows are
    written in name order, so workers registering the same schedules at
    once never deadlock."""
    ordered = sorted(periodic, key=lambda task: task.name)
    with calling(conn):
        with conn.transaction(), conn.pipeline():
            sent = [_send(conn, queries.schedule(task)) for task in ordered]
        return [reply.result() for reply in sent]


def schedule_refused(conn: Connection, periodic: PeriodicTask) -> bool:
    """Whether ``pgtq.schedule`` refuses ``periodic`` as invalid, tried in a
    transaction that is rolled back (nothing is written either way)."""
    try:
        with calling(conn), conn.transaction(force_rollback=True):
            run(conn, queries.schedule(periodic))
    except InvalidJobError:
        return True
    return False


# -- waiting for outcomes (pgtq.watch's protocol, driven by pgtq/_waiting.py) -----


def listen_finished(conn: Connection) -> None:
    """LISTEN on ``pgtq_finished`` (a waiter's first step)."""
    with calling(conn):
        run(conn, queries.listen_finished())


def _each_in_a_transaction(conn: Connection, calls: Sequence[Query[T]]) -> list[T]:
    """Run each query in a transaction of its own (BEGIN, query, COMMIT),
    all pipelined: one round trip. On an autocommit connection."""
    with calling(conn):
        with conn.pipeline():
            sent = []
            for call in calls:
                _send(conn, queries.begin())
                sent.append(_send(conn, call))
                _send(conn, queries.commit())
        return [reply.result() for reply in sent]


def watch_each(conn: Connection, job_ids: Sequence[int]) -> list[JobOutcome | None]:
    """``pgtq.watch`` of each job, each in its own transaction (a
    registration holds its job row's lock until commit: holding several
    could deadlock with a worker finishing them in another order), in one
    round trip; the replies in the order of ``job_ids``."""
    return _each_in_a_transaction(conn, [queries.watch(job_id) for job_id in job_ids])


def unwatch_each(conn: Connection, job_ids: Sequence[int]) -> list[bool]:
    """``pgtq.unwatch`` of each job, each in its own transaction, in one round trip."""
    return _each_in_a_transaction(conn, [queries.unwatch(job_id) for job_id in job_ids])


def notifications_within(conn: Connection, timeout: float) -> list[str]:
    """The payloads of the notifications that reach a listening connection
    within ``timeout`` seconds: it waits for the first one, then takes
    those already there. Those that arrived while the connection ran a
    query come first (psycopg keeps them)."""
    with calling(conn):
        payloads = [notify.payload for notify in conn.notifies(timeout=timeout, stop_after=1)]
        if payloads:
            payloads += [notify.payload for notify in conn.notifies(timeout=0)]
    return payloads


# -- the listener's session ------------------------------------------------------


@contextmanager
def _session_errors() -> Iterator[None]:
    """In a LISTEN session every database error means the session is lost."""
    try:
        with database_errors():
            yield
    except psycopg.Error as error:
        raise ConnectionFailedError(f"the listening session failed: {str(error).strip()}") from error


def listen(conn: Connection) -> None:
    """Subscribe ``conn`` to the notifications of pushed jobs (channel
    ``pgtq``) and of cancel requests for running jobs (``pgtq_cancel``)."""
    with _session_errors():
        run(conn, queries.listen_cancel())
        run(conn, queries.listen())


def _runs_in_session(build: Callable[P, Query[T]]) -> Callable[Concatenate[Connection, P], T]:
    """``_runs`` for the listening session: a database error there means
    the session is lost (``_session_errors``)."""

    def call(conn: Connection, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with _session_errors():
            return run(conn, build(*args, **kwargs))

    call.__name__ = call.__qualname__ = build.__name__
    call.__doc__ = build.__doc__
    return call


# The marks of the queues a listening worker waits for (0.12.0).
mark_waiting = _runs_in_session(queries.mark_waiting)
waiting_settled = _runs_in_session(queries.waiting_settled)
clear_waiting = _runs_in_session(queries.clear_waiting)


# A listening worker's hand-off offer (0.16.0): a push hands a job due at
# once straight to an open offer, claimed for its worker.
open_handoff = _runs_in_session(queries.open_handoff)

# The SQLSTATE classes of errors that lose a session (connection exception,
# operator intervention): any other error of offer_handoffs only refuses
# the offer (a schema before 0.16.0, a role without the worker's rights, a
# read-only session).
_SESSION_LOST = ("08", "57")


def offer_handoffs(conn: Connection, worker: str, queues: Sequence[str], lease: timedelta) -> str | None:
    """``pgtq.offer_handoffs`` on the listening session ``conn``: the channel
    its handed jobs come on; None when the schema predates hand-off
    (0.16.0) or the session's role may not offer (logged at DEBUG): its
    pushes are then announced and claimed as before."""
    try:
        with database_errors():
            return run(conn, queries.offer_handoffs(worker, queues, lease))
    except psycopg.Error as error:
        if error.sqlstate is None or error.sqlstate.startswith(_SESSION_LOST):
            raise ConnectionFailedError(f"the listening session failed: {str(error).strip()}") from error
        logger.debug("no hand-off offer on this session: %s", str(error).strip())
        return None


def close_handoff(conn: Connection, *, wait: bool) -> bool:
    """``pgtq.close_handoff`` on the listening session: no push hands it a
    job any more; with ``wait``, not before the pushes handing it one ended
    (at most ``statements.CLOSE_HANDOFF_TIMEOUT``), so every job handed to
    it has been notified. Whether the offer was open."""
    with _session_errors():
        if not wait:
            return run(conn, queries.close_handoff(wait=False))
        with conn.transaction():
            conn.execute(statements.CLOSE_HANDOFF_TIMEOUT)
            return run(conn, queries.close_handoff(wait=True))


def handed_task(claim: str) -> Task:
    """The job a push handed to this session, from the claim it notified
    (pop's columns as JSON: ``pgtq._hand_off``)."""
    job = json.loads(claim)
    return claimed_task(
        int(job["id"]),
        str(job["queue"]),
        str(job["task"]),
        tuple(job["args"]),
        dict(job["kwargs"]),
        int(job["priority"]),
        int(job["attempt"]),
        int(job["max_attempts"]),
        UUID(job["lease"]),
        datetime.fromisoformat(job["lease_expires_at"]),
    )


class Inbox:
    """The notifications of a listening session, taken without waiting, as
    (channel, payload): a queue name on ``pgtq``, a job id on
    ``pgtq_cancel`` (``statements.CANCEL_CHANNEL``).

    Those that reach the session while it runs a call, psycopg hands to the
    inbox (a notify handler); ``take`` gives them, then reads the rest
    straight from libpq, a few calls: an idle worker's wake-up waits for
    this, and psycopg's ``notifies()`` costs several times as much. Wait for
    the session's socket (``fileno``) with ``select()``. Only the thread
    that owns the session may use it, and nothing else may read the
    session's notifications."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._kept: list[tuple[str, str]] = []
        conn.add_notify_handler(self._keep)

    def _keep(self, notify: psycopg.Notify) -> None:
        self._kept.append((notify.channel, notify.payload))

    def fileno(self) -> int:
        """The session's socket."""
        return self._conn.fileno()

    def take(self) -> list[tuple[str, str]]:
        """Every notification received so far and not taken yet, oldest first."""
        taken, self._kept = self._kept, []
        with _session_errors():
            pgconn = self._conn.pgconn
            pgconn.consume_input()
            encoding = self._conn.info.encoding
            while (notify := pgconn.notifies()) is not None:
                taken.append((notify.relname.decode(encoding), notify.extra.decode(encoding)))
        return taken


# -- pooled connections (the dashboard) ------------------------------------------


class Pool:
    """A small pool of autocommit connections to one DSN (``psycopg_pool``,
    an optional dependency: ``pip install 'pgtq[dashboard]'``), for a
    server that answers many short requests at once.

    Its connections never prepare statements, so every statement gets a
    plan for its actual parameters (the dashboard's optional filters fold
    away). ``read_only`` makes every transaction of its sessions read-only
    (a second guard beside a read-only role); ``statement_timeout`` cancels
    a statement that runs longer. A connection is checked before it is
    handed out, so one lost in a server restart is replaced, not used.
    ``call(f, ...)`` runs a gateway function ``f(conn, ...)`` on a pooled
    connection.
    """

    def __init__(
        self,
        dsn: str,
        *,
        size: int,
        name: str,
        read_only: bool = False,
        statement_timeout: timedelta | None = None,
        wait_timeout: float = 10.0,
    ) -> None:
        from psycopg_pool import ConnectionPool

        if size < 1:
            raise ValueError(f"a pool needs at least one connection, got size {size}")
        self._setup = [
            *([queries.read_only_session()] if read_only else []),
            *([queries.statement_timeout(statement_timeout)] if statement_timeout else []),
        ]
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=size,
            name=name,
            open=False,
            timeout=wait_timeout,
            kwargs={"autocommit": True, "prepare_threshold": None},
            configure=self._configure,
            check=ConnectionPool.check_connection,
        )

    def _configure(self, conn: Connection) -> None:
        for query in self._setup:
            run(conn, query)

    def open(self) -> None:
        """Open the pool (its first connection is made in the background)."""
        self._pool.open()

    def close(self) -> None:
        """Close every connection of the pool."""
        self._pool.close()

    def call(
        self, function: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``function(conn, *args, **kwargs)`` on a connection of the pool;
        raises ``ConnectionFailedError`` when none comes within the pool's
        wait timeout."""
        from psycopg_pool import PoolTimeout

        try:
            with self._pool.connection() as conn:
                return function(conn, *args, **kwargs)
        except PoolTimeout as error:
            raise ConnectionFailedError(f"no database connection available: {error}") from error
