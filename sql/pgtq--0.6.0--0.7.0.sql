-- pgtq 0.6.0 -> 0.7.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_7_0. Every definition here is the one of sql/pgtq.sql at
-- 0.7.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- No call changes. The functions a worker calls per job run with
-- enable_seqscan = off, so they find jobs by their indexes whatever size
-- pgtq._job had when a session planned them: a plan made while the table
-- was a few pages read the whole table at every call as it grew.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.7.0'::text $$;

-- ===========================================================================
-- The per-job functions find jobs by their indexes
-- ===========================================================================

ALTER FUNCTION pgtq.pop(text, text, integer, interval, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION pgtq.complete(bigint, uuid, jsonb, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION pgtq.complete_many(bigint[], uuid[], jsonb[], timestamptz) SET enable_seqscan = off;
ALTER FUNCTION pgtq.fail(bigint, uuid, text, interval, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION pgtq.abort(bigint, uuid, text, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION pgtq.heartbeat(bigint, uuid, interval, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION pgtq.heartbeat_many(bigint[], uuid[], interval, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION pgtq.release(bigint, uuid, timestamptz) SET enable_seqscan = off;


-- ---------------------------------------------------------------------------
-- Privileges: as at the end of a fresh install (new objects are reachable
-- by PUBLIC until revoked), then the roles' rights again.
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
