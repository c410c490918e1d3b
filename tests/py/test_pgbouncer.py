"""pgtq through a real PgBouncer (Debian's 1.18), in transaction mode, in
session mode, and directly: producers from many threads, every SQL API
call, a caller's own connection, a connection pool, the worker (pipelined
claims and completions, a bouncer restart in the middle of a drain), the
listener's probe, the scheduler, and the CLI with `pgtq migrate`."""

from __future__ import annotations

import collections
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import BouncerFactory, Processes, run_cli, scalar, through, wait_until
from psycopg_pool import ConnectionPool

import pgtq
from pgtq._db import gateway

ROUTES = ["direct", "session", "transaction"]
PRODUCERS = 8
PUSHES = 30


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def routed(route: str, dsn: str, bouncers: BouncerFactory) -> str:
    """The test database's DSN directly, or through a bouncer in session
    or transaction mode. The pool is smaller than the number of producers,
    so a client's transactions move between server connections."""
    if route == "direct":
        return dsn
    return through(bouncers(route, pool_size=4), dsn)


def push_from_threads(dsn: str, *, pool: ConnectionPool[Any] | None = None) -> collections.Counter[str]:
    """PRODUCERS threads push PUSHES jobs each (single pushes, then one
    push_many), each thread with its own PgTq (or all on ``pool``); the
    errors they met, by message."""
    errors: collections.Counter[str] = collections.Counter()

    def produce(n: int) -> None:
        q = pgtq.PgTq("test_queue", dsn, pool=pool)
        try:
            for i in range(PUSHES):
                try:
                    q.push("note", [f"p{n}-{i}"])
                except Exception as error:
                    errors[f"{type(error).__name__}: {error}"] += 1
            try:
                q.push_many("note", [[f"m{n}-{i}"] for i in range(10)])
            except Exception as error:
                errors[f"{type(error).__name__}: {error}"] += 1
        finally:
            q.close()

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_concurrent_producers_push_through_every_route(routed: str, db: psycopg.Connection[Any]) -> None:
    errors = push_from_threads(routed)
    assert errors == {}
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs") == PRODUCERS * (PUSHES + 10)


