"""The chaos suite: a realistic load while the system is injured, then the books.

    PGTQ_TEST_DSN=... PGTQ_TEST_PGDATA=... python tests/chaos/run.py [--jobs N] ...
    (`make chaos` starts a throwaway server and runs the full version; a
    short one runs in `make test`, tests/py/test_chaos.py)

A producer pushes the jobs in batches while several worker processes with a
short lease and a scheduler drain them. At --kills evenly spaced points of
progress one worker (one holding running jobs, when the database can say) is
frozen with SIGSTOP, the jobs it holds are read, and it gets SIGKILL and is
started again; at --restarts points every worker is frozen while the jobs
each holds are read and PostgreSQL is stopped with `pg_ctl stop -m
immediate`, then the workers run on and the server is started again. The
run keeps these books itself; each run of a job writes a ledger row (token,
job id, attempt, the worker's pid, the claim's time) before it completes.

Afterwards ``verdict.judge`` applies the pass rule it prints first
(``verdict.RULE``): every job done and its completing run recorded, no claim
run twice, every duplicate cut off by a kill of its own worker or by the
stop of the server while that worker held the job, and at least the planned
kills and restarts done. No row may break a bookkeeping rule
(``pgtq.job_rule_breaks``). Prints the figures; exits 1 if the rule is broken,
listing what broke it and keeping the processes' logs.

With --bouncer (`make chaos` passes it) the workers and the scheduler reach
PostgreSQL through a PgBouncer in transaction mode (their listeners
directly), and half-way the bouncer is restarted the same way as the
server: every worker frozen while the jobs each holds are read and the
bouncer is stopped, then started again on its port.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "scripts"))
import pgbouncer  # noqa: E402
import pgcluster  # noqa: E402
from verdict import RULE, Books, Job, Kill, Plan, Restart, Run, judge  # noqa: E402

from pgtq.migrate import upgrade  # noqa: E402

DATABASE = "pgtq_chaos"
PGTQ = Path(sys.executable).with_name("pgtq")  # the pgtq command of this environment

LEDGER = """
CREATE TABLE chaos_runs (
    token            text NOT NULL,
    job_id           bigint NOT NULL,
    attempt          integer NOT NULL,
    worker_pid       integer NOT NULL,
    lease_expires_at timestamptz NOT NULL,
    at               timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""

APP_NAME = "pgtq-chaos-crew"

# Statements of the crew (frozen workers, the scheduler) still running on the server.
BUSY = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state = 'active'"

# How many times a kill looks for a worker that still holds jobs once frozen.
KILL_TRIES = 50

# The running jobs of the chaos queue and the pid of the worker holding each.
HELD = (
    "SELECT w.pid, j.id FROM pgtq.jobs AS j JOIN pgtq.workers AS w ON w.id = j.worker"
    " WHERE j.queue = 'chaos' AND j.state = 'running'"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4, help="slots per worker")
    parser.add_argument(
        "--batch-size", type=int, default=10, help="jobs claimed per pop (0: the worker's adaptive default)"
    )
    parser.add_argument("--lease", type=float, default=2.0, help="worker lease, seconds")
    parser.add_argument("--kills", type=int, default=20, help="worker SIGKILLs, spread over the run")
    parser.add_argument("--restarts", type=int, default=2, help="PostgreSQL immediate stops")
    parser.add_argument("--push-batch", type=int, default=500)
    parser.add_argument(
        "--handler-seconds",
        type=float,
        default=0.0,
        help="each run of the handler lasts this long after its ledger row (a short run then still has"
        " jobs in hand when its kills and stops come)",
    )
    parser.add_argument("--deadline", type=float, default=600.0, help="give up after this many seconds")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--max-running",
        type=int,
        default=None,
        help="limit the chaos queue to this many running jobs (checked by sampling all along)",
    )
    parser.add_argument(
        "--lock-keys",
        type=int,
        default=None,
        help="push each job with one of this many lock keys, in turn (no key has two running jobs:"
        " checked by sampling all along)",
    )
    parser.add_argument(
        "--bouncer", action="store_true", help="route the workers through PgBouncer and restart it once"
    )
    return parser.parse_args(argv)


