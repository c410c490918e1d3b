-- pgtq 0.38.0 -> 0.39.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_39_0. Every definition here is the one of sql/pgtq.sql at
-- 0.39.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- Beside a held snapshot, job_running_idx keeps the entries of every job
-- that ended within its lease, and each pop of a max_running queue, which
-- counts the queue's running jobs, stepped over all of them. When a pop's
-- count reads far more entries than the queue can have running jobs, the
-- queue's claims of slots are numbered (_job.slot_claim, from
-- _slot_claim_seq; _queue.probe_until), and once every running job holds
-- a numbered slot (_queue.slotted) its pops probe each slot's newest claim
-- (job_slot_holder_idx, _take_free_slots) instead of counting, for as long
-- as counts stay costly. Without a held snapshot nothing changes but a
-- look at a mark. Every pop now holds its queue's claims lock shared, and the
-- hand-offs try to, so configure_queue waits for the claims that read
-- the old limits.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.39.0'::text $$;

ALTER TABLE pgtq._job ADD COLUMN slot_claim bigint;
CREATE SEQUENCE pgtq._slot_claim_seq AS bigint;
ALTER SEQUENCE pgtq._slot_claim_seq OWNED BY pgtq._job.slot_claim;
CREATE INDEX job_slot_holder_idx ON pgtq._job (queue, slot, slot_claim DESC)
    WHERE slot_claim IS NOT NULL;
ALTER TABLE pgtq._queue ADD COLUMN slotted boolean NOT NULL DEFAULT false;
ALTER TABLE pgtq._queue ADD COLUMN probe_until timestamptz;

-- pg_dump keeps the claim numbers' sequence with the jobs (as in a fresh
-- install; only inside ALTER EXTENSION).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pgtq') THEN
        PERFORM pg_catalog.pg_extension_config_dump('pgtq._slot_claim_seq', '');
    END IF;
END
$$;

