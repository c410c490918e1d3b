"""Worker runtime: transactional handlers (``@q.handler(transactional=True)``).

Such a handler runs inside a transaction on a connection of the slot
that runs it (``SlotConnections``: one per database, opened at the slot's
first transactional job and kept for the next ones); ``Task.conn`` gives
it. An ``async def`` handler gets an ``AsyncConnection`` instead
(``Task.aconn``), used on the worker's shared event loop; a job takes it
for its run and gives it back at the end, so a coroutine still rolling
back after its timeout never shares it with the slot's next job.

Once the handler returns, ``pgtq.complete`` is called with the job's lease
on that same connection, in that same transaction, which then commits:
the handler's writes and the completion commit together, or not at all.

* the handler raises: the transaction rolls back, and the exception fails
  the job by the usual rules (``pgtq.fail``/``pgtq.abort``, written by the
  dispatcher after the rollback, as for any handler);
* ``pgtq.complete`` finds the lease stale (the job was rescued and handed
  on, or failed at a timeout meanwhile): ``StaleLease`` rolls it back;
* the worker dies mid-run: the server rolls the open transaction back
  when the connection drops, and the job runs again after its lease.

The dispatcher keeps renewing the job's lease on its own connection
meanwhile. The transaction is held only while the handler runs, so the
slot's connection works through PgBouncer in transaction mode.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pgtq._db import async_gateway, gateway
from pgtq._json import encode_result
from pgtq.task import Task, _transaction_aconn, _transaction_conn

if TYPE_CHECKING:
    import psycopg


class StaleLease(Exception):
    """``pgtq.complete`` refused the job's lease inside the handler's
    transaction, which was rolled back."""

    def __init__(self, task: Task) -> None:
        super().__init__(
            f"job {task.id} (task {task.name!r}) was handed on before its transaction committed "
            "(its lease is stale): the handler's writes were rolled back"
        )


class SlotConnections:
    """The connections of one slot for its transactional handlers, one per
    database (DSN): opened at first use, replaced when found broken or left
    inside a transaction, closed with ``close()`` when the slot ends."""

    def __init__(self) -> None:
        self._conns: dict[str, psycopg.Connection[Any]] = {}
        self._async: dict[str, psycopg.AsyncConnection[Any]] = {}  # idle, used on self._loop only
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def get(self, dsn: str) -> psycopg.Connection[Any]:
        """The slot's connection to ``dsn``, ready for a new transaction."""
        conn = self._conns.get(dsn)
        if conn is not None and gateway.usable(conn):
            return conn
        if conn is not None:
            conn.close()
        conn = self._conns[dsn] = gateway.connect(dsn)
        return conn

    async def take_async(self, dsn: str) -> psycopg.AsyncConnection[Any]:
        """The slot's async connection to ``dsn``, taken for one job (on the
        event loop; a new one when the slot has none idle)."""
        self._loop = asyncio.get_running_loop()
        conn = self._async.pop(dsn, None)
        if conn is not None and async_gateway.usable(conn):
            return conn
        if conn is not None:
            await conn.close()
        return await async_gateway.connect(dsn)

    async def give_back_async(self, dsn: str, conn: psycopg.AsyncConnection[Any]) -> None:
        """Keep ``conn`` for the slot's next job if it is ready for one;
        close it otherwise (broken, left in a transaction, one too many)."""
        if not self._closed and dsn not in self._async and async_gateway.usable(conn):
            self._async[dsn] = conn
        else:
            await conn.close()

    def close(self) -> None:
        """Close the slot's connections (from the slot's thread, as it ends)."""
        self._closed = True
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
        idle, self._async = list(self._async.values()), {}
        if idle and self._loop is not None and self._loop.is_running():
            closing = asyncio.run_coroutine_threadsafe(_close_all(idle), self._loop)
            with contextlib.suppress(Exception):  # the worker is stopping: a leftover socket dies with it
                closing.result(timeout=5)


async def _close_all(conns: list[psycopg.AsyncConnection[Any]]) -> None:
    for conn in conns:
        await conn.close()


def run_in_transaction(
    task: Task, call: Callable[[], Any], dsn: str, connections: SlotConnections
) -> str | None:
    """Open a transaction on the slot's connection to ``dsn``, run
    ``call()`` in it (``task.conn`` is that connection), complete ``task``
    in it with the JSON of what ``call`` returned, and commit; returns that
    JSON. Whatever ``call`` raises goes on after the rollback; a stale
    lease raises ``StaleLease`` after the rollback."""
    conn = connections.get(dsn)
    token = _transaction_conn.set(conn)
    try:
        with gateway.transaction(conn):
            result_json = encode_result(call())
            if not gateway.complete(conn, task, result_json):
                raise StaleLease(task)
    finally:
        _transaction_conn.reset(token)
    return result_json


async def run_in_async_transaction(
    task: Task, call: Callable[[], Awaitable[Any]], dsn: str, connections: SlotConnections
) -> str | None:
    """``run_in_transaction`` for an ``async def`` handler, on the event
    loop: ``task.aconn`` is the connection. A cancellation (timeout, cancel
    request) rolls back like a raise."""
    conn = await connections.take_async(dsn)
    token = _transaction_aconn.set(conn)
    try:
        async with async_gateway.transaction(conn):
            result_json = encode_result(await call())
            if not await async_gateway.complete(conn, task, result_json):
                raise StaleLease(task)
    finally:
        _transaction_aconn.reset(token)
        await connections.give_back_async(dsn, conn)
    return result_json
