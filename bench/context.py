"""What every scenario needs: the cluster, the databases, where to write
scratch files, which interpreters to run, and a logger."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.cluster import REPO, BenchCluster
from bench.config import Sizes

QUEUE = "bench"
TASK = "noop"


def log(message: str) -> None:
    """Progress lines on stderr, with a clock."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Context:
    """The shared state of one benchmark run."""

    cluster: BenchCluster
    sizes: Sizes
    scratch: Path
    dsn: str
    peers_python: Path | None = None
    peers: tuple[str, ...] = ()
    pgtq_best_concurrency: int = 50
    tune: bool = True
    pgtq_best_pool: str = "thread"
    profile: bool = True
    code_dir: Path | None = None
    results: dict[str, Any] = field(default_factory=dict)
    # The --baseline ref's context (bench/reference.py): its best-settings
    # drains run in this checkout's drain rounds.
    ref: Context | None = None

    @property
    def python(self) -> str:
        return sys.executable

    @property
    def pgtq_cli(self) -> list[str]:
        """The real ``pgtq`` command of this interpreter's environment."""
        candidate = Path(sys.executable).with_name("pgtq")
        if candidate.exists():
            return [str(candidate)]
        return [sys.executable, "-m", "pgtq.cli"]

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for children: the repo on the path, the DSN, extras."""
        env = dict(os.environ)
        paths = [str(self.code_dir) if self.code_dir else "", str(REPO), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        env["PGTQ_DSN"] = self.dsn
        env.update(extra)
        return env

    def records_dir(self, name: str) -> Path:
        path = self.scratch / "records" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def logs_dir(self) -> Path:
        path = self.scratch / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def execute(self, statement: str, params: Any = None, dsn: str | None = None) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit and return its rows (if any)."""
        with psycopg.connect(dsn or self.dsn, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def checkpoint(self) -> None:
        """Flush dirty pages so a checkpoint does not land inside a measurement."""
        self.execute("CHECKPOINT")
