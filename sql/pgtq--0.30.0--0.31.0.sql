-- pgtq 0.30.0 -> 0.31.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_31_0. Every definition here is the one of sql/pgtq.sql at
-- 0.31.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- A pop of a queue with lock keys walks its ready jobs in order and leaves
-- out the jobs of keys that a running job holds. It probed the key's
-- running jobs for every job it passed: 1.1 us a job, 11 ms a pop past
-- 10,000 waiting jobs of 5 busy keys; and a pop that asked for more jobs
-- than there were free keys walked the whole backlog of the keys it had
-- just taken, with a probe each. Past the queue's first 64 ready jobs the
-- walk now starts again in a second statement that leaves out, by
-- look-ups in hashed sets, the jobs and keys the first part met and the
-- keys the queue's running jobs hold (read once): 3 ms past 10,000 jobs,
-- and a drain of 5,000 jobs over 10 keys by pop(25) at 4,500 jobs/s
-- instead of 1,900. A pop that finds its jobs among the first 64 runs as
-- before and reads no running job.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.31.0'::text $$;

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
-- job_lock_key_leased_idx each (0.23.0: until 0.22.0 the walk first read
-- every running job with a lock key, of every queue, and tested each
-- candidate against all their keys: 31 ms a pop with 20,000 of them
-- running elsewhere). Past the queue's first 64 ready jobs (0.31.0) the
-- walk starts again, in a second statement that leaves out by look-ups in
-- hashed sets the jobs the first part took, the keys it looked at, and the
-- keys that the queue's own running jobs hold with a live lease, read once
-- from job_running_idx; only jobs of other keys are probed. Until 0.30.0
-- each job of a long backlog of busy keys cost each pop a probe: 1.1 us a
-- job, 11 ms a pop past 10,000 jobs of 5 busy keys (3 ms now); and a pop
-- that asked for more jobs than there were free keys walked the whole
-- backlog of the keys it had just taken with a probe each (a drain of
-- 5,000 jobs over 10 keys, pop(25): 1,900 jobs/s, 4,500 now). A pop that
-- finds its jobs among the first 64 runs the first statement alone, as
-- before, and reads no running job. Jobs of a key held only by a running
-- job of another queue still cost a probe each. The walk follows
-- job_ready_idx and stops once it has n jobs (pop's enable_bitmapscan
-- off, 0.20.0; as any FOR loop, it reads its query's rows ten at a time).
-- Needs READ COMMITTED (PT007).
CREATE OR REPLACE FUNCTION pgtq._choose_keyed(queue text, n integer, as_of timestamptz)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    met       text[] := '{}';  -- the lock keys the walk has looked at
    chosen    bigint[] := '{}';
    candidate record;
    walked    integer := 0;    -- the ready jobs the first part met
BEGIN
    PERFORM pgtq._check_read_committed(_choose_keyed.queue);
    -- The first 64 ready jobs, each job of a key with a probe (is a job of
    -- the key running?); a probe per job, not a join: a join reads every
    -- running job before the walk's first row, whose rows it may never need.
    FOR candidate IN
        SELECT f.id, f.lock_key,
               f.lock_key IS NOT NULL
               AND EXISTS (SELECT FROM pgtq._job AS r
                           WHERE r.lock_key = f.lock_key
                             AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running (job_lock_key_leased_idx)
                             AND r.lease_expires_at > _choose_keyed.as_of) AS busy
        FROM (SELECT w.id, w.lock_key
              FROM pgtq._job AS w
              WHERE w.queue = _choose_keyed.queue AND w.state = 'ready'
              ORDER BY w.priority DESC, w.id
              LIMIT 64) AS f
    LOOP
        walked := walked + 1;
        IF candidate.lock_key IS NOT NULL THEN
            CONTINUE WHEN candidate.lock_key = ANY (met);
            met := met || candidate.lock_key;
            CONTINUE WHEN candidate.busy;
            CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtextextended(candidate.lock_key, 7247));
            CONTINUE WHEN NOT pgtq._is_next_of_key(candidate.id, candidate.lock_key, _choose_keyed.as_of);
        END IF;
        PERFORM 1 FROM pgtq._job AS j WHERE j.id = candidate.id AND j.state = 'ready' FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        chosen := chosen || candidate.id;
        IF cardinality(chosen) >= _choose_keyed.n THEN
            RETURN chosen;
        END IF;
    END LOOP;
    IF walked < 64 THEN
        RETURN chosen;  -- that was every ready job of the queue
    END IF;
    -- The rest, walked from the first ready job again: the jobs taken and
    -- the keys looked at above, and the keys that the queue's running jobs
    -- hold (read once), are left out by look-ups in hashed sets; each job
    -- of another key is probed as above. (The steps of the loop above, but
    -- for the count and the probe, which this query makes.)
    FOR candidate IN
        SELECT c.id, c.lock_key
        FROM pgtq._job AS c
        WHERE c.queue = _choose_keyed.queue AND c.state = 'ready'
          AND c.id NOT IN (SELECT unnest(chosen))
          AND (c.lock_key IS NULL
               OR (c.lock_key NOT IN (SELECT unnest(met))
                   AND c.lock_key NOT IN (SELECT h.lock_key FROM pgtq._job AS h
                                          WHERE h.queue = _choose_keyed.queue AND h.state = 'running'
                                            AND h.lease_expires_at > _choose_keyed.as_of
                                            AND h.lock_key IS NOT NULL)
                   AND NOT EXISTS (SELECT FROM pgtq._job AS r
                                   WHERE r.lock_key = c.lock_key
                                     AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
                                     AND r.lease_expires_at > _choose_keyed.as_of)))
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

-- ---------------------------------------------------------------------------
-- Privileges: as at the end of a fresh install (new objects are reachable
-- by PUBLIC until revoked), then the roles' rights again.
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
