"""pgtq.health() from other sessions, the Python API and ``pgtq doctor``.

The checks' rules, one by one with literal times, are in
tests/sql/35-health.sql; here: another session's old transaction (which one
session of pgTAP cannot open), a prepared transaction (on a server of the
test's own, which allows them), a replication slot left behind by a standby
that went away (a server and a standby of the test's own), what a role that
may not see every session is told, the vacuum check's dead rows and
running vacuums (committed changes and other sessions), and the command
line's table, JSON and exit codes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pgcluster
import psycopg
import pytest
from conftest import install_test_schema, own_clusters, run_cli, scalar, wait_until
from psycopg import sql
from psycopg.conninfo import make_conninfo

import pgtq

EXIT_LOOK = 5


def checks(database: pgtq.Database, **thresholds: Any) -> dict[str, pgtq.HealthCheck]:
    found = database.health(**thresholds)
    assert found is not None
    return {check.name: check for check in found}


@pytest.fixture
def database(dsn: str) -> Iterator[pgtq.Database]:
    with pgtq.Database(dsn) as opened:
        yield opened


@pytest.fixture
def holder(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A session that holds a snapshot open (REPEATABLE READ) until the test ends."""
    with psycopg.connect(dsn, application_name="report-export") as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute("SELECT count(*) FROM pg_class")  # takes the snapshot
        yield conn
        conn.rollback()


def test_another_sessions_old_transaction_is_named(database: pgtq.Database, holder: Any) -> None:
    pid, role = holder.info.backend_pid, holder.info.user
    old = timedelta(milliseconds=1)

    def warned() -> pgtq.HealthCheck | None:
        cleanup = checks(database, old_transaction=old)["cleanup"]
        return cleanup if cleanup.status == "warning" else None

    cleanup = wait_until(warned, timeout=5.0)
    assert not cleanup.ok
    assert f"(pid {pid}, role '{role}', application 'report-export', idle in transaction)" in cleanup.detail
    assert "holds back the cleanup of dead rows" in cleanup.detail
    how_to_end_it = f"until it ends (pg_terminate_backend({pid}) ends its session now"
    assert how_to_end_it in cleanup.detail
    assert checks(database, old_transaction=timedelta(hours=1))["cleanup"].ok, "younger than the threshold"
    holder.rollback()
    assert checks(database, old_transaction=old)["cleanup"].ok, "once it ended, nothing holds cleanup back"


SLOT = "gone_standby"


def test_a_prepared_transaction_is_named_with_how_to_end_it() -> None:
    """A prepared transaction holds its snapshot until someone commits or
    rolls it back; health (schema 0.22.0) says how, with its gid."""
    with own_clusters() as started:
        server = pgcluster.start_throwaway(lambda _cluster: {"max_prepared_transactions": "2"})
        started.append(server)
        install_test_schema(server.dsn)
        with psycopg.connect(server.dsn) as preparer:
            preparer.execute("INSERT INTO public.side_effects (token) VALUES ('prepared')")
            preparer.execute("PREPARE TRANSACTION 'nightly-export'")
        with pgtq.Database(server.dsn) as database:
            cleanup = checks(database, old_transaction=timedelta(milliseconds=1))["cleanup"]
            assert cleanup.status == "warning", cleanup.detail
            named = "a prepared transaction 'nightly-export', prepared "
            assert cleanup.detail.startswith(named), cleanup.detail
            assert (
                "holds back the cleanup of dead rows: until it is committed or rolled back "
                "(COMMIT PREPARED 'nightly-export' or ROLLBACK PREPARED 'nightly-export', "
                "as its role or a superuser)" in cleanup.detail
            )
            with psycopg.connect(server.dsn, autocommit=True) as admin:
                admin.execute("ROLLBACK PREPARED 'nightly-export'")
            assert checks(database, old_transaction=timedelta(milliseconds=1))["cleanup"].ok


