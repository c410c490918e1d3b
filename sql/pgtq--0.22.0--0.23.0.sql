-- pgtq 0.22.0 -> 0.23.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_23_0. Every definition here is the one of sql/pgtq.sql at
-- 0.23.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- A pop of a queue with lock keys no longer reads every running job with a
-- lock key, of every queue (_choose_keyed): it probes, per candidate, for
-- a running job of its key with a live lease, and the write-off of lapsed
-- jobs (0.11.0) is done per key, for the keys the walk looks at
-- (_is_next_of_key, _write_off_lapsed_key). Until 0.22.0 a pop of 25 jobs
-- took 2 ms with no keyed job running elsewhere and 31 ms with 20,000.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.23.0'::text $$;

-- Guarantees: _write_off_lapsed for the running jobs of lock key
-- `lock_key` (0.23.0; 0.11.0 to 0.22.0 wrote off every lock key's at each
-- pop, _write_off_lapsed_keys): those whose lease ran out as of as_of get
-- slot 0, so the key is free and no heartbeat extends their lease again.
-- Never waits (FOR UPDATE SKIP LOCKED): a job whose row another
-- transaction is writing is left as it is and still holds its key. With
-- _is_next_of_key calls it when the key has such a job, before it counts
-- the key free.
CREATE FUNCTION pgtq._write_off_lapsed_key(lock_key text, as_of timestamptz)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
    UPDATE pgtq._job AS j
    SET slot = 0
    WHERE j.id = ANY (ARRAY(SELECT r.id
                            FROM pgtq._job AS r
                            WHERE r.lock_key = _write_off_lapsed_key.lock_key AND r.state = 'running'
                              AND r.lease_expires_at <= _write_off_lapsed_key.as_of
                              AND r.slot IS DISTINCT FROM 0
                            FOR UPDATE SKIP LOCKED))
$$;

-- Guarantees: true when ready job `id`, of lock key `lock_key`, may start
-- now by the lock-key rule: no running job holds the key (its lease is
-- live at as_of, or it ran out but no pop wrote the job off: 0.11.0), and
-- it is the key's next ready job (highest priority, then first pushed) of
-- all queues. As of the moment it is called (statements of its own):
-- _choose_keyed calls it holding the key's advisory lock. The key's
-- running jobs whose lease ran out are written off first
-- (_write_off_lapsed_key; 0.23.0: until 0.22.0 _choose_keyed wrote off
-- every key's before its walk). Two probes of the lock-key indexes when
-- no lapsed job holds the key.
CREATE OR REPLACE FUNCTION pgtq._is_next_of_key(id bigint, lock_key text, as_of timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    held_until timestamptz;  -- the latest lease of the running jobs that hold the key
BEGIN
    SELECT max(r.lease_expires_at) INTO held_until
    FROM pgtq._job AS r
    WHERE r.lock_key = _is_next_of_key.lock_key AND r.state = 'running'
      AND (r.lease_expires_at > _is_next_of_key.as_of OR r.slot IS DISTINCT FROM 0);
    IF held_until IS NOT NULL THEN
        IF held_until > _is_next_of_key.as_of THEN
            RETURN false;  -- a live lease holds it
        END IF;
        -- Only lapsed jobs hold it: write them off, and look again.
        PERFORM pgtq._write_off_lapsed_key(_is_next_of_key.lock_key, _is_next_of_key.as_of);
        IF EXISTS (SELECT 1 FROM pgtq._job AS r
                   WHERE r.lock_key = _is_next_of_key.lock_key AND r.state = 'running'
                     AND (r.lease_expires_at > _is_next_of_key.as_of OR r.slot IS DISTINCT FROM 0)) THEN
            RETURN false;  -- one was being written by another transaction: it still holds the key
        END IF;
    END IF;
    RETURN (SELECT h.id FROM pgtq._job AS h
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
-- whose lease ran out holds its key until a pop writes it off, which
-- _is_next_of_key does for the keys it looks at (0.11.0). So the jobs of
-- one key start one at a time, in their order (priority, then push order)
-- across all queues; a key that is busy, or whose next job is in another
-- queue, is skipped with all its jobs, and the jobs after them are taken:
-- no head-of-line blocking. Two pops never start two jobs of one key: a
-- pop takes the key's transaction-level advisory lock
-- (pg_try_advisory_xact_lock(hashtextextended(key, 7247)), never waiting:
-- a key another pop holds is skipped) before it checks the key, as of
-- that moment; the lock lasts until the claim commits, after which the
-- running job holds the key. (Two keys sharing the 64-bit hash only skip
-- each other now and then.) Jobs whose key a running job holds with a
-- live lease are left out of the walk itself, by one probe of
-- job_lock_key_running_idx each (0.23.0: until 0.22.0 the walk first read
-- every running job with a lock key, of every queue, and tested each
-- candidate against all their keys: 31 ms a pop with 20,000 of them
-- running elsewhere). A long backlog of one busy key ahead of the rest
-- costs each pop that probe per job. The walk follows job_ready_idx and
-- stops once it has n jobs (pop's enable_bitmapscan off, 0.20.0). Needs
-- READ COMMITTED (PT007).
CREATE OR REPLACE FUNCTION pgtq._choose_keyed(queue text, n integer, as_of timestamptz)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    met       text[] := '{}';
    chosen    bigint[] := '{}';
    candidate record;
BEGIN
    PERFORM pgtq._check_read_committed(_choose_keyed.queue);
    FOR candidate IN
        SELECT c.id, c.lock_key
        FROM pgtq._job AS c
        WHERE c.queue = _choose_keyed.queue AND c.state = 'ready'
          -- A probe per candidate, not a join: a join reads every running
          -- job before the walk's first row, whose rows it may never need.
          AND (c.lock_key IS NULL
               OR (SELECT r.id FROM pgtq._job AS r
                   WHERE r.lock_key = c.lock_key AND r.state = 'running'
                     AND r.lease_expires_at > _choose_keyed.as_of
                   LIMIT 1) IS NULL)
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

DROP FUNCTION pgtq._write_off_lapsed_keys(timestamptz);

-- ---------------------------------------------------------------------------
-- Privileges: as at the end of a fresh install (new objects are reachable
-- by PUBLIC until revoked), then the roles' rights again.
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
