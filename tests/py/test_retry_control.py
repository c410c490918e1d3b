"""Retry control from handlers, with a real worker (in this process) on the
real database: ``pgtq.Retry(delay)`` runs the job again at that time,
``pgtq.Abort`` fails it at once, a handler's backoff is stored on its jobs
and SQL computes the retry from it, and an exception outside ``retry_on``
ends the job with no further attempt.

When the job runs again is read from the job row: ``pgtq.fail`` records its
time as of the failure, which lies between the attempt's ``started_at`` and
the database's ``now()`` when the test looks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
from conftest import wait_until, worker_running

import pgtq

HOUR = timedelta(hours=1)


def job(db: psycopg.Connection[Any], job_id: int) -> dict[str, Any]:
    cursor = db.execute(
        "SELECT state::text AS state, attempt, run_at - started_at AS waits, now() - started_at AS since,"
        " last_error, finished_at, backoff_base, backoff_cap FROM pgtq.jobs WHERE id = %s",
        [job_id],
    )
    row = cursor.fetchone()
    assert row is not None and cursor.description is not None
    return dict(zip([column.name for column in cursor.description], row, strict=True))


def settled(db: psycopg.Connection[Any], *ids: int) -> bool:
    """Whether every job's attempt has been written (none ready or running)."""
    return all(job(db, job_id)["state"] in ("scheduled", "failed", "done") for job_id in ids)


def test_retry_runs_the_job_again_at_its_delay_and_counts_an_attempt(
    q: pgtq.PgTq, db: psycopg.Connection[Any]
) -> None:
    @q.handler(max_attempts=3)
    def busy(delay: float) -> None:
        raise pgtq.Retry(delay=timedelta(seconds=delay), reason="the endpoint is busy")

    @q.handler()
    def busy_in_seconds() -> None:
        raise pgtq.Retry(90)

    in_an_hour = busy.push(HOUR.total_seconds())
    in_90_s = busy_in_seconds.push()
    last_attempt = busy.options(max_attempts=1).push(HOUR.total_seconds())
    with worker_running(q):
        wait_until(lambda: settled(db, in_an_hour, in_90_s, last_attempt))

    retried = job(db, in_an_hour)
    assert (retried["state"], retried["attempt"]) == ("scheduled", 1)
    assert HOUR <= retried["waits"] <= HOUR + retried["since"], "run_at = the failure's time + the delay"
    assert retried["last_error"].startswith("Retry: retry in 3600 s: the endpoint is busy")
    seconds = job(db, in_90_s)
    assert timedelta(seconds=90) <= seconds["waits"] <= timedelta(seconds=90) + seconds["since"]
    exhausted = job(db, last_attempt)
    assert (exhausted["state"], exhausted["attempt"]) == ("failed", 1), "a retry counts as an attempt"


def test_abort_fails_the_job_at_once(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    @q.handler(max_attempts=5)
    def charge(account: str) -> None:
        raise pgtq.Abort(f"account {account} is closed")

    job_id = charge.push("ann")
    with worker_running(q):
        wait_until(lambda: settled(db, job_id))
    aborted = job(db, job_id)
    assert (aborted["state"], aborted["attempt"]) == ("failed", 1), "no further attempt of the 5"
    assert aborted["finished_at"] is not None
    assert aborted["last_error"].startswith("Abort: account ann is closed\n")


def test_a_handlers_backoff_is_stored_on_its_jobs_and_sql_applies_it(
    q: pgtq.PgTq, db: psycopg.Connection[Any]
) -> None:
    @q.handler(backoff_base=timedelta(minutes=10), backoff_cap=timedelta(minutes=20))
    def flaky(n: int) -> None:
        raise ConnectionError(f"flaky {n}")

    @q.handler()
    def plain() -> None: ...

    by_handler = flaky.push(1)
    capped = flaky.options(backoff_cap=120).push(2)
    [bulk] = flaky.push_many([(3,)])
    default = plain.push()
    stored = {
        job_id: (job(db, job_id)["backoff_base"], job(db, job_id)["backoff_cap"])
        for job_id in (by_handler, capped, bulk, default)
    }
    ten, twenty = timedelta(minutes=10), timedelta(minutes=20)
    assert stored == {
        by_handler: (ten, twenty),
        capped: (ten, timedelta(seconds=120)),
        bulk: (ten, twenty),
        default: (None, None),
    }, "push and push_many store the handler's policy, options() override it"

    with worker_running(q):
        wait_until(lambda: settled(db, by_handler, capped, bulk, default))
    # The first retry waits within [0.8 d, d], d = least(cap, base).
    for job_id, d in ((by_handler, ten), (bulk, ten), (capped, timedelta(seconds=120))):
        retried = job(db, job_id)
        assert (retried["state"], retried["attempt"]) == ("scheduled", 1)
        assert 0.8 * d <= retried["waits"] <= d + retried["since"], (job_id, retried)


def test_an_exception_outside_retry_on_ends_the_job(q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    @q.handler(max_attempts=5, backoff_base=HOUR, retry_on=(ConnectionError, TimeoutError))
    def sync(how: str) -> None:
        if how == "transient":
            raise ConnectionError("the server hung up")
        if how == "asks":
            raise pgtq.Retry(HOUR)
        raise ValueError("bad record")

    transient, permanent, asks = sync.push("transient"), sync.push("permanent"), sync.push("asks")
    with worker_running(q):
        wait_until(lambda: settled(db, transient, permanent, asks))
    assert job(db, transient)["state"] == "scheduled", "in retry_on: retried"
    assert job(db, asks)["state"] == "scheduled", "Retry retries whatever retry_on says"
    given_up = job(db, permanent)
    assert (given_up["state"], given_up["attempt"]) == ("failed", 1), "not in retry_on: no further attempt"
    assert given_up["last_error"].startswith("ValueError: bad record\n")
