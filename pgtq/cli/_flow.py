"""Flow control: ``pause``, ``resume``, ``configure-queue``, ``queues``."""

from __future__ import annotations

from dataclasses import asdict

import click
from rich.table import Table

from pgtq.cli._common import (
    EXIT_OK,
    NothingToDo,
    Unavailable,
    UsageError,
    _database,
    _flow_text,
    _limit_record,
    _out,
    _print_json,
    _seconds,
    cli,
    dsn_option,
    json_option,
    parse_duration,
)
from pgtq.database import Database
from pgtq.task import QueueInfo


def _flow(database: Database) -> list[QueueInfo]:
    """Every known queue's pause and limits; exit 4 on a schema without them."""
    found = database.queues()
    if found is None:
        raise Unavailable(
            f"this database's pgtq schema ({database.installed_version()}) has no pause and limits: they "
            "arrive with schema 0.3.0 (pgtq migrate)"
        )
    return found


def _pause_or_resume(queue: str, dsn: str | None, as_json: bool, pausing: bool) -> int:
    with _database(dsn) as database:
        _flow(database)
        changed = database.pause(queue) if pausing else database.resume(queue)
    if not changed:
        raise NothingToDo(f"queue {queue!r} is {'paused already' if pausing else 'not paused'}")
    if as_json:
        _print_json({"queue": queue, "paused": pausing})
    else:
        click.echo(f"queue {queue} {'paused' if pausing else 'resumed'}")
    return EXIT_OK


@cli.command(
    help="Pause QUEUE: workers take none of its jobs until `pgtq resume`; pushes still enqueue and "
    "running jobs finish. Exit 3 if it was paused already."
)
@click.argument("queue")
@dsn_option
@json_option
def pause(queue: str, dsn: str | None, as_json: bool) -> int:
    return _pause_or_resume(queue, dsn, as_json, pausing=True)


@cli.command(help="Resume a paused QUEUE: workers take its jobs again. Exit 3 if it was not paused.")
@click.argument("queue")
@dsn_option
@json_option
def resume(queue: str, dsn: str | None, as_json: bool) -> int:
    return _pause_or_resume(queue, dsn, as_json, pausing=False)


@cli.command(
    name="configure-queue",
    help="Set the limits of QUEUE to exactly those given (pgtq.configure_queue): --max-running N jobs at "
    "once, --rate-limit R starts in any --rate-period; a limit left out is lifted. Exit 3 if nothing "
    "changed.",
)
@click.argument("queue")
@click.option("--max-running", type=click.IntRange(1, 100000), metavar="N", help="at most N jobs run at once")
@click.option("--rate-limit", type=click.IntRange(1, 1000000), metavar="R", help="at most R jobs start ...")
@click.option("--rate-period", metavar="DURATION", help="... in any window of this length, e.g. 1s, 1m")
@dsn_option
@json_option
def configure_queue(
    queue: str,
    max_running: int | None,
    rate_limit: int | None,
    rate_period: str | None,
    dsn: str | None,
    as_json: bool,
) -> int:
    if (rate_limit is None) != (rate_period is None):
        raise UsageError("--rate-limit and --rate-period go together (at most R starts in any period)")
    period = parse_duration(rate_period, "--rate-period") if rate_period else None
    with _database(dsn) as database:
        _flow(database)
        changed = database.configure_queue(
            queue, max_running=max_running, rate_limit=rate_limit, rate_period=period
        )
    if not changed:
        raise NothingToDo(f"queue {queue!r} has these limits already")
    limits = {"max_running": max_running, "rate_limit": rate_limit, "rate_period_seconds": _seconds(period)}
    if as_json:
        _print_json({"queue": queue, "limit": limits})
    else:
        click.echo(f"queue {queue}: {_flow_text(False, limits)}")
    return EXIT_OK


@cli.command(
    help="Every known queue (paused or limited, or with live jobs): its pause, limits, what counts "
    "against them now, and its backlog (pgtq.queues)."
)
@dsn_option
@json_option
def queues(dsn: str | None, as_json: bool) -> int:
    with _database(dsn) as database:
        found = _flow(database)
    if as_json:
        _print_json([{**asdict(flow), "rate_period": _seconds(flow.rate_period)} for flow in found])
        return EXIT_OK
    if not found:
        click.echo("no queues")
        return EXIT_OK
    table = Table()
    for column in ("queue", "paused / limits", "running", "started in window", "ready", "scheduled"):
        table.add_column(column, justify="left" if column in ("queue", "paused / limits") else "right")
    for flow in found:
        table.add_row(
            flow.queue,
            _flow_text(flow.paused, _limit_record(flow)),
            str(flow.running) + (f"/{flow.max_running}" if flow.max_running is not None else ""),
            "-" if flow.rate_used is None else f"{flow.rate_used}/{flow.rate_limit}",
            str(flow.ready),
            str(flow.scheduled),
        )
    _out().print(table)
    return EXIT_OK
