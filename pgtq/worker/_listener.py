"""Worker runtime: waking idle workers, a thread that LISTENs for pushed jobs
and for cancel requests.

``pgtq.push`` (and ``tick``, ``release``, ``retry``) notify channel ``pgtq``
with the queue name as payload when a job becomes ready; ``pgtq.cancel`` of
a running job notifies channel ``pgtq_cancel`` with the job's id. A
notification is only a hint: the worker still polls, and after every
(re)connection the listener wakes it once, since notifications sent
meanwhile are lost; a cancel request is checked with the database before
the worker acts on it (anyone may NOTIFY), and the worker's next lease
renewal finds it anyway.

LISTEN needs a session of its own. Through PgBouncer in transaction mode
the LISTEN lands on whichever server connection runs it, and what that
connection later hears never reaches the listener. So on its first
connection the listener checks that notifications arrive: it sends a probe
notification from the database the pushes go to and waits for it. If the
probe does not come back, it says so in one warning naming the cure (a
direct or session-mode DSN for the listener: ``--listen-dsn``), closes its
session and stops; the worker's polling finds the jobs.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Collection

from pgtq._db import gateway
from pgtq._db.statements import CANCEL_CHANNEL
from pgtq.worker._link import DATABASE_ERRORS, describe

logger = logging.getLogger("pgtq.worker")

ANY_QUEUE = "*"

# How long the probe notification may take to come back: milliseconds when
# notifications work, forever when they cannot; the margin is for a busy machine.
PROBE_TIMEOUT = 10.0


def probe_payload() -> str:
    """A probe's payload: it starts with a control character, which no
    queue name may hold, so no listener mistakes it for a queue."""
    return f"\x01pgtq-probe {uuid.uuid4().hex}"


class Listener(threading.Thread):
    """Calls ``wake(queue)`` for each notification of a served queue, and
    ``cancel(job_id)`` for each cancel request of a running job.

    It listens at ``dsn``; its probe is sent at ``notify_dsn`` (where jobs
    are pushed; default ``dsn``). ``name``, when given, names the server in
    its log lines (a worker with several servers has a listener for each).
    """

    def __init__(
        self,
        dsn: str,
        queues: Collection[str],
        wake: Callable[[str], None],
        *,
        cancel: Callable[[int], None] | None = None,
        notify_dsn: str | None = None,
        probe_timeout: float = PROBE_TIMEOUT,
        name: str = "",
    ) -> None:
        super().__init__(name=f"pgtq-listener {name}".strip(), daemon=True)
        self._who = f"listener of {name}" if name else "listener"
        self._dsn = dsn
        self._notify_dsn = notify_dsn or dsn
        self._queues = frozenset(queues)
        self._wake = wake
        self._cancel = cancel
        self._probe_timeout = probe_timeout
        self._stopping = threading.Event()
        self._probed = False

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                with gateway.connect(self._dsn) as conn:
                    gateway.listen(conn)
                    if not self._probed and not self._probe(conn):
                        return
                    delay = 0.5
                    self._wake(ANY_QUEUE)
                    self._listen(conn)
            except DATABASE_ERRORS as error:
                logger.warning(
                    "%s lost the database (%s); reconnecting in %.1f s", self._who, describe(error), delay
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def _probe(self, conn: gateway.Connection) -> bool:
        """Send a probe notification from another session and wait for it
        on ``conn`` (waking the worker for any queue heard meanwhile);
        whether it came. Logs one line either way."""
        payload = probe_payload()
        with gateway.connect(self._notify_dsn) as sender:
            gateway.notify(sender, payload)
        self._probed = True
        for channel, heard in gateway.notifications(conn, timeout=self._probe_timeout):
            if heard == payload and channel != CANCEL_CHANNEL:
                logger.info("%s: notifications arrive; an idle worker wakes at once on a push", self._who)
                return True
            self._heard(channel, heard)
        logger.warning(
            "%s: notifications cannot reach this worker (its probe never came back within %.0f s): "
            "its listen DSN goes through a pooler in transaction mode, or through something else "
            "that does not keep a session; it stops listening and the worker finds jobs by polling. "
            "Give it a direct or session-mode DSN (--listen-dsn) for instant wake-up",
            self._who,
            self._probe_timeout,
        )
        return False

    def _listen(self, conn: gateway.Connection) -> None:
        while not self._stopping.is_set():
            for channel, payload in gateway.notifications(conn, timeout=0.5):
                self._heard(channel, payload)

    def _heard(self, channel: str, payload: str) -> None:
        if channel != CANCEL_CHANNEL:
            if payload in self._queues:
                self._wake(payload)
        elif self._cancel is not None and payload.isascii() and payload.isdigit():
            self._cancel(int(payload))
