"""What the operators' reads cost by live jobs: ``metrics()``, ``health()``, ``pgtq.queues``.

    make bench-metrics-cost [BENCH_ARGS="--sizes 10000,100000,1000000 --queues 10 --rounds 5"]

Self-contained: its own durable throwaway cluster (bench/cluster.py),
stopped by pid at the end. The job table is filled with ready jobs, spread
over ``--queues`` queues (``pgtq.push_many``), up to each of ``--sizes``
live jobs in turn, and vacuumed (as autovacuum would leave it); then each
read is timed ``--rounds`` times from one client, and the median printed:

* ``pgtq.metrics()``: what each Prometheus scrape of each worker's
  ``--metrics-port`` and each refresh of the dashboard's metrics reads. It
  counts the live jobs by queue and state, one pass over their partial
  indexes, so it grows with them;
* ``pgtq.health()``: what ``pgtq doctor`` and the dashboard's health read;
  it looks at the next ready job of each queue, not at every job;
* ``SELECT * FROM pgtq.queues``: the view behind ``pgtq queues``.

Compare within one run: this shared machine moves single figures by 10%
and more.
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

READS = {
    "pgtq.metrics()": "SELECT count(*) FROM pgtq.metrics()",
    "pgtq.health()": "SELECT count(*) FROM pgtq.health()",
    "pgtq.queues": "SELECT count(*) FROM pgtq.queues",
}


def fill(conn: psycopg.Connection[Any], live: int, queues: int) -> None:
    """Push ready jobs, spread evenly over ``queues`` queues, until the
    table holds ``live``; then vacuum it."""
    have = int(conn.execute("SELECT count(*) FROM pgtq._job").fetchone()[0])
    each = (live - have) // queues
    for number in range(queues):
        conn.execute(
            "SELECT count(*) FROM pgtq.push_many(%s, 'noop',"
            " (SELECT array_agg(jsonb_build_array(s)) FROM generate_series(1, %s) AS s))",
            [f"q{number}", each],
        )
    conn.execute("VACUUM ANALYZE pgtq._job")


def timed_ms(conn: psycopg.Connection[Any], statement: str) -> float:
    started = time.perf_counter()
    conn.execute(statement).fetchall()
    return (time.perf_counter() - started) * 1000


def measure(dsn: str, sizes: list[int], queues: int, rounds: int) -> dict[int, dict[str, float]]:
    figures: dict[int, dict[str, float]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for live in sizes:
            fill(conn, live, queues)
            figures[live] = {
                name: statistics.median(timed_ms(conn, statement) for _ in range(rounds))
                for name, statement in READS.items()
            }
            print(f"{live:,} live jobs measured", file=sys.stderr)
    return figures


def report(figures: dict[int, dict[str, float]], queues: int, rounds: int) -> str:
    lines = [
        f"Milliseconds per read, median of {rounds}, by ready jobs in {queues} queues (vacuumed):",
        "",
        "| read | " + " | ".join(f"{live:,} jobs" for live in figures) + " |",
        "|---|" + "---:|" * len(figures),
    ]
    for name in READS:
        lines.append(f"| `{name}` | " + " | ".join(f"{figures[live][name]:,.1f}" for live in figures) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="live jobs, comma-separated, growing")
    parser.add_argument("--queues", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args(argv)
    sizes = [int(size) for size in options.sizes.split(",")]
    if sizes != sorted(sizes) or sizes[0] < options.queues:
        parser.error("--sizes must grow, from at least --queues jobs")
    with throwaway_cluster(log=lambda line: print(line, file=sys.stderr)) as cluster:
        dsn = cluster.create_database("metrics_cost")
        upgrade(dsn)
        figures = measure(dsn, sizes, options.queues, options.rounds)
    print(report(figures, options.queues, options.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
