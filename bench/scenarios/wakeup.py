"""Wake-up latency: an idle worker, jobs pushed one at a time
20 ms apart; the time from enqueue to the handler's start. Three systems:
the real ``pgtq worker``, pgtq's SQL in a one-thread loop
(``bench.apps.pgtq_loop``: what push and pop cost, without the worker's
threads) and the hand-written worker (the ceiling).

The pusher notes the clock just before each push call (``enqueue``) and just
after it returned (``commit``); the handler records its start. Both clocks
are this machine's ``time.time()``. "enqueue -> start" includes the push's
own durable commit; "commit -> start" is the wake-up alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench import baseline, pgtq_sql, procs
from bench.cluster import REPO
from bench.context import QUEUE, TASK, Context, log
from bench.records import clear, count_lines, read_records
from bench.scenarios.drain import WorkerSpec, baseline_spec, pgtq_specs, wait_for
from bench.stats import latency_summary_ms
from bench.worker_flags import detect

WARMUP = 5

Pusher = Callable[[list[int], float], dict[int, tuple[float, float]]]


def sql_pusher(dsn: str, statement: str, params: Callable[[int], tuple[Any, ...]]) -> Pusher:
    """A pusher that runs one autocommit statement per job from here."""

    def push(seqs: list[int], gap: float) -> dict[int, tuple[float, float]]:
        times: dict[int, tuple[float, float]] = {}
        with psycopg.connect(dsn, autocommit=True) as conn:
            cur = conn.cursor()
            next_at = time.perf_counter()
            for seq in seqs:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                before = time.time()
                cur.execute(statement, params(seq), prepare=True)
                times[seq] = (before, time.time())
                next_at += gap
        return times

    return push


def pgtq_pusher(dsn: str) -> Pusher:
    return sql_pusher(dsn, pgtq_sql.PUSH, lambda seq: (QUEUE, TASK, Jsonb([seq])))


def baseline_pusher(dsn: str) -> Pusher:
    return sql_pusher(dsn, baseline.INSERT_NOTIFY, lambda seq: (QUEUE, TASK, Jsonb([seq]), QUEUE))


def wakeup_once(ctx: Context, spec: WorkerSpec, pusher: Pusher, reset: Callable[[], None]) -> dict[str, Any]:
    """Start one idle worker, push jobs one by one, measure each wake-up."""
    jobs, gap = ctx.sizes.wakeup_jobs, ctx.sizes.wakeup_gap
    reset()
    records = ctx.records_dir(f"wakeup-{spec.system}")
    clear(records)
    env = dict(spec.env, BENCH_RECORD_DIR=str(records))
    worker = procs.start(spec.argv, env, ctx.logs_dir() / f"wakeup-{spec.system}.log", cwd=REPO)
    try:
        time.sleep(1.5)  # start-up
        pusher([-1 - i for i in range(WARMUP)], 0.1)
        warmed = wait_for(lambda: count_lines(records) >= WARMUP, 30.0)
        time.sleep(1.0)  # idle: waiting on LISTEN
        pushed = pusher(list(range(jobs)), gap)
        finished = wait_for(lambda: set(pushed) <= set(read_records(records).starts), 30.0, 0.1)
        time.sleep(0.2)
    finally:
        procs.stop(worker)
    seen = read_records(records)
    from_enqueue = [seen.starts[seq] - pushed[seq][0] for seq in pushed if seq in seen.starts]
    from_commit = [seen.starts[seq] - pushed[seq][1] for seq in pushed if seq in seen.starts]
    push_ms = [(after - before) for before, after in pushed.values()]
    correct = warmed and finished and seen.duplicates == 0 and all(seq in seen.starts for seq in pushed)
    result = {
        "system": spec.system,
        "settings": spec.settings,
        "jobs": jobs,
        "gap_ms": gap * 1000,
        "enqueue_to_start": latency_summary_ms(from_enqueue),
        "commit_to_start": latency_summary_ms(from_commit),
        "push_call": latency_summary_ms(push_ms),
        "correct": {"ok": correct, "handled": len(from_enqueue), "duplicates": seen.duplicates},
    }
    enq, com = result["enqueue_to_start"], result["commit_to_start"]
    log(
        f"wake-up {spec.system}: enqueue->start p50 {enq['p50_ms']} ms, p99 {enq['p99_ms']} ms; "
        f"commit->start p50 {com['p50_ms']} ms"
    )
    return result


def loop_spec(ctx: Context) -> WorkerSpec:
    """pgtq's SQL in a one-thread loop (``bench.apps.pgtq_loop``): the wake-up
    of pgtq's push and pop without the worker's threads."""
    argv = [ctx.python, "-m", "bench.apps.pgtq_loop", ctx.dsn, "--queue", QUEUE]
    return WorkerSpec("pgtq-loop", "one-thread loop", 1, argv, ctx.env(), "pop(1), complete, one thread")


def run(ctx: Context, systems: Sequence[str] = ("pgtq", "pgtq-loop", "baseline")) -> list[dict[str, Any]]:
    """The real pgtq worker, pgtq's SQL in a one-thread loop and the
    hand-written worker, each idle on LISTEN (of these systems: ``pgtq``
    alone for a ``--baseline`` ref)."""
    results = []
    if "pgtq" in systems:
        pgtq_spec = pgtq_specs(ctx, detect(ctx.pgtq_cli), 1)[0]
        results.append(wakeup_once(ctx, pgtq_spec, pgtq_pusher(ctx.dsn), lambda: ctx.execute(pgtq_sql.RESET)))
    if "pgtq-loop" in systems:
        results.append(
            wakeup_once(ctx, loop_spec(ctx), pgtq_pusher(ctx.dsn), lambda: ctx.execute(pgtq_sql.RESET))
        )
    if "baseline" in systems:
        results.append(
            wakeup_once(
                ctx, baseline_spec(ctx, 100, 1), baseline_pusher(ctx.dsn), lambda: ctx.execute(baseline.RESET)
            )
        )
    return results
