"""The process pool when a child dies mid-job: the job's error names the
child's exit code, also when the child broke its pipe well before it
exited (the code is known only once the child is reaped, so the pool waits
for that). Real child processes, no database."""

from __future__ import annotations

import time

from exiting_app import q
from stand_ins import wait_for

from pgtq._records import Outcome
from pgtq.task import Task
from pgtq.worker._pools import ProcessPool


def crash_outcomes(tasks: list[Task]) -> list[tuple[str, str | None]]:
    """Run ``tasks`` one after the other in a one-child pool; the kind and
    error of each outcome."""
    reported: list[Outcome] = []
    pool = ProcessPool(1, reported.append, "exiting_app:q", time.monotonic)
    pool.start()
    try:
        for task in tasks:
            pool.submit(task, q.handler_for(task.name))
        wait_for(lambda: len(reported) == len(tasks), f"{len(tasks)} outcomes")
    finally:
        pool.close()
    return [(outcome.kind, outcome.error) for outcome in reported]


def test_each_crash_is_reported_with_the_exit_code_of_its_child() -> None:
    tasks = [Task(id=job, queue="q", name="exit", args=(3,)) for job in range(4)]
    assert (
        crash_outcomes(tasks)
        == [("error", "WorkerProcessDied: the child process running task 'exit' exited with code 3")] * 4
    )


def test_a_child_reaped_well_after_its_pipe_broke_still_reports_its_code() -> None:
    tasks = [Task(id=job, queue="q", name="linger", args=(5, 0.3)) for job in range(2)]
    assert (
        crash_outcomes(tasks)
        == [("error", "WorkerProcessDied: the child process running task 'linger' exited with code 5")] * 2
    )
