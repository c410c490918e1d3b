"""Upgrades keep every job: a database of the oldest release, holding jobs
in every state, is upgraded to the current version by each route; every
row is unchanged (columns added since hold their defaults) and every job
goes on under the new version's rules.

(That each route gives exactly the schema of a fresh install is checked by
`make verify`, scripts/schema_catalog.py.)"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from conftest import REPO, scalar

import pgtq
from pgtq.migrate import upgrade

sys.path.insert(0, str(REPO / "scripts"))
import build_extension

BASE = build_extension.base_version()
CURRENT = build_extension.current_version()
T0 = "2030-01-01 00:00:00+00"


def install_base_extension(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE EXTENSION pgtq VERSION '{BASE}'")


def install_base_alembic(dsn: str) -> None:
    upgrade(dsn, BASE)


def jobs_in_every_state(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Push and move jobs with the old version's API, at fixed times."""

    def one(query: str) -> Any:
        return scalar(conn, query)

    ids = {
        "ready": one(f"SELECT pgtq.push('q', 'ready', '[1]', as_of => '{T0}')"),
        "scheduled": one(
            f"SELECT pgtq.push('q', 'scheduled', run_at => '{T0}'::timestamptz + interval '1 hour',"
            f" as_of => '{T0}')"
        ),
        "running": one(f"SELECT pgtq.push('r', 'running', as_of => '{T0}')"),
        "done": one(f"SELECT pgtq.push('d', 'done', as_of => '{T0}')"),
        "failed": one(f"SELECT pgtq.push('f', 'failed', max_attempts => 1, as_of => '{T0}')"),
        "retrying": one(f"SELECT pgtq.push('t', 'retrying', as_of => '{T0}')"),
        "cancelled": one(f"SELECT pgtq.push('c', 'cancelled', as_of => '{T0}')"),
    }
    for queue in ("r", "d", "f", "t"):
        conn.execute(f"SELECT * FROM pgtq.pop('{queue}', 'old-worker', 1, '1 hour', '{T0}')")
    lease = "(SELECT lease FROM pgtq._job WHERE id = %s)"
    conn.execute(f"SELECT pgtq.complete(%s, {lease}, '\"ok\"', '{T0}')", [ids["done"], ids["done"]])
    conn.execute(f"SELECT pgtq.fail(%s, {lease}, 'boom', as_of => '{T0}')", [ids["failed"], ids["failed"]])
    conn.execute(
        f"SELECT pgtq.fail(%s, {lease}, 'again', as_of => '{T0}')", [ids["retrying"], ids["retrying"]]
    )
    conn.execute(f"SELECT pgtq.cancel(%s, '{T0}')", [ids["cancelled"]])
    return ids


# Columns added to pgtq._job since the oldest release, and what an upgrade
# gives the jobs it finds: no key, backoff()'s defaults, no cancel request,
# no waiters, no known pusher (so only pgtq.jobs shows their outcome, not
# outcomes()) (0.2.0); no lock key (0.3.0).
ADDED_COLUMNS = {
    "job_key": None,
    "backoff_base": None,
    "backoff_cap": None,
    "cancel_requested_at": None,
    "waiters": 0,
    "pushed_by": None,
    "lock_key": None,
}


def all_rows(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return [row[0] for row in conn.execute("SELECT to_jsonb(j) FROM pgtq._job AS j ORDER BY j.id")]


@pytest.mark.parametrize(
    "install_base",
    [install_base_extension, install_base_alembic],
    ids=["extension", "alembic"],
)
def test_an_upgrade_keeps_every_job_and_its_rules(
    empty_dsn: str, install_base: Callable[[str], None]
) -> None:
    install_base(empty_dsn)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        assert scalar(conn, "SELECT pgtq.version()") == BASE
        ids = jobs_in_every_state(conn)
        states = dict(conn.execute("SELECT task, state::text FROM pgtq._job").fetchall())
        assert states == {
            "ready": "ready",
            "scheduled": "scheduled",
            "running": "running",
            "done": "done",
            "failed": "failed",
            "retrying": "scheduled",
            "cancelled": "cancelled",
        }
        before = all_rows(conn)

    result = upgrade(empty_dsn)
    assert (result.before, result.after) == (BASE, CURRENT)

    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        after = all_rows(conn)
        assert [{key: row[key] for key in old} for row, old in zip(after, before, strict=True)] == before, (
            "the upgrade changed no job"
        )
        added = {key: value for key, value in ADDED_COLUMNS.items() if key not in before[0]}
        assert all({key: row[key] for key in added} == added for row in after), "new columns: their defaults"
        assert scalar(conn, "SELECT count(*) FROM pgtq.outcomes(%s)", [list(ids.values())]) == 0, (
            "jobs of an unknown pusher are read through pgtq.jobs only"
        )
        # The jobs go on under the new version: the running job's lease
        # still completes it, tick promotes the scheduled ones, pop takes
        # the ready one.
        lease = scalar(conn, "SELECT lease FROM pgtq._job WHERE id = %s", [ids["running"]])
        assert scalar(conn, "SELECT pgtq.complete(%s, %s, as_of => %s)", [ids["running"], lease, T0]) is True
        assert scalar(conn, "SELECT pgtq.tick(as_of => %s::timestamptz + interval '2 hours')", [T0]) == 2
        popped = conn.execute("SELECT id FROM pgtq.pop('q', 'new-worker', 10)").fetchall()
        assert sorted(row[0] for row in popped) == sorted([ids["ready"], ids["scheduled"]])
        assert scalar(conn, "SELECT pgtq.retry(%s)", [ids["failed"]]) is True


def test_upgrade_refuses_an_unknown_or_older_target(empty_dsn: str) -> None:
    upgrade(empty_dsn)
    with pytest.raises(pgtq.PgTqError, match=r"unknown pgtq schema version '9\.9\.9'"):
        upgrade(empty_dsn, "9.9.9")
    if BASE != CURRENT:
        with pytest.raises(pgtq.PgTqError, match=f"does not downgrade to {BASE}"):
            upgrade(empty_dsn, BASE)
