"""Queues on two PostgreSQL servers, served by one fleet of workers.

Server A is a cluster of its own, started here (and stopped by its pid at
the end, also when a test fails); server B is the test server. Queues a1
and a2 live on A, b1 and b2 on B (tests/py/apps/ledger_app.py); each run
of a job is written in a ledger on B. Producers push to both servers;
three worker processes serve all four queues; A is stopped for 10 s while
B's queues keep running; after A is back its queues drain. Then the books:
every pushed job done exactly once, nothing lost.

Also: moving a queue from A to B (start its workers on B, switch the
producers, drain A, stop A's workers) loses and duplicates nothing; and
`pgtq stats` and `pgtq scheduler` across both servers.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pgcluster
import psycopg
import pytest
from conftest import Processes, install_test_schema, own_clusters, run_cli, scalar, wait_until
from psycopg import sql
from psycopg.conninfo import make_conninfo
from servers import LEDGER_TABLE, Producer, job_states, ledger_count, ledger_runs

import pgtq
from pgtq._db.conninfo import server_label
from pgtq.worker import Worker, WorkerSettings

ON_A = ("a1", "a2")
ON_B = ("b1", "b2")
OUTAGE = 10.0  # seconds server A stays down
WORKERS = 3
SEEN_DURING_OUTAGE = 100  # B's jobs that must complete while A is down


@pytest.fixture(scope="module")
def cluster_a() -> Iterator[pgcluster.Cluster]:
    """Server A: a throwaway cluster of this module, stopped by its pid at the end."""
    with own_clusters() as started:
        started.append(pgcluster.start_throwaway(lambda _cluster: {}))
        yield started[0]


@pytest.fixture
def dsn_a(cluster_a: pgcluster.Cluster, request: pytest.FixtureRequest) -> str:
    """A fresh pgtq database on server A (started again if a test left it down)."""
    cluster_a.start()
    name = f"pgtq_a_{request.node.name}"[:60].replace("[", "_").replace("]", "_")
    with psycopg.connect(cluster_a.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(cluster_a.dsn, dbname=name)
    install_test_schema(dsn)
    return dsn


@pytest.fixture
def ledger(dsn: str, db: psycopg.Connection[Any], dsn_a: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ledger on B; the ledger app's servers: A, and B (the test database)."""
    db.execute(LEDGER_TABLE)
    monkeypatch.setenv("PGTQ_DSN_A", dsn_a)
    monkeypatch.setenv("PGTQ_DSN_B", dsn)
    monkeypatch.setenv("PGTQ_LEDGER_DSN", dsn)
    return dsn


def push_backlog(dsn: str, queues: tuple[str, ...], prefix: str, n: int) -> list[str]:
    """Push ``n`` jobs spread over ``queues`` at once; their tokens."""
    tokens = [f"{prefix}{number}" for number in range(n)]
    for index, name in enumerate(queues):
        with pgtq.PgTq(name, dsn) as queue:
            mine = tokens[index :: len(queues)]
            for start in range(0, len(mine), 1000):
                queue.push_many("note", [[token] for token in mine[start : start + 1000]])
    return tokens


def backlog_of(tokens: list[str], server: str) -> list[str]:
    return [token for token in tokens if token.startswith(server)]


