-- pgtq 0.7.0 -> 0.8.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_8_0. Every definition here is the one of sql/pgtq.sql at
-- 0.8.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- No call changes. Three bookkeeping rules of pgtq._job leave its CHECK
-- constraints and are kept by the functions alone: PostgreSQL 15 rebuilds
-- every CHECK constraint from its stored text at each INSERT or UPDATE
-- statement, which cost each one-row statement (push, a one-job pop,
-- complete, fail, heartbeat) about 14 us. The view pgtq.job_rule_breaks
-- lists any row that breaks them. The lease rule (a job has a lease
-- exactly while it runs) stays a constraint.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.8.0'::text $$;

-- ===========================================================================
-- The bookkeeping rules move from CHECK constraints to the functions
-- ===========================================================================

ALTER TABLE pgtq._job
    DROP CONSTRAINT job_attempts_ck,
    DROP CONSTRAINT job_running_started_ck,
    DROP CONSTRAINT job_finished_at_ck;

CREATE VIEW pgtq.job_rule_breaks AS
SELECT j.id, j.queue, j.task, j.state, r.rule
FROM pgtq._job AS j
CROSS JOIN LATERAL (VALUES
    ('attempt is between 0 and max_attempts, and max_attempts is at least 1',
     j.attempt >= 0 AND j.max_attempts >= 1 AND j.attempt <= j.max_attempts),
    ('a running job has started_at',
     j.state <> 'running' OR j.started_at IS NOT NULL),
    ('finished_at is set exactly when the job is done, failed or cancelled',
     (j.state IN ('done', 'failed', 'cancelled')) = (j.finished_at IS NOT NULL))
) AS r (rule, kept)
WHERE NOT r.kept;
COMMENT ON VIEW pgtq.job_rule_breaks IS 'Jobs whose row breaks a bookkeeping rule (empty unless written by hand).';


-- ---------------------------------------------------------------------------
-- Privileges: as at the end of a fresh install (new objects are reachable
-- by PUBLIC until revoked), then the roles' rights again.
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
