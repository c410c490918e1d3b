"""The levers, measured: proposed bulk functions (``bench/proposals.sql``,
installed in a scratch schema ``bench_exp``, never in ``pgtq``) against the
current API and the ceiling, in the same run and with the same clients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.context import Context
from bench.scenarios import enqueue, sqldrain

PROPOSALS = Path(__file__).resolve().parent.parent / "proposals.sql"


def run(ctx: Context) -> list[dict[str, Any]]:
    """push_many for bulk enqueue; complete_many for batch-100 drains."""
    ctx.execute(PROPOSALS.read_text())
    sizes = ctx.sizes
    return [
        enqueue.measure(ctx, "exp-push-many", 1, sizes.enqueue_bulk, sizes.bulk_per_call),
        sqldrain.measure(ctx, "exp-complete-many", 100, sizes.sql_drain_jobs_batch100),
    ]
