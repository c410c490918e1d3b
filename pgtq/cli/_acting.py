"""Commands that act on jobs: ``retry``, ``cancel``, ``delete``, ``purge``."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from pgtq.cli._common import (
    EXIT_ERROR,
    EXIT_OK,
    FINISHED_STATES,
    NothingToDo,
    UsageError,
    _database,
    _job_or_nothing,
    _print_json,
    cli,
    dsn_option,
    json_option,
    parse_duration,
)
from pgtq.database import Database


@cli.command(help="Run a failed or cancelled job again (ID), or every failed job with --failed.")
@click.argument("job_id", type=int, metavar="[ID]", required=False)
@click.option(
    "--failed",
    is_flag=True,
    help="retry every failed job (of --queue, --task); one whose job key a pending job holds stays failed",
)
@click.option("--queue", help="with --failed: only this queue")
@click.option("--task", help="with --failed: only this task")
@dsn_option
@json_option
def retry(
    job_id: int | None, failed: bool, queue: str | None, task: str | None, dsn: str | None, as_json: bool
) -> int:
    if (job_id is None) == (not failed):
        raise UsageError("give a job ID or --failed, not both and not neither")
    if job_id is not None and (queue or task):
        raise UsageError("--queue and --task go with --failed")
    with _database(dsn) as database:
        if failed:
            count = database.retry_failed(queue, task)
            if as_json:
                _print_json({"retried": count})
            else:
                click.echo(f"retried {count} failed job{'s' * (count != 1)}")
            return EXIT_OK
        assert job_id is not None
        if not database.retry(job_id):
            found = _job_or_nothing(database, job_id)
            raise NothingToDo(f"job {job_id} is {found.state}: only failed or cancelled jobs are retried")
    if as_json:
        _print_json({"retried": 1, "id": job_id})
    else:
        click.echo(f"job {job_id} is ready again")
    return EXIT_OK


def _act_on_one(
    job_id: int, dsn: str | None, as_json: bool, act: Callable[[Database, int], bool], verb: str, rule: str
) -> int:
    with _database(dsn) as database:
        if not act(database, job_id):
            found = _job_or_nothing(database, job_id)
            raise NothingToDo(f"job {job_id} is {found.state}: {rule}")
    if as_json:
        _print_json({verb: 1, "id": job_id})
    else:
        click.echo(f"job {job_id} {verb}")
    return EXIT_OK


@cli.command(
    help="Cancel a job that has not started (scheduled or ready); ask a running one to stop (it ends "
    "cancelled when its worker's handler stops)."
)
@click.argument("job_id", type=int, metavar="ID")
@dsn_option
@json_option
def cancel(job_id: int, dsn: str | None, as_json: bool) -> int:
    with _database(dsn) as database:
        asked = database.cancel(job_id)
        found = _job_or_nothing(database, job_id)
    if not asked:
        raise NothingToDo(f"job {job_id} is {found.state}: a finished job cannot be cancelled")
    if as_json:
        _print_json({"cancelled": 1, "id": job_id, "state": found.state})
    elif found.state == "running":
        click.echo(f"job {job_id} is running: asked to stop (it ends cancelled when its worker stops it)")
    else:
        click.echo(f"job {job_id} {found.state}")
    return EXIT_OK


@cli.command(help="Delete one finished job (done, failed or cancelled).")
@click.argument("job_id", type=int, metavar="ID")
@dsn_option
@json_option
def delete(job_id: int, dsn: str | None, as_json: bool) -> int:
    return _act_on_one(
        job_id,
        dsn,
        as_json,
        Database.delete_job,
        "deleted",
        "only finished jobs are deleted (cancel it first)",
    )


@cli.command(help="Delete finished jobs of the given states older than --older-than, in short batches.")
@click.option(
    "--state",
    "states",
    type=click.Choice(FINISHED_STATES),
    multiple=True,
    required=True,
    help="done, failed or cancelled (repeat for several)",
)
@click.option("--older-than", required=True, help="e.g. 7d, 12h, 30m")
@click.option("--queue", help="only this queue")
@click.option("--batch", type=click.IntRange(1, 1000000), default=10000, show_default=True)
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
@dsn_option
@json_option
def purge(
    states: tuple[str, ...],
    older_than: str,
    queue: str | None,
    batch: int,
    yes: bool,
    dsn: str | None,
    as_json: bool,
) -> int:
    age = parse_duration(older_than, "--older-than")
    database = _database(dsn)
    what = f"every {'/'.join(states)} job of {f'queue {queue!r}' if queue else 'all queues'}"
    question = f"Delete {what} that finished more than {older_than} ago?"
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"{question} This needs a confirmation: pass --yes")
        if not click.confirm(question, default=False):
            click.echo("pgtq: nothing deleted", err=True)
            return EXIT_ERROR
    deleted = 0
    with database:
        while True:
            done = database.purge(age, states, queue=queue, batch=batch)
            deleted += done
            if done < batch:
                break
    if as_json:
        _print_json({"deleted": deleted})
    else:
        click.echo(f"deleted {deleted} job{'s' * (deleted != 1)}")
    return EXIT_OK
