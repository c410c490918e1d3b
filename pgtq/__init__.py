"""pgtq: a PostgreSQL task queue whose rules live in SQL.

The SQL API (schema ``pgtq``: push, pop, complete, fail, tick, ...) owns the
queue; this package maps task names to callables, calls that API, and runs
workers and the scheduler.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from pgtq._execution import current_task
from pgtq.errors import (
    ConnectionFailedError,
    InvalidJobError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PgTqError,
    SchemaMissingError,
    SchemaVersionError,
    UnknownTaskError,
)
from pgtq.handler import Handler, PushOptions
from pgtq.queue import PgTq
from pgtq.task import JobInfo, QueueStat, Task

try:
    __version__ = _metadata.version("pgtq")
except _metadata.PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0+unknown"

__all__ = [
    "ConnectionFailedError",
    "Handler",
    "InvalidJobError",
    "JobInfo",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PgTq",
    "PgTqError",
    "PushOptions",
    "QueueStat",
    "SchemaMissingError",
    "SchemaVersionError",
    "Task",
    "UnknownTaskError",
    "__version__",
    "current_task",
]
