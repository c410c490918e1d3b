"""Waiting for a job's outcome at the SQL level, with plain psycopg
connections: watch(), outcomes() and the channel pgtq_finished.

A waiter LISTENs on pgtq_finished, then registers with watch(id), which
counts it on the job row under the row lock and returns the job's state.
Every statement that finishes a job updates that row and notifies when it
has waiters. Whichever of the two comes first, no wake-up is lost:

* the finish first: watch waits for it to commit, then finds the job
  finished and returns its outcome;
* the registration first: the finishing statement, although its snapshot
  is older than the registration, waits for the row, re-reads it (READ
  COMMITTED), sees the waiter and notifies at its commit.

Both orders are forced below (pg_stat_activity shows the second session
waiting on the first one's row lock), for each way a job can finish; then
waiters and a worker race over many rounds. Which notifications were sent
is read up to a sentinel notification sent after the calls under test
(notifications arrive in commit order), never by waiting for silence."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from conftest import heard_until_sentinel, scalar, wait_until

CHANNEL = "pgtq_finished"
FINISHED = ("done", "failed", "cancelled")


@pytest.fixture
def listener(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection listening on pgtq_finished: the waiter."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        yield conn


def claim(conn: psycopg.Connection[Any], queue: str, **options: Any) -> tuple[int, uuid.UUID]:
    """Push one job to ``queue`` and pop it: its id and lease."""
    names = "".join(f", {name} => %({name})s" for name in options)
    conn.execute(f"SELECT pgtq.push(%(queue)s, 'task'{names})", {"queue": queue, **options})
    row = conn.execute("SELECT id, lease FROM pgtq.pop(%s, 'w', 1, '1 hour')", [queue]).fetchone()
    assert row is not None
    return row[0], row[1]


def payloads(listener: psycopg.Connection[Any], sender: psycopg.Connection[Any]) -> list[str]:
    """The payloads on pgtq_finished up to the sentinel, which is sent now."""
    return [payload for _, payload in heard_until_sentinel(listener, sender, CHANNEL)]


def woken_for(listener: psycopg.Connection[Any], job_id: int, timeout: float = 30) -> bool:
    """Whether a notification for ``job_id`` arrives within ``timeout``
    seconds (notifications for other jobs are skipped)."""
    notifies = listener.notifies(timeout=timeout)
    try:
        return any(notify.payload == str(job_id) for notify in notifies)
    finally:
        notifies.close()


def wait_for_lock(observer: psycopg.Connection[Any], pid: int) -> None:
    """Until session ``pid`` waits on a lock (the other session's row)."""
    wait_until(
        lambda: scalar(
            observer, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", [pid]
        )
    )


# How a worker (or an operator) can finish a running job, each as one call.
FINISHES = {
    "complete": "SELECT pgtq.complete(%(id)s, %(lease)s, '{\"n\": 1}')::text",
    "complete_many": (
        "SELECT count(*)::text FROM pgtq.complete_many(ARRAY[%(id)s]::bigint[], ARRAY[%(lease)s]::uuid[])"
    ),
    "fail (last attempt)": "SELECT pgtq.fail(%(id)s, %(lease)s, 'boom')",
    "abort": "SELECT pgtq.abort(%(id)s, %(lease)s, 'hopeless')",
}


@pytest.mark.parametrize("finish", FINISHES.values(), ids=FINISHES.keys())
def test_registration_first_the_finishing_statement_waits_and_notifies(
    dsn: str, db: psycopg.Connection[Any], listener: psycopg.Connection[Any], finish: str
) -> None:
    job_id, lease = claim(db, "race", max_attempts=1)
    with psycopg.connect(dsn, autocommit=True) as worker, ThreadPoolExecutor(1) as pool:
        with listener.transaction():
            state = scalar(listener, "SELECT state::text FROM pgtq.watch(%s)", [job_id])
            assert state == "running", "registered, and the row stays locked until the waiter commits"
            # The finishing statement starts now, so its snapshot is older
            # than the registration, and waits for the row.
            finishing = pool.submit(lambda: scalar(worker, finish, {"id": job_id, "lease": lease}))
            wait_for_lock(db, worker.info.backend_pid)
        assert finishing.result(timeout=60) in ("true", "1", "failed")
        assert woken_for(listener, job_id), "the finishing statement saw the waiter and notified"
    assert scalar(db, "SELECT state::text FROM pgtq.outcomes(ARRAY[%s]::bigint[])", [job_id]) in FINISHED


@pytest.mark.parametrize("finish", FINISHES.values(), ids=FINISHES.keys())
def test_finish_first_the_waiter_waits_and_finds_the_outcome(
    dsn: str, db: psycopg.Connection[Any], listener: psycopg.Connection[Any], finish: str
) -> None:
    job_id, lease = claim(db, "race", max_attempts=1)
    with psycopg.connect(dsn, autocommit=True) as worker, ThreadPoolExecutor(1) as pool:
        with worker.transaction():
            scalar(worker, finish, {"id": job_id, "lease": lease})
            # The job is finished but not committed: watch waits for the row.
            watching = pool.submit(
                lambda: scalar(listener, "SELECT state::text FROM pgtq.watch(%s)", [job_id])
            )
            wait_for_lock(db, listener.info.backend_pid)
        assert watching.result(timeout=60) in FINISHED, "watch returns the outcome once the finish commits"
    assert scalar(db, "SELECT waiters FROM pgtq.jobs WHERE id = %s", [job_id]) == 0, "and registers nothing"
    assert payloads(listener, db) == [], "nobody was registered when it finished: no notification"


def test_waiters_racing_workers_are_all_woken_or_find_the_job_finished(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """Each round, four waiters watch a running job while a worker
    completes it, all started together: every waiter either gets the
    finished job from watch or a notification for it; none is left
    waiting."""
    waiters, rounds = 4, 60
    jobs = [claim(db, "rounds") for _ in range(rounds)]
    barrier = threading.Barrier(waiters + 1)
    seen: Counter[str] = Counter()

    def waiter() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            for job_id, _ in jobs:
                barrier.wait(timeout=60)
                state = scalar(conn, "SELECT state::text FROM pgtq.watch(%s)", [job_id])
                if state in FINISHED:
                    seen["finished at once"] += 1
                else:
                    assert state == "running"
                    assert woken_for(conn, job_id), f"a waiter of job {job_id} was never woken"
                    seen["woken"] += 1

    def worker() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for job_id, lease in jobs:
                barrier.wait(timeout=60)
                assert scalar(conn, "SELECT pgtq.complete(%s, %s)", [job_id, lease]) is True

    with ThreadPoolExecutor(waiters + 1) as pool:
        for future in [pool.submit(waiter) for _ in range(waiters)] + [pool.submit(worker)]:
            future.result(timeout=600)
    assert sum(seen.values()) == waiters * rounds, seen
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = 'rounds' AND state = 'done'") == rounds


def test_only_jobs_somebody_waits_for_notify(dsn: str, db: psycopg.Connection[Any]) -> None:
    """One notification per finished job that has a waiter, its id as the
    payload, whichever way it finished; none for jobs nobody waits for,
    for a watched job that is only retried, or once its waiter left."""
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")

        def watch(job_id: int) -> None:
            scalar(listener, "SELECT count(*) FROM pgtq.watch(%s)", [job_id])

        # complete_many: of two jobs, only the watched one notifies.
        watched, watched_lease = claim(db, "n")
        unwatched, unwatched_lease = claim(db, "n")
        watch(watched)
        db.execute(
            "SELECT pgtq.complete_many(%s, %s)", [[watched, unwatched], [watched_lease, unwatched_lease]]
        )
        assert payloads(listener, db) == [str(watched)]

        # A retry is not the end: no notification; the last attempt's failure is.
        retried, lease = claim(db, "n", max_attempts=2)
        watch(retried)
        assert scalar(db, "SELECT pgtq.fail(%s, %s, 'boom', '0')", [retried, lease]) == "ready"
        assert payloads(listener, db) == []
        lease = scalar(db, "SELECT lease FROM pgtq.pop('n', 'w')")
        assert scalar(db, "SELECT pgtq.fail(%s, %s, 'boom again')", [retried, lease]) == "failed"
        assert payloads(listener, db) == [str(retried)]

        # cancel: a pending watched job at once; an unwatched one silently.
        pending, quiet = (
            row[0] for row in db.execute("SELECT pgtq.push('pending', 'task') FROM generate_series(1, 2)")
        )
        watch(pending)
        db.execute("SELECT pgtq.cancel(%s), pgtq.cancel(%s)", [pending, quiet])
        assert payloads(listener, db) == [str(pending)]

        # A cancel request ends a running job at its worker's next call.
        asked, lease = claim(db, "n")
        watch(asked)
        db.execute("SELECT pgtq.cancel(%s)", [asked])
        assert payloads(listener, db) == [], "a cancel request is not yet the end"
        assert scalar(db, "SELECT pgtq.complete(%s, %s)", [asked, lease]) is True
        assert payloads(listener, db) == [str(asked)]

        # The lease rescue of a last attempt.
        lost, _ = claim(db, "lost", max_attempts=1)
        watch(lost)
        assert scalar(db, "SELECT pgtq.tick('lost', now() + interval '2 hours')") == 1
        assert payloads(listener, db) == [str(lost)]

        # A keyed job superseded on its way back to pending.
        superseded, lease = claim(db, "keyed", job_key="k")
        watch(superseded)
        db.execute("SELECT pgtq.push('keyed', 'task', job_key => 'k')")
        assert scalar(db, "SELECT pgtq.fail(%s, %s, 'boom')", [superseded, lease]) == "cancelled"
        assert payloads(listener, db) == [str(superseded)]

        # A waiter that left: nothing.
        left, lease = claim(db, "n")
        watch(left)
        assert scalar(listener, "SELECT pgtq.unwatch(%s)", [left]) is True
        assert scalar(db, "SELECT pgtq.complete(%s, %s)", [left, lease]) is True
        assert payloads(listener, db) == []

        # Two waiters on one job: one notification (one transaction, one
        # payload), which every listener gets.
        shared, lease = claim(db, "n")
        watch(shared)
        watch(shared)
        assert scalar(db, "SELECT pgtq.complete(%s, %s)", [shared, lease]) is True
        assert payloads(listener, db) == [str(shared)]
