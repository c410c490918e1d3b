"""Load and bloat: a long run of jobs through push, pop and complete with
retention pruning on, reporting table and index sizes as it goes.

    python -m bench.bloat [--jobs 1000000] [--every 100000] [--retention 5]
    (`make bench-bloat`)

It starts its own durable throwaway cluster. In chunks it pushes jobs (one
transaction per chunk), drains them with ``pgtq.pop(n => 100)`` and
``pgtq.complete`` (pipelined), and calls ``pgtq.prune`` for jobs finished more
than ``--retention`` seconds ago. Every ``--every`` jobs it records the size
of ``pgtq._job`` and each index, the dead tuples, and the latency of a
single ``pop`` (median of 200). It passes when sizes stay
bounded and the last pop latency is within 2x of the first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.cluster import throwaway_cluster
from pgtq.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results"
QUEUE = "bloat"

SIZES = """
SELECT pg_relation_size('pgtq._job'),
       pg_total_relation_size('pgtq._job'),
       (SELECT json_object_agg(indexrelname, pg_relation_size(indexrelid))
        FROM pg_stat_user_indexes WHERE schemaname = 'pgtq' AND relname = '_job'),
       (SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = 'pgtq' AND relname = '_job'),
       (SELECT n_live_tup FROM pg_stat_user_tables WHERE schemaname = 'pgtq' AND relname = '_job'),
       (SELECT autovacuum_count FROM pg_stat_user_tables WHERE schemaname = 'pgtq' AND relname = '_job')
"""


@dataclass(frozen=True)
class Checkpoint:
    """The state of the job table after ``jobs`` jobs went through."""

    jobs: int
    seconds: float
    table_bytes: int
    total_bytes: int
    index_bytes: dict[str, int]
    dead_tuples: int
    live_tuples: int
    autovacuums: int
    pop_p50_ms: float
    pop_p95_ms: float


def push_chunk(conn: psycopg.Connection[Any], count: int) -> None:
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(
            "SELECT pgtq.push(%s, 'noop', jsonb_build_array(%s::int))", [(QUEUE, n) for n in range(count)]
        )


def drain(conn: psycopg.Connection[Any], batch: int = 100) -> int:
    drained = 0
    while True:
        claimed = conn.execute(
            "SELECT id, lease FROM pgtq.pop(%s, 'bloat', n => %s)", (QUEUE, batch)
        ).fetchall()
        if not claimed:
            return drained
        with conn.transaction(), conn.cursor() as cursor:  # one commit per batch, as a worker does
            cursor.executemany("SELECT pgtq.complete(%s, %s)", claimed)
        drained += len(claimed)


def pop_latency(conn: psycopg.Connection[Any], samples: int = 200) -> tuple[float, float]:
    """Median and p95 of one ``pop`` call, in milliseconds: the cost of
    finding and claiming the next job, which is what bloat slows down. The
    commit (a WAL flush, the disk's business) is left out of the timing."""
    push_chunk(conn, samples)
    timings = []
    for _ in range(samples):
        with conn.transaction():
            started = time.perf_counter()
            row = conn.execute("SELECT id, lease FROM pgtq.pop(%s, 'probe')", (QUEUE,)).fetchone()
            timings.append((time.perf_counter() - started) * 1000)
            conn.execute("SELECT pgtq.complete(%s, %s)", row)
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1]


def checkpoint(conn: psycopg.Connection[Any], jobs: int, started: float) -> Checkpoint:
    p50, p95 = pop_latency(conn)
    conn.execute("SELECT pg_stat_force_next_flush()")
    table, total, indexes, dead, live, autovacuums = conn.execute(SIZES).fetchone()  # type: ignore[misc]
    return Checkpoint(
        jobs, time.monotonic() - started, table, total, indexes, dead, live, autovacuums, p50, p95
    )


