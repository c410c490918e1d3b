"""A test app: handlers that record what they did in public.side_effects."""

from __future__ import annotations

import os
import time

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


@q.handler()
async def async_sleep(token: str, seconds: float) -> str:
    import asyncio

    task = pgtq.current_task()
    record(token, "started")
    await asyncio.sleep(seconds)
    record(token)
    return f"{token} attempt {task.attempt if task else '?'}"


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
