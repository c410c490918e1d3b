"""Client API: the queue objects a ``MODULE:OBJECT`` target names.

The CLI loads the targets a user types; each process-pool child loads them
again itself. Both call ``load_queue`` from here, below the worker runtime
and the CLI.
"""

from __future__ import annotations

import importlib
import os
import sys

from pgtq.queue import PgTq


class TargetError(ValueError):
    """A target that does not name an importable PgTq (the CLI's exit code 2)."""


def load_queue(target: str) -> PgTq:
    """Import ``MODULE:OBJECT`` (from the working folder too) and return the
    PgTq it names."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise TargetError(f"expected MODULE:QUEUE_OBJECT (e.g. myapp.tasks:q), got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any import-time failure is the user's to see, briefly
        raise TargetError(f"cannot import module {module_name!r}: {type(error).__name__}: {error}") from error
    try:
        queue = getattr(module, attribute)
    except AttributeError as error:
        raise TargetError(f"module {module_name!r} has no attribute {attribute!r}") from error
    if not isinstance(queue, PgTq):
        raise TargetError(f"{target} is a {type(queue).__name__}, not a pgtq.PgTq")
    return queue
