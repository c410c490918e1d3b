"""Waiting for results from asyncio: ``AsyncPgTq.wait`` and ``wait_many``
on the real server. They drive the same protocol as the sync wait
(pgtq/_waiting.py) through the async gateway; tests/py/test_wait.py tests
the sync driver the same way.

A waiter is known to be registered when the job row counts it
(``pgtq.jobs.waiters``), read with a poll that has a deadline, never after
a sleep. That a wait was woken by its notification and did not poll is
read from the server's function statistics of the waiting session
(``track_functions``), as test_wait.py does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import psycopg
import pytest
from conftest import scalar, wait_until, worker_running
from psycopg.conninfo import make_conninfo
from test_wait import claim, function_calls

import pgtq
from pgtq._db import async_gateway
from pgtq._waiting import SAFETY_POLL_INTERVAL, Await, Listen, Watch, _perform, waiting
from pgtq.aio import AsyncPgTq

T = TypeVar("T")
DEADLINE = 60.0


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def until(predicate: Callable[[], Any], timeout: float = 30.0) -> None:
    """Yield to the event loop until ``predicate()`` holds (a poll with a
    deadline: the waits under test run meanwhile)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


def registered(db: psycopg.Connection[Any]) -> int:
    """How many registrations of waiters the jobs hold in all."""
    return int(scalar(db, "SELECT coalesce(sum(waiters), 0) FROM pgtq.jobs"))


def test_a_job_a_worker_completes_is_awaited_by_notification(
    dsn: str, q: pgtq.PgTq, db: psycopg.Connection[Any]
) -> None:
    """The waiter registers before any worker runs; a worker then runs the
    handler, and the wait returns its result well before a safety poll
    could have found it, having read the outcome once after its watch."""

    @q.handler()
    def add(a: int, b: int) -> int:
        return a + b

    job_id = q.push("add", [2, 3])
    counted = AsyncPgTq(q, make_conninfo(dsn, options="-c track_functions=all"))

    async def scenario() -> tuple[int, float]:
        waited = asyncio.create_task(counted.wait(job_id, timeout=DEADLINE))
        await until(lambda: registered(db) == 1)
        with worker_running(q):
            started = time.monotonic()
            result = await waited
            return result, time.monotonic() - started

    result, took = run(scenario())
    assert result == 5
    print(f"the worker's result came {took * 1000:.0f} ms after the worker started")
    assert took < SAFETY_POLL_INTERVAL / 2, "woken by the notification, not by the safety poll"
    calls = wait_until(lambda: function_calls(db).get("watch") and function_calls(db))
    assert calls["watch"] == 1, "registered once"
    assert calls["outcomes"] == 2, "watch's own read, then one read of the finished job: no poll"
    assert "unwatch" not in calls


