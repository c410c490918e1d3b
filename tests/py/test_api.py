"""The Python API against the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from conftest import scalar

import pgtq


def test_handler_runs_now_when_called(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    @q.handler()
    def add_numbers(a: int, b: int) -> int:
        return a + b

    assert add_numbers(2, 3) == 5
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs") == 0


def test_push_then_pop_gives_the_task(q: pgtq.PgTq) -> None:
    @q.handler()
    def add_numbers(a: int, b: int) -> int:
        return a + b

    job_id = add_numbers.push(2, b=3)
    task = q.pop()
    assert task is not None
    assert (task.id, task.name, task.args, task.kwargs, task.attempt) == (
        job_id,
        "add_numbers",
        (2,),
        {"b": 3},
        1,
    )
    assert task.queue == "test_queue"
    assert q.pop() is None


def test_handler_name_overrides_function_name(q: pgtq.PgTq) -> None:
    @q.handler(name="sum_task")
    def add(a: int, b: int) -> int:
        return a + b

    add.push(1, 2)
    task = q.pop()
    assert task is not None and task.name == "sum_task"
    assert "sum_task" in q.handlers


def test_two_handlers_for_one_name_are_refused(q: pgtq.PgTq) -> None:
    @q.handler(name="same")
    def first() -> None: ...

    with pytest.raises(ValueError, match="already has a handler"):

        @q.handler(name="same")
        def second() -> None: ...


def test_task_parameters_named_like_push_options_still_work(q: pgtq.PgTq) -> None:
    @q.handler()
    def odd(priority: int, conn: str, delay: int, run_at: str) -> int:
        return priority

    odd.push(priority=7, conn="c", delay=1, run_at="r")
    task = q.pop()
    assert task is not None
    assert task.kwargs == {"priority": 7, "conn": "c", "delay": 1, "run_at": "r"}
    assert task.priority == 0, "the task's own 'priority' argument is not the push priority"


def test_push_options(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    @q.handler(max_attempts=3)
    def job(x: int) -> None: ...

    low = job.push(1)
    high = job.options(priority=5).push(2)
    later = job.options(delay=3600).push(3)
    at = job.options(run_at=datetime(2100, 1, 1, tzinfo=UTC), max_attempts=9).push(4)
    rows = {
        row[0]: row[1:] for row in db.execute("SELECT id, state::text, priority, max_attempts FROM pgtq.jobs")
    }
    assert rows[low] == ("ready", 0, 3)
    assert rows[high] == ("ready", 5, 3)
    assert rows[later] == ("scheduled", 0, 3)
    assert rows[at] == ("scheduled", 0, 9)
    delay = scalar(db, "SELECT run_at - created_at FROM pgtq.jobs WHERE id = %s", [later])
    assert delay == timedelta(hours=1)
    assert [t.args for t in q.pop_many(10)] == [(2,), (1,)]


def test_push_into_another_queue(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    @q.handler()
    def job() -> None: ...

    job.options(queue="elsewhere").push()
    assert scalar(db, "SELECT queue FROM pgtq.jobs") == "elsewhere"
    assert q.pop() is None


def test_push_joins_the_callers_transaction(q: pgtq.PgTq, dsn: str, db: psycopg.Connection[Any]) -> None:
    @q.handler()
    def welcome(user: str) -> None: ...

    with psycopg.connect(dsn) as business:
        business.execute("CREATE TABLE users (name text)")
        business.execute("INSERT INTO users VALUES ('ann')")
        welcome.options(conn=business).push("ann")
        assert scalar(db, "SELECT count(*) FROM pgtq.jobs") == 0, "not visible before commit"
        business.rollback()
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs") == 0, "a rolled-back push leaves no job"

    with psycopg.connect(dsn) as business:
        welcome.options(conn=business).push("bob")
        business.commit()
    assert scalar(db, "SELECT args FROM pgtq.jobs") == ["bob"]


def test_unserialisable_arguments_raise_type_error_and_write_nothing(
    q: pgtq.PgTq, db: psycopg.Connection[Any]
) -> None:
    @q.handler()
    def job(x: object) -> None: ...

    with pytest.raises(TypeError, match="arguments of task 'job' are not JSON-serialisable"):
        job.push(object())
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        job.push(x=float("nan"))
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs") == 0


def test_invalid_input_refused_by_the_database(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    with pytest.raises(pgtq.InvalidJobError, match="task name must be 1 to 200 characters") as caught:
        q.push("x" * 201)
    assert caught.value.sqlstate == "PT003"
    with pytest.raises(pgtq.InvalidJobError, match="max_attempts must be between 1 and 1000"):
        q.push("t", max_attempts=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        q.push("t", run_at=datetime(2100, 1, 1))
    with pytest.raises(ValueError, match="run_at or delay"):
        q.push("t", run_at=datetime(2100, 1, 1, tzinfo=UTC), delay=1)
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs") == 0


def test_payload_limit(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    with pytest.raises(pgtq.PayloadTooLargeError, match="over the limit of 1048576 bytes"):
        q.push("big", ["x" * (2 * 1024 * 1024)])
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs") == 0


def test_complete_and_fail_from_python(q: pgtq.PgTq) -> None:
    q.push("a")
    q.push("b", max_attempts=1)
    first, second = q.pop_many(2)
    assert q.complete(first, {"ok": True}) is True
    assert q.complete(first) is False, "a spent lease is refused"
    assert q.fail(second, "broken") == "failed"
    done = q.job(first.id)
    failed = q.job(second.id)
    assert done is not None and done.state == "done" and done.result == {"ok": True}
    assert failed is not None and failed.state == "failed" and failed.last_error == "broken"
    assert q.job(-1) is None


def test_fail_with_retry_in_and_tick(q: pgtq.PgTq) -> None:
    q.push("again")
    task = q.pop()
    assert task is not None
    assert q.fail(task, "soon", retry_in=0) == "ready"
    retried = q.pop()
    assert retried is not None and retried.id == task.id and retried.attempt == 2


def test_heartbeat_and_release(q: pgtq.PgTq) -> None:
    q.push("long")
    task = q.pop(lease=5)
    assert task is not None
    assert q.heartbeat(task, extend_by=60) is True
    assert q.release(task) is True
    again = q.pop()
    assert again is not None and again.attempt == 1, "a released attempt is not counted"


def test_cancel_retry_prune_and_stats(q: pgtq.PgTq) -> None:
    job_id = q.push("unwanted")
    assert q.cancel(job_id) is True
    assert [(s.state, s.jobs) for s in q.stats()] == [("cancelled", 1)]
    assert q.retry(job_id) is True
    assert [(s.state, s.jobs) for s in q.stats()] == [("ready", 1)]
    task = q.pop()
    assert task is not None and q.complete(task)
    assert q.prune(timedelta(0)) == 1
    assert q.stats() == []


def test_task_is_frozen(q: pgtq.PgTq) -> None:
    q.push("t")
    task = q.pop()
    assert task is not None
    with pytest.raises(AttributeError):
        task.attempt = 5  # type: ignore[misc]


def test_missing_schema_is_reported(empty_dsn: str) -> None:
    with pgtq.PgTq("test_queue", empty_dsn) as q:
        with pytest.raises(pgtq.SchemaMissingError, match="pgtq migrate"):
            q.check_schema()
        with pytest.raises(pgtq.SchemaMissingError, match="pgtq migrate"):
            q.push("t")


def test_unreachable_database_is_a_clear_error() -> None:
    q = pgtq.PgTq("test_queue", "host=127.0.0.1 port=1 dbname=nothing connect_timeout=2")
    with pytest.raises(pgtq.ConnectionFailedError, match="cannot connect to the pgtq database"):
        q.push("t")


def test_queue_name_must_be_given() -> None:
    with pytest.raises(ValueError, match="queue name must be a non-empty string"):
        pgtq.PgTq("", "dbname=x")


def test_push_many_enqueues_all_or_nothing(q: pgtq.PgTq, dsn: str, db: psycopg.Connection[Any]) -> None:
    @q.handler(max_attempts=4)
    def resize(path: str, width: int = 100) -> None: ...

    ids = resize.push_many([("a.png",), ("b.png",)], [{"width": 10}, {}])
    assert db.execute("SELECT id, args, kwargs, max_attempts FROM pgtq.jobs ORDER BY id").fetchall() == [
        (ids[0], ["a.png"], {"width": 10}, 4),
        (ids[1], ["b.png"], {}, 4),
    ]
    later = resize.options(delay=60, priority=3).push_many([("c.png",)] * 3)
    assert len(later) == 3
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE state = 'scheduled' AND priority = 3") == 3

    with pytest.raises(TypeError, match="not JSON-serialisable"):
        resize.push_many([("ok",), (object(),)])
    with pytest.raises(ValueError, match="2 argument lists but 1 keyword mappings"):
        resize.push_many([("a",), ("b",)], [{}])
    with psycopg.connect(dsn) as business:
        resize.options(conn=business).push_many([("rolled-back",)] * 5)
        business.rollback()
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs") == 5, "refused and rolled-back pushes wrote nothing"
