"""The benchmark's own throwaway PostgreSQL cluster, with durable settings.

It reuses ``scripts/pgcluster.py`` (the same ``Cluster`` that ``make test``
uses: as root, initdb and the server run as ``postgres`` and the data folder
lives under /tmp where that user can reach it). The server is always stopped
by its pid when the block ends, also on an error or SIGTERM.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

REPO = Path(__file__).resolve().parent.parent

# Durable: every commit waits for its WAL flush, as in production.
DURABLE_SETTINGS = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_connections": "100",
    "shared_buffers": "256MB",
    "max_wal_size": "2GB",
    "checkpoint_timeout": "15min",
    "log_min_messages": "warning",
    "log_checkpoints": "on",
    "log_autovacuum_min_duration": "0",
}

REPORTED_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "shared_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "autovacuum",
    "autovacuum_naptime",
    "work_mem",
    "max_connections",
    "plan_cache_mode",
)


def load_pgcluster() -> ModuleType:
    """Import scripts/pgcluster.py (standard library only) as a module."""
    path = REPO / "scripts" / "pgcluster.py"
    spec = importlib.util.spec_from_file_location("pgtq_pgcluster", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class BenchCluster:
    """A running throwaway cluster: its DSNs and a few admin helpers."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    @property
    def pid(self) -> int | None:
        return self.cluster.pid()  # type: ignore[no-any-return]

    @property
    def datadir(self) -> Path:
        return Path(self.cluster.datadir)

    def dsn(self, dbname: str = "postgres") -> str:
        return make_conninfo(self.cluster.dsn, dbname=dbname)

    def create_database(self, name: str) -> str:
        """Create database ``name`` (dropping an old one) and return its DSN."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def settings(self) -> dict[str, str]:
        """The server settings the report prints."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                [list(REPORTED_SETTINGS)],
            ).fetchall()
        return {name: value for name, value in rows}

    def set_synchronous_commit(self, value: str) -> None:
        """Change synchronous_commit for the whole server (the second pass)."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER SYSTEM SET synchronous_commit = {}").format(sql.Literal(value)))
            conn.execute("SELECT pg_reload_conf()")

    def server_log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.datadir / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def explain_settings(slower_than_ms: float) -> dict[str, str]:
    """Settings that log, in the server log, the plan of every statement
    (nested ones too: a function's own queries) that took longer than
    ``slower_than_ms``; auto_explain writes at WARNING, which the durable
    settings log. How the slow sustained starts of 0.28.0 were found: a
    claim's seek that a session had planned on the empty table."""
    return {
        "shared_preload_libraries": "auto_explain",
        "auto_explain.log_min_duration": f"{slower_than_ms}ms",
        "auto_explain.log_nested_statements": "on",
        "auto_explain.log_level": "warning",
        "log_line_prefix": "%m [%p] ",
    }


@contextmanager
def throwaway_cluster(
    log: Any = print, extra_settings: dict[str, str] | None = None, keep_log: Path | None = None
) -> Iterator[BenchCluster]:
    """Start a durable throwaway cluster (with ``extra_settings`` on top);
    stop it by its pid at the end, and first copy its server log to
    ``keep_log`` if given."""
    pgcluster = load_pgcluster()
    root = Path(tempfile.mkdtemp(prefix="pgtq-bench-"))
    pgcluster.give_to_server_user(root)
    cluster = pgcluster.Cluster(root / "data")

    def on_sigterm(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        cluster.initialise(DURABLE_SETTINGS | (extra_settings or {}))
        cluster.start()
        log(f"cluster up: pid {cluster.pid()}, data {cluster.datadir}")
        yield BenchCluster(cluster)
    finally:
        pid = cluster.pid()
        if keep_log is not None:
            keep_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(cluster.datadir) / "server.log", keep_log)
            log(f"server log kept: {keep_log}")
        cluster.stop()
        log(f"cluster stopped (pid {pid})")
        shutil.rmtree(root, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
