"""Drain: pre-enqueue no-op jobs, start real worker processes,
and measure how fast they empty the queue.

pgtq runs its real ``pgtq worker`` CLI (at its best settings and at its
defaults, 1 and 2 processes); the hand-written queue runs
``bench.apps.base_worker`` at batch 1 and 100. Throughput is measured from
the handlers' own records (first to last handler start), so process start-up
is not counted; the wall time from launch to an empty queue is reported too.
A deep backlog (``deep_drain_jobs``, 100,000) is drained once more at the
best settings with 2 processes, by pgtq and the ceiling: a claim that gets
slower as finished rows pile up behind it shows there and not at 20,000.

The drains that pgtq's targets compare (best settings with 1 and 2
processes, and the deep backlog) run in ``HEADLINE_ROUNDS`` rounds, every
system in turn (the peers that drain fast, ``interleaved_peers``, among
them), and report the median round with every round's rate beside it. A
drain of 20,000 no-op jobs lasts about a second, so one slow spell of a
shared machine moved a single drain by a third; and the peers' drains ran
minutes after pgtq's, so a spell could fall on one system only. The other
drains (defaults, batch 1) run once.
Correctness: every pushed job number is recorded exactly once, and the
queue's table holds every job as done (pgtq: after exactly one attempt).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import baseline, pgtq_sql, procs
from bench.context import QUEUE, TASK, Context, log
from bench.records import clear, count_lines, read_records
from bench.stats import in_rounds, rate, span_rate
from bench.worker_flags import WorkerFlags, best_args, detect

PRELOAD_CHUNK = 5_000

# Rounds of each headline drain (see the module's docstring).
HEADLINE_ROUNDS = 3
# Rounds of the --concurrency tuning's drains (``tune``), and their
# processes: the headline's most, where the threads of a high
# --concurrency cost most (c=50, the best of a 1-process tuning by 7%,
# drained 2 processes at half the rate of c=1: tune-rounds-check).
TUNE_ROUNDS = 3
TUNE_PROCESSES = 2


@dataclass
class WorkerSpec:
    """How to start one system's worker processes for a run."""

    system: str
    label: str
    processes: int
    argv: list[str]
    env: dict[str, str]
    settings: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class QueueOps:
    """How to fill, watch and audit one system's queue."""

    preload: Callable[[int], None]
    backlog: Callable[[], int]
    audit: Callable[[int], dict[str, Any]]
    warmups: int = 0  # jobs numbered below 0 that the preload adds


@dataclass
class Contender:
    """A system in the headline drains: its worker at its best settings for
    a number of processes, and its queue."""

    system: str
    best: Callable[[int], WorkerSpec]
    ops: Callable[[], QueueOps]


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def drain_once(ctx: Context, spec: WorkerSpec, ops: QueueOps, jobs: int) -> dict[str, Any]:
    """Preload ``jobs``, run the workers until the queue is empty, measure."""
    records = ctx.records_dir(f"drain-{spec.system}")
    clear(records)
    ops.preload(jobs)
    ctx.checkpoint()
    env = dict(spec.env, BENCH_RECORD_DIR=str(records))
    launched = time.time()
    workers = [
        procs.start(spec.argv, env, ctx.logs_dir() / f"drain-{spec.system}-{spec.label}-{i}.log", cwd=_repo())
        for i in range(spec.processes)
    ]
    try:
        finished = wait_for(lambda: count_lines(records) >= jobs + ops.warmups, ctx.sizes.drain_timeout, 0.1)
        emptied = wait_for(lambda: ops.backlog() == 0, 15.0, 0.05)
        emptied_at = time.time()
        time.sleep(0.3)  # a duplicate, if any, would show up now
    finally:
        procs.stop_all(workers)
    seen = read_records(records)
    measured = {seq: started for seq, started in seen.starts.items() if seq >= 0}  # < 0: warm-up jobs
    times = sorted(measured.values())
    audit = ops.audit(jobs)
    correct = (
        finished
        and emptied
        and seen.duplicates == 0
        and set(measured) == set(range(jobs))
        and bool(audit.get("ok"))
    )
    result = {
        "system": spec.system,
        "label": spec.label,
        "processes": spec.processes,
        "settings": spec.settings,
        "jobs": jobs,
        "handled": len(measured),
        "jobs_per_s": span_rate(times),
        "wall_jobs_per_s": rate(len(times), (emptied_at - launched)) if times else 0.0,
        "wall_seconds": round(emptied_at - launched, 2),
        "correct": {
            "ok": correct,
            "finished": finished,
            "queue_empty": emptied,
            "duplicates": seen.duplicates,
            "missing": jobs - len(set(measured) & set(range(jobs))),
            "table": audit,
        },
        **spec.extra,
    }
    log(
        f"drain {spec.system}/{spec.label} x{spec.processes} ({spec.settings}): "
        f"{result['jobs_per_s']:.0f} jobs/s, correct={correct}"
    )
    return result


