"""A realistic hour of queue life for the dashboard's tests (and its
documentation screenshot), made through the SQL API alone with the clock passed as
``as_of``: four queues pushed to, popped, completed and failed minute by
minute, ticked at each minute (so the history has an hour of samples with
a shape: a burst of images that backs up and drains, failing webhooks),
then the present: ready backlogs, scheduled and running jobs, failed jobs
kept with their tracebacks, live workers and two schedules.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

QUEUES = ("emails", "images", "reports", "webhooks")
HOSTILE_TASK = "<script>alert('task')</script>"
HOSTILE_ARG = "<script>alert('args')</script>"
TIMEOUT = "ConnectionError: endpoint timed out"
WORKERS = {"worker-a": ["emails", "reports"], "worker-b": ["images"], "worker-c": ["webhooks"]}


@dataclass(frozen=True)
class Populated:
    """What the tests look for in the pages."""

    now: datetime
    failed_job: int  # a failed job of queue webhooks with a traceback
    hostile_job: int  # a failed job whose task name and args hold <script>
    failed_by_queue: dict[str, int]


def traceback_text(error: str, function: str, line: int) -> str:
    """A failure as the worker records it: the error, then its traceback."""
    return (
        f"{error}\nTraceback (most recent call last):\n"
        f'  File "/srv/app/tasks.py", line {line}, in {function}\n'
        f"    response = client.post(url, json=payload, timeout=10)\n"
        f'  File "/srv/app/http.py", line 88, in post\n'
        f"    raise {error.split(':')[0]}(message)\n"
        f"{error}\n"
    )


class _Clock:
    """Calls of the SQL API at a given moment (as_of)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def push(self, at: datetime, queue: str, task: str, count: int, **options: Any) -> list[int]:
        if count <= 0:
            return []
        args = [json.dumps([f"{task}-{at:%H%M}-{n}"]) for n in range(count)]
        rows = self.conn.execute(
            "SELECT pgtq.push_many(%s, %s, %s::jsonb[], priority => %s, max_attempts => %s, as_of => %s)",
            [queue, task, args, options.get("priority", 0), options.get("max_attempts", 25), at],
        ).fetchall()
        return [row[0] for row in rows]

    def pop(self, at: datetime, queue: str, n: int, worker: str) -> list[tuple[int, Any, str]]:
        rows = self.conn.execute(
            "SELECT id, lease, task FROM pgtq.pop(%s, %s, n => %s, lease => '5 minutes', as_of => %s)",
            [queue, worker, n, at],
        ).fetchall()
        return [(row[0], row[1], row[2]) for row in rows]

    def complete(self, at: datetime, claimed: list[tuple[int, Any, str]]) -> None:
        if claimed:
            self.conn.execute(
                "SELECT pgtq.complete_many(%s, %s, %s::jsonb[], as_of => %s)",
                [[c[0] for c in claimed], [c[1] for c in claimed], ['{"ok": true}'] * len(claimed), at],
            )

    def fail(self, at: datetime, claimed: tuple[int, Any, str], error: str) -> None:
        self.conn.execute(
            "SELECT pgtq.fail(%s, %s, %s, retry_in => '30 seconds', as_of => %s)",
            [claimed[0], claimed[1], error, at],
        )

    def tick(self, at: datetime) -> None:
        self.conn.execute("SELECT pgtq.tick(as_of => %s)", [at])