def prepare_database(server_dsn: str, max_running: int | None) -> str:
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    dsn = make_conninfo(server_dsn, dbname=DATABASE)
    upgrade(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(LEDGER)
        if max_running is not None:
            conn.execute("SELECT pgtq.configure_queue('chaos', max_running => %s)", [max_running])
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


def produce(
    dsn: str, total: int, batch: int, books: Books, stop: threading.Event, lock_keys: int | None = None
) -> None:
    """Push ``total`` jobs with unique tokens, ``batch`` per transaction
    (with ``lock_keys``, job n gets lock key k<n mod lock_keys>). After a
    failed commit the batch's tokens are looked up before pushing again, so
    no token is pushed twice and none is skipped."""
    for start in range(0, total, batch):
        numbers = range(start, min(start + batch, total))
        tokens = [f"t{n}" for n in numbers]
        keys = [f"k{n % lock_keys}" if lock_keys else None for n in numbers]

        def push_batch(tokens: list[str] = tokens, keys: list[str | None] = keys) -> None:
            with psycopg.connect(dsn) as conn:
                present = conn.execute(
                    "SELECT count(*) FROM pgtq.jobs WHERE queue = 'chaos' AND args->>0 = ANY(%s)", [tokens]
                ).fetchone()
                if present and present[0] == len(tokens):
                    return
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "SELECT pgtq.push('chaos', 'record', jsonb_build_array(%s::text), lock_key => %s)",
                        list(zip(tokens, keys, strict=True)),
                    )

        retrying(push_batch, stop, "push")
        books.pushed += len(tokens)
        time.sleep(0.02)


def producing(dsn: str, options: argparse.Namespace, books: Books, stop: threading.Event) -> None:
    """The producer thread: any error other than the server being away is
    kept in the books (it fails the run) instead of dying unseen."""
    try:
        produce(dsn, options.jobs, options.push_batch, books, stop, options.lock_keys)
    except Exception as error:  # reported by the verdict
        books.producer_error = f"{type(error).__name__}: {error}"


