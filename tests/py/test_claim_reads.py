"""How much of the job table a pop reads (schema 0.20.0): pop plans no
bitmap scans, so a pop of a max_running queue or of a queue with lock keys
reads the index entries it needs, not every job of the queue.

Until 0.19.0 pop's generic plans chose bitmap scans once the job table was
large. A bitmap scan reads the row of every entry its index condition
matches and never marks the entry of an ended job as dead: a pop of a
max_running queue read every job of the queue that ended since the last
vacuum (twice), and a pop of a queue with lock keys read and sorted every
ready job of the queue.

The plans are read from auto_explain, in a session that plans as a
worker's long session does (generic plans); the statistics are those of
a job table that holds two queues side by side, as a real one does.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from conftest import counted_in_rollback, index_entries_read, job_table_reads, scalar

JOBS = 4000

# auto_explain hands the plan of every statement a pop runs, nested ones
# too, to the client as a notice.
PLANS_AS_NOTICES = (
    "LOAD 'auto_explain'",
    "SET auto_explain.log_min_duration = 0",
    "SET auto_explain.log_nested_statements = on",
    "SET auto_explain.log_level = notice",
    "SET plan_cache_mode = force_generic_plan",
)


def bitmap_scans_of_a_pop(dsn: str, queue: str) -> list[str]:
    """The job indexes that the plans of one pop of `queue` scan by bitmap
    (the pop is rolled back)."""
    plans: list[str] = []
    with psycopg.connect(dsn) as conn:
        conn.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
        for statement in PLANS_AS_NOTICES:
            conn.execute(statement)
        conn.execute("SELECT id FROM pgtq.pop(%s, 'w', 1)", (queue,)).fetchall()
        conn.rollback()
    assert any("pgtq._job" in plan for plan in plans), "auto_explain showed the pop's statements"
    return sorted({index for plan in plans for index in re.findall(r"Bitmap Index Scan on (job_\w+)", plan)})


def heap_blocks_read_by_a_pop(dsn: str, queue: str) -> tuple[int, int]:
    """(blocks of pgtq._job fetched, jobs claimed) by one pop of one job in a
    session of its own (rolled back)."""
    with psycopg.connect(dsn) as conn:
        before = scalar(conn, "SELECT pg_stat_get_xact_blocks_fetched('pgtq._job'::regclass)")
        claimed = len(conn.execute("SELECT id FROM pgtq.pop(%s, 'w', 1)", (queue,)).fetchall())
        after = scalar(conn, "SELECT pg_stat_get_xact_blocks_fetched('pgtq._job'::regclass)")
        conn.rollback()
    return after - before, claimed


def push_beside_another_queue(db: psycopg.Connection[Any], queue: str, lock_keys: bool) -> None:
    """JOBS + 100 jobs of `queue` and as many of queue 'other', pushed in
    turn, then ANALYZE (as autovacuum would, after so many)."""
    db.execute(
        "SELECT count(pgtq.push(CASE WHEN x %% 2 = 0 THEN %s ELSE 'other' END, 'noop', jsonb_build_array(x),"
        " lock_key => CASE WHEN %s THEN 'key-' || x %% 100 END))"
        " FROM generate_series(1, %s) AS x",
        (queue, lock_keys, 2 * (JOBS + 100)),
    )
    db.execute("ANALYZE pgtq._job")


def test_a_pop_of_a_max_running_queue_plans_no_bitmap_scan_over_the_jobs_that_ended(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute("SELECT pgtq.configure_queue('limited', max_running => 50)")
    push_beside_another_queue(db, "limited", lock_keys=False)
    with psycopg.connect(dsn, autocommit=True) as worker:  # a worker's drain: 25 in hand
        held = worker.execute(
            "SELECT array_agg(id), array_agg(lease) FROM pgtq.pop('limited', 'w', 25)"
        ).fetchone()
        for _ in range(JOBS // 25 - 1):
            held = worker.execute(
                "SELECT array_agg((c).id), array_agg((c).lease)"
                " FROM (SELECT unnest(r.claimed) AS c FROM"
                " pgtq.complete_many_and_pop('limited', %s, %s, worker => 'w', n => 25) AS r) AS x",
                held,
            ).fetchone()
        db.execute("ANALYZE pgtq._job")  # as autovacuum would, while the worker holds 25 jobs
        worker.execute("SELECT pgtq.complete_many(%s, %s)", held)
    assert scalar(db, "SELECT count(*) FROM pgtq._job WHERE queue = 'limited' AND state = 'done'") == JOBS

    assert bitmap_scans_of_a_pop(dsn, "limited") == [], "a bitmap scan reads every job that ended"
    _, claimed = heap_blocks_read_by_a_pop(dsn, "limited")
    assert claimed == 1


def test_a_pop_of_a_queue_with_lock_keys_reads_only_as_far_as_it_claims(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    push_beside_another_queue(db, "keyed", lock_keys=True)
    job_blocks = scalar(db, "SELECT pg_relation_size('pgtq._job') / current_setting('block_size')::int")

    assert bitmap_scans_of_a_pop(dsn, "keyed") == [], "a bitmap scan reads every ready job of the queue"
    read, claimed = heap_blocks_read_by_a_pop(dsn, "keyed")
    assert claimed == 1
    assert job_blocks > 100, "the ready jobs fill many blocks"
    assert read < 20, f"a pop of one job read {read} of the job table's {job_blocks} blocks"


def test_a_pop_of_a_queue_with_busy_lock_keys_probes_each_key_not_every_running_job(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """Each job of a busy key that the walk passes costs one probe of the
    key's running jobs. Until 0.29.0 the probe tested state = 'running',
    which job_running_idx matches too, and statistics taken while no job ran
    (here a vacuum; an idle moment does it) made it the planner's choice:
    every running job of every queue, at each job of the backlog: 149,398
    rows and index entries here at 0.29.0, 601 at 0.30.0."""
    db.execute("ALTER TABLE pgtq._job SET (autovacuum_enabled = off)")  # the statistics stay
    db.execute("SELECT count(pgtq.push('elsewhere', 'noop')) FROM generate_series(1, 500)")
    db.execute(
        "SELECT count(pgtq.push('keyed', 'noop', lock_key => 'key-' || x % 3))"
        " FROM generate_series(1, 300) AS x"
    )
    db.execute("VACUUM ANALYZE pgtq._job")  # no job runs
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('elsewhere', 'w', 500)") == 500
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('keyed', 'w', 10)") == 3  # every key busy

    with psycopg.connect(dsn, autocommit=True) as worker:
        reads, claimed = job_table_reads(worker, "SELECT count(*) FROM pgtq.pop('keyed', 'w', 10)")
    assert claimed == (0,)
    # The walk's 297 entries of job_ready_idx, one probe of
    # job_lock_key_leased_idx each, and the keyed path's own looks.
    assert reads <= 3 * 297, f"a pop past 297 jobs of busy keys read {reads} rows and index entries"


def test_a_pop_past_a_long_backlog_of_keys_its_queue_runs_probes_only_the_first_64_jobs(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """Past the queue's first 64 ready jobs, a pop leaves out the jobs of
    the keys that the queue's running jobs hold by one read of those jobs
    (0.31.0), not by a probe of job_lock_key_leased_idx for each job: until
    0.30.0 a pop past 1,000 jobs of 3 busy keys probed it 1,000 times."""
    db.execute(
        "SELECT count(pgtq.push('keyed', 'noop', lock_key => 'key-' || x % 3))"
        " FROM generate_series(1, 1003) AS x"
    )
    free_id = scalar(db, "SELECT pgtq.push('keyed', 'free', lock_key => 'free')")
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('keyed', 'w', 3)") == 3  # every key of the backlog busy

    with psycopg.connect(dsn, autocommit=True) as worker:
        probes, first = index_entries_read(
            worker, "pgtq.job_lock_key_leased_idx", "SELECT id FROM pgtq.pop('keyed', 'w', 10)"
        )
    assert first == (free_id,), "the pop takes the one job of a free key, past the backlog"
    # The first 64 jobs' probes each find their key's running job; past
    # them only the free key is probed (and found free).
    assert probes <= 64 + 3, f"a pop past 1,000 jobs of busy keys read {probes} entries of the lock-key index"


def test_a_pop_that_asks_for_more_jobs_than_there_are_keys_probes_only_the_first_64_jobs(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """A pop of 10 from a backlog of 3 free keys takes one job of each and
    walks on for more: past the first 64 ready jobs the keys it took are
    left out by a look-up (0.31.0). Until 0.30.0 it probed each job of the
    backlog (1,000 scans of job_lock_key_leased_idx here)."""
    db.execute(
        "SELECT count(pgtq.push('keyed', 'noop', lock_key => 'key-' || x % 3))"
        " FROM generate_series(1, 1000) AS x"
    )
    with psycopg.connect(dsn, autocommit=True) as worker:
        probes, taken = counted_in_rollback(
            worker,
            "SELECT pg_stat_get_xact_numscans('pgtq.job_lock_key_leased_idx'::regclass)",
            None,
            "SELECT count(*) FROM pgtq.pop('keyed', 'w', 10)",
        )
    assert taken == (3,), "one job of each key"
    # A probe for each of the first 64 jobs, and the looks of
    # _is_next_of_key at the 3 keys it takes.
    assert probes <= 64 + 2 * 3, f"a pop over 1,000 jobs of 3 keys scanned the lock-key index {probes} times"


def test_a_pop_past_a_deep_backlog_of_busy_keys_reads_as_many_rows_as_keys_not_jobs(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """Past the queue's first 64 ready jobs a pop reads the first job of
    each of the queue's lock keys (0.32.0): rows and index entries in
    proportion to its keys, whatever their backlog. At 0.31.0 it walked
    the backlog of the busy keys job by job (1,003 entries of
    job_ready_idx here, on each of which it read the job's row); a job
    without a key behind them is found by job_ready_idx, which holds no
    job with a key."""
    db.execute(
        "SELECT count(pgtq.push('keyed', 'noop', lock_key => 'key-' || x % 3))"
        " FROM generate_series(1, 1003) AS x"
    )
    plain_id = scalar(db, "SELECT pgtq.push('keyed', 'plain')")
    free_id = scalar(db, "SELECT pgtq.push('keyed', 'free', lock_key => 'free')")
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('keyed', 'w', 3)") == 3  # every key of the backlog busy

    with psycopg.connect(dsn, autocommit=True) as worker:
        worker.execute("BEGIN")
        try:
            taken = [row[0] for row in worker.execute("SELECT id FROM pgtq.pop('keyed', 'w', 10)").fetchall()]
        finally:
            worker.execute("ROLLBACK")
        reads, _ = job_table_reads(worker, "SELECT count(*) FROM pgtq.pop('keyed', 'w', 10)")
    assert sorted(taken) == [plain_id, free_id], (
        "the job without a key and the free key's job past the backlog"
    )
    # The first 64 jobs (an entry, a row and a probe each), then one
    # look per key of the queue (4 keys, 3 of them busy), the job without
    # a key, and the claims.
    assert reads <= 3 * 64 + 60, f"a pop past 1,000 jobs of 3 busy keys read {reads} rows and index entries"


def test_a_pop_past_many_busy_keys_of_short_backlogs_walks_rather_than_probing_each_key(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """A probe per key (the loose scan of job_queue_key_ready_idx) costs
    about ten steps of the walk, so a queue of more than 64 lock keys is
    walked on, as by 0.31.0 (0.32.0's first form probed every key: 63 ms
    a pop past 10,000 busy keys of one waiting job each, 6.5 walked)."""
    db.execute(
        "SELECT count(pgtq.push('keyed', 'noop', lock_key => 'key-' || x % 300))"
        " FROM generate_series(0, 599) AS x"
    )
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('keyed', 'w', 300)") == 300  # every key busy
    with psycopg.connect(dsn, autocommit=True) as worker:
        probes, taken = index_entries_read(
            worker, "pgtq.job_queue_key_ready_idx", "SELECT count(*) FROM pgtq.pop('keyed', 'w', 10)"
        )
    assert taken == (0,)
    assert probes <= 65, f"a pop past 300 busy keys read {probes} entries of job_queue_key_ready_idx"


def test_a_pop_past_a_flooded_key_in_a_queue_of_many_keys_reads_the_keys_not_the_flood(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """A queue of more than 64 lock keys whose first jobs are of a few
    keys (0.33.0): the pop walks 4,096 jobs, then reads the queue's keys
    (up to 1,025) and takes the first job of each free one, in pop's
    order, in a worker's session (generic plans) as in any other. Until
    0.32.0 it walked every job of the flooded key (8,264 rows and index
    entries here; 4,477 at 0.33.0)."""
    db.execute(
        "SELECT count(*) FROM pgtq.push_many('keyed', 'noop', array_fill('[]'::jsonb, ARRAY[8000]),"
        " lock_keys => array_fill('flood'::text, ARRAY[8000]))"
    )
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('keyed', 'w', 1)") == 1  # the flooded key busy
    others = [
        row[0]
        for row in db.execute(
            "SELECT id FROM pgtq.push_many('keyed', 'other', array_fill('[]'::jsonb, ARRAY[100]),"
            " lock_keys => ARRAY(SELECT 'other-' || n FROM generate_series(1, 100) AS n)) AS p (id)"
        ).fetchall()
    ]
    db.execute("ANALYZE pgtq._job")
    with psycopg.connect(dsn, autocommit=True) as worker:
        worker.execute("SET plan_cache_mode = force_generic_plan")
        for _ in range(6):  # past the first custom plans of PL/pgSQL's statements
            job_table_reads(worker, "SELECT count(*) FROM pgtq.pop('keyed', 'w', 10)")
        worker.execute("BEGIN")
        try:
            popped = worker.execute("SELECT id FROM pgtq.pop('keyed', 'w', 10)").fetchall()
            taken = sorted(row[0] for row in popped)
        finally:
            worker.execute("ROLLBACK")
        reads, _ = job_table_reads(worker, "SELECT count(*) FROM pgtq.pop('keyed', 'w', 10)")
    assert taken == others[:10], "the first jobs of the first ten free keys, past the flood"
    # The first 64 jobs, 4,096 of the flood, one look per key of the
    # queue (101), their first jobs, the claims.
    assert reads <= 4096 + 600, f"a pop past 7,999 jobs of a busy key read {reads} rows and index entries"
