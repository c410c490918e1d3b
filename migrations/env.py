"""Alembic environment of pgtq's migrations.

Each revision applies one script of ``sql/`` as it is. The database comes
from ``pgtq migrate DSN`` (config attribute ``dsn``), from
``alembic -x dsn=...``, or from the ``PGTQ_DSN`` environment variable.
Alembic's bookkeeping goes to the table ``public.pgtq_alembic_version``,
apart from any version table of the application's own migrations. Its
connection comes from pgtq's gateway like every other, so it follows the
prepared-statement policy (none through a pooler).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool, text

from pgtq._db import gateway

VERSION_TABLE = "pgtq_alembic_version"
# Two `pgtq migrate` at once: the second waits, then finds nothing to do.
MIGRATE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('pgtq migrate'))"


def _dsn() -> str:
    dsn = context.config.attributes.get("dsn") or context.get_x_argument(as_dictionary=True).get("dsn")
    dsn = dsn or os.environ.get("PGTQ_DSN")
    if not dsn:
        raise SystemExit("pgtq migrations: no database given (pass -x dsn=... or set PGTQ_DSN)")
    return str(dsn)


def run_migrations_online() -> None:
    dsn = _dsn()
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: gateway.connect(dsn, autocommit=False),
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
        with context.begin_transaction():
            connection.execute(text(MIGRATE_LOCK))
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("pgtq migrations run online only: the SQL files are the offline form")
run_migrations_online()
