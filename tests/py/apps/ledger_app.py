"""A test app for queues on several servers and for failover: queues a1, a2
on server A (PGTQ_DSN_A) and b1, b2 on server B (PGTQ_DSN_B, default A),
whose one task ``note`` records each run in a ledger kept in another
database (PGTQ_LEDGER_DSN; its table: tests/py/servers.py), so the ledger
outlives whatever happens to the servers the jobs live on."""

from __future__ import annotations

import os
import threading

import psycopg

import pgtq

LEDGER_DSN = os.environ["PGTQ_LEDGER_DSN"]
DSN_A = os.environ["PGTQ_DSN_A"]
DSN_B = os.environ.get("PGTQ_DSN_B", DSN_A)

_local = threading.local()


def record(token: str) -> None:
    """One ledger row for this run (a connection per slot thread, kept)."""
    task = pgtq.current_task()
    assert task is not None
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(LEDGER_DSN, autocommit=True)
    conn.execute(
        "INSERT INTO ledger (token, queue, job_id, attempt, pid) VALUES (%s, %s, %s, %s, %s)",
        (token, task.queue, task.id, task.attempt, os.getpid()),
    )


def note(token: str) -> str:
    record(token)
    return token


a1 = pgtq.PgTq("a1", DSN_A)
a2 = pgtq.PgTq("a2", DSN_A)
b1 = pgtq.PgTq("b1", DSN_B)
b2 = pgtq.PgTq("b2", DSN_B)
for queue in (a1, a2, b1, b2):
    queue.handler(name="note")(note)
