"""Ready marks (schema 0.18.0) across sessions: pop seeks from the mark tick
sets, and a push whose transaction stays open is never lost to it.

The rules one session at a time: tests/sql/37-ready-marks.sql. Here:

* a push open across one tick is claimed in its order;
* a push open across two ticks may be passed over, and is claimed after
  the next tick (it waits for a tick, as a scheduled job does);
* sessions popping, ticking, releasing and pushing at once: every job is
  claimed exactly once and none is left behind.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from conftest import scalar

QUEUE = "marks"


def push(conn: psycopg.Connection[Any], task: str) -> int:
    return int(scalar(conn, "SELECT pgtq.push(%s, %s)", (QUEUE, task)))


def pop_ids(conn: psycopg.Connection[Any], n: int) -> list[int]:
    return [row[0] for row in conn.execute("SELECT id FROM pgtq.pop(%s, 'w', %s)", (QUEUE, n)).fetchall()]


def tick(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pgtq.tick(%s)", (QUEUE,))


def busy_queue(db: psycopg.Connection[Any]) -> None:
    """Three committed jobs, all claimed: the queue runs jobs, so tick
    keeps a mark for it, and has none ready."""
    for index in range(3):
        push(db, f"early-{index}")
    assert len(pop_ids(db, 3)) == 3


def test_a_push_open_across_one_tick_is_claimed_in_its_order(dsn: str, db: psycopg.Connection[Any]) -> None:
    busy_queue(db)
    tick(db)
    with psycopg.connect(dsn) as producer:
        held = push(producer, "held")
        later = [push(db, f"later-{index}") for index in range(2)]
        tick(db)
        producer.commit()
    ready = [
        row[0]
        for row in db.execute(
            "SELECT id FROM pgtq._job WHERE queue = %s AND state = 'ready' ORDER BY id", (QUEUE,)
        ).fetchall()
    ]
    assert held in ready and held < min(later)
    assert pop_ids(db, 10) == ready, "the held push is claimed in push order, nothing passed over"


def test_a_push_open_across_two_ticks_waits_for_the_next_tick(dsn: str, db: psycopg.Connection[Any]) -> None:
    busy_queue(db)
    with psycopg.connect(dsn) as producer:
        held = push(producer, "held")
        later = [push(db, f"later-{index}") for index in range(2)]
        tick(db)
        tick(db)
        producer.commit()
    mark = scalar(db, "SELECT low_id FROM pgtq._ready_mark WHERE queue = %s", (QUEUE,))
    assert mark > held, "two ticks passed the held push's id"
    first = pop_ids(db, 1)
    assert first and first[0] != held, "a pop seeks from the mark, past the held push"
    tick(db)
    assert pop_ids(db, 1) == [held], "the next tick sees the held push, and the next pop claims it"
    assert set(pop_ids(db, 10)) | set(first) == set(later)


def test_pops_ticks_and_releases_at_once_claim_each_job_once(dsn: str, db: psycopg.Connection[Any]) -> None:
    jobs = 1500
    db.execute(
        "SELECT pgtq.push_many(%s, 't', (SELECT array_agg(jsonb_build_array(i)) "
        "FROM generate_series(1, %s) AS i))",
        (QUEUE, jobs),
    )
    done: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def popper(release_every: int) -> None:
        """Pop in batches of 7 until the queue stays empty; release every
        release_every-th job back (it is then claimed again)."""
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                empty_rounds = 0
                count = 0
                while empty_rounds < 3:
                    rows = conn.execute("SELECT id, lease FROM pgtq.pop(%s, 'w', 7)", (QUEUE,)).fetchall()
                    if not rows:
                        empty_rounds += 1
                        conn.execute("SELECT pgtq.tick(%s)", (QUEUE,))
                        continue
                    empty_rounds = 0
                    for job_id, lease in rows:
                        count += 1
                        if count % release_every == 0:
                            conn.execute("SELECT pgtq.release(%s, %s)", (job_id, lease))
                        else:
                            assert conn.execute("SELECT pgtq.complete(%s, %s)", (job_id, lease)).fetchone()[0]
                            with lock:
                                done.append(job_id)
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)

    stop = threading.Event()

    def ticker() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                while not stop.is_set():
                    conn.execute("SELECT pgtq.tick(%s)", (QUEUE,))
        except BaseException as error:
            errors.append(error)

    tickers = [threading.Thread(target=ticker) for _ in range(2)]
    poppers = [threading.Thread(target=popper, args=(every,)) for every in (5, 11, 1_000_000)]
    for thread in tickers + poppers:
        thread.start()
    for thread in poppers:
        thread.join(timeout=300)
    stop.set()
    for thread in tickers:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(done) == len(set(done)) == jobs, "every job completed once"
    assert scalar(db, "SELECT count(*) FROM pgtq._job WHERE queue = %s AND state <> 'done'", (QUEUE,)) == 0
