"""Worker runtime: transactional handlers (``@q.handler(transactional=True)``).

Such a handler runs inside a transaction on a connection of the slot
that runs it (``SlotConnections``: one per database, opened at the slot's
first transactional job and kept for the next ones); ``Task.conn`` gives
it. Once it returns, ``pgtq.complete`` is called with the job's lease on
that same connection, in that same transaction, which then commits: the
handler's writes and the completion commit together, or not at all.

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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pgtq._db import gateway
from pgtq._json import encode_result
from pgtq.task import Task, _transaction_conn

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

    def get(self, dsn: str) -> psycopg.Connection[Any]:
        """The slot's connection to ``dsn``, ready for a new transaction."""
        conn = self._conns.get(dsn)
        if conn is not None and gateway.usable(conn):
            return conn
        if conn is not None:
            conn.close()
        conn = self._conns[dsn] = gateway.connect(dsn)
        return conn

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


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
