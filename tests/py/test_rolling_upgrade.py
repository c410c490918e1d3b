"""Rolling upgrade: the database is upgraded while workers of the previous
release drain a queue, then the workers are replaced.

* Workers of the previous release (its Python package, from git, run with
  PYTHONPATH pointing at it, on its schema) drain a queue while
  ``pgtq migrate`` upgrades the database; they keep working on the new
  schema (the upgrade keeps the SQL calls of the release before it). When
  their connection drops, 0.1.x workers stop with a message naming both
  versions, 0.2.0 workers keep trying to reconnect with that message, and
  from 0.3.0 on they go on and say so. No job is lost or run twice.
* This package's workers do the same towards a newer schema than theirs
  (the situation of the next upgrade, played here by a pgtq.version()
  that reports a newer version): a running worker that reconnects goes on
  and says so, a worker that starts refuses it.

When a version is released, add the commit of main that last had it to
PREVIOUS_RELEASES, so this test runs the release before the current one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import APPS, REPO, Processes, run_cli, scalar, wait_until

import pgtq
from pgtq._db.schema import known_versions, parse_version, schema_version

# The last commit of main whose schema was each released version.
PREVIOUS_RELEASES = {
    "0.1.1": "bbf1a00b59ab20a158a64f225438f7d2ab230b58",
    "0.2.0": "c1e52faa4b99ddac96121b309645bc6f610be9c8",
    "0.3.0": "fcf3631e87ab2cffb216f1bce675046a36f295a6",
    "0.4.0": "cea332142c4084dfc140ec3bb5191dbab588d39f",
    "0.5.0": "8ebc70bbcb6d140969f2c8e4f38cd44dd9ec4c32",
    "0.6.0": "d340ca08a56115200ce0cfab0b570c2222bb2d89",
    "0.7.0": "80a7493ab2087706bc4e1218e1149eaf054ab11a",
    "0.8.0": "e929f6a14d129e9a365e95071f2db0beffdd6d92",
    "0.9.0": "7c378177cb758809f48f485a713df7541e9c7380",
    "0.10.0": "dacb8e4dca23383d577b2e26cd8d56394c8bec6e",
    "0.11.0": "a509824af634f5340a289c205493bef74d72167e",
    "0.12.0": "1f86536bfd67eca02b7044b117dbcaaca4c71fb9",
    "0.13.0": "8a787a69fa6964447bf5ce6db46e7f432bcba928",
    "0.14.0": "4812f6bfbb79160a290a81ca88a9dfe4e788d26b",
    "0.15.0": "045fb0beef48e0f4c9891cc7f002901996958895",
    "0.16.0": "af23dd0cff9685eefc57882d7ec428bcff047ce9",
    "0.17.0": "19aab12b46c65b9766738ba8e50cc0fcca77127c",
    "0.18.0": "c0126e98a7a4981924b8dd4496225128061b47dd",
    "0.19.0": "ad01961516187baa636730bd579ef532da4712f4",
    "0.20.0": "a925306c201745ad1b16feef9f146f3c2f1eb9ba",
    "0.21.0": "4b3bff2326f4a0ea80d9ebed03c15daa1ced1693",
    "0.22.0": "c7ec48d13dbff3a08f578e81cad85bc4bd3a7bba",
    "0.23.0": "3d68daaacd4d25cda05ad65be4f57e6005e59af3",
    "0.24.0": "b09d291f080c8fffe3e2349a2efe9c5de94569c5",
    "0.25.0": "12077b8dd454f39e5b030e511ab2ce87c127f8b4",
    "0.26.0": "8729920fcbe8877ad3475fb5e12f3d7b45cf2c61",
    "0.27.0": "5432b860013513222b3004a12f6501c6c41b3b12",
    "0.28.0": "bfd3556439619a062cbe699f85a85e0d5d55b343",
    "0.29.0": "b0abf4d5aba93af2d3f878cc2e260427c1b666cc",
    "0.30.0": "97e64f5fae587fba069e225648b99e518cad044b",
    "0.31.0": "bb5d7a06c0e206c7f7a73f426037f67faeaa93e6",
    "0.32.0": "5d3b459f07c3ea9b540ce6a47489b6e94ea27c0d",
    "0.33.0": "15789b8e935caa4a23e279b6645c2afa3a15a5a8",
    "0.34.0": "1386c9256ab62edf620d8f47c084bcd935169261",
    "0.35.0": "dcb36346112f885cd284dd2bfd6c5af21fc0ebf6",
    "0.36.0": "c14722aa4e04f7ce907ec621ed38129b08463876",
    "0.37.0": "bf5601faa51b670516ac58e5e01d78f8c22088f4",
    "0.38.0": "c47fe21ea1eaf70326bc365a0dce4d590463e55f",
}
PREVIOUS = known_versions()[-2]
CURRENT = schema_version()
BACKLOG = 4000
AFTER_MIGRATION = 500


@pytest.fixture(scope="module")
def previous_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's package, SQL and migrations, from git."""
    if PREVIOUS not in PREVIOUS_RELEASES:
        pytest.fail(f"add the last commit of main with schema {PREVIOUS} to PREVIOUS_RELEASES", pytrace=False)
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(REPO),
            "archive",
            PREVIOUS_RELEASES[PREVIOUS],
            "pgtq",
            "sql",
            "migrations",
            "pgtq.control",
        ],
        capture_output=True,
        check=True,
    ).stdout
    folder = tmp_path_factory.mktemp(f"pgtq-{PREVIOUS}")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    assert f"default_version = '{PREVIOUS}'" in (folder / "pgtq.control").read_text()
    return folder


