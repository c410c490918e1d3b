"""Client API: retry control. What a handler may raise to
steer its job (``Retry``, ``Abort``), the checks of a handler's retry
policy (backoff, ``retry_on``), and ``decide``: what a handler's exception
asks of the queue. Pure: the worker runtime writes the decision with
``pgtq.fail`` or ``pgtq.abort``, and SQL computes when a job runs again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

# The longest delay the SQL takes (retry_in, backoff_base and backoff_cap:
# "at most 100 years", PostgreSQL counting a year as 360 days for that).
LONGEST_DELAY = timedelta(days=36_000)

RetryOn = tuple[type[BaseException], ...]


def checked_delay(value: timedelta | float | int | None, what: str) -> timedelta | None:
    """``value`` (a timedelta or seconds; None stays None) as a timedelta
    between 0 and 100 years; raises TypeError or ValueError naming ``what``."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        delay = value
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a timedelta or a number of seconds, got {value!r}")
    elif not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
    else:
        delay = timedelta(seconds=value)
    if not timedelta(0) <= delay <= LONGEST_DELAY:
        raise ValueError(f"{what} must be between 0 and 100 years, got {value!r}")
    return delay


def checked_retry_on(value: type[BaseException] | tuple[type[BaseException], ...] | None) -> RetryOn | None:
    """``retry_on`` as a tuple of exception classes (one class is taken as a
    tuple of one; None stays None: every exception is retried)."""
    if value is None:
        return None
    classes = value if isinstance(value, tuple) else (value,)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(f"retry_on must be an exception class or a tuple of them, got {value!r}")
    return classes


class Retry(Exception):
    """Raised by a handler: run the job again ``delay`` (seconds or a
    timedelta, 0 to 100 years) from now, whatever its backoff says; with no
    delay, after its backoff, even when ``retry_on`` would not retry.

    It counts as an attempt (``pgtq.fail(..., retry_in)``): with none left
    the job is ``failed``. ``reason`` is recorded with the attempt.
    """

    def __init__(self, delay: timedelta | float | None = None, reason: str = "") -> None:
        self.delay = checked_delay(delay, "Retry delay")
        self.reason = reason
        when = "after the job's backoff" if self.delay is None else f"in {self.delay.total_seconds():g} s"
        super().__init__(f"retry {when}{f': {self.reason}' if self.reason else ''}")


class Abort(Exception):
    """Raised by a handler: fail the job at once, with no further attempt
    whatever attempts remain (``pgtq.abort``); the message is its error.
    ``pgtq.retry`` can still run it again."""


@dataclass(frozen=True)
class Decision:
    """What a handler's exception asks of the queue: ``final`` (no further
    attempt: ``pgtq.abort``), or a retry by the usual rule (``pgtq.fail``)
    at ``retry_in`` from now, or after the job's backoff when None.
    ``why`` says which rule decided, for the log."""

    final: bool
    retry_in: timedelta | None = None
    why: str = ""


def decide(error: BaseException, retry_on: RetryOn | None) -> Decision:
    """``Abort`` is final and ``Retry`` retries (at its delay), whatever
    ``retry_on`` says; any other exception is retried when ``retry_on`` is
    None or it is an instance of one of its classes, and final otherwise."""
    if isinstance(error, Abort):
        return Decision(final=True, why="aborted")
    if isinstance(error, Retry):
        return Decision(final=False, retry_in=error.delay, why="retry asked")
    if retry_on is None or isinstance(error, retry_on):
        return Decision(final=False)
    return Decision(final=True, why="not in retry_on: no retry")
