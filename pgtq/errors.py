"""Client API, at the bottom: pgtq's exceptions, and the one place where
database errors become them (``database_errors``, applied by the SQL-engine
layer, which therefore sits above this module)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import psycopg
from psycopg import errors as pg_errors

__all__ = [
    "ConnectionFailedError",
    "InvalidJobError",
    "JobCancelledError",
    "JobFailedError",
    "JobNotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PgTqError",
    "SchemaMissingError",
    "SchemaVersionError",
    "UnknownTaskError",
    "WaitTimeoutError",
    "database_errors",
]


class PgTqError(Exception):
    """Base class of every error pgtq raises on purpose."""


class InvalidJobError(PgTqError, ValueError):
    """The database refused a job or call because an argument is invalid
    (SQLSTATE PT001-PT004), or because the call cannot run as it was made
    (PT007: a pop that needs READ COMMITTED); nothing was written."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class PayloadTooLargeError(InvalidJobError):
    """The job's arguments exceed the configured payload limit (PT005)."""


class ConnectionFailedError(PgTqError):
    """The database could not be reached, or the connection was lost."""


class SchemaMissingError(PgTqError):
    """The database has no pgtq schema: run ``pgtq migrate``."""


class SchemaVersionError(PgTqError):
    """The installed pgtq schema is newer than this package understands."""


class PermissionDeniedError(PgTqError, PermissionError):
    """The database role lacks a right pgtq needs (see SECURITY.md: roles)."""


class UnknownTaskError(PgTqError, LookupError):
    """A task name without a handler in the queue object: raised by
    ``PgTq.handler_for``; a worker fails a job of such a task with it (the
    job's ``last_error`` starts with ``UnknownTaskError:``) and retries it by
    the usual rule, so a worker deployed with the handler can run it later."""

    def __init__(self, task: str, queue: str, known: Iterable[str]) -> None:
        names = ", ".join(sorted(known)) or "none"
        super().__init__(f"no handler for task {task!r} in queue {queue!r} (known tasks: {names})")
        self.task = task
        self.queue = queue


class JobFailedError(PgTqError):
    """The job a waiter waited for failed for good (``pgtq.wait``): its
    last attempt failed with no attempt left, or it was aborted.

    ``error`` is the error text the job stored (as ``pgtq.jobs.last_error``:
    for a handler's exception, its type and message on the first line, then
    the traceback), ``traceback`` the traceback part of it (None when the
    error has none)."""

    def __init__(self, job_id: int, error: str | None) -> None:
        self.job_id = job_id
        self.error = error
        super().__init__(f"job {job_id} failed: {_first_line(error) or 'no error recorded'}")

    @property
    def traceback(self) -> str | None:
        """The traceback the stored error carries, from its
        ``Traceback (most recent call last):`` line on; None without one."""
        if self.error is None:
            return None
        start = self.error.find("Traceback (most recent call last):")
        return None if start < 0 else self.error[start:]


class JobCancelledError(PgTqError):
    """The job a waiter waited for was cancelled (``pgtq.wait``): before it
    ran, or by a cancel request while it ran, or superseded by a newer job
    with its job key. ``error`` is the last error it stored (None when
    there is none; for a superseded job, which job took its place),
    ``result`` the result of a run that completed after the request."""

    def __init__(self, job_id: int, error: str | None = None, result: object = None) -> None:
        self.job_id = job_id
        self.error = error
        self.result = result
        reason = _first_line(error)
        super().__init__(f"job {job_id} was cancelled{f': {reason}' if reason else ''}")


class JobNotFoundError(PgTqError, LookupError):
    """A waiter asked for jobs it cannot see (``pgtq.wait``): unknown ids,
    jobs another login role pushed (a waiter sees only the jobs its login
    role pushed, or a role it is a member of: SECURITY.md), jobs pushed
    before schema 0.2.0, or jobs deleted meanwhile. ``job_ids`` names them."""

    def __init__(self, job_ids: Iterable[int]) -> None:
        self.job_ids = sorted(job_ids)
        shown = ", ".join(str(job_id) for job_id in self.job_ids[:10])
        more = f" and {len(self.job_ids) - 10} more" if len(self.job_ids) > 10 else ""
        what = "job" if len(self.job_ids) == 1 else "jobs"
        super().__init__(
            f"no {what} {shown}{more} that this login role may wait for: unknown, pushed by another "
            "login role, pushed before pgtq 0.2.0, or deleted"
        )


class WaitTimeoutError(PgTqError, TimeoutError):
    """Jobs a waiter waited for did not all finish within its timeout
    (``pgtq.wait``). ``job_ids``: those that had not finished, in the order
    asked; ``outcomes``: those that had, by id (``pgtq.JobOutcome``)."""

    def __init__(self, job_ids: Iterable[int], timeout: float, outcomes: Mapping[int, object]) -> None:
        self.job_ids = list(job_ids)
        self.timeout = timeout
        self.outcomes = dict(outcomes)
        if len(self.job_ids) == 1 and not self.outcomes:
            message = f"job {self.job_ids[0]} did not finish within {timeout:g} s"
        else:
            shown = ", ".join(str(job_id) for job_id in self.job_ids[:10])
            more = ", ..." if len(self.job_ids) > 10 else ""
            total = len(self.job_ids) + len(self.outcomes)
            late = f"{len(self.job_ids)} of {total} jobs"
            message = f"{late} did not finish within {timeout:g} s ({shown}{more})"
        super().__init__(message)


def _first_line(text: str | None) -> str:
    """The first line of a stored error ('' for None)."""
    return (text or "").strip().split("\n", 1)[0]


_INVALID_INPUT_STATES = {"PT001", "PT002", "PT003", "PT004", "PT007"}


def translate(error: psycopg.Error) -> PgTqError | None:
    """The pgtq exception for a database error, or None to let it pass."""
    state = error.sqlstate or ""
    message = error.diag.message_primary or str(error)
    if state == "PT005":
        return PayloadTooLargeError(message, state)
    if state in _INVALID_INPUT_STATES:
        return InvalidJobError(message, state)
    missing_object = pg_errors.UndefinedFunction | pg_errors.InvalidSchemaName | pg_errors.UndefinedTable
    if isinstance(error, missing_object) and "pgtq" in message:
        return SchemaMissingError(
            f"the pgtq schema is missing or incomplete in this database ({message}); "
            "install it with `pgtq migrate DSN`"
        )
    if isinstance(error, pg_errors.InsufficientPrivilege):
        return PermissionDeniedError(
            f"{message} (grant the role pgtq_producer, pgtq_worker or pgtq_admin: see SECURITY.md)"
        )
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError) and _lost_connection(state):
        return ConnectionFailedError(f"database connection failed: {message.strip()}")
    return None


# A server shutting down, crashing or starting up ends the session.
_SESSION_ENDING_STATES = {"57P01", "57P02", "57P03"}


def _lost_connection(state: str) -> bool:
    """Whether an OperationalError means the connection is gone: no SQLSTATE
    (the client lost the server), a connection exception (class 08), or the
    server ending the session. psycopg also files serialization failures,
    deadlocks, statement timeouts and lock timeouts under OperationalError:
    those fail one statement and pass through as psycopg raised them."""
    return not state or state.startswith("08") or state in _SESSION_ENDING_STATES


class database_errors:
    """Re-raise psycopg errors as pgtq errors where pgtq knows their meaning
    (``with database_errors(): ...``). A class, not a generator: every
    round trip enters it (through ``calling``), and a generator costs
    microseconds a call."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, _kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> None:
        if isinstance(error, psycopg.Error):
            translated = translate(error)
            if translated is not None:
                raise translated from error
