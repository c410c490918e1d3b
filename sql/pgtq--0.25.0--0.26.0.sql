-- pgtq 0.25.0 -> 0.26.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_26_0. Every definition here is the one of sql/pgtq.sql at
-- 0.26.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- The rows of _ready_mark_low (a job made ready by anything but a push)
-- are written by the thousand an hour (every release, retry, promotion)
-- and deleted by the next tick. Beside a snapshot held open (a long
-- report, pg_dump, a replica with hot_standby_feedback) the deleted rows
-- stay in the table and its index, and every pop and every tick stepped
-- over all of them: 1.2 ms more per pop after 20,000 such jobs, growing
-- for as long as the snapshot stays. The rows are now numbered (seq), and
-- the mark keeps the number below which every row of its queue was read
-- and deleted (lows_from), settled with the mark's floor; pops and ticks
-- read from there. The tick no longer looks for rows of queues without a
-- mark among all of them: the tick of such a queue deletes them.
--
-- The mark itself was one row per queue, updated by every tick of every
-- worker: beside a held snapshot each read of it (every pop, every tick)
-- walked every version kept, 0.4 ms more per pop after 16,000 ticks. A
-- tick now writes the next generation and deletes the one it read;
-- readers take the highest generation, the index's newest entry.
--
-- A rate-limited queue's pop computed the first bucket of its rate window
-- again for each of the window's 101 buckets, twice (_room_of,
-- _count_starts): 0.45 ms a pop once a busy queue filled them. Each is
-- computed once now.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.26.0'::text $$;

CREATE SEQUENCE pgtq._ready_mark_low_seq AS bigint;
ALTER TABLE pgtq._ready_mark_low
    ADD COLUMN seq bigint NOT NULL DEFAULT nextval('pgtq._ready_mark_low_seq');
ALTER SEQUENCE pgtq._ready_mark_low_seq OWNED BY pgtq._ready_mark_low.seq;
DROP INDEX pgtq.ready_mark_low_idx;
CREATE INDEX ready_mark_low_seq_idx ON pgtq._ready_mark_low (queue, seq);

CREATE SEQUENCE pgtq._ready_mark_generation_seq AS bigint;
ALTER TABLE pgtq._ready_mark
    ADD COLUMN lows_from bigint NOT NULL DEFAULT 0,
    ADD COLUMN pending_seq bigint,
    ADD COLUMN generation bigint NOT NULL DEFAULT nextval('pgtq._ready_mark_generation_seq');
ALTER SEQUENCE pgtq._ready_mark_generation_seq OWNED BY pgtq._ready_mark.generation;
ALTER TABLE pgtq._ready_mark
    DROP CONSTRAINT ready_mark_pkey,
    ADD CONSTRAINT ready_mark_pkey PRIMARY KEY (queue, generation);

DROP FUNCTION pgtq._raise_mark(text, bigint);