class OldWorkers(Processes):
    """``pgtq`` processes of the previous release's package (its folder first
    on PYTHONPATH; they run in the test apps' folder, which holds no pgtq);
    always reaped."""

    def __init__(self, package: Path, dsn: str, log_dir: Path) -> None:
        super().__init__(dsn, log_dir)
        self.package = package

    def env(self) -> dict[str, str]:
        return super().env() | {"PYTHONPATH": os.pathsep.join([str(self.package), str(APPS)])}

    def run_python(self, code: str) -> None:
        subprocess.run([sys.executable, "-c", code], env=self.env(), cwd=APPS, check=True, timeout=120)

    def start(self) -> subprocess.Popen[str]:
        return self.worker("rolling_app:q", "--concurrency", "4")


@pytest.fixture
def old_workers(previous_package: Path, empty_dsn: str, tmp_path: Path) -> Iterator[OldWorkers]:
    (tmp_path / "old").mkdir()
    workers = OldWorkers(previous_package, empty_dsn, tmp_path / "old")
    yield workers
    workers.stop_all()


def install_previous_by_extension(dsn: str, old: OldWorkers) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE EXTENSION pgtq VERSION '{PREVIOUS}'")


def install_previous_by_alembic(dsn: str, old: OldWorkers) -> None:
    """With the previous release's own package: its alembic chain."""
    old.run_python(f"from pgtq.migrate import upgrade; upgrade({dsn!r})")


