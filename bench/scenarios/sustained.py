"""Sustained load with pruning on, and a held snapshot.

Two worker processes (pgtq's real worker at its best settings; the
hand-written worker at batch 100) serve a producer that pushes at a fixed
rate near 70% of the drain rate measured by the drain scenario, in one statement
every 100 ms. A pruner deletes jobs finished more than a few seconds ago,
as a deployment would. In the middle of the run a session opens a
REPEATABLE READ transaction and keeps it for ``snapshot_seconds``: vacuum
cannot remove anything newer while it is open.

Reported: throughput and enqueue->start latency per interval, backlog every
second (jobs pushed minus jobs whose handler started, from the handlers'
records: a count of the ready rows would walk, beside the held snapshot,
every row version it keeps, and load the server it measures), table and
index sizes and dead tuples every few seconds, the
throughput while the snapshot is held, and how long the backlog takes to
recover after it is released. For pgtq, every second: its queue's ready
mark (where pops seek from, how old it is, whether it says idle), the
open hand-off offers, and, while no snapshot is held, the first ready
job (beside the held snapshot that look would walk every entry it keeps),
so that a run whose workers fall behind shows whether pops sought above
the backlog or the workers only ran handed jobs. Correctness: every
pushed job is recorded exactly once and none is left unfinished.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from bench import baseline, pgtq_sql, procs
from bench.cluster import REPO
from bench.config import snapshot_hold
from bench.context import QUEUE, TASK, Context, log
from bench.records import LineCounter, clear, count_lines, read_records
from bench.scenarios.drain import WorkerSpec, baseline_spec, pgtq_specs, wait_for
from bench.stats import latency_summary_ms, percentile, ratio
from bench.worker_flags import detect

TICK = 0.1
SIZE_EVERY = 5.0
PRUNE_EVERY = 2.0

SIZES_SQL = """
SELECT pg_relation_size(c.oid), pg_indexes_size(c.oid), s.n_live_tup, s.n_dead_tup,
       s.autovacuum_count, s.vacuum_count, s.autoanalyze_count
FROM pg_class AS c JOIN pg_stat_user_tables AS s ON s.relid = c.oid
WHERE c.oid = %s::regclass
"""

MARK_SQL = """
SELECT m.low_id, round(extract(epoch FROM clock_timestamp() - m.set_at)::numeric, 1)::float,
       m.idle_since IS NOT NULL, (SELECT count(*) FROM pgtq._handoff)
