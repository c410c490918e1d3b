"""What a snapshot held open costs a ``max_running`` queue, served by real workers.

    make bench-held-limit [BENCH_ARGS="--max-running 50 --rate 8000 --seconds 60 --processes 2"]

Self-contained: its own durable throwaway cluster (bench/cluster.py),
stopped by pid at the end. For a queue with ``max_running => N``, then for
one with no limit (the reference), ``--processes`` real ``pgtq worker``
processes at their defaults serve no-op jobs that a producer pushes at
``--rate`` jobs a second (one ``push_many`` every 100 ms) for
``--seconds``; from 20% to 80% of the run a REPEATABLE READ transaction
holds a snapshot open (a long report, ``pg_dump``, a standby with
``hot_standby_feedback``), so vacuum removes nothing written meanwhile.
Reported: the jobs started a second in each 5-second step (from the
handlers' records, not by counting rows, which the snapshot would slow),
the backlog, and while the snapshot was held the median rate and the
largest backlog.

The index of running jobs keeps an entry of every job that ended within
its lease while the snapshot is held. Until schema 0.39.0 every pop of a
``max_running`` queue counted the queue's running jobs from that index, so
it stepped over all of them: at 8,000 jobs/s the queue fell to a fifth of
that. Since 0.39.0 a pop probes each slot's newest claim instead. Compare
within one run: this shared machine moves single figures by 10% and more.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from bench import procs
from bench.cluster import REPO, throwaway_cluster
from bench.records import LineCounter
from pgtq.migrate import upgrade

QUEUE = "held"
STEP = 5.0  # seconds a row of the report covers
PUSH_EVERY = 0.1


def worker_argv() -> list[str]:
    """The real ``pgtq worker`` of this interpreter's environment, at its defaults."""
    cli = Path(sys.executable).with_name("pgtq")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "pgtq.cli"]
    return [*command, "--log-level", "WARNING", "worker", "bench.apps.pgtq_noop:q"]


def hold_snapshot(dsn: str, start: float, end: float, t0: float) -> None:
    """Hold a REPEATABLE READ snapshot from ``start`` to ``end`` seconds after ``t0``."""
    time.sleep(max(0.0, t0 + start - time.time()))
    with psycopg.connect(dsn) as holder:
        holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM pgtq._settings").fetchall()
        time.sleep(max(0.0, t0 + end - time.time()))
        holder.rollback()


def run(dsn: str, max_running: int, rate: float, seconds: float, processes: int) -> list[dict[str, float]]:
    """One run in the fresh database ``dsn``; a row per step."""
    upgrade(dsn)
    records = Path(tempfile.mkdtemp(prefix="pgtq-held-limit-"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        if max_running:
            conn.execute("SELECT pgtq.configure_queue(%s, max_running => %s)", [QUEUE, max_running])
        env = dict(
            os.environ,
            PGTQ_DSN=dsn,
            BENCH_QUEUE=QUEUE,
            BENCH_RECORD_DIR=str(records),
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
        )
        workers = [
            procs.start(worker_argv(), env, records.parent / f"{records.name}-worker-{i}.log", cwd=REPO)
            for i in range(processes)
        ]
        try:
            return _produce(conn, dsn, records, rate, seconds)
        finally:
            procs.stop_all(workers)


def _produce(
    conn: psycopg.Connection[Any], dsn: str, records: Path, rate: float, seconds: float
) -> list[dict[str, float]]:
    started = LineCounter(records)
    deadline = time.time() + 30
    conn.execute("SELECT pgtq.push(%s, 'noop', '[-1]')", [QUEUE])  # the workers are up once it runs
    while started.count() < 1:
        if time.time() > deadline:
            raise RuntimeError(f"the workers ran no job in 30 s: see {records.parent}")
        time.sleep(0.05)
    t0 = time.time()
    held = (seconds * 0.2, seconds * 0.8)
    holder = threading.Thread(target=hold_snapshot, args=(dsn, *held, t0), daemon=True)
    holder.start()
    pushed, owed, rows = 0, 0.0, []
    last_count, last_at = started.count(), t0
    while time.time() - t0 < seconds + STEP:
        if time.time() - t0 < seconds:
            owed += rate * PUSH_EVERY
            count = int(owed)
            owed -= count
            if count:
                conn.execute(
                    "SELECT count(*) FROM pgtq.push_many(%s, 'noop',"
                    " (SELECT array_agg(jsonb_build_array(s)) FROM generate_series(%s::int, %s::int) AS s))",
                    [QUEUE, pushed, pushed + count - 1],
                )
                pushed += count
        time.sleep(PUSH_EVERY)
        now = time.time()
        if now - last_at >= STEP:
            count = started.count()
            middle = (last_at + now) / 2 - t0
            rows.append(
                {
                    "t": round(now - t0, 1),
                    "rate": (count - last_count) / (now - last_at),
                    "backlog": pushed + 1 - count,
                    "held": float(held[0] <= middle <= held[1]),
                }
            )
            last_count, last_at = count, now
    holder.join(timeout=seconds)
    return rows


def summary(rows: list[dict[str, float]]) -> str:
    held = [row for row in rows if row["held"]]
    if not held:
        return "no step fell inside the hold"
    rate = statistics.median(row["rate"] for row in held)
    backlog = max(row["backlog"] for row in rows)
    return f"while held: {rate:,.0f} jobs/s (median of {len(held)} steps), largest backlog {backlog:,.0f}"


def report(limited: list[dict[str, float]], free: list[dict[str, float]], max_running: int) -> str:
    lines = [
        f"| s | `max_running => {max_running}`: jobs/s | backlog | no limit: jobs/s | backlog | snapshot |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for one, other in zip(limited, free, strict=False):
        lines.append(
            f"| {one['t']:.0f} | {one['rate']:,.0f} | {one['backlog']:,.0f} | {other['rate']:,.0f}"
            f" | {other['backlog']:,.0f} | {'held' if one['held'] else ''} |"
        )
    lines += ["", f"`max_running => {max_running}`: {summary(limited)}.", f"No limit: {summary(free)}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-running", type=int, default=50, help="the limited queue's max_running")
    parser.add_argument("--rate", type=float, default=8000.0, help="jobs pushed a second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the producer pushes")
    parser.add_argument("--processes", type=int, default=2, help="pgtq worker processes")
    options = parser.parse_args(argv)
    with throwaway_cluster(log=lambda line: print(line, file=sys.stderr)) as cluster:
        shape = (options.rate, options.seconds, options.processes)
        limited = run(cluster.create_database("held_limited"), options.max_running, *shape)
        free = run(cluster.create_database("held_free"), 0, *shape)
    print(report(limited, free, options.max_running))
    return 0


if __name__ == "__main__":
    sys.exit(main())
