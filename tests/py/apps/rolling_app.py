"""A test app for the rolling upgrade, written against the API that every
release since 0.1.0 has (it runs under the previous release's package
too): ``work(n)`` records each run of job ``n`` in public.side_effects."""

from __future__ import annotations

import os
import threading

import psycopg

import pgtq

q = pgtq.PgTq("rolling", os.environ["PGTQ_DSN"])
_local = threading.local()


@q.handler()
def work(n: int) -> int:
    """Record this run (a connection per slot thread, kept)."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(q.dsn, autocommit=True)
    conn.execute("INSERT INTO public.side_effects (token, kind) VALUES (%s, 'ran')", (str(n),))
    return n