def done_count(db: psycopg.Connection[Any]) -> int:
    return int(scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = 'rolling' AND state = 'done'"))


@pytest.mark.parametrize(
    "install_previous",
    [install_previous_by_extension, install_previous_by_alembic],
    ids=["extension", "alembic"],
)
def test_workers_of_the_previous_release_drain_a_queue_while_the_database_is_upgraded(
    empty_dsn: str,
    old_workers: OldWorkers,
    tmp_path: Path,
    install_previous: Callable[[str, OldWorkers], None],
) -> None:
    (tmp_path / "new").mkdir()
    new_workers = Processes(empty_dsn, tmp_path / "new")
    try:
        drain_across_the_upgrade(empty_dsn, old_workers, new_workers, install_previous)
    finally:
        new_workers.stop_all()


def drain_across_the_upgrade(
    empty_dsn: str,
    old_workers: OldWorkers,
    new_workers: Processes,
    install_previous: Callable[[str, OldWorkers], None],
) -> None:
    install_previous(empty_dsn, old_workers)
    with psycopg.connect(empty_dsn, autocommit=True) as db:
        assert scalar(db, "SELECT pgtq.version()") == PREVIOUS
        db.execute(
            "CREATE TABLE public.side_effects (token text NOT NULL, kind text NOT NULL DEFAULT 'ran',"
            " pid integer NOT NULL DEFAULT pg_backend_pid(),"
            " at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        db.execute(
            "SELECT pgtq.push_many('rolling', 'work', array(SELECT jsonb_build_array(n)"
            " FROM generate_series(0, %s - 1) AS n))",
            [BACKLOG],
        )
        workers = [old_workers.start() for _ in range(2)]
        wait_until(lambda: done_count(db) >= 200)

        # The upgrade, while they drain.
        done_before = done_count(db)
        migrated = run_cli("migrate", empty_dsn)
        done_after = done_count(db)
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        assert f"pgtq schema {PREVIOUS} -> {CURRENT}" in migrated.stdout
        assert done_before < BACKLOG, "the backlog was still draining when the upgrade started"
        print(f"jobs done when the upgrade started: {done_before}, when it ended: {done_after} of {BACKLOG}")

        # From 0.12.0 a push notifies only while a worker marks its queue
        # waiting, which older workers do not do: they register without
        # marks_waiting, and while they are registered every push notifies.
        if parse_version(PREVIOUS) < parse_version("0.12.0") <= parse_version(CURRENT):
            assert scalar(db, "SELECT count(*) FROM pgtq._worker WHERE NOT marks_waiting") == 2
            assert scalar(db, "SELECT pgtq._anyone_waiting('rolling')") is True

        # They keep working on the new schema: a producer pushes more.
        for n in range(BACKLOG, BACKLOG + AFTER_MIGRATION):
            db.execute("SELECT pgtq.push('rolling', 'work', jsonb_build_array(%s))", [n])
        wait_until(lambda: done_count(db) == BACKLOG + AFTER_MIGRATION, timeout=120)
        assert [worker.poll() for worker in workers] == [None, None], "still running"

        # When their sessions drop, each release's workers act as it was
        # written: 0.1.x refuses the newer schema on reconnecting and stops
        # with a message naming both versions; 0.2.0 (which survives every
        # database error) keeps trying to reconnect with that message and
        # takes no job; 0.3.0 and later go on, saying so. Then they are
        # replaced (SIGTERM), as a deploy does.
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        refused = (
            f"the database has pgtq schema {CURRENT}, newer than {PREVIOUS} that this package knows;"
            " upgrade the pgtq Python package"
        )
        for worker in workers:
            if parse_version(PREVIOUS) < parse_version("0.2.0"):
                assert worker.wait(timeout=60) == 1
                assert refused in old_workers.output(worker)
                continue
            if parse_version(PREVIOUS) < parse_version("0.3.0"):
                said = f"could not reconnect (SchemaVersionError: {refused})"
            else:
                said = f"the database now has pgtq schema {CURRENT}, newer than {PREVIOUS}"
            wait_until(lambda worker=worker, said=said: said in old_workers.output(worker), timeout=60)
            assert worker.poll() is None, "it is still running"
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0

        # Workers of this release take over.
        db.execute("SELECT pgtq.push('rolling', 'work', jsonb_build_array(%s))", [BACKLOG + AFTER_MIGRATION])
        new_worker = new_workers.worker("rolling_app:q")
        total = BACKLOG + AFTER_MIGRATION + 1
        wait_until(lambda: done_count(db) == total, timeout=60)
        runs = dict(db.execute("SELECT token, count(*) FROM public.side_effects GROUP BY token").fetchall())
        assert runs == {str(n): 1 for n in range(total)}, "every job ran, and ran once"
        assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE state <> 'done'") == 0
        new_worker.send_signal(signal.SIGTERM)
        assert new_worker.wait(timeout=60) == 0


def pretend_upgraded(db: psycopg.Connection[Any], version: str) -> None:
    """Make the database report a newer schema version, as the next upgrade
    will (the rest of the schema stays: it keeps this release's calls)."""
    db.execute(
        f"CREATE OR REPLACE FUNCTION pgtq.version() RETURNS text LANGUAGE sql AS $$ SELECT '{version}' $$"
    )


def test_a_running_worker_goes_on_with_a_newer_schema_and_a_starting_one_refuses_it(
    q: pgtq.PgTq, db: psycopg.Connection[Any], processes: Processes
) -> None:
    newer = ".".join([*CURRENT.split(".")[:-1], str(int(CURRENT.split(".")[-1]) + 1)])
    worker = processes.worker()
    first = q.push("add", [1, 2])
    assert q.wait(first, timeout=60) == 3

    pretend_upgraded(db, newer)
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    q.close()
    warning = (
        f"the database now has pgtq schema {newer}, newer than {CURRENT} that this worker was written for"
    )
    wait_until(lambda: warning in processes.output(worker), timeout=60)
    second = q.push("add", [2, 3])
    assert q.wait(second, timeout=60) == 5, "it goes on"
    assert worker.poll() is None

    refused = processes.worker()
    assert refused.wait(timeout=60) == 1
    assert (
        f"the database has pgtq schema {newer}, newer than {CURRENT} that this package knows;"
        " upgrade the pgtq Python package" in processes.output(refused)
    )
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
