"""Enqueue: one job per transaction (1 and 4 clients) and bulk
(1,000 jobs per call), on pgtq and on the hand-written queue. One job per
transaction also with the producer's opt-out of the wake-up
(``SET pgtq.notify = 'off'``, ``pgtq-sql-quiet``): a notification makes the
commits of the clients take turns.

One job per transaction is measured in SINGLE_ROUNDS rounds, the kinds in
turn (each round in the other order), and each figure is the median of its
rounds: a measurement takes about a second, and one slow spell of this
shared machine moved a single one by 10% (the same schema, 2026-12-04).

pgtq's bulk is measured three ways: ``pgtq.push_many`` (1,000 jobs per
call), one statement calling ``pgtq.push`` for each element of an array
(``unnest``), and ``executemany`` of ``push`` (psycopg pipeline mode) in one
transaction; the report takes the best. The Python API's ``PgTq.push_many``
(1,000 jobs per call) is reported on its own line, as ``PgTq.push`` is.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench import baseline, pgtq_sql
from bench.context import QUEUE, TASK, Context, log
from bench.scenarios.clients import run_clients
from bench.stats import in_rounds, rate

SINGLE_KINDS = ("base-insert", "base-insert-notify", "pgtq-sql", "pgtq-sql-quiet", "pgtq-python")
SINGLE_ROUNDS = 3
BULK_KINDS = (
    "base-unnest",
    "base-copy",
    "pgtq-push-many",
    "pgtq-unnest",
    "pgtq-executemany",
    "pgtq-python-many",
)
PYTHON_KINDS = ("pgtq-python", "pgtq-python-many")  # through the Python API of the code under test


def enqueue_client(
    kind: str,
    dsn: str,
    first: int,
    count: int,
    per_call: int,
    code_dir: str | None = None,
    *,
    prepare_only: bool = False,
    prepared: Any = None,
) -> Any:
    """One client: push jobs ``first .. first+count-1`` the way ``kind`` says
    (the Python API from ``code_dir``, the code under test, when given)."""
    if prepare_only:
        if kind in PYTHON_KINDS:
            if code_dir is not None and "pgtq" not in sys.modules:
                sys.path.insert(0, code_dir)
            import pgtq

            q = pgtq.PgTq(QUEUE, dsn)
            q.push(TASK, [-1 - first])  # warm-up job (seq < 0), also opens the connection
            return q
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute("SELECT 1")
        if kind == "pgtq-sql-quiet":  # the producer's opt-out of the wake-up (schema 0.6.0)
            conn.execute("SET pgtq.notify = 'off'")
        return conn
    if kind == "pgtq-python":
        for seq in range(first, first + count):
            prepared.push(TASK, [seq])
        prepared.close()
        return count
    if kind == "pgtq-python-many":
        for start in range(first, first + count, per_call):
            prepared.push_many(TASK, [[seq] for seq in range(start, min(start + per_call, first + count))])
        prepared.close()
        return count
    conn: psycopg.Connection[Any] = prepared
    with conn:
        if kind in SINGLE_KINDS:
            _single(conn, kind, first, count)
        else:
            _bulk(conn, kind, first, count, per_call)
    return count


def _single(conn: psycopg.Connection[Any], kind: str, first: int, count: int) -> None:
    cur = conn.cursor()
    for seq in range(first, first + count):
        args = Jsonb([seq])
        if kind == "base-insert":
            cur.execute(baseline.INSERT, (QUEUE, TASK, args), prepare=True)
        elif kind == "base-insert-notify":
            cur.execute(baseline.INSERT_NOTIFY, (QUEUE, TASK, args, QUEUE), prepare=True)
        else:
            cur.execute(pgtq_sql.PUSH, (QUEUE, TASK, args), prepare=True)


def _bulk(conn: psycopg.Connection[Any], kind: str, first: int, count: int, per_call: int) -> None:
    cur = conn.cursor()
    for start in range(first, first + count, per_call):
        seqs = range(start, min(start + per_call, first + count))
        if kind == "base-unnest":
            cur.execute(baseline.INSERT_UNNEST, (QUEUE, TASK, [Jsonb([s]) for s in seqs]))
        elif kind == "pgtq-push-many":
            cur.execute(pgtq_sql.PUSH_MANY, (QUEUE, TASK, [Jsonb([s]) for s in seqs]))
        elif kind == "pgtq-unnest":
            cur.execute(pgtq_sql.PUSH_UNNEST, (QUEUE, TASK, [Jsonb([s]) for s in seqs]))
        elif kind == "base-copy":
            with conn.transaction(), cur.copy(baseline.COPY) as copy:
                for s in seqs:
                    copy.write_row((QUEUE, TASK, json.dumps([s])))
        elif kind == "pgtq-executemany":
            with conn.transaction():
                cur.executemany(pgtq_sql.PUSH, [(QUEUE, TASK, Jsonb([s])) for s in seqs])
        else:
            raise ValueError(kind)


def _reset(ctx: Context) -> None:
    ctx.execute(pgtq_sql.RESET)
    ctx.execute(baseline.RESET)
    ctx.execute("VACUUM ANALYZE pgtq._job")
    ctx.execute("VACUUM ANALYZE bench_base.job")
    ctx.checkpoint()


def _check(ctx: Context, kind: str, expected: int) -> dict[str, Any]:
    if kind.startswith("base"):
        rows = ctx.execute(
            "SELECT count(*), count(DISTINCT args) FROM bench_base.job WHERE (args->>0)::int >= 0"
        )
    else:
        rows = ctx.execute(
            "SELECT count(*), count(DISTINCT args) FROM pgtq.jobs WHERE queue = %s AND (args->>0)::int >= 0",
            [QUEUE],
        )
    total, distinct = rows[0]
    return {"ok": total == expected and distinct == expected, "rows": total, "distinct": distinct}


def measure(ctx: Context, kind: str, clients: int, total: int, per_call: int = 1) -> dict[str, Any]:
    """Push ``total`` jobs with ``clients`` processes; jobs per second."""
    _reset(ctx)
    share = total // clients
    code_dir = str(ctx.code_dir) if ctx.code_dir else None
    args = [(kind, ctx.dsn, i * share, share, per_call, code_dir) for i in range(clients)]
    outcome = run_clients(enqueue_client, args)
    count = share * clients
    result = {
        "system": _system(kind),
        "kind": kind,
        "clients": clients,
        "per_call": per_call,
        "jobs": count,
        "seconds": round(outcome["seconds"], 3),
        "jobs_per_s": rate(count, outcome["seconds"]),
        "correct": _check(ctx, kind, count),
    }
    log(f"enqueue {kind} x{clients} per_call={per_call}: {result['jobs_per_s']:.0f} jobs/s")
    return result


def _system(kind: str) -> str:
    return "baseline" if kind.startswith("base") else "pgtq"


def run(ctx: Context, systems: Sequence[str] = ("baseline", "pgtq")) -> list[dict[str, Any]]:
    """Every enqueue variant (of these systems: ``pgtq`` alone for a
    ``--baseline`` ref)."""
    sizes = ctx.sizes
    results = []
    kinds = [kind for kind in SINGLE_KINDS if _system(kind) in systems]
    for clients in (1, 4):
        results += in_rounds(
            kinds,
            SINGLE_ROUNDS,
            lambda kind, clients=clients: measure(ctx, kind, clients, sizes.enqueue_single),
        )
    for kind in BULK_KINDS:
        if _system(kind) in systems:
            results.append(measure(ctx, kind, 1, sizes.enqueue_bulk, sizes.bulk_per_call))
    _reset(ctx)
    return results
