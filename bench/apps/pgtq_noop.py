"""The queue object the real ``pgtq worker`` serves in the benchmark.

    pgtq worker bench.apps.pgtq_noop:q --dsn DSN

Its one task, ``noop(seq)``, records that job ``seq`` started and does
nothing else (or sleeps ``BENCH_HANDLER_SLEEP`` seconds, when set). The DSN
and queue name come from the environment (``PGTQ_DSN``, ``BENCH_QUEUE``);
records go to ``BENCH_RECORD_DIR``.
"""

from __future__ import annotations

import os
import time

import pgtq
from bench.records import record

q = pgtq.PgTq(os.environ.get("BENCH_QUEUE", "bench"), os.environ.get("PGTQ_DSN", ""))
HANDLER_SLEEP = float(os.environ.get("BENCH_HANDLER_SLEEP") or 0)


@q.handler()
def noop(seq: int) -> None:
    """A no-op job: record its start, return nothing."""
    record(seq, "pgtq")
    if HANDLER_SLEEP:
        time.sleep(HANDLER_SLEEP)
