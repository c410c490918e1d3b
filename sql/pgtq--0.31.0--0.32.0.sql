-- pgtq 0.31.0 -> 0.32.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_32_0. Every definition here is the one of sql/pgtq.sql at
-- 0.32.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- Jobs with a lock key leave job_ready_idx, whose predicate gains
-- `lock_key IS NULL`: a pop of a keyed queue that asked for more jobs than
-- there were free keys (a worker's does) stepped over the whole backlog of
-- the busy keys, job by job, at every pop (2.3 to 3.9 ms past 10,000 jobs
-- of 5 busy keys, 25 ms past 100,000). Their jobs are in
-- job_keyed_ready_idx, now in pop's order (queue, priority DESC, id), and
-- in the new job_queue_key_ready_idx (queue, lock_key, priority DESC, id),
-- from which a pop past the first 64 ready jobs of a queue of at most 64
-- keys reads the first job of each key with one probe per key
-- (_choose_keyed): such a pop costs the queue's keys, not their jobs (0.2
-- ms past 10,000, 0.5 ms past 100,000). A queue of more keys is walked on as
-- before (a probe per key costs ten steps of the walk). A queue without
-- keys reads the same entries as before. The statements that read a
-- queue's ready jobs whatever their key read both indexes: the look for
-- ready jobs of a limited queue (tick, _announce_freed), the counts of
-- pgtq.queues, metrics() and the history (_sample_history), and
-- health()'s look for queues with ready jobs (_health_queues).
--
-- Rebuilding the two indexes and building the new one reads the job table
-- (each build once), under a lock that holds writes to the table back
-- meanwhile.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.32.0'::text $$;

DROP INDEX pgtq.job_ready_idx;
DROP INDEX pgtq.job_keyed_ready_idx;

-- pop: the next ready job of a queue, highest priority first, then push
-- order. Jobs with a lock key are not in it (0.32.0), but in the two keyed
-- indexes below: a pop of a queue without keys reads the same entries as
-- before, and one of a keyed queue no longer steps over the backlog of its
-- busy keys to find the jobs without a key.
CREATE INDEX job_ready_idx ON pgtq._job (queue, priority DESC, id)
    WHERE state = 'ready' AND lock_key IS NULL;

-- pop: does the queue have ready jobs with a lock key (its keyed path),
-- and which come first, in pop's order (0.32.0; until 0.31.0 by queue
-- alone, with the keyed jobs also in job_ready_idx)?
CREATE INDEX job_keyed_ready_idx ON pgtq._job (queue, priority DESC, id)
    WHERE state = 'ready' AND lock_key IS NOT NULL;

-- pop of a keyed queue of at most 64 keys past its first jobs: the first
-- ready job of each of the queue's lock keys, one probe per key (a loose
-- index scan), so such a pop costs its keys, not their jobs (0.32.0).
CREATE INDEX job_queue_key_ready_idx ON pgtq._job (queue, lock_key, priority DESC, id)
    WHERE state = 'ready' AND lock_key IS NOT NULL;

-- Every known queue: one that is paused or has a limit (pause,
-- configure_queue), and one that has live jobs (scheduled, ready or
-- running). Its pause and its limits (NULL: none), and what counts
-- against them now: `running`, its running jobs whose lease is live (what
-- max_running bounds: a job whose lease ran out no longer counts, even
-- before tick rescues it), and `rate_used`, the jobs started in its rate
-- window (what rate_limit bounds; NULL without a rate limit: see
-- _rate_slot). `ready` and `scheduled` are its backlog. One pass over
-- the live jobs (their partial indexes), as pgtq.metrics() makes.
CREATE OR REPLACE VIEW pgtq.queues AS
WITH live AS (
    SELECT l.queue,
           count(*) FILTER (WHERE l.state = 'scheduled') AS scheduled,
           count(*) FILTER (WHERE l.state = 'ready') AS ready,
           count(*) FILTER (WHERE l.state = 'running' AND l.lease_expires_at > now()) AS running
    FROM (SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j WHERE j.state = 'scheduled'
          UNION ALL
          SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j
          WHERE j.state = 'ready' AND j.lock_key IS NULL  -- job_ready_idx
          UNION ALL
          SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j
          WHERE j.state = 'ready' AND j.lock_key IS NOT NULL  -- job_keyed_ready_idx
          UNION ALL
          SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j WHERE j.state = 'running') AS l
    GROUP BY l.queue
)
SELECT coalesce(f.queue, live.queue) AS queue,
       f.paused_at IS NOT NULL AS paused,
       f.paused_at,
       f.max_running,
       f.rate_limit,
       f.rate_period,
       coalesce(live.running, 0) AS running,
       CASE WHEN f.rate_limit IS NOT NULL THEN
           (SELECT coalesce(sum(w.jobs), 0)
            FROM pgtq._rate_start AS w
            WHERE w.queue = f.queue
              AND w.slot >= floor(extract(epoch FROM now()) * 100 / extract(epoch FROM f.rate_period))::bigint - 100)
       END AS rate_used,
       coalesce(live.ready, 0) AS ready,
       coalesce(live.scheduled, 0) AS scheduled,
       f.updated_at AS configured_at
