"""The scheduler: calls ``pgtq.tick`` in a loop.

``tick`` promotes due scheduled jobs and rescues jobs whose lease expired.
It is safe to run any number of schedulers (and pg_cron) at once.
"""

from __future__ import annotations

import logging
import threading
import time

from pgtq.errors import ConnectionFailedError
from pgtq.queue import PgTq

logger = logging.getLogger("pgtq.scheduler")


class Scheduler:
    """Ticks one queue (or all queues) every ``interval`` seconds."""

    def __init__(self, dsn: str, queue: str | None = None, interval: float = 1.0) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.dsn = dsn
        self.queue = queue
        self.interval = interval
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Ask the scheduler to stop; it returns from ``run`` promptly."""
        self._stopping.set()

    def run(self) -> None:
        """Tick until stopped; survives database restarts."""
        target = "all queues" if self.queue is None else f"queue {self.queue!r}"
        logger.info("scheduler ticking %s every %.2f s", target, self.interval)
        pgtq = PgTq(self.queue or "*", self.dsn)
        backoff = 0.5
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                moved = pgtq.tick(all_queues=self.queue is None)
                backoff = 0.5
                if moved:
                    logger.info("tick moved %d jobs", moved)
            except ConnectionFailedError as error:
                logger.warning("tick failed (%s); retrying in %.1f s", error, backoff)
                pgtq.close()
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self._stopping.wait(max(0.0, self.interval - (time.monotonic() - started)))
        pgtq.close()
        logger.info("scheduler stopped")