-- Guarantees: the number that the next row of _ready_mark_low will get, or
-- a higher one (0.26.0). The same reading as _unused_job_id, for the reads
-- of those rows (_raise_mark).
CREATE FUNCTION pgtq._unused_low_seq()
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END FROM pgtq._ready_mark_low_seq AS s
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
CREATE OR REPLACE FUNCTION pgtq._lower_marks(queues text[], priorities integer[], ids bigint[], lock_keys text[])
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
    SELECT pg_current_xact_id();
    INSERT INTO pgtq._ready_mark_low (queue, priority, id)
    SELECT r.queue, r.priority, min(r.id)
    FROM unnest(queues, priorities, ids, lock_keys) AS r (queue, priority, id, lock_key)
    WHERE r.lock_key IS NULL
    GROUP BY r.queue, r.priority
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
--   * a queue with no ready and no running job keeps no mark;
--   * (0.21.0) neither does a queue with ready jobs with a lock key: pop
--     takes the keyed path for it (_choose_keyed) and reads no mark, and
--     the look for its first ready job without a key would step over
--     every ready job with one (23 ms a tick at 100,000). Its mark is
--     dropped, and made anew, seeking nothing at first, once the queue has
--     no ready job with a key.
-- Where the look starts (0.25.0): jobs above and below the mark's
-- priority are looked for from their first entry, those of the mark's
-- priority from the mark's floor. Until 0.25.0 every look started at the
-- queue's first entry, and beside a snapshot held open (a long report,
-- pg_dump, a replica with hot_standby_feedback) it read every job claimed
-- since the snapshot was taken: 20 ms at 180,000 claims, each tick of each
-- worker, growing for as long as the snapshot stays. The floor is the
-- lower of the first ready job this look saw and `settled_id`:
--   * no job below the floor can turn ready unseen: a job that another
--     path makes ready leaves a row of _ready_mark_low (_lower_marks),
--     which the next look reads, whatever the mark was; a push takes its
--     transaction id before its job id (push, push_many), so every push
--     with an id below `settle_below` (the next id as a tick read it
--     before its transaction had an id) has a lower transaction id than
--     that tick. That tick's (settle_below, its id) waits as the pending
--     pair; once no transaction with a lower id runs (the snapshot's
--     xmin), every such push has committed or rolled back, and
--     settle_below becomes `settled_id`;
--   * a transaction with an id that stays open (writing, or prepared)
--     holds settled_id back, and the look reads from there, as before
--     0.25.0; a snapshot held without an id (a read-only report, a
--     replica) does not;
--   * once a minute, and whenever the mark went stale (no tick for a
--     minute), the look starts at the queue's first entry again: it also
--     finds a job made ready outside pgtq's functions.
-- Which rows of _ready_mark_low it reads (0.26.0): those numbered from the
-- mark's `lows_from` on (all of them for a new mark), and it deletes what
-- it read. Below `lows_from` every row was read and deleted by an earlier
-- tick, so neither this look nor a pop steps over those deleted rows,
-- which a held snapshot keeps in the table: `settle_seq` (the next row
-- number as the tick read it before its transaction had an id) settles
-- with `settle_below`, and once it has, every row numbered below it was
-- visible to this look (_lower_marks takes its transaction id first).
-- Never waits: a mark another tick holds is left to that tick.
CREATE FUNCTION pgtq._raise_mark(queue text, settle_below bigint, settle_seq bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    mark           pgtq._ready_mark;
    unused_id      bigint;   -- no job pushed after this point has a lower id
    oldest_xid     xid8;     -- no transaction with a lower id runs
    lows_id        bigint;   -- the lowest job of the mark's priority made ready since the last tick
    mark_priority  integer;  -- the mark's priority (0 for a new mark)
    look_from      bigint := 0;  -- where the look at the mark's priority starts
    first_priority integer;
    first_id       bigint;
    settled        bigint;   -- every push that took a lower id has ended
    waiting_id     bigint;   -- the pending pair: settled once no transaction older than waiting_xid runs
    waiting_seq    bigint;
    waiting_xid    xid8;
    read_from      bigint;   -- the rows of _ready_mark_low that remain to read start here
BEGIN
    -- The queue's highest generation (0.26.0), locked; ordered, so that the
    -- index serves it from its newest entry.
    SELECT m.* INTO mark
    FROM pgtq._ready_mark AS m
    WHERE m.queue = _raise_mark.queue
    ORDER BY m.generation DESC
    LIMIT 1
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        -- A new mark: one tick at a time makes it (the lock is held until
        -- this transaction ends), and none once another tick made one.
        IF NOT pg_try_advisory_xact_lock(hashtextextended('pgtq new ready mark of ' || _raise_mark.queue, 0))
           OR (SELECT m.generation FROM pgtq._ready_mark AS m
               WHERE m.queue = _raise_mark.queue
               ORDER BY m.generation DESC
               LIMIT 1) IS NOT NULL THEN
            RETURN;  -- another tick is setting it
        END IF;
    END IF;
    read_from := coalesce(mark.lows_from, 0);
    IF EXISTS (SELECT 1 FROM pgtq._job AS k
               WHERE k.queue = _raise_mark.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL) THEN
        DELETE FROM pgtq._ready_mark_low AS l WHERE l.queue = _raise_mark.queue AND l.seq >= read_from;
        DELETE FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue AND m.generation = mark.generation;
        RETURN;  -- pop takes the keyed path and reads no mark
    END IF;
    unused_id := pgtq._unused_job_id();
    -- Taken before the look, so the look sees every push it says ended.
    oldest_xid := pg_snapshot_xmin(pg_current_snapshot());
    WITH gone AS (
        DELETE FROM pgtq._ready_mark_low AS l WHERE l.queue = _raise_mark.queue AND l.seq >= read_from
        RETURNING l.priority, l.id
    )
    SELECT min(gone.id) FILTER (WHERE gone.priority = mark.priority) INTO lows_id FROM gone;
    -- Above the mark's priority, then at it from the floor, then below it;
    -- a new mark looks at priority 0 from the first entry.
    mark_priority := coalesce(mark.priority, 0);
    SELECT r.priority, r.id INTO first_priority, first_id
    FROM pgtq._job AS r
    WHERE r.queue = _raise_mark.queue AND r.state = 'ready' AND r.lock_key IS NULL
      AND r.priority > mark_priority
    ORDER BY r.priority DESC, r.id
    LIMIT 1;
    IF first_id IS NULL THEN
        IF mark.looked_all_at > clock_timestamp() - interval '1 minute' THEN
            look_from := least(mark.floor_id, lows_id);
        END IF;
        -- The priority as a closed range, as in pop: job_ready_idx starts
        -- at the floor.
        SELECT r.priority, r.id INTO first_priority, first_id
        FROM pgtq._job AS r
        WHERE r.queue = _raise_mark.queue AND r.state = 'ready' AND r.lock_key IS NULL
          AND r.priority <= mark_priority AND r.priority >= mark_priority
          AND r.id >= look_from
        ORDER BY r.priority DESC, r.id
        LIMIT 1;
    END IF;
    IF first_id IS NULL THEN
        SELECT r.priority, r.id INTO first_priority, first_id
        FROM pgtq._job AS r
        WHERE r.queue = _raise_mark.queue AND r.state = 'ready' AND r.lock_key IS NULL
          AND r.priority < mark_priority
        ORDER BY r.priority DESC, r.id
        LIMIT 1;
    END IF;
    IF first_id IS NULL THEN
        IF (SELECT b.lease_expires_at FROM pgtq._job AS b
            WHERE b.queue = _raise_mark.queue AND b.state = 'running'
            ORDER BY b.lease_expires_at
            LIMIT 1) IS NULL THEN  -- no running job (ordered: job_running_idx serves it)
            DELETE FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue AND m.generation = mark.generation;
            RETURN;
        END IF;
        first_priority := mark_priority;
        first_id := unused_id;
    END IF;
    first_id := least(first_id, unused_id);

    settled := coalesce(mark.settled_id, 0);
    waiting_id := mark.pending_id;
    waiting_seq := mark.pending_seq;
    waiting_xid := mark.pending_xid;
    IF waiting_xid < oldest_xid THEN
        settled := greatest(settled, waiting_id);
        read_from := greatest(read_from, waiting_seq);  -- this look read every row below it
        waiting_id := NULL;
        waiting_seq := NULL;
        waiting_xid := NULL;
    END IF;
    IF waiting_xid IS NULL AND _raise_mark.settle_below IS NOT NULL THEN
        waiting_id := _raise_mark.settle_below;
        waiting_seq := _raise_mark.settle_seq;
        waiting_xid := pg_current_xact_id();
    END IF;

    -- The next generation, and the one read goes (a new mark: low_id 0,
    -- no seek until the next tick).
    INSERT INTO pgtq._ready_mark (queue, priority, low_id, next_low_id, set_at, floor_id, settled_id,
                                  pending_id, pending_xid, looked_all_at, lows_from, pending_seq)
    VALUES (_raise_mark.queue, first_priority,
            CASE WHEN first_priority = mark.priority THEN least(mark.next_low_id, first_id) ELSE 0 END,
            first_id, clock_timestamp(), least(first_id, settled), settled, waiting_id, waiting_xid,
            CASE WHEN look_from = 0 THEN clock_timestamp() ELSE mark.looked_all_at END, read_from, waiting_seq);
    DELETE FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue AND m.generation = mark.generation;
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
--     jobs dead once no snapshot sees them, so the next pops skip them.
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
--      keeps).
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
    PERFORM pgtq._raise_mark(r.queue, settle_below, settle_seq)
    FROM (SELECT unnest(busy_queues) AS queue
          UNION
          SELECT m.queue FROM pgtq._ready_mark AS m WHERE tick.queue IS NULL) AS r
    ORDER BY r.queue;

    RETURN promoted + rescued + enqueued;
