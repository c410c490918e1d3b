"""pgtq's SQL without its worker: the wake-up scenario's third system.

    python -m bench.apps.pgtq_loop DSN [--queue Q]

One thread, as the hand-written worker (``base_worker``): wait on LISTEN
``pgtq`` (from schema 0.12.0, with its queue marked waiting, as a worker's
listener marks it: ``pgtq.mark_waiting``), claim one job with ``pgtq.pop``,
record its start, complete it with ``pgtq.complete``, claim again until the
queue is empty. From schema 0.16.0 its listening session also keeps a
hand-off offer open (``pgtq.offer_handoffs``, ``pgtq.open_handoff``), as
the worker's listener does while idle: a push then hands it the job,
claimed, on the offer's channel, and the loop runs it with no ``pop``.
That is all a loop in another language needs for the same wake-up. Beside the
hand-written worker and the real ``pgtq worker`` (all three idle at once,
each on its own queue) it splits pgtq's wake-up
into what its SQL costs (``push``, ``pop``: this loop against the
hand-written one) and what its worker adds (threads, batching, leases
renewed: the real worker against this loop). It stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal

import psycopg

from bench.records import record

CLAIM = (
    "SELECT id, args, lease FROM pgtq.pop(queue => %s::text, worker => 'bench-loop', n => 1,"
    " lease => '5 minutes'::interval)"
)
COMPLETE = "SELECT pgtq.complete(id => %s::bigint, lease => %s::uuid)"
MARKS_WAITING = "SELECT to_regprocedure('pgtq.mark_waiting(text[])') IS NOT NULL"
MARK_WAITING = "SELECT pgtq.mark_waiting(ARRAY[%s::text])"
OFFERS = "SELECT to_regprocedure('pgtq.offer_handoffs(text, text[], interval)') IS NOT NULL"
OFFER = "SELECT pgtq.offer_handoffs('bench-loop', ARRAY[%s::text], '5 minutes'::interval)"
OPEN_OFFER = "SELECT pgtq.open_handoff()"

_stopping = False


def _on_sigterm(_signum: int, _frame: object) -> None:
    global _stopping
    _stopping = True


def serve(dsn: str, queue: str) -> None:
    """Claim, run and complete one job at a time until SIGTERM."""
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn, autocommit=True) as lconn:
        lconn.execute("LISTEN pgtq")
        marks = lconn.execute(MARKS_WAITING).fetchone()
        if marks is not None and marks[0]:  # before 0.12.0 (a --baseline ref) every push notifies
            lconn.execute(MARK_WAITING, [queue])  # no push is in flight yet: settled
        channel = _offer(lconn, queue)
        cur = conn.cursor()
        while not _stopping:
            rows = cur.execute(CLAIM, [queue], prepare=True).fetchall()
            if not rows:
                for heard in lconn.notifies(timeout=1.0):
                    if heard.channel == channel:  # a job handed over, claimed for this loop
                        handed = json.loads(heard.payload)
                        rows = [(handed["id"], handed["args"], handed["lease"])]
                        break
                    if heard.payload == queue:  # the real worker's queue beside it: not ours
                        break
            for job_id, args, lease in rows:
                record(int(args[0]), "loop")
                cur.execute(COMPLETE, [job_id, lease], prepare=True)


def _offer(lconn: psycopg.Connection[object], queue: str) -> str | None:
    """Open a hand-off offer for ``queue`` on the listening session; its
    channel (None before schema 0.16.0, a --baseline ref). The offer stays
    open: jobs handed while the loop runs one wait on the channel."""
    offers = lconn.execute(OFFERS).fetchone()
    if offers is None or not offers[0]:
        return None
    row = lconn.execute(OFFER, [queue]).fetchone()
    lconn.execute(OPEN_OFFER)
    return None if row is None else str(row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dsn")
    parser.add_argument("--queue", default="bench")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    serve(args.dsn, args.queue)


if __name__ == "__main__":
    main()
