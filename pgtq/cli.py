"""The command line (the top layer): ``pgtq worker``, ``scheduler``,
``migrate``, ``stats`` and ``version``.

It parses what the user typed and hands it to the worker runtime
(``pgtq.worker``) or the client API (``Database``); it holds no queue
rules and sends no SQL of its own.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pgtq import __version__
from pgtq._db.conninfo import server_label
from pgtq._db.schema import schema_version
from pgtq._targets import TargetError, load_queue
from pgtq.database import Database
from pgtq.errors import PgTqError
from pgtq.queue import PgTq
from pgtq.task import QueueStat

logger = logging.getLogger("pgtq")


class UsageError(Exception):
    """A problem with what the user typed or pointed at."""


def _dsn_or_env(dsn: str | None) -> str:
    dsn = dsn or os.environ.get("PGTQ_DSN")
    if not dsn:
        raise UsageError("no database given: pass a DSN or set PGTQ_DSN")
    return dsn


def _dsns_or_env(args: argparse.Namespace) -> list[str]:
    """The databases of a command that takes several (one per server): the
    DSN argument and each --dsn, or else $PGTQ_DSN."""
    given = ([args.dsn] if args.dsn else []) + args.dsns
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


def _cmd_worker(args: argparse.Namespace) -> int:
    from pgtq.worker import main_loop

    queues = [load_queue(target) for target in args.targets]
    if args.dsn:
        for queue in queues:
            queue.dsn = args.dsn
    listen_dsn = _listen_dsns(args.targets, queues, args.listen_dsn or [])
    try:
        return main_loop(
            queues,
            concurrency=args.concurrency,
            pool=args.pool,
            batch_size=args.batch_size,
            lease=args.lease,
            heartbeat_interval=args.heartbeat_interval,
            poll_interval=args.poll_interval,
            tick_interval=args.tick_interval,
            shutdown_timeout=args.shutdown_timeout,
            max_abandoned_threads=args.max_abandoned_threads,
            interrupt_timed_out_threads=args.interrupt_timed_out_threads,
            target=",".join(args.targets),
            listen_dsn=listen_dsn,
        )
    except ValueError as error:
        raise UsageError(str(error)) from error


def _cmd_scheduler(args: argparse.Namespace) -> int:
    import signal

    from pgtq.worker import Scheduler, run_schedulers

    queue = None if args.queue in ("*", "all") else args.queue
    schedulers = [Scheduler(dsn, queue, interval=args.interval) for dsn in _dsns_or_env(args)]

    def on_signal(signum: int, _frame: object) -> None:
        logger.info("received %s: stopping", signal.Signals(signum).name)
        for scheduler in schedulers:
            scheduler.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    run_schedulers(schedulers)
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from pgtq.migrate import upgrade

    result = upgrade(_dsn_or_env(args.dsn))
    if result.before == result.after:
        print(f"pgtq schema is up to date at {result.after} ({result.route} route)")
    else:
        print(f"pgtq schema {result.before or 'not installed'} -> {result.after} ({result.route} route)")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    """Job counts of one database, or of several (one per server) with a
    server column; a server that cannot answer is reported and the others
    are shown (exit 1)."""
    dsns = _dsns_or_env(args)
    rows: list[tuple[str, QueueStat]] = []
    failed = 0
    for dsn in dsns:
        try:
            with Database(dsn) as database:
                rows += [(server_label(dsn), row) for row in database.stats(args.queue)]
        except PgTqError as error:
            if len(dsns) == 1:
                raise
            failed += 1
            print(f"pgtq: error: {server_label(dsn)}: {error}", file=sys.stderr)
    if not rows:
        print("no jobs")
        return 1 if failed else 0
    server = f"{'server':<32} " if len(dsns) > 1 else ""
    print(f"{server}{'queue':<24} {'state':<10} {'jobs':>10}  oldest")
    for label, row in rows:
        server = f"{label:<32} " if len(dsns) > 1 else ""
        print(f"{server}{row.queue:<24} {row.state:<10} {row.jobs:>10}  {row.oldest_age}")
    return 1 if failed else 0


def _cmd_version(_args: argparse.Namespace) -> int:
    print(f"pgtq {__version__} (SQL schema {schema_version()})")
    return 0


SEVERAL_DSNS_HELP = "a database, beside the DSN argument; repeat it for queues on several servers"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgtq",
        description="pgtq: a PostgreSQL task queue whose rules live in SQL.",
        epilog="The database defaults to the PGTQ_DSN environment variable.",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser(
        "worker",
        help="run a worker for one or more queue objects",
        description="Run handlers for the queues named MODULE:QUEUE_OBJECT until SIGINT/SIGTERM. "
        "The first signal stops gracefully (running jobs get --shutdown-timeout seconds, the "
        "rest are handed back); a second one stops at once.",
    )
    worker.add_argument("targets", nargs="+", metavar="MODULE:QUEUE_OBJECT", help="e.g. myapp.tasks:q")
    worker.add_argument("--dsn", help="override the queue objects' DSN (every queue on that one database)")
    worker.add_argument(
        "--listen-dsn",
        action="append",
        metavar="[MODULE:QUEUE_OBJECT=]DSN",
        help="where the listener runs LISTEN (default: the queues' DSN); it needs a session: behind "
        "PgBouncer in transaction mode give a direct or session-mode DSN. Queues on several servers "
        "have a listener each: give MODULE:QUEUE_OBJECT=DSN for the server of that queue (repeatable)",
    )
    worker.add_argument("--concurrency", "-c", type=int, default=1, help="jobs run at once (default 1)")
    worker.add_argument(
        "--pool",
        choices=["thread", "process"],
        default="thread",
        help="threads for I/O-bound handlers (default), processes for CPU-bound ones",
    )
    worker.add_argument("--batch-size", type=int, help="jobs claimed per pop (default: --concurrency)")
    worker.add_argument("--lease", type=float, default=30.0, help="lease length in seconds (default 30)")
    worker.add_argument("--heartbeat-interval", type=float, help="seconds between lease renewals (lease/3)")
    worker.add_argument("--poll-interval", type=float, default=2.0, help="fallback poll, seconds (default 2)")
    worker.add_argument("--tick-interval", type=float, default=1.0, help="seconds between pgtq.tick calls")
    worker.add_argument(
        "--shutdown-timeout", type=float, default=30.0, help="grace period for running jobs (default 30)"
    )
    worker.add_argument(
        "--max-abandoned-threads",
        type=int,
        metavar="N",
        help="thread pool: at most N threads abandoned at their timeout (still running) get a fresh "
        "slot; past that the pool serves with fewer slots until one ends (default: --concurrency)",
    )
    worker.add_argument(
        "--interrupt-timed-out-threads",
        action="store_true",
        help="thread pool: also raise an exception in a thread abandoned at its timeout (best effort; "
        "it may land in the handler's finally block or its transaction)",
    )
    worker.set_defaults(run=_cmd_worker)

    scheduler = commands.add_parser("scheduler", help="call pgtq.tick in a loop")
    scheduler.add_argument("queue", metavar="QUEUE", help="queue to tick, or '*' for all queues")
    scheduler.add_argument("dsn", metavar="DSN", nargs="?", help="database (default $PGTQ_DSN)")
    scheduler.add_argument(
        "--dsn", dest="dsns", action="append", default=[], metavar="DSN", help=SEVERAL_DSNS_HELP
    )
    scheduler.add_argument("--interval", type=float, default=1.0, help="seconds between ticks")
    scheduler.set_defaults(run=_cmd_scheduler)

    for name in ("migrate", "install"):
        migrate = commands.add_parser(name, help="install or upgrade the pgtq schema (idempotent)")
        migrate.add_argument("dsn", metavar="DSN", nargs="?", help="database (default $PGTQ_DSN)")
        migrate.set_defaults(run=_cmd_migrate)

    stats = commands.add_parser("stats", help="job counts per queue and state")
    stats.add_argument("dsn", metavar="DSN", nargs="?", help="database (default $PGTQ_DSN)")
    stats.add_argument(
        "--dsn", dest="dsns", action="append", default=[], metavar="DSN", help=SEVERAL_DSNS_HELP
    )
    stats.add_argument("--queue", help="only this queue")
    stats.set_defaults(run=_cmd_stats)

    version = commands.add_parser("version", help="print the package and schema versions")
    version.set_defaults(run=_cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pgtq`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args))
    except (UsageError, TargetError) as error:
        print(f"pgtq: error: {error}", file=sys.stderr)
        return 2
    except PgTqError as error:
        print(f"pgtq: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