END
$$;

-- Guarantees: how many jobs a pop may claim now from the queue whose
-- _queue row is `flow`, at most n and never below 0: none while it is
-- paused; with max_running, the slots left: max_running minus its running
-- jobs whose lease is live at as_of (a job whose lease ran out counts no
-- more, whether tick rescued it yet or not; a job that ended counts no
-- more once its end committed); with rate_limit, the starts left in its
-- rate window: rate_limit minus the jobs started in the window's buckets
-- (_rate_slot). Counting reads the queue's entries of job_running_idx
-- from as_of on: its live running jobs, at most max_running of them
-- (0.5.0; until 0.4.0 it looked at each live running job of every
-- queue), in index order (0.20.0, enable_bitmapscan off, as in pop: tick
-- calls it too). Takes no lock (_room does). The window's first bucket
-- is computed once (0.26.0: it was computed again for each bucket, 4 us
-- each, 0.45 ms a pop once a busy queue filled its 101 buckets).
CREATE OR REPLACE FUNCTION pgtq._room_of(flow pgtq._queue, n integer, as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_bitmapscan = off
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
                                               FROM unnest(flow.rate_slots, flow.rate_starts) AS w (slot, jobs)
                                               WHERE w.slot >= window_start));
    END IF;
    RETURN greatest(room, 0);
