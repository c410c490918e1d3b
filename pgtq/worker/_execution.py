"""Worker runtime: running one handler call and describing how it ended.

Shared by the thread slots and the child processes of the worker, so a
job ends the same way whichever pool ran it. How an exception of the
handler ends its job (a retry by the usual rule, a retry at a given time,
no further attempt) is ``pgtq._retry.decide``'s; when the job runs again
is SQL's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import threading
import time
import traceback
from collections.abc import Coroutine
from functools import partial
from typing import Any

from pgtq._json import encode_result
from pgtq._records import Outcome
from pgtq._retry import decide
from pgtq.errors import UnknownTaskError
from pgtq.handler import Handler
from pgtq.task import Cancellation, Task, _current_task
from pgtq.worker._transactional import (
    SlotConnections,
    StaleLease,
    run_in_async_transaction,
    run_in_transaction,
)


def describe_exception(error: BaseException) -> str:
    """What a failed job records: type, message and traceback."""
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    return f"{type(error).__name__}: {error}\n{''.join(lines)}"


class AsyncRunner:
    """One event loop in a daemon thread, shared by every ``async def``
    handler of a process, so many coroutines run at once."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="pgtq-async", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(
        self,
        coroutine: Coroutine[Any, Any, Any],
        context: contextvars.Context,
        timeout: float | None,
        cancellation: Cancellation,
    ) -> Any:
        """Run ``coroutine`` on the shared loop and wait for its result; past
        ``timeout`` seconds it is cancelled and HandlerTimeout raised. When
        ``cancellation`` is requested it is cancelled (``CancelledError``
        inside it) and HandlerCancelled raised, without waiting for it."""
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(_in_context(coroutine, context), loop)
        cancellation.on_request(future.cancel)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise HandlerTimeout(timeout) from None
        except concurrent.futures.CancelledError:
            if cancellation.requested:
                raise HandlerCancelled from None
            raise  # the coroutine was cancelled by something else: an ordinary failure


async def _in_context(coroutine: Coroutine[Any, Any, Any], context: contextvars.Context) -> Any:
    # The task copies the caller's context, so current_task() works inside.
    return await asyncio.get_running_loop().create_task(coroutine, context=context)


_ASYNC = AsyncRunner()

# What most handlers return, and no awaitable: inspect.isawaitable's checks
# of abstract classes are skipped for them (a few microseconds per job).
_NEVER_AWAITABLE = frozenset({type(None), bool, int, float, str, bytes, dict, list, tuple})


class HandlerTimeout(Exception):
    """A handler ran past its ``timeout``."""

    def __init__(self, timeout: float | None) -> None:
        super().__init__(f"handler exceeded its timeout of {timeout:g} s")
        self.timeout = timeout


class HandlerCancelled(Exception):
    """A handler was stopped because its job was asked to cancel."""


def cancelled_outcome(task: Task, duration: float, how: str) -> Outcome:
    """The outcome of a run stopped by a cancel request (``how``: what
    became of the handler). Written with ``pgtq.abort``: the job ends
    ``cancelled`` (its cancel request makes sure) and never runs again."""
    return Outcome(
        task,
        "abort",
        duration,
        error=f"Cancelled: job {task.id} was asked to cancel while it ran; {how}",
        summary="cancelled",
    )


def timeout_outcome(task: Task, timeout: float, duration: float) -> Outcome:
    """The outcome of a run stopped at its timeout (retried by the usual rule)."""
    return Outcome(
        task,
        "error",
        duration,
        error=f"TimeoutError: task {task.name!r} exceeded its timeout of {timeout:g} s",
        summary="timeout",
    )


def unknown_task_outcome(task: Task, error: UnknownTaskError) -> Outcome:
    """The outcome of a job whose task has no handler here (retried by the usual rule)."""
    return Outcome(task, "error", 0.0, error=f"UnknownTaskError: {error}", summary="unknown task")


def run_task(task: Task, handler: Handler[Any, Any], connections: SlotConnections | None = None) -> Outcome:
    """Call the handler with the task's arguments and report how it ended.

    An exception becomes an ``error`` outcome (retried by the usual rule,
    or at the delay of a ``pgtq.Retry``) or an ``abort`` outcome (a
    ``pgtq.Abort``, or an exception outside the handler's ``retry_on``);
    it never escapes. ``async`` handlers run on a shared event loop and are
    cancelled at their timeout or when the job is asked to cancel; a
    synchronous handler cannot be interrupted here (the worker abandons it
    at its deadline, and it reads a cancel request from its task).

    A transactional handler runs in a transaction on the slot's connection
    of ``connections`` that also completes its job (``_transactional.py``):
    its outcome comes back already written (``Outcome.written``), unless it
    raised (the transaction rolled back; the outcome is written as usual).
    """
    started = time.monotonic()
    token = _current_task.set(task)
    try:
        if handler.transactional:
            return _run_transactional(task, handler, connections, started)
        result = handler.func(*task.args, **task.kwargs)
        if type(result) not in _NEVER_AWAITABLE and inspect.isawaitable(result):
            context = contextvars.copy_context()
            result = _ASYNC.run(_await(result), context, handler.timeout, task.cancellation)
        result_json = encode_result(result)
    except HandlerTimeout:
        return timeout_outcome(task, handler.timeout or 0.0, time.monotonic() - started)
    except HandlerCancelled:
        return cancelled_outcome(task, time.monotonic() - started, "its coroutine was cancelled")
    except Exception as error:  # a handler's failure fails its job, not the worker
        return failure_outcome(task, error, handler, time.monotonic() - started)
    finally:
        _current_task.reset(token)
    return Outcome(task, "done", time.monotonic() - started, result_json=result_json, summary="done")


def _run_transactional(
    task: Task, handler: Handler[Any, Any], connections: SlotConnections | None, started: float
) -> Outcome:
    if connections is None:
        raise RuntimeError(f"task {task.name!r} is transactional: it runs only in a worker's thread pool")
    call = partial(handler.func, *task.args, **task.kwargs)
    try:
        if inspect.iscoroutinefunction(handler.func):
            coroutine = run_in_async_transaction(task, call, handler.pgtq.dsn, connections)
            context = contextvars.copy_context()
            result_json = _ASYNC.run(coroutine, context, handler.timeout, task.cancellation)
        else:
            result_json = run_in_transaction(task, call, handler.pgtq.dsn, connections)
    except StaleLease:
        duration = time.monotonic() - started
        return Outcome(task, "done", duration, summary="rolled back (lease stale)", written=False)
    duration = time.monotonic() - started
    return Outcome(task, "done", duration, result_json=result_json, summary="done", written=True)


def failure_outcome(task: Task, error: Exception, handler: Handler[Any, Any], duration: float) -> Outcome:
    """The outcome of a run whose handler raised ``error``, as ``decide``
    rules with the handler's ``retry_on``."""
    decision = decide(error, handler.retry_on)
    summary = f"{type(error).__name__} ({decision.why})" if decision.why else type(error).__name__
    return Outcome(
        task,
        "abort" if decision.final else "error",
        duration,
        error=describe_exception(error),
        summary=summary,
        retry_in=decision.retry_in,
    )


async def _await(awaitable: Any) -> Any:
    return await awaitable
