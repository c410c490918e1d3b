"""The dispatcher reads the time from the clock it is given: its timeouts,
wake-ups and shutdown deadline follow a hand-driven clock. No database (the
worker never connects here) and no sleeping; the pool is a stand-in that
records what the dispatcher asks of it."""

from __future__ import annotations

from stand_ins import HandClock, RecordingPool

import pgtq
from pgtq.task import Task
from pgtq.worker import Worker, WorkerSettings
from pgtq.worker._decisions import UNSTARTED_RECHECK
from pgtq.worker._routing import job_key


def worker_with_a_slow_job(clock: HandClock) -> tuple[Worker, RecordingPool, Task]:
    queue = pgtq.PgTq("q", "dbname=never_connected")

    @queue.handler(timeout=2.0)
    def slow() -> None: ...

    worker = Worker(queue, WorkerSettings(poll_interval=60, tick_interval=60, lease=300), clock=clock)
    # As if it had just ticked, renewed and polled: each timer is 60 s away.
    [server] = worker.servers
    server.timers.ticked(clock.now)
    server.timers.heartbeat_sent(clock.now)
    server.timers.poll_due(clock.now)
    pool = RecordingPool()
    worker._pool = pool
    task = Task(id=7, queue="q", name="slow", args=())
    worker._hand_to_pool(task)
    return worker, pool, task


def test_a_job_is_given_up_at_its_deadline_by_the_worker_clock() -> None:
    clock = HandClock(1000.0)
    worker, pool, task = worker_with_a_slow_job(clock)
    assert pool.submitted == [task]
    assert worker._next_wakeup(clock.now) == 1000.0 + UNSTARTED_RECHECK, "not started: look again soon"

    pool.starts[job_key(task)] = 1000.5
    assert worker._next_wakeup(1001.0) == 1002.5, "wake up at the deadline, not at the 60 s poll"
    worker._enforce_timeouts(1002.49)
    [server] = worker.servers
    assert pool.abandoned == [] and server.pending == []

    clock.now = 1002.5
    worker._enforce_timeouts(clock.now)
    assert pool.abandoned == [task]
    [outcome] = server.pending
    assert (outcome.task, outcome.kind, outcome.duration) == (task, "error", 2.0)
    assert outcome.error == "TimeoutError: task 'slow' exceeded its timeout of 2 s"
    assert server.pending_since == 1002.5, "the outcome's wait for writing starts by the same clock"


def test_the_shutdown_deadline_is_set_by_the_worker_clock() -> None:
    clock = HandClock(50.0)
    worker, _pool, _task = worker_with_a_slow_job(clock)
    worker.stop()
    worker._wait(0)
    assert worker.stopping
    assert worker._shutdown_deadline == 50.0 + worker.settings.shutdown_timeout
    assert not worker._finished_stopping(79.9), "its job may still finish within the grace period"
