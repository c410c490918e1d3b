"""``PgTq``: one queue in one database, and the handlers that serve it.

Every method is one call of the SQL API (see ``pgtq._sql``); the queue's
rules (ordering, retries, backoff, promotion, rescue) live in SQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

import psycopg
from psycopg.rows import dict_row

from pgtq import _sql
from pgtq._json import encode_arguments, encode_result
from pgtq._schema import parse_version, schema_version
from pgtq.errors import (
    ConnectionFailedError,
    SchemaMissingError,
    SchemaVersionError,
    database_errors,
)
from pgtq.handler import Handler
from pgtq.task import JobInfo, QueueStat, Task

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_LEASE = timedelta(minutes=5)


def _as_interval(value: timedelta | float | int | None, what: str) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a timedelta or a number of seconds, got {value!r}")
    return timedelta(seconds=value)


def tasks_from_rows(rows: Sequence[Mapping[str, Any]]) -> list[Task]:
    """Tasks from the rows of ``pgtq.pop`` (fetched as dicts)."""
    return [
        Task(
            id=row["id"],
            queue=row["queue"],
            name=row["task"],
            args=tuple(row["args"]),
            kwargs=dict(row["kwargs"]),
            priority=row["priority"],
            attempt=row["attempt"],
            max_attempts=row["max_attempts"],
            lease=row["lease"],
            lease_expires_at=row["lease_expires_at"],
        )
        for row in rows
    ]


class PgTq:
    """A queue named ``queue`` in the database at ``dsn``.

    >>> q = PgTq("emails", "dbname=app")
    >>> @q.handler()
    ... def send(to): ...
    >>> send.push("a@example.com")   # enqueue; send("a@...") runs it now

    The object opens one autocommit connection lazily, shared by its
    methods (psycopg serialises its use across threads). Workers open
    connections of their own with ``connect()``.
    """

    def __init__(self, queue: str, dsn: str) -> None:
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"queue name must be a non-empty string, got {queue!r}")
        self.queue = queue
        self.dsn = dsn
        self.handlers: dict[str, Handler[Any, Any]] = {}
        self._conn: psycopg.Connection[Any] | None = None
        self._conn_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<pgtq.PgTq queue={self.queue!r}>"

    # -- handlers ----------------------------------------------------------

    @overload
    def handler(self, func: F, /) -> Handler[Any, Any]: ...

    @overload
    def handler(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        priority: int = 0,
        max_attempts: int = 25,
        timeout: float | None = None,
    ) -> Callable[[F], Handler[Any, Any]]: ...

    def handler(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        priority: int = 0,
        max_attempts: int = 25,
        timeout: float | None = None,
    ) -> Handler[Any, Any] | Callable[[F], Handler[Any, Any]]:
        """Register a function as the handler of a task.

        The task is stored under ``name`` (default: the function's name).
        ``priority`` and ``max_attempts`` are the defaults of its pushes;
        ``timeout`` (seconds) bounds one run in a worker.
        """

        def register(target: Callable[..., Any]) -> Handler[Any, Any]:
            task_name = name if name is not None else target.__name__
            if task_name in self.handlers and self.handlers[task_name].func is not target:
                raise ValueError(f"task {task_name!r} already has a handler in queue {self.queue!r}")
            registered = Handler(
                self,
                target,
                task_name,
                priority=priority,
                max_attempts=max_attempts,
                timeout=timeout,
            )
            self.handlers[task_name] = registered
            return registered

        if func is not None:
            return register(func)
        return register

    # -- connections -------------------------------------------------------

    def connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection to the queue's database."""
        with database_errors():
            try:
                return psycopg.connect(self.dsn, autocommit=True)
            except (psycopg.OperationalError, psycopg.ProgrammingError) as error:  # unreachable or malformed
                raise ConnectionFailedError(
                    f"cannot connect to the pgtq database: {str(error).strip()}"
                ) from error

    def _connection(self) -> psycopg.Connection[Any]:
        with self._conn_lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = self.connect()
            return self._conn

    def _call(self, sql: str, params: Mapping[str, Any], conn: psycopg.Connection[Any] | None = None) -> Any:
        """Run one SQL call and return its single value."""
        with database_errors():
            row = (conn or self._connection()).execute(sql, params).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        """Close the shared connection (it reopens on the next call)."""
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> PgTq:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the SQL API -------------------------------------------------------

    def _push_params(
        self,
        task: str,
        run_at: datetime | None,
        delay: timedelta | float | None,
        priority: int,
        max_attempts: int,
        queue: str | None,
    ) -> dict[str, Any]:
        """The checked options of a push, as SQL parameters."""
        if run_at is not None and delay is not None:
            raise ValueError("give run_at or delay, not both")
        if run_at is not None and (not isinstance(run_at, datetime) or run_at.tzinfo is None):
            raise ValueError(f"run_at must be a timezone-aware datetime, got {run_at!r}")
        return {
            "queue": self.queue if queue is None else queue,
            "task": task,
            "run_at": run_at,
            "delay": _as_interval(delay, "delay"),
            "priority": priority,
            "max_attempts": max_attempts,
        }

    def push(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int = 0,
        max_attempts: int = 25,
        conn: psycopg.Connection[Any] | None = None,
        queue: str | None = None,
    ) -> int:
        """Enqueue a job for ``task`` and return its id (``pgtq.push``).

        With ``conn`` the push runs on that connection and joins its open
        transaction: the job exists only if that transaction commits.
        ``run_at`` (an aware datetime) or ``delay`` (seconds or timedelta,
        measured by the database clock) schedule it for later.
        """
        args_json, kwargs_json = encode_arguments(task, args, kwargs or {})
        params = self._push_params(task, run_at, delay, priority, max_attempts, queue)
        params["args"], params["kwargs"] = args_json, kwargs_json
        sql = _sql.PUSH if delay is None else _sql.PUSH_DELAYED
        return int(self._call(sql, params, conn))

    def push_many(
        self,
        task: str,
        args_list: Sequence[Sequence[Any]],
        kwargs_list: Sequence[Mapping[str, Any]] | None = None,
        *,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int = 0,
        max_attempts: int = 25,
        conn: psycopg.Connection[Any] | None = None,
        queue: str | None = None,
    ) -> list[int]:
        """Enqueue one job of ``task`` per element of ``args_list`` (with the
        matching element of ``kwargs_list``) in one call (``pgtq.push_many``);
        returns their ids in order. All are written or none. The options are
        those of :meth:`push` and apply to every job."""
        if kwargs_list is not None and len(kwargs_list) != len(args_list):
            raise ValueError(f"got {len(args_list)} argument lists but {len(kwargs_list)} keyword mappings")
        encoded = [
            encode_arguments(task, args, kwargs_list[n] if kwargs_list is not None else {})
            for n, args in enumerate(args_list)
        ]
        params = self._push_params(task, run_at, delay, priority, max_attempts, queue)
        params["args"] = [args_json for args_json, _ in encoded]
        params["kwargs"] = None if kwargs_list is None else [kwargs_json for _, kwargs_json in encoded]
        with database_errors():
            rows = (conn or self._connection()).execute(_sql.PUSH_MANY, params).fetchall()
        return [int(row[0]) for row in rows]

    def pop(
        self,
        *,
        worker: str | None = None,
        lease: timedelta | float = DEFAULT_LEASE,
        conn: psycopg.Connection[Any] | None = None,
    ) -> Task | None:
        """Claim the next ready job (``pgtq.pop``), or None when none is ready."""
        tasks = self.pop_many(1, worker=worker, lease=lease, conn=conn)
        return tasks[0] if tasks else None

    def pop_many(
        self,
        n: int,
        *,
        worker: str | None = None,
        lease: timedelta | float = DEFAULT_LEASE,
        conn: psycopg.Connection[Any] | None = None,
    ) -> list[Task]:
        """Claim up to ``n`` ready jobs in one call."""
        with database_errors():
            cursor = (conn or self._connection()).cursor(row_factory=dict_row)
            rows = cursor.execute(_sql.POP, self.pop_params(n, worker, lease)).fetchall()
        return tasks_from_rows(rows)

    def pop_params(self, n: int, worker: str | None, lease: timedelta | float) -> dict[str, Any]:
        """The parameters of ``_sql.POP`` for this queue."""
        return {"queue": self.queue, "worker": worker, "n": n, "lease": _as_interval(lease, "lease")}

    def complete(
        self, task: Task, result: Any = None, *, conn: psycopg.Connection[Any] | None = None
    ) -> bool:
        """Mark a claimed job done (``pgtq.complete``); False if the lease is stale."""
        params = {"id": task.id, "lease": task.lease, "result": encode_result(result)}
        return bool(self._call(_sql.COMPLETE, params, conn))

    def fail(
        self,
        task: Task,
        error: str,
        *,
        retry_in: timedelta | float | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> str | None:
        """Record a failed attempt (``pgtq.fail``). Returns the job's new
        state (``scheduled``, ``ready`` or ``failed``), or None if the lease
        is stale."""
        params = {
            "id": task.id,
            "lease": task.lease,
            "error": error,
            "retry_in": _as_interval(retry_in, "retry_in"),
        }
        state = self._call(_sql.FAIL, params, conn)
        return None if state is None else str(state)

    def heartbeat(
        self,
        task: Task,
        extend_by: timedelta | float = DEFAULT_LEASE,
        *,
        conn: psycopg.Connection[Any] | None = None,
    ) -> bool:
        """Extend a running job's lease (``pgtq.heartbeat``); False if stale."""
        params = {"id": task.id, "lease": task.lease, "extend_by": _as_interval(extend_by, "extend_by")}
        return bool(self._call(_sql.HEARTBEAT, params, conn))

    def release(self, task: Task, *, conn: psycopg.Connection[Any] | None = None) -> bool:
        """Hand a claimed job back without counting the attempt (``pgtq.release``)."""
        return bool(self._call(_sql.RELEASE, {"id": task.id, "lease": task.lease}, conn))

    def tick(self, *, all_queues: bool = False, conn: psycopg.Connection[Any] | None = None) -> int:
        """Promote due jobs and rescue expired leases (``pgtq.tick``) for
        this queue, or for every queue with ``all_queues``."""
        params = {"queue": None if all_queues else self.queue}
        return int(self._call(_sql.TICK, params, conn))

    def cancel(self, job_id: int) -> bool:
        """Cancel a job that has not started (``pgtq.cancel``)."""
        return bool(self._call(_sql.CANCEL, {"id": job_id}))

    def retry(self, job_id: int) -> bool:
        """Run a failed or cancelled job again (``pgtq.retry``)."""
        return bool(self._call(_sql.RETRY, {"id": job_id}))

    def prune(self, older_than: timedelta | float, *, include_failed: bool = False) -> int:
        """Delete finished jobs older than ``older_than`` (``pgtq.prune``)."""
        params = {"older_than": _as_interval(older_than, "older_than"), "include_failed": include_failed}
        return int(self._call(_sql.PRUNE, params))

    def job(self, job_id: int) -> JobInfo | None:
        """A job's details and history, or None for an unknown id."""
        with database_errors():
            cursor = self._connection().cursor(row_factory=dict_row)
            row = cursor.execute(_sql.JOB, {"id": job_id}).fetchone()
        return None if row is None else JobInfo(**row)

    def stats(self, *, all_queues: bool = False) -> list[QueueStat]:
        """Job counts per state (``pgtq.queue_stats``) for this queue or all."""
        params = {"queue": None if all_queues else self.queue}
        with database_errors():
            rows = self._connection().execute(_sql.QUEUE_STATS, params).fetchall()
        return [QueueStat(*row) for row in rows]

    def check_schema(self, conn: psycopg.Connection[Any] | None = None) -> str:
        """The installed schema version; raises when it is missing or not
        the version this package was written for."""
        if not self._call(_sql.SCHEMA_EXISTS, {}, conn):
            raise SchemaMissingError("this database has no pgtq schema; install it with `pgtq migrate DSN`")
        installed = str(self._call(_sql.VERSION, {}, conn))
        known = schema_version()
        if parse_version(installed) > parse_version(known):
            raise SchemaVersionError(
                f"the database has pgtq schema {installed}, newer than {known} that this "
                "package knows; upgrade the pgtq Python package"
            )
        if parse_version(installed) < parse_version(known):
            raise SchemaVersionError(
                f"the database has pgtq schema {installed}, older than {known} that this "
                "package needs; upgrade it with `pgtq migrate DSN`"
            )
        return installed
