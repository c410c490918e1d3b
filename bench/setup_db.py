"""Install pgtq (through its own migrate route) and the baseline schema."""

from __future__ import annotations

import psycopg

from bench import baseline
from bench.cluster import BenchCluster


def create_bench_database(cluster: BenchCluster, name: str = "bench") -> str:
    """A fresh database with pgtq and ``bench_base`` installed; its DSN."""
    from pgtq.migrate import upgrade

    dsn = cluster.create_database(name)
    upgrade(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(baseline.SCHEMA_DDL)
    return dsn
