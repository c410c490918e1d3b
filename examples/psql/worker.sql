-- A minimal worker in plain psql: claim one job of queue 'emails', do its
-- work in SQL, complete it (or fail it), and go on until no job is ready.
--   psql -f worker.sql
-- The work and pgtq.complete commit in one transaction: the user is marked
-- welcomed exactly when the job is done. A task it has no handler for is
-- failed (retried later by pgtq's rules, for a worker that knows it).
\set ON_ERROR_STOP on
\set QUIET on

-- One row always: the columns are NULL when nothing is ready, which
-- \gset turns into unset variables.
SELECT job.id, job.task, job.args, job.lease
FROM (SELECT) AS one
LEFT JOIN pgtq.pop('emails', 'psql-worker', n => 1, lease => '1 minute') AS job ON true
\gset job_

\if :{?job_id}
SELECT :'job_task' = 'send_welcome' AS job_known \gset
\if :job_known
BEGIN;
UPDATE users SET welcomed_at = now() WHERE id = (:'job_args'::jsonb ->> 0)::bigint;
SELECT pgtq.complete(:job_id, :'job_lease'::uuid, jsonb_build_object('welcomed', :'job_args'::jsonb -> 0))
    AS completed \gset
COMMIT;
\echo job :job_id done (completed: :completed)
\else
SELECT pgtq.fail(:job_id, :'job_lease'::uuid, 'no handler for task ' || :'job_task') AS state \gset
\echo job :job_id failed: no handler for :job_task (now :state)
\endif
\unset job_id
\ir worker.sql
\else
\echo no job ready
\endif
