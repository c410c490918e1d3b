"""Helpers of the ready-mark tests (test_mark_floor, test_mark_reads): one
queue's ticks, pushes and mark, each tick its own transaction when the
connection is in autocommit, as a worker's is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True)
class MarkedQueue:
    """The queue a ready-mark test works on."""

    name: str

    def tick(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT pgtq.tick(%s)", (self.name,))

    def push_jobs(self, conn: psycopg.Connection[Any], count: int) -> None:
        conn.execute(
            "SELECT pgtq.push_many(%s, 't', array_fill('[]'::jsonb, ARRAY[%s]))",
            (self.name, count),
        )

    def mark(self, conn: psycopg.Connection[Any]) -> dict[str, Any]:
        """The queue's ready mark, as a dict of its columns."""
        cursor = conn.execute("SELECT * FROM pgtq._ready_mark WHERE queue = %s", (self.name,))
        row = cursor.fetchone()
        assert row is not None, "the queue has a mark"
        return dict(zip([column.name for column in cursor.description or []], row, strict=True))
