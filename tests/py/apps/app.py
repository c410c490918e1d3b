"""A test app: handlers that record what they did in public.side_effects."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psycopg

import pgtq

q = pgtq.PgTq("test_queue", os.environ["PGTQ_DSN"])


def record(token: str, kind: str = "ran") -> None:
    with psycopg.connect(q.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.side_effects (token, kind) VALUES (%s, %s)", (token, kind))


def times_recorded(token: str, kind: str = "ran") -> int:
    with psycopg.connect(q.dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM public.side_effects WHERE token = %s AND kind = %s", (token, kind)
        ).fetchone()
    return int(row[0]) if row else 0


@q.handler()
def note(token: str) -> str:
    """Record the token once per run."""
    record(token)
    return token


@q.handler()
def add(a: int, b: int) -> int:
    return a + b


@q.handler()
def fails_once(token: str) -> str:
    """Fail on the first attempt, succeed on the second."""
    record(token, "attempt")
    if times_recorded(token, "attempt") == 1:
        raise RuntimeError(f"first attempt of {token} fails on purpose")
    record(token)
    return "recovered"


@q.handler()
def always_fails(token: str) -> None:
    record(token, "attempt")
    raise ValueError(f"{token} never works")


@q.handler()
def blocks_first_time(token: str) -> str:
    """The first run records 'started' and hangs; later runs finish."""
    if times_recorded(token, "started") == 0:
        record(token, "started")
        time.sleep(600)
    record(token)
    return "finished"


@q.handler()
def slow(token: str, seconds: float) -> str:
    record(token, "started")
    time.sleep(seconds)
    record(token)
    return token


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` every 50 ms until it holds (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@q.handler()
def waits_for_go(token: str) -> str:
    """Record 'started', then run until the test records 'go' for the token."""
    record(token, "started")
    if not wait_for(lambda: times_recorded(token, "go") > 0, 120):
        raise TimeoutError(f"no 'go' for {token} within 120 s")
    record(token)
    return token


@q.handler()
def rendezvous(group: str, size: int) -> bool:
    """Record 'started', then wait until ``size`` jobs of the group have
    started: only jobs running at the same time can all meet. Returns
    whether they met within 60 s."""
    record(group, "started")
    met = wait_for(lambda: times_recorded(group, "started") >= size, 60)
    record(group)
    return met


@q.handler()
async def async_rendezvous(group: str, size: int) -> dict[str, object]:
    """``rendezvous`` as a coroutine (the database calls in threads, so the
    shared event loop stays free); also reports ``current_task().attempt``."""
    import asyncio

    task = pgtq.current_task()
    await asyncio.to_thread(record, group, "started")
    deadline = time.monotonic() + 60
    while not (met := await asyncio.to_thread(times_recorded, group, "started") >= size):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    await asyncio.to_thread(record, group)
    return {"met": met, "attempt": task.attempt if task else None}


@q.handler()
def stamp(token: str) -> str:
    """Record the database clock when the handler starts."""
    record(token, "started")
    return token


@q.handler(timeout=0.5)
def too_slow(token: str) -> str:
    record(token, "started")
    time.sleep(5)
    record(token)
    return token


@q.handler(timeout=0.5)
async def too_slow_async(token: str) -> str:
    import asyncio

    record(token, "started")
    await asyncio.sleep(5)
    record(token)
    return token


def running_task() -> pgtq.Task:
    task = pgtq.current_task()
    assert task is not None, "called by a worker"
    return task


@q.handler()
def waits_for_cancel(token: str) -> str:
    """Record 'started', then wait on the task's cancel event (a
    cooperative handler): record 'cancel seen' and return when it is set."""
    record(token, "started")
    if not running_task().cancel_event.wait(120):
        raise TimeoutError(f"no cancel for {token} within 120 s")
    record(token, "cancel seen")
    return "stopped early"


@q.handler()
def polls_cancel(token: str) -> str:
    """Record 'started', then poll the task's cancel flag (a cooperative
    handler): record 'cancel seen' and return once it is set."""
    record(token, "started")
    if not wait_for(lambda: running_task().cancel_requested, 120):
        raise TimeoutError(f"no cancel for {token} within 120 s")
    record(token, "cancel seen")
    return "stopped early"


@q.handler()
async def sleeps_until_cancelled(token: str) -> str:
    """Record 'started' and sleep; record 'cancelled' when the worker
    cancels the coroutine (CancelledError at its await)."""
    import asyncio

    record(token, "started")
    try:
        await asyncio.sleep(120)
    except asyncio.CancelledError:
        record(token, "cancelled")
        raise
    record(token)
    return token


@q.handler()
def poison_exit(token: str) -> None:
    """Kills its own process."""
    record(token, "attempt")
    os._exit(3)


@q.handler()
def poison_segfault(token: str) -> None:
    """Crashes its process the way a broken C extension would."""
    import ctypes

    record(token, "attempt")
    ctypes.string_at(0)


other = pgtq.PgTq("other_queue", os.environ["PGTQ_DSN"])


@other.handler(name="note")
def other_note(token: str) -> str:
    record(token, "other")
    return token
