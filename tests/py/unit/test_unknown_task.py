"""``pgtq.UnknownTaskError``: raised by ``PgTq.handler_for`` for a task
without a handler, and the error a worker records for such a job. No
database: a PgTq connects only when it calls the SQL API."""

from __future__ import annotations

import pytest
from stand_ins import HandClock, RecordingPool

import pgtq
from pgtq.task import Task
from pgtq.worker import Worker


def queue_with_two_handlers() -> pgtq.PgTq:
    queue = pgtq.PgTq("emails", "dbname=never_connected")

    @queue.handler()
    def send() -> None: ...

    @queue.handler(name="bounce")
    def handle_bounce() -> None: ...

    return queue


def test_handler_for_finds_a_handler_by_its_task_name() -> None:
    queue = queue_with_two_handlers()
    assert queue.handler_for("bounce").name == "bounce"
    assert queue.handler_for("bounce") is queue.handlers["bounce"]


def test_handler_for_an_unknown_task_raises_unknown_task_error() -> None:
    queue = queue_with_two_handlers()
    with pytest.raises(pgtq.UnknownTaskError) as raised:
        queue.handler_for("handle_bounce")  # the function's name, not the task's
    assert (
        str(raised.value)
        == "no handler for task 'handle_bounce' in queue 'emails' (known tasks: bounce, send)"
    )
    assert isinstance(raised.value, LookupError) and isinstance(raised.value, pgtq.PgTqError)
    assert raised.value.task == "handle_bounce" and raised.value.queue == "emails"


def test_a_worker_fails_a_job_of_an_unknown_task_with_that_error() -> None:
    queue = queue_with_two_handlers()
    worker = Worker(queue, clock=HandClock(0.0))
    pool = RecordingPool()
    worker._pool = pool
    task = Task(id=3, queue="emails", name="newsletter", args=())
    worker._hand_to_pool(task)
    assert pool.submitted == [], "nothing to run"
    [outcome] = worker.servers[0].pending
    assert (outcome.task, outcome.kind, outcome.summary) == (task, "error", "unknown task")
    assert outcome.error == (
        "UnknownTaskError: no handler for task 'newsletter' in queue 'emails' (known tasks: bounce, send)"
    )
