"""The chaos suite: a realistic load while the system is injured, then the books.

    PGTQ_TEST_DSN=... PGTQ_TEST_PGDATA=... python tests/chaos/run.py [--jobs N] ...
    (`make chaos` starts a throwaway server and runs the full version)

A producer pushes the jobs in batches while several worker processes with a
short lease and a scheduler drain them. Every --kill-every seconds one worker
gets SIGKILL and is started again; --restarts times PostgreSQL itself is
stopped with `pg_ctl stop -m immediate` and started again. Each job records
its token in a side table (its own transaction) before it completes.
With --bouncer the workers and the scheduler reach PostgreSQL through a
PgBouncer in transaction mode (their listeners directly), and the bouncer
is restarted once, half-way. Afterwards every pushed token must be a done
job, recorded at least once;
jobs recorded more than once are counted and must stay within what was in
flight at the kills and restarts. Prints one summary line; exits 1 if the
books do not balance.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "scripts"))
import pgbouncer  # noqa: E402
import pgcluster  # noqa: E402

from pgtq.migrate import upgrade  # noqa: E402

DATABASE = "pgtq_chaos"


@dataclass
class Books:
    """What happened during the run."""

    pushed: int = 0
    kills: int = 0
    restarts: int = 0
    bouncer_restarts: int = 0
    restart_progress: list[float] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4, help="slots per worker")
    parser.add_argument("--batch-size", type=int, default=10, help="jobs claimed per pop")
    parser.add_argument("--lease", type=float, default=2.0, help="worker lease, seconds")
    parser.add_argument("--kill-every", type=float, default=1.0, help="seconds between worker kills")
    parser.add_argument("--restarts", type=int, default=2, help="PostgreSQL immediate stops")
    parser.add_argument("--push-batch", type=int, default=500)
    parser.add_argument("--deadline", type=float, default=600.0, help="give up after this many seconds")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--bouncer", action="store_true", help="route the workers through PgBouncer and restart it once"
    )
    return parser.parse_args(argv)


def prepare_database(server_dsn: str) -> str:
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    dsn = make_conninfo(server_dsn, dbname=DATABASE)
    upgrade(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE chaos_runs (token text NOT NULL, job_id bigint, pid integer,"
            " at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
    return dsn


def retrying(action, stop: threading.Event, what: str):  # type: ignore[no-untyped-def]
    """Run ``action`` until it succeeds (the server may be restarting)."""
    delay = 0.1
    while not stop.is_set():
        try:
            return action()
        except psycopg.OperationalError as error:
            print(f"chaos: {what} failed ({str(error).strip()[:80]}); retrying", flush=True)
            stop.wait(delay)
            delay = min(delay * 2, 2.0)
    return None


def produce(dsn: str, total: int, batch: int, books: Books, stop: threading.Event) -> None:
    """Push ``total`` jobs with unique tokens, ``batch`` per transaction.
    After a failed commit the batch's tokens are looked up before pushing
    again, so no token is pushed twice and none is skipped."""
    for start in range(0, total, batch):
        tokens = [f"t{n}" for n in range(start, min(start + batch, total))]

        def push_batch(tokens: list[str] = tokens) -> None:
            with psycopg.connect(dsn) as conn:
                present = conn.execute(
                    "SELECT count(*) FROM pgtq.jobs WHERE queue = 'chaos' AND args->>0 = ANY(%s)", [tokens]
                ).fetchone()
                if present and present[0] == len(tokens):
                    return
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "SELECT pgtq.push('chaos', 'record', jsonb_build_array(%s::text))",
                        [(token,) for token in tokens],
                    )

        retrying(push_batch, stop, "push")
        books.pushed += len(tokens)
        time.sleep(0.02)


def start_process(args: list[str], dsn: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PGTQ_DSN=dsn, PYTHONPATH=os.pathsep.join([str(HERE), str(REPO)]))
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "pgtq.cli", "--log-level", "WARNING", *args],
            env=env,
            cwd=HERE,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def start_bouncer(server_dsn: str, folder: Path) -> pgbouncer.Bouncer:
    """A PgBouncer in transaction mode in front of the server (stopped by the caller)."""
    workdir = folder / "chaos-bouncer"
    workdir.mkdir(exist_ok=True)
    port = int(conninfo_to_dict(server_dsn).get("port") or 5432)
    bouncer = pgbouncer.Bouncer(workdir, server_port=port, pool_mode="transaction", pool_size=10)
    bouncer.start()
    return bouncer


def done_count(dsn: str) -> int | None:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM pgtq.jobs WHERE state = 'done'").fetchone()
            return int(row[0]) if row else 0
    except psycopg.OperationalError:
        return None


def run(options: argparse.Namespace) -> int:
    server_dsn = os.environ.get("PGTQ_TEST_DSN")
    datadir = os.environ.get("PGTQ_TEST_PGDATA")
    if not server_dsn or not datadir:
        print("chaos: needs PGTQ_TEST_DSN and PGTQ_TEST_PGDATA (run `make chaos`)", file=sys.stderr)
        return 2
    rng = random.Random(options.seed)
    dsn = prepare_database(server_dsn)
    logs = Path(datadir).parent / "chaos-logs"
    logs.mkdir(exist_ok=True)
    worker_args = [
        "worker",
        "chaos_app:q",
        "--concurrency",
        str(options.concurrency),
        "--batch-size",
        str(options.batch_size),
        "--lease",
        str(options.lease),
        "--tick-interval",
        "0.5",
        "--poll-interval",
        "0.5",
    ]
    bouncer = start_bouncer(server_dsn, Path(datadir).parent) if options.bouncer else None
    worker_dsn = dsn
    if bouncer is not None:
        worker_dsn = make_conninfo(dsn, host="127.0.0.1", port=str(bouncer.port))
        worker_args += ["--listen-dsn", dsn]
    books = Books()
    stop = threading.Event()
    started = time.monotonic()
    producer = threading.Thread(
        target=produce, args=(dsn, options.jobs, options.push_batch, books, stop), daemon=True
    )
    producer.start()
    workers = [
        start_process(worker_args, worker_dsn, logs / f"worker-{n}.log") for n in range(options.workers)
    ]
    scheduler = start_process(["scheduler", "chaos", "--interval", "0.5"], worker_dsn, logs / "scheduler.log")
    restart_at = [(n + 1) / (options.restarts + 1) for n in range(options.restarts)]
    next_kill = time.monotonic() + options.kill_every
    finished = False
    try:
        while time.monotonic() - started < options.deadline:
            done = done_count(dsn)
            if done is not None and done >= options.jobs and not producer.is_alive():
                finished = True
                break
            progress = (done or 0) / options.jobs
            if restart_at and progress >= restart_at[0]:
                restart_at.pop(0)
                print(f"chaos: stopping PostgreSQL (immediate) at {progress:.0%} done", flush=True)
                pgcluster.pg_ctl(datadir, "stop", "--mode", "immediate")
                pgcluster.pg_ctl(datadir, "start")
                books.restarts += 1
            if bouncer is not None and not books.bouncer_restarts and progress >= 0.5:
                print(f"chaos: restarting PgBouncer at {progress:.0%} done", flush=True)
                bouncer.restart()
                books.bouncer_restarts += 1
            if time.monotonic() >= next_kill:
                victim = rng.randrange(len(workers))
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait()
                workers[victim] = start_process(worker_args, worker_dsn, logs / f"worker-{victim}.log")
                books.kills += 1
                next_kill = time.monotonic() + options.kill_every
            time.sleep(0.1)
    finally:
        stop.set()
        for process in [*workers, scheduler]:
            process.send_signal(signal.SIGTERM)
        for process in [*workers, scheduler]:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if bouncer is not None:
            bouncer.stop()
    wall = time.monotonic() - started
    return audit(dsn, options, books, wall, finished)


def audit(dsn: str, options: argparse.Namespace, books: Books, wall: float, finished: bool) -> int:
    with psycopg.connect(dsn) as conn:
        states = dict(conn.execute("SELECT state::text, jobs FROM pgtq.queue_stats WHERE queue = 'chaos'"))
        tokens_in_queue, distinct_in_queue = conn.execute(
            "SELECT count(*), count(DISTINCT args->>0) FROM pgtq.jobs WHERE queue = 'chaos'"
        ).fetchone()  # type: ignore[misc]
        runs, distinct_runs = conn.execute(
            "SELECT count(*), count(DISTINCT token) FROM chaos_runs"
        ).fetchone()  # type: ignore[misc]
        done_not_run = conn.execute(
            "SELECT count(*) FROM pgtq.jobs j WHERE j.queue = 'chaos' AND j.state = 'done'"
            " AND NOT EXISTS (SELECT 1 FROM chaos_runs r WHERE r.token = j.args->>0)"
        ).fetchone()[0]  # type: ignore[index]
    expected = options.jobs
    lost = expected - distinct_runs
    duplicates = runs - distinct_runs
    in_hand = max(options.batch_size, options.concurrency)
    # A bouncer restart cuts every worker's connection, as a server restart does.
    bound = books.kills * in_hand + (books.restarts + books.bouncer_restarts) * options.workers * in_hand
    ok = (
        finished
        and lost == 0
        and tokens_in_queue == distinct_in_queue == expected
        and states.get("done") == expected
        and done_not_run == 0
        and duplicates <= bound
    )
    print(
        f"chaos: jobs={expected} kills={books.kills} restarts={books.restarts} lost={lost} "
        f"duplicates={duplicates} (bound {bound}) stats={states} wall={wall:.1f}s "
        f"{'OK' if ok else 'FAILED'}"
        + (f" bouncer_restarts={books.bouncer_restarts}" if options.bouncer else ""),
        flush=True,
    )
    if not ok:
        print(
            f"chaos: finished={finished} queued={tokens_in_queue} distinct={distinct_in_queue} "
            f"done_without_record={done_not_run}",
            file=sys.stderr,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run(parse_args(None)))
