"""Job keys under concurrency, with plain psycopg connections: sessions
pushing one key at the same moment get one pending job and every one of
them gets its id; none errors, none gets NULL (the race of Graphile
Worker #580). Repeated over many rounds so the sessions really collide.
(The rules one session at a time: tests/sql/16-job-keys.sql.)"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from conftest import scalar

SESSIONS = 8
ROUNDS = 25


def race(dsn: str, rounds: int, push: Callable[[psycopg.Connection[Any], int, int], Any]) -> list[list[Any]]:
    """Run ``push(conn, round, session)`` in SESSIONS sessions at once, each
    round started together by a barrier; returns the results per round."""
    barrier = threading.Barrier(SESSIONS)
    results: list[list[Any]] = [[None] * SESSIONS for _ in range(rounds)]

    def session(number: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for round_number in range(rounds):
                barrier.wait(timeout=60)
                results[round_number][number] = push(conn, round_number, number)

    with ThreadPoolExecutor(SESSIONS) as pool:
        for future in [pool.submit(session, number) for number in range(SESSIONS)]:
            future.result(timeout=300)  # re-raises any session's error
    return results


def test_sessions_pushing_one_key_at_once_get_one_job_and_its_id(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    def push(conn: psycopg.Connection[Any], round_number: int, number: int) -> Any:
        return scalar(
            conn,
            "SELECT pgtq.push('keys', 'sync', %s, job_key => %s)",
            [f"[{number}]", f"key-{round_number}"],
        )

    for round_number, ids in enumerate(race(dsn, ROUNDS, push)):
        assert None not in ids, f"round {round_number}: a push returned NULL"
        assert len(set(ids)) == 1, f"round {round_number}: the sessions got different jobs {ids}"
        pending = db.execute(
            "SELECT id FROM pgtq.jobs WHERE job_key = %s AND state IN ('scheduled', 'ready')",
            [f"key-{round_number}"],
        ).fetchall()
        assert pending == [(ids[0],)], f"round {round_number}: one pending job, the one every session got"
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = 'keys'") == ROUNDS


def test_sessions_replacing_one_key_at_once_leave_one_job_with_one_of_their_args(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    def push(conn: psycopg.Connection[Any], round_number: int, number: int) -> Any:
        return scalar(
            conn,
            "SELECT pgtq.push('debounce', 'index', %s, job_key => %s, job_key_mode => 'replace')",
            [f"[{number}]", f"doc-{round_number}"],
        )

    for round_number, ids in enumerate(race(dsn, ROUNDS, push)):
        assert None not in ids and len(set(ids)) == 1, f"round {round_number}: {ids}"
        args = scalar(db, "SELECT args FROM pgtq.jobs WHERE id = %s", [ids[0]])
        assert args in [[number] for number in range(SESSIONS)], "the last writer's args, whole"
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = 'debounce'") == ROUNDS


def test_pushes_racing_a_worker_that_claims_the_keyed_job(dsn: str, db: psycopg.Connection[Any]) -> None:
    """While the sessions push one key, another session keeps claiming and
    completing that queue's jobs: a running job with the key does not
    block (a push then queues a new pending job), every push still gets
    the id of a job with its key, and there is never more than one
    pending job for the key (the unique index would refuse it)."""
    stop = threading.Event()
    claimed: list[int] = []

    def worker() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                for job_id, lease in conn.execute(
                    "SELECT id, lease FROM pgtq.pop('hot', 'w', 10)"
                ).fetchall():
                    claimed.append(job_id)
                    conn.execute("SELECT pgtq.complete(%s, %s)", [job_id, lease])

    def push(conn: psycopg.Connection[Any], round_number: int, number: int) -> Any:
        return scalar(conn, "SELECT pgtq.push('hot', 'sync', job_key => 'the-key')")

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(worker)
        try:
            results = race(dsn, ROUNDS, push)
        finally:
            stop.set()
        running.result(timeout=60)

    ids = {job_id for round_ids in results for job_id in round_ids}
    assert None not in ids, "no push returned NULL"
    keyed = dict(db.execute("SELECT id, job_key FROM pgtq.jobs WHERE queue = 'hot'").fetchall())
    assert ids <= set(keyed) and set(keyed.values()) == {"the-key"}, "every id is a job of the key"
    assert (
        scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = 'hot' AND state IN ('scheduled', 'ready')")
        <= 1
    )
    assert claimed, "the worker ran keyed jobs while the pushes went on"
