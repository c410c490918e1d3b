-- pgtq 0.2.0 -> 0.3.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_3_0. Every definition here is the one of sql/pgtq.sql at
-- 0.3.0, to the letter (a test compares the catalogs). Each feature of
-- 0.3.0 has its own part below, under a banner; the privileges come last.
--
-- Calls that change: push and push_many take lock_key and lock_keys before
-- as_of (pass as_of by name, as since 0.2.0); pop of a paused or limited
-- queue, or of one with ready jobs that have a lock key, may return fewer
-- jobs than are ready, and needs READ COMMITTED (PT007).
--
-- On a large job table, the three new indexes are built while the script
-- holds the table's lock (they hold only jobs with a lock key, so they are
-- empty, but building them reads the table once).

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.3.0'::text $$;

-- ===========================================================================
-- Lock keys
--
--   * push(..., lock_key) and push_many(..., lock_keys): at most one job of
--     a lock key runs at a time, in any queue, in the key's order.
--   * pop keeps the rule (_choose_keyed, _is_next_of_key), under an
--     advisory lock per key; the ends of a job announce the key's next.
-- ===========================================================================

-- 0.3.0: at most one job of a lock key runs at a time, in any queue
-- (pop keeps the rule; push checks the key's length).
ALTER TABLE pgtq._job ADD COLUMN lock_key text;

-- pop with lock keys: is a key's job running, and which ready job of the
-- key is next (priority, then push order)? Only jobs with a lock key are
-- in these three, so jobs without one never touch them.
CREATE INDEX job_lock_key_running_idx ON pgtq._job (lock_key)
    WHERE state = 'running' AND lock_key IS NOT NULL;
CREATE INDEX job_lock_key_ready_idx ON pgtq._job (lock_key, priority DESC, id)
    WHERE state = 'ready' AND lock_key IS NOT NULL;
-- pop: does the queue have ready jobs with a lock key (its keyed path)?
CREATE INDEX job_keyed_ready_idx ON pgtq._job (queue)
    WHERE state = 'ready' AND lock_key IS NOT NULL;

-- Every job with its history; the lease token is left out on purpose
-- (whoever holds it may complete the job). backoff_base and backoff_cap
-- NULL mean backoff()'s defaults; waiters counts the registrations of
-- watch() (inert once the job finished); pushed_by is the session user
-- that pushed the job, who may read its outcome; lock_key the key of
-- which at most one job runs at a time.
CREATE OR REPLACE VIEW pgtq.jobs AS
SELECT j.id, j.queue, j.task, j.args, j.kwargs, j.state, j.priority,
       j.attempt, j.max_attempts, j.run_at, j.created_at, j.started_at,
       j.finished_at, j.lease_expires_at, j.worker, j.last_error, j.result,
       j.job_key, j.backoff_base, j.backoff_cap, j.cancel_requested_at,
       j.waiters, j.pushed_by, j.lock_key
FROM pgtq._job AS j;
COMMENT ON VIEW pgtq.jobs IS 'All jobs and their history (without lease tokens).';

DROP FUNCTION pgtq._check_job_options(text, text, interval, interval);
DROP FUNCTION pgtq.push(text, text, jsonb, jsonb, timestamptz, integer, integer, text, text, interval, interval,
                        timestamptz);
DROP FUNCTION pgtq.push_many(text, text, jsonb[], jsonb[], timestamptz, integer, integer, text[], text, interval,
                             interval, timestamptz);
DROP FUNCTION pgtq._push_keyed(text, text, jsonb[], jsonb[], text[], text, timestamptz, pgtq.job_state, integer,
                              integer, interval, interval, timestamptz);

-- Guarantees: raises PT004 naming the first invalid job option of a push:
-- job_key (NULL, or 1 to 200 characters), job_key_mode ('keep' or
-- 'replace'), backoff_base and backoff_cap (NULL, or 0 to 100 years),
-- lock_key (NULL, or 1 to 200 characters). Returns quietly when all are
-- valid. push and push_many call it only when one of these options is not
-- its default, so a push without them pays five comparisons.
CREATE FUNCTION pgtq._check_job_options(job_key text, job_key_mode text,
                                        backoff_base interval, backoff_cap interval, lock_key text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF length(job_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'pgtq: job_key must be 1 to 200 characters, got % characters', length(job_key)
            USING ERRCODE = 'PT004';
    END IF;
    IF length(lock_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'pgtq: lock_key must be 1 to 200 characters, got % characters', length(lock_key)
            USING ERRCODE = 'PT004';
    END IF;
    IF job_key_mode IS NULL OR job_key_mode NOT IN ('keep', 'replace') THEN
        RAISE EXCEPTION 'pgtq: job_key_mode must be ''keep'' or ''replace'', got %',
                coalesce(quote_literal(job_key_mode), 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF backoff_base < interval '0' OR backoff_base > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: backoff_base must be between 0 and 100 years, got %', backoff_base
            USING ERRCODE = 'PT004';
    END IF;
    IF backoff_cap < interval '0' OR backoff_cap > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: backoff_cap must be between 0 and 100 years, got %', backoff_cap
            USING ERRCODE = 'PT004';
    END IF;
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
-- rest by `replace`. The caller has checked every argument.
CREATE FUNCTION pgtq._push_keyed(queue text, task text, args jsonb[], kwargs jsonb[], job_keys text[],
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
        PERFORM pgtq._announce(_push_keyed.queue);
    END IF;
    RETURN QUERY SELECT u.id FROM unnest(pushed_ids) AS u (id);
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
-- touches the key index and pays five comparisons for these options.
-- With a lock_key, at most one job of that key runs at a time, in any
-- queue, and the key's jobs start in their order (priority, then push
-- order): pop keeps the rule (_choose_keyed).
-- SECURITY DEFINER: a producer may insert jobs through it, never directly.
CREATE FUNCTION pgtq.push(queue text,
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
    payload_limit integer;
    payload_size  integer;
    due           timestamptz;
    new_state     pgtq.job_state;
    new_id        bigint;
BEGIN
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
    IF push.args IS NULL OR jsonb_typeof(push.args) <> 'array' THEN
        RAISE EXCEPTION 'pgtq: args must be a JSON array, got %',
                coalesce(jsonb_typeof(push.args), 'NULL')
            USING ERRCODE = 'PT001';
    END IF;
    IF push.kwargs IS NULL OR jsonb_typeof(push.kwargs) <> 'object' THEN
        RAISE EXCEPTION 'pgtq: kwargs must be a JSON object, got %',
                coalesce(jsonb_typeof(push.kwargs), 'NULL')
            USING ERRCODE = 'PT002';
    END IF;

    SELECT s.max_payload_bytes INTO payload_limit FROM pgtq._settings AS s;
    payload_size := pg_column_size(push.args) + pg_column_size(push.kwargs);
    IF payload_size > payload_limit THEN
        RAISE EXCEPTION 'pgtq: payload of task % is % bytes, over the limit of % bytes',
                quote_literal(push.task), payload_size, payload_limit
            USING ERRCODE = 'PT005';
    END IF;

    due := coalesce(push.run_at, push.as_of);
    new_state := CASE WHEN due <= push.as_of THEN 'ready' ELSE 'scheduled' END;

    IF push.job_key IS NOT NULL THEN
        SELECT k.id INTO new_id
        FROM pgtq._push_keyed(push.queue, push.task, ARRAY[push.args], ARRAY[push.kwargs],
                              ARRAY[push.job_key], push.job_key_mode, due, new_state, push.priority,
                              push.max_attempts, push.backoff_base, push.backoff_cap, ARRAY[push.lock_key],
                              push.as_of) AS k (id);
        RETURN new_id;
    END IF;

    INSERT INTO pgtq._job AS j (queue, task, args, kwargs, state, priority, max_attempts, run_at,
                                created_at, backoff_base, backoff_cap, pushed_by, lock_key)
    VALUES (push.queue, push.task, push.args, push.kwargs, new_state, push.priority,
            push.max_attempts, due, push.as_of, push.backoff_base, push.backoff_cap, session_user,
            push.lock_key)
    RETURNING j.id INTO new_id;

    IF new_state = 'ready' THEN
        PERFORM pgtq._announce(push.queue);
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
CREATE FUNCTION pgtq.push_many(queue text,
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

-- Guarantees: raises PT007 naming `queue` unless the transaction runs at
-- READ COMMITTED, the isolation level that the counting of _room and the
-- key checks of _choose_keyed rely on: each of their statements must see
-- what committed before it started (at REPEATABLE READ or SERIALIZABLE a
-- statement sees the database as of the transaction's first one, and
-- would miss what the pops before it claimed).
CREATE FUNCTION pgtq._check_read_committed(queue text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'pgtq: pop of queue % needs READ COMMITTED isolation (it is paused, has a limit '
                        'or jobs with a lock key), the transaction runs at %',
                quote_literal(queue), upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'PT007';
    END IF;
END
$$;

-- Guarantees: true when ready job `id`, of lock key `lock_key`, may start
-- now by the lock-key rule: no job of the key runs with a lease live at
-- as_of, and it is the key's next ready job (highest priority, then first
-- pushed) of all queues. As of the moment it is called (a statement of
-- its own): _choose_keyed calls it holding the key's advisory lock. Two
-- probes of the lock-key indexes.
CREATE FUNCTION pgtq._is_next_of_key(id bigint, lock_key text, as_of timestamptz)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN NOT EXISTS (SELECT 1 FROM pgtq._job AS r
                       WHERE r.lock_key = _is_next_of_key.lock_key AND r.state = 'running'
                         AND r.lease_expires_at > _is_next_of_key.as_of)
           AND (SELECT h.id FROM pgtq._job AS h
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
-- next one (_is_next_of_key), while no job of the key runs. So the jobs of
-- one key start one at a time, in their order (priority, then push order)
-- across all queues; a key that is busy, or whose next job is in another
-- queue, is skipped with all its jobs, and the jobs after them are taken:
-- no head-of-line blocking. Two pops never start two jobs of one key: a
-- pop takes the key's transaction-level advisory lock
-- (pg_try_advisory_xact_lock(hashtextextended(key, 7247)), never waiting:
-- a key another pop holds is skipped) before it checks the key, as of
-- that moment; the lock lasts until the claim commits, after which the
-- running job holds the key. (Two keys sharing the 64-bit hash only skip
-- each other now and then.) Keys that run a job are left out of the walk
-- itself; the walk still steps over the other blocked jobs one by one, so
-- a long backlog of one key ahead of the rest costs each pop about a
-- microsecond per job. Needs READ COMMITTED (PT007).
CREATE FUNCTION pgtq._choose_keyed(queue text, n integer, as_of timestamptz)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    busy      text[];
    met       text[] := '{}';
    chosen    bigint[] := '{}';
    candidate record;
BEGIN
    PERFORM pgtq._check_read_committed(_choose_keyed.queue);
    SELECT coalesce(array_agg(r.lock_key), '{}') INTO busy
    FROM pgtq._job AS r
    WHERE r.state = 'running' AND r.lock_key IS NOT NULL AND r.lease_expires_at > _choose_keyed.as_of;
    FOR candidate IN
        SELECT c.id, c.lock_key
        FROM pgtq._job AS c
        WHERE c.queue = _choose_keyed.queue AND c.state = 'ready'
          AND (c.lock_key IS NULL OR c.lock_key <> ALL (busy))
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

-- ===========================================================================
-- Pause, concurrency and rate limits per queue
--
--   * pgtq.pause(queue), pgtq.resume(queue), pgtq.configure_queue(queue,
--     max_running, rate_limit, rate_period); the view pgtq.queues.
--   * The table _queue holds the paused and limited queues; pop counts
--     under its row lock (_room, _room_of, _rate_slot, _count_starts).
--   * The ends of a running job announce the slot they free
--     (_wake_after_end); tick announces the room that time gives back.
-- ===========================================================================

-- Flow control of a queue: one row per queue that is paused or has a
-- limit, written by pause(), resume() and configure_queue(); a queue
-- without a row has neither, and pop() takes its fast path for it.
--   paused_at    when pause() paused it (NULL: not paused);
--   max_running  at most this many of its jobs run with a live lease;
--   rate_limit   at most this many of its jobs start in any window of
--   rate_period  rate_period (both NULL: no rate limit);
--   rate_slots,  the starts of the rate window: jobs started (rate_starts[i])
--   rate_starts  per bucket of rate_period / 100 (rate_slots[i], _rate_slot);
--                only buckets of the last rate_period are kept.
-- pop() of a paused or limited queue locks its row while it counts and
-- claims (_room): pops of one such queue take turns.
CREATE TABLE pgtq._queue (
    queue        text NOT NULL,
    paused_at    timestamptz,
    max_running  integer,
    rate_limit   integer,
    rate_period  interval,
    rate_slots   bigint[] NOT NULL DEFAULT '{}',
    rate_starts  integer[] NOT NULL DEFAULT '{}',
    updated_at   timestamptz NOT NULL,
    CONSTRAINT queue_pkey PRIMARY KEY (queue),
    CONSTRAINT queue_max_running_ck CHECK (max_running BETWEEN 1 AND 100000),
    CONSTRAINT queue_rate_limit_ck CHECK (rate_limit BETWEEN 1 AND 1000000),
    CONSTRAINT queue_rate_period_ck CHECK (
        (rate_limit IS NULL) = (rate_period IS NULL)
        AND rate_period BETWEEN interval '10 milliseconds' AND interval '1 year'),
    CONSTRAINT queue_rate_window_ck CHECK (cardinality(rate_slots) = cardinality(rate_starts)),
    CONSTRAINT queue_configured_ck CHECK (
        paused_at IS NOT NULL OR max_running IS NOT NULL OR rate_limit IS NOT NULL)
);

-- pg_dump keeps the rows of _queue (extension route only; see pgtq.sql).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pgtq') THEN
        PERFORM pg_catalog.pg_extension_config_dump('pgtq._queue', '');
    END IF;
END
$$;

-- Every known queue: one that is paused or has a limit (pause,
-- configure_queue), and one that has live jobs (scheduled, ready or
-- running). Its pause and its limits (NULL: none), and what counts
-- against them now: `running`, its running jobs whose lease is live (what
-- max_running bounds: a job whose lease ran out no longer counts, even
-- before tick rescues it), and `rate_used`, the jobs started in its rate
-- window (what rate_limit bounds; NULL without a rate limit: see
-- _rate_slot). `ready` and `scheduled` are its backlog. One pass over
-- the live jobs (their partial indexes), as pgtq.metrics() makes.
CREATE VIEW pgtq.queues AS
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
            FROM unnest(f.rate_slots, f.rate_starts) AS w (slot, jobs)
            WHERE w.slot >= floor(extract(epoch FROM now()) * 100 / extract(epoch FROM f.rate_period)) - 100)
       END AS rate_used,
       coalesce(live.ready, 0) AS ready,
       coalesce(live.scheduled, 0) AS scheduled,
       f.updated_at AS configured_at
FROM pgtq._queue AS f
FULL JOIN live ON live.queue = f.queue;
COMMENT ON VIEW pgtq.queues IS
    'Every queue that is paused, has a limit or has live jobs: its pause, max_running, rate limit, what '
    'counts against them now, and its backlog.';

-- Guarantees: the number of the rate-window bucket that `as_of` falls in,
-- for a rate limit over `period`: buckets are period / 100 long and
-- numbered from the epoch, so bucket b covers [b * w, (b + 1) * w) with
-- w = period / 100. The window of a pop at as_of is the buckets from
-- _rate_slot(as_of, period) - 100 to _rate_slot(as_of, period): they
-- cover (as_of - period, as_of] and at most period / 100 more before it,
-- so a start is forgotten between period and 1.01 * period after it
-- happened, never sooner (the view pgtq.queues writes the same formula).
CREATE FUNCTION pgtq._rate_slot(as_of timestamptz, period interval)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT floor(extract(epoch FROM as_of) * 100 / extract(epoch FROM period))::bigint
$$;

-- Guarantees: how many jobs a pop may claim now from the queue whose
-- _queue row is `flow`, at most n and never below 0: none while it is
-- paused; with max_running, the slots left: max_running minus its running
-- jobs whose lease is live at as_of (a job whose lease ran out counts no
-- more, whether tick rescued it yet or not; a job that ended counts no
-- more once its end committed); with rate_limit, the starts left in its
-- rate window: rate_limit minus the jobs started in the window's buckets
-- (_rate_slot). Counting walks job_running_idx from as_of on and looks
-- at each live running job, of every queue: its cost grows with the
-- running jobs of the database. Takes no lock (_room does).
CREATE FUNCTION pgtq._room_of(flow pgtq._queue, n integer, as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
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

-- Guarantees: _room_of for `queue` once every other pop of it has ended:
-- locks the queue's _queue row (FOR UPDATE, waiting for a pop of the queue
-- that holds it) until the caller's transaction ends, so the room it
-- counts stays true until the claim it allows commits. Pops of one paused
-- or limited queue therefore take turns, and each one counts the jobs the
-- pops before it claimed (it reads the row and counts in statements that
-- start after the lock is granted, so after their commit): several pops
-- at once never run more than max_running jobs, nor start more than
-- rate_limit in a window. Needs READ COMMITTED (PT007). Returns n when the
-- queue has no row (nothing to control, or no longer).
CREATE FUNCTION pgtq._room(queue text, n integer, as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    flow pgtq._queue;
BEGIN
    PERFORM pgtq._check_read_committed(_room.queue);
    SELECT f.* INTO flow FROM pgtq._queue AS f WHERE f.queue = _room.queue FOR UPDATE;
    IF NOT FOUND THEN
        RETURN _room.n;
    END IF;
    RETURN pgtq._room_of(flow, _room.n, _room.as_of);
END
$$;

-- Guarantees: records in the rate window of `queue` (when it has a rate
-- limit; otherwise it does nothing) that `jobs` of its jobs started at
-- as_of, in the bucket of as_of (_rate_slot), and drops the buckets that
-- left the window, so the row keeps at most 101 buckets. The caller holds
-- the row's lock (_room), so no start is lost to a concurrent pop.
CREATE FUNCTION pgtq._count_starts(queue text, jobs integer, as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    UPDATE pgtq._queue AS f
    SET (rate_slots, rate_starts) = (
        SELECT coalesce(array_agg(b.slot ORDER BY b.slot), '{}'), coalesce(array_agg(b.jobs ORDER BY b.slot), '{}')
        FROM (SELECT w.slot, sum(w.jobs)::integer AS jobs
              FROM (SELECT u.slot, u.jobs
                    FROM unnest(f.rate_slots, f.rate_starts) AS u (slot, jobs)
                    WHERE u.slot >= pgtq._rate_slot(_count_starts.as_of, f.rate_period) - 100
                    UNION ALL
                    SELECT pgtq._rate_slot(_count_starts.as_of, f.rate_period), _count_starts.jobs) AS w
              GROUP BY w.slot) AS b)
    WHERE f.queue = _count_starts.queue
      AND f.rate_limit IS NOT NULL;
END
$$;

-- Guarantees: after running jobs of `queues`, with the lock keys
-- `lock_keys` (NULLs ignored), ended in the calling transaction, tells the
-- idle workers that may now claim a job (_announce, at commit): each of
-- `queues` that has a max_running and ready jobs (a slot came free), and
-- the queue of the next ready job of each lock key (the key came free).
-- A worker whose pop met a limit or a busy key waits for such a wake-up.
-- For jobs of queues without a limit and without a key it costs one probe
-- of _queue.
CREATE FUNCTION pgtq._wake_after_end(queues text[], lock_keys text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._announce(w.queue)
    FROM (SELECT f.queue
          FROM pgtq._queue AS f
          WHERE f.queue = ANY (_wake_after_end.queues)
            AND f.max_running IS NOT NULL
            AND EXISTS (SELECT 1 FROM pgtq._job AS r WHERE r.queue = f.queue AND r.state = 'ready')
          UNION
          SELECT (SELECT h.queue FROM pgtq._job AS h
                  WHERE h.lock_key = k.key AND h.state = 'ready'
                  ORDER BY h.priority DESC, h.id
                  LIMIT 1)
          FROM unnest(_wake_after_end.lock_keys) AS k (key)
          WHERE k.key IS NOT NULL) AS w
    WHERE w.queue IS NOT NULL;
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
--     rate limit at most the room it has left (_room): such a pop locks
--     the queue's _queue row until its transaction ends, so pops of that
--     queue take turns and never overshoot, and its starts are counted in
--     the rate window (_count_starts);
--   * a job with a lock key starts only when no job of its key runs and it
--     is the key's next; other jobs are taken past it (_choose_keyed).
-- A queue with no pause, no limit and no ready job with a lock key pays
-- two index probes for this and claims as before. Pop may return fewer
-- than n jobs while more are ready (a limit, busy keys, rows other pops
-- hold); whoever waits for more is told by an announcement on channel
-- pgtq when a slot or a key comes free (_wake_after_end) or the rate
-- window moves on (tick).
-- Hot path: the cached generic plan is used (for `LIMIT $n` it still scans
-- job_ready_idx in order, checked with EXPLAIN; forcing custom plans made a
-- single pop twice as slow); the claimed rows are updated by an array of
-- their ids, which the plan reads with one job_pkey probe each (a join with
-- the claimed rows let the generic plan merge-join along job_pkey from its
-- first row: 100,000 entries read to claim 10 jobs of a queue pushed after
-- another's); and the argument checks call the helper that
-- words the error only when a cheap inline test fails. Bad arguments raise
-- PT003 or PT004 and claim nothing; a paused or limited queue, or one with
-- lock keys, needs READ COMMITTED (PT007).
CREATE OR REPLACE FUNCTION pgtq.pop(queue text,
                         worker text DEFAULT NULL,
                         n integer DEFAULT 1,
                         lease interval DEFAULT '5 minutes',
                         as_of timestamptz DEFAULT now())
RETURNS SETOF pgtq.claimed_job
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    controlled boolean;  -- paused or limited: the queue has a _queue row
    room       integer := pop.n;
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

    controlled := EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = pop.queue);
    IF controlled THEN
        room := pgtq._room(pop.queue, pop.n, pop.as_of);
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
            worker = pop.worker
        WHERE j.id = ANY (ARRAY(SELECT claimable.id FROM claimable) || keyed_ids)
        RETURNING j.id, j.queue, j.task, j.args, j.kwargs, j.priority,
                  j.attempt, j.max_attempts, j.lease, j.lease_expires_at
    )
    SELECT claimed.* FROM claimed ORDER BY claimed.priority DESC, claimed.id;

    IF controlled THEN
        GET DIAGNOSTICS started = ROW_COUNT;
        IF started > 0 THEN
            PERFORM pgtq._count_starts(pop.queue, started, pop.as_of);
        END IF;
    END IF;
END
$$;

-- Guarantees: ends the attempt of a running job as a success, if and only
-- if `lease` is the job's current lease; returns whether it did. The job
-- becomes done with `result` stored; if a cancel was requested while it
-- ran it becomes cancelled instead (the result is kept for the record).
-- A stale lease (the job was rescued and handed on), a forged one or an
-- unknown id changes nothing. Calling it twice completes once: the second
-- call finds no lease and returns false. The job's waiters (watch()) are
-- told at commit; a job nobody waits for notifies nobody. Its slot of a
-- max_running queue and its lock key are free once this commits, and the
-- workers that may take them are told (_wake_after_end). A NULL id,
-- lease or as_of is a caller's bug and raises PT004.
CREATE OR REPLACE FUNCTION pgtq.complete(id bigint,
                              lease uuid,
                              result jsonb DEFAULT NULL,
                              as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    ended_id    bigint;
    ended_queue text;
    ended_key   text;
BEGIN
    IF complete.id IS NULL OR complete.lease IS NULL THEN
        PERFORM pgtq._reject_claim('complete', complete.id, complete.lease);
    END IF;
    IF NOT coalesce(isfinite(complete.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', complete.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'done' ELSE 'cancelled' END::pgtq.job_state,
        finished_at = complete.as_of,
        result = complete.result,
        lease = NULL,
        lease_expires_at = NULL
    WHERE j.id = complete.id
      AND j.lease = complete.lease
      AND j.state = 'running'
    RETURNING CASE WHEN j.waiters > 0 THEN pgtq._tell_waiters(j.id) ELSE j.id END, j.queue, j.lock_key
    INTO ended_id, ended_queue, ended_key;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pgtq._wake_after_end(ARRAY[ended_queue], ARRAY[ended_key]);
    RETURN true;
END
$$;

-- Guarantees: completes many jobs in one statement, each exactly as
-- complete() would: the pair (ids[i], leases[i]) ends job ids[i] done with
-- results[i] (NULL results: no result), or cancelled if a cancel was
-- requested, if and only if that lease is the job's current lease and the
-- job is running. Returns the ids it ended; pairs with a stale or forged
-- lease, or an unknown id, are left out and change nothing. Waiters are
-- told, and the slots and lock keys freed announced, as by complete().
-- The arrays must have the same length (at most 10,000); otherwise it
-- raises PT004 and completes nothing.
CREATE OR REPLACE FUNCTION pgtq.complete_many(ids bigint[],
                                   leases uuid[],
                                   results jsonb[] DEFAULT NULL,
                                   as_of timestamptz DEFAULT now())
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    ended_ids    bigint[];
    ended_queues text[];
    ended_keys   text[];
BEGIN
    IF complete_many.ids IS NULL OR complete_many.leases IS NULL
       OR cardinality(complete_many.ids) <> cardinality(complete_many.leases)
       OR cardinality(complete_many.ids) > 10000
       OR (complete_many.results IS NOT NULL
           AND cardinality(complete_many.results) <> cardinality(complete_many.ids)) THEN
        RAISE EXCEPTION 'pgtq: complete_many needs ids and leases (and results, if given) of one length '
                        'of at most 10000, got % ids, % leases and % results',
                coalesce(cardinality(complete_many.ids)::text, 'NULL'),
                coalesce(cardinality(complete_many.leases)::text, 'NULL'),
                coalesce(cardinality(complete_many.results)::text, 'no')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(complete_many.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', complete_many.as_of);
    END IF;
    WITH ended AS (
        UPDATE pgtq._job AS j
        SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'done' ELSE 'cancelled' END::pgtq.job_state,
            finished_at = complete_many.as_of,
            result = claims.result,
            lease = NULL,
            lease_expires_at = NULL
        FROM unnest(complete_many.ids, complete_many.leases, complete_many.results) AS claims (id, lease, result)
        WHERE j.id = claims.id
          AND j.lease = claims.lease
          AND j.state = 'running'
        RETURNING CASE WHEN j.waiters > 0 THEN pgtq._tell_waiters(j.id) ELSE j.id END AS id, j.queue, j.lock_key
    )
    SELECT array_agg(e.id), array_agg(DISTINCT e.queue), array_agg(e.lock_key) FILTER (WHERE e.lock_key IS NOT NULL)
    INTO ended_ids, ended_queues, ended_keys
    FROM ended AS e;
    IF ended_ids IS NOT NULL THEN
        PERFORM pgtq._wake_after_end(ended_queues, ended_keys);
    END IF;
    RETURN QUERY SELECT u.id FROM unnest(ended_ids) AS u (id);
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
-- announces the queue of a job that became ready, and the slot and lock
-- key it freed (_wake_after_end).
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
        PERFORM pgtq._announce(failed.queue);
    END IF;
    PERFORM pgtq._wake_after_end(ARRAY[failed.queue], ARRAY[failed.lock_key]);
    RETURN new_state;
END
$$;

-- Guarantees: ends a running job whose current lease is `lease` at once,
-- with no further attempt whatever attempts remain (pgtq.Abort in Python:
-- the handler knows retrying cannot help): it becomes failed with `error`
-- as its last error, or cancelled if a cancel was requested while it ran,
-- and is kept for inspection (retry() can run it again). Returns the new
-- state, or NULL (changing nothing) when the lease is stale or the job is
-- not running. Waiters are told, the slot and lock key freed announced
-- (_wake_after_end). A NULL id, lease, error or as_of raises PT004.
CREATE OR REPLACE FUNCTION pgtq.abort(id bigint,
                           lease uuid,
                           error text,
                           as_of timestamptz DEFAULT now())
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    new_state   pgtq.job_state;
    waiting     integer;
    ended_queue text;
    ended_key   text;
BEGIN
    IF abort.id IS NULL OR abort.lease IS NULL THEN
        PERFORM pgtq._reject_claim('abort', abort.id, abort.lease);
    END IF;
    IF abort.error IS NULL THEN
        RAISE EXCEPTION 'pgtq: error must not be NULL (say why the job is aborted)'
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(abort.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', abort.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'failed' ELSE 'cancelled' END::pgtq.job_state,
        finished_at = abort.as_of,
        last_error = abort.error,
        lease = NULL,
        lease_expires_at = NULL
    WHERE j.id = abort.id
      AND j.lease = abort.lease
      AND j.state = 'running'
    RETURNING j.state, j.waiters, j.queue, j.lock_key INTO new_state, waiting, ended_queue, ended_key;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF waiting > 0 THEN
        PERFORM pgtq._tell_waiters(abort.id);
    END IF;
    PERFORM pgtq._wake_after_end(ARRAY[ended_queue], ARRAY[ended_key]);
    RETURN new_state::text;
END
$$;

-- Guarantees: hands a running job back without counting the attempt (a
-- worker shutting down gracefully), if `lease` is its current lease: it
-- becomes ready at once with its attempt count restored. If a cancel was
-- requested it ends cancelled instead (at as_of); a keyed job whose key
-- another pending job holds by now ends cancelled, superseded by it
-- (_requeue_keyed). Returns whether it did. Waiters of a job that ended
-- are told; the slot and lock key it held are announced free
-- (_wake_after_end). A NULL id or lease, or a NULL or infinite as_of,
-- raises PT004.
CREATE OR REPLACE FUNCTION pgtq.release(id bigint, lease uuid, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
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
    WHERE j.id = release.id AND j.lease = release.lease AND j.state = 'running'
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
--      one-row table.
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
        RETURNING j.queue
    )
    SELECT count(*), coalesce(array_agg(DISTINCT moved.queue), '{}')
    INTO promoted, promoted_queues
    FROM moved;

    FOR expired IN
        SELECT e.*
        FROM pgtq._job AS e
        WHERE e.state = 'running'
          AND e.lease_expires_at < tick.as_of
          AND (tick.queue IS NULL OR e.queue = tick.queue)
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

    RETURN promoted + rescued + enqueued;
END
$$;

-- Guarantees: the queue-level figures of every queue, one row per metric
-- and label set, the same for a Prometheus exporter, the dashboard and
-- any SQL client:
--   jobs                      (queue, state) live jobs by state: scheduled,
--                             ready and running, now (zero rows included
--                             for a queue with live jobs or recent history)
--   oldest_ready_age_seconds  (queue) how long the oldest ready job has been
--                             due (since its run_at), 0 with none ready
--   recent_completed          (queue, task) jobs done, failed for good, and
--   recent_failed             leases expired, in the history samples taken
--   recent_lease_expiries     in (as_of - period, as_of]
--   workers                   (queue) live workers serving the queue
--   workers_total             () live workers (seen within worker_timeout)
--   history_age_seconds       () since the last history sample (no row
--                             before the first): over 60 means nobody ticks
--   paused                    (queue) 1 while the queue is paused, 0 for a
--                             queue with a limit that is not
--   max_running               (queue) its concurrency limit, if it has one
--   rate_limit,               (queue) its rate limit: at most rate_limit
--   rate_period_seconds       starts in any rate_period, if it has one
-- (a queue without a row of paused is not paused and has no limit).
-- Read-only, with the owner's rights, so the worker and observer roles
-- see these aggregates without reading jobs. Costs one pass over the live
-- jobs (their partial indexes) and over the period's history rows. A
-- period outside 1 minute..31 days or a NULL or infinite as_of raises
-- PT004.
CREATE OR REPLACE FUNCTION pgtq.metrics(period interval DEFAULT '5 minutes',
                             as_of timestamptz DEFAULT now())
RETURNS TABLE (metric text, queue text, task text, state text, value double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    worker_timeout interval;
BEGIN
    IF metrics.period IS NULL OR metrics.period < interval '1 minute' OR metrics.period > interval '31 days' THEN
        RAISE EXCEPTION 'pgtq: period must be an interval between 1 minute and 31 days, got %',
                coalesce(metrics.period::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(metrics.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', metrics.as_of);
    END IF;
    SELECT s.worker_timeout INTO worker_timeout FROM pgtq._settings AS s;
    RETURN QUERY
    WITH live AS (
        SELECT l.queue, l.state, count(*) AS jobs, min(l.run_at) AS oldest_run_at
        FROM (SELECT j.queue, j.state, j.run_at FROM pgtq._job AS j WHERE j.state = 'scheduled'
              UNION ALL
              SELECT j.queue, j.state, j.run_at FROM pgtq._job AS j WHERE j.state = 'ready'
              UNION ALL
              SELECT j.queue, j.state, j.run_at FROM pgtq._job AS j WHERE j.state = 'running') AS l
        GROUP BY l.queue, l.state
    ), recent AS (
        SELECT h.queue, h.task, sum(h.completed) AS completed, sum(h.failed) AS failed,
               sum(h.lease_expired) AS lease_expired
        FROM pgtq._history AS h
        WHERE h.sampled_at > metrics.as_of - metrics.period
          AND h.sampled_at <= metrics.as_of
        GROUP BY h.queue, h.task
    ), queues AS (
        SELECT live.queue FROM live UNION SELECT recent.queue FROM recent
    ), alive AS (
        SELECT w.queues
        FROM pgtq._worker AS w
        WHERE w.last_seen_at >= metrics.as_of - worker_timeout
    )
    SELECT 'jobs', q.queue, NULL::text, s.state::text, coalesce(l.jobs, 0)::double precision
    FROM queues AS q
    CROSS JOIN unnest('{scheduled,ready,running}'::pgtq.job_state[]) AS s (state)
    LEFT JOIN live AS l ON l.queue = q.queue AND l.state = s.state
    UNION ALL
    SELECT 'oldest_ready_age_seconds', q.queue, NULL, NULL,
           coalesce(greatest(extract(epoch FROM metrics.as_of - l.oldest_run_at), 0), 0)::double precision
    FROM queues AS q
    LEFT JOIN live AS l ON l.queue = q.queue AND l.state = 'ready'
    UNION ALL
    SELECT 'recent_completed', r.queue, r.task, NULL, r.completed::double precision FROM recent AS r
    UNION ALL
    SELECT 'recent_failed', r.queue, r.task, NULL, r.failed::double precision FROM recent AS r
    UNION ALL
    SELECT 'recent_lease_expiries', r.queue, r.task, NULL, r.lease_expired::double precision FROM recent AS r
    UNION ALL
    SELECT 'workers', served.queue, NULL, NULL, count(*)::double precision
    FROM alive AS a CROSS JOIN unnest(a.queues) AS served (queue)
    GROUP BY served.queue
    UNION ALL
    SELECT 'workers_total', NULL, NULL, NULL, count(*)::double precision FROM alive
    UNION ALL
    SELECT 'history_age_seconds', NULL, NULL, NULL,
           extract(epoch FROM metrics.as_of - h.last_sampled_at)::double precision
    FROM pgtq._sampler AS h
    WHERE h.last_sampled_at IS NOT NULL
    UNION ALL
    SELECT 'paused', f.queue, NULL, NULL, (f.paused_at IS NOT NULL)::integer::double precision
    FROM pgtq._queue AS f
    UNION ALL
    SELECT 'max_running', f.queue, NULL, NULL, f.max_running::double precision
    FROM pgtq._queue AS f WHERE f.max_running IS NOT NULL
    UNION ALL
    SELECT 'rate_limit', f.queue, NULL, NULL, f.rate_limit::double precision
    FROM pgtq._queue AS f WHERE f.rate_limit IS NOT NULL
    UNION ALL
    SELECT 'rate_period_seconds', f.queue, NULL, NULL, extract(epoch FROM f.rate_period)::double precision
    FROM pgtq._queue AS f WHERE f.rate_limit IS NOT NULL;
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
CREATE FUNCTION pgtq.pause(queue text, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._checked_name('queue', pause.queue);
    IF NOT coalesce(isfinite(pause.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', pause.as_of);
    END IF;
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
CREATE FUNCTION pgtq.resume(queue text, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._checked_name('queue', resume.queue);
    IF NOT coalesce(isfinite(resume.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', resume.as_of);
    END IF;
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
CREATE FUNCTION pgtq.configure_queue(queue text,
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
-- Privileges
--
--   install_roles grants pause, resume and configure_queue to the admin;
--   the observer and the admin read the new view pgtq.queues.
-- ===========================================================================

-- Guarantees: the four roles of pgtq's privilege model exist (created
-- NOLOGIN when missing) and hold, in this database, at least these rights:
--   producer  push, push_many; watch, unwatch, outcomes (of the jobs
--             its login role pushed); version
--   worker    pop, complete, complete_many, fail, abort, heartbeat,
--             heartbeat_many, release, tick, the procedure tick_for,
--             register_worker, unregister_worker; backoff, metrics,
--             version; reads the views queue_stats and workers; schedule
--             and unschedule, reads schedules (a worker registers the
--             periodic tasks of its queues when it starts)
--   admin     every public function and procedure (cancel, retry,
--             retry_failed, purge, prune, delete_job, configure, schedule,
--             unschedule, watch, unwatch, outcomes, pause, resume,
--             configure_queue too) and every view
--   observer  reads every view (jobs, queue_stats, workers, settings,
--             queue_history, schedules, queues, and any view a later
--             version adds); metrics, version; no function that writes: a
--             dashboard connects with it and uses admin only for its actions
-- and USAGE on schema pgtq. No role may touch a table: every write goes
-- through a SECURITY DEFINER function that checks its input. Idempotent;
-- the install script calls it, and the owner of pgtq's objects may call it
-- again at any time (it runs with the caller's rights, and GRANT needs the
-- owner). Roles are cluster-wide, so a role created by the install in one
-- database is reused by the next. A missing role that the caller may not
-- create (no CREATEROLE, common on managed servers) is not an error: a
-- NOTICE names what an administrator must run, after which calling this
-- function again grants its rights. Returns the roles that hold their
-- rights now. Role names are 1 to 63 bytes (PT003 otherwise).
CREATE OR REPLACE FUNCTION pgtq.install_roles(producer text DEFAULT 'pgtq_producer',
                                   worker text DEFAULT 'pgtq_worker',
                                   admin text DEFAULT 'pgtq_admin',
                                   observer text DEFAULT 'pgtq_observer')
RETURNS text[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    role_name text;
    view_name text;
    missing   text[] := '{}';
    granted   text[] := '{}';
    rerun     text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY[install_roles.producer, install_roles.worker, install_roles.admin,
                                     install_roles.observer] LOOP
        IF role_name IS NULL OR octet_length(role_name) NOT BETWEEN 1 AND 63 THEN
            RAISE EXCEPTION 'pgtq: role name must be 1 to 63 bytes, got %', coalesce(quote_literal(role_name), 'NULL')
                USING ERRCODE = 'PT003';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION
                WHEN insufficient_privilege THEN
                    missing := missing || role_name;
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- created meanwhile by an install in another database
            END;
        END IF;
    END LOOP;

    IF install_roles.producer <> ALL (missing) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA pgtq TO %I', install_roles.producer);
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.push, pgtq.push_many, pgtq.version, '
                       'pgtq.watch, pgtq.unwatch, pgtq.outcomes TO %I',
                       install_roles.producer);
        granted := granted || install_roles.producer;
    END IF;
    IF install_roles.worker <> ALL (missing) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA pgtq TO %I', install_roles.worker);
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.pop, pgtq.complete, pgtq.complete_many, pgtq.fail, pgtq.heartbeat, '
                       'pgtq.release, pgtq.tick, pgtq.register_worker, pgtq.unregister_worker, '
                       'pgtq.backoff, pgtq.metrics, pgtq.version, pgtq.abort, pgtq.heartbeat_many TO %I',
                       install_roles.worker);
        EXECUTE format('GRANT SELECT ON pgtq.queue_stats, pgtq.workers TO %I', install_roles.worker);
        EXECUTE format('GRANT EXECUTE ON PROCEDURE pgtq.tick_for TO %I', install_roles.worker);
        -- Periodic (cron) schedules: workers register those of their queues.
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.schedule, pgtq.unschedule TO %I', install_roles.worker);
        EXECUTE format('GRANT SELECT ON pgtq.schedules TO %I', install_roles.worker);
        granted := granted || install_roles.worker;
    END IF;
    IF install_roles.admin <> ALL (missing) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA pgtq TO %I', install_roles.admin);
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.push, pgtq.push_many, pgtq.pop, pgtq.complete, pgtq.complete_many, pgtq.fail, '
                       'pgtq.heartbeat, pgtq.release, pgtq.tick, pgtq.cancel, pgtq.retry, pgtq.retry_failed, '
                       'pgtq.purge, pgtq.prune, pgtq.delete_job, pgtq.configure, pgtq.register_worker, '
                       'pgtq.unregister_worker, pgtq.backoff, pgtq.metrics, pgtq.schedule, pgtq.unschedule, '
                       'pgtq.version, pgtq.abort, pgtq.heartbeat_many, pgtq.watch, pgtq.unwatch, pgtq.outcomes, '
                       'pgtq.pause, pgtq.resume, pgtq.configure_queue TO %I',
                       install_roles.admin);
        EXECUTE format('GRANT EXECUTE ON PROCEDURE pgtq.tick_for TO %I', install_roles.admin);
        granted := granted || install_roles.admin;
    END IF;
    IF install_roles.observer <> ALL (missing) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA pgtq TO %I', install_roles.observer);
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.metrics, pgtq.version TO %I', install_roles.observer);
        granted := granted || install_roles.observer;
    END IF;
    -- The views are the read side: the admin and the observer read them
    -- all, those of later versions included.
    FOR view_name IN
        SELECT c.relname FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'pgtq'::regnamespace AND c.relkind = 'v'
        ORDER BY c.relname
    LOOP
        FOREACH role_name IN ARRAY ARRAY[install_roles.admin, install_roles.observer] LOOP
            IF role_name <> ALL (missing) THEN
                EXECUTE format('GRANT SELECT ON pgtq.%I TO %I', view_name, role_name);
            END IF;
        END LOOP;
    END LOOP;

    IF cardinality(missing) > 0 THEN
        rerun := CASE
            WHEN (install_roles.producer, install_roles.worker, install_roles.admin, install_roles.observer)
                 = ('pgtq_producer', 'pgtq_worker', 'pgtq_admin', 'pgtq_observer')
            THEN 'SELECT pgtq.install_roles();'
            ELSE format('SELECT pgtq.install_roles(%L, %L, %L, %L);',
                        install_roles.producer, install_roles.worker, install_roles.admin, install_roles.observer)
        END;
        RAISE NOTICE 'pgtq: roles % are missing and % may not create roles (no CREATEROLE): pgtq is installed, but until they exist only the owner of schema pgtq can use it',
                array_to_string(missing, ', '), current_user
            USING HINT = format('Ask an administrator to run: %s Then, as the owner of schema pgtq, run: %s',
                                (SELECT string_agg(format('CREATE ROLE %I NOLOGIN;', m), ' ')
                                 FROM unnest(missing) AS m),
                                rerun);
    END IF;
    RETURN granted;
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
