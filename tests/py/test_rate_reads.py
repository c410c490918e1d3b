"""What a pop of a rate-limited queue reads (schema 0.27.0), beside a
snapshot held open, which keeps every row version written since it was
taken. Each pop here is its own transaction, as a worker's is.

Until 0.27.0 every pop that started jobs rewrote the queue's ``_queue`` row
(two arrays with the starts of its rate window), and every read of that
row, three in each pop, walked every version kept: 3.6 ms a pop after
20,000 pops. The starts are now rows of ``_rate_start``, one per bucket of
the window, and pops only lock the ``_queue`` row:

* after 2,000 pops, a pop reads one entry of the ``_queue`` row's index
  per look; after 2,000 updates of the row it reads many more, which shows
  the count can fail;
* what a pop reads of ``_rate_start`` stays within one window: no more
  after 4,000 pops than after 1,000, and the queue keeps at most 101
  buckets.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from conftest import index_entries_read, scalar

QUEUE = "rated"
START = datetime(2030, 1, 1, tzinfo=UTC)
STEP = timedelta(milliseconds=3)  # a bucket of a 1 s period is 10 ms: a window holds about 337 pops


def rate_limited_queue(conn: psycopg.Connection[Any], jobs: int) -> None:
    """``QUEUE`` with a rate limit that never binds, and ``jobs`` ready jobs."""
    conn.execute(
        "SELECT pgtq.configure_queue(%s, rate_limit => 1000000, rate_period => '1 second', as_of => %s)",
        (QUEUE, START),
    )
    conn.execute(
        "SELECT count(pgtq.push(%s, 't', as_of => %s)) FROM generate_series(1, %s)", (QUEUE, START, jobs)
    )


def pop_each_in_its_transaction(conn: psycopg.Connection[Any], first: int, count: int) -> None:
    """Pops ``first`` to ``first + count - 1``, one job each, STEP apart,
    each committed on its own."""
    conn.execute(
        f"""
        DO $$
        BEGIN
            FOR i IN {int(first)} .. {int(first + count - 1)} LOOP
                PERFORM pgtq.pop('{QUEUE}', 'w', 1, '1 hour',
                                 timestamptz '{START.isoformat()}'
                                 + i * interval '{STEP.total_seconds()} seconds');
                COMMIT;
            END LOOP;
        END
        $$
        """
    )


def index_reads_of_pop(conn: psycopg.Connection[Any], index: str, number: int) -> int:
    """Entries of ``index`` that pop number ``number`` reads (rolled back)."""
    reads, claimed = index_entries_read(
        conn, index, "SELECT id FROM pgtq.pop(%s, 'w', 1, '1 hour', %s)", (QUEUE, START + number * STEP)
    )
    assert claimed is not None
    return reads


def test_beside_a_held_snapshot_a_pop_reads_one_version_of_its_queue_row(
    db: psycopg.Connection[Any], held_snapshot: None
) -> None:
    rate_limited_queue(db, 2_100)
    pop_each_in_its_transaction(db, 0, 2_000)
    assert index_reads_of_pop(db, "pgtq.queue_pkey", 2_000) <= 4

    # What 0.26.0's pops did to the row, 2,000 times: then each look reads more.
    db.execute(
        f"""
        DO $$
        BEGIN
            FOR i IN 1 .. 2000 LOOP
                UPDATE pgtq._queue SET updated_at = updated_at WHERE queue = '{QUEUE}';
                COMMIT;
            END LOOP;
        END
        $$
        """
    )
    assert index_reads_of_pop(db, "pgtq.queue_pkey", 2_000) >= 20


def test_beside_a_held_snapshot_a_pop_reads_one_window_of_starts(
    db: psycopg.Connection[Any], held_snapshot: None
) -> None:
    rate_limited_queue(db, 4_100)
    pop_each_in_its_transaction(db, 0, 1_000)
    after_1000 = index_reads_of_pop(db, "pgtq.rate_start_pkey", 1_000)
    pop_each_in_its_transaction(db, 1_000, 3_000)
    after_4000 = index_reads_of_pop(db, "pgtq.rate_start_pkey", 4_000)
    buckets = scalar(db, "SELECT count(*) FROM pgtq._rate_start WHERE queue = %s", (QUEUE,))
    assert 90 <= buckets <= 101
    assert after_4000 <= after_1000 + 30, (after_1000, after_4000)
