"""Where a claim's server time goes: the job table's indexes and width (issue 10).

    make bench-claim-cost [BENCH_ARGS="--rounds 9 --jobs 3000"]

Self-contained: its own durable throwaway cluster (bench/cluster.py),
stopped by pid at the end. The claim of ``pgtq.pop`` (the same statement:
FOR UPDATE SKIP LOCKED in a MATERIALIZED step, then an UPDATE that writes
the columns a claim writes) runs in a server-side loop, one claim per
transaction (``synchronous_commit = off``: the WAL flush, equal for all,
stays out) with pop's settings (generic plans, no sequential scans), on
four copies of the job table:

* ``pgtq._job as is``: its columns, the lease CHECK and every index;
* ``2 indexes``: its columns, the primary key, the ready index and the
  finished index only (what the hand-written queue has);
* ``narrow, 2 indexes``: the 15 columns a queue without pgtq's features
  would keep, with those two indexes;
* ``narrow, every index``: those 15 columns with all of pgtq's indexes.

Then the same for ``pgtq.pop`` itself on ``pgtq._job`` (the function's own
cost on top of its statement). Each figure is microseconds per claim, the
median of ``--rounds`` rounds (the tables in turn), at 1, 25 and 100 jobs
per claim. Each round claims from a table just filled and vacuumed; its
claims step over the index entries of those claimed before them in the
round (nothing vacuums in between), alike for every table, and a small
``--jobs`` keeps that walk short. A partial index whose predicate a row fails still costs every
statement (the index is opened and its predicate prepared) and every row
(the predicate is evaluated), so the difference between the first two
rows is what pgtq's seven feature indexes (scheduled, running, job keys,
failed, lock keys) cost a claim. Compare within one run: this shared
machine moves single figures by 10%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench.cluster import throwaway_cluster
from pgtq.migrate import upgrade

SIZES = (1, 25, 100)

# pgtq's secondary indexes (sql/pgtq.sql), on a copy named {table}.
INDEXES = {
    "ready": "CREATE INDEX ON {table} (queue, priority DESC, id) WHERE state = 'ready'",
    "finished": "CREATE INDEX ON {table} (finished_at) WHERE state IN ('done', 'failed', 'cancelled')",
    "scheduled": "CREATE INDEX ON {table} (run_at) WHERE state = 'scheduled'",
    "running": "CREATE INDEX ON {table} (queue, lease_expires_at) WHERE state = 'running'",
    "key_pending": (
        "CREATE UNIQUE INDEX ON {table} (queue, job_key)"
        " WHERE job_key IS NOT NULL AND state IN ('scheduled', 'ready')"
    ),
    "failed": "CREATE INDEX ON {table} (queue, task, id) WHERE state = 'failed'",
    "lock_key_running": "CREATE INDEX ON {table} (lock_key) WHERE state = 'running' AND lock_key IS NOT NULL",
    "lock_key_ready": (
        "CREATE INDEX ON {table} (lock_key, priority DESC, id) WHERE state = 'ready' AND lock_key IS NOT NULL"
    ),
    "keyed_ready": "CREATE INDEX ON {table} (queue) WHERE state = 'ready' AND lock_key IS NOT NULL",
}
TWO = ("ready", "finished")

NARROW_COLUMNS = (
    "id bigint NOT NULL, queue text NOT NULL, task text NOT NULL, args jsonb NOT NULL,"
    " state pgtq.job_state NOT NULL, priority integer NOT NULL DEFAULT 0, attempt integer NOT NULL DEFAULT 0,"
    " run_at timestamptz NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), started_at timestamptz,"
    " finished_at timestamptz, lease uuid, lease_expires_at timestamptz, worker text, job_key text,"
    " lock_key text"
)
LEASE_CHECK = "CHECK ((state = 'running') = (lease IS NOT NULL AND lease_expires_at IS NOT NULL))"

# name: (narrow columns?, indexes); every copy has the lease CHECK.
COPIES: dict[str, tuple[bool, tuple[str, ...]]] = {
    "pgtq._job as is (copy)": (False, tuple(INDEXES)),
    "2 indexes": (False, TWO),
    "narrow, 2 indexes": (True, TWO),
    "narrow, every index": (True, tuple(INDEXES)),
}
POP = "pgtq.pop (the function, on pgtq._job)"

# pop's claim, in its form (the ids as an array, one probe of the primary
# key each), run with pop's settings (per_claim).
CLAIM = """
WITH claimable AS MATERIALIZED (
    SELECT c.id FROM {table} AS c
    WHERE c.queue = 'bench' AND c.state = 'ready' AND c.lock_key IS NULL
    ORDER BY c.priority DESC, c.id LIMIT n FOR UPDATE SKIP LOCKED)
UPDATE {table} AS j
SET state = 'running', attempt = j.attempt + 1, lease = gen_random_uuid(),
    lease_expires_at = now() + interval '5 minutes', started_at = now(), worker = 'bench'
