-- pgtq 0.4.0 -> 0.5.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_5_0. Every definition here is the one of sql/pgtq.sql at
-- 0.5.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- No call changes.
--   * pop and _wake_after_end (the announce step of complete,
--     complete_many, fail, abort and release) run generic plans
--     (plan_cache_mode = force_generic_plan). PL/pgSQL planned their main
--     statement anew at every call: a custom plan for a known LIMIT or
--     array looked cheaper than the generic one, so the plan cache never
--     kept the generic plan. The replanning was 60% of a pop(1).
--   * A pop of a paused or limited queue counts its room without the lock
--     first, and returns at once when there is none: no lock on the
--     queue's row, nothing written, and the pop that can claim never
--     waits for the commit of one that found the queue full.
--   * pgtq._job loses its CHECK constraints on the shape of args and
--     kwargs (job_args_array_ck, job_kwargs_object_ck): PostgreSQL checks
--     every CHECK constraint at every UPDATE, so they read each job's
--     payload (from TOAST, when large) at every pop, complete and fail.
--     push and push_many keep the rule, as they did before.
--   * job_running_idx is keyed by (queue, lease_expires_at), no longer by
--     lease_expires_at alone: counting the running jobs of a max_running
--     queue reads only that queue's entries (it looked at every running
--     job of the database), and tick finds expired leases queue by queue
--     (tick of every queue: the queues that run jobs, _running_queues).

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.5.0'::text $$;

-- ===========================================================================
-- No payload read at each change of a job's state
-- ===========================================================================

ALTER TABLE pgtq._job
    DROP CONSTRAINT job_args_array_ck,
    DROP CONSTRAINT job_kwargs_object_ck;

-- ===========================================================================
-- Generic plans, and a look before the lock
-- ===========================================================================

