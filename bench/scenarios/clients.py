"""Run N client processes that start together and report their own timing.

Each client connects first, then waits for the common start signal, so
connection setup is not measured; the run's time is from the first client's
start to the last client's end.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from typing import Any

_CTX = mp.get_context("spawn")


def _client_main(
    target: Callable[..., Any], args: tuple[Any, ...], ready: Any, go: Any, results: Any, index: int
) -> None:
    try:
        prepared = target(*args, prepare_only=True)
        ready.put(index)
        go.wait()
        started = time.perf_counter()
        outcome = target(*args, prepared=prepared)
        results.put((index, started, time.perf_counter(), outcome, None))
    except Exception as error:  # reported to the parent, which raises
        ready.put(index)
        results.put((index, 0.0, 0.0, None, f"{type(error).__name__}: {error}"))


def run_clients(
    target: Callable[..., Any], per_client_args: list[tuple[Any, ...]], timeout: float = 600.0
) -> dict[str, Any]:
    """Run ``target(*args)`` in one process per args tuple, all started at once.

    ``target`` is called twice in each process: first with
    ``prepare_only=True`` (connect, warm up; returns a state), then with
    ``prepared=<that state>`` for the measured part.
    """
    ready, results, go = _CTX.Queue(), _CTX.Queue(), _CTX.Event()
    procs = [
        _CTX.Process(target=_client_main, args=(target, args, ready, go, results, i), daemon=True)
        for i, args in enumerate(per_client_args)
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=timeout)
        go.set()
        outcomes = [results.get(timeout=timeout) for _ in procs]
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
    errors = [error for *_, error in outcomes if error]
    if errors:
        raise RuntimeError("client failed: " + "; ".join(errors))
    start = min(started for _, started, _, _, _ in outcomes)
    end = max(ended for _, _, ended, _, _ in outcomes)
    return {"seconds": end - start, "outcomes": [outcome for *_, outcome, _ in outcomes]}
