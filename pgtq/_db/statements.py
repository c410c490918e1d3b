"""SQL-engine layer: every SQL statement the package sends, in one place.

Each one calls a public ``pgtq`` function or reads a public view, with named
arguments and explicit casts (so a Python int too large for the parameter
fails with a clear range error instead of a missing-function error). No
other module names a table or builds SQL; ``queries.py`` pairs each
statement with its parameters and the reading of its rows, and
``gateway.py`` sends them.
"""

from __future__ import annotations

from typing import Final

import psycopg.sql

VERSION: Final = "SELECT pgtq.version()"

SCHEMA_EXISTS: Final = (
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p"
    " JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
    " WHERE n.nspname = 'pgtq' AND p.proname = 'version')"
)

PUSH: Final = (
    "SELECT pgtq.push("
    "queue => %(queue)s::text, task => %(task)s::text,"
    " args => %(args)s::jsonb, kwargs => %(kwargs)s::jsonb,"
    " run_at => %(run_at)s::timestamptz, priority => %(priority)s::integer,"
    " max_attempts => %(max_attempts)s::integer)"
)

PUSH_DELAYED: Final = (
    "SELECT pgtq.push("
    "queue => %(queue)s::text, task => %(task)s::text,"
    " args => %(args)s::jsonb, kwargs => %(kwargs)s::jsonb,"
    " run_at => now() + %(delay)s::interval, priority => %(priority)s::integer,"
    " max_attempts => %(max_attempts)s::integer)"
)

PUSH_MANY: Final = (
    "SELECT pgtq.push_many("
    "queue => %(queue)s::text, task => %(task)s::text,"
    " args => %(args)s::jsonb[], kwargs => %(kwargs)s::jsonb[],"
    " run_at => coalesce(%(run_at)s::timestamptz, now() + %(delay)s::interval),"
    " priority => %(priority)s::integer, max_attempts => %(max_attempts)s::integer)"
)

# The columns in the order of pgtq.task.Task's fields (queries.py reads them by position).
POP: Final = (
    "SELECT id, queue, task, args, kwargs, priority, attempt, max_attempts,"
    " lease, lease_expires_at"
    " FROM pgtq.pop(queue => %(queue)s::text, worker => %(worker)s::text,"
    " n => %(n)s::integer, lease => %(lease)s::interval)"
)

COMPLETE: Final = (
    "SELECT pgtq.complete(id => %(id)s::bigint, lease => %(lease)s::uuid, result => %(result)s::jsonb)"
)

COMPLETE_MANY: Final = (
    "SELECT pgtq.complete_many(ids => %(ids)s::bigint[], leases => %(leases)s::uuid[],"
    " results => %(results)s::jsonb[])"
)

FAIL: Final = (
    "SELECT pgtq.fail(id => %(id)s::bigint, lease => %(lease)s::uuid,"
    " error => %(error)s::text, retry_in => %(retry_in)s::interval)"
)

HEARTBEAT: Final = (
    "SELECT pgtq.heartbeat(id => %(id)s::bigint, lease => %(lease)s::uuid,"
    " extend_by => %(extend_by)s::interval)"
)

RELEASE: Final = "SELECT pgtq.release(id => %(id)s::bigint, lease => %(lease)s::uuid)"

TICK: Final = "SELECT pgtq.tick(queue => %(queue)s::text)"

CANCEL: Final = "SELECT pgtq.cancel(id => %(id)s::bigint)"

RETRY: Final = "SELECT pgtq.retry(id => %(id)s::bigint)"

PRUNE: Final = (
    "SELECT pgtq.prune(older_than => %(older_than)s::interval,"
    " include_failed => %(include_failed)s::boolean, batch => %(batch)s::integer)"
)

REGISTER_WORKER: Final = (
    "SELECT pgtq.register_worker(worker => %(worker)s::text, host => %(host)s::text,"
    " pid => %(pid)s::integer, queues => %(queues)s::text[])"
)

UNREGISTER_WORKER: Final = "SELECT pgtq.unregister_worker(worker => %(worker)s::text)"

# The columns in the order of pgtq.task.QueueStat's fields.
QUEUE_STATS: Final = (
    "SELECT queue, state::text, jobs, oldest_age FROM pgtq.queue_stats"
    " WHERE %(queue)s::text IS NULL OR queue = %(queue)s::text"
    " ORDER BY queue, array_position(enum_range(NULL::pgtq.job_state), state)"
)

