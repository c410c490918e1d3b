"""The chaos suite's handler: write one ledger row per run, then finish.

The row is written in its own transaction before the worker completes the
job, so a job whose completion is lost shows up as run twice, and a job
that never ran shows up as missing. It names the claim it ran (job id and
attempt), the worker's OS pid (the worker runs handlers in its thread pool,
so ``os.getpid()`` is the worker process that ``run.py`` may kill), and when
the attempt was claimed (its lease expiry as ``pop`` returned it).
"""

from __future__ import annotations

import os
import threading
import time

import psycopg

import pgtq

q = pgtq.PgTq("chaos", os.environ["PGTQ_DSN"])
_local = threading.local()
# How long each run lasts after its ledger row (run.py --handler-seconds).
HANDLER_SECONDS = float(os.environ.get("PGTQ_CHAOS_HANDLER_SECONDS", "0"))

RECORD = (
    "INSERT INTO chaos_runs (token, job_id, attempt, worker_pid, lease_expires_at)"
    " VALUES (%s, %s, %s, %s, %s)"
)


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
    """Write this run to chaos_runs; fails if the database is away."""
    task = pgtq.current_task()
    if task is None:
        raise RuntimeError("record runs only in a worker")
    _connection().execute(RECORD, (token, task.id, task.attempt, os.getpid(), task.lease_expires_at))
    if HANDLER_SECONDS:
        time.sleep(HANDLER_SECONDS)
