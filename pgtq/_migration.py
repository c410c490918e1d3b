"""What pgtq's alembic revisions do: run one SQL script of ``sql/`` as is."""

from __future__ import annotations

from alembic import op

from pgtq._schema import sql_file


def apply_sql_file(name: str) -> None:
    """Run ``sql/<name>`` in the migration's transaction.

    The script goes to psycopg unchanged (no parameters, so no placeholder
    parsing), which is what ``CREATE EXTENSION`` runs too.
    """
    dbapi_connection = op.get_bind().connection.dbapi_connection
    assert dbapi_connection is not None
    dbapi_connection.execute(sql_file(name).read_text())  # type: ignore[attr-defined]


def drop_schema() -> None:
    """Remove everything pgtq installed (jobs included)."""
    op.execute("DROP SCHEMA IF EXISTS pgtq CASCADE")
