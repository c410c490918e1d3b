"""Small statistics helpers: percentiles, rates, ratios."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) by linear interpolation; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of latencies given in seconds, in milliseconds."""
    ms = [value * 1000.0 for value in seconds]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3) if ms else math.nan,
        "n": len(ms),
    }


def rate(count: int, seconds: float) -> float:
    """Jobs per second, rounded; 0 for an empty interval."""
    return round(count / seconds, 1) if seconds > 0 else 0.0


def span_rate(times: Sequence[float]) -> float:
    """Throughput from sorted event times: events after the first per second
    between the first and the last event."""
    if len(times) < 2:
        return 0.0
    return rate(len(times) - 1, times[-1] - times[0])


def ratio(value: float | None, ceiling: float | None) -> float | None:
    """value / ceiling, rounded, or None when either is missing."""
    if not value or not ceiling:
        return None
    return round(value / ceiling, 3)
