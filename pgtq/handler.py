"""Client API: handlers, plain callables that also know how to enqueue themselves."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar

from pgtq._retry import RetryOn

if TYPE_CHECKING:
    import psycopg

    from pgtq.queue import PgTq

P = ParamSpec("P")
R = TypeVar("R")

# What a push with a job key does when a pending job has the key: "keep"
# changes nothing and returns that job's id, "replace" gives it this push's
# arguments, run_at, priority and max_attempts (pgtq.push checks the mode).
JobKeyMode = Literal["keep", "replace"]


@dataclass(frozen=True)
class PushOptions(Generic[P, R]):
    """How to enqueue one handler's jobs: kept apart from the task's own
    arguments, so a task may take parameters named ``priority`` or ``conn``.

    Build it with ``handler.options(...)``, then call ``.push(*args, **kwargs)``.
    """

    handler: Handler[P, R]
    run_at: datetime | None = None
    delay: timedelta | float | None = None
    priority: int | None = None
    max_attempts: int | None = None
    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any] | None = None
    queue: str | None = None
    backoff_base: timedelta | float | None = None
    backoff_cap: timedelta | float | None = None
    job_key: str | None = None
    job_key_mode: JobKeyMode = "keep"
    lock_key: str | None = None

    def push(self, *args: P.args, **kwargs: P.kwargs) -> int:
        """Enqueue one job with these options; returns its id (with a job
        key, the id of the pending job that holds it, if one did)."""
        return self.handler.pgtq.push(
            self.handler.name,
            args,
            kwargs,
            job_key=self.job_key,
            job_key_mode=self.job_key_mode,
            **self._push_options(),
        )

    def push_many(
        self,
        args_list: Sequence[Sequence[Any]],
        kwargs_list: Sequence[Mapping[str, Any]] | None = None,
        *,
        job_keys: Sequence[str | None] | None = None,
    ) -> list[int]:
        """Enqueue one job per element of ``args_list`` (and ``kwargs_list``)
        with these options, in one call; returns their ids. ``job_keys``:
        one job key per job (None: no key), with these options' mode."""
        if self.job_key is not None:
            raise ValueError("a job_key names one job: give push_many job_keys=[...], one per job")
        return self.handler.pgtq.push_many(
            self.handler.name,
            args_list,
            kwargs_list,
            job_keys=job_keys,
            job_key_mode=self.job_key_mode,
            **self._push_options(),
        )

    async def push_async(self, *args: P.args, **kwargs: P.kwargs) -> int:
        """``push`` for asyncio code: through the queue's ``aio``
        (``pgtq.aio.AsyncPgTq``), or on ``conn`` when it is an ``AsyncConnection``."""
        return await self.handler.pgtq.aio.push(
            self.handler.name,
            args,
            kwargs,
            job_key=self.job_key,
            job_key_mode=self.job_key_mode,
            **self._push_options(),
        )

    async def push_many_async(
        self,
        args_list: Sequence[Sequence[Any]],
        kwargs_list: Sequence[Mapping[str, Any]] | None = None,
        *,
        job_keys: Sequence[str | None] | None = None,
    ) -> list[int]:
        """``push_many`` for asyncio code (see ``push_async``)."""
        if self.job_key is not None:
            raise ValueError("a job_key names one job: give push_many_async job_keys=[...], one per job")
        return await self.handler.pgtq.aio.push_many(
            self.handler.name,
            args_list,
            kwargs_list,
            job_keys=job_keys,
            job_key_mode=self.job_key_mode,
            **self._push_options(),
        )

    def _push_options(self) -> dict[str, Any]:
        """These options, with the handler's defaults where none was given."""
        handler = self.handler
        return {
            "run_at": self.run_at,
            "delay": self.delay,
            "priority": handler.priority if self.priority is None else self.priority,
            "max_attempts": handler.max_attempts if self.max_attempts is None else self.max_attempts,
            "conn": self.conn,
            "queue": self.queue,
            "backoff_base": handler.backoff_base if self.backoff_base is None else self.backoff_base,
            "backoff_cap": handler.backoff_cap if self.backoff_cap is None else self.backoff_cap,
            "lock_key": self.lock_key,
        }


