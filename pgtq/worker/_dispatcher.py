"""Worker runtime: the dispatcher, a loop over SQL calls that runs handlers.

One dispatcher thread owns the worker's database connections. It claims
jobs with ``pgtq.pop`` (in batches when several slots are free, and with
no batch size set up to ``MAX_PREFETCH`` ahead while handlers are quick:
``ClaimLimit``), hands them
to a pool (threads, or child processes), writes each outcome with
``pgtq.complete`` / ``pgtq.fail`` / ``pgtq.abort`` (batched in one round
trip), extends the leases of running jobs with ``pgtq.heartbeat_many``,
and calls ``pgtq.tick`` now and then so scheduled jobs, retries and dead
workers' jobs move on even when no scheduler runs. When a failed job runs
again is decided by ``pgtq.fail`` in the database, never here.

Cancelling a running job: ``pgtq.heartbeat_many`` reports a cancel
request with each lease renewal, and the listener hears it at once on
``pgtq_cancel`` (a hint, checked with a ``heartbeat_many`` of the jobs it
names). The pool then stops the job (``_pools.py``) and the outcome it
reports is written as any other: whatever ends the attempt, the database
ends the job ``cancelled``.

Idle, it waits for a notification from the listener thread (a push wakes it
at once) or for its poll interval. While it holds no job it lends its room
to the listeners (``_idle_claim.py``): the listener that hears a push
claims the jobs itself and hands them to the pool, a thread hop sooner.

It survives any database error after start (``_link.py``): it logs it,
reconnects when needed, waits with capped backoff, keeps the outcomes it
could not write and writes them once the database answers again (a stale
lease makes that safe). On SIGTERM
or SIGINT it stops claiming, lets running jobs finish within the grace
period, hands back the rest with ``pgtq.release`` and exits 0; a second
signal stops it at once, and the leases protect the jobs it held.

Queues on several servers: the worker holds one ``Server`` (``_server.py``:
connection, backoff, timers, pending outcomes, registration, listener) per
server its queues live on, in the same loop and with the same pool. Each
claimed job, outcome and wake-up goes to its server by the job's queue
(``_routing.py``); the servers take turns at the free slots, and a server
that fails backs off alone while the others carry on.

Every SQL call goes through the gateway (``pgtq._db.gateway``). The timing
decisions (when to claim, write, tick, renew, reconnect, give up on a job)
are in ``_decisions.py``, fed the time by the worker's clock.
"""

from __future__ import annotations

import inspect
import logging
import queue as queue_module
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from pgtq._db import gateway
from pgtq._db.conninfo import server_label
from pgtq._records import Outcome
from pgtq.errors import ConnectionFailedError, UnknownTaskError
from pgtq.handler import Handler
from pgtq.periodic import register_for_worker
from pgtq.queue import PgTq
from pgtq.task import Task
from pgtq.worker import _listener
from pgtq.worker._decisions import (
    FLUSH_DELAY,
    UNSTARTED_RECHECK,
    ClaimLimit,
    Clock,
    claim_size,
    flush_due,
    timeout_deadline,
)
from pgtq.worker._execution import cancelled_outcome, timeout_outcome, unknown_task_outcome
from pgtq.worker._idle_claim import IdleClaim
from pgtq.worker._link import DATABASE_ERRORS, describe, sqlstate_of, unreachable
from pgtq.worker._pools import Pool, ProcessPool, ThreadPool
from pgtq.worker._routing import JobKey, job_key, plan_servers
from pgtq.worker._server import Server
from pgtq.worker._settings import PoolKind, WorkerSettings, new_worker_id

logger = logging.getLogger("pgtq.worker")

# While a listener's claim made with the idle loan is not taken over, the
# dispatcher looks for it this often (it is not woken for it).
IN_FLIGHT_RECHECK = 0.01


@dataclass(slots=True)
class _Running:
    """A claimed job handed to the pool (running, or queued for a slot)."""

    task: Task
    handler: Handler[Any, Any]
    grace: float = 0.0


