"""What a tick costs beside a held snapshot: the ready mark's look.

    make bench-tick-cost [BENCH_ARGS="--jobs 200000 --every 20000"]

Self-contained: its own durable throwaway cluster (bench/cluster.py),
stopped by pid at the end. One queue is filled with ``--jobs`` jobs and
vacuumed; one session claims them 100 at a time (``pgtq.pop``) and ends
each batch (``pgtq.complete_many``), with a tick every 200 claims, as a
worker does. Every ``--every`` claims it times ``pgtq.tick('q')``, the
mark's part of it alone (``pgtq._raise_mark('q', NULL, NULL, NULL, NULL, true)``) and one
``pop(100)``. It does so twice: with a REPEATABLE READ snapshot held by
another session from the start (a long report, a replica with
``hot_standby_feedback``), and without.

A claim leaves the index entry of the job's ready version behind. Without
a held snapshot a scan that meets it marks it dead and later scans skip
it; with one, the old version is still visible to the holder, so every
scan that starts before it reads it again. Pop seeks from the ready mark
(schema 0.18.0) and stays flat. Until schema 0.25.0 the mark's own look
for the queue's first ready job started at the queue's first entry (it
must see a job that a long transaction pushed below the mark), so it read
every job claimed since the snapshot was taken; since 0.25.0 it starts at
the mark's floor and stays flat too. Compare within one run: this shared
machine moves single figures by 10% and more.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import psycopg

from bench.cluster import throwaway_cluster
from pgtq.migrate import upgrade

BATCH = 100
TICK_EVERY = 200  # claims between the ticks a worker would make
PUSH_CHUNK = 50_000  # push_many takes at most 100,000 jobs per call


def _ms(conn: psycopg.Connection[Any], statement: str) -> float:
    started = time.perf_counter()
    conn.execute(statement).fetchall()
    return (time.perf_counter() - started) * 1000


def _claim_batch(conn: psycopg.Connection[Any]) -> int:
    rows = conn.execute("SELECT id, lease FROM pgtq.pop('q', 'w', %s)", [BATCH]).fetchall()
    if rows:
        conn.execute("SELECT pgtq.complete_many(%s, %s)", [[r[0] for r in rows], [r[1] for r in rows]])
    return len(rows)


def measure(dsn: str, held: bool, jobs: int, every: int) -> list[tuple[int, float, float, float]]:
    """(claimed so far, tick ms, _raise_mark ms, pop(100) ms), every ``every``
    claims, in a fresh database ``dsn``."""
    upgrade(dsn)
    rows: list[tuple[int, float, float, float]] = []
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn) as holder:
        for start in range(0, jobs, PUSH_CHUNK):
            size = min(PUSH_CHUNK, jobs - start)
            conn.execute("SELECT pgtq.push_many('q', 't', array_fill('[]'::jsonb, ARRAY[%s]))", [size])
        conn.execute("VACUUM ANALYZE pgtq._job")
        conn.execute("SELECT pgtq.tick('q')")
        conn.execute("SELECT pgtq.tick('q')")  # the mark takes effect at the second tick
        if held:
            holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            holder.execute("SELECT count(*) FROM pgtq._settings").fetchall()
        claimed = 0
        while claimed < jobs:
            tick_ms = _ms(conn, "SELECT pgtq.tick('q')")
            mark_ms = _ms(conn, "SELECT pgtq._raise_mark('q', NULL, NULL, NULL, NULL, true)")
            started = time.perf_counter()
            taken = _claim_batch(conn)
            pop_ms = (time.perf_counter() - started) * 1000
            claimed += taken
            rows.append((claimed, tick_ms, mark_ms, pop_ms))
            target, since_tick = min(jobs, claimed + every), 0
            while taken and claimed < target:
                taken = _claim_batch(conn)
                claimed += taken
                since_tick += 1
                if since_tick == TICK_EVERY:
                    conn.execute("SELECT pgtq.tick('q')")
                    since_tick = 0
            if not taken:
                break
        holder.rollback()
    return rows


def report(held: list[tuple[int, float, float, float]], free: list[tuple[int, float, float, float]]) -> str:
    lines = [
        "| claimed | tick, held | `_raise_mark`, held | pop(100), held"
        " | tick, not held | `_raise_mark`, not held | pop(100), not held |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (claimed, *with_hold), (_, *without) in zip(held, free, strict=False):
        cells = " | ".join(f"{value:.1f} ms" for value in (*with_hold, *without))
        lines.append(f"| {claimed:,} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200_000, help="jobs pushed, then claimed")
    parser.add_argument("--every", type=int, default=20_000, help="claims between two timings")
    options = parser.parse_args(argv)
    with throwaway_cluster(log=lambda line: print(line, file=sys.stderr)) as cluster:
        held = measure(cluster.create_database("tick_cost_held"), True, options.jobs, options.every)
        free = measure(cluster.create_database("tick_cost_free"), False, options.jobs, options.every)
    print(report(held, free))
    return 0


if __name__ == "__main__":
    sys.exit(main())
