"""Which installed schema version a package accepts (``schema_problem``):
the one it was written for; a newer one only for a worker that finds it
when it reconnects (the database was upgraded while it ran). No database."""

from __future__ import annotations

from pgtq.database import schema_problem
from pgtq.errors import SchemaMissingError, SchemaVersionError


def test_a_newer_schema_is_refused_at_start_and_accepted_on_reconnection() -> None:
    assert schema_problem("0.2.0", "0.2.0") is None
    newer = schema_problem("0.10.0", "0.2.0")
    assert isinstance(newer, SchemaVersionError)
    assert str(newer) == (
        "the database has pgtq schema 0.10.0, newer than 0.2.0 that this package knows; "
        "upgrade the pgtq Python package"
    )
    assert schema_problem("0.10.0", "0.2.0", allow_newer=True) is None


def test_an_older_or_missing_schema_is_refused_always() -> None:
    older = schema_problem("0.1.1", "0.2.0", allow_newer=True)
    assert isinstance(older, SchemaVersionError)
    assert "older than 0.2.0 that this package needs; upgrade it with `pgtq migrate DSN`" in str(older)
    assert isinstance(schema_problem(None, "0.2.0", allow_newer=True), SchemaMissingError)
