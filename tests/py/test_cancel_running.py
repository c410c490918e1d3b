"""Cancelling a running job (``pgtq.cancel``), end to end in real worker
processes: a thread handler is told through its task (the event or the
flag), an ``async def`` handler's coroutine is cancelled, a process-pool
child is killed; the job ends ``cancelled`` and runs no more. The worker
hears the request on ``pgtq_cancel`` at once, or finds it with its next
``heartbeat_many`` when it cannot listen; other running jobs carry on.

Every wait is a poll of the database (or of the worker's log) with a
deadline; the lease and heartbeat settings make the path under test the
only one that can deliver the request within those deadlines."""

from __future__ import annotations

from typing import Any

import psycopg
from conftest import Processes, listening, scalar, wait_until
from psycopg.conninfo import make_conninfo

import pgtq

# A heartbeat at start and then not for 300 s: within the tests' deadlines
# only the notification on pgtq_cancel can tell the worker of a cancel.
NO_HEARTBEAT = ("--lease", "600", "--heartbeat-interval", "300")


def recorded(db: psycopg.Connection[Any], token: str, kind: str = "ran") -> int:
    return int(scalar(db, "SELECT count(*) FROM side_effects WHERE token = %s AND kind = %s", [token, kind]))


def job_row(db: psycopg.Connection[Any], job_id: int) -> tuple[Any, ...]:
    row = db.execute(
        "SELECT state::text, attempt, cancel_requested_at IS NOT NULL, result, last_error"
        " FROM pgtq.jobs WHERE id = %s",
        [job_id],
    ).fetchone()
    assert row is not None
    return tuple(row)


def state(db: psycopg.Connection[Any], job_id: int) -> str:
    return str(job_row(db, job_id)[0])


def test_a_thread_handler_waiting_on_its_cancel_event_stops_and_others_carry_on(
    q: pgtq.PgTq, db: psycopg.Connection[Any], processes: Processes
) -> None:
    cancelled_id = q.push("waits_for_cancel", ["stop-me"], max_attempts=5)
    other_id = q.push("waits_for_go", ["keep-going"])
    worker = processes.worker("app:q", "--concurrency", "2", *NO_HEARTBEAT)
    wait_until(lambda: listening(db))
    wait_until(lambda: recorded(db, "stop-me", "started") == 1 and recorded(db, "keep-going", "started") == 1)

    assert q.cancel(cancelled_id) is True
    wait_until(lambda: state(db, cancelled_id) == "cancelled", timeout=60)
    assert recorded(db, "stop-me", "cancel seen") == 1, "the handler saw its cancel event"
    assert job_row(db, cancelled_id) == ("cancelled", 1, True, "stopped early", None), (
        "ended by the handler's own return, never retried"
    )
    assert job_row(db, other_id)[:3] == ("running", 1, False), "the other job runs on, untouched"
    output = processes.output(worker)
    assert f"id={cancelled_id}: cancel requested" in output
    assert f"id={cancelled_id} attempt=1/5" in output and "done after a cancel request -> cancelled" in output

    db.execute("INSERT INTO side_effects (token, kind) VALUES ('keep-going', 'go')")
    wait_until(lambda: state(db, other_id) == "done", timeout=60)
    assert job_row(db, other_id)[:4] == ("done", 1, False, "keep-going")


def test_a_thread_handler_that_ignores_the_request_still_ends_cancelled(
    q: pgtq.PgTq, db: psycopg.Connection[Any], processes: Processes
) -> None:
    job_id = q.push("waits_for_go", ["stubborn"])
    worker = processes.worker("app:q", *NO_HEARTBEAT)
    wait_until(lambda: recorded(db, "stubborn", "started") == 1)
    assert q.cancel(job_id) is True
    wait_until(lambda: f"id={job_id}: cancel requested" in processes.output(worker))
    assert job_row(db, job_id)[:3] == ("running", 1, True), "a thread cannot be stopped: it runs on"

    db.execute("INSERT INTO side_effects (token, kind) VALUES ('stubborn', 'go')")
    wait_until(lambda: state(db, job_id) == "cancelled", timeout=60)
    assert job_row(db, job_id) == ("cancelled", 1, True, "stubborn", None), "its result kept for the record"
    assert recorded(db, "stubborn") == 1


