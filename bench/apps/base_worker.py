"""The hand-written queue's worker: the ceiling for the real-worker scenarios.

    python -m bench.apps.base_worker DSN --batch N [--listen]

A loop of one claim (``FOR UPDATE SKIP LOCKED``, literal batch size), the
no-op handler for each job (it records the job's start), and one statement
completing the whole batch. Idle, it waits on LISTEN (``--listen``) or
polls. It stops on SIGTERM, or by itself with ``--exit-when-empty``.
"""

from __future__ import annotations

import argparse
import signal
import time

import psycopg

from bench import baseline
from bench.records import record

_stopping = False


def _on_sigterm(_signum: int, _frame: object) -> None:
    global _stopping
    _stopping = True


def serve(dsn: str, queue: str, batch: int, listen: bool, poll: float, exit_when_empty: bool) -> None:
    """Run the worker loop until SIGTERM (or an empty queue)."""
    claim = baseline.claim_sql(batch)
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn, autocommit=True) as lconn:
        if listen:
            lconn.execute(f"LISTEN {baseline.CHANNEL}")
        cur = conn.cursor()
        while not _stopping:
            rows = cur.execute(claim, [queue], prepare=True).fetchall()
            if not rows:
                if exit_when_empty:
                    return
                if listen:
                    for _ in lconn.notifies(timeout=poll, stop_after=1):
                        pass
                else:
                    time.sleep(poll)
                continue
            done = []
            for job_id, _task, args in rows:
                record(int(args[0]), "base")
                done.append(job_id)
            cur.execute(baseline.COMPLETE_MANY, [done], prepare=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dsn")
    parser.add_argument("--queue", default="bench")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--listen", action="store_true")
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument("--exit-when-empty", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    serve(args.dsn, args.queue, args.batch, args.listen, args.poll, args.exit_when_empty)


if __name__ == "__main__":
    main()
