"""SQLAlchemy 2.x, sync and async (postgresql+psycopg): a push on the
psycopg connection under a Session or Connection joins its transaction: a
commit gives the row and the job, a rollback neither."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from conftest import scalar
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import URL, Engine, String, create_engine, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import pgtq
from pgtq.integrations.sqlalchemy import async_psycopg_connection, psycopg_connection


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200))


def url(dsn: str, driver: str = "postgresql+psycopg") -> URL:
    """The SQLAlchemy URL of the test database (psycopg 3 driver)."""
    params = conninfo_to_dict(dsn)
    return URL.create(
        driver,
        username=str(params["user"]),
        host=str(params["host"]),
        port=int(str(params["port"])),
        database=str(params["dbname"]),
    )


@pytest.fixture
def engine(dsn: str) -> Iterator[Engine]:
    engine = create_engine(url(dsn))
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def emails(q: pgtq.PgTq) -> pgtq.Handler[Any, Any]:
    @q.handler()
    def send_welcome(user_id: int) -> None: ...

    return send_welcome


def job_args(db: psycopg.Connection[Any]) -> list[Any]:
    return [row[0] for row in db.execute("SELECT args FROM pgtq.jobs ORDER BY id")]


def test_a_session_commit_gives_the_job_and_a_rollback_none(
    engine: Engine, emails: pgtq.Handler[Any, Any], db: psycopg.Connection[Any]
) -> None:
    with Session(engine) as session, session.begin():
        user = User(email="ann@example.com")
        session.add(user)
        session.flush()
        emails.options(conn=psycopg_connection(session)).push(user.id)
    with Session(engine) as session:
        session.add(User(email="bob@example.com"))
        session.flush()
        emails.options(conn=psycopg_connection(session)).push(2)
        session.rollback()
    assert job_args(db) == [[1]]
    assert scalar(db, "SELECT array_agg(email) FROM users") == ["ann@example.com"]


def test_a_connection_commit_gives_the_job_and_a_rollback_none(
    engine: Engine, emails: pgtq.Handler[Any, Any], db: psycopg.Connection[Any]
) -> None:
    with engine.begin() as connection:
        connection.execute(insert(User).values(id=10, email="ann@example.com"))
        emails.options(conn=psycopg_connection(connection)).push(10)
    with pytest.raises(RuntimeError, match="payment refused"), engine.begin() as connection:
        connection.execute(insert(User).values(id=11, email="bob@example.com"))
        emails.options(conn=psycopg_connection(connection)).push_many([(11,), (12,)])
        raise RuntimeError("payment refused")
    assert job_args(db) == [[10]]
    assert scalar(db, "SELECT count(*) FROM users") == 1


def test_async_session_and_connection(dsn: str, q: pgtq.PgTq, db: psycopg.Connection[Any]) -> None:
    db.execute("CREATE TABLE users (id int PRIMARY KEY, email text)")

    @q.handler()
    async def send_welcome(user_id: int) -> None: ...

    async def scenario() -> None:
        engine: AsyncEngine = create_async_engine(url(dsn))
        try:
            async with AsyncSession(engine) as session, session.begin():
                session.add(User(id=1, email="ann@example.com"))
                await session.flush()
                await send_welcome.options(conn=await async_psycopg_connection(session)).push_async(1)
            async with AsyncSession(engine) as session:
                session.add(User(id=2, email="bob@example.com"))
                await session.flush()
                await send_welcome.options(conn=await async_psycopg_connection(session)).push_async(2)
                await session.rollback()
            async with engine.connect() as connection:
                await connection.execute(text("INSERT INTO users VALUES (3, 'cy@example.com')"))
                await q.aio.push("send_welcome", [3], conn=await async_psycopg_connection(connection))
                await connection.commit()
            async with engine.connect() as connection:
                await connection.execute(text("INSERT INTO users VALUES (4, 'di@example.com')"))
                await q.aio.push("send_welcome", [4], conn=await async_psycopg_connection(connection))
                await connection.rollback()
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    assert job_args(db) == [[1], [3]]
    assert scalar(db, "SELECT array_agg(id ORDER BY id) FROM users") == [1, 3]


def test_anything_else_is_refused_with_a_reason(engine: Engine) -> None:
    with pytest.raises(TypeError, match="Session or Connection, got Engine"):
        psycopg_connection(engine)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="AsyncSession or AsyncConnection, got Session"), Session(engine) as s:
        asyncio.run(async_psycopg_connection(s))  # type: ignore[arg-type]