def slot_state(dsn: str, slot: str = SLOT) -> tuple[bool, bool] | None:
    """Whether ``slot`` is in use, and whether it keeps an xmin."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT active, xmin IS NOT NULL FROM pg_replication_slots WHERE slot_name = %s", [slot]
        ).fetchone()
    return None if row is None else (bool(row[0]), bool(row[1]))


def test_a_slot_left_by_a_standby_that_went_away_is_named_until_dropped() -> None:
    """A standby with hot_standby_feedback keeps its slot's xmin; once it is
    gone the slot holds back the cleanup of dead rows for good. health
    (schema 0.19.0) names it then, not while the standby is connected."""
    with own_clusters() as started:
        primary = pgcluster.start_throwaway(lambda _cluster: {})
        started.append(primary)
        install_test_schema(primary.dsn)
        with psycopg.connect(primary.dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_create_physical_replication_slot(%s)", [SLOT])
        standby = pgcluster.start_standby(primary, SLOT)
        started.append(standby)
        with psycopg.connect(standby.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER SYSTEM SET primary_slot_name = {}").format(sql.Literal(SLOT)))
            conn.execute("ALTER SYSTEM SET hot_standby_feedback = on")
            conn.execute("SELECT pg_reload_conf()")
        wait_until(lambda: slot_state(primary.dsn) == (True, True), timeout=60)
        with pgtq.Database(primary.dsn) as database:
            assert checks(database)["cleanup"].ok, "a slot in use is not named"

            standby.stop()
            wait_until(lambda: slot_state(primary.dsn) == (False, True), timeout=30)
            cleanup = checks(database, old_transaction=timedelta(hours=1))["cleanup"]
            assert cleanup.status == "warning", cleanup.detail
            named = f"an inactive replication slot '{SLOT}' (physical), whose xmin is "
            assert cleanup.detail.startswith(named), cleanup.detail
            assert (
                "holds back the cleanup of dead rows: until its standby is back or the slot is dropped "
                "(pg_drop_replication_slot)" in cleanup.detail
            )

            with psycopg.connect(primary.dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_drop_replication_slot(%s)", [SLOT])
            assert checks(database)["cleanup"].ok, "dropped: nothing holds cleanup back"


REPLICA = "reporting_replica"
FEEDBACK_SLOT = "reporting_slot"
SAMPLED = datetime(2030, 1, 1, tzinfo=UTC)


def cleanup_at(dsn: str, as_of: datetime) -> tuple[str, str]:
    """The cleanup check's status and detail at ``as_of`` (old_transaction:
    5 minutes)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status, detail FROM pgtq.health(old_transaction => '5 minutes', as_of => %s)"
            " WHERE name = 'cleanup'",
            [as_of],
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def feedback_xmin(dsn: str, slot: str | None) -> bool:
    """Whether the primary holds an xmin of REPLICA's feedback: on ``slot``
    in use, or on its walsender when ``slot`` is None."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if slot is None:
            found = (
                "SELECT 1 FROM pg_stat_replication WHERE application_name = %s AND backend_xmin IS NOT NULL"
            )
            return conn.execute(found, [REPLICA]).fetchone() is not None
        found = "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active AND xmin IS NOT NULL"
        return conn.execute(found, [slot]).fetchone() is not None


def assert_feedback_named(
    primary: pgcluster.Cluster, standby: pgcluster.Cluster, sampled: datetime, how: str
) -> None:
    """A snapshot held on the standby, older than the primary's sample at
    ``sampled`` (a tick that writes the transaction-id clock): named ten
    minutes later, with its standby, ``how`` it connects and its least
    age; not two minutes later (under old_transaction); not once it ended."""
    with psycopg.connect(standby.dsn) as reader:
        reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        reader.execute("SELECT count(*) FROM pg_class")  # takes the snapshot
        with psycopg.connect(primary.dsn, autocommit=True) as admin:
            admin.execute("SELECT pgtq.tick(as_of => %s)", [sampled])
            walsender = scalar(
                admin, "SELECT pid FROM pg_stat_replication WHERE application_name = %s", [REPLICA]
            )
        status, detail = cleanup_at(primary.dsn, sampled + timedelta(minutes=10))
        assert status == "warning", detail
        named = (
            f"the standby '{REPLICA}' ({how}, walsender pid {walsender}),"
            " whose oldest snapshot is at least 10 min old,"
        )
        assert detail.startswith(named), detail
        assert "holds back the cleanup of dead rows: until its oldest query there ends" in detail
        assert cleanup_at(primary.dsn, sampled + timedelta(minutes=2))[0] == "ok", (
            "younger than old_transaction"
        )
        reader.rollback()
    wait_until(lambda: cleanup_at(primary.dsn, sampled + timedelta(minutes=10))[0] == "ok", timeout=30)


def test_a_standby_whose_feedback_keeps_an_old_snapshot_is_named_with_its_age() -> None:
    """A connected standby with hot_standby_feedback holds back the cleanup
    of dead rows as long as its oldest snapshot: health (schema 0.34.0)
    dates the xmin of its feedback by the history's transaction-id clock,
    without a slot (the walsender's xmin) and with one (the slot's); and
    the slot that a standby left while a snapshot was held there, with
    that snapshot's least age."""
    with own_clusters() as started:
        primary = pgcluster.start_throwaway(lambda _cluster: {})
        started.append(primary)
        install_test_schema(primary.dsn)
        standby = pgcluster.start_standby(primary, REPLICA)
        started.append(standby)
        with psycopg.connect(standby.dsn, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET hot_standby_feedback = on")
            conn.execute("ALTER SYSTEM SET wal_receiver_status_interval = 1")
            conn.execute("SELECT pg_reload_conf()")
        wait_until(lambda: feedback_xmin(primary.dsn, None), timeout=60)
        assert cleanup_at(primary.dsn, SAMPLED)[0] == "ok", "no clock yet: nothing to date it by"
        assert_feedback_named(primary, standby, SAMPLED, "no slot")

        with psycopg.connect(primary.dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_create_physical_replication_slot(%s)", [FEEDBACK_SLOT])
        with psycopg.connect(standby.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER SYSTEM SET primary_slot_name = {}").format(sql.Literal(FEEDBACK_SLOT))
            )
            conn.execute("SELECT pg_reload_conf()")
        wait_until(lambda: feedback_xmin(primary.dsn, FEEDBACK_SLOT), timeout=60)
        assert_feedback_named(primary, standby, SAMPLED + timedelta(hours=1), f"slot '{FEEDBACK_SLOT}'")

        # The standby goes away while a snapshot is held there: its slot
        # keeps that xmin for good, named with its least age too.
        reader = psycopg.connect(standby.dsn)
        reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        reader.execute("SELECT count(*) FROM pg_class")
        sampled = SAMPLED + timedelta(hours=2)
        with psycopg.connect(primary.dsn, autocommit=True) as admin:
            admin.execute("SELECT pgtq.tick(as_of => %s)", [sampled])
        standby.stop()
        reader.close()
        wait_until(lambda: slot_state(primary.dsn, FEEDBACK_SLOT) == (False, True), timeout=30)
        status, detail = cleanup_at(primary.dsn, sampled + timedelta(minutes=30))
        assert status == "warning", detail
        assert detail.startswith(
            f"an inactive replication slot '{FEEDBACK_SLOT}' (physical), whose xmin is "
        ), detail
        assert " transactions old (at least 30 min), holds back the cleanup of dead rows" in detail, detail
        with psycopg.connect(primary.dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_drop_replication_slot(%s)", [FEEDBACK_SLOT])


def test_a_role_that_sees_only_its_own_sessions_is_told_so(
    dsn: str, holder: Any, login_role: Any, db: psycopg.Connection[Any]
) -> None:
    role = login_role("pgtq_observer")
    observer = make_conninfo(dsn, user=role)
    with pgtq.Database(observer) as database:
        cleanup = checks(database, old_transaction=timedelta(milliseconds=1))["cleanup"]
        assert cleanup.status == "unknown", "the holder's session is another role's: out of its sight"
        assert "pg_monitor sees them all" in cleanup.detail
    db.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(role)))
    with pgtq.Database(observer) as database:
        cleanup = checks(database, old_transaction=timedelta(milliseconds=1))["cleanup"]
        assert cleanup.status == "warning", "with pg_monitor it sees every session"


JOB_STATISTICS = "FROM pg_stat_all_tables WHERE relid = 'pgtq._job'::regclass"


def vacuum_check(db: psycopg.Connection[Any], later: timedelta = timedelta(0)) -> tuple[str, str]:
    """The vacuum check of pgtq.health() (schema 0.36.0), `later` after now."""
    row = db.execute(
        "SELECT status, detail FROM pgtq.health(as_of => now() + %s) WHERE name = 'vacuum'", [later]
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def leave_dead_jobs(db: psycopg.Connection[Any], count: int, deleted: str = "true") -> None:
    """Push ``count`` jobs and delete those that match ``deleted`` (all of
    them by default): as many dead row versions of pgtq._job, counted once
    this session's statistics reach the server."""
    dead = f"SELECT n_dead_tup {JOB_STATISTICS}"
    dead_before = scalar(db, dead)
    pushes = "SELECT pgtq.push('mail', 'send', jsonb_build_array(i)) FROM generate_series(1, %s) AS i"
    db.execute(pushes, [count])
    gone = db.execute(f"DELETE FROM pgtq._job WHERE {deleted}").rowcount
    db.execute("SELECT pg_stat_force_next_flush()")
    wait_until(lambda: scalar(db, dead) >= dead_before + gone, timeout=15.0)


def test_the_vacuum_check_names_a_table_no_vacuum_reaches(dsn: str, db: psycopg.Connection[Any]) -> None:
    """Dead row versions over autovacuum's threshold (50 + 1% of the rows
    for pgtq._job) are fine while vacuum comes; named once no vacuum came
    for 10 minutes, or at once when autovacuum is off for a table never
    vacuumed."""
    assert vacuum_check(db)[0] == "ok"
    db.execute("ALTER TABLE pgtq._job SET (autovacuum_enabled = off)")
    leave_dead_jobs(db, 300)
    status, detail = vacuum_check(db)
    assert status == "warning", detail
    assert detail.startswith(
        "table pgtq._job: 300 dead row versions (autovacuum's threshold 50), never vacuumed "
        "(autovacuum is off for it). Until a vacuum removes them, reads step over them"
    ), detail
    assert run_cli("doctor", "--dsn", dsn).returncode == EXIT_LOOK

    db.execute("VACUUM pgtq._job")
    assert vacuum_check(db, timedelta(hours=1))[0] == "ok", "vacuumed: nothing dead is left"
    leave_dead_jobs(db, 300)
    assert vacuum_check(db) == (
        "ok",
        "no table of pgtq has had more dead row versions than autovacuum's threshold without a vacuum "
        "for over 10 min",
    ), "vacuumed under 10 minutes ago: it is coming"
    status, detail = vacuum_check(db, timedelta(minutes=11))
    assert status == "warning"
    assert detail.startswith(
        "table pgtq._job: 300 dead row versions (autovacuum's threshold 50), last vacuumed 11 min ago "
        "(autovacuum is off for it)."
    ), detail

    db.execute("ALTER TABLE pgtq._job RESET (autovacuum_enabled)")
    status, detail = vacuum_check(db, timedelta(minutes=11))
    if status == "warning":  # autovacuum on, but it did not come (yet): named without the note
        assert detail.startswith(
            "table pgtq._job: 300 dead row versions (autovacuum's threshold 50), last vacuumed 11 min ago. "
        ), detail
    else:  # it came at once: the dead rows are gone
        assert status == "ok", detail
        assert scalar(db, f"SELECT last_autovacuum {JOB_STATISTICS}")
    db.execute("SET track_counts = off")
    status, detail = vacuum_check(db)
    assert status == "unknown" and detail.startswith("track_counts is off: no dead rows are counted"), detail


def test_a_table_a_vacuum_is_on_is_not_named_until_that_vacuum_runs_long(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """(Schema 0.38.0.) A vacuum that began within the check's 10 minutes
    is on the table: not named. One that has run longer is named with how
    long, and its phase. Staged: a cursor pins the page of a live job, and
    VACUUM (FREEZE), which must freeze that job, waits for the pin."""
    db.execute("ALTER TABLE pgtq._job SET (autovacuum_enabled = off)")
    leave_dead_jobs(db, 300, deleted="id % 2 = 0")  # the other half stays, for the cursor to pin
    assert vacuum_check(db)[0] == "warning", "never vacuumed, autovacuum off: named"

    with psycopg.connect(dsn) as pinning, psycopg.connect(dsn, autocommit=True) as vacuuming:
        pinning.execute("SET enable_seqscan = on")
        cursor = pinning.cursor(name="pins_a_page")
        cursor.execute("SELECT id FROM pgtq._job")
        assert cursor.fetchone() is not None
        vacuum = threading.Thread(target=vacuuming.execute, args=["VACUUM (FREEZE) pgtq._job"])
        vacuum.start()
        try:
            vacuums = "SELECT count(*) FROM pg_stat_progress_vacuum WHERE relid = 'pgtq._job'::regclass"
            wait_until(lambda: scalar(db, vacuums), timeout=15.0)
            assert vacuum_check(db)[0] == "ok", "a vacuum began on it just now"
            status, detail = vacuum_check(db, timedelta(minutes=11))
            assert status == "warning"
            assert detail.startswith(
                "table pgtq._job: 150 dead row versions (autovacuum's threshold 50), never vacuumed "
                "(autovacuum is off for it), and a vacuum of it has been running for 11 min (scanning heap). "
                "Until a vacuum removes them"
            ), detail
        finally:
            cursor.close()
            pinning.rollback()
            vacuum.join(timeout=30)
        assert not vacuum.is_alive()
    assert vacuum_check(db, timedelta(minutes=11))[0] == "ok", "vacuumed: the dead rows are gone"


def test_doctor_exits_0_when_all_is_well(dsn: str) -> None:
    result = run_cli("doctor", "--dsn", dsn)
    assert result.returncode == 0, result.stderr
    for name in ("queues", "cleanup", "schedules", "vacuum"):
        assert name in result.stdout


def test_doctor_names_an_unserved_queue_and_exits_5(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT pgtq.push('emails', 'send', as_of => now() - interval '10 minutes')")
    result = run_cli("doctor", "--dsn", dsn)
    assert result.returncode == EXIT_LOOK, result.stdout + result.stderr
    assert "'emails'" in result.stdout and "no live worker serves it" in result.stdout
    assert run_cli("doctor", "--late", "1h", "--dsn", dsn).returncode == 0, "under --late: fine"

    result = run_cli("doctor", "--json", "--dsn", dsn)
    assert result.returncode == EXIT_LOOK
    found = {row["name"]: row for row in json.loads(result.stdout)}
    assert list(found) == ["queues", "cleanup", "schedules", "vacuum"]
    assert found["queues"]["status"] == "warning" and found["queues"]["ok"] is False
    assert found["schedules"] == {
        "name": "schedules",
        "status": "ok",
        "detail": "no periodic schedule failed its last run",
        "ok": True,
    }


def test_doctor_rejects_a_bad_duration(dsn: str) -> None:
    result = run_cli("doctor", "--late", "soon", "--dsn", dsn)
    assert result.returncode == 2
    assert "--late must be a duration such as 30s, 10m, 1h30m or 7d, got 'soon'" in result.stderr


def test_doctor_on_a_schema_without_health_says_what_to_do(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("DROP FUNCTION pgtq.health")
    assert scalar(db, "SELECT to_regproc('pgtq.health')") is None
    result = run_cli("doctor", "--dsn", dsn)
    assert result.returncode == 4
    assert "has no health check: it arrives with pgtq 0.14.0 (pgtq migrate installs it)" in result.stderr


def test_prometheus_shows_the_checks_to_roles_that_may_call_them(
    dsn: str, login_role: Any, db: psycopg.Connection[Any]
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from pgtq.metrics import text

    def exposed(role: str) -> dict[str, float]:
        with pgtq.Database(make_conninfo(dsn, user=login_role(role))) as database:
            families = text_string_to_metric_families(text(database))
            return {
                f"{s.name}{s.labels.get('check', '')}": s.value for family in families for s in family.samples
            }

    for role in ("pgtq_observer", "pgtq_worker"):  # the worker's /metrics too, from 0.15.0
        seen = exposed(role)
        assert seen["pgtq_health_warningqueues"] == 0 and seen["pgtq_database_up"] == 1, role
    db.execute("REVOKE EXECUTE ON FUNCTION pgtq.health FROM pgtq_worker")
    worker = exposed("pgtq_worker")
    assert worker["pgtq_database_up"] == 1, "a scrape by a role that may not check keeps its queue figures"
    assert not [name for name in worker if name.startswith("pgtq_health_warning")], "and has no checks"


def test_doctor_rows_names_a_job_row_written_by_hand(dsn: str, db: psycopg.Connection[Any]) -> None:
    assert run_cli("doctor", "--rows", "--dsn", dsn).returncode == 0, "no row breaks a rule"
    job_id = scalar(db, "SELECT pgtq.push('mail', 'send')")
    db.execute("UPDATE pgtq._job SET attempt = 99 WHERE id = %s", [job_id])  # by hand: no function does this
    assert run_cli("doctor", "--dsn", dsn).returncode == 0, "without --rows the table is not read"
    result = run_cli("doctor", "--rows", "--json", "--dsn", dsn)
    assert result.returncode == EXIT_LOOK, result.stdout + result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}["rows"]
    assert rows["status"] == "warning"
    assert rows["detail"] == (
        f"job {job_id} (ready, queue 'mail', task 'send') breaks: attempt is between 0 and max_attempts,"
        " and max_attempts is at least 1"
    )