def test_a_fleet_serves_two_servers_and_one_down_stops_only_its_own_queues(
    cluster_a: pgcluster.Cluster,
    dsn_a: str,
    dsn: str,
    db: psycopg.Connection[Any],
    ledger: str,
    tmp_path: Path,
) -> None:
    fleet = Processes(dsn, tmp_path)
    targets = ",".join(f"ledger_app:{name}" for name in ON_A + ON_B)
    options = ["--concurrency", "4", "--batch-size", "8", "--lease", "60", "--tick-interval", "0.5"]
    producers = [
        Producer("a", [pgtq.PgTq(name, dsn_a) for name in ON_A], pace=0.01, retry=True),
        Producer("b", [pgtq.PgTq(name, dsn) for name in ON_B], pace=0.01, retry=True),
    ]
    try:
        workers = [fleet.worker(targets, *options) for _ in range(WORKERS)]
        for worker in workers:  # each worker: a listener per server, both hear their probe
            wait_until(lambda w=worker: fleet.output(w).count("notifications arrive") == 2, timeout=60)
        for producer in producers:
            producer.start()
        # A backlog on both, so that the workers are busy on both servers.
        backlog = push_backlog(dsn_a, ON_A, "a-backlog", 1000) + push_backlog(dsn, ON_B, "b-backlog", 2000)
        wait_until(lambda: min(ledger_count(db, ON_A), ledger_count(db, ON_B)) >= 200, timeout=120)

        warm_count, warm_at = ledger_count(db, ON_B), time.monotonic()
        time.sleep(2.0)  # a window to measure B's throughput with both servers up (not a synchronisation)
        before_count, stopped_at = ledger_count(db, ON_B), time.monotonic()
        before = (before_count - warm_count) / (stopped_at - warm_at)
        # Enough of a backlog on B to keep its queues busy through the outage, even if B then gets
        # every slot of the fleet and runs twice as fast.
        backlog += push_backlog(dsn, ON_B, "b-more", max(1000, int(before * OUTAGE * 2.5)))
        before_count, stopped_at = ledger_count(db, ON_B), time.monotonic()
        pgcluster.pg_ctl(cluster_a.datadir, "stop", "--mode", "fast")
        # B's jobs keep completing while A is down: the event, with a deadline far from the outage.
        wait_until(lambda: ledger_count(db, ON_B) >= before_count + SEEN_DURING_OUTAGE, timeout=120)
        assert cluster_a.pid() is None, "A was down all along"
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped_at)))  # the outage itself
        during_count, restarted_at = ledger_count(db, ON_B), time.monotonic()
        left_on_b = scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE state = 'ready'")
        a_acked_at_return = len(producers[0].acked)
        pgcluster.pg_ctl(cluster_a.datadir, "start")

        # A's queues drain again, and its producer carries on.
        wait_until(lambda: len(producers[0].acked) >= a_acked_at_return + 100, timeout=120)
        for producer in producers:
            producer.stop()
        acked = {
            "a": producers[0].acked + backlog_of(backlog, "a"),
            "b": producers[1].acked + backlog_of(backlog, "b"),
        }
        wait_until(
            lambda: (
                all(state == "done" for state, _ in job_states(dsn_a).values())
                and all(state == "done" for state, _ in job_states(dsn).values())
            ),
            timeout=180,
        )
        assert all(worker.poll() is None for worker in workers), "no worker died"
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        assert [worker.wait(timeout=60) for worker in workers] == [0] * WORKERS
    finally:
        for producer in producers:
            producer.stop()
        fleet.stop_all()

    during = (during_count - before_count) / (restarted_at - stopped_at)
    print(
        f"B's throughput: {before:.0f} jobs/s with both servers up, {during:.0f} jobs/s while A was down "
        f"({restarted_at - stopped_at:.1f} s, {left_on_b} of B's jobs still ready at its end); "
        f"pushed {len(acked['a'])} jobs to A, {len(acked['b'])} to B"
    )
    # The books: every pushed token is one done job on its server and ran exactly once.
    assert producers[0].unsure == producers[1].unsure == [], "every push was settled"
    assert set(job_states(dsn_a)) == set(acked["a"]) and set(job_states(dsn)) == set(acked["b"])
    runs = ledger_runs(db)
    assert runs == dict.fromkeys(acked["a"] + acked["b"], 1), "each job ran exactly once"
    outputs = "".join(fleet.output(worker) for worker in workers)
    label = server_label(dsn_a)
    assert f"{label}: database connection lost" in outputs and f"{label}: reconnected" in outputs
    assert f"{server_label(dsn)}: database" not in outputs, "B's links never failed"
    assert "Traceback" not in outputs


def test_moving_a_queue_from_a_to_b_loses_and_duplicates_nothing(dsn_a: str, dsn: str) -> None:
    """The README's procedure: start the queue's workers on B, switch the
    producers to B, wait until A holds no job of the queue that is not
    finished (scheduled ones included), stop the queue's workers on A."""
    ran: list[str] = []
    lock = threading.Lock()

    def on(dsn: str) -> pgtq.PgTq:
        queue = pgtq.PgTq("moving", dsn)

        @queue.handler()
        def note(token: str) -> None:
            with lock:
                ran.append(token)

        return queue

    old, new = on(dsn_a), on(dsn)
    settings = WorkerSettings(concurrency=2, poll_interval=0.2, tick_interval=0.2)
    worker_a, worker_b = Worker(old, settings), Worker(new, settings)
    threads = [threading.Thread(target=w.run) for w in (worker_a, worker_b)]
    threads[0].start()
    try:
        old.push_many("note", [[f"old{n}"] for n in range(200)])
        old.push("note", ["old-scheduled"], delay=2.0)  # still on A, scheduled, when the producers switch
        threads[1].start()  # 1. the queue's workers on B
        new.push_many("note", [[f"new{n}"] for n in range(200)])  # 2. the producers write to B
        with pgtq.Database(dsn_a) as database:  # 3. A drains: nothing ready, scheduled or running
            wait_until(lambda: {s.state for s in database.stats("moving")} == {"done"}, timeout=60)
        worker_a.stop()  # 4. the queue's workers on A stop
        threads[0].join(timeout=60)
        new.push_many("note", [[f"late{n}"] for n in range(50)])
        with pgtq.Database(dsn) as database:
            wait_until(lambda: [(s.state, s.jobs) for s in database.stats("moving")] == [("done", 250)])
    finally:
        for worker, thread in zip((worker_a, worker_b), threads, strict=True):
            worker.stop()
            if thread.is_alive():
                thread.join(timeout=60)
        old.close()
        new.close()
    expected = [f"old{n}" for n in range(200)] + ["old-scheduled"]
    expected += [f"new{n}" for n in range(200)] + [f"late{n}" for n in range(50)]
    assert sorted(ran) == sorted(expected), "every job ran once"
    assert sorted(job_states(dsn_a)) == sorted(expected[:201]), "each on the server it was pushed to"
    assert sorted(job_states(dsn)) == sorted(expected[201:])


