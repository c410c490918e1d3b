"""Client API: waiting for jobs to finish, by notification (``PgTq.wait``).

The protocol is ``pgtq.watch``'s (sql/pgtq.sql), which loses no wake-up:
LISTEN on ``pgtq_finished``, then ``watch`` each job in a transaction of
its own (autocommit; pipelined), then wait. ``watch`` returns a job that
has already finished with its outcome; for the others a notification with
the job's id comes when they finish, and ``outcomes`` reads them then.
Giving up at the timeout, the waiter takes its registrations back
(``unwatch``).

The protocol is written once, without I/O: ``waiting()`` is a generator
that yields the steps to take (``Listen``, ``Watch``, ``Await``, ``Read``,
``Unwatch``) and is sent each step's reply. ``wait_for`` drives it on a
psycopg connection through the gateway, ``wait_for_async`` on an
``AsyncConnection`` through the async gateway: one ``_perform`` maps each
step to the function of the same name in either, and both run the same
``pgtq._db.queries`` values (no second copy of the protocol or the SQL).

A safety poll reads the outcomes of the jobs still awaited every
``SAFETY_POLL_INTERVAL`` seconds (30). No notification is lost by the
protocol; the poll is there because a waiting session can die without
telling: a TCP connection cut by a firewall or a failover may leave
``notifies()`` blocked on a socket nobody will ever close, and through a
transaction-mode PgBouncer a LISTEN does not stay on the waiter's
session. The poll's query fails on a dead connection (the waiter learns of
it within 30 s instead of never) and finds an outcome the session could
not hear. It costs one ``outcomes`` call per waiter every 30 s; a wait that
ends sooner never polls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pgtq._db import async_gateway, gateway
from pgtq._db.queries import OUTCOMES_PER_CALL
from pgtq.errors import JobNotFoundError, WaitTimeoutError
from pgtq.task import JobOutcome

SAFETY_POLL_INTERVAL = 30.0

Clock = Callable[[], float]


# -- the steps (what the driver does) and their replies ------------------------------


@dataclass(frozen=True)
class Listen:
    """LISTEN on ``pgtq_finished``. Reply: None."""


@dataclass(frozen=True)
class Watch:
    """``pgtq.watch`` each job, each in its own transaction. Reply: the
    job's ``JobOutcome`` (None where the waiter may not see it), in order."""

    job_ids: tuple[int, ...]


@dataclass(frozen=True)
class Await:
    """Wait up to ``timeout`` seconds for notifications. Reply: their
    payloads (an empty list when none came)."""

    timeout: float


@dataclass(frozen=True)
class Read:
    """``pgtq.outcomes`` of these jobs (at most OUTCOMES_PER_CALL). Reply:
    their ``JobOutcome``s, in any order, without those it may not see."""

    job_ids: tuple[int, ...]


@dataclass(frozen=True)
class Unwatch:
    """``pgtq.unwatch`` each job, each in its own transaction. Reply: None."""

    job_ids: tuple[int, ...]


Step = Listen | Watch | Await | Read | Unwatch


# -- the protocol ------------------------------------------------------------------


def checked_ids(job_ids: Iterable[int]) -> list[int]:
    """The job ids as a list; a TypeError names one that is not an int."""
    ids = list(job_ids)
    for job_id in ids:
        if isinstance(job_id, bool) or not isinstance(job_id, int):
            raise TypeError(f"job ids are integers, got {job_id!r}")
    return ids


def job_ids_of(payloads: Iterable[str]) -> set[int]:
    """The job ids that ``pgtq_finished`` payloads name (others are ignored)."""
    ids = set()
    for payload in payloads:
        if payload.isdigit():
            ids.add(int(payload))
    return ids


