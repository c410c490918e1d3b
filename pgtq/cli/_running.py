"""Commands that run: ``worker``, ``scheduler``, ``migrate`` (``install``),
``version``.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Any

import click

from pgtq import __version__
from pgtq._db.schema import schema_version
from pgtq._targets import load_queue
from pgtq.cli._common import (
    EXIT_OK,
    UsageError,
    _all_dsns,
    _database,
    cli,
    dsn_option,
    logger,
    positional_dsn,
    several_dsns,
)
from pgtq.queue import PgTq


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
@click.option(
    "--queue-metrics/--no-queue-metrics",
    default=True,
    show_default=True,
    help="serve the queue-level figures (pgtq.metrics(), one pass over the live jobs at each scrape) "
    "beside this worker's own; in a fleet, let one worker or the dashboard serve them",
)
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
