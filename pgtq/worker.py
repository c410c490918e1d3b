"""The worker: a loop over SQL calls that runs handlers.

One dispatcher thread owns the worker's database connection. It claims
jobs with ``pgtq.pop`` (in batches when several slots are free), hands them
to a pool (threads, or child processes), writes each outcome with
``pgtq.complete`` / ``pgtq.fail`` (batched in one round trip), extends the
leases of running jobs with ``pgtq.heartbeat``, and calls ``pgtq.tick``
now and then so scheduled jobs, retries and dead workers' jobs move on even
when no scheduler runs. What a failure means (retry when, or give up) is
decided by ``pgtq.fail`` in the database, never here.

Idle, it waits for a notification from the listener thread (a push wakes it
at once) or for its poll interval. It survives database restarts: it
reconnects with capped backoff, keeps the outcomes it could not write and
writes them after reconnecting (a stale lease makes that safe). On SIGTERM
or SIGINT it stops claiming, lets running jobs finish within the grace
period, hands back the rest with ``pgtq.release`` and exits 0; a second
signal stops it at once, and the leases protect the jobs it held.
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
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from pgtq import _sql
from pgtq._execution import Outcome, current_task, timeout_outcome
from pgtq._listener import ANY_QUEUE, Listener
from pgtq._pools import Pool, ProcessPool, ThreadPool
from pgtq.errors import ConnectionFailedError, PgTqError, database_errors
from pgtq.handler import Handler
from pgtq.queue import PgTq, tasks_from_rows
from pgtq.task import Task

logger = logging.getLogger("pgtq.worker")

PoolKind = Literal["thread", "process"]

# While other jobs of the batch are still running, outcomes wait up to this
# long (or until half a batch is in) to be written together in one round
# trip; the last running job's outcome is written at once.
FLUSH_DELAY = 0.005


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs. Times are in seconds.

    ``concurrency``: jobs run at once. ``batch_size``: jobs claimed per pop
    and held at most (default: ``concurrency``; larger values prefetch).
    ``lease``: how long a claimed job is reserved without a heartbeat;
    ``heartbeat_interval`` (default lease / 3) renews it while the job runs.
    ``poll_interval``: the fallback poll when no notification arrives.
    ``shutdown_timeout``: the grace period for running jobs on SIGTERM.
    """

    concurrency: int = 1
    pool: PoolKind = "thread"
    batch_size: int | None = None
    lease: float = 30.0
    heartbeat_interval: float | None = None
    poll_interval: float = 2.0
    tick_interval: float = 1.0
    shutdown_timeout: float = 30.0
    reconnect_max_delay: float = 30.0

    def __post_init__(self) -> None:
        for name in ("lease", "poll_interval", "tick_interval", "reconnect_max_delay"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout must not be negative, got {self.shutdown_timeout!r}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size!r}")
        if self.heartbeat_interval is not None and not 0 < self.heartbeat_interval < self.lease:
            raise ValueError("heartbeat_interval must be positive and shorter than the lease")
        if self.pool not in ("thread", "process"):
            raise ValueError(f"pool must be 'thread' or 'process', got {self.pool!r}")

    @property
    def jobs_in_hand(self) -> int:
        """How many claimed jobs (running or waiting for a slot) it holds at most."""
        return max(self.concurrency, self.batch_size or self.concurrency)

    @property
    def heartbeat_every(self) -> float:
        return self.heartbeat_interval or self.lease / 3


