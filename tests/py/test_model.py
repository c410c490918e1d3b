"""Model-based test: random sequences of queue operations against the real
database, each step checked against a small Python model of the job state
machine (docs/concepts.md "Job states").

Hypothesis drives push, pop, complete, fail, heartbeat, release, tick,
cancel (of a running job: a cancel request, honoured by whatever ends its
attempt) and retry, with forged, stale and unknown ids and leases among them,
and moves a clock that every call receives as ``as_of`` (the test never
sleeps). The calls run as ``pgtq_admin`` through the SECURITY DEFINER API;
a superuser connection reads the private table after every step and
compares every job, field by field, with the model: nothing lost, nothing
duplicated, states, attempts, run_at, leases, priority order of pop.

The random backoff (within [0.8 d, d]) is checked as a range, and the model
then adopts the time the database chose.

``make test`` runs a bounded number of examples; ``make test-long`` sets
``PGTQ_HYPOTHESIS_PROFILE=long`` for many more, longer ones.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from psycopg.rows import dict_row

settings.register_profile(
    "default",
    max_examples=50,
    stateful_step_count=50,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=400,
    stateful_step_count=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = os.environ.get("PGTQ_HYPOTHESIS_PROFILE", "default")
# The default profile's run, pinned. Derandomized alone, Hypothesis would
# seed it from the machine class's source, so any edit to the class (a
# comment, an assertion) picked other steps, and the coverage check below
# could then fail for a change that broke nothing. With a pinned seed only
# a change to the rules or their strategies changes the run. Seed 1
# reaches every outcome the check wants (seeds 2, 4 and 6 do not:
# 2026-12-03). The long profile stays random.
DEFAULT_SEED = 1
# What the steps did, counted over a whole run (see the coverage check).
OUTCOMES: Counter[str] = Counter()

START = datetime(2030, 1, 1, tzinfo=UTC)
QUEUES = ("alpha", "beta")
FINISHED = ("done", "failed", "cancelled")
# The database rounds intervals to microseconds.
SLACK = timedelta(microseconds=2)


def backoff_bounds(attempt: int) -> tuple[timedelta, timedelta]:
    """pgtq.backoff's range with its defaults: [0.8 d, d], d = min(1 h, 2 s * 2^(a-1))."""
    d = min(timedelta(hours=1), timedelta(seconds=2) * 2 ** (max(attempt, 1) - 1))
    return d * 0.8 - SLACK, d + SLACK


@dataclass
class Job:
    """The model's view of one job."""

    id: int
    queue: str
    priority: int
    max_attempts: int
    state: str
    run_at: datetime
    attempt: int = 0
    lease: uuid.UUID | None = None
    lease_expires_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "queue": self.queue,
            "priority": self.priority,
            "max_attempts": self.max_attempts,
            "state": self.state,
            "run_at": self.run_at,
            "attempt": self.attempt,
            "lease": self.lease,
            "lease_expires_at": self.lease_expires_at,
            "finished_at": self.finished_at,
            "cancel_requested": self.cancel_requested,
            "rules_broken": [],
        }


@dataclass(frozen=True)
class Claim:
    """What a worker holds after pop: the id and the lease it was given."""

    id: int
    lease: uuid.UUID


@dataclass
class Model:
    now: datetime = START
    jobs: dict[int, Job] = field(default_factory=dict)

    def holds(self, claim: Claim) -> Job | None:
        """The job if ``claim`` is its current lease, else None."""
        job = self.jobs.get(claim.id)
        if job is not None and job.state == "running" and job.lease == claim.lease:
            return job
        return None

    def after_failure(self, job: Job, retry_at: datetime) -> str:
        """The retry rule shared by fail and tick."""
        job.lease = job.lease_expires_at = None
        if job.cancel_requested:
            job.state, job.finished_at = "cancelled", self.now
            OUTCOMES["cancel honoured"] += 1
        elif job.attempt >= job.max_attempts:
            job.state, job.finished_at = "failed", self.now
        else:
            job.state = "ready" if retry_at <= self.now else "scheduled"
            job.run_at = retry_at
        return job.state


# rules_broken: the bookkeeping rules the row breaks, as the database sees
# them (pgtq.job_rule_breaks; kept by the functions since 0.8.0, no longer by
# CHECK constraints); the model expects none.
STATE_QUERY = (
    "SELECT j.id, j.queue, j.priority, j.max_attempts, j.state::text AS state, j.run_at, j.attempt, j.lease,"
    " j.lease_expires_at, j.finished_at, j.cancel_requested_at IS NOT NULL AS cancel_requested,"
    " ARRAY(SELECT b.rule FROM pgtq.job_rule_breaks AS b WHERE b.id = j.id) AS rules_broken"
    " FROM pgtq._job AS j ORDER BY j.id"
)