def start_process(
    args: list[str], dsn: str, log: Path, handler_seconds: float = 0.0
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PGTQ_DSN=dsn, PYTHONPATH=os.pathsep.join([str(HERE), str(REPO)]))
    env["PGTQ_CHAOS_HANDLER_SECONDS"] = str(handler_seconds)
    env["PGAPPNAME"] = APP_NAME  # every connection of the crew, for settle()
    with log.open("ab") as output:
        return subprocess.Popen(
            [str(PGTQ), "--log-level", "WARNING", *args],
            env=env,
            cwd=HERE,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def last_line(log: Path) -> str:
    """The last line a process wrote to its log (its error, when it died)."""
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return lines[-1][-300:] if lines else "no output"


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


def keys_running_twice(dsn: str) -> list[str] | None:
    """The chaos queue's lock keys that two or more running jobs with a
    live lease hold at once (each with those jobs' ids), or None while the
    database is away."""
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            rows = conn.execute(
                "SELECT lock_key, array_agg(id ORDER BY id) FROM pgtq._job"
                " WHERE queue = 'chaos' AND state = 'running' AND lease_expires_at > now()"
                " AND lock_key IS NOT NULL GROUP BY lock_key HAVING count(*) > 1"
            ).fetchall()
            return [f"key {key}: jobs {ids}" for key, ids in rows]
    except psycopg.OperationalError:
        return None


def running_jobs(dsn: str) -> list[str] | None:
    """The chaos queue's running jobs with a live lease (id, slot, lease
    expiry, worker), or None while the database is away."""
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            rows = conn.execute(
                "SELECT id, slot, lease_expires_at, worker FROM pgtq._job"
                " WHERE queue = 'chaos' AND state = 'running' AND lease_expires_at > now() ORDER BY slot"
            ).fetchall()
            return [
                f"job {job_id} slot {slot} lease to {expires:%H:%M:%S.%f} {worker}"
                for job_id, slot, expires, worker in rows
            ]
    except psycopg.OperationalError:
        return None


def held_jobs(dsn: str) -> dict[int, frozenset[int]] | None:
    """The ids of the running jobs each worker pid holds, or None while the
    database is away."""
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            rows = conn.execute(HELD).fetchall()
    except psycopg.OperationalError:
        return None
    held: dict[int, set[int]] = {}
    for pid, job_id in rows:
        held.setdefault(int(pid), set()).add(int(job_id))
    return {pid: frozenset(ids) for pid, ids in held.items()}


class Crew:
    """The worker processes and the scheduler: started, replaced, watched."""

    def __init__(
        self, dsn: str, worker_dsn: str, options: argparse.Namespace, logs: Path, books: Books
    ) -> None:
        self.dsn, self.worker_dsn, self.logs, self.books = dsn, worker_dsn, logs, books
        self.handler_seconds = options.handler_seconds
        self.worker_args = [
            "worker",
            "chaos_app:q",
            "--concurrency",
            str(options.concurrency),
            *(["--batch-size", str(options.batch_size)] if options.batch_size else []),
            "--lease",
            str(options.lease),
            "--tick-interval",
            "0.5",
            "--poll-interval",
            "0.5",
        ]
        if worker_dsn != dsn:  # through a bouncer: LISTEN needs a direct connection
            self.worker_args += ["--listen-dsn", dsn]
        self.workers = [self._worker(n) for n in range(options.workers)]
        self.scheduler = self._scheduler()

    def _scheduler(self) -> subprocess.Popen[bytes]:
        return start_process(
            ["scheduler", "chaos", "--interval", "0.5"], self.worker_dsn, self.logs / "scheduler.log"
        )

    def _worker(self, slot: int) -> subprocess.Popen[bytes]:
        return start_process(
            self.worker_args, self.worker_dsn, self.logs / f"worker-{slot}.log", self.handler_seconds
        )

    def registered(self) -> set[int] | None:
        """The pids of the workers that connected (registered themselves),
        or None while the database is away."""
        try:
            with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                return {int(row[0]) for row in conn.execute("SELECT pid FROM pgtq.workers")}
        except psycopg.OperationalError:
            return None

    def watch(self) -> None:
        """Replace any worker that died without being killed, and note it: a
        worker that had connected must never die; one that could not connect
        at its start exits, as it should (through PgBouncer logins fail for a
        while after a server restart), and is only counted."""
        pids: set[int] | None = None
        for slot, process in enumerate(self.workers):
            if process.poll() is None:
                continue
            pids = self.registered() if pids is None else pids
            said = last_line(self.logs / f"worker-{slot}.log")
            note = f"worker pid {process.pid} (exit code {process.returncode}: {said})"
            connected = pids is None or process.pid in pids
            (self.books.unexpected_exits if connected else self.books.failed_starts).append(note)
            self.workers[slot] = self._worker(slot)
        if self.scheduler.poll() is not None:
            self.books.unexpected_exits.append(f"scheduler (exit code {self.scheduler.returncode})")
            self.scheduler = self._scheduler()

    def kill_one(self, rng: random.Random) -> bool:
        """SIGKILL a connected worker, one that holds running jobs if any
        does; note it in the books with the jobs it held, and start a new one
        in its place. The victim is frozen (SIGSTOP) before its jobs are
        read, so it cannot claim or run anything the books would miss. Jobs
        end within milliseconds: while no worker holds any, or when the
        victim ended its jobs between the look and the freeze (it is let go
        again, SIGCONT), another look is taken, up to KILL_TRIES in all, so
        that kills hit workers holding jobs. False (and no kill) while no worker is connected."""
        for tries_left in range(KILL_TRIES - 1, -1, -1):
            held, pids = held_jobs(self.dsn), self.registered()
            live = [slot for slot, p in enumerate(self.workers) if p.poll() is None and p.pid in (pids or ())]
            holding = [slot for slot in live if held and held.get(self.workers[slot].pid)]
            if not live:
                return False
            if not holding and tries_left:
                continue
            slot = rng.choice(holding or live)
            victim = self.workers[slot]
            at = time.time()
            victim.send_signal(signal.SIGSTOP)
            held = held_jobs(self.dsn)
            if not tries_left or held is None or held.get(victim.pid):
                break
            victim.send_signal(signal.SIGCONT)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        jobs = None if held is None else held.get(victim.pid, frozenset())
        self.books.kills.append(Kill(victim.pid, at, jobs, victim.returncode))
        self.workers[slot] = self._worker(slot)
        return True

    def outage(
        self, what: str, stop: Callable[[], None], start: Callable[[], None], pid: Callable[[], int | None]
    ) -> Restart:
        """Cut every worker off at once (``stop``), then ``start`` again. The
        workers are connected first (one still starting would exit, as it
        should) and frozen while the running jobs each holds are read and
        the stop happens, so the books know every claim the outage cut off;
        they run on while it lasts."""
        self.wait_until_connected()
        old_pid, down_at = pid(), time.time()
        for process in self.workers:
            process.send_signal(signal.SIGSTOP)
        try:
            self.settle()
            held = held_jobs(self.dsn)
            stop()
        finally:
            for process in self.workers:
                process.send_signal(signal.SIGCONT)
        start()
        claims = None if held is None else frozenset((pid, job) for pid, jobs in held.items() for job in jobs)
        return Restart(what, down_at, time.time(), old_pid, pid(), claims)

    def settle(self, timeout: float = 2.0) -> None:
        """Wait (up to ``timeout``) until no statement the crew sent is still
        running: with the workers frozen, no claim can then commit after the
        books read the held jobs."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while conn.execute(BUSY, [APP_NAME]).fetchone()[0] and time.monotonic() < deadline:  # type: ignore[index]
                time.sleep(0.005)

    def wait_until_connected(self, timeout: float = 60.0) -> None:
        """Wait (up to ``timeout``) until every worker has connected."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.watch()
            if {process.pid for process in self.workers} <= (self.registered() or set()):
                return
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM everyone; a process that does not exit 0 within a minute
        is noted in the books (and killed)."""
        everyone = [*self.workers, self.scheduler]
        for process in everyone:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in everyone:
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            if code != 0:
                self.books.unclean_stops.append(f"pid {process.pid} (exit code {code})")


def schedule(count: int) -> list[float]:
    """``count`` points of progress evenly spread inside (0, 1)."""
    return [(n + 1) / (count + 1) for n in range(count)]


def run(options: argparse.Namespace) -> int:
    server_dsn = os.environ.get("PGTQ_TEST_DSN")
    datadir = os.environ.get("PGTQ_TEST_PGDATA")
    if not server_dsn or not datadir:
        print("chaos: needs PGTQ_TEST_DSN and PGTQ_TEST_PGDATA (run `make chaos`)", file=sys.stderr)
        return 2
    if not PGTQ.exists():
        print(
            f"chaos: no pgtq command beside {sys.executable} (run it with the .venv's python)",
            file=sys.stderr,
        )
        return 2
    bouncer_restarts = 1 if options.bouncer else 0
    plan = Plan(
        options.jobs,
        options.kills,
        options.restarts,
        bouncer_restarts,
        options.max_running,
        options.lock_keys,
    )
    print(f"chaos: pass rule: {RULE}", flush=True)
    rng = random.Random(options.seed)
    dsn = prepare_database(server_dsn, options.max_running)
    logs = Path(datadir).parent / "chaos-logs"
    logs.mkdir(exist_ok=True)
    books = Books()
    stop = threading.Event()
    started = time.monotonic()
    producer = threading.Thread(target=producing, args=(dsn, options, books, stop), daemon=True)
    producer.start()
    bouncer = start_bouncer(server_dsn, Path(datadir).parent) if options.bouncer else None
    worker_dsn = dsn if bouncer is None else make_conninfo(dsn, host="127.0.0.1", port=str(bouncer.port))
    cluster = pgcluster.Cluster(Path(datadir))
    outages = {
        "postgres": lambda: crew.outage(
            "postgres",
            lambda: pgcluster.pg_ctl(datadir, "stop", "--mode", "immediate"),
            lambda: pgcluster.pg_ctl(datadir, "start"),
            cluster.pid,
        ),
        "pgbouncer": lambda: crew.outage(
            "pgbouncer",
            bouncer.stop,
            bouncer.start,
            lambda: bouncer.pid,  # type: ignore[union-attr]
        ),
    }
    events = sorted(
        [(at, "postgres") for at in schedule(options.restarts)]
        + [(0.5, "pgbouncer")] * plan.bouncer_restarts
        + [(at, "kill") for at in schedule(options.kills)]
    )
    crew = Crew(dsn, worker_dsn, options, logs, books)
    try:
        while time.monotonic() - started < options.deadline and not books.producer_error:
            done = done_count(dsn)
            if done is not None and done >= options.jobs and not producer.is_alive():
                books.finished = True
                break
            progress = (done or 0) / options.jobs
            if options.max_running is not None:
                running = running_jobs(dsn) or []
                if len(running) > books.most_running:
                    books.most_running = len(running)
                    if len(running) > options.max_running:
                        print(f"chaos: {len(running)} jobs run at once: {'; '.join(running)}", flush=True)
            if options.lock_keys is not None:
                for clash in keys_running_twice(dsn) or []:
                    books.keys_running_twice.append(clash)
                    print(f"chaos: {clash} run at once", flush=True)
            crew.watch()
            if events and progress >= events[0][0]:
                event = events[0][1]
                if event == "kill":
                    if crew.kill_one(rng):
                        events.pop(0)
                else:
                    events.pop(0)
                    print(f"chaos: stopping {event} (all connections cut) at {progress:.0%} done", flush=True)
                    books.restarts.append(outages[event]())
            time.sleep(0.1)
    finally:
        stop.set()
        crew.stop()
        if bouncer is not None:
            bouncer.stop()
    wall = time.monotonic() - started
    return audit(dsn, plan, books, options.lease, wall, logs)


def read_ledger(dsn: str, lease: float) -> tuple[list[Job], list[Run]]:
    """The chaos queue's jobs and every ledger row, times in epoch seconds."""
    with psycopg.connect(dsn) as conn:
        jobs = [
            Job(*row)
            for row in conn.execute(
                "SELECT args->>0, id, state::text, attempt FROM pgtq.jobs WHERE queue = 'chaos'"
            )
        ]
        runs = [
            Run(*row)
            for row in conn.execute(
                "SELECT token, job_id, attempt, worker_pid,"
                " extract(epoch FROM lease_expires_at - make_interval(secs => %s))::float8,"
                " extract(epoch FROM at)::float8 FROM chaos_runs",
                [lease],
            )
        ]
    return jobs, runs


def read_rule_breaks(dsn: str) -> list[str]:
    """Rows that break a bookkeeping rule of pgtq._job (kept by the
    functions, not by constraints, since 0.8.0): none, after any crash."""
    with psycopg.connect(dsn) as conn:
        return [
            f"job {job_id}: {rule}"
            for job_id, rule in conn.execute("SELECT id, rule FROM pgtq.job_rule_breaks")
        ]


def audit(dsn: str, plan: Plan, books: Books, lease: float, wall: float, logs: Path) -> int:
    jobs, runs = read_ledger(dsn, lease)
    verdict = judge(plan, books, jobs, runs)
    if breaks := read_rule_breaks(dsn):
        verdict.failures.append(f"rows that break a bookkeeping rule: {', '.join(breaks[:5])}")
    f = verdict.figures
    print(
        f"chaos: jobs={f['jobs']} done={f['done']} runs={f['runs']} "
        f"kills={f['kills']}/{plan.kills} (holding jobs: {f['kills_holding_jobs']}) "
        f"restarts={f['restarts']}/{plan.restarts} "
        f"bouncer_restarts={f['bouncer_restarts']}/{plan.bouncer_restarts} "
        f"never_ran={f['never_ran']} failed_starts={len(books.failed_starts)} "
        f"duplicates={f['duplicates']} (killed worker {f['duplicates_killed']}, "
        f"restart {f['duplicates_restart']}, unexplained {f['duplicates_unexcused']}) "
        f"wall={wall:.1f}s {'OK' if verdict.ok else 'FAILED'}",
        flush=True,
    )
    for failure in verdict.failures:
        print(f"chaos: FAILED: {failure}", file=sys.stderr)
    if not verdict.ok:
        kept = Path(tempfile.mkdtemp(prefix="pgtq-chaos-logs-"))
        shutil.copytree(logs, kept, dirs_exist_ok=True)
        print(f"chaos: the processes' logs are kept in {kept}", file=sys.stderr)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(run(parse_args(None)))
