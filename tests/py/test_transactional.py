"""Transactional handlers (``@q.handler(transactional=True)``) in real
worker processes (apps/txn_app.py): the handler's writes and its job's
completion commit together or not at all.

* a successful run leaves its row and a done job;
* a raise leaves no row, and the job fails by the usual rules;
* a worker SIGKILLed while the handler waits with its write uncommitted
  leaves no row; after its lease another worker does the job, once;
* a lease that went stale while the handler waited (the test rescues the
  job with a tick past the lease) rolls the write back; the job's next
  attempt writes the one row.

* through PgBouncer in transaction mode, successes and raises alike;
* ``async def`` handlers, on their ``AsyncConnection``: a success commits,
  a raise and a timeout (cancelled mid-transaction) roll back, and the
  slot serves the next job.

And, without a database: the process pool refuses transactional
handlers, and what ``Task.conn`` says outside a transactional run.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import BouncerFactory, Processes, scalar, through, wait_until

import pgtq
from pgtq.worker import Worker, WorkerSettings

WAIT = 120.0  # seconds a job may take to end on a shared 2-core machine


@pytest.fixture
def tables(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    db.execute(
        "CREATE TABLE public.txn_effects"
        " (job_id bigint NOT NULL, n integer NOT NULL, attempt integer NOT NULL, first_run boolean NOT NULL);"
        "CREATE TABLE public.txn_signals (job_id bigint NOT NULL);"
        "CREATE TABLE public.txn_release (job_id bigint NOT NULL)"
    )
    return db


def push(db: psycopg.Connection[Any], n: int, mode: str) -> int:
    return int(
        scalar(db, "SELECT pgtq.push('txn', 'write', jsonb_build_array(%s::int, %s::text))", [n, mode])
    )


def state(db: psycopg.Connection[Any], job_id: int) -> tuple[str, int]:
    row = db.execute("SELECT state::text, attempt FROM pgtq.jobs WHERE id = %s", [job_id]).fetchone()
    assert row is not None
    return row[0], row[1]


def effects(db: psycopg.Connection[Any], job_id: int) -> list[tuple[int, int, bool]]:
    """The committed rows of a job: (n, attempt, written by its first run)."""
    return db.execute(
        "SELECT n, attempt, first_run FROM public.txn_effects WHERE job_id = %s", [job_id]
    ).fetchall()


def finished(db: psycopg.Connection[Any], job_id: int) -> bool:
    return state(db, job_id)[0] in ("done", "failed", "cancelled")


def signalled(db: psycopg.Connection[Any], job_id: int) -> bool:
    return bool(scalar(db, "SELECT count(*) FROM public.txn_signals WHERE job_id = %s", [job_id]))


def test_a_success_commits_its_rows_and_a_raise_leaves_none(
    processes: Processes, tables: psycopg.Connection[Any]
) -> None:
    db = tables
    ok = push(db, 1, "ok")
    failing = db.execute(
        "SELECT pgtq.push('txn', 'write', jsonb_build_array(2, 'raise'), max_attempts => 1)"
    ).fetchone()
    assert failing is not None
    raised = int(failing[0])
    worker = processes.worker("txn_app:q", "--concurrency", "2")
    wait_until(lambda: finished(db, ok) and finished(db, raised), timeout=WAIT)
    assert state(db, ok) == ("done", 1)
    assert effects(db, ok) == [(1, 1, True)]
    assert scalar(db, "SELECT result FROM pgtq.jobs WHERE id = %s", [ok]) == {"n": 1}
    assert state(db, raised) == ("failed", 1)
    assert effects(db, raised) == [], "the raise rolled the write back"
    assert "ValueError: job" in scalar(db, "SELECT last_error FROM pgtq.jobs WHERE id = %s", [raised])
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0


def test_a_raise_is_retried_by_the_usual_rules_without_its_rows(
    processes: Processes, tables: psycopg.Connection[Any]
) -> None:
    db = tables
    job = push(db, 3, "raise")
    processes.worker("txn_app:q")
    # max_attempts 3: the first failure sends it back to wait for a retry.
    wait_until(lambda: state(db, job) == ("scheduled", 1), timeout=WAIT)
    assert effects(db, job) == []


def test_a_worker_killed_mid_handler_leaves_no_rows_and_the_job_runs_once_later(
    processes: Processes, tables: psycopg.Connection[Any]
) -> None:
    db = tables
    job = push(db, 4, "wait")
    doomed = processes.worker("txn_app:q", "--lease", "2")
    wait_until(lambda: signalled(db, job), timeout=WAIT)  # written, not committed, waiting
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    assert effects(db, job) == []
    assert state(db, job) == ("running", 1), "the lease still holds it"
    processes.worker("txn_app:q", "--tick-interval", "0.25")
    wait_until(lambda: finished(db, job), timeout=WAIT)
    assert state(db, job) == ("done", 2)
    assert effects(db, job) == [(4, 2, False)], "done once, by the second attempt"


def test_a_stale_lease_rolls_the_writes_back(processes: Processes, tables: psycopg.Connection[Any]) -> None:
    db = tables
    job = int(scalar(db, "SELECT pgtq.push('txn', 'write', '[5, \"wait\"]', max_attempts => 1)"))
    worker = processes.worker("txn_app:q", "--concurrency", "2")
    wait_until(lambda: signalled(db, job), timeout=WAIT)
    # Rescue the job as if its lease had run out (its one attempt spent, it
    # fails), and retry it: the worker's second slot runs it again while
    # the first run, its lease now stale, still waits with its write.
    db.execute("SELECT pgtq.tick('txn', now() + interval '1 day')")
    assert state(db, job) == ("failed", 1)
    assert scalar(db, "SELECT pgtq.retry(%s)", [job]) is True
    wait_until(lambda: state(db, job)[0] == "done", timeout=WAIT)
    db.execute("INSERT INTO public.txn_release (job_id) VALUES (%s)", [job])
    wait_until(lambda: "its transaction was rolled back" in processes.output(worker), timeout=WAIT)
    assert effects(db, job) == [(5, 1, False)], "the first run's write was rolled back"
    assert state(db, job) == ("done", 1)


def test_async_handlers_commit_on_success_and_roll_back_on_a_raise_or_their_timeout(
    processes: Processes, tables: psycopg.Connection[Any]
) -> None:
    db = tables
    jobs = [
        scalar(db, "SELECT pgtq.push('txn', 'awrite', '[6, \"ok\"]')"),
        scalar(db, "SELECT pgtq.push('txn', 'awrite', '[7, \"raise\"]', max_attempts => 1)"),
        scalar(db, "SELECT pgtq.push('txn', 'aslow', '[8]', max_attempts => 1)"),
        scalar(db, "SELECT pgtq.push('txn', 'awrite', '[9, \"ok\"]')"),  # the same slot, after the timeout
    ]
    processes.worker("txn_app:q", "--concurrency", "1")
    wait_until(lambda: all(finished(db, job) for job in jobs), timeout=WAIT)
    assert [state(db, job)[0] for job in jobs] == ["done", "failed", "failed", "done"]
    assert [effects(db, job) for job in jobs] == [[(6, 1, True)], [], [], [(9, 1, True)]]
    assert "exceeded its timeout" in scalar(db, "SELECT last_error FROM pgtq.jobs WHERE id = %s", [jobs[2]])


def test_through_a_transaction_mode_bouncer(
    dsn: str, bouncers: BouncerFactory, tmp_path: Path, tables: psycopg.Connection[Any]
) -> None:
    """Each handler's transaction holds one of the bouncer's 2 server
    connections while it runs; 4 slots and the dispatcher share them."""
    db = tables
    routed = through(bouncers("transaction", pool_size=2), dsn)
    oks = [push(db, n, "ok") for n in range(10)]
    raised = [
        scalar(db, "SELECT pgtq.push('txn', 'write', jsonb_build_array(%s, 'raise'), max_attempts => 1)", [n])
        for n in range(10, 20)
    ]
    workers = Processes(routed, tmp_path)
    try:
        worker = workers.worker("txn_app:q", "--concurrency", "4", "--listen-dsn", dsn)
        wait_until(lambda: all(finished(db, job) for job in oks + raised), timeout=WAIT)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        workers.stop_all()
    assert [state(db, job)[0] for job in oks] == ["done"] * 10
    assert [effects(db, job) for job in oks] == [[(n, 1, True)] for n in range(10)]
    assert [state(db, job)[0] for job in raised] == ["failed"] * 10
    assert scalar(db, "SELECT count(*) FROM public.txn_effects WHERE n >= 10") == 0
    assert "prepared statement" not in workers.output(worker)


# -- without a database ------------------------------------------------------------------


def test_the_process_pool_refuses_transactional_handlers() -> None:
    q = pgtq.PgTq("txn", "dbname=unused")
    q.handler(transactional=True)(lambda: None)
    with pytest.raises(ValueError, match=r"only in the thread pool, and txn.<lambda> is one"):
        Worker(q, WorkerSettings(pool="process"), target="txn_app:q")


def test_a_direct_call_is_a_plain_call_and_task_conn_needs_a_transactional_run() -> None:
    q = pgtq.PgTq("txn", "dbname=unused")

    @q.handler(transactional=True)
    def add(a: int, b: int) -> tuple[int, Any]:
        return a + b, pgtq.current_task()

    assert add(1, 2) == (3, None), "called directly: no task, no transaction"
    task = pgtq.Task(id=7, queue="txn", name="add", args=(1, 2))
    with pytest.raises(RuntimeError, match="job 7 \\(task 'add'\\) has no transaction"):
        _ = task.conn
    with pytest.raises(RuntimeError, match=r"only a handler declared with .* gets one \(task.aconn\)"):
        _ = task.aconn
