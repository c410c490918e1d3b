"""Worker runtime: runs the handlers of one or more queues.

``Worker`` (and ``main_loop``, which runs one until SIGINT/SIGTERM) is the
dispatcher: it claims jobs through the gateway, runs them in a pool of
threads or child processes, and writes their outcomes. ``Scheduler`` only
calls ``pgtq.tick`` in a loop. The modules here, below the CLI and above
the client API:

* ``_dispatcher``: the worker's loop; ``_decisions``: its timing decisions;
* ``_settings``: ``WorkerSettings``;
* ``_pools``, ``_execution``, ``_child``: where and how handlers run;
* ``_listener``: the LISTEN thread that wakes an idle worker;
* ``_scheduler``: ``Scheduler`` (and ``run_schedulers``, one per server);
* ``_routing``, ``_server``: queues on several servers.
"""

from __future__ import annotations

from pgtq.task import current_task
from pgtq.worker._dispatcher import Worker, main_loop, stop_on_signals
from pgtq.worker._scheduler import Scheduler, run_schedulers
from pgtq.worker._settings import WorkerSettings

__all__ = [
    "Scheduler",
    "Worker",
    "WorkerSettings",
    "current_task",
    "main_loop",
    "run_schedulers",
    "stop_on_signals",
]