def _repo() -> Path:
    from bench.cluster import REPO

    return REPO


# -- pgtq ---------------------------------------------------------------------


def pgtq_ops(ctx: Context) -> QueueOps:
    def preload(jobs: int) -> None:
        ctx.execute(pgtq_sql.RESET)
        for start in range(0, jobs, PRELOAD_CHUNK):
            ctx.execute(pgtq_sql.PUSH_SERIES, (QUEUE, TASK, start, min(start + PRELOAD_CHUNK, jobs) - 1))
        ctx.execute("VACUUM ANALYZE pgtq._job")

    def backlog() -> int:
        return int(ctx.execute(pgtq_sql.BACKLOG, [QUEUE])[0][0])

    def audit(jobs: int) -> dict[str, Any]:
        rows = ctx.execute(pgtq_sql.DONE_SEQS, [QUEUE])
        seqs = {seq for seq, _ in rows}
        retried = sum(1 for _, attempt in rows if attempt != 1)
        return {
            "ok": seqs == set(range(jobs)) and len(rows) == jobs and retried == 0,
            "done": len(rows),
            "retried": retried,
        }

    return QueueOps(preload, backlog, audit)


def pgtq_specs(ctx: Context, flags: WorkerFlags, processes: int, batch: int = 100) -> list[WorkerSpec]:
    """The real pgtq worker at its best settings (claims of ``batch``) and at its defaults."""
    target = "bench.apps.pgtq_noop:q"
    best = best_args(flags, batch, ctx.pgtq_best_concurrency, ctx.pgtq_best_pool)
    env = ctx.env(BENCH_QUEUE=QUEUE)
    return [
        WorkerSpec(
            "pgtq",
            "best",
            processes,
            [*ctx.pgtq_cli, "--log-level", "WARNING", "worker", target, "--dsn", ctx.dsn, *best],
            env,
            " ".join(["--log-level WARNING", *best]),
        ),
        WorkerSpec(
            "pgtq",
            "defaults",
            processes,
            [*ctx.pgtq_cli, "worker", target, "--dsn", ctx.dsn],
            env,
            "no flags",
        ),
    ]


# -- the hand-written queue ---------------------------------------------------------


def baseline_ops(ctx: Context) -> QueueOps:
    def preload(jobs: int) -> None:
        ctx.execute(baseline.RESET)
        ctx.execute(
            "INSERT INTO bench_base.job (queue, task, args)"
            " SELECT %s, %s, jsonb_build_array(s) FROM generate_series(0, %s - 1) AS s",
            (QUEUE, TASK, jobs),
        )
        ctx.execute("VACUUM ANALYZE bench_base.job")

    def backlog() -> int:
        return int(ctx.execute(baseline.BACKLOG)[0][0])

    def audit(jobs: int) -> dict[str, Any]:
        seqs = [row[0] for row in ctx.execute(baseline.DONE_SEQS)]
        return {"ok": set(seqs) == set(range(jobs)) and len(seqs) == jobs, "done": len(seqs)}

    return QueueOps(preload, backlog, audit)


def baseline_spec(ctx: Context, batch: int, processes: int) -> WorkerSpec:
    argv = [ctx.python, "-m", "bench.apps.base_worker", ctx.dsn, "--batch", str(batch), "--listen"]
    return WorkerSpec(
        "baseline", f"batch {batch}", processes, argv, ctx.env(), f"batch {batch}", {"batch": batch}
    )


def tune(ctx: Context, flags: WorkerFlags, candidates: tuple[int, ...]) -> list[dict[str, Any]]:
    """Find the real worker's best ``--concurrency`` for no-op jobs
    (TUNE_PROCESSES processes, batch 100): a drain of ``tune_jobs`` at each
    candidate, TUNE_ROUNDS rounds in turn; the fastest median wins (one
    short drain each by 1 process chose 1 or 100 from run to run, their
    rates within the spread of a single drain)."""

    def measure(candidate: str) -> dict[str, Any]:
        ctx.pgtq_best_concurrency = int(candidate)
        spec = pgtq_specs(ctx, flags, TUNE_PROCESSES)[0]
        spec.label = f"tune c={candidate}"
        return drain_once(ctx, spec, pgtq_ops(ctx), ctx.sizes.tune_jobs) | {"concurrency": int(candidate)}

    runs = in_rounds([str(c) for c in candidates], TUNE_ROUNDS, measure)
    best = max(runs, key=lambda run: run["jobs_per_s"] if run["correct"]["ok"] else 0.0)
    ctx.pgtq_best_concurrency = best["concurrency"]
    log(f"pgtq worker: best --concurrency for no-op jobs here is {ctx.pgtq_best_concurrency}")
    return runs


