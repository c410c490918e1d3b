"""``stats``: per queue, the jobs by state, the oldest ready age, the
history's counts and the live workers; once or ``--watch``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from pgtq._db.conninfo import server_label
from pgtq.cli._common import (
    EXIT_ERROR,
    EXIT_OK,
    STATES,
    _all_dsns,
    _error,
    _flow_text,
    _limit_record,
    _out,
    _print_json,
    cli,
    json_option,
    parse_duration,
    positional_dsn,
    several_dsns,
)
from pgtq.database import Database
from pgtq.errors import PgTqError
from pgtq.task import Metric


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
