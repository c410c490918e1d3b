"""Client API: ticking from pg_cron (``pgtq cron install`` / ``remove``).

pg_cron runs SQL on a schedule inside the server, so scheduled jobs and
retries become ready on time with no worker or scheduler running. Its
shortest schedule is a minute before 1.5 (Debian 12 ships 1.4) and a
second from 1.5 on. So:

* pg_cron 1.5 and later: the job ``pgtq-tick`` runs ``SELECT pgtq.tick()``
  every N seconds (``'N seconds'``);
* pg_cron before 1.5: ``pgtq-tick`` runs ``CALL pgtq.tick_for(every => N s)``
  every minute: a procedure that ticks, commits and sleeps for just under
  a minute. pg_cron never starts a job while its previous run goes on (a
  late run waits for it), so runs do not overlap;
* an interval of 60 s is a plain ``* * * * *`` tick on any version.

Every run of a pg_cron job is logged in ``cron.job_run_details``, which
grows without bound (86,400 rows a day at one run a second); the job
``pgtq-tick-log-purge`` deletes pgtq-tick's rows older than an hour, at
minute 17 of every hour. ``cron.log_run = off`` (server setting) stops the
logging altogether. Job names are fixed, so installing again replaces the
jobs (``cron.schedule`` upserts by name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgtq._db import statements
from pgtq.database import Database
from pgtq.errors import PgTqError

TICK_JOB = "pgtq-tick"
PURGE_JOB = "pgtq-tick-log-purge"
PURGE_SCHEDULE = "17 * * * *"
SECONDS_SCHEDULES_FROM = (1, 5)  # pg_cron 1.5 brought schedules in seconds


class CronMissingError(PgTqError):
    """pg_cron is not installed in this database."""


@dataclass(frozen=True)
class CronJob:
    """A pg_cron job pgtq schedules: its name, schedule and command."""

    name: str
    schedule: str
    command: str


def plan(cron_version: str, every: int) -> list[CronJob]:
    """The pg_cron jobs that tick every ``every`` seconds (1 to 59, or 60)
    on pg_cron ``cron_version``, and purge their run log."""
    if not 1 <= every <= 60:
        raise ValueError(f"pg_cron can tick every 1 to 60 seconds, got {every}")
    if every == 60:
        tick = CronJob(TICK_JOB, "* * * * *", statements.CRON_TICK)
    elif _major_minor(cron_version) >= SECONDS_SCHEDULES_FROM:
        tick = CronJob(TICK_JOB, f"{every} seconds", statements.CRON_TICK)
    else:
        tick = CronJob(TICK_JOB, "* * * * *", statements.CRON_TICK_LOOP.format(seconds=int(every)))
    return [tick, CronJob(PURGE_JOB, PURGE_SCHEDULE, statements.CRON_PURGE_LOG)]


def _major_minor(version: str) -> tuple[int, ...]:
    """(1, 4) of pg_cron's '1.4-1' or '1.4.2'."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def installed_version(database: Database) -> str:
    """The pg_cron version of the database; raises ``CronMissingError``
    when pg_cron is not installed there."""
    version = database.cron_version()
    if version is None:
        raise CronMissingError(
            "pg_cron is not installed in this database: add pg_cron to shared_preload_libraries, "
            "set cron.database_name to this database, restart, and run CREATE EXTENSION pg_cron"
        )
    return version


def install(database: Database, every: int = 1) -> tuple[str, list[CronJob]]:
    """Schedule the pg_cron jobs of ``plan`` (replacing earlier ones of the
    same names); returns the pg_cron version and the jobs."""
    version = installed_version(database)
    jobs = plan(version, every)
    for job in jobs:
        database.cron_schedule(job.name, job.schedule, job.command)
    return version, jobs


def remove(database: Database) -> int:
    """Unschedule pgtq's pg_cron jobs; returns how many there were."""
    installed_version(database)
    return database.cron_unschedule([TICK_JOB, PURGE_JOB])
