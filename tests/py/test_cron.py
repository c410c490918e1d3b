"""pg_cron ticking, for real: a cluster of its own with pg_cron preloaded,
`pgtq cron install`, and a job scheduled 3 s ahead that becomes ready
within about 2 s of its time with no worker and no scheduler: only pg_cron
ticks. Also the procedure tick_for itself, in autocommit."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import own_clusters, pgcluster, run_cli, scalar, wait_until
from psycopg.conninfo import make_conninfo

from pgtq.migrate import upgrade

PG_CRON_CONTROL = Path(f"/usr/share/postgresql/{pgcluster.PG_MAJOR}/extension/pg_cron.control")


@pytest.fixture(scope="module")
def cron_dsn() -> Iterator[str]:
    """The pgtq database of a throwaway cluster whose pg_cron schedules in it."""
    if not os.environ.get("PGTQ_PG_BIN"):
        pytest.skip("needs the private install tree of `make test` (PGTQ_PG_BIN)")
    assert PG_CRON_CONTROL.exists(), "pg_cron is missing: make system-deps installs postgresql-15-cron"
    with own_clusters() as started:
        cluster = pgcluster.start_throwaway(pgcluster.cron_settings, Path(os.environ["PGTQ_PG_BIN"]))
        started.append(cluster)
        with psycopg.connect(cluster.dsn, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {pgcluster.CRON_DATABASE}")
        dsn = make_conninfo(cluster.dsn, dbname=pgcluster.CRON_DATABASE)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_cron")
        upgrade(dsn)
        yield dsn


def test_tick_for_ticks_and_commits_every_interval(cron_dsn: str) -> None:
    with psycopg.connect(cron_dsn, autocommit=True) as conn:
        job_id = scalar(conn, "SELECT pgtq.push('loop', 't', run_at => clock_timestamp() + interval '0.5 s')")
        started = time.monotonic()
        conn.execute("CALL pgtq.tick_for('2 seconds', '0.1 seconds')")
        took = time.monotonic() - started
        assert scalar(conn, "SELECT state::text FROM pgtq.jobs WHERE id = %s", [job_id]) == "ready"
        assert 1.5 < took < 10, "it ran for about its duration"
        with pytest.raises(psycopg.errors.InvalidTransactionTermination), conn.transaction():
            conn.execute("CALL pgtq.tick_for('1 second')")


def test_cron_install_ticks_every_second_with_pg_cron_alone(cron_dsn: str) -> None:
    env = dict(os.environ, PGTQ_DSN=cron_dsn)
    installed = run_cli("cron", "install", "--every", "1s", env=env)
    assert installed.returncode == 0, installed.stderr
    assert "pg_cron 1.4" in installed.stdout and "CALL pgtq.tick_for(" in installed.stdout
    again = run_cli("cron", "install", env=env)
    assert again.returncode == 0
    with psycopg.connect(cron_dsn, autocommit=True) as conn:
        jobs = dict(conn.execute("SELECT jobname, schedule FROM cron.job").fetchall())
        assert jobs == {"pgtq-tick": "* * * * *", "pgtq-tick-log-purge": "17 * * * *"}, (
            "replaced, not doubled"
        )

        def loop_running_with_room() -> bool:
            # pg_cron starts the loop at the next minute; the job below needs
            # about 6 s of it, so wait for a run that has that much left.
            running = scalar(
                conn,
                "SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid)"
                " WHERE j.jobname = 'pgtq-tick' AND d.status = 'running'",
            )
            return bool(running) and scalar(conn, "SELECT extract(second FROM clock_timestamp())") < 48

        wait_until(loop_running_with_room, timeout=150, interval=0.2)
        job_id = scalar(
            conn, "SELECT pgtq.push('cron', 'nightly', run_at => clock_timestamp() + interval '3 s')"
        )
        run_at = scalar(conn, "SELECT run_at FROM pgtq.jobs WHERE id = %s", [job_id])

        def late_by() -> float | None:
            state, late = conn.execute(
                "SELECT state::text, extract(epoch FROM clock_timestamp() - %s) FROM pgtq.jobs WHERE id = %s",
                [run_at, job_id],
            ).fetchone()
            return max(float(late), 1e-6) if state == "ready" else None

        late = wait_until(late_by, timeout=30, interval=0.05)
        # Nothing but pg_cron ticks here: no worker, no scheduler.
        assert scalar(conn, "SELECT count(*) FROM pgtq.workers") == 0
        assert late < 2.0, f"the job became ready {late:.2f} s after its time"
        print(f"pg_cron: job ready {late:.3f} s after its run_at")

    removed = run_cli("cron", "remove", env=env)
    assert removed.returncode == 0 and removed.stdout.strip() == "removed 2 pg_cron jobs"
    with psycopg.connect(cron_dsn, autocommit=True) as conn:
        assert scalar(conn, "SELECT count(*) FROM cron.job") == 0
