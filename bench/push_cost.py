"""Where a push's CPU goes: server and clients, and the parts of ``pgtq.push`` (issue 10).

    make bench-push-cost [BENCH_ARGS="--rounds 3 --jobs 3000"]

Self-contained: its own durable throwaway cluster (bench/cluster.py),
stopped by pid at the end. Every statement is one job in one transaction,
sent as a prepared statement from Python (psycopg), as the ``enqueue``
scenario sends it. The server's CPU is read from ``/proc``: the
postmaster's own time, that of its live children and that of the children
it has reaped (``cutime``, ``cstime``), so backends that end before the
reading still count.

* **4 clients, durable** (``synchronous_commit = on``): per job, the
  server's CPU, the clients' CPU, the WAL written and the jobs per WAL
  flush, for the raw INSERT into the hand-written table (the ``enqueue``
  scenario's ceiling), the same row inserted into ``pgtq._job`` by hand,
  a SECURITY DEFINER PL/pgSQL function with a pinned ``search_path``
  that only does that insert (what any such function costs),
  ``pgtq.push``, and ``pgtq.push`` with ``pgtq.notify = off``. On a
  machine where clients and server share the cores, the rate follows the
  sum of the two CPU figures.
* **1 client, server CPU per transaction** (``synchronous_commit = off``:
  the flush, the same for all, stays out): the same INSERTs and
  function, and ``pgtq.push`` beside copies of it, each with one part left out: the
  check of its options and payload, the announcement (``_must_announce``
  and the hand-off), the join that keeps ``max_payload_bytes``, and all
  three. The copies are made from ``pg_get_functiondef(pgtq.push)`` in a
  scratch schema; a part that cannot be found there stops the run with an
  error naming it.

Each figure is the median of ``--rounds`` rounds, the kinds in turn.
Compare within one run: this shared machine moves single figures by 10%.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench import baseline, pgtq_sql
from bench.cluster import throwaway_cluster
from bench.scenarios.clients import run_clients
from bench.stats import rounds_in_turns
from pgtq.migrate import upgrade

QUEUE, TASK = "bench", "noop"
CLIENTS = 4

# The row pgtq.push writes, inserted by hand (as the table's owner).
BARE_INSERT = (
    "INSERT INTO pgtq._job (queue, task, args, kwargs, state, priority, max_attempts, run_at, created_at,"
    " pushed_by) VALUES (%s, %s, %s, '{}', 'ready', 0, 25, now(), now(), session_user)"
)
WRAPPER_DDL = """
CREATE SCHEMA push_cost;
CREATE FUNCTION push_cost.insert_only(queue text, task text, args jsonb)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO pgtq._job (queue, task, args, kwargs, state, priority, max_attempts, run_at, created_at,
                           pushed_by)
    VALUES (insert_only.queue, insert_only.task, insert_only.args, '{}', 'ready', 0, 25, now(), now(),
            session_user)
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;
"""
PUSH_SIGNATURE = (
    "pgtq.push(text, text, jsonb, jsonb, timestamptz, integer, integer, text, text, interval, interval,"
    " text, timestamptz)"
)
# Where each part of push's body starts (and so where the one before it ends).
OPTIONS_START = "    IF NOT coalesce(pgtq._push_options_ok("
ANNOUNCE_START = "    -- A job due now,"
INSERT_START = "    -- The insert itself"
MISSING_ROW_START = "    IF new_id IS NULL THEN"
NOTIFY_START = "    IF announce THEN"
VALUES_INSERT = """    INSERT INTO pgtq._job AS j (queue, task, args, kwargs, state, priority, max_attempts,
                                run_at, created_at, backoff_base, backoff_cap, pushed_by, lock_key)
    VALUES (push.queue, push.task, push.args, push.kwargs,
            CASE WHEN coalesce(push.run_at, push.as_of) <= push.as_of
                 THEN 'ready'::pgtq.job_state ELSE 'scheduled'::pgtq.job_state END,
            push.priority, push.max_attempts, coalesce(push.run_at, push.as_of), push.as_of,
            push.backoff_base, push.backoff_cap, session_user, push.lock_key)
    RETURNING j.id INTO new_id;
