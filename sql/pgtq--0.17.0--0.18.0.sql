-- pgtq 0.17.0 -> 0.18.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_18_0. Every definition here is the one of sql/pgtq.sql at
-- 0.18.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- Ready marks: pop seeks to where its queue's ready jobs start. Each pop
-- walked the ready index from the queue's first entry, stepping over the
-- entries of every job claimed since the index was last cleaned. A
-- snapshot held open (a long transaction, a replica with
-- hot_standby_feedback) keeps them, and a queue that ran at 10,000 jobs/s
-- fell to about 4,500 within a minute of one. Now tick sets, per queue, a
-- mark below which no ready job of the queue's first priority is
-- (_raise_mark); every path that turns an existing job ready records it
-- (_lower_marks); pop seeks from the mark (pop). health's cleanup check
-- no longer says that claims step over what an old transaction keeps.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.18.0'::text $$;

-- Ready marks (0.18.0): where pop starts its claim in a queue. One row per
-- queue that workers drain: `priority` is the highest priority of its
-- ready jobs (without a lock key) when tick last looked, and no such job
-- of that priority has an id below `low_id`, so pop seeks to `low_id`
-- instead of walking the index from the queue's first entry. Without it,
-- a pop steps over the index entries of every job claimed since they were
-- last cleaned; a snapshot held open (a long transaction, a replica with
-- hot_standby_feedback) keeps them from being cleaned, and every pop paid
-- for all of them: 10,000 jobs/s fell to about 4,500 within a minute.
-- Only tick writes these rows (_raise_mark), each time afresh from what it
-- sees, so a mark that passed over a ready job is lowered by the first
-- tick that sees the job. `next_low_id` is
-- what the next tick may publish at most (its look, one tick behind, so a
-- push whose transaction took its id before that look and commits within
-- one tick is never passed over); set_at says how fresh the mark is (pop
-- ignores a mark older than two minutes: ticks stopped).
CREATE TABLE pgtq._ready_mark (
    queue        text NOT NULL,
    priority     integer NOT NULL,
    low_id       bigint NOT NULL,
    next_low_id  bigint NOT NULL,
    set_at       timestamptz NOT NULL,
    CONSTRAINT ready_mark_pkey PRIMARY KEY (queue)
);

-- Jobs made ready below their queue's mark (0.18.0) by anything but a
-- push: a release, a retry, a failure retried at once, a promotion, a
-- replacing push of a job key (_lower_marks). Pop seeks from the lowest
-- of them too, until the next tick, which folds them into the mark and
-- deletes them. Inserts only: making a job ready never waits for a tick,
-- nor a tick for it.
CREATE TABLE pgtq._ready_mark_low (
    queue     text NOT NULL,
    priority  integer NOT NULL,
    id        bigint NOT NULL
);
CREATE INDEX ready_mark_low_idx ON pgtq._ready_mark_low (queue, priority, id);

-- Guarantees: records the jobs of `ids` (of queues[i], at priorities[i],
-- with lock_keys[i]) that a caller has just made ready, for the pops that
-- seek from their queue's ready mark (0.18.0): each such job without a
-- lock key whose id is below what the queue's mark is or may next become
-- (next_low_id) at the mark's priority gives a row of _ready_mark_low (the
-- lowest id per queue), and pops seek from it at once. Jobs the marks
-- cannot pass over (another priority: pop looks above and below the
-- mark's; a lock key: pop's keyed path) and queues without a mark cost
-- one probe and write nothing. Takes no lock and waits for nothing. Every
-- caller that turns an existing job ready calls it: release, retry,
-- _end_failed_attempt (fail, abort and the lease rescue, when the retry
-- is due at once), _push_keyed (a replacing push) and tick's promotion.
CREATE FUNCTION pgtq._lower_marks(queues text[], priorities integer[], ids bigint[], lock_keys text[])
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
    INSERT INTO pgtq._ready_mark_low (queue, priority, id)
    SELECT m.queue, m.priority, min(r.id)
    FROM unnest(queues, priorities, ids, lock_keys) AS r (queue, priority, id, lock_key)
    JOIN pgtq._ready_mark AS m ON m.queue = r.queue AND m.priority = r.priority
    WHERE r.lock_key IS NULL
      AND r.id < m.next_low_id
    GROUP BY m.queue, m.priority
