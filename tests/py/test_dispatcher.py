"""The dispatcher against the real database, in this process: how its
outcomes reach the database."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from conftest import wait_until

import pgtq
from pgtq._db import gateway
from pgtq._records import Outcome
from pgtq.worker import Worker, WorkerSettings


def claim(conn: gateway.Connection, *, n: int) -> list[pgtq.Task]:
    """``pop`` of test_queue, as worker "w" with a 5-minute lease."""
    return gateway.pop(conn, queue="test_queue", worker="w", n=n, lease=timedelta(minutes=5))


def write_and_claim(
    conn: gateway.Connection, outcomes: Sequence[Outcome], *, n: int
) -> tuple[gateway.Written | None, list[pgtq.Task]]:
    """``write_outcomes_and_pop`` of test_queue, as worker "w" with a 5-minute lease."""
    return gateway.write_outcomes_and_pop(
        conn, outcomes, queue="test_queue", worker="w", n=n, lease=timedelta(minutes=5)
    )


def count_writes(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """Record the outcomes of each write: those written alone
    (``write_outcomes``) and those written with a claim
    (``write_outcomes_and_pop``), as two lists of batch sizes."""
    alone: list[int] = []
    with_claim: list[int] = []
    write_outcomes, write_outcomes_and_pop = gateway.write_outcomes, gateway.write_outcomes_and_pop

    def counting_write(conn: Any, outcomes: Sequence[Outcome]) -> Any:
        alone.append(len(outcomes))
        return write_outcomes(conn, outcomes)

    def counting_write_and_pop(conn: Any, outcomes: Sequence[Outcome], **claim: Any) -> Any:
        with_claim.append(len(outcomes))
        return write_outcomes_and_pop(conn, outcomes, **claim)

    monkeypatch.setattr(gateway, "write_outcomes", counting_write)
    monkeypatch.setattr(gateway, "write_outcomes_and_pop", counting_write_and_pop)
    return alone, with_claim


def drain(q: pgtq.PgTq, settings: WorkerSettings, total: int) -> None:
    """Push ``total`` no-op jobs and run a worker of ``settings`` in a
    thread until they are all done; then stop it."""

    @q.handler()
    def noop(n: int) -> int:
        return n

    noop.push_many([(n,) for n in range(total)])
    worker = Worker(q, settings)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(lambda: [(s.state, s.jobs) for s in q.stats()] == [("done", total)], timeout=60)
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_outcomes_ride_with_the_next_claim_in_one_round_trip(
    q: pgtq.PgTq, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one slot and one job held (``batch_size=1``: no prefetch), each
    finished job's outcome is written in the same round trip (and
    transaction) that claims the next job; written alone only when no
    claim follows (the queue drained, or stopping)."""
    alone, with_claim = count_writes(monkeypatch)
    total = 30
    drain(q, WorkerSettings(concurrency=1, batch_size=1, poll_interval=0.5), total)
    assert sum(alone) + sum(with_claim) == total, "every outcome written once"
    # Each of the first total - 1 outcomes has a claim to ride with; the last
    # one may go alone, and so may one written while the worker stops.
    assert sum(with_claim) >= total - 1, f"written with a claim: {sum(with_claim)}; alone: {alone}"
    assert len(alone) <= 2, f"outcomes written in round trips of their own: {alone}"


