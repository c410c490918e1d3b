"""Worker runtime: waking idle workers, a thread that LISTENs for pushed jobs.

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

from pgtq._db import gateway
from pgtq.errors import PgTqError

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

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                with gateway.connect(self._dsn) as conn:
                    gateway.listen(conn)
                    delay = 0.5
                    self._wake(ANY_QUEUE)
                    self._listen(conn)
            except PgTqError as error:
                logger.warning("listener lost the database (%s); reconnecting in %.1f s", error, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def _listen(self, conn: gateway.Connection) -> None:
        while not self._stopping.is_set():
            for queue in gateway.notifications(conn, timeout=0.5):
                if queue in self._queues:
                    self._wake(queue)