def waiting(
    job_ids: Sequence[int],
    timeout: float | None,
    clock: Clock,
    poll_interval: float = SAFETY_POLL_INTERVAL,
) -> Generator[Step, Any, list[JobOutcome]]:
    """The waiter's side of ``pgtq.watch``'s protocol, as steps: returns
    the outcome of each of ``job_ids``, in their order, once every one has
    finished. After ``timeout`` seconds (None: no limit; 0: look once) it
    takes its registrations back and raises ``WaitTimeoutError``; ids it
    may not see raise ``JobNotFoundError`` (registrations taken back too).
    ``clock`` gives the time in seconds (``time.monotonic``)."""
    unique = list(dict.fromkeys(job_ids))
    deadline = None if timeout is None else clock() + timeout
    finished: dict[int, JobOutcome] = {}
    pending: set[int] = set()

    def sort(asked: Sequence[int], replies: Sequence[JobOutcome | None]) -> set[int]:
        """File watch's replies; the ids it could not see."""
        unseen = set()
        for job_id, outcome in zip(asked, replies, strict=True):
            if outcome is None:
                unseen.add(job_id)
                pending.discard(job_id)
            elif outcome.finished:
                finished[job_id] = outcome
                pending.discard(job_id)
            else:
                pending.add(job_id)
        return unseen

    yield Listen()
    unseen = sort(unique, (yield Watch(tuple(unique))))
    next_poll = clock() + poll_interval
    while pending and not unseen:
        now = clock()
        if deadline is not None and now >= deadline:
            yield Unwatch(tuple(sorted(pending)))
            raise WaitTimeoutError([i for i in unique if i in pending], timeout or 0.0, finished)
        until = next_poll if deadline is None else min(next_poll, deadline)
        heard = job_ids_of((yield Await(max(0.0, until - now)))) & pending
        polling = clock() >= next_poll
        if polling:
            next_poll = clock() + poll_interval
        asked = sorted(pending if polling else heard)
        for start in range(0, len(asked), OUTCOMES_PER_CALL):
            chunk = tuple(asked[start : start + OUTCOMES_PER_CALL])
            read: list[JobOutcome] = yield Read(chunk)
            gone = set(chunk) - {outcome.id for outcome in read}  # deleted once it finished
            unseen |= gone
            pending -= gone
            for outcome in read:
                if outcome.finished:
                    finished[outcome.id] = outcome
                    pending.discard(outcome.id)
        # Heard, yet not finished: it was retried after its end, which takes
        # every registration back. Register again.
        again = sorted(heard & pending)
        if again:
            unseen |= sort(again, (yield Watch(tuple(again))))
    if unseen:
        if pending:
            yield Unwatch(tuple(sorted(pending)))
        raise JobNotFoundError(unseen)
    return [finished[job_id] for job_id in job_ids]


# -- the drivers: the same steps on a sync or an async connection ------------------


def _protocol(
    job_ids: Iterable[int], timeout: float | None, clock: Clock, poll_interval: float
) -> Generator[Step, Any, list[JobOutcome]] | None:
    """The protocol's steps for these arguments (``waiting``), checked
    before any connection is made; None when there is nothing to wait for."""
    ids = checked_ids(job_ids)
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or at least 0 seconds, got {timeout!r}")
    return waiting(ids, timeout, clock, poll_interval) if ids else None


def wait_for(
    dsn: str,
    job_ids: Iterable[int],
    timeout: float | None = None,
    *,
    clock: Clock = time.monotonic,
    poll_interval: float = SAFETY_POLL_INTERVAL,
) -> list[JobOutcome]:
    """Wait on a connection of its own to ``dsn`` until every job of
    ``job_ids`` has finished; their outcomes in the order given (see
    ``waiting``). The connection is closed when it returns or raises."""
    steps = _protocol(job_ids, timeout, clock, poll_interval)
    if steps is None:
        return []
    with gateway.connect(dsn) as conn:
        reply = None  # sent to start the protocol
        while True:
            try:
                step = steps.send(reply)
            except StopIteration as done:
                return list(done.value)
            reply = _perform(conn, step)


async def wait_for_async(
    dsn: str,
    job_ids: Iterable[int],
    timeout: float | None = None,
    *,
    clock: Clock = time.monotonic,
    poll_interval: float = SAFETY_POLL_INTERVAL,
) -> list[JobOutcome]:
    """``wait_for`` for asyncio: the same steps on an ``AsyncConnection``
    of its own, awaiting the notifications while the event loop runs other
    tasks. Cancelled, it closes its connection; the registrations it made
    stay until their jobs end (each then costs one notification nobody
    hears)."""
    steps = _protocol(job_ids, timeout, clock, poll_interval)
    if steps is None:
        return []
    async with await async_gateway.connect(dsn) as conn:
        reply = None  # sent to start the protocol
        while True:
            try:
                step = steps.send(reply)
            except StopIteration as done:
                return list(done.value)
            reply = await _perform(conn, step, async_gateway)


def _perform(conn: Any, step: Step, engine: ModuleType = gateway) -> Any:
    """Take one step of the protocol on ``conn`` with the functions of
    ``engine``: the gateway's return the step's reply, the async gateway's
    (the same names, on an ``AsyncConnection``) an awaitable of it."""
    if isinstance(step, Listen):
        return engine.listen_finished(conn)
    if isinstance(step, Watch):
        return engine.watch_each(conn, step.job_ids)
    if isinstance(step, Await):
        return engine.notifications_within(conn, step.timeout)
    if isinstance(step, Read):
        return engine.outcomes(conn, step.job_ids)
    return engine.unwatch_each(conn, step.job_ids)