class Handler(Generic[P, R]):
    """A task handler registered with ``PgTq.handler()``.

    Calling it runs the function now, in this thread. ``.push(...)`` enqueues
    it instead; ``.options(...).push(...)`` enqueues with push options.

    Its retry policy: ``backoff_base`` and ``backoff_cap`` (timedeltas, None:
    the SQL defaults) are pushed with each job and applied by SQL; a worker
    retries an exception of the handler by the usual rule when ``retry_on``
    is None or holds its class, and fails the job at once otherwise.

    A ``transactional`` handler runs, in a worker, inside a transaction on
    a connection of the worker's (``pgtq.current_task().conn``) that also
    completes its job: its writes there and the completion commit
    together, or not at all (see ``PgTq.handler``).
    """

    def __init__(
        self,
        pgtq: PgTq,
        func: Callable[P, R],
        name: str,
        *,
        priority: int = 0,
        max_attempts: int = 25,
        timeout: float | None = None,
        backoff_base: timedelta | None = None,
        backoff_cap: timedelta | None = None,
        retry_on: RetryOn | None = None,
        transactional: bool = False,
    ) -> None:
        self.pgtq = pgtq
        self.func = func
        self.name = name
        self.priority = priority
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_on = retry_on
        self.transactional = transactional
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", name)
        self.__wrapped__ = func

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def push(self, *args: P.args, **kwargs: P.kwargs) -> int:
        """Enqueue a job that calls this handler with these arguments."""
        return PushOptions(self).push(*args, **kwargs)

    def push_many(
        self,
        args_list: Sequence[Sequence[Any]],
        kwargs_list: Sequence[Mapping[str, Any]] | None = None,
        *,
        job_keys: Sequence[str | None] | None = None,
    ) -> list[int]:
        """Enqueue many jobs of this handler in one call (``pgtq.push_many``):
        one per element of ``args_list``, with ``kwargs_list``'s element
        (and ``job_keys``', its job key)."""
        return PushOptions(self).push_many(args_list, kwargs_list, job_keys=job_keys)

    async def push_async(self, *args: P.args, **kwargs: P.kwargs) -> int:
        """``push`` for asyncio code (``await send.push_async(...)``), through
        the queue's ``aio`` (``pgtq.aio.AsyncPgTq``)."""
        return await PushOptions(self).push_async(*args, **kwargs)

    async def push_many_async(
        self,
        args_list: Sequence[Sequence[Any]],
        kwargs_list: Sequence[Mapping[str, Any]] | None = None,
        *,
        job_keys: Sequence[str | None] | None = None,
    ) -> list[int]:
        """``push_many`` for asyncio code."""
        return await PushOptions(self).push_many_async(args_list, kwargs_list, job_keys=job_keys)

    def options(
        self,
        *,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any] | None = None,
        queue: str | None = None,
        backoff_base: timedelta | float | None = None,
        backoff_cap: timedelta | float | None = None,
        job_key: str | None = None,
        job_key_mode: JobKeyMode = "keep",
        lock_key: str | None = None,
    ) -> PushOptions[P, R]:
        """Push options: ``run_at`` or ``delay`` (seconds or timedelta),
        ``priority``, ``max_attempts``, ``queue``, ``backoff_base`` and
        ``backoff_cap`` (seconds or timedelta; the handler's when not given),
        ``conn``, a psycopg connection whose open transaction the push
        joins (an ``AsyncConnection`` for ``push_async``), ``job_key`` with ``job_key_mode`` (``"keep"`` or
        ``"replace"``: see ``PgTq.push``), and ``lock_key``: at most one job
        of that key runs at a time, across queues and workers, in the key's
        order."""
        return replace(
            PushOptions(self),
            run_at=run_at,
            delay=delay,
            priority=priority,
            max_attempts=max_attempts,
            conn=conn,
            queue=queue,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            job_key=job_key,
            job_key_mode=job_key_mode,
            lock_key=lock_key,
        )

    def __repr__(self) -> str:
        return f"<pgtq.Handler {self.name!r} of queue {self.pgtq.queue!r}>"
