"""The command line: helpful errors, no tracebacks for user mistakes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import Processes, run_cli, scalar, wait_until

from pgtq._db.schema import schema_version


def test_worker_with_a_module_that_fails_to_import(processes: Processes) -> None:
    result = run_cli("worker", "broken_app:q", env=processes.env())
    assert result.returncode == 2
    assert (
        "cannot import module 'broken_app': RuntimeError: this module is broken on purpose" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_worker_target_must_name_a_queue(processes: Processes) -> None:
    result = run_cli("worker", "app:add", env=processes.env())
    assert result.returncode == 2
    assert "app:add is a Handler, not a pgtq.PgTq" in result.stderr
    result = run_cli("worker", "app", env=processes.env())
    assert result.returncode == 2 and "expected MODULE:QUEUE_OBJECT" in result.stderr


def test_unreachable_database_is_reported_without_traceback() -> None:
    result = run_cli("migrate", "host=127.0.0.1 port=1 dbname=x connect_timeout=2")
    assert result.returncode == 1
    assert result.stderr.startswith("pgtq: error: cannot connect to the pgtq database")
    assert "Traceback" not in result.stderr


def test_missing_dsn_is_reported() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    result = run_cli("stats", env=env)
    assert result.returncode == 2 and "no database given" in result.stderr


def test_migrate_and_stats(empty_dsn: str) -> None:
    first = run_cli("migrate", empty_dsn)
    assert first.returncode == 0 and f"not installed -> {schema_version()}" in first.stdout
    again = run_cli("install", empty_dsn)
    assert again.returncode == 0 and f"up to date at {schema_version()}" in again.stdout
    stats = run_cli("stats", empty_dsn)
    assert stats.returncode == 0 and stats.stdout.strip() == "no jobs"


def test_version() -> None:
    result = run_cli("version")
    version = schema_version()
    assert result.returncode == 0 and result.stdout.startswith(f"pgtq {version} (SQL schema {version})")


# -- the operator's commands, against a real server ---------------------------------

TRACEBACK = 'Traceback (most recent call last):\n  File "app.py", line 3, in add\nValueError: boom'


def cli_env(dsn: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PGTQ_DSN"] = dsn
    env["COLUMNS"] = "200"
    return env


def pgtq_cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=cli_env(dsn))


def one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("pgtq: error: "), result.stderr
    assert text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def filled(dsn: str, db: psycopg.Connection[Any]) -> dict[str, int]:
    """Jobs in every state the commands look at: two ready and one scheduled
    in 'mail', a failed one (with a traceback), a done one and a running one
    in 'img', and a history sample."""
    ids = {}
    ids["ready1"] = scalar(db, "SELECT pgtq.push('mail', 'send', '[1]')")
    ids["ready2"] = scalar(db, "SELECT pgtq.push('mail', 'send', '[2]')")
    ids["later"] = scalar(db, "SELECT pgtq.push('mail', 'digest', run_at => now() + interval '1 hour')")
    ids["failed"] = scalar(db, "SELECT pgtq.push('img', 'resize', '[\"a.png\"]', max_attempts => 1)")
    ids["done"] = scalar(db, "SELECT pgtq.push('img', 'resize', '[\"b.png\"]')")
    ids["running"] = scalar(db, "SELECT pgtq.push('img', 'thumb')")
    claimed = {row[0]: row[1] for row in db.execute("SELECT id, lease FROM pgtq.pop('img', 'w1', 3)")}
    db.execute("SELECT pgtq.fail(%s, %s, %s)", [ids["failed"], claimed[ids["failed"]], TRACEBACK])
    db.execute("SELECT pgtq.complete(%s, %s, '{\"ok\": true}')", [ids["done"], claimed[ids["done"]]])
    db.execute("SELECT pgtq.tick()")
    return ids


def test_every_command_has_help() -> None:
    for command in (
        "worker", "scheduler", "migrate", "install", "stats", "jobs", "job", "workers", "schedules",
        "unschedule", "retry", "cancel", "delete", "purge", "push", "push-file", "pause", "resume",
        "configure-queue", "queues", "cron", "dashboard", "version",
    ):  # fmt: skip
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "Usage: pgtq" in result.stdout, command
    for sub in ("install", "remove"):
        assert run_cli("cron", sub, "--help").returncode == 0
    assert "Exit codes: 0 done; 1 operational error" in " ".join(run_cli("--help").stdout.split())


def test_a_usage_mistake_is_one_line_with_exit_2(dsn: str) -> None:
    one_line_error(pgtq_cli(dsn, "jobs", "--bogus"), 2, "No such option '--bogus'")
    one_line_error(pgtq_cli(dsn, "jobs", "--state", "lost"), 2, "'lost' is not one of")
    one_line_error(pgtq_cli(dsn, "nosuchcommand"), 2, "No such command 'nosuchcommand'")
    one_line_error(
        pgtq_cli(dsn, "purge", "--state", "done", "--older-than", "soon", "--yes"), 2, "7d, got 'soon'"
    )


def test_stats_table_and_json(dsn: str, filled: dict[str, int]) -> None:
    table = pgtq_cli(dsn, "stats")
    assert table.returncode == 0, table.stderr
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in table.stdout.splitlines()]
    rows = {row[0]: row[1:] for row in cells if row}
    # queue | scheduled ready running done failed cancelled | oldest ready | done/min failed/min | workers
    assert rows["mail"][:6] == ["1", "2", "0", "0", "0", "0"]
    assert rows["img"][:6] == ["0", "0", "1", "1", "1", "0"] and rows["img"][6] == "-"
    overview = json.loads(pgtq_cli(dsn, "stats", "--json").stdout)
    by_queue = {item["queue"]: item for item in overview["queues"]}
    assert by_queue["mail"]["jobs"] == {
        "scheduled": 1, "ready": 2, "running": 0, "done": 0, "failed": 0, "cancelled": 0,
    }  # fmt: skip
    assert by_queue["img"]["jobs"]["failed"] == 1 and by_queue["mail"]["oldest_ready_age_seconds"] >= 0
    assert by_queue["mail"]["paused"] is False
    assert by_queue["mail"]["limit"] == {"max_running": None, "rate_limit": None, "rate_period_seconds": None}
    assert overview["history_age_seconds"] is not None and overview["period_seconds"] == 300
    only = json.loads(pgtq_cli(dsn, "stats", "--queue", "img", "--json").stdout)
    assert [item["queue"] for item in only["queues"]] == ["img"]


def test_stats_counts_throughput_from_the_history(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT pgtq.push_many('q', 't', array_fill('[]'::jsonb, ARRAY[6]))")
    db.execute(
        "SELECT pgtq.complete(id, lease) FROM pgtq.pop('q', 'w', 6, as_of => now() - interval '30 seconds')"
    )
    db.execute("SELECT pgtq.tick()")  # the first sample counts what finished in the minute before it
    overview = json.loads(pgtq_cli(dsn, "stats", "--json", "--period", "5m").stdout)
    [queue] = overview["queues"]
    assert queue["recent"]["completed"] == 6 and queue["recent"]["completed_per_minute"] == 1.2


def test_stats_watch_refreshes_until_interrupted(processes: Processes, filled: dict[str, int]) -> None:
    watching = processes.pgtq("stats", "--watch", "--interval", "0.2", "--json")
    wait_until(lambda: processes.output(watching).count('"queues"') >= 2)
    watching.send_signal(signal.SIGINT)
    assert watching.wait(timeout=30) == 0


def test_stats_watch_ends_at_ctrl_c_during_a_refresh(
    processes: Processes, dsn: str, db: psycopg.Connection[Any], filled: dict[str, int]
) -> None:
    """Ctrl-C during a refresh that waits on the database ends the watch
    with 0 once that refresh is done (it used to exit 130, or hang when the
    interrupt cut a call in half)."""
    waiting_on_lock = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE pgtq._job IN ACCESS EXCLUSIVE MODE")
        watching = processes.pgtq("stats", "--watch", "--interval", "0.2", "--json")
        wait_until(lambda: scalar(db, waiting_on_lock) >= 1)
        watching.send_signal(signal.SIGINT)
        blocker.rollback()
    assert watching.wait(timeout=30) == 0
    assert processes.output(watching).count('"queues"') <= 1  # no refresh after the interrupted one


def test_jobs_lists_filters_and_pages(dsn: str, filled: dict[str, int]) -> None:
    listed = json.loads(pgtq_cli(dsn, "jobs", "--json").stdout)
    assert [job["id"] for job in listed] == sorted(filled.values(), reverse=True)
    mail = json.loads(pgtq_cli(dsn, "jobs", "--queue", "mail", "--state", "ready", "--json").stdout)
    assert [job["id"] for job in mail] == [filled["ready2"], filled["ready1"]]
    assert mail[0]["args"] == [2] and mail[0]["state"] == "ready"
    page = json.loads(pgtq_cli(dsn, "jobs", "--limit", "2", "--before", str(filled["done"]), "--json").stdout)
    assert [job["id"] for job in page] == [filled["failed"], filled["later"]]
    table = pgtq_cli(dsn, "jobs", "--task", "resize")
    assert table.returncode == 0 and "ValueError: boom" in table.stdout and "send" not in table.stdout
    more = pgtq_cli(dsn, "jobs", "--limit", "1")
    assert f"more: pgtq jobs --before {filled['running']}" in more.stdout
    assert pgtq_cli(dsn, "jobs", "--queue", "nowhere").stdout.strip() == "no jobs"


def test_job_shows_everything_with_the_traceback(dsn: str, filled: dict[str, int]) -> None:
    shown = pgtq_cli(dsn, "job", str(filled["failed"]))
    assert shown.returncode == 0
    assert TRACEBACK in shown.stdout and "resize" in shown.stdout and '["a.png"]' in shown.stdout
    record = json.loads(pgtq_cli(dsn, "job", str(filled["done"]), "--json").stdout)
    assert record["result"] == {"ok": True} and record["state"] == "done" and record["worker"] == "w1"
    one_line_error(pgtq_cli(dsn, "job", "999999"), 3, "no job 999999")
    one_line_error(pgtq_cli(dsn, "job", "abc"), 2, "'abc' is not a valid integer")


def test_retry_one_and_in_bulk(dsn: str, db: psycopg.Connection[Any], filled: dict[str, int]) -> None:
    assert (
        pgtq_cli(dsn, "retry", str(filled["failed"])).stdout.strip()
        == f"job {filled['failed']} is ready again"
    )
    assert scalar(db, "SELECT state::text FROM pgtq.jobs WHERE id = %s", [filled["failed"]]) == "ready"
    one_line_error(pgtq_cli(dsn, "retry", str(filled["ready1"])), 3, "is ready: only failed or cancelled")
    one_line_error(pgtq_cli(dsn, "retry", "999999"), 3, "no job 999999")
    one_line_error(pgtq_cli(dsn, "retry"), 2, "give a job ID or --failed")
    one_line_error(pgtq_cli(dsn, "retry", "1", "--failed"), 2, "give a job ID or --failed")
    for n in range(3):
        job_id = scalar(db, "SELECT pgtq.push('bulk', %s, max_attempts => 1)", [f"t{n % 2}"])
        lease = scalar(db, "SELECT lease FROM pgtq.pop('bulk')")
        db.execute("SELECT pgtq.fail(%s, %s, 'x')", [job_id, lease])
    assert json.loads(
        pgtq_cli(dsn, "retry", "--failed", "--queue", "bulk", "--task", "t0", "--json").stdout
    ) == {"retried": 2}
    assert pgtq_cli(dsn, "retry", "--failed").stdout.strip() == "retried 1 failed job"
    one_line_error(pgtq_cli(dsn, "retry", "--failed", "--queue", ""), 2, "queue name must be 1 to 200")


def test_cancel_and_delete(dsn: str, db: psycopg.Connection[Any], filled: dict[str, int]) -> None:
    assert json.loads(pgtq_cli(dsn, "cancel", str(filled["later"]), "--json").stdout) == {
        "cancelled": 1, "id": filled["later"], "state": "cancelled",
    }  # fmt: skip
    one_line_error(pgtq_cli(dsn, "cancel", str(filled["done"])), 3, "is done: a finished job cannot be")
    one_line_error(pgtq_cli(dsn, "cancel", "999999"), 3, "no job 999999")
    one_line_error(pgtq_cli(dsn, "delete", str(filled["ready1"])), 3, "is ready: only finished jobs")
    assert pgtq_cli(dsn, "delete", str(filled["later"])).stdout.strip() == f"job {filled['later']} deleted"
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE id = %s", [filled["later"]]) == 0


def test_purge_asks_unless_yes(dsn: str, db: psycopg.Connection[Any], filled: dict[str, int]) -> None:
    refused = pgtq_cli(dsn, "purge", "--state", "done", "--older-than", "0s")
    one_line_error(refused, 2, "This needs a confirmation: pass --yes")
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE state = 'done'") == 1
    kept = pgtq_cli(dsn, "purge", "--state", "done", "--older-than", "7d", "--yes")
    assert kept.stdout.strip() == "deleted 0 jobs"
    gone = json.loads(
        pgtq_cli(
            dsn, "purge", "--state", "done", "--state", "failed", "--older-than", "0s", "-y", "--json"
        ).stdout
    )
    assert gone == {"deleted": 2}
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE state IN ('done', 'failed')") == 0
    one_line_error(pgtq_cli(dsn, "purge", "--older-than", "1d", "--yes"), 2, "Missing option '--state'")


def test_push(dsn: str, db: psycopg.Connection[Any]) -> None:
    pushed = pgtq_cli(dsn, "push", "emails", "send", "--args", '["ann@example.com"]', "--kwargs", '{"n": 1}')
    assert pushed.returncode == 0 and pushed.stdout.startswith("pushed job ")
    job_id = int(pushed.stdout.split()[-1])
    row = db.execute("SELECT args, kwargs, state::text FROM pgtq.jobs WHERE id = %s", [job_id]).fetchone()
    assert row == (["ann@example.com"], {"n": 1}, "ready")
    later = json.loads(
        pgtq_cli(dsn, "push", "emails", "send", "--in", "10m", "--priority", "5", "--json").stdout
    )
    delay = scalar(db, "SELECT run_at - created_at FROM pgtq.jobs WHERE id = %s", [later["id"]])
    assert delay == timedelta(minutes=10) and later["queue"] == "emails"
    one_line_error(pgtq_cli(dsn, "push", "q", "t", "--args", "[1,"), 2, "--args is not JSON")
    one_line_error(pgtq_cli(dsn, "push", "q", "t", "--args", '{"a": 1}'), 2, "--args must be a JSON array")
    one_line_error(pgtq_cli(dsn, "push", "q", "t", "--kwargs", "[]"), 2, "--kwargs must be a JSON object")
    one_line_error(pgtq_cli(dsn, "push", "q", "t", "--in", "later"), 2, "--in must be a duration")
    one_line_error(pgtq_cli(dsn, "push", "q\tx", "t"), 2, "contains a control character")
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs") == 2


def test_push_file_in_batches(dsn: str, db: psycopg.Connection[Any], tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text('[1]\n{"args": [2], "kwargs": {"k": "v"}}\n\n{"kwargs": {"only": true}}\n[4]\n[5]\n')
    result = pgtq_cli(dsn, "push-file", "bulk", "t", str(good), "--batch-size", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["pushed"] == 5 and report["batches"] == 3
    rows = db.execute("SELECT args, kwargs FROM pgtq.jobs WHERE queue = 'bulk' ORDER BY id").fetchall()
    assert rows == [([1], {}), ([2], {"k": "v"}), ([], {"only": True}), ([4], {}), ([5], {})]
    assert "pushed 5 jobs in 1 batch(es)" in pgtq_cli(dsn, "push-file", "other", "t", str(good)).stdout


def test_push_file_names_a_bad_line_and_pushes_nothing_of_its_batch(
    dsn: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("[1]\n[2]\n[3]\n{oops\n[5]\n")
    one_line_error(
        pgtq_cli(dsn, "push-file", "bulk", "t", str(bad), "--batch-size", "2"), 2, "line 4: not JSON"
    )
    assert [r[0] for r in db.execute("SELECT args FROM pgtq.jobs ORDER BY id")] == [[1], [2]], "batch 1 only"
    shape = tmp_path / "shape.jsonl"
    shape.write_text('[1]\n"text"\n')
    one_line_error(pgtq_cli(dsn, "push-file", "shape", "t", str(shape)), 2, "line 2: expected a JSON array")
    db.execute("SELECT pgtq.configure(max_payload_bytes => 64)")
    big = tmp_path / "big.jsonl"
    big.write_text("[1]\n[2]\n" + json.dumps(["x" * 200]) + "\n")
    one_line_error(pgtq_cli(dsn, "push-file", "big", "t", str(big)), 2, "line 3: pgtq: payload of job 3")
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue IN ('shape', 'big')") == 0
    one_line_error(pgtq_cli(dsn, "push-file", "q", "t", str(tmp_path / "none.jsonl")), 2, "does not exist")


def test_workers(dsn: str, db: psycopg.Connection[Any]) -> None:
    assert pgtq_cli(dsn, "workers").stdout.strip() == "no live workers"
    db.execute("SELECT pgtq.register_worker('w-1', 'host-a', 42, ARRAY['mail', 'img'])")
    [worker] = json.loads(pgtq_cli(dsn, "workers", "--json").stdout)
    assert (worker["id"], worker["host"], worker["pid"], worker["queues"]) == (
        "w-1",
        "host-a",
        42,
        ["mail", "img"],
    )
    assert "host-a" in pgtq_cli(dsn, "workers").stdout


def test_schedules_are_detected_not_guessed(dsn: str, db: psycopg.Connection[Any]) -> None:
    assert pgtq_cli(dsn, "schedules").stdout.strip() == "no schedules"
    db.execute("SELECT pgtq.schedule('nightly', '0 3 * * *', 'mail', 'digest')")
    listed = json.loads(pgtq_cli(dsn, "schedules", "--json").stdout)
    assert [(s["name"], s["cron"], s["queue"], s["task"]) for s in listed] == [
        ("nightly", "0 3 * * *", "mail", "digest")
    ]
    assert "nightly" in pgtq_cli(dsn, "schedules").stdout
    # A schema without the view (before 0.2.0's cron feature) is detected, not guessed.
    db.execute("DROP VIEW pgtq.schedules CASCADE")  # schedule() returns its row type
    one_line_error(
        pgtq_cli(dsn, "schedules"), 4, "has no schedules: they arrive with the cron schedules feature"
    )


def test_unschedule_removes_a_schedule_by_name(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT pgtq.schedule('nightly', '0 3 * * *', 'mail', 'digest')")
    assert pgtq_cli(dsn, "unschedule", "nightly").stdout.strip() == "schedule 'nightly' removed"
    assert scalar(db, "SELECT count(*) FROM pgtq.schedules") == 0
    one_line_error(pgtq_cli(dsn, "unschedule", "nightly"), 3, "no schedule named 'nightly'")
    db.execute("SELECT pgtq.schedule('hourly', '@hourly', 'mail', 'digest')")
    assert json.loads(pgtq_cli(dsn, "unschedule", "hourly", "--json").stdout) == {"unscheduled": "hourly"}


def test_a_running_job_asked_to_cancel_shows_in_stats(dsn: str, db: psycopg.Connection[Any]) -> None:
    running = scalar(db, "SELECT pgtq.push('img', 'thumb')")
    db.execute("SELECT pgtq.pop('img', 'w1')")
    assert pgtq_cli(dsn, "cancel", str(running)).stdout.strip() == (
        f"job {running} is running: asked to stop (it ends cancelled when its worker stops it)"
    )
    [queue] = json.loads(pgtq_cli(dsn, "stats", "--json").stdout)["queues"]
    assert (queue["jobs"]["running"], queue["cancel_requested"]) == (1, 1)
    table = pgtq_cli(dsn, "stats").stdout
    assert "cancel asked" in table
    row = next(line for line in table.splitlines() if "│ img" in line)
    assert row.split("│")[-2].strip() == "1"


def test_pause_resume_and_limits(dsn: str, filled: dict[str, int], db: psycopg.Connection[Any]) -> None:
    paused = pgtq_cli(dsn, "pause", "mail")
    assert paused.returncode == 0 and paused.stdout.strip() == "queue mail paused", paused.stderr
    assert scalar(db, "SELECT paused FROM pgtq.queues WHERE queue = 'mail'") is True
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('mail')") == 0, "no job of a paused queue is handed out"
    one_line_error(pgtq_cli(dsn, "pause", "mail"), 3, "queue 'mail' is paused already")
    limited = pgtq_cli(
        dsn, "configure-queue", "img", "--max-running", "2", "--rate-limit", "20", "--rate-period", "1s"
    )
    assert limited.returncode == 0 and limited.stdout.strip() == "queue img: max 2, 20/1s", limited.stderr
    one_line_error(
        pgtq_cli(
            dsn, "configure-queue", "img", "--max-running", "2", "--rate-limit", "20", "--rate-period", "1s"
        ),
        3,
        "has these limits already",
    )
    one_line_error(pgtq_cli(dsn, "configure-queue", "img", "--rate-limit", "20"), 2, "go together")
    one_line_error(pgtq_cli(dsn, "configure-queue", "img", "--max-running", "0"), 2, "0 is not in the range")

    overview = json.loads(pgtq_cli(dsn, "stats", "--json").stdout)
    by_queue = {item["queue"]: item for item in overview["queues"]}
    assert (by_queue["mail"]["paused"], by_queue["img"]["paused"]) == (True, False)
    assert by_queue["img"]["limit"] == {"max_running": 2, "rate_limit": 20, "rate_period_seconds": 1.0}
    table = pgtq_cli(dsn, "stats").stdout
    assert "│ paused" in table and "│ max 2, 20/1s" in table, table

    listed = {q["queue"]: q for q in json.loads(pgtq_cli(dsn, "queues", "--json").stdout)}
    assert listed["mail"]["paused"] is True and listed["mail"]["ready"] == 2
    assert (listed["img"]["max_running"], listed["img"]["running"]) == (2, 1)
    assert (listed["img"]["rate_limit"], listed["img"]["rate_period"], listed["img"]["rate_used"]) == (
        20,
        1.0,
        0,
    )
    assert "mail" in pgtq_cli(dsn, "queues").stdout

    resumed = pgtq_cli(dsn, "resume", "mail", "--json")
    assert resumed.returncode == 0 and json.loads(resumed.stdout) == {"queue": "mail", "paused": False}
    one_line_error(pgtq_cli(dsn, "resume", "mail"), 3, "queue 'mail' is not paused")
    lifted = pgtq_cli(dsn, "configure-queue", "img")
    assert lifted.returncode == 0 and lifted.stdout.strip() == "queue img: -"
    assert scalar(db, "SELECT count(*) FROM pgtq.queues WHERE configured_at IS NOT NULL") == 0


def test_features_that_are_not_here_exit_4(dsn: str, db: psycopg.Connection[Any]) -> None:
    one_line_error(pgtq_cli(dsn, "cron", "install"), 4, "pg_cron is not installed in this database")
    one_line_error(pgtq_cli(dsn, "cron", "install", "--every", "90s"), 2, "from 1s to 60s")
    # A schema without pause and limits (before 0.3.0) is detected, not guessed.
    db.execute("DROP VIEW pgtq.queues")
    for command in (["pause", "mail"], ["resume", "mail"], ["queues"], ["configure-queue", "mail"]):
        one_line_error(pgtq_cli(dsn, *command), 4, "has no pause and limits: they arrive with schema 0.3.0")
    overview = json.loads(pgtq_cli(dsn, "stats", "--json").stdout)
    assert overview["queues"] == [] and pgtq_cli(dsn, "stats").returncode == 0


def test_operational_errors_exit_1(empty_dsn: str) -> None:
    one_line_error(pgtq_cli(empty_dsn, "jobs"), 1, "install it with `pgtq migrate DSN`")
    one_line_error(pgtq_cli("host=127.0.0.1 port=1 dbname=x connect_timeout=2", "stats"), 1, "cannot connect")