def populate(dsn: str, now: datetime | None = None) -> Populated:
    """Fill the database at ``dsn`` with the hour before ``now``."""
    now = now or datetime.now(UTC)
    start = now - timedelta(minutes=60)
    with psycopg.connect(dsn, autocommit=True) as conn:
        clock = _Clock(conn)
        for minute in range(60):
            at = start + timedelta(minutes=minute, seconds=5)
            wave = math.sin(minute / 60 * 2 * math.pi)
            burst = 140 if 22 <= minute < 30 else 0
            clock.push(at, "emails", "send_email", int(40 + 25 * wave))
            clock.push(at, "emails", "send_digest", 3)
            clock.push(at, "images", "resize", 25 + burst)
            clock.push(at, "reports", "build_report", 4 if minute % 5 else 12, priority=5)
            clock.push(at, "webhooks", "deliver", 18, max_attempts=2)
            later = at + timedelta(seconds=40)
            clock.complete(later, clock.pop(later, "emails", 52, "worker-a"))
            clock.complete(later, clock.pop(later, "images", 60, "worker-b"))
            clock.complete(later, clock.pop(later, "reports", 6, "worker-a"))
            delivered = clock.pop(later, "webhooks", 17, "worker-c")
            failing = 5 + minute % 4 if 38 <= minute < 47 else minute % 2  # an endpoint in trouble
            for claimed in delivered[:failing]:
                clock.fail(
                    later, claimed, traceback_text("ConnectionError: endpoint timed out", "deliver", 57)
                )
            clock.complete(later, delivered[failing:])
            clock.tick(start + timedelta(minutes=minute + 1))

        # The present: backlogs, work in flight, failures kept, workers and schedules.
        at = now - timedelta(seconds=20)
        clock.push(at, "images", "thumbnail", 35)
        clock.push(at, "images", "thumbnail", 10, priority=3)
        clock.push(at, "emails", "send_email", 12)
        clock.pop(at, "images", 4, "worker-b")
        # Ready jobs with lock keys among the emails (schema 0.32.0 keeps
        # them in an index of their own): the list in pop order merges both.
        for n in range(6):
            conn.execute(
                "SELECT pgtq.push('emails', 'send_email', %s, priority => %s, lock_key => %s, as_of => %s)",
                [json.dumps([f"keyed-{n}"]), 3 * (n % 2), f"customer-{n % 3}", at],
            )
        for hours in range(1, 13):
            conn.execute(
                "SELECT pgtq.push('reports', 'build_report', %s, run_at => %s, as_of => %s)",
                [json.dumps([f"region-{hours}"]), now + timedelta(hours=hours), at],
            )
        kept = []
        for queue, task, error in (
            ("webhooks", "deliver", TIMEOUT),
            ("reports", "build_report", "KeyError: 'region'"),
            ("emails", "send_email", "SMTPRecipientsRefused: 550 mailbox unavailable"),
        ):
            (job_id,) = clock.push(at, queue, task, 1, max_attempts=1, priority=9)
            claimed = clock.pop(at, queue, 1, "worker-c")
            assert claimed[0][0] == job_id
            clock.fail(at, claimed[0], traceback_text(error, task, 57))
            kept.append(job_id)
        hostile = conn.execute(
            "SELECT pgtq.push('webhooks', %s, %s, max_attempts => 1, priority => 9, as_of => %s)",
            [HOSTILE_TASK, json.dumps([HOSTILE_ARG]), at],
        ).fetchone()[0]
        claimed = clock.pop(at, "webhooks", 1, "worker-c")
        assert claimed[0][0] == hostile
        clock.fail(at, claimed[0], traceback_text(f"ValueError: {HOSTILE_ARG}", "deliver", 12))
        for worker, queues in (
            ("worker-a", ["emails", "reports"]),
            ("worker-b", ["images"]),
            ("worker-c", ["webhooks"]),
        ):
            conn.execute(
                "SELECT pgtq.register_worker(%s, 'app-1.internal', %s, %s, as_of => %s)",
                [worker, 4100 + len(worker), queues, now],
            )
        conn.execute(
            "SELECT pgtq.schedule('nightly-report', '30 2 * * *', 'reports', 'build_report',"
            " '[\"nightly\"]', timezone => 'Europe/Paris', as_of => %s)",
            [now],
        )
        conn.execute(
            "SELECT pgtq.schedule('digest', '0 * * * *', 'emails', 'send_digest', as_of => %s)", [now]
        )
        failed_by_queue = dict(
            conn.execute(
                "SELECT queue, count(*) FROM pgtq.jobs WHERE state = 'failed' GROUP BY queue"
            ).fetchall()
        )
    return Populated(now, kept[0], hostile, failed_by_queue)
