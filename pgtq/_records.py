"""Internal records, at the bottom beside ``pgtq.task``: what the worker
runtime hands to the SQL-engine layer, how one run of a job ended
(``Outcome``) and who a worker is (``WorkerIdentity``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pgtq.task import Task

OutcomeKind = Literal["done", "error"]


@dataclass(frozen=True)
class Outcome:
    """How one run of a job ended: ``done`` with a JSON result, or ``error``
    with the text ``pgtq.fail`` records."""

    task: Task
    kind: OutcomeKind
    duration: float
    result_json: str | None = None
    error: str | None = None
    summary: str = ""


@dataclass(frozen=True)
class WorkerIdentity:
    """What ``pgtq.register_worker`` records about a running worker."""

    worker: str
    host: str
    pid: int
    queues: tuple[str, ...]
