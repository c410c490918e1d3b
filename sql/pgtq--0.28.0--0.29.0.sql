-- pgtq 0.28.0 -> 0.29.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_29_0. Every definition here is the one of sql/pgtq.sql at
-- 0.29.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- A session keeps the plans of pop from its first call, and those of tick
-- from about its sixth. A worker that connected while the job table was
-- empty (vacuumed so, or new) planned them against a table the planner
-- believed held nothing, where every plan costs about the same, and could
-- keep plans that read the whole table: the claim's seek took job_pkey
-- from the ready mark and sorted what it found (every job above the mark,
-- at each claim), the tick's promotion and rescue scanned the table, its
-- look for the first ready job took job_pkey from the floor. Once jobs
-- came faster than the workers took them, each claim read the whole
-- backlog and the backlog grew, until autovacuum's next visit of the table
-- replanned them: in the bench's sustained run the drain fell from 10,000
-- to 600 jobs a second within a minute. Now pop runs with enable_sort off
-- and tick with enable_seqscan, enable_sort and jit off (their helpers
-- too), so the plans that read the index giving the order are the only
-- ones without a sort or a scan of the table; the tick's promotion
-- updates by an array of ids, and records its jobs for the marks only
-- when it moved some; _end_done and heartbeat_many read the job_pkey
-- entries of their ids whatever the join order, and hash the pairs.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.29.0'::text $$;

