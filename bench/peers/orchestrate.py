"""Run the peers in the enqueue, drain and wake-up scenarios, from the harness's side.

Every step that needs a peer's library runs ``bench.peers.driver`` with the
peers' interpreter; this side owns the databases (one per peer, on the same
cluster), resets and audits them with SQL, and reuses the drain and wake-up
machinery of pgtq's scenarios so all systems are measured the same way.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cluster import REPO
from bench.context import Context, log
from bench.scenarios.drain import QueueOps, WorkerSpec, drain_once
from bench.scenarios.wakeup import Pusher, wakeup_once
from bench.stats import rate


@dataclass(frozen=True)
class PeerSQL:
    """How the harness resets, watches and audits one peer's tables."""

    reset: str
    backlog: str
    count_pushed: str
    count_done: str
    settings: str


PEER_SQL = {
    "procrastinate": PeerSQL(
        reset="TRUNCATE procrastinate_jobs RESTART IDENTITY CASCADE",
        backlog="SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')",
        count_pushed="SELECT count(*) FROM procrastinate_jobs WHERE (args->>'seq')::int >= 0",
        count_done=(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded' AND (args->>'seq')::int >= 0"
        ),
        settings="async task, worker concurrency=10, listen_notify=True (psycopg 3)",
    ),
    "pgqueuer": PeerSQL(
        reset="TRUNCATE pgqueuer, pgqueuer_log",
        backlog="SELECT count(*) FROM pgqueuer WHERE status IN ('queued', 'picked')",
        count_pushed="SELECT count(*) FROM pgqueuer WHERE convert_from(payload, 'UTF8')::int >= 0",
        count_done="SELECT %s::int - count(*) FROM pgqueuer WHERE convert_from(payload, 'UTF8')::int >= 0",
        settings="asyncpg driver, batch_size=100 (done jobs are deleted, as PgQueuer does)",
    ),
}

# The peers also drained at their own defaults, beside pgtq's worker with no flags.
DEFAULTS_SETTINGS = {"pgqueuer": "asyncpg driver, QueueManager.run defaults (batch_size=10)"}

# The peers whose best-settings drains (1 and 2 processes, and the deep
# backlog) run in the drain scenario's rounds, in turn with pgtq's and the
# ceiling's (scenarios/drain.py). Procrastinate drains a few hundred jobs a
# second: it drains here, once, at a size of its own.
INTERLEAVED = ("pgqueuer",)


def interleaved_peers(ctx: Context) -> tuple[str, ...]:
    """The run's peers that join the headline drains (see INTERLEAVED)."""
    if ctx.peers_python is None or not Path(ctx.peers_python).exists():
        return ()
    return tuple(name for name in ctx.peers if name in INTERLEAVED)


