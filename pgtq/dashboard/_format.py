"""How the pages write times, durations and JSON (the templates' filters).
Pure: the current time is passed in."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def when(moment: datetime | None) -> str:
    """A time in UTC, to the second: '2026-12-02 14:03:22 UTC' ('' for None)."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    """A length of time in its two largest units: '42 s', '5 min 3 s', '2 h', '3 d 4 h'."""
    left = round(abs(seconds))
    if left < 60:
        return f"{left} s"
    parts: list[tuple[int, str]] = []
    for name, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        amount, left = divmod(left, size)
        if amount or parts:
            parts.append((amount, name))
        if len(parts) == 2:
            break
    return " ".join(f"{amount} {name}" for amount, name in parts if amount)


def relative(moment: datetime | None, now: datetime) -> str:
    """A time relative to ``now``: '5 min ago', 'in 12 s' ('' for None)."""
    if moment is None:
        return ""
    delta = (moment - now).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {duration(delta)}" if delta > 0 else f"{duration(delta)} ago"


def pretty_json(value: Any) -> str:
    """A JSON value, indented for reading (text stays as written, not escaped to ASCII)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
