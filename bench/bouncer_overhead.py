"""What PgBouncer and pgtq's prepared-statement policy cost (issue 14).

    .venv/bin/python -m bench.bouncer_overhead [--pushes 4000] [--jobs 20000] [--rounds 3]
        [--synchronous-commit on|off]

Self-contained: its own durable throwaway cluster (bench/cluster.py) and
its own PgBouncers (scripts/pgbouncer.py), in session and transaction
mode, stopped by pid at the end. For each route (direct, session-mode
bouncer, transaction-mode bouncer) and each prepared-statement policy
(PGTQ_PREPARED_STATEMENTS=on: psycopg prepares after 5 runs; off: never):

* push loop: 4 client threads, each its own ``PgTq``, ``push`` of one job
  per transaction;
* drain: an in-process ``Worker`` (threads, concurrency 10, batch 100, a
  no-op handler) drains pre-pushed jobs; claims and completions pipelined.

Each cell is the median of ``--rounds`` rounds (the routes interleaved).
Database errors are counted: failed pushes, and the worker's logged
errors (it survives them). Transaction mode with prepared statements on
is the failure of issue 14. Prints a markdown table; figures move by 30%
between runs on a shared 2-core machine: compare within one run.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.cluster import REPO, throwaway_cluster

sys.path.insert(0, str(REPO / "scripts"))
import pgbouncer
import pgcluster

import pgtq
from pgtq.migrate import upgrade
from pgtq.worker import Worker, WorkerSettings

CLIENTS = 4
# The documented setting (docs/deployment.md): bench/ uses pgtq's public interface only.
PREPARED_STATEMENTS_VARIABLE = "PGTQ_PREPARED_STATEMENTS"


class ErrorCount(logging.Handler):
    """Counts the warnings pgtq logs (the worker's database errors)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def push_loop(dsn: str, pushes: int) -> tuple[float, int]:
    """Single pushes per second from CLIENTS threads, and the failed pushes."""
    failed = 0
    ready = threading.Barrier(CLIENTS + 1)

    def client() -> None:
        nonlocal failed
        with pgtq.PgTq("bench_push", dsn) as q:
            q.push("noop", [0])  # connect first
            ready.wait()
            for n in range(pushes // CLIENTS):
                try:
                    q.push("noop", [n])
                except (pgtq.PgTqError, psycopg.Error):
                    failed += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return (pushes // CLIENTS * CLIENTS) / (time.perf_counter() - started), failed


def drain(dsn: str, direct: str, jobs: int) -> tuple[float, int]:
    """Jobs per second drained by an in-process worker, and the database
    errors it logged (and survived)."""
    queue = f"bench_drain_{time.monotonic_ns()}"
    q = pgtq.PgTq(queue, dsn)

    @q.handler()
    def noop(n: int) -> None: ...

    for start in range(0, jobs, 5000):
        q.push_many("noop", [[n] for n in range(start, min(start + 5000, jobs))])
    errors = ErrorCount()
    logging.getLogger("pgtq").addHandler(errors)
    worker = Worker(q, WorkerSettings(concurrency=10, batch_size=100, poll_interval=0.2), listen_dsn=direct)
    thread = threading.Thread(target=worker.run)
    started = time.perf_counter()
    thread.start()
    try:
        with psycopg.connect(direct, autocommit=True) as watch:
            while True:
                row = watch.execute(
                    "SELECT count(*) FROM pgtq.jobs WHERE queue = %s AND state = 'done'", [queue]
                ).fetchone()
                if row is not None and row[0] == jobs:
                    break
                if not thread.is_alive():
                    raise RuntimeError("the worker stopped")
                time.sleep(0.01)
        elapsed = time.perf_counter() - started
    finally:
        worker.stop()
        thread.join(timeout=60)
        q.close()
        logging.getLogger("pgtq").removeHandler(errors)
    return jobs / elapsed, errors.count


def cell(results: list[tuple[float, int]]) -> str:
    """The median rate of the rounds, and the errors of all rounds."""
    rate = statistics.median(rate for rate, _ in results)
    errors = sum(count for _, count in results)
    return f"{rate:,.0f}" + (f" ({errors} errors)" if errors else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pushes", type=int, default=4000)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--synchronous-commit",
        choices=["on", "off"],
        default="on",
        help="off leaves the WAL flush out of each push, so the statement's own cost shows",
    )
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    logging.getLogger("pgtq").propagate = False
    results: dict[tuple[str, str, str], list[tuple[float, int]]] = {}
    with throwaway_cluster(log=lambda line: print(line, file=sys.stderr)) as cluster:
        cluster.set_synchronous_commit(options.synchronous_commit)
        direct = cluster.create_database("bouncer_bench")
        upgrade(direct)
        port = int(conninfo_to_dict(direct).get("port") or 5432)
        root = Path(tempfile.mkdtemp(prefix="pgtq-bench-bouncer-"))
        pgcluster.give_to_server_user(root)
        bouncers = {
            mode: pgbouncer.Bouncer(root / mode, server_port=port, pool_mode=mode, pool_size=10)
            for mode in ("session", "transaction")
        }
        try:
            for bouncer in bouncers.values():
                bouncer.start()
            routes = {"direct": direct}
            for mode, bouncer in bouncers.items():
                routes[f"PgBouncer {mode} mode"] = make_conninfo(
                    direct, host="127.0.0.1", port=str(bouncer.port)
                )
            for round_number in range(options.rounds):
                for route, dsn in routes.items():
                    for policy in ("on", "off"):
                        os.environ[PREPARED_STATEMENTS_VARIABLE] = policy
                        pushed = push_loop(dsn, options.pushes)
                        drained = drain(dsn, direct, options.jobs)
                        results.setdefault((route, policy, "push"), []).append(pushed)
                        results.setdefault((route, policy, "drain"), []).append(drained)
                        print(
                            f"round {round_number + 1}: {route}, prepared statements {policy}: "
                            f"push {pushed[0]:,.0f}/s ({pushed[1]} failed), "
                            f"drain {drained[0]:,.0f}/s ({drained[1]} errors)",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            for bouncer in bouncers.values():
                bouncer.stop()
            shutil.rmtree(root, ignore_errors=True)
    print(f"synchronous_commit = {options.synchronous_commit}, median of {options.rounds} rounds\n")
    print(
        f"| route | prepared statements | push loop, jobs/s ({CLIENTS} clients, {options.pushes:,} pushes) "
        f"| drain, jobs/s ({options.jobs:,} no-op jobs) |"
    )
    print("| --- | --- | ---: | ---: |")
    for route in routes:
        for policy in ("on", "off"):
            push = cell(results[(route, policy, "push")])
            drained = cell(results[(route, policy, "drain")])
            print(f"| {route} | {policy} | {push} | {drained} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
