"""Client API: ``PgTq``, one queue in one database, and the handlers that
serve it.

Every method is one call of the SQL API through the gateway
(``pgtq._db.gateway``); the queue's rules (ordering, retries, backoff,
promotion, rescue) live in SQL. What concerns the whole database (every
queue's stats, prune, jobs by id) is ``Database``'s, which each ``PgTq``
holds as ``.database``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from pgtq._db import gateway
from pgtq._db.async_gateway import is_async_connection
from pgtq._inspection import Schedule
from pgtq._json import encode_arguments, encode_result
from pgtq._pushes import push_many_query, push_query
from pgtq._retry import checked_delay, checked_retry_on
from pgtq._values import as_interval
from pgtq.database import Database
from pgtq.errors import UnknownTaskError
from pgtq.handler import Handler, JobKeyMode
from pgtq.task import JobInfo, JobOutcome, PeriodicTask, QueueInfo, QueueStat, Task

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from pgtq.aio import AsyncPgTq

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_LEASE = timedelta(minutes=5)


class PgTq:
    """A queue named ``queue`` in the database at ``dsn``.

    Example::

        q = PgTq("emails", "dbname=app")

        @q.handler()
        def send(to): ...

        send.push("a@example.com")   # enqueue; send("a@...") runs it now

    The object opens one autocommit connection lazily, shared by its
    methods (psycopg serialises its use across threads). With ``pool`` (a
    ``psycopg_pool.ConnectionPool``) it opens none and each call borrows a
    connection of the pool instead (see ``Database``). Workers open
    connections of their own with ``connect()``.
    """

    def __init__(
        self, queue: str, dsn: str | None = None, *, pool: ConnectionPool[Any] | None = None
    ) -> None:
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"queue name must be a non-empty string, got {queue!r}")
        self.queue = queue
        self.handlers: dict[str, Handler[Any, Any]] = {}
        # Declared with @q.periodic, by schedule name; workers register them.
        self.periodic_tasks: dict[str, PeriodicTask] = {}
        self.database = Database(dsn, pool=pool)
        self._aio: AsyncPgTq | None = None

    @property
    def dsn(self) -> str:
        """The database's DSN. Setting it closes the shared connection; the
        next call connects to the new one."""
        return self.database.dsn

    @dsn.setter
    def dsn(self, dsn: str) -> None:
        self.database.close()
        self.database = Database(dsn)
        self._aio = None

    def __repr__(self) -> str:
        return f"<pgtq.PgTq queue={self.queue!r}>"

    # -- handlers ----------------------------------------------------------

    @overload
    def handler(self, func: F, /) -> Handler[Any, Any]: ...

    @overload
    def handler(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        priority: int = 0,
        max_attempts: int = 25,
        timeout: float | None = None,
        backoff_base: timedelta | float | None = None,
        backoff_cap: timedelta | float | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        transactional: bool = False,
    ) -> Callable[[F], Handler[Any, Any]]: ...

    def handler(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        priority: int = 0,
        max_attempts: int = 25,
        timeout: float | None = None,
        backoff_base: timedelta | float | None = None,
        backoff_cap: timedelta | float | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        transactional: bool = False,
    ) -> Handler[Any, Any] | Callable[[F], Handler[Any, Any]]:
        """Register a function as the handler of a task.

        The task is stored under ``name`` (default: the function's name).
        ``priority`` and ``max_attempts`` are the defaults of its pushes;
        ``timeout`` (seconds) bounds one run in a worker.

        Retry policy: ``backoff_base`` and ``backoff_cap`` (seconds or
        timedelta, 0 to 100 years; default 2 s and 1 hour) are stored on each
        job pushed, and SQL computes each retry's delay from them
        (``options()`` overrides them per push). ``retry_on``: the exception
        classes a worker retries; any other exception of the handler fails
        the job at once, with no further attempt (None, the default:
        every exception is retried; ``()``: none is). ``pgtq.Retry`` and
        ``pgtq.Abort`` act whatever ``retry_on`` says.

        ``transactional``: exactly-once database effects. In a worker (its
        thread pool; the process pool refuses such handlers at start) the
        handler runs inside a transaction on a connection of its slot,
        ``pgtq.current_task().conn``, to the queue's database; once it
        returns, the job is completed in that same transaction, which then
        commits: its writes and the completion commit together or not at
        all. A raise rolls the writes back and fails the job by the usual
        rules; a stale lease (the job was handed on) rolls them back too;
        a worker killed mid-run leaves neither. An ``async def`` handler gets
        an ``AsyncConnection``, ``pgtq.current_task().aconn``; cancelled at
        its timeout or by a cancel request, it rolls back too. Called
        directly, it is a plain function: no task, no transaction.
        """
        policy = {
            "backoff_base": checked_delay(backoff_base, "backoff_base"),
            "backoff_cap": checked_delay(backoff_cap, "backoff_cap"),
            "retry_on": checked_retry_on(retry_on),
        }

        def register(target: Callable[..., Any]) -> Handler[Any, Any]:
            if isinstance(target, Handler):
                raise ValueError(f"{target!r} is a handler already: put @periodic(...) above @handler(...)")
            task_name = name if name is not None else target.__name__
            if task_name in self.handlers and self.handlers[task_name].func is not target:
                raise ValueError(f"task {task_name!r} already has a handler in queue {self.queue!r}")
            registered = Handler(
                self,
                target,
                task_name,
                priority=priority,
                max_attempts=max_attempts,
                timeout=timeout,
                transactional=transactional,
                **policy,
            )
            self.handlers[task_name] = registered
            return registered

        if func is not None:
            return register(func)
        return register

    def handler_for(self, task: str) -> Handler[Any, Any]:
        """The handler registered for the task named ``task``; raises
        ``UnknownTaskError`` when there is none."""
        try:
            return self.handlers[task]
        except KeyError:
            raise UnknownTaskError(task, self.queue, self.handlers) from None

    # -- connections -------------------------------------------------------

    def connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection to the queue's database."""
        return self.database.connect()

    def close(self) -> None:
        """Close the shared connection (it reopens on the next call)."""
        self.database.close()

    @property
    def aio(self) -> AsyncPgTq:
        """This queue for asyncio code (``pgtq.aio.AsyncPgTq``): the same
        queue, DSN and handlers, with async methods over a connection of its
        own (``await q.aio.push(...)``; handlers' ``push_async`` use it).
        Made on first use; assign ``q.aio = AsyncPgTq(q, pool=...)`` to
        give it an ``AsyncConnectionPool`` instead."""
        if self._aio is None:
            from pgtq.aio import AsyncPgTq

            self._aio = AsyncPgTq(self)
        return self._aio

    @aio.setter
    def aio(self, value: AsyncPgTq) -> None:
        self._aio = value

    def __enter__(self) -> PgTq:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the SQL API -------------------------------------------------------

    def push(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int = 0,
        max_attempts: int = 25,
        job_key: str | None = None,
        job_key_mode: JobKeyMode = "keep",
        conn: psycopg.Connection[Any] | None = None,
        queue: str | None = None,
        backoff_base: timedelta | float | None = None,
        backoff_cap: timedelta | float | None = None,
        lock_key: str | None = None,
    ) -> int:
        """Enqueue a job for ``task`` and return its id (``pgtq.push``).

        With ``conn`` the push runs on that connection and joins its open
        transaction: the job exists only if that transaction commits.
        ``run_at`` (an aware datetime) or ``delay`` (seconds or timedelta,
        measured by the database clock) schedule it for later.
        ``backoff_base`` and ``backoff_cap`` (seconds or timedelta) are the
        job's own retry policy (None: the SQL defaults, 2 s and 1 hour).
        With ``lock_key`` at most one job of that key runs at a time, in any
        queue, in the key's order (priority, then push order).

        With a ``job_key`` the queue holds at most one pending (scheduled or
        ready) job with that key: when there is one, ``job_key_mode="keep"``
        changes nothing and returns its id (dedupe), ``"replace"`` gives it
        this push's arguments, run_at, priority and max_attempts and returns
        its id (debounce). A running job does not hold its key: the push
        queues a new pending job. Another mode raises ``InvalidJobError``.
        """
        query = push_query(
            self.queue if queue is None else queue,
            task,
            args,
            kwargs,
            run_at=run_at,
            delay=delay,
            priority=priority,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            job_key=job_key,
            job_key_mode=job_key_mode,
            lock_key=lock_key,
        )
        return self.database._call(_sync(conn), gateway.run, query)

    def push_many(
        self,
        task: str,
        args_list: Sequence[Sequence[Any]],
        kwargs_list: Sequence[Mapping[str, Any]] | None = None,
        *,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int = 0,
        max_attempts: int = 25,
        job_keys: Sequence[str | None] | None = None,
        job_key_mode: JobKeyMode = "keep",
        conn: psycopg.Connection[Any] | None = None,
        queue: str | None = None,
        backoff_base: timedelta | float | None = None,
        backoff_cap: timedelta | float | None = None,
        lock_key: str | None = None,
    ) -> list[int]:
        """Enqueue one job of ``task`` per element of ``args_list`` (with the
        matching element of ``kwargs_list``) in one call (``pgtq.push_many``);
        returns their ids in order. All are written or none. The options are
        those of :meth:`push` and apply to every job; ``job_keys`` gives one
        job key per element (None: no key), each acting as :meth:`push`
        with that key would (two elements with one key act as two pushes in
        order, and both get that job's id). With ``lock_key`` they run one at
        a time, in order."""
        query = push_many_query(
            self.queue if queue is None else queue,
            task,
            args_list,
            kwargs_list,
            run_at=run_at,
            delay=delay,
            priority=priority,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            job_keys=job_keys,
            job_key_mode=job_key_mode,
            lock_key=lock_key,
        )
        return self.database._call(_sync(conn), gateway.run, query)

    def pop(
        self,
        *,
        worker: str | None = None,
        lease: timedelta | float = DEFAULT_LEASE,
        conn: psycopg.Connection[Any] | None = None,
    ) -> Task | None:
        """Claim the next ready job (``pgtq.pop``), or None when none is ready."""
        tasks = self.pop_many(1, worker=worker, lease=lease, conn=conn)
        return tasks[0] if tasks else None

    def pop_many(
        self,
        n: int,
        *,
        worker: str | None = None,
        lease: timedelta | float = DEFAULT_LEASE,
        conn: psycopg.Connection[Any] | None = None,
    ) -> list[Task]:
        """Claim up to ``n`` ready jobs in one call."""
        lease_interval = as_interval(lease, "lease")
        return self.database._call(
            conn, gateway.pop, queue=self.queue, worker=worker, n=n, lease=lease_interval
        )

    def complete(
        self, task: Task, result: Any = None, *, conn: psycopg.Connection[Any] | None = None
    ) -> bool:
        """Mark a claimed job done (``pgtq.complete``); False if the lease is stale."""
        return self.database._call(conn, gateway.complete, task, encode_result(result))

    def fail(
        self,
        task: Task,
        error: str,
        *,
        retry_in: timedelta | float | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> str | None:
        """Record a failed attempt (``pgtq.fail``). Returns the job's new
        state (``scheduled``, ``ready`` or ``failed``), or None if the lease
        is stale."""
        return self.database._call(conn, gateway.fail, task, error, as_interval(retry_in, "retry_in"))

    def heartbeat(
        self,
        task: Task,
        extend_by: timedelta | float = DEFAULT_LEASE,
        *,
        conn: psycopg.Connection[Any] | None = None,
    ) -> bool:
        """Extend a running job's lease (``pgtq.heartbeat``); False if stale."""
        return self.database._call(conn, gateway.heartbeat, task, as_interval(extend_by, "extend_by"))

    def release(self, task: Task, *, conn: psycopg.Connection[Any] | None = None) -> bool:
        """Hand a claimed job back without counting the attempt (``pgtq.release``)."""
        return self.database._call(conn, gateway.release, task)

    def tick(self, *, all_queues: bool = False, conn: psycopg.Connection[Any] | None = None) -> int:
        """Promote due jobs and rescue expired leases (``pgtq.tick``) for
        this queue, or for every queue with ``all_queues``."""
        return self.database.tick(None if all_queues else self.queue, conn=conn)

    def cancel(self, job_id: int) -> bool:
        """Cancel a job that has not started, or ask a running one to stop
        (``pgtq.cancel``); False for a finished job or an unknown id."""
        return self.database.cancel(job_id)

    def retry(self, job_id: int) -> bool:
        """Run a failed or cancelled job again (``pgtq.retry``)."""
        return self.database.retry(job_id)

    def prune(
        self, older_than: timedelta | float, *, include_failed: bool = False, batch: int = 10000
    ) -> int:
        """Delete finished jobs of every queue older than ``older_than``
        (``pgtq.prune``; see :meth:`Database.prune`)."""
        return self.database.prune(older_than, include_failed=include_failed, batch=batch)

    def job(self, job_id: int) -> JobInfo | None:
        """A job's details and history, or None for an unknown id."""
        return self.database.job(job_id)

    def stats(self, *, all_queues: bool = False) -> list[QueueStat]:
        """Job counts per state (``pgtq.queue_stats``) for this queue or all."""
        return self.database.stats(None if all_queues else self.queue)

    # -- flow control ------------------------------------------------------

    def pause(self) -> bool:
        """Pause this queue: no worker takes its jobs until :meth:`resume`
        (see :meth:`Database.pause`)."""
        return self.database.pause(self.queue)

    def resume(self) -> bool:
        """Resume this queue (see :meth:`Database.resume`)."""
        return self.database.resume(self.queue)

    def configure_queue(
        self,
        *,
        max_running: int | None = None,
        rate_limit: int | None = None,
        rate_period: timedelta | float | None = None,
    ) -> bool:
        """Set this queue's limits to exactly these (see
        :meth:`Database.configure_queue`); whether that changed them."""
        return self.database.configure_queue(
            self.queue, max_running=max_running, rate_limit=rate_limit, rate_period=rate_period
        )

    def info(self) -> QueueInfo | None:
        """This queue's pause, limits and backlog (``pgtq.queues``), or None
        when it is not known (no jobs, nothing configured)."""
        found = self.database.queues(self.queue)
        return found[0] if found else None

    def check_schema(self, conn: psycopg.Connection[Any] | None = None) -> str:
        """The installed schema version; raises when it is missing or not
        the version this package was written for."""
        return self.database.check_schema(conn)

    # -- waiting for outcomes ------------------------------------------------

    def wait(self, job_id: int, timeout: float | timedelta | None = None) -> Any:
        """Wait until a job finishes and return its result; raises
        ``JobFailedError``, ``JobCancelledError`` or, after ``timeout``
        seconds, ``WaitTimeoutError`` (see :meth:`Database.wait`). The job
        may be of any queue of this database that this login role pushed."""
        return self.database.wait(job_id, timeout)

    def wait_many(self, job_ids: Iterable[int], timeout: float | timedelta | None = None) -> list[JobOutcome]:
        """Wait until every job of ``job_ids`` has finished; their outcomes
        in that order (see :meth:`Database.wait_many`)."""
        return self.database.wait_many(job_ids, timeout)

    # -- periodic tasks ------------------------------------------------------

    def periodic(
        self,
        cron: str,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timezone: str = "UTC",
        name: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
    ) -> Callable[[Callable[..., Any]], Handler[Any, Any]]:
        """Declare a periodic task: at each occurrence of ``cron`` (five
        fields, or ``@hourly``, ``@daily``, ...) in ``timezone``, ``tick``
        enqueues the decorated handler's task with ``args`` and ``kwargs``.

        Put it on a handler (above ``@q.handler(...)``), or on a plain
        function, which it registers as a handler with the defaults. A
        worker serving this queue registers its periodic tasks when it
        starts (``pgtq.schedule``: an upsert, so any number of workers may).
        The schedule is named ``name`` (default ``"QUEUE:TASK"``; schedule
        names are unique in the database: name a second schedule of the
        same task). ``priority`` and ``max_attempts`` default to the
        handler's. The arguments must be JSON (TypeError otherwise, now);
        the cron expression and time zone are checked by the database when
        registered (``InvalidJobError`` naming the bad field).

        Removing the decorator does not remove the schedule from the
        database: unschedule it (``pgtq unschedule NAME``; README,
        "Periodic tasks").
        """

        def declare(target: Callable[..., Any]) -> Handler[Any, Any]:
            handler = target if isinstance(target, Handler) else self.handler()(target)
            if handler.pgtq is not self:
                raise ValueError(f"{handler!r} is a handler of another queue object, not of {self!r}")
            schedule_name = name if name is not None else f"{self.queue}:{handler.name}"
            if schedule_name in self.periodic_tasks:
                raise ValueError(
                    f"queue {self.queue!r} already has a periodic task named {schedule_name!r}: "
                    "give this one another name="
                )
            args_json, kwargs_json = encode_arguments(handler.name, args, kwargs or {})
            self.periodic_tasks[schedule_name] = PeriodicTask(
                name=schedule_name,
                cron=cron,
                queue=self.queue,
                task=handler.name,
                args_json=args_json,
                kwargs_json=kwargs_json,
                timezone=timezone,
                priority=handler.priority if priority is None else priority,
                max_attempts=handler.max_attempts if max_attempts is None else max_attempts,
            )
            return handler

        return declare

    def register_periodic(self) -> list[Schedule]:
        """Register this queue object's periodic tasks now (``pgtq.schedule``
        of each, one transaction), as a worker does when it starts; the
        schedules."""
        return self.database.register_periodic(list(self.periodic_tasks.values()))


def _sync(conn: Any) -> psycopg.Connection[Any] | None:
    """``conn`` as given for a sync call; an ``AsyncConnection`` is refused
    with the way out."""
    if is_async_connection(conn):
        raise TypeError("this is an AsyncConnection: await the async twin (push_async, or q.aio.push)")
    return conn
