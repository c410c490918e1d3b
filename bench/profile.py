"""Where pgtq loses to the hand-written queue: server-side evidence.

* The plan of the claim that ``pgtq.pop`` runs (``auto_explain`` with
  ``ANALYZE`` and ``BUFFERS``, nested statements) and of the ``pgtq.pop``
  call itself, next to ``EXPLAIN (ANALYZE, BUFFERS)`` of the hand-written
  claim, at batch 100.
* CPU cost per job of each SQL path, with ``synchronous_commit = off`` in
  the measuring session so the WAL flush (the same for both) does not hide
  it: push vs INSERT (with and without NOTIFY), pop+complete vs the
  hand-written claim+complete at batch 1 and 100.
* ``pg_stat_user_functions`` (``track_functions = all``) self time per pgtq
  function during those loops.
* The generic-plan trap: the hand-written claim with ``LIMIT $1`` under
  ``force_generic_plan`` vs ``force_custom_plan``.
* The real worker under pyinstrument while it drains (main thread).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench import baseline, pgtq_sql, procs
from bench.cluster import REPO
from bench.context import QUEUE, TASK, Context, log
from bench.records import clear, count_lines
from bench.scenarios.drain import pgtq_ops, wait_for

# auto_explain reports the plans of the statements inside pgtq.pop as the
# server runs them (to this session, as notices): no copy of pop's SQL here.
AUTO_EXPLAIN = (
    "LOAD 'auto_explain'",
    "SET auto_explain.log_min_duration = 0",
    "SET auto_explain.log_analyze = on",
    "SET auto_explain.log_buffers = on",
    "SET auto_explain.log_nested_statements = on",
    "SET auto_explain.log_level = notice",
)

PARAM_CLAIM = (
    "WITH c AS MATERIALIZED (SELECT id FROM bench_base.job WHERE queue = $1 AND state = 'ready'"
    " ORDER BY priority DESC, id LIMIT $2 FOR UPDATE SKIP LOCKED)"
    " UPDATE bench_base.job AS j SET state = 'running', started_at = now() FROM c WHERE j.id = c.id"
    " RETURNING j.id, j.task, j.args"
)


def _explain(conn: psycopg.Connection[Any], statement: str) -> str:
    with conn.transaction(force_rollback=True):
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement).fetchall()
    return "\n".join(row[0] for row in rows)


def _explain_nested(dsn: str, statement: str) -> list[str]:
    """The plans auto_explain reports while ``statement`` runs (rolled
    back): one per statement, the ones inside functions first."""
    plans: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
        for setting in AUTO_EXPLAIN:
            conn.execute(setting)
        with conn.transaction(force_rollback=True):
            conn.execute(statement).fetchall()
    return [plan for plan in plans if "Query Text:" in plan]


def _per_job_us(seconds: float, jobs: int) -> float:
    return round(seconds / jobs * 1e6, 1)


def _loop_claims(conn: psycopg.Connection[Any], kind: str, batch: int, jobs: int) -> float:
    """Claim and complete ``jobs`` jobs; return microseconds per job."""
    cur = conn.cursor()
    started = time.perf_counter()
    done = 0
    claim = baseline.claim_sql(batch)
    while done < jobs:
        if kind == "baseline":
            rows = cur.execute(claim, [QUEUE], prepare=True).fetchall()
            if not rows:
                break
            cur.execute(baseline.COMPLETE_MANY, [[r[0] for r in rows]], prepare=True)
        else:
            rows = cur.execute(pgtq_sql.POP, (QUEUE, "profile", batch), prepare=True).fetchall()
            if not rows:
                break
            if batch == 1:
                cur.execute(pgtq_sql.COMPLETE, rows[0], prepare=True)
            else:
                ids, leases = zip(*rows, strict=True)
                cur.execute(pgtq_sql.COMPLETE_MANY, (list(ids), list(leases)), prepare=True)
        done += len(rows)
    return _per_job_us(time.perf_counter() - started, max(done, 1))


def _loop_pushes(conn: psycopg.Connection[Any], statement: str, params: Any, jobs: int) -> float:
    cur = conn.cursor()
    started = time.perf_counter()
    for seq in range(jobs):
        cur.execute(statement, params(seq), prepare=True)
    return _per_job_us(time.perf_counter() - started, jobs)


def sql_costs(ctx: Context, jobs: int) -> dict[str, Any]:
    """CPU microseconds per job of each path, synchronous_commit off."""
    ops = pgtq_ops(ctx)
    out: dict[str, Any] = {}
    with psycopg.connect(ctx.dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET track_functions = 'all'")
        conn.execute("SELECT pg_stat_reset()")
        ctx.execute(pgtq_sql.RESET)
        ctx.execute(baseline.RESET)
        out["push_us"] = _loop_pushes(conn, pgtq_sql.PUSH, lambda s: (QUEUE, TASK, Jsonb([s])), jobs)
        out["insert_us"] = _loop_pushes(conn, baseline.INSERT, lambda s: (QUEUE, TASK, Jsonb([s])), jobs)
        ctx.execute(baseline.RESET)
        out["insert_notify_us"] = _loop_pushes(
            conn, baseline.INSERT_NOTIFY, lambda s: (QUEUE, TASK, Jsonb([s]), QUEUE), jobs
        )
        for batch in (1, 100):
            n = jobs if batch == 1 else jobs * 4
            ops.preload(n)
            out[f"pgtq_claim_complete_b{batch}_us"] = _loop_claims(conn, "pgtq", batch, n)
            baseline_preload(ctx, n)
            out[f"baseline_claim_complete_b{batch}_us"] = _loop_claims(conn, "baseline", batch, n)
        time.sleep(0.6)  # function statistics are sent at transaction end, with a short delay
        rows = conn.execute(
            "SELECT funcname, calls, round(total_time::numeric, 1), round(self_time::numeric, 1)"
            " FROM pg_stat_user_functions WHERE schemaname = 'pgtq' AND calls > 0 ORDER BY self_time DESC"
        ).fetchall()
        out["functions"] = [
            {
                "function": f,
                "calls": c,
                "total_ms": float(t),
                "self_ms": float(s),
                "self_us_per_call": round(float(s) * 1000 / c, 1),
            }
            for f, c, t, s in rows
        ]
    return out


def baseline_preload(ctx: Context, jobs: int) -> None:
    ctx.execute(baseline.RESET)
    ctx.execute(
        "INSERT INTO bench_base.job (queue, task, args)"
        " SELECT %s, %s, jsonb_build_array(s) FROM generate_series(0, %s - 1) AS s",
        (QUEUE, TASK, jobs),
    )
    ctx.execute("VACUUM ANALYZE bench_base.job")


def plans(ctx: Context, jobs: int) -> dict[str, str]:
    """The plans of the claims at batch 100, half-way through draining
    ``jobs`` jobs (so finished rows and dead index entries are there)."""
    pgtq_ops(ctx).preload(jobs)
    baseline_preload(ctx, jobs)
    with psycopg.connect(ctx.dsn, autocommit=True) as conn:
        _loop_claims(conn, "pgtq", 100, jobs // 2)
        _loop_claims(conn, "baseline", 100, jobs // 2)
        baseline_plan = _explain(conn, baseline.claim_sql(100).replace("%s", "'bench'"))
    reported = _explain_nested(ctx.dsn, "SELECT * FROM pgtq.pop('bench', 'profile', 100)")
    missing = "auto_explain reported no plan"
    return {
        "pgtq_pop_claim_b100": "\n\n".join(reported[:-1]) or missing,
        "pgtq_pop_call_b100": reported[-1] if reported else missing,
        "baseline_claim_b100": baseline_plan,
    }


def generic_plan_trap(ctx: Context, jobs: int) -> dict[str, float]:
    """The hand-written claim with LIMIT $2: generic vs custom plan, us/job."""
    out = {}
    for mode in ("force_custom_plan", "force_generic_plan"):
        baseline_preload(ctx, jobs)
        with psycopg.connect(ctx.dsn, autocommit=True) as conn:
            conn.execute(f"SET plan_cache_mode = {mode}")
            conn.execute("SET synchronous_commit = off")
            conn.execute(f"PREPARE c(text, int) AS {PARAM_CLAIM}")
            started, done = time.perf_counter(), 0
            while rows := conn.execute("EXECUTE c('bench', 100)").fetchall():
                conn.execute(baseline.COMPLETE_MANY, [[r[0] for r in rows]])
                done += len(rows)
            out[mode] = _per_job_us(time.perf_counter() - started, max(done, 1))
    return out


def worker_profile(ctx: Context, jobs: int) -> str:
    """pyinstrument's text report of the real worker draining ``jobs`` jobs."""
    from bench.scenarios.drain import pgtq_specs
    from bench.worker_flags import detect

    spec = pgtq_specs(ctx, detect(ctx.pgtq_cli), 1)[0]
    cli_args = spec.argv[len(ctx.pgtq_cli) :]
    records = ctx.records_dir("profile")
    clear(records)
    pgtq_ops(ctx).preload(jobs)
    out = ctx.scratch / "worker-profile.txt"
    argv = [
        sys.executable,
        "-m",
        "pyinstrument",
        "-r",
        "text",
        "--show-all",
        "-o",
        str(out),
        "-m",
        "pgtq.cli",
        *cli_args,
    ]
    env = dict(spec.env, BENCH_RECORD_DIR=str(records))
    proc = procs.start(argv, env, ctx.logs_dir() / "profile-worker.log", cwd=REPO)
    try:
        wait_for(lambda: count_lines(records) >= jobs, 120.0, 0.1)
        time.sleep(0.5)
    finally:
        procs.stop(proc, grace=20.0)
    try:
        return _trim(Path(out).read_text())
    except OSError:
        return "pyinstrument wrote no report (see profile-worker.log)"


