"""Worker runtime: the execution pools, where a worker's handlers run.

* ``ThreadPool`` (default): N threads in the worker process. Right for
  I/O-bound handlers (HTTP calls, database work, e-mail): the GIL is released
  while they wait, and jobs start with no process hop.
* ``ProcessPool``: N child processes, each importing the application module.
  Right for CPU-bound handlers, and it contains crashes: a child that dies
  (``os._exit``, a segfault in a C extension) fails only its job, and is
  replaced at once.

Both report every finished run through the ``report`` callback they are given
and never decide what a failure means: that is ``pgtq.fail``'s job. They
record when each job starts by the worker's clock, which its timeouts use.
A job is known by its ``JobKey`` (queue, id and lease: ids are unique on
one server only, and a worker may serve several).

A job asked to cancel (``cancel``) is stopped as each pool can: a job not
started yet never starts (the worker writes its outcome at once); in a
thread, its ``Task.cancellation`` is requested (the handler reads it, an
``async def`` handler's coroutine is cancelled); in a child process, the
child is killed and replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import queue
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pgtq._records import Outcome
from pgtq.handler import Handler
from pgtq.task import Task
from pgtq.worker._child import child_main
from pgtq.worker._decisions import Clock
from pgtq.worker._execution import cancelled_outcome, run_task
from pgtq.worker._routing import JobKey, job_key
from pgtq.worker._transactional import SlotConnections

Report = Callable[[Outcome], None]

logger = logging.getLogger("pgtq.worker")

# How long to wait for a dead child's exit status, so that its exit code
# (or the signal that killed it) can be reported. Until d628ae8 this was
# 5 s, and once, under the whole test suite on a loaded 2-core machine, the
# status was still unknown after that ("exited with code None").
CHILD_EXIT_WAIT = 15.0


class Pool(Protocol):
    """What the worker needs from a pool."""

    capacity: int

    def start(self) -> None: ...

    def submit(self, task: Task, handler: Handler[Any, Any]) -> None: ...

    def abandon(self, task: Task) -> None: ...

    def cancel(self, task: Task) -> bool: ...

    def started_at(self, key: JobKey) -> float | None: ...

    def unstarted(self) -> int: ...

    def take_unstarted(self) -> list[Task]: ...

    def close(self) -> None: ...


class _WorkQueue:
    """Tasks submitted to a pool, taken by whichever slot is free first (so
    a batch flows through the slots without a round trip to the dispatcher),
    the time each one started, and the ones withdrawn (cancelled before they
    started) that a slot skips."""

    def __init__(self, clock: Clock) -> None:
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.started: dict[JobKey, float] = {}
        self.clock = clock
        self._lock = threading.Lock()
        self._queued: set[JobKey] = set()  # submitted, not started, not withdrawn
        self._withdrawn: set[JobKey] = set()  # still in the queue, to be skipped

    def submit(self, task: Task, handler: Handler[Any, Any]) -> None:
        with self._lock:
            self._queued.add(job_key(task))
        self.queue.put((task, handler))

    def started_at(self, key: JobKey) -> float | None:
        return self.started.get(key)

    def unstarted(self) -> int:
        return len(self._queued)

    def _start(self, key: JobKey) -> float | None:
        """A slot takes the job: the time it starts, or None when it was
        withdrawn (the slot skips it). Called with ``_lock`` held."""
        if key in self._withdrawn:
            self._withdrawn.discard(key)
            return None
        self._queued.discard(key)
        started = self.started[key] = self.clock()
        return started

    def _withdraw(self, key: JobKey) -> bool:
        """Withdraw the job if it has not started; whether it was. Called
        with ``_lock`` held."""
        if key not in self._queued:
            return False
        self._queued.discard(key)
        self._withdrawn.add(key)
        return True

    def take_unstarted(self) -> list[Task]:
        taken = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return taken
            if item is None:  # a stop marker: leave it for the slots
                self.queue.put(None)
                return taken
            key = job_key(item[0])
            with self._lock:
                if key in self._withdrawn:
                    self._withdrawn.discard(key)
                    continue
                self._queued.discard(key)
            taken.append(item[0])


class _Abandoned(BaseException):
    """Raised asynchronously, when asked for, in a thread whose handler ran past its deadline."""


@dataclass
class _Slot:
    thread: threading.Thread | None = None
    retired: bool = False
    job: JobKey | None = None
    # Its connections for transactional handlers (opened at first use).
    connections: SlotConnections = field(default_factory=SlotConnections)


class ThreadPool(_WorkQueue):
    """Runs handlers in ``capacity`` daemon threads.

    A handler abandoned at its timeout cannot be killed. Its thread is
    retired: the handler runs on undisturbed until it returns (so its own
    ``finally`` blocks and transactions end normally), its outcome is
    ignored, and a fresh thread takes its slot. At most ``max_abandoned``
    (default: ``capacity``) abandoned threads still running get a fresh
    slot; past that the pool serves with fewer slots until one of them ends,
    so stuck handlers cannot pile up threads without bound. With
    ``interrupt_abandoned`` an exception is also raised in the thread, on a
    best-effort basis: it lands whenever the thread next runs Python code,
    which may be inside the handler's ``finally`` or in the middle of its
    own transaction.
    """

    def __init__(
        self,
        capacity: int,
        report: Report,
        clock: Clock,
        *,
        max_abandoned: int | None = None,
        interrupt_abandoned: bool = False,
    ) -> None:
        super().__init__(clock)
        self.capacity = capacity
        self._report = report
        self._max_abandoned = capacity if max_abandoned is None else max_abandoned
        self._interrupt_abandoned = interrupt_abandoned
        self._slots: list[_Slot] = []
        self._abandoned: set[JobKey] = set()
        self._abandoned_running = 0  # retired threads whose handler has not returned
        self._slots_owed = 0  # slots to add back as abandoned threads end
        self._closed = False

    def start(self) -> None:
        for _ in range(self.capacity):
            self._add_slot()

    def serving(self) -> int:
        """How many slots take jobs: ``capacity``, or fewer while more
        abandoned threads than the bound still run."""
        with self._lock:
            return len(self._slots)

    def _add_slot(self) -> None:
        slot = _Slot()
        slot.thread = threading.Thread(target=self._serve, args=(slot,), name="pgtq-slot", daemon=True)
        with self._lock:
            self._slots.append(slot)
        slot.thread.start()

    def _serve(self, slot: _Slot) -> None:
        try:
            while not slot.retired:
                item = self.queue.get()
                if item is None:
                    return
                self._run(slot, *item)
        except _Abandoned:
            pass  # raised on purpose (interrupt_abandoned): the job was already failed
        finally:
            slot.connections.close()
            if slot.retired:
                self._abandoned_thread_ended()

    def _run(self, slot: _Slot, task: Task, handler: Handler[Any, Any]) -> None:
        key = job_key(task)
        with self._lock:
            if self._start(key) is None:
                return  # cancelled before it started: the worker wrote its outcome
            slot.job = key
        try:
            outcome = run_task(task, handler, slot.connections)
        finally:
            with self._lock:
                slot.job = None
                self.started.pop(key, None)
                ignored = key in self._abandoned
                self._abandoned.discard(key)
        if not ignored:
            self._report(outcome)

    def _abandoned_thread_ended(self) -> None:
        with self._lock:
            self._abandoned_running -= 1
            owed = self._slots_owed > 0 and not self._closed
            if owed:
                self._slots_owed -= 1
        if owed:
            logger.info("an abandoned thread ended: the pool takes back a slot")
            self._add_slot()

    def cancel(self, task: Task) -> bool:
        """Stop a job asked to cancel: one not started yet never starts
        (returns True: its outcome is the caller's to write); a running one
        has its ``cancellation`` requested, which cancels an ``async def``
        handler's coroutine and which a synchronous handler reads."""
        with self._lock:
            withdrawn = self._withdraw(job_key(task))
        task.cancellation.request()
        return withdrawn

    def abandon(self, task: Task) -> None:
        key = job_key(task)
        with self._lock:
            slot = next((s for s in self._slots if s.job == key and not s.retired), None)
            if slot is None:
                return
            self._abandoned.add(key)
            slot.retired = True
            self._slots.remove(slot)
            self._abandoned_running += 1
            running = self._abandoned_running
            replace = running <= self._max_abandoned
            if not replace and not self._closed:
                self._slots_owed += 1
            short = self._slots_owed
        if self._interrupt_abandoned and slot.thread is not None and slot.thread.ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(slot.thread.ident), ctypes.py_object(_Abandoned)
            )
        how = "an exception is raised in its thread" if self._interrupt_abandoned else "its thread runs on"
        logger.warning(
            "task %s id=%d abandoned: %s until the handler returns, its result ignored "
            "(%d abandoned thread(s) running)",
            task.name,
            task.id,
            how,
            running,
        )
        if not replace:
            logger.warning(
                "%d abandoned threads are running, more than the at most %d that get a fresh slot: "
                "the pool serves %d slot(s) short until they end",
                running,
                self._max_abandoned,
                short,
            )
        elif not self._closed:
            self._add_slot()

    def close(self) -> None:
        self._closed = True
        for _ in range(len(self._slots)):
            self.queue.put(None)