def make_machine(actor: psycopg.Connection[Any], checker: psycopg.Connection[Any]) -> type:
    """The state machine class, bound to two connections: ``actor`` calls the
    API as pgtq_admin, ``checker`` (a superuser) reads the private table."""

    class QueueMachine(RuleBasedStateMachine):
        job_ids = Bundle("job_ids")

        def __init__(self) -> None:
            super().__init__()
            checker.execute("TRUNCATE pgtq._job, pgtq._worker")
            # backoff's jitter comes from random(): seed it, so that the steps
            # Hypothesis picks (which depend on the times backoff chose) are
            # the same on every run of a derandomized profile.
            actor.execute("SELECT setseed(0.25)")
            self.model = Model()
            self.claims: list[Claim] = []  # every lease ever handed out, live or spent

        def draw_claim(self, data: st.DataObject) -> Claim:
            """A claim to act on: three times in four a live one (when there is
            one), otherwise any, most of them stale or spent."""
            live = [claim for claim in self.claims if self.model.holds(claim)]
            if live and data.draw(st.integers(0, 3), label="prefer live") < 3:
                return live[data.draw(st.integers(0, len(live) - 1), label="live claim")]
            return self.claims[data.draw(st.integers(0, len(self.claims) - 1), label="any claim")]

        def call(self, query: str, *params: Any) -> Any:
            row = actor.execute(query, params).fetchone()
            assert row is not None
            return row[0]

        def db_row(self, job_id: int) -> dict[str, Any]:
            row = checker.cursor(row_factory=dict_row).execute(
                "SELECT run_at, last_error FROM pgtq._job WHERE id = %s", [job_id]
            )
            found = row.fetchone()
            assert found is not None, f"job {job_id} vanished"
            return found

        # -- producers -------------------------------------------------

        @initialize(target=job_ids, queue=st.sampled_from(QUEUES), count=st.integers(1, 4))
        def some_ready_jobs(self, queue: str, count: int) -> Any:
            return multiple(*(self.push(queue, 0, None, 2) for _ in range(count)))

        @rule(
            target=job_ids,
            queue=st.sampled_from(QUEUES),
            priority=st.integers(-2, 2),
            delay=st.none() | st.integers(-30, 120),
            max_attempts=st.integers(1, 3),
            count=st.integers(1, 3),
        )
        def push_jobs(
            self, queue: str, priority: int, delay: int | None, max_attempts: int, count: int
        ) -> Any:
            return multiple(*(self.push(queue, priority, delay, max_attempts) for _ in range(count)))

        def push(self, queue: str, priority: int, delay: int | None, max_attempts: int) -> int:
            run_at = None if delay is None else self.model.now + timedelta(seconds=delay)
            job_id = self.call(
                "SELECT pgtq.push(%s, 'task', '[]', '{}', %s, %s, %s, as_of => %s)",
                queue,
                run_at,
                priority,
                max_attempts,
                self.model.now,
            )
            assert job_id not in self.model.jobs, "push returned an id already in use"
            assert all(job_id > known for known in self.model.jobs), "ids grow"
            due = run_at or self.model.now
            self.model.jobs[job_id] = Job(
                id=job_id,
                queue=queue,
                priority=priority,
                max_attempts=max_attempts,
                state="ready" if due <= self.model.now else "scheduled",
                run_at=due,
            )
            return job_id

        # -- workers ---------------------------------------------------

        @precondition(lambda self: any(job.state == "ready" for job in self.model.jobs.values()))
        @rule(
            queue=st.sampled_from(QUEUES),
            n=st.integers(1, 3),
            lease=st.sampled_from([10, 60]),
        )
        def pop(self, queue: str, n: int, lease: int) -> None:
            rows = actor.execute(
                "SELECT id, attempt, lease, lease_expires_at FROM pgtq.pop(%s, 'model', %s, %s, %s)",
                [queue, n, timedelta(seconds=lease), self.model.now],
            ).fetchall()
            ready = sorted(
                (job for job in self.model.jobs.values() if job.queue == queue and job.state == "ready"),
                key=lambda job: (-job.priority, job.id),
            )
            expected = ready[:n]
            assert [row[0] for row in rows] == [job.id for job in expected], "pop's choice and order"
            OUTCOMES[f"pop claimed {min(len(rows), 2)}"] += 1
            for (job_id, attempt, lease_token, expires), job in zip(rows, expected, strict=True):
                job.state, job.attempt = "running", job.attempt + 1
                job.lease, job.lease_expires_at = lease_token, self.model.now + timedelta(seconds=lease)
                assert (attempt, expires) == (job.attempt, job.lease_expires_at)
                self.claims.append(Claim(job_id, lease_token))

        @precondition(lambda self: bool(self.claims))
        @rule(data=st.data())
        def complete(self, data: st.DataObject) -> None:
            claim = self.draw_claim(data)
            job = self.model.holds(claim)
            done = self.call(
                "SELECT pgtq.complete(%s, %s, '{\"ok\": true}', %s)", claim.id, claim.lease, self.model.now
            )
            assert done is (job is not None), "complete succeeds exactly for the current lease"
            OUTCOMES[f"complete {'succeeded' if done else 'refused'}"] += 1
            if job is not None:
                job.state = "cancelled" if job.cancel_requested else "done"
                job.finished_at = self.model.now
                job.lease = job.lease_expires_at = None
                OUTCOMES["cancel honoured"] += job.cancel_requested

        @precondition(lambda self: bool(self.claims))
        @rule(data=st.data(), retry_in=st.sampled_from([None, 0, 30]))
        def fail(self, data: st.DataObject, retry_in: int | None) -> None:
            claim = self.draw_claim(data)
            job = self.model.holds(claim)
            interval = None if retry_in is None else timedelta(seconds=retry_in)
            state = self.call(
                "SELECT pgtq.fail(%s, %s, 'boom', %s, %s)", claim.id, claim.lease, interval, self.model.now
            )
            OUTCOMES[f"fail -> {state}"] += 1
            if job is None:
                assert state is None, "fail with a stale or spent lease changes nothing"
                return
            if interval is None:
                low, high = backoff_bounds(job.attempt)
                retry_at = self.db_row(job.id)["run_at"]
                if job.attempt < job.max_attempts and not job.cancel_requested:
                    assert low <= retry_at - self.model.now <= high, "backoff within [0.8 d, d]"
            else:
                retry_at = self.model.now + interval
            assert state == self.model.after_failure(job, retry_at)

        @precondition(lambda self: bool(self.claims))
        @rule(data=st.data(), extend_by=st.sampled_from([5, 30, 120]))
        def heartbeat(self, data: st.DataObject, extend_by: int) -> None:
            claim = self.draw_claim(data)
            job = self.model.holds(claim)
            extended = self.call(
                "SELECT pgtq.heartbeat(%s, %s, %s, %s)",
                claim.id,
                claim.lease,
                timedelta(seconds=extend_by),
                self.model.now,
            )
            assert extended is (job is not None)
            OUTCOMES[f"heartbeat {'succeeded' if extended else 'refused'}"] += 1
            if job is not None and job.lease_expires_at is not None:
                job.lease_expires_at = max(
                    job.lease_expires_at, self.model.now + timedelta(seconds=extend_by)
                )

        @precondition(lambda self: bool(self.claims))
        @rule(data=st.data())
        def release(self, data: st.DataObject) -> None:
            claim = self.draw_claim(data)
            job = self.model.holds(claim)
            released = self.call("SELECT pgtq.release(%s, %s, %s)", claim.id, claim.lease, self.model.now)
            assert released is (job is not None)
            OUTCOMES[f"release {'succeeded' if released else 'refused'}"] += 1
            if job is not None and job.cancel_requested:
                job.state, job.finished_at = "cancelled", self.model.now
                job.lease = job.lease_expires_at = None
                OUTCOMES["cancel honoured"] += 1
            elif job is not None:
                job.state, job.attempt = "ready", job.attempt - 1
                job.lease = job.lease_expires_at = None

        @rule(job_id=job_ids)
        def forged_lease(self, job_id: int) -> None:
            forged, now = uuid.uuid4(), self.model.now
            assert self.call("SELECT pgtq.complete(%s, %s, NULL, %s)", job_id, forged, now) is False
            assert self.call("SELECT pgtq.fail(%s, %s, 'x', NULL, %s)", job_id, forged, now) is None
            assert self.call("SELECT pgtq.heartbeat(%s, %s, '1 minute', %s)", job_id, forged, now) is False
            assert self.call("SELECT pgtq.release(%s, %s)", job_id, forged) is False

        # -- time and the scheduler ---------------------------------------

        @rule(seconds=st.sampled_from([1, 5, 20, 61, 300]))
        def advance_clock(self, seconds: int) -> None:
            self.model.now += timedelta(seconds=seconds)

        @rule(queue=st.none() | st.sampled_from(QUEUES))
        def tick(self, queue: str | None) -> None:
            moved = self.call("SELECT pgtq.tick(%s, %s)", queue, self.model.now)
            now = self.model.now
            mine = [job for job in self.model.jobs.values() if queue is None or job.queue == queue]
            promoted = [job for job in mine if job.state == "scheduled" and job.run_at <= now]
            expired = [
                job
                for job in mine
                if job.state == "running" and job.lease_expires_at is not None and job.lease_expires_at < now
            ]
            for job in promoted:
                job.state = "ready"
            for job in expired:
                found = self.db_row(job.id)
                assert found["last_error"].startswith("lease expired at "), found["last_error"]
                if job.attempt < job.max_attempts and not job.cancel_requested:
                    low, high = backoff_bounds(job.attempt)
                    assert low <= found["run_at"] - now <= high, "rescue waits backoff(attempt)"
                self.model.after_failure(job, found["run_at"])
            assert moved == len(promoted) + len(expired), "tick counts what it moved"
            OUTCOMES["tick promoted"] += bool(promoted)
            OUTCOMES["tick rescued"] += bool(expired)

        # -- the operator ----------------------------------------------------

        @rule(job_id=job_ids)
        def cancel(self, job_id: int) -> None:
            job = self.model.jobs[job_id]
            cancelled = self.call("SELECT pgtq.cancel(%s, %s)", job_id, self.model.now)
            assert cancelled is (job.state in ("scheduled", "ready", "running"))
            if job.state == "running":
                job.cancel_requested = True
                OUTCOMES["cancel requested"] += 1
            elif cancelled:
                job.state, job.finished_at = "cancelled", self.model.now
                OUTCOMES["cancel succeeded"] += 1
            else:
                OUTCOMES["cancel refused"] += 1

        @rule(job_id=job_ids)
        def retry(self, job_id: int) -> None:
            job = self.model.jobs[job_id]
            retried = self.call("SELECT pgtq.retry(%s, %s)", job_id, self.model.now)
            assert retried is (job.state in ("failed", "cancelled"))
            OUTCOMES[f"retry {'succeeded' if retried else 'refused'}"] += 1
            if retried:
                job.state, job.attempt, job.run_at, job.finished_at = "ready", 0, self.model.now, None
                job.cancel_requested = False

        @precondition(lambda self: bool(self.model.jobs))
        @rule()
        def unknown_ids(self) -> None:
            unknown = max(self.model.jobs) + 1000
            assert self.call("SELECT pgtq.cancel(%s, %s)", unknown, self.model.now) is False
            assert self.call("SELECT pgtq.retry(%s, %s)", unknown, self.model.now) is False
            assert self.call("SELECT pgtq.complete(%s, %s)", unknown, uuid.uuid4()) is False

        # -- the books ---------------------------------------------------------

        @invariant()
        def database_matches_the_model(self) -> None:
            rows = checker.cursor(row_factory=dict_row).execute(STATE_QUERY).fetchall()
            assert [row["id"] for row in rows] == sorted(self.model.jobs), "no job lost or duplicated"
            for row in rows:
                assert row == self.model.jobs[row["id"]].row(), f"job {row['id']} differs from the model"

        @invariant()
        def attempts_stay_within_bounds(self) -> None:
            for job in self.model.jobs.values():
                assert 0 <= job.attempt <= job.max_attempts
                assert (job.state == "running") == (job.lease is not None)
                assert (job.state in FINISHED) == (job.finished_at is not None)

    return QueueMachine


@pytest.fixture
def actor(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection acting as pgtq_admin."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE pgtq_admin")
        yield conn


@pytest.mark.timeout(1800)
def test_queue_behaves_like_the_model(actor: psycopg.Connection[Any], db: psycopg.Connection[Any]) -> None:
    OUTCOMES.clear()
    machine = make_machine(actor, db)
    if PROFILE == "default":
        machine = seed(DEFAULT_SEED)(machine)
    run_state_machine_as_test(machine, settings=settings.get_profile(PROFILE))
    # The run reached every outcome that matters (the default profile's
    # seed is pinned, so this is the same run every time).
    expected = {
        "pop claimed 0", "pop claimed 1", "pop claimed 2",
        "complete succeeded", "complete refused",
        "fail -> scheduled", "fail -> ready", "fail -> failed", "fail -> None",
        "heartbeat succeeded", "heartbeat refused", "release succeeded", "release refused",
        "tick promoted", "tick rescued", "cancel succeeded", "cancel refused",
        "retry succeeded", "retry refused", "cancel requested", "cancel honoured",
    }  # fmt: skip
    assert expected <= {outcome for outcome, count in OUTCOMES.items() if count}, sorted(OUTCOMES.items())
