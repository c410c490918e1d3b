"""Failover to a streaming standby under load, with a ledger of every job.

A primary and a streaming standby (``pg_basebackup``), local clusters of
this test, each stopped by its pid at the end, also when the test fails.
Producer threads and two worker processes reach them through one
multi-host DSN (``host=primary,standby port=p1,p2
target_session_attrs=read-write``). Under load the primary is stopped with
``pg_ctl stop -m immediate`` and the standby promoted (``pg_ctl
promote``); producers and workers carry on against the new primary with
no restart. Each run of a job is written to a ledger on a third server
(the test server), which the failover does not touch.

The books, on the new primary: every job there ends ``done``, none is left
``running`` (the workers' own ticks rescue those whose lease ran out), and
each ran at least once. What was lost is read from the old primary's data
folder, started alone on another port after the run: the acknowledged
pushes missing on the new primary, and the completions it acknowledged
that the new primary never saw (those jobs ran again: at least once).

- Synchronous replication (``synchronous_standby_names`` naming the
  standby, ``synchronous_commit = on``): nothing acknowledged is lost,
  even with the standby held behind (its WAL receiver stopped with
  SIGSTOP for LAG seconds before the failover, as a slow link would).
- Asynchronous replication: the loss is measured and printed, with the
  standby as close as it keeps up by itself, and held LAG seconds behind.
  With PGTQ_FAILOVER_RUNS=N (``make test-long``) each asynchronous case
  runs N times.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pgcluster
import psycopg
import pytest
from conftest import Processes, install_test_schema, own_clusters, scalar, wait_until
from psycopg.conninfo import make_conninfo
from servers import LEDGER_TABLE, Producer, ledger_count, ledger_runs

import pgtq

STANDBY = "pgtq_standby"
DATABASE = "failover"
WORKERS = 2
JOBS_IN_HAND = 8  # --batch-size of each worker
LEASE = 5.0
LAG = 2.0  # seconds a lagging standby's WAL receiver is held before the failover
ASYNC_RUNS = int(os.environ.get("PGTQ_FAILOVER_RUNS", "1"))


@dataclass(frozen=True)
class Replication:
    sync: bool
    lagging: bool

    def __str__(self) -> str:
        return f"{'sync' if self.sync else 'async'}{'-lagging' if self.lagging else ''}"


CASES = [Replication(sync=True, lagging=True)]
CASES += [Replication(sync=False, lagging=lagging) for _ in range(ASYNC_RUNS) for lagging in (False, True)]


@dataclass
class Pair:
    primary: pgcluster.Cluster
    standby: pgcluster.Cluster

    def database(self, cluster: pgcluster.Cluster) -> str:
        return make_conninfo(cluster.dsn, dbname=DATABASE)

    @property
    def dsn(self) -> str:
        """What producers and workers are given: both servers, the writable one wins."""
        return (
            f"host={self.primary.datadir},{self.standby.datadir} port={self.primary.port},{self.standby.port}"
            f" user={pgcluster.SERVER_USER} dbname={DATABASE} target_session_attrs=read-write"
        )


def replication(primary_dsn: str) -> str:
    with psycopg.connect(primary_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT state || '/' || sync_state FROM pg_stat_replication WHERE application_name = %s",
            [STANDBY],
        ).fetchone()
    return str(row[0]) if row else ""


def standby_behind(primary_dsn: str) -> str:
    """How far the WAL the standby reported flushed was behind the primary's."""
    with psycopg.connect(primary_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn) FROM pg_stat_replication"
            " WHERE application_name = %s",
            [STANDBY],
        ).fetchone()
    return f"{int(row[0])} bytes of WAL" if row is not None else "(not streaming)"


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    """A primary with the pgtq schema and its streaming standby,
    synchronous when the test's ``replication`` parameter says so."""
    with own_clusters() as started:
        primary = pgcluster.start_throwaway(lambda _cluster: {})
        started.append(primary)
        with psycopg.connect(primary.dsn, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}")
        install_test_schema(make_conninfo(primary.dsn, dbname=DATABASE))
        standby = pgcluster.start_standby(primary, STANDBY)
        started.append(standby)
        wait_until(lambda: replication(primary.dsn) == "streaming/async", timeout=60)
        if request.node.callspec.params["replication"].sync:
            with psycopg.connect(primary.dsn, autocommit=True) as admin:
                admin.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY}'")
                admin.execute("SELECT pg_reload_conf()")
            wait_until(lambda: replication(primary.dsn) == "streaming/sync", timeout=60)
        yield Pair(primary, standby)