# The columns in the order of pgtq.task.JobInfo's fields.
JOB: Final = (
    "SELECT id, queue, task, args, kwargs, state::text, priority, attempt,"
    " max_attempts, run_at, created_at, started_at, finished_at, worker,"
    " last_error, result"
    " FROM pgtq.jobs WHERE id = %(id)s::bigint"
)

EXTENSION_INSTALLED: Final = "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pgtq'"

UPDATE_EXTENSION: Final = "ALTER EXTENSION pgtq UPDATE"

# The version is composed as a literal (DDL takes no parameters).
UPDATE_EXTENSION_TO: Final = psycopg.sql.SQL("ALTER EXTENSION pgtq UPDATE TO {version}")

# pgtq._announce() notifies this channel with the queue name as payload.
LISTEN: Final = "LISTEN pgtq"

# The pid of the backend that runs the query: against the pid the server
# reported at login, it tells whether a pooler sits between (gateway.behind_pooler).
BACKEND_PID: Final = "SELECT pg_catalog.pg_backend_pid()"

# The listener's probe: a payload that can never be a queue name (names
# have no control characters), so every listener ignores it but its sender.
NOTIFY: Final = "SELECT pg_catalog.pg_notify('pgtq', %(payload)s::text)"

# -- the operator's reads and actions (CLI, dashboard, metrics) -----------------

# The columns in the order of pgtq.task.Metric's fields.
METRICS: Final = (
    "SELECT metric, queue, task, state, value FROM pgtq.metrics(period => %(period)s::interval)"
    " ORDER BY metric, queue NULLS FIRST, task NULLS FIRST, state NULLS FIRST"
)

# Jobs newest first, filtered, keyset-paged by id (`before`): each page is
# one scan of the primary key backwards (or of a partial index for live
# and failed jobs), however many finished jobs the table holds. Columns in
# the order of pgtq.task.JobInfo's fields.
JOBS: Final = (
    "SELECT id, queue, task, args, kwargs, state::text, priority, attempt,"
    " max_attempts, run_at, created_at, started_at, finished_at, worker,"
    " last_error, result"
    " FROM pgtq.jobs"
    " WHERE (%(queue)s::text IS NULL OR queue = %(queue)s::text)"
    " AND (%(task)s::text IS NULL OR task = %(task)s::text)"
    " AND (%(state)s::text IS NULL OR state = %(state)s::text::pgtq.job_state)"
    " AND (%(before)s::bigint IS NULL OR id < %(before)s::bigint)"
    " ORDER BY id DESC LIMIT %(limit)s::integer"
)

# The columns in the order of pgtq.task.WorkerInfo's fields.
WORKERS: Final = "SELECT id, host, pid, queues, started_at, last_seen_at FROM pgtq.workers ORDER BY id"

RETRY_FAILED: Final = "SELECT pgtq.retry_failed(queue => %(queue)s::text, task => %(task)s::text)"

PURGE: Final = (
    "SELECT pgtq.purge(older_than => %(older_than)s::interval,"
    " states => %(states)s::text[]::pgtq.job_state[],"
    " queue => %(queue)s::text, batch => %(batch)s::integer)"
)

DELETE_JOB: Final = "SELECT pgtq.delete_job(id => %(id)s::bigint)"

# Detected, never assumed: the schedules view arrives with 0.2.0's cron feature.
SCHEDULES_EXIST: Final = "SELECT to_regclass('pgtq.schedules') IS NOT NULL"

# Every column the view has, whatever the version, as one JSON object a row.
SCHEDULES: Final = "SELECT to_jsonb(s) FROM pgtq.schedules AS s"

# -- pg_cron ---------------------------------------------------------------------

CRON_VERSION: Final = "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_cron'"

CRON_SCHEDULE: Final = "SELECT cron.schedule(%(name)s::text, %(schedule)s::text, %(command)s::text)"

CRON_UNSCHEDULE: Final = (
    "SELECT count(cron.unschedule(j.jobid))::integer FROM cron.job AS j"
    " WHERE j.jobname = ANY (%(names)s::text[])"
)

# The commands pgtq schedules: names are fixed (a second install replaces them).
# pg_cron before 1.5 (minutes only): a run a minute that ticks every {seconds} s.
CRON_TICK_LOOP: Final = "CALL pgtq.tick_for(every => make_interval(secs => {seconds}))"
CRON_TICK: Final = "SELECT pgtq.tick()"
CRON_PURGE_LOG: Final = (
    "DELETE FROM cron.job_run_details WHERE end_time < now() - interval '1 hour'"
    " AND jobid IN (SELECT jobid FROM cron.job WHERE jobname = 'pgtq-tick')"
)