-- Guarantees: ends as complete() would each job ids[i] whose current lease
-- is leases[i] (so it is running): done with results[i] (NULL results: no
-- result), or cancelled if a cancel was requested; tells its waiters (at
-- commit); returns one row per job it ended: its id, queue and lock key.
-- Pairs with a stale or forged lease, or an unknown id, change nothing.
-- It announces no freed slot or key: its callers do (_wake_after_end),
-- each by its rule. The arguments are its callers' to check. Reads the
-- job_pkey entries of `ids` and hashes them with the pairs, whatever the
-- table held when the session planned it (0.29.0: the ids as an index
-- condition, nested loops and merge joins off). A session keeps its
-- generic plan from about its sixth call; made while the job table was
-- empty, it could join the pairs with every entry of job_pkey, at each
-- call, however large the table grew. (Planning at each call instead
-- costs about 250 us a call: the planner weighs every index of _job.)
CREATE OR REPLACE FUNCTION pgtq._end_done(ids bigint[], leases uuid[], results jsonb[], as_of timestamptz)
RETURNS TABLE (id bigint, queue text, lock_key text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET enable_nestloop = off
SET enable_mergejoin = off
SET jit = off
AS $$
BEGIN
    RETURN QUERY
    UPDATE pgtq._job AS j
    SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'done' ELSE 'cancelled' END::pgtq.job_state,
        finished_at = _end_done.as_of,
        result = claims.result,
        lease = NULL,
        lease_expires_at = NULL
    FROM unnest(_end_done.ids, _end_done.leases, _end_done.results) AS claims (id, lease, result)
    WHERE j.id = ANY (_end_done.ids)  -- the jobs' job_pkey entries, whatever the join
      AND j.id = claims.id
      AND j.lease = claims.lease  -- so running (job_running_has_lease_ck)
    RETURNING CASE WHEN j.waiters > 0 THEN pgtq._tell_waiters(j.id) ELSE j.id END, j.queue, j.lock_key;
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
--     rate limit at most the room it has left;
--   * a queue whose only control is max_running (0.9.0): the pop claims
--     into free slots it holds the tokens of (_take_slots), and each job
--     it claims records its slot, so pops of the queue claim side by side
--     and never overshoot;
--   * otherwise (paused, or a rate limit) the pop locks the queue's _queue
--     row until its transaction ends (_room), so pops of that queue take
--     turns and never overshoot, and its starts are counted in the rate
--     window (_count_starts);
--   * a job with a lock key starts only when no job of its key runs and it
--     is the key's next; other jobs are taken past it (_choose_keyed).
-- A queue with no pause, no limit and no ready job with a lock key pays
-- two index probes for this and claims as before.
-- Where the claim starts (0.18.0): with a fresh ready mark of the queue
-- (_ready_mark, set by tick) and no ready job of a higher priority than
-- the mark's, it seeks to the mark within that priority, then takes the
-- lower priorities from their first entry; so it no longer steps over the
-- entries of the jobs claimed since the index was last cleaned, which a
-- snapshot held open keeps. Claim order stays priority, then push order,
-- with one exception: a job whose push transaction took its id before one
-- tick and committed after the next may be passed over until the tick
-- after its commit (_raise_mark).
-- Pop may return fewer than n jobs while more are ready (a limit, at
-- most 256 a call from a queue with max_running alone, busy keys, rows
-- other pops hold);
-- whoever waits for more is told by an announcement on channel pgtq
-- when a slot or a key comes free (_wake_after_end) or the rate window
-- moves on (tick).
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
--     when a cheap inline test fails;
--   * no bitmap scans (0.20.0: enable_bitmapscan off, for the helpers it
--     calls too). A bitmap scan reads every entry its index condition
--     matches and the row of each, and marks no entry of a job that ended
--     as dead, so later scans read it again. The generic plans chose one
--     once the job table was large: the count of a max_running queue's
--     running jobs (_filled_slots, twice a pop) read the row of every job
--     of the queue that ended since the last vacuum (1.5 ms at 10,000),
--     and the walk of a queue with lock keys (_choose_keyed) read and
--     sorted every ready job of the queue (1.3 ms at 10,000). In index
--     order, they read the entries they need, and mark the ones of ended
--     jobs dead once no snapshot sees them, so the next pops skip them;
--   * no sorts where an index gives the order (0.29.0: enable_sort off,
--     for the helpers too). A session keeps its generic plans from its
--     first pop; made while the job table was empty (vacuumed so, or
--     new), every plan cost about the same, and the seek from the mark
--     could take job_pkey from the mark and sort what it found: every job
--     above the mark, read at each claim. Once jobs came faster than the
--     workers took them, each claim read the whole backlog, and the
--     backlog grew, until autovacuum's next visit of the table replanned
--     it (the bench's sustained drain fell from 10,000 to 600 jobs a
--     second within a minute). job_ready_idx gives the claim order, so
--     the plan that reads it is the one without a sort, whatever the
--     table held when it was made (tests/py/test_plans_from_an_empty_table.py).
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
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET jit = off
AS $$
DECLARE
    flow       pgtq._queue;  -- the queue's pause and limits, if it has any
    controlled boolean;      -- paused or limited: the queue has a _queue row
    room       integer := pop.n;
    slots      integer[];    -- the slots its claims fill (a queue whose only control is max_running)
    keyed_ids  bigint[];
    started    integer;
    mark_priority integer;  -- the queue's ready mark (_ready_mark), if fresh
    mark_id    bigint;
    seek_ids   bigint[];    -- claimed by the seek from the mark
    below      integer := 2147483647;  -- the claim from the queue's first entry takes priorities up to this
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
        slots := pgtq._take_slots(pop.queue, pop.n, pop.as_of);  -- NULL: paused or rate-limited
        IF slots IS NOT NULL THEN
            room := cardinality(slots);
        ELSIF pgtq._room_of(flow, pop.n, pop.as_of) < 1 THEN
            RETURN;  -- full or paused as of now: no lock taken, nothing written
        ELSE
            room := pgtq._room(pop.queue, pop.n, pop.as_of);
        END IF;
        IF room < 1 THEN
            RETURN;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM pgtq._job AS k
               WHERE k.queue = pop.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL) THEN
        keyed_ids := pgtq._choose_keyed(pop.queue, room, pop.as_of);
    ELSE
        -- The seek from the ready mark (0.18.0), when tick set a fresh one
        -- and no ready job ranks above its priority: that priority's jobs
        -- from the mark on, then the lower priorities from their first.
        -- The jobs made ready since the tick are read from the mark's
        -- lows_from on (0.26.0: not the rows ticks read and deleted).
        -- The mark is the queue's highest generation (0.26.0).
        SELECT m.priority,
               least(m.low_id, (SELECT min(l.id) FROM pgtq._ready_mark_low AS l
                                WHERE l.queue = m.queue AND l.seq >= m.lows_from
                                  AND l.priority = m.priority))
        INTO mark_priority, mark_id
        FROM (SELECT g.* FROM pgtq._ready_mark AS g
              WHERE g.queue = pop.queue
              ORDER BY g.generation DESC
              LIMIT 1) AS m
        WHERE m.set_at > statement_timestamp() - interval '2 minutes';
        -- (Ordered, so that only job_ready_idx serves it: EXISTS would drop
        -- the order and could walk job_pkey.)
        IF mark_id IS NOT NULL
           AND (SELECT h.priority FROM pgtq._job AS h
                WHERE h.queue = pop.queue AND h.state = 'ready' AND h.lock_key IS NULL
                  AND h.priority > mark_priority
                ORDER BY h.priority DESC, h.id
                LIMIT 1) IS NULL THEN
            -- The priority as a closed range, not `=`: then no plan can take
            -- the ids in order from job_pkey and step over every version of
            -- every job from the mark on; job_ready_idx starts at the mark.
            seek_ids := ARRAY(SELECT c.id
                              FROM pgtq._job AS c
                              WHERE c.queue = pop.queue AND c.state = 'ready' AND c.lock_key IS NULL
                                AND c.priority <= mark_priority AND c.priority >= mark_priority
                                AND c.id >= mark_id
                              ORDER BY c.priority DESC, c.id
                              LIMIT room
                              FOR UPDATE SKIP LOCKED);
            below := CASE WHEN mark_priority > -2147483648 THEN mark_priority - 1 END;  -- NULL: none below
        END IF;
    END IF;

    RETURN QUERY
    WITH claimable AS MATERIALIZED (
        SELECT c.id
        FROM pgtq._job AS c
        WHERE keyed_ids IS NULL
          AND c.queue = pop.queue AND c.state = 'ready' AND c.lock_key IS NULL
          AND c.priority <= below
        ORDER BY c.priority DESC, c.id
        LIMIT room - coalesce(cardinality(seek_ids), 0)
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE pgtq._job AS j
        SET state = 'running',
            attempt = j.attempt + 1,
            lease = gen_random_uuid(),
            lease_expires_at = pop.as_of + pop.lease,
            started_at = pop.as_of,
            worker = pop.worker,
            slot = CASE WHEN slots IS NOT NULL
                        THEN slots[array_position(seek_ids || ARRAY(SELECT claimable.id FROM claimable) || keyed_ids,
                                                  j.id)]
                   END
        WHERE j.id = ANY (seek_ids || ARRAY(SELECT claimable.id FROM claimable) || keyed_ids)
        RETURNING j.id, j.queue, j.task, j.args, j.kwargs, j.priority,
                  j.attempt, j.max_attempts, j.lease, j.lease_expires_at
    )
    SELECT claimed.* FROM claimed ORDER BY claimed.priority DESC, claimed.id;

    IF controlled AND slots IS NULL THEN
        GET DIAGNOSTICS started = ROW_COUNT;
        IF started > 0 THEN
            PERFORM pgtq._count_starts(pop.queue, started, pop.as_of);
        END IF;
    END IF;
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
-- infinite as_of, it raises PT004 and extends nothing. Reads the
-- job_pkey entries of `ids` only, whatever the table held when the
-- session planned it (0.29.0, as _end_done).
CREATE OR REPLACE FUNCTION pgtq.heartbeat_many(ids bigint[],
                                    leases uuid[],
                                    extend_by interval DEFAULT '5 minutes',
                                    as_of timestamptz DEFAULT now())
RETURNS TABLE (id bigint, held boolean, cancel_requested boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET enable_nestloop = off
SET enable_mergejoin = off
SET jit = off
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
        WHERE j.id = ANY (heartbeat_many.ids)  -- the jobs' job_pkey entries, whatever the join
          AND j.id = claim.id
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
-- floor), until autovacuum's next visit replanned them.
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
    -- looked for queue by queue, ordered so that job_ready_idx serves it
    -- (0.24.0: as an EXISTS, the generic plan PL/pgSQL keeps from a
    -- session's sixth tick on read every ready job of the table, grouped
    -- by queue, before it looked at _queue, even with no limited queue at
    -- all: 30 to 50 ms a tick at 100,000 to 180,000 ready jobs).
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
