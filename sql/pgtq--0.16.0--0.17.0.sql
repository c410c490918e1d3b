-- pgtq 0.16.0 -> 0.17.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_17_0. Every definition here is the one of sql/pgtq.sql at
-- 0.17.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- No JIT where sequential scans are off: the functions that run with
-- enable_seqscan = off (0.7.0) also run with jit = off. With sequential
-- scans off, a statement on a table with no index it can use (the
-- workers, the settings) was planned at the cost of a disabled scan, far
-- above jit_above_cost, and compiled by JIT at every call: 25 to 60 ms
-- per complete of a job of a max_running queue.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.17.0'::text $$;

ALTER FUNCTION pgtq.pop(text, text, integer, interval, timestamptz) SET jit = off;
ALTER FUNCTION pgtq.complete(bigint, uuid, jsonb, timestamptz) SET jit = off;
ALTER FUNCTION pgtq.complete_many(bigint[], uuid[], jsonb[], timestamptz) SET jit = off;
ALTER FUNCTION pgtq.fail(bigint, uuid, text, interval, timestamptz) SET jit = off;
ALTER FUNCTION pgtq.heartbeat(bigint, uuid, interval, timestamptz) SET jit = off;
ALTER FUNCTION pgtq.abort(bigint, uuid, text, timestamptz) SET jit = off;
ALTER FUNCTION pgtq.heartbeat_many(bigint[], uuid[], interval, timestamptz) SET jit = off;
ALTER FUNCTION pgtq.release(bigint, uuid, timestamptz) SET jit = off;
ALTER FUNCTION pgtq._end_done(bigint[], uuid[], jsonb[], timestamptz) SET jit = off;
ALTER FUNCTION pgtq.complete_many_and_pop(text, bigint[], uuid[], jsonb[], text, integer, interval, timestamptz)
    SET jit = off;
ALTER FUNCTION pgtq._write_off_lapsed(text, timestamptz) SET jit = off;
ALTER FUNCTION pgtq._write_off_lapsed_keys(timestamptz) SET jit = off;
ALTER FUNCTION pgtq.health(interval, interval, timestamptz) SET jit = off;

-- ---------------------------------------------------------------------------
-- Privileges: as at the end of a fresh install (new objects are reachable
-- by PUBLIC until revoked), then the roles' rights again.
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
