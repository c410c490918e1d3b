"""What a pop of a rate-limited queue costs beside a held snapshot.

    make bench-rate-cost [BENCH_ARGS="--pops 20000 --every 5000"]

Self-contained: its own durable throwaway cluster (bench/cluster.py),
stopped by pid at the end. One queue has a rate limit that never binds
(1,000,000 a second), so only the counting shows. One session claims its
jobs one at a time, each ``pgtq.pop`` and ``pgtq.complete`` in its own
transaction, as a worker at batch 1 does, with a tick every 200 pops (the
ready mark, from which pops seek). Every ``--every`` pops it times
``pop(1)``: the median of ``CALLS`` pops, each in a transaction that is
rolled back. It does so twice: with a REPEATABLE READ snapshot held by
another session from the start (a long report, pg_dump, a replica with
``hot_standby_feedback``), and without.

A pop that starts jobs counts them in the queue's rate window. Up to
schema 0.26.0 the window was two arrays of the queue's ``_queue`` row,
rewritten by every such pop; the held snapshot keeps every version, and
each of the pop's three reads of the row walked through all of them.
Since 0.27.0 the window is rows of ``_rate_start``, one per bucket, and a
pop reads one window of them. Compare within one run: this shared
machine moves single figures by 10% and more.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import psycopg

from bench.cluster import throwaway_cluster
from pgtq.migrate import upgrade

QUEUE = "rated"
CALLS = 20  # pops timed at each point; the median is reported
TICK_EVERY = 200  # pops between the ticks a worker would make (its ready mark)


def _claim_and_complete(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT id, lease FROM pgtq.pop(%s, 'w', 1)", [QUEUE]).fetchone()
    if row is None:
        return False
    conn.execute("SELECT pgtq.complete(%s, %s)", row)
    return True


def _pop_ms(conn: psycopg.Connection[Any]) -> float:
    """The median time of CALLS ``pop(1)``, each rolled back."""
    times = []
    for _ in range(CALLS):
        conn.execute("BEGIN")
        started = time.perf_counter()
        conn.execute("SELECT id FROM pgtq.pop(%s, 'w', 1)", [QUEUE]).fetchall()
        times.append((time.perf_counter() - started) * 1000)
        conn.execute("ROLLBACK")
    return statistics.median(times)


def measure(dsn: str, held: bool, pops: int, every: int) -> list[tuple[int, float]]:
    """(pops so far, pop(1) ms), every ``every`` pops, in a fresh database ``dsn``."""
    upgrade(dsn)
    rows: list[tuple[int, float]] = []
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn) as holder:
        conn.execute(
            "SELECT pgtq.configure_queue(%s, rate_limit => 1000000, rate_period => '1 second')", [QUEUE]
        )
        conn.execute(
            "SELECT pgtq.push_many(%s, 't', array_fill('[]'::jsonb, ARRAY[%s]))", [QUEUE, pops + CALLS]
        )
        conn.execute("VACUUM ANALYZE pgtq._job")
        conn.execute("SELECT pgtq.tick(%s)", [QUEUE])
        conn.execute("SELECT pgtq.tick(%s)", [QUEUE])  # the mark takes effect at the second tick
        if held:
            holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            holder.execute("SELECT count(*) FROM pgtq._settings").fetchall()
        done = 0
        while True:
            rows.append((done, _pop_ms(conn)))
            if done >= pops:
                break
            target = min(pops, done + every)
            while done < target and _claim_and_complete(conn):
                done += 1
                if done % TICK_EVERY == 0:
                    conn.execute("SELECT pgtq.tick(%s)", [QUEUE])
            if done < target:
                break
        holder.rollback()
    return rows


def report(held: list[tuple[int, float]], free: list[tuple[int, float]]) -> str:
    lines = ["| pops so far | pop(1), snapshot held | pop(1), not held |", "|---:|---:|---:|"]
    for (done, with_hold), (_, without) in zip(held, free, strict=False):
        lines.append(f"| {done:,} | {with_hold:.2f} ms | {without:.2f} ms |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pops", type=int, default=20_000, help="jobs claimed and completed, one at a time")
    parser.add_argument("--every", type=int, default=5_000, help="pops between two timings")
    options = parser.parse_args(argv)
    with throwaway_cluster(log=lambda line: print(line, file=sys.stderr)) as cluster:
        held = measure(cluster.create_database("rate_cost_held"), True, options.pops, options.every)
        free = measure(cluster.create_database("rate_cost_free"), False, options.pops, options.every)
    print(report(held, free))
    return 0


if __name__ == "__main__":
    sys.exit(main())
