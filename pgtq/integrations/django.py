"""Client API: push inside Django's own transaction.

With Django's PostgreSQL backend on psycopg 3 (Django 4.2+, ``psycopg``
installed), Django's connection is a psycopg connection; a push on it
joins whatever ``transaction.atomic()`` has open::

    from django.db import transaction
    from pgtq.integrations.django import psycopg_connection

    with transaction.atomic():
        user = User.objects.create(email=email)
        send_welcome.options(conn=psycopg_connection()).push(user.pk)
    # committed: the user and the job; an exception rolled back both

Outside ``atomic()`` Django runs in autocommit and the push commits at
once. The connection stays Django's: pgtq never commits or closes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, connections

from pgtq._db.gateway import is_connection

if TYPE_CHECKING:
    import psycopg


def psycopg_connection(using: str = DEFAULT_DB_ALIAS) -> psycopg.Connection[Any]:
    """The psycopg connection under Django's connection ``using`` (opened if
    it is not yet), for ``options(conn=...)``."""
    wrapper = connections[using]
    if wrapper.vendor != "postgresql":
        raise TypeError(f"pgtq needs a PostgreSQL database; Django's {using!r} is {wrapper.vendor}")
    wrapper.ensure_connection()
    raw = wrapper.connection
    if not is_connection(raw):
        raise TypeError(
            f"Django's {using!r} connection is not psycopg 3 ({type(raw).__module__}); "
            "install psycopg (Django then prefers it over psycopg2)"
        )
    return raw  # type: ignore[no-any-return]
