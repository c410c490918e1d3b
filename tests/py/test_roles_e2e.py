"""The shipped roles are enough to run pgtq for real: an application user
holding pgtq_producer pushes, one holding pgtq_worker runs a worker."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from conftest import Processes, wait_until
from psycopg import sql
from psycopg.conninfo import make_conninfo

import pgtq

_numbers = itertools.count()


@pytest.fixture
def login_role(db: psycopg.Connection[Any]) -> Iterator[Any]:
    """Make LOGIN roles that are members of a pgtq role; drop them after."""
    made: list[str] = []

    def make(member_of: str) -> str:
        name = f"app_{member_of}_{os.getpid()}_{next(_numbers)}"
        db.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(name), sql.Identifier(member_of))
        )
        made.append(name)
        return name

    yield make
    for name in made:
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_producer_pushes_and_worker_runs_with_their_roles_only(
    dsn: str, db: psycopg.Connection[Any], login_role: Any, processes: Processes
) -> None:
    producer_dsn = make_conninfo(dsn, user=login_role("pgtq_producer"))
    worker_dsn = make_conninfo(dsn, user=login_role("pgtq_worker"))

    with pgtq.PgTq("test_queue", producer_dsn) as producer:
        job_id = producer.push("add", [2, 3])
        with pytest.raises(pgtq.PermissionDeniedError, match=r"permission denied.*SECURITY\.md"):
            producer.stats()

    processes.worker("app:q", "--dsn", worker_dsn)
    wait_until(
        lambda: (
            db.execute("SELECT state::text FROM pgtq.jobs WHERE id = %s", [job_id]).fetchone()[0] == "done"
        )
    )
    assert db.execute("SELECT result, worker FROM pgtq.jobs WHERE id = %s", [job_id]).fetchone()[0] == 5
