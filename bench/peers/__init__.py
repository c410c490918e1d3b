"""The peers (Procrastinate, PgQueuer, RQ), run in their own virtualenv.

The harness calls ``bench/peers/driver.py`` with the peers' interpreter for
every step (install, enqueue, worker, timed pushes); see ``run``.
"""

from __future__ import annotations

from typing import Any


def run(ctx: Any) -> dict[str, Any]:
    """The enqueue, drain and wake-up scenarios for each requested peer."""
    from bench.peers.orchestrate import run_peers

    return run_peers(ctx)
