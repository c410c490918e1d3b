"""The command line: helpful errors, no tracebacks for user mistakes."""

from __future__ import annotations

from conftest import Processes, run_cli

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
