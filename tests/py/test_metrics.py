"""Prometheus /metrics of a real worker, parsed with prometheus_client's
parser, after a known set of jobs: the worker-local counters and
histogram, and the queue-level figures read from pgtq.metrics()."""

from __future__ import annotations

import socket
import urllib.request
from datetime import timedelta
from typing import Any

import psycopg
from conftest import Processes, scalar, wait_until

import pgtq
from pgtq.metrics import parse, text

QUEUE = "test_queue"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        exposition = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in parse(exposition)}


def test_worker_metrics_after_a_known_set_of_jobs(processes: Processes, db: psycopg.Connection[Any]) -> None:
    q = pgtq.PgTq(QUEUE, processes.dsn)
    # A worker that died holding one `add` job: its lease runs out in a second.
    dead = q.push("add", [0, 0])
    assert scalar(db, "SELECT id FROM pgtq.pop(%s, 'dead', 1, '1 second')", [QUEUE]) == dead
    for n in range(5):
        q.push("add", [n, 1])
    for n in range(2):
        q.push("always_fails", [f"m{n}"], max_attempts=1)
    q.push("add", [9, 9], delay=timedelta(hours=1))
    q.close()

    port = free_port()
    processes.worker("app:q", "--metrics-port", str(port), "--tick-interval", "0.2")
    done = "SELECT count(*) FROM pgtq.jobs WHERE task = %s AND state = %s"
    wait_until(
        lambda: scalar(db, done, ["add", "done"]) == 6 and scalar(db, done, ["always_fails", "failed"]) == 2
    )
    # Make the next tick's history sample due now (rather than at the next
    # minute), so the finished jobs are counted at once.
    db.execute("UPDATE pgtq._sampler SET next_sample_at = '-infinity'")

    def counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        samples = scrape(port)
        recent = ("pgtq_queue_recent_completed_jobs", (("queue", QUEUE), ("task", "add")))
        return samples if samples.get(recent) == 6 else None

    samples = wait_until(counted)

    def at(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    # worker-local: what this worker did
    assert at("pgtq_worker_jobs_completed_total", queue=QUEUE, task="add") == 6
    assert at("pgtq_worker_jobs_failed_total", queue=QUEUE, task="always_fails") == 2
    assert at("pgtq_worker_job_duration_seconds_count", queue=QUEUE, task="add") == 6
    assert at("pgtq_worker_job_duration_seconds_bucket", queue=QUEUE, task="add", le="+Inf") == 6
    # queue-level, from SQL
    assert at("pgtq_database_up") == 1
    assert at("pgtq_queue_jobs", queue=QUEUE, state="scheduled") == 1
    assert at("pgtq_queue_jobs", queue=QUEUE, state="ready") == 0
    assert at("pgtq_queue_jobs", queue=QUEUE, state="running") == 0
    assert at("pgtq_queue_oldest_ready_age_seconds", queue=QUEUE) == 0
    assert at("pgtq_queue_recent_failed_jobs", queue=QUEUE, task="always_fails") == 2
    assert at("pgtq_queue_recent_lease_expiries", queue=QUEUE, task="add") == 1
    assert at("pgtq_queue_workers", queue=QUEUE) == 1
    assert at("pgtq_workers") == 1
    assert 0 <= at("pgtq_history_age_seconds") < 60


def test_a_worker_without_the_queue_figures_serves_its_own(
    processes: Processes, db: psycopg.Connection[Any]
) -> None:
    """--no-queue-metrics: the worker's counters, none of pgtq.metrics()'s
    figures (each scrape of those reads every live job), no
    pgtq_database_up."""
    q = pgtq.PgTq(QUEUE, processes.dsn)
    for n in range(3):
        q.push("add", [n, 1])
    q.close()
    port = free_port()
    processes.worker("app:q", "--metrics-port", str(port), "--no-queue-metrics")
    wait_until(lambda: scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE state = 'done'") == 3)
    samples = wait_until(
        lambda: (
            (found := scrape(port)).get(
                ("pgtq_worker_jobs_completed_total", (("queue", QUEUE), ("task", "add")))
            )
            == 3
            and found
        )
    )
    assert not [name for name, _labels in samples if name.startswith("pgtq_queue_")], samples
    assert ("pgtq_database_up", ()) not in samples
    assert ("pgtq_workers", ()) not in samples


def test_the_queue_figures_alone_and_a_database_that_is_down(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT pgtq.push('mail', 'send')")
    with pgtq.Database(dsn) as database:
        database.pause("mail")
        database.configure_queue("img", max_running=3, rate_limit=20, rate_period=timedelta(seconds=2))
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in parse(text(database))}
    assert samples[("pgtq_queue_jobs", (("queue", "mail"), ("state", "ready")))] == 1
    assert samples[("pgtq_queue_paused", (("queue", "mail"),))] == 1
    assert samples[("pgtq_queue_paused", (("queue", "img"),))] == 0
    assert samples[("pgtq_queue_max_running", (("queue", "img"),))] == 3
    assert samples[("pgtq_queue_rate_limit", (("queue", "img"),))] == 20
    assert samples[("pgtq_queue_rate_period_seconds", (("queue", "img"),))] == 2
    assert ("pgtq_queue_max_running", (("queue", "mail"),)) not in samples, "mail has no limit"
    assert samples[("pgtq_health_warning", (("check", "queues"),))] == 0, "mail is paused, its job fresh"
    assert samples[("pgtq_health_warning", (("check", "schedules"),))] == 0
    assert samples[("pgtq_health_warning", (("check", "vacuum"),))] == 0, "schema 0.36.0's fourth check"
    db.execute("SELECT pgtq.push('reports', 'build', as_of => now() - interval '10 minutes')")
    with pgtq.Database(dsn) as database:
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in parse(text(database))}
    assert samples[("pgtq_health_warning", (("check", "queues"),))] == 1, "reports waits with no worker"
    with pgtq.Database("host=127.0.0.1 port=1 connect_timeout=2") as unreachable:
        down = {s.name: s.value for s in parse(text(unreachable))}
    assert down == {"pgtq_database_up": 0}
