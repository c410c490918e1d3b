"""Commands that push: ``push``, ``push-file``."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from pgtq.cli._common import (
    EXIT_OK,
    F,
    UsageError,
    _dsn_or_env,
    _print_json,
    cli,
    dsn_option,
    json_option,
    parse_duration,
)
from pgtq.errors import InvalidJobError
from pgtq.queue import PgTq


def _json_value(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{what} is not JSON: {error}") from error


def _push_options(command: F) -> F:
    for option in reversed(
        [
            click.option("--in", "delay", metavar="DURATION", help="run after this long, e.g. 10m"),
            click.option("--priority", type=int, default=0, show_default=True),
            click.option("--max-attempts", type=int, default=25, show_default=True),
        ]
    ):
        command = option(command)
    return command


@cli.command(help="Push one job of TASK to QUEUE.")
@click.argument("queue")
@click.argument("task")
@click.option("--args", "args_json", default="[]", show_default=True, help="a JSON array")
@click.option("--kwargs", "kwargs_json", default="{}", show_default=True, help="a JSON object")
@_push_options
@dsn_option
@json_option
def push(
    queue: str,
    task: str,
    args_json: str,
    kwargs_json: str,
    delay: str | None,
    priority: int,
    max_attempts: int,
    dsn: str | None,
    as_json: bool,
) -> int:
    from pgtq.queue import PgTq

    args = _json_value(args_json, "--args")
    kwargs = _json_value(kwargs_json, "--kwargs")
    if not isinstance(args, list):
        raise UsageError(f"--args must be a JSON array, got {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise UsageError(f"--kwargs must be a JSON object, got {type(kwargs).__name__}")
    wait = parse_duration(delay, "--in") if delay else None
    with PgTq(queue, _dsn_or_env(dsn)) as q:
        job_id = q.push(task, args, kwargs, delay=wait, priority=priority, max_attempts=max_attempts)
    if as_json:
        _print_json({"id": job_id, "queue": queue, "task": task})
    else:
        click.echo(f"pushed job {job_id}")
    return EXIT_OK


def _read_lines(path: Path) -> Iterator[tuple[int, str, int]]:
    """(line number, text, bytes read so far) of the non-blank lines."""
    read = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            read += len(raw)
            text = raw.decode("utf-8", errors="strict").strip()
            if text:
                yield number, text, read


def _job_from_line(text: str, where: str) -> tuple[list[Any], dict[str, Any]]:
    """A line is a JSON array (the args) or an object with "args" and/or "kwargs"."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{where}: not JSON: {error}") from error
    if isinstance(value, list):
        return value, {}
    if isinstance(value, dict) and set(value) <= {"args", "kwargs"}:
        args, kwargs = value.get("args", []), value.get("kwargs", {})
        if isinstance(args, list) and isinstance(kwargs, dict):
            return args, kwargs
    raise UsageError(f'{where}: expected a JSON array (the args) or {{"args": [...], "kwargs": {{...}}}}')


@cli.command(
    name="push-file",
    help="Push one job of TASK per line of FILE (JSON lines: an args array, or an object with args and "
    "kwargs), one transaction per batch (pgtq.push_many). A bad line names its line number and pushes "
    "nothing of its batch; earlier batches stay pushed.",
)
@click.argument("queue")
@click.argument("task")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch-size", type=click.IntRange(1, 100000), default=1000, show_default=True)
@_push_options
@dsn_option
@json_option
def push_file(
    queue: str,
    task: str,
    file: Path,
    batch_size: int,
    delay: str | None,
    priority: int,
    max_attempts: int,
    dsn: str | None,
    as_json: bool,
) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from pgtq.queue import PgTq

    wait = parse_duration(delay, "--in") if delay else None
    size = file.stat().st_size
    pushed: list[int] = []
    batches = 0
    progress = Progress(
        TextColumn("pushing"),
        BarColumn(),
        DownloadColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    )

    def push_batch(q: PgTq, lines: list[tuple[int, list[Any], dict[str, Any]]]) -> None:
        nonlocal batches
        try:
            ids = q.push_many(
                task,
                [args for _, args, _ in lines],
                [kwargs for _, _, kwargs in lines],
                delay=wait,
                priority=priority,
                max_attempts=max_attempts,
            )
        except (InvalidJobError, TypeError, ValueError) as error:
            message = str(error)
            position = re.search(r"\bjob (\d+)\b", message)
            where = f"line {lines[int(position.group(1)) - 1][0]}" if position else "a line of this batch"
            raise UsageError(
                f"{file}: {where}: {message} (its batch was not pushed; {len(pushed)} jobs of earlier "
                "batches were)"
            ) from error
        pushed.extend(ids)
        batches += 1

    with PgTq(queue, _dsn_or_env(dsn)) as q, progress:
        bar = progress.add_task("push", total=size)
        batch: list[tuple[int, list[Any], dict[str, Any]]] = []
        for number, text, read in _read_lines(file):
            try:
                args, kwargs = _job_from_line(text, f"{file}: line {number}")
            except UsageError as error:
                raise UsageError(
                    f"{error} (its batch was not pushed; {len(pushed)} jobs of earlier batches were)"
                ) from error
            batch.append((number, args, kwargs))
            if len(batch) == batch_size:
                push_batch(q, batch)
                batch = []
            progress.update(bar, completed=read)
        if batch:
            push_batch(q, batch)
        progress.update(bar, completed=size)
    if as_json:
        _print_json(
            {
                "pushed": len(pushed),
                "batches": batches,
                "first_id": min(pushed, default=None),
                "last_id": max(pushed, default=None),
            }
        )
    elif pushed:
        click.echo(f"pushed {len(pushed)} jobs in {batches} batch(es), ids {min(pushed)}..{max(pushed)}")
    else:
        click.echo("pushed 0 jobs (the file has no lines)")
    return EXIT_OK
