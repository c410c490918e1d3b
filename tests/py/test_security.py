"""Least privilege from the outside: pgtq installed by an ordinary owner
(no superuser, no CREATEROLE, as on a managed server), used by login users
that hold the pgtq roles. The pgTAP files 07-roles and 08-hijack prove the
rights in detail; this proves the deployment story of SECURITY.md."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator

import psycopg
import pytest
from conftest import scalar
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import pgtq
from pgtq._db.migration import _log_pgtq_notice
from pgtq._db.schema import schema_version
from pgtq.migrate import upgrade

_numbers = itertools.count()


class Users:
    """Login roles made for one test, dropped (with their database) after it."""

    def __init__(self, server_dsn: str, database_dsn: str) -> None:
        self.server_dsn = server_dsn
        self.database_dsn = database_dsn
        self.prefix = f"pgtq_t{os.getpid()}_{next(_numbers)}"
        self.created: list[str] = []

    def create(self, name: str, options: str = "", member_of: str | None = None) -> str:
        role = f"{self.prefix}_{name}"
        with psycopg.connect(self.server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN " + options).format(sql.Identifier(role)))
            self.created.append(role)
            if member_of:
                admin.execute(
                    sql.SQL("GRANT {} TO {}").format(sql.Identifier(member_of), sql.Identifier(role))
                )
        return role

    def dsn(self, role: str) -> str:
        return make_conninfo(self.database_dsn, user=role)

    def drop_all(self, database: str) -> None:
        with psycopg.connect(self.server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            for role in reversed(self.created):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def users(server_dsn: str, empty_dsn: str) -> Iterator[Users]:
    made = Users(server_dsn, empty_dsn)
    yield made
    made.drop_all(str(conninfo_to_dict(empty_dsn)["dbname"]))


@pytest.fixture
def owner_install(users: Users, server_dsn: str, empty_dsn: str, template_dsn: str) -> str:
    """pgtq installed through alembic by an owner without CREATEROLE; its DSN.
    The default roles exist already: the template's install (by a superuser)
    created them, as another database's install would in production."""
    owner = users.create("owner", "NOSUPERUSER NOCREATEROLE NOCREATEDB")
    database = str(conninfo_to_dict(empty_dsn)["dbname"])
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), sql.Identifier(owner))
        )
    owner_dsn = users.dsn(owner)
    result = upgrade(owner_dsn)
    assert (result.route, result.after) == ("alembic", schema_version())
    return owner_dsn


