"""Cancelling a running job, without a database: the task's ``Cancellation``
(flag, event, callbacks), how the thread pool tells a thread handler and
cancels a coroutine, a job withdrawn before it starts, and what the
dispatcher does with the jobs the database says were asked to cancel.
Real threads; every wait is on an event or a poll with a deadline."""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any

from stand_ins import WAIT, HandClock, RecordingPool, wait_for

import pgtq
from pgtq._records import Outcome
from pgtq.task import Cancellation, Task
from pgtq.worker import Worker, WorkerSettings
from pgtq.worker._dispatcher import _CancelHint
from pgtq.worker._pools import ThreadPool
from pgtq.worker._routing import job_key


def test_a_cancellation_is_a_flag_an_event_and_callbacks() -> None:
    cancellation = Cancellation()
    early = cancellation.event()
    called: list[str] = []
    cancellation.on_request(lambda: called.append("before"))
    assert not cancellation.requested and not early.is_set() and called == []

    assert cancellation.request() is True
    assert cancellation.requested and early.is_set() and called == ["before"]
    assert cancellation.event() is early, "one event"
    cancellation.on_request(lambda: called.append("after"))
    assert called == ["before", "after"], "a callback registered later runs at once"
    assert cancellation.request() is False, "asked again: nothing more happens"
    assert called == ["before", "after"]


def test_a_task_carries_its_cancellation_but_is_compared_and_copied_without_it() -> None:
    task = Task(id=1, queue="q", name="job", args=())
    assert not task.cancel_requested and not task.cancel_event.is_set()
    task.cancellation.request()
    assert task.cancel_requested and task.cancel_event.wait(0)
    assert task == Task(id=1, queue="q", name="job", args=()), "equality ignores it"
    assert "cancel" not in repr(task)
    copy = pickle.loads(pickle.dumps(task))  # what a process pool's child gets
    assert copy == task and not copy.cancel_requested


def pool_running(func: Callable[..., Any], capacity: int = 1) -> tuple[ThreadPool, list[Outcome], Any]:
    queue = pgtq.PgTq("q", "dbname=never_connected")
    handler = queue.handler(name="job")(func)
    reported: list[Outcome] = []
    pool = ThreadPool(capacity, reported.append, time.monotonic)
    pool.start()
    return pool, reported, handler


def task(job: int) -> Task:
    return Task(id=job, queue="q", name="job", args=(job,))


def test_a_thread_handler_reads_the_request_from_its_task() -> None:
    started = threading.Event()

    def cooperative(job: int) -> str:
        current = pgtq.current_task()
        assert current is not None
        started.set()
        return "stopped" if current.cancel_event.wait(WAIT) and current.cancel_requested else "not told"

    pool, reported, handler = pool_running(cooperative)
    try:
        job = task(1)
        pool.submit(job, handler)
        assert started.wait(WAIT)
        assert pool.cancel(job) is False, "it had started: its handler is told"
        wait_for(lambda: reported, "the handler returns")
        [outcome] = reported
        assert (outcome.kind, outcome.result_json) == ("done", '"stopped"'), "its own ending is reported"
    finally:
        pool.close()


def test_an_async_handler_is_cancelled_and_the_run_ends_as_cancelled() -> None:
    started = threading.Event()
    saw: list[str] = []

    async def sleeper(job: int) -> None:
        started.set()
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            saw.append("CancelledError")
            raise

    pool, reported, handler = pool_running(sleeper)
    try:
        job = task(2)
        pool.submit(job, handler)
        assert started.wait(WAIT)
        assert pool.cancel(job) is False
        wait_for(lambda: reported and saw, "the coroutine is cancelled")
        [outcome] = reported
        assert (outcome.kind, outcome.summary) == ("abort", "cancelled")
        assert str(outcome.error).startswith("Cancelled: job 2 was asked to cancel while it ran")
        assert saw == ["CancelledError"]
    finally:
        pool.close()


def test_a_coroutine_cancelled_by_itself_is_an_ordinary_failure() -> None:
    async def gives_up(job: int) -> None:
        raise asyncio.CancelledError

    pool, reported, handler = pool_running(gives_up)
    try:
        pool.submit(task(3), handler)
        wait_for(lambda: reported, "the run ends")
        [outcome] = reported
        assert outcome.kind == "error", "retried by the usual rule: nobody asked to cancel it"
    finally:
        pool.close()


def test_a_job_cancelled_before_it_starts_never_starts() -> None:
    release = threading.Event()
    ran: list[int] = []

    def blocking(job: int) -> int:
        ran.append(job)
        release.wait(WAIT)
        return job

    pool, reported, handler = pool_running(blocking)
    try:
        first, second, third = task(4), task(5), task(6)
        for job in (first, second, third):
            pool.submit(job, handler)
        wait_for(lambda: ran == [4], "the first job holds the only slot")
        assert pool.unstarted() == 2
        assert pool.cancel(second) is True, "withdrawn: the caller writes its outcome"
        assert second.cancel_requested and pool.unstarted() == 1
        release.set()
        wait_for(lambda: len(reported) == 2, "the others run")
        assert ran == [4, 6], "the withdrawn job never ran"
        assert [outcome.task.id for outcome in reported] == [4, 6], "and the pool reports nothing for it"
    finally:
        pool.close()


def test_a_withdrawn_job_is_not_handed_back_at_shutdown() -> None:
    release = threading.Event()
    pool, _reported, handler = pool_running(lambda job: release.wait(WAIT))
    try:
        running, withdrawn, waiting = task(7), task(8), task(9)
        for job in (running, withdrawn, waiting):
            pool.submit(job, handler)
        wait_for(lambda: pool.started_at(job_key(running)) is not None, "the first job starts")
        assert pool.cancel(withdrawn) is True
        assert pool.take_unstarted() == [waiting]
    finally:
        release.set()
        pool.close()


def worker_holding(*tasks: Task) -> tuple[Worker, RecordingPool]:
    queue = pgtq.PgTq("q", "dbname=never_connected")

    @queue.handler()
    def job() -> None: ...

    worker = Worker(queue, WorkerSettings(), clock=HandClock(100.0))
    pool = RecordingPool()
    worker._pool = pool
    for held in tasks:
        worker._hand_to_pool(held)
    return worker, pool


def test_the_dispatcher_stops_what_the_database_says_was_asked_to_cancel() -> None:
    started, unstarted = (
        Task(id=10, queue="q", name="job", args=()),
        Task(id=11, queue="q", name="job", args=()),
    )
    worker, pool = worker_holding(started, unstarted)
    pool.starts[job_key(started)] = 99.0
    [server] = worker.servers

    worker._stop_cancelled([started, unstarted])
    assert pool.cancelled == [started, unstarted]
    [outcome] = server.pending
    assert (outcome.task, outcome.kind, outcome.summary) == (unstarted, "abort", "cancelled")
    assert "had not started and never will" in str(outcome.error)
    assert job_key(unstarted) not in worker._running, "its outcome is written now"
    assert job_key(started) in worker._running, "the running one's outcome comes from its handler"

    worker._stop_cancelled([started])
    assert pool.cancelled == [started, unstarted], "told once"


def test_a_cancel_notification_is_kept_to_be_checked_with_the_database() -> None:
    held = Task(id=12, queue="q", name="job", args=())
    worker, pool = worker_holding(held)
    [server] = worker.servers
    worker._handle(_CancelHint(server, 12))
    assert server.cancel_hints == {12}
    assert pool.cancelled == [] and not held.cancel_requested, "nothing stopped on a hint alone"
