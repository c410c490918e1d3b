"""Client API: Prometheus metrics (the optional extra ``pgtq[metrics]``).

Two kinds of figures, on one registry:

* **queue-level**, read from SQL at each scrape (``pgtq.metrics()``, the
  same numbers any SQL client sees): ``pgtq_queue_jobs{queue,state}``
  (scheduled, ready, running), ``pgtq_queue_oldest_ready_age_seconds``,
  ``pgtq_queue_recent_completed_jobs{queue,task}``,
  ``pgtq_queue_recent_failed_jobs``, ``pgtq_queue_recent_lease_expiries``
  (in the history samples of the last ``period``, 5 minutes by default),
  ``pgtq_queue_workers{queue}``, ``pgtq_workers``,
  ``pgtq_history_age_seconds``, the pause and limits of the queues that
  have any (``pgtq_queue_paused``, ``pgtq_queue_max_running``,
  ``pgtq_queue_rate_limit``, ``pgtq_queue_rate_period_seconds``),
  ``pgtq_health_warning{check}`` (schema 0.14.0: 1 while that check of
  ``pgtq.health()`` warns, 0 while it is ok, no sample when it cannot
  tell or the role may not call it: pgtq_admin, pgtq_observer and from
  0.15.0 pgtq_worker may),
  and ``pgtq_database_up`` (0 when the query failed: the other
  queue-level figures are then left out);
* **worker-local**, counted by a worker as it writes outcomes
  (``WorkerMetrics``): ``pgtq_worker_jobs_completed_total{queue,task}``,
  ``pgtq_worker_jobs_failed_total{queue,task}`` (failed attempts, retried
  or final) and the histogram ``pgtq_worker_job_duration_seconds{queue,task}``.

``pgtq worker --metrics-port 9108`` serves both at ``/metrics``
(``--no-queue-metrics``: the worker-local ones alone). The
dashboard mounts ``asgi_app(database)``, which serves the queue-level
figures. Each scrape costs one ``pgtq.metrics()`` call: a pass over the
live jobs (their partial indexes) and over the period's history rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pgtq.database import Database
from pgtq.errors import PgTqError
from pgtq.task import HealthCheck, Metric

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry
    from prometheus_client.samples import Sample

    from pgtq._records import Outcome

MISSING_EXTRA = "Prometheus metrics need the extra pgtq[metrics]: pip install 'pgtq[metrics]'"


@dataclass(frozen=True)
class _Family:
    """How one metric of ``pgtq.metrics()`` is exposed."""

    name: str
    documentation: str
    labels: tuple[str, ...]


# SQL metric name -> Prometheus family (every one is a gauge).
FAMILIES = {
    "jobs": _Family("pgtq_queue_jobs", "Live jobs by queue and state, now.", ("queue", "state")),
    "oldest_ready_age_seconds": _Family(
        "pgtq_queue_oldest_ready_age_seconds", "How long the oldest ready job has been due.", ("queue",)
    ),
    "recent_completed": _Family(
        "pgtq_queue_recent_completed_jobs",
        "Jobs done in the history samples of the period.",
        ("queue", "task"),
    ),
    "recent_failed": _Family(
        "pgtq_queue_recent_failed_jobs",
        "Jobs failed for good in the history samples of the period.",
        ("queue", "task"),
    ),
    "recent_lease_expiries": _Family(
        "pgtq_queue_recent_lease_expiries",
        "Leases that ran out (jobs rescued by tick) in the history samples of the period.",
        ("queue", "task"),
    ),
    "workers": _Family("pgtq_queue_workers", "Live workers serving the queue.", ("queue",)),
    "workers_total": _Family("pgtq_workers", "Live workers.", ()),
    "history_age_seconds": _Family(
        "pgtq_history_age_seconds", "Seconds since the last history sample (over 60: nobody ticks).", ()
    ),
    "paused": _Family(
        "pgtq_queue_paused", "1 while the queue is paused, 0 for a limited queue that is not.", ("queue",)
    ),
    "max_running": _Family(
        "pgtq_queue_max_running", "At most this many of the queue's jobs run at once.", ("queue",)
    ),
    "rate_limit": _Family(
        "pgtq_queue_rate_limit", "At most this many of the queue's jobs start in any rate period.", ("queue",)
    ),
    "rate_period_seconds": _Family(
        "pgtq_queue_rate_period_seconds", "The window of the queue's rate limit.", ("queue",)
    ),
}


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as error:  # the optional extra is not installed
        raise PgTqError(MISSING_EXTRA) from error
    return prometheus_client


Source = Database | Callable[[], Iterable[Metric]]
HealthSource = Callable[[], Iterable[HealthCheck]]


def _reader(source: Source, period: timedelta) -> Callable[[], Iterable[Metric]]:
    """What a collector calls at each scrape: ``pgtq.metrics(period)`` of a
    Database, or a function that returns those rows (the dashboard's, on
    its read-only pool)."""
    if isinstance(source, Database):
        return lambda: source.metrics(period)
    return source


def _health_reader(source: Source, health: HealthSource | None) -> HealthSource:
    """What a collector calls for ``pgtq.health()``: ``health`` when given,
    a Database's health check (none before schema 0.14.0), else nothing."""
    if health is not None:
        return health
    if isinstance(source, Database):
        return lambda: (source.health() or []) if source.may_check_health() else []
    return list


