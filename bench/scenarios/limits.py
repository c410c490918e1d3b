"""Limits: what flow control costs (issue 9, "the price of the limits").

* **drain**: the real ``pgtq worker`` (2 processes, batch 100, the
  concurrency of this run's best settings) drains the same no-op jobs from
  a queue with no limit and from one configured ``max_running => 50``, one
  right after the other. Target: the limited queue drains at more than 80%
  of the unlimited one. Beside them, the unlimited queue drained with at
  most 50 jobs in hand in all (2 x 25 slots, claims of 25; and, further
  down, 2 x 1 slot, claims of 25): the faster of the two is the bound a
  limit of 50 leaves this worker when the limit itself costs nothing; and
  the ``max_running => 50`` queue at those same settings, so the limit's
  own cost shows against that bound at equal settings; and both queues
  drained by the worker at its defaults (no flags), as most users run it,
  beside their bound: no limit, the defaults' one slot and at most 25 jobs
  in hand per process (``--batch-size 25``). A
  drain of a queue without limits against the release before flow
  control is ``--baseline`` (the ``drain`` scenario).
* **timed handlers**: no-op jobs leave a limit of 50 bound by the jobs in
  hand for a claim's and a commit's round trips; the handlers a limit is
  set for take time. Each job sleeps ``TIMED_SLEEP`` s: max_running => 50
  run by workers of twice that capacity (2 x 50 slots), so the limit
  binds, against the unlimited queue with at most 50 running (2 x 25
  slots), and against 50 jobs per ``TIMED_SLEEP`` (the limit's ceiling).
* **counting**: ``pop`` of a ``max_running`` queue counts the running jobs
  with a live lease (``_room_of``), and that count walks the running jobs
  of every queue. Here ``held`` jobs of another queue are claimed with a
  long lease and left running; then two SQL-only clients drain the same
  jobs at batch 1 (``pop``, then ``complete``) from an unlimited queue and
  from a limited one (``max_running`` high enough never to bind, so only
  the counting shows), for each number of held jobs. Those drains are
  client round trips on a shared machine, so the count itself is also
  timed alone, in the server: ``COUNT_CALLS`` calls of pop's room check
  (``pgtq._room``, private: no public function counts alone) in one
  statement, beside 0 to 50,000 running jobs.
* **lock keys**: a pop of a queue with lock keys walks the queue's ready
  jobs in order, with one probe of each job's key (is a job of it
  running?). Timed alone in the server, as the count: ``KEYED_POP_CALLS``
  pops of 10 in one statement from a queue whose ``BUSY_KEYS`` keys are
  all busy (so each pop walks the whole backlog and takes nothing), by
  jobs of those keys and by jobs running in another queue, with the
  statistics of a vacuum taken while no job ran (schema 0.30.0: until
  0.29.0 they sent each probe through every running job of every queue).
  And a keyed queue drained by one SQL client (``pop(25)``, then
  ``complete_many``; ``synchronous_commit`` off in that session, so the
  server's work shows rather than the flush of each commit), its
  ``KEYED_DRAIN_JOBS`` jobs over 10 keys and over 1,000: with 10 keys a
  pop asks for more jobs than there are free keys and walks on (schema
  0.31.0: past its first 64 jobs, without a probe for each).
  And the real worker on a keyed queue: ``KEYED_WORKERS`` ``pgtq worker``
  processes at their defaults drain ``KEYED_WORKER_JOBS`` jobs over
  ``KEYED_WORKER_KEYS`` keys, each job a ``KEYED_WORKER_SLEEP`` s sleep, so
  most workers wait while the keys are busy: jobs/s (at most keys / sleep)
  and the server's CPU per job (its processes' user and system time, the
  ended backends' included). Until 0.30.0 each end of a keyed job woke
  every idle worker of the queue, and each walked the backlog.
  And a pop of 10 from a queue whose first jobs are the backlog of one
  busy key, 10,000 or 100,000 jobs, with ``FLOOD_KEYS`` free keys of one
  job each behind it (each pop rolled back, timed in the server): schema
  0.33.0 reads the queue's keys after 4,096 jobs of the backlog; until
  0.32.0 such a queue of more than 64 keys was walked job by job.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg

from bench import pgtq_sql
from bench.context import QUEUE, TASK, Context, log
from bench.scenarios.drain import QueueOps, WorkerSpec, drain_once, pgtq_ops, pgtq_specs
from bench.scenarios.sqldrain import measure
from bench.worker_flags import detect

LIMIT = 50
PROCESSES = 2
HELD_QUEUE = "bench-held"
HELD_COUNTS = (0, 1_000, 10_000)
COUNT_HELD = (0, 1_000, 10_000, 50_000)
COUNT_CALLS = 200
ROOM_CALLS: str = (
    "SELECT extract(epoch FROM clock_timestamp() - now()) FROM"
    " (SELECT count(pgtq._room(%s::text, 1, now())) FROM generate_series(1, %s::integer)) AS c"
)
ROUNDS = 3  # the machine is shared: each figure is the median of its rounds
COUNTING_JOBS = 2_000
NEVER_BINDS = 100_000

# Handlers that take time, as the ones a limit is set for: each job a
# TIMED_SLEEP s sleep. An unlimited queue with at most LIMIT jobs running
# (2 x 25 slots) against max_running => LIMIT run by workers of twice that
# capacity (2 x 50 slots), so the limit binds and holds the rest back.
TIMED_SLEEP = 0.01
TIMED_JOBS = 10_000
TIMED_BATCH = 25

KEYED_QUEUE = "bench-keyed"
BUSY_KEYS = 5
KEYED_BACKLOGS = (1_000, 10_000)
# Jobs 0 .. count - 1 of a task, job s with lock key key-<s mod keys>.
PUSH_KEYED: str = (
    "SELECT count(pgtq.push(queue => %s::text, task => %s::text, args => jsonb_build_array(s),"
    " lock_key => 'key-' || s %% %s::integer)) FROM generate_series(0, %s::integer - 1) AS s"
)
KEYED_HELD = (0, 1_000)
KEYED_POP_CALLS = 20
KEYED_DRAIN_JOBS = 5_000
KEYED_DRAIN_KEYS = (10, 1_000)
KEYED_DRAIN_BATCH = 25
KEYED_WORKERS = 6
KEYED_WORKER_KEYS = 3
KEYED_WORKER_JOBS = 3_000
KEYED_WORKER_SLEEP = 0.01
KEYED_CLAIM: str = (
    "SELECT array_agg(id), array_agg(lease) FROM pgtq.pop(%s::text, 'bench-keyed', %s::integer)"
)
# Each pop names the series' row (10 + 0 * g): an uncorrelated subquery
# would run once for all of them.
KEYED_POPS: str = (
    "SELECT extract(epoch FROM clock_timestamp() - now()), sum(c.taken) FROM"
    " (SELECT (SELECT count(*) FROM pgtq.pop(%s::text, 'bench-keyed', 10 + 0 * g)) AS taken"
    " FROM generate_series(1, %s::integer) AS g) AS c"
)

# A queue of one busy lock key flooded with waiting jobs and FLOOD_KEYS
# other keys of one job each behind them (0.33.0).
FLOOD_BACKLOGS = (10_000, 100_000)
FLOOD_KEYS = 100
FLOOD_POPS = 9
PUSH_FLOOD: str = (
    "SELECT count(*) FROM pgtq.push_many(%s::text, 'flood', array_fill('[]'::jsonb, ARRAY[%s::integer]),"
    " lock_keys => array_fill('flood'::text, ARRAY[%s::integer]))"
)
PUSH_ONE_PER_KEY: str = (
    "SELECT count(*) FROM pgtq.push_many(%s::text, 'other', array_fill('[]'::jsonb, ARRAY[%s::integer]),"
    " lock_keys => ARRAY(SELECT 'other-' || n FROM generate_series(1, %s::integer) AS n))"
)
# Timed in the server: the select list is computed once pop has returned.
FLOODED_POP: str = (
    "SELECT extract(epoch FROM clock_timestamp() - statement_timestamp()), count(*)"
    " FROM pgtq.pop(%s::text, 'bench-keyed', 10)"
)

CONFIGURE: str = "SELECT pgtq.configure_queue(queue => %s::text, max_running => %s::integer)"
HOLD: str = (
    "SELECT count(*) FROM pgtq.pop(queue => %s::text, worker => 'bench-held', n => %s::integer,"
    " lease => '1 hour'::interval)"
)


def _configure(ctx: Context, max_running: int | None) -> None:
    ctx.execute(CONFIGURE, (QUEUE, max_running))


def _hold(ctx: Context, jobs: int) -> None:
    """Leave ``jobs`` jobs of another queue running with a long lease."""
    if jobs == 0:
        return
    ctx.execute(pgtq_sql.PUSH_SERIES, (HELD_QUEUE, "held", 0, jobs - 1))
    claimed = sum(
        int(ctx.execute(HOLD, (HELD_QUEUE, min(10_000, jobs - n)))[0][0]) for n in range(0, jobs, 10_000)
    )
    assert claimed == jobs, f"held {claimed} of {jobs} jobs"


def drain_limited(ctx: Context) -> list[dict[str, Any]]:
    """The same drain, in ROUNDS rounds: no limit with the run's slots; no
    limit with at most LIMIT jobs in hand in all (each process 25 slots and
    claims of 25, so never more than 2 x 25 claimed: what a perfect limit
    of 50 would leave, with no cost for the limit itself, the bound of the
    next variant); max_running => 50 with the run's slots; and
    max_running => 200 (a limit that the run's 2 x 50 slots seldom reach:
    the cost of the limit's locking and counting without the cap on jobs
    in flight); max_running => 50 at the bound's settings (2 x 25
    slots, claims of 25: the limit's own cost against the bound); no
    limit and max_running => 50 at the worker's defaults; no limit with
    the defaults' one slot and claims of 25 (the bound of the defaults);
    and max_running => 50 at those settings (often the limited queue's
    fastest: no hand-off to a pool thread)."""
    flags = detect(ctx.pgtq_cli, ctx.env())
    jobs = ctx.sizes.drain_jobs
    best = ctx.pgtq_best_concurrency
    share = LIMIT // PROCESSES
    # (max_running, concurrency, batch); batch None: the worker's defaults (no flags)
    variants: list[tuple[int | None, int, int | None]] = [
        (None, best, 100),
        (None, share, share),
        (LIMIT, best, 100),
        (LIMIT * 4, best, 100),
        (LIMIT, share, share),
        (None, best, None),
        (LIMIT, best, None),
        (None, 1, share),
        (LIMIT, 1, share),
    ]
    runs = []
    for round_number in range(ROUNDS):
        for max_running, concurrency, batch in variants:
            _configure(ctx, max_running)
            ctx.pgtq_best_concurrency = concurrency
            best_spec, defaults_spec = pgtq_specs(ctx, flags, PROCESSES, batch or 100)
            spec = best_spec if batch else defaults_spec
            slots = f"{concurrency} slot{'' if concurrency == 1 else 's'} and claims of {batch} each"
            if batch is None:
                spec.label = f"defaults, {f'max_running {max_running}' if max_running else 'no limit'}"
            elif not max_running:
                spec.label = f"no limit, {slots}"
            elif batch == 100:
                spec.label = f"max_running {max_running}"
            else:
                spec.label = f"max_running {max_running}, {slots}"

            run = drain_once(ctx, spec, pgtq_ops(ctx), jobs)
            runs.append(run | {"max_running": max_running, "concurrency": concurrency, "round": round_number})
    ctx.pgtq_best_concurrency = best
    _configure(ctx, None)
    return runs


def timed_handlers(ctx: Context) -> list[dict[str, Any]]:
    """Drains of jobs that each sleep TIMED_SLEEP s, in ROUNDS rounds: no
    limit at 2 x 25 slots (at most LIMIT running: what a limit of LIMIT
    lets run at best, at no cost for the limit itself); max_running =>
    LIMIT at 2 x 50 slots (the workers could run twice the limit: the
    database holds half of them back, across both processes); and no limit
    at 2 x 50 slots (what those workers do without the limit). Claims of
    TIMED_BATCH throughout."""
    flags = detect(ctx.pgtq_cli, ctx.env())
    jobs = TIMED_JOBS if ctx.sizes.drain_jobs > 5_000 else TIMED_JOBS // 5
    best = ctx.pgtq_best_concurrency
    share = LIMIT // PROCESSES
    variants: list[tuple[int | None, int]] = [(None, share), (LIMIT, share * 2), (None, share * 2)]
    runs = []
    for round_number in range(ROUNDS):
        for max_running, concurrency in variants:
            _configure(ctx, max_running)
            ctx.pgtq_best_concurrency = concurrency
            spec = pgtq_specs(ctx, flags, PROCESSES, TIMED_BATCH)[0]
            spec.env = spec.env | {"BENCH_HANDLER_SLEEP": str(TIMED_SLEEP)}
            limit = f"max_running {max_running}" if max_running else "no limit"
            spec.label = (
                f"{TIMED_SLEEP * 1e3:.0f} ms handlers, {limit},"
                f" {concurrency} slots and claims of {TIMED_BATCH} each"
            )
            run = drain_once(ctx, spec, pgtq_ops(ctx), jobs)
            runs.append(run | {"max_running": max_running, "concurrency": concurrency, "round": round_number})
    ctx.pgtq_best_concurrency = best
    _configure(ctx, None)
    return runs


def counting(ctx: Context) -> list[dict[str, Any]]:
    """Batch-1 SQL drains, unlimited and limited, beside ``held`` running
    jobs, in ROUNDS rounds."""
    jobs = COUNTING_JOBS if ctx.sizes.drain_jobs > 5_000 else COUNTING_JOBS // 4
    runs = []
    for round_number in range(ROUNDS):
        for held in HELD_COUNTS:
            for max_running in (None, NEVER_BINDS):
                _configure(ctx, max_running)
                run = measure_beside_held(ctx, jobs, held)
                label = _label(held, max_running)
                runs.append(
                    run | {"held": held, "max_running": max_running, "label": label, "round": round_number}
                )
            _configure(ctx, None)
    ctx.execute(pgtq_sql.RESET)
    return runs


def _rounds_in_one_session(ctx: Context, statement: str, queue: str, calls: int) -> list[tuple[Any, ...]]:
    """The first row of ROUNDS runs of ``statement`` (its parameters: the
    queue and the number of calls it makes), in one session that ran it
    once with one call first, so that no round holds the session's
    planning."""
    with psycopg.connect(ctx.dsn, autocommit=True) as conn:
        conn.execute(statement, (queue, 1))
        rounds = [conn.execute(statement, (queue, calls)).fetchone() for _ in range(ROUNDS)]
    return [row for row in rounds if row is not None]


def count_alone(ctx: Context) -> list[dict[str, Any]]:
    """Microseconds per room check of a max_running queue beside ``held``
    running jobs (the median of ROUNDS statements of COUNT_CALLS checks, in
    one session that made its plans first: until 2026-12-07 each round
    opened a session of its own, and its figure held the planning)."""
    rows = []
    for held in COUNT_HELD:
        ctx.execute(pgtq_sql.RESET)
        _hold(ctx, held)
        ctx.execute("VACUUM ANALYZE pgtq._job")
        _configure(ctx, NEVER_BINDS)
        seconds = [float(row[0]) for row in _rounds_in_one_session(ctx, ROOM_CALLS, QUEUE, COUNT_CALLS)]
        per_call = statistics.median(seconds) / COUNT_CALLS * 1e6
        rows.append({"held": held, "us_per_count": round(per_call, 1), "rounds_s": seconds})
        log(f"limits: a room check beside {held:,} running jobs: {per_call:.1f} us")
    _configure(ctx, None)
    ctx.execute(pgtq_sql.RESET)
    return rows


def keyed_pop_alone(ctx: Context) -> list[dict[str, Any]]:
    """Microseconds per pop of a queue whose BUSY_KEYS lock keys are busy,
    by jobs of those keys waiting and jobs running in another queue (the
    median of ROUNDS statements of KEYED_POP_CALLS pops)."""
    rows = []
    for backlog in KEYED_BACKLOGS:
        for held in KEYED_HELD:
            ctx.execute(pgtq_sql.RESET)
            if held:
                ctx.execute(pgtq_sql.PUSH_SERIES, (HELD_QUEUE, "held", 0, held - 1))
            ctx.execute(PUSH_KEYED, (KEYED_QUEUE, "keyed", BUSY_KEYS, backlog + BUSY_KEYS))
            ctx.execute("VACUUM ANALYZE pgtq._job")  # statistics that say no job runs
            if held:
                assert int(ctx.execute(HOLD, (HELD_QUEUE, held))[0][0]) == held
            busy = int(ctx.execute(HOLD, (KEYED_QUEUE, BUSY_KEYS))[0][0])
            assert busy == BUSY_KEYS, f"claimed {busy} jobs, one per key expected"
            rounds = _rounds_in_one_session(ctx, KEYED_POPS, KEYED_QUEUE, KEYED_POP_CALLS)
            assert all(int(taken) == 0 for _, taken in rounds), "every key is busy: the pops take nothing"
            seconds = [float(elapsed) for elapsed, _ in rounds]
            per_pop = statistics.median(seconds) / KEYED_POP_CALLS * 1e6
            rows.append(
                {"backlog": backlog, "held": held, "us_per_pop": round(per_pop, 1), "rounds_s": seconds}
            )
            log(
                f"limits: a pop past {backlog:,} jobs of busy keys,"
                f" {held:,} running elsewhere: {per_pop:,.1f} us"
            )
    ctx.execute(pgtq_sql.RESET)
    return rows


def flooded_pop(ctx: Context) -> list[dict[str, Any]]:
    """Microseconds per pop of 10 from a queue whose first jobs are a busy
    key's backlog, with FLOOD_KEYS free keys of one job each behind it, by
    the backlog (the median of FLOOD_POPS pops, each rolled back, in one
    session that popped once first to make its plans)."""
    rows = []
    for backlog in FLOOD_BACKLOGS:
        ctx.execute(pgtq_sql.RESET)
        ctx.execute(PUSH_FLOOD, (KEYED_QUEUE, backlog, backlog))
        assert int(ctx.execute(HOLD, (KEYED_QUEUE, 1))[0][0]) == 1, "the flooded key's first job runs"
        ctx.execute(PUSH_ONE_PER_KEY, (KEYED_QUEUE, FLOOD_KEYS, FLOOD_KEYS))
        ctx.execute("VACUUM ANALYZE pgtq._job")
        seconds = []
        with psycopg.connect(ctx.dsn, autocommit=True) as conn:
            for _ in range(FLOOD_POPS + 1):
                with conn.transaction(force_rollback=True):
                    elapsed, taken = conn.execute(FLOODED_POP, (KEYED_QUEUE,)).fetchone()
                assert int(taken) == 10, f"a pop took {taken} jobs of the free keys, 10 expected"
                seconds.append(float(elapsed))
        per_pop = statistics.median(seconds[1:]) * 1e6
        rows.append({"backlog": backlog, "keys": FLOOD_KEYS + 1, "us_per_pop": round(per_pop, 1)})
        log(f"limits: a pop of 10 past {backlog:,} jobs of a busy key, {FLOOD_KEYS} keys: {per_pop:,.1f} us")
    ctx.execute(pgtq_sql.RESET)
    return rows


def keyed_drain(ctx: Context) -> list[dict[str, Any]]:
    """Jobs/s of one SQL client draining a keyed queue by ``pop`` of
    KEYED_DRAIN_BATCH and ``complete_many``, for each number of keys (the
    median of ROUNDS drains, each of a queue filled and vacuumed anew)."""
    jobs = KEYED_DRAIN_JOBS if ctx.sizes.drain_jobs > 5_000 else KEYED_DRAIN_JOBS // 4
    rows = []
    for keys in KEYED_DRAIN_KEYS:
        rates = []
        for _ in range(ROUNDS):
            ctx.execute(pgtq_sql.RESET)
            ctx.execute(PUSH_KEYED, (KEYED_QUEUE, "keyed", keys, jobs))
            ctx.execute("VACUUM ANALYZE pgtq._job")
            done = 0
            with psycopg.connect(ctx.dsn, autocommit=True) as conn:
                conn.execute("SET synchronous_commit = off")
                started = time.perf_counter()
                while True:
                    ids, leases = conn.execute(KEYED_CLAIM, (KEYED_QUEUE, KEYED_DRAIN_BATCH)).fetchone()
                    if not ids:
                        break
                    conn.execute("SELECT pgtq.complete_many(%s, %s)", (ids, leases))
                    done += len(ids)
                rates.append(done / (time.perf_counter() - started))
            assert done == jobs, f"drained {done} of {jobs} keyed jobs"
        rate = statistics.median(rates)
        rows.append(
            {"keys": keys, "jobs": jobs, "jobs_per_s": round(rate), "rounds": [round(r) for r in rates]}
        )
        log(
            f"limits: a drain of {jobs:,} jobs over {keys:,} lock keys"
            f" by pop({KEYED_DRAIN_BATCH}): {rate:,.0f} jobs/s"
        )
    ctx.execute(pgtq_sql.RESET)
    return rows


def server_cpu_seconds(postmaster: int | None) -> float | None:
    """User and system CPU seconds of the cluster's processes so far: the
    postmaster's own and its ended children's (cutime, cstime), and its
    live children's (Linux /proc; None elsewhere)."""
    if postmaster is None or not Path("/proc").is_dir():
        return None
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended
        pid, parent = int(stat.parent.name), int(fields[1])
        if pid == postmaster:
            ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        elif parent == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def keyed_workers(ctx: Context) -> dict[str, Any]:
    """The real worker on a keyed queue whose few keys hold a deep backlog:
    the median jobs/s and server CPU per job of ROUNDS drains."""
    jobs = KEYED_WORKER_JOBS if ctx.sizes.drain_jobs > 5_000 else KEYED_WORKER_JOBS // 5
    base = pgtq_ops(ctx)

    def preload(count: int) -> None:
        ctx.execute(pgtq_sql.RESET)
        ctx.execute(PUSH_KEYED, (QUEUE, TASK, KEYED_WORKER_KEYS, count))
        ctx.execute("VACUUM ANALYZE pgtq._job")

    ops = QueueOps(preload, base.backlog, base.audit)
    env = ctx.env(BENCH_QUEUE=QUEUE, BENCH_HANDLER_SLEEP=str(KEYED_WORKER_SLEEP))
    spec = WorkerSpec(
        "pgtq",
        "keyed",
        KEYED_WORKERS,
        [*ctx.pgtq_cli, "worker", "bench.apps.pgtq_noop:q", "--dsn", ctx.dsn],
        env,
        "no flags",
    )
    rounds = []
    for _ in range(ROUNDS):
        before = server_cpu_seconds(ctx.cluster.pid)
        run = drain_once(ctx, spec, ops, jobs)
        after = server_cpu_seconds(ctx.cluster.pid)
        cpu_ms = None if before is None or after is None else round((after - before) * 1e3 / jobs, 3)
        rounds.append(
            {
                "system": "pgtq",
                "label": "keyed workers",
                "jobs_per_s": run["jobs_per_s"],
                "server_ms_per_job": cpu_ms,
                "correct": run["correct"],
            }
        )
    ctx.execute(pgtq_sql.RESET)
    rate = statistics.median(row["jobs_per_s"] for row in rounds)
    cpus = [row["server_ms_per_job"] for row in rounds if row["server_ms_per_job"] is not None]
    cpu = statistics.median(cpus) if cpus else None
    log(
        f"limits: {KEYED_WORKERS} workers on {jobs:,} jobs over {KEYED_WORKER_KEYS} lock keys"
        f" ({KEYED_WORKER_SLEEP * 1e3:.0f} ms each): {rate:,.0f} jobs/s, server CPU {cpu} ms a job"
    )
    return {
        "workers": KEYED_WORKERS,
        "keys": KEYED_WORKER_KEYS,
        "jobs": jobs,
        "sleep_s": KEYED_WORKER_SLEEP,
        "jobs_per_s": rate,
        "server_ms_per_job": cpu,
        "rounds": rounds,
    }


def medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per label: the median jobs/s of its rounds, and each round's."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for row in runs:
        by_label.setdefault(row["label"], []).append(row)
    return [
        {
            "label": label,
            "settings": rows[0].get("settings", "SQL clients"),
            "processes": rows[0]["processes"],
            "jobs": rows[0]["jobs"],
            "jobs_per_s": statistics.median(row["jobs_per_s"] for row in rows),
            "rounds": [row["jobs_per_s"] for row in rows],
        }
        for label, rows in by_label.items()
    ]


def measure_beside_held(ctx: Context, jobs: int, held: int) -> dict[str, Any]:
    """``sqldrain.measure`` of batch 1 with ``held`` jobs of another queue
    running (its preload empties the table, then they are claimed again)."""
    ops = pgtq_ops(ctx)
    original = ops.preload

    def preload(count: int) -> None:
        original(count)
        _hold(ctx, held)

    ops.preload = preload
    return measure(ctx, "pgtq-each", 1, jobs, ops=ops)


def _label(held: int, max_running: int | None) -> str:
    return f"{'limited' if max_running else 'unlimited'}, {held:,} running elsewhere"


def run(ctx: Context) -> dict[str, Any]:
    """Both parts, their medians, and the ratios the report prints."""
    drains = drain_limited(ctx)
    timed = timed_handlers(ctx)
    counts = counting(ctx)
    alone = count_alone(ctx)
    keyed = keyed_pop_alone(ctx)
    flooded = flooded_pop(ctx)
    keyed_drains = keyed_drain(ctx)
    keyed_real = keyed_workers(ctx)
    drain_medians = medians(drains)
    figures = [row["jobs_per_s"] for row in drain_medians]
    unlimited, same_slots, limited, _loose, limited_at_bound = figures[:5]
    unlimited_defaults, limited_defaults, one_slot, limited_one_slot = figures[5:]
    ratio = round(limited / unlimited, 3) if unlimited else None
    timed_medians = medians(timed)
    timed_bound, timed_limited, timed_unlimited = (row["jobs_per_s"] for row in timed_medians)
    timed_ratio = round(timed_limited / timed_bound, 3) if timed_bound else None
    timed_of_limit = round(timed_limited / (LIMIT / TIMED_SLEEP), 3)
    # What at most LIMIT jobs in hand allow: the faster of its two ways here
    # (25 slots per process, or one slot with claims of 25, which skips the
    # hand-off to a pool thread and is often faster for no-op jobs).
    in_hand_bound = max(same_slots, one_slot)
    same_slots_ratio = round(limited / in_hand_bound, 3) if in_hand_bound else None
    at_bound_ratio = round(limited_at_bound / same_slots, 3) if same_slots else None
    defaults_ratio = round(limited_defaults / unlimited_defaults, 3) if unlimited_defaults else None
    defaults_bound_ratio = round(limited_defaults / one_slot, 3) if one_slot else None
    # Each queue at the fastest of the settings drained here: what a user
    # who tunes the worker for each queue gets.
    unlimited_best = max(unlimited, same_slots, unlimited_defaults, one_slot)
    limited_best = max(limited, limited_at_bound, limited_defaults, limited_one_slot)
    best_ratio = round(limited_best / unlimited_best, 3) if unlimited_best else None
    log(
        f"limits: max_running {LIMIT} drains at {ratio} of unlimited (target > 0.8), "
        f"{same_slots_ratio} of unlimited with at most {LIMIT} jobs in hand; "
        f"at those settings, {at_bound_ratio} of them; at the worker's defaults, {defaults_ratio} "
        f"of unlimited and {defaults_bound_ratio} of unlimited with one slot and at most "
        f"{LIMIT // PROCESSES} in hand each; each at its fastest settings here, {best_ratio}"
    )
    ctx.execute(pgtq_sql.RESET)
    return {
        "drain": drain_medians,
        "timed": timed_medians,
        "timed_sleep_s": TIMED_SLEEP,
        "timed_limited_vs_bound": timed_ratio,
        "timed_limited_vs_limit": timed_of_limit,
        "timed_unlimited_more_slots": timed_unlimited,
        "counting": medians(counts),
        "count_alone": alone,
        "keyed_pop_alone": keyed,
        "flooded_pop": flooded,
        "keyed_drain": keyed_drains,
        "keyed_workers": keyed_real,
        "limited_vs_unlimited": ratio,
        "limited_vs_same_slots": same_slots_ratio,
        "limited_at_bound_vs_bound": at_bound_ratio,
        "limited_vs_unlimited_defaults": defaults_ratio,
        "limited_defaults_vs_one_slot_bound": defaults_bound_ratio,
        "limited_best_vs_unlimited_best": best_ratio,
        # every drain, for the report's correctness check
        "runs": drains + timed + counts + keyed_real["rounds"],
    }
