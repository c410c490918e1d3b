"""The connection budget: 50 worker processes against one server that
allows 60 connections, through PgBouncer in transaction mode with 20
server connections. Every job is done exactly once and no worker dies.

The server is a cluster of its own (max_connections is fixed at start),
started and stopped by pid here. The workers listen through the bouncer
too: their probe finds that notifications cannot arrive there, they say so
and poll, which is what such a deployment does (a LISTEN session per
worker would need 50 server connections)."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pgbouncer
import pgcluster
import psycopg
import pytest
from conftest import Processes, install_test_schema, scalar, wait_until
from psycopg.conninfo import make_conninfo

import pgtq

WORKERS = 50
MAX_CONNECTIONS = 60
POOL_SIZE = 20
JOBS = 2000


@pytest.fixture(scope="module")
def small_server() -> Iterator[pgcluster.Cluster]:
    """A cluster with max_connections = 60, for this module only."""
    root = Path(tempfile.mkdtemp(prefix="pgtq-budget-"))
    pgcluster.give_to_server_user(root)
    cluster = pgcluster.Cluster(root / "data")
    try:
        cluster.initialise({**pgcluster.TEST_SETTINGS, "max_connections": str(MAX_CONNECTIONS)})
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def budget_dsn(small_server: pgcluster.Cluster) -> str:
    with psycopg.connect(small_server.dsn, autocommit=True) as admin:
        admin.execute("CREATE DATABASE budget")
    dsn = make_conninfo(small_server.dsn, dbname="budget")
    install_test_schema(dsn)
    return dsn


def server_connections(conn: psycopg.Connection[Any]) -> int:
    return int(scalar(conn, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"))


def test_fifty_workers_share_sixty_connections_through_pgbouncer(
    small_server: pgcluster.Cluster, budget_dsn: str, tmp_path: Path
) -> None:
    root = Path(tempfile.mkdtemp(prefix="pgtq-budget-bouncer-"))
    pgcluster.give_to_server_user(root)
    bouncer = pgbouncer.Bouncer(root, server_port=small_server.port, pool_size=POOL_SIZE)
    workers = Processes(bouncer.dsn("budget"), tmp_path)
    started: list[Any] = []
    try:
        bouncer.start()
        with pgtq.PgTq("test_queue", bouncer.dsn("budget")) as q:
            for start in range(0, JOBS, 500):
                q.push_many("note", [[f"j{n}"] for n in range(start, min(start + 500, JOBS))])
        started = [workers.worker("app:q", "--poll-interval", "1") for _ in range(WORKERS)]
        with psycopg.connect(budget_dsn, autocommit=True) as watch:
            peak = 0

            def all_done() -> bool:
                nonlocal peak
                peak = max(peak, server_connections(watch))
                return scalar(watch, "SELECT count(*) FROM pgtq.jobs WHERE state = 'done'") == JOBS

            wait_until(all_done, timeout=600, interval=0.2)
            wait_until(lambda: scalar(watch, "SELECT count(*) FROM pgtq.workers") == WORKERS, timeout=120)
            # Each listener's probe through the bouncer has given up, and said so.
            wait_until(
                lambda: all("notifications cannot reach" in workers.output(process) for process in started),
                timeout=120,
            )
            runs = dict(watch.execute("SELECT token, count(*) FROM side_effects GROUP BY 1").fetchall())
        dead = [process.pid for process in started if process.poll() is not None]
        assert dead == [], "no worker died"
        for process in started:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=120) for process in started]
    finally:
        workers.stop_all()
        bouncer.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"{WORKERS} workers, {JOBS} jobs, peak {peak} server connections of {MAX_CONNECTIONS}")
    assert runs == {f"j{n}": 1 for n in range(JOBS)}, "every job ran exactly once"
    assert codes == [0] * WORKERS, "each stopped gracefully"
    assert peak <= POOL_SIZE + 2, "the bouncer's pool (and this test's own session) bound the server side"
    outputs = "".join(workers.output(process) for process in started)
    assert "too many" not in outputs
    assert outputs.count("notifications cannot reach this worker") == WORKERS
