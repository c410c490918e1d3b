-- pgtq 0.8.0 -> 0.9.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_9_0. Every definition here is the one of sql/pgtq.sql at
-- 0.9.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- No call changes. A pop of a queue whose only control is max_running no
-- longer locks the queue's _queue row until its commit, which made the
-- pops of a limited queue take turns for the length of each claim: it
-- claims into free slots whose advisory locks it holds (_take_slots), and
-- each claimed job records its slot in the new column _job.slot. Jobs that
-- run at the upgrade have no slot: while they run, pops of their queue
-- count under the row lock as before (and give their claims slots).
-- pause, resume and configure_queue take the lock of the queue's settings
-- (_lock_settings) first, so a change waits for the pops that read the
-- settings before it. heartbeat and heartbeat_many no longer bring back
-- a lease that ran out when the job's queue has max_running: the job had
-- stopped counting against the limit, and its slot may be another job's.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.9.0'::text $$;

-- ===========================================================================
-- Slots: the column, the locks and the pop that fills them
-- ===========================================================================

ALTER TABLE pgtq._job ADD COLUMN slot integer;

-- Guarantees: the first key of the transaction-level advisory locks of
-- `queue`'s slots (the second key is the slot number, 1..max_running) and
-- of its settings (second key 0), the same number in every session.
-- Two queues sharing the hash only make their pops try each other's locks.
CREATE FUNCTION pgtq._slot_space(queue text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT hashtext('pgtq slots of ' || queue)
$$;

-- Guarantees: holds the lock of `queue`'s settings against every pop of
-- the queue (pg_advisory_xact_lock(_slot_space(queue), 0), exclusive,
-- until the caller's transaction ends), after waiting for the pops that
-- read its settings to end. pause, resume and configure_queue call it
-- before they write the queue's _queue row, so a pop that claims by slots
-- (_take_slots, which holds the same lock shared) ends before the change,
-- or starts after it and reads it.
CREATE FUNCTION pgtq._lock_settings(queue text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT pg_advisory_xact_lock(pgtq._slot_space(queue), 0)
$$;

-- Guarantees: as of the call (a statement of its own, so it sees every
-- claim that committed before it), the distinct slots in 1..capacity that
-- live running jobs of `queue` (lease live at as_of) hold, ascending, and
-- how many live running jobs the queue has: live > cardinality(filled)
-- when some of them run without a distinct slot in that range. Reads the
-- queue's entries of job_running_idx and their rows.
CREATE FUNCTION pgtq._filled_slots(queue text, capacity integer, as_of timestamptz,
                                   OUT filled integer[], OUT live bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    SELECT coalesce(array_agg(DISTINCT r.slot ORDER BY r.slot)
                        FILTER (WHERE r.slot BETWEEN 1 AND _filled_slots.capacity), '{}'),
           count(*)
    INTO filled, live
    FROM pgtq._job AS r
    WHERE r.queue = _filled_slots.queue AND r.state = 'running' AND r.lease_expires_at > _filled_slots.as_of;
END
$$;

-- Guarantees: for a pop of up to n jobs from `queue` when the queue's only
-- control is max_running (not paused, no rate limit, as read now): the
-- slots (numbers 1..max_running) the pop may fill, at most least(n, 256,
-- max_running minus the queue's running jobs whose lease is live at
-- as_of); each of them is held until the caller's transaction ends, and
-- no live running job holds it. NULL when the queue is paused, has a rate
-- limit or no row: pop then counts under the row lock (_room). Either way
-- it holds the lock of the queue's settings shared (_lock_settings) until
-- the transaction ends, so the settings stay as it read them until the
-- claim commits, and the pops of one queue all take one of the two paths.
--
-- Why no slot is ever filled twice. A slot passes to a claim only under
-- its token, the advisory lock (_slot_space(queue), slot), taken with
-- pg_try_advisory_xact_lock (never waiting, except below) and held until
-- the claim commits. The slots already filled are dropped in a statement
-- that starts after the token is held (_filled_slots), so it sees every
-- claim of that slot that committed before. Each claimed job records its
-- slot (pop writes _job.slot), so the live running jobs of a queue hold
-- distinct slots, and there are max_running of them. Pops of one queue
-- therefore never wait for each other's whole claim, unlike _room's row
-- lock. A pop that had to drop slots takes free ones again, up to three
-- looks in all, so a claim that committed meanwhile does not leave it
-- with none while slots are free.
--
-- When the queue has live running jobs without a distinct slot in
-- 1..max_running (they started before the limit was set or lowered, or
-- one lease came back to life), the count above would not bound them: the
-- pop then also locks the queue's row (FOR UPDATE) and counts again, as
-- _room does, so such pops take turns; their claims take slots too, so
-- the queue comes back to the slot path as those jobs end. When every
-- free slot is held by another pop, it waits for the first one, so a
-- claim that is rolled back does not leave this pop refused. Needs READ
-- COMMITTED (pop checks it). At most 256 slots per call bound the locks
-- one pop holds.
CREATE FUNCTION pgtq._take_slots(queue text, n integer, as_of timestamptz)
RETURNS integer[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    space       integer := pgtq._slot_space(_take_slots.queue);
    capacity    integer;            -- max_running
    filled      integer[];          -- the distinct slots of live running jobs, ascending
    live        bigint;             -- the live running jobs
    wanted      integer;
    taken       integer[] := '{}';  -- the slots whose locks this pop took and that are free
    busy        integer;            -- the first free slot that another pop holds
    next_filled integer;            -- the position in filled of the next filled slot
    looks       integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(space, 0);
    SELECT f.max_running INTO capacity
    FROM pgtq._queue AS f
    WHERE f.queue = _take_slots.queue AND f.paused_at IS NULL AND f.rate_limit IS NULL;
    IF capacity IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT s.filled, s.live INTO filled, live
    FROM pgtq._filled_slots(_take_slots.queue, capacity, _take_slots.as_of) AS s;
    IF live >= capacity THEN
        RETURN '{}';  -- full as of now: no slot or row locked
    END IF;
    IF live > cardinality(filled) THEN
        PERFORM 1 FROM pgtq._queue AS f WHERE f.queue = _take_slots.queue FOR UPDATE;
        SELECT s.filled, s.live INTO filled, live
        FROM pgtq._filled_slots(_take_slots.queue, capacity, _take_slots.as_of) AS s;
    END IF;
    LOOP
        wanted := least(_take_slots.n, 256, capacity - live);
        taken := ARRAY(SELECT t.slot FROM unnest(taken) AS t (slot) WHERE t.slot <> ALL (filled) ORDER BY t.slot);
        busy := NULL;
        next_filled := 1;
        FOR candidate IN 1 .. capacity LOOP
            EXIT WHEN cardinality(taken) >= wanted;
            IF next_filled <= cardinality(filled) AND filled[next_filled] = candidate THEN
                next_filled := next_filled + 1;
            ELSIF candidate = ANY (taken) THEN
                CONTINUE;
            ELSIF pg_try_advisory_xact_lock(space, candidate) THEN
                taken := taken || candidate;
            ELSIF busy IS NULL THEN
                busy := candidate;
            END IF;
        END LOOP;
        IF cardinality(taken) = 0 THEN
            IF busy IS NULL THEN
                RETURN taken;  -- no slot free
            END IF;
            PERFORM pg_advisory_xact_lock(space, busy);  -- every free slot is another pop's: wait for its commit
            taken := ARRAY[busy];
        END IF;
        -- As of now, a newer snapshot: the slots that pops which committed meanwhile filled.
        SELECT s.filled, s.live INTO filled, live
        FROM pgtq._filled_slots(_take_slots.queue, capacity, _take_slots.as_of) AS s;
        looks := looks + 1;
        EXIT WHEN NOT (taken && filled) OR looks >= 3;
    END LOOP;
    RETURN ARRAY(SELECT t.slot FROM unnest(taken) AS t (slot) WHERE t.slot <> ALL (filled)
                 ORDER BY t.slot LIMIT greatest(least(_take_slots.n, 256, capacity - live), 0));
END
$$;

-- ===========================================================================
-- The calls that claim or change a queue's settings
-- ===========================================================================

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
-- two index probes for this and claims as before. Pop may return fewer
-- than n jobs while more are ready (a limit, at most 256 a call from a
-- queue with max_running alone, busy keys, rows other pops hold);
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
AS $$
DECLARE
    flow       pgtq._queue;  -- the queue's pause and limits, if it has any
    controlled boolean;      -- paused or limited: the queue has a _queue row
    room       integer := pop.n;
    slots      integer[];    -- the slots its claims fill (a queue whose only control is max_running)
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
            worker = pop.worker,
            slot = CASE WHEN slots IS NOT NULL
                        THEN slots[array_position(ARRAY(SELECT claimable.id FROM claimable) || keyed_ids, j.id)]
                   END
        WHERE j.id = ANY (ARRAY(SELECT claimable.id FROM claimable) || keyed_ids)
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

-- Guarantees: pauses `queue`, and returns true; false if it was paused
-- already (it keeps the first pause's time). From the commit on, pop hands
-- out none of the queue's jobs. Pushes still enqueue its jobs, tick still
-- promotes and rescues them, and its running jobs finish normally
-- (complete, fail, heartbeat, ... work as ever). A queue needs no jobs to
-- be paused. A pop of the queue that began before the pause committed may
-- still hand out jobs, as if it had come first (a pop of a queue that is
-- already paused or limited holds the queue's row, so the pause waits for
-- it). A bad queue name raises PT003, a NULL or infinite as_of PT004.
-- Meant for pgtq_admin.
CREATE OR REPLACE FUNCTION pgtq.pause(queue text, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._checked_name('queue', pause.queue);
    IF NOT coalesce(isfinite(pause.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', pause.as_of);
    END IF;
    PERFORM pgtq._lock_settings(pause.queue);
    INSERT INTO pgtq._queue AS f (queue, paused_at, updated_at)
    VALUES (pause.queue, pause.as_of, pause.as_of)
    ON CONFLICT ON CONSTRAINT queue_pkey DO UPDATE
    SET paused_at = excluded.paused_at,
        updated_at = excluded.updated_at
    WHERE f.paused_at IS NULL;
    RETURN FOUND;
END
$$;

-- Guarantees: resumes a paused `queue` and returns true; false if it was
-- not paused. From the commit on, pop hands out its jobs again (within its
-- limits, which a pause keeps), and idle workers are told at once
-- (_announce). A bad queue name raises PT003, a NULL or infinite as_of
-- PT004. Meant for pgtq_admin.
CREATE OR REPLACE FUNCTION pgtq.resume(queue text, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._checked_name('queue', resume.queue);
    IF NOT coalesce(isfinite(resume.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', resume.as_of);
    END IF;
    PERFORM pgtq._lock_settings(resume.queue);
    -- Nothing else controlled: the row goes (pop's fast path again).
    DELETE FROM pgtq._queue AS f
    WHERE f.queue = resume.queue
      AND f.paused_at IS NOT NULL
      AND f.max_running IS NULL
      AND f.rate_limit IS NULL;
    IF NOT FOUND THEN
        UPDATE pgtq._queue AS f
        SET paused_at = NULL,
            updated_at = resume.as_of
        WHERE f.queue = resume.queue
          AND f.paused_at IS NOT NULL;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
    END IF;
    PERFORM pgtq._announce(resume.queue);
    RETURN true;
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
    changed boolean;
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
    IF configure_queue.max_running IS NULL AND configure_queue.rate_limit IS NULL THEN
        -- No limits: a queue that is not paused has nothing left to control.
        DELETE FROM pgtq._queue AS f WHERE f.queue = configure_queue.queue AND f.paused_at IS NULL;
        changed := FOUND;
        IF NOT changed THEN
            UPDATE pgtq._queue AS f
            SET max_running = NULL,
                rate_limit = NULL,
                rate_period = NULL,
                rate_slots = '{}',
                rate_starts = '{}',
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
            rate_slots = CASE WHEN f.rate_period = excluded.rate_period THEN f.rate_slots ELSE '{}' END,
            rate_starts = CASE WHEN f.rate_period = excluded.rate_period THEN f.rate_starts ELSE '{}' END,
            updated_at = excluded.updated_at
        WHERE (f.max_running, f.rate_limit, f.rate_period)
              IS DISTINCT FROM (excluded.max_running, excluded.rate_limit, excluded.rate_period);
        changed := FOUND;
    END IF;
    IF changed THEN
        PERFORM pgtq._announce(configure_queue.queue);
    END IF;
    RETURN changed;
END
$$;

-- ===========================================================================
-- A lease that ran out comes back to life only where no limit counts it
-- ===========================================================================

-- Guarantees: extends the lease of a running job to as_of + extend_by, if
-- `lease` is still its current lease; returns whether it did. A worker
-- calls it while a long handler runs so tick never rescues a live job.
-- It never shortens a lease. A lease that already ran out (as of as_of)
-- is extended only when the job's queue has no max_running (0.9.0): the
-- job stopped counting against the limit when its lease ran out, and its
-- slot may have gone to another job since, so bringing it back to life
-- could run more than max_running jobs at once (the chaos suite's limited
-- run caught this after a server restart). The worker then learns that it
-- lost the job, and tick hands it on. A NULL id, lease or as_of, or an extend_by
-- outside (0, 100 years], raises PT004. heartbeat_many does the same for a
-- batch and also reports cancel requests.
CREATE OR REPLACE FUNCTION pgtq.heartbeat(id bigint,
                               lease uuid,
                               extend_by interval DEFAULT '5 minutes',
                               as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
AS $$
BEGIN
    IF heartbeat.id IS NULL OR heartbeat.lease IS NULL THEN
        PERFORM pgtq._reject_claim('heartbeat', heartbeat.id, heartbeat.lease);
    END IF;
    IF heartbeat.extend_by IS NULL OR heartbeat.extend_by <= interval '0'
       OR heartbeat.extend_by > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: extend_by must be a positive interval of at most 100 years, got %',
                coalesce(heartbeat.extend_by::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(heartbeat.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', heartbeat.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET lease_expires_at = greatest(j.lease_expires_at, heartbeat.as_of + heartbeat.extend_by)
    WHERE j.id = heartbeat.id
      AND j.lease = heartbeat.lease  -- so running (job_running_has_lease_ck)
      AND (j.lease_expires_at > heartbeat.as_of
           OR NOT EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = j.queue AND f.max_running IS NOT NULL));
    RETURN FOUND;
END
$$;

-- Guarantees: heartbeat() for a whole batch in one statement, and how a
-- worker learns of cancel requests at no extra cost. For each pair
-- (ids[i], leases[i]) it extends that job's lease to as_of + extend_by
-- (never shortening it) if the lease is still the job's current one (and,
-- in a queue with max_running, has not run out: heartbeat's rule), and
-- returns one row per pair, in the order given:
--   held              the lease is current: the worker still holds the job;
--   cancel_requested  cancel() was called on the job: stop its handler;
--                     whatever the worker reports next ends it cancelled.
-- A job asked to cancel still gets its lease extended, so tick does not
-- rescue it while its handler stops. A worker that LISTENs on pgtq_cancel
-- learns sooner. The arrays must have the same length (at most 10,000)
-- and extend_by lie in (0, 100 years]; otherwise, or with a NULL or
-- infinite as_of, it raises PT004 and extends nothing.
CREATE OR REPLACE FUNCTION pgtq.heartbeat_many(ids bigint[],
                                    leases uuid[],
                                    extend_by interval DEFAULT '5 minutes',
                                    as_of timestamptz DEFAULT now())
RETURNS TABLE (id bigint, held boolean, cancel_requested boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
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
        WHERE j.id = claim.id
          AND j.lease = claim.lease  -- so running (job_running_has_lease_ck)
          AND (j.lease_expires_at > heartbeat_many.as_of
               OR NOT EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = j.queue AND f.max_running IS NOT NULL))
        RETURNING j.id, j.lease, j.cancel_requested_at IS NOT NULL AS asked
    )
    SELECT claim.id, beaten.id IS NOT NULL, coalesce(beaten.asked, false)
    FROM claim
    LEFT JOIN beaten ON beaten.id = claim.id AND beaten.lease = claim.lease
    ORDER BY claim.position;
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