"""
# name -> (leave out the checks, the announcement, the payload join)
PUSH_COPIES = {
    "push_copy": (False, False, False),
    "without_checks": (True, False, False),
    "without_announcement": (False, True, False),
    "without_payload_join": (False, False, True),
    "without_all_three": (True, True, True),
}

INSERT_ONLY = "SELECT push_cost.insert_only(%s::text, %s::text, %s::jsonb)"
DURABLE_KINDS = {
    "raw INSERT (hand-written table)": baseline.INSERT,
    "INSERT into pgtq._job": BARE_INSERT,
    "SECURITY DEFINER function, pinned search_path, the INSERT only": INSERT_ONLY,
    "pgtq.push": pgtq_sql.PUSH,
    "pgtq.push, pgtq.notify = off": pgtq_sql.PUSH,
}
SOLO_KINDS = {
    "raw INSERT (hand-written table)": baseline.INSERT,
    "INSERT into pgtq._job": BARE_INSERT,
    "SECURITY DEFINER function, pinned search_path, the INSERT only": INSERT_ONLY,
    "pgtq.push": pgtq_sql.PUSH,
    **{
        f"copy of pgtq.push{'' if name == 'push_copy' else ', ' + name.replace('_', ' ')}": (
            f"SELECT push_cost.{name}(queue => %s::text, task => %s::text, args => %s::jsonb)"
        )
        for name in PUSH_COPIES
    },
}


def push_copies(conn: psycopg.Connection[Any]) -> str:
    """DDL for the copies of pgtq.push in schema push_cost, each without some parts."""
    source = conn.execute("SELECT pg_get_functiondef(%s::regprocedure)", [PUSH_SIGNATURE]).fetchone()[0]
    marks = {}
    for name, mark in (
        ("options check", OPTIONS_START),
        ("announcement", ANNOUNCE_START),
        ("insert", INSERT_START),
        ("missing-row check", MISSING_ROW_START),
        ("notification", NOTIFY_START),
    ):
        if source.count(mark) != 1:
            raise RuntimeError(f"push_cost: the {name} of pgtq.push ({mark.strip()!r}) is not where it was")
        marks[name] = source.index(mark)
    head = source[: marks["options check"]]
    checks = source[marks["options check"] : marks["announcement"]]
    announcement = source[marks["announcement"] : marks["insert"]]
    insert = source[marks["insert"] : marks["notification"]]
    tail = source[marks["notification"] :]
    statements = []
    for name, (no_checks, no_announcement, no_join) in PUSH_COPIES.items():
        body = (
            head
            + ("" if no_checks else checks)
            + ("" if no_announcement else announcement)
            + (VALUES_INSERT if no_join else insert)
            + tail
        )
        body = body.replace("FUNCTION pgtq.push(", f"FUNCTION push_cost.{name}(", 1)
        statements.append(body.replace("push.", f"{name}.") + ";")
    return "\n".join(statements)


def server_cpu(postmaster: int) -> float:
    """Seconds of CPU of the server: the postmaster, its children, and the
    children it reaped."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile: the postmaster's cutime has it
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def client(
    sql: str,
    dsn: str,
    quiet: bool,
    first: int,
    count: int,
    *,
    prepare_only: bool = False,
    prepared: Any = None,
) -> Any:
    """One client: ``count`` one-job transactions of ``sql``; returns its own CPU seconds."""
    if prepare_only:
        conn = psycopg.connect(dsn, autocommit=True)
        if quiet:
            conn.execute("SET pgtq.notify = 'off'")
        conn.execute(sql, (QUEUE, TASK, Jsonb([-1 - first])), prepare=True)  # warm-up, not measured
        return conn
    before = resource.getrusage(resource.RUSAGE_SELF)
    cursor = prepared.cursor()
    for seq in range(first, first + count):
        cursor.execute(sql, (QUEUE, TASK, Jsonb([seq])), prepare=True)
    after = resource.getrusage(resource.RUSAGE_SELF)
    prepared.close()
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _reset(admin: psycopg.Connection[Any]) -> None:
    admin.execute(pgtq_sql.RESET)
    admin.execute(baseline.RESET)
    admin.execute("VACUUM ANALYZE pgtq._job")
    admin.execute("VACUUM ANALYZE bench_base.job")
    admin.execute("CHECKPOINT")