-- Guarantees: after running jobs of `queues`, with the lock keys
-- `lock_keys` (NULLs ignored), ended in the calling transaction, tells the
-- idle workers that may now claim a job (_announce, at commit): each of
-- `queues` that has a max_running and ready jobs (a slot came free), and
-- the queue of the next ready job of each lock key (the key came free).
-- A worker whose pop met a limit or a busy key waits for such a wake-up.
-- For jobs of queues without a limit and without a key it costs one probe
-- of _queue. Its plan is generic (0.5.0: plan_cache_mode; until 0.4.0 it
-- was planned anew at each call of complete, complete_many, fail, abort
-- and release).
CREATE OR REPLACE FUNCTION pgtq._wake_after_end(queues text[], lock_keys text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    PERFORM pgtq._announce(w.queue)
    FROM (SELECT f.queue
          FROM pgtq._queue AS f
          WHERE f.queue = ANY (_wake_after_end.queues)
            AND f.max_running IS NOT NULL
            AND EXISTS (SELECT 1 FROM pgtq._job AS r WHERE r.queue = f.queue AND r.state = 'ready')
          UNION
          SELECT (SELECT h.queue FROM pgtq._job AS h
                  WHERE h.lock_key = k.key AND h.state = 'ready'
                  ORDER BY h.priority DESC, h.id
                  LIMIT 1)
          FROM unnest(_wake_after_end.lock_keys) AS k (key)
          WHERE k.key IS NOT NULL) AS w
    WHERE w.queue IS NOT NULL;
END
$$;

-- Guarantees: claims up to `n` ready jobs of `queue` (highest priority
-- first, then push order) and returns them. Each claimed job becomes
-- running, its attempt count goes up by one, and it gets a fresh lease
-- token that expires `lease` after `as_of`. Rows are locked with
-- FOR UPDATE SKIP LOCKED in a MATERIALIZED step, so concurrent pops never
-- get the same job, never wait on each other and never claim more than n.
-- Flow control (0.3.0), in the same call:
--   * a paused queue hands out nothing, and a queue with max_running or a
--     rate limit at most the room it has left (_room): such a pop locks
--     the queue's _queue row until its transaction ends, so pops of that
--     queue take turns and never overshoot, and its starts are counted in
--     the rate window (_count_starts);
--   * a job with a lock key starts only when no job of its key runs and it
--     is the key's next; other jobs are taken past it (_choose_keyed).
-- A queue with no pause, no limit and no ready job with a lock key pays
-- two index probes for this and claims as before. Pop may return fewer
-- than n jobs while more are ready (a limit, busy keys, rows other pops
-- hold); whoever waits for more is told by an announcement on channel
-- pgtq when a slot or a key comes free (_wake_after_end) or the rate
-- window moves on (tick).
-- A pop of a paused or limited queue first counts its room without the
-- lock (0.5.0): when it finds none it returns at once, taking no lock and
-- writing nothing, so a pop that finds the queue full never makes the pop
-- that can claim wait for its commit (a slot freed after the look is
-- announced, and the waiting worker pops again).
-- Hot path:
--   * the plans are generic (0.5.0: plan_cache_mode = force_generic_plan).
--     Until 0.4.0 the claim was planned anew at every call, because its
--     plan for an unknown `LIMIT room` looked dearer than one for a known
--     room: 60% of the time of a pop(1). The generic plan scans
--     job_ready_idx in order (tests/sql/27-pop-costs.sql checks it);
--   * the claimed rows are updated by an array of their ids, which the
--     plan reads with one job_pkey probe each (a join with the claimed
--     rows let the generic plan merge-join along job_pkey from its first
--     row: 100,000 entries read to claim 10 jobs of a queue pushed after
--     another's);
--   * the argument checks call the helper that words the error only
--     when a cheap inline test fails.
-- Bad arguments raise PT003 or PT004 and claim nothing; a paused or
-- limited queue, or one with lock keys, needs READ COMMITTED (PT007).
CREATE OR REPLACE FUNCTION pgtq.pop(queue text,
                         worker text DEFAULT NULL,
                         n integer DEFAULT 1,
                         lease interval DEFAULT '5 minutes',
                         as_of timestamptz DEFAULT now())
RETURNS SETOF pgtq.claimed_job
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    flow       pgtq._queue;  -- the queue's pause and limits, if it has any
    controlled boolean;      -- paused or limited: the queue has a _queue row
    room       integer := pop.n;
    keyed_ids  bigint[];
    started    integer;
BEGIN
    IF NOT pgtq._is_plain_name(pop.queue)
       OR (pop.worker IS NOT NULL AND NOT pgtq._is_plain_name(pop.worker)) THEN
        PERFORM pgtq._checked_name('queue', pop.queue);
        PERFORM pgtq._checked_name('worker', coalesce(pop.worker, 'unnamed'));
    END IF;
    IF pop.n IS NULL OR pop.n < 1 OR pop.n > 10000 THEN
        RAISE EXCEPTION 'pgtq: n must be between 1 and 10000, got %', coalesce(pop.n::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF pop.lease IS NULL OR pop.lease <= interval '0' OR pop.lease > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: lease must be a positive interval of at most 100 years, got %',
                coalesce(pop.lease::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(pop.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', pop.as_of);
    END IF;

    SELECT f.* INTO flow FROM pgtq._queue AS f WHERE f.queue = pop.queue;
    controlled := FOUND;
    IF controlled THEN
        PERFORM pgtq._check_read_committed(pop.queue);
        IF pgtq._room_of(flow, pop.n, pop.as_of) < 1 THEN
            RETURN;  -- full or paused as of now: no lock taken, nothing written
        END IF;
        room := pgtq._room(pop.queue, pop.n, pop.as_of);
        IF room < 1 THEN
            RETURN;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM pgtq._job AS k
               WHERE k.queue = pop.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL) THEN
        keyed_ids := pgtq._choose_keyed(pop.queue, room, pop.as_of);
    END IF;

    RETURN QUERY
    WITH claimable AS MATERIALIZED (
        SELECT c.id
        FROM pgtq._job AS c
        WHERE keyed_ids IS NULL
          AND c.queue = pop.queue AND c.state = 'ready' AND c.lock_key IS NULL
        ORDER BY c.priority DESC, c.id
        LIMIT room
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE pgtq._job AS j
        SET state = 'running',
            attempt = j.attempt + 1,
            lease = gen_random_uuid(),
            lease_expires_at = pop.as_of + pop.lease,
            started_at = pop.as_of,
            worker = pop.worker
        WHERE j.id = ANY (ARRAY(SELECT claimable.id FROM claimable) || keyed_ids)
        RETURNING j.id, j.queue, j.task, j.args, j.kwargs, j.priority,
                  j.attempt, j.max_attempts, j.lease, j.lease_expires_at
    )
    SELECT claimed.* FROM claimed ORDER BY claimed.priority DESC, claimed.id;

    IF controlled THEN
        GET DIAGNOSTICS started = ROW_COUNT;
        IF started > 0 THEN
            PERFORM pgtq._count_starts(pop.queue, started, pop.as_of);
        END IF;
    END IF;
END
$$;

-- ===========================================================================
-- Running jobs counted per queue
-- ===========================================================================

DROP INDEX pgtq.job_running_idx;
CREATE INDEX job_running_idx ON pgtq._job (queue, lease_expires_at)
    WHERE state = 'running';

-- Guarantees: the queues that have running jobs, each once. Reads job_running_idx with one probe per such queue (a loose index
-- scan), not one entry per running job, so tick's rescue of every queue
-- costs about as much per queue as a tick of that queue alone.
CREATE FUNCTION pgtq._running_queues()
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH RECURSIVE running (queue) AS (
        (SELECT r.queue FROM pgtq._job AS r WHERE r.state = 'running' ORDER BY r.queue LIMIT 1)
        UNION ALL
        SELECT (SELECT r.queue FROM pgtq._job AS r
                WHERE r.state = 'running' AND r.queue > running.queue
                ORDER BY r.queue
                LIMIT 1)
        FROM running
        WHERE running.queue IS NOT NULL
    )
    SELECT coalesce(array_agg(running.queue), '{}') FROM running WHERE running.queue IS NOT NULL
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
--      counted for the queue history (_lease_expiry);
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
--      one-row table.
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
BEGIN
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
        UPDATE pgtq._job AS j
        SET state = 'ready'
        FROM due
        WHERE j.id = due.id
        RETURNING j.queue
    )
    SELECT count(*), coalesce(array_agg(DISTINCT moved.queue), '{}')
    INTO promoted, promoted_queues
    FROM moved;

    FOR expired IN
        SELECT e.*
        FROM pgtq._job AS e
        WHERE e.state = 'running'
          AND e.queue = ANY (CASE WHEN tick.queue IS NULL THEN pgtq._running_queues()
                                  ELSE ARRAY[tick.queue] END)
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
    -- Counted for the queue history (a statement only when there are some).
    IF rescued > 0 THEN
        INSERT INTO pgtq._lease_expiry (expired_at, queue, task, jobs)
        SELECT tick.as_of, r.queue, r.task, count(*)
        FROM unnest(rescued_queues, rescued_tasks) AS r (queue, task)
        GROUP BY r.queue, r.task;
    END IF;

    -- Each queue that got ready jobs is announced once.
    PERFORM pgtq._announce(q.queue) FROM unnest(promoted_queues) AS q (queue);

    -- Limited queues whose room came back with time.
    PERFORM pgtq._announce(f.queue)
    FROM pgtq._queue AS f
    WHERE f.queue = coalesce(tick.queue, f.queue)
      AND (f.max_running IS NOT NULL OR f.rate_limit IS NOT NULL)
      AND pgtq._room_of(f, 1, tick.as_of) > 0
      AND EXISTS (SELECT 1 FROM pgtq._job AS r WHERE r.queue = f.queue AND r.state = 'ready');

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
