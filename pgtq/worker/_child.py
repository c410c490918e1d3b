"""Worker runtime: the main function of a process-pool child, which runs
the tasks it is sent."""

from __future__ import annotations

import logging
import multiprocessing.connection
import signal

from pgtq._targets import load_queue
from pgtq.errors import UnknownTaskError
from pgtq.task import Task
from pgtq.worker._execution import run_task, unknown_task_outcome


def child_main(target: str, pipe: multiprocessing.connection.Connection) -> None:
    """Import ``target`` (MODULE:QUEUE_OBJECT) and run each task sent on
    ``pipe`` until it sends None. Stop signals are the parent's to handle:
    it finishes or hands back the jobs, then stops its children."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    queues = {queue.queue: queue for queue in (load_queue(part) for part in target.split(","))}
    log = logging.getLogger("pgtq.worker.child")
    while True:
        try:
            task = pipe.recv()
        except EOFError:
            return
        if task is None:
            return
        assert isinstance(task, Task)
        try:
            handler = queues[task.queue].handler_for(task.name)
        except UnknownTaskError as error:  # this child's import of the module lacks it
            outcome = unknown_task_outcome(task, error)
        else:
            outcome = run_task(task, handler)
        try:
            pipe.send((outcome.kind, outcome.result_json, outcome.error, outcome.summary, outcome.retry_in))
        except OSError:
            log.warning("parent went away; child exits")
            return