$$;

-- Guarantees: sets the ready mark of `queue` afresh (0.18.0), from what
-- the calling tick sees, so that pops of the queue seek from it:
--   * the mark's priority is the highest of the queue's ready jobs
--     without a lock key; the mark is the lowest of: the lowest id of such
--     a job of that priority, the next id the job sequence will give, and
--     what the previous tick saw (next_low_id). A job of that priority
--     whose push took its id before the previous tick looked, and
--     committed after this one, is the only kind a pop can pass over: it
--     is claimable from the next tick on (it waits for a tick, as a
--     scheduled job does). When the priority changed, pops seek from the
--     start of it until the next tick;
--   * a new mark starts at 0 (no seek) and takes effect at the next tick;
--   * rows of _ready_mark_low the tick sees are folded in and deleted;
--   * a queue with no ready and no running job keeps no mark.
-- Never waits: a mark another tick holds is left to that tick. Reads the
-- queue's first ready entry, as one pop without a mark would.
CREATE FUNCTION pgtq._raise_mark(queue text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    mark           pgtq._ready_mark;
    unused_id      bigint;   -- no job pushed after this point has a lower id
    first_priority integer;
    first_id       bigint;
BEGIN
    SELECT m.* INTO mark FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue FOR UPDATE SKIP LOCKED;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue) THEN
        RETURN;  -- another tick is setting it
    END IF;
    SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END
    INTO unused_id
    FROM pgtq._job_id_seq AS s;
    DELETE FROM pgtq._ready_mark_low AS l WHERE l.queue = _raise_mark.queue;
    SELECT r.priority, r.id INTO first_priority, first_id
    FROM pgtq._job AS r
    WHERE r.queue = _raise_mark.queue AND r.state = 'ready' AND r.lock_key IS NULL
    ORDER BY r.priority DESC, r.id
    LIMIT 1;
    IF NOT FOUND THEN
        IF (SELECT b.lease_expires_at FROM pgtq._job AS b
            WHERE b.queue = _raise_mark.queue AND b.state = 'running'
            ORDER BY b.lease_expires_at
            LIMIT 1) IS NULL THEN  -- no running job (ordered: job_running_idx serves it)
            DELETE FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue;
            RETURN;
        END IF;
        first_priority := coalesce(mark.priority, 0);
        first_id := unused_id;
    END IF;
    first_id := least(first_id, unused_id);
    IF mark.queue IS NULL THEN
        INSERT INTO pgtq._ready_mark (queue, priority, low_id, next_low_id, set_at)
        VALUES (_raise_mark.queue, first_priority, 0, first_id, clock_timestamp())
        ON CONFLICT ON CONSTRAINT ready_mark_pkey DO NOTHING;
    ELSE
        UPDATE pgtq._ready_mark AS m
        SET priority = first_priority,
            low_id = CASE WHEN first_priority = mark.priority THEN least(mark.next_low_id, first_id) ELSE 0 END,
            next_low_id = first_id,
            set_at = clock_timestamp()
        WHERE m.queue = _raise_mark.queue;
    END IF;
END
$$;

-- Guarantees: ends the failed attempt of running job `job` (a row the
-- caller locked), by the one rule of fail() and of the lease rescue in
-- tick(), and returns the state it moved the job to:
--   * a cancel was requested while it ran: cancelled, never retried;
--   * attempts remain: scheduled for retry_at, or ready if that time has
--     come (a keyed job whose key another pending job holds is superseded
--     instead: _requeue_keyed);
--   * no attempt left: failed, kept for inspection.
-- Records `error`, clears the lease, tells the waiters of a job that
-- finished (the row is locked, so its waiters count is current),
-- announces the queue of a job that became ready (and records it for the
-- ready marks, 0.18.0: _lower_marks), and the slot and lock key it freed
-- (_wake_after_end).
CREATE OR REPLACE FUNCTION pgtq._end_failed_attempt(job pgtq._job, error text, retry_at timestamptz,
                                         as_of timestamptz)