END
$$;

-- Guarantees: records in the rate window of `queue` (when it has a rate
-- limit; otherwise it does nothing) that `jobs` of its jobs started at
-- as_of, in the bucket of as_of (_rate_slot), and drops the buckets that
-- left the window, so the row keeps at most 101 buckets. The caller holds
-- the row's lock (_room), so no start is lost to a concurrent pop. The
-- bucket of as_of is computed once (0.26.0: once per bucket before, as in
-- _room_of).
CREATE OR REPLACE FUNCTION pgtq._count_starts(queue text, jobs integer, as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    UPDATE pgtq._queue AS f
    SET (rate_slots, rate_starts) = (
        SELECT coalesce(array_agg(b.slot ORDER BY b.slot), '{}'), coalesce(array_agg(b.jobs ORDER BY b.slot), '{}')
        FROM (SELECT pgtq._rate_slot(_count_starts.as_of, f.rate_period) AS slot OFFSET 0) AS now_bucket,
             LATERAL (SELECT w.slot, sum(w.jobs)::integer AS jobs
                      FROM (SELECT u.slot, u.jobs
                            FROM unnest(f.rate_slots, f.rate_starts) AS u (slot, jobs)
                            WHERE u.slot >= now_bucket.slot - 100
                            UNION ALL
                            SELECT now_bucket.slot, _count_starts.jobs) AS w
                      GROUP BY w.slot) AS b)
    WHERE f.queue = _count_starts.queue
      AND f.rate_limit IS NOT NULL;
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