def test_without_the_policy_the_same_pushes_fail_in_transaction_mode(
    dsn: str, bouncers: BouncerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test above can fail: with psycopg's own prepared statements
    (PGTQ_PREPARED_STATEMENTS=on, what pgtq did before) the pushes fail as
    issue 14 found them failing."""
    monkeypatch.setenv(gateway.PREPARED_STATEMENTS_VARIABLE, "on")
    errors = push_from_threads(through(bouncers("transaction", pool_size=4), dsn))
    assert any("prepared statement" in message for message in errors), errors


def test_a_pooler_is_detected_and_prepared_statements_follow_it(
    dsn: str, bouncers: BouncerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = through(bouncers("session"), dsn)
    transaction = through(bouncers("transaction"), dsn)
    for where, behind in ((dsn, False), (session, True), (transaction, True)):
        with gateway.connect(where) as conn:
            assert gateway.behind_pooler(conn) is behind
            assert (conn.prepare_threshold is None) is behind, (
                "off through a pooler, psycopg's default directly"
            )
    monkeypatch.setenv(gateway.PREPARED_STATEMENTS_VARIABLE, "off")
    with gateway.connect(dsn) as conn:
        assert conn.prepare_threshold is None
    monkeypatch.setenv(gateway.PREPARED_STATEMENTS_VARIABLE, "sometimes")
    with pytest.raises(ValueError, match="PGTQ_PREPARED_STATEMENTS must be auto, on or off, got 'sometimes'"):
        gateway.connect(dsn)


def test_every_sql_api_call_works_through_every_route(routed: str) -> None:
    """Each call runs more often than psycopg's prepare threshold (5)."""
    with pgtq.PgTq("test_queue", routed) as q:
        database = q.database
        for n in range(8):
            ids = q.push_many("note", [[f"a{n}"], [f"b{n}"], [f"c{n}"], [f"d{n}"]])
            first, second, third = q.pop_many(3, worker="w")
            assert q.heartbeat(first) and q.complete(first, {"n": n})
            assert q.fail(second, "no", retry_in=0) == "ready"
            assert q.release(third)
            assert database.cancel(ids[3]) and database.retry(ids[3])
            assert database.job(ids[0]).state == "done"  # type: ignore[union-attr]
            assert database.tick() >= 0 and q.tick() >= 0
            assert {row.state for row in database.stats()} == {"done", "ready"}
            assert q.check_schema() == database.check_schema()
            rest = q.pop_many(10)
            assert sorted(task.id for task in rest) == ids[1:]
            assert all(q.complete(task) for task in rest)
        assert database.prune(0) == 8 * 4


def test_a_callers_own_connection_joins_its_transaction_through_every_route(
    routed: str, db: psycopg.Connection[Any]
) -> None:
    """What docs/deployment.md asks of the caller behind a transaction-mode bouncer:
    open the connection with prepare_threshold=None."""
    q = pgtq.PgTq("test_queue", routed)

    @q.handler()
    def note(token: str) -> None: ...

    with psycopg.connect(routed, prepare_threshold=None) as conn:
        for n in range(8):
            with conn.transaction():
                conn.execute("INSERT INTO side_effects (token) VALUES (%s)", [f"kept{n}"])
                note.options(conn=conn).push(f"kept{n}")
            with pytest.raises(RuntimeError), conn.transaction():
                note.options(conn=conn).push(f"dropped{n}")
                raise RuntimeError("roll back")
    tokens = [row[0] for row in db.execute("SELECT args->>0 FROM pgtq.jobs ORDER BY id")]
    assert tokens == [f"kept{n}" for n in range(8)], "committed pushes only"
    assert scalar(db, "SELECT count(*) FROM side_effects") == 8


def test_a_connection_pool_serves_producers_through_every_route(
    routed: str, db: psycopg.Connection[Any]
) -> None:
    with ConnectionPool(routed, min_size=1, max_size=3, kwargs={"autocommit": True}, open=True) as pool:
        errors = push_from_threads(routed, pool=pool)
        assert pool.get_stats()["pool_max"] == 3
        assert pgtq.Database(pool=pool).dsn == routed
    assert errors == {}
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs") == PRODUCERS * (PUSHES + 10)


@pytest.fixture
def ledger(dsn: str) -> Callable[[], dict[str, int]]:
    """How many times each token was recorded by a run of ``note``."""

    def runs() -> dict[str, int]:
        with psycopg.connect(dsn) as conn:
            return dict(
                conn.execute(
                    "SELECT token, count(*) FROM side_effects WHERE kind = 'ran' GROUP BY 1"
                ).fetchall()
            )

    return runs


def push_tokens(dsn: str, tokens: list[str]) -> None:
    with pgtq.PgTq("test_queue", dsn) as q:
        q.push_many("note", [[token] for token in tokens])


def done(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(scalar(conn, "SELECT count(*) FROM pgtq.jobs WHERE state = 'done'"))


@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_a_worker_drains_through_the_bouncer_and_a_restart_loses_nothing(
    mode: str, dsn: str, bouncers: BouncerFactory, tmp_path: Path, ledger: Callable[[], dict[str, int]]
) -> None:
    total = 1000
    bouncer = bouncers(mode, pool_size=4)
    routed = through(bouncer, dsn)
    tokens = [f"r{n}" for n in range(total)]
    push_tokens(routed, tokens)
    workers = Processes(routed, tmp_path)
    try:
        # Pipelined claims and completions (batch 20) through the bouncer; the
        # listener on a direct session.
        worker = workers.worker(
            "app:q", "--concurrency", "4", "--batch-size", "20", "--tick-interval", "0.2", "--listen-dsn", dsn
        )
        wait_until(lambda: done(dsn) >= 300, timeout=120)
        bouncer.restart()
        wait_until(lambda: done(dsn) == total, timeout=180)
        assert worker.poll() is None, "the worker outlived the restart"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        workers.stop_all()
    runs = ledger()
    output = workers.output(worker)
    missing = [token for token in tokens if token not in runs]
    twice = sorted(token for token, count in runs.items() if count > 1)
    print(f"{mode}: {total} jobs done through a bouncer restart, {len(twice)} ran twice")
    assert missing == [], "every job ran"
    assert len(twice) <= 20 + 4, f"only jobs in hand at the restart may run twice: {twice}"
    assert "database connection lost" in output, "the restart cut the worker's connection"
    assert "prepared statement" not in output
    assert "notifications arrive" in output, "the direct listen DSN hears the probe"


def test_the_listener_says_when_notifications_cannot_arrive_and_polling_serves(
    dsn: str, bouncers: BouncerFactory, tmp_path: Path
) -> None:
    routed = through(bouncers("transaction"), dsn)
    workers = Processes(routed, tmp_path)
    try:
        worker = workers.worker("app:q", "--poll-interval", "0.5")  # listens through the bouncer too
        wait_until(lambda: "notifications cannot reach this worker" in workers.output(worker), timeout=60)
        push_tokens(routed, ["polled"])
        wait_until(lambda: done(dsn) == 1, timeout=60)
        assert worker.poll() is None
    finally:
        workers.stop_all()
    lines = [line for line in workers.output(worker).splitlines() if "notifications" in line]
    assert len(lines) == 1, "one line says it, once"
    assert "--listen-dsn" in lines[0] and "polling" in lines[0]


def test_the_scheduler_and_the_cli_work_through_a_transaction_mode_bouncer(
    dsn: str, empty_dsn: str, bouncers: BouncerFactory, tmp_path: Path
) -> None:
    bouncer = bouncers("transaction", pool_size=2)
    fresh = through(bouncer, empty_dsn)
    for _ in range(2):  # install, then find it up to date (alembic's connection goes through the bouncer)
        migrated = run_cli("migrate", fresh)
        assert migrated.returncode == 0, migrated.stderr
    assert "up to date" in migrated.stdout
    routed = through(bouncer, dsn)
    with pgtq.PgTq("test_queue", routed) as q:
        job_id = q.push("note", ["later"], delay=1.5)
    processes = Processes(routed, tmp_path)
    try:
        scheduler = processes.pgtq("scheduler", "test_queue", "--interval", "0.05")
        # Ready only once the scheduler ticked it, after some thirty ticks.
        with pgtq.Database(dsn) as database:
            wait_until(lambda: database.job(job_id).state == "ready", timeout=60)  # type: ignore[union-attr]
        assert scheduler.poll() is None
    finally:
        processes.stop_all()
    assert "tick failed" not in processes.output(scheduler)
    stats = run_cli("stats", routed)
    assert stats.returncode == 0 and "test_queue" in stats.stdout
