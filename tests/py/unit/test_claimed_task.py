"""The worker's quick way to build a claimed ``Task`` (``claimed_task``)
makes the very object ``Task(...)`` makes: the same fields in the same
order, equal, frozen, with a cancellation of its own. No database."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from pgtq.task import Cancellation, Task, claimed_task


def _fields() -> tuple[Any, ...]:
    return (
        7,
        "emails",
        "send",
        ("a@example.com",),
        {"urgent": True},
        5,
        2,
        3,
        uuid4(),
        datetime(2026, 12, 6, 8, 0, tzinfo=UTC),
    )


def test_claimed_task_equals_the_task_the_constructor_makes() -> None:
    fields = _fields()
    quick, slow = claimed_task(*fields), Task(*fields)

    assert quick == slow
    assert repr(quick) == repr(slow)
    assert list(vars(quick)) == list(vars(slow)) == [f.name for f in dataclasses.fields(Task)], (
        "every field of Task, in its order: a field added to Task must be added to claimed_task"
    )
    assert isinstance(quick.cancellation, Cancellation) and not quick.cancel_requested
    assert quick.is_last_attempt is False and claimed_task(*fields[:6], 3, 3, *fields[8:]).is_last_attempt


def test_claimed_task_is_frozen_and_has_its_own_cancellation() -> None:
    first, second = claimed_task(*_fields()), claimed_task(*_fields())

    with pytest.raises(dataclasses.FrozenInstanceError):
        first.attempt = 9  # type: ignore[misc]
    assert first.cancellation is not second.cancellation
    first.cancellation.request()
    assert first.cancel_requested and not second.cancel_requested


def test_claimed_task_pickles_as_a_task() -> None:
    """The process pool sends tasks to its children by pickle."""
    task = claimed_task(*_fields())
    copy = pickle.loads(pickle.dumps(task))

    assert type(copy) is Task and copy == task
