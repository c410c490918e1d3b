"""Commands that look: ``jobs``, ``job``, ``workers``, ``schedules``,
``unschedule``, ``doctor``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click
from rich.table import Table

from pgtq._inspection import RuleBreak
from pgtq.cli._common import (
    EXIT_LOOK,
    EXIT_OK,
    STATES,
    NothingToDo,
    Unavailable,
    _database,
    _job_or_nothing,
    _out,
    _print_json,
    cli,
    dsn_option,
    json_option,
    parse_duration,
)
from pgtq.task import HealthCheck, JobInfo


def _job_record(job: JobInfo) -> dict[str, Any]:
    return asdict(job)


@cli.command(help="List jobs, newest first, filtered by queue, task and state.")
@dsn_option
@click.option("--queue", help="only this queue")
@click.option("--task", help="only this task")
@click.option("--state", type=click.Choice(STATES), help="only jobs in this state")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--before", type=int, metavar="ID", help="the next page: jobs with ids below ID")
@json_option
def jobs(
    dsn: str | None,
    queue: str | None,
    task: str | None,
    state: str | None,
    limit: int,
    before: int | None,
    as_json: bool,
) -> int:
    with _database(dsn) as database:
        found = database.jobs(queue=queue, task=task, state=state, before=before, limit=limit)
    if as_json:
        _print_json([_job_record(job) for job in found])
        return EXIT_OK
    if not found:
        click.echo("no jobs")
        return EXIT_OK
    table = Table()
    for column in ("id", "queue", "task", "state", "attempt", "run at", "finished", "last error"):
        table.add_column(column, overflow="fold")
    for job in found:
        error = (job.last_error or "").strip().splitlines()
        table.add_row(
            str(job.id),
            job.queue,
            job.task,
            job.state,
            f"{job.attempt}/{job.max_attempts}",
            f"{job.run_at:%Y-%m-%d %H:%M:%S}",
            f"{job.finished_at:%Y-%m-%d %H:%M:%S}" if job.finished_at else "-",
            error[-1][:60] if error else "",
        )
    _out().print(table)
    if len(found) == limit:
        click.echo(f"more: pgtq jobs --before {found[-1].id}")
    return EXIT_OK


@cli.command(
    help="One job in full: arguments, result, attempts, times, worker, last error with its traceback."
)
@click.argument("job_id", type=int, metavar="ID")
@dsn_option
@json_option
def job(job_id: int, dsn: str | None, as_json: bool) -> int:
    with _database(dsn) as database:
        found = _job_or_nothing(database, job_id)
    if as_json:
        _print_json(_job_record(found))
        return EXIT_OK
    table = Table(show_header=False, title=f"job {found.id}", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field, value in _job_record(found).items():
        if field in ("args", "kwargs", "result"):
            value = json.dumps(value, ensure_ascii=False)
        if field != "last_error":
            table.add_row(field, "-" if value is None else str(value))
    console = _out()
    console.print(table)
    if found.last_error:
        console.print("last error:", style="bold")
        console.print(found.last_error, markup=False)
    return EXIT_OK


@cli.command(help="Live workers: host, pid, queues, started and last seen.")
@dsn_option
@json_option
def workers(dsn: str | None, as_json: bool) -> int:
    with _database(dsn) as database:
        found = database.workers()
    if as_json:
        _print_json([asdict(w) for w in found])
        return EXIT_OK
    if not found:
        click.echo("no live workers")
        return EXIT_OK
    table = Table()
    for column in ("id", "host", "pid", "queues", "started", "last seen"):
        table.add_column(column)
    for w in found:
        table.add_row(
            w.id,
            w.host,
            str(w.pid),
            ", ".join(w.queues),
            f"{w.started_at:%Y-%m-%d %H:%M:%S}",
            f"{w.last_seen_at:%H:%M:%S}",
        )
    _out().print(table)
    return EXIT_OK


@cli.command(help="Periodic schedules (pgtq.schedules), when the schema has them.")
@dsn_option
@json_option
def schedules(dsn: str | None, as_json: bool) -> int:
    with _database(dsn) as database:
        found = database.schedules()
        installed = database.installed_version()
    if found is None:
        raise Unavailable(
            f"this database's pgtq schema ({installed}) has no schedules: they arrive with the cron "
            "schedules feature of pgtq 0.2.0 (the view pgtq.schedules)"
        )
    rows = [asdict(schedule) for schedule in found]
    if as_json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        click.echo("no schedules")
        return EXIT_OK
    columns = ["name", "cron", "timezone", "queue", "task", "next_run_at", "last_run_at", "last_error"]
    table = Table()
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("-" if row[c] is None else str(row[c]) for c in columns))
    _out().print(table)
    return EXIT_OK


@cli.command(
    help="Remove the periodic schedule NAME (pgtq.unschedule); the jobs it enqueued stay. Removing "
    "a @q.periodic from the code does not remove its schedule: this does."
)
@click.argument("name", metavar="NAME")
@dsn_option
@json_option
def unschedule(name: str, dsn: str | None, as_json: bool) -> int:
    with _database(dsn) as database:
        if database.schedules() is None:
            raise Unavailable("this database's pgtq schema has no schedules (they arrive with pgtq 0.2.0)")
        if not database.unschedule(name):
            raise NothingToDo(f"no schedule named {name!r} (pgtq schedules lists them)")
    if as_json:
        _print_json({"unscheduled": name})
    else:
        click.echo(f"schedule {name!r} removed")
    return EXIT_OK


@cli.command(
    help="Check what needs a look (pgtq.health): queues whose jobs nobody handles, an old transaction, "
    "a slot a standby left or a standby's old snapshot holding back the cleanup of dead rows, periodic "
    "schedules that failed, tables of pgtq with dead rows that no vacuum reaches. Exit 0 when all is well, "
    "5 when a check warns."
)
@click.option("--late", help="how long a due job may wait unhandled (default: pgtq.health's, 1m)")
@click.option(
    "--old-transaction",
    help="how old an open transaction, or the oldest snapshot a standby's feedback keeps, may grow "
    "(default: pgtq.health's, 5m)",
)
@click.option(
    "--rows",
    is_flag=True,
    help="also check every job row against the bookkeeping rules (pgtq.job_rule_breaks: reads the table)",
)
@dsn_option
@json_option
def doctor(late: str | None, old_transaction: str | None, rows: bool, dsn: str | None, as_json: bool) -> int:
    late_after = None if late is None else parse_duration(late, "--late")
    old_after = None if old_transaction is None else parse_duration(old_transaction, "--old-transaction")
    with _database(dsn) as database:
        found = database.health(late_after, old_after)
        if found is None:
            raise Unavailable(
                f"this database's pgtq schema ({database.installed_version()}) has no health check: it "
                "arrives with pgtq 0.14.0 (pgtq migrate installs it)"
            )
        if rows:
            found.append(_rows_check(database.rule_breaks(RULE_BREAKS_NAMED + 1)))
    if as_json:
        _print_json([{**asdict(check), "ok": check.ok} for check in found])
    else:
        table = Table()
        for column in ("check", "status", "detail"):
            table.add_column(column, overflow="fold")
        for check in found:
            table.add_row(check.name, check.status, check.detail)
        _out().print(table)
    return EXIT_LOOK if any(check.warns for check in found) else EXIT_OK


RULE_BREAKS_NAMED = 10


def _rows_check(breaks: list[RuleBreak]) -> HealthCheck:
    """``pgtq doctor --rows``: the rule breaks found, as one more check."""
    if not breaks:
        return HealthCheck("rows", "ok", "every job row keeps the bookkeeping rules (pgtq.job_rule_breaks)")
    named = "; ".join(
        f"job {b.id} ({b.state}, queue {b.queue!r}, task {b.task!r}) breaks: {b.rule}"
        for b in breaks[:RULE_BREAKS_NAMED]
    )
    more = "; and more (SELECT * FROM pgtq.job_rule_breaks)" if len(breaks) > RULE_BREAKS_NAMED else ""
    return HealthCheck("rows", "warning", named + more)
