"""Run the pgTAP suite with pg_prove, once per install route.

Fresh databases on the server at $PGTQ_TEST_DSN get the current schema in
each way a user can get it, and pg_prove runs every ``tests/sql/*.sql``
file against each, so all routes are held to the same behaviour:

* ``extension``: ``CREATE EXTENSION pgtq`` (the built install script);
* ``extension upgraded``: the oldest release, then ``ALTER EXTENSION pgtq
  UPDATE`` through every upgrade script;
* ``alembic``: ``pgtq migrate`` (the same chain, as alembic revisions).

The run fails when any pg_prove run does not exit 0 (a signal included),
and when a route cannot run: skipping the extension routes takes the
explicit opt-out PGTQ_SKIP_EXTENSION_ROUTE=1, which the summary names.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS.parent.parent / "scripts"))
import schema_catalog  # noqa: E402  (scripts/ is not a package)


def combined_status(return_codes: Iterable[int]) -> int:
    """0 when every run exited 0, else 1. A run killed by a signal has a
    negative return code: it fails the suite too."""
    return 0 if all(code == 0 for code in return_codes) else 1


def recreate(server_dsn: str, name: str) -> str:
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(server_dsn, dbname=name)


def prove(dsn: str, label: str) -> int:
    params = conninfo_to_dict(dsn)
    files = sorted(str(path) for path in TESTS.glob("*.sql"))
    print(f"# pgTAP suite, schema installed by the {label} route", flush=True)
    # The tests compare pgtq.version() with the control file's version.
    version = f"pgtq_version={schema_catalog.build_extension.current_version()}"
    command = ["pg_prove", "--failures", "--set", version, "--dbname", str(params["dbname"])]
    for key, flag in (("host", "--host"), ("port", "--port"), ("user", "--username")):
        if params.get(key):
            command += [flag, str(params[key])]
    return subprocess.run([*command, *files], check=False).returncode


def main() -> int:
    server_dsn = os.environ.get("PGTQ_TEST_DSN")
    if not server_dsn:
        print("tests/sql/run.py: set PGTQ_TEST_DSN (make test does)", file=sys.stderr)
        return 2
    try:
        routes: dict[str, Callable[[str], None]] = schema_catalog.install_routes(server_dsn)
    except schema_catalog.DriftError as error:
        print(f"tests/sql/run.py: {error}", file=sys.stderr)
        return 1
    results = {}
    for number, (label, install) in enumerate(routes.items()):
        dsn = recreate(server_dsn, f"pgtq_tap_{number}")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pgtap")
        install(dsn)
        results[label] = prove(dsn, label)
    for label, code in results.items():
        print(f"# {'PASS' if code == 0 else f'FAIL (pg_prove exit {code})'}: {label} route", flush=True)
    return combined_status(results.values())


if __name__ == "__main__":
    sys.exit(main())
