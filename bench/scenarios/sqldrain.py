"""SQL-only drain: the cost of pgtq's SQL API against the
hand-written claim, with no Python handler in between.

Each client process loops: claim a batch, complete it, until the queue is
empty. pgtq claims with ``pgtq.pop(n)`` and completes through
``pgtq.complete`` in three ways: one autocommit call per job ("each"), every
call of the batch in one pipelined transaction ("pipeline"), or one statement
over the batch ("unnest"), or ``pgtq.complete_many`` ("complete-many"). A
fifth kind ("complete-and-pop") completes each batch and claims the next in
one ``pgtq.complete_many_and_pop`` call, one transaction per batch, as the
worker does. The hand-written queue claims with a literal
LIMIT and completes the batch with one UPDATE.
"""

from __future__ import annotations

from typing import Any

import psycopg

from bench import baseline, pgtq_sql
from bench.context import QUEUE, Context, log
from bench.scenarios.clients import run_clients
from bench.scenarios.drain import QueueOps, baseline_ops, pgtq_ops
from bench.stats import in_rounds, rate

PROCESSES = 2
# Nine since 2026-12-07 (five since 2026-12-06, three before): a drain of
# 20,000 jobs takes under half a second, and the ceiling's five rounds of
# one run spread from 46,751 to 69,572 jobs/s (three: 32,492 to 59,230), so
# one fast or slow spell moved a median of five by a fifth.
HEADLINE_ROUNDS = 9


def drain_client(kind: str, dsn: str, batch: int, *, prepare_only: bool = False, prepared: Any = None) -> Any:
    """Claim and complete until the queue is empty; return how many."""
    if prepare_only:
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute("SELECT 1")
        return conn
    conn: psycopg.Connection[Any] = prepared
    done = 0
    with conn:
        cur = conn.cursor()
        if kind == "baseline":
            claim = baseline.claim_sql(batch)
            while rows := cur.execute(claim, [QUEUE], prepare=True).fetchall():
                cur.execute(baseline.COMPLETE_MANY, [[row[0] for row in rows]], prepare=True)
                done += len(rows)
            return done
        if kind == "pgtq-complete-and-pop":
            return _drain_combined(cur, batch)
        while rows := cur.execute(pgtq_sql.POP, (QUEUE, "sql-drain", batch), prepare=True).fetchall():
            if kind == "pgtq-each":
                for job_id, lease in rows:
                    cur.execute(pgtq_sql.COMPLETE, (job_id, lease), prepare=True)
            elif kind == "pgtq-pipeline":
                with conn.transaction():
                    cur.executemany(pgtq_sql.COMPLETE, rows)
            elif kind == "pgtq-unnest":
                ids, leases = zip(*rows, strict=True)
                cur.execute(pgtq_sql.COMPLETE_UNNEST, (list(ids), list(leases)), prepare=True)
            elif kind == "pgtq-complete-many":
                ids, leases = zip(*rows, strict=True)
                cur.execute(pgtq_sql.COMPLETE_MANY, (list(ids), list(leases)), prepare=True)
            else:
                raise ValueError(kind)
            done += len(rows)
    return done


def _drain_combined(cur: Any, batch: int) -> int:
    """Claim a batch, then complete each batch and claim the next in one
    statement until nothing is claimed back; return how many."""
    done = 0
    rows = cur.execute(pgtq_sql.POP, (QUEUE, "sql-drain", batch), prepare=True).fetchall()
    while rows:
        ids, leases = zip(*rows, strict=True)
        done += len(rows)
        rows = cur.execute(
            pgtq_sql.COMPLETE_MANY_AND_POP, (QUEUE, list(ids), list(leases), "sql-drain", batch), prepare=True
        ).fetchall()
    return done


def measure(
    ctx: Context, kind: str, batch: int, jobs: int, processes: int = PROCESSES, ops: QueueOps | None = None
) -> dict[str, Any]:
    """Drain ``jobs`` pre-enqueued jobs with ``processes`` SQL-only clients
    (``ops``: how to fill and audit the queue, when not the usual way)."""
    if ops is None:
        ops = baseline_ops(ctx) if kind == "baseline" else pgtq_ops(ctx)
    ops.preload(jobs)
    ctx.checkpoint()
    syncs_before = _wal_syncs(ctx)
    outcome = run_clients(drain_client, [(kind, ctx.dsn, batch)] * processes)
    wal_syncs = _wal_syncs(ctx) - syncs_before
    handled = sum(outcome["outcomes"])
    audit = ops.audit(jobs)
    result = {
        "system": "baseline" if kind == "baseline" else "pgtq",
        "kind": kind,
        "batch": batch,
        "processes": processes,
        "jobs": jobs,
        "seconds": round(outcome["seconds"], 3),
        "jobs_per_s": rate(handled, outcome["seconds"]),
        # WAL flushes during the drain: two clients whose commits share a
        # flush (group commit) drain faster than the same statements with a
        # flush each, so this tells a lucky drain from a cheaper one.
        "wal_syncs": wal_syncs,
        "correct": {"ok": handled == jobs and bool(audit["ok"]), "handled": handled, "table": audit},
    }
    log(
        f"sql drain {kind} batch={batch} x{processes}: {result['jobs_per_s']:.0f} jobs/s,"
        f" {wal_syncs} WAL flushes"
    )
    return result


def _wal_syncs(ctx: Context) -> int:
    """The server's WAL flushes so far (pg_stat_wal, all databases)."""
    return int(ctx.execute("SELECT wal_sync FROM pg_stat_wal")[0][0])


def run(ctx: Context) -> list[dict[str, Any]]:
    """Batch 1 and batch 100, pgtq's completion styles against the ceiling.
    The two headline pairs (batch 1: ``pgtq.complete`` per job; batch 100:
    ``pgtq.complete_many``, each against the hand-written pair) are the
    medians of HEADLINE_ROUNDS rounds, in turn (batch 100 also with
    ``complete_many_and_pop``, one transaction per batch): one drain takes
    well under a second, and single ones of the same code gave 61% to 97%
    of the ceiling at batch 100 (2026-12-04)."""
    sizes = ctx.sizes
    results = in_rounds(
        ("baseline", "pgtq-each"),
        HEADLINE_ROUNDS,
        lambda kind: measure(ctx, kind, 1, sizes.sql_drain_jobs_batch1),
    )
    results += in_rounds(
        ("baseline", "pgtq-complete-many", "pgtq-complete-and-pop"),
        HEADLINE_ROUNDS,
        lambda kind: measure(ctx, kind, 100, sizes.sql_drain_jobs_batch100),
    )
    for kind in ("pgtq-each", "pgtq-pipeline", "pgtq-unnest"):
        results.append(measure(ctx, kind, 100, sizes.sql_drain_jobs_batch100))
    ctx.execute(pgtq_sql.RESET)
    ctx.execute(baseline.RESET)
    return results
