"""The chaos suite's handler: record the job in a side table, then finish.

The record is written in its own transaction before the worker completes
the job, so a job whose completion is lost shows up as run twice, and a
job that never ran shows up as missing.
"""

from __future__ import annotations

import os
import threading

import psycopg

import pgtq

q = pgtq.PgTq("chaos", os.environ["PGTQ_DSN"])
_local = threading.local()


def _connection() -> psycopg.Connection[object]:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed or conn.broken:
        # prepare_threshold=None: the workers may reach the database through
        # PgBouncer in transaction mode (`make chaos` does), which cannot
        # follow prepared statements.
        conn = _local.conn = psycopg.connect(q.dsn, autocommit=True, prepare_threshold=None)
    return conn


@q.handler()
def record(token: str) -> None:
    """Write (token, job id, pid) to chaos_runs; fails if the database is away."""
    task = pgtq.current_task()
    job_id = task.id if task is not None else None
    _connection().execute(
        "INSERT INTO chaos_runs (token, job_id, pid) VALUES (%s, %s, pg_backend_pid())", (token, job_id)
    )
