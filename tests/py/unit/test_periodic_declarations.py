"""``@q.periodic`` declarations and the worker's report of undeclared
schedules: pure, no database (the registration itself:
tests/py/test_periodic.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import pgtq
from pgtq._inspection import Schedule
from pgtq.periodic import undeclared


def queue() -> pgtq.PgTq:
    return pgtq.PgTq("reports", "dbname=unused")


def test_periodic_on_a_handler_declares_a_schedule_with_the_handler_s_defaults() -> None:
    q = queue()

    @q.periodic("30 7 * * MON-FRI", kwargs={"to": "ops"}, timezone="Europe/Paris")
    @q.handler(priority=3, max_attempts=2)
    def send_report(to: str) -> None: ...

    assert isinstance(send_report, pgtq.Handler)
    assert q.periodic_tasks == {
        "reports:send_report": pgtq.PeriodicTask(
            name="reports:send_report",
            cron="30 7 * * MON-FRI",
            queue="reports",
            task="send_report",
            args_json="[]",
            kwargs_json='{"to": "ops"}',
            timezone="Europe/Paris",
            priority=3,
            max_attempts=2,
        )
    }
    assert q.periodic_tasks["reports:send_report"].kwargs == {"to": "ops"}


def test_periodic_on_a_plain_function_registers_it_as_a_handler_too() -> None:
    q = queue()

    @q.periodic("@hourly", args=[1, 2], priority=9)
    def add(a: int, b: int) -> int:
        return a + b

    assert q.handler_for("add") is add and add(1, 2) == 3
    task = q.periodic_tasks["reports:add"]
    assert (task.cron, task.args, task.priority, task.max_attempts) == ("@hourly", [1, 2], 9, 25)


def test_several_schedules_of_one_task_need_names_of_their_own() -> None:
    q = queue()

    @q.periodic("0 9 * * *", name="morning", args=["am"])
    @q.periodic("0 17 * * *", name="evening", args=["pm"])
    @q.handler()
    def digest(when: str) -> None: ...

    assert sorted(q.periodic_tasks) == ["evening", "morning"]
    with pytest.raises(ValueError, match="already has a periodic task named 'morning'"):
        q.periodic("0 12 * * *", name="morning")(digest)
    q.periodic("0 12 * * *")(digest)
    with pytest.raises(ValueError, match="already has a periodic task named 'reports:digest'"):
        q.periodic("0 13 * * *")(digest)


def test_declaration_mistakes_are_refused_at_once() -> None:
    q, other = queue(), pgtq.PgTq("other", "dbname=unused")

    @q.handler()
    def task(x: Any) -> None: ...

    with pytest.raises(TypeError, match="arguments of task 'task' are not JSON-serialisable"):
        q.periodic("* * * * *", args=[object()])(task)
    with pytest.raises(ValueError, match="is a handler of another queue object"):
        other.periodic("* * * * *")(task)
    with pytest.raises(ValueError, match=r"put @periodic\(...\) above @handler\(...\)"):
        q.handler(name="wrapped")(q.periodic("* * * * *", name="x")(lambda: None))


def schedule(name: str, queue_name: str, task: str) -> Schedule:
    return Schedule(
        name, "* * * * *", "UTC", queue_name, task, [], {}, 0, 25, datetime.now(UTC), None, None, None
    )


def test_undeclared_schedules_of_the_served_queues_are_reported_with_whether_a_handler_exists() -> None:
    q = queue()

    @q.periodic("* * * * *")
    def kept() -> None: ...

    @q.handler()
    def orphan() -> None: ...

    schedules = [
        schedule("reports:kept", "reports", "kept"),  # declared
        schedule("old-orphan", "reports", "orphan"),  # handler kept, decorator removed
        schedule("gone", "reports", "removed_task"),  # no handler either
        schedule("elsewhere", "mail", "send"),  # another queue: not this worker's business
    ]
    assert [(s.name, handled) for s, handled in undeclared(schedules, [q])] == [
        ("old-orphan", True),
        ("gone", False),
    ]
