"""How big each scenario is: the default (full) run and the ``--quick`` run."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Sizes:
    """Job counts and durations of one run."""

    enqueue_single: int = 4_000
    enqueue_bulk: int = 50_000
    bulk_per_call: int = 1_000
    drain_jobs: int = 20_000
    drain_jobs_slow: int = 4_000  # batch-1 and default-settings drains, and Procrastinate
    sql_drain_jobs_batch1: int = 3_000
    sql_drain_jobs_batch100: int = 20_000
    wakeup_jobs: int = 200
    wakeup_gap: float = 0.020
    sustained_seconds: float = 300.0
    baseline_sustained_seconds: float = 120.0
    snapshot_seconds: float = 60.0
    sustained_load: float = 0.70
    max_offered_rate: float = 10_000.0
    offered_rate: float | None = None  # a fixed rate for both systems instead of a fraction
    prune_after_seconds: float = 30.0
    drain_timeout: float = 240.0
    tune_jobs: int = 3_000
    tune_concurrency: tuple[int, ...] = (1, 10, 50, 100)


FULL = Sizes()

QUICK = Sizes(
    enqueue_single=400,
    enqueue_bulk=5_000,
    drain_jobs=1_000,
    drain_jobs_slow=500,
    sql_drain_jobs_batch1=300,
    sql_drain_jobs_batch100=5_000,
    wakeup_jobs=60,
    sustained_seconds=20.0,
    baseline_sustained_seconds=12.0,
    snapshot_seconds=6.0,
    prune_after_seconds=5.0,
    drain_timeout=90.0,
    tune_jobs=1_000,
    tune_concurrency=(),
)


def sizes_for(quick: bool, sustained_seconds: float | None = None) -> Sizes:
    """The sizes of a run, with an optional sustained duration override."""
    sizes = QUICK if quick else FULL
    if sustained_seconds is not None:
        sizes = replace(
            sizes,
            sustained_seconds=sustained_seconds,
            baseline_sustained_seconds=sustained_seconds / 2,
            snapshot_seconds=min(sizes.snapshot_seconds, sustained_seconds / 4),
        )
    return sizes
