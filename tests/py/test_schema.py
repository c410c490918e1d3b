"""One source of truth: both install routes give the same schema, the
migrations apply the files of sql/, and the versions agree."""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import psycopg
import pytest
from conftest import REPO, scalar
from psycopg.conninfo import make_conninfo

import pgtq
from pgtq._db.schema import schema_version
from pgtq.migrate import upgrade

sys.path.insert(0, str(REPO / "scripts"))
import itertools

import build_extension
import schema_catalog

BASE = build_extension.base_version()
CURRENT = build_extension.current_version()


@pytest.mark.parametrize(
    "install",
    [schema_catalog.install_extension, schema_catalog.install_extension_then_upgrade],
    ids=["fresh", "upgraded"],
)
def test_extension_marks_job_tables_for_pg_dump(empty_dsn: str, install: Callable[[str], None]) -> None:
    """The tables holding queue data (jobs, settings, schedules, queue pauses
    and limits) and the sequences that number jobs and slot claims are
    marked, whether the extension was installed at this version or updated
    to it (a table an update script adds must be marked by that script)."""
    install(empty_dsn)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        marked = scalar(
            conn,
            "SELECT array_agg(c::regclass::text ORDER BY c::regclass::text)"
            " FROM pg_extension e, unnest(e.extconfig) AS c WHERE e.extname = 'pgtq'",
        )
    assert marked == [
        "pgtq._job",
        "pgtq._job_id_seq",
        "pgtq._queue",
        "pgtq._schedule",
        "pgtq._settings",
        "pgtq._slot_claim_seq",  # 0.39.0: the claims of a slot are numbered in order after a restore too
    ]


def test_verify_fails_on_a_schema_change_without_a_snapshot_update(
    server_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make verify` compares every route with sql/catalog.txt: a snapshot
    that lacks one line of the real schema (as after an unreviewed change)
    fails it, and the message shows the line."""
    lines = schema_catalog.SNAPSHOT.read_text().splitlines()
    dropped = next(line for line in lines if line.startswith("index "))
    stale = tmp_path / "catalog.txt"
    stale.write_text("\n".join(line for line in lines if line != dropped) + "\n")
    monkeypatch.setattr(schema_catalog, "SNAPSHOT", stale)
    with pytest.raises(schema_catalog.DriftError) as failure:
        schema_catalog.verify(server_dsn)
    assert f"+{dropped}" in str(failure.value)
    assert "make generate" in str(failure.value)


def revision_of(version: str) -> str:
    return "pgtq_" + version.replace(".", "_")


def test_migrate_is_idempotent(empty_dsn: str) -> None:
    first = upgrade(empty_dsn)
    second = upgrade(empty_dsn)
    assert (first.route, first.before, first.after) == ("alembic", None, CURRENT)
    assert (second.before, second.after) == (CURRENT, CURRENT)
    with psycopg.connect(empty_dsn) as conn:
        assert scalar(conn, "SELECT version_num FROM public.pgtq_alembic_version") == revision_of(CURRENT)


def test_migrate_on_an_extension_install_updates_the_extension(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE EXTENSION pgtq VERSION '{BASE}'")
    result = upgrade(empty_dsn)
    assert (result.route, result.before, result.after) == ("extension", BASE, CURRENT)
    with psycopg.connect(empty_dsn) as conn:
        assert scalar(conn, "SELECT extversion FROM pg_extension WHERE extname = 'pgtq'") == CURRENT


def test_migrations_apply_the_sql_files_and_copy_no_sql() -> None:
    revisions = sorted((REPO / "migrations" / "versions").glob("*.py"))
    assert revisions, "there are alembic revisions"
    for revision in revisions:
        text = revision.read_text()
        applied = re.findall(r'apply_sql_file\("([^"]+)"\)', text)
        assert applied, f"{revision.name} applies a file of sql/"
        for name in applied:
            assert (REPO / "sql" / name).is_file(), f"{revision.name} applies missing sql/{name}"
        assert "CREATE " not in text.upper().replace("CREATE EXTENSION", ""), f"{revision.name} holds SQL"


def test_alembic_revisions_follow_the_upgrade_chain() -> None:
    """One revision per script of the chain, in order: the oldest release's
    install script, then each upgrade script."""
    chain = build_extension.upgrade_chain()
    expected = [f"pgtq--{chain[0]}.sql"] + [f"pgtq--{a}--{b}.sql" for a, b in itertools.pairwise(chain)]
    revisions = sorted((REPO / "migrations" / "versions").glob("*.py"))
    applied = [re.findall(r'apply_sql_file\("([^"]+)"\)', path.read_text())[0] for path in revisions]
    assert applied == expected
    for path, version in zip(revisions, chain, strict=True):
        text = path.read_text()
        assert f'revision = "{revision_of(version)}"' in text, path.name


def test_the_version_lives_in_the_control_file_alone() -> None:
    """pyproject reads its version from pgtq.control, the installed package
    reports that version, and the current script leaves it to the build."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "pgtq.control"
    assert metadata.version("pgtq") == CURRENT, (
        "reinstall the package (make venv) after changing pgtq.control"
    )
    assert pgtq.__version__ == CURRENT
    assert schema_version() == CURRENT
    assert not re.search(r"'\d+\.\d+\.\d+'::text", (REPO / "sql" / "pgtq.sql").read_text()), (
        "sql/pgtq.sql names no version of its own"
    )


def test_sql_version_function_matches_the_control_file(q: pgtq.PgTq, db: psycopg.Connection[object]) -> None:
    assert scalar(db, "SELECT pgtq.version()") == CURRENT
    assert q.check_schema() == CURRENT


def test_worker_refuses_a_newer_schema(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION pgtq.version() RETURNS text LANGUAGE sql AS $$ SELECT '9.0.0' $$"
        )
    with pgtq.PgTq("test_queue", dsn) as q, pytest.raises(pgtq.SchemaVersionError, match="newer than"):
        q.check_schema()


def test_alembic_cli_route_with_x_dsn(empty_dsn: str, tmp_path: Path) -> None:
    """`alembic -x dsn=...` with the repository's alembic.ini works too."""
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(REPO / "alembic.ini"),
            "-x",
            f"dsn={empty_dsn}",
            "upgrade",
            "head",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    with psycopg.connect(make_conninfo(empty_dsn)) as conn:
        assert scalar(conn, "SELECT pgtq.version()") == schema_version()
