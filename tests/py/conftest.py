"""Fixtures: a real PostgreSQL server (started by `make test`), a template
database with the pgtq schema installed once per session through the
alembic route, and a fresh database cloned from it for each test.

Environment: PGTQ_TEST_DSN (the server; `make test` sets it), and
PGTQ_TEST_PGDATA (its data folder, set by `make test` too), which the tests
that stop and start PostgreSQL need. Against an outside server (PGTQ_TEST_DSN
alone) those tests fail unless PGTQ_SKIP_SERVER_CONTROL=1 skips them on
purpose; the summary then lists them."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import venv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import pgtq
from pgtq._db import gateway
from pgtq.migrate import upgrade
from pgtq.worker import Worker, WorkerSettings

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import pgbouncer  # noqa: E402
import pgcluster  # noqa: E402  (scripts/ is not a package)

APPS = Path(__file__).resolve().parent / "apps"
TEMPLATE = "pgtq_test_template"
SKIP_SERVER_CONTROL = "PGTQ_SKIP_SERVER_CONTROL"  # opt-out for an outside server, see server_datadir
_database_numbers = itertools.count()
_role_numbers = itertools.count()


@pytest.fixture(scope="session")
def server_dsn() -> str:
    """DSN of the test server's maintenance database. Only the tests that
    need the database ask for it: tests/py/unit/ runs without one."""
    dsn = os.environ.get("PGTQ_TEST_DSN")
    if not dsn:
        pytest.fail("PGTQ_TEST_DSN is not set: run the database tests with `make test`", pytrace=False)
    return dsn


def recreate(admin: psycopg.Connection[Any], name: str, template: str | None = None) -> None:
    """Drop database ``name`` if it exists and create it afresh (a copy of ``template``)."""
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    if template is None:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    else:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )


@pytest.fixture(scope="session")
def template_dsn(server_dsn: str) -> str:
    """A database with the pgtq schema, installed once through alembic."""
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        recreate(admin, TEMPLATE)
    dsn = make_conninfo(server_dsn, dbname=TEMPLATE)
    install_test_schema(dsn)
    return dsn


def install_test_schema(dsn: str) -> None:
    """pgtq (alembic route) and the table the test apps record their runs in."""
    upgrade(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.side_effects ("
            " token text NOT NULL, kind text NOT NULL DEFAULT 'ran',"
            " pid integer NOT NULL DEFAULT pg_backend_pid(),"
            " at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )


@pytest.fixture
def empty_dsn(server_dsn: str) -> Iterator[str]:
    """A fresh database without the pgtq schema."""
    name = f"pgtq_test_empty_{os.getpid()}_{next(_database_numbers)}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        recreate(admin, name)
    yield make_conninfo(server_dsn, dbname=name)
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def dsn(server_dsn: str, template_dsn: str) -> Iterator[str]:
    """A fresh database with the pgtq schema, for this test only."""
    name = f"pgtq_test_{os.getpid()}_{next(_database_numbers)}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        recreate(admin, name, template=TEMPLATE)
    yield make_conninfo(server_dsn, dbname=name)
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def login_role(db: psycopg.Connection[Any]) -> Iterator[Callable[..., str]]:
    """Make LOGIN roles that are members of a pgtq role (named after it, or
    after ``label``, made unique); drop them after."""
    made: list[str] = []

    def make(member_of: str, label: str | None = None) -> str:
        name = f"{label or 'app_' + member_of}_{os.getpid()}_{next(_role_numbers)}"
        db.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(name), sql.Identifier(member_of))
        )
        made.append(name)
        return name

    yield make
    for name in made:
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def q(dsn: str) -> Iterator[pgtq.PgTq]:
    """A PgTq for queue ``test_queue`` in this test's database."""
    queue = pgtq.PgTq("test_queue", dsn)
    yield queue
    queue.close()


