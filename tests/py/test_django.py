"""Django with the psycopg 3 backend: a push on Django's own connection
inside ``transaction.atomic()`` exists iff the block commits.

A minimal Django project, configured here: its database is a pgtq
database on the test server, its models those of django.contrib.auth
(migrated by Django itself)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from conftest import TEMPLATE, recreate, scalar
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import pgtq

django = pytest.importorskip("django")


@pytest.fixture(scope="module")
def django_dsn(server_dsn: str, template_dsn: str) -> Iterator[str]:
    """A pgtq database for this module, with Django configured on it and
    its auth tables migrated."""
    from django.conf import settings
    from django.core.management import call_command

    name = f"pgtq_test_django_{os.getpid()}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        recreate(admin, name, template=TEMPLATE)
    dsn = make_conninfo(server_dsn, dbname=name)
    params = conninfo_to_dict(dsn)
    assert not settings.configured, "one Django project per test process"
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": name,
                "USER": params["user"],
                "HOST": params["host"],
                "PORT": params["port"],
            }
        },
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
        USE_TZ=True,
    )
    django.setup()
    call_command("migrate", verbosity=0)
    yield dsn
    from django.db import connections

    connections.close_all()
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        recreate(admin, name)


def jobs(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT task, args FROM pgtq.jobs ORDER BY id").fetchall()


def test_atomic_commit_gives_the_job_and_a_rollback_none(django_dsn: str) -> None:
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from pgtq.integrations.django import psycopg_connection

    q = pgtq.PgTq("emails", django_dsn)

    @q.handler()
    def send_welcome(user_id: int) -> None: ...

    with psycopg.connect(django_dsn, autocommit=True) as check:
        before = scalar(check, "SELECT count(*) FROM pgtq.jobs")
    assert before == 0
    with transaction.atomic():
        ann = User.objects.create_user("ann", "ann@example.com")
        send_welcome.options(conn=psycopg_connection()).push(ann.pk)
    with pytest.raises(RuntimeError, match="signup refused"), transaction.atomic():
        bob = User.objects.create_user("bob", "bob@example.com")
        send_welcome.options(conn=psycopg_connection()).push(bob.pk)
        raise RuntimeError("signup refused")
    with transaction.atomic():
        cy = User.objects.create_user("cy", "cy@example.com")
        with pytest.raises(pgtq.InvalidJobError), transaction.atomic():  # a savepoint, rolled back alone
            send_welcome.options(conn=psycopg_connection(), queue="").push(cy.pk)
        send_welcome.options(conn=psycopg_connection()).push(cy.pk)
    assert psycopg_connection() is connection.connection, "Django's own connection"
    assert jobs(django_dsn) == [("send_welcome", [ann.pk]), ("send_welcome", [cy.pk])]
    assert sorted(User.objects.values_list("username", flat=True)) == ["ann", "cy"]
    q.close()


def test_a_database_of_another_vendor_is_refused(django_dsn: str) -> None:
    from django.db import connections

    from pgtq.integrations.django import psycopg_connection

    connections.settings["other"] = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    try:
        with pytest.raises(TypeError, match="needs a PostgreSQL database; Django's 'other' is sqlite"):
            psycopg_connection("other")
    finally:
        connections["other"].close()
