"""What every command shares: the exit codes and the exceptions that map
to them, the options (``--dsn``, ``--json``), durations, output helpers,
and the ``cli`` group the command modules add their commands to.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import click
from rich.console import Console

from pgtq.database import Database
from pgtq.task import JobInfo, QueueInfo

logger = logging.getLogger("pgtq")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOTHING, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_LOOK = 5
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_ERROR: "operational error (database, rights, declined confirmation)",
    EXIT_USAGE: "usage error (bad option or value, missing DSN)",
    EXIT_NOTHING: "nothing to act on (unknown job, or its state does not allow the action; a queue paused or "
    "running already)",
    EXIT_UNAVAILABLE: "not available here (this schema, server or installation lacks the feature)",
    EXIT_LOOK: "pgtq doctor found something that needs a look",
    EXIT_INTERRUPTED: "interrupted",
}
LIVE_STATES = ("scheduled", "ready", "running")
FINISHED_STATES = ("done", "failed", "cancelled")
STATES = (*LIVE_STATES, *FINISHED_STATES)
F = TypeVar("F", bound=Callable[..., Any])


class UsageError(Exception):
    """A problem with what the user typed or pointed at (exit 2)."""


class NothingToDo(Exception):
    """The job is unknown, or its state does not allow the action (exit 3)."""


class Unavailable(Exception):
    """The feature is not available here (exit 4)."""


# -- shared options and helpers ----------------------------------------------------


def _dsn_or_env(dsn: str | None) -> str:
    dsn = dsn or os.environ.get("PGTQ_DSN")
    if not dsn:
        raise UsageError("no database given: pass --dsn (or a DSN argument) or set PGTQ_DSN")
    return dsn


def dsn_option(command: F) -> F:
    """``--dsn``, defaulting to $PGTQ_DSN."""
    return click.option("--dsn", metavar="DSN", help="database (default $PGTQ_DSN)")(command)


def json_option(command: F) -> F:
    """``--json``: machine-readable output on stdout."""
    return click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")(command)


def positional_dsn(command: F) -> F:
    """An optional DSN argument (the original CLI's form), beside --dsn."""
    return click.argument("positional_dsn", metavar="[DSN]", required=False)(command)


def several_dsns(command: F) -> F:
    """``--dsn`` repeatable: the databases of a command that works across
    servers (one per server), beside the DSN argument; default $PGTQ_DSN."""
    return click.option(
        "--dsn",
        "dsns",
        multiple=True,
        metavar="DSN",
        help="a database (default $PGTQ_DSN); repeat it for queues on several servers",
    )(command)


def _all_dsns(dsns: Sequence[str], positional: str | None) -> list[str]:
    """The DSN argument and each --dsn, once each, or else $PGTQ_DSN."""
    given = ([positional] if positional else []) + list(dsns)
    return list(dict.fromkeys(given)) or [_dsn_or_env(None)]


def _database(dsn: str | None, positional: str | None = None) -> Database:
    if dsn and positional and dsn != positional:
        raise UsageError("give the database once: a DSN argument or --dsn, not both")
    return Database(_dsn_or_env(dsn or positional))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, what: str) -> timedelta:
    """``90``, ``30s``, ``10m``, ``1h30m``, ``7d``, ``2w`` as a timedelta."""
    cleaned = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        return timedelta(seconds=float(cleaned))
    parts = _DURATION.findall(cleaned)
    if not parts or _DURATION.sub("", cleaned).strip():
        raise UsageError(f"{what} must be a duration such as 30s, 10m, 1h30m or 7d, got {text!r}")
    return timedelta(seconds=sum(float(amount) * _UNITS[unit] for amount, unit in parts))


def _out() -> Console:
    """Tables for people: as wide as the terminal, or 200 columns when the
    output goes to a pipe or a file (rich would assume 80 and cut names)."""
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, default=str, ensure_ascii=False))


# -- the group -------------------------------------------------------------------


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def _job_or_nothing(database: Database, job_id: int) -> JobInfo:
    job = database.job(job_id)
    if job is None:
        raise NothingToDo(f"no job {job_id}")
    return job


def _limit_record(flow: QueueInfo | None) -> dict[str, Any]:
    """A queue's limits for --json (None: no such limit)."""
    return {
        "max_running": flow.max_running if flow else None,
        "rate_limit": flow.rate_limit if flow else None,
        "rate_period_seconds": _seconds(flow.rate_period) if flow else None,
    }


def _duration_text(seconds: float) -> str:
    """A period as the CLI writes durations: ``1s``, ``500ms``, ``1m``, ``1h30m``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _flow_text(paused: bool | None, limit: dict[str, Any] | None) -> str:
    """A queue's pause and limits in a table cell: ``paused, max 2, 20/1s``,
    ``-`` for none, ``?`` on a schema without them."""
    if paused is None or limit is None:
        return "?"
    parts = ["paused"] if paused else []
    if limit["max_running"] is not None:
        parts.append(f"max {limit['max_running']}")
    if limit["rate_limit"] is not None:
        parts.append(f"{limit['rate_limit']}/{_duration_text(limit['rate_period_seconds'])}")
    return ", ".join(parts) or "-"


def _error(message: str) -> None:
    click.echo(f"pgtq: error: {' '.join(message.split())}", err=True)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="The database defaults to $PGTQ_DSN. Exit codes: "
    + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())
    + ".",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    default="INFO",
    show_default=True,
)
def cli(log_level: str) -> None:
    """pgtq: a PostgreSQL task queue whose rules live in SQL."""
    logging.basicConfig(
        level=getattr(logging, log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
