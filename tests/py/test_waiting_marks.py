"""A worker's waiting marks (schema 0.12.0): its listener marks the queues
the worker waits for, so that their pushes notify it, and clears those the
worker is busy with, so that their pushes stop notifying; a mark made while
a push that found none is in flight is settled once that push ended, and
the worker pops again then. (The SQL calls alone: tests/sql/34-waiting-marks.sql;
which pushes notify: tests/py/test_notifications.py.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from conftest import wait_until, waiting_marks, worker_running

import pgtq
from pgtq.worker import Worker, WorkerSettings
from pgtq.worker._listener import ANY_QUEUE, Listener


@contextmanager
def listener_running(dsn: str, queues: list[str]) -> Iterator[tuple[Listener, list[str]]]:
    """A worker's listener for ``queues``, and the wake-ups it sends (in order)."""
    woken: list[str] = []
    listener = Listener(dsn, queues, woken.append)
    listener.start()
    try:
        yield listener, woken
    finally:
        listener.stop()
        listener.join(timeout=10)
    assert not listener.is_alive(), "the listener stopped at once"


def test_the_listener_marks_its_queues_and_clears_those_its_worker_is_busy_with(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    with listener_running(dsn, ["mail", "sms"]) as (listener, woken):
        wait_until(lambda: waiting_marks(db, "mail") == 1 and waiting_marks(db, "sms") == 1)
        wait_until(lambda: woken == [ANY_QUEUE])

        listener.wait_for("mail", False)  # a full pop: busy with mail
        wait_until(lambda: waiting_marks(db, "mail") == 0)
        assert waiting_marks(db, "sms") == 1, "only the queue the worker is busy with"
        listener.wait_for("mail", False)
        assert woken == [ANY_QUEUE], "clearing wakes nobody"

        listener.wait_for("mail", True)  # a short pop: waiting again
        wait_until(lambda: waiting_marks(db, "mail") == 1)
        wait_until(lambda: woken == [ANY_QUEUE, "mail"])  # marked: the worker pops mail once more
        listener.wait_for("mail", True)
    # The server lets go of a closed session's locks a moment after the
    # client is gone: the marks go with the session, soon.
    assert wait_until(lambda: waiting_marks(db, "mail") == 0 and waiting_marks(db, "sms") == 0), (
        "the marks went with its session"
    )


def test_the_listener_wakes_its_worker_again_once_a_push_in_flight_ended(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """A push that found no mark notified nobody: a pop before it committed
    cannot see its job, so the listener settles the mark again and again,
    and wakes the worker for the queue once the push ended."""
    with psycopg.connect(dsn) as producer:
        producer.execute("SELECT pgtq.push('mail', 'send')")  # in flight: no mark yet, nobody told
        with listener_running(dsn, ["mail"]) as (_listener, woken):
            wait_until(lambda: waiting_marks(db, "mail") == 1)
            wait_until(lambda: woken == [ANY_QUEUE])
            assert "mail" not in woken, "not settled while the push is in flight"
            producer.commit()
            wait_until(lambda: woken == [ANY_QUEUE, "mail"], timeout=5)


def test_a_worker_clears_its_mark_while_busy_and_marks_again_once_it_waits(
    q: pgtq.PgTq, db: psycopg.Connection[Any]
) -> None:
    go = threading.Event()

    @q.handler()
    def blocks(_n: int) -> None:
        go.wait(30)

    with worker_running(q, concurrency=1):
        wait_until(lambda: waiting_marks(db, q.queue) == 1)  # idle: waiting for the queue
        ids = [q.push("blocks", [n]) for n in range(3)]
        wait_until(lambda: q.job(ids[0]).state == "running")  # type: ignore[union-attr]
        wait_until(lambda: waiting_marks(db, q.queue) == 0)  # its pop came back full: busy
        go.set()
        wait_until(lambda: all(q.job(i).state == "done" for i in ids))  # type: ignore[union-attr]
        wait_until(lambda: waiting_marks(db, q.queue) == 1)  # drained: waiting again
        started = q.push("blocks", [99])
        wait_until(lambda: q.job(started).state == "done", timeout=10)  # type: ignore[union-attr]


def test_pushes_notify_the_waiting_worker_of_their_queue_only(
    q: pgtq.PgTq, db: psycopg.Connection[Any]
) -> None:
    """End to end: a worker waiting for its queue is told of a push at once
    (its poll is 60 s away), and a push to a queue nobody waits for sends nothing."""

    @q.handler()
    def noop() -> None:
        pass

    with psycopg.connect(q.dsn, autocommit=True) as observer:
        observer.execute("LISTEN pgtq")
        worker = Worker(q, WorkerSettings(concurrency=1, poll_interval=60, tick_interval=60))
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            wait_until(lambda: waiting_marks(db, q.queue) == 1)
            db.execute("SELECT pgtq.push('nobody waits', 'noop')")
            # push_many announces; a single push would be handed to the idle
            # worker without a notification on pgtq (0.16.0: test_handoff.py).
            job_id = q.push_many("noop", [[]])[0]
            db.execute("SELECT pg_notify('pgtq', 'sentinel')")
            heard = []
            for notify in observer.notifies(timeout=10):
                if notify.payload == "sentinel":
                    break
                if not notify.payload.startswith("\x01"):  # the listener's probe
                    heard.append(notify.payload)
            assert heard == [q.queue], "the waited-for queue's push notified; the other one did not"
            wait_until(lambda: q.job(job_id).state == "done", timeout=10)  # type: ignore[union-attr]
        finally:
            worker.stop()
            thread.join(timeout=30)
