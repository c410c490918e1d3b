"""The chaos suite's pass rule (tests/chaos/verdict.py) on made-up books,
without a database: a green run passes, each way of breaking the rule fails."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "chaos"))
from verdict import Books, Job, Kill, Plan, Restart, Run, judge

# 100 jobs; worker 101 ran them all, except job t7, whose first run was by
# worker 202 (claimed at t=10, ran at 10.1, killed at 10.3) and which worker
# 101 ran again after claiming it at t=14. One restart at t=20-21 found
# nothing in flight. That is a green run; each sabotage below breaks one part
# of the rule.

PLAN = Plan(jobs=100, kills=1, restarts=1)


def green() -> tuple[Books, list[Job], list[Run]]:
    books = Books(
        pushed=100,
        finished=True,
        kills=[Kill(pid=202, at=10.3, held=frozenset({7, 8, 9}), exit_code=-9)],
        restarts=[Restart("postgres", 20.0, 21.0, old_pid=1, new_pid=2, held=frozenset({(101, 50)}))],
    )
    jobs = [Job(f"t{n}", n, "done", 2 if n == 7 else 1) for n in range(100)]
    runs = [Run(f"t{n}", n, 1, 101, 30.0 + n, 30.1 + n) for n in range(100) if n != 7]
    runs += [Run("t7", 7, 1, 202, 10.0, 10.1), Run("t7", 7, 2, 101, 14.0, 14.1)]
    return books, jobs, runs


def lose_one_completion(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    """A live worker's completion of t3 went missing: t3 ran again (1% of the jobs)."""
    jobs[3] = dataclasses.replace(jobs[3], attempt=2)
    runs.append(Run("t3", 3, 2, 101, 40.0, 40.1))


def kill_of_another_worker(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    """The kill hit worker 303, not worker 202 that ran t7 first."""
    books.kills[0] = dataclasses.replace(books.kills[0], pid=303)


def kill_of_a_worker_not_holding_the_job(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    """Worker 202 was killed soon after running t7, but no longer held it."""
    books.kills[0] = dataclasses.replace(books.kills[0], held=frozenset({8, 9}))


def kill_long_after_the_run(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    """Worker 202 lived on for seconds after running t7 and never completed it."""
    books.kills[0] = dataclasses.replace(books.kills[0], at=13.0)


def restart_long_after_the_run(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    """t3 ran again, and the only restart came seconds after its first run."""
    jobs[3] = dataclasses.replace(jobs[3], attempt=2)
    runs[3] = dataclasses.replace(runs[3], claimed_at=17.0, at=17.1)
    runs.append(Run("t3", 3, 2, 101, 23.0, 23.1))
    books.restarts[0] = dataclasses.replace(books.restarts[0], held=frozenset({(101, 3)}))


def restart_while_the_job_was_not_held(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    """t3 ran just before the restart but its worker no longer held it then."""
    jobs[3] = dataclasses.replace(jobs[3], attempt=2)
    runs[3] = dataclasses.replace(runs[3], claimed_at=19.5, at=19.6)
    runs.append(Run("t3", 3, 2, 101, 23.0, 23.1))


def job_left_running(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    jobs[5] = dataclasses.replace(jobs[5], state="running")


def job_never_ran(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    runs[:] = [run for run in runs if run.token != "t9"]


def job_pushed_twice(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    jobs.append(Job("t1", 1000, "done", 1))


def claim_ran_twice(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    runs.append(Run("t4", 4, 1, 101, 34.0, 34.5))


def fewer_kills_than_planned(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    books.kills.clear()


def kill_found_worker_gone(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    books.kills[0] = dataclasses.replace(books.kills[0], exit_code=1)


def restart_kept_the_old_server(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    books.restarts[0] = dataclasses.replace(books.restarts[0], new_pid=1)


def worker_died_unasked(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    books.unexpected_exits.append("worker pid 303 (exit code 1)")


def worker_stopped_uncleanly(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    books.unclean_stops.append("pid 101 (exit code -9)")


def deadline_passed(books: Books, jobs: list[Job], runs: list[Run]) -> None:
    books.finished = False


Sabotage = Callable[[Books, list[Job], list[Run]], None]


def test_a_green_run_passes_the_rule() -> None:
    verdict = judge(PLAN, *green())
    assert verdict.ok, verdict.failures
    assert verdict.figures["duplicates"] == verdict.figures["duplicates_killed"] == 1


def test_a_duplicate_that_straddles_a_restart_passes() -> None:
    books, jobs, runs = green()
    jobs[3] = dataclasses.replace(jobs[3], attempt=2)
    runs[3] = dataclasses.replace(runs[3], claimed_at=19.5, at=19.6)
    runs.append(Run("t3", 3, 2, 101, 23.0, 23.1))
    books.restarts[0] = dataclasses.replace(books.restarts[0], held=frozenset({(101, 3), (101, 50)}))
    verdict = judge(PLAN, books, jobs, runs)
    assert verdict.ok, verdict.failures
    assert verdict.figures["duplicates_restart"] == 1


@pytest.mark.parametrize(
    "sabotage",
    [
        lose_one_completion,
        kill_of_another_worker,
        kill_long_after_the_run,
        kill_of_a_worker_not_holding_the_job,
        restart_long_after_the_run,
        restart_while_the_job_was_not_held,
        job_left_running,
        job_never_ran,
        job_pushed_twice,
        claim_ran_twice,
        fewer_kills_than_planned,
        kill_found_worker_gone,
        restart_kept_the_old_server,
        worker_died_unasked,
        worker_stopped_uncleanly,
        deadline_passed,
    ],
)
def test_each_way_of_breaking_the_rule_fails_it(sabotage: Sabotage) -> None:
    books, jobs, runs = green()
    sabotage(books, jobs, runs)
    verdict = judge(PLAN, books, jobs, runs)
    assert not verdict.ok, f"{sabotage.__name__} passed the rule"


def test_more_running_jobs_than_the_limit_fail_a_limited_run() -> None:
    limited = dataclasses.replace(PLAN, max_running=8)
    books, jobs, runs = green()
    books.most_running = 8
    assert judge(limited, books, jobs, runs).ok, "the limit reached is fine"
    books.most_running = 9
    assert judge(limited, books, jobs, runs).failures == ["9 jobs ran at once, over max_running 8"]


def test_a_lock_key_held_by_two_running_jobs_fails_a_keyed_run() -> None:
    keyed = dataclasses.replace(PLAN, lock_keys=8)
    books, jobs, runs = green()
    assert judge(keyed, books, jobs, runs).ok, "no sample saw a key held twice"
    books.keys_running_twice.append("key k3: jobs [7, 9]")
    assert judge(keyed, books, jobs, runs).failures == [
        "lock keys held by two running jobs at once: key k3: jobs [7, 9]"
    ]
