"""Retry control without a database: what a handler's exception asks of the
queue (``decide``), the checks of ``Retry`` and of a handler's retry policy,
and the outcome a worker writes for each (``run_task``)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

import pgtq
from pgtq._retry import Decision, checked_delay, checked_retry_on, decide
from pgtq.task import Task
from pgtq.worker._execution import run_task


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


@pytest.mark.parametrize(
    ("error", "retry_on", "decision"),
    [
        (ValueError("x"), None, Decision(final=False)),
        (Transient("x"), (Transient,), Decision(final=False)),
        (Transient("x"), (Exception,), Decision(final=False)),
        (Permanent("x"), (Transient,), Decision(final=True, why="not in retry_on: no retry")),
        (Transient("x"), (), Decision(final=True, why="not in retry_on: no retry")),
        (pgtq.Abort("why"), None, Decision(final=True, why="aborted")),
        (pgtq.Abort("why"), (pgtq.Abort,), Decision(final=True, why="aborted")),
        (pgtq.Retry(30), (), Decision(final=False, retry_in=timedelta(seconds=30), why="retry asked")),
        (pgtq.Retry(), (Transient,), Decision(final=False, retry_in=None, why="retry asked")),
    ],
)
def test_decide(
    error: Exception, retry_on: tuple[type[BaseException], ...] | None, decision: Decision
) -> None:
    assert decide(error, retry_on) == decision


def test_retry_takes_seconds_or_a_timedelta_and_says_when() -> None:
    assert pgtq.Retry(1.5).delay == timedelta(seconds=1.5)
    assert pgtq.Retry(delay=timedelta(minutes=5)).delay == timedelta(minutes=5)
    assert pgtq.Retry(0).delay == timedelta(0)
    assert str(pgtq.Retry(90, "rate limited")) == "retry in 90 s: rate limited"
    assert str(pgtq.Retry()) == "retry after the job's backoff"
    assert str(pgtq.Abort("the account is closed")) == "the account is closed"


@pytest.mark.parametrize(
    ("delay", "error", "words"),
    [
        (-1, ValueError, "between 0 and 100 years"),
        (timedelta(days=36_001), ValueError, "between 0 and 100 years"),
        (math.inf, ValueError, "finite"),
        (math.nan, ValueError, "finite"),
        ("30", TypeError, "timedelta or a number of seconds"),
        (True, TypeError, "timedelta or a number of seconds"),
    ],
)
def test_a_retry_delay_out_of_what_sql_takes_is_refused_in_the_handler(
    delay: Any, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words) as raised:
        pgtq.Retry(delay)
    assert "Retry delay" in str(raised.value)


def test_checked_delay_and_retry_on() -> None:
    assert checked_delay(None, "x") is None
    assert checked_delay(timedelta(days=36_000), "x") == timedelta(days=36_000)
    assert checked_retry_on(None) is None
    assert checked_retry_on(KeyError) == (KeyError,)
    assert checked_retry_on((KeyError, OSError)) == (KeyError, OSError)
    assert checked_retry_on(()) == ()
    for bad in ("KeyError", [KeyError], (KeyError, 3), int):
        with pytest.raises(TypeError, match="retry_on must be an exception class"):
            checked_retry_on(bad)  # type: ignore[arg-type]


def test_the_handler_decorator_keeps_its_policy_checked_and_stays_callable() -> None:
    q = pgtq.PgTq("q", "dbname=never_connected")

    @q.handler(backoff_base=30, backoff_cap=timedelta(minutes=10), retry_on=OSError)
    def fetch(url: str) -> str:
        return url.upper()

    assert (fetch.backoff_base, fetch.backoff_cap, fetch.retry_on) == (
        timedelta(seconds=30),
        timedelta(minutes=10),
        (OSError,),
    )
    assert fetch("a") == "A", "still a plain callable"

    @q.handler()
    def plain() -> None: ...

    assert (plain.backoff_base, plain.backoff_cap, plain.retry_on) == (None, None, None)
    with pytest.raises(ValueError, match="backoff_base must be between 0 and 100 years"):
        q.handler(backoff_base=-5)
    with pytest.raises(TypeError, match="retry_on"):
        q.handler(retry_on="OSError")  # type: ignore[arg-type]


def test_push_options_take_the_handlers_backoff_unless_overridden() -> None:
    q = pgtq.PgTq("q", "dbname=never_connected")

    @q.handler(backoff_base=30, backoff_cap=600)
    def send() -> None: ...

    defaults = send.options()._push_options()
    assert (defaults["backoff_base"], defaults["backoff_cap"]) == (
        timedelta(seconds=30),
        timedelta(seconds=600),
    )
    overridden = send.options(backoff_base=timedelta(seconds=5))._push_options()
    assert (overridden["backoff_base"], overridden["backoff_cap"]) == (
        timedelta(seconds=5),
        timedelta(seconds=600),
    )


def outcome_of(func: Any, **policy: Any) -> Any:
    q = pgtq.PgTq("q", "dbname=never_connected")
    handler = q.handler(name="job", **policy)(func)
    return run_task(Task(id=1, queue="q", name="job", args=()), handler)


def raising(error: BaseException) -> Any:
    def handler() -> None:
        raise error

    return handler


def test_what_a_worker_writes_for_each_ending() -> None:
    retried = outcome_of(raising(pgtq.Retry(timedelta(minutes=2), "later")))
    assert (retried.kind, retried.retry_in, retried.summary) == (
        "error",
        timedelta(minutes=2),
        "Retry (retry asked)",
    )
    assert retried.error.startswith("Retry: retry in 120 s: later\nTraceback")

    aborted = outcome_of(raising(pgtq.Abort("the account is closed")))
    assert (aborted.kind, aborted.retry_in, aborted.summary) == ("abort", None, "Abort (aborted)")
    assert aborted.error.startswith("Abort: the account is closed\n")

    failed = outcome_of(raising(Transient("flaky")), retry_on=(Transient,))
    assert (failed.kind, failed.retry_in, failed.summary) == ("error", None, "Transient")

    given_up = outcome_of(raising(Permanent("bad input")), retry_on=(Transient,))
    assert (given_up.kind, given_up.summary) == ("abort", "Permanent (not in retry_on: no retry)")
    assert given_up.error.startswith("Permanent: bad input\n")

    assert outcome_of(raising(Permanent("x"))).kind == "error", "retry_on=None retries every exception"


def test_an_async_handler_may_abort_or_retry_too() -> None:
    async def aborts() -> None:
        raise pgtq.Abort("no")

    async def retries() -> None:
        raise pgtq.Retry(5)

    assert outcome_of(aborts).kind == "abort"
    assert (outcome_of(retries).kind, outcome_of(retries).retry_in) == ("error", timedelta(seconds=5))
