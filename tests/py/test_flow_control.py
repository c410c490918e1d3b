"""Flow control across sessions and real workers (the rules themselves, one
session at a time: tests/sql/22-25).

* Several sessions pop at once: a max_running queue never overshoots, a
  lock key never runs twice; a pause waits for the pop that holds its
  queue, and stops the pops that come after it.
* Real worker processes, with a ledger the handlers keep on the database
  clock (apps/flow_app.py): max_running 2 under 4 workers of concurrency
  4; a worker started later still gets slots of a limited queue; 20 jobs a
  second at most; 100 jobs over 5 lock keys; pause, then resume.
* The wake-ups that bring back a worker whose pop met a limit.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from conftest import Processes, heard_until_sentinel, in_background, scalar, wait_until, waiting_on_lock

import pgtq

WAIT = 180.0  # seconds a drain may take on a shared 2-core machine


# -- helpers --------------------------------------------------------------------------


def in_parallel(sessions: int, dsn: str, act: Callable[[psycopg.Connection[Any]], Any]) -> list[Any]:
    """Run ``act(conn)`` in ``sessions`` threads with a connection each,
    released together by a barrier; their results in thread order."""
    barrier = threading.Barrier(sessions)
    results: list[Any] = [None] * sessions
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                barrier.wait(timeout=60)
                results[index] = act(conn)
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def pop_holding(queue: str, n: int) -> Callable[[psycopg.Connection[Any]], list[tuple[int, str | None]]]:
    """A session's turn: pop up to n jobs in a transaction kept open a
    moment (so the pops overlap), then commit; the (id, lock_key) claimed."""

    def act(conn: psycopg.Connection[Any]) -> list[tuple[int, str | None]]:
        with conn.transaction():
            rows = conn.execute(
                "SELECT p.id, j.lock_key FROM pgtq.pop(%s, 'w', %s) AS p JOIN pgtq._job AS j USING (id)",
                [queue, n],
            ).fetchall()
            conn.execute("SELECT pg_sleep(0.02)")
        return [(row[0], row[1]) for row in rows]

    return act


def complete_all(db: psycopg.Connection[Any], queues: Sequence[str]) -> int:
    """Complete every running job of ``queues`` (as their workers would)."""
    rows = db.execute(
        "SELECT count(pgtq.complete(j.id, j.lease)) FROM pgtq._job AS j"
        " WHERE j.queue = ANY (%s) AND j.state = 'running'",
        [list(queues)],
    ).fetchone()
    return int(rows[0]) if rows else 0


def most_at_once(intervals: Sequence[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant (an end before a start at the same instant)."""
    events = sorted([(began, 1) for began, _ in intervals] + [(ended, -1) for _, ended in intervals])
    open_now = most = 0
    for _, step in events:
        open_now += step
        most = max(most, open_now)
    return most