def test_an_async_handler_gets_cancelled_error(
    q: pgtq.PgTq, db: psycopg.Connection[Any], processes: Processes
) -> None:
    job_id = q.push("sleeps_until_cancelled", ["coroutine"])
    other_id = q.push("sleeps_until_cancelled", ["other-coroutine"])
    processes.worker("app:q", "--concurrency", "2", *NO_HEARTBEAT)
    wait_until(lambda: listening(db))
    wait_until(lambda: recorded(db, "coroutine", "started") + recorded(db, "other-coroutine", "started") == 2)
    assert q.cancel(job_id) is True
    wait_until(lambda: state(db, job_id) == "cancelled", timeout=60)
    wait_until(lambda: recorded(db, "coroutine", "cancelled") == 1)
    row = job_row(db, job_id)
    assert row[:4] == ("cancelled", 1, True, None)
    assert str(row[4]).startswith(f"Cancelled: job {job_id} was asked to cancel while it ran")
    assert recorded(db, "coroutine") == 0, "it never got past its await"
    assert job_row(db, other_id)[:3] == ("running", 1, False), "the other coroutine sleeps on"
    assert recorded(db, "other-coroutine", "cancelled") == 0


def test_a_process_pool_child_is_killed_and_replaced(
    q: pgtq.PgTq, db: psycopg.Connection[Any], processes: Processes
) -> None:
    job_id = q.push("waits_for_go", ["in-a-child"])
    worker = processes.worker("app:q", "--pool", "process", *NO_HEARTBEAT)
    wait_until(lambda: recorded(db, "in-a-child", "started") == 1, timeout=60)
    assert q.cancel(job_id) is True
    wait_until(lambda: state(db, job_id) == "cancelled", timeout=60)
    row = job_row(db, job_id)
    assert row[:4] == ("cancelled", 1, True, None)
    assert "its child process was killed" in str(row[4])

    # Its child is gone: the go that would have let it finish finds nobody,
    # and a fresh child runs the next job.
    db.execute("INSERT INTO side_effects (token, kind) VALUES ('in-a-child', 'go')")
    next_id = q.push("note", ["after-cancel"])
    wait_until(lambda: state(db, next_id) == "done", timeout=60)
    assert recorded(db, "in-a-child") == 0, "the killed child never finished"
    assert f"id={job_id}: cancel requested" in processes.output(worker)
    assert state(db, job_id) == "cancelled" and job_row(db, job_id)[1] == 1, "never run again"


def test_a_cancel_reaches_a_worker_that_cannot_listen_by_its_heartbeat(
    q: pgtq.PgTq, db: psycopg.Connection[Any], processes: Processes
) -> None:
    job_id = q.push("polls_cancel", ["no-listener"])
    unusable = make_conninfo(q.dsn, dbname="pgtq_no_such_database")
    worker = processes.worker(
        "app:q", "--listen-dsn", unusable, "--lease", "30", "--heartbeat-interval", "0.5"
    )
    wait_until(lambda: recorded(db, "no-listener", "started") == 1)
    wait_until(lambda: "listener lost the database" in processes.output(worker))
    assert not listening(db), "no notification can reach this worker"
    assert q.cancel(job_id) is True
    wait_until(lambda: state(db, job_id) == "cancelled", timeout=60)
    assert recorded(db, "no-listener", "cancel seen") == 1, "the handler saw its cancel flag"
    assert job_row(db, job_id) == ("cancelled", 1, True, "stopped early", None)


def test_a_forged_cancel_notification_stops_nothing(
    q: pgtq.PgTq, db: psycopg.Connection[Any], processes: Processes
) -> None:
    job_id = q.push("waits_for_go", ["not-cancelled"])
    worker = processes.worker("app:q", *NO_HEARTBEAT)
    wait_until(lambda: listening(db))
    wait_until(lambda: recorded(db, "not-cancelled", "started") == 1)
    # Anybody who may connect may NOTIFY: the worker asks the database first.
    db.execute("SELECT pg_notify('pgtq_cancel', %s)", [str(job_id)])
    wait_until(lambda: f"heard a cancel request for job {job_id}" in processes.output(worker))
    db.execute("INSERT INTO side_effects (token, kind) VALUES ('not-cancelled', 'go')")
    wait_until(lambda: state(db, job_id) == "done", timeout=60)
    assert job_row(db, job_id) == ("done", 1, False, "not-cancelled", None)
    assert f"id={job_id}: cancel requested" not in processes.output(worker)
