-- pgtq 0.24.0 -> 0.25.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_25_0. Every definition here is the one of sql/pgtq.sql at
-- 0.25.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- The tick's look for a queue's first ready job (_raise_mark) started at
-- the queue's first entry. Beside a snapshot held open (a long report,
-- pg_dump, a replica with hot_standby_feedback) it read every job claimed
-- since the snapshot was taken, in each tick of each worker, for as long
-- as the snapshot stayed: 20 ms at 180,000 claims, seconds after an hour
-- at 10,000 jobs/s. It now starts at a floor kept in the mark, below
-- which no job can turn ready unseen: other paths record every job they
-- make ready (_lower_marks), and a push takes its transaction id before
-- its job id (push, push_many), so that the tick can tell when every push
-- below an id has ended (tick reads the next id before its transaction
-- has an id). Once a minute the look starts at the queue's first entry.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.25.0'::text $$;

ALTER TABLE pgtq._ready_mark
    ADD COLUMN floor_id bigint NOT NULL DEFAULT 0,
    ADD COLUMN settled_id bigint NOT NULL DEFAULT 0,
    ADD COLUMN pending_id bigint,
    ADD COLUMN pending_xid xid8,
    ADD COLUMN looked_all_at timestamptz NOT NULL DEFAULT '-infinity';

DROP FUNCTION pgtq._raise_mark(text);

-- Guarantees: the id the job sequence gives next (0.25.0): no job pushed
-- after this read has a lower id (the sequence is CACHE 1). Reads the
-- sequence; takes no id of it.
CREATE FUNCTION pgtq._unused_job_id()
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END FROM pgtq._job_id_seq AS s
$$;

-- Guarantees: records the jobs of `ids` (of queues[i], at priorities[i],
-- with lock_keys[i]) that a caller has just made ready, for the ready
-- marks (0.18.0): the lowest id per queue and priority among those
-- without a lock key gives a row of _ready_mark_low. Pops seek from it
-- at once when it is below their mark at its priority; the next tick of
-- the queue reads it before it looks for the first ready job from its
-- floor, so no job turned ready below the floor is missed (0.25.0: a row
-- for every such job, whatever the queue's mark, so that no caller's
-- view of the mark decides it; tick deletes the rows of queues without a
-- mark). Jobs with a lock key write nothing (pop's keyed path takes
-- them). Takes no lock and waits for nothing. Every caller that turns an
-- existing job ready calls it: release, retry, _end_failed_attempt
-- (fail, abort and the lease rescue, when the retry is due at once),
-- _push_keyed (a replacing push) and tick's promotion.
CREATE OR REPLACE FUNCTION pgtq._lower_marks(queues text[], priorities integer[], ids bigint[], lock_keys text[])
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
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
-- Never waits: a mark another tick holds is left to that tick.
CREATE FUNCTION pgtq._raise_mark(queue text, settle_below bigint)
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
    waiting_xid    xid8;
