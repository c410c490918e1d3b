-- pgtq 0.29.0 -> 0.30.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_30_0. Every definition here is the one of sql/pgtq.sql at
-- 0.30.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- The lock-key probes of a pop (is a running job holding this key?)
-- tested state = 'running', which job_running_idx's predicate follows from
-- as well as the lock-key index's. When the statistics said few jobs ran
-- (a vacuum of an idle table says none), the planner could take
-- job_running_idx for them, fresh session or not: every running job of
-- every queue, at each job of the walk over the queue's ready jobs. A pop
-- of a keyed queue with 3,000 jobs of busy keys, beside 950 jobs running
-- in other queues, read 2.6 million index entries (578 ms). The probes now
-- match the lease columns (a lease and its expiry mean running,
-- job_running_has_lease_ck), and the lock-key index is rebuilt on that
-- predicate, which only it follows from. Building it reads the job table
-- once, under a lock that holds writes to the table back meanwhile.
--
-- The same statistics, or plans a session made while the job table was
-- empty, sent other statements through the wrong index: the look for the
-- next ready job of a lock key freed by an end (_wake_after_end, now
-- _announce_freed with sorts off) read job_ready_idx, every ready job of
-- every queue, at each end of a keyed job; _restart (retry, retry_failed)
-- and delete_job read job_finished_idx, every finished job, for their ids;
-- retry_failed scanned the table. Each now has one plan that reads what
-- it needs.
--
-- _end_done (the completions of complete_many and complete_many_and_pop),
-- heartbeat_many and tick run generic plans from their first call: the
-- planner kept planning anew the calls whose custom plan looked cheaper,
-- such as completions of no ids and heartbeats of one, at about 250 us
-- each, and some statements of every tick of one queue (140 us a tick).
-- _lower_marks (release, retry, a failure retried at once, the tick's
-- promotion) and the tick's _running_queues, _unused_job_id and
-- _unused_low_seq are PL/pgSQL, so their statements are planned once a
-- session, not at each call as a SQL function's are; so are backoff,
-- _state_after_failure (a fail() that schedules a retry: 220 us of server
-- CPU, 150 now), _rate_slot and _slot_space (the pops of limited queues)
-- and _lease_expired_error (the rescue).

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.30.0'::text $$;

CREATE INDEX job_lock_key_leased_idx ON pgtq._job (lock_key)
    WHERE lease IS NOT NULL AND lease_expires_at IS NOT NULL AND lock_key IS NOT NULL;

