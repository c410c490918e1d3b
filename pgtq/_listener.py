"""Waking idle workers: a thread that LISTENs for pushed jobs.

``pgtq.push`` (and ``tick``, ``release``, ``retry``) notify channel ``pgtq``
with the queue name as payload when a job becomes ready. A notification is
only a hint: the worker still polls, and after every (re)connection the
listener wakes it once, since notifications sent meanwhile are lost.

LISTEN needs a session of its own: through PgBouncer in transaction mode it
does not work, so give the worker a direct DSN (``PgTq(..., dsn)``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection

import psycopg

from pgtq import _sql

logger = logging.getLogger("pgtq.worker")

ANY_QUEUE = "*"


class Listener(threading.Thread):
    """Calls ``wake(queue)`` for each notification of a served queue."""

    def __init__(self, dsn: str, queues: Collection[str], wake: Callable[[str], None]) -> None:
        super().__init__(name="pgtq-listener", daemon=True)
        self._dsn = dsn
        self._queues = frozenset(queues)
        self._wake = wake
        self._stopping = threading.Event()
        self.connected = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(_sql.LISTEN)
                    self.connected.set()
                    delay = 0.5
                    self._wake(ANY_QUEUE)
                    self._listen(conn)
            except psycopg.Error as error:
                self.connected.clear()
                logger.warning("listener lost the database (%s); reconnecting in %.1f s", error, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def _listen(self, conn: psycopg.Connection[object]) -> None:
        while not self._stopping.is_set():
            for notify in conn.notifies(timeout=0.5):
                if notify.payload in self._queues:
                    self._wake(notify.payload)
