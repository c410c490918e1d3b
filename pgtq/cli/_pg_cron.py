"""``cron install`` and ``cron remove``: tick from pg_cron, inside the server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click

from pgtq.cli._common import (
    EXIT_OK,
    Unavailable,
    UsageError,
    _database,
    _print_json,
    cli,
    dsn_option,
    json_option,
    parse_duration,
)
from pgtq.database import Database


@cli.group(help="Tick from pg_cron, inside the server (see docs/operations.md: pg_cron).")
def cron() -> None:
    """pg_cron jobs of pgtq."""


def _cron_call(dsn: str | None, act: Callable[[Database], Any]) -> Any:
    from pgtq.cron import CronMissingError

    try:
        with _database(dsn) as database:
            return act(database)
    except CronMissingError as error:
        raise Unavailable(str(error)) from error


@cron.command(
    name="install", help="Schedule pgtq.tick about every --every seconds (replaces an earlier install)."
)
@click.option("--every", default="1s", show_default=True, help="1s to 59s, or 60s (a plain tick a minute)")
@dsn_option
@json_option
def cron_install(every: str, dsn: str | None, as_json: bool) -> int:
    from pgtq import cron as pgtq_cron

    seconds = parse_duration(every, "--every").total_seconds()
    if seconds != int(seconds) or not 1 <= seconds <= 60:
        raise UsageError(f"--every must be a whole number of seconds from 1s to 60s, got {every!r}")
    version, scheduled = _cron_call(dsn, lambda database: pgtq_cron.install(database, int(seconds)))
    if as_json:
        _print_json({"pg_cron": version, "jobs": [asdict(job) for job in scheduled]})
        return EXIT_OK
    click.echo(f"pg_cron {version}: scheduled")
    for scheduled_job in scheduled:
        click.echo(f"  {scheduled_job.name}  {scheduled_job.schedule!r}  {scheduled_job.command}")
    return EXIT_OK


@cron.command(name="remove", help="Unschedule pgtq's pg_cron jobs.")
@dsn_option
@json_option
def cron_remove(dsn: str | None, as_json: bool) -> int:
    from pgtq import cron as pgtq_cron

    removed = _cron_call(dsn, pgtq_cron.remove)
    if as_json:
        _print_json({"removed": removed})
    else:
        click.echo(f"removed {removed} pg_cron job{'s' * (removed != 1)}")
    return EXIT_OK