class ProcessPool(_WorkQueue):
    """Runs handlers in ``capacity`` child processes (one job each at a time).

    Each child imports ``target`` (``MODULE:QUEUE_OBJECT``) itself. A child
    that dies while running a job fails that job with an error saying so and
    is replaced at once; a handler past its timeout, or whose job is asked
    to cancel, has its child killed (and replaced).
    """

    def __init__(self, capacity: int, report: Report, target: str, clock: Clock) -> None:
        super().__init__(clock)
        self.capacity = capacity
        self._report = report
        self._target = target
        self._context = multiprocessing.get_context("spawn")
        self._children: dict[JobKey, Any] = {}  # the process running each job
        self._abandoned: set[JobKey] = set()
        self._cancelled: set[JobKey] = set()  # running jobs whose child is killed for a cancel
        self._threads: list[threading.Thread] = []
        self._closed = False

    def start(self) -> None:
        for number in range(self.capacity):
            thread = threading.Thread(target=self._serve, name=f"pgtq-child-{number}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _spawn(self) -> tuple[Any, multiprocessing.connection.Connection]:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(target=child_main, args=(self._target, child_end), daemon=True)
        process.start()
        child_end.close()
        return process, parent_end

    def _serve(self) -> None:
        process, pipe = self._spawn()
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                task, _handler = item
                key = job_key(task)
                if not process.is_alive():
                    process, pipe = self._replace(process, pipe)
                with self._lock:
                    started = self._start(key)
                    if started is None:
                        continue  # cancelled before it started: the worker wrote its outcome
                    self._children[key] = process
                outcome = _run_in_child(task, process, pipe, started, self.clock)
                with self._lock:
                    self._children.pop(key, None)
                    self.started.pop(key, None)
                    ignored = key in self._abandoned
                    self._abandoned.discard(key)
                    cancelled = key in self._cancelled
                    self._cancelled.discard(key)
                died = outcome is None
                if died and self._closed:  # killed by close(): the worker has stopped listening
                    return
                if outcome is None:  # the child died, or was killed for a cancel
                    duration = self.clock() - started
                    if cancelled:
                        outcome = cancelled_outcome(task, duration, "its child process was killed")
                    else:
                        outcome = _crash_outcome(task, process.exitcode, duration)
                if died or cancelled or ignored:  # dead, or killed and maybe still dying: a fresh child
                    process, pipe = self._replace(process, pipe)
                if not ignored:
                    self._report(outcome)
        finally:
            _stop_child(process, pipe)

    def _replace(self, process: Any, pipe: multiprocessing.connection.Connection) -> tuple[Any, Any]:
        _stop_child(process, pipe)
        return self._spawn()

    def cancel(self, task: Task) -> bool:
        """Stop a job asked to cancel: one not started yet never starts
        (returns True: its outcome is the caller's to write); a running
        one's child is killed (its outcome then says so) and replaced."""
        key = job_key(task)
        with self._lock:
            if self._withdraw(key):
                process = None
                withdrawn = True
            else:
                process = self._children.get(key)
                withdrawn = False
                if process is not None:
                    self._cancelled.add(key)
        task.cancellation.request()
        if process is not None:
            process.kill()
        return withdrawn

    def abandon(self, task: Task) -> None:
        key = job_key(task)
        with self._lock:
            process = self._children.get(key)
            if process is None:
                return
            self._abandoned.add(key)
        process.kill()

    def close(self) -> None:
        self._closed = True
        for _ in self._threads:
            self.queue.put(None)
        with self._lock:
            running = list(self._children.values())
        for process in running:
            process.kill()


def _run_in_child(
    task: Task, process: Any, pipe: multiprocessing.connection.Connection, started: float, clock: Clock
) -> Outcome | None:
    """Send a task to a child and wait for its outcome; None if it died."""
    try:
        pipe.send(task)
        ready = multiprocessing.connection.wait([pipe, process.sentinel])
        if pipe in ready:
            kind, result_json, error, summary, retry_in = pipe.recv()
            return Outcome(task, kind, clock() - started, result_json, error, summary, retry_in)
    except (EOFError, OSError):
        pass
    process.join(timeout=CHILD_EXIT_WAIT)
    return None


def _stop_child(process: Any, pipe: multiprocessing.connection.Connection) -> None:
    with contextlib.suppress(OSError):
        pipe.send(None)
    process.join(timeout=2)
    if process.is_alive():
        process.kill()
        process.join(timeout=5)
    pipe.close()


def _crash_outcome(task: Task, process_exit_code: int | None, duration: float) -> Outcome:
    code = process_exit_code
    if code is None:
        how = f"broke its pipe and had not exited {CHILD_EXIT_WAIT:.0f} s later"
    elif code < 0:
        how = f"was killed by signal {signal.Signals(-code).name}"
    else:
        how = f"exited with code {code}"
    return Outcome(
        task,
        "error",
        duration,
        error=f"WorkerProcessDied: the child process running task {task.name!r} {how}",
        summary="child died",
    )