def test_an_owner_without_createrole_installs_pgtq_and_grants_existing_roles(
    owner_install: str, empty_dsn: str
) -> None:
    with psycopg.connect(owner_install) as conn:
        owner = scalar(conn, "SELECT current_user")
        assert (
            scalar(conn, "SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user")
            is False
        )
        assert (
            scalar(conn, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'pgtq'") == owner
        )
        # The roles existed (roles are cluster-wide): this install granted them their rights.
        assert scalar(
            conn,
            "SELECT has_function_privilege('pgtq_worker',"
            " 'pgtq.pop(text, text, integer, interval, timestamptz)', 'EXECUTE')",
        )
        definers = scalar(
            conn,
            "SELECT array_agg(DISTINCT pg_get_userbyid(proowner)) FROM pg_proc"
            " WHERE pronamespace = 'pgtq'::regnamespace AND prosecdef",
        )
    assert definers == [owner], "SECURITY DEFINER functions run as the ordinary owner, not a superuser"


def test_roles_missing_and_no_createrole_gives_a_notice_naming_the_fix(
    owner_install: str, users: Users, server_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    names = [f"{users.prefix}_{kind}" for kind in ("producer", "worker", "admin", "observer")]
    notices: list[tuple[str | None, str | None, str | None]] = []
    with psycopg.connect(owner_install, autocommit=True) as conn:
        conn.add_notice_handler(
            lambda d: notices.append((d.severity_nonlocalized, d.message_primary, d.message_hint))
        )
        conn.add_notice_handler(_log_pgtq_notice)  # what the alembic route does with them
        with caplog.at_level(logging.WARNING, logger="pgtq"):
            granted = scalar(conn, "SELECT pgtq.install_roles(%s, %s, %s, %s)", names)
    assert granted == []
    [(severity, message, hint)] = notices
    assert severity == "NOTICE"
    assert message == (
        f"pgtq: roles {', '.join(names)} are missing and {users.prefix}_owner may not create roles"
        " (no CREATEROLE): pgtq is installed, but until they exist only the owner of schema pgtq can use it"
    )
    rerun = f"SELECT pgtq.install_roles({', '.join(repr(name) for name in names)});"
    assert hint == (
        "Ask an administrator to run: "
        + " ".join(f"CREATE ROLE {name} NOLOGIN;" for name in names)
        + f" Then, as the owner of schema pgtq, run: {rerun}"
    )
    assert [record.getMessage() for record in caplog.records] == [f"{message} ({hint})"]

    # The administrator follows the hint; the owner reruns install_roles.
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        for name in names:
            admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
            users.created.append(name)
    with psycopg.connect(owner_install, autocommit=True) as conn:
        assert scalar(conn, rerun) == names
    producer = users.create("app", member_of=names[0])
    with psycopg.connect(users.dsn(producer), autocommit=True) as conn:
        assert scalar(conn, "SELECT pgtq.push('q', 't')") is not None


def test_login_users_holding_the_roles_run_a_queue(owner_install: str, users: Users) -> None:
    producer = users.create("producer", member_of="pgtq_producer")
    worker = users.create("worker", member_of="pgtq_worker")
    admin = users.create("admin", member_of="pgtq_admin")

    with pgtq.PgTq("mail", users.dsn(producer)) as q:
        assert q.check_schema() == schema_version(), "a producer may check the schema version"
        job_id = q.push("send", ["ann@example.com"])
        with pytest.raises(pgtq.PermissionDeniedError, match="permission denied for function pop"):
            q.pop()
        with pytest.raises(pgtq.PermissionDeniedError, match="permission denied for view jobs"):
            q.job(job_id)

    with pgtq.PgTq("mail", users.dsn(worker)) as q:
        task = q.pop(worker="w1")
        assert task is not None and task.id == job_id and task.args == ("ann@example.com",)
        assert q.complete(task, {"sent": True}) is True
        assert [(s.state, s.jobs) for s in q.stats()] == [("done", 1)]
        with pytest.raises(pgtq.PermissionDeniedError, match="permission denied for function push"):
            q.push("send", [])

    with pgtq.PgTq("mail", users.dsn(admin)) as q:
        info = q.job(job_id)
        assert info is not None and info.result == {"sent": True}
        assert q.prune(0) == 1
    with (
        psycopg.connect(users.dsn(admin), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT count(*) FROM pgtq._job")


def test_the_extension_route_grants_the_same_rights(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        if not scalar(conn, "SELECT count(*) FROM pg_available_extensions WHERE name = 'pgtq'"):
            pytest.skip("pgtq extension files are not installed (make install-extension)")
        conn.execute("CREATE EXTENSION pgtq")
        rights = scalar(
            conn,
            "SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc p"
            " WHERE p.pronamespace = 'pgtq'::regnamespace"
            " AND has_function_privilege('pgtq_producer', p.oid, 'EXECUTE')",
        )
        recorded = scalar(
            conn,
            "SELECT count(*) FROM pg_init_privs i JOIN pg_proc p ON p.oid = i.objoid"
            " WHERE p.pronamespace = 'pgtq'::regnamespace AND i.privtype = 'e'",
        )
    assert rights == ["outcomes", "push", "push_many", "unwatch", "version", "watch"]
    assert recorded > 0, "the extension's grants are recorded as its initial privileges (pg_dump)"
