"""The thread pool when a handler runs past its timeout: by default its
thread runs out undisturbed while a fresh slot takes its place, up to a
bound on abandoned threads still running; raising an exception into it is
opt-in. Real threads, no database; every wait is on an event or a
condition with a deadline."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from stand_ins import wait_for

import pgtq
from pgtq._records import Outcome
from pgtq.task import Task
from pgtq.worker._pools import ThreadPool
from pgtq.worker._routing import job_key


class Blocking:
    """A handler that blocks until released, then records that it went on."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.finished: list[int] = []
        self.cleaned_up: list[int] = []

    def __call__(self, job: int) -> int:
        try:
            self.release.wait()
            self.finished.append(job)
            return job
        finally:
            self.cleaned_up.append(job)


def pool_with(handler: Callable[..., Any], **options: Any) -> tuple[ThreadPool, list[Outcome], Any]:
    queue = pgtq.PgTq("q", "dbname=never_connected")
    registered = queue.handler(name="job", timeout=1.0)(handler)
    reported: list[Outcome] = []
    pool = ThreadPool(1, reported.append, time.monotonic, **options)
    pool.start()
    return pool, reported, registered


def task(job: int) -> Task:
    return Task(id=job, queue="q", name="job", args=(job,))


def started(pool: ThreadPool, job: int) -> bool:
    return pool.started_at(job_key(task(job))) is not None


def test_an_abandoned_thread_runs_out_and_a_fresh_slot_serves_meanwhile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocking = Blocking()
    pool, reported, handler = pool_with(blocking)
    try:
        pool.submit(task(1), handler)
        wait_for(lambda: started(pool, 1), "job 1 starts")
        with caplog.at_level(logging.WARNING, logger="pgtq.worker"):
            pool.abandon(task(1))
        assert "abandoned" in caplog.text and "id=1" in caplog.text

        quick = Blocking()
        quick.release.set()
        pool.submit(task(2), handler.pgtq.handler(name="quick")(quick))
        wait_for(lambda: reported, "the fresh slot runs job 2 while job 1's thread still waits")
        assert [outcome.task.id for outcome in reported] == [2]

        blocking.release.set()
        wait_for(lambda: blocking.cleaned_up, "job 1's handler runs to its end")
        assert blocking.finished == [1], "no exception was raised into the abandoned handler"
        assert [outcome.task.id for outcome in reported] == [2], "the abandoned run's result is ignored"
    finally:
        blocking.release.set()
        pool.close()


def test_past_the_bound_no_fresh_slot_until_an_abandoned_thread_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = Blocking(), Blocking()
    pool, reported, handler = pool_with(first, max_abandoned=1)
    second_handler = handler.pgtq.handler(name="second", timeout=1.0)(second)
    try:
        pool.submit(task(1), handler)
        wait_for(lambda: started(pool, 1), "job 1 starts")
        pool.abandon(task(1))  # 1 abandoned thread running: within the bound, replaced
        pool.submit(task(2), second_handler)
        wait_for(lambda: started(pool, 2), "job 2 starts on the fresh slot")
        with caplog.at_level(logging.WARNING, logger="pgtq.worker"):
            pool.abandon(task(2))  # 2 running: past the bound, not replaced
        assert "at most 1" in caplog.text

        pool.submit(task(3), handler)
        assert pool.unstarted() == 1
        assert pool.serving() == 0, "no slot takes job 3 while both abandoned threads run"

        first.release.set()
        wait_for(
            lambda: started(pool, 3) or reported, "job 1's thread ends, a slot comes back and takes job 3"
        )
        assert pool.unstarted() == 0
    finally:
        first.release.set()
        second.release.set()
        pool.close()


def test_interrupting_an_abandoned_thread_is_opt_in() -> None:
    blocking = Blocking()
    pool, reported, handler = pool_with(blocking, interrupt_abandoned=True)
    try:
        pool.submit(task(1), handler)
        wait_for(lambda: started(pool, 1), "job 1 starts")
        pool.abandon(task(1))
        blocking.release.set()
        wait_for(lambda: blocking.cleaned_up, "the exception lands when the thread runs Python again")
        assert blocking.finished == [], "the exception stopped the handler before it went on"
        assert reported == []
    finally:
        blocking.release.set()
        pool.close()
