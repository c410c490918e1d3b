"""Client API: turning the values callers pass into SQL parameters, with a
clear error for a value of the wrong kind before anything is sent."""

from __future__ import annotations

from datetime import timedelta


def as_interval(value: timedelta | float | int | None, what: str) -> timedelta | None:
    """A timedelta, or a number of seconds, as a timedelta (None stays None)."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a timedelta or a number of seconds, got {value!r}")
    return timedelta(seconds=value)


def as_seconds(value: timedelta | float | int | None, what: str) -> float | None:
    """A timedelta, or a number of seconds, as seconds (None stays None)."""
    interval = as_interval(value, what)
    return None if interval is None else interval.total_seconds()
