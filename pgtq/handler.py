"""Client API: handlers, plain callables that also know how to enqueue themselves."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

if TYPE_CHECKING:
    import psycopg

    from pgtq.queue import PgTq

P = ParamSpec("P")
R = TypeVar("R")


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

    def push(self, *args: P.args, **kwargs: P.kwargs) -> int:
        """Enqueue one job with these options; returns its id."""
        return self.handler.pgtq.push(self.handler.name, args, kwargs, **self._push_options())

    def push_many(
        self, args_list: Sequence[Sequence[Any]], kwargs_list: Sequence[Mapping[str, Any]] | None = None
    ) -> list[int]:
        """Enqueue one job per element of ``args_list`` (and ``kwargs_list``)
        with these options, in one call; returns their ids."""
        return self.handler.pgtq.push_many(self.handler.name, args_list, kwargs_list, **self._push_options())

    async def push_async(self, *args: P.args, **kwargs: P.kwargs) -> int:
        """``push`` for asyncio code: through the queue's ``aio``
        (``pgtq.aio.AsyncPgTq``), or on ``conn`` when it is an ``AsyncConnection``."""
        return await self.handler.pgtq.aio.push(self.handler.name, args, kwargs, **self._push_options())

    async def push_many_async(
        self, args_list: Sequence[Sequence[Any]], kwargs_list: Sequence[Mapping[str, Any]] | None = None
    ) -> list[int]:
        """``push_many`` for asyncio code (see ``push_async``)."""
        return await self.handler.pgtq.aio.push_many(
            self.handler.name, args_list, kwargs_list, **self._push_options()
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
        }


class Handler(Generic[P, R]):
    """A task handler registered with ``PgTq.handler()``.

    Calling it runs the function now, in this thread. ``.push(...)`` enqueues
    it instead; ``.options(...).push(...)`` enqueues with push options.
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
    ) -> None:
        self.pgtq = pgtq
        self.func = func
        self.name = name
        self.priority = priority
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", name)
        self.__wrapped__ = func

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def push(self, *args: P.args, **kwargs: P.kwargs) -> int:
        """Enqueue a job that calls this handler with these arguments."""
        return PushOptions(self).push(*args, **kwargs)

    def push_many(
        self, args_list: Sequence[Sequence[Any]], kwargs_list: Sequence[Mapping[str, Any]] | None = None
    ) -> list[int]:
        """Enqueue many jobs of this handler in one call (``pgtq.push_many``):
        one per element of ``args_list``, with ``kwargs_list``'s element."""
        return PushOptions(self).push_many(args_list, kwargs_list)

    async def push_async(self, *args: P.args, **kwargs: P.kwargs) -> int:
        """``push`` for asyncio code (``await send.push_async(...)``), through
        the queue's ``aio`` (``pgtq.aio.AsyncPgTq``)."""
        return await PushOptions(self).push_async(*args, **kwargs)

    async def push_many_async(
        self, args_list: Sequence[Sequence[Any]], kwargs_list: Sequence[Mapping[str, Any]] | None = None
    ) -> list[int]:
        """``push_many`` for asyncio code."""
        return await PushOptions(self).push_many_async(args_list, kwargs_list)

    def options(
        self,
        *,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any] | None = None,
        queue: str | None = None,
    ) -> PushOptions[P, R]:
        """Push options: ``run_at`` or ``delay`` (seconds or timedelta),
        ``priority``, ``max_attempts``, ``queue``, and ``conn``, a psycopg
        connection whose open transaction the push joins (an
        ``AsyncConnection`` for ``push_async``)."""
        return replace(
            PushOptions(self),
            run_at=run_at,
            delay=delay,
            priority=priority,
            max_attempts=max_attempts,
            conn=conn,
            queue=queue,
        )

    def __repr__(self) -> str:
        return f"<pgtq.Handler {self.name!r} of queue {self.pgtq.queue!r}>"