RETURNS pgtq.job_state
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    failed    pgtq._job := _end_failed_attempt.job;
    new_state pgtq.job_state;
BEGIN
    new_state := pgtq._state_after_failure(failed.attempt, failed.max_attempts,
                                           failed.cancel_requested_at IS NOT NULL,
                                           _end_failed_attempt.retry_at, _end_failed_attempt.as_of);
    IF new_state IN ('scheduled', 'ready') AND failed.job_key IS NOT NULL THEN
        new_state := pgtq._requeue_keyed(failed.id, new_state, _end_failed_attempt.retry_at, failed.attempt,
                                         failed.started_at, failed.worker, _end_failed_attempt.error,
                                         _end_failed_attempt.as_of);
    ELSE
        UPDATE pgtq._job AS j
        SET state = new_state,
            run_at = CASE WHEN new_state IN ('scheduled', 'ready') THEN _end_failed_attempt.retry_at
                          ELSE j.run_at END,
            finished_at = CASE WHEN new_state IN ('failed', 'cancelled') THEN _end_failed_attempt.as_of END,
            last_error = _end_failed_attempt.error,
            lease = NULL,
            lease_expires_at = NULL
        WHERE j.id = failed.id;
        IF new_state IN ('failed', 'cancelled') AND failed.waiters > 0 THEN
            PERFORM pgtq._tell_waiters(failed.id);
        END IF;
    END IF;
    IF new_state = 'ready' THEN
        PERFORM pgtq._lower_marks(ARRAY[failed.queue], ARRAY[failed.priority], ARRAY[failed.id],
                                  ARRAY[failed.lock_key]);
        PERFORM pgtq._announce(failed.queue);
    END IF;
    PERFORM pgtq._wake_after_end(ARRAY[failed.queue], ARRAY[failed.lock_key]);
    RETURN new_state;
END
$$;