def measure(
    admin: psycopg.Connection[Any], postmaster: int, dsn: str, sql: str, clients: int, jobs: int, quiet: bool
) -> dict[str, float]:
    """One run of ``clients`` x ``jobs`` one-job transactions: rate and costs per job."""
    _reset(admin)
    lsn = admin.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    syncs = admin.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()[0]
    cpu = server_cpu(postmaster)
    outcome = run_clients(client, [(sql, dsn, quiet, i * jobs, jobs) for i in range(clients)])
    server = server_cpu(postmaster) - cpu
    wal = admin.execute("SELECT pg_current_wal_lsn() - %s::pg_lsn", [lsn]).fetchone()[0]
    flushes = admin.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()[0] - syncs
    total = clients * jobs
    return {
        "jobs_per_s": total / outcome["seconds"],
        "server_us": server / total * 1e6,
        "client_us": sum(outcome["outcomes"]) / total * 1e6,
        "wal_bytes": float(wal) / total,
        "jobs_per_flush": total / max(flushes, 1),
    }


def logged(name: str, figures: dict[str, float]) -> dict[str, float]:
    """``figures`` of one round of ``name``, also printed to stderr as they come."""
    print(f"{name}: {figures}", file=sys.stderr, flush=True)
    return figures


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def report(
    durable: dict[str, list[dict[str, float]]],
    solo: dict[str, list[dict[str, float]]],
    rounds: int,
    jobs: int,
    solo_jobs: int,
) -> str:
    """Both tables, as markdown."""
    raw = "raw INSERT (hand-written table)"
    lines = [
        f"## 4 clients, durable: {CLIENTS} x {jobs:,} one-job transactions, median of {rounds} rounds",
        "",
        "| statement | jobs/s | share of raw INSERT | server CPU, us/job | clients' CPU, us/job"
        " | WAL, bytes/job | jobs per WAL flush |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in durable.items():
        rate = _median(rows, "jobs_per_s")
        lines.append(
            f"| {name} | {rate:,.0f} | {rate / _median(durable[raw], 'jobs_per_s'):.0%}"
            f" | {_median(rows, 'server_us'):.0f} | {_median(rows, 'client_us'):.0f}"
            f" | {_median(rows, 'wal_bytes'):.0f} | {_median(rows, 'jobs_per_flush'):.2f} |"
        )
    lines += [
        "",
        f"## 1 client, synchronous_commit = off: server CPU per transaction, {solo_jobs:,} transactions,"
        f" median of {rounds} rounds",
        "",
        "| statement | server CPU, us/transaction | more than the INSERT into pgtq._job |",
        "|---|---:|---:|",
    ]
    bare = _median(solo["INSERT into pgtq._job"], "server_us")
    for name, rows in solo.items():
        value = _median(rows, "server_us")
        lines.append(f"| {name} | {value:.1f} | {value - bare:+.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--jobs", type=int, default=3_000, help="one-job transactions per client and round, 4 clients"
    )
    parser.add_argument(
        "--solo-jobs",
        type=int,
        default=20_000,
        help="one-job transactions per round, 1 client (the server's CPU is read in 10 ms ticks)",
    )
    options = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with throwaway_cluster(log=lambda line: print(line, file=sys.stderr)) as cluster:
        dsn = cluster.create_database("push_cost")
        upgrade(dsn)
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(baseline.SCHEMA_DDL)
            admin.execute(WRAPPER_DDL)
            admin.execute(push_copies(admin))
            postmaster = cluster.pid
            durable = rounds_in_turns(
                list(DURABLE_KINDS),
                options.rounds,
                lambda name: logged(
                    name,
                    measure(
                        admin,
                        postmaster,
                        dsn,
                        DURABLE_KINDS[name],
                        CLIENTS,
                        options.jobs,
                        quiet=name.endswith("off"),
                    ),
                ),
            )
            cluster.set_synchronous_commit("off")
            solo = rounds_in_turns(
                list(SOLO_KINDS),
                options.rounds,
                lambda name: logged(
                    name, measure(admin, postmaster, dsn, SOLO_KINDS[name], 1, options.solo_jobs, quiet=False)
                ),
            )
    print(f"# Where a push's CPU goes, {started}\n")
    print(report(durable, solo, options.rounds, options.jobs, options.solo_jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
