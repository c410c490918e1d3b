"""SQL-engine layer: the one way to the database for asyncio code.

The twin of ``gateway.py`` over psycopg's ``AsyncConnection``: it runs the
very same ``queries.Query`` values (statement, parameters, reading of the
rows), so no SQL exists twice; only the awaiting differs. Connections
follow the same prepared-statement policy (``gateway.prepares_nothing``),
and database errors become pgtq's exceptions in the same place
(``gateway.calling``).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import psycopg

from pgtq._db import queries, statements
from pgtq._db.gateway import calling, prepares_nothing
from pgtq._db.queries import Query
from pgtq.errors import ConnectionFailedError, database_errors
from pgtq.task import JobOutcome

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

T = TypeVar("T")
P = ParamSpec("P")
AsyncConnection = psycopg.AsyncConnection[Any]

# Connections (of a pool) the policy was already applied to.
_configured: weakref.WeakSet[AsyncConnection] = weakref.WeakSet()


def is_async_connection(conn: object) -> bool:
    """Whether ``conn`` is a psycopg ``AsyncConnection`` (the client API
    checks what a caller passed as ``conn=`` with it)."""
    return isinstance(conn, psycopg.AsyncConnection)


async def behind_pooler(conn: AsyncConnection) -> bool:
    """``gateway.behind_pooler`` on an async connection."""
    cursor = await conn.execute(statements.BACKEND_PID, prepare=False)
    row = await cursor.fetchone()
    return row is not None and row[0] != conn.info.backend_pid


async def configure(conn: AsyncConnection) -> None:
    """Apply the prepared-statement policy to ``conn`` (see gateway.py)."""
    off = prepares_nothing()
    if off or (off is None and await behind_pooler(conn)):
        conn.prepare_threshold = None


async def connect(dsn: str) -> AsyncConnection:
    """A new autocommit async connection to ``dsn``, with the
    prepared-statement policy applied."""
    with database_errors():
        try:
            conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        except (psycopg.OperationalError, psycopg.ProgrammingError) as error:
            raise ConnectionFailedError(
                f"cannot connect to the pgtq database: {str(error).strip()}"
            ) from error
        try:
            await configure(conn)
        except BaseException:
            await conn.close()
            raise
    return conn


@asynccontextmanager
async def borrow(pool: AsyncConnectionPool[Any]) -> AsyncIterator[AsyncConnection]:
    """A connection of ``pool`` (a ``psycopg_pool.AsyncConnectionPool``) for
    the block, with the prepared-statement policy applied the first time
    pgtq uses it; no connection in time raises ``ConnectionFailedError``."""
    with database_errors():
        async with pool.connection() as conn:
            if conn not in _configured:
                await configure(conn)
                _configured.add(conn)
            yield conn


async def run(conn: AsyncConnection, query: Query[T]) -> T:
    """Send one query on an async connection and return its result."""
    with calling(conn):
        cursor = await conn.execute(query.sql, query.params)
        rows = await cursor.fetchall() if cursor.rownumber is not None else []  # as gateway.run
    return query.result(rows)


def _runs(build: Callable[P, Query[T]]) -> Callable[Concatenate[AsyncConnection, P], Awaitable[T]]:
    """The async gateway function for a query builder: ``await f(conn, ...)``
    runs ``build(...)`` on ``conn``."""

    async def call(conn: AsyncConnection, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await run(conn, build(*args, **kwargs))

    call.__name__ = call.__qualname__ = build.__name__
    call.__doc__ = build.__doc__
    return call


pop = _runs(queries.pop)
complete = _runs(queries.complete)
fail = _runs(queries.fail)
heartbeat = _runs(queries.heartbeat)
release = _runs(queries.release)
tick = _runs(queries.tick)
cancel = _runs(queries.cancel)
retry = _runs(queries.retry)
job = _runs(queries.job)
queue_stats = _runs(queries.queue_stats)
outcomes = _runs(queries.outcomes)


def usable(conn: AsyncConnection) -> bool:
    """``gateway.usable`` for an async connection: open, not broken, and
    outside any transaction."""
    return (
        not (conn.closed or conn.broken) and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    )


@asynccontextmanager
async def transaction(conn: AsyncConnection) -> AsyncIterator[None]:
    """``gateway.transaction`` for an async connection: COMMIT at the end
    of the block, ROLLBACK when it raises (the exception goes on unchanged)."""
    async with conn.transaction():
        yield


async def installed_version(conn: AsyncConnection) -> str | None:
    """The installed pgtq schema version, or None when there is none."""
    if not await run(conn, queries.schema_exists()):
        return None
    return await run(conn, queries.version())


# -- waiting for outcomes (pgtq.watch's protocol, driven by pgtq/_waiting.py) -----
#
# The twins of the sync gateway's functions of the same names, which
# pgtq._waiting's driver calls for each step of the protocol.


async def listen_finished(conn: AsyncConnection) -> None:
    """LISTEN on ``pgtq_finished`` (a waiter's first step)."""
    await run(conn, queries.listen_finished())


async def _send(conn: AsyncConnection, query: Query[Any]) -> psycopg.AsyncCursor[Any]:
    """Send ``query`` in an open pipeline; its reply comes on the cursor."""
    return await conn.execute(query.sql, query.params)


async def _each_in_a_transaction(conn: AsyncConnection, calls: Sequence[Query[T]]) -> list[T]:
    """Run each query in a transaction of its own (BEGIN, query, COMMIT),
    all pipelined: one round trip. On an autocommit connection."""
    with calling(conn):
        async with conn.pipeline():
            cursors = []
            for call in calls:
                await _send(conn, queries.begin())
                cursors.append(await _send(conn, call))
                await _send(conn, queries.commit())
        return [call.result(await cursor.fetchall()) for call, cursor in zip(calls, cursors, strict=True)]


async def watch_each(conn: AsyncConnection, job_ids: Sequence[int]) -> list[JobOutcome | None]:
    """``pgtq.watch`` of each job, each in its own transaction, in one
    round trip (see ``gateway.watch_each``); the replies in order."""
    return await _each_in_a_transaction(conn, [queries.watch(job_id) for job_id in job_ids])


async def unwatch_each(conn: AsyncConnection, job_ids: Sequence[int]) -> list[bool]:
    """``pgtq.unwatch`` of each job, each in its own transaction, in one round trip."""
    return await _each_in_a_transaction(conn, [queries.unwatch(job_id) for job_id in job_ids])


async def notifications_within(conn: AsyncConnection, timeout: float) -> list[str]:
    """The payloads of the notifications that reach a listening connection
    within ``timeout`` seconds (see ``gateway.notifications_within``). The
    event loop runs other tasks meanwhile."""
    with calling(conn):
        async with aclosing(conn.notifies(timeout=timeout, stop_after=1)) as first:
            payloads = [notify.payload async for notify in first]
        if payloads:
            async with aclosing(conn.notifies(timeout=0)) as more:
                payloads += [notify.payload async for notify in more]
    return payloads
