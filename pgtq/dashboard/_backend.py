"""What the dashboard asks of the database, through the gateway: reads
on a pool of connections as the observer role, actions on a second pool
as the admin role (only when actions are on).

Each method is one page's or one action's calls; the queue rules stay in
SQL (``pgtq.retry``, ``pgtq.cancel``, ``pgtq.delete_job``,
``pgtq.retry_failed``, ``pgtq.pause``, ``pgtq.resume``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from pgtq._db import gateway, queries
from pgtq._inspection import (
    JobDetail,
    JobFilter,
    JobPage,
    Metric,
    PageKey,
    Schedule,
    SchemaFeatures,
    WorkerInfo,
)
from pgtq.dashboard._config import POOL_WAIT, DashboardConfig
from pgtq.dashboard._overview import PERIOD, Overview, summarize
from pgtq.database import check_schema
from pgtq.errors import PermissionDeniedError, PgTqError
from pgtq.task import HealthCheck

logger = logging.getLogger("pgtq.dashboard")

T = TypeVar("T")
P = ParamSpec("P")


class ActionsDisabledError(RuntimeError):
    """An action was asked of a dashboard that has none (read-only, or no admin DSN)."""


def _inspect(dsn: str) -> tuple[SchemaFeatures, str, bool, bool, bool]:
    """Check the schema where ``dsn`` points; return its features and the
    user's name and rights (reads the jobs, retries them, calls pgtq.health)."""
    conn = gateway.connect(dsn)
    try:
        check_schema(conn)
        features = gateway.schema_features(conn)
        rights = gateway.role_rights(conn)
        checks_health = gateway.health_allowed(conn)
    finally:
        conn.close()
    return features, rights.user, rights.reads_jobs, rights.retries_jobs, checks_health


class Backend:
    """The dashboard's two pools and the calls it makes on them."""

    def __init__(self, config: DashboardConfig) -> None:
        """Check both databases and roles, then open the pools. Raises a
        ``PgTqError`` naming the problem: unreachable, no or another schema
        version, a reading role that may not read the jobs, an admin role
        that may not retry them."""
        self.features, self.reader_user, reads, writes, self.has_health = _inspect(config.dsn)
        if not reads:
            raise PermissionDeniedError(
                f"the dashboard's user {self.reader_user!r} may not read pgtq.jobs:"
                f" grant it pgtq_observer (GRANT pgtq_observer TO {self.reader_user})"
            )
        if writes:
            logger.warning(
                "the dashboard reads as %r, who may also change jobs: read with a login role granted"
                " pgtq_observer only, and give the actions their own --admin-dsn",
                self.reader_user,
            )
        self.admin_user: str | None = None
        if config.actions_enabled and config.admin_dsn is not None:
            _features, self.admin_user, _reads, may_act, _checks = _inspect(config.admin_dsn)
            if not may_act:
                raise PermissionDeniedError(
                    f"the dashboard's admin user {self.admin_user!r} may not retry jobs:"
                    f" grant it pgtq_admin (GRANT pgtq_admin TO {self.admin_user})"
                )
        self._reader = gateway.Pool(
            config.dsn,
            size=config.pool_size,
            name="pgtq-dashboard-read",
            read_only=True,
            statement_timeout=config.read_timeout,
            wait_timeout=POOL_WAIT,
        )
        self._admin = (
            gateway.Pool(
                config.admin_dsn,
                size=config.admin_pool_size,
                name="pgtq-dashboard-admin",
                statement_timeout=config.action_timeout,
                wait_timeout=POOL_WAIT,
            )
            if self.admin_user is not None and config.admin_dsn is not None
            else None
        )
        self._reader.open()
        if self._admin is not None:
            self._admin.open()

    def close(self) -> None:
        """Close both pools."""
        self._reader.close()
        if self._admin is not None:
            self._admin.close()

    # -- what the installed schema offers ------------------------------------

    @property
    def extra_job_columns(self) -> list[str]:
        """The optional columns of pgtq.jobs (job keys, cancel requests) this schema has."""
        return [name for name in queries.OPTIONAL_JOB_COLUMNS if name in self.features.job_columns]

    @property
    def cancels_running_jobs(self) -> bool:
        """Whether ``pgtq.cancel`` can ask a running job to stop (its cancel
        request shows in ``pgtq.jobs.cancel_requested_at``)."""
        return "cancel_requested_at" in self.features.job_columns

    @property
    def has_pause(self) -> bool:
        """Whether the schema has pause, resume and limits (schema 0.3.0)."""
        return {"pause", "resume", "configure_queue"} <= self.features.functions

    # -- reads -----------------------------------------------------------------

    def _read(self, function: Callable[Concatenate[gateway.Connection, P], T], *args: Any) -> T:
        return self._reader.call(function, *args)

    def overview(self) -> Overview:
        """The overview's queues, figures and charts."""
        return summarize(
            self._read(gateway.metrics, PERIOD),
            self._read(gateway.failed_by_queue),
            self._read(gateway.history_queues),
            self._read(gateway.history, PERIOD),
            datetime.now(UTC),
        )

    def health(self) -> list[HealthCheck]:
        """Every check of ``pgtq.health()`` (its default thresholds, as
        pgtq doctor's); none before schema 0.14.0, or when the reading role
        may not call it."""
        if not self.has_health:
            return []
        return self._read(gateway.health, None, None)

    def warnings(self) -> list[HealthCheck]:
        """The checks of ``pgtq.health()`` that warn. The overview must show
        even when the check cannot run (a statement timeout, a right taken
        back since the start): then one warning says so."""
        try:
            checks = self.health()
        except PgTqError as error:
            logger.warning("pgtq.health() failed: %s", error)
            return [HealthCheck("health", "warning", f"pgtq.health() failed: {error}")]
        return [check for check in checks if check.warns]

    def metrics(self) -> list[Metric]:
        """``pgtq.metrics()`` with its default period, for /metrics."""
        return self._read(gateway.metrics, PERIOD / 12)

    def jobs(self, where: JobFilter, after: PageKey | None, limit: int) -> JobPage:
        """One page of a job list."""
        return self._read(gateway.job_page, where, after, limit)

    def job(self, job_id: int) -> JobDetail | None:
        """One job, with the optional columns this schema has."""
        return self._read(gateway.job_detail, job_id, self.extra_job_columns)

    def failed_count(self, queue: str | None, task: str | None) -> int:
        """How many failed jobs a bulk retry of ``queue`` and ``task`` would touch."""
        return self._read(gateway.failed_count, queue, task)

    def schedules(self) -> list[Schedule]:
        return self._read(gateway.schedules)

    def workers(self) -> list[WorkerInfo]:
        return self._read(gateway.workers)

    # -- actions -----------------------------------------------------------------

    def _act(self, function: Callable[Concatenate[gateway.Connection, P], T], *args: Any) -> T:
        if self._admin is None:
            raise ActionsDisabledError("this dashboard has no actions (read-only, or no --admin-dsn)")
        return self._admin.call(function, *args)

    def retry(self, job_id: int) -> bool:
        return self._act(gateway.retry, job_id)

    def cancel(self, job_id: int) -> bool:
        return self._act(gateway.cancel, job_id)

    def delete(self, job_id: int) -> bool:
        return self._act(gateway.delete_job, job_id)

    def retry_failed(self, queue: str | None, task: str | None) -> int:
        return self._act(gateway.retry_failed, queue, task)

    def pause(self, queue: str) -> bool:
        return self._act(gateway.pause, queue)

    def resume(self, queue: str) -> bool:
        return self._act(gateway.resume, queue)
