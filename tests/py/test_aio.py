"""The asyncio client (pgtq.aio.AsyncPgTq, handlers' push_async) on the
real server: a push inside an AsyncConnection's transaction exists iff it
commits; the rest of the API round-trips as the sync one does."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import psycopg
import pytest
from conftest import scalar
from psycopg_pool import AsyncConnectionPool

import pgtq
from pgtq.aio import AsyncPgTq

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def jobs(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute("SELECT queue, task, args, kwargs FROM pgtq.jobs ORDER BY id").fetchall()


def test_push_in_a_committed_transaction_gives_a_job_and_a_rolled_back_one_none(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute("CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL)")

    async def scenario() -> int:
        async with AsyncPgTq("emails", dsn) as aq, await psycopg.AsyncConnection.connect(dsn) as conn:
            async with conn.transaction():
                cursor = await conn.execute(
                    "INSERT INTO users (email) VALUES ('ann@example.com') RETURNING id"
                )
                row = await cursor.fetchone()
                assert row is not None
                kept = await aq.push("send_welcome", [row[0]], conn=conn)
            with pytest.raises(RuntimeError, match="form invalid"):
                async with conn.transaction():
                    await conn.execute("INSERT INTO users (email) VALUES ('bob@example.com')")
                    await aq.push("send_welcome", [2], conn=conn)
                    raise RuntimeError("form invalid")
            return kept

    kept = run(scenario())
    assert jobs(db) == [("emails", "send_welcome", [1], {})]
    assert scalar(db, "SELECT id FROM pgtq.jobs") == kept
    assert scalar(db, "SELECT count(*) FROM users") == 1


def test_handlers_push_async_on_the_queues_aio_and_in_a_transaction(
    q: pgtq.PgTq, dsn: str, db: psycopg.Connection[Any]
) -> None:
    @q.handler(priority=3)
    async def send_welcome(user_id: int, *, lang: str = "en") -> str:
        return f"{user_id}:{lang}"

    async def scenario() -> tuple[int, list[int]]:
        try:
            alone = await send_welcome.push_async(7, lang="fr")
            many = await send_welcome.push_many_async([(1,), (2,)], [{"lang": "de"}, {}])
            async with await psycopg.AsyncConnection.connect(dsn) as conn:
                await send_welcome.options(conn=conn, delay=60).push_async(8)
                await conn.rollback()  # the connection is not autocommit: nothing was committed
            return alone, many
        finally:
            await q.aio.close()

    alone, many = run(scenario())
    assert jobs(db) == [
        ("test_queue", "send_welcome", [7], {"lang": "fr"}),
        ("test_queue", "send_welcome", [1], {"lang": "de"}),
        ("test_queue", "send_welcome", [2], {}),
    ]
    assert [alone, *many] == [row[0] for row in db.execute("SELECT id FROM pgtq.jobs ORDER BY id")]
    assert scalar(db, "SELECT DISTINCT priority FROM pgtq.jobs") == 3, "the handler's default priority"


def test_pop_complete_fail_and_the_reads(dsn: str) -> None:
    with pgtq.Database(dsn) as database:
        installed = database.installed_version()

    async def scenario() -> None:
        async with AsyncPgTq("work", dsn) as aq:
            assert await aq.check_schema() == installed
            first, second = await aq.push_many("add", [(1, 2), (3, 4)])
            task = await aq.pop(worker="aio-1", lease=30)
            assert task is not None and (task.id, task.args) == (first, (1, 2))
            assert await aq.heartbeat(task, 60)
            assert await aq.complete(task, {"sum": 3})
            assert not await aq.complete(task, 3), "a second completion holds a stale lease"
            other = await aq.pop()
            assert other is not None and other.id == second
            assert await aq.fail(other, "boom", retry_in=3600) == "scheduled"
            info = await aq.job(first)
            assert info is not None and (info.state, info.result) == ("done", {"sum": 3})
            states = {stat.state: stat.jobs for stat in await aq.stats()}
            assert states == {"done": 1, "scheduled": 1}
            assert await aq.cancel(second) and not await aq.retry(first)
            assert await aq.tick() == 0

    run(scenario())


def test_a_pool_of_async_connections(dsn: str, db: psycopg.Connection[Any]) -> None:
    async def scenario() -> list[int]:
        async with AsyncConnectionPool(dsn, min_size=1, max_size=3, kwargs={"autocommit": True}) as pool:
            aq = AsyncPgTq("pooled", pool=pool)
            assert aq.dsn == dsn
            return await asyncio.gather(*(aq.push("job", [n]) for n in range(10)))

    ids = run(scenario())
    assert sorted(ids) == [row[0] for row in db.execute("SELECT id FROM pgtq.jobs ORDER BY id")]


def test_mistakes_are_named(q: pgtq.PgTq, dsn: str) -> None:
    @q.handler()
    def task(n: int) -> None: ...

    async def scenario() -> None:
        async with AsyncPgTq(q) as aq:
            with pytest.raises(pgtq.InvalidJobError, match="queue"):
                await aq.push("task", [1], queue="")
            with pytest.raises(TypeError, match="not JSON-serialisable"):
                await aq.push("task", [object()])
            with psycopg.connect(dsn) as sync_conn, pytest.raises(TypeError, match="AsyncConnection here"):
                await aq.push("task", [1], conn=sync_conn)  # type: ignore[arg-type]
            async with await psycopg.AsyncConnection.connect(dsn) as async_conn:
                with pytest.raises(TypeError, match="await the async twin"):
                    task.options(conn=async_conn).push(1)

    run(scenario())
    with pytest.raises(ValueError, match="DSN or a connection pool"):
        AsyncPgTq("q")


def test_the_shared_connection_belongs_to_one_event_loop(dsn: str) -> None:
    aq = AsyncPgTq("loops", dsn)
    run(aq.push("job"))
    with pytest.raises(RuntimeError, match="another event loop"):
        run(aq.push("job"))
    run(aq.close())
    assert run(aq.push("job")) > 0, "after close() another loop may use it"
    run(aq.close())
