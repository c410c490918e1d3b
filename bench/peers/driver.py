"""Drive one peer queue; runs with the peers' interpreter (their virtualenv).

    python -m bench.peers.driver PEER ACTION --dsn DSN [options]

PEER: procrastinate or pgqueuer. ACTION:
  install                      create the peer's schema
  enqueue --mode single|bulk --clients K --jobs N [--per-call 1000]
                               push N jobs numbered 0..N-1; prints JSON
  worker [--drain] [--defaults]
                               serve the queue (``--drain``: exit once empty;
                               ``--defaults``: PgQueuer at its own defaults)
  push-timed --jobs N --gap S --first F --out FILE
                               push jobs one by one, noting the clock around
                               each call; writes JSON {seq: [before, after]}

Each handler records its job number (``bench.records``). Settings are each
peer's best documented ones for no-op jobs: Procrastinate runs an async task
with ``concurrency=10`` and LISTEN/NOTIFY; PgQueuer runs asyncpg with
``batch_size=100``, and with ``--defaults`` at the defaults of its
``QueueManager.run`` (``batch_size=10``), the figure pgtq's worker with no
flags is held against.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from datetime import timedelta
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from bench.records import record
from bench.scenarios.clients import run_clients

QUEUE = "bench"
PROCRASTINATE_CONCURRENCY = 10
PGQUEUER_BATCH = 100


# -- Procrastinate ----------------------------------------------------------------


def procrastinate_app(dsn: str) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop", queue=QUEUE)
    async def noop(seq: int) -> None:
        record(seq, "procrastinate")

    return app


def procrastinate_main(action: str, args: argparse.Namespace) -> Any:
    app = procrastinate_app(args.dsn)
    task = app.tasks["noop"]
    if action == "install":
        with app.open():
            app.schema_manager.apply_schema()
        return {"installed": True}
    if action == "worker":
        app.run_worker(
            queues=[QUEUE], concurrency=PROCRASTINATE_CONCURRENCY, wait=not args.drain, listen_notify=True
        )
        return None
    if action == "push-timed":
        times = {}
        with app.open():
            task.defer(seq=-1_000_000 + args.first)  # warm the connection (a number never measured)
            next_at = time.perf_counter()
            for seq in range(args.first, args.first + args.jobs):
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                before = time.time()
                task.defer(seq=seq)
                times[seq] = (before, time.time())
                next_at += args.gap
        return times
    raise ValueError(action)


def procrastinate_client(
    dsn: str,
    mode: str,
    first: int,
    count: int,
    per_call: int,
    *,
    prepare_only: bool = False,
    prepared: Any = None,
) -> Any:
    if prepare_only:
        app = procrastinate_app(dsn)
        app.open()
        app.tasks["noop"].defer(seq=-1 - first)
        return app
    app, task = prepared, prepared.tasks["noop"]
    if mode == "single":
        for seq in range(first, first + count):
            task.defer(seq=seq)
    else:
        for start in range(first, first + count, per_call):
            task.batch_defer(*({"seq": s} for s in range(start, min(start + per_call, first + count))))
    app.close()
    return count


# -- PgQueuer ---------------------------------------------------------------------


async def _asyncpg_connect(dsn: str) -> Any:
    import asyncpg

    params = conninfo_to_dict(dsn)
    return await asyncpg.connect(
        host=params.get("host"),
        port=int(params.get("port", 5432)),
        user=params.get("user"),
        database=params.get("dbname"),
    )


async def pgqueuer_async(action: str, args: argparse.Namespace) -> Any:
    from pgqueuer import AsyncpgDriver, PgQueuer, Queries
    from pgqueuer.types import QueueExecutionMode

    conn = await _asyncpg_connect(args.dsn)
    if action == "install":
        await Queries(AsyncpgDriver(conn)).install()
        await conn.close()
        return {"installed": True}
    if action == "worker":
        pgq = PgQueuer(AsyncpgDriver(conn))

        @pgq.entrypoint("noop")
        async def noop(job: Any) -> None:
            record(int(job.payload), "pgqueuer")

        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, pgq.qm.shutdown.set)
        mode = QueueExecutionMode.drain if args.drain else QueueExecutionMode.continuous
        if args.defaults:
            await pgq.qm.run(mode=mode)
        else:
            await pgq.qm.run(batch_size=PGQUEUER_BATCH, mode=mode, dequeue_timeout=timedelta(seconds=5))
        return None
    if action == "push-timed":
        queries = Queries(AsyncpgDriver(conn))
        await queries.enqueue("noop", str(-1_000_000 + args.first).encode())  # warm-up, never measured
        times = {}
        next_at = time.perf_counter()
        for seq in range(args.first, args.first + args.jobs):
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            before = time.time()
            await queries.enqueue("noop", str(seq).encode())
            times[seq] = (before, time.time())
            next_at += args.gap
        await conn.close()
        return times
    raise ValueError(action)


def pgqueuer_client(
    dsn: str,
    mode: str,
    first: int,
    count: int,
    per_call: int,
    *,
    prepare_only: bool = False,
    prepared: Any = None,
) -> Any:
    from pgqueuer import AsyncpgDriver, Queries

    if prepare_only:
        loop = asyncio.new_event_loop()
        conn = loop.run_until_complete(_asyncpg_connect(dsn))
        queries = Queries(AsyncpgDriver(conn))
        loop.run_until_complete(queries.enqueue("noop", str(-1 - first).encode()))
        return loop, conn, queries

    loop, conn, queries = prepared

    async def push() -> None:
        if mode == "single":
            for seq in range(first, first + count):
                await queries.enqueue("noop", str(seq).encode())
        else:
            for start in range(first, first + count, per_call):
                seqs = range(start, min(start + per_call, first + count))
                await queries.enqueue(["noop"] * len(seqs), [str(s).encode() for s in seqs], [0] * len(seqs))
        await conn.close()

    loop.run_until_complete(push())
    return count


# -- entry point -------------------------------------------------------------------

CLIENTS = {"procrastinate": procrastinate_client, "pgqueuer": pgqueuer_client}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("peer", choices=sorted(CLIENTS))
    parser.add_argument("action", choices=["install", "enqueue", "worker", "push-timed"])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--mode", choices=["single", "bulk"], default="single")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--per-call", type=int, default=1000)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--gap", type=float, default=0.02)
    parser.add_argument("--drain", action="store_true")
    parser.add_argument("--defaults", action="store_true", help="pgqueuer worker: its own defaults")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.action == "enqueue":
        share = args.jobs // args.clients
        per_client = [(args.dsn, args.mode, i * share, share, args.per_call) for i in range(args.clients)]
        outcome = run_clients(CLIENTS[args.peer], per_client)
        result: Any = {"seconds": outcome["seconds"], "jobs": share * args.clients}
    elif args.peer == "procrastinate":
        result = procrastinate_main(args.action, args)
    else:
        result = asyncio.run(pgqueuer_async(args.action, args))
    if args.out and result is not None:
        with open(args.out, "w") as handle:
            json.dump(result, handle)
    elif result is not None:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
