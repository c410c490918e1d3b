"""A periodic task: every five minutes, delete the sessions that expired.

    psql "$PGTQ_DSN" -f schema.sql
    PGTQ_DSN="dbname=app" pgtq worker app:q

A worker serving the queue registers the schedule when it starts
(``pgtq.schedule``, an upsert: start as many workers as you like), and the
workers' ticks enqueue one job per occurrence, however many of them tick.
``pgtq schedules`` lists it; ``pgtq unschedule maintenance:purge_expired_sessions``
stops it.
"""

from __future__ import annotations

import os

import psycopg

import pgtq

DSN = os.environ["PGTQ_DSN"]

q = pgtq.PgTq("maintenance", DSN)


@q.periodic("*/5 * * * *")
@q.handler(max_attempts=1)  # the next occurrence is the retry
def purge_expired_sessions() -> int:
    """Delete the expired sessions; how many there were."""
    with psycopg.connect(DSN) as conn:
        return conn.execute("DELETE FROM sessions WHERE expires_at < now()").rowcount
