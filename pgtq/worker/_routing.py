"""Worker runtime: which server each served queue lives on, and where each
server's listener listens. Pure decisions, no I/O (tests/py/unit/).

A worker may serve queues on several PostgreSQL servers; each queue lives
on exactly one, the one its ``PgTq(queue, dsn)`` names. The worker holds
one link (connection, timers, pending outcomes, registration) and one
listener per server, and routes each claimed job, outcome and wake-up to
its server by the job's queue. So a queue name is served once per worker:
the same name on two servers (while a queue moves, say) needs two workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pgtq._db.conninfo import server_key, server_label
from pgtq.queue import PgTq
from pgtq.task import Task

# A claimed job within one worker: its queue (which names its server), its
# id (unique on that server only) and the lease of this claim. The lease
# tells two runs apart when a promoted standby, having lost a push, hands
# the same id to another job while the worker still holds the first. The
# lease is kept as its 128-bit integer: a key is hashed several times per
# job, and a UUID hashes in Python code (measured: 8% of a worker's CPU
# draining no-op jobs), an int in C.
JobKey = tuple[str, int, int | None]


def job_key(task: Task) -> JobKey:
    """The key of a claimed job within a worker (see ``JobKey``)."""
    lease = task.lease
    return (task.queue, task.id, None if lease is None else lease.int)


@dataclass(frozen=True)
class ServerPlan:
    """One server of a worker: the DSN its dispatcher link uses (the first
    spelling among its queues), the queues on it in the order given, and
    where its listener runs LISTEN."""

    dsn: str
    queues: tuple[str, ...]
    listen_dsn: str

    @property
    def label(self) -> str:
        """The server's name in log lines (no password)."""
        return server_label(self.dsn)


def plan_servers(
    served: Sequence[PgTq], listen_dsn: str | Mapping[str, str] | None = None
) -> list[ServerPlan]:
    """Group ``served`` by server, in the order the servers first appear.

    ``listen_dsn`` is where each server's listener runs LISTEN (default:
    the server's own DSN): one DSN, for a worker whose queues share one
    server; or a mapping from a server's DSN (any spelling) to its listen
    DSN, for some or all of the servers. Raises ``ValueError`` naming the
    problem: no queue, a queue name given twice, a listen DSN for a
    server the worker does not serve, or one listen DSN for several servers.
    """
    if not served:
        raise ValueError("a worker needs at least one queue")
    where: dict[str, str] = {}  # queue name -> server key
    first_dsn: dict[str, str] = {}  # server key -> the DSN as first written
    queues: dict[str, list[str]] = {}
    for queue in served:
        key = server_key(queue.dsn)
        if queue.queue in where:
            if where[queue.queue] == key:
                raise ValueError(f"each queue may be served once, got {[q.queue for q in served]}")
            first = server_label(first_dsn[where[queue.queue]])
            raise ValueError(
                f"queue {queue.queue!r} is given on two servers ({first} and {server_label(queue.dsn)}): "
                "a worker serves each queue name once; serve the other one with a second worker"
            )
        where[queue.queue] = key
        first_dsn.setdefault(key, queue.dsn)
        queues.setdefault(key, []).append(queue.queue)
    listens = _listen_dsns(first_dsn, listen_dsn)
    return [ServerPlan(dsn, tuple(queues[key]), listens[key]) for key, dsn in first_dsn.items()]


def _listen_dsns(servers: Mapping[str, str], listen_dsn: str | Mapping[str, str] | None) -> dict[str, str]:
    """The listen DSN of each server (by server key)."""
    chosen = dict(servers)  # by default each server's own DSN
    if listen_dsn is None:
        return chosen
    if isinstance(listen_dsn, str):
        if len(servers) > 1:
            raise ValueError(
                f"one listen DSN was given but the queues are on {len(servers)} servers: give a mapping "
                "from each server's DSN to its listen DSN"
            )
        return dict.fromkeys(servers, listen_dsn)
    for server_dsn, listen in listen_dsn.items():
        key = server_key(server_dsn)
        if key not in servers:
            raise ValueError(
                f"a listen DSN was given for server {server_label(server_dsn)}, which none of the "
                f"queues is on (they are on {', '.join(server_label(dsn) for dsn in servers.values())})"
            )
        chosen[key] = listen
    return chosen
