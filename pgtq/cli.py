"""The command line (the top layer): ``pgtq COMMAND``.

It parses what the user typed (click), hands it to the worker runtime
(``pgtq.worker``) or the client API (``Database``, ``PgTq``,
``pgtq.cron``), and shows the answer: tables for people (rich), ``--json``
for scripts. It holds no queue rules and sends no SQL of its own.

Exit codes (``EXIT_CODES``), the same for every command:

    0    done
    1    an operational error: the database is unreachable, a right is
         missing, a query failed, the user declined a confirmation
    2    a usage error: an unknown option, a bad value (also one the
         database refuses as invalid), a missing DSN, a target that does
         not name a queue
    3    nothing to act on: an unknown job id, or a job whose state does
         not allow the action, a queue paused already (pause) or not
         paused (resume): nothing was changed
    4    not available here: a feature this schema, this server or this
         installation does not have (pause, resume and limits before schema
         0.3.0, schedules before the cron feature, pg_cron not installed,
         the dashboard extra missing, the health check before 0.14.0)
    5    pgtq doctor: a check warns (the table says what it found)
    130  interrupted (Ctrl-C)

Errors are one line on stderr, ``pgtq: error: ...``, with no traceback.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from pgtq import __version__
from pgtq._db.conninfo import server_label
from pgtq._db.schema import schema_version
from pgtq._inspection import RuleBreak
from pgtq._targets import TargetError, load_queue
from pgtq.database import Database
from pgtq.errors import InvalidJobError, PgTqError
from pgtq.queue import PgTq
from pgtq.task import HealthCheck, JobInfo, Metric, QueueInfo

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


def _listen_dsns(
    targets: Sequence[str], queues: Sequence[PgTq], given: Sequence[str]
) -> str | dict[str, str] | None:
    """What the --listen-dsn options say: one DSN (the queues share a
    server), or MODULE:QUEUE_OBJECT=DSN for the server of that queue."""
    if not given:
        return None
    dsn_of = {target: queue.dsn for target, queue in zip(targets, queues, strict=True)}
    per_server: dict[str, str] = {}
    plain: list[str] = []
    for value in given:
        target, equals, listen = value.partition("=")
        if equals and target in dsn_of:
            per_server[dsn_of[target]] = listen
        else:
            plain.append(value)
    if plain and (per_server or len(plain) > 1):
        raise UsageError(
            "--listen-dsn takes one DSN, or MODULE:QUEUE_OBJECT=DSN once for the server of each such queue"
        )
    return plain[0] if plain else per_server


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


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 172800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _job_record(job: JobInfo) -> dict[str, Any]:
    return asdict(job)


# -- the group -------------------------------------------------------------------


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


# -- running: worker, scheduler, migrate ---------------------------------------------


@cli.command(
    help="Run handlers for the queues named MODULE:QUEUE_OBJECT until SIGINT/SIGTERM. The first signal "
    "stops gracefully (running jobs get --shutdown-timeout seconds, the rest are handed back); a second "
    "one stops at once."
)
@click.argument("targets", nargs=-1, required=True, metavar="MODULE:QUEUE_OBJECT...")
@click.option("--dsn", help="override the queue objects' DSN (every queue on that one database)")
@click.option(
    "--listen-dsn",
    "listen_dsns",
    multiple=True,
    metavar="[MODULE:QUEUE_OBJECT=]DSN",
    help="where the listener runs LISTEN (default: the queues' DSN); it needs a session: behind "
    "PgBouncer in transaction mode give a direct or session-mode DSN. Queues on several servers "
    "have a listener each: give MODULE:QUEUE_OBJECT=DSN for the server of that queue (repeatable)",
)
@click.option("--concurrency", "-c", type=int, default=1, show_default=True, help="jobs run at once")
@click.option(
    "--pool",
    type=click.Choice(["thread", "process"]),
    default="thread",
    show_default=True,
    help="threads for I/O-bound handlers, processes for CPU-bound ones",
)
@click.option(
    "--batch-size",
    type=int,
    help="jobs claimed per pop and held at most (default: adaptive, from --concurrency up to 100 ahead "
    "while handlers are quick; --batch-size equal to --concurrency holds none ahead)",
)
@click.option("--lease", type=float, default=30.0, show_default=True, help="lease length in seconds")
@click.option("--heartbeat-interval", type=float, help="seconds between lease renewals (lease/3)")
@click.option("--poll-interval", type=float, default=2.0, show_default=True, help="fallback poll, seconds")
@click.option(
    "--tick-interval", type=float, default=1.0, show_default=True, help="seconds between pgtq.tick calls"
)
@click.option(
    "--shutdown-timeout", type=float, default=30.0, show_default=True, help="grace period for running jobs"
)
@click.option(
    "--max-abandoned-threads",
    type=int,
    metavar="N",
    help="thread pool: at most N threads abandoned at their timeout (still running) get a fresh slot; "
    "past that the pool serves with fewer slots until one ends (default: --concurrency)",
)
@click.option(
    "--interrupt-timed-out-threads",
    is_flag=True,
    help="thread pool: also raise an exception in a thread abandoned at its timeout (best effort; it may "
    "land in the handler's finally block or its transaction)",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="serve Prometheus metrics at http://HOST:PORT/metrics (needs pgtq[metrics])",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="address of --metrics-port")
def worker(targets: tuple[str, ...], dsn: str | None, listen_dsns: tuple[str, ...], **options: Any) -> int:
    from pgtq.worker import main_loop

    queues = [load_queue(target) for target in targets]
    if dsn:
        for queue in queues:
            queue.dsn = dsn
    listen_dsn = _listen_dsns(targets, queues, listen_dsns)
    try:
        return main_loop(queues, target=",".join(targets), listen_dsn=listen_dsn, **options)
    except ValueError as error:
        raise UsageError(str(error)) from error


@cli.command(help="Call pgtq.tick in a loop: promote due jobs, rescue expired leases, sample the history.")
@click.argument("queue", metavar="QUEUE")
@positional_dsn
@several_dsns
@click.option("--interval", type=float, default=1.0, show_default=True, help="seconds between ticks")
def scheduler(queue: str, positional_dsn: str | None, dsns: tuple[str, ...], interval: float) -> int:
    from pgtq.worker import Scheduler, run_schedulers

    ticked = None if queue in ("*", "all") else queue
    runners = [Scheduler(dsn, ticked, interval=interval) for dsn in _all_dsns(dsns, positional_dsn)]

    def on_signal(signum: int, _frame: object) -> None:
        logger.info("received %s: stopping", signal.Signals(signum).name)
        for runner in runners:
            runner.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    run_schedulers(runners)
    return EXIT_OK


def _migrate(positional_dsn: str | None, dsn: str | None) -> int:
    from pgtq.migrate import upgrade

    result = upgrade(_database(dsn, positional_dsn).dsn)
    if result.before == result.after:
        click.echo(f"pgtq schema is up to date at {result.after} ({result.route} route)")
    else:
        click.echo(f"pgtq schema {result.before or 'not installed'} -> {result.after} ({result.route} route)")
    return EXIT_OK


for _name in ("migrate", "install"):
    cli.command(name=_name, help="Install or upgrade the pgtq schema (idempotent).")(
        dsn_option(positional_dsn(_migrate))
    )


@cli.command(help="Print the package and schema versions.")
def version() -> int:
    click.echo(f"pgtq {__version__} (SQL schema {schema_version()})")
    return EXIT_OK


# -- looking: stats, jobs, job, workers, schedules -----------------------------------


def queue_overview(database: Database, queue: str | None, period: timedelta) -> dict[str, Any]:
    """Everything ``stats`` shows: per queue, the jobs by state, the oldest
    ready age, what the history counted over ``period``, live workers, and
    its pause and limits (``paused`` and ``limit`` are None on a schema
    without them, before 0.3.0)."""
    stats = database.stats(queue)
    metrics: list[Metric] = [m for m in database.metrics(period) if queue is None or m.queue in (None, queue)]
    flows = database.queues(queue)
    queues: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return queues.setdefault(
            name,
            {
                "queue": name,
                "jobs": dict.fromkeys(STATES, 0),
                "oldest_ready_age_seconds": 0.0,
                "recent": {"completed": 0, "failed": 0, "lease_expiries": 0},
                "workers": 0,
                # Running jobs asked to cancel that have not stopped yet.
                "cancel_requested": 0,
                # None: this schema has no pause and limits ("unknown", not "no").
                "paused": None if flows is None else False,
                "limit": None if flows is None else _limit_record(None),
            },
        )

    for stat in stats:
        entry(stat.queue)["jobs"][stat.state] = stat.jobs
        entry(stat.queue)["cancel_requested"] += stat.cancel_requested
    recent_names = {
        "recent_completed": "completed",
        "recent_failed": "failed",
        "recent_lease_expiries": "lease_expiries",
    }
    for metric in metrics:
        if metric.queue is None:
            continue
        if metric.metric == "oldest_ready_age_seconds":
            entry(metric.queue)["oldest_ready_age_seconds"] = metric.value
        elif metric.metric in recent_names:
            entry(metric.queue)["recent"][recent_names[metric.metric]] += int(metric.value)
        elif metric.metric == "workers":
            entry(metric.queue)["workers"] = int(metric.value)
    for flow in flows or ():
        if flow.paused or flow.max_running is not None or flow.rate_limit is not None:
            item = entry(flow.queue)
            item["paused"], item["limit"] = flow.paused, _limit_record(flow)
    minutes = period.total_seconds() / 60
    for item in queues.values():
        item["recent"]["completed_per_minute"] = round(item["recent"]["completed"] / minutes, 2)
        item["recent"]["failed_per_minute"] = round(item["recent"]["failed"] / minutes, 2)
    singles = {m.metric: m.value for m in metrics if m.queue is None}
    return {
        "queues": [queues[name] for name in sorted(queues)],
        "workers": int(singles.get("workers_total", 0)),
        "history_age_seconds": singles.get("history_age_seconds"),
        "period_seconds": period.total_seconds(),
    }


def _limit_record(flow: QueueInfo | None) -> dict[str, Any]:
    """A queue's limits for --json (None: no such limit)."""
    return {
        "max_running": flow.max_running if flow else None,
        "rate_limit": flow.rate_limit if flow else None,
        "rate_period_seconds": _seconds(flow.rate_period) if flow else None,
    }


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


