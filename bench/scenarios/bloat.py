"""Load and bloat: a long stream of jobs through push, pop and complete with
retention pruning on, and the job table's size and pop's latency as it goes.

Not part of the default run (a million jobs take about 8 minutes here):
``make bench-bloat`` or ``python -m bench --only bloat`` runs it, with
``--bloat-jobs`` and ``--bloat-naptime`` to change its size and the server's
``autovacuum_naptime`` (the quick run uses 20,000 jobs).

In its own database on the harness's cluster it pushes jobs in chunks (one
transaction per chunk), drains them with ``pgtq.pop(n => 100)`` and
``pgtq.complete`` (pipelined, one commit per batch, as a worker does), and
calls ``pgtq.prune`` for jobs finished more than a few seconds ago. At the
start and every ``bloat_every`` jobs it records the size of the job table
and of each index, the dead tuples, and the latency of a single ``pop``
(median and p95 of 200, without the commit). It reports the figures: the
largest size, the last size against the largest of the first half, and the
last pop latency against the first.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from bench.context import Context, log
from bench.stats import ratio

DATABASE = "bench_bloat"
QUEUE = "bloat"
POP_SAMPLES = 200

PUSH = "SELECT pgtq.push(queue => %s::text, task => 'noop', args => jsonb_build_array(%s::int))"
POP = "SELECT id, lease FROM pgtq.pop(queue => %s::text, worker => %s::text, n => %s::integer)"
COMPLETE = "SELECT pgtq.complete(id => %s::bigint, lease => %s::uuid)"
PRUNE = "SELECT pgtq.prune(older_than => make_interval(secs => %s))"
LEFT = "SELECT count(*) FROM pgtq.jobs WHERE queue = %s AND state <> 'done'"

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
class Point:
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
    """Push ``count`` jobs in one transaction."""
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(PUSH, [(QUEUE, n) for n in range(count)])


def drain(conn: psycopg.Connection[Any], batch: int = 100) -> int:
    """Pop and complete until the queue is empty; how many jobs."""
    drained = 0
    while claimed := conn.execute(POP, (QUEUE, "bloat", batch)).fetchall():
        with conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(COMPLETE, claimed)
        drained += len(claimed)
    return drained


def pop_latency(conn: psycopg.Connection[Any]) -> tuple[float, float]:
    """Median and p95 of one ``pop`` call, in milliseconds: the cost of
    finding and claiming the next job, which is what bloat slows down. The
    commit (a WAL flush, the disk's business) is left out of the timing."""
    push_chunk(conn, POP_SAMPLES)
    timings = []
    for _ in range(POP_SAMPLES):
        with conn.transaction():
            started = time.perf_counter()
            row = conn.execute(POP, (QUEUE, "probe", 1)).fetchone()
            timings.append((time.perf_counter() - started) * 1000)
            conn.execute(COMPLETE, row)
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1]


def measure_point(conn: psycopg.Connection[Any], jobs: int, started: float) -> Point:
    p50, p95 = pop_latency(conn)
    conn.execute("SELECT pg_stat_force_next_flush()")
    table, total, indexes, dead, live, autovacuums = conn.execute(SIZES).fetchone()  # type: ignore[misc]
    point = Point(jobs, time.monotonic() - started, table, total, indexes, dead, live, autovacuums, p50, p95)
    log(
        f"bloat: {point.jobs:>9} jobs {point.seconds:7.1f} s  table {point.table_bytes // 1024:>7} KiB"
        f"  total {point.total_bytes // 1024:>7} KiB  dead {point.dead_tuples:>7}"
        f"  pop p50 {point.pop_p50_ms:.2f} ms p95 {point.pop_p95_ms:.2f} ms"
    )
    return point


def set_naptime(ctx: Context, seconds: int | None) -> None:
    """Set the server's autovacuum_naptime, or reset it with None."""
    value = "DEFAULT" if seconds is None else f"'{int(seconds)}s'"
    ctx.execute(f"ALTER SYSTEM SET autovacuum_naptime = {value}", dsn=ctx.cluster.dsn())
    ctx.execute("SELECT pg_reload_conf()", dsn=ctx.cluster.dsn())


def summarise(points: list[Point], pushed: int, drained: int, left: int, sizes: Any) -> dict[str, Any]:
    """The figures of the run, and its points."""
    first, last = points[0], points[-1]
    first_half = points[: max(2, len(points) // 2)]
    return {
        "jobs": pushed,
        "every": sizes.bloat_every,
        "chunk": sizes.bloat_chunk,
        "retention_s": sizes.bloat_retention,
        "naptime_s": sizes.bloat_naptime,
        "largest_total_bytes": max(point.total_bytes for point in points),
        "last_vs_first_half_largest": ratio(last.total_bytes, max(p.total_bytes for p in first_half)),
        "pop_p50_last_vs_first": ratio(last.pop_p50_ms, first.pop_p50_ms),
        "points": [asdict(point) for point in points],
        "correct": {"ok": drained == pushed and left == 0, "drained": drained, "left": left},
    }


def run(ctx: Context) -> dict[str, Any]:
    """Push, drain and prune ``bloat_jobs`` jobs; sizes and pop latency."""
    from pgtq.migrate import upgrade

    sizes = ctx.sizes
    if sizes.bloat_every % sizes.bloat_chunk or sizes.bloat_jobs % sizes.bloat_every:
        raise ValueError("bloat: the job count must be a multiple of bloat_every, and that of bloat_chunk")
    dsn = ctx.cluster.create_database(DATABASE)
    upgrade(dsn)
    set_naptime(ctx, sizes.bloat_naptime)
    log(f"bloat: {sizes.bloat_jobs:,} jobs, autovacuum_naptime = {sizes.bloat_naptime} s")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            started = time.monotonic()
            points = [measure_point(conn, 0, started)]
            pushed = drained = 0
            while pushed < sizes.bloat_jobs:
                push_chunk(conn, sizes.bloat_chunk)
                pushed += sizes.bloat_chunk
                drained += drain(conn)
                conn.execute(PRUNE, (sizes.bloat_retention,))
                if pushed % sizes.bloat_every == 0:
                    points.append(measure_point(conn, pushed, started))
            left = int(conn.execute(LEFT, (QUEUE,)).fetchone()[0])  # type: ignore[index]
    finally:
        set_naptime(ctx, None)
    return summarise(points, pushed, drained, left, sizes)