-- Guarantees: _write_off_lapsed for the running jobs of lock key
-- `lock_key` (0.23.0; 0.11.0 to 0.22.0 wrote off every lock key's at each
-- pop, _write_off_lapsed_keys): those whose lease ran out as of as_of get
-- slot 0, so the key is free and no heartbeat extends their lease again.
-- Never waits (FOR UPDATE SKIP LOCKED): a job whose row another
-- transaction is writing is left as it is and still holds its key. With
-- _is_next_of_key calls it when the key has such a job, before it counts
-- the key free.
CREATE OR REPLACE FUNCTION pgtq._write_off_lapsed_key(lock_key text, as_of timestamptz)
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
                            WHERE r.lock_key = _write_off_lapsed_key.lock_key
                              AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
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
    WHERE r.lock_key = _is_next_of_key.lock_key
      AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running (job_lock_key_leased_idx)
      AND (r.lease_expires_at > _is_next_of_key.as_of OR r.slot IS DISTINCT FROM 0);
    IF held_until IS NOT NULL THEN
        IF held_until > _is_next_of_key.as_of THEN
            RETURN false;  -- a live lease holds it
        END IF;
        -- Only lapsed jobs hold it: write them off, and look again.
        PERFORM pgtq._write_off_lapsed_key(_is_next_of_key.lock_key, _is_next_of_key.as_of);
        IF EXISTS (SELECT 1 FROM pgtq._job AS r
                   WHERE r.lock_key = _is_next_of_key.lock_key
                     AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
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
-- job_lock_key_leased_idx each (0.23.0: until 0.22.0 the walk first read
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
                   WHERE r.lock_key = c.lock_key
                     AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running (job_lock_key_leased_idx)
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

-- Guarantees: _wake_after_end's look, for ends that may free a slot or a
-- lock key (0.30.0: its own function): each of `queues` that has a
-- max_running and ready jobs, and the queue of the next ready job of each
-- of `lock_keys` (NULLs ignored), is announced (_announce, at commit).
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
BEGIN
    PERFORM pgtq._announce(w.queue)
    FROM (SELECT f.queue
          FROM pgtq._queue AS f
          WHERE f.queue = ANY (_announce_freed.queues)
            AND f.max_running IS NOT NULL
            AND EXISTS (SELECT 1 FROM pgtq._job AS r WHERE r.queue = f.queue AND r.state = 'ready')
          UNION
          SELECT (SELECT h.queue FROM pgtq._job AS h
                  WHERE h.lock_key = k.key AND h.state = 'ready'
                  ORDER BY h.priority DESC, h.id
                  LIMIT 1)
          FROM unnest(_announce_freed.lock_keys) AS k (key)
          WHERE k.key IS NOT NULL) AS w
    WHERE w.queue IS NOT NULL;
END
$$;

-- Guarantees: after running jobs of `queues`, with the lock keys
-- `lock_keys` (NULLs ignored), ended in the calling transaction, tells the
-- idle workers that may now claim a job (_announce_freed, at commit):
-- each of `queues` that has a max_running and ready jobs (a slot came
-- free), and the queue of the next ready job of each lock key (the key
-- came free). A worker whose pop met a limit or a busy key waits for such
-- a wake-up. For jobs of queues without a limit and without a key it
-- costs one probe of _queue and returns (0.12.0: until then the whole
-- look ran, 20 us of a one-job complete). Its plan is generic (0.5.0:
-- plan_cache_mode; until 0.4.0 it was planned anew at each call of
-- complete, complete_many, fail, abort and release).
CREATE OR REPLACE FUNCTION pgtq._wake_after_end(queues text[], lock_keys text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    IF coalesce(cardinality(array_remove(_wake_after_end.lock_keys, NULL)), 0) = 0
       AND NOT EXISTS (SELECT 1 FROM pgtq._queue AS f
                       WHERE f.queue = ANY (_wake_after_end.queues) AND f.max_running IS NOT NULL) THEN
        RETURN;
    END IF;
    PERFORM pgtq._announce_freed(_wake_after_end.queues, _wake_after_end.lock_keys);
END
$$;

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
-- The plan is generic from the first call (0.30.0): with the default
-- plan_cache_mode the planner kept planning anew the calls whose custom
-- plan looked cheaper than the generic one, such as those with no ids
-- (a worker's first complete_many_and_pop, 300 us against 60), and the
-- generic plan reads the same entries for any number of ids.
CREATE OR REPLACE FUNCTION pgtq._end_done(ids bigint[], leases uuid[], results jsonb[], as_of timestamptz)
RETURNS TABLE (id bigint, queue text, lock_key text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
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
-- session planned it (0.29.0, as _end_done), with one generic plan
-- (0.30.0, as _end_done).
CREATE OR REPLACE FUNCTION pgtq.heartbeat_many(ids bigint[],
                                    leases uuid[],
                                    extend_by interval DEFAULT '5 minutes',
                                    as_of timestamptz DEFAULT now())
RETURNS TABLE (id bigint, held boolean, cancel_requested boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
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

-- Guarantees: records the jobs of `ids` (of queues[i], at priorities[i],
-- with lock_keys[i]) that a caller has just made ready, for the ready
-- marks (0.18.0): the lowest id per queue and priority among those
-- without a lock key gives a row of _ready_mark_low. Pops seek from it
-- at once when it is below their mark at its priority; the next tick of
-- the queue reads it before it looks for the first ready job from its
-- floor, so no job turned ready below the floor is missed (0.25.0: a row
-- for every such job, whatever the queue's mark, so that no caller's
-- view of the mark decides it; the tick of a queue without a mark
-- deletes them). Jobs with a lock key write nothing (pop's keyed path takes
-- them). Takes no lock and waits for nothing. Every caller that turns an
-- existing job ready calls it: release, retry, _end_failed_attempt
-- (fail, abort and the lease rescue, when the retry is due at once),
-- _push_keyed (a replacing push) and tick's promotion. Its transaction
-- has its id before the rows get their numbers (seq, 0.26.0), as a push
-- takes its id before its job ids: what lets a tick tell when every row
-- below a number has been written or rolled back (_raise_mark).
-- PL/pgSQL (0.30.0; SQL until 0.29.0), so a session plans its two
-- statements once: a SQL function's were planned anew at each call
-- (a release took 320 us of server CPU, 185 now).
CREATE OR REPLACE FUNCTION pgtq._lower_marks(queues text[], priorities integer[], ids bigint[], lock_keys text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
BEGIN
    PERFORM pg_current_xact_id();
    INSERT INTO pgtq._ready_mark_low (queue, priority, id)
    SELECT r.queue, r.priority, min(r.id)
    FROM unnest(_lower_marks.queues, _lower_marks.priorities, _lower_marks.ids, _lower_marks.lock_keys)
         AS r (queue, priority, id, lock_key)
    WHERE r.lock_key IS NULL
    GROUP BY r.queue, r.priority;
END
$$;

-- Guarantees: the queues that have running jobs, each once, in the order
-- of their names. Reads job_running_idx with one probe per such queue (a
-- loose index scan), not one entry per running job, so tick's rescue of
-- every queue costs about as much per queue as a tick of that queue
-- alone. Each probe reads the index backwards, from a queue's latest
-- lease (0.27.0): beside a snapshot held open the entries of the jobs that
-- ended since it was taken stay, with the earliest leases, and a probe
-- from the earliest stepped over all of them. PL/pgSQL, as the two
-- below (0.30.0; SQL until 0.29.0): a session plans its statement once,
-- where a SQL function's was planned anew at each call (a tick of every
-- queue took 1,110 us of server CPU, 790 with the three in PL/pgSQL).
CREATE OR REPLACE FUNCTION pgtq._running_queues()
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN (WITH RECURSIVE running (queue) AS (
                (SELECT r.queue FROM pgtq._job AS r
                 WHERE r.state = 'running'
                 ORDER BY r.queue DESC, r.lease_expires_at DESC
                 LIMIT 1)
                UNION ALL
                SELECT (SELECT r.queue FROM pgtq._job AS r
                        WHERE r.state = 'running' AND r.queue < running.queue
                        ORDER BY r.queue DESC, r.lease_expires_at DESC
                        LIMIT 1)
                FROM running
                WHERE running.queue IS NOT NULL
            )
            SELECT coalesce(array_agg(running.queue ORDER BY running.queue), '{}')
            FROM running
            WHERE running.queue IS NOT NULL);
END
$$;

-- Guarantees: the id the job sequence gives next (0.25.0): no job pushed
-- after this read has a lower id (the sequence is CACHE 1). Reads the
-- sequence; takes no id of it.
CREATE OR REPLACE FUNCTION pgtq._unused_job_id()
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN (SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END FROM pgtq._job_id_seq AS s);
END
$$;

-- Guarantees: the number that the next row of _ready_mark_low will get, or
-- a higher one (0.26.0). The same reading as _unused_job_id, for the reads
-- of those rows (_raise_mark).
CREATE OR REPLACE FUNCTION pgtq._unused_low_seq()
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN (SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END
            FROM pgtq._ready_mark_low_seq AS s);
END
$$;

-- Guarantees: the delay before retrying after failed attempt number
-- `attempt` (1 = the first attempt): exponential, with jitter, capped.
--   delay = least(cap, base * 2^(attempt - 1)) * (0.8 + 0.2 * random())
-- so it always lies in [0.8 * d, d] with d = least(cap, base * 2^(attempt-1)),
-- and never exceeds `cap`. With the defaults: about 2 s, 4 s, 8 s, ... and at
-- most one hour from attempt 12 on. Attempts below 1 (or NULL) count as 1;
-- a NULL base or cap means its default. The delay is computed in seconds
-- (as a double), so no attempt with a base and cap of up to 100 years
-- overflows an interval: fail() and tick() apply each job's own policy
-- (push's backoff_base and backoff_cap) with it. Pure computation: no
-- rights needed. PARALLEL RESTRICTED, as random() is (0.1.0 wrongly said
-- SAFE).
-- PL/pgSQL since 0.30.0, as _state_after_failure: a SQL function with a
-- SET clause is not inlined, and is planned at each call.
CREATE OR REPLACE FUNCTION pgtq.backoff(attempt integer,
                             base interval DEFAULT '2 seconds',
                             cap interval DEFAULT '1 hour')
RETURNS interval
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN make_interval(secs => least(extract(epoch FROM coalesce(backoff.cap, interval '1 hour'))::float8,
                                       extract(epoch FROM coalesce(backoff.base, interval '2 seconds'))::float8
                                       * power(2, least(greatest(coalesce(backoff.attempt, 1), 1) - 1, 40)))
                                 * (0.8 + 0.2 * random()));
END
$$;

-- Guarantees: the state a job goes to after a failed attempt, by one rule
-- shared by fail() and the lease rescue in tick(): a cancel was requested
-- -> cancelled (never retried); attempts remain -> scheduled (or ready when
-- the retry is already due); none left -> failed.
-- PL/pgSQL since 0.30.0, as backoff: a SQL function with a SET clause is
-- not inlined, and is planned at each call (with both, a fail() that
-- schedules a retry took 220 us of server CPU, 140 now).
CREATE OR REPLACE FUNCTION pgtq._state_after_failure(attempt integer, max_attempts integer,
                                          cancel_requested boolean, retry_at timestamptz,
                                          as_of timestamptz)
RETURNS pgtq.job_state
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN CASE
        WHEN _state_after_failure.cancel_requested THEN 'cancelled'::pgtq.job_state
        WHEN _state_after_failure.attempt >= _state_after_failure.max_attempts THEN 'failed'::pgtq.job_state
        WHEN _state_after_failure.retry_at <= _state_after_failure.as_of THEN 'ready'::pgtq.job_state
        ELSE 'scheduled'::pgtq.job_state
    END;
END
$$;

-- Guarantees: the number of the rate-window bucket that `as_of` falls in,
-- for a rate limit over `period`: buckets are period / 100 long and
-- numbered from the epoch, so bucket b covers [b * w, (b + 1) * w) with
-- w = period / 100. The window of a pop at as_of is the buckets from
-- _rate_slot(as_of, period) - 100 to _rate_slot(as_of, period): they
-- cover (as_of - period, as_of] and at most period / 100 more before it,
-- so a start is forgotten between period and 1.01 * period after it
-- happened, never sooner (the view pgtq.queues writes the same formula).
-- PL/pgSQL since 0.30.0: a SQL function with a SET clause is not inlined,
-- and is planned at each call (a pop(1) of a rate-limited queue took 360
-- us of server CPU, 290 now).
CREATE OR REPLACE FUNCTION pgtq._rate_slot(as_of timestamptz, period interval)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN floor(extract(epoch FROM _rate_slot.as_of) * 100 / extract(epoch FROM _rate_slot.period))::bigint;
END
$$;

-- Guarantees: the first key of the transaction-level advisory locks of
-- `queue`'s slots (the second key is the slot number, 1..max_running) and
-- of its settings (second key 0), the same number in every session.
-- Two queues sharing the hash only make their pops try each other's locks.
-- PL/pgSQL since 0.30.0, as _rate_slot: a SQL function with a SET clause
-- is not inlined, and is planned at each call.
CREATE OR REPLACE FUNCTION pgtq._slot_space(queue text)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN hashtext('pgtq slots of ' || _slot_space.queue);
END
$$;

-- Guarantees: the error recorded when tick rescues a job whose lease ran
-- out: when it expired and which worker held it.
-- PL/pgSQL since 0.30.0, as backoff: a SQL function with a SET clause is
-- not inlined, and is planned at each call (once per job rescued).
CREATE OR REPLACE FUNCTION pgtq._lease_expired_error(lease_expires_at timestamptz, worker text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN format('lease expired at %s (worker %s stopped without completing the job)',
                  _lease_expired_error.lease_expires_at, coalesce(_lease_expired_error.worker, 'unknown'));
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
          -- failed or cancelled, said as the states it is not (0.30.0):
          -- job_finished_idx's predicate follows from "IN ('failed',
          -- 'cancelled')", and whenever the statistics said few jobs had
          -- finished the plan read that index whole, every finished job,
          -- instead of probing job_pkey for the ids.
          AND j.state NOT IN ('scheduled', 'ready', 'running', 'done')
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
-- nothing. It reads job_failed_idx in its order, with sequential scans
-- and sorts off (and jit, 0.30.0): a session that planned it while the
-- table was empty scanned the whole table at each later call.
CREATE OR REPLACE FUNCTION pgtq.retry_failed(queue text DEFAULT NULL,
                                  task text DEFAULT NULL,
                                  as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET enable_sort = off
SET jit = off
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
                      ORDER BY f.queue, f.task, f.id  -- job_failed_idx's order
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

-- Guarantees: deletes one finished job (done, failed or cancelled) and
-- returns true; returns false, deleting nothing, for a live job (cancel
-- it first) or an unknown id. A NULL id raises PT004.
CREATE OR REPLACE FUNCTION pgtq.delete_job(id bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF delete_job.id IS NULL THEN
        RAISE EXCEPTION 'pgtq: id must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    DELETE FROM pgtq._job AS j
    WHERE j.id = delete_job.id
      -- finished, said as the states it is not (0.30.0, as in _restart):
      -- job_finished_idx's predicate follows from "IN ('done', 'failed',
      -- 'cancelled')", and the plan read that index whole.
      AND j.state NOT IN ('scheduled', 'ready', 'running');
    RETURN FOUND;
END
$$;

DROP INDEX pgtq.job_lock_key_running_idx;

-- ---------------------------------------------------------------------------
-- Privileges: as at the end of a fresh install (new objects are reachable
-- by PUBLIC until revoked), then the roles' rights again.
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
