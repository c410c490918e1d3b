"""Dashboard job lists on a big table: the first, a middle and the last
page of each list, with EXPLAIN ANALYZE.

    python -m bench.paging [--finished 1000000] [--scheduled 5000] [--page 50]
    (`make bench-paging`)

It starts its own durable throwaway cluster, installs pgtq, and loads with
one bulk INSERT ``--finished`` finished jobs (98% done, 1% failed, 1%
cancelled; queues emails 60%, images 30%, reports 10%, and ``rare``, one
job in a thousand; seven tasks), spread over 30 days, plus 10,000 ready,
``--scheduled`` scheduled (a hundred per run_at) and 200 running jobs,
then VACUUM ANALYZE. For each list (state and filters) it finds the keys
where a middle page and the last page start, and runs the dashboard's own
statement (``pgtq._db.queries.job_page``, on a connection that prepares
nothing, as the dashboard's pool does) under ``EXPLAIN (ANALYZE,
BUFFERS)``: execution time, buffers and the index the plan walks. The
report goes to bench/results/paging-<date>.md and paging-latest.md (kept in git).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.cluster import throwaway_cluster
from pgtq._db import queries
from pgtq._inspection import JobFilter, ListOrder
from pgtq.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results"

# The finished jobs (one statement, with the count as parameter: % doubled),
# then the live ones.
LOAD_FINISHED = """
INSERT INTO pgtq._job (queue, task, args, state, attempt, run_at, created_at, started_at,
                       finished_at, worker, result, last_error)
SELECT CASE WHEN g %% 1000 = 0 THEN 'rare' WHEN g %% 10 < 6 THEN 'emails'
            WHEN g %% 10 < 9 THEN 'images' ELSE 'reports' END,
       'task_' || (g %% 7), jsonb_build_array(g),
       (CASE WHEN g %% 100 = 1 THEN 'failed' WHEN g %% 100 = 2 THEN 'cancelled'
             ELSE 'done' END)::pgtq.job_state,
       1, t, t, t, t + interval '1 second', 'worker-1', '{"ok": true}',
       CASE WHEN g %% 100 = 1 THEN E'ValueError: boom\\nTraceback (most recent call last): ...' END
FROM generate_series(1, %(finished)s::integer) AS g,
     LATERAL (SELECT now() - interval '30 days' + g * (interval '30 days' / %(finished)s::integer) AS t) AS x
