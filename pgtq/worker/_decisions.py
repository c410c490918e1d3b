"""Worker runtime: the dispatcher's timing decisions, fed the time by the caller.

As the SQL takes ``as_of``, nothing here reads a clock, sleeps or does I/O:
the dispatcher passes its clock's reading (``now``, in seconds) and the
unit tests (tests/py/unit/) pass literal times. What is decided here: when
to claim and how many, from which queue, when to write outcomes, when to
tick, renew leases, poll and reconnect, and when a job's time is up.
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

# The first wait before reconnecting; each failed attempt doubles it, up to
# the worker's reconnect_max_delay.
FIRST_RECONNECT_DELAY = 0.5

# A job with a timeout that has not started yet (it waits for a slot) is
# looked at again this soon, to start its clock.
UNSTARTED_RECHECK = 0.05


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
    """When the dispatcher next ticks, renews leases, polls and reconnects.

    Each ``*_due(now)`` says whether the time has come; the dispatcher
    reports what it did (``ticked(now)``, ...) so a call that failed on a
    lost connection is tried again after reconnecting.
    """

    tick_interval: float
    heartbeat_interval: float
    poll_interval: float
    reconnect_max_delay: float
    next_tick: float = 0.0
    next_heartbeat: float = 0.0
    next_poll: float = 0.0
    next_reconnect: float = 0.0
    reconnect_delay: float = FIRST_RECONNECT_DELAY

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

    def connection_lost(self, now: float) -> None:
        """Plan the first reconnection attempt."""
        self.next_reconnect = now + self.reconnect_delay

    def reconnect_due(self, now: float) -> bool:
        return now >= self.next_reconnect

    def reconnect_failed(self, now: float) -> float:
        """Double the wait (up to the cap) and plan the next attempt;
        returns the wait."""
        self.reconnect_delay = min(self.reconnect_delay * 2, self.reconnect_max_delay)
        self.next_reconnect = now + self.reconnect_delay
        return self.reconnect_delay

    def reconnected(self) -> None:
        self.reconnect_delay = FIRST_RECONNECT_DELAY

    def next_due(self, now: float, *, connected: bool, stopping: bool) -> float:
        """The earliest of the fallback poll and the timers that apply:
        the reconnection while disconnected; tick, renewal and poll while
        connected and not stopping."""
        candidates = [now + self.poll_interval]
        if not connected:
            candidates.append(self.next_reconnect)
        elif not stopping:
            candidates += [self.next_tick, self.next_heartbeat, self.next_poll]
        return min(candidates)


class PopTurns:
    """Which served queue to claim from next: the queues that may have
    ready jobs, each in turn (a queue whose pop came back short waits for a
    notification, a tick that moved its jobs, or the fallback poll)."""

    def __init__(self, names: Iterable[str]) -> None:
        self._order = deque(names)
        self._may_have_work = set(self._order)

    def wake(self, names: Iterable[str]) -> None:
        """These queues may have ready jobs."""
        self._may_have_work.update(names)

    def drained(self, name: str) -> None:
        """A pop of ``name`` came back short."""
        self._may_have_work.discard(name)

    def next(self) -> str | None:
        """The next queue to claim from, or None when none may have work."""
        for _ in range(len(self._order)):
            name = self._order[0]
            self._order.rotate(-1)
            if name in self._may_have_work:
                return name
        return None
