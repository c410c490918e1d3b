"""Run the scenarios in order on one cluster and collect their results."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from bench.context import Context, log

Scenario = Callable[[Context], Any]


def run_scenarios(ctx: Context, scenarios: list[tuple[str, Scenario]]) -> dict[str, Any]:
    """Run each scenario; one that fails is reported as an error, not fatal."""
    for name, scenario in scenarios:
        started = time.monotonic()
        log(f"scenario {name}: start")
        try:
            ctx.results[name] = scenario(ctx)
        except Exception as error:  # the report says which scenario broke and why
            log(f"scenario {name} FAILED: {type(error).__name__}: {error}")
            ctx.results[name] = {
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(),
            }
        ctx.results.setdefault("timings", {})[name] = round(time.monotonic() - started, 1)
        log(f"scenario {name}: {ctx.results['timings'][name]} s")
    return ctx.results
