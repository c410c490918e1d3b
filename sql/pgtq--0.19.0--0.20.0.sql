-- pgtq 0.19.0 -> 0.20.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_20_0. Every definition here is the one of sql/pgtq.sql at
-- 0.20.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- pop plans no bitmap scans (enable_bitmapscan off, for the helpers it
-- calls too; and in _room_of, which tick calls as well). Once the job
-- table was large, its generic plans chose them: a bitmap scan reads the
-- row of every entry its index condition matches and never marks the
-- entry of a job that ended as dead, so each pop of a max_running queue
-- read every job of the queue that ended since the last vacuum, and each
-- pop of a queue with lock keys read and sorted every ready job of the
-- queue.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.20.0'::text $$;

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
-- calls it too). Takes no lock (_room does).
CREATE OR REPLACE FUNCTION pgtq._room_of(flow pgtq._queue, n integer, as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_bitmapscan = off
AS $$
DECLARE
    room bigint := _room_of.n;
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
        room := least(room, flow.rate_limit - (SELECT coalesce(sum(w.jobs), 0)
                                               FROM unnest(flow.rate_slots, flow.rate_starts) AS w (slot, jobs)
                                               WHERE w.slot >= pgtq._rate_slot(_room_of.as_of, flow.rate_period)
                                                               - 100));
    END IF;
    RETURN greatest(room, 0);
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
--     sorted every ready job of the queue (5 ms at 10,000). In index
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

-- ---------------------------------------------------------------------------
-- Privileges: as at the end of a fresh install (new objects are reachable
-- by PUBLIC until revoked), then the roles' rights again.
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
