"""Worker runtime: the dispatcher's side of one PostgreSQL server.

A worker holds one ``Server`` for each server its queues live on (see
``_routing.py``): the link (connection, backoff, reconnection), the
timers of its ticks, lease renewals and polls, the turns of its queues,
the outcomes not yet written there and the jobs to hand back there, the
cancel requests heard there and not yet checked, the worker's
registration in that server's ``pgtq.workers``, and a listener.
A server that fails leaves the others alone: its outcomes wait in its own
list, its link backs off on its own, its listener reconnects on its own.

Each method that talks to the database is one round trip through the
gateway. The dispatcher decides when to call them and catches their
database errors (``link.failed``), as for a worker with one server.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from pgtq._db import gateway
from pgtq._records import Heartbeat, Outcome, WorkerIdentity
from pgtq.task import Task
from pgtq.worker._decisions import Clock, PopTurns, Timers
from pgtq.worker._link import DATABASE_ERRORS, DatabaseLink, describe
from pgtq.worker._listener import ANY_QUEUE, Handoff, Listener
from pgtq.worker._routing import ServerPlan
from pgtq.worker._settings import WorkerSettings

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger("pgtq.worker")

Wake = Callable[[Iterable[str]], None]
# Called, from the listener's thread, with a server and the id of a job of
# it whose cancel was announced (a hint, to be checked with the database).
CancelHint = Callable[["Server", int], None]

# Offered, from the listener's thread, each notification of a queue of the
# server, with the listener's session: whether it claimed the queue's jobs
# there itself (an idle worker's loan, _idle_claim.py).
ClaimWhileIdle = Callable[["Server", "psycopg.Connection[Any]", str], bool]

# Called, from the listener's thread, with a server, the listener's session
# and the claim of a job a push handed to its offer (schema 0.16.0): run
# it, or hand it back; whether it came with room the worker lent.
TakeHanded = Callable[["Server", "psycopg.Connection[Any]", str], bool]

# Registers the periodic tasks of the server's queues on a connection.
RegisterPeriodic = Callable[["psycopg.Connection[Any]"], None]

# A job that ends as it should (done) is logged on a line of its own at
# DEBUG only: at thousands of jobs a second, a line each would cost the
# worker more than the jobs. At INFO a summary says how many ended, at most
# this often while jobs end (and once more when the worker stops). Every
# other ending (a failure, a retry, a cancel, a lost lease) keeps its line.
SUMMARY_INTERVAL = 10.0

# How long a stopping worker waits for its listener: it closes its hand-off
# offer, waiting at most 2 s for pushes handing it a job, and hands those back.
LISTENER_STOP_TIMEOUT = 5.0


class Server:
    """One server of a worker, from its ``plan``. ``named``: whether log
    lines name the server (a worker with several servers); ``wake(queues)``
    is called, from the listener's thread, when queues of this server may
    have ready jobs; ``cancel_hint(server, job_id)`` likewise when a cancel
    of one of its running jobs was announced; ``claim_while_idle(server,
    conn, queue)`` is offered each notification first (see
    ``ClaimWhileIdle``); with ``take_handed`` (see ``TakeHanded``) and
    ``lending`` (whether the worker lends room now), the listener offers
    the room to the pushes (``Handoff``)."""

    def __init__(
        self,
        plan: ServerPlan,
        *,
        worker_id: str,
        settings: WorkerSettings,
        clock: Clock,
        wake: Wake,
        cancel_hint: CancelHint | None = None,
        claim_while_idle: ClaimWhileIdle | None = None,
        take_handed: TakeHanded | None = None,
        lending: Callable[[], bool] | None = None,
        named: bool = False,
        on_written: Callable[[Outcome, bool], None] | None = None,
        register_periodic: RegisterPeriodic | None = None,
    ) -> None:
        self.plan = plan
        self.queues = plan.queues
        self.name = plan.label if named else ""
        self.identity = WorkerIdentity(worker_id, socket.gethostname(), os.getpid(), plan.queues)
        self.link = DatabaseLink(
            plan.dsn,
            clock=clock,
            max_delay=settings.reconnect_max_delay,
            on_connect=self._register,
            name=self.name,
        )
        self.timers = Timers(
            tick_interval=settings.tick_interval,
            heartbeat_interval=settings.heartbeat_every,
            poll_interval=settings.poll_interval,
        )
        self.turns = PopTurns(plan.queues)
        self.pending: list[Outcome] = []  # finished runs not yet written here
        self.pending_since = 0.0
        self.releasing: list[Task] = []  # claimed jobs to hand back here (stopping)
        self.cancel_hints: set[int] = set()  # ids announced on pgtq_cancel, not checked yet
        self.listener: Listener | None = None
        self._clock = clock
        self._summary = _Summary(clock())
        self._wake = wake
        self._cancel_hint = cancel_hint
        self._claim_while_idle = claim_while_idle
        self._take_handed = take_handed
        self._lending = lending
        self._lease = timedelta(seconds=settings.lease)
        # Told of each outcome once written, and whether the database took it
        # (its lease still held): the worker-local metrics (pgtq.metrics).
        self._on_written = on_written
        # Once per worker and server: at start, or at the first connection
        # of a server that could not be reached at start.
        self._register_periodic = register_periodic

    @property
    def lease(self) -> timedelta:
        """How long a claim of this worker holds each job before a renewal."""
        return self._lease

    def __repr__(self) -> str:
        return f"<Server {self.plan.label} queues={self.queues!r}>"

    # -- start and stop ----------------------------------------------------

    def open(self) -> None:
        """Connect, check the schema, register the periodic tasks and the
        worker; raises when the server cannot be reached, its schema is
        wrong or it refuses a periodic task (configuration errors at start),
        except for an error of the worker's registration itself, which the
        link outlives like any later one."""
        self.link.open()
        try:
            self._periodic_tasks(self.link.use())
        except BaseException:
            self.link.close()
            raise
        try:
            self._register(self.link.use())
            self.link.settled()
        except DATABASE_ERRORS as error:
            self.link.failed(error)

    def start_listening(self) -> None:
        """Start the listener thread, which wakes the worker on a push."""
        self.listener = Listener(
            self.plan.listen_dsn,
            self.queues,
            self._heard,
            cancel=self._heard_cancel,
            claim=None if self._claim_while_idle is None else partial(self._claim_while_idle, self),
            handoff=self._handoff(),
            notify_dsn=self.plan.dsn,
            name=self.name,
        )
        self.listener.start()

    def _handoff(self) -> Handoff | None:
        if self._take_handed is None or self._lending is None:
            return None
        return Handoff(self.identity.worker, self._lease, self._lending, partial(self._take_handed, self))

    def _heard(self, queue: str) -> None:
        self._wake(self.queues if queue == ANY_QUEUE else (queue,))

    def _heard_cancel(self, job_id: int) -> None:
        logger.debug(
            "%sheard a cancel request for job %d; checking it with the database", self._prefix, job_id
        )
        if self._cancel_hint is not None:
            self._cancel_hint(self, job_id)

    def waiting_for(self, queue: str, waiting: bool) -> None:
        """Tell the listener whether the worker waits for jobs of ``queue``
        (a pop came back short: it is marked, and the worker woken to pop
        again) or is busy with it (a full pop: its mark is cleared, and its
        pushes stop notifying)."""
        if self.listener is not None:
            self.listener.wait_for(queue, waiting)

    def close_offer(self) -> None:
        """Close the listener's hand-off offer now, unless room is lent
        again (the worker handed back a job the offer got, for want of room)."""
        if self.listener is not None:
            self.listener.close_offer()

    def stop_listening(self) -> None:
        """Stop the listener, and give it a moment to hand back what pushes
        handed its offer meanwhile."""
        if self.listener is not None:
            self.listener.stop()
            self.listener.join(LISTENER_STOP_TIMEOUT)

    def unregister(self) -> None:
        """Write what is pending, then leave ``pgtq.workers``."""
        self.write_outcomes()
        self._summary.log(self._prefix, self._clock(), final=True)
        gateway.unregister_worker(self.link.use(), self.identity.worker)

    def _register(self, conn: psycopg.Connection[Any]) -> None:
        """Record the worker in this server's ``pgtq.workers`` (on every new
        connection; the lease renewals refresh it), and look for work at
        once: what was pushed while the connection was away sent no
        notification here."""
        gateway.register_worker(conn, self.identity)
        self._periodic_tasks(conn)
        self.turns.wake(self.queues)
        if self.pending:
            logger.info("%swriting %d pending outcome(s)", self._prefix, len(self.pending))

    def _periodic_tasks(self, conn: psycopg.Connection[Any]) -> None:
        """Register the periodic tasks of this server's queues, once."""
        if self._register_periodic is not None:
            self._register_periodic(conn)
            self._register_periodic = None

    @property
    def _prefix(self) -> str:
        return f"{self.name}: " if self.name else ""

    # -- outcomes ----------------------------------------------------------

    def add_outcome(self, outcome: Outcome, now: float) -> None:
        """Keep a finished run to be written here (one that a transactional
        handler's transaction already wrote is only logged)."""
        if outcome.written is not None:
            _log_outcome(outcome, outcome.written)
            if self._on_written is not None:
                self._on_written(outcome, outcome.written)
            return
        if not self.pending:
            self.pending_since = now
        self.pending.append(outcome)

    def write_outcomes(self) -> None:
        """Write every pending outcome in one round trip (nothing when none
        is pending or the server is not connected)."""
        if not self.pending or self.link.conn is None:
            return
        self._log_written(gateway.write_outcomes(self.link.use(), self.pending))

    def _log_written(self, written: gateway.Written | None) -> None:
        """Log the outcomes just written, which leave ``pending`` only now:
        when the round trip fails they stay to be written again."""
        if written is None:
            return
        for outcome in self.pending:
            if outcome.kind == "done":
                reply: Any = outcome.task.id in written.completed
            else:
                reply = written.failed.get(outcome.task.id)
            self._summary.count(_log_outcome(outcome, reply))
            if self._on_written is not None:
                self._on_written(outcome, bool(reply))
        self.pending.clear()
        self._summary.log(self._prefix, self._clock(), final=False)

    # -- claims, renewals, ticks, hand-backs ------------------------------

    def claim(self, queue: str, n: int, worker: str, *, with_outcomes: bool) -> list[Task]:
        """Claim up to ``n`` jobs of ``queue`` (``pgtq.pop``); with
        ``with_outcomes`` the pending outcomes are written in the same
        round trip and transaction (one commit for both; see
        ``gateway.write_outcomes_and_pop``)."""
        if not with_outcomes:
            return gateway.pop(self.link.use(), queue=queue, worker=worker, n=n, lease=self._lease)
        written, tasks = gateway.write_outcomes_and_pop(
            self.link.use(), self.pending, queue=queue, worker=worker, n=n, lease=self._lease
        )
        self._log_written(written)
        return tasks

    def renew_leases(self, held: list[Task]) -> list[Task]:
        """Refresh the registration and extend the leases of ``held`` (this
        server's running jobs) in one round trip (``pgtq.heartbeat_many``);
        returns those asked to cancel."""
        return self._asked_to_cancel(
            held, gateway.renew_leases(self.link.use(), self.identity, held, self._lease)
        )

    def check_cancels(self, tasks: list[Task]) -> list[Task]:
        """Ask the database which of ``tasks`` were asked to cancel (a
        ``pgtq.heartbeat_many`` of them, which extends their leases too)."""
        return self._asked_to_cancel(tasks, gateway.heartbeat_many(self.link.use(), tasks, self._lease))

    def keeps_handed_lease(self, conn: gateway.Connection, task: Task) -> bool:
        """(A listener's thread, with its session.) Whether a job a push
        handed to this worker may run. Its lease began at the push (schema
        0.16.0), so a pushing transaction that stayed open for over half the
        lease hands over a lease that is running out, or ran out: tick
        would hand the job on while it runs. Such a lease is renewed first
        (``pgtq.heartbeat_many``); False when it was lost meanwhile. Read
        by this machine's clock: a clock far off the database's costs a
        needless renewal, or leaves the job to its first heartbeat."""
        expires = task.lease_expires_at
        if expires is None or expires - datetime.now(UTC) > self._lease / 2:
            return True
        try:
            [beat] = gateway.heartbeat_many(conn, [task], self._lease)
        except DATABASE_ERRORS as error:
            logger.warning(
                "could not renew the lease of job %d (%s), which its push's transaction held past half "
                "the lease; it runs, and is handed on if the lease runs out first",
                task.id,
                describe(error),
            )
            return True
        if not beat.held:
            logger.warning(
                "job %d (%s) was handed to this worker by a push whose transaction outlasted the lease, "
                "and was handed on meanwhile: not run here",
                task.id,
                task.name,
            )
        return beat.held

    def _asked_to_cancel(self, held: list[Task], beats: list[Heartbeat]) -> list[Task]:
        asked = []
        for task, beat in zip(held, beats, strict=True):
            if not beat.held:
                logger.warning(
                    "lost the lease of job %d (%s): it ran out or the job was handed on", task.id, task.name
                )
            elif beat.cancel_requested:
                asked.append(task)
        return asked

    def tick(self) -> None:
        """``pgtq.tick`` for each queue of this server; a queue whose jobs
        moved may have ready ones."""
        for name in self.queues:
            moved = gateway.tick(self.link.use(), name)
            if moved:
                logger.debug("tick moved %d job(s) of queue %r", moved, name)
                self.turns.wake([name])

    def release(self, tasks: list[Task]) -> None:
        """Hand ``tasks`` back (``pgtq.release``) in one round trip."""
        if not tasks or self.link.conn is None:
            return
        gateway.release_all(self.link.use(), tasks)
        for task in tasks:
            logger.info("task %s id=%d handed back (released, attempt not counted)", task.name, task.id)

    def hand_back(self) -> None:
        """Release the jobs waiting in ``releasing``; they leave it once released."""
        if self.releasing and self.link.conn is not None:
            self.release(self.releasing)
            self.releasing = []