@pytest.fixture
def ledger(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """The ledger the handlers of apps/flow_app.py write, and a connection to read it."""
    db.execute(
        "CREATE TABLE public.flow_ledger (entry bigserial PRIMARY KEY, job_id bigint NOT NULL,"
        " queue text NOT NULL, lock_key text, claimed_at timestamptz NOT NULL,"
        " began_at timestamptz NOT NULL, ended_at timestamptz)"
    )
    return db


def runs(
    db: psycopg.Connection[Any], queue: str
) -> list[tuple[int, str | None, datetime, datetime, datetime]]:
    """The finished runs of ``queue`` in the ledger: job id, lock key, claimed, began, ended."""
    return [
        (row[0], row[1], row[2], row[3], row[4])
        for row in db.execute(
            "SELECT job_id, lock_key, claimed_at, began_at, ended_at FROM public.flow_ledger"
            " WHERE queue = %s AND ended_at IS NOT NULL ORDER BY began_at",
            [queue],
        )
    ]


def done(db: psycopg.Connection[Any], queue: str) -> int:
    return int(scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = %s AND state = 'done'", [queue]))


# -- several sessions at once ------------------------------------------------------------


def test_concurrent_pops_never_run_more_than_max_running(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT pgtq.push_many('m', 't', array_fill('[]'::jsonb, ARRAY[200]))")
    db.execute("SELECT pgtq.configure_queue('m', max_running => 5)")
    for _ in range(6):
        claimed = [job for session in in_parallel(8, dsn, pop_holding("m", 3)) for job in session]
        assert len(claimed) == 5, "8 sessions asking for 3 each share exactly the 5 slots"
        assert len({job_id for job_id, _ in claimed}) == 5, "and no job twice"
        assert scalar(db, "SELECT running FROM pgtq.queues WHERE queue = 'm'") == 5
        assert complete_all(db, ["m"]) == 5


def test_concurrent_pops_never_run_two_jobs_of_a_key(dsn: str, db: psycopg.Connection[Any]) -> None:
    for queue in ("k1", "k2"):
        for key in ("a", "b", "c"):
            db.execute(
                "SELECT pgtq.push_many(%s, 't', array_fill('[]'::jsonb, ARRAY[10]),"
                " lock_keys => array_fill(%s::text, ARRAY[10]))",
                [queue, key],
            )
    db.execute("SELECT pgtq.push_many('k1', 'free', array_fill('[]'::jsonb, ARRAY[40]))")
    for _ in range(6):
        sessions = in_parallel(4, dsn, pop_holding("k1", 5)) + in_parallel(4, dsn, pop_holding("k2", 5))
        keys = [key for session in sessions for _, key in session if key is not None]
        assert sorted(keys) == ["a", "b", "c"], "each key runs exactly one job, in either queue"
        complete_all(db, ["k1", "k2"])


def test_a_pause_waits_for_the_pop_that_holds_its_queue(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT pgtq.push_many('p', 't', array_fill('[]'::jsonb, ARRAY[5]))")
    db.execute("SELECT pgtq.configure_queue('p', max_running => 3)")
    paused: list[bool] = []

    def pause() -> None:
        with pgtq.Database(dsn) as database:
            paused.append(database.pause("p"))

    with psycopg.connect(dsn) as popper:
        claimed = popper.execute("SELECT id, lease FROM pgtq.pop('p', 'w', 1)").fetchall()
        assert len(claimed) == 1
        pausing = threading.Thread(target=pause)
        pausing.start()
        wait_until(
            lambda: (
                scalar(
                    db,
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND query LIKE '%%pgtq.pause%%'",
                )
                == 1
            )
        )
        assert not paused, "the pause waits for the pop holding the queue's row"
        popper.commit()
    pausing.join(timeout=60)
    assert paused == [True]
    [(job_id, lease)] = claimed
    assert scalar(db, "SELECT pgtq.complete(%s, %s)", [job_id, lease]) is True, "the claimed job finishes"
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('p', 'w', 5)") == 0, "nothing after the pause"


def test_a_pop_after_a_pause_in_its_own_transaction_hands_out_nothing(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute("SELECT pgtq.push_many('u', 't', array_fill('[]'::jsonb, ARRAY[5]))")
    with psycopg.connect(dsn) as popper, pgtq.Database(dsn) as database:
        first = popper.execute("SELECT id, lease FROM pgtq.pop('u', 'w', 1)").fetchall()
        assert database.pause("u") is True, "an unlimited queue's pop holds nothing: no wait"
        assert popper.execute("SELECT count(*) FROM pgtq.pop('u', 'w', 5)").fetchone() == (0,), (
            "the next pop of the same transaction sees the pause"
        )
        popper.commit()
    [(job_id, lease)] = first
    assert scalar(db, "SELECT pgtq.complete(%s, %s)", [job_id, lease]) is True


def test_pops_of_a_max_running_queue_claim_side_by_side(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT pgtq.push_many('side', 't', array_fill('[]'::jsonb, ARRAY[10]))")
    db.execute("SELECT pgtq.configure_queue('side', max_running => 3)")
    with psycopg.connect(dsn) as first, psycopg.connect(dsn) as second:
        second.execute("SET lock_timeout = '20s'")
        held = first.execute("SELECT id FROM pgtq.pop('side', 'w', 2)").fetchall()
        # Until 0.8.0 this pop waited for the first one's commit (both locked the queue's row).
        beside = second.execute("SELECT id FROM pgtq.pop('side', 'w', 5)").fetchall()
        assert (len(held), len(beside)) == (2, 1), "the second pop takes the one slot the first left, at once"
        second.commit()
        first.commit()
    assert db.execute(
        "SELECT array_agg(slot ORDER BY slot) FROM pgtq._job WHERE queue = 'side' AND state = 'running'"
    ).fetchone() == ([1, 2, 3],)


@pytest.mark.parametrize(("first_ends_by", "claimed_after"), [("commit", 0), ("rollback", 1)])
def test_a_pop_that_finds_every_free_slot_held_waits_for_that_claim(
    dsn: str, db: psycopg.Connection[Any], first_ends_by: str, claimed_after: int
) -> None:
    db.execute("SELECT pgtq.push_many('held', 't', array_fill('[]'::jsonb, ARRAY[5]))")
    db.execute("SELECT pgtq.configure_queue('held', max_running => 2)")
    with psycopg.connect(dsn) as first:
        assert len(first.execute("SELECT id FROM pgtq.pop('held', 'w', 2)").fetchall()) == 2
        popping, claimed = in_background(dsn, "SELECT count(*) FROM pgtq.pop('held', 'w', 1)")
        wait_until(lambda: waiting_on_lock(db, "pgtq.pop('held'"))
        assert not claimed, "the pop waits for the claim that holds the free slots"
        getattr(first, first_ends_by)()
    popping.join(timeout=60)
    assert claimed == [claimed_after], f"after a {first_ends_by}, the pop claims {claimed_after}"


def test_configure_queue_waits_for_the_pops_that_read_its_settings(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute("SELECT pgtq.push_many('conf', 't', array_fill('[]'::jsonb, ARRAY[5]))")
    db.execute("SELECT pgtq.configure_queue('conf', max_running => 3)")
    with psycopg.connect(dsn) as popper:
        assert len(popper.execute("SELECT id FROM pgtq.pop('conf', 'w', 2)").fetchall()) == 2
        configuring, changed = in_background(dsn, "SELECT pgtq.configure_queue('conf', max_running => 1)")
        wait_until(lambda: waiting_on_lock(db, "pgtq.configure_queue('conf'"))
        assert not changed, "the change waits for the pop that claimed by the old limit"
        popper.commit()
    configuring.join(timeout=60)
    assert changed == [True]
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('conf', 'w', 5)") == 0, "two run: over the limit of 1"


# A job whose lease ran out, and a heartbeat that read the lease as live (its
# as_of came first) but commits after a pop looked: the pop must not give the
# job's slot or key away to a second job while that heartbeat may bring the
# first back (0.11.0). The clock is the calls' as_of: the job is claimed at
# LAPSE_START with a one-minute lease, the heartbeat is 30 s in, the pop 2 min.
LAPSE_START = datetime.fromisoformat("2030-01-01 00:00:00+00:00")


def one_lapsing_job(db: psycopg.Connection[Any], control: str) -> tuple[int, str]:
    """Two ready jobs of queue ``lapse`` under ``control`` (max_running 1, or one
    lock key), the first claimed at LAPSE_START with a one-minute lease."""
    key = "k" if control == "lock_key" else None
    for _ in range(2):
        db.execute("SELECT pgtq.push('lapse', 't', lock_key => %s, as_of => %s)", [key, LAPSE_START])
    if control == "max_running":
        db.execute("SELECT pgtq.configure_queue('lapse', max_running => 1)")
    job_id, lease = db.execute(
        "SELECT id, lease::text FROM pgtq.pop('lapse', 'w', 1, '1 minute', %s)", [LAPSE_START]
    ).fetchone()
    return job_id, lease


HEARTBEAT = "SELECT pgtq.heartbeat({}, '{}', '10 minutes', '2030-01-01 00:00:30+00')"
POP_LATER = "SELECT count(*) FROM pgtq.pop('lapse', 'w', 1, '1 minute', '2030-01-01 00:02+00')"
LIVE_LATER = (
    "SELECT count(*) FROM pgtq._job"
    " WHERE queue = 'lapse' AND state = 'running' AND lease_expires_at > '2030-01-01 00:02+00'"
)


@pytest.mark.parametrize("control", ["max_running", "lock_key"])
def test_a_pop_leaves_the_place_of_a_lapsed_job_whose_heartbeat_is_under_way(
    dsn: str, db: psycopg.Connection[Any], control: str
) -> None:
    job_id, lease = one_lapsing_job(db, control)
    with psycopg.connect(dsn) as beat:
        assert scalar(beat, HEARTBEAT.format(job_id, lease)) is True, "the lease was live at its as_of"
        db.execute("SET lock_timeout = '20s'")
        assert scalar(db, POP_LATER) == 0, "its commit could bring the job back: the place stays its"
        beat.commit()
    assert scalar(db, POP_LATER) == 0, "the job is back: its place is still taken"
    assert scalar(db, LIVE_LATER) == 1


@pytest.mark.parametrize("control", ["max_running", "lock_key"])
def test_a_heartbeat_after_a_pop_gave_a_lapsed_job_s_place_away_extends_nothing(
    dsn: str, db: psycopg.Connection[Any], control: str
) -> None:
    job_id, lease = one_lapsing_job(db, control)
    with psycopg.connect(dsn) as popper:
        assert scalar(popper, POP_LATER) == 1, "the lease ran out as of the pop: its place goes on"
        beating, held = in_background(dsn, HEARTBEAT.format(job_id, lease))
        wait_until(lambda: waiting_on_lock(db, "pgtq.heartbeat(", lock="transactionid"))
        assert not held, "the heartbeat waits for the pop that wrote its job off"
        popper.commit()
    beating.join(timeout=60)
    assert held == [False], "and then extends nothing: its worker learns it lost the job"
    assert scalar(db, LIVE_LATER) == 1


def test_a_limited_pop_needs_read_committed(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT pgtq.push('plain', 't')")
    db.execute("SELECT pgtq.push('lim', 't')")
    db.execute("SELECT pgtq.configure_queue('lim', max_running => 1)")
    with psycopg.connect(dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        plain, limited = pgtq.PgTq("plain", dsn), pgtq.PgTq("lim", dsn)
        assert len(plain.pop_many(1, conn=conn)) == 1, "the fast path works at any level"
        with pytest.raises(pgtq.InvalidJobError, match="needs READ COMMITTED isolation") as refused:
            limited.pop(conn=conn)
        assert refused.value.sqlstate == "PT007"


# -- wake-ups --------------------------------------------------------------------------


def notifications(listener: psycopg.Connection[Any], db: psycopg.Connection[Any]) -> list[str]:
    """The queues announced on channel pgtq by what ``db`` committed so far."""
    return sorted(payload for _, payload in heard_until_sentinel(listener, db, "pgtq"))


def test_a_worker_that_met_a_limit_is_woken_when_room_comes_back(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN pgtq")
        listener.execute("SELECT pgtq.mark_waiting(ARRAY['lim', 'ka', 'kb', 'rate'])")  # a waiting worker
        # A slot of a max_running queue frees: its queue is announced while it has ready jobs.
        db.execute("SELECT pgtq.configure_queue('lim', max_running => 1)")
        db.execute("SELECT pgtq.push_many('lim', 't', array_fill('[]'::jsonb, ARRAY[2]))")
        notifications(listener, db)
        for _ in range(2):
            job_id, lease = db.execute("SELECT id, lease FROM pgtq.pop('lim')").fetchone() or (None, None)
            db.execute("SELECT pgtq.complete(%s, %s)", [job_id, lease])
        # (the second completion left the queue empty: no announcement for it)
        assert notifications(listener, db) == ["lim"]
        # A lock key frees: the queue of the key's next job is announced.
        db.execute("SELECT pgtq.push('ka', 't', lock_key => 'k')")
        db.execute("SELECT pgtq.push('kb', 't', lock_key => 'k')")
        job_id, lease = db.execute("SELECT id, lease FROM pgtq.pop('ka')").fetchone() or (None, None)
        notifications(listener, db)
        db.execute("SELECT pgtq.fail(%s, %s, 'boom', '1 hour')", [job_id, lease])
        assert notifications(listener, db) == ["kb"]
        # The rate window moves on: tick announces the queue once it has room.
        db.execute("SELECT pgtq.configure_queue('rate', rate_limit => 1, rate_period => '1 minute')")
        db.execute("SELECT pgtq.push_many('rate', 't', array_fill('[]'::jsonb, ARRAY[2]))")
        db.execute("SELECT pgtq.pop('rate', as_of => now())")
        notifications(listener, db)
        db.execute("SELECT pgtq.tick('rate', now() + interval '30 seconds')")
        assert notifications(listener, db) == [], "no room yet"
        db.execute("SELECT pgtq.tick('rate', now() + interval '61 seconds')")
        assert notifications(listener, db) == ["rate"]


def test_a_claim_that_takes_back_the_slots_it_freed_wakes_nobody(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """complete_many_and_pop (0.10.0) announces the freed slots of its own
    queue only when it claimed back fewer jobs than it completed; slots of
    other queues, and complete_many, announce as before."""
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN pgtq")
        listener.execute("SELECT pgtq.mark_waiting(ARRAY['lim', 'other'])")  # a waiting worker
        for queue in ("lim", "other"):
            db.execute("SELECT pgtq.configure_queue(%s, max_running => 2)", [queue])
            db.execute("SELECT pgtq.push_many(%s, 't', array_fill('[]'::jsonb, ARRAY[8]))", [queue])
        held = db.execute("SELECT array_agg(id), array_agg(lease) FROM pgtq.pop('lim', 'w', 2)").fetchone()
        notifications(listener, db)
        recycle = (
            "SELECT (SELECT array_agg(c.id) FROM unnest(r.claimed) AS c),"
            " (SELECT array_agg(c.lease) FROM unnest(r.claimed) AS c), cardinality(r.completed)"
            " FROM pgtq.complete_many_and_pop('lim', %s, %s, worker => 'w', n => %s) AS r"
        )
        ids, leases, completed = db.execute(recycle, [*held, 2]).fetchone() or (None, None, 0)
        assert completed == 2 and len(ids) == 2
        assert notifications(listener, db) == [], "both slots taken back: the queue is as full as before"
        ids, leases, completed = db.execute(recycle, [ids, leases, 1]).fetchone() or (None, None, 0)
        assert completed == 2 and len(ids) == 1
        assert notifications(listener, db) == ["lim"], "one slot left free: a waiting worker may take it"
        other = db.execute("SELECT array_agg(id), array_agg(lease) FROM pgtq.pop('other', 'w', 2)").fetchone()
        notifications(listener, db)
        db.execute(
            "SELECT pgtq.complete_many_and_pop('lim', %s || %s, %s || %s, worker => 'w', n => 5)",
            [ids, other[0], leases, other[1]],
        )
        assert notifications(listener, db) == ["other"], "the slots of another queue freed: announced"
        held = db.execute("SELECT array_agg(id), array_agg(lease) FROM pgtq.pop('other', 'w', 2)").fetchone()
        notifications(listener, db)
        db.execute("SELECT pgtq.complete_many(%s, %s)", [*held])
        assert notifications(listener, db) == ["other"], "complete_many announces as it did"


# -- real workers ------------------------------------------------------------------------


def test_four_workers_never_run_more_than_max_running(
    processes: Processes, ledger: psycopg.Connection[Any]
) -> None:
    db = ledger
    db.execute("SELECT pgtq.configure_queue('limited', max_running => 2)")
    db.execute("SELECT pgtq.push_many('limited', 'work', array_fill('[0.01]'::jsonb, ARRAY[300]))")
    for _ in range(4):
        processes.worker("flow_app:limited", "--concurrency", "4")
    wait_until(lambda: done(db, "limited") == 300, timeout=WAIT)
    ledger_runs = runs(db, "limited")
    assert len(ledger_runs) == 300 and len({run[0] for run in ledger_runs}) == 300, "each job ran once"
    assert most_at_once([(began, ended) for _, _, _, began, ended in ledger_runs]) == 2


def test_a_worker_that_started_first_leaves_a_limited_queue_s_slots_to_a_later_one(
    processes: Processes, ledger: psycopg.Connection[Any]
) -> None:
    """Handlers of 20 ms, max_running 8, workers of concurrency 2: the first
    worker claims ahead (its slots get through 25 such jobs in a quarter of
    a second) until the limit cuts its claim short; from then on it claims
    only for its free slots, so the second worker, started once the first
    runs, gets slots of the limit and runs jobs too. (Until this worker,
    the first kept all 8 slots, 6 of them for jobs waiting in its hand, and
    the second ran none: 0 of 600 in an experiment.)"""
    db = ledger
    db.execute("SELECT pgtq.configure_queue('limited', max_running => 8)")
    db.execute("SELECT pgtq.push_many('limited', 'work', array_fill('[0.02]'::jsonb, ARRAY[160]))")
    first = processes.worker("flow_app:limited", "--concurrency", "2")
    wait_until(lambda: done(db, "limited") >= 20, timeout=WAIT)
    second = processes.worker("flow_app:limited", "--concurrency", "2")
    wait_until(lambda: done(db, "limited") == 160, timeout=WAIT)
    by_pid = {
        int(worker.split(":")[-2]): count
        for worker, count in db.execute(
            "SELECT worker, count(*) FROM pgtq.jobs WHERE queue = 'limited' GROUP BY worker"
        ).fetchall()
    }
    assert set(by_pid) <= {first.pid, second.pid} and sum(by_pid.values()) == 160
    assert by_pid.get(second.pid, 0) >= 20, f"jobs run per worker pid: {by_pid}"
    ledger_runs = runs(db, "limited")
    assert most_at_once([(began, ended) for _, _, _, began, ended in ledger_runs]) <= 8


def test_a_rate_limit_of_20_a_second_holds_in_every_window(
    processes: Processes, ledger: psycopg.Connection[Any]
) -> None:
    db = ledger
    db.execute("SELECT pgtq.configure_queue('rated', rate_limit => 20, rate_period => '1 second')")
    db.execute("SELECT pgtq.push_many('rated', 'work', array_fill('[0]'::jsonb, ARRAY[70]))")
    for _ in range(2):
        processes.worker("flow_app:rated", "--concurrency", "8", "--tick-interval", "0.25")
    wait_until(lambda: done(db, "rated") == 70, timeout=WAIT)
    starts = sorted(claimed for _, _, claimed, _, _ in runs(db, "rated"))
    assert len(starts) == 70
    assert starts[-1] - starts[0] >= timedelta(seconds=3), "70 jobs at 20 a second take over 3 s"
    busiest = max(
        sum(1 for other in starts if start - timedelta(seconds=1) < other <= start) for start in starts
    )
    assert busiest <= 20, f"{busiest} jobs started within one second"


def test_100_jobs_over_5_lock_keys(processes: Processes, ledger: psycopg.Connection[Any]) -> None:
    db = ledger
    db.execute(
        "SELECT pgtq.push_many('keyed', 'work', array_fill('[0.1]'::jsonb, ARRAY[100]),"
        " lock_keys => ARRAY(SELECT 'key-' || i % 5 FROM generate_series(0, 99) AS i))"
    )
    for _ in range(2):
        processes.worker("flow_app:keyed", "--concurrency", "4")
    wait_until(lambda: done(db, "keyed") == 100, timeout=WAIT)
    by_key: dict[str, list[tuple[int, datetime, datetime]]] = defaultdict(list)
    for job_id, key, _, began, ended in runs(db, "keyed"):
        assert key is not None
        by_key[key].append((job_id, began, ended))
    assert sorted(by_key) == [f"key-{i}" for i in range(5)] and all(len(r) == 20 for r in by_key.values())
    for key, key_runs in by_key.items():
        assert most_at_once([(began, ended) for _, began, ended in key_runs]) == 1, f"{key} never overlaps"
        ids = [job_id for job_id, _, _ in key_runs]
        assert ids == sorted(ids), f"{key} runs in push order"
    everything = [(began, ended) for key_runs in by_key.values() for _, began, ended in key_runs]
    assert most_at_once(everything) == 5, "the keys run side by side: all five at once at some moment"


def test_after_pause_no_job_starts_and_after_resume_the_queue_drains(
    processes: Processes, ledger: psycopg.Connection[Any], dsn: str
) -> None:
    db = ledger
    db.execute("SELECT pgtq.push_many('pausable', 'work', array_fill('[0.02]'::jsonb, ARRAY[200]))")
    for _ in range(2):
        processes.worker("flow_app:pausable", "--concurrency", "4")
    wait_until(lambda: done(db, "pausable") >= 20, timeout=WAIT)
    database = pgtq.Database(dsn)
    assert database.pause("pausable") is True
    paused_at = scalar(db, "SELECT clock_timestamp()")
    # For 1.5 s the workers keep polling (every 0.5 s) and hear of new
    # pushes: a window to see that none of it starts a job. (A pop that
    # began before the pause committed may still hand out jobs, as if it
    # came first: its jobs start before paused_at, so the ready count is
    # not compared with one read at the pause.)
    pushed = []
    for _ in range(3):
        pushed.append(scalar(db, "SELECT pgtq.push('pausable', 'work', '[0.02]')"))
        db.execute("SELECT pg_sleep(0.5)")
    wait_until(
        lambda: (
            scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = 'pausable' AND state = 'running'") == 0
        )
    )
    assert (
        scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = 'pausable' AND started_at > %s", [paused_at])
        == 0
    )
    assert scalar(
        db, "SELECT array_agg(DISTINCT state::text) FROM pgtq.jobs WHERE id = ANY(%s)", [pushed]
    ) == ["ready"], "a paused queue still takes pushes"
    assert scalar(
        db, "SELECT count(*) FROM pgtq.jobs WHERE queue = 'pausable' AND state = 'ready'"
    ) == scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = 'pausable' AND started_at IS NULL"), (
        "every job that did not start is ready, none was lost"
    )
    assert database.resume("pausable") is True
    database.close()
    wait_until(lambda: done(db, "pausable") == 203, timeout=WAIT)
    assert len(runs(db, "pausable")) == 203, "every job ran once, those running at the pause included"
