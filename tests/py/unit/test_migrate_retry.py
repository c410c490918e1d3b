"""``pgtq migrate`` under load: an upgrade whose transaction met busy
workers (deadlock detected, lock wait timed out) changed nothing and is
tried again; any other error is not. No database: the upgrade is a stand-in."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from pgtq import migrate


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(migrate.time, "sleep", waits.append)
    return waits


def failing(errors: list[Exception]) -> Callable[[], str]:
    """An upgrade that raises each of ``errors`` in turn, then succeeds."""

    def upgrade_once() -> str:
        if errors:
            raise errors.pop(0)
        return "upgraded"

    return upgrade_once


def test_busy_tables_are_tried_again_after_growing_waits(no_waiting: list[float]) -> None:
    busy = [psycopg.errors.DeadlockDetected("deadlock detected"), psycopg.errors.LockNotAvailable("timeout")]
    assert migrate._retrying_when_busy(failing(busy)) == "upgraded"
    assert no_waiting == [0.5, 1.0]


def test_it_gives_up_after_the_last_wait(no_waiting: list[float]) -> None:
    busy: list[Exception] = [psycopg.errors.DeadlockDetected("deadlock detected") for _ in range(6)]
    with pytest.raises(psycopg.errors.DeadlockDetected):
        migrate._retrying_when_busy(failing(busy))
    assert no_waiting == list(migrate.RETRY_WAITS)


def test_other_errors_are_not_tried_again(no_waiting: list[float]) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        migrate._retrying_when_busy(failing([psycopg.errors.InsufficientPrivilege("no")]))
    assert no_waiting == []
