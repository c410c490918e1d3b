"""Create the database named in a DSN if it does not exist yet."""

from __future__ import annotations

import sys

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def ensure_database(dsn: str) -> None:
    name = conninfo_to_dict(dsn).get("dbname")
    if not name:
        raise SystemExit(f"createdb: no dbname in {dsn!r}")
    with psycopg.connect(make_conninfo(dsn, dbname="postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(name))))


if __name__ == "__main__":
    ensure_database(sys.argv[1])