def run(options: argparse.Namespace) -> int:
    with throwaway_cluster(log=lambda line: print(f"bloat: {line}", flush=True)) as cluster:
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
            admin.execute(f"ALTER SYSTEM SET autovacuum_naptime = '{int(options.naptime)}s'")
            admin.execute("SELECT pg_reload_conf()")
        print(f"bloat: autovacuum_naptime = {int(options.naptime)} s", flush=True)
        dsn = cluster.create_database("pgtq_bloat")
        upgrade(dsn)
        points: list[Checkpoint] = []
        with psycopg.connect(dsn, autocommit=True) as conn:
            started = time.monotonic()
            points.append(checkpoint(conn, 0, started))
            print_point(points[-1])
            done = 0
            while done < options.jobs:
                push_chunk(conn, options.chunk)
                done += drain(conn)
                conn.execute("SELECT pgtq.prune(make_interval(secs => %s))", (options.retention,))
                if done % options.every == 0:
                    points.append(checkpoint(conn, done, started))
                    print_point(points[-1])
        return report(points, options)


def print_point(point: Checkpoint) -> None:
    indexes = ", ".join(f"{name} {size // 1024} KiB" for name, size in sorted(point.index_bytes.items()))
    print(
        f"bloat: {point.jobs:>9} jobs {point.seconds:7.1f}s  table {point.table_bytes // 1024:>7} KiB"
        f"  total {point.total_bytes // 1024:>7} KiB  dead {point.dead_tuples:>7}"
        f"  pop p50 {point.pop_p50_ms:.2f} ms p95 {point.pop_p95_ms:.2f} ms  [{indexes}]",
        flush=True,
    )


def report(points: list[Checkpoint], options: argparse.Namespace) -> int:
    first, last = points[0], points[-1]
    biggest = max(point.total_bytes for point in points[1:] or points)
    latency_ratio = last.pop_p50_ms / first.pop_p50_ms
    # Bounded: the table stops growing once pruning keeps pace (the last
    # size is no bigger than 1.5x the largest seen in the first half).
    early = max(point.total_bytes for point in points[: max(2, len(points) // 2)])
    bounded = last.total_bytes <= 1.5 * early
    ok = bounded and latency_ratio <= 2.0
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"bloat-{stamp}.json").write_text(
        json.dumps({"options": vars(options), "points": [asdict(p) for p in points]}, indent=2)
    )
    lines = [
        f"# Load and bloat, {stamp}",
        "",
        f"`python -m bench.bloat --jobs {options.jobs} --every {options.every}"
        f" --retention {options.retention} --naptime {options.naptime}`",
        "",
        "| jobs | seconds | table KiB | table+indexes KiB | dead tuples | pop p50 ms | p95 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {p.jobs} | {p.seconds:.0f} | {p.table_bytes // 1024} | {p.total_bytes // 1024} |"
            f" {p.dead_tuples} | {p.pop_p50_ms:.2f} | {p.pop_p95_ms:.2f} |"
            for p in points
        ),
        "",
        f"Largest size {biggest // 1024} KiB; last pop latency {latency_ratio:.2f}x the first"
        f" ({'bounded' if bounded else 'GROWING'}; {'OK' if ok else 'FAILED'}).",
    ]
    (RESULTS / f"bloat-{stamp}.md").write_text("\n".join(lines) + "\n")
    verdict = "OK" if ok else "FAILED"
    print(f"bloat: sizes {'bounded' if bounded else 'GROWING'}, latency x{latency_ratio:.2f}: {verdict}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=100_000, help="report every N jobs")
    parser.add_argument("--chunk", type=int, default=10_000, help="jobs pushed per transaction")
    parser.add_argument(
        "--naptime", type=int, default=10, help="server autovacuum_naptime in seconds (README: Vacuum)"
    )
    parser.add_argument(
        "--retention", type=float, default=5.0, help="prune jobs finished this many seconds ago"
    )
    options = parser.parse_args(argv)
    if options.every % options.chunk or options.jobs % options.every:
        parser.error("--every must be a multiple of --chunk, and --jobs of --every")
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
