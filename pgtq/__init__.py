"""pgtq: a PostgreSQL task queue whose rules live in SQL.

The SQL API (schema ``pgtq``: push, pop, complete, fail, tick, ...) owns the
queue; this package maps task names to callables, calls that API, and runs
workers and the scheduler. Its layers, each importing only those below it:

* at the bottom, the records of ``pgtq.task`` and the errors of
  ``pgtq.errors``: part of the client API, built and raised by the layer
  above them;
* SQL engine (``pgtq._db``): the statements and the gateway that sends them;
* client API (this module's names: ``PgTq``, ``Handler``, ``Database``);
* worker runtime (``pgtq.worker``): the dispatcher, its pools, the listener
  and the scheduler;
* the command line (``pgtq.cli``).
"""

from __future__ import annotations

from importlib import metadata as _metadata

from pgtq._inspection import Schedule
from pgtq._retry import Abort, Retry
from pgtq.database import Database
from pgtq.errors import (
    ConnectionFailedError,
    InvalidJobError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PgTqError,
    SchemaMissingError,
    SchemaVersionError,
    UnknownTaskError,
    WaitTimeoutError,
)
from pgtq.handler import Handler, JobKeyMode, PushOptions
from pgtq.queue import PgTq
from pgtq.task import HealthCheck, JobInfo, JobOutcome, PeriodicTask, QueueInfo, QueueStat, Task, current_task

try:
    __version__ = _metadata.version("pgtq")
except _metadata.PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0+unknown"

__all__ = [
    "Abort",
    "ConnectionFailedError",
    "Database",
    "Handler",
    "HealthCheck",
    "InvalidJobError",
    "JobCancelledError",
    "JobFailedError",
    "JobInfo",
    "JobKeyMode",
    "JobNotFoundError",
    "JobOutcome",
    "PayloadTooLargeError",
    "PeriodicTask",
    "PermissionDeniedError",
    "PgTq",
    "PgTqError",
    "PushOptions",
    "QueueInfo",
    "QueueStat",
    "Retry",
    "Schedule",
    "SchemaMissingError",
    "SchemaVersionError",
    "Task",
    "UnknownTaskError",
    "WaitTimeoutError",
    "__version__",
    "current_task",
]