@dataclass(frozen=True)
class _Wake:
    queues: tuple[str, ...]


@dataclass(frozen=True)
class _Claimed:
    """What a listener claimed of ``queue`` with an idle worker's loan of
    ``asked`` jobs (``_idle_claim.py``): the jobs it hands to the pool
    (``runs``), the outcomes of those no handler serves, whether the claim
    failed, and whether a push handed the job (``handed``: no claim of the
    worker's, so it says nothing of what else the queue holds)."""

    server: Server
    queue: str
    asked: int
    runs: list[_Running]
    unknown: list[Outcome]
    failed: bool = False
    handed: bool = False


@dataclass(frozen=True)
class _StopRequest:
    force: bool


@dataclass(frozen=True)
class _CancelHint:
    server: Server
    job_id: int


# A finished run comes as its Outcome itself (one object fewer per job).
@dataclass(frozen=True)
class _Handed:
    """A job a push handed to a listener's offer while no room was lent
    (the dispatcher was awake): it runs if the worker has room, otherwise
    it is handed back."""

    server: Server
    task: Task


_Event = Outcome | _Wake | _StopRequest | _CancelHint | _Handed


class Worker:
    """Serves one or more queues until stopped (``stop()`` or a signal).

    Each queue's database is reached at its ``PgTq``'s DSN; queues may live
    on several servers (one connection and one listener for each). LISTEN,
    which needs a session of its own, runs at ``listen_dsn``: by default
    each server's own DSN; one DSN for a worker whose queues share a
    server; or a mapping from a server's DSN to its listen DSN. Behind
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
        listen_dsn: str | Mapping[str, str] | None = None,
        clock: Clock = time.monotonic,
        on_written: Callable[[Outcome, bool], None] | None = None,
    ) -> None:
        served = [queues] if isinstance(queues, PgTq) else list(queues)
        plans = plan_servers(served, listen_dsn)
        self.queues = {q.queue: q for q in served}
        self.settings = settings or WorkerSettings()
        if self.settings.pool == "process" and target is None:
            raise ValueError("the process pool needs target='MODULE:QUEUE_OBJECT' so children can import it")
        transactional = [
            f"{q.queue}.{h.name}" for q in served for h in q.handlers.values() if h.transactional
        ]
        if self.settings.pool == "process" and transactional:
            raise ValueError(
                f"transactional handlers run only in the thread pool, and {', '.join(transactional)} "
                "is one: serve it with pool='thread' (pgtq worker --pool thread)"
            )
        self.target = target
        self.worker_id = new_worker_id()
        self._clock = clock
        self._events: queue_module.SimpleQueue[_Event] = queue_module.SimpleQueue()
        self._idle: IdleClaim[_Claimed] = IdleClaim()
        # Late hand-offs heard (listeners' threads) and not yet run or handed
        # back (the dispatcher): under _late_lock.
        self._late_lock = threading.Lock()
        self._late_unhandled = 0
        self._lend_to_listeners = True  # until a listener's session refuses a claim
        # Queues whose handed job left the worker no room: when it lets go of
        # their waiting marks, unless room comes back first (_let_go_when_busy).
        self._busy_with_handed: dict[str, float] = {}
        self.servers = [
            Server(
                plan,
                worker_id=self.worker_id,
                settings=self.settings,
                clock=clock,
                wake=self._wake,
                cancel_hint=self._cancel_hint,
                claim_while_idle=self._claim_while_idle,
                take_handed=self._take_handed,
                lending=self._lending,
                named=len(plans) > 1,
                on_written=on_written,
                register_periodic=partial(register_for_worker, queues=[self.queues[n] for n in plan.queues]),
            )
            for plan in plans
        ]
        self._server_of = {name: server for server in self.servers for name in server.queues}
        self._turn = 0
        self._running: dict[JobKey, _Running] = {}
        self._limit = ClaimLimit(self.settings.concurrency, self.settings.batch_size)
        self._stopping = False
        self._forced = False
        self._shutdown_deadline = 0.0
        self._pool: Pool | None = None

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
        a forced one. Raises when the database cannot be reached at start
        (with several servers: none of them) or a schema is missing or of
        another version (see ``_open_servers``); after that, database errors
        are logged and outlived."""
        self._open_servers()
        self._pool = self._make_pool()
        self._pool.start()
        for server in self.servers:
            server.start_listening()
            if server.listener is not None:
                self._idle.watch(server.listener.poke)
        self._log_start()
        try:
            self._loop()
        finally:
            self._shut_down()
        return 1 if self._forced else 0

    def _open_servers(self) -> None:
        """Connect to each server. A malformed DSN or a missing or unknown
        schema raises (configuration errors), and so does a server that
        cannot be reached when the worker has no other. A worker of several
        servers serves those that answer, and leaves one that cannot be
        reached (down, restarting) to its link's backoff; when none answers,
        the first error is raised."""
        down: list[tuple[Server, ConnectionFailedError]] = []
        try:
            for server in self.servers:
                try:
                    server.open()
                except ConnectionFailedError as error:
                    if len(self.servers) == 1 or not unreachable(error):
                        raise
                    down.append((server, error))
            if len(down) == len(self.servers):
                raise down[0][1]
        except BaseException:
            for server in self.servers:
                server.link.close()
            raise
        for server, error in down:
            server.link.postpone(error)

    def _log_start(self) -> None:
        logger.info(
            "worker %s serving %s with %d %s slot(s) (handlers: %s)",
            self.worker_id,
            ", ".join(repr(name) for name in self.queues),
            self.settings.concurrency,
            self.settings.pool,
            ", ".join(sorted(f"{q}.{h}" for q, pgtq in self.queues.items() for h in pgtq.handlers)) or "none",
        )
        if len(self.servers) > 1:
            for server in self.servers:
                logger.info(
                    "server %s: queues %s; listening at %s",
                    server.plan.label,
                    ", ".join(repr(name) for name in server.queues),
                    server_label(server.plan.listen_dsn),
                )

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
        self._events.put(outcome)

    def _wake(self, queues: Iterable[str]) -> None:
        self._events.put(_Wake(tuple(queues)))

    def _cancel_hint(self, server: Server, job_id: int) -> None:
        self._events.put(_CancelHint(server, job_id))

    def _route(self, task: Task) -> Server:
        """The server a job lives on: its queue's."""
        return self._server_of[task.queue]

    def _held_on(self, server: Server) -> list[Task]:
        """The claimed jobs the worker holds of ``server``."""
        return [running.task for running in self._running.values() if self._route(running.task) is server]

    def _held_count(self, server: Server) -> int:
        """How many claimed jobs the worker holds of ``server``."""
        return len(self._running) if len(self.servers) == 1 else len(self._held_on(server))

    # -- the loop ----------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._take_over_claims()
            now = self._clock()
            self._let_go_when_busy(now)
            self._enforce_timeouts(now)
            if self._stopping:
                self._take_back_unstarted()
            for server in self._in_turn():
                if server.link.ready(now):
                    self._talk_to(server, now)
            if self._forced:
                return
            if self._stopping and self._finished_stopping(now):
                return
            if self._idle_now(now):
                self._idle.lend(self._limit.jobs_in_hand)
            self._wait(self._next_wakeup(now) - now)
            self._idle.revoke()

    def _in_turn(self) -> list[Server]:
        """The servers, each round starting one further along, so that each
        in turn has the first go at the free slots."""
        self._turn = (self._turn + 1) % len(self.servers)
        return self.servers[self._turn :] + self.servers[: self._turn]

    def _talk_to(self, server: Server, now: float) -> None:
        """One round of calls to ``server``; a database error is its link's
        to handle (the other servers carry on)."""
        try:
            if server.cancel_hints:
                self._check_cancel_hints(server)
            if self._stopping:
                server.write_outcomes()
                server.hand_back()
            else:
                if server.timers.tick_due(now):
                    server.tick()
                    server.timers.ticked(now)
                if server.timers.heartbeat_due(now):
                    self._stop_cancelled(server.renew_leases(self._held_on(server)))
                    server.timers.heartbeat_sent(now)
                self._flush_and_claim(server, now)
                self._claim_more(server)
        except DATABASE_ERRORS as error:
            server.link.failed(error)
        else:
            server.link.settled()

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

    def _handle(self, event: _Event) -> None:
        if isinstance(event, Outcome):
            key = job_key(event.task)
            if key not in self._running and self._idle.in_flight:
                self._take_over_claims()  # a listener's claim: handed over before its jobs ran
            running = self._running.pop(key, None)
            if running is not None:
                self._limit.ran(event.duration)
                self._add_outcome(event)
        elif isinstance(event, _Wake):
            if self._idle.in_flight:
                self._take_over_claims()  # a listener's claim came before this wake: its "drained" first
            for name in event.queues:
                self._server_of[name].turns.wake([name])
        elif isinstance(event, _CancelHint):
            event.server.cancel_hints.add(event.job_id)
        elif isinstance(event, _Handed):
            self._take_late_handoff(event.server, event.task)
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
        candidates = []
        for server in self.servers:
            if server.link.waiting(now):  # after a database error: only the next attempt
                candidates += [now + self.settings.poll_interval, server.link.backoff.next_attempt]
                continue
            candidates.append(server.timers.next_due(now, stopping=self._stopping))
            if server.pending and server.link.conn is not None:
                flush_now = self._flush_due(server, now)
                candidates.append(now if flush_now else server.pending_since + FLUSH_DELAY)
        if self._stopping:
            candidates.append(self._shutdown_deadline)
        if self._idle.in_flight:
            candidates.append(now + IN_FLIGHT_RECHECK)
        candidates += self._busy_with_handed.values()
        for running in self._running.values():
            if running.handler.timeout is not None:
                deadline = self._deadline(running)
                candidates.append(deadline if deadline is not None else now + UNSTARTED_RECHECK)
        return max(now, min(candidates))

    # -- claiming and running ----------------------------------------------

    def _room_to_claim(self, server: Server, now: float) -> int:
        """How many jobs to claim now (see ``claim_size``; the slots are the
        worker's, whichever server the jobs come from); the server's
        fallback poll marks each of its queues as possibly having work."""
        if server.timers.poll_due(now):
            server.turns.wake(server.queues)
        return self._room_within(self._limit.jobs_in_hand)

    def _room_within(self, jobs_in_hand: int) -> int:
        """``claim_size`` for holding at most ``jobs_in_hand`` jobs, with the
        jobs the worker holds now (running, waiting for a slot, or claimed
        by a listener on its loan)."""
        assert self._pool is not None
        held = len(self._running) + self._idle.in_flight
        return claim_size(jobs_in_hand, held, self._pool.unstarted())

    def _flush_and_claim(self, server: Server, now: float) -> None:
        """One round trip for both directions: write the server's pending
        outcomes and claim the next jobs of one of its queues, in one
        transaction (``Server.claim``). With no queue known to have work,
        the outcomes wait for more of the batch until they are due (see
        ``flush_due``); then they go with a claim from a queue whose last
        claim a limit or busy keys may have cut short (``PopTurns.refill``),
        or else alone."""
        room = self._room_to_claim(server, now)
        name = server.turns.next() if room > 0 else None
        if name is None:
            if not self._flush_due(server, now):
                return
            name = server.turns.refill(outcome.task.queue for outcome in server.pending) if room > 0 else None
            if name is None:
                server.write_outcomes()
                return
        asked = self._room_for(server, name, room)
        if asked < 1:  # a held-back queue whose jobs in hand suffice: the outcomes go when due
            if self._flush_due(server, now):
                server.write_outcomes()
            return
        self._took(server, name, asked, server.claim(name, asked, self.worker_id, with_outcomes=True))

    def _claim_more(self, server: Server) -> None:
        """Claim from the server's other queues that may have work while there is room."""
        room = self._room_to_claim(server, self._clock())
        looked_at: set[str] = set()
        while room > 0:
            name = server.turns.next()
            if name is None or name in looked_at:
                return
            looked_at.add(name)
            asked = self._room_for(server, name, room)
            if asked < 1:
                continue
            tasks = server.claim(name, asked, self.worker_id, with_outcomes=False)
            self._took(server, name, asked, tasks)
            room -= len(tasks)

    def _room_for(self, server: Server, name: str, room: int) -> int:
        """How many of the ``room`` jobs to claim from ``name``: all, unless
        its last claim was cut short by a limit or busy keys; then no more
        than its slots start soon (``ClaimLimit.jobs_in_hand_held_back``),
        so the slots of the limit go to workers that can start them."""
        if not server.turns.held_back(name):
            return room
        return min(room, self._room_within(self._limit.jobs_in_hand_held_back))

    def _took(self, server: Server, name: str, asked: int, tasks: list[Task]) -> None:
        self._claimed(server, name, asked, len(tasks))
        for task in tasks:
            self._hand_to_pool(task)

    def _claimed(self, server: Server, name: str, asked: int, taken: int) -> None:
        """A claim of ``asked`` jobs of ``name`` came back with ``taken``:
        short (wait for a wake-up, or refill with the outcomes of those
        taken: ``PopTurns``) or full."""
        drained = taken < asked
        if drained:
            server.turns.drained(name, took_some=taken > 0)
        else:
            server.turns.wake([name])
        server.waiting_for(name, drained)

    def _hand_to_pool(self, task: Task) -> None:
        run = self._run_of(task)
        if isinstance(run, Outcome):
            self._add_outcome(run)
            return
        self._running[job_key(task)] = run
        assert self._pool is not None
        self._pool.submit(task, run.handler)

    def _run_of(self, task: Task) -> _Running | Outcome:
        """How a claimed job runs: its handler, or the outcome of a task no
        handler serves. Reads only what never changes (any thread)."""
        try:
            handler = self.queues[task.queue].handler_for(task.name)
        except UnknownTaskError as error:
            return unknown_task_outcome(task, error)
        # An async handler cancels itself at its timeout; the deadline here is
        # the backstop. A synchronous one is abandoned at the deadline.
        grace = 1.0 if handler.timeout is not None and inspect.iscoroutinefunction(handler.func) else 0.0
        return _Running(task, handler, grace)

    # -- the idle worker's loan (_idle_claim.py) ----------------------------

    def _idle_now(self, now: float) -> bool:
        """Whether to lend the room to the listeners while waiting: the
        worker holds no job and serves, and every server is connected."""
        assert self._pool is not None
        return (
            self._lend_to_listeners
            and not self._running
            and not self._stopping
            and self._pool.unstarted() == 0
            and all(server.link.conn is not None and not server.link.waiting(now) for server in self.servers)
        )

    def _claim_while_idle(self, server: Server, conn: gateway.Connection, queue: str) -> bool:
        """(A listener's thread.) With the room an idle dispatcher lent,
        claim jobs of ``queue`` on the listener's session ``conn`` and hand
        them to the pool; whether there was a loan. The claim is handed
        over before the first job is submitted, so the dispatcher holds
        each job before it sees the job's outcome (``_claimed_with_loan``)."""
        asked = self._idle.take()
        if asked == 0:
            return False
        try:
            tasks = gateway.pop(conn, queue=queue, worker=self.worker_id, n=asked, lease=server.lease)
        except Exception as error:  # the dispatcher claims instead; a lost session is the listener's
            self._listener_claim_failed(error)
            self._idle.hand_over(_Claimed(server, queue, asked, [], [], failed=True))
            self._wake(())
            return True
        self._claimed_with_loan(server, queue, asked, tasks)
        return True

    def _lending(self) -> bool:
        """(Any thread.) Whether room is lent now: the listeners' hand-off
        offers are open while it is."""
        return self._idle.lent > 0

    def _take_handed(self, server: Server, conn: gateway.Connection, claim: str) -> bool:
        """(A listener's thread.) A job a push handed to the listener's
        offer, already claimed for this worker (schema 0.16.0): with the
        room an idle dispatcher lent, handed to the pool as a listener's
        claim; without (the dispatcher woke and took the loan back, or
        another claim used it), passed to the dispatcher, which runs it if
        it has room (``_take_late_handoff``). Once the dispatcher has
        stopped, handed back at once (``pgtq.release``) on the listener's
        session. A lease that its push's transaction held past half its
        length is renewed first (``Server.keeps_handed_lease``). Returns
        whether the offer may stay open: True when the job came with room
        lent, or came late with room for it and for one more beside the
        late ones not handled yet (a look from this thread: the dispatcher
        decides, and closes the offer when it hands the job back); False
        (the offer closes now) when that room is not there, or the job was
        handed back, or its lease could not be kept."""
        try:
            task = gateway.handed_task(claim)
        except (ValueError, KeyError, TypeError) as error:  # only one who guessed the channel
            logger.warning("ignored a hand-off notification that is not a claim (%s): %.200r", error, claim)
            return False
        if not server.keeps_handed_lease(conn, task):
            return False
        asked = self._idle.take()
        if asked == 0:
            if not self._stopping:
                with self._late_lock:
                    self._late_unhandled += 1
                    unhandled = self._late_unhandled
                self._events.put(_Handed(server, task))
                return self._room_within(self._limit.jobs_in_hand) > unhandled
            try:
                gateway.release_all(conn, [task])
            except DATABASE_ERRORS as error:
                logger.warning(
                    "could not hand back job %d, handed to this stopping worker (%s); "
                    "it runs again when its lease runs out",
                    task.id,
                    describe(error),
                )
            return False
        self._claimed_with_loan(server, task.queue, asked, [task], handed=True)
        return True

    def _take_late_handoff(self, server: Server, task: Task) -> None:
        """A job handed to a listener while no room was lent: run it when the
        worker has room below its limit; otherwise (or stopping) hand it
        back at once (``pgtq.release``), which announces it to the other
        waiting workers, close the listener's offer so the next push goes
        to one of them, and pop its queue again when there is room (the
        listener's own waiting mark does not count for that announcement)."""
        with self._late_lock:
            self._late_unhandled -= 1
        if not self._stopping and self._room_within(self._limit.jobs_in_hand) > 0:
            self._hand_to_pool(task)
            return
        server.close_offer()
        try:
            server.release([task])
        except DATABASE_ERRORS as error:
            logger.warning(
                "could not hand back job %d, handed to this worker with no room for it (%s); "
                "it runs again when its lease runs out",
                task.id,
                describe(error),
            )
        server.turns.wake([task.queue])

    def _claimed_with_loan(
        self, server: Server, queue: str, asked: int, tasks: list[Task], *, handed: bool = False
    ) -> None:
        """(A listener's thread.) Hand over the jobs claimed with a loan of
        ``asked`` (or the job a push ``handed``), then submit them to the
        pool. The dispatcher is woken only when it has more to do than hold
        the jobs: outcomes to write, more jobs to claim (a claim that used
        all the loan; never a handed job), a deadline to keep."""
        assert self._pool is not None
        runs = [self._run_of(task) for task in tasks]
        to_run = [run for run in runs if isinstance(run, _Running)]
        unknown = [run for run in runs if isinstance(run, Outcome)]
        self._idle.hand_over(_Claimed(server, queue, asked, to_run, unknown, handed=handed))
        for run in to_run:
            self._pool.submit(run.task, run.handler)
        full = not handed and len(tasks) == asked
        if unknown or full or any(run.handler.timeout is not None for run in to_run):
            self._wake(())

    def _listener_claim_failed(self, error: Exception) -> None:
        """A listener's claim failed: a lost session (the listener
        reconnects), or the database refused it (its role may not claim,
        say), and then no listener is lent to again."""
        if sqlstate_of(error) is None:
            logger.debug("a claim on the listener's session failed (%s)", describe(error))
            return
        self._lend_to_listeners = False
        logger.warning(
            "the listener's session cannot claim jobs (%s); the dispatcher claims them instead, "
            "a thread hop later on an idle worker's wake-up. Give the listen DSN's role the worker's rights",
            describe(error),
        )

    def _take_over_claims(self) -> None:
        """Hold what listeners claimed with the loan, as if claimed here."""
        for claimed in self._idle.take_over():
            for run in claimed.runs:
                self._running[job_key(run.task)] = run
            for outcome in claimed.unknown:
                self._add_outcome(outcome)
            if claimed.failed:
                claimed.server.turns.wake([claimed.queue])
            elif not claimed.handed:
                taken = len(claimed.runs) + len(claimed.unknown)
                self._claimed(claimed.server, claimed.queue, claimed.asked, taken)
            elif self._room_within(self._limit.jobs_in_hand) == 0:
                # A handed job leaves the queue's turn and waiting mark as they
                # were; one that leaves no room lets go of them once it is
                # still running when the offer closes (_let_go_when_busy).
                deadline = self._clock() + _listener.OFFER_CLOSE_DELAY
                self._busy_with_handed.setdefault(claimed.queue, deadline)

    def _let_go_when_busy(self, now: float) -> None:
        """A worker still busy with handed jobs OFFER_CLOSE_DELAY after they
        left it no room waits for none of their queues: it lets go of their
        waiting marks, so pushes stop announcing to it, and pops them again
        once it has room (as after a full claim). Room that came back sooner
        (short jobs) keeps the marks, so the next push is announced or
        handed at once."""
        if not self._busy_with_handed:
            return
        busy = self._room_within(self._limit.jobs_in_hand) == 0
        for queue, deadline in list(self._busy_with_handed.items()):
            if not busy:
                del self._busy_with_handed[queue]
            elif now >= deadline:
                del self._busy_with_handed[queue]
                self._claimed(self._server_of[queue], queue, 1, 1)

    def _deadline(self, running: _Running) -> float | None:
        """When a started job with a timeout must be stopped (None: no
        timeout, or not started yet)."""
        assert self._pool is not None
        if running.handler.timeout is None:
            return None
        started = self._pool.started_at(job_key(running.task))
        return timeout_deadline(started, running.handler.timeout, running.grace)

    def _enforce_timeouts(self, now: float) -> None:
        assert self._pool is not None
        for key, running in list(self._running.items()):
            deadline = self._deadline(running)
            if deadline is None or now < deadline:
                continue
            started = self._pool.started_at(key)
            del self._running[key]
            self._pool.abandon(running.task)
            assert running.handler.timeout is not None
            elapsed = now - (started if started is not None else now)
            self._limit.ran(elapsed)
            self._add_outcome(timeout_outcome(running.task, running.handler.timeout, elapsed))

    # -- cancelling running jobs ---------------------------------------------

    def _check_cancel_hints(self, server: Server) -> None:
        """Check the jobs named on ``pgtq_cancel`` that the worker holds of
        ``server`` with the database (anyone may NOTIFY), and stop those
        really asked to cancel."""
        ids, server.cancel_hints = server.cancel_hints, set()
        named = [task for task in self._held_on(server) if task.id in ids and not task.cancel_requested]
        if named:
            self._stop_cancelled(server.check_cancels(named))

    def _stop_cancelled(self, tasks: list[Task]) -> None:
        """Stop the jobs the database says were asked to cancel: the pool
        stops a running one (its outcome comes as usual); one that has not
        started never will, and its outcome is written now."""
        assert self._pool is not None
        for task in tasks:
            key = job_key(task)
            if key not in self._running or task.cancel_requested:
                continue  # finished meanwhile, or already told
            if self._pool.cancel(task):
                del self._running[key]
                self._add_outcome(cancelled_outcome(task, 0.0, "it had not started and never will"))
            logger.info("task %s id=%d: cancel requested, stopping it", task.name, task.id)

    def _take_back_unstarted(self) -> None:
        """Take back the jobs still queued in the pool, to be released on
        their servers."""
        assert self._pool is not None
        for task in self._pool.take_unstarted():
            self._running.pop(job_key(task), None)
            self._route(task).releasing.append(task)

    # -- outcomes ------------------------------------------------------------

    def _add_outcome(self, outcome: Outcome) -> None:
        self._route(outcome.task).add_outcome(outcome, self._clock())

    def _flush_due(self, server: Server, now: float) -> bool:
        return flush_due(
            now,
            pending=len(server.pending),
            pending_since=server.pending_since,
            stopping=self._stopping,
            running=self._held_count(server),
            jobs_in_hand=self._limit.jobs_in_hand,
        )

    # -- stopping ----------------------------------------------------------

    def _finished_stopping(self, now: float) -> bool:
        if (self._running or self._idle.in_flight) and now < self._shutdown_deadline:
            return False
        if self._running:
            late = [r.task for r in self._running.values()]
            logger.warning("grace period over: handing back %d unfinished job(s)", len(late))
            assert self._pool is not None
            for task in late:
                self._pool.abandon(task)
                self._route(task).releasing.append(task)
            self._running.clear()
            for server in self.servers:
                try:
                    server.hand_back()
                except DATABASE_ERRORS as error:
                    logger.warning(
                        "could not hand back the jobs (%s); their leases will expire", describe(error)
                    )
        # Write the pending outcomes first, while connected, up to the deadline.
        unwritten = any((s.pending or s.releasing) and s.link.conn is not None for s in self.servers)
        return not (unwritten and now < self._shutdown_deadline)

    def _shut_down(self) -> None:
        for server in self.servers:
            server.stop_listening()
        if self._pool is not None:
            self._pool.close()
        for server in self.servers:
            if server.link.conn is not None and not self._forced:
                try:
                    server.unregister()
                except DATABASE_ERRORS as error:
                    logger.warning("could not unregister cleanly: %s", describe(error))
            server.link.close()
        logger.info("worker %s stopped", self.worker_id)


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
    listen_dsn: str | Mapping[str, str] | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    queue_metrics: bool = True,
) -> int:
    """Run a worker for ``q`` (one queue or several) in this thread until
    SIGINT or SIGTERM; returns the exit code (0 after a graceful stop).

    ``concurrency`` jobs run at once in threads (``pool="thread"``, for
    I/O-bound handlers) or in child processes (``pool="process"``, for
    CPU-bound ones; needs ``target="MODULE:QUEUE_OBJECT"``). The queues may
    live on several servers. ``listen_dsn``: where the listeners run LISTEN
    (default: each server's DSN; see :class:`Worker`). See
    :class:`WorkerSettings` for the other settings. With ``metrics_port``
    it serves Prometheus metrics at ``http://metrics_host:metrics_port/metrics``
    (the extra ``pgtq[metrics]``; see :mod:`pgtq.metrics`); the queue-level
    figures there come from the first queue's server, and are left out
    with ``queue_metrics=False`` (each scrape reads them with one pass over
    the live jobs: in a fleet, one worker or the dashboard serves them).
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
    metrics = WorkerMetrics(served[0].database, queue_figures=queue_metrics)
    worker = Worker(q, settings, target=target, listen_dsn=listen_dsn, on_written=metrics.record)
    with metrics.serve(metrics_port, metrics_host), stop_on_signals(worker):
        return worker.run()
