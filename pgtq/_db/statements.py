"""SQL-engine layer: every SQL statement the package sends, in one place.

Each one calls a public ``pgtq`` function or reads a public view, with named
arguments and explicit casts (so a Python int too large for the parameter
fails with a clear range error instead of a missing-function error).
Lists go in binary (``%(name)b``): psycopg writes a list as text one
element at a time in Python, quoting each, and that cost the worker and
``push_many`` more than the calls themselves (psycopg 3.3, one client:
the ids, leases and results of 100 outcomes 1.6 ms in text, 0.53 ms in
binary; a ``push_many`` of 1,000 jobs 32 ms against 17 ms). No
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

# The job's own retry policy (NULL: backoff()'s defaults), stored on the job.
_BACKOFF = " backoff_base => %(backoff_base)s::interval, backoff_cap => %(backoff_cap)s::interval"

# Job keys (0.2.0): a job_key makes at most one pending job per queue and
# key; job_key_mode says what a push finding one does ('keep' or 'replace').
# Without a key push pays two comparisons for them.
PUSH: Final = (
    "SELECT pgtq.push("
    "queue => %(queue)s::text, task => %(task)s::text,"
    " args => %(args)s::jsonb, kwargs => %(kwargs)s::jsonb,"
    " run_at => %(run_at)s::timestamptz, priority => %(priority)s::integer,"
    " max_attempts => %(max_attempts)s::integer, lock_key => %(lock_key)s::text,"
    " job_key => %(job_key)s::text, job_key_mode => %(job_key_mode)s::text,"
    f"{_BACKOFF})"
)

PUSH_DELAYED: Final = (
    "SELECT pgtq.push("
    "queue => %(queue)s::text, task => %(task)s::text,"
    " args => %(args)s::jsonb, kwargs => %(kwargs)s::jsonb,"
    " run_at => now() + %(delay)s::interval, priority => %(priority)s::integer,"
    " max_attempts => %(max_attempts)s::integer, lock_key => %(lock_key)s::text,"
    " job_key => %(job_key)s::text, job_key_mode => %(job_key_mode)s::text,"
    f"{_BACKOFF})"
)

PUSH_MANY: Final = (
    "SELECT pgtq.push_many("
    "queue => %(queue)s::text, task => %(task)s::text,"
    " args => %(args)b::jsonb[], kwargs => %(kwargs)b::jsonb[],"
    " run_at => coalesce(%(run_at)s::timestamptz, now() + %(delay)s::interval),"
    " priority => %(priority)s::integer, max_attempts => %(max_attempts)s::integer,"
    " job_keys => %(job_keys)b::text[], job_key_mode => %(job_key_mode)s::text,"
    " lock_keys => %(lock_keys)b::text[],"
    f"{_BACKOFF})"
)

# The claimed jobs come back as one row of arrays, not one row per job:
# psycopg turns each row of ten columns into Python values one by one (two
# JSON documents and a UUID per job), which cost a worker more than the rest
# of a no-op job's run. One row of arrays, with every job's args and kwargs
# in one JSON document, is read in a few calls for the whole batch. The
# aggregates read pop's rows in one pass, so their arrays line up element
# by element, in pop's order; with no job claimed they are all NULL.
# queries.py reads the columns by position.
_CLAIMED: Final = (
    "array_agg(p.id), array_agg(p.task), json_agg(json_build_array(p.args, p.kwargs)),"
    " array_agg(p.priority), array_agg(p.attempt), array_agg(p.max_attempts),"
    " array_agg(p.lease), array_agg(p.lease_expires_at)"
)

_POP_CALL: Final = (
    "pgtq.pop(queue => %(queue)s::text, worker => %(worker)s::text,"
    " n => %(n)s::integer, lease => %(lease)s::interval) AS p"
)

POP: Final = f"SELECT {_CLAIMED} FROM {_POP_CALL}"

COMPLETE: Final = (
    "SELECT pgtq.complete(id => %(id)s::bigint, lease => %(lease)s::uuid, result => %(result)s::jsonb)"
)

_COMPLETE_MANY_CALL: Final = (
    "pgtq.complete_many(ids => %(ids)b::bigint[], leases => %(leases)b::uuid[],"
    " results => %(results)b::jsonb[])"
)

COMPLETE_MANY: Final = f"SELECT {_COMPLETE_MANY_CALL}"

# A worker's successes written and its next jobs claimed in one statement:
# one transaction and one round trip, without a pipeline's BEGIN, COMMIT and
# syncs. pgtq.complete_many_and_pop (0.10.0) completes first, so a slot of a
# max_running queue or a lock key freed here can be claimed here, and wakes
# other workers for the freed slots of the queue only when it claimed back
# fewer jobs of it than it completed. One row: the ids completed, then the
# claimed jobs as POP returns them.
COMPLETE_MANY_AND_POP: Final = (
    "SELECT r.completed, claimed.* FROM pgtq.complete_many_and_pop(queue => %(queue)s::text,"
    " ids => %(ids)b::bigint[], leases => %(leases)b::uuid[], results => %(results)b::jsonb[],"
    " worker => %(worker)s::text, n => %(n)s::integer, lease => %(lease)s::interval) AS r"
    f" CROSS JOIN LATERAL (SELECT {_CLAIMED} FROM unnest(r.claimed) AS p) AS claimed"
)

FAIL: Final = (
    "SELECT pgtq.fail(id => %(id)s::bigint, lease => %(lease)s::uuid,"
    " error => %(error)s::text, retry_in => %(retry_in)s::interval)"
)

HEARTBEAT: Final = (
    "SELECT pgtq.heartbeat(id => %(id)s::bigint, lease => %(lease)s::uuid,"
    " extend_by => %(extend_by)s::interval)"
)

ABORT: Final = "SELECT pgtq.abort(id => %(id)s::bigint, lease => %(lease)s::uuid, error => %(error)s::text)"

# One row per (id, lease) pair, in the order given (queries.py reads them by position).
HEARTBEAT_MANY: Final = (
    "SELECT held, cancel_requested FROM pgtq.heartbeat_many(ids => %(ids)b::bigint[],"
    " leases => %(leases)b::uuid[], extend_by => %(extend_by)s::interval)"
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
    " pid => %(pid)s::integer, queues => %(queues)s::text[], marks_waiting => true)"
)

UNREGISTER_WORKER: Final = "SELECT pgtq.unregister_worker(worker => %(worker)s::text)"

# The columns in the order of pgtq.task.QueueStat's fields.
QUEUE_STATS: Final = (
    "SELECT queue, state::text, jobs, oldest_age, cancel_requested FROM pgtq.queue_stats"
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

# An upgrade under load (workers running): before the script, its
# transaction waits at most this long for each lock ...
MIGRATION_LOCK_TIMEOUT: Final = "SELECT pg_catalog.set_config('lock_timeout', %(timeout)s::text, true)"

# ... and takes every table of schema pgtq in ACCESS EXCLUSIVE mode at
# once, so no statement of the script takes a weaker lock on a table first
# and a stronger one later (CREATE INDEX, then ALTER TABLE), which
# deadlocks with workers that hold and want that table in between. The
# busiest table last: a push or a lease renewal takes another table first.
LOCK_PGTQ_TABLES: Final = (
    "DO $$DECLARE tables text; BEGIN"
    " SELECT pg_catalog.string_agg('pgtq.' || pg_catalog.quote_ident(c.relname), ', '"
    " ORDER BY c.relname OPERATOR(pg_catalog.=) '_job', c.relname) INTO tables"
    " FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace"
    " WHERE n.nspname OPERATOR(pg_catalog.=) 'pgtq' AND c.relkind IN ('r', 'p');"
    " IF tables IS NOT NULL THEN EXECUTE 'LOCK TABLE ' || tables || ' IN ACCESS EXCLUSIVE MODE'; END IF;"
    " END$$"
)

# pgtq._announce() notifies this channel with the queue name as payload.
LISTEN: Final = "LISTEN pgtq"

# A listening worker's marks (0.12.0): pgtq._announce notifies only while a
# worker marks the queue waiting. Each returns (or settles) at once, except
# for a wait of microseconds on a push that tests the mark.
MARK_WAITING: Final = "SELECT pgtq.mark_waiting(queues => %(queues)s::text[])"
WAITING_SETTLED: Final = "SELECT pgtq.waiting_settled(queues => %(queues)s::text[])"
CLEAR_WAITING: Final = "SELECT pgtq.clear_waiting(queues => %(queues)s::text[])"

# A listening worker's hand-off offer (0.16.0): a push hands a job due at
# once straight to an open offer, claimed for its worker, and notifies the
# claim on the offer's channel. offer_handoffs returns that channel.
OFFER_HANDOFFS: Final = (
    "SELECT pgtq.offer_handoffs(worker => %(worker)s::text, queues => %(queues)s::text[],"
    " lease => %(lease)s::interval)"
)
OPEN_HANDOFF: Final = "SELECT pgtq.open_handoff()"
CLOSE_HANDOFF: Final = "SELECT pgtq.close_handoff(wait => %(wait)s::boolean)"
# close_handoff(wait => true) waits for pushes that are handing the session
# a job; a stopping worker waits at most this long.
CLOSE_HANDOFF_TIMEOUT: Final = "SET LOCAL lock_timeout = '2s'"

# pgtq.cancel() of a running job notifies this channel with the job id as payload.
CANCEL_CHANNEL: Final = "pgtq_cancel"
LISTEN_CANCEL: Final = "LISTEN pgtq_cancel"

# The pid of the backend that runs the query: against the pid the server
# reported at login, it tells whether a pooler sits between (gateway.behind_pooler).
BACKEND_PID: Final = "SELECT pg_catalog.pg_backend_pid()"

# The listener's probe: a payload that can never be a queue name (names
# have no control characters), so every listener ignores it but its sender.
NOTIFY: Final = "SELECT pg_catalog.pg_notify('pgtq', %(payload)s::text)"

# -- waiting for outcomes (pgtq.watch's protocol; pgtq/_waiting.py) -------------

# Jobs somebody watch()es notify this channel when they finish, the id as payload.
LISTEN_FINISHED: Final = "LISTEN pgtq_finished"

# One registration per transaction (watch holds the job row's lock until
# commit): a waiter pipelines BEGIN, WATCH, COMMIT for each job. The
# columns in the order of pgtq.task.JobOutcome's fields, here and in OUTCOMES.
BEGIN: Final = "BEGIN"
COMMIT: Final = "COMMIT"

WATCH: Final = "SELECT id, state::text, result, error, finished_at FROM pgtq.watch(id => %(id)s::bigint)"

UNWATCH: Final = "SELECT pgtq.unwatch(id => %(id)s::bigint)"

OUTCOMES: Final = (
    "SELECT id, state::text, result, error, finished_at FROM pgtq.outcomes(ids => %(ids)s::bigint[])"
)

# -- periodic schedules -------------------------------------------------------------

# The columns in the order of pgtq._inspection.Schedule's fields (as SCHEDULES).
SCHEDULE: Final = (
    "SELECT name, cron, timezone, queue, task, args, kwargs, priority, max_attempts,"
    " next_run_at, last_run_at, last_job_id, last_error"
    " FROM pgtq.schedule(name => %(name)s::text, cron => %(cron)s::text,"
    " queue => %(queue)s::text, task => %(task)s::text,"
    " args => %(args)s::jsonb, kwargs => %(kwargs)s::jsonb, timezone => %(timezone)s::text,"
    " priority => %(priority)s::integer, max_attempts => %(max_attempts)s::integer)"
)

UNSCHEDULE: Final = "SELECT pgtq.unschedule(name => %(name)s::text)"

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

# -- flow control: pause, resume, limits -------------------------------------------

PAUSE: Final = "SELECT pgtq.pause(queue => %(queue)s::text)"

RESUME: Final = "SELECT pgtq.resume(queue => %(queue)s::text)"

CONFIGURE_QUEUE: Final = (
    "SELECT pgtq.configure_queue(queue => %(queue)s::text, max_running => %(max_running)s::integer,"
    " rate_limit => %(rate_limit)s::integer, rate_period => %(rate_period)s::interval)"
)

# The columns in the order of pgtq.task.QueueInfo's fields.
QUEUES: Final = (
    "SELECT queue, paused, paused_at, max_running, rate_limit, rate_period, running, rate_used,"
    " ready, scheduled, configured_at FROM pgtq.queues"
    " WHERE %(queue)s::text IS NULL OR queue = %(queue)s::text ORDER BY queue"
)

# Detected, never assumed: pause and limits arrive with schema 0.3.0.
QUEUES_EXIST: Final = "SELECT to_regclass('pgtq.queues') IS NOT NULL"

# Detected, never assumed: the schedules view arrives with 0.2.0's cron feature.
SCHEDULES_EXIST: Final = "SELECT to_regclass('pgtq.schedules') IS NOT NULL"

# -- health (schema 0.14.0) ------------------------------------------------------

# Rows that break a bookkeeping rule (the view reads the whole job table).
RULE_BREAKS: Final = (
    "SELECT id, queue, task, state::text, rule FROM pgtq.job_rule_breaks ORDER BY id, rule LIMIT %(limit)s"
)

HEALTH_EXISTS: Final = (
    "SELECT to_regprocedure('pgtq.health(interval, interval, timestamp with time zone)') IS NOT NULL"
)

# Whether this role may call it: a worker's /metrics asks first, so that its
# scrapes leave no permission errors in the server's log.
HEALTH_ALLOWED: Final = (
    "SELECT coalesce(has_function_privilege("
    "to_regprocedure('pgtq.health(interval, interval, timestamp with time zone)'), 'EXECUTE'), false)"
)

# The thresholds a caller gives; those left out take pgtq.health()'s own
# defaults, so they are written in one place only (the SQL).
HEALTH: Final = "SELECT name, status, detail FROM pgtq.health({thresholds})"
HEALTH_THRESHOLDS: Final = {
    "late": "late => %(late)s::interval",
    "old_transaction": "old_transaction => %(old_transaction)s::interval",
}

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

# -- inspection and operator actions (the dashboard) ------------------------------
#
# The dashboard reads the views and pgtq.metrics() with a read-only role
# (pgtq_observer), and acts through the admin functions. Its sessions run
# every statement with a custom plan (no prepared statements), so the
# optional filters written `(%(x)s IS NULL OR column = %(x)s)` fold away
# and each list keeps to its index.

READ_ONLY_SESSION: Final = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"

STATEMENT_TIMEOUT: Final = "SELECT pg_catalog.set_config('statement_timeout', %(timeout)s::text, false)"

SCHEMA_FEATURES: Final = (
    "SELECT ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute AS a"
    " WHERE a.attrelid = 'pgtq.jobs'::regclass AND a.attnum > 0 AND NOT a.attisdropped),"
    " ARRAY(SELECT DISTINCT p.proname::text FROM pg_catalog.pg_proc AS p"
    " WHERE p.pronamespace = 'pgtq'::regnamespace AND p.proname !~ '^_')"
)

ROLE_RIGHTS: Final = (
    "SELECT current_user::text,"
    " pg_catalog.has_table_privilege('pgtq.jobs', 'SELECT'),"
    " pg_catalog.has_function_privilege('pgtq.retry(bigint, timestamptz)', 'EXECUTE')"
)

# Failed jobs are kept until retried or purged: counted through job_failed_idx.
FAILED_BY_QUEUE: Final = (
    "SELECT j.queue, count(*) FROM pgtq.jobs AS j WHERE j.state = 'failed' GROUP BY j.queue ORDER BY j.queue"
)

FAILED_COUNT: Final = (
    "SELECT count(*) FROM pgtq.jobs AS j WHERE j.state = 'failed'"
    " AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)"
    " AND (%(task)s::text IS NULL OR j.task = %(task)s::text)"
)

# The queues the history holds (kept for pgtq.settings.history_retention).
HISTORY_QUEUES: Final = "SELECT DISTINCT h.queue FROM pgtq.queue_history AS h ORDER BY h.queue"

# The columns in the order of pgtq._inspection.HistoryPoint's fields.
HISTORY: Final = (
    "SELECT h.sampled_at, h.queue, sum(h.scheduled)::bigint, sum(h.ready)::bigint, sum(h.running)::bigint,"
    " sum(h.completed)::bigint, sum(h.failed)::bigint, sum(h.lease_expired)::bigint"
    " FROM pgtq.queue_history AS h"
    " WHERE h.sampled_at > now() - %(window)s::interval"
    " GROUP BY h.sampled_at, h.queue ORDER BY h.sampled_at, h.queue"
)

# The columns in the order of pgtq._inspection.Schedule's fields.
SCHEDULES: Final = (
    "SELECT name, cron, timezone, queue, task, args, kwargs, priority, max_attempts,"
    " next_run_at, last_run_at, last_job_id, last_error FROM pgtq.schedules ORDER BY name"
)

# The columns in the order of pgtq._inspection.JobDetail's fields (JOB's,
# then lease_expires_at); the optional columns of pgtq.jobs that the
# schema has follow.
JOB_DETAIL: Final = psycopg.sql.SQL(
    "SELECT id, queue, task, args, kwargs, state::text, priority, attempt, max_attempts, run_at,"
    " created_at, started_at, finished_at, worker, last_error, result, lease_expires_at{extra}"
    " FROM pgtq.jobs WHERE id = %(id)s::bigint"
)

# Job lists, one statement per pgtq._inspection.ListOrder, each walking
# the index its order follows from the key of the page before (NULL: the
# first page). The columns in the order of pgtq._inspection.JobRow's fields.
_JOB_ROW = (
    "SELECT j.id, j.queue, j.task, j.state::text AS state, j.priority, j.attempt, j.max_attempts,"
    " j.run_at, j.created_at, j.started_at, j.finished_at, j.lease_expires_at, j.worker,"
    " left(j.args::text, 200), left(split_part(j.last_error, E'\\n', 1), 200)"
    " FROM pgtq.jobs AS j WHERE"
)
_JOB_FILTERS = (
    " AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)"
    " AND (%(task)s::text IS NULL OR j.task = %(task)s::text)"
)

JOBS_NEWEST_FINISHED: Final = (
    f"{_JOB_ROW} j.state IN ('done', 'failed', 'cancelled') AND j.state = %(state)s::pgtq.job_state"
    f"{_JOB_FILTERS}"
    " AND (%(after_id)s::bigint IS NULL"
    " OR (j.finished_at, j.id) < (%(after_time)s::timestamptz, %(after_id)s::bigint))"
    " ORDER BY j.finished_at DESC, j.id DESC LIMIT %(limit)s::integer"
)

JOBS_NEXT_DUE: Final = (
    f"{_JOB_ROW} j.state = 'scheduled'{_JOB_FILTERS}"
    " AND (%(after_id)s::bigint IS NULL"
    " OR (j.run_at, j.id) > (%(after_time)s::timestamptz, %(after_id)s::bigint))"
    " ORDER BY j.run_at, j.id LIMIT %(limit)s::integer"
)

JOBS_LEASE_EXPIRY: Final = (
    f"{_JOB_ROW} j.state = 'running'{_JOB_FILTERS}"
    " AND (%(after_id)s::bigint IS NULL"
    " OR (j.lease_expires_at, j.id) > (%(after_time)s::timestamptz, %(after_id)s::bigint))"
    " ORDER BY j.lease_expires_at, j.id LIMIT %(limit)s::integer"
)

JOBS_NEWEST: Final = (
    f"{_JOB_ROW} (%(after_id)s::bigint IS NULL OR j.id < %(after_id)s::bigint){_JOB_FILTERS}"
    " ORDER BY j.id DESC LIMIT %(limit)s::integer"
)

# Ready jobs in the order pop takes them: queue, priority DESC, id. The
# mixed directions cannot be one row comparison, so the page after
# (queue, priority, id) is the union of three index range scans: the same
# queue and priority with a larger id, the same queue with a lower
# priority, and the queues after it. Each is read twice, from
# job_ready_idx (jobs without a lock key) and job_keyed_ready_idx (jobs
# with one): since schema 0.32.0 no index holds both.
_POP_ORDER_RANGES = (
    " AND j.queue = %(after_queue)s::text AND j.priority = %(after_priority)s::integer"
    " AND j.id > %(after_id)s::bigint ORDER BY j.priority DESC, j.id",
    " AND j.queue = %(after_queue)s::text AND j.priority < %(after_priority)s::integer"
    " ORDER BY j.priority DESC, j.id",
    " AND (%(after_queue)s::text IS NULL OR j.queue > %(after_queue)s::text)"
    " ORDER BY j.queue, j.priority DESC, j.id",
)
JOBS_POP_ORDER: Final = (
    "SELECT * FROM ("
    + " UNION ALL ".join(
        f"({_JOB_ROW} j.state = 'ready' AND j.lock_key IS {keyed}{_JOB_FILTERS}{page_range}"
        " LIMIT %(limit)s::integer)"
        for page_range in _POP_ORDER_RANGES
        for keyed in ("NULL", "NOT NULL")
    )
    + ") AS page ORDER BY page.queue, page.priority DESC, page.id LIMIT %(limit)s::integer"
)
