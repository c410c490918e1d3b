"""Slot claims (schema 0.39.0), across sessions (one session at a time:
tests/sql/39-slot-claims.sql).

* Beside a snapshot held open, a pop of a ``max_running`` queue whose
  count of its running jobs read the entries of the jobs that ended (each
  one that ended within its lease) turns the queue's pops to probing the
  slots for a minute: a pop then reads a few entries of
  ``job_slot_holder_idx`` a slot, and none of ``job_running_idx``, however
  many jobs ended since the snapshot was taken (until 0.38.0 every pop
  counted, and stepped over all of them).
* While a queue's claims are numbered, a slot's claims are numbered in
  their order across sessions, and pops that probe at once take
  different slots without waiting for each other.
* Every pop holds its queue's claims lock shared, so ``configure_queue``
  waits for a pop of a queue with no limit that is still open, and no
  claim made under the old settings commits after it (``pause`` does not
  wait for it: tests/py/test_flow_control.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from conftest import in_background, index_entries_read, scalar, wait_until, waiting_on_lock

QUEUE = "slotted"
START = datetime(2030, 1, 1, tzinfo=UTC)
SLOTS = 5
CYCLES = 600


def test_beside_a_held_snapshot_a_pop_of_a_slotted_queue_reads_only_its_slots(
    db: psycopg.Connection[Any], held_snapshot: None
) -> None:
    db.execute("SELECT pgtq.configure_queue(%s, max_running => %s, as_of => %s)", (QUEUE, SLOTS, START))
    db.execute(
        "SELECT count(*) FROM pgtq.push_many(%s, 't', array_fill('[]'::jsonb, ARRAY[%s]), as_of => %s)",
        (QUEUE, SLOTS * CYCLES + 10, START),
    )
    # 3,000 jobs claimed and ended through the 5 slots, each claim and end
    # its own transaction, with a lease of an hour: beside the snapshot,
    # job_running_idx keeps an entry of each, within its lease.
    db.execute(
        f"""
        DO $$
        BEGIN
            FOR i IN 1 .. {CYCLES} LOOP
                PERFORM pgtq.complete_many(array_agg(c.id), array_agg(c.lease))
                FROM pgtq.pop('{QUEUE}', 'w', {SLOTS}, '1 hour') AS c;
                COMMIT;
            END LOOP;
        END
        $$
        """
    )
    assert scalar(db, "SELECT slotted FROM pgtq._queue WHERE queue = %s", (QUEUE,)) is True
    # A count that read the ended jobs' entries turned the pops to probing.
    assert scalar(db, "SELECT probe_until > now() FROM pgtq._queue WHERE queue = %s", (QUEUE,)) is True
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = %s AND state = 'done'", (QUEUE,)) == (
        SLOTS * CYCLES
    )
    pop = "SELECT count(*) FROM pgtq.pop(%s, 'w', %s, '1 hour')"
    reads, claimed = index_entries_read(db, "pgtq.job_slot_holder_idx", pop, (QUEUE, SLOTS))
    assert claimed == (SLOTS,)
    assert reads <= 6 * SLOTS, "a few entries a slot, not one of each job that ended"
    reads, claimed = index_entries_read(db, "pgtq.job_running_idx", pop, (QUEUE, SLOTS))
    assert claimed == (SLOTS,)
    assert reads == 0, "the running jobs are not counted"

    # The count the pops made before the queue was marked slotted (after
    # configure_queue, or with jobs claimed before 0.39.0) still steps over
    # the ended jobs' entries: that is what the probe spares.
    db.execute("UPDATE pgtq._queue SET slotted = false WHERE queue = %s", (QUEUE,))
    db.execute("UPDATE pgtq._ready_mark SET rescued_to = '-infinity' WHERE queue = %s", (QUEUE,))
    reads, claimed = index_entries_read(db, "pgtq.job_running_idx", pop, (QUEUE, SLOTS))
    assert claimed == (SLOTS,)
    assert reads >= SLOTS * CYCLES


def test_a_claim_made_under_the_old_settings_commits_before_the_limit_counts(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """A pop of a queue with no limit, still open when configure_queue sets
    max_running => 1: configure_queue waits for it, so the next pop counts
    its job (no slot) and claims nothing while it runs."""
    db.execute("SELECT count(*) FROM pgtq.push_many('late', 't', array_fill('[]'::jsonb, ARRAY[3]))")
    with psycopg.connect(dsn) as popper:
        lease = popper.execute("SELECT id, lease FROM pgtq.pop('late', 'w', 1, '1 hour')").fetchone()
        assert lease is not None
        configurer, configured = in_background(dsn, "SELECT pgtq.configure_queue('late', max_running => 1)")
        try:
            wait_until(lambda: waiting_on_lock(db, "pgtq.configure_queue"), timeout=30)
            assert configured == [], "configure_queue waits while the pop's transaction is open"
            popper.commit()
        finally:
            configurer.join(timeout=30)
    assert configured == [True]
    pop = "SELECT count(*) FROM pgtq.pop('late', 'w', 5, '1 hour')"
    assert scalar(db, pop) == 0, "the job claimed before counts"
    assert scalar(db, "SELECT pgtq.complete(%s, %s)", lease) is True
    assert scalar(db, pop) == 1, "once it ended, one more"


def test_the_claims_of_a_slot_are_numbered_in_order_across_sessions(
    db: psycopg.Connection[Any], dsn: str
) -> None:
    db.execute("SELECT pgtq.configure_queue('order', max_running => 1)")
    db.execute("UPDATE pgtq._queue SET probe_until = 'infinity' WHERE queue = 'order'")  # claims numbered
    db.execute("SELECT count(*) FROM pgtq.push_many('order', 't', array_fill('[]'::jsonb, ARRAY[20]))")
    with psycopg.connect(dsn, autocommit=True) as other:
        for turn in range(20):
            conn = db if turn % 2 else other
            claimed = conn.execute("SELECT id, lease FROM pgtq.pop('order', 'w', 1, '1 hour')").fetchone()
            assert claimed is not None
            assert scalar(conn, "SELECT count(*) FROM pgtq.pop('order', 'w', 1, '1 hour')") == 0, "one slot"
            assert scalar(conn, "SELECT pgtq.complete(%s, %s)", claimed) is True
    in_claim_order = "SELECT slot_claim FROM pgtq._job WHERE queue = 'order' ORDER BY started_at, id"
    claims = [row[0] for row in db.execute(in_claim_order)]
    assert len(claims) == 20
    assert claims == sorted(claims) and len(set(claims)) == 20
    assert scalar(db, "SELECT count(*) FROM pgtq._job WHERE queue = 'order' AND slot = 1") == 20


def test_pops_at_once_take_different_slots_without_waiting(db: psycopg.Connection[Any], dsn: str) -> None:
    """A pop that probes, whose lowest free slot another open pop holds,
    passes over it and takes the next free one; it does not wait for that
    pop's commit."""
    db.execute("SELECT pgtq.configure_queue('side', max_running => 3)")
    db.execute("SELECT count(*) FROM pgtq.push_many('side', 't', array_fill('[]'::jsonb, ARRAY[6]))")
    db.execute("UPDATE pgtq._queue SET probe_until = 'infinity' WHERE queue = 'side'")  # claims numbered
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('side', 'w', 1)") == 1
    db.execute("UPDATE pgtq._queue SET slotted = true WHERE queue = 'side'")  # all numbered: probe
    with psycopg.connect(dsn) as first, psycopg.connect(dsn) as second:
        assert scalar(first, "SELECT count(*) FROM pgtq.pop('side', 'w', 1)") == 1  # open: holds slot 2
        second.execute("SET statement_timeout = '10s'")
        assert scalar(second, "SELECT count(*) FROM pgtq.pop('side', 'w', 1)") == 1, "slot 3, at once"
        first.commit()
        second.commit()
    slots = [row[0] for row in db.execute("SELECT slot FROM pgtq._job WHERE state = 'running' ORDER BY slot")]
    assert slots == [1, 2, 3]
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('side', 'w', 1)") == 0, "and the queue is full"