class QueueCollector:
    """A Prometheus collector that reads ``pgtq.metrics()`` (and
    ``pgtq.health()``, when it may) at each scrape."""

    def __init__(
        self, source: Source, period: timedelta = timedelta(minutes=5), health: HealthSource | None = None
    ) -> None:
        self._read = _reader(source, period)
        self._read_health = _health_reader(source, health)
        self._lock = threading.Lock()  # one scrape at a time on a shared connection

    def describe(self) -> Iterable[Any]:
        """Nothing: registering the collector must not query the database."""
        return []

    def collect(self) -> Iterator[Any]:
        """The queue-level families, and ``pgtq_database_up``."""
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("pgtq_database_up", "1 when pgtq.metrics() answered, 0 when it failed.")
        try:
            with self._lock:
                rows = list(self._read())
        except PgTqError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        families = {
            sql_name: GaugeMetricFamily(family.name, family.documentation, labels=list(family.labels))
            for sql_name, family in FAMILIES.items()
        }
        for row in rows:
            family = FAMILIES.get(row.metric)
            if family is None:  # a metric of a newer schema: not exposed until mapped
                continue
            values = {"queue": row.queue, "task": row.task, "state": row.state}
            families[row.metric].add_metric([values[label] or "" for label in family.labels], row.value)
        yield from families.values()
        yield self._health_family(GaugeMetricFamily)

    def _health_family(self, gauge: Any) -> Any:
        """``pgtq_health_warning``: one sample per check that could tell.
        A role that may not call pgtq.health() (a worker's) gets none: the
        queue figures must not fail for it."""
        family = gauge(
            "pgtq_health_warning",
            "1 while this check of pgtq.health() warns (pgtq doctor says why), 0 while it is ok.",
            labels=["check"],
        )
        try:
            with self._lock:
                checks = list(self._read_health())
        except PgTqError:
            return family
        for check in checks:
            if check.ok or check.warns:
                family.add_metric([check.name], 1 if check.warns else 0)
        return family


class WorkerMetrics:
    """The worker-local counters and histogram, and (``queue_figures``)
    the queue-level collector, on one registry."""

    def __init__(
        self, database: Database, period: timedelta = timedelta(minutes=5), *, queue_figures: bool = True
    ) -> None:
        prometheus = _prometheus()
        self.registry: CollectorRegistry = prometheus.CollectorRegistry()
        labels = ("queue", "task")
        self.completed = prometheus.Counter(
            "pgtq_worker_jobs_completed",
            "Jobs this worker completed (the database took the outcome).",
            labels,
            registry=self.registry,
        )
        self.failed = prometheus.Counter(
            "pgtq_worker_jobs_failed",
            "Attempts that failed in this worker (retried or failed for good).",
            labels,
            registry=self.registry,
        )
        self.duration = prometheus.Histogram(
            "pgtq_worker_job_duration_seconds",
            "How long this worker's handlers ran.",
            labels,
            registry=self.registry,
        )
        if queue_figures:
            self.registry.register(QueueCollector(database, period))

    def record(self, outcome: Outcome, taken: bool) -> None:
        """Count one written outcome (``taken``: its lease still held)."""
        task = outcome.task
        self.duration.labels(task.queue, task.name).observe(outcome.duration)
        if outcome.kind == "done":
            if taken:
                self.completed.labels(task.queue, task.name).inc()
        else:
            self.failed.labels(task.queue, task.name).inc()

    @contextmanager
    def serve(self, port: int, host: str = "127.0.0.1") -> Iterator[None]:
        """Serve ``/metrics`` on ``host:port`` while inside the block."""
        server, thread = _prometheus().start_http_server(port, addr=host, registry=self.registry)
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def queue_registry(
    source: Source, period: timedelta = timedelta(minutes=5), health: HealthSource | None = None
) -> CollectorRegistry:
    """A registry with the queue-level figures of ``source`` only (a
    Database, or a function returning the rows of ``pgtq.metrics()``, with
    ``health`` returning those of ``pgtq.health()``)."""
    registry = _prometheus().CollectorRegistry()
    registry.register(QueueCollector(source, period, health))
    return registry


def asgi_app(database: Database, period: timedelta = timedelta(minutes=5)) -> Callable[..., Any]:
    """The ASGI app the dashboard mounts at ``/metrics``: the queue-level
    figures of ``database`` in Prometheus text format."""
    return _prometheus().make_asgi_app(registry=queue_registry(database, period))


def text(source: Source, period: timedelta = timedelta(minutes=5), health: HealthSource | None = None) -> str:
    """The queue-level figures in Prometheus text format, once."""
    return _prometheus().generate_latest(queue_registry(source, period, health)).decode()


def content_type() -> str:
    """The media type of ``text``'s output (prometheus_client's)."""
    return str(_prometheus().exposition.CONTENT_TYPE_LATEST)


def parse(exposition: str) -> Iterator[Sample]:
    """The samples of a Prometheus text exposition (prometheus_client's parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(exposition):
        yield from family.samples
