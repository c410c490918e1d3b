"""The waiter's protocol (pgtq/_waiting.py) step by step, with no database:
each test plays the database's replies to the steps ``waiting()`` yields,
with a hand-driven clock, and checks the steps it takes and what it
returns or raises."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from pgtq._waiting import (
    Await,
    Listen,
    Read,
    Step,
    Unwatch,
    Watch,
    checked_ids,
    job_ids_of,
    waiting,
)
from pgtq.errors import JobCancelledError, JobFailedError, JobNotFoundError, WaitTimeoutError
from pgtq.task import JobOutcome


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def running(job_id: int) -> JobOutcome:
    return JobOutcome(job_id, "running")


def done(job_id: int, result: Any = None) -> JobOutcome:
    return JobOutcome(job_id, "done", result)


class Play:
    """Runs the protocol: ``step()`` is the step it takes now, ``reply(x)``
    answers it; ``result``/``error`` once it has ended."""

    def __init__(self, ids: list[int], timeout: float | None, clock: Clock, poll: float = 30.0) -> None:
        self.steps: Generator[Step, Any, list[JobOutcome]] = waiting(ids, timeout, clock, poll)
        self.current: Step | None = next(self.steps)
        self.result: list[JobOutcome] | None = None
        self.error: BaseException | None = None

    def step(self) -> Step | None:
        return self.current

    def reply(self, value: Any) -> None:
        try:
            self.current = self.steps.send(value)
        except StopIteration as stop:
            self.current, self.result = None, stop.value
        except Exception as error:
            self.current, self.error = None, error


def test_finished_jobs_are_answered_by_watch_alone() -> None:
    play = Play([3, 1, 3], None, Clock())
    assert play.step() == Listen()
    play.reply(None)
    assert play.step() == Watch((3, 1)), "each job once, in the order given"
    play.reply([done(3, "c"), done(1, "a")])
    assert play.step() is None
    assert play.result == [done(3, "c"), done(1, "a"), done(3, "c")], "in the order asked, duplicates too"


def test_unfinished_jobs_are_read_when_heard() -> None:
    clock = Clock()
    play = Play([1, 2], 60.0, clock)
    play.reply(None)
    play.reply([running(1), running(2)])
    assert play.step() == Await(30.0), "until the safety poll (before the timeout)"
    clock.now += 0.5
    play.reply(["2", "99", "not an id"])
    assert play.step() == Read((2,)), "only the heard job that is awaited"
    play.reply([done(2, "b")])
    assert play.step() == Await(29.5)
    clock.now += 1
    play.reply(["1"])
    assert play.step() == Read((1,))
    play.reply([done(1, "a")])
    assert play.result == [done(1, "a"), done(2, "b")]


def test_the_timeout_takes_the_registrations_back_and_raises() -> None:
    clock = Clock()
    play = Play([1, 2, 3], 5.0, clock)
    play.reply(None)
    play.reply([running(1), done(2, "b"), running(3)])
    assert play.step() == Await(5.0), "the deadline comes before the poll"
    clock.now += 5.0
    play.reply([])
    assert play.step() == Unwatch((1, 3))
    play.reply(None)
    assert isinstance(play.error, WaitTimeoutError) and isinstance(play.error, TimeoutError)
    assert play.error.job_ids == [1, 3] and play.error.outcomes == {2: done(2, "b")}
    assert str(play.error) == "2 of 3 jobs did not finish within 5 s (1, 3)"


def test_a_timeout_of_zero_looks_once() -> None:
    play = Play([7], 0.0, Clock())
    play.reply(None)
    play.reply([running(7)])
    assert play.step() == Unwatch((7,))
    play.reply(None)
    assert str(play.error) == "job 7 did not finish within 0 s"


def test_the_safety_poll_reads_every_awaited_job() -> None:
    clock = Clock()
    play = Play([1, 2], None, clock, poll=30.0)
    play.reply(None)
    play.reply([running(1), running(2)])
    assert play.step() == Await(30.0)
    clock.now += 30.0
    play.reply([])
    assert play.step() == Read((1, 2)), "nothing heard in 30 s: read them all"
    play.reply([done(1, "a"), running(2)])
    assert play.step() == Await(30.0), "the still running job stays registered: not watched again"
    clock.now += 1
    play.reply(["2"])
    assert play.step() == Read((2,))
    play.reply([done(2, "b")])
    assert play.result == [done(1, "a"), done(2, "b")]


def test_a_job_heard_but_pending_again_is_watched_again() -> None:
    """A job retried after it ended lost its registrations (retry clears
    them): heard, read as pending, it is registered again."""
    clock = Clock()
    play = Play([5], None, clock)
    play.reply(None)
    play.reply([running(5)])
    play.reply(["5"])
    assert play.step() == Read((5,))
    play.reply([JobOutcome(5, "ready")])
    assert play.step() == Watch((5,))
    play.reply([running(5)])
    assert isinstance(play.step(), Await)
    play.reply(["5"])
    play.reply([JobOutcome(5, "failed", error="ValueError: x\nTraceback (most recent call last):\n  ...")])
    assert play.result is not None
    with pytest.raises(JobFailedError, match=r"job 5 failed: ValueError: x$") as failed:
        play.result[0].value()
    assert failed.value.traceback == "Traceback (most recent call last):\n  ..."


def test_jobs_the_waiter_may_not_see_raise_after_taking_the_others_back() -> None:
    play = Play([1, 2, 3], None, Clock())
    play.reply(None)
    play.reply([running(1), None, done(3)])
    assert play.step() == Unwatch((1,))
    play.reply(None)
    assert isinstance(play.error, JobNotFoundError) and isinstance(play.error, LookupError)
    assert play.error.job_ids == [2]


def test_a_job_deleted_after_it_was_heard_is_not_found() -> None:
    clock = Clock()
    play = Play([1, 2], None, clock)
    play.reply(None)
    play.reply([running(1), running(2)])
    play.reply(["1"])
    play.reply([])  # outcomes() no longer sees job 1
    assert play.step() == Unwatch((2,))
    play.reply(None)
    assert isinstance(play.error, JobNotFoundError) and play.error.job_ids == [1]


def test_reads_are_split_at_the_outcomes_limit() -> None:
    clock = Clock()
    ids = list(range(1, 25_002))
    play = Play(ids, None, clock)
    play.reply(None)
    play.reply([running(job_id) for job_id in ids])
    clock.now += 30
    play.reply([])
    sizes = []
    while isinstance(step := play.step(), Read):
        sizes.append(len(step.job_ids))
        play.reply([done(job_id) for job_id in step.job_ids])
    assert sizes == [10_000, 10_000, 5_001]
    assert play.result is not None and len(play.result) == len(ids)


def test_outcome_values() -> None:
    assert done(1, {"n": 1}).value() == {"n": 1}
    assert done(1).ok and done(1).finished and not running(1).finished
    cancelled = JobOutcome(4, "cancelled", result=7, error="superseded by job 9")
    with pytest.raises(JobCancelledError, match="job 4 was cancelled: superseded by job 9") as error:
        cancelled.value()
    assert (error.value.job_id, error.value.result) == (4, 7)
    with pytest.raises(JobFailedError, match="job 6 failed: no error recorded") as failed:
        JobOutcome(6, "failed").value()
    assert failed.value.traceback is None
    with pytest.raises(ValueError, match="job 8 has not finished: it is running"):
        running(8).value()


def test_ids_and_payloads() -> None:
    assert checked_ids(iter([3, 1])) == [3, 1]
    for bad in ("3", 2.0, True, None):
        with pytest.raises(TypeError, match="job ids are integers"):
            checked_ids([1, bad])  # type: ignore[list-item]
    assert job_ids_of(["12", "-- sentinel --", "", "7x", "3"]) == {12, 3}
