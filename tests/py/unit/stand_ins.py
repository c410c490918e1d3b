"""Stand-ins for the unit tests: a clock moved by hand and a pool that runs
nothing. Neither imitates the database."""

from __future__ import annotations

from typing import Any

from pgtq.handler import Handler
from pgtq.task import Task


class HandClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingPool:
    """A pool that runs nothing: the test says when each job started."""

    capacity = 1

    def __init__(self) -> None:
        self.submitted: list[Task] = []
        self.abandoned: list[Task] = []
        self.starts: dict[int, float] = {}

    def start(self) -> None: ...

    def submit(self, task: Task, handler: Handler[Any, Any]) -> None:
        self.submitted.append(task)

    def abandon(self, task: Task) -> None:
        self.abandoned.append(task)

    def started_at(self, task_id: int) -> float | None:
        return self.starts.get(task_id)

    def unstarted(self) -> int:
        return len(self.submitted) - len(self.starts)

    def take_unstarted(self) -> list[Task]:
        return []

    def close(self) -> None: ...
