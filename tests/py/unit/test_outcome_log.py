"""What the worker logs of written outcomes: a success on a DEBUG line of
its own and in the INFO summary; every other ending on a line of its own.
No database: the lines are built from literal outcomes and times."""

from __future__ import annotations

import logging

import pytest

from pgtq._records import Outcome
from pgtq.task import Task
from pgtq.worker._server import SUMMARY_INTERVAL, _log_outcome, _Summary


def task(job_id: int) -> Task:
    return Task(id=job_id, queue="q", name="send", args=())


def test_a_success_is_logged_at_debug_and_a_failure_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="pgtq.worker"):
        assert _log_outcome(Outcome(task(1), "done", 0.01), True) is True
        assert (
            _log_outcome(Outcome(task(2), "error", 0.01, error="boom", summary="ValueError"), "scheduled")
            is False
        )
    [done, failed] = caplog.records
    assert (done.levelno, failed.levelno) == (logging.DEBUG, logging.WARNING)
    assert done.getMessage().endswith("done") and failed.getMessage().endswith("ValueError -> scheduled")


def test_a_success_whose_lease_was_lost_keeps_its_info_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pgtq.worker"):
        assert _log_outcome(Outcome(task(3), "done", 0.01), False) is False
    [line] = caplog.records
    assert line.levelno == logging.INFO and "the lease was lost" in line.getMessage()


def test_the_summary_comes_once_per_interval_and_at_the_end(caplog: pytest.LogCaptureFixture) -> None:
    summary = _Summary(100.0)
    with caplog.at_level(logging.INFO, logger="pgtq.worker"):
        for _ in range(30):
            summary.count(True)
        summary.count(False)
        summary.log("", 100.0 + SUMMARY_INTERVAL / 2, final=False)
        assert caplog.records == [], "not yet"
        summary.log("", 100.0 + SUMMARY_INTERVAL, final=False)
        summary.log("", 100.0 + SUMMARY_INTERVAL + 1, final=False)
        summary.count(True)
        summary.log("", 100.0 + SUMMARY_INTERVAL + 2, final=True)
        summary.log("", 100.0 + SUMMARY_INTERVAL + 3, final=True)
    assert [record.getMessage() for record in caplog.records] == [
        f"30 job(s) done, 1 ended otherwise, in the last {SUMMARY_INTERVAL:.0f} s (3/s)",
        "1 job(s) done, 0 ended otherwise, in the last 2 s (0/s)",
    ], "nothing to say: no line"
