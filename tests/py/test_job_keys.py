"""Job keys under concurrency, with plain psycopg connections: sessions
pushing one key at the same moment get one pending job and every one of
them gets its id; none errors, none gets NULL (the race of Graphile
Worker #580). Repeated over many rounds so the sessions really collide.
Then the Python surface: ``handler.options(job_key=..., job_key_mode=...)``,
``PgTq.push(job_key=...)`` and ``push_many(job_keys=[...])``.
(The rules one session at a time: tests/sql/16-job-keys.sql.)"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from conftest import scalar

import pgtq

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


# -- from Python: handler.options(job_key=...), PgTq.push and push_many -------------------


def pending_with_key(db: psycopg.Connection[Any], key: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT id, args, priority, state::text FROM pgtq.jobs"
        " WHERE job_key = %s AND state IN ('scheduled', 'ready') ORDER BY id",
        [key],
    ).fetchall()


def test_options_job_key_keeps_or_replaces_the_pending_job(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    @q.handler()
    def sync_user(user: int, full: bool = False) -> None: ...

    first = sync_user.options(job_key="sync_user:42").push(42)
    kept = sync_user.options(job_key="sync_user:42", priority=9).push(42, full=True)
    assert kept == first, "keep: the pending job's id, nothing changed"
    assert pending_with_key(db, "sync_user:42") == [(first, [42], 0, "ready")]

    replaced = sync_user.options(job_key="sync_user:42", job_key_mode="replace", delay=60, priority=9).push(
        42, full=True
    )
    assert replaced == first, "replace: the same job, with this push's arguments, run_at and priority"
    assert pending_with_key(db, "sync_user:42") == [(first, [42], 9, "scheduled")]
    assert scalar(db, "SELECT kwargs FROM pgtq.jobs WHERE id = %s", [first]) == {"full": True}


def test_a_running_job_does_not_hold_its_key(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    first = q.push("sync", [1], job_key="k")
    task = q.pop()
    assert task is not None and task.id == first
    second = q.push("sync", [2], job_key="k")
    assert second != first, "the running job does not count: a new pending job"
    assert q.push("sync", [3], job_key="k") == second
    assert q.complete(task)
    assert pending_with_key(db, "k") == [(second, [2], 0, "ready")]


def test_push_many_takes_one_job_key_per_job(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    @q.handler()
    def index(doc: str) -> None: ...

    ids = index.push_many([("a",), ("b",), ("c",)], job_keys=["doc:1", None, "doc:1"])
    assert ids[0] == ids[2] != ids[1], "two elements with one key: two pushes of one job"
    assert pending_with_key(db, "doc:1") == [(ids[0], ["a"], 0, "ready")], "keep: the first one's args"
    replaced = index.options(job_key_mode="replace").push_many([("x",), ("y",)], job_keys=["doc:1", "doc:1"])
    assert replaced == [ids[0], ids[0]]
    assert pending_with_key(db, "doc:1") == [(ids[0], ["y"], 0, "ready")], "replace: the last one's args"
    assert q.push_many("index", [["p"], ["q"]], job_keys=["doc:2", "doc:3"]) != []


def test_bad_job_key_options_are_refused_with_the_database_s_message(q: pgtq.PgTq) -> None:
    @q.handler()
    def sync(user: int) -> None: ...

    with pytest.raises(
        pgtq.InvalidJobError, match="job_key_mode must be 'keep' or 'replace', got 'merge'"
    ) as bad:
        sync.options(job_key="k", job_key_mode="merge").push(1)  # type: ignore[arg-type]
    assert bad.value.sqlstate == "PT004"
    with pytest.raises(pgtq.InvalidJobError, match="job_key must be 1 to 200 characters, got 201"):
        sync.options(job_key="k" * 201).push(1)
    with pytest.raises(pgtq.InvalidJobError, match=r"one job_key per job .* got 1 job_keys for 2 jobs"):
        sync.push_many([(1,), (2,)], job_keys=["k"])
    with pytest.raises(ValueError, match="give push_many job_keys"):
        sync.options(job_key="k").push_many([(1,)])
    with pytest.raises(pgtq.InvalidJobError, match="job_key_mode must be"):
        q.push_many("sync", [[1]], job_keys=["k"], job_key_mode="nope")  # type: ignore[arg-type]
