"""The dispatcher against the real database, in this process: how its
outcomes reach the database."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from conftest import wait_until

import pgtq
from pgtq._db import gateway
from pgtq._records import Outcome
from pgtq.worker import Worker, WorkerSettings


def test_outcomes_ride_with_the_next_claim_in_one_round_trip(
    q: pgtq.PgTq, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one slot, each finished job's outcome is written in the same
    pipelined round trip that claims the next job; written alone only when
    no claim follows (the queue drained, or stopping)."""
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

    @q.handler()
    def noop(n: int) -> int:
        return n

    total = 30
    noop.push_many([(n,) for n in range(total)])
    worker = Worker(q, WorkerSettings(concurrency=1, poll_interval=0.5))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(lambda: [(s.state, s.jobs) for s in q.stats()] == [("done", total)], timeout=60)
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert sum(alone) + sum(with_claim) == total, "every outcome written once"
    # Each of the first total - 1 outcomes has a claim to ride with; the last
    # one may go alone, and so may one written while the worker stops.
    assert sum(with_claim) >= total - 1, f"written with a claim: {sum(with_claim)}; alone: {alone}"
    assert len(alone) <= 2, f"outcomes written in round trips of their own: {alone}"