@pytest.fixture
def ledger(dsn: str, db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    db.execute(LEDGER_TABLE)
    return db


@dataclass(frozen=True)
class Job:
    state: str
    attempt: int
    finished_at: datetime | None


def jobs(dsn: str) -> dict[str, Job]:
    """Each job by its token (tokens are unique)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT args->>0, state::text, attempt, finished_at FROM pgtq.jobs").fetchall()
    return {token: Job(state, attempt, finished) for token, state, attempt, finished in rows}


def old_primary_jobs(pair: Pair) -> dict[str, Job]:
    """The jobs as the old primary had acknowledged them: its data folder
    started alone (crash recovery) on a port nobody else uses, read, stopped."""
    port = pgcluster.free_port()
    pgcluster.pg_ctl(pair.primary.datadir, "start", "-o", f"-p {port}")
    try:
        return jobs(make_conninfo(pair.database(pair.primary), port=str(port)))
    finally:
        pair.primary.stop()


def wal_receiver(standby: pgcluster.Cluster) -> int:
    """The pid of the standby's WAL receiver."""
    with psycopg.connect(standby.dsn, autocommit=True) as conn:
        return int(scalar(conn, "SELECT pid FROM pg_stat_wal_receiver"))


@pytest.mark.parametrize("replication", CASES, ids=[f"{case}-{n}" for n, case in enumerate(CASES)])
def test_workers_and_producers_carry_on_through_a_failover(
    replication: Replication,
    pair: Pair,
    dsn: str,
    ledger: psycopg.Connection[Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGTQ_DSN_A", pair.dsn)
    monkeypatch.setenv("PGTQ_LEDGER_DSN", dsn)
    fleet = Processes(pair.dsn, tmp_path)
    producers = [Producer(f"p{n}-", [pgtq.PgTq("a1", pair.dsn)], pace=0.002, retry=False) for n in range(2)]
    new_primary = pair.database(pair.standby)
    held: int | None = None  # the WAL receiver held stopped
    try:
        workers = [
            fleet.worker(
                "ledger_app:a1",
                *["--concurrency", "4", "--batch-size", str(JOBS_IN_HAND), "--lease", str(LEASE)],
                *["--tick-interval", "0.5"],
            )
            for _ in range(WORKERS)
        ]
        for worker in workers:
            wait_until(lambda w=worker: "notifications arrive" in fleet.output(w), timeout=60)
        for producer in producers:
            producer.start()
        loaded_at = time.monotonic()

        def acked() -> int:
            return sum(len(producer.acked) for producer in producers)

        wait_until(lambda: acked() >= 500 and ledger_count(ledger, ("a1",)) >= 300, timeout=120)
        acked_before_lag, lag_from = acked(), time.monotonic()
        if replication.lagging:
            held = wal_receiver(pair.standby)
            os.kill(held, signal.SIGSTOP)
            time.sleep(LAG)  # the standby falls behind: the scenario itself
        behind = standby_behind(pair.primary.dsn)
        ran_at_failover, failed_at = ledger_count(ledger, ("a1",)), time.monotonic()
        pgcluster.pg_ctl(pair.primary.datadir, "stop", "--mode", "immediate")
        acked_at_failover = acked()
        if held is not None:
            os.kill(held, signal.SIGCONT)  # it reads what reached it, finds the primary gone
            held = None
        pgcluster.pg_ctl(pair.standby.datadir, "promote")
        with psycopg.connect(new_primary, autocommit=True) as conn:
            running_at_promotion = {
                row[0] for row in conn.execute("SELECT args->>0 FROM pgtq.jobs WHERE state = 'running'")
            }
        # The producers and the workers carry on against the new primary.
        wait_until(lambda: acked() >= acked_at_failover + 500, timeout=120)
        for producer in producers:
            producer.stop()
        wait_until(lambda: {job.state for job in jobs(new_primary).values()} == {"done"}, timeout=180)
        assert all(worker.poll() is None for worker in workers), "no worker died or was restarted"
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        assert [worker.wait(timeout=60) for worker in workers] == [0] * WORKERS
    finally:
        if held is not None:
            with suppress(ProcessLookupError):
                os.kill(held, signal.SIGCONT)
        for producer in producers:
            producer.stop()
        fleet.stop_all()
    outputs = "".join(fleet.output(worker) for worker in workers)
    assert "reconnected" in outputs and "Traceback" not in outputs

    after = jobs(new_primary)
    before = old_primary_jobs(pair)
    acknowledged = [token for producer in producers for token in producer.acked]
    runs = ledger_runs(ledger)
    lost_pushes = [token for token in acknowledged if token not in after]
    # Completions lost: done on the old primary, run again on the new one (a lost push's job is
    # lost whole, and counted with the pushes).
    lost_completions = [
        token
        for token, job in before.items()
        if job.state == "done" and token in after and after[token].finished_at != job.finished_at
    ]
    twice = sorted(token for token, count in runs.items() if count > 1)
    ran_again = sum(1 for token in running_at_promotion if after[token].attempt > 1)
    load = failed_at - loaded_at
    done_before = sum(job.state == "done" for job in before.values())
    print(
        f"{replication}: {acked_at_failover / load:.0f} pushes/s and {ran_at_failover / load:.0f} runs/s "
        f"before the failover; pushes acknowledged: {len(acknowledged)}, {acked_at_failover} before the "
        f"failover ({acked_at_failover - acked_before_lag} in its last {failed_at - lag_from:.1f} s), "
        f"lost: {len(lost_pushes)}; completions acknowledged by the old primary: {done_before}, lost of "
        f"jobs the new one kept: {len(lost_completions)}; running at the promotion: "
        f"{len(running_at_promotion)} ({ran_again} ran again after their lease); ran twice: {len(twice)}; "
        f"the standby was {behind} behind"
    )
    assert all(job.state == "done" for job in after.values()), "no job stranded in running"
    assert [token for token in after if runs[token] == 0] == [], "every job ran"
    assert scalar(ledger, "SELECT count(*) FROM ledger WHERE queue <> 'a1'") == 0
    # Only the jobs in hand at the failover, and those whose completion was lost, may run twice.
    assert len(twice) <= WORKERS * JOBS_IN_HAND + len(lost_completions), twice
    if replication.sync:
        assert lost_pushes == [], "no acknowledged push is lost with synchronous replication"
        assert lost_completions == [], "nor any acknowledged completion"
