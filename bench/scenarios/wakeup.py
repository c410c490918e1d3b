"""Wake-up latency: an idle worker, jobs pushed one at a time
20 ms apart; the time from enqueue to the handler's start. Three systems:
the real ``pgtq worker``, pgtq's SQL in a one-thread loop
(``bench.apps.pgtq_loop``: what push and pop cost, without the worker's
threads) and the hand-written worker (the ceiling).

The three idle workers run side by side and the jobs are pushed to them in
rotation, so the machine's slow spells touch all three alike (the peers,
in ``make bench-peers``, are measured alone, one after the other). The
pusher notes the clock just before each push call (``enqueue``) and just
after it returned (``commit``); the handler records its start. Both clocks
are this machine's ``time.time()``. "enqueue -> start" includes the push's
own durable commit; "commit -> start" is the wake-up alone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench import baseline, pgtq_sql, procs
from bench.cluster import REPO
from bench.context import QUEUE, TASK, Context, log
from bench.records import Records, clear, count_lines, read_records
from bench.scenarios.drain import WorkerSpec, baseline_spec, pgtq_specs, wait_for
from bench.stats import latency_summary_ms
from bench.worker_flags import detect

WARMUP = 5
LOOP_QUEUE = "bench-loop"  # the one-thread loop's queue, beside the real worker's

Pusher = Callable[[list[int], float], dict[int, tuple[float, float]]]


def wakeup_once(ctx: Context, spec: WorkerSpec, pusher: Pusher, reset: Callable[[], None]) -> dict[str, Any]:
    """Start one idle worker, push jobs one by one, measure each wake-up
    (the peers: each alone, with its own pusher)."""
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
    return _summary(spec, jobs, gap, pushed, read_records(records), warmed and finished)


@dataclass(frozen=True)
class Idle:
    """One system of a shared wake-up run: its worker, and the statement
    (with its parameters for job ``seq``) that pushes a job to it."""

    spec: WorkerSpec
    statement: str
    params: Callable[[int], tuple[Any, ...]]


def wakeup_together(ctx: Context, systems: Sequence[Idle]) -> list[dict[str, Any]]:
    """Start every system's idle worker at once and push jobs one at a time
    in rotation (the next system's job ``wakeup_gap`` after the last one),
    each system from a connection of its own: all are measured in the same
    seconds, so a slow spell of the machine touches them alike."""
    jobs, gap = ctx.sizes.wakeup_jobs, ctx.sizes.wakeup_gap
    folders = {idle.spec.system: ctx.records_dir(f"wakeup-{idle.spec.system}") for idle in systems}
    for folder in folders.values():
        clear(folder)
    workers = [
        procs.start(
            idle.spec.argv,
            dict(idle.spec.env, BENCH_RECORD_DIR=str(folders[idle.spec.system])),
            ctx.logs_dir() / f"wakeup-{idle.spec.system}.log",
            cwd=REPO,
        )
        for idle in systems
    ]
    try:
        with contextlib.ExitStack() as stack:
            cursors = [
                stack.enter_context(psycopg.connect(ctx.dsn, autocommit=True)).cursor() for _ in systems
            ]
            time.sleep(1.5)  # start-up
            _rotate(systems, cursors, [-1 - i for i in range(WARMUP)], 0.1)
            warmed = wait_for(lambda: all(count_lines(f) >= WARMUP for f in folders.values()), 30.0)
            time.sleep(1.0)  # idle: waiting on LISTEN
            pushed = _rotate(systems, cursors, list(range(jobs)), gap)
        finished = wait_for(
            lambda: all(set(pushed[s]) <= set(read_records(f).starts) for s, f in folders.items()), 30.0, 0.1
        )
        time.sleep(0.2)
    finally:
        procs.stop_all(workers)
    return [
        _summary(idle.spec, jobs, gap, pushed[idle.spec.system], read_records(folders[idle.spec.system]),
                 warmed and finished)
        for idle in systems
    ]  # fmt: skip


def _rotate(
    systems: Sequence[Idle], cursors: Sequence[psycopg.Cursor[Any]], seqs: list[int], gap: float
) -> dict[str, dict[int, tuple[float, float]]]:
    """Push job ``seq`` to each system in turn, ``gap`` apart; the clock
    before and after each push, by system."""
    times: dict[str, dict[int, tuple[float, float]]] = {idle.spec.system: {} for idle in systems}
    next_at = time.perf_counter()
    for seq in seqs:
        for idle, cur in zip(systems, cursors, strict=True):
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            before = time.time()
            cur.execute(idle.statement, idle.params(seq), prepare=True)
            times[idle.spec.system][seq] = (before, time.time())
            next_at += gap
    return times


def _summary(
    spec: WorkerSpec,
    jobs: int,
    gap: float,
    pushed: dict[int, tuple[float, float]],
    seen: Records,
    finished: bool,
) -> dict[str, Any]:
    """One system's wake-up figures from its pushes and its handlers' records."""
    from_enqueue = [seen.starts[seq] - pushed[seq][0] for seq in pushed if seq in seen.starts]
    from_commit = [seen.starts[seq] - pushed[seq][1] for seq in pushed if seq in seen.starts]
    push_ms = [(after - before) for before, after in pushed.values()]
    correct = finished and seen.duplicates == 0 and all(seq in seen.starts for seq in pushed)
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
    """pgtq's SQL in a one-thread loop (``bench.apps.pgtq_loop``) on queue
    LOOP_QUEUE: the wake-up of pgtq's push and pop without the worker's threads."""
    argv = [ctx.python, "-m", "bench.apps.pgtq_loop", ctx.dsn, "--queue", LOOP_QUEUE]
    return WorkerSpec(
        "pgtq-loop", "one-thread loop", 1, argv, ctx.env(), "hand-off offer or pop(1), complete, one thread"
    )


def run(ctx: Context, systems: Sequence[str] = ("pgtq", "pgtq-loop", "baseline")) -> list[dict[str, Any]]:
    """The real pgtq worker, pgtq's SQL in a one-thread loop and the
    hand-written worker (of these systems), idle on LISTEN side by side,
    measured together (``wakeup_together``). A ``--baseline`` ref runs all
    three too, its own worker beside this checkout's loop and ceiling."""
    if {"pgtq", "pgtq-loop"} & set(systems):
        ctx.execute(pgtq_sql.RESET)
    if "baseline" in systems:
        ctx.execute(baseline.RESET)
    idle = []
    if "pgtq" in systems:
        spec = pgtq_specs(ctx, detect(ctx.pgtq_cli), 1)[0]
        idle.append(Idle(spec, pgtq_sql.PUSH, lambda seq: (QUEUE, TASK, Jsonb([seq]))))
    if "pgtq-loop" in systems:
        idle.append(Idle(loop_spec(ctx), pgtq_sql.PUSH, lambda seq: (LOOP_QUEUE, TASK, Jsonb([seq]))))
    if "baseline" in systems:
        idle.append(
            Idle(
                baseline_spec(ctx, 100, 1),
                baseline.INSERT_NOTIFY,
                lambda seq: (QUEUE, TASK, Jsonb([seq]), QUEUE),
            )
        )
    return wakeup_together(ctx, idle)
