-- pgtq 0.5.0 -> 0.6.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_6_0. Every definition here is the one of sql/pgtq.sql at
-- 0.6.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- No call changes. A session or transaction that sets pgtq.notify to
-- 'off' sends no wake-up on channel pgtq (_announce): producers of many
-- small transactions can keep their commits from taking turns on the
-- notification queue; workers find their jobs at the next poll.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.6.0'::text $$;

-- ===========================================================================
-- Opting out of the wake-up
-- ===========================================================================

-- Guarantees: tells idle workers of `queue` that a job became ready. The
-- notification is sent only if the calling transaction commits, and
-- PostgreSQL folds identical notifications of one transaction into one, so
-- a bulk push announces each queue once. The channel is fixed and the queue
-- name travels as the payload: nothing is spliced into an identifier.
-- The opt-out (0.6.0): where the caller set pgtq.notify to 'off' (SET, or
-- SET LOCAL for one transaction), it sends nothing: a notification makes
-- commits take turns (PostgreSQL serialises the commits of notifying
-- transactions), which producers of many small transactions may not want.
-- Workers then find those jobs at their next poll, or at once while they
-- are draining the queue. Unset, empty or 'on' notify; any other value
-- raises PT004 naming it, so the transaction writes nothing.
CREATE OR REPLACE FUNCTION pgtq._announce(queue text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    notify text := current_setting('pgtq.notify', true);
BEGIN
    IF notify IS NULL OR notify IN ('', 'on') THEN
        PERFORM pg_notify('pgtq', _announce.queue);
    ELSIF notify <> 'off' THEN
        RAISE EXCEPTION 'pgtq: the setting pgtq.notify must be on or off, got %', quote_literal(notify)
            USING ERRCODE = 'PT004';
    END IF;
END
$$;


-- ---------------------------------------------------------------------------
-- Privileges: as at the end of a fresh install (new objects are reachable
-- by PUBLIC until revoked), then the roles' rights again.
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
