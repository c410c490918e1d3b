"""One source of truth: both install routes give the same schema, the
migrations apply the files of sql/, and the versions agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import psycopg
import pytest
from conftest import REPO, scalar
from psycopg.conninfo import make_conninfo

import pgtq
from pgtq._schema import schema_version
from pgtq.migrate import upgrade

# Everything in schema pgtq that an install creates, as comparable text.
CATALOG_QUERY = """
SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') -> '
       || pg_get_function_result(p.oid) || ' ' || p.provolatile::text || ' secdef=' || p.prosecdef
       || ' config=' || coalesce(array_to_string(p.proconfig, ','), '') || ' body=' || md5(p.prosrc)
       || ' acl=' || coalesce(p.proacl::text, 'default')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgtq'
UNION ALL
SELECT 'relation ' || c.relname || ' kind=' || c.relkind::text
       || ' options=' || coalesce(array_to_string(c.reloptions, ','), '')
       || ' acl=' || coalesce(c.relacl::text, 'default')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgtq'
UNION ALL
SELECT 'schema ' || n.nspname || ' acl=' || coalesce(n.nspacl::text, 'default')
FROM pg_namespace n WHERE n.nspname = 'pgtq'
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = 'pgtq' AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'pgtq'
UNION ALL
SELECT 'constraint ' || con.conname || ' ' || pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace WHERE n.nspname = 'pgtq'
UNION ALL
SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'pgtq' AND c.relkind = 'v'
UNION ALL
SELECT 'enum ' || t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'pgtq' GROUP BY t.typname
UNION ALL
SELECT 'comment ' || c.relname || ' ' || obj_description(c.oid, 'pg_class')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'pgtq' AND obj_description(c.oid, 'pg_class') IS NOT NULL
ORDER BY 1
"""


def catalog(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(CATALOG_QUERY)]


def extension_available(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return bool(scalar(conn, "SELECT count(*) FROM pg_available_extensions WHERE name = 'pgtq'"))


def test_extension_and_alembic_routes_give_the_same_schema(empty_dsn: str, template_dsn: str) -> None:
    if not extension_available(empty_dsn):
        pytest.skip("pgtq extension files are not installed (run `make install-extension` as root)")
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pgtq")
    via_extension = catalog(empty_dsn)
    via_alembic = catalog(template_dsn)
    assert len(via_extension) > 50, "the catalog query sees the schema"
    assert via_extension == via_alembic


def test_extension_marks_job_tables_for_pg_dump(empty_dsn: str) -> None:
    if not extension_available(empty_dsn):
        pytest.skip("pgtq extension files are not installed")
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pgtq")
        marked = scalar(
            conn,
            "SELECT array_agg(c::regclass::text ORDER BY c::regclass::text)"
            " FROM pg_extension e, unnest(e.extconfig) AS c WHERE e.extname = 'pgtq'",
        )
    assert marked == ["pgtq._job", "pgtq._job_id_seq", "pgtq._settings"]


def test_migrate_is_idempotent(empty_dsn: str) -> None:
    first = upgrade(empty_dsn)
    second = upgrade(empty_dsn)
    assert (first.route, first.before, first.after) == ("alembic", None, schema_version())
    assert (second.before, second.after) == (schema_version(), schema_version())
    with psycopg.connect(empty_dsn) as conn:
        assert scalar(conn, "SELECT version_num FROM public.pgtq_alembic_version") == "pgtq_0_1_0"


def test_migrate_on_an_extension_install_updates_the_extension(empty_dsn: str) -> None:
    if not extension_available(empty_dsn):
        pytest.skip("pgtq extension files are not installed")
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pgtq")
    result = upgrade(empty_dsn)
    assert (result.route, result.before, result.after) == ("extension", "0.1.0", "0.1.0")


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


def test_versions_agree() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    control = (REPO / "pgtq.control").read_text()
    install_scripts = sorted(p.name for p in (REPO / "sql").glob("pgtq--*.sql") if p.name.count("--") == 1)
    assert f"default_version = '{schema_version()}'" in control
    assert pyproject["project"]["version"] == schema_version()
    assert f"pgtq--{schema_version()}.sql" in install_scripts or any(
        p.name.endswith(f"--{schema_version()}.sql") for p in (REPO / "sql").glob("pgtq--*--*.sql")
    )
    assert pgtq.__version__ == pyproject["project"]["version"]


def test_sql_version_function_matches_the_control_file(q: pgtq.PgTq) -> None:
    assert q.check_schema() == schema_version()


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
