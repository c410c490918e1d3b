"""The worker and scheduler end to end, in real subprocesses."""

from __future__ import annotations

import signal
import uuid
from typing import Any

import psycopg
from conftest import LISTENERS, Processes, scalar, wait_until

import pgtq


def states(db: psycopg.Connection[Any]) -> dict[str, int]:
    return dict(db.execute("SELECT state::text, count(*) FROM pgtq.jobs GROUP BY 1").fetchall())


def ran(db: psycopg.Connection[Any], token: str, kind: str = "ran") -> int:
    return int(scalar(db, "SELECT count(*) FROM side_effects WHERE token = %s AND kind = %s", [token, kind]))


def test_worker_runs_jobs_end_to_end(q: pgtq.PgTq, db: psycopg.Connection[Any], processes: Processes) -> None:
    note_id = q.push("note", ["hello"])
    add_id = q.push("add", [2, 3])
    flaky_id = q.push("fails_once", ["flaky"])
    missing_id = q.push("no_such_task", [], max_attempts=1)
    broken_id = q.push("always_fails", ["broken"], max_attempts=2)
    worker = processes.worker()

    wait_until(lambda: states(db).get("done") == 3 and states(db).get("failed") == 2, timeout=30)
    assert ran(db, "hello") == 1
    assert q.job(add_id).result == 5  # type: ignore[union-attr]
    assert q.job(note_id).result == "hello"  # type: ignore[union-attr]
    flaky = q.job(flaky_id)
    assert (
        flaky is not None and flaky.attempt == 2 and "first attempt of flaky fails" in str(flaky.last_error)
    )
    missing = q.job(missing_id)
    assert missing is not None and "no handler for task 'no_such_task'" in str(missing.last_error)
    broken = q.job(broken_id)
    assert broken is not None and broken.attempt == 2
    assert broken.last_error is not None
    assert broken.last_error.startswith("ValueError: broken never works")
    assert "Traceback (most recent call last)" in broken.last_error
    assert worker.poll() is None, "the worker keeps running after failures"

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    output = processes.output(worker)
    assert "task note id=" in output and "done" in output


def test_scheduled_job_runs_after_its_time(
    q: pgtq.PgTq, db: psycopg.Connection[Any], processes: Processes
) -> None:
    job_id = q.push("note", ["later"], delay=1.5)
    assert q.job(job_id).state == "scheduled"  # type: ignore[union-attr]
    processes.worker("app:q", "--tick-interval", "0.2")
    wait_until(lambda: q.job(job_id).state == "done", timeout=30)  # type: ignore[union-attr]
    job = q.job(job_id)
    assert job is not None and job.started_at is not None and job.started_at >= job.run_at


def test_several_workers_run_each_job_exactly_once(
    q: pgtq.PgTq, db: psycopg.Connection[Any], processes: Processes
) -> None:
    tokens = [f"job-{n}" for n in range(300)]
    for _ in range(3):
        processes.worker("app:q", "--batch-size", "5")
    # All three idle and listening before the jobs exist, so the push's one
    # notification wakes them together (otherwise the first worker up could
    # drain the queue alone before the others start).
    wait_until(lambda: scalar(db, LISTENERS) == 3, timeout=60)
    with psycopg.connect(q.dsn) as conn:
        for token in tokens:
            q.push("note", [token], conn=conn)
    wait_until(lambda: states(db).get("done") == len(tokens), timeout=60)
    counts = dict(db.execute("SELECT token, count(*) FROM side_effects GROUP BY token").fetchall())
    assert counts == dict.fromkeys(tokens, 1)
    assert scalar(db, "SELECT count(DISTINCT worker) FROM pgtq.jobs") >= 2, "the work was shared"


def test_killed_worker_job_is_rescued_and_completed_by_another(
    q: pgtq.PgTq, db: psycopg.Connection[Any], processes: Processes
) -> None:
    token = f"rescue-{uuid.uuid4().hex[:6]}"
    job_id = q.push("blocks_first_time", [token])
    doomed = processes.worker("app:q", "--lease", "2", "--tick-interval", "0.2")
    wait_until(lambda: ran(db, token, "started") == 1, timeout=30)
    first_worker = scalar(db, "SELECT worker FROM pgtq.jobs WHERE id = %s", [job_id])
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)

    processes.worker("app:q", "--lease", "2", "--tick-interval", "0.2")
    wait_until(lambda: q.job(job_id).state == "done", timeout=60)  # type: ignore[union-attr]
    job = q.job(job_id)
    assert job is not None
    assert job.attempt == 2, "the rescue counted the lost attempt"
    assert job.worker != first_worker, "another worker completed it"
    assert "lease expired" in str(job.last_error)
    assert ran(db, token) == 1


def test_scheduler_promotes_and_two_can_run(
    q: pgtq.PgTq, db: psycopg.Connection[Any], processes: Processes
) -> None:
    ids = [q.push("note", [f"s{n}"], delay=1) for n in range(20)]
    schedulers = [processes.pgtq("scheduler", "test_queue", "--interval", "0.2") for _ in range(2)]
    for scheduler in schedulers:  # both running (signal handlers installed) before we signal them
        wait_until(lambda scheduler=scheduler: "scheduler ticking" in processes.output(scheduler))
    wait_until(lambda: states(db).get("ready") == len(ids), timeout=30)
    assert states(db) == {"ready": len(ids)}
    for scheduler in schedulers:
        scheduler.send_signal(signal.SIGTERM)
    assert [s.wait(timeout=30) for s in schedulers] == [0, 0]


def test_worker_stops_on_sigint(processes: Processes, q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    worker = processes.worker()
    wait_until(lambda: scalar(db, "SELECT count(*) FROM pgtq.workers") == 1, timeout=30)
    worker.send_signal(signal.SIGINT)
    assert worker.wait(timeout=30) == 0
    assert scalar(db, "SELECT count(*) FROM pgtq.workers") == 0, "a clean stop unregisters the worker"
