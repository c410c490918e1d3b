"""An idle worker's listener claims a pushed job itself (the loan of
pgtq.worker._idle_claim), and the worker keeps every guarantee for it: it
renews the job's lease, keeps the concurrency limit and the job's timeout,
and a graceful stop during the listener's claim loses nothing.

The workers run in this process, so the test can see which thread called
``pgtq.pop`` and hold that call back; the database is real. Jobs are
pushed with ``push_many`` (``push_one``): a single push to an idle worker
is handed to it without a claim (schema 0.16.0: test_handoff.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from conftest import scalar, wait_until
from psycopg.conninfo import make_conninfo

import pgtq
from pgtq._db import gateway
from pgtq.worker import Worker, WorkerSettings

# Long poll and tick intervals: only a notification can start a job soon.
QUIET = {"poll_interval": 60.0, "tick_interval": 60.0}


@contextmanager
def idle_worker(
    q: pgtq.PgTq, listen_dsn: str | None = None, **settings: Any
) -> Iterator[tuple[Worker, threading.Thread]]:
    """A worker serving ``q`` in a thread, idle on LISTEN once yielded."""
    worker = Worker(q, WorkerSettings(**(QUIET | settings)), listen_dsn=listen_dsn)
    thread = threading.Thread(target=worker.run, name="test-worker")
    thread.start()
    try:
        wait_until(lambda: idle(worker))
        yield worker, thread
    finally:
        worker.stop()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the worker stopped"


def idle(worker: Worker) -> bool:
    """Whether the worker waits with its room lent to its listeners, whose
    marks are settled: nothing else wakes it for a while."""
    listeners = [server.listener for server in worker.servers]
    return worker._idle.lent > 0 and all(x is not None and x.settled for x in listeners)


def push_one(q: pgtq.PgTq, task: str, args: list[Any] | None = None, **options: Any) -> int:
    """Push one job the listener claims: push_many never hands a job off."""
    return q.push_many(task, [args or []], **options)[0]


def job_row(db: psycopg.Connection[Any], job_id: int) -> tuple[Any, ...]:
    row = db.execute(
        "SELECT state::text, attempt, lease_expires_at FROM pgtq.jobs WHERE id = %s", [job_id]
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_the_listener_claims_for_an_idle_worker_which_renews_the_lease(
    q: pgtq.PgTq, db: psycopg.Connection[Any], pops: list[str]
) -> None:
    go = threading.Event()

    @q.handler()
    def hold() -> None:
        go.wait(60)

    # A 3 s lease renewed every 0.3 s: only the dispatcher renews leases,
    # so a later expiry shows it holds the job the listener claimed.
    with idle_worker(q, lease=3.0, heartbeat_interval=0.3):
        job_id = push_one(q, "hold")
        # (pops records a claim once its call returned, a moment after the commit)
        wait_until(lambda: job_row(db, job_id)[0] == "running" and pops)
        assert pops == ["pgtq-listener"], "claimed by the listener that heard the push"
        first_expiry = job_row(db, job_id)[2]
        wait_until(lambda: job_row(db, job_id)[2] > first_expiry, timeout=30)
        go.set()
        wait_until(lambda: job_row(db, job_id)[0] == "done")
    assert job_row(db, job_id)[:2] == ("done", 1)


def test_a_burst_on_an_idle_worker_keeps_its_limit(
    q: pgtq.PgTq, db: psycopg.Connection[Any], pops: list[str]
) -> None:
    seen_running: list[int] = []

    @q.handler()
    def count_running() -> None:
        with psycopg.connect(q.dsn, autocommit=True) as conn:
            seen_running.append(int(scalar(conn, "SELECT count(*) FROM pgtq.jobs WHERE state = 'running'")))
        time.sleep(0.02)

    with idle_worker(q, concurrency=2, batch_size=2):
        q.push_many("count_running", [[] for _ in range(20)])  # one notification for all
        wait_until(lambda: scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE state = 'done'") == 20)
    assert pops[0] == "pgtq-listener", "the first claim was the listener's"
    assert len(seen_running) == 20, "each job ran once"
    assert max(seen_running) <= 2, f"never more claimed than the worker's 2 jobs in hand: {seen_running}"


def test_the_timeout_of_a_job_the_listener_claimed_is_kept(
    q: pgtq.PgTq, db: psycopg.Connection[Any], pops: list[str]
) -> None:
    release = threading.Event()

    @q.handler(timeout=0.3)
    def overlong() -> None:
        release.wait(30)

    try:
        with idle_worker(q, concurrency=4):  # a claim of 1 of 4: short, no reason to wake it
            pushed = time.monotonic()
            job_id = push_one(q, "overlong", max_attempts=1)
            wait_until(lambda: job_row(db, job_id)[0] == "failed", timeout=30)
            failed_after = time.monotonic() - pushed
            assert pops == ["pgtq-listener"]
    finally:
        release.set()
    # With 60 s ticks and polls and a 10 s renewal interval, nothing but
    # the deadline woke the dispatcher this soon.
    assert failed_after < 8.0, f"timed out after {failed_after:.1f} s, not at its 0.3 s timeout"
    assert "exceeded its timeout of 0.3 s" in str(q.job(job_id).last_error)  # type: ignore[union-attr]


def test_a_graceful_stop_during_the_listeners_claim_loses_nothing(
    q: pgtq.PgTq, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, proceed = threading.Event(), threading.Event()
    real_pop = gateway.pop

    def held_pop(conn: gateway.Connection, **kwargs: Any) -> Any:
        if threading.current_thread().name == "pgtq-listener":
            entered.set()
            proceed.wait(30)
        return real_pop(conn, **kwargs)

    monkeypatch.setattr(gateway, "pop", held_pop)
    ran: list[str] = []

    @q.handler()
    def note(token: str) -> None:
        ran.append(token)

    with idle_worker(q, shutdown_timeout=30.0) as (worker, thread):
        job_id = push_one(q, "note", ["once"])
        assert entered.wait(30), "the listener took the loan"
        worker.stop()
        wait_until(lambda: worker.stopping)
        proceed.set()  # the claim lands after the stop
        started = time.monotonic()
        thread.join(timeout=60)
        stopped_after = time.monotonic() - started
    assert stopped_after < 20.0, f"the stop waited {stopped_after:.1f} s: for the 30 s grace period?"
    for server in worker.servers:
        assert server.listener is not None
        server.listener.join(timeout=60)  # a claim it made after the stop would show now
    state, attempt, expiry = job_row(db, job_id)
    assert state in ("done", "ready"), f"run or handed back, never left running: {state}"
    assert expiry is None
    assert ran == (["once"] if state == "done" else []), "ran at most once, and done only if it ran"
    if state == "done":
        assert attempt == 1


def test_a_listener_whose_session_may_not_claim_leaves_the_claims_to_the_dispatcher(
    q: pgtq.PgTq, db: psycopg.Connection[Any], pops: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # A read-only listen session: LISTEN and the waiting marks work, a claim
    # (pgtq.pop writes) is refused.
    read_only = make_conninfo(q.dsn, options="-c default_transaction_read_only=on")

    @q.handler()
    def note(token: str) -> None:
        del token

    with (
        caplog.at_level(logging.WARNING, logger="pgtq.worker"),
        idle_worker(q, listen_dsn=read_only, concurrency=4),
    ):
        first = q.push("note", ["first"])
        wait_until(lambda: job_row(db, first)[0] == "done")
        second = q.push("note", ["second"])
        wait_until(lambda: job_row(db, second)[0] == "done")
    refusals = [r for r in caplog.records if "cannot claim jobs" in r.getMessage()]
    assert len(refusals) == 1, "said once, naming the refusal"
    assert "read-only" in refusals[0].getMessage()
    assert pops == ["test-worker", "test-worker"], "both claimed by the dispatcher"
