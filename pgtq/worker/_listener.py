"""Worker runtime: waking idle workers, a thread that LISTENs for pushed jobs
and for cancel requests.

``pgtq.push`` (and ``tick``, ``release``, ``retry``) notify channel ``pgtq``
with the queue name as payload when a job becomes ready; ``pgtq.cancel`` of
a running job notifies channel ``pgtq_cancel`` with the job's id. A
notification is only a hint: the worker still polls, and after every
(re)connection the listener wakes it once, since notifications sent
meanwhile are lost; a cancel request is checked with the database before
the worker acts on it (anyone may NOTIFY), and the worker's next lease
renewal finds it anyway.

LISTEN needs a session of its own. Through PgBouncer in transaction mode
the LISTEN lands on whichever server connection runs it, and what that
connection later hears never reaches the listener. So on its first
connection the listener checks that notifications arrive: it sends a probe
notification from the database the pushes go to and waits for it. If the
probe does not come back, it says so in one warning naming the cure (a
direct or session-mode DSN for the listener: ``--listen-dsn``), closes its
session and stops; the worker's polling finds the jobs.

Since schema 0.12.0 a push notifies only when a worker may be waiting for
its queue, so the listener marks the queues its worker waits for, on its
session (``pgtq.mark_waiting``): all of them when it connects, and each
one again whenever the dispatcher says it waits for it (``wait_for``: a
pop came back short). After marking a queue it wakes the worker for it,
which pops once more: that pop sees every job pushed before the mark. A
push that skipped its notification just before the mark may still be in
flight; until the mark is settled (``pgtq.waiting_settled``, tried again
after 1 ms, doubling up to 50 ms) the worker is woken again at each
settle, so such a job waits at most that long after its commit. A queue the
dispatcher is busy with (its pop came back full, or a job a push handed
it still runs OFFER_CLOSE_DELAY after it left no room) is cleared
(``pgtq.clear_waiting``), so that its pushes stop notifying. The mark
lives and dies with the session: a lost connection clears them all, and
the next one marks them again.

A push heard while the worker holds no job is claimed by the listener
itself, on its session, with the room the idle dispatcher lent it
(``claim``; see ``_idle_claim.py``): the job starts a thread hop sooner.
The listener reads notifications the moment its socket is readable, with
libpq alone (``gateway.Inbox``), before anything else it has to do.

Since schema 0.16.0 the listener's session is also a hand-off offer
(``pgtq.offer_handoffs``, ``handoff``): while the idle worker lends room
the offer is open, and a push of a served queue hands its job straight to
it, claimed for this worker; the claim arrives on the offer's own channel
at the push's commit, and the listener passes it on (``Handoff.take``)
with no claim of its own. Since schema 0.31.0 the end of a job with a lock
key hands the key's next job to an open offer the same way. It closes the
offer once the room has been taken or taken back for OFFER_CLOSE_DELAY
(5 ms; lent again by then, the offer stays open), at once when a job
handed late (the room taken back) leaves the worker no room for another,
or the worker had to hand one back for want of room (``close_offer``),
and when it stops it waits for the pushes that are still handing it a
job, so the worker hands those back instead of leaving them to their
leases.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta

from pgtq._db import gateway
from pgtq._db.statements import CANCEL_CHANNEL
from pgtq.worker._link import DATABASE_ERRORS, describe

logger = logging.getLogger("pgtq.worker")

ANY_QUEUE = "*"

# How long the probe notification may take to come back: milliseconds when
# notifications work, forever when they cannot; the margin is for a busy machine.
PROBE_TIMEOUT = 10.0

# A mark not settled yet (a push that skipped its notification is still in
# flight) is settled again after this long, doubling up to the cap.
SETTLE_FIRST_RETRY = 0.001
SETTLE_MAX_RETRY = 0.05

# How long the listener waits at most with nothing to do.
IDLE_WAIT = 0.5

# How long the listener keeps its hand-off offer open after the worker
# stopped lending its room (``Listener._update_offer``). An idle worker's
# short job ends well within it, and the worker lends again: the offer
# stays open, two calls fewer per job, and no close competes with the
# start of the job just handed. A push that hands a job meanwhile is a
# late hand-off: it runs if the worker has room, and the offer keeps its
# delay while room for another is left; otherwise the offer closes at once
# (and the job is handed back when it found no room: ``close_offer``).
OFFER_CLOSE_DELAY = 0.005


@dataclass(frozen=True)
class Handoff:
    """How a listener offers its worker's idle room to the pushes (schema
    0.16.0): the worker's name and lease (what a handed job is claimed
    with); ``wanted()``, from the listener's thread: whether room is lent
    now, so the offer should be open; ``take(conn, claim)``: a job a push
    handed over, as the claim it notified (run it, or hand it back), and
    whether the offer may stay open (False: close it now). A job it took
    without room lent, and later hands back for want of room, closes the
    offer through ``Listener.close_offer``."""

    worker: str
    lease: timedelta
    wanted: Callable[[], bool]
    take: Callable[[gateway.Connection, str], bool]


def probe_payload() -> str:
    """A probe's payload: it starts with a control character, which no
    queue name may hold, so no listener mistakes it for a queue."""
    return f"\x01pgtq-probe {uuid.uuid4().hex}"


class Listener(threading.Thread):
    """Calls ``wake(queue)`` for each notification of a served queue, and
    ``cancel(job_id)`` for each cancel request of a running job.

    It listens at ``dsn``; its probe is sent at ``notify_dsn`` (where jobs
    are pushed; default ``dsn``). ``name``, when given, names the server in
    its log lines (a worker with several servers has a listener for each).
    ``wait_for`` (any thread) says which queues the worker waits for: the
    listener marks them on its session, and wakes the worker for each one
    it has just marked. ``claim(conn, queue)``, when given, is offered each
    notification of a served queue first, with the listener's session: it
    returns whether it claimed the queue's jobs itself (an idle worker's
    loan, ``_idle_claim.py``); the worker is woken only when it did not.
    ``handoff``, when given, makes the session a hand-off offer (``Handoff``);
    ``poke()`` (any thread) makes the listener look at ``Handoff.wanted``;
    ``close_offer()`` (any thread) closes the offer at once unless it is wanted.
    """

    def __init__(
        self,
        dsn: str,
        queues: Collection[str],
        wake: Callable[[str], None],
        *,
        cancel: Callable[[int], None] | None = None,
        claim: Callable[[gateway.Connection, str], bool] | None = None,
        handoff: Handoff | None = None,
        notify_dsn: str | None = None,
        probe_timeout: float = PROBE_TIMEOUT,
        name: str = "",
    ) -> None:
        super().__init__(name=f"pgtq-listener {name}".strip(), daemon=True)
        self._who = f"listener of {name}" if name else "listener"
        self._dsn = dsn
        self._notify_dsn = notify_dsn or dsn
        self._queues = frozenset(queues)
        self._wake = wake
        self._cancel = cancel
        self._claim = claim
        self._handoff = handoff
        self._probe_timeout = probe_timeout
        self._stopping = threading.Event()
        self._probed = False
        # What the dispatcher wants marked (under _lock: any thread writes it).
        self._lock = threading.Lock()
        self._waiting = set(self._queues)
        # What the session has marked, and which of those are not settled
        # yet (the listener's thread alone reads and writes these).
        self._marked: set[str] = set()
        self._unsettled: set[str] = set()
        self._settle_retry = SETTLE_FIRST_RETRY
        self._settle_at = 0.0
        # The session's hand-off offer: its channel (None: no offer) and
        # whether it is open (the listener's thread alone).
        self._channel: str | None = None
        self._offer_open = False
        self._close_at: float | None = None  # when an unwanted open offer closes
        self._close_asked = threading.Event()  # close_offer(): close it now
        # Rung to end a wait at once: a change of what to mark, or a stop.
        self._bell, self._bell_rope = socket.socketpair()
        for end in (self._bell, self._bell_rope):
            end.setblocking(False)

    def stop(self) -> None:
        self._stopping.set()
        self._ring()

    @property
    def settled(self) -> bool:
        """Whether every queue the session marked is settled (no push that
        skipped its notification can still be in flight)."""
        return bool(self._marked) and not self._unsettled

    def wait_for(self, queue: str, waiting: bool) -> None:
        """Say whether the worker waits for jobs of ``queue`` (its last pop
        of it came back short) or is busy with it (it came back full). Safe
        from any thread; the listener's thread acts on it at once."""
        with self._lock:
            if (queue in self._waiting) == waiting:
                return
            if waiting:
                self._waiting.add(queue)
            else:
                self._waiting.discard(queue)
        self._ring()

    def poke(self) -> None:
        """Make the listener look again at whether its offer should be open
        (any thread)."""
        self._ring()

    def close_offer(self) -> None:
        """Close the offer at once unless room is lent again (any thread):
        the worker handed back a job a push handed it, for want of room, so
        the next push should go to a worker that has some."""
        self._close_asked.set()
        self._ring()

    def _ring(self) -> None:
        with contextlib.suppress(OSError):  # full (it rings already) or closed (stopped)
            self._bell_rope.send(b"\0")

    def run(self) -> None:
        try:
            self._serve()
        finally:
            self._bell.close()
            self._bell_rope.close()

    def _serve(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                with gateway.connect(self._dsn) as conn:
                    gateway.listen(conn)
                    inbox = gateway.Inbox(conn)
                    if not self._probed and not self._probe(conn, inbox):
                        return
                    delay = 0.5
                    self._new_session(conn)
                    self._wake(ANY_QUEUE)
                    self._listen(conn, inbox)
            except (*DATABASE_ERRORS, OSError) as error:  # OSError: its socket, in select()
                logger.warning(
                    "%s lost the database (%s); reconnecting in %.1f s", self._who, describe(error), delay
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def _new_session(self, conn: gateway.Connection) -> None:
        """Mark every queue on a new session (the marks of a lost one went
        with it); the worker then pops each queue once more."""
        self._marked.clear()
        self._unsettled.clear()
        with self._lock:
            self._waiting = set(self._queues)
        self._update_marks(conn)
        self._offer_open = False
        self._close_at = None
        if self._handoff is not None:
            self._channel = gateway.offer_handoffs(
                conn, self._handoff.worker, sorted(self._queues), self._handoff.lease
            )

    def _probe(self, conn: gateway.Connection, inbox: gateway.Inbox) -> bool:
        """Send a probe notification from another session and wait for it
        on ``conn`` (passing on anything else heard meanwhile); whether it
        came. Logs one line either way."""
        payload = probe_payload()
        with gateway.connect(self._notify_dsn) as sender:
            gateway.notify(sender, payload)
        self._probed = True
        deadline = time.monotonic() + self._probe_timeout
        while True:
            for channel, heard in inbox.take():
                if heard == payload and channel != CANCEL_CHANNEL:
                    logger.info("%s: notifications arrive; an idle worker wakes at once on a push", self._who)
                    return True
                self._heard(conn, channel, heard)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            select.select([inbox], [], [], remaining)
        logger.warning(
            "%s: notifications cannot reach this worker (its probe never came back within %.0f s): "
            "its listen DSN goes through a pooler in transaction mode, or through something else "
            "that does not keep a session; it stops listening and the worker finds jobs by polling. "
            "Give it a direct or session-mode DSN (--listen-dsn) for instant wake-up",
            self._who,
            self._probe_timeout,
        )
        return False

    def _listen(self, conn: gateway.Connection, inbox: gateway.Inbox) -> None:
        """Until stopped: mark and clear the queues as the dispatcher says,
        pass on what is heard (at once when it arrives, before anything
        else; and what came during a call), and wait for the next
        notification, the bell or the next settle."""
        while not self._stopping.is_set():
            for queue in self._update_marks(conn):
                self._wake(queue)
            self._update_offer(conn)
            for channel, payload in inbox.take():
                self._heard(conn, channel, payload)
            readable, _, _ = select.select([inbox, self._bell], [], [], self._wait_time())
            if inbox in readable:
                for channel, payload in inbox.take():
                    self._heard(conn, channel, payload)
            with contextlib.suppress(OSError):
                while self._bell.recv(64):
                    pass
        self._withdraw_offer(conn, inbox)

    def _update_offer(self, conn: gateway.Connection) -> None:
        """Open the hand-off offer while the worker lends room; close it
        OFFER_CLOSE_DELAY after the worker stopped lending, unless it
        lends again by then (or at once when asked: ``close_offer``)."""
        if self._channel is None or self._handoff is None:
            return
        if self._close_asked.is_set():
            self._close_asked.clear()
            self._close_at = time.monotonic()
        if self._handoff.wanted():
            self._close_at = None
            if not self._offer_open:
                self._offer_open = gateway.open_handoff(conn)
            return
        if not self._offer_open:
            self._close_at = None
            return
        now = time.monotonic()
        if self._close_at is None:
            self._close_at = now + OFFER_CLOSE_DELAY
        if now >= self._close_at:
            gateway.close_handoff(conn, wait=False)
            self._offer_open = False
            self._close_at = None

    def _withdraw_offer(self, conn: gateway.Connection, inbox: gateway.Inbox) -> None:
        """(Stopping.) Close the offer, wait for the pushes still handing
        it a job, and pass on every job handed (the worker hands it back)."""
        if self._channel is None:
            return
        try:
            gateway.close_handoff(conn, wait=True)
            self._offer_open = False
            for channel, payload in inbox.take():
                self._heard(conn, channel, payload)
        except (*DATABASE_ERRORS, OSError) as error:
            logger.warning(
                "%s could not close its hand-off offer (%s); a job handed to it just now "
                "runs when its lease runs out",
                self._who,
                describe(error),
            )

    def _wait_time(self) -> float:
        """Until the next settle or offer close is due, at most IDLE_WAIT."""
        due = [at for at in (self._settle_at if self._unsettled else None, self._close_at) if at is not None]
        if not due:
            return IDLE_WAIT
        return min(IDLE_WAIT, max(0.0, min(due) - time.monotonic()))

    def _update_marks(self, conn: gateway.Connection) -> list[str]:
        """Bring the session's marks to what the dispatcher wants, and try
        to settle those not settled yet when it is time; returns the queues
        the worker should pop once more (just marked, or just settled)."""
        with self._lock:
            waiting = set(self._waiting)
        cleared = sorted(self._marked - waiting)
        if cleared:
            gateway.clear_waiting(conn, cleared)
            self._marked.difference_update(cleared)
            self._unsettled.difference_update(cleared)
        marking = sorted(waiting - self._marked)
        if marking:
            settled = gateway.mark_waiting(conn, marking)
            self._marked.update(marking)
            if not settled:
                self._unsettled.update(marking)
                self._settle_later(first=True)
            return marking
        if self._unsettled and time.monotonic() >= self._settle_at:
            unsettled = sorted(self._unsettled)
            if gateway.waiting_settled(conn, unsettled):
                self._unsettled.clear()
                return unsettled
            self._settle_later(first=False)
        return []

    def _settle_later(self, *, first: bool) -> None:
        self._settle_retry = SETTLE_FIRST_RETRY if first else min(self._settle_retry * 2, SETTLE_MAX_RETRY)
        self._settle_at = time.monotonic() + self._settle_retry

    def _heard(self, conn: gateway.Connection, channel: str, payload: str) -> None:
        """Pass on a notification: a job handed to the offer, a cancel
        request, or a push to a served queue, which ``claim`` may take on
        ``conn``."""
        if channel == self._channel and self._handoff is not None:
            if not self._handoff.take(conn, payload):
                self._close_at = time.monotonic()  # no room for more: close without waiting
        elif channel != CANCEL_CHANNEL:
            if payload in self._queues and (self._claim is None or not self._claim(conn, payload)):
                self._wake(payload)
        elif self._cancel is not None and payload.isascii() and payload.isdigit():
            self._cancel(int(payload))