class Peer:
    """One peer: its database and the driver commands."""

    def __init__(self, ctx: Context, name: str) -> None:
        self.ctx, self.name, self.sql = ctx, name, PEER_SQL[name]
        self.dsn = ctx.cluster.create_database(f"bench_{name}")
        assert ctx.peers_python is not None
        self.python = str(ctx.peers_python)

    def argv(self, action: str, *extra: str) -> list[str]:
        return [self.python, "-m", "bench.peers.driver", self.name, action, "--dsn", self.dsn, *extra]

    def call(self, action: str, *extra: str, timeout: float = 600.0) -> Any:
        result = subprocess.run(
            self.argv(action, *extra),
            cwd=REPO,
            env=self.ctx.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{self.name} {action} failed: {result.stderr.strip()[-800:]}")
        lines = result.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else None

    def execute(self, statement: str, params: Any = None) -> int:
        return int(self.ctx.execute(statement, params, dsn=self.dsn)[0][0])

    def reset(self) -> None:
        self.ctx.execute(self.sql.reset, dsn=self.dsn)

    # -- enqueue ------------------------------------------------------------------

    def enqueue(self, mode: str, clients: int, jobs: int) -> dict[str, Any]:
        self.reset()
        self.ctx.checkpoint()
        out = self.call("enqueue", "--mode", mode, "--clients", str(clients), "--jobs", str(jobs))
        pushed = self.execute(self.sql.count_pushed)
        result = {
            "system": self.name,
            "kind": mode,
            "clients": clients,
            "jobs": out["jobs"],
            "seconds": round(out["seconds"], 3),
            "jobs_per_s": rate(out["jobs"], out["seconds"]),
            "correct": {"ok": pushed == out["jobs"], "rows": pushed},
        }
        log(f"enqueue {self.name} {mode} x{clients}: {result['jobs_per_s']:.0f} jobs/s")
        return result

    # -- drain --------------------------------------------------------------------

    def ops(self) -> QueueOps:
        def preload(jobs: int) -> None:
            self.reset()
            self.call("enqueue", "--mode", "bulk", "--clients", "1", "--jobs", str(jobs))
            self.ctx.execute("VACUUM ANALYZE", dsn=self.dsn)

        def audit(jobs: int) -> dict[str, Any]:
            done = self.execute(self.sql.count_done, [jobs] if "%s" in self.sql.count_done else None)
            return {"ok": done == jobs, "done": done}

        return QueueOps(preload, lambda: self.execute(self.sql.backlog), audit, warmups=1)

    def worker_spec(self, processes: int) -> WorkerSpec:
        return WorkerSpec(
            self.name, "best", processes, self.argv("worker"), self.ctx.env(), self.sql.settings
        )

    def defaults_spec(self, processes: int) -> WorkerSpec:
        """The worker at the peer's own defaults (DEFAULTS_SETTINGS)."""
        argv, settings = self.argv("worker", "--defaults"), DEFAULTS_SETTINGS[self.name]
        return WorkerSpec(self.name, "defaults", processes, argv, self.ctx.env(), settings)

    # -- wake-up ------------------------------------------------------------------

    def pusher(self) -> Pusher:
        def push(seqs: list[int], gap: float) -> dict[int, tuple[float, float]]:
            with tempfile.NamedTemporaryFile(suffix=".json", dir=self.ctx.scratch) as out:
                self.call(
                    "push-timed",
                    "--first",
                    str(min(seqs)),
                    "--jobs",
                    str(len(seqs)),
                    "--gap",
                    str(gap),
                    "--out",
                    out.name,
                )
                data = json.loads(Path(out.name).read_text())
            return {int(seq): (float(t[0]), float(t[1])) for seq, t in data.items()}

        return push


def run_peer(ctx: Context, name: str) -> dict[str, Any]:
    """The enqueue, drain and wake-up scenarios for one peer."""
    sizes = ctx.sizes
    peer = Peer(ctx, name)
    peer.call("install")
    enqueue = [peer.enqueue("single", clients, sizes.enqueue_single) for clients in (1, 4)]
    enqueue.append(peer.enqueue("bulk", 1, sizes.enqueue_bulk))
    jobs = sizes.drain_jobs_slow if name == "procrastinate" else sizes.drain_jobs  # a few hundred per second
    # The best-settings drains, from the drain scenario's rounds when it ran them.
    drains = list(ctx.results.get("drain", {}).get("peer_runs", {}).get(name, []))
    if not drains:
        drains = [drain_once(ctx, peer.worker_spec(p), peer.ops(), jobs) for p in (1, 2)]
        if name != "procrastinate":  # the deep backlog, as pgtq's (scenarios/drain.py)
            deep = peer.worker_spec(2)
            deep.extra["deep"] = True
            drains.append(drain_once(ctx, deep, peer.ops(), sizes.deep_drain_jobs))
    if name in DEFAULTS_SETTINGS:
        drains += [drain_once(ctx, peer.defaults_spec(p), peer.ops(), jobs) for p in (1, 2)]
    wakeup = wakeup_once(ctx, peer.worker_spec(1), peer.pusher(), peer.reset)
    peer.reset()
    return {"settings": peer.sql.settings, "enqueue": enqueue, "drain": drains, "wakeup": wakeup}


def run_peers(ctx: Context) -> dict[str, Any]:
    """Every requested peer; one that fails is reported, the others still run."""
    if ctx.peers_python is None or not Path(ctx.peers_python).exists():
        return {"error": f"no peers interpreter at {ctx.peers_python}: run `make bench-peers`"}
    out: dict[str, Any] = {}
    for name in ctx.peers:
        if name not in PEER_SQL:
            out[name] = {"error": f"{name}: not supported by this harness"}
            continue
        try:
            out[name] = run_peer(ctx, name)
        except Exception as error:  # reported in the results, the run goes on
            log(f"peer {name} FAILED: {type(error).__name__}: {error}")
            out[name] = {"error": f"{type(error).__name__}: {error}"}
    return out
