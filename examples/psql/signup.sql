-- Push a job inside a business transaction, from plain psql:
--   psql -v email=ann@example.com -f signup.sql
-- The user and the job commit together. With -v abort=1 the transaction
-- is rolled back instead, and neither exists.
\set ON_ERROR_STOP on
\if :{?abort}
\else
\set abort 0
\endif

BEGIN;
INSERT INTO users (email) VALUES (:'email') RETURNING id AS user_id \gset
SELECT pgtq.push('emails', 'send_welcome', jsonb_build_array(:user_id)) AS job_id \gset
\if :abort
ROLLBACK;
\echo rolled back: no user, no job
\else
COMMIT;
\echo user :user_id and job :job_id committed
\endif