WHERE j.id = ANY (ARRAY(SELECT claimable.id FROM claimable))
"""
# pop's own settings (its SET clauses), for the copies' claims too: a
# procedure that commits may not have SET clauses, so the session sets them.
POP_SETTINGS = ("plan_cache_mode = force_generic_plan", "enable_seqscan = off", "jit = off")


def create_copy(conn: psycopg.Connection[Any], number: int, narrow: bool, indexes: tuple[str, ...]) -> str:
    """A copy of the job table (or a narrow one) with these indexes, and a
    procedure ``claims_<number>(calls, n)`` that claims n jobs per
    transaction, calls times."""
    table = f"public.job_copy_{number}"
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    if narrow:
        conn.execute(f"CREATE TABLE {table} ({NARROW_COLUMNS}) WITH (fillfactor = 85)")
    else:
        conn.execute(f"CREATE TABLE {table} (LIKE pgtq._job INCLUDING DEFAULTS) WITH (fillfactor = 85)")
    conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id), ADD {LEASE_CHECK}")
    for name in indexes:
        conn.execute(INDEXES[name].format(table=table))
    _loop(conn, f"claims_{number}", CLAIM.format(table=table))
    return table


def _loop(conn: psycopg.Connection[Any], name: str, statement: str) -> None:
    conn.execute(
        f"CREATE OR REPLACE PROCEDURE public.{name}(calls integer, n integer) LANGUAGE plpgsql AS $$"
        f" BEGIN FOR i IN 1 .. calls LOOP {statement}; COMMIT; END LOOP; END $$"
    )


def fill_copy(conn: psycopg.Connection[Any], table: str, jobs: int) -> None:
    conn.execute(f"TRUNCATE {table}")
    conn.execute(
        f"INSERT INTO {table} (id, queue, task, args, state, run_at)"
        " SELECT s, 'bench', 'noop', jsonb_build_array(s), 'ready', now() FROM generate_series(1, %s) AS s",
        [jobs],
    )
    conn.execute(f"VACUUM ANALYZE {table}")


def fill_pgtq(conn: psycopg.Connection[Any], jobs: int) -> None:
    conn.execute("TRUNCATE pgtq._job")
    conn.execute(
        "SELECT count(pgtq.push(queue => 'bench', task => 'noop', args => jsonb_build_array(s)))"
        " FROM generate_series(1, %s) AS s",
        [jobs],
    )
    conn.execute("VACUUM ANALYZE pgtq._job")
    conn.execute("SELECT pgtq.tick()")  # the queue's ready mark, as a worker's tick sets it


def per_claim(
    conn: psycopg.Connection[Any], procedure: str, calls: int, n: int, check: Callable[[], int]
) -> float:
    """Microseconds per claim of ``n`` jobs, ``calls`` claims in a row."""
    for setting in ("synchronous_commit = off", *POP_SETTINGS):
        conn.execute(f"SET {setting}")
    started = time.perf_counter()
    conn.execute(f"CALL public.{procedure}(%s, %s)", [calls, n])
    seconds = time.perf_counter() - started
    conn.execute("RESET ALL")
    claimed = check()
    if claimed != calls * n:
        raise RuntimeError(f"{procedure}: claimed {claimed}, expected {calls * n}")
    return seconds / calls * 1e6


def measure(dsn: str, rounds: int, jobs: int) -> dict[tuple[str, int], list[float]]:
    figures: dict[tuple[str, int], list[float]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = {
            name: create_copy(conn, number, narrow, indexes)
            for number, (name, (narrow, indexes)) in enumerate(COPIES.items())
        }
        _loop(conn, "claims_pop", "PERFORM count(*) FROM pgtq.pop('bench', 'bench', n, '5 minutes')")

        def running(table: str) -> Callable[[], int]:
            return lambda: int(
                conn.execute(f"SELECT count(*) FROM {table} WHERE state = 'running'").fetchone()[0]
            )

        for n in SIZES:
            calls = max(1, jobs // n)
            for _ in range(rounds):
                for number, (name, table) in enumerate(tables.items()):
                    fill_copy(conn, table, calls * n + 10)
                    figures.setdefault((name, n), []).append(
                        per_claim(conn, f"claims_{number}", calls, n, running(table))
                    )
                fill_pgtq(conn, calls * n + 10)
                figures.setdefault((POP, n), []).append(
                    per_claim(conn, "claims_pop", calls, n, running("pgtq._job"))
                )
            print(f"claims of {n} measured", file=sys.stderr)
    return figures


def report(figures: dict[tuple[str, int], list[float]], rounds: int, jobs: int) -> str:
    lines = [
        "Server time per claim, one claim per transaction (synchronous_commit off),"
        f" median of {rounds} rounds, {jobs:,} jobs per round (microseconds; per job in brackets):",
        "",
        "| table | " + " | ".join(f"claims of {n}" for n in SIZES) + " |",
        "|---|" + "---:|" * len(SIZES),
    ]
    for name in (*COPIES, POP):
        cells = []
        for n in SIZES:
            value = statistics.median(figures[(name, n)])
            cells.append(f"{value:,.0f} ({value / n:.1f})" if n > 1 else f"{value:,.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--jobs", type=int, default=3_000, help="jobs claimed per round and table")
    options = parser.parse_args(argv)
    with throwaway_cluster(log=lambda line: print(line, file=sys.stderr)) as cluster:
        dsn = cluster.create_database("claim_cost")
        upgrade(dsn)
        figures = measure(dsn, options.rounds, options.jobs)
    print(report(figures, options.rounds, options.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
