"""The floor of a ready mark (schema 0.25.0): where the tick's look for a
queue's first ready job starts, so that a snapshot held open does not make
every tick read every job claimed since.

Each tick here is its own transaction, as a worker's is (pgTAP runs in one
transaction, where a tick moves no floor). Here:

* beside a held snapshot, a tick reads the jobs claimed since the last
  ticks, not all of them; the look from the queue's first entry, which the
  tick still makes once a minute, reads them all;
* a push whose transaction stays open keeps the floor at or below its job,
  which is claimed once it commits;
* a job released below the floor is claimed first, also after the tick
  that read its record;
* a job made ready behind pgtq's back is found by the once-a-minute look.
"""

from __future__ import annotations

from typing import Any

import psycopg
from conftest import scalar
from ready_marks import MarkedQueue

QUEUE = "floor"
QUEUE_UNDER_TEST = MarkedQueue(QUEUE)
tick = QUEUE_UNDER_TEST.tick
push_jobs = QUEUE_UNDER_TEST.push_jobs
mark = QUEUE_UNDER_TEST.mark


def claim_and_complete(conn: psycopg.Connection[Any], count: int, tick_every: int = 500) -> None:
    """Claim and complete ``count`` jobs, 100 a pop, with a tick every
    ``tick_every`` claims, as a worker does."""
    claimed = 0
    while claimed < count:
        rows = conn.execute("SELECT id, lease FROM pgtq.pop(%s, 'w', 100)", (QUEUE,)).fetchall()
        assert rows, "the queue ran dry early"
        conn.execute("SELECT pgtq.complete_many(%s, %s)", ([r[0] for r in rows], [r[1] for r in rows]))
        claimed += len(rows)
        if claimed % tick_every == 0:
            tick(conn)


def ready_index_reads_of_tick(conn: psycopg.Connection[Any]) -> int:
    """Entries of job_ready_idx that one tick reads, counted within one
    transaction (pg_stat_get_xact_*); the counts take no transaction id, so
    the tick still starts without one, as a worker's does."""
    count = "SELECT pg_stat_get_xact_tuples_returned('pgtq.job_ready_idx'::regclass)"
    with conn.transaction():
        before = int(scalar(conn, count))
        tick(conn)
        return int(scalar(conn, count)) - before


def ready_ids(conn: psycopg.Connection[Any]) -> list[int]:
    rows = conn.execute(
        "SELECT id FROM pgtq._job WHERE queue = %s AND state = 'ready' ORDER BY id", (QUEUE,)
    ).fetchall()
    return [row[0] for row in rows]


def test_beside_a_held_snapshot_a_tick_reads_from_the_floor(
    db: psycopg.Connection[Any], held_snapshot: None
) -> None:
    push_jobs(db, 4000)
    tick(db)
    claim_and_complete(db, 3000)
    floor_reads = ready_index_reads_of_tick(db)
    assert mark(db)["floor_id"] > 0, "the floor moved"
    assert floor_reads < 1200, f"a tick read {floor_reads} entries: more than the claims since the last ticks"
    db.execute("UPDATE pgtq._ready_mark SET looked_all_at = '-infinity' WHERE queue = %s", (QUEUE,))
    full_reads = ready_index_reads_of_tick(db)
    assert full_reads >= 3000, (
        f"the look from the first entry read {full_reads}: the snapshot keeps every claim"
    )
    assert mark(db)["floor_id"] > 0, "and the floor is set again"


def test_a_push_left_open_holds_the_floor_until_it_commits(dsn: str, db: psycopg.Connection[Any]) -> None:
    push_jobs(db, 300)
    tick(db)
    claim_and_complete(db, 200, tick_every=100)
    tick(db)
    tick(db)
    assert mark(db)["floor_id"] > 0, "the floor moved before the push"
    with psycopg.connect(dsn) as producer:
        held = int(scalar(producer, "SELECT pgtq.push(%s, 'held')", (QUEUE,)))
        push_jobs(db, 300)
        for _ in range(3):
            claim_and_complete(db, 100, tick_every=100)
            assert mark(db)["floor_id"] <= held, "no floor passes a push that has not ended"
        producer.commit()
    tick(db)
    assert held in ready_ids(db)
    popped = [row[0] for row in db.execute("SELECT id FROM pgtq.pop(%s, 'w', 1000)", (QUEUE,)).fetchall()]
    assert held in popped, "the push is claimed once it committed"


def test_a_job_released_below_the_floor_is_claimed_first(db: psycopg.Connection[Any]) -> None:
    push_jobs(db, 1000)
    tick(db)
    first = db.execute("SELECT id, lease FROM pgtq.pop(%s, 'w', 1)", (QUEUE,)).fetchone()
    assert first is not None
    claim_and_complete(db, 500, tick_every=100)
    tick(db)
    assert mark(db)["floor_id"] > first[0], "the floor passed the running job"
    assert scalar(db, "SELECT pgtq.release(%s, %s)", (first[0], first[1]))
    tick(db)
    tick(db)
    assert mark(db)["floor_id"] <= first[0], "the tick read the release's record and lowered the floor"
    assert scalar(db, "SELECT id FROM pgtq.pop(%s, 'w', 1)", (QUEUE,)) == first[0]


def test_a_job_made_ready_behind_pgtqs_back_waits_for_the_look_from_the_first_entry(
    db: psycopg.Connection[Any],
) -> None:
    push_jobs(db, 1000)
    tick(db)
    claim_and_complete(db, 500, tick_every=100)
    tick(db)
    tick(db)
    done = int(scalar(db, "SELECT min(id) FROM pgtq._job WHERE queue = %s AND state = 'done'", (QUEUE,)))
    assert mark(db)["floor_id"] > done
    db.execute("UPDATE pgtq._job SET state = 'ready', finished_at = NULL WHERE id = %s", (done,))
    tick(db)
    tick(db)
    popped = [row[0] for row in db.execute("SELECT id FROM pgtq.pop(%s, 'w', 10)", (QUEUE,)).fetchall()]
    assert done not in popped, "below the floor, a job no pgtq function made ready is not seen"
    db.execute(
        "UPDATE pgtq._ready_mark SET looked_all_at = now() - interval '2 minutes' WHERE queue = %s", (QUEUE,)
    )
    tick(db)
    tick(db)
    assert scalar(db, "SELECT id FROM pgtq.pop(%s, 'w', 1)", (QUEUE,)) == done
