"""The worker: a loop over SQL calls that runs handlers.

It pops jobs, runs their handlers and completes or fails them; ``pgtq.fail``
decides what a failure means (retry when, or give up). Idle workers wait on
``LISTEN pgtq`` and poll every ``poll_interval`` seconds as a fallback, and
they call ``pgtq.tick`` every ``tick_interval`` seconds so scheduled jobs,
retries and dead workers' jobs move on even when no scheduler runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from pgtq import _sql
from pgtq.errors import ConnectionFailedError, database_errors
from pgtq.queue import PgTq
from pgtq.task import Task

logger = logging.getLogger("pgtq.worker")

_current_task: contextvars.ContextVar[Task | None] = contextvars.ContextVar("pgtq_current_task", default=None)


def current_task() -> Task | None:
    """The task whose handler is running in this context (its id, attempt,
    ...), or None outside a worker's handler call."""
    return _current_task.get()


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs. Times are in seconds."""

    poll_interval: float = 1.0
    tick_interval: float = 1.0
    lease: float = 300.0
    batch_size: int = 1

    def __post_init__(self) -> None:
        for name in ("poll_interval", "tick_interval", "lease"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size!r}")


def new_worker_id() -> str:
    """A unique, readable worker id: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def describe_exception(error: BaseException) -> str:
    """What a failed job records: type, message and traceback."""
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    return f"{type(error).__name__}: {error}\n{''.join(lines)}"


class Worker:
    """Serves one queue until ``stop()`` is called or a stop signal arrives."""

    def __init__(self, queue: PgTq, settings: WorkerSettings | None = None) -> None:
        self.queue = queue
        self.settings = settings or WorkerSettings()
        self.worker_id = new_worker_id()
        self._stopping = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._listen_conn: psycopg.Connection[Any] | None = None
        self._last_tick = 0.0

    # -- life cycle --------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to stop after the job it is running."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        """Serve jobs until stopped. Raises on a missing or wrong schema."""
        self._connect()
        logger.info(
            "worker %s serving queue %r (handlers: %s)",
            self.worker_id,
            self.queue.queue,
            ", ".join(sorted(self.queue.handlers)) or "none",
        )
        try:
            while not self.stopping:
                try:
                    self._serve_once()
                except ConnectionFailedError as error:
                    logger.warning("database connection lost (%s); reconnecting", error)
                    self._reconnect()
        finally:
            self._disconnect()
            logger.info("worker %s stopped", self.worker_id)

    def _serve_once(self) -> None:
        self._tick_if_due()
        tasks = self.queue.pop_many(
            self.settings.batch_size,
            worker=self.worker_id,
            lease=self.settings.lease,
            conn=self._conn,
        )
        if not tasks:
            self._wait_for_work()
            return
        for task in tasks:
            self._execute(task)

    # -- connections -------------------------------------------------------

    def _connect(self) -> None:
        self._conn = self.queue.connect()
        self.queue.check_schema(self._conn)
        with database_errors():
            self._conn.execute(
                _sql.REGISTER_WORKER,
                {
                    "worker": self.worker_id,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "queues": [self.queue.queue],
                },
            )
        self._listen_conn = self.queue.connect()
        with database_errors():
            self._listen_conn.execute(_sql.LISTEN)

    def _reconnect(self) -> None:
        self._disconnect(quiet=True)
        delay = 0.5
        while not self.stopping:
            try:
                self._connect()
                logger.info("reconnected to the database")
                return
            except ConnectionFailedError as error:
                logger.warning("still cannot reach the database (%s); retrying in %.1f s", error, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def _disconnect(self, quiet: bool = False) -> None:
        if self._conn is not None and not self._conn.broken and not quiet:
            try:
                self._conn.execute(_sql.UNREGISTER_WORKER, {"worker": self.worker_id})
            except psycopg.Error:
                logger.debug("could not unregister worker %s", self.worker_id)
        for conn in (self._conn, self._listen_conn):
            if conn is not None:
                conn.close()
        self._conn = self._listen_conn = None

    # -- waiting and ticking -----------------------------------------------

    def _tick_if_due(self) -> None:
        now = time.monotonic()
        if now - self._last_tick >= self.settings.tick_interval:
            self._last_tick = now
            moved = self.queue.tick(conn=self._conn)
            if moved:
                logger.debug("tick moved %d jobs", moved)

    def _wait_for_work(self) -> None:
        """Block until a job of our queue is announced, the poll interval or
        the next tick comes, or the worker is asked to stop."""
        deadline = time.monotonic() + min(self.settings.poll_interval, self.settings.tick_interval)
        assert self._listen_conn is not None
        with database_errors():
            while not self.stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                for notify in self._listen_conn.notifies(timeout=min(remaining, 0.25), stop_after=1):
                    if notify.payload == self.queue.queue:
                        return

    # -- running one job ---------------------------------------------------

    def _execute(self, task: Task) -> None:
        started = time.monotonic()
        handler = self.queue.handlers.get(task.name)
        if handler is None:
            known = ", ".join(sorted(self.queue.handlers)) or "none"
            outcome = self.queue.fail(
                task,
                f"UnknownTaskError: no handler for task {task.name!r} in this worker "
                f"(queue {self.queue.queue!r}; known tasks: {known})",
                conn=self._conn,
            )
            self._log_outcome(task, started, f"unknown task -> {outcome}")
            return
        token = _current_task.set(task)
        try:
            result = handler.func(*task.args, **task.kwargs)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
        except Exception as error:  # a handler's failure fails its job, not the worker
            outcome = self.queue.fail(task, describe_exception(error), conn=self._conn)
            self._log_outcome(task, started, f"{type(error).__name__} -> {outcome or 'lease lost'}")
            return
        finally:
            _current_task.reset(token)
        completed = self.queue.complete(task, result, conn=self._conn)
        self._log_outcome(task, started, "done" if completed else "done, but lease lost")

    def _log_outcome(self, task: Task, started: float, outcome: str) -> None:
        logger.info(
            "task %s id=%d attempt=%d/%d %.3fs %s",
            task.name,
            task.id,
            task.attempt,
            task.max_attempts,
            time.monotonic() - started,
            outcome,
        )


async def _await(awaitable: Any) -> Any:
    return await awaitable


@contextmanager
def stop_on_signals(worker: Worker) -> Iterator[None]:
    """Stop ``worker`` on SIGINT or SIGTERM while inside the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, _frame: object) -> None:
        logger.info("received %s: stopping after the running job", signal.Signals(signum).name)
        worker.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main_loop(
    q: PgTq,
    *,
    poll_interval: float = 1.0,
    tick_interval: float = 1.0,
    lease: float | timedelta = 300.0,
    batch_size: int = 1,
) -> None:
    """Run a worker for ``q`` in this thread until SIGINT or SIGTERM.

    Pops jobs, runs their handlers, and completes or fails them; retries and
    backoff are decided by ``pgtq.fail`` in the database.
    """
    lease_seconds = lease.total_seconds() if isinstance(lease, timedelta) else float(lease)
    worker = Worker(
        q,
        WorkerSettings(
            poll_interval=poll_interval,
            tick_interval=tick_interval,
            lease=lease_seconds,
            batch_size=batch_size,
        ),
    )
    with stop_on_signals(worker):
        worker.run()


__all__ = ["Worker", "WorkerSettings", "current_task", "main_loop", "stop_on_signals"]
