"""The overview page's figures, put together from what the SQL reports:
``pgtq.metrics()`` (live jobs by state, oldest ready age, what finished in
the last hour, live workers, the pause and limits of the queues that have
any), the failed jobs kept per queue, and the queues the history names.
Pure: no database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pgtq._inspection import HistoryPoint, Metric
from pgtq.dashboard._chart import Chart, depth_chart, throughput_chart
from pgtq.dashboard._format import duration

# pgtq.metrics() is asked for this period, so its recent_* figures are the last hour's.
PERIOD = timedelta(hours=1)


@dataclass
class QueueSummary:
    """One queue on the overview."""

    name: str
    scheduled: int = 0
    ready: int = 0
    running: int = 0
    failed_kept: int = 0  # failed jobs waiting for a retry or a purge
    oldest_ready_seconds: float = 0.0
    workers: int = 0
    completed_last_hour: int = 0
    failed_last_hour: int = 0
    lease_expiries_last_hour: int = 0
    paused: bool = False
    max_running: int | None = None  # None: no such limit
    rate_limit: int | None = None
    rate_period_seconds: float | None = None

    @property
    def limits(self) -> str:
        """Its limits in words: 'max 2 running', '20 per 1 s', both, or ''."""
        parts = []
        if self.max_running is not None:
            parts.append(f"max {self.max_running} running")
        if self.rate_limit is not None and self.rate_period_seconds is not None:
            parts.append(f"{self.rate_limit} per {duration(self.rate_period_seconds)}")
        return " · ".join(parts)


@dataclass(frozen=True)
class Overview:
    """The whole overview page."""

    queues: list[QueueSummary]
    workers_total: int
    history_age_seconds: float | None  # since the last history sample; None before the first
    depth: Chart
    throughput: Chart
    notes: list[str] = field(default_factory=list)


def summarize(
    metrics: Iterable[Metric],
    failed_kept: dict[str, int],
    history_queues: Iterable[str],
    history: Sequence[HistoryPoint],
    now: datetime,
) -> Overview:
    """The overview from the figures of ``pgtq.metrics(period => PERIOD)``,
    the failed jobs kept per queue, the queues the history names and the
    history samples of the last hour. Every queue that has live or failed
    jobs, is paused or limited, or appears in the kept history, gets a row,
    by name."""
    queues: dict[str, QueueSummary] = {}

    def queue(name: str) -> QueueSummary:
        return queues.setdefault(name, QueueSummary(name))

    workers_total = 0
    history_age: float | None = None
    for metric in metrics:
        value = metric.value
        if (
            metric.metric == "jobs"
            and metric.queue is not None
            and metric.state in ("scheduled", "ready", "running")
        ):
            setattr(queue(metric.queue), metric.state, int(value))
        elif metric.metric == "oldest_ready_age_seconds" and metric.queue is not None:
            queue(metric.queue).oldest_ready_seconds = value
        elif metric.metric == "recent_completed" and metric.queue is not None:
            queue(metric.queue).completed_last_hour += int(value)
        elif metric.metric == "recent_failed" and metric.queue is not None:
            queue(metric.queue).failed_last_hour += int(value)
        elif metric.metric == "recent_lease_expiries" and metric.queue is not None:
            queue(metric.queue).lease_expiries_last_hour += int(value)
        elif metric.metric == "workers" and metric.queue is not None:
            queue(metric.queue).workers = int(value)
        elif metric.metric == "paused" and metric.queue is not None:
            queue(metric.queue).paused = value == 1
        elif metric.metric == "max_running" and metric.queue is not None:
            queue(metric.queue).max_running = int(value)
        elif metric.metric == "rate_limit" and metric.queue is not None:
            queue(metric.queue).rate_limit = int(value)
        elif metric.metric == "rate_period_seconds" and metric.queue is not None:
            queue(metric.queue).rate_period_seconds = value
        elif metric.metric == "workers_total":
            workers_total = int(value)
        elif metric.metric == "history_age_seconds":
            history_age = value
    for name, count in failed_kept.items():
        queue(name).failed_kept = count
    for name in history_queues:
        queue(name)
    notes = []
    if history_age is None:
        notes.append(
            "No history sample yet: pgtq.tick (run by workers, the scheduler or pg_cron)"
            " samples once a minute."
        )
    elif history_age > 120:
        notes.append(
            f"The last history sample is {int(history_age // 60)} minutes old: is anything calling pgtq.tick?"
        )
    return Overview(
        [queues[name] for name in sorted(queues)],
        workers_total,
        history_age,
        depth_chart(history, now, PERIOD),
        throughput_chart(history, now, PERIOD),
        notes,
    )
