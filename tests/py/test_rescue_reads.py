"""What a tick's rescue reads (schema 0.27.0), beside a snapshot held
open, which keeps the index entries of every job that ended since it was
taken. Each batch and each tick here is its own transaction, as a
worker's are.

A tick rescues the running jobs whose lease ran out. Until 0.27.0 it
looked for them from the queue's first entry of ``job_running_idx``, and
once the leases of the ended jobs were past, each tick stepped over all of
them (30 ms after 100,000 jobs). The look now starts at a floor kept in the
queue's mark (``rescued_to``), and an idle queue ticked by name keeps its
mark:

* after 3,000 jobs ended, a tick of a busy queue reads the entries of the
  jobs whose leases ran out since the last tick, twice (the look, and the
  first expired job it had to leave); with
  the mark's last look from the first entry over a minute old (the look
  from the first entry it then makes), it reads every one, which shows
  the count can fail;
* the same for a queue that ran all its jobs and is idle, and (schema
  0.28.0) for one with a ready job whose lock key runs elsewhere, whose
  pops take the keyed path (until 0.28.0 such a queue kept no mark, and
  its rescue looked from the first entry);
* a job whose lease ran out is still rescued by the next tick;
* a pop of a ``max_running`` queue that counts the slots of its running
  jobs (one not marked slotted, schema 0.39.0) counts them from the same
  floor (until 0.27.0 from the first entry, past every job of the queue
  that ended beside the snapshot); with the floor at the first entry it
  reads every one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from conftest import index_entries_read, scalar

QUEUE = "rescued"
START = datetime(2030, 1, 1, tzinfo=UTC)
BATCHES = 30
BATCH = 100


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def run_batches(conn: psycopg.Connection[Any]) -> None:
    """BATCHES claims of BATCH jobs with a one-second lease, each ended at
    once, a second apart, each with a tick, every one its own transaction."""
    conn.execute(
        f"""
        DO $$
        DECLARE claimed record;
        BEGIN
            FOR i IN 1 .. {BATCHES} LOOP
                PERFORM pgtq.complete_many(array_agg(c.id), array_agg(c.lease), as_of => t.at)
                FROM (SELECT timestamptz '{START.isoformat()}' + i * interval '1 second' AS at) AS t,
                     LATERAL pgtq.pop('{QUEUE}', 'w', {BATCH}, '1 second', t.at) AS c
                GROUP BY t.at;
                COMMIT;
                PERFORM pgtq.tick('{QUEUE}', timestamptz '{START.isoformat()}' + i * interval '1 second');
                COMMIT;
            END LOOP;
        END
        $$
        """
    )


def index_reads_of_tick(conn: psycopg.Connection[Any], as_of: datetime) -> int:
    """Entries of job_running_idx that one tick of QUEUE reads (rolled back)."""
    reads, _ = index_entries_read(conn, "pgtq.job_running_idx", "SELECT pgtq.tick(%s, %s)", (QUEUE, as_of))
    return reads


def force_look_from_first_entry(conn: psycopg.Connection[Any]) -> None:
    conn.execute("UPDATE pgtq._ready_mark SET rescued_all_at = '-infinity' WHERE queue = %s", (QUEUE,))


def push(conn: psycopg.Connection[Any], jobs: int) -> None:
    conn.execute(
        "SELECT count(pgtq.push(%s, 't', as_of => %s)) FROM generate_series(1, %s)", (QUEUE, START, jobs)
    )
    conn.execute("SELECT pgtq.tick(%s, %s)", (QUEUE, START))


def test_beside_a_held_snapshot_a_busy_queue_s_rescue_reads_from_its_floor(
    db: psycopg.Connection[Any], held_snapshot: None
) -> None:
    push(db, BATCHES * BATCH + 50)  # 50 stay ready: the queue stays busy
    run_batches(db)
    assert index_reads_of_tick(db, at(BATCHES + 5)) <= 5 * BATCH  # 2 batches, read twice
    # A tick as of a moment before the last one (it started before that
    # one committed) looks from its own as_of, not from the first entry.
    assert index_reads_of_tick(db, at(BATCHES - 0.5)) <= 5 * BATCH
    force_look_from_first_entry(db)
    assert index_reads_of_tick(db, at(BATCHES + 5)) >= BATCHES * BATCH


def test_beside_a_held_snapshot_an_idle_queue_ticked_by_name_keeps_its_floor(
    db: psycopg.Connection[Any], held_snapshot: None
) -> None:
    push(db, BATCHES * BATCH)
    run_batches(db)
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = %s AND state = 'done'", (QUEUE,)) == (
        BATCHES * BATCH
    )
    assert scalar(db, "SELECT idle_since IS NOT NULL FROM pgtq._ready_mark WHERE queue = %s", (QUEUE,))
    assert index_reads_of_tick(db, at(BATCHES + 5)) <= 5 * BATCH  # 2 batches, read twice
    force_look_from_first_entry(db)
    assert index_reads_of_tick(db, at(BATCHES + 5)) >= BATCHES * BATCH


def test_beside_a_held_snapshot_a_queue_with_a_blocked_keyed_job_keeps_its_floor(
    db: psycopg.Connection[Any], held_snapshot: None
) -> None:
    # Key k runs in another queue for the whole test, so QUEUE keeps a
    # ready job with a lock key: its pops take the keyed path.
    db.execute("SELECT pgtq.push('elsewhere', 't', lock_key => 'k', as_of => %s)", (START,))
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('elsewhere', 'w', 1, '1 day', %s)", (START,)) == 1
    db.execute("SELECT pgtq.push(%s, 't', lock_key => 'k', as_of => %s)", (QUEUE, START))
    push(db, BATCHES * BATCH)
    run_batches(db)
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = %s AND state = 'ready'", (QUEUE,)) == 1
    seek = scalar(db, "SELECT low_id FROM pgtq._ready_mark WHERE queue = %s", (QUEUE,))
    assert seek == 0, "the queue has a mark, and it seeks nothing"
    assert index_reads_of_tick(db, at(BATCHES + 5)) <= 5 * BATCH  # 2 batches, read twice
    force_look_from_first_entry(db)
    assert index_reads_of_tick(db, at(BATCHES + 5)) >= BATCHES * BATCH


def test_a_lease_that_runs_out_after_the_floor_moved_is_rescued(db: psycopg.Connection[Any]) -> None:
    push(db, 3)
    for second in range(1, 4):
        db.execute("SELECT pgtq.tick(%s, %s)", (QUEUE, at(second)))
    claimed = db.execute("SELECT id FROM pgtq.pop(%s, 'w', 1, '2 seconds', %s)", (QUEUE, at(4))).fetchone()
    assert claimed is not None
    db.execute("SELECT pgtq.tick(%s, %s)", (QUEUE, at(5)))
    assert scalar(db, "SELECT state::text FROM pgtq.jobs WHERE id = %s", claimed) == "running"
    assert scalar(db, "SELECT pgtq.tick(%s, %s)", (QUEUE, at(7))) == 1
    assert scalar(db, "SELECT state::text FROM pgtq.jobs WHERE id = %s", claimed) == "scheduled"


def index_reads_of_pop(conn: psycopg.Connection[Any], as_of: datetime) -> int:
    """Entries of job_running_idx that one pop(1) of QUEUE reads (rolled back)."""
    reads, claimed = index_entries_read(
        conn, "pgtq.job_running_idx", "SELECT id FROM pgtq.pop(%s, 'w', 1, '1 second', %s)", (QUEUE, as_of)
    )
    assert claimed is not None
    return reads


def test_beside_a_held_snapshot_a_max_running_pop_counts_slots_from_the_floor(
    db: psycopg.Connection[Any], held_snapshot: None
) -> None:
    db.execute("SELECT pgtq.configure_queue(%s, max_running => %s, as_of => %s)", (QUEUE, BATCH, START))
    push(db, BATCHES * BATCH + 50)
    run_batches(db)
    # The count of the pops not yet marked slotted (schema 0.39.0; a slotted
    # queue's pops probe the slots instead: tests/py/test_slot_claims.py).
    db.execute("UPDATE pgtq._queue SET slotted = false WHERE queue = %s", (QUEUE,))
    assert index_reads_of_pop(db, at(BATCHES + 5)) <= 5 * BATCH  # 2 batches, each look of the slots
    db.execute("UPDATE pgtq._ready_mark SET rescued_to = '-infinity' WHERE queue = %s", (QUEUE,))
    assert index_reads_of_pop(db, at(BATCHES + 5)) >= BATCHES * BATCH
