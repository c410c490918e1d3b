"""The README's examples run as written (against this test's database)."""

from __future__ import annotations

import re
import subprocess
import threading
from datetime import timedelta
from typing import Any

import psycopg
from conftest import REPO, scalar, wait_until, worker_running
from psycopg.conninfo import conninfo_to_dict

import pgtq
from pgtq.worker import Worker, WorkerSettings

README = (REPO / "README.md").read_text()


def code_block(after_heading: str, language: str) -> str:
    """The first ``language`` code block after a heading of the README."""
    section = README[README.index(after_heading) :]
    match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert match, f"no {language} block after {after_heading!r}"
    return match.group(1)


def run_psql(dsn: str, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with psql against the database at ``dsn``, stopping at the first error."""
    params = conninfo_to_dict(dsn)
    return subprocess.run(
        [
            "psql",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(params["host"]),
            "-p",
            str(params["port"]),
            "-U",
            str(params["user"]),
            "-d",
            str(params["dbname"]),
        ],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )


def psql_output(dsn: str, script: str) -> str:
    """What ``script`` printed in psql; it must succeed."""
    result = run_psql(dsn, script)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_business_transaction_example_in_psql(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric)")
    psql_output(dsn, code_block("### Pushing inside a business transaction", "sql"))
    assert scalar(db, "SELECT count(*) FROM orders") == 1
    job = db.execute("SELECT queue, task, args FROM pgtq.jobs").fetchone()
    assert job == ("emails", "send_receipt", [1042])


def test_job_keys_example_in_psql(dsn: str, db: psycopg.Connection[Any]) -> None:
    output = psql_output(dsn, code_block("### Job keys", "sql"))
    jobs = db.execute("SELECT id, args, state::text FROM pgtq.jobs WHERE job_key = 'user:42'").fetchall()
    assert [(args, state) for _, args, state in jobs] == [([42, "full"], "scheduled")], "one job, replaced"
    lines = [line.strip() for line in output.splitlines()]
    assert lines.count(str(jobs[0][0])) == 3, "each of the three pushes returned the job's id"


def test_python_quick_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    example = code_block("## The Python API", "python")
    runnable = example[: example.index("@q.handler(name=")].replace("dbname=q user=postgres", dsn)
    namespace: dict[str, Any] = {}
    exec(compile(runnable, "README.md", "exec"), namespace)
    assert namespace["add_numbers"](2, 3) == 5
    assert db.execute("SELECT task, args FROM pgtq.jobs WHERE id = %s", [namespace["job_id"]]).fetchone() == (
        "add_numbers",
        [2, 3],
    )
    namespace["q"].close()


def test_periodic_tasks_example_in_psql(dsn: str, db: psycopg.Connection[Any]) -> None:
    result = run_psql(dsn, code_block("### Periodic tasks", "sql"))
    assert result.returncode == 0, result.stderr
    assert "morning-report" in result.stdout, "schedule and the view show it"
    assert "30 7 * * MON-FRI | Europe/Paris" in result.stdout
    assert scalar(db, "SELECT count(*) FROM pgtq.schedules") == 0, "and unschedule removed it"


def run_python(example: str, dsn: str) -> dict[str, Any]:
    """Run a README example against this test's database; its names."""
    namespace: dict[str, Any] = {}
    exec(compile(example.replace('"dbname=app"', repr(dsn)), "README.md", "exec"), namespace)
    namespace["q"].close()
    return namespace


def test_job_keys_python_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    names = run_python(code_block("### Job keys", "python"), dsn)
    assert names["first"] == names["again"] == names["later"]
    assert names["ids"][0] == names["ids"][2] != names["ids"][1]
    jobs = db.execute("SELECT job_key, args, kwargs, state::text FROM pgtq.jobs ORDER BY id").fetchall()
    assert jobs == [
        ("sync_user:42", [42], {"full": True}, "scheduled"),  # replaced: the newest push, 30 s ahead
        ("sync_user:1", [1], {}, "ready"),
        ("sync_user:2", [2], {}, "ready"),
    ]


def test_waiting_python_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    """The example waits for jobs a worker runs: one runs here, in a thread,
    with the example's handler."""
    served = pgtq.PgTq("emails", dsn)

    @served.handler()
    def send_receipt(order_id: int) -> dict[str, int]:
        return {"sent": order_id}

    worker = Worker(served, WorkerSettings(concurrency=4, batch_size=20, poll_interval=0.5))
    running = threading.Thread(target=worker.run)
    running.start()
    try:
        names = run_python(code_block("### Waiting for a result", "python"), dsn)
    finally:
        worker.stop()
        running.join(timeout=60)
    assert names["receipt"] == {"sent": 1042}
    assert [outcome.result for outcome in names["outcomes"]] == [{"sent": n} for n in range(100)]
    assert names["failed"] == []
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE state = 'done'") == 101


def test_periodic_tasks_python_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    run_python(code_block("### Periodic tasks", "python"), dsn)
    assert db.execute("SELECT name, cron, timezone, queue, task, kwargs FROM pgtq.schedules").fetchall() == [
        (
            "reports:send_report",
            "30 7 * * MON-FRI",
            "Europe/Paris",
            "reports",
            "send_report",
            {"to": "ops@example.com"},
        )
    ]


def run_example(after_heading: str, dsn: str) -> dict[str, Any]:
    """Run the first Python block after a heading against this test's database;
    its names, the queue ``q`` left open for the test to use."""
    namespace: dict[str, Any] = {}
    exec(
        compile(code_block(after_heading, "python").replace("dbname=app", dsn), "README.md", "exec"),
        namespace,
    )
    return namespace


def job_state(db: psycopg.Connection[Any], job_id: int) -> str:
    return str(scalar(db, "SELECT state::text FROM pgtq.jobs WHERE id = %s", [job_id]))


def test_cancelling_a_running_job_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    example = run_example("### Cancelling a running job", dsn)
    q, build_report, fetch_feed = example["q"], example["build_report"], example["fetch_feed"]
    assert job_state(db, example["job_id"]) == "cancelled", "cancelled before it started"

    report, feed = build_report.push(43, pages=10_000), fetch_feed.push("https://example.com/feed")
    with worker_running(q):
        wait_until(lambda: job_state(db, report) == job_state(db, feed) == "running")
        assert q.cancel(report) and q.cancel(feed)
        wait_until(lambda: job_state(db, report) == job_state(db, feed) == "cancelled")
    assert str(scalar(db, "SELECT result FROM pgtq.jobs WHERE id = %s", [report])).startswith(
        "stopped at page"
    )
    error = str(scalar(db, "SELECT last_error FROM pgtq.jobs WHERE id = %s", [feed]))
    assert error.startswith(
        f"Cancelled: job {feed} was asked to cancel while it ran; its coroutine was cancelled"
    )
    q.close()


def test_retry_control_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    example = run_example("### Retry control", dsn)
    q, send = example["q"], example["send"]
    policies = db.execute("SELECT args, backoff_base, backoff_cap FROM pgtq.jobs ORDER BY id").fetchall()
    assert policies == [
        (["ann", "hi"], timedelta(seconds=30), timedelta(minutes=10)),
        (["bob", "hi"], timedelta(seconds=5), timedelta(seconds=60)),
    ]
    ids = {account: send.push(account, "hi") for account in ("closed", "busy", "flaky", "nobody")}
    with worker_running(q):
        wait_until(lambda: all(job_state(db, i) in ("scheduled", "failed") for i in ids.values()))
    ended = {
        account: (job_state(db, i), scalar(db, "SELECT attempt FROM pgtq.jobs WHERE id = %s", [i]))
        for account, i in ids.items()
    }
    assert ended == {
        "closed": ("failed", 1),
        "busy": ("scheduled", 1),
        "flaky": ("scheduled", 1),
        "nobody": ("failed", 1),
    }
    waits = scalar(db, "SELECT run_at - started_at FROM pgtq.jobs WHERE id = %s", [ids["busy"]])
    assert timedelta(minutes=2) <= waits < timedelta(minutes=3), "Retry(delay=120)"
    waits = scalar(db, "SELECT run_at - started_at FROM pgtq.jobs WHERE id = %s", [ids["flaky"]])
    assert timedelta(seconds=24) <= waits < timedelta(minutes=1), "the handler's backoff: 30 s, jittered"
    q.close()
