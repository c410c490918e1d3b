"""The web app examples of examples/, run as their READMEs say.

* examples/flask_app: POST /users through Flask's test client; a created
  user commits with their welcome job, a request that fails after the push
  leaves neither; a real worker (``pgtq worker app:q``) then sends it.
* examples/django_app: its own tests (``python manage.py test``), on a test
  database Django's runner makes on the test server, migrated by the app's
  migration that installs pgtq.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
from conftest import REPO, psql_output, scalar, wait_until
from psycopg_pool import ConnectionPool

EXAMPLES = REPO / "examples"


@pytest.fixture
def flask_app(dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """examples/flask_app/app.py imported against this test's database, its tables made."""
    psql_output(dsn, (EXAMPLES / "flask_app" / "schema.sql").read_text())
    monkeypatch.setenv("PGTQ_DSN", dsn)
    spec = importlib.util.spec_from_file_location("flask_example_app", EXAMPLES / "flask_app" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
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

    env = {**os.environ, "PGTQ_DSN": dsn, "PYTHONPATH": str(EXAMPLES / "flask_app")}
    with (tmp_path / "worker.log").open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pgtq.cli", "worker", "app:q", "--poll-interval", "0.2"],
            cwd=EXAMPLES / "flask_app",
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: scalar(db, "SELECT state::text FROM pgtq.jobs") == "done")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()
    assert scalar(db, "SELECT result FROM pgtq.jobs") == {"sent_to": "ann@example.com"}
    assert scalar(db, "SELECT welcomed_at IS NOT NULL FROM users") is True


def test_django_app_tests_pass_on_the_test_server(empty_dsn: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "test", "welcome", "--noinput", "-v", "2"],
        cwd=EXAMPLES / "django_app",
        env={**os.environ, "PGTQ_DSN": empty_dsn},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 2 tests" in result.stderr and "OK" in result.stderr
    assert "Applying welcome.0001_initial... OK" in result.stdout + result.stderr


def test_the_demo_runs_end_to_end(empty_dsn: str) -> None:
    """examples/demo.py, as `make demo` runs it (on this test's database)."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py")],
        env={**os.environ, "PGTQ_DSN": empty_dsn},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with psycopg.connect(empty_dsn) as db:
        states = dict(db.execute("SELECT task, state::text FROM pgtq.jobs").fetchall())
    assert set(states.values()) <= {"done", "failed", "cancelled"}, states
