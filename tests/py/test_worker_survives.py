"""A worker survives every database error after start: each one is injected
for real into a running worker (`pgtq worker`, a subprocess) on the real
server, and the worker carries on; afterwards every job ran exactly once.

The errors: serialization failures (40001), deadlocks (40P01) and statement
timeouts (57014) from a temporary trigger on the job table; the
prepared-statement errors a pooler causes (42P05, 26000) and any other
error (P0001) from the same trigger; admin_shutdown (pg_terminate_backend
of the worker's sessions); read-only sessions as after a failover
(default_transaction_read_only); and a connection limit
(too_many_connections). Only configuration errors at start end a worker."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import Processes, scalar, wait_until
from psycopg import sql
from psycopg.conninfo import make_conninfo

import pgtq

ROLE = "pgtq_test_injured"  # a login that is not a superuser: connection limits apply to it
JOBS_PER_PHASE = 10

INJECTOR = """
CREATE SEQUENCE public.injected_calls;
CREATE FUNCTION public.inject() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- The sequence counts across rolled-back calls: the first TG_ARGV[1] calls fail.
    IF nextval('public.injected_calls') <= TG_ARGV[1]::integer THEN
        RAISE EXCEPTION 'injected error %', TG_ARGV[0] USING ERRCODE = TG_ARGV[0];
    END IF;
    RETURN NEW;
END $$;
"""

# When each injected error strikes: a claim (ready -> running) or a completion.
ON_CLAIM = "OLD.state = 'ready' AND NEW.state = 'running'"
ON_COMPLETION = "NEW.state = 'done'"


@pytest.fixture
def injured_dsn(dsn: str, db: psycopg.Connection[Any]) -> Iterator[str]:
    """The test database as ROLE (a pgtq_worker that may record side effects)."""
    db.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgtq_test_injured') THEN"
        " CREATE ROLE pgtq_test_injured LOGIN IN ROLE pgtq_worker, pgtq_producer; END IF; END $$"
    )
    db.execute(f"ALTER ROLE {ROLE} CONNECTION LIMIT -1")
    db.execute(f"ALTER ROLE {ROLE} RESET ALL")
    db.execute(f"GRANT SELECT, INSERT ON public.side_effects TO {ROLE}")
    db.execute(INJECTOR)
    yield make_conninfo(dsn, user=ROLE)
    db.execute(f"ALTER ROLE {ROLE} CONNECTION LIMIT -1")
    db.execute(f"ALTER ROLE {ROLE} RESET ALL")
    db.execute(f"REVOKE ALL ON public.side_effects FROM {ROLE}")


def terminate_sessions(db: psycopg.Connection[Any]) -> int:
    """pg_terminate_backend of every session of ROLE in this database."""
    return int(
        scalar(
            db,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE usename = %s AND datname = current_database()",
            [ROLE],
        )
    )


class Injury:
    """Pushes each phase's jobs and waits for them; keeps the tokens."""

    def __init__(self, dsn: str, db: psycopg.Connection[Any], output: Callable[[], str]) -> None:
        self.db = db
        self.output = output
        self.tokens: list[str] = []
        self.q = pgtq.PgTq("test_queue", dsn)

    def push_and_drain(self, phase: str) -> None:
        tokens = [f"{phase}-{n}" for n in range(JOBS_PER_PHASE)]
        self.q.push_many("note", [[token] for token in tokens])
        self.tokens += tokens
        expected = len(self.tokens)
        wait_until(
            lambda: scalar(self.db, "SELECT count(*) FROM pgtq.jobs WHERE state = 'done'") == expected,
            timeout=120,
        )

    def seen(self, *parts: str) -> None:
        """Wait until one line of the worker's log holds every part."""
        wait_until(
            lambda: any(all(part in line for part in parts) for line in self.output().splitlines()),
            timeout=120,
        )

    def trigger(self, sqlstate: str, when: str, calls: int = 3) -> None:
        """The next ``calls`` claims or completions fail with ``sqlstate``."""
        self.db.execute("ALTER SEQUENCE public.injected_calls RESTART")
        self.db.execute("DROP TRIGGER IF EXISTS inject ON pgtq._job")
        self.db.execute(
            sql.SQL(
                "CREATE TRIGGER inject BEFORE UPDATE ON pgtq._job FOR EACH ROW WHEN ({when})"
                " EXECUTE FUNCTION public.inject({sqlstate}, {calls})"
            ).format(when=sql.SQL(when), sqlstate=sql.Literal(sqlstate), calls=sql.Literal(str(calls)))
        )

    def no_trigger(self) -> None:
        self.db.execute("DROP TRIGGER IF EXISTS inject ON pgtq._job")