-- Guarantees: the keyed part of push and push_many. Pushes one job per
-- element (args[i], kwargs[i] or '{}', job_keys[i]) with the options
-- given, in one statement, and returns an id per element, in order.
-- Elements without a key get a new job each. Keyed elements go through
-- INSERT ... ON CONFLICT on job_key_pending_idx, the unique index of
-- pending keyed jobs, never through a check and then an insert:
--   * a pending (scheduled or ready) job with the key is kept (`keep`:
--     nothing changes) or replaced (`replace`: it takes this push's task,
--     args, kwargs, run_at and state, priority, max_attempts and backoff,
--     and starts again at attempt 0 with no error); its id is returned;
--   * a session meeting another's uncommitted insert of the key waits for
--     it to end, then finds the row (or inserts, if it rolled back);
--   * a conflicting row that became running meanwhile is no longer in the
--     index, so the row is inserted: a running job never blocks a push;
--   * DO UPDATE has no WHERE, so every element gets an id, never NULL
--     (the race of Graphile Worker #580).
-- Equal keys within one call act as pushes one after another: keep takes
-- the first element, replace the last, and every element of the key gets
-- the same id. Keyed rows are written in key order, so two calls pushing
-- the same keys cannot deadlock on each other. Ids are drawn in element
-- order. A ready job announces the queue, a kept one too (a pop that met
-- it locked by this push skipped it). A kept or replaced job stays locked
-- until the caller's transaction ends; so does a new one, as any insert.
-- lock_keys (NULL: none) gives each element's lock key, replaced with the
-- rest by `replace`. A replaced job that is ready is recorded for the
-- ready marks (0.18.0, _lower_marks): it keeps its id, which may be below
-- its queue's mark. The caller has checked every argument.
CREATE OR REPLACE FUNCTION pgtq._push_keyed(queue text, task text, args jsonb[], kwargs jsonb[], job_keys text[],
                                 job_key_mode text, run_at timestamptz, state pgtq.job_state,
                                 priority integer, max_attempts integer,
                                 backoff_base interval, backoff_cap interval, lock_keys text[],
                                 as_of timestamptz)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    replacing  boolean := _push_keyed.job_key_mode = 'replace';
    pushed_ids bigint[];
    made_ready boolean;
BEGIN
    WITH element AS (
        SELECT e.a, coalesce(e.k, '{}') AS k, e.key, e.lock, e.position
        FROM unnest(_push_keyed.args, _push_keyed.kwargs, _push_keyed.job_keys, _push_keyed.lock_keys)
             WITH ORDINALITY AS e (a, k, key, lock, position)
    ), chosen AS MATERIALIZED (
        SELECT nextval('pgtq._job_id_seq') AS new_id, c.a, c.k, c.key, c.lock, c.position
        FROM (SELECT el.a, el.k, el.key, el.lock, el.position,
                     row_number() OVER (PARTITION BY el.key
                                        ORDER BY CASE WHEN replacing THEN -el.position ELSE el.position END)
                         AS rank
              FROM element AS el) AS c
        WHERE c.key IS NULL OR c.rank = 1
        ORDER BY c.position
    ), written AS (
        INSERT INTO pgtq._job AS j (id, queue, task, args, kwargs, state, priority, max_attempts, run_at,
                                    created_at, job_key, backoff_base, backoff_cap, pushed_by, lock_key)
        SELECT c.new_id, _push_keyed.queue, _push_keyed.task, c.a, c.k, _push_keyed.state,
               _push_keyed.priority, _push_keyed.max_attempts, _push_keyed.run_at, _push_keyed.as_of,
               c.key, _push_keyed.backoff_base, _push_keyed.backoff_cap, session_user, c.lock
        FROM chosen AS c
        ORDER BY c.key, c.position
        ON CONFLICT (queue, job_key) WHERE job_key IS NOT NULL AND state IN ('scheduled', 'ready')
        DO UPDATE SET
            task = CASE WHEN replacing THEN excluded.task ELSE j.task END,
            args = CASE WHEN replacing THEN excluded.args ELSE j.args END,
            kwargs = CASE WHEN replacing THEN excluded.kwargs ELSE j.kwargs END,
            state = CASE WHEN replacing THEN excluded.state ELSE j.state END,
            priority = CASE WHEN replacing THEN excluded.priority ELSE j.priority END,
            max_attempts = CASE WHEN replacing THEN excluded.max_attempts ELSE j.max_attempts END,
            run_at = CASE WHEN replacing THEN excluded.run_at ELSE j.run_at END,
            backoff_base = CASE WHEN replacing THEN excluded.backoff_base ELSE j.backoff_base END,
            backoff_cap = CASE WHEN replacing THEN excluded.backoff_cap ELSE j.backoff_cap END,
            lock_key = CASE WHEN replacing THEN excluded.lock_key ELSE j.lock_key END,
            attempt = CASE WHEN replacing THEN 0 ELSE j.attempt END,
            last_error = CASE WHEN replacing THEN NULL ELSE j.last_error END
        RETURNING j.id, j.job_key, j.state
    )
    SELECT array_agg(CASE WHEN el.key IS NULL THEN c.new_id ELSE w.id END ORDER BY el.position),
           coalesce(bool_or(CASE WHEN el.key IS NULL THEN _push_keyed.state ELSE w.state END = 'ready'), false)
    INTO pushed_ids, made_ready
    FROM element AS el
    LEFT JOIN chosen AS c ON c.position = el.position
    LEFT JOIN written AS w ON w.job_key = el.key;

    IF made_ready THEN
        -- A replaced job keeps its id: it may be below the queue's mark.
        IF replacing THEN
            PERFORM pgtq._lower_marks(array_agg(j.queue), array_agg(j.priority), array_agg(j.id),
                                      array_agg(j.lock_key))
            FROM pgtq._job AS j
            WHERE j.id = ANY (pushed_ids) AND j.state = 'ready';
        END IF;
        PERFORM pgtq._announce(_push_keyed.queue);
    END IF;
    RETURN QUERY SELECT u.id FROM unnest(pushed_ids) AS u (id);
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
SET enable_seqscan = off
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
        SELECT m.priority,
               least(m.low_id, (SELECT min(l.id) FROM pgtq._ready_mark_low AS l
                                WHERE l.queue = m.queue AND l.priority = m.priority))
        INTO mark_priority, mark_id
        FROM pgtq._ready_mark AS m
        WHERE m.queue = pop.queue
          AND m.set_at > statement_timestamp() - interval '2 minutes';
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

-- Guarantees: hands a running job back without counting the attempt (a
-- worker shutting down gracefully), if `lease` is its current lease: it
-- becomes ready at once with its attempt count restored. If a cancel was
-- requested it ends cancelled instead (at as_of); a keyed job whose key
-- another pending job holds by now ends cancelled, superseded by it
-- (_requeue_keyed). Returns whether it did. Waiters of a job that ended
-- are told; the slot and lock key it held are announced free
-- (_wake_after_end); a job made ready is recorded for the ready marks
-- (0.18.0, _lower_marks), so pops take it in its order at once. A NULL id
-- or lease, or a NULL or infinite as_of, raises PT004.
CREATE OR REPLACE FUNCTION pgtq.release(id bigint, lease uuid, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    held      pgtq._job%ROWTYPE;
    new_state pgtq.job_state;
BEGIN
    IF release.id IS NULL OR release.lease IS NULL THEN
        PERFORM pgtq._reject_claim('release', release.id, release.lease);
    END IF;
    IF NOT coalesce(isfinite(release.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', release.as_of);
    END IF;
    SELECT j.* INTO held
    FROM pgtq._job AS j
    WHERE j.id = release.id AND j.lease = release.lease  -- so running (job_running_has_lease_ck)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    IF held.cancel_requested_at IS NOT NULL THEN
        UPDATE pgtq._job AS j
        SET state = 'cancelled',
            finished_at = release.as_of,
            lease = NULL,
            lease_expires_at = NULL
        WHERE j.id = held.id;
        new_state := 'cancelled';
        IF held.waiters > 0 THEN
            PERFORM pgtq._tell_waiters(held.id);
        END IF;
    ELSIF held.job_key IS NOT NULL THEN
        new_state := pgtq._requeue_keyed(held.id, 'ready', held.run_at, held.attempt - 1, NULL, NULL,
                                         held.last_error, release.as_of);
    ELSE
        UPDATE pgtq._job AS j
        SET state = 'ready',
            attempt = j.attempt - 1,
            lease = NULL,
            lease_expires_at = NULL,
            started_at = NULL,
            worker = NULL
        WHERE j.id = held.id;
        new_state := 'ready';
    END IF;
    IF new_state = 'ready' THEN
        PERFORM pgtq._lower_marks(ARRAY[held.queue], ARRAY[held.priority], ARRAY[held.id], ARRAY[held.lock_key]);
        PERFORM pgtq._announce(held.queue);
    END IF;
    PERFORM pgtq._wake_after_end(ARRAY[held.queue], ARRAY[held.lock_key]);
    RETURN true;
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

-- Guarantees: gives a failed or cancelled job a fresh start: ready at once,
-- attempt count reset to 0, cancel request and waiters cleared (the
-- earlier waiters were told its outcome), error and result kept for the
-- record until the next attempt. Returns true if it did, false for any
-- other state or an unknown id. A keyed job whose key another pending job
-- holds is not retried: that raises PT006 naming the job holding the key
-- (retry that one's work through it). The job made ready is recorded for
-- the ready marks (0.18.0, _lower_marks). A NULL id or a NULL or infinite
-- as_of raises PT004.
CREATE OR REPLACE FUNCTION pgtq.retry(id bigint, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    retried_queue    text;
    retried_priority integer;
    retried_lock_key text;
    holder           record;
BEGIN
    IF retry.id IS NULL THEN
        RAISE EXCEPTION 'pgtq: id must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(retry.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', retry.as_of);
    END IF;
    BEGIN
        UPDATE pgtq._job AS j
        SET state = 'ready',
            attempt = 0,
            run_at = retry.as_of,
            started_at = NULL,
            finished_at = NULL,
            worker = NULL,
            cancel_requested_at = NULL,
            waiters = 0
        WHERE j.id = retry.id
          AND j.state IN ('failed', 'cancelled')
        RETURNING j.queue, j.priority, j.lock_key INTO retried_queue, retried_priority, retried_lock_key;
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
    IF retried_queue IS NULL THEN
        RETURN false;
    END IF;
    PERFORM pgtq._lower_marks(ARRAY[retried_queue], ARRAY[retried_priority], ARRAY[retry.id],
                              ARRAY[retried_lock_key]);
    PERFORM pgtq._announce(retried_queue);
    RETURN true;
END
$$;

-- Guarantees: the cleanup check of health(): one row. 'warning' names the
-- oldest transaction of this database that began more than
-- `old_transaction` before as_of and holds a snapshot or a transaction id
-- (a client session other than the caller's, or a prepared transaction):
-- its age, pid, role, application and state. 'ok' when there is none,
-- 'unknown' when there is none in sight but the caller (or the owner of
-- pgtq, whose rights this runs with) may not see every session. It shows
-- only the sessions that pg_stat_activity shows the session user
-- (sessions of roles it has the rights of, or all with
-- pg_read_all_stats), so it reveals nothing more than the caller could
-- read there.
CREATE OR REPLACE FUNCTION pgtq._health_cleanup(old_transaction interval, as_of timestamptz,
                                     OUT status text, OUT detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH sees_all AS (
        SELECT pg_has_role(session_user, 'pg_read_all_stats', 'USAGE')
               AND pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS yes
    ), holders AS (
        SELECT a.xact_start AS since,
               format('a transaction open for %s (pid %s, role %s, application %s, %s)',
                      pgtq._health_age(_health_cleanup.as_of - a.xact_start), a.pid,
                      quote_literal(a.usename), quote_literal(a.application_name), a.state) AS who
        FROM pg_stat_activity AS a
        WHERE a.datid = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())
          AND a.backend_type = 'client backend'
          AND a.pid <> pg_backend_pid()
          AND (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL)
          AND a.xact_start < _health_cleanup.as_of - _health_cleanup.old_transaction
          AND (pg_has_role(session_user, a.usesysid, 'USAGE')
               OR pg_has_role(session_user, 'pg_read_all_stats', 'USAGE'))
        UNION ALL
        SELECT p.prepared,
               format('a prepared transaction %s, prepared %s ago by role %s',
                      quote_literal(p.gid), pgtq._health_age(_health_cleanup.as_of - p.prepared),
                      quote_literal(p.owner))
        FROM pg_prepared_xacts AS p
        WHERE p.database = current_database()
          AND p.prepared < _health_cleanup.as_of - _health_cleanup.old_transaction
    ), oldest AS (
        SELECT holders.who FROM holders ORDER BY holders.since LIMIT 1
    )
    SELECT CASE WHEN o.who IS NOT NULL THEN 'warning' WHEN s.yes THEN 'ok' ELSE 'unknown' END,
           CASE WHEN o.who IS NOT NULL
                THEN o.who || ' holds back the cleanup of dead rows: until it ends, the job table and its '
                     'indexes keep every version of every job that changed since it began'
                WHEN s.yes THEN format('no transaction of this database is older than %s',
                                       pgtq._health_age(_health_cleanup.old_transaction))
                ELSE format('no transaction older than %s in sight, but only the sessions of roles this role '
                            'has the rights of are (pg_monitor sees them all)',
                            pgtq._health_age(_health_cleanup.old_transaction))
           END
    FROM sees_all AS s
    LEFT JOIN oldest AS o ON true
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
