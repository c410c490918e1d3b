"""Hostile and bad input from Python: each case gives a clear pgtq error
(or TypeError before anything is sent) and writes nothing. The SQL side of
every case is in tests/sql/09-bad-input.sql; basic cases (unserialisable
arguments, a missing schema, an unreachable server, a module that fails to
import) are in test_api.py and test_cli.py."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from conftest import Processes, run_cli, scalar
from psycopg.conninfo import make_conninfo

import pgtq


def job_count(db: psycopg.Connection[Any]) -> int:
    return int(scalar(db, "SELECT count(*) FROM pgtq._job"))


@pytest.mark.parametrize(
    ("args", "kwargs", "complaint"),
    [
        (({1, 2},), {}, "Object of type set is not JSON serializable"),
        ((b"bytes",), {}, "Object of type bytes is not JSON serializable"),
        ((datetime(2030, 1, 1, tzinfo=UTC),), {}, "Object of type datetime is not JSON serializable"),
        ((), {"x": float("inf")}, "Out of range float values are not JSON compliant"),
        ((), {1: "a"}, "keyword argument names of task 't' must be strings, got [1]"),
    ],
)
def test_arguments_json_cannot_hold_raise_type_error_and_write_nothing(
    q: pgtq.PgTq, db: psycopg.Connection[Any], args: tuple[Any, ...], kwargs: dict[Any, Any], complaint: str
) -> None:
    with pytest.raises(TypeError) as caught:
        q.push("t", args, kwargs)
    assert complaint in str(caught.value)
    assert job_count(db) == 0


def test_a_self_containing_argument_raises_type_error(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(
        TypeError, match="arguments of task 't' are not JSON-serialisable: Circular reference"
    ):
        q.push("t", [loop])
    assert job_count(db) == 0


@pytest.mark.parametrize(
    ("task", "sqlstate", "message"),
    [
        ("", "PT003", "pgtq: task name must be 1 to 200 characters, got 0 characters"),
        ("a\x1bb", "PT003", "pgtq: task name 'a\x1bb' contains a control character"),
        ("tab\there", "PT003", "pgtq: task name 'tab\there' contains a control character"),
        ("c1\x85", "PT003", "pgtq: task name 'c1\x85' contains a control character"),
    ],
)
def test_bad_names_are_refused_by_the_database(
    q: pgtq.PgTq, db: psycopg.Connection[Any], task: str, sqlstate: str, message: str
) -> None:
    with pytest.raises(pgtq.InvalidJobError) as caught:
        q.push(task)
    assert (caught.value.sqlstate, str(caught.value)) == (sqlstate, message)
    assert job_count(db) == 0


def test_odd_names_and_values_round_trip(dsn: str, db: psycopg.Connection[Any]) -> None:
    queue = "q'; DROP TABLE pgtq._job; --"
    task = 'tâche "🐘" %s {} \\ $$'
    args = ["'; --", "\u202e", {"nested": [None, True, 1.5, "é"]}]
    with pgtq.PgTq(queue, dsn) as q:
        job_id = q.push(task, args, {"κλειδί": "τιμή"}, priority=-(2**31), max_attempts=1000)
        claimed = q.pop()
    assert claimed is not None
    assert (claimed.id, claimed.queue, claimed.name) == (job_id, queue, task)
    assert (claimed.args, claimed.kwargs) == (tuple(args), {"κλειδί": "τιμή"})
    assert (claimed.priority, claimed.max_attempts) == (-(2**31), 1000)
    assert job_count(db) == 1


def test_out_of_range_numbers_are_refused(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    with pytest.raises(pgtq.InvalidJobError, match="max_attempts must be between 1 and 1000, got 1001"):
        q.push("t", max_attempts=1001)
    # Too large for the integer parameter: PostgreSQL's own range error.
    with pytest.raises(psycopg.errors.NumericValueOutOfRange, match="integer out of range"):
        q.push("t", priority=2**31)
    with pytest.raises(pgtq.InvalidJobError, match="lease must be a positive interval"):
        q.pop(lease=0)
    assert job_count(db) == 0


def test_payload_limit_is_configurable(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT pgtq.configure(max_payload_bytes => 100)")
    with pytest.raises(pgtq.PayloadTooLargeError, match=r"over the limit of 100 bytes") as caught:
        q.push("t", ["x" * 200])
    assert caught.value.sqlstate == "PT005"
    q.push("t", ["x" * 10])
    db.execute("SELECT pgtq.configure(max_payload_bytes => 1048576)")
    q.push("t", ["x" * 200])
    assert job_count(db) == 2


def test_stale_and_foreign_leases_are_refused_from_python(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    q.push("a")
    q.push("b")
    first, second = q.pop_many(2)
    forged = dataclasses.replace(first, lease=second.lease)
    assert q.complete(forged) is False, "another job's lease does not complete this one"
    assert q.complete(first) is True
    assert q.complete(first) is False, "completing twice is refused"
    assert q.fail(first, "late") is None, "failing a done job is refused"
    assert q.heartbeat(first) is False and q.release(first) is False
    assert scalar(db, "SELECT state::text FROM pgtq.jobs WHERE id = %s", [first.id]) == "done"
    assert scalar(db, "SELECT state::text FROM pgtq.jobs WHERE id = %s", [second.id]) == "running"


def test_unknown_ids_are_refused(q: pgtq.PgTq) -> None:
    assert q.cancel(987654321) is False
    assert q.retry(987654321) is False
    assert q.job(987654321) is None


@pytest.mark.parametrize(
    ("dsn", "complaint"),
    [
        (
            "not a dsn",
            'cannot connect to the pgtq database: missing "=" after "not" in connection info string',
        ),
        ("port=abc", 'invalid integer value "abc" for connection option "port"'),
    ],
)
def test_a_malformed_dsn_is_a_connection_error(dsn: str, complaint: str) -> None:
    with pgtq.PgTq("q", dsn) as q, pytest.raises(pgtq.ConnectionFailedError) as caught:
        q.push("t")
    assert complaint in str(caught.value)


def test_a_wrong_database_or_user_is_a_connection_error(server_dsn: str) -> None:
    wrong_database = make_conninfo(server_dsn, dbname="pgtq_no_such_database")
    with pgtq.PgTq("q", wrong_database) as q, pytest.raises(pgtq.ConnectionFailedError) as caught:
        q.push("t")
    assert 'database "pgtq_no_such_database" does not exist' in str(caught.value)
    wrong_user = make_conninfo(server_dsn, user="pgtq_no_such_user")
    with pgtq.PgTq("q", wrong_user) as q, pytest.raises(pgtq.ConnectionFailedError) as caught:
        q.push("t")
    assert 'role "pgtq_no_such_user" does not exist' in str(caught.value)


@pytest.mark.parametrize(
    ("command", "complaint"),
    [
        (("stats", "not a dsn"), 'pgtq: error: cannot connect to the pgtq database: missing "="'),
        (("migrate", "not a dsn"), 'pgtq: error: cannot connect to the pgtq database: missing "="'),
    ],
)
def test_cli_with_a_malformed_dsn_says_so_without_traceback(command: tuple[str, ...], complaint: str) -> None:
    result = run_cli(*command)
    assert result.returncode == 1
    assert result.stderr.startswith(complaint), result.stderr
    assert "Traceback" not in result.stderr


def test_cli_migrate_without_rights_says_so_without_traceback(server_dsn: str, empty_dsn: str) -> None:
    nobody = f"pgtq_test_nobody_cli_{os.getpid()}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {nobody} LOGIN")
    try:
        result = run_cli("--log-level", "WARNING", "migrate", make_conninfo(empty_dsn, user=nobody))
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {nobody}")
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "pgtq: error: cannot install the pgtq schema: permission denied for schema public"
    ), result.stderr
    assert "Traceback" not in result.stderr


def test_cli_worker_with_a_missing_module_or_attribute(processes: Processes) -> None:
    missing = run_cli("worker", "pgtq_no_such_module:q", env=processes.env())
    assert missing.returncode == 2
    expected = "cannot import module 'pgtq_no_such_module': ModuleNotFoundError: No module named"
    assert f"{expected} 'pgtq_no_such_module'" in missing.stderr
    no_attribute = run_cli("worker", "app:no_such_queue", env=processes.env())
    assert no_attribute.returncode == 2
    assert "module 'app' has no attribute 'no_such_queue'" in no_attribute.stderr
    assert "Traceback" not in missing.stderr + no_attribute.stderr
