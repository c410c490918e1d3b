"""Client API: a push as a query value, built once for the sync and the
async client (``PgTq.push``, ``pgtq.aio.AsyncPgTq.push``): the caller's
values checked and encoded, then ``queries.push`` / ``queries.push_many``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pgtq._db import queries
from pgtq._db.queries import Query
from pgtq._json import encode_arguments
from pgtq._retry import checked_delay
from pgtq._values import as_interval


def push_options(
    queue: str,
    task: str,
    run_at: datetime | None,
    delay: timedelta | float | None,
    priority: int,
    max_attempts: int,
    backoff_base: timedelta | float | None,
    backoff_cap: timedelta | float | None,
    lock_key: str | None,
) -> dict[str, Any]:
    """The checked options of a push, as the query's parameters."""
    if run_at is not None and delay is not None:
        raise ValueError("give run_at or delay, not both")
    if run_at is not None and (not isinstance(run_at, datetime) or run_at.tzinfo is None):
        raise ValueError(f"run_at must be a timezone-aware datetime, got {run_at!r}")
    return {
        "queue": queue,
        "task": task,
        "run_at": run_at,
        "delay": as_interval(delay, "delay"),
        "priority": priority,
        "max_attempts": max_attempts,
        "backoff_base": checked_delay(backoff_base, "backoff_base"),
        "backoff_cap": checked_delay(backoff_cap, "backoff_cap"),
        "lock_key": lock_key,
    }


def push_query(
    queue: str,
    task: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    *,
    run_at: datetime | None,
    delay: timedelta | float | None,
    priority: int,
    max_attempts: int,
    backoff_base: timedelta | float | None = None,
    backoff_cap: timedelta | float | None = None,
    job_key: str | None = None,
    job_key_mode: str = "keep",
    lock_key: str | None = None,
) -> Query[int]:
    """``pgtq.push`` of one job of ``task`` with these arguments and options."""
    args_json, kwargs_json = encode_arguments(task, args, kwargs or {})
    options = push_options(
        queue, task, run_at, delay, priority, max_attempts, backoff_base, backoff_cap, lock_key
    )
    return queries.push(
        args_json=args_json, kwargs_json=kwargs_json, job_key=job_key, job_key_mode=job_key_mode, **options
    )


def push_many_query(
    queue: str,
    task: str,
    args_list: Sequence[Sequence[Any]],
    kwargs_list: Sequence[Mapping[str, Any]] | None,
    *,
    run_at: datetime | None,
    delay: timedelta | float | None,
    priority: int,
    max_attempts: int,
    backoff_base: timedelta | float | None = None,
    backoff_cap: timedelta | float | None = None,
    job_keys: Sequence[str | None] | None = None,
    job_key_mode: str = "keep",
    lock_key: str | None = None,
) -> Query[list[int]]:
    """``pgtq.push_many``: one job of ``task`` per element of ``args_list``
    (with ``kwargs_list``'s element and ``job_keys``' key at the same
    position)."""
    if kwargs_list is not None and len(kwargs_list) != len(args_list):
        raise ValueError(f"got {len(args_list)} argument lists but {len(kwargs_list)} keyword mappings")
    encoded = [
        encode_arguments(task, args, kwargs_list[n] if kwargs_list is not None else {})
        for n, args in enumerate(args_list)
    ]
    options = push_options(
        queue, task, run_at, delay, priority, max_attempts, backoff_base, backoff_cap, lock_key
    )
    return queries.push_many(
        args_json=[args_json for args_json, _ in encoded],
        kwargs_json=None if kwargs_list is None else [kwargs_json for _, kwargs_json in encoded],
        job_keys=job_keys,
        job_key_mode=job_key_mode,
        **options,
    )
