"""SQL-engine layer: what pgtq's alembic revisions do: run one SQL script
of ``sql/`` as is (migrations/versions/ imports this)."""

from __future__ import annotations

import logging

import psycopg
from alembic import op

from pgtq._db import queries
from pgtq._db.gateway import MIGRATION_LOCK_WAIT
from pgtq._db.schema import sql_file

logger = logging.getLogger("pgtq")

# What CREATE EXTENSION runs the script with (the control file's schema):
# only trusted schemas, so no object in `public` or another schema a user
# can write is picked up while the install resolves names.
INSTALL_SEARCH_PATH = "pg_catalog, pg_temp"


def _log_pgtq_notice(diagnostic: psycopg.errors.Diagnostic) -> None:
    """Show the script's own notices (such as the one saying roles could
    not be created) to whoever runs the migration."""
    message = diagnostic.message_primary or ""
    if message.startswith("pgtq:"):
        hint = f" ({diagnostic.message_hint})" if diagnostic.message_hint else ""
        logger.warning("%s%s", message, hint)


def apply_sql_file(name: str) -> None:
    """Run ``sql/<name>`` in the migration's transaction.

    The script goes to psycopg unchanged (no parameters, so no placeholder
    parsing), which is what ``CREATE EXTENSION`` runs too, and with the same
    trusted search_path; the caller's search_path is restored afterwards.
    Before it, the transaction takes every pgtq table there is at once and
    waits at most MIGRATION_LOCK_WAIT for a lock, as the extension route
    does (``gateway.update_extension``): workers may be running.
    """
    dbapi_connection = op.get_bind().connection.dbapi_connection
    assert dbapi_connection is not None
    conn: psycopg.Connection[object] = dbapi_connection  # type: ignore[assignment]
    saved = conn.execute("SELECT pg_catalog.current_setting('search_path')").fetchone()
    assert saved is not None
    conn.add_notice_handler(_log_pgtq_notice)
    try:
        for query in (queries.migration_lock_timeout(MIGRATION_LOCK_WAIT), queries.lock_pgtq_tables()):
            conn.execute(query.sql, query.params)
        conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", [INSTALL_SEARCH_PATH])
        conn.execute(sql_file(name).read_text())
        conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", [saved[0]])
    finally:
        conn.remove_notice_handler(_log_pgtq_notice)


def refuse_downgrade(version: str) -> None:
    """Downgrades below a released version are not offered: the upgrade
    scripts change functions in place and keep every job, and going back
    would need the old definitions. Restore a backup instead."""
    raise NotImplementedError(
        f"pgtq does not downgrade its schema from {version}; restore a backup taken before the upgrade"
    )


def drop_schema() -> None:
    """Remove everything pgtq installed (jobs included). The roles stay:
    they are cluster-wide and other databases may use them."""
    op.execute("DROP SCHEMA IF EXISTS pgtq CASCADE")