def _duration_text(seconds: float) -> str:
    """A period as the CLI writes durations: ``1s``, ``500ms``, ``1m``, ``1h30m``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _stats_table(overview: dict[str, Any], server: str = "") -> Table:
    minutes = overview["period_seconds"] / 60
    where = f" on {server}" if server else ""
    table = Table(
        title=f"pgtq queues{where} (throughput: last {minutes:g} min of history; "
        f"{overview['workers']} live workers)",
        title_justify="left",
    )
    table.add_column("queue")
    for state in STATES:
        table.add_column(state, justify="right")
    table.add_column("oldest ready", justify="right")
    table.add_column("done/min", justify="right")
    table.add_column("failed/min", justify="right")
    table.add_column("workers", justify="right")
    table.add_column("paused / limits")
    # Running jobs asked to cancel, shown only while there are some.
    cancelling = any(item["cancel_requested"] for item in overview["queues"])
    if cancelling:
        table.add_column("cancel asked", justify="right")
    for item in overview["queues"]:
        table.add_row(
            item["queue"],
            *(str(item["jobs"][state]) for state in STATES),
            _age(item["oldest_ready_age_seconds"]) if item["jobs"]["ready"] else "-",
            f"{item['recent']['completed_per_minute']:g}",
            f"{item['recent']['failed_per_minute']:g}",
            str(item["workers"]),
            _flow_text(item["paused"], item["limit"]),
            *([str(item["cancel_requested"])] if cancelling else []),
        )
    return table


@cli.command(
    help="Jobs per queue and state, oldest ready age, throughput over the last minutes, live workers."
)
@positional_dsn
@several_dsns
@click.option("--queue", help="only this queue")
@click.option("--watch", is_flag=True, help="refresh until Ctrl-C")
@click.option("--interval", type=float, default=2.0, show_default=True, help="seconds between refreshes")
@click.option("--period", default="5m", show_default=True, help="throughput over this much history")
@json_option
def stats(
    positional_dsn: str | None,
    dsns: tuple[str, ...],
    queue: str | None,
    watch: bool,
    interval: float,
    period: str,
    as_json: bool,
) -> int:
    window = parse_duration(period, "--period")
    console = _out()
    databases = [Database(dsn) for dsn in _all_dsns(dsns, positional_dsn)]
    with _first_ctrl_c_ends(watch) as ended:
        try:
            return _show_stats(databases, queue, window, console, watch, interval, as_json, ended)
        finally:
            for database in databases:
                database.close()


@contextmanager
def _first_ctrl_c_ends(watching: bool) -> Iterator[threading.Event]:
    """While watching, the first Ctrl-C only sets the event it yields (the
    watch ends after the refresh under way, leaving no call half done); a
    second one interrupts at once. Not watching (or off the main thread),
    Ctrl-C interrupts as usual."""
    ended = threading.Event()
    if not watching or threading.current_thread() is not threading.main_thread():
        yield ended
        return

    def first(_signum: int, _frame: object) -> None:
        ended.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield ended
    finally:
        signal.signal(signal.SIGINT, previous)


def _show_stats(
    databases: Sequence[Database],
    queue: str | None,
    window: timedelta,
    console: Console,
    watch: bool,
    interval: float,
    as_json: bool,
    ended: threading.Event,
) -> int:
    """Print the stats once, or until ``ended`` is set when watching."""
    while True:
        overviews, failed = _overviews(databases, queue, window)
        if ended.is_set():
            return EXIT_OK
        if as_json:
            _print_json(overviews[0][1] if len(databases) == 1 else _several_json(overviews))
        elif not any(overview["queues"] for _, overview in overviews):
            console.print("no jobs")
        else:
            if watch:
                console.clear()
            for label, overview in overviews:
                if overview["queues"]:
                    console.print(_stats_table(overview, label))
        if not watch:
            return EXIT_ERROR if failed else EXIT_OK
        if ended.wait(interval):
            return EXIT_OK


def _overviews(
    databases: Sequence[Database], queue: str | None, window: timedelta
) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """Each database's overview with its server's label; with several, one
    that cannot answer is reported on stderr and left out (the count of
    those is returned too)."""
    overviews, failed = [], 0
    for database in databases:
        label = server_label(database.dsn) if len(databases) > 1 else ""
        try:
            overviews.append((label, queue_overview(database, queue, window)))
        except PgTqError as error:
            if len(databases) == 1:
                raise
            failed += 1
            _error(f"{label}: {error}")
    return overviews, failed


def _several_json(overviews: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return {"servers": [{"server": label, **overview} for label, overview in overviews]}


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


def _job_or_nothing(database: Database, job_id: int) -> JobInfo:
    job = database.job(job_id)
    if job is None:
        raise NothingToDo(f"no job {job_id}")
    return job


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
    help="Check what needs a look (pgtq.health): queues whose jobs nobody handles, an old transaction "
    "holding back the cleanup of dead rows, periodic schedules that failed. Exit 0 when all is well, 5 "
    "when a check warns."
)
@click.option("--late", help="how long a due job may wait unhandled (default: pgtq.health's, 1m)")
@click.option("--old-transaction", help="how old an open transaction may grow (default: pgtq.health's, 5m)")
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


# -- acting: retry, cancel, delete, purge --------------------------------------------


@cli.command(help="Run a failed or cancelled job again (ID), or every failed job with --failed.")
@click.argument("job_id", type=int, metavar="[ID]", required=False)
@click.option("--failed", is_flag=True, help="retry every failed job (of --queue, --task)")
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


# -- pushing: push, push-file ----------------------------------------------------------


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


# -- flow control: pause, resume, configure-queue, queues -------------------------------


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


# -- pg_cron ---------------------------------------------------------------------------


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


# -- the dashboard -----------------------------------------------------------------------

DASHBOARD_MISSING = "the dashboard needs the extra pgtq[dashboard]: pip install 'pgtq[dashboard]'"


@cli.command(
    help="Serve the web dashboard. It reads with --dsn (give it a pgtq_observer login) and acts with "
    "--admin-dsn (a pgtq_admin login; none: read-only). It binds to 127.0.0.1; another address needs "
    "--token."
)
@dsn_option
@click.option("--admin-dsn", envvar="PGTQ_ADMIN_DSN", help="database for actions (default $PGTQ_ADMIN_DSN)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--read-only", is_flag=True, help="no actions at all")
@click.option("--token", envvar="PGTQ_DASHBOARD_TOKEN", help="required to bind to a non-loopback address")
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="another Host name to serve (repeatable)",
)
@click.option(
    "--pool-size", type=click.IntRange(1, 100), default=4, show_default=True, help="reading connections"
)
@click.option(
    "--admin-pool-size",
    type=click.IntRange(1, 100),
    default=2,
    show_default=True,
    help="connections for actions",
)
@click.option("--secure-cookies", is_flag=True, help="mark the session cookie Secure (behind an HTTPS proxy)")
def dashboard(
    dsn: str | None,
    admin_dsn: str | None,
    host: str,
    port: int,
    read_only: bool,
    token: str | None,
    allowed_hosts: tuple[str, ...],
    pool_size: int,
    admin_pool_size: int,
    secure_cookies: bool,
) -> int:
    chosen = _dsn_or_env(dsn)
    try:
        web = importlib.import_module("pgtq.dashboard")  # the extra's module, written apart
    except ModuleNotFoundError as error:  # the module, or a package it needs, is not installed
        missing = "" if error.name == "pgtq.dashboard" else f" ({error.name} is missing)"
        raise Unavailable(f"{DASHBOARD_MISSING}{missing}") from error
    served = web.serve(
        chosen,
        admin_dsn=admin_dsn,
        host=host,
        port=port,
        read_only=read_only,
        token=token,
        allowed_hosts=allowed_hosts,
        pool_size=pool_size,
        admin_pool_size=admin_pool_size,
        secure_cookies=secure_cookies,
    )
    return int(served or 0)


# -- the entry point -----------------------------------------------------------------------


def _error(message: str) -> None:
    click.echo(f"pgtq: error: {' '.join(message.split())}", err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pgtq`` console script: runs the command and
    returns its exit code (see the module's docstring)."""
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="pgtq", standalone_mode=False
        )
    except click.UsageError as error:
        hint = f" (see: {error.ctx.command_path} --help)" if error.ctx is not None else ""
        _error(f"{error.format_message()}{hint}")
        return EXIT_USAGE
    except click.ClickException as error:  # a file that does not exist, ...
        _error(error.format_message())
        return EXIT_USAGE
    except click.exceptions.Abort:
        return EXIT_INTERRUPTED
    except (UsageError, TargetError) as error:
        _error(str(error))
        return EXIT_USAGE
    except InvalidJobError as error:  # the database refused a value the user gave
        _error(str(error))
        return EXIT_USAGE
    except NothingToDo as error:
        _error(str(error))
        return EXIT_NOTHING
    except Unavailable as error:
        _error(str(error))
        return EXIT_UNAVAILABLE
    except PgTqError as error:
        _error(str(error))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
