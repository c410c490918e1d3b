"""What idle workers make the server write.

    make bench-idle [BENCH_ARGS="--workers 4 --queues 2 --seconds 30"]

Self-contained: its own durable throwaway cluster (bench/cluster.py),
stopped by pid at the end. It starts ``--workers`` ``pgtq worker``
processes at their defaults, each serving ``--queues`` queues that get no
job, waits until all of them are registered and have ticked a few times,
then counts for ``--seconds`` what the server wrote: WAL bytes, the
transaction ids taken and the commits, per second, and the WAL records
by the table or index they touched (``pg_walinspect``). A worker ticks
each of its queues every second and renews its registration every ten.

Until schema 0.28.0 every tick wrote a new generation of its queue's
ready mark: a transaction id, about 430 bytes of WAL and a flush at
commit per tick, per worker and queue, on a server with nothing to do.
Since 0.28.0, while no job is pushed, the mark of an idle queue that says
so already stays as it is, and such a tick writes nothing. To measure an older version, run
this file from a checkout of it (``PYTHONPATH`` at that checkout).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.cluster import throwaway_cluster
from pgtq.migrate import upgrade

SETTLE_SECONDS = 5.0  # after every worker registered: their first ticks make the marks
START_DEADLINE = 60.0

COUNTERS = """
SELECT pg_current_wal_lsn(),
       pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
       (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())
"""

RECORDS = """
SELECT coalesce(pg_filenode_relation(0, substring(r.block_ref FROM 'rel [0-9]+/[0-9]+/([0-9]+)')::oid)::text,
                r.resource_manager) AS target,
       r.record_type, count(*), sum(r.record_length)
FROM pg_get_wal_records_info(%s, %s) AS r
GROUP BY 1, 2
ORDER BY 4 DESC
"""


def _app(folder: Path, queues: int, dsn: str) -> str:
    """Write the workers' module (one queue object per queue, a no-op
    handler each) and return its MODULE:OBJ arguments."""
    lines = ["import pgtq", ""]
    for index in range(queues):
        lines += [
            f"q{index} = pgtq.PgTq('idle{index}', {dsn!r})",
            "",
            f"@q{index}.handler()",
            f"def noop{index}() -> None:",
            "    return None",
            "",
        ]
    (folder / "idle_app.py").write_text("\n".join(lines))
    return " ".join(f"idle_app:q{index}" for index in range(queues))


def _wait_for_workers(
    conn: psycopg.Connection[Any], count: int, processes: list[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while conn.execute("SELECT count(*) FROM pgtq.workers").fetchone()[0] < count:  # type: ignore[index]
        if any(process.poll() is not None for process in processes):
            raise RuntimeError("a worker exited before it registered")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} workers did not register within {START_DEADLINE:.0f} s")
        time.sleep(0.1)


def measure(
    dsn: str, workers: int, queues: int, seconds: float
) -> tuple[dict[str, float], list[tuple[Any, ...]]]:
    """Per-second rates while ``workers`` idle workers run, and the WAL
    records written meanwhile, grouped."""
    upgrade(dsn)
    with (
        tempfile.TemporaryDirectory(prefix="pgtq-idle-") as folder,
        psycopg.connect(dsn, autocommit=True) as conn,
    ):
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        targets = _app(Path(folder), queues, dsn).split()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([folder, os.environ.get("PYTHONPATH", "")])}
        command = [sys.executable, "-m", "pgtq.cli", "--log-level", "WARNING", "worker", *targets]
        processes = [subprocess.Popen(command, env=env) for _ in range(workers)]
        try:
            _wait_for_workers(conn, workers, processes)
            time.sleep(SETTLE_SECONDS)
            wal_before, xid_before, commits_before = conn.execute(COUNTERS).fetchone()  # type: ignore[misc]
            started = time.monotonic()
            time.sleep(seconds)
            wal_after, xid_after, commits_after = conn.execute(COUNTERS).fetchone()  # type: ignore[misc]
            elapsed = time.monotonic() - started
            wal_bytes = float(
                conn.execute("SELECT pg_wal_lsn_diff(%s, %s)", [wal_after, wal_before]).fetchone()[0]
            )  # type: ignore[index]
            records = conn.execute(RECORDS, [wal_before, wal_after]).fetchall()
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=60)
    rates = {
        "WAL bytes/s": wal_bytes / elapsed,
        "transaction ids/s": (xid_after - xid_before) / elapsed,
        "commits/s": (commits_after - commits_before) / elapsed,
    }
    return rates, records


def report(
    options: argparse.Namespace, version: str, rates: dict[str, float], records: list[tuple[Any, ...]]
) -> str:
    lines = [
        f"{options.workers} idle worker(s) of {options.queues} queue(s) each, {options.seconds:.0f} s, "
        f"schema {version}",
        "",
        "| figure | per second |",
        "|---|---:|",
        *(f"| {name} | {value:,.1f} |" for name, value in rates.items()),
        "",
        "| WAL records of | type | records | bytes |",
        "|---|---|---:|---:|",
        *(f"| {target} | {kind} | {count:,} | {size:,} |" for target, kind, count, size in records),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=4, help="idle worker processes")
    parser.add_argument("--queues", type=int, default=2, help="queues each worker serves")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to count")
    options = parser.parse_args(argv)
    with throwaway_cluster(log=lambda line: print(line, file=sys.stderr)) as cluster:
        dsn = cluster.create_database("idle_cost")
        rates, records = measure(dsn, options.workers, options.queues, options.seconds)
        with psycopg.connect(dsn) as conn:
            version = conn.execute("SELECT pgtq.version()").fetchone()[0]  # type: ignore[index]
    print(report(options, version, rates, records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
