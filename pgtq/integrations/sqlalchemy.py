"""Client API: push inside a SQLAlchemy 2.x transaction.

SQLAlchemy's ``postgresql+psycopg`` dialect runs on a psycopg 3 connection;
these functions give you that connection for the transaction a ``Session``
or ``Connection`` has open, so a push joins it::

    from pgtq.integrations.sqlalchemy import psycopg_connection

    with Session(engine) as session, session.begin():
        session.add(user)
        session.flush()
        send_welcome.options(conn=psycopg_connection(session)).push(user.id)
    # committed: the user and the job; rolled back: neither

    async with AsyncSession(async_engine) as session, session.begin():
        session.add(user)
        await session.flush()
        conn = await async_psycopg_connection(session)
        await send_welcome.options(conn=conn).push_async(user.id)

The connection stays SQLAlchemy's: pgtq never commits, rolls back or
closes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from pgtq._db.async_gateway import is_async_connection
from pgtq._db.gateway import is_connection

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession


def psycopg_connection(bind: Session | Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under a ``Session`` (its transaction begins
    if none is open) or a ``Connection``, for ``options(conn=...)``."""
    if isinstance(bind, Session):
        bind = bind.connection()
    if not isinstance(bind, Connection):
        raise TypeError(f"expected a sqlalchemy Session or Connection, got {type(bind).__name__}")
    raw = bind.connection.dbapi_connection
    if not is_connection(raw):
        raise TypeError(_not_psycopg(bind.dialect.driver))
    return raw  # type: ignore[return-value]


async def async_psycopg_connection(bind: AsyncSession | AsyncConnection) -> psycopg.AsyncConnection[Any]:
    """The psycopg ``AsyncConnection`` under an ``AsyncSession`` (its
    transaction begins if none is open) or an ``AsyncConnection``, for
    ``options(conn=...).push_async(...)`` or ``AsyncPgTq.push(conn=...)``."""
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    if isinstance(bind, AsyncSession):
        bind = await bind.connection()
    if not isinstance(bind, AsyncConnection):
        raise TypeError(f"expected a sqlalchemy AsyncSession or AsyncConnection, got {type(bind).__name__}")
    raw = (await bind.get_raw_connection()).driver_connection
    if not is_async_connection(raw):
        raise TypeError(_not_psycopg(bind.dialect.driver))
    return raw  # type: ignore[return-value]


def _not_psycopg(driver: str) -> str:
    return (
        f"pgtq needs SQLAlchemy's psycopg 3 driver (a postgresql+psycopg:// URL); this engine uses {driver!r}"
    )