-- Guarantees: hands a job that push is about to insert as ready to an open
-- hand-off offer of `queue` (0.16.0, offer_handoffs), and returns its id;
-- NULL when it hands nothing, and then it wrote nothing. A handed job is
-- inserted running, claimed as pop would claim it for the offer's worker
-- (attempt 1, a new lease that runs out at as_of + the offer's lease),
-- and its claim (pop's columns, as JSON) is notified on the offer's
-- channel at commit: the worker starts it without a claim of its own.
-- Rolled back, neither the job nor the notification exists.
-- Never waits. It hands nothing when:
--   * the queue has a pause or a limit (a _queue row): pop alone keeps them;
--     it holds the queue's claims lock shared first, as pop does (0.39.0),
--     and hands nothing while configure_queue holds it;
--   * as_of is more than a second away from the clock: a lease counted from
--     a time long past would run out before the worker hears of the job
--     (a transaction that stays open longer than the lease after the push
--     still hands a lapsed lease: the lease rescue then runs the job again);
--   * args and kwargs take more than 6,000 bytes, or more than
--     max_payload_bytes (the insert that follows raises the error), or the
--     claim does not fit a notification (8,000 bytes);
--   * no offer of the queue is open: its session holds (space, 0), which a
--     try to take shared fails on (taken and let go in one expression);
--   * every open offer is being handed a job by another transaction, which
--     holds (space, 1) until it ends (a try here, never a wait), so each
--     offer gets at most one job per committing push at a time;
--   * this transaction handed a job already (pgtq.handed_off, set locally
--     here): a transaction hands at most one job, however many it pushes,
--     since the lock above does not stop the transaction that holds it.
-- An offer may close between this look and the commit; its worker then
-- hands the job back (release), which announces it.
CREATE OR REPLACE FUNCTION pgtq._hand_off(queue text, task text, args jsonb, kwargs jsonb, priority integer,
                               max_attempts integer, backoff_base interval, backoff_cap interval,
                               as_of timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    offer     record;
    new_id    bigint;
    new_lease uuid;
    expires   timestamptz;
    claim     text;
BEGIN
    IF current_setting('pgtq.handed_off', true) = 'on'
       OR abs(extract(epoch FROM clock_timestamp() - _hand_off.as_of)) > 1
       OR NOT EXISTS (SELECT 1 FROM pgtq._settings AS s
                      WHERE pg_column_size(_hand_off.args) + pg_column_size(_hand_off.kwargs)
                            <= least(s.max_payload_bytes, 6000))
       OR NOT pg_try_advisory_xact_lock_shared(pgtq._slot_space(_hand_off.queue), -1)
       OR EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = _hand_off.queue) THEN
        RETURN NULL;
    END IF;
    FOR offer IN
        SELECT h.channel, h.space, h.worker, h.lease
        FROM pgtq._handoff AS h
        WHERE _hand_off.queue = ANY (h.queues) AND h.pid <> pg_backend_pid()
        ORDER BY h.pid
    LOOP
        CONTINUE WHEN CASE WHEN pg_try_advisory_lock_shared(offer.space, 0)
                           THEN pg_advisory_unlock_shared(offer.space, 0) ELSE false END;
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(offer.space, 1);
        new_id := nextval('pgtq._job_id_seq');
        new_lease := gen_random_uuid();
        expires := _hand_off.as_of + offer.lease;
        claim := json_build_object('id', new_id, 'queue', _hand_off.queue, 'task', _hand_off.task,
                                   'args', _hand_off.args, 'kwargs', _hand_off.kwargs,
                                   'priority', _hand_off.priority, 'attempt', 1,
                                   'max_attempts', _hand_off.max_attempts, 'lease', new_lease,
                                   'lease_expires_at', expires)::text;
        IF octet_length(claim) >= 8000 THEN
            RETURN NULL;
        END IF;
        INSERT INTO pgtq._job (id, queue, task, args, kwargs, state, priority, attempt, max_attempts, run_at,
                               created_at, started_at, lease, lease_expires_at, worker, backoff_base,
                               backoff_cap, pushed_by)
        VALUES (new_id, _hand_off.queue, _hand_off.task, _hand_off.args, _hand_off.kwargs, 'running',
                _hand_off.priority, 1, _hand_off.max_attempts, _hand_off.as_of, _hand_off.as_of,
                _hand_off.as_of, new_lease, expires, offer.worker, _hand_off.backoff_base,
                _hand_off.backoff_cap, session_user);
        PERFORM pg_notify(offer.channel, claim);
        PERFORM set_config('pgtq.handed_off', 'on', true);
        RETURN new_id;
    END LOOP;
    RETURN NULL;
END
$$;

-- (A new OUT column: a new result type, so dropped first.)
DROP FUNCTION pgtq._filled_slots(text, integer, timestamptz);

-- Guarantees: as of the call (its statements see every claim that
-- committed before them), the distinct slots in 1..capacity that the
-- running jobs of `queue` holding a slot have, ascending, and how many
-- running jobs hold one: live > cardinality(filled) when some of them run
-- without a distinct slot in that range. A running job holds a slot while
-- its lease is live at as_of; one whose lease ran out is written off first
-- (_write_off_lapsed, 0.11.0) and holds none, unless another transaction
-- was writing its row: then it still holds its slot. Reads the queue's
-- entries of job_running_idx and their rows; twice when a lease ran out.
-- It reads them in index order (pop's enable_bitmapscan off, 0.20.0),
-- from the queue's rescue floor (0.27.0, _rescue_floor: below it no job
-- whose lease ran out can come back to take its slot again; before, it
-- read every job of the queue that ended beside a held snapshot).
-- `unclaimed` (0.39.0): how many of the running jobs it read that hold a
-- slot (or none, but were not written off) have no claim number
-- (slot_claim): claimed before 0.39.0, or without a slot.
CREATE FUNCTION pgtq._filled_slots(queue text, capacity integer, as_of timestamptz,
                                   OUT filled integer[], OUT live bigint, OUT unclaimed bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    lapsed    bigint;  -- running jobs whose lease ran out, not written off
    read_from timestamptz := pgtq._rescue_floor(_filled_slots.queue, _filled_slots.as_of, NULL);
BEGIN
    FOR look IN 1 .. 2 LOOP
        -- A job written off has slot 0: it is neither in `filled` nor live.
        SELECT coalesce(array_agg(DISTINCT r.slot ORDER BY r.slot)
                            FILTER (WHERE r.slot BETWEEN 1 AND _filled_slots.capacity), '{}'),
               count(*) FILTER (WHERE r.lease_expires_at > _filled_slots.as_of OR r.slot IS DISTINCT FROM 0),
               count(*) FILTER (WHERE r.lease_expires_at <= _filled_slots.as_of AND r.slot IS DISTINCT FROM 0),
               count(*) FILTER (WHERE r.slot_claim IS NULL AND r.slot IS DISTINCT FROM 0)
        INTO filled, live, lapsed, unclaimed
        FROM pgtq._job AS r
        WHERE r.queue = _filled_slots.queue AND r.state = 'running' AND r.lease_expires_at >= read_from;
        EXIT WHEN lapsed = 0 OR look = 2;
        PERFORM pgtq._write_off_lapsed(_filled_slots.queue, _filled_slots.as_of);
    END LOOP;
END
$$;

-- Guarantees: _take_slots for a max_running queue whose running jobs all
-- hold a slot of their own (_queue.slotted, 0.39.0): up to `wanted` slots
-- of 1..capacity, the lowest free ones, each held by its token (as
-- _take_slots says) until the caller's transaction ends and free as of a
-- statement that started after the token was taken. A slot is free when
-- its newest claim (the highest slot_claim among the jobs that claimed it)
-- is not running, or is running with a lease that ran out as of as_of and
-- is written off here (slot 0, as _write_off_lapsed does: no heartbeat
-- extends its lease again; one whose row another transaction is writing
-- keeps its slot). The claims of a slot follow one another under its
-- token, each numbered from _slot_claim_seq after the token was taken, so
-- the newest is the slot's only possible holder, and every running job
-- that counts against max_running is the newest claim of its slot
-- (slotted). Each look probes the slots from 1 up, one probe of
-- job_slot_holder_idx each (the first version of the slot's newest claim
-- that the statement sees), until it has found enough free ones: it costs
-- the slots filled below them, never the jobs that ran and ended. A pop
-- that counts the queue's running jobs instead (_filled_slots) reads,
-- beside a held snapshot, the entries of each job that ended within its
-- lease (5.9 ms a pop at 8,000 jobs/s: the queue's drain fell to a fifth
-- until 0.38.0); _take_slots probes when its count costs that. A slot
-- whose token another pop holds is left to it; when every free slot is,
-- the pop waits for the first one's token (so a claim that is rolled back
-- does not leave it refused) and probes that slot again: a look reads the
-- free slots a few more at a time than it still wants, and goes on past
-- those whose tokens other pops hold, so pops that run at once take
-- different slots, never waiting for each other while a slot is free. A
-- pop that had to drop slots that claims filled meanwhile looks again,
-- three looks in all.
CREATE FUNCTION pgtq._take_free_slots(queue text, wanted integer, capacity integer, as_of timestamptz)
RETURNS integer[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    space        integer := pgtq._slot_space(_take_free_slots.queue);
    after        integer;            -- a look goes on from the slot after this one
    upto         integer;            -- and reads the slots up to this one, a window at a time
    free         integer[];          -- the slots a look found free, ascending
    chunk        integer;            -- how many free slots a look reads at most
    found        integer;            -- how many it read
    last         integer;            -- the last of them
    lapsed_slots integer[];          -- of those, the slots of running jobs whose lease ran out
    lapsed_ids   bigint[];           -- and those jobs
    written_off  integer[];          -- the slots of the lapsed jobs written off
    fresh        integer[];          -- the free slots whose tokens this look took
    kept         integer[];          -- of those, the ones still free after the token
    taken        integer[] := '{}';  -- the slots this pop holds, free
    busy         integer;            -- the first free slot whose token another pop holds
    looks        integer := 0;
BEGIN
    LOOP
        looks := looks + 1;
        after := 0;
        fresh := '{}';
        busy := NULL;
        -- The free slots from 1 up, a few more at a time than are wanted,
        -- so that those whose tokens other pops hold are passed over; in
        -- windows of the slot numbers, as generate_series makes all its
        -- rows first (100,000 of them took 8 ms).
        LOOP
            chunk := _take_free_slots.wanted - cardinality(taken) - cardinality(fresh) + 8;
            upto := least(_take_free_slots.capacity, after + greatest(4 * chunk, 64));
            SELECT coalesce(array_agg(p.slot ORDER BY p.slot), '{}'),
                   count(*),
                   max(p.slot),
                   coalesce(array_agg(p.slot) FILTER (WHERE p.lapsed), '{}'),
                   coalesce(array_agg(p.id) FILTER (WHERE p.lapsed), '{}')
            INTO free, found, last, lapsed_slots, lapsed_ids
            FROM (SELECT c.slot, h.id, h.state = 'running' AS lapsed
                  FROM generate_series(after + 1, upto) AS c (slot)
                  LEFT JOIN LATERAL (SELECT j.id, j.state, j.lease_expires_at
                                     FROM pgtq._job AS j
                                     WHERE j.queue = _take_free_slots.queue AND j.slot = c.slot
                                       AND j.slot_claim IS NOT NULL
                                     ORDER BY j.slot_claim DESC
                                     LIMIT 1) AS h ON true
                  WHERE c.slot <> ALL (taken)
                    AND (h.state IS DISTINCT FROM 'running' OR h.lease_expires_at <= _take_free_slots.as_of)
                  LIMIT chunk) AS p;
            IF cardinality(lapsed_ids) > 0 THEN
                -- Judged on their newest versions (a heartbeat may have
                -- extended a lease since the look); never waits.
                WITH lapsed AS (
                    SELECT r.id, r.slot
                    FROM pgtq._job AS r
                    WHERE r.id = ANY (lapsed_ids) AND r.state = 'running' AND r.slot >= 1
                      AND r.lease_expires_at <= _take_free_slots.as_of
                    FOR UPDATE SKIP LOCKED
                ), written AS (
                    UPDATE pgtq._job AS j
                    SET slot = 0
                    FROM lapsed
                    WHERE j.id = lapsed.id
                    RETURNING lapsed.slot
                )
                SELECT coalesce(array_agg(w.slot), '{}') INTO written_off FROM written AS w;
                free := ARRAY(SELECT f.slot FROM unnest(free) AS f (slot)
                              WHERE f.slot <> ALL (lapsed_slots) OR f.slot = ANY (written_off)
                              ORDER BY f.slot);
            END IF;
            FOR i IN 1 .. cardinality(free) LOOP
                EXIT WHEN cardinality(taken) + cardinality(fresh) >= _take_free_slots.wanted;
                IF pg_try_advisory_xact_lock(space, free[i]) THEN
                    fresh := fresh || free[i];
                ELSIF busy IS NULL THEN
                    busy := free[i];
                END IF;
            END LOOP;
            after := CASE WHEN found = chunk THEN last ELSE upto END;
            EXIT WHEN cardinality(taken) + cardinality(fresh) >= _take_free_slots.wanted
                      OR after >= _take_free_slots.capacity;
        END LOOP;
        IF cardinality(fresh) = 0 THEN
            IF busy IS NULL OR cardinality(taken) > 0 THEN
                RETURN taken;
            END IF;
            PERFORM pg_advisory_xact_lock(space, busy);  -- every free slot is another pop's: wait for its commit
            fresh := ARRAY[busy];
        END IF;
        -- As of now, a newer snapshot: drop the slots that claims which
        -- committed since the look filled.
        kept := ARRAY(SELECT t.slot
                      FROM unnest(fresh) AS t (slot)
                      WHERE (SELECT h.state
                             FROM pgtq._job AS h
                             WHERE h.queue = _take_free_slots.queue AND h.slot = t.slot
                               AND h.slot_claim IS NOT NULL
                             ORDER BY h.slot_claim DESC
                             LIMIT 1) IS DISTINCT FROM 'running'
                      ORDER BY t.slot);
        taken := ARRAY(SELECT u.slot FROM unnest(taken || kept) AS u (slot) ORDER BY u.slot);
        EXIT WHEN cardinality(kept) = cardinality(fresh) OR cardinality(taken) >= _take_free_slots.wanted
                  OR looks >= 3;
    END LOOP;
    RETURN taken;
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
--
-- (0.39.0) Beside a snapshot held open, the count above reads the entries
-- of every job of the queue that ended within its lease. A count that
-- reads more than 4 x max_running + 256 entries of job_running_idx (as
-- this transaction's statistics tell; with track_counts off, never) turns
-- the queue to probing (_queue.probe_until, a minute ahead), in two steps:
--   1. from then on the queue's claims are numbered (slot_claim: pop reads
--      the mark after this function, under the settings lock it holds);
--   2. once a costly count finds every counted job in a distinct slot of
--      1..max_running with a number (from its rescue floor, as it counts:
--      below it no job whose lease ran out can come back), and again after
--      it took the settings lock whole (never waiting; then no other pop
--      of the queue runs or starts, and a claim made unnumbered that
--      committed after the first count is in the second), it marks the
--      queue slotted, and until probe_until its pops probe the
--      slots (_take_free_slots: a few entries a slot, nothing of the jobs
--      that ended; more than a cheap count costs, a probe a slot, filled
--      ones too).
-- After probe_until a pop counts again: costly, it moves probe_until a
-- minute on; cheap (the snapshot is gone), it clears both marks, when no
-- other pop of the queue runs, and claims are no longer numbered. Until
-- 0.38.0 every pop counted (5.9 ms at 8,000 jobs/s beside a held snapshot:
-- the queue drained at a fifth of that). The marks never wait for the
-- queue's row (a pop that holds it moves nothing), and no claim without a
-- number comes after `slotted` is set: each claim holds the queue's
-- settings lock shared (pop, in this function) or its claims lock (the
-- hand-offs, only for a queue with no row), and configure_queue, which
-- clears both marks, waits for them (_lock_settings).
CREATE OR REPLACE FUNCTION pgtq._take_slots(queue text, n integer, as_of timestamptz)
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
    slotted     boolean;            -- every counted running job holds a slot of its own (_take_free_slots)
    probe_until timestamptz;        -- until then, probe the slots
    unclaimed   bigint;             -- running jobs with no claim number (_filled_slots)
    read_before bigint;             -- job_running_idx's entries this transaction read before the count
    costly      boolean;            -- the count read far more entries than the queue can have running jobs
    marks       text;               -- how this pop moves the queue's probing marks, if it does
BEGIN
    PERFORM pg_advisory_xact_lock_shared(space, 0);
    SELECT f.max_running, f.slotted, f.probe_until INTO capacity, slotted, probe_until
    FROM pgtq._queue AS f
    WHERE f.queue = _take_slots.queue AND f.paused_at IS NULL AND f.rate_limit IS NULL;
    IF capacity IS NULL THEN
        RETURN NULL;
    END IF;
    IF slotted AND probe_until > statement_timestamp() THEN
        RETURN pgtq._take_free_slots(_take_slots.queue, least(_take_slots.n, 256), capacity, _take_slots.as_of);
    END IF;
    read_before := pg_stat_get_xact_tuples_returned('pgtq.job_running_idx'::regclass);
    SELECT s.filled, s.live, s.unclaimed INTO filled, live, unclaimed
    FROM pgtq._filled_slots(_take_slots.queue, capacity, _take_slots.as_of) AS s;
    costly := pg_stat_get_xact_tuples_returned('pgtq.job_running_idx'::regclass) - read_before
              > 4 * capacity + 256;
    -- (The lock is tried only in a branch of its own: an expression that
    -- came to NULL before it would still take it, until the commit.)
    IF costly AND probe_until IS NULL THEN
        marks := 'number';   -- claims get numbers from now on
    ELSIF costly AND slotted THEN
        marks := 'probe';    -- another minute
    ELSIF costly AND live = cardinality(filled) AND unclaimed = 0 THEN
        IF pg_try_advisory_xact_lock(space, 0) THEN
            -- No other pop of the queue runs now, nor starts until this
            -- one ends: counted again, a claim that committed after the
            -- count above is in this one.
            SELECT s.filled, s.live, s.unclaimed INTO filled, live, unclaimed
            FROM pgtq._filled_slots(_take_slots.queue, capacity, _take_slots.as_of) AS s;
            IF live = cardinality(filled) AND unclaimed = 0 THEN
                marks := 'probe';  -- every counted job numbered
            END IF;
        END IF;
    ELSIF NOT costly AND probe_until <= statement_timestamp() THEN
        IF pg_try_advisory_xact_lock(space, 0) THEN
            marks := 'stop';   -- no other pop of the queue runs, probing or numbering
        END IF;
    END IF;
    IF marks IS NOT NULL THEN
        UPDATE pgtq._queue AS f
        SET probe_until = CASE WHEN marks = 'stop' THEN NULL ELSE statement_timestamp() + interval '1 minute' END,
            slotted = marks = 'probe'
        WHERE f.queue = (SELECT g.queue FROM pgtq._queue AS g
                         WHERE g.queue = _take_slots.queue
                         FOR UPDATE SKIP LOCKED);
    END IF;
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

-- Guarantees: hands the ready job `id`, the next job of the lock key
-- `lock_key` that the caller's transaction freed by ending its running
-- job, to an open hand-off offer of its queue `queue` (0.31.0), and
-- returns whether it did; false when it hands nothing, and then it wrote
-- nothing. The job is claimed as pop would claim it for the offer's
-- worker (the next attempt, a new lease that runs out at now() + the
-- offer's lease), and its claim (pop's columns, as JSON) is notified on
-- the offer's channel at commit: the worker starts it without a claim of
-- its own, and no other idle worker is woken to pop for it. Rolled back,
-- neither the claim nor the notification exists. As a pop does, it takes
-- the key's advisory lock (never waiting) and checks that the job is the
-- key's next and that no running job holds the key (_is_next_of_key),
-- and locks the job's row (SKIP LOCKED). The offers are looked at as
-- _hand_off looks at them, and one transaction hands at most one job,
-- pushed or freed (pgtq.handed_off). It hands nothing when the queue has
-- a pause or a limit (a _queue row: pop alone keeps them; 0.39.0: or
-- configure_queue holds its claims lock, which it takes shared first), when the
-- transaction began more than a second ago (a lease counted from its
-- start could run out before the worker hears of the job), when the claim
-- does not fit a notification, or when no offer is open; the caller then
-- announces the queue. Until 0.30.0 every end of a keyed job announced
-- the queue: each idle worker of it popped, one took the key's next job,
-- and the others walked the queue's backlog for nothing.
CREATE OR REPLACE FUNCTION pgtq._hand_freed_key(id bigint, queue text, lock_key text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    offer     record;
    next_job  pgtq._job;
    new_lease uuid;
    expires   timestamptz;
    claim     text;
BEGIN
    IF current_setting('pgtq.handed_off', true) = 'on'
       OR abs(extract(epoch FROM clock_timestamp() - now())) > 1
       OR NOT pg_try_advisory_xact_lock_shared(pgtq._slot_space(_hand_freed_key.queue), -1)
       OR EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = _hand_freed_key.queue)
       OR NOT pg_try_advisory_xact_lock(hashtextextended(_hand_freed_key.lock_key, 7247))
       OR NOT pgtq._is_next_of_key(_hand_freed_key.id, _hand_freed_key.lock_key, now()) THEN
        RETURN false;
    END IF;
    FOR offer IN
        SELECT h.channel, h.space, h.worker, h.lease
        FROM pgtq._handoff AS h
        WHERE _hand_freed_key.queue = ANY (h.queues) AND h.pid <> pg_backend_pid()
        ORDER BY h.pid
    LOOP
        CONTINUE WHEN CASE WHEN pg_try_advisory_lock_shared(offer.space, 0)
                           THEN pg_advisory_unlock_shared(offer.space, 0) ELSE false END;
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(offer.space, 1);
        -- The job's row is locked once an offer is found: a row lock is a
        -- write, which an end with no open offer need not make.
        SELECT j.* INTO next_job FROM pgtq._job AS j
        WHERE j.id = _hand_freed_key.id AND j.state = 'ready'
        FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        new_lease := gen_random_uuid();
        expires := now() + offer.lease;
        claim := json_build_object('id', next_job.id, 'queue', next_job.queue, 'task', next_job.task,
                                   'args', next_job.args, 'kwargs', next_job.kwargs,
                                   'priority', next_job.priority, 'attempt', next_job.attempt + 1,
                                   'max_attempts', next_job.max_attempts, 'lease', new_lease,
                                   'lease_expires_at', expires)::text;
        IF octet_length(claim) >= 8000 THEN
            RETURN false;
        END IF;
        UPDATE pgtq._job AS j
        SET state = 'running',
            attempt = j.attempt + 1,
            lease = new_lease,
            lease_expires_at = expires,
            started_at = now(),
            worker = offer.worker,
            slot = NULL
        WHERE j.id = next_job.id;
        PERFORM pg_notify(offer.channel, claim);
        PERFORM set_config('pgtq.handed_off', 'on', true);
        RETURN true;
    END LOOP;
    RETURN false;
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
-- announced, and the waiting worker pops again). (0.39.0) Beside a
-- snapshot held open, a pop of a max_running queue writes the queue's
-- probing marks, a few times a minute at most (_take_slots).
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

    -- Every pop holds its queue's claims lock shared (0.39.0, second key
    -- -1; _take_slots then takes the settings lock, 0): configure_queue
    -- waits for the pops that read the old settings, so none claims
    -- without a slot after it set a limit (_take_slots).
    PERFORM pg_advisory_xact_lock_shared(pgtq._slot_space(pop.queue), -1);
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
                   END,
            -- Numbered while the queue's pops number their claims (read
            -- after _take_slots, whose shared lock keeps the mark that
            -- lets pops probe from being set meanwhile).
            slot_claim = CASE WHEN slots IS NOT NULL
                                   AND (SELECT f.probe_until IS NOT NULL FROM pgtq._queue AS f
                                        WHERE f.queue = pop.queue)
                              THEN nextval('pgtq._slot_claim_seq') END
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
-- commit (0.39.0: it waits for every pop of the queue that read the old
-- settings to end, a transaction still open after a pop of a queue with
-- no limit too, not only those of a queue that had a row), and
-- announces the queue when something changed (there may be room now).
-- The queue's pops count its running jobs until one finds them all in
-- slots of their own (_queue.slotted, cleared here). A bad queue name
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

    PERFORM pg_advisory_xact_lock(pgtq._slot_space(configure_queue.queue), -1);  -- the claims (pop's order)
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
                updated_at = configure_queue.as_of,
                slotted = false,
                probe_until = NULL
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
            updated_at = excluded.updated_at,
            slotted = false,  -- its running jobs may hold no slot, or one above the new limit
            probe_until = NULL
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
