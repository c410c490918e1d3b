"""The queue history across real sessions: however many sessions tick at
once, each minute is sampled exactly once, and a sample rolled back is
taken by the next tick instead."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import psycopg
from conftest import scalar

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_concurrent_ticks_sample_each_minute_once(dsn: str) -> None:
    sessions, minutes = 6, 4
    barrier = threading.Barrier(sessions)
    errors: list[BaseException] = []

    def ticker(seed: int) -> None:
        shuffle = random.Random(seed).shuffle
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for minute in range(minutes):
                    # Every session ticks at every 5th second of the minute,
                    # in its own order, all sessions at once.
                    instants = [T0 + timedelta(minutes=minute, seconds=s) for s in range(0, 60, 5)]
                    shuffle(instants)
                    barrier.wait(timeout=30)
                    for as_of in instants:
                        conn.execute("SELECT pgtq.tick(as_of => %s)", [as_of])
        except BaseException as error:
            errors.append(error)
            barrier.abort()

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgtq.push('q', 't', as_of => %s)", [T0])
    threads = [threading.Thread(target=ticker, args=(seed,)) for seed in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with psycopg.connect(dsn, autocommit=True) as conn:
        per_minute = conn.execute(
            "SELECT date_trunc('minute', sampled_at, 'UTC'), count(*) FROM"
            " (SELECT DISTINCT sampled_at FROM pgtq.queue_history) AS s GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert per_minute == [(T0 + timedelta(minutes=minute), 1) for minute in range(minutes)]


def test_a_rolled_back_sample_is_taken_by_the_next_tick(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgtq.push('q', 't', as_of => %s)", [T0])
        with conn.transaction(force_rollback=True):
            conn.execute("SELECT pgtq.tick(as_of => %s)", [T0 + timedelta(seconds=10)])
            assert scalar(conn, "SELECT count(*) FROM pgtq.queue_history") == 1
        assert scalar(conn, "SELECT count(*) FROM pgtq.queue_history") == 0
        conn.execute("SELECT pgtq.tick(as_of => %s)", [T0 + timedelta(seconds=20)])
        assert scalar(conn, "SELECT sampled_at FROM pgtq.queue_history") == T0 + timedelta(seconds=20)


def test_a_tick_does_not_wait_for_a_sample_in_progress(dsn: str) -> None:
    """The sampler's row is taken with SKIP LOCKED: a session holding it
    (sampling in an open transaction) never blocks another's tick."""
    with psycopg.connect(dsn) as holder, psycopg.connect(dsn, autocommit=True) as other:
        holder.execute("SELECT pgtq.push('q', 't', as_of => %s)", [T0])
        holder.execute("SELECT pgtq.tick(as_of => %s)", [T0 + timedelta(seconds=1)])  # open transaction
        other.execute("SET lock_timeout = '5s'")
        assert scalar(other, "SELECT pgtq.tick(as_of => %s)", [T0 + timedelta(seconds=2)]) == 0
        holder.commit()
        assert scalar(other, "SELECT count(DISTINCT sampled_at) FROM pgtq.queue_history") == 1