def new_worker_id() -> str:
    """A unique, readable worker id: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class _Running:
    """A claimed job handed to the pool (running, or queued for a slot)."""

    task: Task
    handler: Handler[Any, Any]
    grace: float = 0.0


@dataclass(frozen=True)
class _Replies:
    """Outcomes sent in a pipeline, and the cursors their replies come on."""

    done: list[Outcome]
    completing: psycopg.Cursor[Any] | None
    failed: list[Outcome]
    failing: list[psycopg.Cursor[Any]]


@dataclass(frozen=True)
class _Wake:
    queue: str


@dataclass(frozen=True)
class _Finished:
    outcome: Outcome


@dataclass(frozen=True)
class _StopRequest:
    force: bool


@dataclass
class _Timers:
    next_tick: float = 0.0
    next_heartbeat: float = 0.0
    next_poll: float = 0.0
    next_reconnect: float = 0.0
    reconnect_delay: float = 0.5
    queues_to_pop: set[str] = field(default_factory=set)


class Worker:
    """Serves one or more queues until stopped (``stop()`` or a signal)."""

    def __init__(
        self,
        queues: PgTq | Sequence[PgTq],
        settings: WorkerSettings | None = None,
        *,
        target: str | None = None,
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
        self._primary = served[0]
        self._events: queue_module.SimpleQueue[_Wake | _Finished | _StopRequest] = queue_module.SimpleQueue()
        self._conn: psycopg.Connection[Any] | None = None
        self._running: dict[int, _Running] = {}
        self._pending: list[Outcome] = []
        self._pending_since = 0.0
        self._timers = _Timers(queues_to_pop=set(self.queues))
        self._stopping = False
        self._forced = False
        self._shutdown_deadline = 0.0
        self._pool: Pool | None = None
        self._listener: Listener | None = None
        self._round_robin = deque(self.queues)

    # -- control -----------------------------------------------------------

    def stop(self, force: bool = False) -> None:
        """Ask the worker to stop: gracefully, or at once with ``force``.
        Safe to call from any thread or a signal handler."""
        self._events.put(_StopRequest(force))

    @property
    def stopping(self) -> bool:
        return self._stopping

    def run(self) -> int:
        """Serve jobs until stopped. Returns 0 after a graceful stop, 1 after
        a forced one. Raises when the database cannot be reached at start or
        its schema is missing or of another version."""
        self._connect()
        self._register()
        self._pool = self._make_pool()
        self._pool.start()
        self._listener = Listener(self.dsn, self.queues, lambda name: self._events.put(_Wake(name)))
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
            return ProcessPool(self.settings.concurrency, report, self.target)
        return ThreadPool(self.settings.concurrency, report)

    def _on_finished(self, outcome: Outcome) -> None:
        self._events.put(_Finished(outcome))

    # -- the loop ----------------------------------------------------------

    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            self._enforce_timeouts(now)
            if self._conn is not None or self._try_reconnect(now):
                self._talk_to_database(now)
            if self._forced:
                return
            if self._stopping and self._finished_stopping(now):
                return
            self._wait(self._next_wakeup(now) - now)

    def _talk_to_database(self, now: float) -> None:
        try:
            self._flush_outcomes()
            if self._stopping:
                self._hand_back_unstarted()
                return
            if now >= self._timers.next_tick:
                self._tick()
                self._timers.next_tick = now + self.settings.tick_interval
            if now >= self._timers.next_heartbeat:
                self._heartbeat()
                self._timers.next_heartbeat = now + self.settings.heartbeat_every
            self._flush_and_claim(now)
            self._claim_more()
        except ConnectionFailedError as error:
            self._lost_database(error)

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
            self._timers.queues_to_pop.update(self.queues if event.queue == ANY_QUEUE else [event.queue])
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
            self._shutdown_deadline = time.monotonic() + self.settings.shutdown_timeout

    def _next_wakeup(self, now: float) -> float:
        if self._forced:
            return now
        candidates = [now + self.settings.poll_interval]
        if self._conn is None:
            candidates.append(self._timers.next_reconnect)
        elif not self._stopping:
            candidates += [self._timers.next_tick, self._timers.next_heartbeat, self._timers.next_poll]
        if self._pending and self._conn is not None:
            candidates.append(now if self._flush_due(now) else self._pending_since + FLUSH_DELAY)
        if self._stopping:
            candidates.append(self._shutdown_deadline)
        for running in self._running.values():
            deadline = self._deadline(running)
            if running.handler.timeout is not None:  # not started yet: look again soon
                candidates.append(deadline if deadline is not None else now + 0.05)
        return max(now, min(candidates))

    # -- claiming and running ----------------------------------------------

    def _room_to_claim(self, now: float) -> int:
        """How many jobs to claim now: none while the pool has enough queued;
        at once when a slot may be free, or when half the jobs in hand are
        done (prefetch, with --batch-size above --concurrency)."""
        if now >= self._timers.next_poll:
            self._timers.queues_to_pop.update(self.queues)
            self._timers.next_poll = now + self.settings.poll_interval
        assert self._pool is not None
        room = self.settings.jobs_in_hand - len(self._running)
        if room > 0 and (self._pool.unstarted() == 0 or room >= self.settings.jobs_in_hand // 2):
            return room
        return 0

    def _next_queue_to_pop(self) -> str | None:
        for _ in range(len(self._round_robin)):
            name = self._round_robin[0]
            self._round_robin.rotate(-1)
            if name in self._timers.queues_to_pop:
                return name
        return None

    def _flush_and_claim(self, now: float) -> None:
        """One round trip for both directions: write the pending outcomes
        (one transaction) and claim the next jobs of one queue, pipelined."""
        room = self._room_to_claim(now)
        name = self._next_queue_to_pop() if room > 0 else None
        if name is None:
            if self._flush_due(now):
                self._flush_outcomes()
            return
        assert self._conn is not None
        with database_errors():
            with self._conn.pipeline():
                replies = self._send_outcomes()
                popping = self._conn.cursor(row_factory=dict_row).execute(
                    _sql.POP, self.queues[name].pop_params(room, self.worker_id, self.settings.lease)
                )
            self._log_replies(replies)
            tasks = tasks_from_rows(popping.fetchall())
        self._took(name, room, tasks)

    def _claim_more(self) -> None:
        """Claim from the other queues that may have work while there is room."""
        room = self._room_to_claim(time.monotonic())
        while room > 0:
            name = self._next_queue_to_pop()
            if name is None:
                return
            tasks = self.queues[name].pop_many(
                room, worker=self.worker_id, lease=self.settings.lease, conn=self._conn
            )
            self._took(name, room, tasks)
            room -= len(tasks)

    def _took(self, name: str, asked: int, tasks: list[Task]) -> None:
        if len(tasks) < asked:
            self._timers.queues_to_pop.discard(name)  # drained: wait for a wake-up
        for task in tasks:
            self._hand_to_pool(task)

    def _hand_to_pool(self, task: Task) -> None:
        handler = self.queues[task.queue].handlers.get(task.name)
        if handler is None:
            known = ", ".join(sorted(self.queues[task.queue].handlers)) or "none"
            self._add_outcome(
                Outcome(
                    task,
                    "error",
                    0.0,
                    error=f"UnknownTaskError: no handler for task {task.name!r} in this worker "
                    f"(queue {task.queue!r}; known tasks: {known})",
                    summary="unknown task",
                )
            )
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
        if running.handler.timeout is None:
            return None
        assert self._pool is not None
        started = self._pool.started_at(running.task.id)
        return None if started is None else started + running.handler.timeout + running.grace

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
            self._pending_since = time.monotonic()
        self._pending.append(outcome)

    def _flush_due(self, now: float) -> bool:
        """Whether to write the pending outcomes now rather than wait for
        more of the batch (see FLUSH_DELAY)."""
        if not self._pending:
            return False
        if self._stopping or not self._running:
            return True
        if len(self._pending) >= max(1, self.settings.jobs_in_hand // 2):
            return True
        return now - self._pending_since >= FLUSH_DELAY

    def _flush_outcomes(self) -> None:
        """Write every pending outcome in one round trip."""
        if not self._pending or self._conn is None:
            return
        with database_errors():
            with self._conn.pipeline():
                replies = self._send_outcomes()
            self._log_replies(replies)

    def _send_outcomes(self) -> _Replies | None:
        """Queue the pending outcomes in the open pipeline, in one
        transaction (one WAL flush for the lot): the successes with one
        ``pgtq.complete_many``, each failure with ``pgtq.fail``."""
        if not self._pending:
            return None
        assert self._conn is not None
        done = [outcome for outcome in self._pending if outcome.kind == "done"]
        failed = [outcome for outcome in self._pending if outcome.kind != "done"]
        with self._conn.transaction():
            completing = self._conn.execute(_sql.COMPLETE_MANY, _complete_many_params(done)) if done else None
            failing = [self._conn.execute(*_fail_call(outcome)) for outcome in failed]
        return _Replies(done, completing, failed, failing)

    def _log_replies(self, replies: _Replies | None) -> None:
        """Read the replies of written outcomes, which leave ``_pending``
        only now: when the round trip fails they stay to be written again."""
        if replies is None:
            return
        del self._pending[: len(replies.done) + len(replies.failed)]
        completed = {row[0] for row in replies.completing.fetchall()} if replies.completing else set()
        for outcome in replies.done:
            _log_outcome(outcome, outcome.task.id in completed)
        for outcome, cursor in zip(replies.failed, replies.failing, strict=True):
            reply = cursor.fetchone()
            _log_outcome(outcome, None if reply is None else reply[0])

    def _heartbeat(self) -> None:
        held = [r.task for r in self._running.values()]
        assert self._conn is not None
        with database_errors():
            with self._conn.transaction(), self._conn.pipeline():
                self._conn.execute(_sql.REGISTER_WORKER, self._registration())
                cursors = [
                    self._conn.execute(
                        _sql.HEARTBEAT,
                        {"id": t.id, "lease": t.lease, "extend_by": timedelta(seconds=self.settings.lease)},
                    )
                    for t in held
                ]
            alive = [bool(cursor.fetchone()[0]) for cursor in cursors]  # type: ignore[index]
        for task, kept in zip(held, alive, strict=True):
            if not kept:
                logger.warning("lost the lease of job %d (%s): it was handed on", task.id, task.name)

    def _tick(self) -> None:
        for pgtq in self.queues.values():
            moved = pgtq.tick(conn=self._conn)
            if moved:
                logger.debug("tick moved %d job(s) of queue %r", moved, pgtq.queue)
                self._timers.queues_to_pop.add(pgtq.queue)

    def _release(self, tasks: list[Task]) -> None:
        if not tasks or self._conn is None:
            return
        with database_errors(), self._conn.transaction(), self._conn.pipeline():
            for task in tasks:
                self._conn.execute(_sql.RELEASE, {"id": task.id, "lease": task.lease})
        for task in tasks:
            logger.info("task %s id=%d handed back (released, attempt not counted)", task.name, task.id)

    # -- connection --------------------------------------------------------

    def _registration(self) -> dict[str, Any]:
        return {
            "worker": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(self.queues),
        }

    def _connect(self) -> None:
        conn = self._primary.connect()
        try:
            for pgtq in self.queues.values():
                pgtq.check_schema(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _register(self) -> None:
        assert self._conn is not None
        with database_errors():
            self._conn.execute(_sql.REGISTER_WORKER, self._registration())

    def _lost_database(self, error: PgTqError) -> None:
        logger.warning("database connection lost (%s); reconnecting", error)
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._timers.next_reconnect = time.monotonic() + self._timers.reconnect_delay

    def _try_reconnect(self, now: float) -> bool:
        if now < self._timers.next_reconnect:
            return False
        try:
            self._connect()
            self._register()
        except ConnectionFailedError as error:
            delay = self._timers.reconnect_delay = min(
                self._timers.reconnect_delay * 2, self.settings.reconnect_max_delay
            )
            self._timers.next_reconnect = now + delay
            logger.warning("database still unreachable (%s); next try in %.1f s", error, delay)
            return False
        logger.info("reconnected; writing %d pending outcome(s)", len(self._pending))
        self._timers.reconnect_delay = 0.5
        self._timers.queues_to_pop.update(self.queues)
        return True

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
            except ConnectionFailedError as error:
                logger.warning("could not hand back the jobs (%s); their leases will expire", error)
        return not (self._pending and self._conn is not None)  # write them first

    def _shut_down(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        if self._pool is not None:
            self._pool.close()
        if self._conn is not None and not self._forced:
            try:
                with database_errors():
                    self._flush_outcomes()
                    self._conn.execute(_sql.UNREGISTER_WORKER, {"worker": self.worker_id})
            except PgTqError as error:
                logger.warning("could not unregister cleanly: %s", error)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        logger.info("worker %s stopped", self.worker_id)


def _complete_many_params(outcomes: list[Outcome]) -> dict[str, Any]:
    return {
        "ids": [outcome.task.id for outcome in outcomes],
        "leases": [outcome.task.lease for outcome in outcomes],
        "results": [outcome.result_json for outcome in outcomes],
    }


def _fail_call(outcome: Outcome) -> tuple[str, dict[str, Any]]:
    task = outcome.task
    return _sql.FAIL, {"id": task.id, "lease": task.lease, "error": outcome.error, "retry_in": None}


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
    target: str | None = None,
) -> int:
    """Run a worker for ``q`` (one queue or several) in this thread until
    SIGINT or SIGTERM; returns the exit code (0 after a graceful stop).

    ``concurrency`` jobs run at once in threads (``pool="thread"``, for
    I/O-bound handlers) or in child processes (``pool="process"``, for
    CPU-bound ones; needs ``target="MODULE:QUEUE_OBJECT"``). See
    :class:`WorkerSettings` for the other settings.
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
    )
    worker = Worker(q, settings, target=target)
    with stop_on_signals(worker):
        return worker.run()


__all__ = ["Worker", "WorkerSettings", "current_task", "main_loop", "stop_on_signals"]
