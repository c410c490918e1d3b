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
    deep_drain_jobs: int = 100_000  # the deep-backlog drain: best settings, 2 processes
    sql_drain_jobs_batch1: int = 3_000
    sql_drain_jobs_batch100: int = 20_000
    # 1,000 per system (200 until 2026-12-06): a p99 is then the 10th-worst
    # wake-up, not the 2nd, so one stall of the machine no longer decides it.
    wakeup_jobs: int = 1_000
    wakeup_gap: float = 0.020
    sustained_seconds: float = 300.0
    # Long enough for the same held snapshot as pgtq's (snapshot_hold), with
    # 40 s after it to recover (until 2026-12-05: 120 s, and a 36 s hold).
    baseline_sustained_seconds: float = 200.0
    snapshot_seconds: float = 60.0
    sustained_load: float = 0.70
    max_offered_rate: float = 10_000.0
    offered_rate: float | None = None  # a fixed rate for both systems instead of a fraction
    # Autovacuum off for the job tables during the sustained runs: the
    # plans the workers make on the emptied table then stay for the whole
    # run (as in a deployment whose autovacuum is busy elsewhere), which
    # shows whether they hold up as the table grows (schema 0.29.0).
    sustained_autovacuum: bool = True
    prune_after_seconds: float = 30.0
    drain_timeout: float = 240.0
    # As many as a headline drain (3,000 until 2026-12-06: drains that short
    # chose c=50 or c=10, whose 20,000-job drains by 2 processes ran at 55%
    # and 71% of the ceiling, against 80% to 104% at c=1).
    tune_jobs: int = 20_000
    tune_concurrency: tuple[int, ...] = (1, 10, 50, 100)
    bloat_jobs: int = 1_000_000  # the bloat scenario (not in the default run)
    bloat_every: int = 100_000
    bloat_chunk: int = 10_000
    bloat_retention: float = 5.0
    bloat_naptime: int = 10


FULL = Sizes()

QUICK = Sizes(
    enqueue_single=400,
    enqueue_bulk=5_000,
    drain_jobs=1_000,
    drain_jobs_slow=500,
    deep_drain_jobs=3_000,
    sql_drain_jobs_batch1=300,
    sql_drain_jobs_batch100=5_000,
    wakeup_jobs=60,
    sustained_seconds=20.0,
    baseline_sustained_seconds=20.0,
    snapshot_seconds=6.0,
    prune_after_seconds=5.0,
    drain_timeout=90.0,
    tune_jobs=1_000,
    tune_concurrency=(),
    bloat_jobs=20_000,
    bloat_every=5_000,
    bloat_chunk=1_000,
    bloat_retention=1.0,
)


def snapshot_hold(sizes: Sizes) -> float:
    """How long the sustained scenario holds its snapshot, the same for every
    system (a longer hold leaves more dead rows behind, so the systems are
    only comparable at one length): ``snapshot_seconds``, and at most 30% of
    the shorter run, so the snapshot ends well before either run does."""
    return min(sizes.snapshot_seconds, 0.3 * min(sizes.sustained_seconds, sizes.baseline_sustained_seconds))


def sizes_for(
    quick: bool,
    sustained_seconds: float | None = None,
    bloat_jobs: int | None = None,
    bloat_naptime: int | None = None,
) -> Sizes:
    """The sizes of a run, with optional overrides from the command line."""
    sizes = QUICK if quick else FULL
    if bloat_jobs is not None:
        every = min(sizes.bloat_every, bloat_jobs)
        sizes = replace(
            sizes, bloat_jobs=bloat_jobs, bloat_every=every, bloat_chunk=min(sizes.bloat_chunk, every)
        )
    if bloat_naptime is not None:
        sizes = replace(sizes, bloat_naptime=bloat_naptime)
    if sustained_seconds is not None:
        sizes = replace(
            sizes,
            sustained_seconds=sustained_seconds,
            baseline_sustained_seconds=sustained_seconds * 2 / 3,
            snapshot_seconds=min(sizes.snapshot_seconds, sustained_seconds / 4),
        )
    return sizes
