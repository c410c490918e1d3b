-- pgtq 0.10.0 -> 0.11.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_11_0. Every definition here is the one of sql/pgtq.sql at
-- 0.11.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- A lease that ran out can no longer come back beside the job that took
-- its place. Up to 0.10.0 a heartbeat whose as_of came before a lease ran
-- out, but which committed after a pop had counted that lease as gone,
-- extended it: the pop had given the job's slot of a max_running queue
-- (or its lock key) to another job, and both then ran. A heartbeat of a
-- job with a lock key also brought a lease back that had already run out.
-- Now a pop that counts a lapsed job as gone first writes it off
-- (_write_off_lapsed, _write_off_lapsed_keys: slot 0, without waiting for
-- rows that another transaction is writing, which still count), and no
-- heartbeat extends the lease of a job written off, nor a lapsed lease of
-- a job with a lock key. Pops of queues without max_running and of jobs
-- without a lock key, and every other call, are unchanged.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.11.0'::text $$;

-- ===========================================================================
-- Writing off lapsed jobs, and the pops and heartbeats that rely on it
-- ===========================================================================

-- Guarantees: writes off the running jobs of `queue` whose lease ran out
-- as of as_of (0.11.0): sets their slot to 0, so no heartbeat extends
-- their lease again (heartbeat's rule) and their slot and lock key are
-- free for other jobs; tick still rescues them, and their worker may
-- still end them by their lease. A pop of a max_running queue calls it
-- before it counts a lapsed job as gone: without it, a heartbeat that
-- read the lease as live (its as_of before the lapse) but committed after
-- the pop looked could bring the job back beside the one that took its
-- slot. Never waits: a lapsed job whose row another transaction is
-- writing (a heartbeat, or an end) is left as it is (FOR UPDATE SKIP
-- LOCKED). Returns how many such jobs it left: they still count as
-- running. A lapsed job rewritten since the caller's snapshot is judged
-- on its newest version, so a lease a heartbeat extended is not written
-- off. With no lapsed job, the common case, it costs one probe of
-- job_running_idx.
CREATE FUNCTION pgtq._write_off_lapsed(queue text, as_of timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
AS $$
DECLARE
    left_alone bigint;
BEGIN
    IF NOT EXISTS (SELECT 1
                   FROM pgtq._job AS r
                   WHERE r.queue = _write_off_lapsed.queue AND r.state = 'running'
                     AND r.lease_expires_at <= _write_off_lapsed.as_of AND r.slot IS DISTINCT FROM 0) THEN
        RETURN 0;
    END IF;
    UPDATE pgtq._job AS j
    SET slot = 0
    WHERE j.id = ANY (ARRAY(SELECT r.id
                            FROM pgtq._job AS r
                            WHERE r.queue = _write_off_lapsed.queue AND r.state = 'running'
                              AND r.lease_expires_at <= _write_off_lapsed.as_of AND r.slot IS DISTINCT FROM 0
                            FOR UPDATE SKIP LOCKED));
    SELECT count(*) INTO left_alone
    FROM pgtq._job AS r
    WHERE r.queue = _write_off_lapsed.queue AND r.state = 'running'
      AND r.lease_expires_at <= _write_off_lapsed.as_of AND r.slot IS DISTINCT FROM 0;
    RETURN left_alone;
END
$$;

-- Guarantees: _write_off_lapsed for the jobs with a lock key, in every
-- queue (0.11.0): the running jobs with a lock key whose lease ran out as
-- of as_of get slot 0, so their key is free and no heartbeat extends their
-- lease again. Never waits (FOR UPDATE SKIP LOCKED): a job whose row
-- another transaction is writing is left as it is and still holds its
-- key. _choose_keyed calls it before it counts a lapsed job's key free.
CREATE FUNCTION pgtq._write_off_lapsed_keys(as_of timestamptz)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
AS $$
    UPDATE pgtq._job AS j
    SET slot = 0
    WHERE j.id = ANY (ARRAY(SELECT r.id
                            FROM pgtq._job AS r
                            WHERE r.state = 'running' AND r.lock_key IS NOT NULL
                              AND r.lease_expires_at <= _write_off_lapsed_keys.as_of
                              AND r.slot IS DISTINCT FROM 0
                            FOR UPDATE SKIP LOCKED))
$$;

-- Guarantees: _room_of for `queue` once every other pop of it has ended:
-- locks the queue's _queue row (FOR UPDATE, waiting for a pop of the queue
-- that holds it) until the caller's transaction ends, so the room it
-- counts stays true until the claim it allows commits. Pops of one paused
-- or limited queue therefore take turns, and each one counts the jobs the
-- pops before it claimed (it reads the row and counts in statements that
-- start after the lock is granted, so after their commit): several pops
-- at once never run more than max_running jobs, nor start more than
-- rate_limit in a window. With max_running, the running jobs whose lease
-- ran out are written off first (_write_off_lapsed, 0.11.0), and those it
-- had to leave (another transaction was writing their row) still count.
-- Needs READ COMMITTED (PT007). Returns n when the queue has no row
-- (nothing to control, or no longer).
CREATE OR REPLACE FUNCTION pgtq._room(queue text, n integer, as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    flow       pgtq._queue;
    left_alone bigint := 0;  -- lapsed running jobs not written off: they still count
BEGIN
    PERFORM pgtq._check_read_committed(_room.queue);
    SELECT f.* INTO flow FROM pgtq._queue AS f WHERE f.queue = _room.queue FOR UPDATE;
    IF NOT FOUND THEN
        RETURN _room.n;
    END IF;
    IF flow.max_running IS NOT NULL THEN
        left_alone := pgtq._write_off_lapsed(_room.queue, _room.as_of);
    END IF;
    RETURN greatest(pgtq._room_of(flow, _room.n, _room.as_of) - left_alone, 0);
END
$$;

-- Guarantees: as of the call (its statements see every claim that
-- committed before them), the distinct slots in 1..capacity that the
-- running jobs of `queue` holding a slot have, ascending, and how many
-- running jobs hold one: live > cardinality(filled) when some of them run
-- without a distinct slot in that range. A running job holds a slot while
-- its lease is live at as_of; one whose lease ran out is written off first
-- (_write_off_lapsed, 0.11.0) and holds none, unless another transaction
-- was writing its row: then it still holds its slot. Reads the queue's
-- entries of job_running_idx and their rows; twice when a lease ran out.
CREATE OR REPLACE FUNCTION pgtq._filled_slots(queue text, capacity integer, as_of timestamptz,
                                   OUT filled integer[], OUT live bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    lapsed bigint;  -- running jobs whose lease ran out, not written off
BEGIN
    FOR look IN 1 .. 2 LOOP
        -- A job written off has slot 0: it is neither in `filled` nor live.
        SELECT coalesce(array_agg(DISTINCT r.slot ORDER BY r.slot)
                            FILTER (WHERE r.slot BETWEEN 1 AND _filled_slots.capacity), '{}'),
               count(*) FILTER (WHERE r.lease_expires_at > _filled_slots.as_of OR r.slot IS DISTINCT FROM 0),
               count(*) FILTER (WHERE r.lease_expires_at <= _filled_slots.as_of AND r.slot IS DISTINCT FROM 0)
        INTO filled, live, lapsed
        FROM pgtq._job AS r
        WHERE r.queue = _filled_slots.queue AND r.state = 'running';
        EXIT WHEN lapsed = 0 OR look = 2;
        PERFORM pgtq._write_off_lapsed(_filled_slots.queue, _filled_slots.as_of);
    END LOOP;
END
$$;

-- Guarantees: true when ready job `id`, of lock key `lock_key`, may start
-- now by the lock-key rule: no running job holds the key (its lease is
-- live at as_of, or it ran out but no pop wrote the job off: 0.11.0), and
-- it is the key's next ready job (highest priority, then first pushed) of
-- all queues. As of the moment it is called (a statement of
-- its own): _choose_keyed calls it holding the key's advisory lock. Two
-- probes of the lock-key indexes.
CREATE OR REPLACE FUNCTION pgtq._is_next_of_key(id bigint, lock_key text, as_of timestamptz)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN NOT EXISTS (SELECT 1 FROM pgtq._job AS r
                       WHERE r.lock_key = _is_next_of_key.lock_key AND r.state = 'running'
                         AND (r.lease_expires_at > _is_next_of_key.as_of OR r.slot IS DISTINCT FROM 0))
           AND (SELECT h.id FROM pgtq._job AS h
                WHERE h.lock_key = _is_next_of_key.lock_key AND h.state = 'ready'
                ORDER BY h.priority DESC, h.id
                LIMIT 1) = _is_next_of_key.id;
END
$$;

-- Guarantees: chooses up to n ready jobs of `queue` that may start now by
-- the lock-key rule, locks their rows (FOR UPDATE SKIP LOCKED) and returns
-- their ids, for pop to claim. It walks the queue's ready jobs in pop's
-- order (highest priority first, then push order) and takes every job
-- without a lock key, and for each lock key at most one job: the key's
-- next one (_is_next_of_key), while no job of the key runs. A running job
-- whose lease ran out holds its key until a pop writes it off, which this
-- one does first (_write_off_lapsed_keys, 0.11.0). So the jobs of
-- one key start one at a time, in their order (priority, then push order)
-- across all queues; a key that is busy, or whose next job is in another
-- queue, is skipped with all its jobs, and the jobs after them are taken:
-- no head-of-line blocking. Two pops never start two jobs of one key: a
-- pop takes the key's transaction-level advisory lock
-- (pg_try_advisory_xact_lock(hashtextextended(key, 7247)), never waiting:
-- a key another pop holds is skipped) before it checks the key, as of
-- that moment; the lock lasts until the claim commits, after which the
-- running job holds the key. (Two keys sharing the 64-bit hash only skip
-- each other now and then.) Keys that run a job are left out of the walk
-- itself; the walk still steps over the other blocked jobs one by one, so
-- a long backlog of one key ahead of the rest costs each pop about a
-- microsecond per job. Needs READ COMMITTED (PT007).
CREATE OR REPLACE FUNCTION pgtq._choose_keyed(queue text, n integer, as_of timestamptz)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    busy      text[];
    lapsed    bigint;  -- running jobs with a key whose lease ran out, not written off
    met       text[] := '{}';
    chosen    bigint[] := '{}';
    candidate record;
BEGIN
    PERFORM pgtq._check_read_committed(_choose_keyed.queue);
    FOR look IN 1 .. 2 LOOP
        SELECT coalesce(array_agg(r.lock_key), '{}'),
               count(*) FILTER (WHERE r.lease_expires_at <= _choose_keyed.as_of)
        INTO busy, lapsed
        FROM pgtq._job AS r
        WHERE r.state = 'running' AND r.lock_key IS NOT NULL
          AND (r.lease_expires_at > _choose_keyed.as_of OR r.slot IS DISTINCT FROM 0);
        EXIT WHEN lapsed = 0 OR look = 2;
        PERFORM pgtq._write_off_lapsed_keys(_choose_keyed.as_of);
    END LOOP;
    FOR candidate IN
        SELECT c.id, c.lock_key
        FROM pgtq._job AS c
        WHERE c.queue = _choose_keyed.queue AND c.state = 'ready'
          AND (c.lock_key IS NULL OR c.lock_key <> ALL (busy))
        ORDER BY c.priority DESC, c.id
    LOOP
        IF candidate.lock_key IS NOT NULL THEN
            CONTINUE WHEN candidate.lock_key = ANY (met);
            met := met || candidate.lock_key;
            CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtextextended(candidate.lock_key, 7247));
            CONTINUE WHEN NOT pgtq._is_next_of_key(candidate.id, candidate.lock_key, _choose_keyed.as_of);
        END IF;
        PERFORM 1 FROM pgtq._job AS j WHERE j.id = candidate.id AND j.state = 'ready' FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        chosen := chosen || candidate.id;
        EXIT WHEN cardinality(chosen) >= _choose_keyed.n;
    END LOOP;
    RETURN chosen;
END
$$;

-- Guarantees: extends the lease of a running job to as_of + extend_by, if
-- `lease` is still its current lease; returns whether it did. A worker
-- calls it while a long handler runs so tick never rescues a live job.
-- It never shortens a lease. A lease that already ran out (as of as_of)
-- is extended only when the job's queue has no max_running (0.9.0) and
-- the job has no lock key (0.11.0): the job stopped counting against the
-- limit, and stopped holding its key, when its lease ran out, and its slot
-- or key may have gone to another job since, so bringing it back to life
-- could run more than max_running jobs at once, or two jobs of one key
-- (the chaos suite's limited run caught this after a server restart). Nor
-- is a lease extended once a pop wrote its job off (0.11.0: slot 0, see
-- _write_off_lapsed): that pop saw the lease run out (as of its own
-- as_of, which may be later than this call's) and may have given the slot
-- or key away. A heartbeat that writes the row first makes the pop see the
-- extended lease instead; one that comes after waits for the pop's commit
-- and then extends nothing. The worker then learns that it lost the job,
-- and tick hands it on. A NULL id, lease or as_of, or an extend_by
-- outside (0, 100 years], raises PT004. heartbeat_many does the same for a
-- batch and also reports cancel requests.
CREATE OR REPLACE FUNCTION pgtq.heartbeat(id bigint,
                               lease uuid,
                               extend_by interval DEFAULT '5 minutes',
                               as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
AS $$
BEGIN
    IF heartbeat.id IS NULL OR heartbeat.lease IS NULL THEN
        PERFORM pgtq._reject_claim('heartbeat', heartbeat.id, heartbeat.lease);
    END IF;
    IF heartbeat.extend_by IS NULL OR heartbeat.extend_by <= interval '0'
       OR heartbeat.extend_by > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: extend_by must be a positive interval of at most 100 years, got %',
                coalesce(heartbeat.extend_by::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(heartbeat.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', heartbeat.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET lease_expires_at = greatest(j.lease_expires_at, heartbeat.as_of + heartbeat.extend_by)
    WHERE j.id = heartbeat.id
      AND j.lease = heartbeat.lease  -- so running (job_running_has_lease_ck)
      AND j.slot IS DISTINCT FROM 0  -- not written off by a pop
      AND (j.lease_expires_at > heartbeat.as_of
           OR j.lock_key IS NULL
              AND NOT EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = j.queue AND f.max_running IS NOT NULL));
    RETURN FOUND;
END
$$;

-- Guarantees: heartbeat() for a whole batch in one statement, and how a
-- worker learns of cancel requests at no extra cost. For each pair
-- (ids[i], leases[i]) it extends that job's lease to as_of + extend_by
-- (never shortening it) if the lease is still the job's current one (and
-- no pop wrote the job off, and, in a queue with max_running or for a job
-- with a lock key, the lease has not run out: heartbeat's rules), and
-- returns one row per pair, in the order given:
--   held              the lease is current: the worker still holds the job;
--   cancel_requested  cancel() was called on the job: stop its handler;
--                     whatever the worker reports next ends it cancelled.
-- A job asked to cancel still gets its lease extended, so tick does not
-- rescue it while its handler stops. A worker that LISTENs on pgtq_cancel
-- learns sooner. The arrays must have the same length (at most 10,000)
-- and extend_by lie in (0, 100 years]; otherwise, or with a NULL or
-- infinite as_of, it raises PT004 and extends nothing.
CREATE OR REPLACE FUNCTION pgtq.heartbeat_many(ids bigint[],
                                    leases uuid[],
                                    extend_by interval DEFAULT '5 minutes',
                                    as_of timestamptz DEFAULT now())
RETURNS TABLE (id bigint, held boolean, cancel_requested boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
AS $$
BEGIN
    IF heartbeat_many.ids IS NULL OR heartbeat_many.leases IS NULL
       OR cardinality(heartbeat_many.ids) <> cardinality(heartbeat_many.leases)
       OR cardinality(heartbeat_many.ids) > 10000 THEN
        RAISE EXCEPTION 'pgtq: heartbeat_many needs ids and leases of one length of at most 10000, '
                        'got % ids and % leases',
                coalesce(cardinality(heartbeat_many.ids)::text, 'NULL'),
                coalesce(cardinality(heartbeat_many.leases)::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF heartbeat_many.extend_by IS NULL OR heartbeat_many.extend_by <= interval '0'
       OR heartbeat_many.extend_by > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: extend_by must be a positive interval of at most 100 years, got %',
                coalesce(heartbeat_many.extend_by::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(heartbeat_many.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', heartbeat_many.as_of);
    END IF;
    RETURN QUERY
    WITH claim AS (
        SELECT c.id, c.lease, c.position
        FROM unnest(heartbeat_many.ids, heartbeat_many.leases) WITH ORDINALITY AS c (id, lease, position)
    ), beaten AS (
        UPDATE pgtq._job AS j
        SET lease_expires_at = greatest(j.lease_expires_at, heartbeat_many.as_of + heartbeat_many.extend_by)
        FROM claim
        WHERE j.id = claim.id
          AND j.lease = claim.lease  -- so running (job_running_has_lease_ck)
          AND j.slot IS DISTINCT FROM 0  -- not written off by a pop
          AND (j.lease_expires_at > heartbeat_many.as_of
               OR j.lock_key IS NULL
                  AND NOT EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = j.queue AND f.max_running IS NOT NULL))
        RETURNING j.id, j.lease, j.cancel_requested_at IS NOT NULL AS asked
    )
    SELECT claim.id, beaten.id IS NOT NULL, coalesce(beaten.asked, false)
    FROM claim
    LEFT JOIN beaten ON beaten.id = claim.id AND beaten.lease = claim.lease
    ORDER BY claim.position;
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