FROM pgtq._ready_mark AS m
WHERE m.queue = %s
ORDER BY m.generation DESC
LIMIT 1
"""

FIRST_READY_SQL = """
SELECT r.id FROM pgtq._job AS r
WHERE r.queue = %s AND r.state = 'ready'
ORDER BY r.priority DESC, r.id
LIMIT 1
"""


@dataclass(frozen=True)
class System:
    """What differs between pgtq and the hand-written queue in this scenario."""

    name: str
    table: str
    push_sql: str
    prune_sql: str
    unfinished_sql: str


PGTQ = System(
    "pgtq",
    "pgtq._job",
    pgtq_sql.PUSH_SERIES,
    pgtq_sql.PRUNE,
    "SELECT count(*) FROM pgtq.jobs WHERE state <> 'done'",
)
BASELINE = System(
    "baseline",
    "bench_base.job",
    baseline.INSERT_SERIES_NOTIFY,
    baseline.PRUNE,
    "SELECT count(*) FROM bench_base.job WHERE state <> 'done'",
)


class Loop(threading.Thread):
    """A background loop that runs ``step`` every ``every`` seconds until stopped."""

    def __init__(self, every: float, step: Any) -> None:
        super().__init__(daemon=True)
        self.every, self.step = every, step
        self.stopping = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stopping.is_set():
            try:
                self.step()
            except Exception as error:  # kept and reported; the run goes on
                self.error = f"{type(error).__name__}: {error}"
            next_at += self.every
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


def run_system(
    ctx: Context, system: System, spec: WorkerSpec, offered: float, duration: float, hold: float
) -> dict[str, Any]:
    """One sustained run with a snapshot held for ``hold`` seconds in its middle."""
    sizes = ctx.sizes
    ctx.execute(pgtq_sql.RESET if system.name == "pgtq" else baseline.RESET)
    ctx.execute(f"VACUUM ANALYZE {system.table}")
    autovacuum = "on" if sizes.sustained_autovacuum else "off"
    ctx.execute(f"ALTER TABLE {system.table} SET (autovacuum_enabled = {autovacuum})")
    ctx.checkpoint()
    records = ctx.records_dir(f"sustained-{system.name}")
    clear(records)
    env = dict(spec.env, BENCH_RECORD_DIR=str(records))
    workers = [
        procs.start(spec.argv, env, ctx.logs_dir() / f"sustained-{system.name}-{i}.log", cwd=REPO)
        for i in range(spec.processes)
    ]
    time.sleep(2.0)

    push_conn = psycopg.connect(ctx.dsn, autocommit=True)
    admin = psycopg.connect(ctx.dsn, autocommit=True)
    prune_conn = psycopg.connect(ctx.dsn, autocommit=True)
    batches: list[tuple[int, int, float]] = []  # first seq, last seq, commit time
    backlog: list[tuple[float, int]] = []
    sizes_seen: list[dict[str, float]] = []
    marks_seen: list[tuple[float, Any, Any, Any, Any, Any]] = []
    pruned = [0]
    state = {"next": 0, "owed": 0.0}
    t0 = time.time()

    def produce() -> None:
        state["owed"] += offered * TICK
        count = int(state["owed"])
        if count <= 0:
            return
        state["owed"] -= count
        first = state["next"]
        push_conn.execute(
            system.push_sql,
            (QUEUE, TASK, first, first + count - 1, QUEUE)[: 4 if system.name == "pgtq" else 5],
        )
        batches.append((first, first + count - 1, time.time()))
        state["next"] = first + count

    started = LineCounter(records)

    def sample() -> None:
        now = time.time()
        backlog.append((now - t0, max(0, int(state["next"]) - started.count())))
        if system.name == "pgtq":
            mark = admin.execute(MARK_SQL, [QUEUE]).fetchone() or (None, None, None, None)
            held = "start" in window and "end" not in window
            first = None if held else admin.execute(FIRST_READY_SQL, [QUEUE]).fetchone()
            marks_seen.append((round(now - t0, 1), *mark, first[0] if first else None))
        if not sizes_seen or now - t0 - sizes_seen[-1]["t"] >= SIZE_EVERY:
            row = admin.execute(SIZES_SQL, [system.table]).fetchone()
            sizes_seen.append(
                {
                    "t": round(now - t0, 1),
                    "table_bytes": row[0],
                    "index_bytes": row[1],
                    "live": row[2],
                    "dead": row[3],
                    "autovacuums": row[4] + row[5],
                    # a plan kept from the empty table lasts until the first
                    # of these (schema 0.29.0)
                    "autoanalyzes": row[6],
                }
            )

    def prune() -> None:
        interval = f"{sizes.prune_after_seconds} seconds"
        while (deleted := int(prune_conn.execute(system.prune_sql, [interval]).fetchone()[0] or 0)) > 0:
            pruned[0] += deleted
            if deleted < 10_000:
                break

    def prune_step() -> None:
        prune() if system.name == "pgtq" else _prune_base(prune_conn, sizes.prune_after_seconds, pruned)

    snapshot_at = duration * 0.5
    window: dict[str, float] = {}

    def hold_snapshot() -> None:
        time.sleep(snapshot_at)
        with psycopg.connect(ctx.dsn) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.execute(f"SELECT count(*) FROM {system.table}")  # takes the snapshot
            window["start"] = time.time() - t0
            time.sleep(hold)
            conn.commit()
            window["end"] = time.time() - t0

    loops = [Loop(TICK, produce), Loop(1.0, sample), Loop(PRUNE_EVERY, prune_step)]
    holder = threading.Thread(target=hold_snapshot, daemon=True)
    try:
        for loop in loops:
            loop.start()
        holder.start()
        time.sleep(duration)
        loops[0].stop()
        pushed = state["next"]
        drained = wait_for(lambda: count_lines(records) >= pushed, 180.0, 0.5)
        holder.join(5)
        for loop in loops[1:]:
            loop.stop()
        time.sleep(0.3)
    finally:
        for loop in loops:
            loop.stopping.set()
        procs.stop_all(workers)
        for conn in (push_conn, admin, prune_conn):
            conn.close()
    unfinished = int(ctx.execute(system.unfinished_sql)[0][0])
    seen = read_records(records)
    return _summarise(
        system,
        spec,
        offered,
        duration,
        t0,
        pushed,
        drained,
        unfinished,
        seen,
        batches,
        backlog,
        sizes_seen,
        marks_seen,
        window,
        pruned[0],
        [loop.error for loop in loops if loop.error],
    )


def _prune_base(conn: psycopg.Connection[Any], after: float, pruned: list[int]) -> None:
    while True:
        cur = conn.execute(baseline.PRUNE, [f"{after} seconds"])
        pruned[0] += cur.rowcount
        if cur.rowcount < 10_000:
            return


def _summarise(
    system: System,
    spec: WorkerSpec,
    offered: float,
    duration: float,
    t0: float,
    pushed: int,
    drained: bool,
    unfinished: int,
    seen: Any,
    batches: list[tuple[int, int, float]],
    backlog: list[tuple[float, int]],
    sizes_seen: list[dict[str, float]],
    marks_seen: list[tuple[float, Any, Any, Any, Any, Any]],
    window: dict[str, float],
    pruned: int,
    errors: list[str],
) -> dict[str, Any]:
    interval = 60.0 if duration >= 180 else duration / 5
    buckets: dict[int, list[float]] = {}
    commit_of = {}
    for first, last, committed in batches:
        for seq in range(first, last + 1):
            commit_of[seq] = committed
    for seq, started in seen.starts.items():
        if seq in commit_of:
            buckets.setdefault(int((started - t0) // interval), []).append(started - commit_of[seq])
    per_interval = []
    for index in sorted(buckets):
        if (index + 1) * interval > duration + 0.5:  # a partial last interval would read as a drop
            break
        lat = buckets[index]
        per_interval.append(
            {
                "start_s": round(index * interval, 1),
                "jobs_per_s": round(len(lat) / interval, 1),
                "latency": latency_summary_ms(lat),
            }
        )
    timeline = _per_second(seen.starts.values(), t0, duration)
    first_rate = per_interval[0]["jobs_per_s"] if per_interval else 0.0
    last_rate = per_interval[-1]["jobs_per_s"] if per_interval else 0.0
    snapshot = _snapshot_effect(window, timeline, backlog, offered)
    correct = (
        drained and seen.duplicates == 0 and unfinished == 0 and all(s in seen.starts for s in range(pushed))
    )
    result = {
        "system": system.name,
        "settings": spec.settings,
        "processes": spec.processes,
        "offered_jobs_per_s": round(offered, 1),
        "duration_s": duration,
        "interval_s": interval,
        "pushed": pushed,
        "pruned": pruned,
        "per_interval": per_interval,
        "last_vs_first": ratio(last_rate, first_rate),
        "throughput_timeline": timeline,
        "backlog": [(round(t, 1), n) for t, n in backlog],
        "sizes": sizes_seen,
        # (second, mark's low_id, its age in s, says idle, open offers, first ready id or None)
        "ready_mark": marks_seen,
        "max_table_bytes": max((s["table_bytes"] for s in sizes_seen), default=0),
        "max_index_bytes": max((s["index_bytes"] for s in sizes_seen), default=0),
        "max_dead": max((s["dead"] for s in sizes_seen), default=0),
        "snapshot": snapshot,
        "errors": errors,
        "correct": {
            "ok": correct,
            "drained": drained,
            "duplicates": seen.duplicates,
            "unfinished": unfinished,
            "handled": len(seen.starts),
        },
    }
    log(
        f"sustained {system.name}: offered {offered:.0f}/s, per interval "
        f"{[row['jobs_per_s'] for row in per_interval]}, last/first {result['last_vs_first']}, "
        f"max table {result['max_table_bytes'] // 1024} KiB, snapshot {snapshot}, correct={correct}"
    )
    return result


def _per_second(starts: Any, t0: float, duration: float) -> list[int]:
    counts = [0] * (int(duration) + 1)
    for started in starts:
        second = int(started - t0)
        if 0 <= second <= int(duration):
            counts[second] += 1
    return counts


def _snapshot_effect(
    window: dict[str, float], timeline: list[int], backlog: list[tuple[float, int]], offered: float
) -> dict[str, Any]:
    if "start" not in window or "end" not in window:
        return {"held": False}
    start, end = window["start"], window["end"]
    before = timeline[max(0, int(start) - 20) : int(start)]
    during = timeline[int(start) : int(end)]
    calm = [n for t, n in backlog if t < start]
    level = max(percentile(calm, 95) if calm else 0.0, offered * 0.5)
    recovery = next((round(t - end, 1) for t, n in backlog if t >= end and n <= level), None)
    peak = max((n for t, n in backlog if start <= t), default=0)
    return {
        "held": True,
        "start_s": round(start, 1),
        "end_s": round(end, 1),
        "jobs_per_s_before": round(sum(before) / len(before), 1) if before else None,
        "jobs_per_s_during": round(sum(during) / len(during), 1) if during else None,
        "peak_backlog": peak,
        "recovery_s": recovery,
        "recovery_backlog_level": round(level),
    }


def offered_rate(ctx: Context, system: str) -> float:
    """70% (by default) of the drain rate the drain scenario measured for the
    configuration this scenario runs (2 processes, best settings)."""
    if ctx.sizes.offered_rate:
        return ctx.sizes.offered_rate
    drains = ctx.results.get("drain", {})
    label = "best" if system == "pgtq" else "batch 100"
    for run in drains.get("runs", []) if isinstance(drains, dict) else []:
        if run["system"] == system and run["label"] == label and run["processes"] == 2 and run["jobs_per_s"]:
            return min(run["jobs_per_s"] * ctx.sizes.sustained_load, ctx.sizes.max_offered_rate)
    return 500.0


def run(ctx: Context) -> list[dict[str, Any]]:
    """pgtq for the full duration, then the hand-written queue; both hold
    the snapshot for the same time."""
    flags = detect(ctx.pgtq_cli)
    pgtq_spec = pgtq_specs(ctx, flags, 2)[0]
    hold = snapshot_hold(ctx.sizes)
    return [
        run_system(ctx, PGTQ, pgtq_spec, offered_rate(ctx, "pgtq"), ctx.sizes.sustained_seconds, hold),
        run_system(
            ctx,
            BASELINE,
            baseline_spec(ctx, 100, 2),
            offered_rate(ctx, "baseline"),
            ctx.sizes.baseline_sustained_seconds,
            hold,
        ),
    ]
