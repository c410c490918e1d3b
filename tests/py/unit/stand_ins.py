"""Stand-ins for the unit tests: a clock moved by hand and a pool that runs
nothing (neither imitates the database), and a wait with a deadline for
the tests that use real threads."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from pgtq.handler import Handler
from pgtq.task import Task
from pgtq.worker._routing import JobKey, job_key

WAIT = 30.0  # a deadline for things that take milliseconds: only a hung test reaches it


def wait_for(condition: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT} s: {what}")
        time.sleep(0.01)


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
        self.cancelled: list[Task] = []
        self.starts: dict[JobKey, float] = {}

    def start(self) -> None: ...

    def submit(self, task: Task, handler: Handler[Any, Any]) -> None:
        self.submitted.append(task)

    def abandon(self, task: Task) -> None:
        self.abandoned.append(task)

    def cancel(self, task: Task) -> bool:
        """Request the task's cancellation; True (withdrawn) when not started."""
        self.cancelled.append(task)
        task.cancellation.request()
        return job_key(task) not in self.starts

    def started_at(self, key: JobKey) -> float | None:
        return self.starts.get(key)

    def unstarted(self) -> int:
        return sum(1 for task in self.submitted if job_key(task) not in self.starts)

    def take_unstarted(self) -> list[Task]:
        """The submitted jobs the test did not start, taken out."""
        taken = [task for task in self.submitted if job_key(task) not in self.starts]
        self.submitted = [task for task in self.submitted if job_key(task) in self.starts]
        return taken

    def close(self) -> None: ...