FROM pgtq._queue AS f
FULL JOIN live ON live.queue = f.queue;
COMMENT ON VIEW pgtq.queues IS
    'Every queue that is paused, has a limit or has live jobs: its pause, max_running, rate limit, what '
    'counts against them now, and its backlog.';

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
-- that finds its jobs there runs nothing more. Past them, a queue of at
-- most 64 keys (0.32.0) has the first job of each key it has not met read
-- by a loose scan of job_queue_key_ready_idx, one probe per key, beside
-- the next jobs without a key, taken in pop's order: such a pop costs the
-- keys, however many jobs wait behind each (a pop past 100,000 jobs of 5
-- busy keys: 25 ms at 0.31.0, 0.5 ms). A queue of more keys is walked on,
-- job by job, as in 0.31.0: the jobs taken and keys met, and the keys the
-- queue's own running jobs hold (read once from job_running_idx), are
-- left out by look-ups in hashed sets; a job of another key is probed. (A
-- probe per key costs 4 to 5 us, a step of the walk 0.3 to 0.4: with many
-- keys of short backlogs the loose scan cost ten times the walk, 63 ms
-- against 6.5 past 10,000 busy keys of one waiting job each.) Until 0.30.0
-- every step of the walk was a probe (11 ms a pop past 10,000 jobs of 5
-- busy keys). A pop that asked for more jobs than there were free keys,
-- as a worker's does, walked the whole backlog every time. The walk stops
-- once it has n jobs (pop's enable_bitmapscan off, 0.20.0; as any FOR
-- loop, it reads its query's rows ten at a time). Needs READ COMMITTED
-- (PT007).
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
    firsts    bigint[];        -- the first ready job of each of the queue's lock keys, if at most 64 keys
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
        CONTINUE WHEN NOT FOUND;
        chosen := chosen || candidate.id;
        IF cardinality(chosen) >= _choose_keyed.n THEN
            RETURN chosen;
        END IF;
    END LOOP;
    IF walked < 64 THEN
        RETURN chosen;  -- that was every ready job of the queue
    END IF;
    -- The rest. A queue of at most 64 lock keys (the first part met fewer
    -- than 64, and a loose scan of job_queue_key_ready_idx finds at most
    -- 64, a probe each): the first ready job of each key it has not
    -- met, and the next jobs without a key, in pop's order; the jobs behind
    -- each key are never read. A queue of more keys: the walk goes on
    -- through its ready jobs (both indexes, merged), leaving out by
    -- look-ups in hashed sets the jobs taken and the keys looked at above
    -- and the keys that the queue's running jobs hold (read once from
    -- job_running_idx); each job of another key is probed. (A probe per
    -- key costs 4 to 5 us, ten times a step of the walk: the loose scan
    -- pays when keys are few and their backlogs deep, the walk when keys
    -- are many and their backlogs short.)
    IF cardinality(met) < 64 THEN
        SELECT array_agg(scan.id)
        INTO firsts
        FROM (WITH RECURSIVE first_of_key AS (
                  (SELECT k.lock_key, k.id
                   FROM pgtq._job AS k
                   WHERE k.queue = _choose_keyed.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL
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
              SELECT first_of_key.id FROM first_of_key LIMIT 65) AS scan;
    END IF;
    IF coalesce(cardinality(firsts), 65) <= 64 THEN
        FOR candidate IN
            SELECT c.id, c.lock_key, c.busy
            FROM (SELECT j.id, j.lock_key, j.priority,
                         -- A probe per key, in the select list: as a NOT
                         -- EXISTS in WHERE the planner may join instead,
                         -- reading every running job with a lock key.
                         EXISTS (SELECT FROM pgtq._job AS r
                                 WHERE r.lock_key = j.lock_key
                                   AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
                                   AND r.lease_expires_at > _choose_keyed.as_of) AS busy
                  FROM pgtq._job AS j
                  WHERE j.id = ANY (firsts) AND j.lock_key <> ALL (met)
                  UNION ALL
                  (SELECT u.id, NULL, u.priority, false
                   FROM pgtq._job AS u
                   WHERE u.queue = _choose_keyed.queue AND u.state = 'ready' AND u.lock_key IS NULL
                     AND u.id <> ALL (chosen)
                   ORDER BY u.priority DESC, u.id
                   LIMIT _choose_keyed.n)) AS c
            ORDER BY c.priority DESC, c.id
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
    END IF;
    FOR candidate IN
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
    LOOP
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
        EXIT WHEN cardinality(chosen) >= _choose_keyed.n;
    END LOOP;
    RETURN chosen;
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
      -- A ready job without a lock key or with one (0.32.0: two indexes),
      -- each looked for in order, as tick does: two EXISTS joined by OR
      -- may be planned as hashed subplans, which read every ready job of
      -- the table (a plan made on an empty table did).
      AND ((SELECT r.id FROM pgtq._job AS r
            WHERE r.queue = f.queue AND r.state = 'ready' AND r.lock_key IS NULL
            ORDER BY r.priority DESC, r.id
            LIMIT 1) IS NOT NULL
           OR (SELECT r.id FROM pgtq._job AS r
               WHERE r.queue = f.queue AND r.state = 'ready' AND r.lock_key IS NOT NULL
               ORDER BY r.priority DESC, r.id
               LIMIT 1) IS NOT NULL);
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

-- Guarantees: takes the sample of the queue history that is due at as_of,
-- if one is, and returns whether it did. A sample is due at the first
-- tick of each minute (as_of >= next_sample_at), or when the clock went
-- back more than a minute behind the last sample; never while the history
-- is off. Exactly once a minute however many sessions tick: the one-row
-- _sampler is locked FOR UPDATE SKIP LOCKED (a session never waits for
-- another) and the condition is checked under the lock; the next due time
-- moves on before the lock is released at commit, and a transaction that
-- rolls back leaves the sample to the next tick. The sample writes one
-- _history row per queue and task with live jobs, with jobs finished in
-- (period_start, as_of] (read through job_finished_idx: the jobs of that
-- period only, never the whole history), with lease expiries counted by
-- tick (_lease_expiry, consumed here), or with a non-zero row at the last
-- sample. period_start is the last sample, at most an hour back (a minute
-- back for the first). A job whose finishing transaction commits after
-- the sample that its finished_at falls before is not counted, nor one
-- pruned before the sample. Then rows older than history_retention go.
-- Cost: one pass over the live jobs (their partial indexes) and one over
-- the period's finished jobs, once a minute. tick's step 5, apart so that
-- tick stays readable; it writes, so it runs with the owner's rights, and
-- is granted to nobody (only tick calls it).
CREATE OR REPLACE FUNCTION pgtq._sample_history(as_of timestamptz)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    previous_sample  timestamptz;
    period_start     timestamptz;
    retention        interval;
BEGIN
    SELECT h.last_sampled_at INTO previous_sample
    FROM pgtq._sampler AS h
    WHERE _sample_history.as_of >= h.next_sample_at
       OR _sample_history.as_of < h.last_sampled_at - interval '1 minute'
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    period_start := CASE
        WHEN previous_sample IS NULL OR previous_sample >= _sample_history.as_of
        THEN _sample_history.as_of - interval '1 minute'
        ELSE greatest(previous_sample, _sample_history.as_of - interval '1 hour')
    END;

    WITH live AS (
        SELECT l.queue, l.task,
               count(*) FILTER (WHERE l.state = 'scheduled') AS scheduled,
               count(*) FILTER (WHERE l.state = 'ready') AS ready,
               count(*) FILTER (WHERE l.state = 'running') AS running,
               min(l.run_at) FILTER (WHERE l.state = 'ready') AS oldest_ready_at
        FROM (SELECT j.queue, j.task, j.state, j.run_at FROM pgtq._job AS j WHERE j.state = 'scheduled'
              UNION ALL
              SELECT j.queue, j.task, j.state, j.run_at FROM pgtq._job AS j
              WHERE j.state = 'ready' AND j.lock_key IS NULL  -- job_ready_idx
              UNION ALL
              SELECT j.queue, j.task, j.state, j.run_at FROM pgtq._job AS j
              WHERE j.state = 'ready' AND j.lock_key IS NOT NULL  -- job_keyed_ready_idx
              UNION ALL
              SELECT j.queue, j.task, j.state, j.run_at FROM pgtq._job AS j WHERE j.state = 'running') AS l
        GROUP BY l.queue, l.task
    ), finished AS (
        SELECT f.queue, f.task,
               count(*) FILTER (WHERE f.state = 'done') AS completed,
               count(*) FILTER (WHERE f.state = 'failed') AS failed,
               count(*) FILTER (WHERE f.state = 'cancelled') AS cancelled
        FROM pgtq._job AS f
        WHERE f.state IN ('done', 'failed', 'cancelled')
          AND f.finished_at > period_start
          AND f.finished_at <= _sample_history.as_of
        GROUP BY f.queue, f.task
    ), counted AS (
        DELETE FROM pgtq._lease_expiry AS e RETURNING e.queue, e.task, e.jobs
    ), expiries AS (
        SELECT c.queue, c.task, sum(c.jobs)::bigint AS lease_expired
        FROM counted AS c
        GROUP BY c.queue, c.task
    ), keys AS (
        SELECT live.queue, live.task FROM live
        UNION SELECT finished.queue, finished.task FROM finished
        UNION SELECT expiries.queue, expiries.task FROM expiries
        UNION SELECT p.queue, p.task
              FROM pgtq._history AS p
              WHERE p.sampled_at = previous_sample
                AND p.scheduled + p.ready + p.running + p.completed + p.failed + p.cancelled
                    + p.lease_expired > 0
    )
    INSERT INTO pgtq._history AS h (sampled_at, period_start, queue, task, scheduled, ready, running,
                                    oldest_ready_at, completed, failed, cancelled, lease_expired)
    SELECT _sample_history.as_of, period_start, k.queue, k.task,
           coalesce(l.scheduled, 0), coalesce(l.ready, 0), coalesce(l.running, 0), l.oldest_ready_at,
           coalesce(f.completed, 0), coalesce(f.failed, 0), coalesce(f.cancelled, 0),
           coalesce(x.lease_expired, 0)
    FROM keys AS k
    LEFT JOIN live AS l ON l.queue = k.queue AND l.task = k.task
    LEFT JOIN finished AS f ON f.queue = k.queue AND f.task = k.task
    LEFT JOIN expiries AS x ON x.queue = k.queue AND x.task = k.task
    ON CONFLICT ON CONSTRAINT history_pkey DO NOTHING;

    UPDATE pgtq._sampler AS h
    SET next_sample_at = date_trunc('minute', _sample_history.as_of, 'UTC') + interval '1 minute',
        last_sampled_at = _sample_history.as_of;
    SELECT s.history_retention INTO retention FROM pgtq._settings AS s;
    DELETE FROM pgtq._history AS h WHERE h.sampled_at <= _sample_history.as_of - retention;
    RETURN true;
END
$$;

-- Guarantees: the queue-level figures of every queue, one row per metric
-- and label set, the same for a Prometheus exporter, the dashboard and
-- any SQL client:
--   jobs                      (queue, state) live jobs by state: scheduled,
--                             ready and running, now (zero rows included
--                             for a queue with live jobs or recent history)
--   oldest_ready_age_seconds  (queue) how long the oldest ready job has been
--                             due (since its run_at), 0 with none ready
--   recent_completed          (queue, task) jobs done, failed for good, and
--   recent_failed             leases expired, in the history samples taken
--   recent_lease_expiries     in (as_of - period, as_of]
--   workers                   (queue) live workers serving the queue
--   workers_total             () live workers (seen within worker_timeout)
--   history_age_seconds       () since the last history sample (no row
--                             before the first): over 60 means nobody ticks
--   paused                    (queue) 1 while the queue is paused, 0 for a
--                             queue with a limit that is not
--   max_running               (queue) its concurrency limit, if it has one
--   rate_limit,               (queue) its rate limit: at most rate_limit
--   rate_period_seconds       starts in any rate_period, if it has one
-- (a queue without a row of paused is not paused and has no limit).
-- Read-only, with the owner's rights, so the worker and observer roles
-- see these aggregates without reading jobs. Costs one pass over the live
-- jobs (their partial indexes) and over the period's history rows. A
-- period outside 1 minute..31 days or a NULL or infinite as_of raises
-- PT004.
CREATE OR REPLACE FUNCTION pgtq.metrics(period interval DEFAULT '5 minutes',
                             as_of timestamptz DEFAULT now())
RETURNS TABLE (metric text, queue text, task text, state text, value double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    worker_timeout interval;
BEGIN
    IF metrics.period IS NULL OR metrics.period < interval '1 minute' OR metrics.period > interval '31 days' THEN
        RAISE EXCEPTION 'pgtq: period must be an interval between 1 minute and 31 days, got %',
                coalesce(metrics.period::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(metrics.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', metrics.as_of);
    END IF;
    SELECT s.worker_timeout INTO worker_timeout FROM pgtq._settings AS s;
    RETURN QUERY
    WITH live AS (
        SELECT l.queue, l.state, count(*) AS jobs, min(l.run_at) AS oldest_run_at
        FROM (SELECT j.queue, j.state, j.run_at FROM pgtq._job AS j WHERE j.state = 'scheduled'
              UNION ALL
              SELECT j.queue, j.state, j.run_at FROM pgtq._job AS j
              WHERE j.state = 'ready' AND j.lock_key IS NULL  -- job_ready_idx
              UNION ALL
              SELECT j.queue, j.state, j.run_at FROM pgtq._job AS j
              WHERE j.state = 'ready' AND j.lock_key IS NOT NULL  -- job_keyed_ready_idx
              UNION ALL
              SELECT j.queue, j.state, j.run_at FROM pgtq._job AS j WHERE j.state = 'running') AS l
        GROUP BY l.queue, l.state
    ), recent AS (
        SELECT h.queue, h.task, sum(h.completed) AS completed, sum(h.failed) AS failed,
               sum(h.lease_expired) AS lease_expired
        FROM pgtq._history AS h
        WHERE h.sampled_at > metrics.as_of - metrics.period
          AND h.sampled_at <= metrics.as_of
        GROUP BY h.queue, h.task
    ), queues AS (
        SELECT live.queue FROM live UNION SELECT recent.queue FROM recent
    ), alive AS (
        SELECT w.queues
        FROM pgtq._worker AS w
        WHERE w.last_seen_at >= metrics.as_of - worker_timeout
    )
    SELECT 'jobs', q.queue, NULL::text, s.state::text, coalesce(l.jobs, 0)::double precision
    FROM queues AS q
    CROSS JOIN unnest('{scheduled,ready,running}'::pgtq.job_state[]) AS s (state)
    LEFT JOIN live AS l ON l.queue = q.queue AND l.state = s.state
    UNION ALL
    SELECT 'oldest_ready_age_seconds', q.queue, NULL, NULL,
           coalesce(greatest(extract(epoch FROM metrics.as_of - l.oldest_run_at), 0), 0)::double precision
    FROM queues AS q
    LEFT JOIN live AS l ON l.queue = q.queue AND l.state = 'ready'
    UNION ALL
    SELECT 'recent_completed', r.queue, r.task, NULL, r.completed::double precision FROM recent AS r
    UNION ALL
    SELECT 'recent_failed', r.queue, r.task, NULL, r.failed::double precision FROM recent AS r
    UNION ALL
    SELECT 'recent_lease_expiries', r.queue, r.task, NULL, r.lease_expired::double precision FROM recent AS r
    UNION ALL
    SELECT 'workers', served.queue, NULL, NULL, count(*)::double precision
    FROM alive AS a CROSS JOIN unnest(a.queues) AS served (queue)
    GROUP BY served.queue
    UNION ALL
    SELECT 'workers_total', NULL, NULL, NULL, count(*)::double precision FROM alive
    UNION ALL
    SELECT 'history_age_seconds', NULL, NULL, NULL,
           extract(epoch FROM metrics.as_of - h.last_sampled_at)::double precision
    FROM pgtq._sampler AS h
    WHERE h.last_sampled_at IS NOT NULL
    UNION ALL
    SELECT 'paused', f.queue, NULL, NULL, (f.paused_at IS NOT NULL)::integer::double precision
    FROM pgtq._queue AS f
    UNION ALL
    SELECT 'max_running', f.queue, NULL, NULL, f.max_running::double precision
    FROM pgtq._queue AS f WHERE f.max_running IS NOT NULL
    UNION ALL
    SELECT 'rate_limit', f.queue, NULL, NULL, f.rate_limit::double precision
    FROM pgtq._queue AS f WHERE f.rate_limit IS NOT NULL
    UNION ALL
    SELECT 'rate_period_seconds', f.queue, NULL, NULL, extract(epoch FROM f.rate_period)::double precision
    FROM pgtq._queue AS f WHERE f.rate_limit IS NOT NULL;
END
$$;

-- Guarantees: the queues check of health(): one row, 'warning' naming up
-- to 10 queues (the longest wait first) whose jobs nobody handles, 'ok'
-- otherwise. A queue is named when its next ready job (in pop's order)
-- has been due longer than `late` while no live worker serves it and it
-- is not paused, or when a scheduled job has been due, or a running job's
-- lease has run out, longer than `late` (tick would have moved them).
-- (0.32.0: of its next ready job without a lock key and its next with
-- one, the one that waited longer.) Finds the queues with ready jobs by a
-- loose scan of job_ready_idx and job_keyed_ready_idx (one probe of each
-- per queue, as _running_queues). Reads at most the 10,000 oldest
-- late scheduled jobs (0.15.0; until 0.14.0 all of them, which a day
-- without a tick could make millions, at every look of the dashboard):
-- past that a queue's count says "or more".
CREATE OR REPLACE FUNCTION pgtq._health_queues(late interval, as_of timestamptz, OUT status text, OUT detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH RECURSIVE ready (queue) AS (
        SELECT least((SELECT r.queue FROM pgtq._job AS r
                      WHERE r.state = 'ready' AND r.lock_key IS NULL
                      ORDER BY r.queue
                      LIMIT 1),
                     (SELECT r.queue FROM pgtq._job AS r
                      WHERE r.state = 'ready' AND r.lock_key IS NOT NULL
                      ORDER BY r.queue
                      LIMIT 1))
        UNION ALL
        SELECT least((SELECT r.queue FROM pgtq._job AS r
                      WHERE r.state = 'ready' AND r.lock_key IS NULL AND r.queue > ready.queue
                      ORDER BY r.queue
                      LIMIT 1),
                     (SELECT r.queue FROM pgtq._job AS r
                      WHERE r.state = 'ready' AND r.lock_key IS NOT NULL AND r.queue > ready.queue
                      ORDER BY r.queue
                      LIMIT 1))
        FROM ready
        WHERE ready.queue IS NOT NULL
    ), alive AS (
        SELECT DISTINCT served.queue
        FROM pgtq._worker AS w
        CROSS JOIN pgtq._settings AS s
        CROSS JOIN unnest(w.queues) AS served (queue)
        WHERE w.last_seen_at >= _health_queues.as_of - s.worker_timeout
    ), unserved AS (
        SELECT ready.queue,
               _health_queues.as_of - least((SELECT n.run_at FROM pgtq._job AS n
                                             WHERE n.queue = ready.queue AND n.state = 'ready'
                                               AND n.lock_key IS NULL
                                             ORDER BY n.priority DESC, n.id
                                             LIMIT 1),
                                            (SELECT n.run_at FROM pgtq._job AS n
                                             WHERE n.queue = ready.queue AND n.state = 'ready'
                                               AND n.lock_key IS NOT NULL
                                             ORDER BY n.priority DESC, n.id
                                             LIMIT 1)) AS waited
        FROM ready
        WHERE ready.queue IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM alive WHERE alive.queue = ready.queue)
          AND NOT EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = ready.queue AND f.paused_at IS NOT NULL)
    ), late AS (
        SELECT j.queue, j.state, j.run_at AS since
        FROM pgtq._job AS j
        WHERE j.state = 'scheduled' AND j.run_at < _health_queues.as_of - _health_queues.late
        ORDER BY j.run_at
        LIMIT 10001
    ), untended AS (
        SELECT l.queue, count(*) FILTER (WHERE l.state = 'scheduled') AS due,
               count(*) FILTER (WHERE l.state = 'running') AS lapsed,
               _health_queues.as_of - min(l.since) AS waited
        FROM ((SELECT late.queue, late.state, late.since FROM late ORDER BY late.since LIMIT 10000)
              UNION ALL
              SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j
              WHERE j.state = 'running' AND j.lease_expires_at < _health_queues.as_of - _health_queues.late)
             AS l
        GROUP BY l.queue
    ), found AS (
        SELECT u.queue, u.waited,
               format('queue %s: its next ready job has waited %s and no live worker serves it',
                      quote_literal(u.queue), pgtq._health_age(u.waited)) AS finding
        FROM unserved AS u
        WHERE u.waited > _health_queues.late
        UNION ALL
        SELECT t.queue, t.waited,
               format('queue %s: %s; nothing has ticked it for over %s (a worker of the queue, pgtq scheduler '
                      'or pg_cron would)',
                      quote_literal(t.queue),
                      concat_ws(', ',
                                CASE WHEN t.due > 0
                                     THEN format('%s%s scheduled job(s) due but not ready', t.due,
                                                 CASE WHEN (SELECT count(*) FROM late) > 10000 THEN ' or more'
                                                      ELSE '' END)
                                END,
                                CASE WHEN t.lapsed > 0 THEN format('%s lease(s) run out', t.lapsed) END),
                      pgtq._health_age(_health_queues.late))
        FROM untended AS t
    ), ranked AS (
        SELECT found.finding, found.waited, count(*) OVER () AS total
        FROM found
        ORDER BY found.waited DESC, found.queue
        LIMIT 10
    )
    SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'warning' END,
           CASE WHEN count(*) = 0 THEN 'every queue with jobs due has a live worker and is ticked'
                ELSE string_agg(ranked.finding, '; ' ORDER BY ranked.waited DESC)
                     || CASE WHEN max(ranked.total) > 10 THEN format('; and %s more', max(ranked.total) - 10)
                             ELSE '' END
           END
    FROM ranked
$$;

-- Guarantees: moves every due job of `queue` (all queues when NULL):
--   1. scheduled jobs with run_at <= as_of become ready;
--   2. running jobs whose lease expired before as_of (their worker died)
--      go through the same rule as fail() (_end_failed_attempt), with an
--      error saying the lease expired and a retry after backoff(attempt)
--      with the job's own backoff policy: cancelled if a cancel was
--      requested, retried if attempts remain, failed otherwise. They are
--      rescued one at a time: a worker's death leaves a handful, and a
--      keyed job may meet its key taken (_requeue_keyed). They are
--      counted for the queue history (_lease_expiry). Each queue's look
--      starts at its floor (0.27.0, _rescue_floor: where the earlier
--      ticks left no expired job, from the first entry once a minute);
--   2b. queues with a max_running or a rate limit that have room again
--      (the rate window moved on, a lease ran out) and ready jobs are
--      announced, so that workers whose pop met the limit come back (a
--      slot freed by a job's end is announced at that end); a look at
--      _queue, which holds only the paused and limited queues;
--   3. workers not seen for _settings.worker_timeout are forgotten;
--   4. periodic schedules whose next run has come enqueue one job, for
--      their most recent occurrence (_tick_schedules);
--   5. once a minute, the queue history takes a sample of every queue
--      (_sample_history); when none is due this costs one read of a
--      one-row table;
--   6. the ready mark of each queue ticked that runs jobs or has one is
--      set afresh (0.18.0, _raise_mark): where pops start their claim.
--      Jobs it promotes are recorded for the marks (_lower_marks). The
--      next job id is read first, while the transaction has no id yet
--      (0.25.0: what lets the marks' looks start at a floor), and so is
--      the next number of _ready_mark_low's rows (0.26.0); a tick called
--      in a transaction that already wrote moves no floor. The rows of
--      _ready_mark_low of each queue it ticks are read and deleted (those
--      of a queue that gets no mark too); a queue that neither runs jobs
--      nor has a mark keeps its rows until it does (tick() with no
--      queue; 0.26.0: until then every tick looked for such rows among
--      all of them, stepping over every deleted one a held snapshot
--      keeps). The mark of an idle queue that says so already stays as
--      it is while no job is pushed (0.28.0, _mark_stays_idle): a tick
--      that finds nothing to do writes nothing, takes no transaction id
--      and flushes no WAL at commit, once a minute aside (the looks from
--      the first entry).
--      Until 0.28.0 each tick of each worker wrote each of its queues'
--      marks: idle workers kept the server writing, 430 bytes of WAL and
--      a flush per tick.
-- Every step reads jobs through the index that serves it, never the whole
-- table, and takes the order of an index rather than sorting (0.29.0:
-- enable_seqscan and enable_sort off, for the helpers too, and jit off:
-- a disabled path's cost would have JIT compile the statements that have
-- no other plan at every call). A session keeps its generic plans from
-- about its sixth tick; made while the job table was empty, they could
-- read the whole table at each tick (the promotion and the rescue
-- scanned it, the look for the first ready job took job_pkey from the
-- floor), until autovacuum's next visit replanned them. Its plans, and
-- its helpers', are generic from the first tick (0.30.0): the planner
-- kept planning some statements anew at each tick of one queue, 140 us
-- of a tick's 540.
-- Returns how many jobs it moved or enqueued. Rows are taken with FOR
-- UPDATE SKIP LOCKED and their state is rechecked, so any number of
-- sessions may tick at once (schedulers, workers, pg_cron): no job is
-- moved twice, no occurrence enqueued twice, no minute sampled twice.
-- Waiters of the jobs that finished are told; queues that got ready jobs
-- are announced. A bad queue name raises PT003, a NULL or infinite as_of
-- PT004.
CREATE OR REPLACE FUNCTION pgtq.tick(queue text DEFAULT NULL,
                          as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_sort = off
SET jit = off
AS $$
DECLARE
    promoted        integer;
    promoted_queues text[];
    rescued         integer := 0;
    rescued_queues  text[] := '{}';
    rescued_tasks   text[] := '{}';
    expired         pgtq._job%ROWTYPE;
    enqueued        integer := 0;
    worker_timeout  interval;
    busy_queues     text[];  -- the queues ticked that run jobs
    busy            text;
    rescue_from     timestamptz;     -- where the rescue of `busy` looks from (_rescue_floor)
    rescue_tos      timestamptz[] := '{}';  -- per busy queue: where the next rescue may look from
    rescue_alls     boolean[] := '{}';      -- per busy queue: this rescue looked from the first entry
    settle_below    bigint;  -- the next job id, read before this transaction had an id (_raise_mark)
    settle_seq      bigint;  -- the next row number of _ready_mark_low, read then too
BEGIN
    IF pg_current_xact_id_if_assigned() IS NULL THEN
        settle_below := pgtq._unused_job_id();
        settle_seq := pgtq._unused_low_seq();
    END IF;
    IF tick.queue IS NOT NULL THEN
        PERFORM pgtq._checked_name('queue', tick.queue);
    END IF;
    IF NOT coalesce(isfinite(tick.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', tick.as_of);
    END IF;
    WITH due AS MATERIALIZED (
        SELECT d.id
        FROM pgtq._job AS d
        WHERE d.state = 'scheduled'
          AND d.run_at <= tick.as_of
          AND (tick.queue IS NULL OR d.queue = tick.queue)
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        -- By an array of their ids, one job_pkey probe each (0.29.0: a
        -- join with `due` could hash every entry of job_pkey).
        UPDATE pgtq._job AS j
        SET state = 'ready'
        WHERE j.id = ANY (ARRAY(SELECT due.id FROM due))
        RETURNING j.queue, j.priority, j.id, j.lock_key
    ), lowered AS (
        -- Only when a job moved (0.29.0: _lower_marks takes a transaction
        -- id, and a tick that moved nothing must take none; until then the
        -- join below happened to read `moved` first).
        SELECT pgtq._lower_marks(array_agg(moved.queue), array_agg(moved.priority), array_agg(moved.id),
                                 array_agg(moved.lock_key))
        FROM moved
        HAVING count(*) > 0
    )
    SELECT count(*), coalesce(array_agg(DISTINCT moved.queue), '{}')
    INTO promoted, promoted_queues
    FROM moved, lowered;

    busy_queues := CASE WHEN tick.queue IS NULL THEN pgtq._running_queues() ELSE ARRAY[tick.queue] END;
    -- Each queue's rescue looks from its floor (0.27.0, _rescue_floor); the
    -- next floor is as_of, or the lease of the first expired job it had to
    -- leave (another transaction held its row).
    FOREACH busy IN ARRAY busy_queues LOOP
        rescue_from := pgtq._rescue_floor(busy, tick.as_of, interval '1 minute');
        FOR expired IN
            SELECT e.*
            FROM pgtq._job AS e
            WHERE e.state = 'running'
              AND e.queue = busy
              AND e.lease_expires_at >= rescue_from
              AND e.lease_expires_at < tick.as_of
            FOR UPDATE SKIP LOCKED
        LOOP
            PERFORM pgtq._end_failed_attempt(
                expired, pgtq._lease_expired_error(expired.lease_expires_at, expired.worker),
                tick.as_of + pgtq.backoff(expired.attempt, expired.backoff_base, expired.backoff_cap),
                tick.as_of);
            rescued := rescued + 1;
            rescued_queues := rescued_queues || expired.queue;
            rescued_tasks := rescued_tasks || expired.task;
        END LOOP;
        rescue_tos := rescue_tos
                      || least(tick.as_of, (SELECT e.lease_expires_at
                                            FROM pgtq._job AS e
                                            WHERE e.state = 'running'
                                              AND e.queue = busy
                                              AND e.lease_expires_at >= rescue_from
                                              AND e.lease_expires_at < tick.as_of
                                            ORDER BY e.lease_expires_at
                                            LIMIT 1));
        rescue_alls := rescue_alls || (rescue_from = '-infinity');
    END LOOP;
    -- Counted for the queue history (a statement only when there are some).
    IF rescued > 0 THEN
        INSERT INTO pgtq._lease_expiry (expired_at, queue, task, jobs)
        SELECT tick.as_of, r.queue, r.task, count(*)
        FROM unnest(rescued_queues, rescued_tasks) AS r (queue, task)
        GROUP BY r.queue, r.task;
    END IF;

    -- Each queue that got ready jobs is announced once.
    PERFORM pgtq._announce(q.queue) FROM unnest(promoted_queues) AS q (queue);

    -- Limited queues whose room came back with time. The ready job is
    -- looked for queue by queue, ordered so that job_ready_idx serves it,
    -- and job_keyed_ready_idx the jobs with a lock key (0.32.0)
    -- (0.24.0: as an EXISTS, the generic plan PL/pgSQL keeps from a
    -- session's sixth tick on read every ready job of the table, grouped
    -- by queue, before it looked at _queue, even with no limited queue at
    -- all: 30 to 50 ms a tick at 100,000 to 180,000 ready jobs).
    PERFORM pgtq._announce(f.queue)
    FROM pgtq._queue AS f
    WHERE f.queue = coalesce(tick.queue, f.queue)
      AND (f.max_running IS NOT NULL OR f.rate_limit IS NOT NULL)
      AND pgtq._room_of(f, 1, tick.as_of) > 0
      AND ((SELECT r.id FROM pgtq._job AS r
            WHERE r.queue = f.queue AND r.state = 'ready' AND r.lock_key IS NULL
            ORDER BY r.priority DESC, r.id
            LIMIT 1) IS NOT NULL
           OR (SELECT r.id FROM pgtq._job AS r
               WHERE r.queue = f.queue AND r.state = 'ready' AND r.lock_key IS NOT NULL
               ORDER BY r.priority DESC, r.id
               LIMIT 1) IS NOT NULL);

    -- Forget workers that stopped without saying goodbye.
    SELECT s.worker_timeout INTO worker_timeout FROM pgtq._settings AS s;
    DELETE FROM pgtq._worker AS w WHERE w.last_seen_at < tick.as_of - worker_timeout;

    -- Periodic schedules. None due (or none at all) costs one probe: the
    -- earliest next run, which the cached generic plan reads from
    -- schedule_next_run_idx whatever as_of is (a filter on next_run_at
    -- would make it scan the table; `(queue IS NULL OR ...)` would make it
    -- plan anew on every call).
    IF (SELECT min(s.next_run_at) FROM pgtq._schedule AS s
        WHERE s.queue = coalesce(tick.queue, s.queue)) <= tick.as_of THEN
        enqueued := pgtq._tick_schedules(tick.queue, tick.as_of);
    END IF;

    -- Queue history: one sample a minute, by whichever tick comes first.
    IF EXISTS (SELECT 1 FROM pgtq._sampler AS h
               WHERE tick.as_of >= h.next_sample_at
                  OR tick.as_of < h.last_sampled_at - interval '1 minute') THEN
        PERFORM pgtq._sample_history(tick.as_of);
    END IF;

    -- Ready marks (0.18.0): each queue ticked that runs jobs or has a mark
    -- (tick(queue): that queue, which needs no look at the marks), in the
    -- order of their names.
    -- A queue ticked that ran no job is as if rescued to as_of from its
    -- first entry: no job of it ran as this tick saw it.
    PERFORM pgtq._raise_mark(r.queue, settle_below, settle_seq, coalesce(r.rescued_to, tick.as_of),
                             coalesce(r.rescued_all, true), tick.queue IS NOT NULL)
    FROM (SELECT b.queue, b.rescued_to, b.rescued_all
          FROM unnest(busy_queues, rescue_tos, rescue_alls) AS b (queue, rescued_to, rescued_all)
          UNION ALL
          SELECT DISTINCT m.queue, NULL::timestamptz, NULL::boolean
          FROM pgtq._ready_mark AS m
          WHERE tick.queue IS NULL AND m.queue <> ALL (busy_queues)) AS r
    ORDER BY r.queue;

    RETURN promoted + rescued + enqueued;
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
