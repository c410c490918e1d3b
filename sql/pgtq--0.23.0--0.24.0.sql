-- pgtq 0.23.0 -> 0.24.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_24_0. Every definition here is the one of sql/pgtq.sql at
-- 0.24.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- tick's look for limited queues whose room came back (max_running,
-- rate_limit) finds a ready job queue by queue through job_ready_idx. As
-- an EXISTS, the generic plan that PL/pgSQL keeps from a session's sixth
-- tick on read the whole job table (every ready job, grouped by queue)
-- before it looked at _queue, even with no limited queue: 50 to 80 ms a
-- tick at 100,000 ready jobs, in each worker's dispatcher every second,
-- and more beside a held snapshot, whose dead rows the scan reads too.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.24.0'::text $$;

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
--      one-row table;
--   6. the ready mark of each queue ticked that runs jobs or has one is
--      set afresh (0.18.0, _raise_mark): where pops start their claim.
--      Jobs it promotes are recorded for the marks (_lower_marks).
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
    busy_queues     text[];  -- the queues ticked that run jobs
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
        RETURNING j.queue, j.priority, j.id, j.lock_key
    ), lowered AS (
        SELECT pgtq._lower_marks(array_agg(moved.queue), array_agg(moved.priority), array_agg(moved.id),
                                 array_agg(moved.lock_key))
        FROM moved
    )
    SELECT count(*), coalesce(array_agg(DISTINCT moved.queue), '{}')
    INTO promoted, promoted_queues
    FROM moved, lowered;

    busy_queues := CASE WHEN tick.queue IS NULL THEN pgtq._running_queues() ELSE ARRAY[tick.queue] END;
    FOR expired IN
        SELECT e.*
        FROM pgtq._job AS e
        WHERE e.state = 'running'
          AND e.queue = ANY (busy_queues)
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

    -- Limited queues whose room came back with time. The ready job is
    -- looked for queue by queue, ordered so that job_ready_idx serves it
    -- (0.24.0: as an EXISTS, the generic plan PL/pgSQL keeps from a
    -- session's sixth tick on read every ready job of the table, grouped
    -- by queue, before it looked at _queue, even with no limited queue at
    -- all: 50 to 80 ms a tick at 100,000 ready jobs).
    PERFORM pgtq._announce(f.queue)
    FROM pgtq._queue AS f
    WHERE f.queue = coalesce(tick.queue, f.queue)
      AND (f.max_running IS NOT NULL OR f.rate_limit IS NOT NULL)
      AND pgtq._room_of(f, 1, tick.as_of) > 0
      AND (SELECT r.id FROM pgtq._job AS r
           WHERE r.queue = f.queue AND r.state = 'ready'
           ORDER BY r.priority DESC, r.id
           LIMIT 1) IS NOT NULL;

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

    -- Ready marks (0.18.0): each queue ticked that runs jobs or has a mark,
    -- in the order of their names, so two ticks making the same new marks
    -- never wait on each other in a circle.
    PERFORM pgtq._raise_mark(r.queue)
    FROM (SELECT unnest(busy_queues) AS queue
          UNION
          SELECT m.queue FROM pgtq._ready_mark AS m WHERE m.queue = coalesce(tick.queue, m.queue)) AS r
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
