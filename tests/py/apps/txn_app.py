"""A test app for transactional handlers (tests/py/test_transactional.py).

``write(n, mode)`` inserts a row into public.txn_effects through its job's
transaction (``pgtq.current_task().conn``), then, by ``mode``:

* ``ok``: returns ``{"n": n}``;
* ``raise``: raises ``ValueError``;
* ``wait``: on its job's first run, says it has written (a row in
  public.txn_signals, on a connection of its own, outside the job's
  transaction), then waits until the test puts a row for the job in
  public.txn_release (at most 60 s), and returns; later runs return at
  once.

Each row says whether it was written by the job's first run (for ``ok``
and ``raise``: its attempt 1). Only ``wait`` opens another connection.

``awrite`` and ``aslow`` do the same as ``async def`` handlers, on
``task.aconn``: ``aslow`` writes, then sleeps past its timeout.

The test makes the tables.
"""

from __future__ import annotations

import asyncio
import os
import time

import psycopg

import pgtq

DSN = os.environ["PGTQ_DSN"]

q = pgtq.PgTq("txn", DSN)

INSERT = "INSERT INTO public.txn_effects (job_id, n, attempt, first_run) VALUES (%s, %s, %s, %s)"


@q.handler(transactional=True, max_attempts=3)
def write(n: int, mode: str) -> dict[str, int]:
    """Write one row with the job's transaction, then act as ``mode`` says."""
    task = pgtq.current_task()
    assert task is not None
    if mode != "wait":  # no other connection: the bouncer test counts server connections
        task.conn.execute(INSERT, [task.id, n, task.attempt, task.attempt == 1])
        if mode == "raise":
            raise ValueError(f"job {task.id} fails after its write")
        return {"n": n}
    with psycopg.connect(DSN, autocommit=True) as side:
        first = not side.execute("SELECT 1 FROM public.txn_signals WHERE job_id = %s", [task.id]).fetchone()
        task.conn.execute(INSERT, [task.id, n, task.attempt, first])
        if first:
            side.execute("INSERT INTO public.txn_signals (job_id) VALUES (%s)", [task.id])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if side.execute("SELECT 1 FROM public.txn_release WHERE job_id = %s", [task.id]).fetchone():
                    break
                time.sleep(0.05)
    return {"n": n}


@q.handler(transactional=True)
async def awrite(n: int, mode: str) -> dict[str, int]:
    """``write`` for asyncio: one row through ``task.aconn``; ``ok`` or ``raise``."""
    task = pgtq.current_task()
    assert task is not None
    await task.aconn.execute(INSERT, [task.id, n, task.attempt, True])
    if mode == "raise":
        raise ValueError(f"job {task.id} fails after its write")
    return {"n": n}


@q.handler(transactional=True, timeout=0.5)
async def aslow(n: int) -> None:
    """One row, then past its timeout: cancelled in the middle of its transaction."""
    task = pgtq.current_task()
    assert task is not None
    await task.aconn.execute(INSERT, [task.id, n, task.attempt, True])
    await asyncio.sleep(60)