class _Summary:
    """How many written outcomes ended done, and otherwise, since the last
    summary line (see SUMMARY_INTERVAL)."""

    def __init__(self, now: float) -> None:
        self.since = now
        self.done = 0
        self.other = 0

    def count(self, plain_done: bool) -> None:
        if plain_done:
            self.done += 1
        else:
            self.other += 1

    def log(self, prefix: str, now: float, *, final: bool) -> None:
        """Log the summary when SUMMARY_INTERVAL has passed (or ``final``) and a job ended."""
        elapsed = now - self.since
        if not (final or elapsed >= SUMMARY_INTERVAL):
            return
        if self.done or self.other:
            logger.info(
                "%s%d job(s) done, %d ended otherwise, in the last %.0f s (%.0f/s)",
                prefix,
                self.done,
                self.other,
                elapsed,
                (self.done + self.other) / elapsed if elapsed > 0 else 0.0,
            )
        self.since, self.done, self.other = now, 0, 0


def _log_outcome(outcome: Outcome, reply: Any) -> bool:
    """One line per written outcome, at DEBUG for a job done as it should
    (returns True for one: it is counted in the summary instead). A job
    that was asked to cancel ends
    ``cancelled`` in the database whatever its outcome; a cancel request
    this worker had not heard of yet when it wrote a success is logged as
    ``done`` (the job's state says ``cancelled``)."""
    task = outcome.task
    plain_done = outcome.kind == "done" and bool(reply) and not task.cancel_requested
    if plain_done:
        level = logging.DEBUG
    elif outcome.kind == "done" or reply == "cancelled":
        level = logging.INFO
    else:
        level = logging.WARNING
    if not logger.isEnabledFor(level):
        return plain_done
    if outcome.kind != "done":
        ending = f"{outcome.summary} -> {reply}" if reply is not None else f"{outcome.summary}, lease lost"
    elif not reply:
        ending = "done, but the lease was lost (the job was handed on)"
        if outcome.written is False:
            ending += ": its transaction was rolled back"
    else:
        ending = "done after a cancel request -> cancelled" if task.cancel_requested else "done"
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
    return plain_done
