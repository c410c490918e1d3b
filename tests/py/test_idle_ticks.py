"""What a tick of an idle queue writes (schema 0.28.0). Each tick here is
its own transaction, as a worker's are.

Workers tick each of their queues every second. Until 0.28.0 every tick
wrote a new generation of the queue's ready mark, so idle workers kept
the server writing: a transaction id, WAL and a flush at commit per tick,
per worker and queue. The mark of an idle queue that says so already now
stays, and the tick writes nothing:

* once the mark says the queue is idle, a tick of it by name takes no
  transaction id and leaves the mark's generation as it was; with the
  mark's look from the first entry due (once a minute), it writes, which
  shows the check can fail;
* a job claimed before the next tick (a pop seeks from the mark that
  stayed), a job pushed, a job made ready by a retry (below the mark's
  floor), and a job whose push took its id before the mark went idle and
  committed after, each make the next tick write the mark afresh, and a
  pop claims the job;
* so does any job id taken since the mark: jobs pushed and ended between
  two ticks, which see the queue idle, still move its mark;
* tick() with no queue still drops the mark after ten idle minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from conftest import scalar

QUEUE = "quiet"


@pytest.fixture(autouse=True)
def no_history_sample(db: psycopg.Connection[Any]) -> Iterator[None]:
    """No tick of these tests takes the queue history's sample (one a
    minute, by whichever tick comes first), which writes."""
    db.execute("UPDATE pgtq._sampler SET next_sample_at = now() + interval '1 hour', last_sampled_at = now()")
    yield


def tick_wrote(conn: psycopg.Connection[Any], queue: str | None = QUEUE) -> bool:
    """Tick ``queue`` in a transaction of its own; whether it took a
    transaction id (whether it wrote anything)."""
    with conn.transaction():
        conn.execute("SELECT pgtq.tick(%s)", (queue,))
        return scalar(conn, "SELECT pg_current_xact_id_if_assigned() IS NOT NULL")


def generation(conn: psycopg.Connection[Any]) -> int | None:
    return scalar(conn, "SELECT max(generation) FROM pgtq._ready_mark WHERE queue = %s", (QUEUE,))


def is_idle(conn: psycopg.Connection[Any]) -> bool:
    return scalar(conn, "SELECT idle_since IS NOT NULL FROM pgtq._ready_mark WHERE queue = %s", (QUEUE,))


def make_idle(conn: psycopg.Connection[Any]) -> None:
    """Tick until the queue's mark says it is idle and a tick leaves it."""
    for _ in range(3):
        if not tick_wrote(conn):
            break
    assert is_idle(conn)
    assert not tick_wrote(conn), "a tick of an idle queue writes nothing"


def claim(conn: psycopg.Connection[Any]) -> int | None:
    return scalar(conn, "SELECT id FROM pgtq.pop(%s, 'w', 1)", (QUEUE,))


def test_a_tick_of_an_idle_queue_writes_nothing_until_a_look_from_the_first_entry_is_due(
    db: psycopg.Connection[Any],
) -> None:
    make_idle(db)
    before = generation(db)
    for _ in range(5):
        assert not tick_wrote(db)
    assert generation(db) == before, "the mark stays as it was"
    db.execute(
        "UPDATE pgtq._ready_mark SET looked_all_at = now() - interval '2 minutes' WHERE queue = %s", (QUEUE,)
    )
    assert tick_wrote(db), "the look from the first entry, due once a minute, is written"
    assert generation(db) != before
    assert is_idle(db)
    assert not tick_wrote(db)


def test_a_running_or_ready_job_makes_the_tick_write(db: psycopg.Connection[Any]) -> None:
    make_idle(db)
    pushed = scalar(db, "SELECT pgtq.push(%s, 't')", (QUEUE,))
    assert claim(db) == pushed, "a pop before the next tick seeks from the mark that stayed"
    assert tick_wrote(db), "a running job makes the tick write"
    assert not is_idle(db)
    db.execute("SELECT pgtq.complete(j.id, j.lease) FROM pgtq._job AS j WHERE j.id = %s", (pushed,))
    assert tick_wrote(db), "the tick that finds the queue idle again writes so"
    assert is_idle(db)
    assert not tick_wrote(db)
    pushed = scalar(db, "SELECT pgtq.push(%s, 't')", (QUEUE,))
    assert tick_wrote(db), "a ready job makes the tick write"
    assert not is_idle(db)
    assert claim(db) == pushed


