"""Periodic schedules across sessions, with plain psycopg connections: any
number of sessions may tick at once and each occurrence is enqueued once;
many sessions may register the same schedule at once. Then from Python:
``@q.periodic`` registered by the workers serving the queue when they start.

The clock is passed as ``as_of``: every process ticks at the same simulated
instants, and a barrier makes them collide. The single-session rules
(parsing, next runs, DST, the missed-run rule) are in tests/sql/13-15."""

from __future__ import annotations

import multiprocessing
import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from conftest import Processes, scalar, wait_until

import pgtq

START = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)
PROCESSES = 4
# Each simulated minute, every process ticks three times (at :00, :20 and
# :40), all together after a barrier: 3 minutes x 3 instants x 4 processes.
INSTANTS = [
    START + timedelta(seconds=30 + 60 * minute + second) for minute in range(3) for second in (0, 20, 40)
]


def tick_at_instants(dsn: str, barrier: Any, results: Any) -> None:
    """One ticking process: at each instant, wait for the others, then tick
    (autocommit: a transaction per tick). Reports what each tick returned."""
    enqueued = []
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for instant in INSTANTS:
                barrier.wait(timeout=120)
                enqueued.append(scalar(conn, "SELECT pgtq.tick(as_of => %s)", [instant]))
        results.put(("ok", enqueued))
    except Exception as error:  # reported to the test, which fails on it
        barrier.abort()
        results.put(("error", repr(error)))


def test_four_processes_ticking_every_minute_schedule_for_three_minutes_enqueue_three_jobs(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute("SELECT pgtq.schedule('beat', '* * * * *', 'q', 'beat', as_of => %s)", [START])
    # Widen the race: the session that enqueues holds the schedule row for
    # 0.2 s (a trigger on the job table), so the other three tick while it
    # is locked and must skip it, neither wait nor enqueue. Correctness does
    # not depend on this timing; without the lock, all four would enqueue.
    db.execute(
        "CREATE FUNCTION public.slow_insert() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$"
    )
    db.execute(
        "CREATE TRIGGER slow_insert BEFORE INSERT ON pgtq._job"
        " FOR EACH ROW EXECUTE FUNCTION public.slow_insert()"
    )

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=tick_at_instants, args=(dsn, barrier, results)) for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=240) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert [status for status, _ in reports] == ["ok"] * PROCESSES, reports

    per_instant = [sum(enqueued[i] for _, enqueued in reports) for i in range(len(INSTANTS))]
    assert per_instant == [1, 0, 0] * 3, "one job at each minute's first instant, from one process"
    runs = [row[0] for row in db.execute("SELECT run_at FROM pgtq.jobs ORDER BY run_at")]
    assert runs == [datetime(2030, 1, 1, 0, minute, tzinfo=UTC) for minute in (1, 2, 3)]
    assert db.execute("SELECT last_run_at, next_run_at FROM pgtq.schedules").fetchone() == (
        datetime(2030, 1, 1, 0, 3, tzinfo=UTC),
        datetime(2030, 1, 1, 0, 4, tzinfo=UTC),
    )