BEGIN
    SELECT m.* INTO mark FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue FOR UPDATE SKIP LOCKED;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue) THEN
        RETURN;  -- another tick is setting it
    END IF;
    IF EXISTS (SELECT 1 FROM pgtq._job AS k
               WHERE k.queue = _raise_mark.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL) THEN
        DELETE FROM pgtq._ready_mark_low AS l WHERE l.queue = _raise_mark.queue;
        DELETE FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue;
        RETURN;  -- pop takes the keyed path and reads no mark
    END IF;
    unused_id := pgtq._unused_job_id();
    -- Taken before the look, so the look sees every push it says ended.
    oldest_xid := pg_snapshot_xmin(pg_current_snapshot());
    WITH gone AS (
        DELETE FROM pgtq._ready_mark_low AS l WHERE l.queue = _raise_mark.queue
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
            DELETE FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue;
            RETURN;
        END IF;
        first_priority := mark_priority;
        first_id := unused_id;
    END IF;
    first_id := least(first_id, unused_id);

    settled := coalesce(mark.settled_id, 0);
    waiting_id := mark.pending_id;
    waiting_xid := mark.pending_xid;
    IF waiting_xid < oldest_xid THEN
        settled := greatest(settled, waiting_id);
        waiting_id := NULL;
        waiting_xid := NULL;
    END IF;
    IF waiting_xid IS NULL AND _raise_mark.settle_below IS NOT NULL THEN
        waiting_id := _raise_mark.settle_below;
        waiting_xid := pg_current_xact_id();
    END IF;

    IF mark.queue IS NULL THEN
        INSERT INTO pgtq._ready_mark (queue, priority, low_id, next_low_id, set_at, floor_id, settled_id,
                                      pending_id, pending_xid, looked_all_at)
        VALUES (_raise_mark.queue, first_priority, 0, first_id, clock_timestamp(),
                least(first_id, settled), settled, waiting_id,
                waiting_xid, clock_timestamp())
        ON CONFLICT ON CONSTRAINT ready_mark_pkey DO NOTHING;
    ELSE
        UPDATE pgtq._ready_mark AS m
        SET priority = first_priority,
            low_id = CASE WHEN first_priority = mark.priority THEN least(mark.next_low_id, first_id) ELSE 0 END,
            next_low_id = first_id,
            set_at = clock_timestamp(),
            floor_id = least(first_id, settled),
            settled_id = settled,
            pending_id = waiting_id,
            pending_xid = waiting_xid,
            looked_all_at = CASE WHEN look_from = 0 THEN clock_timestamp() ELSE mark.looked_all_at END
        WHERE m.queue = _raise_mark.queue;
    END IF;
END
$$;


-- Guarantees: inserts one job and returns its id, as part of the caller's
-- transaction (the job exists if and only if that transaction commits).
-- A job due at `as_of` is ready at once, one with a later run_at is
-- scheduled. Every argument is checked first; on bad input it raises an
-- error naming the problem (SQLSTATE class PT) and writes nothing.
-- backoff_base and backoff_cap are the job's own retry policy (NULL:
-- backoff()'s defaults), stored on the job and applied by fail() and by
-- the lease rescue in tick().
-- With a job_key there is at most one pending (scheduled or ready) job per
-- queue and key: if there is one, `keep` (the default) changes nothing and
-- returns its id, `replace` replaces its task, args, kwargs, run_at,
-- priority, max_attempts and backoff (attempts start again from 0) and
-- returns its id. A running job with the key does not count: the push
-- queues a new pending job. Concurrent pushes of one key all get the id of
-- the one pending job (_push_keyed says how). A push without a key never
-- touches the key index.
-- With a lock_key, at most one job of that key runs at a time, in any
-- queue, and the key's jobs start in their order (priority, then push
-- order): pop keeps the rule (_choose_keyed).
-- A job due at once, without a lock key, of a queue with no pause or
-- limit, pushed while a worker of its queue waits with an open hand-off
-- offer (0.16.0, offer_handoffs), is handed to that worker: it is
-- inserted running, claimed for the worker as pop would claim it, and the
-- worker hears of the claim at commit (_hand_off). Otherwise it is
-- inserted ready and announced.
-- SECURITY DEFINER: a producer may insert jobs through it, never directly.
CREATE OR REPLACE FUNCTION pgtq.push(queue text,
                          task text,
                          args jsonb DEFAULT '[]',
                          kwargs jsonb DEFAULT '{}',
                          run_at timestamptz DEFAULT NULL,
                          priority integer DEFAULT 0,
                          max_attempts integer DEFAULT 25,
                          job_key text DEFAULT NULL,
                          job_key_mode text DEFAULT 'keep',
                          backoff_base interval DEFAULT NULL,
                          backoff_cap interval DEFAULT NULL,
                          lock_key text DEFAULT NULL,
                          as_of timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    due        timestamptz;
    new_state  pgtq.job_state;
    new_id     bigint;
    announce   boolean := false;  -- a ready job whose queue a worker may be waiting for (_must_announce)
BEGIN
    -- The transaction id comes before the job id (0.25.0, _raise_mark).
    PERFORM pg_current_xact_id();
    -- The common push (good names and options, args an array and kwargs an
    -- object, no job key, lock key or backoff of its own) passes one test
    -- (0.13.0); any other takes each check in turn, and the first that
    -- fails raises the error that names the problem.
    IF NOT coalesce(pgtq._push_options_ok(push.queue, push.task, push.priority, push.max_attempts,
                                          push.run_at, push.as_of)
                    AND push.job_key IS NULL AND push.job_key_mode = 'keep' AND push.lock_key IS NULL
                    AND push.backoff_base IS NULL AND push.backoff_cap IS NULL
                    AND jsonb_typeof(push.args) = 'array' AND jsonb_typeof(push.kwargs) = 'object',
                    false) THEN
        IF NOT pgtq._push_options_ok(push.queue, push.task, push.priority, push.max_attempts,
                                     push.run_at, push.as_of) THEN
            PERFORM pgtq._check_push_options(push.queue, push.task, push.priority, push.max_attempts,
                                             push.run_at, push.as_of);
        END IF;
        IF push.job_key IS NOT NULL OR push.job_key_mode IS DISTINCT FROM 'keep'
           OR push.backoff_base IS NOT NULL OR push.backoff_cap IS NOT NULL OR push.lock_key IS NOT NULL THEN
            PERFORM pgtq._check_job_options(push.job_key, push.job_key_mode, push.backoff_base, push.backoff_cap,
                                            push.lock_key);
        END IF;
        PERFORM pgtq._check_payload(push.task, push.args, push.kwargs);

        IF push.job_key IS NOT NULL THEN
            due := coalesce(push.run_at, push.as_of);
            new_state := CASE WHEN due <= push.as_of THEN 'ready' ELSE 'scheduled' END;
            SELECT k.id INTO new_id
            FROM pgtq._push_keyed(push.queue, push.task, ARRAY[push.args], ARRAY[push.kwargs],
                                  ARRAY[push.job_key], push.job_key_mode, due, new_state, push.priority,
                                  push.max_attempts, push.backoff_base, push.backoff_cap, ARRAY[push.lock_key],
                                  push.as_of) AS k (id);
            RETURN new_id;
        END IF;
    END IF;

    -- A job due now, of a queue a worker may be waiting for, goes straight
    -- to an open hand-off offer when there is one (0.16.0, _hand_off).
    IF coalesce(push.run_at, push.as_of) <= push.as_of THEN
        announce := pgtq._must_announce(push.queue);
        IF announce AND push.lock_key IS NULL THEN
            new_id := pgtq._hand_off(push.queue, push.task, push.args, push.kwargs, push.priority,
                                     push.max_attempts, push.backoff_base, push.backoff_cap, push.as_of);
            IF new_id IS NOT NULL THEN
                RETURN new_id;
            END IF;
        END IF;
    END IF;

    -- The insert itself keeps max_payload_bytes: over it, no row.
    INSERT INTO pgtq._job AS j (queue, task, args, kwargs, state, priority, max_attempts, run_at,
                                created_at, backoff_base, backoff_cap, pushed_by, lock_key)
    SELECT push.queue, push.task, push.args, push.kwargs,
           CASE WHEN coalesce(push.run_at, push.as_of) <= push.as_of
                THEN 'ready'::pgtq.job_state ELSE 'scheduled'::pgtq.job_state END,
           push.priority, push.max_attempts, coalesce(push.run_at, push.as_of), push.as_of,
           push.backoff_base, push.backoff_cap, session_user, push.lock_key
    FROM pgtq._settings AS s
    WHERE pg_column_size(push.args) + pg_column_size(push.kwargs) <= s.max_payload_bytes
    RETURNING j.id INTO new_id;
    IF new_id IS NULL THEN
        PERFORM pgtq._check_payload(push.task, push.args, push.kwargs);
        RAISE EXCEPTION 'pgtq: the settings row of pgtq._settings is missing';
    END IF;

    IF announce THEN
        PERFORM pg_notify('pgtq', push.queue);
    END IF;
    RETURN new_id;
END
$$;


-- Guarantees: pushes many jobs of one task in one statement, in the
-- caller's transaction: one job per element of `args` (with the element of
-- `kwargs` at the same position; '{}' when kwargs is NULL), all with the
-- same run_at, priority, max_attempts and backoff; returns their ids in
-- the order given. job_keys, if given, holds one key per element (NULL:
-- no key) and each keyed element is pushed as push would push it with
-- that key and job_key_mode; two elements with one key act as two pushes
-- one after the other (keep: the first one's job; replace: the last one's
-- args), and both get that job's id. lock_keys, if given, holds one lock
-- key per element (NULL: none), with push's rule. Everything is checked
-- first, every element too (the error names the element's position,
-- counting from 1); on bad input it raises the error push would raise and
-- writes nothing. Ready jobs are announced once.
CREATE OR REPLACE FUNCTION pgtq.push_many(queue text,
                               task text,
                               args jsonb[],
                               kwargs jsonb[] DEFAULT NULL,
                               run_at timestamptz DEFAULT NULL,
                               priority integer DEFAULT 0,
                               max_attempts integer DEFAULT 25,
                               job_keys text[] DEFAULT NULL,
                               job_key_mode text DEFAULT 'keep',
                               backoff_base interval DEFAULT NULL,
                               backoff_cap interval DEFAULT NULL,
                               lock_keys text[] DEFAULT NULL,
                               as_of timestamptz DEFAULT now())
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    payload_limit integer;
    bad           record;
    due           timestamptz;
    new_state     pgtq.job_state;
