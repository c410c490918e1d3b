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
--
-- Each end of a keyed job announced the queue of the key's next job, so
-- every idle worker of the queue popped, and walked its backlog, for one
-- of them to take that job; complete_many_and_pop announced it even when
-- its own pop had just taken it. The end now hands the key's next job to
-- an idle worker's open hand-off offer (_hand_freed_key, by push's rules),
-- and announces nothing for a key that a running job holds again.

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

-- Guarantees: hands the ready job `id`, the next job of the lock key
-- `lock_key` that the caller's transaction freed by ending its running
-- job, to an open hand-off offer of its queue `queue` (0.31.0), and
-- returns whether it did; false when it hands nothing, and then it wrote
-- nothing. The job is claimed as pop would claim it for the offer's
-- worker (the next attempt, a new lease that runs out at now() + the
-- offer's lease), and its claim (pop's columns, as JSON) is notified on
-- the offer's channel at commit: the worker starts it without a claim of
-- its own, and no other idle worker is woken to pop for it. Rolled back,
-- neither the claim nor the notification exists. As a pop does, it takes
-- the key's advisory lock (never waiting) and checks that the job is the
-- key's next and that no running job holds the key (_is_next_of_key),
-- and locks the job's row (SKIP LOCKED). The offers are looked at as
-- _hand_off looks at them, and one transaction hands at most one job,
-- pushed or freed (pgtq.handed_off). It hands nothing when the queue has
-- a pause or a limit (a _queue row: pop alone keeps them), when the
-- transaction began more than a second ago (a lease counted from its
-- start could run out before the worker hears of the job), when the claim
-- does not fit a notification, or when no offer is open; the caller then
-- announces the queue. Until 0.30.0 every end of a keyed job announced
-- the queue: each idle worker of it popped, one took the key's next job,
-- and the others walked the queue's backlog for nothing.
CREATE OR REPLACE FUNCTION pgtq._hand_freed_key(id bigint, queue text, lock_key text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    offer     record;
    next_job  pgtq._job;
    new_lease uuid;
    expires   timestamptz;
    claim     text;
BEGIN
    IF current_setting('pgtq.handed_off', true) = 'on'
       OR abs(extract(epoch FROM clock_timestamp() - now())) > 1
       OR EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = _hand_freed_key.queue)
       OR NOT pg_try_advisory_xact_lock(hashtextextended(_hand_freed_key.lock_key, 7247))
       OR NOT pgtq._is_next_of_key(_hand_freed_key.id, _hand_freed_key.lock_key, now()) THEN
        RETURN false;
    END IF;
    FOR offer IN
        SELECT h.channel, h.space, h.worker, h.lease
        FROM pgtq._handoff AS h
        WHERE _hand_freed_key.queue = ANY (h.queues) AND h.pid <> pg_backend_pid()
        ORDER BY h.pid
    LOOP
        CONTINUE WHEN CASE WHEN pg_try_advisory_lock_shared(offer.space, 0)
                           THEN pg_advisory_unlock_shared(offer.space, 0) ELSE false END;
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(offer.space, 1);
        -- The job's row is locked once an offer is found: a row lock is a
        -- write, which an end with no open offer need not make.
        SELECT j.* INTO next_job FROM pgtq._job AS j
        WHERE j.id = _hand_freed_key.id AND j.state = 'ready'
        FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        new_lease := gen_random_uuid();
        expires := now() + offer.lease;
        claim := json_build_object('id', next_job.id, 'queue', next_job.queue, 'task', next_job.task,
                                   'args', next_job.args, 'kwargs', next_job.kwargs,
                                   'priority', next_job.priority, 'attempt', next_job.attempt + 1,
                                   'max_attempts', next_job.max_attempts, 'lease', new_lease,
                                   'lease_expires_at', expires)::text;
        IF octet_length(claim) >= 8000 THEN
            RETURN false;
        END IF;
        UPDATE pgtq._job AS j
        SET state = 'running',
            attempt = j.attempt + 1,
            lease = new_lease,
            lease_expires_at = expires,
            started_at = now(),
            worker = offer.worker,
            slot = NULL
        WHERE j.id = next_job.id;
        PERFORM pg_notify(offer.channel, claim);
        PERFORM set_config('pgtq.handed_off', 'on', true);
        RETURN true;
    END LOOP;
    RETURN false;
END
$$;

-- Guarantees: _wake_after_end's look, for ends that may free a slot or a
-- lock key (0.30.0: its own function): each of `queues` that has a
-- max_running and ready jobs is announced (_announce, at commit); so is
-- the queue of the next ready job of each of `lock_keys` (NULLs ignored),
-- unless that job was handed to an idle worker's open offer (0.31.0,
-- _hand_freed_key; only where a worker may be waiting, _must_announce),
-- or a running job with a live lease holds the key again (0.31.0: the pop
-- of complete_many_and_pop took the key's next job in the same
-- transaction; until 0.30.0 its queue was announced all the same, and
-- every idle worker of it popped, and walked its backlog, for nothing).
-- The next job of a key is read from job_lock_key_ready_idx, which gives
-- the key's jobs in their order; with sorts off that is the only plan
-- without a sort (jit off with it, as 00-api.sql asks of disabled plans).
-- Until 0.29.0 a session that planned it while the job table was empty
-- could take job_ready_idx instead, every ready job of every queue at
-- each end of a keyed job (11,970 entries a complete, against 6).
CREATE OR REPLACE FUNCTION pgtq._announce_freed(queues text[], lock_keys text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_sort = off
SET jit = off
AS $$
DECLARE
    freed record;  -- a freed key's next ready job
BEGIN
    PERFORM pgtq._announce(f.queue)
    FROM pgtq._queue AS f
    WHERE f.queue = ANY (_announce_freed.queues)
      AND f.max_running IS NOT NULL
      AND EXISTS (SELECT 1 FROM pgtq._job AS r WHERE r.queue = f.queue AND r.state = 'ready');
    FOR freed IN
        SELECT n.id, n.queue, k.key
        FROM (SELECT DISTINCT u.key FROM unnest(_announce_freed.lock_keys) AS u (key)
              WHERE u.key IS NOT NULL) AS k
        CROSS JOIN LATERAL (SELECT h.id, h.queue FROM pgtq._job AS h
                            WHERE h.lock_key = k.key AND h.state = 'ready'
                            ORDER BY h.priority DESC, h.id
                            LIMIT 1) AS n
    LOOP
        CONTINUE WHEN NOT pgtq._must_announce(freed.queue);
        -- A key that a running job holds again wakes nobody: the pop of
        -- complete_many_and_pop, in this transaction, took its next job.
        CONTINUE WHEN EXISTS (SELECT 1 FROM pgtq._job AS r
                              WHERE r.lock_key = freed.key
                                AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
                                AND r.lease_expires_at > now());
        IF NOT pgtq._hand_freed_key(freed.id, freed.queue, freed.key) THEN
            PERFORM pg_notify('pgtq', freed.queue);
        END IF;
    END LOOP;
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