def test_a_worker_survives_each_database_error_and_runs_every_job_once(
    injured_dsn: str, dsn: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    processes = Processes(injured_dsn, tmp_path)
    worker = processes.worker(
        "app:q", "--concurrency", "2", "--batch-size", "4", "--tick-interval", "0.5", "--lease", "60"
    )
    injury = Injury(dsn, db, lambda: processes.output(worker))  # pushes as the superuser
    try:
        injury.seen("serving 'test_queue'")
        injury.push_and_drain("healthy")

        # Statement errors from the job table: the connection stays, the
        # outcomes of a failed completion are kept and written again.
        for sqlstate, when in [
            ("40001", ON_COMPLETION),  # serialization_failure
            ("40P01", ON_CLAIM),  # deadlock_detected
            ("57014", ON_COMPLETION),  # query_canceled (statement timeout)
            ("42P05", ON_CLAIM),  # duplicate_prepared_statement: a new connection
            ("26000", ON_COMPLETION),  # invalid_sql_statement_name: a new connection
            ("P0001", ON_COMPLETION),  # any other error
        ]:
            injury.trigger(sqlstate, when)
            injury.push_and_drain(f"e{sqlstate}")
            injury.seen("database ", f"[{sqlstate}]: injected error {sqlstate}")
            injury.no_trigger()

        # admin_shutdown: its sessions are terminated.
        lost_before = injury.output().count("database connection lost")
        assert terminate_sessions(db) >= 1
        injury.push_and_drain("terminated")
        assert injury.output().count("database connection lost") > lost_before

        # Read-only sessions, as on a standby after a failover.
        db.execute(f"ALTER ROLE {ROLE} SET default_transaction_read_only = on")
        terminate_sessions(db)
        injury.seen("could not reconnect", "[25006]")
        db.execute(f"ALTER ROLE {ROLE} RESET default_transaction_read_only")
        injury.push_and_drain("read-only")

        # too_many_connections: no session allowed for a while.
        db.execute(f"ALTER ROLE {ROLE} CONNECTION LIMIT 0")
        terminate_sessions(db)
        injury.seen("could not reconnect", "too many connections for role")
        db.execute(f"ALTER ROLE {ROLE} CONNECTION LIMIT -1")
        injury.push_and_drain("limited")

        assert worker.poll() is None, "the worker is still serving"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        injury.no_trigger()
        injury.q.close()
        processes.stop_all()
    runs = dict(
        db.execute("SELECT token, count(*) FROM side_effects WHERE kind = 'ran' GROUP BY 1").fetchall()
    )
    assert {token: runs.get(token, 0) for token in injury.tokens} == dict.fromkeys(injury.tokens, 1), (
        "every job ran exactly once"
    )
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE state <> 'done'") == 0
    output = processes.output(worker)
    assert "Traceback" not in output, "one line per error, no traceback"


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("empty", "pgtq: error: this database has no pgtq schema"),
        ("nowhere", "pgtq: error: cannot connect to the pgtq database"),
    ],
)
def test_only_configuration_errors_at_start_end_a_worker(
    where: str, message: str, empty_dsn: str, tmp_path: Path
) -> None:
    dsn = empty_dsn if where == "empty" else "host=127.0.0.1 port=1 user=nobody dbname=none"
    processes = Processes(dsn, tmp_path)
    try:
        worker = processes.worker("app:q")
        assert worker.wait(timeout=60) == 1
        assert message in processes.output(worker)
    finally:
        processes.stop_all()