@pytest.fixture
def db(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to this test's database, for checks."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def held_snapshot(dsn: str) -> Iterator[None]:
    """A read-only REPEATABLE READ snapshot held open (a long report) for
    the test: every row version written meanwhile stays."""
    with psycopg.connect(dsn) as holder:
        holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM pgtq._settings").fetchall()
        yield
        holder.rollback()


@pytest.fixture
def pops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread of each claim that took jobs (``pgtq.pop``,
    alone or after outcomes), for tests of a worker in this process."""
    names: list[str] = []
    real_pop, real_write_and_pop = gateway.pop, gateway.write_outcomes_and_pop

    def pop(conn: gateway.Connection, **kwargs: Any) -> Any:
        tasks = real_pop(conn, **kwargs)
        if tasks:
            names.append(threading.current_thread().name)
        return tasks

    def write_outcomes_and_pop(conn: gateway.Connection, outcomes: Any, **kwargs: Any) -> Any:
        written, tasks = real_write_and_pop(conn, outcomes, **kwargs)
        if tasks:
            names.append(threading.current_thread().name)
        return written, tasks

    monkeypatch.setattr(gateway, "pop", pop)
    monkeypatch.setattr(gateway, "write_outcomes_and_pop", write_outcomes_and_pop)
    return names


@contextmanager
def own_clusters() -> Iterator[list[pgcluster.Cluster]]:
    """Servers a test starts for itself: each one appended to the list is
    stopped by its pid and its folder removed when the block ends, the last
    started first, also when the test fails."""
    started: list[pgcluster.Cluster] = []
    try:
        yield started
    finally:
        for cluster in reversed(started):
            cluster.stop()
            shutil.rmtree(cluster.datadir.parent, ignore_errors=True)


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns a truthy value or ``timeout``
    seconds pass (then fail the test)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


@contextmanager
def worker_running(q: pgtq.PgTq, concurrency: int = 2) -> Iterator[Worker]:
    """A worker serving ``q`` in a thread of this process (its handlers may
    be defined in the test), stopped gracefully at the end of the block."""
    worker = Worker(q, WorkerSettings(concurrency=concurrency, poll_interval=0.5))
    thread = threading.Thread(target=worker.run, name="test-worker")
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the worker stopped"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``pgtq`` command line in the test apps' folder."""
    return run_module("pgtq.cli", *args, env=env)


def run_module(
    module: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` in the test apps' folder, with its output."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=APPS,
        env=env,
    )


def scalar(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def counted_in_rollback(
    conn: psycopg.Connection[Any], count: str, count_params: Any, statement: str, params: Any = None
) -> tuple[int, Any]:
    """How much the counter query ``count`` grows while ``statement`` runs,
    and the statement's first row, within one transaction of ``conn``
    (autocommit) that is then rolled back, writes and all."""
    conn.execute("BEGIN")
    try:
        before = int(scalar(conn, count, count_params))
        first_row = conn.execute(statement, params).fetchone()
        return int(scalar(conn, count, count_params)) - before, first_row
    finally:
        conn.execute("ROLLBACK")


def waiting_on_lock(db: psycopg.Connection[Any], call: str, lock: str = "advisory") -> bool:
    """Whether one session waits for a lock of type ``lock`` (``advisory``;
    ``transactionid``: a row another transaction writes) in a query that
    contains ``call``."""
    return (
        scalar(
            db,
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND wait_event = %s AND query LIKE %s",
            [lock, f"%{call}%"],
        )
        == 1
    )


def in_background(dsn: str, statement: str) -> tuple[threading.Thread, list[Any]]:
    """Start ``statement`` on a connection of its own in a thread; its one
    value lands in the returned list once it has run."""
    values: list[Any] = []

    def run() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            values.append(scalar(conn, statement))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, values


def index_entries_read(
    conn: psycopg.Connection[Any], index: str, statement: str, params: Any = None
) -> tuple[int, Any]:
    """The entries of ``index`` that ``statement`` reads (what a held
    snapshot makes it step over), and the statement's first row, counted
    within one transaction that is then rolled back, writes and all."""
    count = "SELECT pg_stat_get_xact_tuples_returned(%s::regclass)"
    return counted_in_rollback(conn, count, (index,), statement, params)


# Rows and index entries of the job table a statement reads: its
# sequential scans' rows and the entries of each of its indexes.
JOB_TABLE_READS = """
SELECT pg_stat_get_xact_tuples_returned('pgtq._job'::regclass)
       + (SELECT sum(pg_stat_get_xact_tuples_returned(i.indexrelid))
          FROM pg_index AS i WHERE i.indrelid = 'pgtq._job'::regclass)
"""


def job_table_reads(conn: psycopg.Connection[Any], statement: str, params: Any = None) -> tuple[int, Any]:
    """What ``statement`` reads of the job table and its indexes (rows and
    index entries), and its first row, counted in one transaction of
    ``conn`` (autocommit) that is then rolled back."""
    return counted_in_rollback(conn, JOB_TABLE_READS, None, statement, params)


SENTINEL = "-- sentinel --"


def heard_until_sentinel(
    listener: psycopg.Connection[Any], sender: psycopg.Connection[Any], channel: str
) -> list[tuple[str, str]]:
    """(channel, payload) of each notification ``listener`` gets before a
    sentinel that ``sender`` (autocommit) notifies on ``channel`` now.
    Notifications arrive in commit order, so these are all that the
    transactions committed before this call sent: no waiting for
    stragglers, and none of them is left to a later call."""
    sender.execute("SELECT pg_notify(%s, %s)", [channel, SENTINEL])
    heard: list[tuple[str, str]] = []
    notifies = listener.notifies(timeout=30)
    try:
        for notify in notifies:
            if notify.channel == channel and notify.payload == SENTINEL:
                return heard
            heard.append((notify.channel, notify.payload))
    finally:
        notifies.close()
    raise AssertionError(f"the sentinel did not arrive within 30 s (got {heard})")


# A worker's listener session in this database: it ran LISTEN pgtq (after
# LISTEN pgtq_cancel), then only the calls that mark, settle and clear the
# queues its worker waits for (0.12.0) and open and close its hand-off offer
# (0.16.0), so one of them is its last statement.
LISTENERS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND (query = 'LISTEN pgtq' OR query ~ '^SELECT pgtq\\.(mark_waiting|waiting_settled|clear_waiting"
    "|offer_handoffs|open_handoff|close_handoff)\\(')"
)


def listening(db: psycopg.Connection[Any]) -> bool:
    """Whether a worker's listener is listening in this database."""
    return bool(scalar(db, LISTENERS))


# How many sessions hold the waiting mark of a queue (pgtq.mark_waiting):
# the advisory lock (pgtq._waiting_space(queue), 0), shared, at session level.
WAITING_MARKS = (
    "SELECT count(*) FROM pg_catalog.pg_locks AS l"
    " WHERE l.locktype = 'advisory' AND l.mode = 'ShareLock' AND l.granted"
    " AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())"
    " AND l.classid::text::bigint = (pgtq._waiting_space(%s)::bigint & 4294967295)"
    " AND l.objid = 0 AND l.objsubid = 2"
)


def waiting_marks(db: psycopg.Connection[Any], queue: str) -> int:
    """How many sessions mark ``queue`` waiting: workers waiting for its jobs."""
    return int(scalar(db, WAITING_MARKS, [queue]))


def server_datadir() -> str:
    """The data folder of `make test`'s throwaway server, for the tests that
    stop and start PostgreSQL (chaos, outage, restart). With an outside
    server (PGTQ_TEST_DSN alone) they fail, unless PGTQ_SKIP_SERVER_CONTROL=1
    opts out of the whole group on purpose: then they skip, and the summary
    names them (pytest_terminal_summary)."""
    datadir = os.environ.get("PGTQ_TEST_PGDATA")
    if datadir:
        return datadir
    if os.environ.get(SKIP_SERVER_CONTROL) == "1":
        pytest.skip(f"{SKIP_SERVER_CONTROL}=1: this test stops and starts PostgreSQL")
    pytest.fail(
        "this test stops and starts PostgreSQL and needs the throwaway server of `make test`"
        f" (PGTQ_TEST_PGDATA); with an outside server set {SKIP_SERVER_CONTROL}=1 to skip the"
        " chaos, outage and restart tests on purpose",
        pytrace=False,
    )


def pg_ctl(action: str, *options: str) -> None:
    """Run pg_ctl on the throwaway test server (see server_datadir)."""
    pgcluster.pg_ctl(server_datadir(), action, *options)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name every test the PGTQ_SKIP_SERVER_CONTROL opt-out skipped."""
    skipped = [
        report.nodeid
        for report in terminalreporter.stats.get("skipped", [])
        if SKIP_SERVER_CONTROL in str(report.longrepr)
    ]
    if skipped:
        terminalreporter.section(f"{SKIP_SERVER_CONTROL}=1: server-control tests skipped", yellow=True)
        for nodeid in skipped:
            terminalreporter.write_line(f"not run (stops and starts PostgreSQL): {nodeid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Processes:
    """Starts pgtq subprocesses (workers, schedulers) and always reaps them.
    Their output goes to files (a pipe could fill up and block them)."""

    def __init__(self, dsn: str, log_dir: Path) -> None:
        self.dsn = dsn
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[str]] = []
        self.logs: dict[int, Path] = {}

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PGTQ_DSN"] = self.dsn
        env["PYTHONPATH"] = os.pathsep.join([str(APPS), str(REPO)])
        return env

    def pgtq(self, *args: str) -> subprocess.Popen[str]:
        log = self.log_dir / f"process-{len(self.started)}.log"
        with log.open("w") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "pgtq.cli", *args],
                env=self.env(),
                cwd=APPS,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.started.append(process)
        self.logs[process.pid] = log
        return process

    def worker(self, target: str = "app:q", *args: str) -> subprocess.Popen[str]:
        """``pgtq worker`` for ``target`` (several: comma-separated) with a
        short poll interval unless ``args`` set one."""
        defaults = [] if "--poll-interval" in args else ["--poll-interval", "0.5"]
        return self.pgtq("--log-level", "DEBUG", "worker", *target.split(","), *defaults, *args)

    def output(self, process: subprocess.Popen[str]) -> str:
        """Everything a process printed so far."""
        return self.logs[process.pid].read_text()

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


@pytest.fixture
def processes(dsn: str, tmp_path: Path) -> Iterator[Processes]:
    """Run pgtq subprocesses against this test's database."""
    running = Processes(dsn, tmp_path)
    yield running
    running.stop_all()


BouncerFactory = Callable[..., pgbouncer.Bouncer]


@pytest.fixture
def bouncers(server_dsn: str) -> Iterator[BouncerFactory]:
    """Start PgBouncers in front of the test server: ``bouncers(pool_mode,
    pool_size=..., users=...)``; each is stopped by its pid at the end."""
    if not Path(pgbouncer.PGBOUNCER).exists():
        pytest.fail("pgbouncer is not installed: run `make system-deps`", pytrace=False)
    server = conninfo_to_dict(server_dsn)
    host = str(server.get("host") or "127.0.0.1")
    started: list[pgbouncer.Bouncer] = []
    # Its own folder under /tmp: the server user cannot enter pytest's tmp_path.
    root = Path(tempfile.mkdtemp(prefix="pgtq-bouncer-"))
    pgcluster.give_to_server_user(root)

    def start(pool_mode: str = "transaction", **options: Any) -> pgbouncer.Bouncer:
        bouncer = pgbouncer.Bouncer(
            root / str(len(started)),
            server_port=int(server.get("port") or 5432),
            server_host="127.0.0.1" if host.startswith("/") else host,
            pool_mode=pool_mode,
            **options,
        )
        started.append(bouncer)
        bouncer.start()
        return bouncer

    yield start
    for bouncer in started:
        bouncer.stop()
    shutil.rmtree(root, ignore_errors=True)


def through(bouncer: pgbouncer.Bouncer, dsn: str, **options: Any) -> str:
    """``dsn`` (of the test server) rerouted through ``bouncer``."""
    return make_conninfo(dsn, host="127.0.0.1", port=str(bouncer.port), **options)


# -- pgtq as users install it: a wheel in a virtualenv outside the repository ---------


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)], cwd=out)
    (built,) = out.glob("pgtq-*.whl")
    return built


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv outside the repository with the wheel installed
    (and its dependencies from the package index); its bin folder."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=True)
    bindir = root / "bin"
    run([str(bindir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], cwd=root)
    return bindir


def outside_env(bindir: Path, **extra: str) -> dict[str, str]:
    """An environment in which only the installed wheel can be imported."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def run_psql(dsn: str, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with psql against the database at ``dsn``, stopping at the first error."""
    return subprocess.run(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", dsn],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def psql_output(dsn: str, script: str) -> str:
    """What ``script`` printed in psql; it must succeed."""
    result = run_psql(dsn, script)
    assert result.returncode == 0, result.stderr
    return result.stdout
