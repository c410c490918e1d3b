"""Helpers of the tests with several servers (test_several_servers.py,
test_failover.py): a producer thread that keeps a ledger of what it pushed,
and the ledger the handlers of apps/ledger_app.py write."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import psycopg

import pgtq
from pgtq.errors import PgTqError

# Where the handlers of apps/ledger_app.py record each run.
LEDGER_TABLE = (
    "CREATE TABLE ledger (token text NOT NULL, queue text NOT NULL, job_id bigint NOT NULL,"
    " attempt integer NOT NULL, pid integer NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())"
)


class Producer(threading.Thread):
    """Pushes ``note`` jobs with unique tokens (``prefix`` and a number) to
    ``queues`` in turn, one push per transaction, ``pace`` seconds apart,
    until ``stop()``.

    ``acked``: the tokens whose push returned a job id. With ``retry``, a
    push that raised is settled before the next token: the producer waits
    for the server, looks the token up, and pushes it again only if it is
    not there, so each token is pushed at most once and every token ends
    up acknowledged; a token still unsettled at the stop is left in
    ``unsure``. Without ``retry`` such a token goes to ``unsure`` at once
    (it may or may not exist) and the producer goes on with the next.
    """

    def __init__(self, prefix: str, queues: list[pgtq.PgTq], *, pace: float, retry: bool) -> None:
        super().__init__(name=f"producer-{prefix}", daemon=True)
        self.prefix = prefix
        self.queues = queues
        self.pace = pace
        self.retry = retry
        self.acked: list[str] = []
        self.unsure: list[str] = []
        self.errors: Counter[str] = Counter()
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=60)
        for queue in self.queues:
            queue.close()

    def run(self) -> None:
        number = 0
        while not self._stopping.is_set():
            queue = self.queues[number % len(self.queues)]
            self._push(queue, f"{self.prefix}{number}")
            number += 1
            self._stopping.wait(self.pace)

    def _push(self, queue: pgtq.PgTq, token: str) -> None:
        unsure = False
        while not self._stopping.is_set():
            try:
                if not (unsure and _exists(queue, token)):
                    queue.push("note", [token])
                self.acked.append(token)
                return
            except (PgTqError, psycopg.Error) as error:
                self.errors[type(error).__name__] += 1
                unsure = True
                if not self.retry:
                    break
                self._stopping.wait(0.2)
        if unsure:
            self.unsure.append(token)


def _exists(queue: pgtq.PgTq, token: str) -> bool:
    with psycopg.connect(queue.dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pgtq.jobs WHERE queue = %s AND args->>0 = %s", [queue.queue, token]
        ).fetchone()
    return bool(row and row[0])


def ledger_runs(conn: psycopg.Connection[Any], queues: tuple[str, ...] | None = None) -> Counter[str]:
    """How many runs the ledger holds of each token (of ``queues``)."""
    rows = conn.execute(
        "SELECT token, count(*) FROM ledger WHERE %(queues)s::text[] IS NULL OR queue = ANY(%(queues)s)"
        " GROUP BY token",
        {"queues": list(queues) if queues is not None else None},
    ).fetchall()
    return Counter(dict(rows))


def ledger_count(conn: psycopg.Connection[Any], queues: tuple[str, ...]) -> int:
    """How many runs the ledger holds of ``queues``."""
    row = conn.execute("SELECT count(*) FROM ledger WHERE queue = ANY(%s)", [list(queues)]).fetchone()
    return int(row[0]) if row else 0


def job_states(dsn: str) -> dict[str, tuple[str, int]]:
    """Each job's state and attempt, by token (the tokens are unique)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT args->>0, state::text, attempt FROM pgtq.jobs").fetchall()
    states = {token: (state, attempt) for token, state, attempt in rows}
    assert len(states) == len(rows), "one job per token"
    return states
