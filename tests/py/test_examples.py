"""The examples of examples/, run as their docstrings say.

* examples/flask_app: POST /users through Flask's test client; a created
  user commits with their welcome job, a request that fails after the push
  leaves neither; a real worker (``pgtq worker app:q``) then sends it.
* examples/django_app: its own tests (``python manage.py test``), on a test
  database Django's runner makes on the test server, migrated by the app's
  migration that installs pgtq.
* examples/periodic: a worker registers the schedule when it starts; a tick
  as of its next run (the database clock, passed in: no waiting for the
  five minutes) enqueues the job, and the worker runs it.
* examples/fan_out: ``python app.py FOLDER`` under real workers prints
  what sha256sum prints; a job that fails is reported beside the others.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
from conftest import REPO, psql_output, scalar, wait_until
from psycopg_pool import ConnectionPool

EXAMPLES = REPO / "examples"


def load(example: str, dsn: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """examples/EXAMPLE/app.py, imported against this test's database."""
    monkeypatch.setenv("PGTQ_DSN", dsn)
    path = EXAMPLES / example / "app.py"
    spec = importlib.util.spec_from_file_location(f"{example}_example_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def example_worker(example: str, dsn: str, log: Path, *options: str) -> Iterator[None]:
    """``pgtq worker app:q`` in examples/EXAMPLE, as its docstring says to
    start it; stopped with SIGTERM at the end, and it must exit cleanly."""
    env = {**os.environ, "PGTQ_DSN": dsn, "PYTHONPATH": str(EXAMPLES / example)}
    with log.open("w") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pgtq.cli", "worker", "app:q", "--poll-interval", "0.2", *options],
            cwd=EXAMPLES / example,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            status = worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
            raise
        assert status == 0, log.read_text()


@pytest.fixture
def flask_app(dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """examples/flask_app/app.py imported against this test's database, its tables made."""
    psql_output(dsn, (EXAMPLES / "flask_app" / "schema.sql").read_text())
    module = load("flask_app", dsn, monkeypatch)
    yield module
    module.q.close()


def test_flask_app_commits_the_user_and_the_job_together(
    flask_app: ModuleType, dsn: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    with ConnectionPool(dsn, min_size=1, max_size=2) as pool:
        client = flask_app.create_app(pool).test_client()
        created = client.post("/users", json={"email": "ann@example.com", "plan": "free"})
        assert created.status_code == 201
        refused = client.post("/users", json={"email": "bob@example.com", "plan": "platinum"})
        assert refused.status_code == 400
        assert "subscriptions_plan_known" in refused.json["error"]
    ann = created.json["id"]
    assert db.execute("SELECT task, args, state::text FROM pgtq.jobs").fetchall() == [
        ("send_welcome_email", [ann, "ann@example.com"], "ready")
    ]
    assert scalar(db, "SELECT array_agg(email) FROM users") == ["ann@example.com"]

    with example_worker("flask_app", dsn, tmp_path / "worker.log"):
        wait_until(lambda: scalar(db, "SELECT state::text FROM pgtq.jobs") == "done")
    assert scalar(db, "SELECT result FROM pgtq.jobs") == {"sent_to": "ann@example.com"}
    assert scalar(db, "SELECT welcomed_at IS NOT NULL FROM users") is True


def run_example(example: str, dsn: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``python ARGUMENTS`` in examples/EXAMPLE with PGTQ_DSN set; its output."""
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=EXAMPLES / example,
        env={**os.environ, "PGTQ_DSN": dsn},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_django_app_tests_pass_on_the_test_server(empty_dsn: str) -> None:
    result = run_example("django_app", empty_dsn, "manage.py", "test", "welcome", "--noinput", "-v", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 2 tests" in result.stderr and "OK" in result.stderr
    assert "Applying welcome.0001_initial... OK" in result.stdout + result.stderr


def test_the_demo_runs_end_to_end(empty_dsn: str) -> None:
    """examples/demo.py, as `make demo` runs it (on this test's database)."""
    result = run_example(".", empty_dsn, "demo.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "  queues     ok       every queue with jobs due has a live worker and is ticked" in result.stdout
    with psycopg.connect(empty_dsn) as db:
        states = dict(db.execute("SELECT task, state::text FROM pgtq.jobs").fetchall())
    assert set(states.values()) <= {"done", "failed", "cancelled"}, states


def test_periodic_example_registered_by_its_worker_and_fired_by_a_tick(
    dsn: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    psql_output(dsn, (EXAMPLES / "periodic" / "schema.sql").read_text())
    db.execute(
        "INSERT INTO sessions VALUES"
        " ('old', 1, now() - interval '1 hour'), ('live', 2, now() + interval '1 hour')"
    )
    name = "maintenance:purge_expired_sessions"
    with example_worker("periodic", dsn, tmp_path / "worker.log"):
        schedule = wait_until(
            lambda: db.execute(
                "SELECT cron, queue, task, next_run_at FROM pgtq.schedules WHERE name = %s", [name]
            ).fetchone()
        )
        cron, queue, task, next_run = schedule
        assert (cron, queue, task) == ("*/5 * * * *", "maintenance", "purge_expired_sessions")
        assert next_run.minute % 5 == 0 and next_run.second == 0
        # The tick a worker makes when the clock reaches the next run, now.
        assert scalar(db, "SELECT pgtq.tick(as_of => %s)", [next_run]) >= 1
        wait_until(
            lambda: scalar(db, "SELECT bool_and(state = 'done') FROM pgtq.jobs WHERE run_at = %s", [next_run])
        )
    assert scalar(db, "SELECT next_run_at FROM pgtq.schedules WHERE name = %s", [name]) > next_run
    # One job per occurrence: the worker's own ticks fire an occurrence the
    # wall clock reached during the test (rarely) with the same result.
    assert scalar(db, "SELECT sum(result::int) FROM pgtq.jobs") == 1, "the one expired session"
    assert scalar(db, "SELECT array_agg(id) FROM sessions") == ["live"]


def test_fan_out_example_collects_every_result_and_reports_a_failure(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "files"
    (folder / "nested").mkdir(parents=True)
    expected = {}
    for n in range(60):
        path = folder / ("nested" if n % 3 == 0 else "") / f"file-{n:02}.bin"
        path.write_bytes(os.urandom(n * 997))
        expected[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    with example_worker("fan_out", dsn, tmp_path / "worker.log", "--concurrency", "4"):
        result = run_example("fan_out", dsn, "app.py", str(folder))
        assert result.returncode == 0, result.stdout + result.stderr
        printed = dict(reversed(line.split("  ", 1)) for line in result.stdout.splitlines())
        assert printed == expected

        app = load("fan_out", dsn, monkeypatch)
        missing = str(tmp_path / "gone.bin")
        done, failed = app.digests([*sorted(expected)[:3], missing], timeout=120)
        app.q.close()
    assert done == {path: expected[path] for path in sorted(expected)[:3]}
    assert list(failed) == [missing] and failed[missing].startswith("FileNotFoundError")
