"""Client API: registering periodic tasks (``@q.periodic``) in the database.

A periodic task is a row of ``pgtq.schedules``, written by ``pgtq.schedule``
(an upsert: the same definition again changes nothing, its next run
included) and fired by ``pgtq.tick``, whoever ticks. Workers register the
periodic tasks of the queues they serve when they start, so deploying
code with a new or changed ``@q.periodic`` is enough; any number of
workers may register at once.

Removing a ``@q.periodic`` from the code does not remove its schedule:
the database owns it, and ticks (a scheduler, pg_cron) fire it with no
worker running. (In Oban, River and Graphile Worker a schedule lives in the
running workers' configuration, so removing it stops it once no old
worker runs; pgtq's live in the database, like Oban Pro's DynamicCron in
its default, manual mode, and ``pgtq unschedule NAME`` removes one.) A
worker therefore says at start which schedules of its queues its code does
not declare: a warning when it has no handler for their task (their jobs
would fail with UnknownTaskError), an info line otherwise (a schedule made
in SQL on purpose looks the same).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pgtq._db import gateway
from pgtq._inspection import Schedule
from pgtq.errors import InvalidJobError, PermissionDeniedError
from pgtq.task import PeriodicTask

if TYPE_CHECKING:
    import psycopg

    from pgtq.queue import PgTq

logger = logging.getLogger("pgtq.periodic")


def register(conn: psycopg.Connection[Any], periodic: Sequence[PeriodicTask]) -> list[Schedule]:
    """``pgtq.schedule`` of each periodic task, all in one transaction (all
    or none); the schedules. A definition the database refuses (a bad cron
    expression or time zone) raises ``InvalidJobError`` naming the schedule."""
    if not periodic:
        return []
    try:
        return gateway.schedule_all(conn, periodic)
    except InvalidJobError as error:
        culprit = next((task for task in periodic if gateway.schedule_refused(conn, task)), None)
        if culprit is None:
            raise
        raise InvalidJobError(
            f"periodic task {culprit.name!r} (task {culprit.task!r} of queue {culprit.queue!r}, "
            f"cron {culprit.cron!r}, timezone {culprit.timezone!r}) was refused: {error}",
            error.sqlstate,
        ) from error


def undeclared(schedules: Sequence[Schedule], queues: Sequence[PgTq]) -> list[tuple[Schedule, bool]]:
    """The schedules that enqueue into one of ``queues`` but that none of
    their ``@periodic`` declares, each with whether the queue object has a
    handler for its task."""
    by_name = {queue.queue: queue for queue in queues}
    declared = {name for queue in queues for name in queue.periodic_tasks}
    return [
        (schedule, schedule.task in by_name[schedule.queue].handlers)
        for schedule in schedules
        if schedule.queue in by_name and schedule.name not in declared
    ]


def register_for_worker(conn: psycopg.Connection[Any], queues: Sequence[PgTq]) -> None:
    """What a worker does at start on each server: register the periodic
    tasks of the queues it serves there, and say which schedules of those
    queues its code does not declare (see the module's docstring)."""
    periodic = [task for queue in queues for task in queue.periodic_tasks.values()]
    for schedule in register(conn, periodic):
        logger.info(
            "periodic task %r: %s (%s) -> %s.%s, next run %s",
            schedule.name,
            schedule.cron,
            schedule.timezone,
            schedule.queue,
            schedule.task,
            schedule.next_run_at,
        )
    try:
        schedules = gateway.schedules(conn)
    except PermissionDeniedError:  # a role without pgtq_worker's read of pgtq.schedules
        return
    for schedule, handled in undeclared(schedules, queues):
        if handled:
            logger.info(
                "schedule %r (%s -> %s.%s) is not declared by any @periodic of this worker; it keeps "
                "running. If its decorator was removed, remove it: pgtq unschedule %r",
                schedule.name,
                schedule.cron,
                schedule.queue,
                schedule.task,
                schedule.name,
            )
        else:
            logger.warning(
                "schedule %r (%s) enqueues task %r into queue %r, which has no handler in this worker: "
                "its jobs will fail with UnknownTaskError. If its @periodic and handler were removed, "
                "remove it: pgtq unschedule %r",
                schedule.name,
                schedule.cron,
                schedule.task,
                schedule.queue,
                schedule.name,
            )