def test_a_job_retried_below_the_floor_makes_the_tick_write(db: psycopg.Connection[Any]) -> None:
    failed = scalar(db, "SELECT pgtq.push(%s, 't', max_attempts => 1)", (QUEUE,))
    db.execute("SELECT pgtq.push(%s, 't')", (QUEUE,))  # the floor moves past the failed job
    assert claim(db) == failed
    db.execute("SELECT pgtq.fail(j.id, j.lease, 'boom') FROM pgtq._job AS j WHERE j.id = %s", (failed,))
    finished = claim(db)
    db.execute("SELECT pgtq.complete(j.id, j.lease) FROM pgtq._job AS j WHERE j.id = %s", (finished,))
    make_idle(db)
    for _ in range(
        3
    ):  # the floor settles above the failed job at the writes of the looks from the first entry
        if scalar(db, "SELECT floor_id FROM pgtq._ready_mark WHERE queue = %s", (QUEUE,)) > failed:
            break
        db.execute(
            "UPDATE pgtq._ready_mark SET looked_all_at = now() - interval '2 minutes' WHERE queue = %s",
            (QUEUE,),
        )
        assert tick_wrote(db)
    assert scalar(db, "SELECT floor_id FROM pgtq._ready_mark WHERE queue = %s", (QUEUE,)) > failed
    assert not tick_wrote(db)
    assert scalar(db, "SELECT pgtq.retry(%s)", (failed,))
    assert tick_wrote(db), "the record the retry left (_ready_mark_low) makes the tick write"
    assert not is_idle(db)
    assert claim(db) == failed


def test_a_push_that_commits_after_the_mark_went_idle_makes_the_tick_write(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    make_idle(db)
    with psycopg.connect(dsn) as pusher:
        pushed = scalar(pusher, "SELECT pgtq.push(%s, 't')", (QUEUE,))  # its id taken, not committed
        assert tick_wrote(db), "a job id was taken since the mark"
        assert is_idle(db), "the job is not seen yet"
        assert not tick_wrote(db)
        pusher.commit()
    assert claim(db) == pushed, "a pop seeks from the mark that stayed, below the job"
    db.execute("SELECT pgtq.release(j.id, j.lease) FROM pgtq._job AS j WHERE j.id = %s", (pushed,))
    with psycopg.connect(dsn) as pusher:
        late = scalar(pusher, "SELECT pgtq.push(%s, 't')", (QUEUE,))
        assert claim(db) == pushed
        db.execute("SELECT pgtq.complete(j.id, j.lease) FROM pgtq._job AS j WHERE j.id = %s", (pushed,))
        make_idle(db)  # the released job's record made a tick write: the mark is above the late job
        assert scalar(db, "SELECT next_low_id FROM pgtq._ready_mark WHERE queue = %s", (QUEUE,)) > late
        pusher.commit()
    assert tick_wrote(db), "the tick's look from the mark's floor finds the job"
    assert not is_idle(db)
    assert claim(db) == late


def test_jobs_pushed_and_ended_between_two_ticks_make_each_tick_write(db: psycopg.Connection[Any]) -> None:
    # The queue looks idle at every tick; its mark must follow the jobs all
    # the same, or pops would seek from further and further behind.
    make_idle(db)
    for _ in range(3):
        pushed = scalar(db, "SELECT pgtq.push(%s, 't')", (QUEUE,))
        assert claim(db) == pushed
        db.execute("SELECT pgtq.complete(j.id, j.lease) FROM pgtq._job AS j WHERE j.id = %s", (pushed,))
        assert tick_wrote(db), "a job id was taken since the mark"
        assert is_idle(db)
        assert scalar(db, "SELECT next_low_id FROM pgtq._ready_mark WHERE queue = %s", (QUEUE,)) > pushed
    assert not tick_wrote(db)


def test_tick_with_no_queue_drops_the_mark_after_ten_idle_minutes(db: psycopg.Connection[Any]) -> None:
    make_idle(db)
    assert not tick_wrote(db, None), "tick() leaves an idle mark of less than ten minutes"
    db.execute(
        "UPDATE pgtq._ready_mark SET idle_since = now() - interval '11 minutes' WHERE queue = %s", (QUEUE,)
    )
    assert not tick_wrote(db), "a tick by name keeps it"
    assert generation(db) is not None
    assert tick_wrote(db, None)
    assert generation(db) is None
