"""examples/trigger/welcome_trigger.sql: an AFTER INSERT trigger that
pushes a job; the job exists iff the insert commits, and the trigger
function's privileges work as its comments say (SECURITY INVOKER needs
pgtq_producer in the inserting role; the SECURITY DEFINER variant does not)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from conftest import REPO, psql_output, scalar
from psycopg import sql
from psycopg.conninfo import make_conninfo

EXAMPLE = REPO / "examples" / "trigger" / "welcome_trigger.sql"


@pytest.fixture
def installed(dsn: str, db: psycopg.Connection[Any]) -> Iterator[str]:
    """The example installed (by psql, as its file is), and a login role
    ``writer`` that may insert users but holds no pgtq role."""
    psql_output(dsn, EXAMPLE.read_text())
    writer = f"users_writer_{os.getpid()}"
    db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(writer)))
    db.execute(sql.SQL("GRANT INSERT, SELECT ON users TO {}").format(sql.Identifier(writer)))
    yield writer
    db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(writer)))
    db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(writer)))


def jobs(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute("SELECT task, args, kwargs, job_key, pushed_by FROM pgtq.jobs ORDER BY id").fetchall()


def test_a_committed_insert_gives_the_job_and_a_rolled_back_one_none(
    dsn: str, db: psycopg.Connection[Any], installed: str
) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO users (email) VALUES ('ann@example.com')")
        conn.commit()
        conn.execute("INSERT INTO users (email) VALUES ('bob@example.com')")
        conn.rollback()
    ann = scalar(db, "SELECT id FROM users WHERE email = 'ann@example.com'")
    assert jobs(db) == [("send_welcome", [ann], {"email": "ann@example.com"}, f"welcome:{ann}", "postgres")]
    assert scalar(db, "SELECT count(*) FROM users") == 1


def test_security_invoker_needs_pgtq_producer_in_the_inserting_role(
    dsn: str, db: psycopg.Connection[Any], installed: str
) -> None:
    writer = installed
    with psycopg.connect(make_conninfo(dsn, user=writer)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for schema pgtq"):
            conn.execute("INSERT INTO users (email) VALUES ('eve@example.com')")
        conn.rollback()
    db.execute(sql.SQL("GRANT pgtq_producer TO {}").format(sql.Identifier(writer)))
    with psycopg.connect(make_conninfo(dsn, user=writer), autocommit=True) as conn:
        conn.execute("INSERT INTO users (email) VALUES ('eve@example.com')")
    assert [(task, pushed_by) for task, _, _, _, pushed_by in jobs(db)] == [("send_welcome", writer)]


def test_the_security_definer_variant_pushes_for_roles_without_pgtq_rights(
    dsn: str, db: psycopg.Connection[Any], installed: str
) -> None:
    variant = EXAMPLE.read_text().split("-- The SECURITY DEFINER variant", 1)[1]
    statements = [line.removeprefix("--   ") for line in variant.splitlines() if line.startswith("--   ")]
    assert len(statements) == 4, statements
    pusher = f"welcome_pusher_{os.getpid()}"
    script = "\n".join(statements).replace("welcome_pusher", pusher)
    psql_output(dsn, script)
    try:
        writer = installed
        with psycopg.connect(make_conninfo(dsn, user=writer), autocommit=True) as conn:
            conn.execute("INSERT INTO users (email) VALUES ('dan@example.com')")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT pgtq.push('emails', 'anything')")
        assert [(task, pushed_by) for task, _, _, _, pushed_by in jobs(db)] == [("send_welcome", writer)]
        config = scalar(db, "SELECT proconfig FROM pg_proc WHERE proname = 'enqueue_welcome_email'")
        assert any(re.fullmatch(r"search_path=pg_catalog, ?pg_temp", entry) for entry in config)
    finally:
        db.execute("DROP TRIGGER users_enqueue_welcome ON users")
        db.execute("DROP FUNCTION enqueue_welcome_email()")
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(pusher)))
