-- pgtq 0.20.0 -> 0.21.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_21_0. Every definition here is the one of sql/pgtq.sql at
-- 0.21.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- tick keeps no ready mark for a queue with ready jobs with a lock key
-- (_raise_mark). pop reads no mark for such a queue (it takes the keyed
-- path), and the tick's look for the queue's first ready job without a
-- key stepped over every ready job with one: 23 ms a tick, in every
-- worker, for a queue of 100,000 keyed jobs being worked on.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.21.0'::text $$;

-- Guarantees: sets the ready mark of `queue` afresh (0.18.0), from what
-- the calling tick sees, so that pops of the queue seek from it:
--   * the mark's priority is the highest of the queue's ready jobs
--     without a lock key; the mark is the lowest of: the lowest id of such
--     a job of that priority, the next id the job sequence will give, and
--     what the previous tick saw (next_low_id). A job of that priority
--     whose push took its id before the previous tick looked, and
--     committed after this one, is the only kind a pop can pass over: it
--     is claimable from the next tick on (it waits for a tick, as a
--     scheduled job does). When the priority changed, pops seek from the
--     start of it until the next tick;
--   * a new mark starts at 0 (no seek) and takes effect at the next tick;
--   * rows of _ready_mark_low the tick sees are folded in and deleted;
--   * a queue with no ready and no running job keeps no mark;
--   * (0.21.0) neither does a queue with ready jobs with a lock key: pop
--     takes the keyed path for it (_choose_keyed) and reads no mark, and
--     the look for its first ready job without a key would step over
--     every ready job with one (23 ms a tick at 100,000). Its mark is
--     dropped, and made anew, seeking nothing at first, once the queue has
--     no ready job with a key.
-- Never waits: a mark another tick holds is left to that tick. Reads the
-- queue's first ready entry, as one pop without a mark would.
CREATE OR REPLACE FUNCTION pgtq._raise_mark(queue text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    mark           pgtq._ready_mark;
    unused_id      bigint;   -- no job pushed after this point has a lower id
    first_priority integer;
    first_id       bigint;
BEGIN
    SELECT m.* INTO mark FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue FOR UPDATE SKIP LOCKED;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue) THEN
        RETURN;  -- another tick is setting it
    END IF;
    IF EXISTS (SELECT 1 FROM pgtq._job AS k
               WHERE k.queue = _raise_mark.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL) THEN
        DELETE FROM pgtq._ready_mark_low AS l WHERE l.queue = _raise_mark.queue;
        DELETE FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue;
        RETURN;  -- pop takes the keyed path and reads no mark
    END IF;
    SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END
    INTO unused_id
    FROM pgtq._job_id_seq AS s;
    DELETE FROM pgtq._ready_mark_low AS l WHERE l.queue = _raise_mark.queue;
    SELECT r.priority, r.id INTO first_priority, first_id
    FROM pgtq._job AS r
    WHERE r.queue = _raise_mark.queue AND r.state = 'ready' AND r.lock_key IS NULL
    ORDER BY r.priority DESC, r.id
    LIMIT 1;
    IF NOT FOUND THEN
        IF (SELECT b.lease_expires_at FROM pgtq._job AS b
            WHERE b.queue = _raise_mark.queue AND b.state = 'running'
            ORDER BY b.lease_expires_at
            LIMIT 1) IS NULL THEN  -- no running job (ordered: job_running_idx serves it)
            DELETE FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue;
            RETURN;
        END IF;
        first_priority := coalesce(mark.priority, 0);
        first_id := unused_id;
    END IF;
    first_id := least(first_id, unused_id);
    IF mark.queue IS NULL THEN
        INSERT INTO pgtq._ready_mark (queue, priority, low_id, next_low_id, set_at)
        VALUES (_raise_mark.queue, first_priority, 0, first_id, clock_timestamp())
        ON CONFLICT ON CONSTRAINT ready_mark_pkey DO NOTHING;
    ELSE
        UPDATE pgtq._ready_mark AS m
        SET priority = first_priority,
            low_id = CASE WHEN first_priority = mark.priority THEN least(mark.next_low_id, first_id) ELSE 0 END,
            next_low_id = first_id,
            set_at = clock_timestamp()
        WHERE m.queue = _raise_mark.queue;
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
