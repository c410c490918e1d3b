-- pgtq 0.26.0 -> 0.27.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_27_0. Every definition here is the one of sql/pgtq.sql at
-- 0.27.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- A rate-limited queue counted its starts in two arrays of its _queue
-- row, rewritten by every pop that started jobs. Beside a snapshot held
-- open (a long report, pg_dump, a replica with hot_standby_feedback)
-- every version of the row stays, and every pop of the queue read
-- through all of them, three times: 3.6 ms a pop after 20,000 pops, and
-- growing for as long as the snapshot stays. The starts are now rows of
-- _rate_start, one per bucket of the window, and pops only lock the
-- _queue row. The buckets in the window move over into it.
--
-- retry_failed called retry() once per failed job, each in a
-- subtransaction of its own (236 us a job; past 64 in one transaction,
-- every other session's snapshot checks grow slower). It is one
-- statement now, and it no longer stops at a failed job whose job_key
-- a pending job holds: that job stays failed (the pending one does its
-- work), and of failed jobs that share a key only the newest is retried.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.27.0'::text $$;

-- The starts of each rate-limited queue's rate window (0.27.0): how many
-- of its jobs started (`jobs`) in each bucket of rate_period / 100 (`slot`,
-- _rate_slot). A pop that starts jobs adds them to the bucket of its
-- as_of (_count_starts), so a row is updated only within its own bucket;
-- the buckets that left the window are deleted as new ones come, and
-- those of a queue whose rate_period changed or whose rate limit was
-- removed by configure_queue. Readers sum the window's buckets, at most
-- 101 rows, which the primary key's range from the window's first bucket
-- serves: neither the deleted buckets nor their versions kept for a held
-- snapshot lie in that range.
CREATE TABLE pgtq._rate_start (
    queue  text NOT NULL,
    slot   bigint NOT NULL,
    jobs   integer NOT NULL,
    CONSTRAINT rate_start_pkey PRIMARY KEY (queue, slot)
);

INSERT INTO pgtq._rate_start (queue, slot, jobs)
SELECT f.queue, w.slot, sum(w.jobs)::integer
FROM pgtq._queue AS f,
     unnest(f.rate_slots, f.rate_starts) AS w (slot, jobs)
WHERE f.rate_limit IS NOT NULL
GROUP BY f.queue, w.slot;

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
          SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j WHERE j.state = 'ready'
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

ALTER TABLE pgtq._queue
    DROP CONSTRAINT queue_rate_window_ck,
    DROP COLUMN rate_slots,
    DROP COLUMN rate_starts;

-- Guarantees: how many jobs a pop may claim now from the queue whose
-- _queue row is `flow`, at most n and never below 0: none while it is
-- paused; with max_running, the slots left: max_running minus its running
-- jobs whose lease is live at as_of (a job whose lease ran out counts no
-- more, whether tick rescued it yet or not; a job that ended counts no
-- more once its end committed); with rate_limit, the starts left in its
-- rate window: rate_limit minus the jobs started in the window's buckets
-- (_rate_slot; 0.27.0: rows of _rate_start, read by the primary key from
-- the window's first bucket). Counting reads the queue's entries of
-- job_running_idx from as_of on: its live running jobs, at most
-- max_running of them (0.5.0; until 0.4.0 it looked at each live running
-- job of every queue), in index order (0.20.0, enable_bitmapscan off, as
-- in pop: tick calls it too; 0.27.0: enable_seqscan off too, for
-- _rate_start, and so jit off). Takes no lock (_room does). The window's
-- first bucket is computed once (0.26.0: it was computed again for each bucket, 4 us
-- each, 0.45 ms a pop once a busy queue filled its 101 buckets).
CREATE OR REPLACE FUNCTION pgtq._room_of(flow pgtq._queue, n integer, as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
AS $$
DECLARE
    room         bigint := _room_of.n;
    window_start bigint;  -- the first bucket of the rate window
BEGIN
    IF flow.paused_at IS NOT NULL THEN
        RETURN 0;
    END IF;
    IF flow.max_running IS NOT NULL THEN
        room := least(room, flow.max_running - (SELECT count(*) FROM pgtq._job AS r
                                                WHERE r.state = 'running'
                                                  AND r.lease_expires_at > _room_of.as_of
                                                  AND r.queue = flow.queue));
    END IF;
    IF flow.rate_limit IS NOT NULL THEN
        window_start := pgtq._rate_slot(_room_of.as_of, flow.rate_period) - 100;
        room := least(room, flow.rate_limit - (SELECT coalesce(sum(w.jobs), 0)
                                               FROM pgtq._rate_start AS w
                                               WHERE w.queue = flow.queue AND w.slot >= window_start));
    END IF;
    RETURN greatest(room, 0);
END
$$;

-- Guarantees: records in the rate window of `queue` (when it has a rate
-- limit; otherwise it does nothing) that `jobs` of its jobs started at
-- as_of: adds them to the bucket of as_of (_rate_slot), its row of
-- _rate_start (0.27.0; a row per bucket, where 0.26.0 rewrote two arrays
-- of the queue's _queue row at every pop). The caller holds the lock of
-- the queue's _queue row (_room), so no start is lost to a concurrent pop
-- and the rate_period read here is the one in force. A bucket newer than
-- the queue's newest deletes the buckets that left the window: those
-- from 100 before the previous newest up to 100 before the new one. So a
-- queue keeps the buckets of one window (a start whose as_of lies more
-- than a window before the queue's newest keeps its row until
-- configure_queue changes the period), and no delete reads the range of
-- an earlier one, where the deleted buckets and every version of them
-- stay beside a held snapshot. Runs with pop's settings (sequential scans
-- off), its one caller.
CREATE OR REPLACE FUNCTION pgtq._count_starts(queue text, jobs integer, as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    now_slot    bigint;  -- the bucket of as_of
    newest_slot bigint;  -- the queue's newest bucket before this start
BEGIN
    SELECT pgtq._rate_slot(_count_starts.as_of, f.rate_period) INTO now_slot
    FROM pgtq._queue AS f
    WHERE f.queue = _count_starts.queue AND f.rate_limit IS NOT NULL;
    IF now_slot IS NULL THEN
        RETURN;
    END IF;
    SELECT max(w.slot) INTO newest_slot FROM pgtq._rate_start AS w WHERE w.queue = _count_starts.queue;
    IF newest_slot = now_slot THEN
        UPDATE pgtq._rate_start AS w
        SET jobs = w.jobs + _count_starts.jobs
        WHERE w.queue = _count_starts.queue AND w.slot = now_slot;
        RETURN;
    END IF;
    INSERT INTO pgtq._rate_start AS w (queue, slot, jobs)
    VALUES (_count_starts.queue, now_slot, _count_starts.jobs)
    ON CONFLICT ON CONSTRAINT rate_start_pkey DO UPDATE
    SET jobs = w.jobs + excluded.jobs;
    IF newest_slot < now_slot THEN
        DELETE FROM pgtq._rate_start AS w
        WHERE w.queue = _count_starts.queue
          AND w.slot >= newest_slot - 100 AND w.slot < now_slot - 100;
    END IF;
END
$$;

-- Guarantees: gives the failed and cancelled jobs among `ids` a fresh
-- start (0.27.0; the rule of retry and retry_failed): ready at as_of,
-- attempt count reset to 0, cancel request and waiters cleared (the
-- earlier waiters were told the outcome), error and result kept for the
-- record until the next attempt; a job in any other state, or an unknown
-- id, is left as it is. The jobs made ready are recorded for the ready
-- marks (_lower_marks), and each queue that got some is announced once.
-- Returns how many it retried. A keyed job whose key another pending job
-- holds raises unique_violation (job_key_pending_idx), which each caller
-- turns into its own PT006.
CREATE OR REPLACE FUNCTION pgtq._restart(ids bigint[], as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    restarted        integer;
    restarted_queues text[];
BEGIN
    WITH moved AS (
        UPDATE pgtq._job AS j
        SET state = 'ready',
            attempt = 0,
            run_at = _restart.as_of,
            started_at = NULL,
            finished_at = NULL,
            worker = NULL,
            cancel_requested_at = NULL,
            waiters = 0
        WHERE j.id = ANY (_restart.ids)
          AND j.state IN ('failed', 'cancelled')
        RETURNING j.queue, j.priority, j.id, j.lock_key
    ), lowered AS (
        SELECT pgtq._lower_marks(array_agg(moved.queue), array_agg(moved.priority), array_agg(moved.id),
                                 array_agg(moved.lock_key))
        FROM moved
    )
    SELECT count(*), coalesce(array_agg(DISTINCT moved.queue), '{}')
    INTO restarted, restarted_queues
    FROM moved, lowered;
    PERFORM pgtq._announce(q.queue) FROM unnest(restarted_queues) AS q (queue);
    RETURN restarted;
END
$$;

-- Guarantees: gives a failed or cancelled job a fresh start (_restart):
-- ready at once, attempt count reset to 0, cancel request and waiters
-- cleared, error and result kept for the record until the next attempt.
-- Returns true if it did, false for any other state or an unknown id. A
-- keyed job whose key another pending job holds is not retried: that
-- raises PT006 naming the job holding the key (retry that one's work
-- through it). The job made ready is recorded for the ready marks
-- (0.18.0, _lower_marks). A NULL id or a NULL or infinite as_of raises
-- PT004.
CREATE OR REPLACE FUNCTION pgtq.retry(id bigint, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    holder record;
BEGIN
    IF retry.id IS NULL THEN
        RAISE EXCEPTION 'pgtq: id must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(retry.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', retry.as_of);
    END IF;
    BEGIN
        RETURN pgtq._restart(ARRAY[retry.id], retry.as_of) > 0;
    EXCEPTION WHEN unique_violation THEN
        SELECT p.id, p.job_key INTO holder
        FROM pgtq._job AS j
        JOIN pgtq._job AS p ON p.queue = j.queue AND p.job_key = j.job_key
                           AND p.state IN ('scheduled', 'ready')
        WHERE j.id = retry.id;
        RAISE EXCEPTION 'pgtq: job % cannot be retried: job % is pending with its job_key %',
                retry.id, holder.id, quote_literal(holder.job_key)
            USING ERRCODE = 'PT006';
    END;
END
$$;

-- Guarantees: retries the failed jobs of `queue` and `task` (NULL: any),
-- each as retry() does (_restart: ready at once, attempt count reset,
-- cancel request and waiters cleared), in the caller's transaction, and returns
-- how many it retried. The failed jobs are found through job_failed_idx
-- (failed jobs only) and locked with FOR UPDATE SKIP LOCKED, so jobs
-- another session is changing are left alone; cancelled jobs are not
-- touched. Jobs with a job_key (0.27.0): one whose key a pending job of
-- its queue holds stays failed (that job does its work; retry() raises
-- PT006 for it), and of failed jobs that share a key only the newest is
-- retried, so the call never stops at a key. One statement for all the
-- jobs (0.27.0: one retry() call and one subtransaction each before, 236
-- us a job, and past 64 subtransactions in one transaction every other
-- session's snapshots grow slower to check). A job pushed with one of
-- the keys while it runs raises PT006, retrying nothing. A bad queue or
-- task name raises PT003, a NULL or infinite as_of PT004, and retries
-- nothing.
CREATE OR REPLACE FUNCTION pgtq.retry_failed(queue text DEFAULT NULL,
                                  task text DEFAULT NULL,
                                  as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    retried integer;
BEGIN
    IF retry_failed.queue IS NOT NULL THEN
        PERFORM pgtq._checked_name('queue', retry_failed.queue);
    END IF;
    IF retry_failed.task IS NOT NULL THEN
        PERFORM pgtq._checked_name('task', retry_failed.task);
    END IF;
    IF NOT coalesce(isfinite(retry_failed.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', retry_failed.as_of);
    END IF;
    BEGIN
        retried := pgtq._restart(
            ARRAY(WITH failed AS MATERIALIZED (
                      SELECT f.id, f.queue, f.job_key
                      FROM pgtq._job AS f
                      WHERE f.state = 'failed'
                        AND f.queue = coalesce(retry_failed.queue, f.queue)
                        AND f.task = coalesce(retry_failed.task, f.task)
                      ORDER BY f.id
                      FOR UPDATE SKIP LOCKED
                  )
                  SELECT f.id FROM failed AS f WHERE f.job_key IS NULL
                  UNION ALL
                  SELECT max(f.id)
                  FROM failed AS f
                  WHERE f.job_key IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM pgtq._job AS p
                                    WHERE p.queue = f.queue AND p.job_key = f.job_key
                                      AND p.state IN ('scheduled', 'ready'))
                  GROUP BY f.queue, f.job_key),
            retry_failed.as_of);
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'pgtq: retry_failed retried nothing: a job pushed meanwhile holds the job_key of a '
                        'failed job (call it again)'
            USING ERRCODE = 'PT006';
    END;
    RETURN retried;
END
$$;

-- Guarantees: sets the limits of `queue` to exactly those given, and
-- returns whether that changed them (the same limits again change
-- nothing, so deploys may declare them at each start):
--   max_running  at most this many of its jobs run at once, across all
--                workers (1 to 100000; 1 makes a strict serial queue);
--                a running job counts while its lease is live;
--   rate_limit,  at most rate_limit of its jobs start in any window of
--   rate_period  length rate_period, across all workers (1 to 1000000
--                jobs, 10 milliseconds to 1 year, given together);
-- a limit left out (NULL) is no limit: configure_queue(queue) removes
-- both. The pause is not touched (pause, resume). Changing rate_period
-- starts an empty rate window; changing only rate_limit keeps it. A
-- lowered max_running stops no running job: the queue runs over it until
-- enough of them end. Takes effect for the pops that start after the
-- commit (those holding the queue's row finish first), and announces the
-- queue when something changed (there may be room now). A bad queue name
-- raises PT003, a bad limit or a NULL or infinite as_of PT004, changing
-- nothing. Meant for pgtq_admin.
CREATE OR REPLACE FUNCTION pgtq.configure_queue(queue text,
                                     max_running integer DEFAULT NULL,
                                     rate_limit integer DEFAULT NULL,
                                     rate_period interval DEFAULT NULL,
                                     as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    changed    boolean;
    old_period interval;  -- the rate_period before this call (NULL: none)
BEGIN
    PERFORM pgtq._checked_name('queue', configure_queue.queue);
    IF configure_queue.max_running NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'pgtq: max_running must be between 1 and 100000 (NULL: no limit), got %',
                configure_queue.max_running
            USING ERRCODE = 'PT004';
    END IF;
    IF configure_queue.rate_limit NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'pgtq: rate_limit must be between 1 and 1000000 (NULL: no limit), got %',
                configure_queue.rate_limit
            USING ERRCODE = 'PT004';
    END IF;
    IF (configure_queue.rate_limit IS NULL) <> (configure_queue.rate_period IS NULL) THEN
        RAISE EXCEPTION 'pgtq: rate_limit and rate_period go together (at most rate_limit jobs start in '
                        'any rate_period), got rate_limit % and rate_period %',
                coalesce(configure_queue.rate_limit::text, 'NULL'), coalesce(configure_queue.rate_period::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF configure_queue.rate_period NOT BETWEEN interval '10 milliseconds' AND interval '1 year' THEN
        RAISE EXCEPTION 'pgtq: rate_period must be an interval between 10 milliseconds and 1 year, got %',
                configure_queue.rate_period
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(configure_queue.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', configure_queue.as_of);
    END IF;

    PERFORM pgtq._lock_settings(configure_queue.queue);
    SELECT f.rate_period INTO old_period FROM pgtq._queue AS f WHERE f.queue = configure_queue.queue;
    IF configure_queue.max_running IS NULL AND configure_queue.rate_limit IS NULL THEN
        -- No limits: a queue that is not paused has nothing left to control.
        DELETE FROM pgtq._queue AS f WHERE f.queue = configure_queue.queue AND f.paused_at IS NULL;
        changed := FOUND;
        IF NOT changed THEN
            UPDATE pgtq._queue AS f
            SET max_running = NULL,
                rate_limit = NULL,
                rate_period = NULL,
                updated_at = configure_queue.as_of
            WHERE f.queue = configure_queue.queue
              AND (f.max_running IS NOT NULL OR f.rate_limit IS NOT NULL);
            changed := FOUND;
        END IF;
    ELSE
        INSERT INTO pgtq._queue AS f (queue, max_running, rate_limit, rate_period, updated_at)
        VALUES (configure_queue.queue, configure_queue.max_running, configure_queue.rate_limit,
                configure_queue.rate_period, configure_queue.as_of)
        ON CONFLICT ON CONSTRAINT queue_pkey DO UPDATE
        SET max_running = excluded.max_running,
            rate_limit = excluded.rate_limit,
            rate_period = excluded.rate_period,
            updated_at = excluded.updated_at
        WHERE (f.max_running, f.rate_limit, f.rate_period)
              IS DISTINCT FROM (excluded.max_running, excluded.rate_limit, excluded.rate_period);
        changed := FOUND;
    END IF;
    -- The rate window starts empty under a new rate_period, and goes with
    -- the rate limit (the row's lock, taken above, waits for the pops
    -- that counted starts under the old one).
    IF changed THEN
        DELETE FROM pgtq._rate_start AS w
        WHERE w.queue = configure_queue.queue
          AND NOT EXISTS (SELECT 1 FROM pgtq._queue AS f
                          WHERE f.queue = configure_queue.queue
                            AND f.rate_period = old_period);
        PERFORM pgtq._announce(configure_queue.queue);
    END IF;
    RETURN changed;
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