def test_wait_returns_soon_after_the_completing_commit(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    task = claim(q)

    async def scenario() -> tuple[Any, float]:
        async with AsyncPgTq(q) as aq:
            waited = asyncio.create_task(aq.wait(task.id, timeout=DEADLINE))
            await until(lambda: registered(db) == 1)
            assert await aq.complete(task, {"sum": 5})
            committed_at = time.monotonic()
            result = await waited
            return result, time.monotonic() - committed_at

    result, gap = run(scenario())
    assert result == {"sum": 5}
    print(f"wait returned {gap * 1000:.1f} ms after the completing commit returned")
    assert gap < min(1.0, SAFETY_POLL_INTERVAL / 2), "the bound is wide for a busy machine"


def test_a_failed_or_cancelled_job_raises(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    stored = (
        'ValueError: bad input\nTraceback (most recent call last):\n  File "app.py", line 3\nValueError: bad'
    )
    failing = claim(q, max_attempts=1)
    pending = q.push("task")

    async def scenario() -> None:
        async with AsyncPgTq(q) as aq:
            failed = asyncio.create_task(aq.wait(failing.id, timeout=DEADLINE))
            cancelled = asyncio.create_task(aq.wait(pending, timeout=DEADLINE))
            await until(lambda: registered(db) == 2)
            assert await aq.fail(failing, stored) == "failed"
            assert await aq.cancel(pending)
            with pytest.raises(
                pgtq.JobFailedError, match=f"job {failing.id} failed: ValueError: bad input"
            ) as error:
                await failed
            assert error.value.traceback == stored[stored.index("Traceback") :]
            with pytest.raises(pgtq.JobCancelledError, match=f"job {pending} was cancelled"):
                await cancelled
            outcomes = await aq.wait_many([failing.id, pending], timeout=0)
            assert [outcome.state for outcome in outcomes] == ["failed", "cancelled"], "wait_many raises not"

    run(scenario())


def test_the_timeout_names_the_unfinished_keeps_the_finished_and_unwatches(
    q: pgtq.PgTq, db: psycopg.Connection[Any]
) -> None:
    finished, unfinished = claim(q), claim(q)
    assert q.complete(finished, "ok")

    async def scenario() -> float:
        async with AsyncPgTq(q) as aq:
            started = time.monotonic()
            with pytest.raises(
                pgtq.WaitTimeoutError, match=r"1 of 2 jobs did not finish within 0\.3 s"
            ) as late:
                await aq.wait_many([unfinished.id, finished.id], timeout=0.3)
            assert late.value.job_ids == [unfinished.id]
            assert late.value.outcomes[finished.id].result == "ok"
            with pytest.raises(TimeoutError):
                await aq.wait(unfinished.id, timeout=0)
            return time.monotonic() - started

    assert run(scenario()) >= 0.3
    assert registered(db) == 0, "its registrations taken back: the job's end will notify nobody"


def test_many_waits_at_once_in_one_event_loop(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    """Ten waits of one job each and one wait_many of them all are
    registered together before any job ends: none blocks the loop. Then
    the jobs end in reverse order and each wait gets its own result."""
    tasks = [claim(q, args=[n]) for n in range(10)]

    async def scenario() -> tuple[list[Any], list[pgtq.JobOutcome]]:
        async with AsyncPgTq(q) as aq:
            singles = [asyncio.create_task(aq.wait(task.id, timeout=DEADLINE)) for task in tasks]
            together = asyncio.create_task(aq.wait_many([task.id for task in tasks], timeout=DEADLINE))
            await until(lambda: registered(db) == 20)
            for task in reversed(tasks):
                assert await aq.complete(task, task.args[0] * 10)
            return await asyncio.gather(*singles), await together

    results, outcomes = run(scenario())
    assert results == [n * 10 for n in range(10)]
    assert [(outcome.id, outcome.result) for outcome in outcomes] == [(t.id, t.args[0] * 10) for t in tasks]


def test_a_job_finishing_at_each_step_of_the_protocol_wakes_the_async_waiter(dsn: str, q: pgtq.PgTq) -> None:
    """The async performer takes the protocol's steps while another session
    completes the job right before a given step (see test_wait.py)."""

    async def drive(before: type, task: pgtq.Task) -> list[pgtq.JobOutcome]:
        steps = waiting([task.id], 30.0, time.monotonic)
        step, finished = next(steps), False
        async with await async_gateway.connect(dsn) as conn:
            while True:
                if isinstance(step, before) and not finished:
                    assert q.complete(task, before.__name__)
                    finished = True
                try:
                    step = steps.send(await _perform(conn, step, async_gateway))
                except StopIteration as stop:
                    return stop.value

    for before in (Listen, Watch, Await):
        outcomes = run(drive(before, claim(q)))
        assert [outcome.result for outcome in outcomes] == [before.__name__]


def test_unknown_jobs_and_bad_arguments(q: pgtq.PgTq) -> None:
    async def scenario() -> None:
        async with AsyncPgTq(q) as aq:
            with pytest.raises(
                pgtq.JobNotFoundError, match="no job 999999999 that this login role may wait for"
            ):
                await aq.wait(999_999_999, timeout=5)
            with pytest.raises(TypeError, match="job ids are integers, got '7'"):
                await aq.wait("7", timeout=1)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="timeout must be None or at least 0 seconds"):
                await aq.wait(7, timeout=-1)
            assert await aq.wait_many([]) == []

    run(scenario())
