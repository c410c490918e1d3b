-- pgtq 0.32.0 -> 0.33.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_33_0. Every definition here is the one of sql/pgtq.sql at
-- 0.33.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- A keyed pop past the first 64 ready jobs of a queue of more than 64 lock
-- keys walked on through the queue's ready jobs, job by job, to the end if
-- need be: past one busy key flooded with 100,000 waiting jobs, in a queue
-- of 100 other keys, 26 ms a pop. Where the first 64 jobs met fewer than
-- 64 keys, the walk now reads 4,096 jobs first; if it has not found its
-- jobs there, a loose scan reads up to 1,025 of the queue's keys, and if
-- that was every key, the pop takes the first job of each key it has not
-- met, as 0.32.0 did for a queue of at most 64 keys (_choose_keyed). No
-- index changes.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.33.0'::text $$;

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
-- running elsewhere). The walk reads the queue's first 64 ready jobs, the
-- first of job_ready_idx (no key) and of job_keyed_ready_idx merged; a pop
-- that finds its jobs there runs nothing more. If those 64 met fewer than
-- 64 keys, a loose scan of the queue's keys (one probe of
-- job_queue_key_ready_idx per key) reads up to 65 of them; if that was
-- every key, the pop takes the first job of each key it has not met,
-- beside the next jobs without a key, in pop's order (0.32.0): such a pop
-- costs the keys, however many jobs wait behind each (a pop past 100,000
-- jobs of 5 busy keys: 25 ms at 0.31.0, 0.5 ms). Otherwise it walks on,
-- job by job: the jobs taken and keys met, and the keys the queue's own
-- running jobs hold (read once from job_running_idx), are left out by
-- look-ups in hashed sets; a job of another key is probed. Where the first
-- 64 met fewer than 64 keys (a few keys ahead of the others, say one
-- flooded), the walk first reads 4,096 jobs; if it has not found its jobs
-- there and more wait (the backend's count of the entries it read says so,
-- pg_stat_get_xact_tuples_returned), the scan reads on up to 1,025 keys,
-- and if that was every key, the pop takes their first jobs as above; else
-- it walks on to the end (0.33.0: until 0.32.0 such a queue of more than
-- 64 keys was walked to the end, 26 ms a pop past 100,000 jobs of one busy
-- key, and 100 other keys). A probe per key costs 4 to 5 us, a step of the
-- walk 0.2 to 0.4: the scan pays where a few keys hold long backlogs, the
-- walk where many keys hold short ones (63 ms against 6.5 past 10,000 busy
-- keys of one waiting job each). Until 0.30.0 every step of the walk was a
-- probe. The walk stops once it has n jobs (pop's enable_bitmapscan off,
-- 0.20.0; as any FOR loop, it reads its query's rows ten at a time).
-- Needs READ COMMITTED (PT007).
CREATE OR REPLACE FUNCTION pgtq._choose_keyed(queue text, n integer, as_of timestamptz)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    met        text[] := '{}';      -- the lock keys looked at
    chosen     bigint[] := '{}';
    missed     integer := 0;        -- jobs whose row another transaction holds
    candidate  record;
    walked     integer := 0;        -- the ready jobs the first part met
    firsts     bigint[] := '{}';    -- the first ready job of each key the scan read
    more       bigint[];
    scanned_to text := '';          -- the last key the scan read ('': none; a key is never empty)
    scan_to    integer;             -- the keys the scan may have read
    all_keys   boolean := false;    -- the scan read every key of the queue
    bounded    boolean := false;    -- the walk reads at most 4,096 jobs
    entries_read bigint;            -- ready-index entries read before the bounded walk
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
        FROM ((SELECT w.id, w.lock_key, w.priority
               FROM pgtq._job AS w
               WHERE w.queue = _choose_keyed.queue AND w.state = 'ready' AND w.lock_key IS NULL
               ORDER BY w.priority DESC, w.id
               LIMIT 64)
              UNION ALL
              (SELECT w.id, w.lock_key, w.priority
               FROM pgtq._job AS w
               WHERE w.queue = _choose_keyed.queue AND w.state = 'ready' AND w.lock_key IS NOT NULL
               ORDER BY w.priority DESC, w.id
               LIMIT 64)
              ORDER BY priority DESC, id
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
        IF NOT FOUND THEN
            missed := missed + 1;
            CONTINUE;
        END IF;
        chosen := chosen || candidate.id;
        IF cardinality(chosen) >= _choose_keyed.n THEN
            RETURN chosen;
        END IF;
    END LOOP;
    IF walked < 64 THEN
        RETURN chosen;  -- that was every ready job of the queue
    END IF;
    -- The rest. The first 64 met fewer than 64 keys: the queue's keys, up
    -- to 65; if that was all of them, their first jobs. If not, 4,096
    -- jobs of the walk, then the keys again, up to 1,025.
    bounded := cardinality(met) < 64;
    scan_to := CASE WHEN bounded THEN 65 ELSE 0 END;
    LOOP
        IF scan_to > cardinality(firsts) THEN
            -- A loose scan of job_queue_key_ready_idx from the last key
            -- read: the first ready job of each next key, one probe per key
            -- (4 to 5 us), however many jobs wait behind it.
            SELECT coalesce(array_agg(scan.id), '{}'), max(scan.lock_key), count(*) < scan_to - cardinality(firsts)
            INTO more, scanned_to, all_keys
            FROM (WITH RECURSIVE first_of_key AS (
                      (SELECT k.lock_key, k.id
                       FROM pgtq._job AS k
                       WHERE k.queue = _choose_keyed.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL
                         AND k.lock_key > scanned_to
                       ORDER BY k.lock_key, k.priority DESC, k.id
                       LIMIT 1)
                      UNION ALL
                      SELECT after.lock_key, after.id
                      FROM first_of_key AS f
                      CROSS JOIN LATERAL (SELECT k.lock_key, k.id
                                          FROM pgtq._job AS k
                                          WHERE k.queue = _choose_keyed.queue AND k.state = 'ready'
                                            AND k.lock_key IS NOT NULL AND k.lock_key > f.lock_key
                                          ORDER BY k.lock_key, k.priority DESC, k.id
                                          LIMIT 1) AS after
                  )
                  SELECT first_of_key.lock_key, first_of_key.id
                  FROM first_of_key
                  LIMIT scan_to - cardinality(firsts)) AS scan;
            firsts := firsts || more;
            EXIT WHEN all_keys;
        END IF;
        -- The walk: the jobs taken and keys looked at, and the keys the
        -- queue's running jobs hold, left out by look-ups in hashed sets
        -- (bounded: after its LIMIT, which then counts the jobs walked;
        -- else at each index scan).
        IF bounded THEN
            -- The entries of the two ready indexes read so far in this
            -- transaction (the backend counts them as it reads).
            entries_read := pg_stat_get_xact_tuples_returned('pgtq.job_ready_idx'::regclass)
                            + pg_stat_get_xact_tuples_returned('pgtq.job_keyed_ready_idx'::regclass);
        END IF;
        -- One statement, two forms, the one `bounded` names (a one-time
        -- filter each): a FOR loop fetches ten rows at a time, a cursor's
        -- FETCH one (about 6 us more a job taken).
        FOR candidate IN
            SELECT w.id, w.lock_key,
                   w.lock_key IS NOT NULL
                   AND EXISTS (SELECT FROM pgtq._job AS r
                               WHERE r.lock_key = w.lock_key
                                 AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
                                 AND r.lease_expires_at > _choose_keyed.as_of) AS busy
            FROM ((SELECT u.id, u.lock_key, u.priority
                   FROM pgtq._job AS u
                   WHERE u.queue = _choose_keyed.queue AND u.state = 'ready' AND u.lock_key IS NULL
                   ORDER BY u.priority DESC, u.id)
                  UNION ALL
                  (SELECT k.id, k.lock_key, k.priority
                   FROM pgtq._job AS k
                   WHERE k.queue = _choose_keyed.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL
                   ORDER BY k.priority DESC, k.id)
                  ORDER BY priority DESC, id
                  LIMIT 4096) AS w
            WHERE bounded
              AND w.id NOT IN (SELECT unnest(chosen))
              AND (w.lock_key IS NULL
                   OR (w.lock_key NOT IN (SELECT unnest(met))
                       AND w.lock_key NOT IN (SELECT h.lock_key FROM pgtq._job AS h
                                              WHERE h.queue = _choose_keyed.queue AND h.state = 'running'
                                                AND h.lease_expires_at > _choose_keyed.as_of
                                                AND h.lock_key IS NOT NULL)))
            UNION ALL
            SELECT c.id, c.lock_key,
                   c.lock_key IS NOT NULL
                   AND EXISTS (SELECT FROM pgtq._job AS r
                               WHERE r.lock_key = c.lock_key
                                 AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
                                 AND r.lease_expires_at > _choose_keyed.as_of) AS busy
            FROM ((SELECT u.id, u.lock_key, u.priority
                   FROM pgtq._job AS u
                   WHERE u.queue = _choose_keyed.queue AND u.state = 'ready' AND u.lock_key IS NULL
                     AND u.id NOT IN (SELECT unnest(chosen))
                   ORDER BY u.priority DESC, u.id)
                  UNION ALL
                  (SELECT k.id, k.lock_key, k.priority
                   FROM pgtq._job AS k
                   WHERE k.queue = _choose_keyed.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL
                     AND k.id NOT IN (SELECT unnest(chosen))
                     AND k.lock_key NOT IN (SELECT unnest(met))
                     AND k.lock_key NOT IN (SELECT h.lock_key FROM pgtq._job AS h
                                            WHERE h.queue = _choose_keyed.queue AND h.state = 'running'
                                              AND h.lease_expires_at > _choose_keyed.as_of
                                              AND h.lock_key IS NOT NULL)
                   ORDER BY k.priority DESC, k.id)
                  ORDER BY priority DESC, id) AS c
            WHERE NOT bounded
        LOOP
            IF candidate.lock_key IS NOT NULL THEN
                CONTINUE WHEN candidate.lock_key = ANY (met);
                met := met || candidate.lock_key;
                CONTINUE WHEN candidate.busy;
                CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtextextended(candidate.lock_key, 7247));
                CONTINUE WHEN NOT pgtq._is_next_of_key(candidate.id, candidate.lock_key, _choose_keyed.as_of);
            END IF;
            PERFORM 1 FROM pgtq._job AS j WHERE j.id = candidate.id AND j.state = 'ready' FOR UPDATE SKIP LOCKED;
            IF NOT FOUND THEN
                missed := missed + 1;
                CONTINUE;
            END IF;
            chosen := chosen || candidate.id;
            EXIT WHEN cardinality(chosen) >= _choose_keyed.n;
        END LOOP;
        IF cardinality(chosen) >= _choose_keyed.n OR NOT bounded THEN
            RETURN chosen;  -- enough, or every ready job walked
        END IF;
        -- Fewer than 4,096 entries read: the walk met every ready job of
        -- the queue (the LIMIT stops it only after 4,096 rows, each an
        -- entry). Without the counts (track_counts off) it cannot tell.
        IF current_setting('track_counts')::boolean
           AND pg_stat_get_xact_tuples_returned('pgtq.job_ready_idx'::regclass)
               + pg_stat_get_xact_tuples_returned('pgtq.job_keyed_ready_idx'::regclass)
               - entries_read < 4096 THEN
            RETURN chosen;
        END IF;
        -- 4,096 jobs walked and too few taken: the keys, up to 1,025
        -- (about the cost of 15,000 steps of the walk); if there are
        -- more, the walk goes on through every job.
        scan_to := 1025;
        bounded := false;
    END LOOP;
    -- Every key scanned: the first job of each key not met, and the next
    -- jobs without a key (as many as are still wanted, and as many again
    -- as rows found held above), in pop's order.
    FOR candidate IN
        SELECT c.id, c.lock_key,
               -- A probe per key, in the select list over the sorted
               -- candidates (only those the loop reads are probed): as a
               -- NOT EXISTS in WHERE the planner may join instead, reading
               -- every running job with a lock key.
               c.lock_key IS NOT NULL
               AND EXISTS (SELECT FROM pgtq._job AS r
                           WHERE r.lock_key = c.lock_key
                             AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
                             AND r.lease_expires_at > _choose_keyed.as_of) AS busy
        FROM (SELECT j.id, j.lock_key, j.priority
              FROM pgtq._job AS j
              WHERE j.id = ANY (firsts) AND j.lock_key <> ALL (met)
              UNION ALL
              (SELECT u.id, NULL, u.priority
               FROM pgtq._job AS u
               WHERE u.queue = _choose_keyed.queue AND u.state = 'ready' AND u.lock_key IS NULL
                 AND u.id <> ALL (chosen)
               ORDER BY u.priority DESC, u.id
               LIMIT _choose_keyed.n - cardinality(chosen) + missed)
              ORDER BY priority DESC, id) AS c
    LOOP
        IF candidate.lock_key IS NOT NULL THEN
            CONTINUE WHEN candidate.busy;
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