def test_stats_and_the_scheduler_across_two_servers(dsn_a: str, dsn: str, tmp_path: Path) -> None:
    with pgtq.PgTq("a1", dsn_a) as a1, pgtq.PgTq("b1", dsn) as b1:
        a_job = a1.push("note", ["later-a"], delay=1.0)
        b_job = b1.push("note", ["later-b"], delay=1.0)
        stats = run_cli("stats", dsn_a, "--dsn", dsn, "--json")
        assert stats.returncode == 0, stats.stderr
        servers = json.loads(stats.stdout)["servers"]
        assert [(s["server"], q["queue"], q["jobs"]["scheduled"]) for s in servers for q in s["queues"]] == [
            (server_label(dsn_a), "a1", 1),
            (server_label(dsn), "b1", 1),
        ]
        table = run_cli("stats", dsn_a, "--dsn", dsn)
        assert table.returncode == 0, table.stderr
        assert "a1" in table.stdout and "b1" in table.stdout, "a table per server"
        processes = Processes(dsn, tmp_path)
        try:
            scheduler = processes.pgtq("scheduler", "*", "--dsn", dsn_a, "--dsn", dsn, "--interval", "0.1")
            wait_until(
                lambda: a1.job(a_job).state == "ready" and b1.job(b_job).state == "ready",  # type: ignore[union-attr]
                timeout=60,
            )
            scheduler.send_signal(signal.SIGTERM)
            assert scheduler.wait(timeout=30) == 0
        finally:
            processes.stop_all()
    output = processes.output(scheduler)
    assert f"ticking all queues of {server_label(dsn_a)}" in output
    assert f"ticking all queues of {server_label(dsn)}" in output
    down = run_cli("stats", dsn, "--dsn", "host=127.0.0.1 port=1 dbname=gone connect_timeout=2")
    assert down.returncode == 1, "a server that does not answer is reported"
    assert "pgtq: error: 127.0.0.1:1/gone: cannot connect" in down.stderr
    assert "b1" in down.stdout, "and the others are shown"


def test_a_server_down_at_start_leaves_the_others_served_and_is_served_once_it_answers(
    cluster_a: pgcluster.Cluster, dsn_a: str, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    done: list[str] = []
    queues = [pgtq.PgTq("a1", dsn_a), pgtq.PgTq("b1", dsn)]
    for queue in queues:
        queue.handler(name="note")(done.append)
    pgcluster.pg_ctl(cluster_a.datadir, "stop", "--mode", "fast")
    worker = Worker(queues, WorkerSettings(poll_interval=0.2, reconnect_max_delay=1.0))
    thread = threading.Thread(target=worker.run)
    try:
        thread.start()
        queues[1].push("note", ["on b"])
        wait_until(lambda: done == ["on b"], timeout=60)
        assert f"{server_label(dsn_a)}: cannot be reached at start" in caplog.text
        pgcluster.pg_ctl(cluster_a.datadir, "start")
        queues[0].push("note", ["on a"])
        wait_until(lambda: done == ["on b", "on a"], timeout=60)
    finally:
        cluster_a.start()
        worker.stop()
        thread.join(timeout=60)
        for queue in queues:
            queue.close()
    assert not thread.is_alive()
    with pytest.raises(pgtq.ConnectionFailedError, match="cannot connect"):
        Worker(
            [pgtq.PgTq("x", "host=127.0.0.1 port=1 dbname=x"), pgtq.PgTq("y", "host=127.0.0.1 port=2")]
        ).run()
