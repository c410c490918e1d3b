"""Worker runtime: the dispatcher's timing decisions, fed the time by the caller.

As the SQL takes ``as_of``, nothing here reads a clock, sleeps or does I/O:
the dispatcher passes its clock's reading (``now``, in seconds) and the
unit tests (tests/py/unit/) pass literal times. What is decided here: when
to claim and how many, from which queue, when to write outcomes, when to
tick, renew leases, poll and reconnect, when a job's time is up, and how
to carry on after a database error (a new connection or the same one, and
how long to wait first).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# The dispatcher's clock: seconds from any fixed point (time.monotonic).
Clock = Callable[[], float]

# While other jobs of the batch are still running, outcomes wait up to this
# long (or until half a batch is in) to be written together in one round
# trip; the last running job's outcome is written at once.
FLUSH_DELAY = 0.005

# The first wait after a database error (before reconnecting, or before
# using the same connection again); each further error in a row doubles it,
# up to the worker's reconnect_max_delay.
FIRST_RECONNECT_DELAY = 0.5

# A job with a timeout that has not started yet (it waits for a slot) is
# looked at again this soon, to start its clock.
UNSTARTED_RECHECK = 0.05


# With no batch size set, a worker holds at most this many claimed jobs
# (running, or waiting for a slot) when its handlers are quick...
MAX_PREFETCH = 100

# ...and no more than its slots get through in about this long, judged by
# how long its handlers ran lately: a claimed job waits briefly for a slot.
PREFETCH_SECONDS = 0.25

# Of a queue whose last claim a max_running limit (or busy lock keys) cut
# short, no more than its slots get through in this long: a job claimed
# ahead holds a slot of the limit while it waits, which another worker
# could have started at once. Quick handlers still claim up to
# MAX_PREFETCH; slower ones claim only for their free slots.
HELD_BACK_PREFETCH_SECONDS = 0.01

# How fast the typical run time follows longer runs (quickly: half the way
# at once) and shorter ones (slowly). Not all the way at once: a quick
# handler's thread that waited for the GIL (up to a 5 ms switch interval)
# must not stop the prefetch.
RUN_TIME_RISE = 0.5
RUN_TIME_DECAY = 0.1


class ClaimLimit:
    """How many claimed jobs a worker holds at most, running or waiting for
    a slot (each one leased and renewed like a running one).

    With a fixed ``batch_size``: the larger of it and ``concurrency``.
    Without one the limit adapts: it starts at ``concurrency`` and, once
    handlers have run, holds what the slots get through in PREFETCH_SECONDS
    at the typical run time, between ``concurrency`` and MAX_PREFETCH. A
    deep queue of quick jobs is then claimed, and its outcomes written, up
    to MAX_PREFETCH at a time; slow handlers keep it at ``concurrency``. The
    typical run time rises fast with longer runs and falls slowly, so one
    slow job (a quarter of a second per slot or longer) stops the prefetch
    at once.
    """

    def __init__(self, concurrency: int, batch_size: int | None) -> None:
        self.concurrency = concurrency
        self.fixed = None if batch_size is None else max(concurrency, batch_size)
        self.typical_run: float | None = None

    def ran(self, duration: float) -> None:
        """A handler ran for ``duration`` seconds."""
        if self.fixed is not None:
            return
        if self.typical_run is None:
            self.typical_run = duration
        else:
            weight = RUN_TIME_RISE if duration > self.typical_run else RUN_TIME_DECAY
            self.typical_run += (duration - self.typical_run) * weight

    @property
    def jobs_in_hand(self) -> int:
        """How many claimed jobs to hold at most now."""
        return self._within(PREFETCH_SECONDS)

    @property
    def jobs_in_hand_held_back(self) -> int:
        """How many to hold at most of a queue whose claims a limit cuts
        short (HELD_BACK_PREFETCH_SECONDS of work; a fixed batch_size is
        the user's choice and stays)."""
        return self._within(HELD_BACK_PREFETCH_SECONDS)

    def _within(self, seconds: float) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.typical_run is None:
            return self.concurrency
        if self.typical_run <= 0:
            return max(self.concurrency, MAX_PREFETCH)
        fits = int(self.concurrency * seconds / self.typical_run)
        return max(self.concurrency, min(MAX_PREFETCH, fits))


def claim_size(jobs_in_hand: int, held: int, unstarted: int) -> int:
    """How many jobs to claim now, holding ``held`` of at most
    ``jobs_in_hand``, ``unstarted`` of them waiting for a slot: none while
    the pool has enough queued; all the room at once when a slot may be free
    (no job waits for one), or when half the jobs in hand are done
    (prefetch, with a batch size above the concurrency)."""
    room = jobs_in_hand - held
    if room > 0 and (unstarted == 0 or room >= jobs_in_hand // 2):
        return room
    return 0


def flush_due(
    now: float, *, pending: int, pending_since: float, stopping: bool, running: int, jobs_in_hand: int
) -> bool:
    """Whether to write the ``pending`` outcomes now rather than wait for
    more of the batch: at once when stopping, when no job runs any more, or
    when half a batch is in; otherwise once the first has waited FLUSH_DELAY."""
    if not pending:
        return False
    if stopping or not running:
        return True
    if pending >= max(1, jobs_in_hand // 2):
        return True
    return now - pending_since >= FLUSH_DELAY


def timeout_deadline(started_at: float | None, timeout: float | None, grace: float) -> float | None:
    """When a job must be stopped: ``timeout`` (plus ``grace``) after it
    started; None without a timeout, or before it started."""
    if timeout is None or started_at is None:
        return None
    return started_at + timeout + grace


@dataclass
class Timers:
    """When the dispatcher next ticks, renews leases and polls.

    Each ``*_due(now)`` says whether the time has come; the dispatcher
    reports what it did (``ticked(now)``, ...) so a call that failed on a
    database error is tried again once the database is back.
    """

    tick_interval: float
    heartbeat_interval: float
    poll_interval: float
    next_tick: float = 0.0
    next_heartbeat: float = 0.0
    next_poll: float = 0.0

    def tick_due(self, now: float) -> bool:
        """Whether ``pgtq.tick`` is due (at once after the start)."""
        return now >= self.next_tick

    def ticked(self, now: float) -> None:
        self.next_tick = now + self.tick_interval

    def heartbeat_due(self, now: float) -> bool:
        """Whether the leases (and the registration) are due for renewal."""
        return now >= self.next_heartbeat

    def heartbeat_sent(self, now: float) -> None:
        self.next_heartbeat = now + self.heartbeat_interval

    def poll_due(self, now: float) -> bool:
        """Whether the fallback poll of every queue is due; if it is, the
        next one is planned from ``now``."""
        if now < self.next_poll:
            return False
        self.next_poll = now + self.poll_interval
        return True

    def next_due(self, now: float, *, stopping: bool) -> float:
        """The earliest of the fallback poll and, unless stopping, the
        tick, the renewal and the poll."""
        candidates = [now + self.poll_interval]
        if not stopping:
            candidates += [self.next_tick, self.next_heartbeat, self.next_poll]
        return min(candidates)


@dataclass
class Backoff:
    """When the dispatcher may talk to the database again after errors.

    While all is well it may at once. After an error it waits
    FIRST_RECONNECT_DELAY, doubled with each further error in a row up to
    ``max_delay``; a success resets the wait. The same wait serves a
    reconnection and a retry on the same connection, so a database that
    keeps failing costs the worker one attempt per wait, never a busy loop.
    """

    max_delay: float
    delay: float = FIRST_RECONNECT_DELAY
    next_attempt: float = 0.0

    def due(self, now: float) -> bool:
        """Whether the database may be tried now."""
        return now >= self.next_attempt

    def failed(self, now: float) -> float:
        """An attempt failed at ``now``: plan the next one; returns the wait."""
        wait = min(self.delay, self.max_delay)
        self.next_attempt = now + wait
        self.delay = min(wait * 2, self.max_delay)
        return wait

    def succeeded(self) -> None:
        """An attempt worked: the next error waits the first delay again."""
        self.delay = FIRST_RECONNECT_DELAY


# Errors after which the connection is replaced rather than used again,
# by SQLSTATE class (two characters) or code. Every other error leaves a
# connection that is still idle in place: the statement failed and its
# transaction rolled back (serialization failure 40001, deadlock 40P01,
# statement timeout 57014, a lock not available, a trigger's error, ...).
RECONNECT_CLASSES = frozenset(
    {
        "08",  # connection exception
        "28",  # invalid authorization (a password changed): try a fresh login
        "3D",  # the database does not exist (dropped and recreated?)
    }
)
RECONNECT_STATES = frozenset(
    {
        "57P01",  # admin_shutdown: pg_terminate_backend, or a server shutting down
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: starting up
        "57P04",  # database_dropped
        "53300",  # too_many_connections
        "25006",  # read_only_sql_transaction: after a failover the server is a standby now;
        # a new connection (target_session_attrs=read-write) finds the new primary
        "25P02",  # in_failed_sql_transaction
        "25P03",  # idle_in_transaction_session_timeout
        "42P05",  # duplicate_prepared_statement: a pooler swapped the server connection
        "26000",  # invalid_sql_statement_name: the same
        "0A000",  # feature_not_supported, e.g. "cached plan must not change result type"
    }
)


def reconnect_needed(sqlstate: str | None, *, connection_usable: bool) -> bool:
    """Whether a database error calls for a new connection: when the old
    one is closed, broken or left inside a transaction, when the error came
    without a SQLSTATE (the client lost the server), or for the SQLSTATEs
    above. Otherwise the worker waits and uses the same connection again."""
    if not connection_usable or sqlstate is None:
        return True
    return sqlstate[:2] in RECONNECT_CLASSES or sqlstate in RECONNECT_STATES


class PopTurns:
    """Which served queue to claim from next: the queues that may have
    ready jobs, each in turn (a queue whose pop came back short waits for a
    notification, a tick that moved its jobs, or the fallback poll).

    A pop that came back short but not empty may have been held back rather
    than have emptied the queue: by a ``max_running`` limit, or by lock keys
    whose jobs run. The outcomes of the jobs it claimed free those slots and
    keys, so the write of their outcomes claims from that queue again in the
    same round trip and transaction (``refill``) instead of waiting for the
    announcement of that very write: a limited queue then runs at its limit
    in one round trip per batch, not three hops. An empty refill drops the
    queue until it is woken."""

    def __init__(self, names: Iterable[str]) -> None:
        self._order = deque(names)
        self._may_have_work = set(self._order)
        self._held_back: set[str] = set()

    def wake(self, names: Iterable[str]) -> None:
        """These queues may have ready jobs."""
        self._may_have_work.update(names)

    def drained(self, name: str, *, took_some: bool = False) -> None:
        """A pop of ``name`` came back short; ``took_some``: it claimed some
        jobs (a limit or busy keys may hold back the rest)."""
        self._may_have_work.discard(name)
        if took_some:
            self._held_back.add(name)
        else:
            self._held_back.discard(name)

    def held_back(self, name: str) -> bool:
        """Whether the last pop of ``name`` that came back short claimed
        some jobs (a limit or busy keys may have cut it), with no empty pop
        since."""
        return name in self._held_back

    def next(self) -> str | None:
        """The next queue to claim from, or None when none may have work."""
        for _ in range(len(self._order)):
            name = self._order[0]
            self._order.rotate(-1)
            if name in self._may_have_work:
                return name
        return None

    def refill(self, ending: Iterable[str]) -> str | None:
        """A queue to claim from with the outcomes about to be written, of
        jobs of the queues ``ending``: one of them whose last pop came back
        short but not empty (the ends may free what held it back), or None."""
        for name in ending:
            if name in self._held_back:
                return name
        return None