BEGIN
    -- The transaction id comes before the job ids (0.25.0, _raise_mark).
    PERFORM pg_current_xact_id();
    IF NOT pgtq._push_options_ok(push_many.queue, push_many.task, push_many.priority,
                                 push_many.max_attempts, push_many.run_at, push_many.as_of) THEN
        PERFORM pgtq._check_push_options(push_many.queue, push_many.task, push_many.priority,
                                         push_many.max_attempts, push_many.run_at, push_many.as_of);
    END IF;
    IF push_many.job_key_mode IS DISTINCT FROM 'keep'
       OR push_many.backoff_base IS NOT NULL OR push_many.backoff_cap IS NOT NULL THEN
        PERFORM pgtq._check_job_options(NULL, push_many.job_key_mode, push_many.backoff_base,
                                        push_many.backoff_cap, NULL);
    END IF;
    IF push_many.args IS NULL OR cardinality(push_many.args) > 100000
       OR (push_many.kwargs IS NOT NULL AND cardinality(push_many.kwargs) <> cardinality(push_many.args)) THEN
        RAISE EXCEPTION 'pgtq: push_many needs args (and kwargs, if given) of one length of at most 100000, '
                        'got % args and % kwargs',
                coalesce(cardinality(push_many.args)::text, 'NULL'),
                coalesce(cardinality(push_many.kwargs)::text, 'no')
            USING ERRCODE = 'PT004';
    END IF;
    IF push_many.job_keys IS NOT NULL THEN
        IF cardinality(push_many.job_keys) <> cardinality(push_many.args) THEN
            RAISE EXCEPTION 'pgtq: push_many needs one job_key per job (NULL for none), got % job_keys for % jobs',
                    cardinality(push_many.job_keys), cardinality(push_many.args)
                USING ERRCODE = 'PT004';
        END IF;
        SELECT e.position, length(e.key) AS length INTO bad
        FROM unnest(push_many.job_keys) WITH ORDINALITY AS e (key, position)
        WHERE length(e.key) NOT BETWEEN 1 AND 200
        ORDER BY e.position
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'pgtq: job_key of job % must be 1 to 200 characters, got % characters',
                    bad.position, bad.length
                USING ERRCODE = 'PT004';
        END IF;
    END IF;
    IF push_many.lock_keys IS NOT NULL THEN
        IF cardinality(push_many.lock_keys) <> cardinality(push_many.args) THEN
            RAISE EXCEPTION 'pgtq: push_many needs one lock_key per job (NULL for none), got % lock_keys for % jobs',
                    cardinality(push_many.lock_keys), cardinality(push_many.args)
                USING ERRCODE = 'PT004';
        END IF;
        SELECT e.position, length(e.key) AS length INTO bad
        FROM unnest(push_many.lock_keys) WITH ORDINALITY AS e (key, position)
        WHERE length(e.key) NOT BETWEEN 1 AND 200
        ORDER BY e.position
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'pgtq: lock_key of job % must be 1 to 200 characters, got % characters',
                    bad.position, bad.length
                USING ERRCODE = 'PT004';
        END IF;
    END IF;

    SELECT s.max_payload_bytes INTO payload_limit FROM pgtq._settings AS s;
    SELECT e.position, e.a, e.k, pg_column_size(e.a) + coalesce(pg_column_size(e.k), 0) AS size INTO bad
    FROM unnest(push_many.args, push_many.kwargs) WITH ORDINALITY AS e (a, k, position)
    WHERE e.a IS NULL OR jsonb_typeof(e.a) <> 'array'
       OR (push_many.kwargs IS NOT NULL AND (e.k IS NULL OR jsonb_typeof(e.k) <> 'object'))
       OR pg_column_size(e.a) + coalesce(pg_column_size(e.k), 0) > payload_limit
    ORDER BY e.position
    LIMIT 1;
    IF FOUND THEN
        IF bad.a IS NULL OR jsonb_typeof(bad.a) <> 'array' THEN
            RAISE EXCEPTION 'pgtq: args of job % must be a JSON array, got %',
                    bad.position, coalesce(jsonb_typeof(bad.a), 'NULL')
                USING ERRCODE = 'PT001';
        ELSIF push_many.kwargs IS NOT NULL AND (bad.k IS NULL OR jsonb_typeof(bad.k) <> 'object') THEN
            RAISE EXCEPTION 'pgtq: kwargs of job % must be a JSON object, got %',
                    bad.position, coalesce(jsonb_typeof(bad.k), 'NULL')
                USING ERRCODE = 'PT002';
        END IF;
        RAISE EXCEPTION 'pgtq: payload of job % of task % is % bytes, over the limit of % bytes',
                bad.position, quote_literal(push_many.task), bad.size, payload_limit
            USING ERRCODE = 'PT005';
    END IF;

    due := coalesce(push_many.run_at, push_many.as_of);
    new_state := CASE WHEN due <= push_many.as_of THEN 'ready' ELSE 'scheduled' END;
    IF push_many.job_keys IS NOT NULL THEN
        RETURN QUERY
        SELECT k.id
        FROM pgtq._push_keyed(push_many.queue, push_many.task, push_many.args, push_many.kwargs,
                              push_many.job_keys, push_many.job_key_mode, due, new_state,
                              push_many.priority, push_many.max_attempts, push_many.backoff_base,
                              push_many.backoff_cap, push_many.lock_keys, push_many.as_of) AS k (id);
        RETURN;
    END IF;
    RETURN QUERY
    INSERT INTO pgtq._job AS j (queue, task, args, kwargs, state, priority, max_attempts, run_at, created_at,
                                backoff_base, backoff_cap, pushed_by, lock_key)
    SELECT push_many.queue, push_many.task, e.a, coalesce(e.k, '{}'), new_state,
           push_many.priority, push_many.max_attempts, due, push_many.as_of,
           push_many.backoff_base, push_many.backoff_cap, session_user, e.lock
    FROM unnest(push_many.args, push_many.kwargs, push_many.lock_keys) WITH ORDINALITY AS e (a, k, lock, position)
    ORDER BY e.position
    RETURNING j.id;
    IF new_state = 'ready' AND cardinality(push_many.args) > 0 THEN
        PERFORM pgtq._announce(push_many.queue);
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
--      (0.25.0: what lets the marks' looks start at a floor); a tick
--      called in a transaction that already wrote moves no floor. Rows
--      of _ready_mark_low of queues without a mark are deleted.
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
BEGIN
    IF pg_current_xact_id_if_assigned() IS NULL THEN
        settle_below := pgtq._unused_job_id();
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

    -- Ready marks (0.18.0): each queue ticked that runs jobs or has a mark,
    -- in the order of their names, so two ticks making the same new marks
    -- never wait on each other in a circle.
    PERFORM pgtq._raise_mark(r.queue, settle_below)
    FROM (SELECT unnest(busy_queues) AS queue
          UNION
          SELECT m.queue FROM pgtq._ready_mark AS m WHERE m.queue = coalesce(tick.queue, m.queue)) AS r
    ORDER BY r.queue;
    -- Rows of _ready_mark_low of queues without a mark (0.25.0).
    DELETE FROM pgtq._ready_mark_low AS l
    WHERE l.queue = coalesce(tick.queue, l.queue)
      AND NOT EXISTS (SELECT 1 FROM pgtq._ready_mark AS m WHERE m.queue = l.queue);

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
