"""What pops and ticks read of the ready marks (schema 0.26.0), beside a
snapshot held open, which keeps every row version written since it was
taken. Each tick here is its own transaction, as a worker's is.

The records of _ready_mark_low (jobs made ready by anything but a push:
release, retry, promotion) are read and deleted by each tick. Until 0.26.0
every pop and every tick stepped over all the deleted ones. The records
are now numbered, and the mark keeps the number below which every record
of its queue was read and deleted (``lows_from``):

* after 2,000 releases, a pop reads the records since the last ticks only;
  with ``lows_from`` at 0 it reads them all;
* a release whose transaction stays open across ticks keeps ``lows_from``
  at or below its record, and a pop claims the job first once it commits,
  with no tick between.

The mark was one row that every tick updated, and each read walked every
version kept. A tick now writes the next generation and deletes the one it
read; readers take the highest:

* after 2,000 ticks, the index holds 2,000 entries of the queue and a pop
  reads at most 3 of them;
* two ticks that make a queue's first mark at once make one.
"""

from __future__ import annotations

from typing import Any

import psycopg
from conftest import index_entries_read, scalar
from ready_marks import MarkedQueue

QUEUE = "lows"
QUEUE_UNDER_TEST = MarkedQueue(QUEUE)
tick = QUEUE_UNDER_TEST.tick
push_jobs = QUEUE_UNDER_TEST.push_jobs
mark = QUEUE_UNDER_TEST.mark
ROUNDS = 20
RELEASES_PER_ROUND = 100


def claim_and_release(conn: psycopg.Connection[Any], count: int) -> None:
    """Claim one job and hand it back, ``count`` times in one transaction:
    each release writes a record."""
    conn.execute(
        f"""
        DO $$
        DECLARE claimed record;
        BEGIN
            FOR i IN 1 .. {int(count)} LOOP
                SELECT c.id, c.lease INTO claimed FROM pgtq.pop('lows', 'w', 1) AS c;
                PERFORM pgtq.release(claimed.id, claimed.lease);
            END LOOP;
        END
        $$
        """
    )


def record_reads_of_pop(conn: psycopg.Connection[Any]) -> int:
    """Entries of ready_mark_low_seq_idx that one pop(1) reads (rolled back)."""
    reads, claimed = index_entries_read(
        conn, "pgtq.ready_mark_low_seq_idx", "SELECT id FROM pgtq.pop(%s, 'w', 1)", (QUEUE,)
    )
    assert claimed is not None
    return reads


def test_beside_a_held_snapshot_a_pop_reads_the_records_since_the_last_ticks(
    db: psycopg.Connection[Any], held_snapshot: None
) -> None:
    push_jobs(db, 500)
    tick(db)
    assert db.execute("SELECT id FROM pgtq.pop(%s, 'w', 1)", (QUEUE,)).fetchone() is not None
    tick(db)
    for _ in range(ROUNDS):
        claim_and_release(db, RELEASES_PER_ROUND)
        tick(db)
    tick(db)
    assert mark(db)["lows_from"] > 0, "lows_from moved"
    reads = record_reads_of_pop(db)
    assert reads <= 2 * RELEASES_PER_ROUND, f"a pop read {reads} records: more than the last ticks wrote"
    db.execute("UPDATE pgtq._ready_mark SET lows_from = 0 WHERE queue = %s", (QUEUE,))
    all_reads = record_reads_of_pop(db)
    assert all_reads >= ROUNDS * RELEASES_PER_ROUND, (
        f"from record 0 a pop read {all_reads}: the snapshot keeps every deleted record"
    )


def test_a_release_left_open_across_ticks_is_claimed_first_once_it_commits(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    push_jobs(db, 1000)
    tick(db)
    first = db.execute("SELECT id, lease FROM pgtq.pop(%s, 'w', 1)", (QUEUE,)).fetchone()
    assert first is not None
    for _ in range(3):
        db.execute("SELECT count(*) FROM pgtq.pop(%s, 'w', 100)", (QUEUE,))
        tick(db)
    with psycopg.connect(dsn) as releaser:
        assert scalar(releaser, "SELECT pgtq.release(%s, %s)", (first[0], first[1]))
        record = int(scalar(releaser, "SELECT seq FROM pgtq._ready_mark_low WHERE id = %s", (first[0],)))
        for _ in range(3):
            claim_and_release(db, 5)
            tick(db)
            assert mark(db)["lows_from"] <= record, "lows_from passes no record whose transaction is open"
        assert mark(db)["low_id"] > first[0], "the mark is above the released job"
        releaser.commit()
    assert scalar(db, "SELECT id FROM pgtq.pop(%s, 'w', 1)", (QUEUE,)) == first[0]


def test_beside_a_held_snapshot_a_pop_reads_the_newest_generation_of_the_mark(
    db: psycopg.Connection[Any], held_snapshot: None
) -> None:
    push_jobs(db, 500)
    for _ in range(2000):
        tick(db)
    assert db.execute("SELECT count(*) FROM pgtq._ready_mark WHERE queue = %s", (QUEUE,)).fetchone() == (1,)
    every_generation = "SELECT count(*) FROM pgtq._ready_mark WHERE queue = %s AND generation > 0"
    kept, _ = index_entries_read(db, "pgtq.ready_mark_pkey", every_generation, (QUEUE,))
    assert kept >= 2000, f"the index kept {kept} entries of the queue: the snapshot keeps every generation"
    reads, claimed = index_entries_read(
        db, "pgtq.ready_mark_pkey", "SELECT id FROM pgtq.pop(%s, 'w', 1)", (QUEUE,)
    )
    assert claimed is not None
    assert reads <= 3, f"a pop read {reads} entries of the mark's index"


def test_two_ticks_making_a_first_mark_at_once_make_one(dsn: str, db: psycopg.Connection[Any]) -> None:
    push_jobs(db, 10)
    with psycopg.connect(dsn) as first:
        first.execute("SELECT pgtq.tick(%s)", (QUEUE,))  # left open: its new mark is not committed
        tick(db)
        first.commit()
    assert db.execute("SELECT count(*) FROM pgtq._ready_mark WHERE queue = %s", (QUEUE,)).fetchone() == (1,)
    tick(db)
    assert db.execute("SELECT count(*) FROM pgtq._ready_mark WHERE queue = %s", (QUEUE,)).fetchone() == (1,)
