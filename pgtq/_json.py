"""Client API: JSON encoding of task arguments and results."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def encode_arguments(task: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str, str]:
    """Encode a task's arguments as a JSON array and a JSON object.

    Raises TypeError naming the task when they are not JSON-serialisable,
    before anything is sent to the database.
    """
    bad_keys = [key for key in kwargs if not isinstance(key, str)]
    if bad_keys:
        raise TypeError(f"keyword argument names of task {task!r} must be strings, got {bad_keys!r}")
    try:
        return (
            json.dumps(list(args), allow_nan=False),
            json.dumps(dict(kwargs), allow_nan=False),
        )
    except (TypeError, ValueError) as error:
        raise TypeError(f"arguments of task {task!r} are not JSON-serialisable: {error}") from error


def encode_result(result: Any) -> str | None:
    """Encode a handler's return value; values JSON cannot hold are stored
    as their ``str()``."""
    if result is None:
        return None
    return json.dumps(result, default=str)
