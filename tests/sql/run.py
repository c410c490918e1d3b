"""Run the pgTAP suite with pg_prove, once per install route.

Two fresh databases on the server at $PGTQ_TEST_DSN get the schema, one by
``CREATE EXTENSION pgtq`` and one through the alembic migrations, and
pg_prove runs every ``tests/sql/*.sql`` file against each, so both routes
are held to the same behaviour.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgtq.migrate import upgrade

TESTS = Path(__file__).resolve().parent


def recreate(admin: psycopg.Connection, name: str) -> None:
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')


def extension_available(admin: psycopg.Connection) -> bool:
    row = admin.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pgtq'").fetchone()
    return row is not None


def prove(dsn: str, label: str) -> int:
    params = conninfo_to_dict(dsn)
    files = sorted(str(path) for path in TESTS.glob("*.sql"))
    print(f"# pgTAP suite, schema installed by the {label} route", flush=True)
    command = ["pg_prove", "--failures", "--dbname", str(params["dbname"])]
    for key, flag in (("host", "--host"), ("port", "--port"), ("user", "--username")):
        if params.get(key):
            command += [flag, str(params[key])]
    return subprocess.run([*command, *files], check=False).returncode


def main() -> int:
    base = os.environ.get("PGTQ_TEST_DSN")
    if not base:
        print("tests/sql/run.py: set PGTQ_TEST_DSN (make test does)", file=sys.stderr)
        return 2
    routes = []
    with psycopg.connect(base, autocommit=True) as admin:
        if extension_available(admin):
            recreate(admin, "pgtq_tap_extension")
            routes.append(("extension", "pgtq_tap_extension"))
        else:
            print(
                "# pgtq extension files are not installed (make install-extension): extension route skipped",
                flush=True,
            )
        recreate(admin, "pgtq_tap_alembic")
        routes.append(("alembic", "pgtq_tap_alembic"))
    status = 0
    for label, name in routes:
        dsn = make_conninfo(base, dbname=name)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pgtap")
            if label == "extension":
                conn.execute("CREATE EXTENSION pgtq")
        if label == "alembic":
            upgrade(dsn)
        status = max(status, prove(dsn, label))
    return status


if __name__ == "__main__":
    sys.exit(main())
