"""A test app for flow control (tests/py/test_flow_control.py): one task,
``work``, served in several queues, that records each run in the ledger
public.flow_ledger of the test database, on the database clock: when pop
claimed the job (its started_at, the time the limits count), and when the
handler began and ended its work. The test makes the table."""

from __future__ import annotations

import os
import threading
import time

import psycopg

import pgtq

DSN = os.environ["PGTQ_DSN"]

_local = threading.local()


def _ledger() -> psycopg.Connection[object]:
    """This slot thread's ledger connection (kept, one per thread)."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(DSN, autocommit=True)
    return conn  # type: ignore[no-any-return]


def work(seconds: float) -> None:
    """Record the start, work for ``seconds``, record the end."""
    task = pgtq.current_task()
    assert task is not None
    conn = _ledger()
    row = conn.execute(
        "INSERT INTO public.flow_ledger (job_id, queue, lock_key, claimed_at, began_at)"
        " SELECT j.id, j.queue, j.lock_key, j.started_at, clock_timestamp()"
        " FROM pgtq.jobs AS j WHERE j.id = %s RETURNING entry",
        [task.id],
    ).fetchone()
    assert row is not None
    time.sleep(seconds)
    conn.execute("UPDATE public.flow_ledger SET ended_at = clock_timestamp() WHERE entry = %s", [row[0]])


limited = pgtq.PgTq("limited", DSN)
rated = pgtq.PgTq("rated", DSN)
keyed = pgtq.PgTq("keyed", DSN)
pausable = pgtq.PgTq("pausable", DSN)
for queue in (limited, rated, keyed, pausable):
    queue.handler()(work)