"""
# Scheduled jobs: a hundred share each run_at (as a push_many's jobs do).
LOAD_SCHEDULED = (
    "INSERT INTO pgtq._job (queue, task, args, state, run_at, created_at)"
    " SELECT 'emails', 'task_1', '[]', 'scheduled', now() + (g / 100) * interval '1 second', now()"
    " FROM generate_series(1, %(scheduled)s::integer) AS g"
)
LOAD_LIVE = [
    "INSERT INTO pgtq._job (queue, task, args, state, priority, run_at, created_at)"
    " SELECT CASE WHEN g % 3 = 0 THEN 'emails' ELSE 'images' END, 'task_' || (g % 7), jsonb_build_array(g),"
    " 'ready', g % 3, now() - interval '1 minute', now() - interval '1 minute'"
    " FROM generate_series(1, 10000) AS g",
    "INSERT INTO pgtq._job (queue, task, args, state, attempt, run_at, created_at, started_at, lease,"
    " lease_expires_at, worker)"
    " SELECT 'images', 'task_2', '[]', 'running', 1, now(), now(), now(), gen_random_uuid(),"
    " now() + g * interval '1 second', 'worker-1' FROM generate_series(1, 200) AS g",
]

# The sort key of each list order, to find where a page starts (OFFSET is
# fine here: it only finds the keys; the pages themselves are keyset).
KEY_COLUMNS = {
    ListOrder.NEWEST_FINISHED: ("j.finished_at, j.id", "j.finished_at DESC, j.id DESC"),
    ListOrder.NEXT_DUE: ("j.run_at, j.id", "j.run_at, j.id"),
    ListOrder.LEASE_EXPIRY: ("j.lease_expires_at, j.id", "j.lease_expires_at, j.id"),
    ListOrder.POP_ORDER: ("j.queue, j.priority, j.id", "j.queue, j.priority DESC, j.id"),
    ListOrder.NEWEST: ("j.id", "j.id DESC"),
}

MATCHING = (
    "(%(state)s::pgtq.job_state IS NULL OR j.state = %(state)s)"
    " AND (%(queue)s::text IS NULL OR j.queue = %(queue)s) AND (%(task)s::text IS NULL OR j.task = %(task)s)"
)

CASES = [
    JobFilter(state="done"),
    JobFilter(state="done", queue="emails"),
    JobFilter(state="done", queue="rare"),
    JobFilter(state="done", task="task_3"),
    JobFilter(state="done", queue="nosuchqueue"),
    JobFilter(state="failed"),
    JobFilter(state="failed", queue="images", task="task_1"),
    JobFilter(state="cancelled"),
    JobFilter(),
    JobFilter(queue="rare"),
    JobFilter(state="ready"),
    JobFilter(state="ready", queue="images"),
    JobFilter(state="scheduled"),
    JobFilter(state="running"),
]


@dataclass(frozen=True)
class Measured:
    case: JobFilter
    matching: int
    page: str
    rows: int
    ms: float
    buffers: int
    scans: str


def key_at(conn: psycopg.Connection[Any], case: JobFilter, offset: int) -> tuple[Any, ...] | None:
    columns, order = KEY_COLUMNS[case.order]
    query = sql.SQL(
        "SELECT {columns} FROM pgtq.jobs AS j WHERE {matching} ORDER BY {order} OFFSET %(offset)s LIMIT 1"
    )
    query = query.format(columns=sql.SQL(columns), matching=sql.SQL(MATCHING), order=sql.SQL(order))
    row = conn.execute(query, {**vars(case), "offset": offset}).fetchone()
    return None if row is None else tuple(row)


def count(conn: psycopg.Connection[Any], case: JobFilter) -> int:
    row = conn.execute(f"SELECT count(*) FROM pgtq.jobs AS j WHERE {MATCHING}", vars(case)).fetchone()
    return int(row[0]) if row else 0


def scans(plan: dict[str, Any]) -> set[str]:
    found = set()
    if plan.get("Index Name"):
        found.add(f"{plan['Node Type']} {plan['Index Name']}")
    elif "Scan" in plan["Node Type"]:
        found.add(plan["Node Type"])
    for child in plan.get("Plans", []):
        found |= scans(child)
    return found


def explain(
    conn: psycopg.Connection[Any], case: JobFilter, after: Any, limit: int
) -> tuple[float, int, int, str]:
    query = queries.job_page(case, after, limit)
    statement = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + (
        sql.SQL(query.sql) if isinstance(query.sql, str) else query.sql
    )
    (document,) = conn.execute(statement, query.params).fetchone()  # type: ignore[misc]
    top = document[0]
    plan = top["Plan"]
    buffers = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    return top["Execution Time"], int(plan["Actual Rows"]), buffers, ", ".join(sorted(scans(plan)))


def measure(conn: psycopg.Connection[Any], limit: int) -> list[Measured]:
    results = []
    for case in CASES:
        matching = count(conn, case)
        starts: list[tuple[str, Any]] = [("first", None)]
        if matching > 2 * limit:
            starts.append(("middle", key_at(conn, case, matching // 2 - 1)))
        if matching > limit:
            starts.append(("last", key_at(conn, case, matching - limit - 1)))
        for page, after in starts:
            explain(conn, case, after, limit)  # warm the cache: the figure is the page, not the disk
            ms, rows, buffers, plan = explain(conn, case, after, limit)
            results.append(Measured(case, matching, page, rows, ms, buffers, plan))
            print(f"paging: {describe(case):<40} {page:<6} rows {rows:>3} {ms:8.3f} ms  {plan}", flush=True)
    return results


def describe(case: JobFilter) -> str:
    parts = [f"{name}={value}" for name, value in vars(case).items() if value is not None]
    return " ".join(parts) or "(all jobs)"


def report(results: list[Measured], options: argparse.Namespace, settings: dict[str, str]) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    RESULTS.mkdir(exist_ok=True)
    lines = [
        f"# Dashboard job lists, {stamp}",
        "",
        f"`python -m bench.paging --finished {options.finished} --scheduled {options.scheduled}"
        f" --page {options.page}`"
        f" (PostgreSQL {settings.get('server_version', '?')},"
        f" shared_buffers {settings.get('shared_buffers')}; warm cache: each page runs twice,"
        " the second run is reported).",
        "",
        f"{options.finished:,} finished jobs (98% done, 1% failed, 1% cancelled; queue `rare` holds one in"
        f" a thousand), 10,000 ready, {options.scheduled:,} scheduled, 200 running. Each page asks for"
        f" {options.page} rows (+1 to know a next page exists).",
        "",
        "| list | matching jobs | page | rows | execution ms | buffers | plan |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- |",
        *(
            f"| {describe(m.case)} | {m.matching:,} | {m.page} | {m.rows} | {m.ms:.3f} | {m.buffers}"
            f" | {m.scans} |"
            for m in results
        ),
    ]
    report_md = "\n".join(lines) + "\n"
    report_json = json.dumps([{**vars(m), "case": vars(m.case)} for m in results], indent=2)
    # Dated files stay local (bench/.gitignore); paging-latest.* is kept in git.
    for name in (f"paging-{stamp}", "paging-latest"):
        (RESULTS / f"{name}.md").write_text(report_md)
        (RESULTS / f"{name}.json").write_text(report_json)
    print(f"paging: report in {RESULTS / f'paging-{stamp}.md'} and paging-latest.md")


def run(options: argparse.Namespace) -> int:
    with throwaway_cluster(log=lambda line: print(f"paging: {line}", flush=True)) as cluster:
        dsn = cluster.create_database("pgtq_paging")
        upgrade(dsn)
        with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
            conn.execute(LOAD_FINISHED, {"finished": options.finished})
            conn.execute(LOAD_SCHEDULED, {"scheduled": options.scheduled})
            for statement in LOAD_LIVE:
                conn.execute(statement)
            conn.execute("VACUUM ANALYZE pgtq._job")
            print(f"paging: loaded {options.finished:,} finished jobs", flush=True)
            results = measure(conn, options.page)
        report(results, options, cluster.settings())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--finished", type=int, default=1_000_000, help="finished jobs to load")
    parser.add_argument("--scheduled", type=int, default=5000, help="scheduled jobs to load")
    parser.add_argument("--page", type=int, default=50, help="rows per page (the dashboard's default)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
