"""The shipped roles are enough to run pgtq for real: an application user
holding pgtq_producer pushes, one holding pgtq_worker runs a worker."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from conftest import Processes, wait_until
from psycopg.conninfo import make_conninfo

import pgtq


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