def headline_drains(
    ctx: Context,
    contenders: Sequence[Contender],
    processes: int,
    jobs: int,
    rounds: int,
    *,
    deep: bool = False,
) -> dict[str, dict[str, Any]]:
    """Each contender's drain of ``jobs`` at its best settings with
    ``processes`` processes, ``rounds`` times in turn: the median row of
    each system (``median_of_rounds``), by system. ``deep`` marks the rows
    of the deep backlog."""

    def measure(system: str) -> dict[str, Any]:
        contender = next(c for c in contenders if c.system == system)
        spec = contender.best(processes)
        if deep:
            spec.extra["deep"] = True
        return drain_once(ctx, spec, contender.ops(), jobs)

    systems = [contender.system for contender in contenders]
    return dict(zip(systems, in_rounds(systems, rounds, measure), strict=True))


def run(
    ctx: Context,
    systems: Sequence[str] = ("baseline", "pgtq"),
    *,
    peers: Sequence[str] | None = None,
    with_ref: bool = True,
    headline: list[dict[str, Any]] | None = None,
    rounds: int = HEADLINE_ROUNDS,
) -> dict[str, Any]:
    """Every drain for pgtq and the hand-written queue (of these systems:
    ``pgtq`` alone for a ``--baseline`` ref). The headline drains take in
    ``peers`` too (by default the run's peers that ``interleaved_peers``
    names), and with ``with_ref`` the ``--baseline`` ref's pgtq
    (``ctx.ref``); their rows go to ``peer_runs`` (by peer) and
    ``ref_runs``, where the peers' and the ref's scenarios take them
    instead of draining again. ``headline``: such rows, measured already
    (the headline drains are then not run)."""
    flags = detect(ctx.pgtq_cli, ctx.env())
    jobs = ctx.sizes.drain_jobs
    tuning = (
        tune(ctx, flags, ctx.sizes.tune_concurrency)
        if flags.concurrency and ctx.tune and ctx.sizes.tune_concurrency
        else []
    )
    contenders = []
    if "pgtq" in systems:
        contenders.append(Contender("pgtq", lambda p: pgtq_specs(ctx, flags, p)[0], lambda: pgtq_ops(ctx)))
    if "baseline" in systems:
        contenders.append(
            Contender("baseline", lambda p: baseline_spec(ctx, 100, p), lambda: baseline_ops(ctx))
        )
    if with_ref and ctx.ref is not None and "pgtq" in systems:
        contenders.append(_ref_contender(ctx, ctx.ref))
    contenders += _peer_contenders(ctx, peers)
    results = list(headline or [])
    peer_runs: dict[str, list[dict[str, Any]]] = {}
    ref_runs: list[dict[str, Any]] = []
    slow = ctx.sizes.drain_jobs_slow
    sizes = ((1, jobs, False), (2, jobs, False), (2, ctx.sizes.deep_drain_jobs, True))
    for processes, size, deep in sizes if headline is None else ():
        for system, row in headline_drains(ctx, contenders, processes, size, rounds, deep=deep).items():
            if system in ("pgtq", "baseline"):
                results.append(row)
            elif system == "ref":
                ref_runs.append(row)
            else:
                peer_runs.setdefault(system, []).append(row)
    for processes in (1, 2):
        if "pgtq" in systems:
            results.append(drain_once(ctx, pgtq_specs(ctx, flags, processes)[1], pgtq_ops(ctx), slow))
        if "baseline" in systems:
            results.append(drain_once(ctx, baseline_spec(ctx, 1, processes), baseline_ops(ctx), slow))
    ctx.execute(pgtq_sql.RESET)
    ctx.execute(baseline.RESET)
    return {
        "worker_flags": {
            "concurrency": flags.concurrency,
            "pool": flags.pool,
            "pool_choices": flags.pool_choices,
        },
        "best_concurrency": ctx.pgtq_best_concurrency if flags.concurrency else None,
        "tuning": tuning,
        "headline_rounds": rounds,
        "runs": results,
        "peer_runs": peer_runs,
        "ref_runs": ref_runs,
    }


def _ref_contender(ctx: Context, ref: Context) -> Contender:
    """The ``--baseline`` ref's pgtq worker (its code, its database), at
    this checkout's best settings."""
    flags = detect(ref.pgtq_cli, ref.env())

    def best(processes: int) -> WorkerSpec:
        ref.pgtq_best_concurrency = ctx.pgtq_best_concurrency  # found by this checkout's tuning
        return pgtq_specs(ref, flags, processes)[0]

    return Contender("ref", best, lambda: pgtq_ops(ref))


def _peer_contenders(ctx: Context, peers: Sequence[str] | None) -> list[Contender]:
    """The peers that join the headline drains (installed here)."""
    if peers is None:
        from bench.peers.orchestrate import interleaved_peers

        peers = interleaved_peers(ctx)
    if not peers:
        return []
    from bench.peers.orchestrate import Peer

    contenders = []
    for name in peers:
        peer = Peer(ctx, name)
        try:
            peer.call("install")
        except RuntimeError as error:  # the peers scenario tries again and reports it
            log(f"peer {name} left out of the headline drains: {error}")
            continue
        contenders.append(Contender(name, peer.worker_spec, peer.ops))
    return contenders
