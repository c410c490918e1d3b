"""Small statistics helpers: percentiles, rates, ratios, rounds."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


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


def median_of_rounds(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median ``jobs_per_s``, with every round's rate
    beside it (``rounds``); correct only if every round was."""
    middle = sorted(rounds, key=lambda row: row["jobs_per_s"])[len(rounds) // 2]
    correct = dict(middle["correct"], ok=all(row["correct"]["ok"] for row in rounds))
    return dict(middle, rounds=[row["jobs_per_s"] for row in rounds], correct=correct)


def rounds_in_turns(
    kinds: Sequence[str], rounds: int, measure: Callable[[str], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """``measure`` each of ``kinds`` ``rounds`` times, the kinds in turn
    (every other round in the other order, so a slow spell of a shared
    machine falls on all of them alike); every round's row, by kind."""
    measured: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for round_number in range(rounds):
        for kind in kinds if round_number % 2 == 0 else list(reversed(kinds)):
            measured[kind].append(measure(kind))
    return measured


def in_rounds(
    kinds: Sequence[str], rounds: int, measure: Callable[[str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """``rounds_in_turns``, then one median row per kind
    (``median_of_rounds``), in the order of ``kinds``."""
    measured = rounds_in_turns(kinds, rounds, measure)
    return [median_of_rounds(measured[kind]) for kind in kinds]
