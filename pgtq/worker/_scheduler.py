"""Worker runtime: the scheduler, which calls ``pgtq.tick`` in a loop.

``tick`` promotes due scheduled jobs and rescues jobs whose lease expired.
It is safe to run any number of schedulers (and pg_cron) at once. A
scheduler ticks one database; for queues on several servers, run one per
server (``run_schedulers`` runs several in one process).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from pgtq._db.conninfo import server_label
from pgtq.database import Database
from pgtq.worker._decisions import FIRST_RECONNECT_DELAY, Clock
from pgtq.worker._link import DATABASE_ERRORS, describe

logger = logging.getLogger("pgtq.scheduler")

RETRY_MAX_DELAY = 30.0


class Scheduler:
    """Ticks one queue (or all queues) every ``interval`` seconds."""

    def __init__(
        self, dsn: str, queue: str | None = None, interval: float = 1.0, *, clock: Clock = time.monotonic
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.dsn = dsn
        self.queue = queue
        self.interval = interval
        self._clock = clock
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Ask the scheduler to stop; it returns from ``run`` promptly."""
        self._stopping.set()

    def run(self) -> None:
        """Tick until stopped; survives database restarts and any other
        database error (logged in one line, retried with capped backoff)."""
        target = "all queues" if self.queue is None else f"queue {self.queue!r}"
        logger.info("scheduler ticking %s of %s every %.2f s", target, server_label(self.dsn), self.interval)
        database = Database(self.dsn)
        backoff = FIRST_RECONNECT_DELAY
        while not self._stopping.is_set():
            started = self._clock()
            try:
                moved = database.tick(self.queue)
                backoff = FIRST_RECONNECT_DELAY
                if moved:
                    logger.info("tick moved %d jobs", moved)
            except DATABASE_ERRORS as error:
                logger.warning(
                    "tick failed on %s (%s); retrying in %.1f s",
                    server_label(self.dsn),
                    describe(error),
                    backoff,
                )
                database.close()
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, RETRY_MAX_DELAY)
                continue
            self._stopping.wait(max(0.0, self.interval - (self._clock() - started)))
        database.close()
        logger.info("scheduler stopped")


def run_schedulers(schedulers: Sequence[Scheduler]) -> None:
    """Run each scheduler (one per server) until every one is stopped: the
    last in this thread, the others in threads of their own."""
    *others, last = schedulers
    threads = [threading.Thread(target=s.run, name="pgtq-scheduler", daemon=True) for s in others]
    for thread in threads:
        thread.start()
    try:
        last.run()
    finally:
        for scheduler in others:
            scheduler.stop()
        for thread in threads:
            thread.join()