def test_by_default_a_deep_queue_of_quick_jobs_is_claimed_and_written_in_batches(
    q: pgtq.PgTq, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the default settings (one slot, no batch size) the worker claims
    more than one job once its handler proved quick, and writes the
    outcomes of many jobs per round trip: far fewer round trips than jobs."""
    claims: list[tuple[int, int]] = []  # (asked, got)
    writes: list[int] = []
    pop, write_outcomes, write_outcomes_and_pop = (
        gateway.pop,
        gateway.write_outcomes,
        gateway.write_outcomes_and_pop,
    )

    def counting_pop(conn: Any, **claim: Any) -> Any:
        tasks = pop(conn, **claim)
        claims.append((claim["n"], len(tasks)))
        return tasks

    def counting_write(conn: Any, outcomes: Sequence[Outcome]) -> Any:
        writes.append(len(outcomes))
        return write_outcomes(conn, outcomes)

    def counting_write_and_pop(conn: Any, outcomes: Sequence[Outcome], **claim: Any) -> Any:
        written, tasks = write_outcomes_and_pop(conn, outcomes, **claim)
        if outcomes:
            writes.append(len(outcomes))
        claims.append((claim["n"], len(tasks)))
        return written, tasks

    monkeypatch.setattr(gateway, "pop", counting_pop)
    monkeypatch.setattr(gateway, "write_outcomes", counting_write)
    monkeypatch.setattr(gateway, "write_outcomes_and_pop", counting_write_and_pop)
    total = 600
    drain(q, WorkerSettings(poll_interval=0.5), total)
    assert sum(got for _, got in claims) == total and sum(writes) == total, (
        "each job claimed and written once"
    )
    assert claims[0] == (1, 1), "nothing ran yet: the first claim takes one job per slot"
    assert max(asked for asked, _ in claims) > 1, f"claims (asked, got): {claims}"
    assert len(claims) < total / 5 and len(writes) < total / 5, f"claims: {claims}; writes: {writes}"


def test_a_limited_queue_claims_the_slots_its_outcomes_free_as_it_writes_them(
    q: pgtq.PgTq, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a ``max_running => 2`` queue a worker of 4 slots gets 2 jobs per
    claim: a short claim that took some (``PopTurns.refill``). Each write of
    their outcomes claims the slots it frees in the same round trip, rather
    than writing alone and waiting for the announcement of its own write
    (three hops per batch: write, notification, claim)."""
    alone, with_claim = count_writes(monkeypatch)
    db.execute("SELECT pgtq.configure_queue(queue => 'test_queue', max_running => 2)")
    total = 40
    drain(q, WorkerSettings(concurrency=4, batch_size=4, poll_interval=0.5), total)
    assert sum(alone) + sum(with_claim) == total, "every outcome written once"
    # The last outcomes (the queue is empty) may go alone, and so may one
    # written while the worker stops.
    assert sum(with_claim) >= total - 4, f"written with a claim: {with_claim}; alone: {alone}"


@pytest.mark.parametrize("with_a_failure", [False, True], ids=["successes only", "with a failure"])
def test_the_claim_written_with_outcomes_takes_the_slots_they_free(
    q: pgtq.PgTq, dsn: str, db: psycopg.Connection[Any], with_a_failure: bool
) -> None:
    """``write_outcomes_and_pop`` ends the jobs first and claims after, in
    one transaction: on a ``max_running => 2`` queue whose two slots are
    held, the claim takes the slots that the outcomes free. Successes alone
    go in one statement; with a failure among them, in a pipeline."""
    db.execute("SELECT pgtq.configure_queue(queue => 'test_queue', max_running => 2)")
    for n in range(4):
        q.push("noop", args=(n,))
    conn = gateway.connect(dsn)
    try:
        held = claim(conn, n=4)
        assert [task.args for task in held] == [(0,), (1,)], "the limit holds: two of four"
        outcomes = [Outcome(held[0], "done", 0.0, result_json="null")]
        outcomes.append(
            Outcome(held[1], "abort", 0.0, error="boom")
            if with_a_failure
            else Outcome(held[1], "done", 0.0, result_json="null")
        )
        written, claimed = gateway.write_outcomes_and_pop(
            conn, outcomes, queue="test_queue", worker="w", n=4, lease=timedelta(minutes=5)
        )
    finally:
        conn.close()
    assert written is not None
    assert written.completed == ({held[0].id} if with_a_failure else {held[0].id, held[1].id})
    assert written.failed == ({held[1].id: "failed"} if with_a_failure else {})
    assert [task.args for task in claimed] == [(2,), (3,)], "the freed slots were claimed at once"
    states = db.execute("SELECT args->>0, state::text FROM pgtq.jobs ORDER BY id").fetchall()
    second = "failed" if with_a_failure else "done"
    assert states == [("0", "done"), ("1", second), ("2", "running"), ("3", "running")]


def test_write_outcomes_and_pop_without_outcomes_only_claims(q: pgtq.PgTq, dsn: str) -> None:
    """With no outcome to write, the call claims (one statement) and says
    there was nothing written."""
    q.push("noop", args=(1,))
    conn = gateway.connect(dsn)
    try:
        written, claimed = gateway.write_outcomes_and_pop(
            conn, [], queue="test_queue", worker="w", n=5, lease=timedelta(minutes=5)
        )
    finally:
        conn.close()
    assert written is None
    assert [task.args for task in claimed] == [(1,)]


def test_a_claimed_batch_reads_every_field_of_every_job_in_pops_order(
    q: pgtq.PgTq, dsn: str, db: psycopg.Connection[Any]
) -> None:
    """A claim comes back as one row of arrays (statements.POP); each task
    gets its own job's fields, in pop's order (priority, then push order),
    and a claim that finds no job, alone or after outcomes, claims none."""
    q.push("plain", args=(1, [2, {"three": 3}]), kwargs={"k": None}, max_attempts=3)
    q.push("urgent", args=(), priority=5)
    q.push("plain", args=("x",), kwargs={"nested": {"list": [1.5, True]}})
    conn = gateway.connect(dsn)
    try:
        claimed = claim(conn, n=10)
        rows = db.execute(
            "SELECT id, queue, task, priority, attempt, max_attempts, lease, lease_expires_at"
            " FROM pgtq._job ORDER BY priority DESC, id"
        ).fetchall()
        assert [
            (t.id, t.queue, t.name, t.priority, t.attempt, t.max_attempts, t.lease, t.lease_expires_at)
            for t in claimed
        ] == rows
        assert [(t.args, t.kwargs) for t in claimed] == [
            ((), {}),
            ((1, [2, {"three": 3}]), {"k": None}),
            (("x",), {"nested": {"list": [1.5, True]}}),
        ]
        assert claim(conn, n=10) == []
        written, none_left = write_and_claim(
            conn, [Outcome(task, "done", 0.0, result_json="null") for task in claimed], n=10
        )
    finally:
        conn.close()
    assert written is not None and written.completed == {task.id for task in claimed}
    assert none_left == []


def test_outcomes_written_together_keep_every_result_and_renew_every_lease(
    q: pgtq.PgTq, dsn: str, db: psycopg.Connection[Any]
) -> None:
    """The arrays of ``complete_many`` and ``heartbeat_many`` go in binary
    (statements.py): results with quotes, commas, backslashes and
    non-ASCII text, a NULL result, and ids and leases all arrive intact."""
    results = ['{"a": "x,y\\"z"}', '"\\\\ {} é"', None, "[1, 2.5, null]"]
    for n in range(len(results)):
        q.push("noop", args=(n,))
    conn = gateway.connect(dsn)
    try:
        held = claim(conn, n=10)
        beats = gateway.heartbeat_many(conn, held, extend_by=timedelta(hours=1))
        assert [beat.held for beat in beats] == [True] * len(held)
        extended = db.execute(
            "SELECT count(*) FROM pgtq._job WHERE lease_expires_at > now() + interval '50 minutes'"
        ).fetchone()
        assert extended == (len(results),)
        written = gateway.write_outcomes(
            conn, [Outcome(task, "done", 0.0, result_json=r) for task, r in zip(held, results, strict=True)]
        )
    finally:
        conn.close()
    assert written.completed == {task.id for task in held}
    stored = db.execute("SELECT result::text FROM pgtq._job ORDER BY id").fetchall()
    assert [row[0] for row in stored] == ['{"a": "x,y\\"z"}', '"\\\\ {} é"', None, "[1, 2.5, null]"]


def test_outcomes_with_no_result_complete_every_job_alone_and_with_a_claim(
    q: pgtq.PgTq, dsn: str, db: psycopg.Connection[Any]
) -> None:
    """When no run of a batch returned a result, complete_many gets NULL
    for the results (queries._completions), alone and in the statement that
    also claims: every job still ends done, with no result."""
    for n in range(6):
        q.push("noop", args=(n,))
    conn = gateway.connect(dsn)
    try:
        first = claim(conn, n=3)
        alone = gateway.write_outcomes(conn, [Outcome(task, "done", 0.0) for task in first])
        second = claim(conn, n=3)
        together, claimed = write_and_claim(conn, [Outcome(task, "done", 0.0) for task in second], n=3)
    finally:
        conn.close()
    assert alone is not None and alone.completed == {task.id for task in first}
    assert together is not None and together.completed == {task.id for task in second}
    assert claimed == []
    stored = db.execute("SELECT state::text, result FROM pgtq._job ORDER BY id").fetchall()
    assert stored == [("done", None)] * 6
