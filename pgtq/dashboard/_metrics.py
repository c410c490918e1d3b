"""``/metrics`` of the dashboard: the figures of ``pgtq.metrics()`` in the
Prometheus text format (``prometheus_client``), read on each scrape.

Each metric of ``pgtq.metrics()`` becomes the gauge ``pgtq_<metric>``
with the labels its rows carry (queue, task, state), so a plain SQL
exporter and this endpoint show the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from pgtq._inspection import Metric as PgtqMetric

__all__ = ["CONTENT_TYPE_LATEST", "exposition"]

HELP = {
    "jobs": "Live jobs of a queue by state (scheduled, ready, running).",
    "oldest_ready_age_seconds": "How long the oldest ready job of a queue has been due.",
    "recent_completed": "Jobs done in the last 5 minutes of history samples, by queue and task.",
    "recent_failed": "Jobs failed for good in the last 5 minutes of history samples, by queue and task.",
    "recent_lease_expiries": "Leases expired in the last 5 minutes of history samples, by queue and task.",
    "workers": "Live workers serving a queue.",
    "workers_total": "Live workers.",
    "history_age_seconds": "Seconds since the last history sample (over 60: nothing ticks).",
}
LABELS = ("queue", "task", "state")


class _PgtqCollector(Collector):
    def __init__(self, read: Callable[[], Iterable[PgtqMetric]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        rows: dict[str, list[PgtqMetric]] = {}
        for row in self.read():
            rows.setdefault(row.metric, []).append(row)
        for name, members in sorted(rows.items()):
            labels = [label for label in LABELS if any(getattr(row, label) is not None for row in members)]
            family = GaugeMetricFamily(
                f"pgtq_{name}", HELP.get(name, f"pgtq.metrics(): {name}"), labels=labels
            )
            for row in members:
                family.add_metric([getattr(row, label) or "" for label in labels], row.value)
            yield family


def exposition(read: Callable[[], Iterable[PgtqMetric]]) -> bytes:
    """The Prometheus text of the figures ``read()`` returns now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_PgtqCollector(read))
    return generate_latest(registry)