def test_a_tick_holding_a_schedule_makes_others_skip_it_without_waiting(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """Deterministic interleaving of two sessions: the schedule row is
    locked by a tick that has not committed; another tick skips it at once
    (SKIP LOCKED) and, after the commit, finds it moved past the occurrence."""
    db.execute("SELECT pgtq.schedule('nightly', '0 3 * * *', 'q', 'report', as_of => '2030-01-01 00:00+00')")
    with psycopg.connect(dsn) as first, psycopg.connect(dsn, autocommit=True) as second:
        second.execute("SET lock_timeout = '10s'")  # a wait would fail the test instead of hanging it
        assert scalar(first, "SELECT pgtq.tick(as_of => '2030-01-01 03:00+00')") == 1  # not committed yet
        skipped = scalar(second, "SELECT pgtq.tick(as_of => '2030-01-01 03:00:05+00')")
        assert skipped == 0, "skipped, not waited for"
        first.commit()
        after_commit = scalar(second, "SELECT pgtq.tick(as_of => '2030-01-01 03:00:10+00')")
        assert after_commit == 0, "moved past 03:00"
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs") == 1
    assert scalar(db, "SELECT next_run_at FROM pgtq.schedules") == datetime(2030, 1, 2, 3, tzinfo=UTC)


def test_many_sessions_registering_the_same_schedule_at_once(dsn: str, db: psycopg.Connection[Any]) -> None:
    """Workers register their periodic tasks when they start, several at
    once: one schedule, no error, every call sees the same definition and
    next run, and the same definition again leaves the row untouched."""
    sessions = 8
    barrier = threading.Barrier(sessions)
    answers: list[Any] = []
    errors: list[BaseException] = []

    def register(number: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                barrier.wait(timeout=60)
                row = conn.execute(
                    "SELECT name, cron, queue, task, next_run_at"
                    " FROM pgtq.schedule('digest', '0 8 * * MON-FRI', 'mail', 'digest', as_of => %s)",
                    [START + timedelta(seconds=number)],
                ).fetchone()
                answers.append(row)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=register, args=(number,)) for number in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    weekday_8am = datetime(2030, 1, 1, 8, tzinfo=UTC)  # 1 January 2030 is a Tuesday
    assert answers == [("digest", "0 8 * * MON-FRI", "mail", "digest", weekday_8am)] * sessions
    assert scalar(db, "SELECT count(*) FROM pgtq.schedules") == 1
    created, updated = db.execute("SELECT created_at, updated_at FROM pgtq.schedules").fetchone()
    assert updated == created, "the same definition again never rewrote it"


# -- from Python: @q.periodic, registered by the workers that serve the queue ---------------


def test_two_workers_register_one_schedule_and_simulated_minutes_give_one_job_each(
    db: psycopg.Connection[Any], processes: Processes
) -> None:
    """Two worker processes start with the same periodic handler: one
    schedule, written once (the second registration changes nothing). Then,
    the workers stopped (their ticks in real time would rescue the jobs of
    simulated minutes as if their leases had expired), two sessions tick
    over three simulated minutes (``as_of``), each instant at once: one job
    per minute."""
    workers = [processes.worker("periodic_app:q") for _ in range(2)]
    for worker in workers:
        wait_until(lambda worker=worker: "periodic task 'beat-every-minute'" in processes.output(worker))
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    rows = db.execute(
        "SELECT name, cron, queue, task, args, created_at = updated_at, next_run_at FROM pgtq.schedules"
    ).fetchall()
    assert [row[:6] for row in rows] == [
        ("beat-every-minute", "* * * * *", "periodic_queue", "beat", ["tick-tock"], True)
    ]
    first = rows[0][6]
    instants = [
        first + timedelta(minutes=minute, seconds=second) for minute in range(3) for second in (0, 30)
    ]
    barrier = threading.Barrier(2)

    def tick_at_instants() -> None:
        with psycopg.connect(db.info.dsn, autocommit=True) as conn:
            for instant in instants:
                barrier.wait(timeout=60)
                conn.execute("SELECT pgtq.tick(as_of => %s)", [instant])

    tickers = [threading.Thread(target=tick_at_instants) for _ in range(2)]
    for ticker in tickers:
        ticker.start()
    for ticker in tickers:
        ticker.join(timeout=120)
    runs = db.execute(
        "SELECT run_at, count(*) FROM pgtq.jobs WHERE task = 'beat' GROUP BY run_at ORDER BY run_at"
    ).fetchall()
    assert runs == [(first + timedelta(minutes=minute), 1) for minute in range(3)]


def test_a_worker_says_which_schedules_of_its_queues_its_code_does_not_declare(
    db: psycopg.Connection[Any], processes: Processes
) -> None:
    db.execute("SELECT pgtq.schedule('left-behind', '0 3 * * *', 'periodic_queue', 'beat')")
    db.execute("SELECT pgtq.schedule('orphan', '0 4 * * *', 'periodic_queue', 'removed_task')")
    db.execute("SELECT pgtq.schedule('not-mine', '0 5 * * *', 'another_queue', 'whatever')")
    worker = processes.worker("periodic_app:q")
    output = wait_until(lambda: "'orphan'" in processes.output(worker) and processes.output(worker))
    assert (
        "INFO pgtq.periodic: schedule 'left-behind' (0 3 * * * -> periodic_queue.beat) is not declared"
        in (output)
    )
    assert (
        "WARNING pgtq.periodic: schedule 'orphan' (0 4 * * *) enqueues task 'removed_task' into queue"
        " 'periodic_queue', which has no handler in this worker" in output
    )
    assert "pgtq unschedule 'orphan'" in output
    assert "not-mine" not in output
    assert scalar(db, "SELECT count(*) FROM pgtq.schedules") == 4, "the worker removes nothing"


def test_a_worker_whose_periodic_task_the_database_refuses_does_not_start(
    db: psycopg.Connection[Any], processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERIODIC_CRON", "61 * * * *")
    worker = processes.worker("periodic_app:q")
    assert worker.wait(timeout=60) == 2, "a configuration error"
    output = processes.output(worker)
    assert (
        "pgtq: error: periodic task 'beat-every-minute' (task 'beat' of queue 'periodic_queue', cron"
        " '61 * * * *', timezone 'UTC') was refused: pgtq: bad cron expression '61 * * * *': minute field"
    ) in output
    assert scalar(db, "SELECT count(*) FROM pgtq.schedules") == 0


def test_register_schedule_and_unschedule_from_python(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    @q.periodic("0 8 * * MON-FRI", kwargs={"to": "ops"}, timezone="Europe/Paris")
    def digest(to: str) -> None: ...

    (registered,) = q.register_periodic()
    assert (registered.name, registered.cron, registered.timezone, registered.kwargs) == (
        "test_queue:digest",
        "0 8 * * MON-FRI",
        "Europe/Paris",
        {"to": "ops"},
    )
    assert q.register_periodic() == [registered], "the same definition again changes nothing"
    nightly = q.database.schedule("nightly", "@daily", "test_queue", "digest", kwargs={"to": "all"})
    assert (nightly.next_run_at.astimezone(UTC).hour, nightly.next_run_at.minute, nightly.kwargs) == (
        0,
        0,
        {"to": "all"},
    )
    assert scalar(db, "SELECT count(*) FROM pgtq.schedules") == 2
    assert q.database.unschedule("nightly") is True
    assert q.database.unschedule("nightly") is False
    with pytest.raises(pgtq.InvalidJobError, match="bad cron expression '0 25 \\* \\* \\*': hour field"):
        q.database.schedule("bad", "0 25 * * *", "test_queue", "digest")
    assert scalar(db, "SELECT count(*) FROM pgtq.schedules") == 1, "nothing half-written"