def _trim(text: str, lines: int = 150) -> str:
    return "\n".join(text.splitlines()[:lines])


def summarise(result: dict[str, Any]) -> str:
    c = result.get("costs", {})
    lines = [
        "CPU per job with synchronous_commit=off (microseconds; lower is better):",
        f"- push {c.get('push_us')} vs INSERT {c.get('insert_us')} "
        f"vs INSERT+NOTIFY {c.get('insert_notify_us')}",
        f"- batch 1: pop+complete {c.get('pgtq_claim_complete_b1_us')} vs claim+complete "
        f"{c.get('baseline_claim_complete_b1_us')}",
        f"- batch 100: pop + one completing statement {c.get('pgtq_claim_complete_b100_us')} vs "
        f"{c.get('baseline_claim_complete_b100_us')}",
        f"- claim with LIMIT $2: {result.get('generic_plan')}",
        "",
        "pgtq functions by self time:",
        *[
            f"- {f['function']}: {f['calls']} calls, {f['self_us_per_call']} us self per call, "
            f"{f['total_ms']} ms total"
            for f in c.get("functions", [])[:8]
        ],
    ]
    return "\n".join(lines)


def run(ctx: Context) -> dict[str, Any]:
    """Every profile; each part is kept even if a later one fails."""
    if not ctx.profile:
        return {"skipped": True}
    jobs = 2_000 if ctx.sizes.drain_jobs >= 10_000 else 500
    result: dict[str, Any] = {}
    result["plans"] = plans(ctx, jobs * 5)
    result["costs"] = sql_costs(ctx, jobs)
    result["generic_plan"] = generic_plan_trap(ctx, jobs * 5)
    try:
        result["worker_pyinstrument"] = worker_profile(ctx, jobs * 2)
    except Exception as error:  # the profiler is optional evidence
        result["worker_pyinstrument"] = f"failed: {type(error).__name__}: {error}"
    ctx.execute(pgtq_sql.RESET)
    ctx.execute(baseline.RESET)
    result["summary"] = summarise(result)
    log("profile: " + result["summary"].replace("\n", " | "))
    return result
