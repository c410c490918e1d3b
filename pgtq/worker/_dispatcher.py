"""Worker runtime: the dispatcher, a loop over SQL calls that runs handlers.

One dispatcher thread owns the worker's database connection. It claims
jobs with ``pgtq.pop`` (in batches when several slots are free), hands them
to a pool (threads, or child processes), writes each outcome with
``pgtq.complete`` / ``pgtq.fail`` (batched in one round trip), extends the
leases of running jobs with ``pgtq.heartbeat``, and calls ``pgtq.tick``
now and then so scheduled jobs, retries and dead workers' jobs move on even
when no scheduler runs. What a failure means (retry when, or give up) is
decided by ``pgtq.fail`` in the database, never here.

Idle, it waits for a notification from the listener thread (a push wakes it
at once) or for its poll interval. It survives any database error after
start (``_link.py``): it logs it, reconnects when needed, waits with capped
backoff, keeps the outcomes it could not write and writes them once the
database answers again (a stale lease makes that safe). On SIGTERM
or SIGINT it stops claiming, lets running jobs finish within the grace
period, hands back the rest with ``pgtq.release`` and exits 0; a second
signal stops it at once, and the leases protect the jobs it held.

Every SQL call goes through the gateway (``pgtq._db.gateway``). The timing
decisions (when to claim, write, tick, renew, reconnect, give up on a job)
are in ``_decisions.py``, fed the time by the worker's clock.
"""

from __future__ import annotations

import inspect
import logging
import os
import queue as queue_module
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pgtq._db import gateway
from pgtq._records import Outcome, WorkerIdentity
from pgtq.errors import UnknownTaskError
from pgtq.handler import Handler
from pgtq.queue import PgTq
from pgtq.task import Task
from pgtq.worker._decisions import (
    FLUSH_DELAY,
    UNSTARTED_RECHECK,
    Clock,
    PopTurns,
    Timers,
    claim_size,
    flush_due,
    timeout_deadline,
)
from pgtq.worker._execution import timeout_outcome, unknown_task_outcome
from pgtq.worker._link import DATABASE_ERRORS, DatabaseLink, describe
from pgtq.worker._listener import ANY_QUEUE, Listener
from pgtq.worker._pools import Pool, ProcessPool, ThreadPool
from pgtq.worker._settings import PoolKind, WorkerSettings, new_worker_id

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger("pgtq.worker")


@dataclass
class _Running:
    """A claimed job handed to the pool (running, or queued for a slot)."""

    task: Task
    handler: Handler[Any, Any]
    grace: float = 0.0


@dataclass(frozen=True)
class _Wake:
    queue: str


@dataclass(frozen=True)
class _Finished:
    outcome: Outcome


@dataclass(frozen=True)
class _StopRequest:
    force: bool


