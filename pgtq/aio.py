"""Client API for asyncio: ``AsyncPgTq``, a queue whose methods are
coroutines over psycopg's ``AsyncConnection``.

It mirrors ``PgTq`` method for method (push, push_many, pop, complete,
fail, heartbeat, release, tick, cancel, retry, job, stats, check_schema,
wait, wait_many),
each one call of the SQL API, through the async gateway
(``pgtq._db.async_gateway``), which runs the very same query values as the
sync one. Push inside your own transaction with ``conn=`` (an
``AsyncConnection``); the job then exists only if that transaction commits::

    aq = AsyncPgTq(q)                       # q: the PgTq your handlers are declared on
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        async with conn.transaction():
            await conn.execute("INSERT INTO users ...")
            await aq.push("send_welcome", [user_id], conn=conn)

Wait for results without blocking the event loop::

    job_ids = await aq.push_many("resize", [[url] for url in urls])
    outcomes = await aq.wait_many(job_ids, timeout=60)
    total = await aq.wait(await aq.push("add", [2, 3]))   # 5, or JobFailedError...

Handlers have async twins that use the queue's ``aio``:
``await send_welcome.push_async(user_id)``,
``await send_welcome.options(conn=conn).push_async(user_id)``.

Handlers themselves may be ``async def``; the worker runs them on an event
loop of its own (``pgtq.worker``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from pgtq._db import async_gateway
from pgtq._db.queries import Query
from pgtq._json import encode_result
from pgtq._pushes import push_many_query, push_query
from pgtq._values import as_interval, as_seconds
from pgtq._waiting import wait_for_async
from pgtq.database import check_version
from pgtq.task import JobInfo, JobOutcome, QueueStat, Task

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    from pgtq.handler import Handler, JobKeyMode
    from pgtq.queue import PgTq

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_LEASE = timedelta(minutes=5)


class AsyncPgTq:
    """The queue ``queue`` (a name, or a ``PgTq`` whose name, DSN and
    handlers it takes) for asyncio code.

    It opens one autocommit ``AsyncConnection`` on first use, shared by its
    coroutines (psycopg serialises them), bound to the event loop that
    opened it: ``await aq.close()`` before that loop ends. With ``pool`` (a
    ``psycopg_pool.AsyncConnectionPool``) it opens none and each call
    borrows a connection of the pool. Every method also takes ``conn=``, an
    ``AsyncConnection`` of yours, whose open transaction the call joins.
    """

    def __init__(
        self,
        queue: str | PgTq,
        dsn: str | None = None,
        *,
        pool: AsyncConnectionPool[Any] | None = None,
    ) -> None:
        if isinstance(queue, str):
            if not queue:
                raise ValueError("queue name must be a non-empty string, got ''")
            self.queue = queue
            self.handlers: dict[str, Handler[Any, Any]] = {}
        else:
            self.queue = queue.queue
            self.handlers = queue.handlers
            dsn = queue.dsn if dsn is None else dsn
        if dsn is None and pool is None:
            raise ValueError("give a DSN or a connection pool")
        self.dsn = dsn if dsn is not None else pool.conninfo  # type: ignore[union-attr]
        self.pool = pool
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._conn_loop: asyncio.AbstractEventLoop | None = None
        self._conn_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"<pgtq.aio.AsyncPgTq queue={self.queue!r}>"

    # -- connections -------------------------------------------------------

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        """A new autocommit async connection to the queue's database."""
        return await async_gateway.connect(self.dsn)

    @asynccontextmanager
    async def _session(
        self, conn: psycopg.AsyncConnection[Any] | None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The connection for one call: ``conn`` if given, else one borrowed
        from the pool, else the shared one (opened, or reopened when lost)."""
        if conn is not None:
            if not async_gateway.is_async_connection(conn):
                raise TypeError(
                    "conn must be a psycopg AsyncConnection here; a sync Connection goes to PgTq's methods"
                )
            yield conn
        elif self.pool is not None:
            async with async_gateway.borrow(self.pool) as borrowed:
                yield borrowed
        else:
            yield await self._shared()

    async def _shared(self) -> psycopg.AsyncConnection[Any]:
        loop = asyncio.get_running_loop()
        if self._conn is not None and self._conn_loop is not loop and not self._conn.closed:
            raise RuntimeError(
                "this AsyncPgTq's connection belongs to another event loop: "
                "await close() in that loop first, or make one AsyncPgTq per loop"
            )
        if self._conn_lock is None or self._conn_loop is not loop:
            self._conn_lock = asyncio.Lock()
        async with self._conn_lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = await self.connect()
                self._conn_loop = loop
            return self._conn

    async def _call(
        self,
        conn: psycopg.AsyncConnection[Any] | None,
        call: Callable[Concatenate[psycopg.AsyncConnection[Any], P], Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        async with self._session(conn) as session:
            return await call(session, *args, **kwargs)

    async def _run(self, conn: psycopg.AsyncConnection[Any] | None, query: Query[T]) -> T:
        return await self._call(conn, async_gateway.run, query)

    async def close(self) -> None:
        """Close the shared connection (it reopens on the next call). A pool
        is the caller's: it stays open."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
            self._conn_loop = None

    async def __aenter__(self) -> AsyncPgTq:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the SQL API -------------------------------------------------------

    async def push(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int = 0,
        max_attempts: int = 25,
        conn: psycopg.AsyncConnection[Any] | None = None,
        queue: str | None = None,
        backoff_base: timedelta | float | None = None,
        backoff_cap: timedelta | float | None = None,
        job_key: str | None = None,
        job_key_mode: JobKeyMode = "keep",
        lock_key: str | None = None,
    ) -> int:
        """Enqueue a job for ``task`` and return its id (``pgtq.push``); the
        options are those of ``PgTq.push``. With ``conn`` it joins that
        connection's open transaction: the job exists only if that
        transaction commits."""
        query = push_query(
            self.queue if queue is None else queue,
            task,
            args,
            kwargs,
            run_at=run_at,
            delay=delay,
            priority=priority,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            job_key=job_key,
            job_key_mode=job_key_mode,
            lock_key=lock_key,
        )
        return await self._run(conn, query)

    async def push_many(
        self,
        task: str,
        args_list: Sequence[Sequence[Any]],
        kwargs_list: Sequence[Mapping[str, Any]] | None = None,
        *,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int = 0,
        max_attempts: int = 25,
        conn: psycopg.AsyncConnection[Any] | None = None,
        queue: str | None = None,
        backoff_base: timedelta | float | None = None,
        backoff_cap: timedelta | float | None = None,
        job_keys: Sequence[str | None] | None = None,
        job_key_mode: JobKeyMode = "keep",
        lock_key: str | None = None,
    ) -> list[int]:
        """Enqueue one job of ``task`` per element of ``args_list`` in one
        call (``pgtq.push_many``), all or none; their ids in order (the
        options of ``PgTq.push_many``)."""
        query = push_many_query(
            self.queue if queue is None else queue,
            task,
            args_list,
            kwargs_list,
            run_at=run_at,
            delay=delay,
            priority=priority,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            job_keys=job_keys,
            job_key_mode=job_key_mode,
            lock_key=lock_key,
        )
        return await self._run(conn, query)

    async def pop(
        self,
        *,
        worker: str | None = None,
        lease: timedelta | float = DEFAULT_LEASE,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> Task | None:
        """Claim the next ready job (``pgtq.pop``), or None when none is ready."""
        tasks = await self.pop_many(1, worker=worker, lease=lease, conn=conn)
        return tasks[0] if tasks else None

    async def pop_many(
        self,
        n: int,
        *,
        worker: str | None = None,
        lease: timedelta | float = DEFAULT_LEASE,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> list[Task]:
        """Claim up to ``n`` ready jobs in one call."""
        lease_interval = as_interval(lease, "lease")
        return await self._call(
            conn, async_gateway.pop, queue=self.queue, worker=worker, n=n, lease=lease_interval
        )

    async def complete(
        self, task: Task, result: Any = None, *, conn: psycopg.AsyncConnection[Any] | None = None
    ) -> bool:
        """Mark a claimed job done (``pgtq.complete``); False if the lease is stale."""
        return await self._call(conn, async_gateway.complete, task, encode_result(result))

    async def fail(
        self,
        task: Task,
        error: str,
        *,
        retry_in: timedelta | float | None = None,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> str | None:
        """Record a failed attempt (``pgtq.fail``): the job's new state, or
        None if the lease is stale."""
        return await self._call(conn, async_gateway.fail, task, error, as_interval(retry_in, "retry_in"))

    async def heartbeat(
        self,
        task: Task,
        extend_by: timedelta | float = DEFAULT_LEASE,
        *,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> bool:
        """Extend a running job's lease (``pgtq.heartbeat``); False if stale."""
        return await self._call(conn, async_gateway.heartbeat, task, as_interval(extend_by, "extend_by"))

    async def release(self, task: Task, *, conn: psycopg.AsyncConnection[Any] | None = None) -> bool:
        """Hand a claimed job back without counting the attempt (``pgtq.release``)."""
        return await self._call(conn, async_gateway.release, task)

    async def tick(
        self, *, all_queues: bool = False, conn: psycopg.AsyncConnection[Any] | None = None
    ) -> int:
        """Promote due jobs and rescue expired leases (``pgtq.tick``) of this
        queue, or of every queue with ``all_queues``."""
        return await self._call(conn, async_gateway.tick, None if all_queues else self.queue)

    async def cancel(self, job_id: int) -> bool:
        """Cancel a job that has not started (``pgtq.cancel``)."""
        return await self._call(None, async_gateway.cancel, job_id)

    async def retry(self, job_id: int) -> bool:
        """Run a failed or cancelled job again (``pgtq.retry``)."""
        return await self._call(None, async_gateway.retry, job_id)

    async def job(self, job_id: int) -> JobInfo | None:
        """A job's details and history, or None for an unknown id."""
        return await self._call(None, async_gateway.job, job_id)

    async def stats(self, *, all_queues: bool = False) -> list[QueueStat]:
        """Job counts per state (``pgtq.queue_stats``) of this queue or all."""
        return await self._call(None, async_gateway.queue_stats, None if all_queues else self.queue)

    async def check_schema(self, conn: psycopg.AsyncConnection[Any] | None = None) -> str:
        """The installed schema version; raises ``SchemaMissingError`` or
        ``SchemaVersionError`` as ``PgTq.check_schema`` does."""
        return check_version(await self._call(conn, async_gateway.installed_version))

    # -- waiting for outcomes ------------------------------------------------

    async def wait(self, job_id: int, timeout: float | timedelta | None = None) -> Any:
        """Wait until job ``job_id`` finishes and return its result; raises
        as ``PgTq.wait`` does (``JobFailedError``, ``JobCancelledError``,
        ``WaitTimeoutError`` after ``timeout`` seconds, ``JobNotFoundError``).
        The event loop runs other tasks meanwhile: many waits may run at
        once, each on a connection of its own for its duration (to wait for
        many jobs with one connection, use ``wait_many``)."""
        (outcome,) = await self.wait_many([job_id], timeout)
        return outcome.value()

    async def wait_many(
        self, job_ids: Iterable[int], timeout: float | timedelta | None = None
    ) -> list[JobOutcome]:
        """Wait until every job of ``job_ids`` has finished; their outcomes
        in that order, as ``PgTq.wait_many`` returns them (same protocol,
        same SQL, on an ``AsyncConnection`` of its own to the queue's DSN,
        never one of the pool: LISTEN needs a session of its own)."""
        return await wait_for_async(self.dsn, job_ids, as_seconds(timeout, "timeout"))
