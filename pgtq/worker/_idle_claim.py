"""Worker runtime: the claim an idle worker lends its listeners.

Woken the plain way, an idle worker starts a pushed job after three
threads: the listener hears the notification and wakes the dispatcher,
which claims the job and hands it to a pool thread. Each hand-off costs
about 0.1 ms (a thread to wake, the GIL to pass), and the claim waits for
the first. So while it waits with nothing in hand, the dispatcher lends
its room to the listeners instead: the first listener to hear a push for
one of its queues takes the loan, claims up to that many jobs of the queue
on its own session (``pgtq.pop``, with the worker's name and lease), hands
the claim over here and the jobs to the pool. The dispatcher is not woken
for it: it would take the GIL from the pool thread that starts the job.
It takes the claim over at its next wake-up (the job's outcome, a timer),
and always before it looks at an outcome.

Since schema 0.16.0 a listener also offers the loan to the pushes
themselves (``pgtq.offer_handoffs``): while room is lent, its offer is
open, and a push hands a job straight to it, claimed for this worker; the
listener hears the claim at commit and hands it over here as if it had
claimed it (no claim of its own). ``watch`` tells the listeners when the
loan comes and goes, so they open and close their offers.

The loan keeps the worker's limit: the dispatcher lends only while it
holds nothing, takes the loan back (``revoke``) as soon as it wakes, and
counts what a taken loan allows as held (``in_flight``) until it has taken
the claim over, so the two never claim more than the room between them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Claim = TypeVar("Claim")


class IdleClaim(Generic[Claim]):
    """The room an idle dispatcher lends to its listeners, and the claims
    made with it, until the dispatcher takes them over (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lent = 0
        self._in_flight = 0
        self._claims: list[Claim] = []
        self._watchers: list[Callable[[], None]] = []

    def watch(self, changed: Callable[[], None]) -> None:
        """Call ``changed()`` (from any thread, so it must not block) each
        time room comes to be lent or stops being lent."""
        self._watchers.append(changed)

    def _set_lent(self, room: int) -> None:
        """(Under the lock.)"""
        was_lent, self._lent = self._lent > 0, room
        if was_lent != (room > 0):
            for changed in self._watchers:
                changed()

    def lend(self, room: int) -> None:
        """Lend ``room`` jobs (the dispatcher, about to wait with nothing in
        hand); nothing while the claim of an earlier loan is not taken over."""
        with self._lock:
            if self._in_flight == 0:
                self._set_lent(room)

    def revoke(self) -> None:
        """Take the loan back if no listener took it (the dispatcher, awake)."""
        with self._lock:
            self._set_lent(0)

    def take(self) -> int:
        """The room lent, for a listener's claim (0: nothing is lent); it
        counts as in flight until the dispatcher takes the claim over."""
        with self._lock:
            room = self._lent
            self._set_lent(0)
            if room:
                self._in_flight = room
            return room

    def hand_over(self, claim: Claim) -> None:
        """The claim made with the loan (the listener, before it hands the
        jobs to the pool)."""
        with self._lock:
            self._claims.append(claim)

    def take_over(self) -> list[Claim]:
        """The claims handed over since the last call (the dispatcher); the
        loan is no longer in flight once its claim is taken over."""
        with self._lock:
            claims, self._claims = self._claims, []
            if claims:
                self._in_flight = 0
            return claims

    @property
    def lent(self) -> int:
        """How many jobs are lent now (0: none; the dispatcher is awake)."""
        return self._lent

    @property
    def in_flight(self) -> int:
        """How many jobs a taken loan may bring that the dispatcher does not
        hold yet."""
        return self._in_flight
