"""Client API: ``PgTq``, one queue in one database, and the handlers that
serve it.

Every method is one call of the SQL API through the gateway
(``pgtq._db.gateway``); the queue's rules (ordering, retries, backoff,
promotion, rescue) live in SQL. What concerns the whole database (every
queue's stats, prune, jobs by id) is ``Database``'s, which each ``PgTq``
holds as ``.database``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pgtq._db import gateway
from pgtq._db.async_gateway import is_async_connection
from pgtq._json import encode_result
from pgtq._pushes import push_many_query, push_query
from pgtq._values import as_interval
from pgtq.database import Database
from pgtq.errors import UnknownTaskError
from pgtq.handler import Handler
from pgtq.task import JobInfo, QueueStat, Task

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from pgtq.aio import AsyncPgTq

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_LEASE = timedelta(minutes=5)


class PgTq:
    """A queue named ``queue`` in the database at ``dsn``.

    Example::

        q = PgTq("emails", "dbname=app")

        @q.handler()
        def send(to): ...

        send.push("a@example.com")   # enqueue; send("a@...") runs it now

    The object opens one autocommit connection lazily, shared by its
    methods (psycopg serialises its use across threads). With ``pool`` (a
    ``psycopg_pool.ConnectionPool``) it opens none and each call borrows a
    connection of the pool instead (see ``Database``). Workers open
    connections of their own with ``connect()``.
    """

    def __init__(
        self, queue: str, dsn: str | None = None, *, pool: ConnectionPool[Any] | None = None
    ) -> None:
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"queue name must be a non-empty string, got {queue!r}")
        self.queue = queue
        self.handlers: dict[str, Handler[Any, Any]] = {}
        self.database = Database(dsn, pool=pool)
        self._aio: AsyncPgTq | None = None

    @property
    def dsn(self) -> str:
        """The database's DSN. Setting it closes the shared connection; the
        next call connects to the new one."""
        return self.database.dsn

    @dsn.setter
    def dsn(self, dsn: str) -> None:
        self.database.close()
        self.database = Database(dsn)
        self._aio = None

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

    def handler_for(self, task: str) -> Handler[Any, Any]:
        """The handler registered for the task named ``task``; raises
        ``UnknownTaskError`` when there is none."""
        try:
            return self.handlers[task]
        except KeyError:
            raise UnknownTaskError(task, self.queue, self.handlers) from None

    # -- connections -------------------------------------------------------

    def connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection to the queue's database."""
        return self.database.connect()

    def close(self) -> None:
        """Close the shared connection (it reopens on the next call)."""
        self.database.close()

    @property
    def aio(self) -> AsyncPgTq:
        """This queue for asyncio code (``pgtq.aio.AsyncPgTq``): the same
        queue, DSN and handlers, with async methods over a connection of its
        own (``await q.aio.push(...)``; handlers' ``push_async`` use it).
        Made on first use; assign ``q.aio = AsyncPgTq(q, pool=...)`` to
        give it an ``AsyncConnectionPool`` instead."""
        if self._aio is None:
            from pgtq.aio import AsyncPgTq

            self._aio = AsyncPgTq(self)
        return self._aio

    @aio.setter
    def aio(self, value: AsyncPgTq) -> None:
        self._aio = value

    def __enter__(self) -> PgTq:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the SQL API -------------------------------------------------------

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
        query = push_query(
            self.queue if queue is None else queue,
            task,
            args,
            kwargs,
            run_at=run_at,
            delay=delay,
            priority=priority,
            max_attempts=max_attempts,
        )
        return self.database._call(_sync(conn), gateway.run, query)

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
        query = push_many_query(
            self.queue if queue is None else queue,
            task,
            args_list,
            kwargs_list,
            run_at=run_at,
            delay=delay,
            priority=priority,
            max_attempts=max_attempts,
        )
        return self.database._call(_sync(conn), gateway.run, query)

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
        lease_interval = as_interval(lease, "lease")
        return self.database._call(
            conn, gateway.pop, queue=self.queue, worker=worker, n=n, lease=lease_interval
        )

    def complete(
        self, task: Task, result: Any = None, *, conn: psycopg.Connection[Any] | None = None
    ) -> bool:
        """Mark a claimed job done (``pgtq.complete``); False if the lease is stale."""
        return self.database._call(conn, gateway.complete, task, encode_result(result))

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
        return self.database._call(conn, gateway.fail, task, error, as_interval(retry_in, "retry_in"))

    def heartbeat(
        self,
        task: Task,
        extend_by: timedelta | float = DEFAULT_LEASE,
        *,
        conn: psycopg.Connection[Any] | None = None,
    ) -> bool:
        """Extend a running job's lease (``pgtq.heartbeat``); False if stale."""
        return self.database._call(conn, gateway.heartbeat, task, as_interval(extend_by, "extend_by"))

    def release(self, task: Task, *, conn: psycopg.Connection[Any] | None = None) -> bool:
        """Hand a claimed job back without counting the attempt (``pgtq.release``)."""
        return self.database._call(conn, gateway.release, task)

    def tick(self, *, all_queues: bool = False, conn: psycopg.Connection[Any] | None = None) -> int:
        """Promote due jobs and rescue expired leases (``pgtq.tick``) for
        this queue, or for every queue with ``all_queues``."""
        return self.database.tick(None if all_queues else self.queue, conn=conn)

    def cancel(self, job_id: int) -> bool:
        """Cancel a job that has not started (``pgtq.cancel``)."""
        return self.database.cancel(job_id)

    def retry(self, job_id: int) -> bool:
        """Run a failed or cancelled job again (``pgtq.retry``)."""
        return self.database.retry(job_id)

    def prune(
        self, older_than: timedelta | float, *, include_failed: bool = False, batch: int = 10000
    ) -> int:
        """Delete finished jobs of every queue older than ``older_than``
        (``pgtq.prune``; see :meth:`Database.prune`)."""
        return self.database.prune(older_than, include_failed=include_failed, batch=batch)

    def job(self, job_id: int) -> JobInfo | None:
        """A job's details and history, or None for an unknown id."""
        return self.database.job(job_id)

    def stats(self, *, all_queues: bool = False) -> list[QueueStat]:
        """Job counts per state (``pgtq.queue_stats``) for this queue or all."""
        return self.database.stats(None if all_queues else self.queue)

    def check_schema(self, conn: psycopg.Connection[Any] | None = None) -> str:
        """The installed schema version; raises when it is missing or not
        the version this package was written for."""
        return self.database.check_schema(conn)


def _sync(conn: Any) -> psycopg.Connection[Any] | None:
    """``conn`` as given for a sync call; an ``AsyncConnection`` is refused
    with the way out."""
    if is_async_connection(conn):
        raise TypeError("this is an AsyncConnection: await the async twin (push_async, or q.aio.push)")
    return conn
