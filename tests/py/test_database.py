"""``pgtq.Database`` (what concerns every queue) and the database-wide
methods of ``PgTq``, on real data: stats of several queues, tick, prune,
the schema version check, and ``pgtq scheduler '*'`` / ``pgtq stats``."""

from __future__ import annotations

import json
import signal
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from conftest import Processes, run_cli, scalar, wait_until

import pgtq
from pgtq._db.schema import schema_version
from pgtq.worker import Worker


def database_clock_passed(db: psycopg.Connection[Any], moment: Any) -> bool:
    return bool(scalar(db, "SELECT now() > %s", [moment]))


def states_by_queue(db: psycopg.Connection[Any]) -> list[tuple[str, str, int]]:
    return db.execute(
        "SELECT queue, state::text, count(*)::int FROM pgtq.jobs GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()


@pytest.fixture
def database(dsn: str) -> Any:
    with pgtq.Database(dsn) as opened:
        yield opened


def test_stats_of_every_queue_and_of_one(dsn: str, database: pgtq.Database) -> None:
    alpha, beta = pgtq.PgTq("alpha", dsn), pgtq.PgTq("beta", dsn)
    for n in range(3):
        alpha.push("a", [n])
    done = alpha.pop()
    assert done is not None and alpha.complete(done)
    assert alpha.pop() is not None  # running
    alpha.push("a", ["later"], delay=3600)
    assert alpha.cancel(alpha.push("a", ["unwanted"]))
    beta.push("b", ["doomed"], max_attempts=1)
    doomed = beta.pop()
    assert doomed is not None and beta.fail(doomed, "no") == "failed"
    beta.push("b", ["waiting"])

    every = [(s.queue, s.state, s.jobs) for s in database.stats()]
    assert every == [  # by queue, then in the order of the job states
        ("alpha", "scheduled", 1),
        ("alpha", "ready", 1),
        ("alpha", "running", 1),
        ("alpha", "done", 1),
        ("alpha", "cancelled", 1),
        ("beta", "ready", 1),
        ("beta", "failed", 1),
    ]
    assert all(s.oldest_age >= timedelta(0) for s in database.stats())
    assert [(s.queue, s.state, s.jobs) for s in alpha.stats(all_queues=True)] == every
    assert [(s.state, s.jobs) for s in beta.stats()] == [("ready", 1), ("failed", 1)]
    assert [(s.queue, s.state) for s in database.stats("beta")] == [("beta", "ready"), ("beta", "failed")]
    assert database.stats("gamma") == []

    printed = run_cli("stats", dsn, "--json")
    assert printed.returncode == 0
    overview = json.loads(printed.stdout)["queues"]
    assert [(q["queue"], state, n) for q in overview for state, n in q["jobs"].items() if n] == every
    only_beta = json.loads(run_cli("stats", dsn, "--queue", "beta", "--json").stdout)["queues"]
    assert [q["queue"] for q in only_beta] == ["beta"]
    alpha.close()
    beta.close()


def test_tick_of_one_queue_and_of_every_queue(dsn: str, db: psycopg.Connection[Any]) -> None:
    alpha, beta = pgtq.PgTq("alpha", dsn), pgtq.PgTq("beta", dsn)
    alpha.push("a", ["due soon"], delay=0.2)
    beta.push("b", ["due soon"], delay=0.2)
    assert alpha.tick() == 0, "not due yet"
    due = scalar(db, "SELECT max(run_at) FROM pgtq.jobs")
    wait_until(lambda: database_clock_passed(db, due))

    assert alpha.tick() == 1, "promotes alpha's job only"
    assert states_by_queue(db) == [("alpha", "ready", 1), ("beta", "scheduled", 1)]
    assert alpha.tick(all_queues=True) == 1, "then beta's"
    assert states_by_queue(db) == [("alpha", "ready", 1), ("beta", "ready", 1)]
    assert alpha.tick(all_queues=True) == 0, "nothing left to move"
    alpha.close()
    beta.close()


def test_database_tick_rescues_an_expired_lease(
    dsn: str, db: psycopg.Connection[Any], database: pgtq.Database
) -> None:
    with pgtq.PgTq("alpha", dsn) as alpha:
        alpha.push("a", ["abandoned"])
        task = alpha.pop(lease=0.2)
    assert task is not None and task.lease_expires_at is not None
    wait_until(lambda: database_clock_passed(db, task.lease_expires_at))
    assert database.tick("beta") == 0, "another queue's tick leaves it"
    assert database.tick() == 1
    job = database.job(task.id)
    assert job is not None and job.state in ("scheduled", "ready") and job.attempt == 1
    assert "lease expired" in str(job.last_error)


def test_prune_keeps_failed_jobs_unless_asked_and_works_in_batches(dsn: str, database: pgtq.Database) -> None:
    q = pgtq.PgTq("alpha", dsn)
    q.push_many("finished", [(n,) for n in range(5)])
    for task in q.pop_many(5):
        assert q.complete(task)
    assert q.cancel(q.push("cancelled"))
    q.push("failed", max_attempts=1)
    failing = q.pop()
    assert failing is not None and q.fail(failing, "no") == "failed"
    q.push("running")
    assert q.pop() is not None
    q.push("ready")

    assert database.prune(timedelta(hours=1)) == 0, "everything finished just now"
    assert database.prune(0, batch=2) == 2
    assert database.prune(0, batch=2) == 2
    assert database.prune(0, batch=2) == 2, "the last done job and the cancelled one"
    assert database.prune(0, batch=2) == 0, "the failed job is kept by default"
    assert [(s.state, s.jobs) for s in q.stats()] == [("ready", 1), ("running", 1), ("failed", 1)]
    assert q.prune(0, include_failed=True) == 1, "PgTq.prune hands over to the database"
    assert [(s.state, s.jobs) for s in q.stats()] == [("ready", 1), ("running", 1)], "live jobs stay"
    with pytest.raises(pgtq.InvalidJobError, match="batch must be between 1 and 1000000"):
        database.prune(0, batch=0)
    q.close()


def test_job_cancel_and_retry_by_id(dsn: str, database: pgtq.Database) -> None:
    with pgtq.PgTq("alpha", dsn) as q:
        job_id = q.push("a")
    assert database.cancel(job_id) is True
    job = database.job(job_id)
    assert job is not None and job.state == "cancelled"
    assert database.retry(job_id) is True
    assert database.job(job_id).state == "ready"  # type: ignore[union-attr]
    assert database.job(job_id + 1000) is None


def test_an_older_schema_is_refused_with_the_way_to_upgrade(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION pgtq.version() RETURNS text LANGUAGE sql AS $$ SELECT '0.0.1' $$"
        )
    expected = rf"pgtq schema 0\.0\.1, older than {schema_version()} .*upgrade it with `pgtq migrate DSN`"
    with pgtq.Database(dsn) as database, pytest.raises(pgtq.SchemaVersionError, match=expected):
        database.check_schema()
    q = pgtq.PgTq("test_queue", dsn)
    with pytest.raises(pgtq.SchemaVersionError, match=expected):
        Worker(q).run()  # refuses at start, before it claims anything
    q.close()


def test_scheduler_for_every_queue(q: pgtq.PgTq, db: psycopg.Connection[Any], processes: Processes) -> None:
    for name in ("alpha", "beta", "gamma"):
        q.push("note", [name], delay=1, queue=name)
    scheduler = processes.pgtq("scheduler", "*", "--interval", "0.2")
    wait_until(lambda: "scheduler ticking all queues" in processes.output(scheduler))
    wait_until(lambda: all(state == "ready" for _, state, _ in states_by_queue(db)), timeout=30)
    assert states_by_queue(db) == [("alpha", "ready", 1), ("beta", "ready", 1), ("gamma", "ready", 1)]
    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=30) == 0
