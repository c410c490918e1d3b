"""pgtq from other languages, through its SQL API alone: the examples of
examples/psql/ (plain psql) and examples/node/ (Node.js with the `pg`
package, installed from the npm registry by `npm ci` here). Each pushes
inside a transaction (a commit gives the user and the job, a rollback
neither) and runs a minimal worker loop that completes the job it knows
and fails the one it does not."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import REPO, scalar, wait_until
from psycopg.conninfo import conninfo_to_dict

EXAMPLES = REPO / "examples"
NODE = EXAMPLES / "node"


def pg_environment(dsn: str) -> dict[str, str]:
    """The PG* variables libpq, psql and node-postgres all read."""
    params = conninfo_to_dict(dsn)
    return {
        **os.environ,
        "PGHOST": str(params["host"]),
        "PGPORT": str(params["port"]),
        "PGUSER": str(params["user"]),
        "PGDATABASE": str(params["dbname"]),
    }


def run(command: list[str], dsn: str, cwd: Path) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=pg_environment(dsn), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def psql(dsn: str, *args: str) -> str:
    return run(["psql", "-X", "-v", "ON_ERROR_STOP=1", *args], dsn, EXAMPLES / "psql")


@pytest.fixture(scope="module")
def node_packages() -> Path:
    """examples/node/node_modules, installed from its committed lock file."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed: apt-get install nodejs npm", pytrace=False)
    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return NODE / "node_modules"


def outcome(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT j.task, j.state::text, j.result, u.email, u.welcomed_at IS NOT NULL"
        " FROM pgtq.jobs AS j LEFT JOIN users AS u ON u.id = (j.args ->> 0)::bigint ORDER BY j.id"
    ).fetchall()


def test_psql_pushes_in_a_transaction_and_works_the_queue(dsn: str, db: psycopg.Connection[Any]) -> None:
    psql(dsn, "-f", "schema.sql")
    assert "committed" in psql(dsn, "-v", "email=ann@example.com", "-f", "signup.sql")
    assert "rolled back" in psql(dsn, "-v", "email=bob@example.com", "-v", "abort=1", "-f", "signup.sql")
    assert scalar(db, "SELECT array_agg(email) FROM users") == ["ann@example.com"]
    db.execute("SELECT pgtq.push('emails', 'resize_avatar', '[999]')")
    output = psql(dsn, "-f", "worker.sql")
    ann = scalar(db, "SELECT id FROM users")
    assert outcome(db) == [
        ("send_welcome", "done", {"welcomed": ann}, "ann@example.com", True),
        ("resize_avatar", "scheduled", None, None, False),
    ]
    assert "no handler for resize_avatar (now scheduled)" in output
    assert output.strip().endswith("no job ready")
    assert scalar(db, "SELECT last_error FROM pgtq.jobs WHERE task = 'resize_avatar'") == (
        "no handler for task resize_avatar"
    )


@pytest.mark.slow
def test_node_pushes_in_a_transaction_and_works_the_queue(
    dsn: str, db: psycopg.Connection[Any], node_packages: Path
) -> None:
    psql(dsn, "-f", "schema.sql")
    assert "committed" in run(["node", "signup.js", "ann@example.com"], dsn, NODE)
    assert "rolled back" in run(["node", "signup.js", "bob@example.com", "--abort"], dsn, NODE)
    assert scalar(db, "SELECT array_agg(email) FROM users") == ["ann@example.com"]
    db.execute("SELECT pgtq.push('emails', 'resize_avatar', '[999]')")
    # A job that comes due before the worker starts stays scheduled until a
    # tick: the worker's own tick must make it ready.
    later = scalar(
        db,
        "SELECT pgtq.push('emails', 'send_welcome', '[0]',"
        " run_at => clock_timestamp() + interval '50 milliseconds')",
    )
    due = scalar(db, "SELECT run_at FROM pgtq.jobs WHERE id = %s", [later])
    wait_until(lambda: scalar(db, "SELECT clock_timestamp() > %s", [due]))
    output = run(["node", "worker.js", "--until-empty"], dsn, NODE)
    ann = scalar(db, "SELECT id FROM users")
    assert outcome(db) == [
        ("send_welcome", "done", {"welcomed": ann}, "ann@example.com", True),
        ("resize_avatar", "scheduled", None, None, False),
        ("send_welcome", "done", {"welcomed": 0}, None, False),
    ]
    assert "no handler for resize_avatar (now scheduled)" in output
    assert "tick moved 1 job(s)" in output, "its tick made the due job ready"
    worker = scalar(db, "SELECT worker FROM pgtq.jobs WHERE task = 'send_welcome' ORDER BY id LIMIT 1")
    assert worker.startswith("node-") and f"registered as {worker}" in output
    assert scalar(db, "SELECT count(*) FROM pgtq.workers WHERE id = %s", [worker]) == 0, (
        "unregistered at its stop"
    )