class Worker:
    """Serves one or more queues until stopped (``stop()`` or a signal).

    The queues' database is reached at their DSN; LISTEN, which needs a
    session of its own, at ``listen_dsn`` (default: the same DSN). Behind
    PgBouncer in transaction mode, give a direct or session-mode DSN there.

    ``clock`` (default ``time.monotonic``) is where every timing decision
    reads the time, so tests can drive those decisions.
    """

    def __init__(
        self,
        queues: PgTq | Sequence[PgTq],
        settings: WorkerSettings | None = None,
        *,
        target: str | None = None,
        listen_dsn: str | None = None,
        clock: Clock = time.monotonic,
        on_written: Callable[[Outcome, bool], None] | None = None,
    ) -> None:
        served = [queues] if isinstance(queues, PgTq) else list(queues)
        if not served:
            raise ValueError("a worker needs at least one queue")
        names = [q.queue for q in served]
        if len(set(names)) != len(names):
            raise ValueError(f"each queue may be served once, got {names}")
        self.queues = {q.queue: q for q in served}
        self.settings = settings or WorkerSettings()
        if self.settings.pool == "process" and target is None:
            raise ValueError("the process pool needs target='MODULE:QUEUE_OBJECT' so children can import it")
        self.target = target
        self.worker_id = new_worker_id()
        self.dsn = served[0].dsn
        self.listen_dsn = listen_dsn or self.dsn
        self._clock = clock
        # Told of each outcome once written, and whether the database took it
        # (its lease still held): the worker-local metrics (pgtq.metrics).
        self._on_written = on_written
        self._identity = WorkerIdentity(self.worker_id, socket.gethostname(), os.getpid(), tuple(self.queues))
        self._lease = timedelta(seconds=self.settings.lease)
        self._events: queue_module.SimpleQueue[_Wake | _Finished | _StopRequest] = queue_module.SimpleQueue()
        self._link = DatabaseLink(
            self.dsn, clock=clock, max_delay=self.settings.reconnect_max_delay, on_connect=self._register
        )
        self._running: dict[int, _Running] = {}
        self._pending: list[Outcome] = []
        self._pending_since = 0.0
        self._timers = Timers(
            tick_interval=self.settings.tick_interval,
            heartbeat_interval=self.settings.heartbeat_every,
            poll_interval=self.settings.poll_interval,
        )
        self._turns = PopTurns(self.queues)
        self._stopping = False
        self._forced = False
        self._shutdown_deadline = 0.0
        self._pool: Pool | None = None
        self._listener: Listener | None = None

    # -- control -----------------------------------------------------------

    def stop(self, force: bool = False) -> None:
        """Ask the worker to stop: gracefully, or at once with ``force``.
        Safe to call from any thread or a signal handler."""
        self._events.put(_StopRequest(force))

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for."""
        return self._stopping

    def run(self) -> int:
        """Serve jobs until stopped. Returns 0 after a graceful stop, 1 after
        a forced one. Raises when the database cannot be reached at start or
        its schema is missing or of another version; after that, database
        errors are logged and outlived."""
        self._link.open()
        try:
            self._register(self._link.use())
            self._link.settled()
        except DATABASE_ERRORS as error:
            self._link.failed(error)
        self._pool = self._make_pool()
        self._pool.start()
        self._listener = Listener(
            self.listen_dsn, self.queues, lambda name: self._events.put(_Wake(name)), notify_dsn=self.dsn
        )
        self._listener.start()
        logger.info(
            "worker %s serving %s with %d %s slot(s) (handlers: %s)",
            self.worker_id,
            ", ".join(repr(name) for name in self.queues),
            self.settings.concurrency,
            self.settings.pool,
            ", ".join(sorted(f"{q}.{h}" for q, pgtq in self.queues.items() for h in pgtq.handlers)) or "none",
        )
        try:
            self._loop()
        finally:
            self._shut_down()
        return 1 if self._forced else 0

    def _make_pool(self) -> Pool:
        report = self._on_finished
        if self.settings.pool == "process":
            assert self.target is not None
            return ProcessPool(self.settings.concurrency, report, self.target, self._clock)
        return ThreadPool(
            self.settings.concurrency,
            report,
            self._clock,
            max_abandoned=self.settings.max_abandoned_threads,
            interrupt_abandoned=self.settings.interrupt_timed_out_threads,
        )

    def _on_finished(self, outcome: Outcome) -> None:
        self._events.put(_Finished(outcome))

    # -- the loop ----------------------------------------------------------

    def _loop(self) -> None:
        while True:
            now = self._clock()
            self._enforce_timeouts(now)
            if self._link.ready(now):
                self._talk_to_database(now)
            if self._forced:
                return
            if self._stopping and self._finished_stopping(now):
                return
            self._wait(self._next_wakeup(now) - now)

    def _talk_to_database(self, now: float) -> None:
        try:
            if self._stopping:
                self._flush_outcomes()
                self._hand_back_unstarted()
                return
            if self._timers.tick_due(now):
                self._tick()
                self._timers.ticked(now)
            if self._timers.heartbeat_due(now):
                self._heartbeat()
                self._timers.heartbeat_sent(now)
            self._flush_and_claim(now)
            self._claim_more()
        except DATABASE_ERRORS as error:
            self._link.failed(error)
        else:
            self._link.settled()

    def _wait(self, timeout: float) -> None:
        try:
            event = self._events.get(timeout=max(0.0, timeout))
        except queue_module.Empty:
            return
        self._handle(event)
        while True:  # take every event already there, so outcomes are written together
            try:
                self._handle(self._events.get_nowait())
            except queue_module.Empty:
                return

    def _handle(self, event: _Wake | _Finished | _StopRequest) -> None:
        if isinstance(event, _Wake):
            self._turns.wake(self.queues if event.queue == ANY_QUEUE else [event.queue])
        elif isinstance(event, _Finished):
            running = self._running.pop(event.outcome.task.id, None)
            if running is not None:
                self._add_outcome(event.outcome)
        elif event.force or self._stopping:
            logger.warning("stopping at once; the leases protect the jobs still held")
            self._forced = True
        else:
            logger.info(
                "stopping: no new jobs; %d running job(s) get %.0f s to finish",
                len(self._running),
                self.settings.shutdown_timeout,
            )
            self._stopping = True
            self._shutdown_deadline = self._clock() + self.settings.shutdown_timeout

    def _next_wakeup(self, now: float) -> float:
        if self._forced:
            return now
        if self._link.waiting(now):  # after a database error: only the next attempt
            candidates = [now + self.settings.poll_interval, self._link.backoff.next_attempt]
        else:
            candidates = [self._timers.next_due(now, stopping=self._stopping)]
        if self._pending and self._link.conn is not None and not self._link.waiting(now):
            candidates.append(now if self._flush_due(now) else self._pending_since + FLUSH_DELAY)
        if self._stopping:
            candidates.append(self._shutdown_deadline)
        for running in self._running.values():
            if running.handler.timeout is not None:
                deadline = self._deadline(running)
                candidates.append(deadline if deadline is not None else now + UNSTARTED_RECHECK)
        return max(now, min(candidates))

    # -- claiming and running ----------------------------------------------

    def _room_to_claim(self, now: float) -> int:
        """How many jobs to claim now (see ``claim_size``); the fallback poll
        marks every queue as possibly having work."""
        if self._timers.poll_due(now):
            self._turns.wake(self.queues)
        assert self._pool is not None
        return claim_size(self.settings.jobs_in_hand, len(self._running), self._pool.unstarted())

    def _flush_and_claim(self, now: float) -> None:
        """One round trip for both directions: write the pending outcomes
        (one transaction) and claim the next jobs of one queue, pipelined.
        With nothing to claim, the outcomes go alone once they are due (see
        ``flush_due``); until then they wait for more of the batch."""
        room = self._room_to_claim(now)
        name = self._turns.next() if room > 0 else None
        if name is None:
            if self._flush_due(now):
                self._flush_outcomes()
            return
        written, tasks = gateway.write_outcomes_and_pop(
            self._link.use(), self._pending, queue=name, worker=self.worker_id, n=room, lease=self._lease
        )
        self._log_written(written)
        self._took(name, room, tasks)

    def _claim_more(self) -> None:
        """Claim from the other queues that may have work while there is room."""
        room = self._room_to_claim(self._clock())
        while room > 0:
            name = self._turns.next()
            if name is None:
                return
            tasks = gateway.pop(
                self._link.use(), queue=name, worker=self.worker_id, n=room, lease=self._lease
            )
            self._took(name, room, tasks)
            room -= len(tasks)

    def _took(self, name: str, asked: int, tasks: list[Task]) -> None:
        if len(tasks) < asked:
            self._turns.drained(name)  # wait for a wake-up
        for task in tasks:
            self._hand_to_pool(task)

    def _hand_to_pool(self, task: Task) -> None:
        try:
            handler = self.queues[task.queue].handler_for(task.name)
        except UnknownTaskError as error:
            self._add_outcome(unknown_task_outcome(task, error))
            return
        # An async handler cancels itself at its timeout; the deadline here is
        # the backstop. A synchronous one is abandoned at the deadline.
        grace = 1.0 if inspect.iscoroutinefunction(handler.func) else 0.0
        self._running[task.id] = _Running(task, handler, grace)
        assert self._pool is not None
        self._pool.submit(task, handler)

    def _deadline(self, running: _Running) -> float | None:
        """When a started job with a timeout must be stopped (None: no
        timeout, or not started yet)."""
        assert self._pool is not None
        if running.handler.timeout is None:
            return None
        started = self._pool.started_at(running.task.id)
        return timeout_deadline(started, running.handler.timeout, running.grace)

    def _enforce_timeouts(self, now: float) -> None:
        assert self._pool is not None
        for running in list(self._running.values()):
            deadline = self._deadline(running)
            if deadline is None or now < deadline:
                continue
            started = self._pool.started_at(running.task.id)
            del self._running[running.task.id]
            self._pool.abandon(running.task)
            assert running.handler.timeout is not None
            elapsed = now - (started if started is not None else now)
            self._add_outcome(timeout_outcome(running.task, running.handler.timeout, elapsed))

    def _hand_back_unstarted(self) -> None:
        """Take back the jobs still queued in the pool and release them."""
        assert self._pool is not None
        unstarted = self._pool.take_unstarted()
        for task in unstarted:
            self._running.pop(task.id, None)
        self._release(unstarted)

    # -- writing to the database -------------------------------------------

    def _add_outcome(self, outcome: Outcome) -> None:
        if not self._pending:
            self._pending_since = self._clock()
        self._pending.append(outcome)

    def _flush_due(self, now: float) -> bool:
        return flush_due(
            now,
            pending=len(self._pending),
            pending_since=self._pending_since,
            stopping=self._stopping,
            running=len(self._running),
            jobs_in_hand=self.settings.jobs_in_hand,
        )

    def _flush_outcomes(self) -> None:
        """Write every pending outcome in one round trip."""
        if not self._pending or self._link.conn is None:
            return
        self._log_written(gateway.write_outcomes(self._link.use(), self._pending))

    def _log_written(self, written: gateway.Written | None) -> None:
        """Log the outcomes just written, which leave ``_pending`` only now:
        when the round trip fails they stay to be written again."""
        if written is None:
            return
        for outcome in self._pending:
            if outcome.kind == "done":
                reply: Any = outcome.task.id in written.completed
            else:
                reply = written.failed.get(outcome.task.id)
            _log_outcome(outcome, reply)
            if self._on_written is not None:
                self._on_written(outcome, bool(reply))
        self._pending.clear()

    def _heartbeat(self) -> None:
        held = [r.task for r in self._running.values()]
        alive = gateway.renew_leases(self._link.use(), self._identity, held, self._lease)
        for task, kept in zip(held, alive, strict=True):
            if not kept:
                logger.warning("lost the lease of job %d (%s): it was handed on", task.id, task.name)

    def _tick(self) -> None:
        for name in self.queues:
            moved = gateway.tick(self._link.use(), name)
            if moved:
                logger.debug("tick moved %d job(s) of queue %r", moved, name)
                self._turns.wake([name])

    def _release(self, tasks: list[Task]) -> None:
        if not tasks or self._link.conn is None:
            return
        gateway.release_all(self._link.use(), tasks)
        for task in tasks:
            logger.info("task %s id=%d handed back (released, attempt not counted)", task.name, task.id)

    # -- connection --------------------------------------------------------

    def _register(self, conn: psycopg.Connection[Any]) -> None:
        """Record this worker in ``pgtq.workers`` (on every new connection;
        the lease renewals refresh it), and look for work at once: what was
        pushed while the connection was away sent no notification here."""
        gateway.register_worker(conn, self._identity)
        self._turns.wake(self.queues)
        if self._pending:
            logger.info("writing %d pending outcome(s)", len(self._pending))

    # -- stopping ----------------------------------------------------------

    def _finished_stopping(self, now: float) -> bool:
        if self._running and now < self._shutdown_deadline:
            return False
        if self._running:
            late = [r.task for r in self._running.values()]
            logger.warning("grace period over: handing back %d unfinished job(s)", len(late))
            for task in late:
                assert self._pool is not None
                self._pool.abandon(task)
            self._running.clear()
            try:
                self._release(late)
            except DATABASE_ERRORS as error:
                logger.warning("could not hand back the jobs (%s); their leases will expire", describe(error))
        # Write the pending outcomes first, while connected, up to the deadline.
        return not (self._pending and self._link.conn is not None and now < self._shutdown_deadline)

    def _shut_down(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        if self._pool is not None:
            self._pool.close()
        if self._link.conn is not None and not self._forced:
            try:
                self._flush_outcomes()
                gateway.unregister_worker(self._link.use(), self.worker_id)
            except DATABASE_ERRORS as error:
                logger.warning("could not unregister cleanly: %s", describe(error))
        self._link.close()
        logger.info("worker %s stopped", self.worker_id)


def _log_outcome(outcome: Outcome, reply: Any) -> None:
    task = outcome.task
    if outcome.kind == "done":
        ending = "done" if reply else "done, but the lease was lost (the job was handed on)"
    else:
        ending = f"{outcome.summary} -> {reply}" if reply is not None else f"{outcome.summary}, lease lost"
    level = logging.INFO if outcome.kind == "done" else logging.WARNING
    logger.log(
        level,
        "task %s id=%d attempt=%d/%d %.3fs %s",
        task.name,
        task.id,
        task.attempt,
        task.max_attempts,
        outcome.duration,
        ending,
    )


@contextmanager
def stop_on_signals(worker: Worker) -> Iterator[None]:
    """While inside the block, the first SIGINT/SIGTERM stops ``worker``
    gracefully and a second one stops it at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = 0

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal received
        received += 1
        logger.info("received %s", signal.Signals(signum).name)
        worker.stop(force=received > 1)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main_loop(
    q: PgTq | Sequence[PgTq],
    *,
    concurrency: int = 1,
    pool: PoolKind = "thread",
    batch_size: int | None = None,
    lease: float | timedelta = 30.0,
    heartbeat_interval: float | None = None,
    poll_interval: float = 2.0,
    tick_interval: float = 1.0,
    shutdown_timeout: float = 30.0,
    max_abandoned_threads: int | None = None,
    interrupt_timed_out_threads: bool = False,
    target: str | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    listen_dsn: str | None = None,
) -> int:
    """Run a worker for ``q`` (one queue or several) in this thread until
    SIGINT or SIGTERM; returns the exit code (0 after a graceful stop).

    ``concurrency`` jobs run at once in threads (``pool="thread"``, for
    I/O-bound handlers) or in child processes (``pool="process"``, for
    CPU-bound ones; needs ``target="MODULE:QUEUE_OBJECT"``). ``listen_dsn``:
    where the listener runs LISTEN (default: the queues' DSN; see
    :class:`Worker`). See :class:`WorkerSettings` for the other settings.
    With ``metrics_port`` it serves Prometheus metrics at
    ``http://metrics_host:metrics_port/metrics`` (the extra ``pgtq[metrics]``;
    see :mod:`pgtq.metrics`).
    """
    settings = WorkerSettings(
        concurrency=concurrency,
        pool=pool,
        batch_size=batch_size,
        lease=lease.total_seconds() if isinstance(lease, timedelta) else float(lease),
        heartbeat_interval=heartbeat_interval,
        poll_interval=poll_interval,
        tick_interval=tick_interval,
        shutdown_timeout=shutdown_timeout,
        max_abandoned_threads=max_abandoned_threads,
        interrupt_timed_out_threads=interrupt_timed_out_threads,
    )
    if metrics_port is None:
        worker = Worker(q, settings, target=target, listen_dsn=listen_dsn)
        with stop_on_signals(worker):
            return worker.run()
    from pgtq.metrics import WorkerMetrics

    served = [q] if isinstance(q, PgTq) else list(q)
    metrics = WorkerMetrics(served[0].database)
    worker = Worker(q, settings, target=target, listen_dsn=listen_dsn, on_written=metrics.record)
    with metrics.serve(metrics_port, metrics_host), stop_on_signals(worker):
        return worker.run()
