-- pgtq 0.1.1 -> 0.2.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_2_0. Every definition here is the one of sql/pgtq.sql at
-- 0.2.0, to the letter (a test compares the catalogs). Each feature of
-- 0.2.0 has its own part below, under a banner; the privileges come last.
--
-- Calls that change: push, push_many and release take new parameters
-- before as_of (pass as_of by name); cancel() of a running job now records
-- a cancel request and returns true; a job whose cancel was requested
-- ends cancelled whatever its worker reports.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.2.0'::text $$;

-- ===========================================================================
-- Job keys, cancelling running jobs, retry control, waiting for results
-- ===========================================================================
--
--   * push/push_many: job_key and job_key_mode (keep or replace): at most
--     one pending job per queue and key (unique index job_key_pending_idx);
--     backoff_base and backoff_cap: a retry policy stored on the job and
--     applied by fail() and tick(); pushed_by: the session user, who may
--     read the job's outcome.
--   * cancel() of a running job records a cancel request (notified on
--     pgtq_cancel); heartbeat_many() reports it; whatever ends the attempt
--     then ends the job cancelled.
--   * abort(): fail at once, no further attempt.
--   * watch(), unwatch(), outcomes(): wait for a job's outcome, woken on
--     pgtq_finished only for jobs somebody waits for.
--   * backoff() computes in seconds, so no policy up to 100 years
--     overflows.
-- New columns are NULL (or 0) on existing jobs: no key, default backoff,
-- no cancel request, no waiters, pusher unknown (readable through
-- pgtq.jobs only).

ALTER TABLE pgtq._job
    ADD COLUMN job_key              text,
    ADD COLUMN backoff_base         interval,
    ADD COLUMN backoff_cap          interval,
    ADD COLUMN cancel_requested_at  timestamptz,
    ADD COLUMN waiters              integer NOT NULL DEFAULT 0,
    ADD COLUMN pushed_by            text;

-- push with a job key: at most one pending job per queue and key. Only
-- keyed pending rows are in it, so jobs without a key never touch it.
CREATE UNIQUE INDEX job_key_pending_idx ON pgtq._job (queue, job_key)
    WHERE job_key IS NOT NULL AND state IN ('scheduled', 'ready');

COMMENT ON TYPE pgtq.job_state IS
    'Life cycle of a job: scheduled -> ready -> running -> done | failed, '
    'with running -> scheduled|ready on a retry, scheduled|ready -> cancelled, '
    'and running -> cancelled once a cancel was requested.';

-- What a waiter learns of a job: its state and, once it finished, its
-- outcome (outcomes(), watch()).
CREATE TYPE pgtq.job_outcome AS (
    id           bigint,
    state        pgtq.job_state,
    result       jsonb,
    error        text,
    finished_at  timestamptz
);
COMMENT ON TYPE pgtq.job_outcome IS 'A job''s state and outcome (result or error), as a waiter reads it.';

-- Every job with its history; the lease token is left out on purpose
-- (whoever holds it may complete the job). backoff_base and backoff_cap
-- NULL mean backoff()'s defaults; waiters counts the registrations of
-- watch() (inert once the job finished); pushed_by is the session user
-- that pushed the job, who may read its outcome.
CREATE OR REPLACE VIEW pgtq.jobs AS
SELECT j.id, j.queue, j.task, j.args, j.kwargs, j.state, j.priority,
       j.attempt, j.max_attempts, j.run_at, j.created_at, j.started_at,
       j.finished_at, j.lease_expires_at, j.worker, j.last_error, j.result,
       j.job_key, j.backoff_base, j.backoff_cap, j.cancel_requested_at,
       j.waiters, j.pushed_by
FROM pgtq._job AS j;

-- Per queue and state: how many jobs, how old the oldest one is, and how
-- many of them (running ones) have a cancel request they have not yet
-- acted on.
CREATE OR REPLACE VIEW pgtq.queue_stats AS
SELECT j.queue,
       j.state,
       count(*)::bigint AS jobs,
       min(j.created_at) AS oldest_created_at,
       now() - min(j.created_at) AS oldest_age,
       count(*) FILTER (WHERE j.state = 'running' AND j.cancel_requested_at IS NOT NULL)::bigint
           AS cancel_requested
FROM pgtq._job AS j
GROUP BY j.queue, j.state;
COMMENT ON VIEW pgtq.queue_stats IS
    'Per queue and state: job count, the age of the oldest job, running jobs asked to cancel.';

-- Helpers (_state_after_failure gains cancel_requested: a new signature).
DROP FUNCTION pgtq._state_after_failure(integer, integer, timestamptz, timestamptz);

-- Guarantees: the state a job goes to after a failed attempt, by one rule
-- shared by fail() and the lease rescue in tick(): a cancel was requested
-- -> cancelled (never retried); attempts remain -> scheduled (or ready when
-- the retry is already due); none left -> failed.
CREATE FUNCTION pgtq._state_after_failure(attempt integer, max_attempts integer,
                                          cancel_requested boolean, retry_at timestamptz,
                                          as_of timestamptz)
RETURNS pgtq.job_state
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT CASE
        WHEN cancel_requested THEN 'cancelled'::pgtq.job_state
        WHEN attempt >= max_attempts THEN 'failed'::pgtq.job_state
        WHEN retry_at <= as_of THEN 'ready'::pgtq.job_state
        ELSE 'scheduled'::pgtq.job_state
    END
$$;

-- Guarantees: raises PT004 naming the first invalid job option of a push:
-- job_key (NULL, or 1 to 200 characters), job_key_mode ('keep' or
-- 'replace'), backoff_base and backoff_cap (NULL, or 0 to 100 years).
-- Returns quietly when all are valid. push and push_many call it only
-- when one of these options is not its default, so a push without them
-- pays four comparisons.
CREATE FUNCTION pgtq._check_job_options(job_key text, job_key_mode text,
                                        backoff_base interval, backoff_cap interval)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF length(job_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'pgtq: job_key must be 1 to 200 characters, got % characters', length(job_key)
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

-- Guarantees: wakes the waiters of job `id` (watch()): a notification on
-- channel pgtq_finished with the id as its payload, sent if and only if
-- the calling transaction commits (two for one job in one transaction are
-- folded into one). Returns `id`, so a statement that finishes jobs can
-- call it in its RETURNING list, which PostgreSQL computes once for each
-- row it changed, on the row as written (after waiting for a concurrent
-- update of it, if any). Callers call it only for jobs that finished and
-- have waiters, so a job nobody waits for costs no notification (a
-- notifying commit takes a database-wide lock) and no extra statement.
CREATE FUNCTION pgtq._tell_waiters(id bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('pgtq_finished', _tell_waiters.id::text);
    RETURN _tell_waiters.id;
END
$$;

-- Guarantees: true when the session user may read the outcome of a job
-- pushed by `pushed_by`: it is that role, or a member of it (superusers
-- are members of every role). A job pushed before 0.2.0 (pushed_by NULL)
-- is readable through the view pgtq.jobs only. session_user is the role
-- that logged in (SET ROLE does not change it, a SECURITY DEFINER
-- function does not either).
CREATE FUNCTION pgtq._may_read(pushed_by text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT pushed_by = session_user::text
           OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r
                      WHERE r.rolname = pushed_by AND pg_has_role(session_user, r.oid, 'MEMBER'))
$$;

-- Guarantees: moves running job `id`, which has a job key, back to pending
-- (`state`: scheduled or ready) with the values given and its lease
-- cleared, and returns `state`. If another pending job holds its key (one
-- pushed while it ran, which carries the newer request), it is not
-- retried: it ends cancelled, superseded by that job, with
-- `last_error` saying so, its waiters are told, and it returns
-- 'cancelled'. The unique index decides, inside a subtransaction, so a
-- concurrent push of the key cannot slip in between a check and the move.
-- Jobs without a key never conflict: their callers move them directly.
CREATE FUNCTION pgtq._requeue_keyed(id bigint, state pgtq.job_state, run_at timestamptz, attempt integer,
                                    started_at timestamptz, worker text, last_error text,
                                    as_of timestamptz)
RETURNS pgtq.job_state
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    holder  bigint;
    waiting integer;
BEGIN
    BEGIN
        UPDATE pgtq._job AS j
        SET state = _requeue_keyed.state,
            run_at = _requeue_keyed.run_at,
            attempt = _requeue_keyed.attempt,
            started_at = _requeue_keyed.started_at,
            worker = _requeue_keyed.worker,
            last_error = _requeue_keyed.last_error,
            lease = NULL,
            lease_expires_at = NULL
        WHERE j.id = _requeue_keyed.id;
        RETURN _requeue_keyed.state;
    EXCEPTION WHEN unique_violation THEN
        SELECT p.id INTO holder
        FROM pgtq._job AS j
        JOIN pgtq._job AS p ON p.queue = j.queue AND p.job_key = j.job_key
                           AND p.state IN ('scheduled', 'ready')
        WHERE j.id = _requeue_keyed.id;
    END;
    UPDATE pgtq._job AS j
    SET state = 'cancelled',
        finished_at = _requeue_keyed.as_of,
        last_error = concat_ws(E'\n', _requeue_keyed.last_error,
                               format('not retried: superseded by job %s, pending with the same job_key',
                                      coalesce(holder::text, 'unknown'))),
        lease = NULL,
        lease_expires_at = NULL
    WHERE j.id = _requeue_keyed.id
    RETURNING j.waiters INTO waiting;
    IF waiting > 0 THEN
        PERFORM pgtq._tell_waiters(_requeue_keyed.id);
    END IF;
    RETURN 'cancelled';
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
-- finished (the row is locked, so its waiters count is current) and
-- announces the queue of a job that became ready.
CREATE FUNCTION pgtq._end_failed_attempt(job pgtq._job, error text, retry_at timestamptz,
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
    RETURN new_state;
END
$$;

-- Guarantees: the error recorded when tick rescues a job whose lease ran
-- out: when it expired and which worker held it.
CREATE FUNCTION pgtq._lease_expired_error(lease_expires_at timestamptz, worker text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT format('lease expired at %s (worker %s stopped without completing the job)',
                  lease_expires_at, coalesce(worker, 'unknown'))
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
-- The caller has checked every argument.
CREATE FUNCTION pgtq._push_keyed(queue text, task text, args jsonb[], kwargs jsonb[], job_keys text[],
                                 job_key_mode text, run_at timestamptz, state pgtq.job_state,
                                 priority integer, max_attempts integer,
                                 backoff_base interval, backoff_cap interval, as_of timestamptz)
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
        SELECT e.a, coalesce(e.k, '{}') AS k, e.key, e.position
        FROM unnest(_push_keyed.args, _push_keyed.kwargs, _push_keyed.job_keys)
             WITH ORDINALITY AS e (a, k, key, position)
    ), chosen AS MATERIALIZED (
        SELECT nextval('pgtq._job_id_seq') AS new_id, c.a, c.k, c.key, c.position
        FROM (SELECT el.a, el.k, el.key, el.position,
                     row_number() OVER (PARTITION BY el.key
                                        ORDER BY CASE WHEN replacing THEN -el.position ELSE el.position END)
                         AS rank
              FROM element AS el) AS c
        WHERE c.key IS NULL OR c.rank = 1
        ORDER BY c.position
    ), written AS (
        INSERT INTO pgtq._job AS j (id, queue, task, args, kwargs, state, priority, max_attempts, run_at,
                                    created_at, job_key, backoff_base, backoff_cap, pushed_by)
        SELECT c.new_id, _push_keyed.queue, _push_keyed.task, c.a, c.k, _push_keyed.state,
               _push_keyed.priority, _push_keyed.max_attempts, _push_keyed.run_at, _push_keyed.as_of,
               c.key, _push_keyed.backoff_base, _push_keyed.backoff_cap, session_user
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
CREATE OR REPLACE FUNCTION pgtq.backoff(attempt integer,
                             base interval DEFAULT '2 seconds',
                             cap interval DEFAULT '1 hour')
RETURNS interval
LANGUAGE sql VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT make_interval(secs => least(extract(epoch FROM coalesce(cap, interval '1 hour'))::float8,
                                       extract(epoch FROM coalesce(base, interval '2 seconds'))::float8
                                       * power(2, least(greatest(coalesce(attempt, 1), 1) - 1, 40)))
                                 * (0.8 + 0.2 * random()))
$$;

-- push, push_many and release take new parameters: new signatures, so the
-- old functions go (their grants are restored by install_roles at the end).
DROP FUNCTION pgtq.push(text, text, jsonb, jsonb, timestamptz, integer, integer, timestamptz);
DROP FUNCTION pgtq.push_many(text, text, jsonb[], jsonb[], timestamptz, integer, integer, timestamptz);
DROP FUNCTION pgtq.release(bigint, uuid);

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
-- touches the key index and pays four comparisons for these options.
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
       OR push.backoff_base IS NOT NULL OR push.backoff_cap IS NOT NULL THEN
        PERFORM pgtq._check_job_options(push.job_key, push.job_key_mode, push.backoff_base, push.backoff_cap);
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
                              push.max_attempts, push.backoff_base, push.backoff_cap, push.as_of) AS k (id);
        RETURN new_id;
    END IF;

    INSERT INTO pgtq._job AS j (queue, task, args, kwargs, state, priority, max_attempts, run_at,
                                created_at, backoff_base, backoff_cap, pushed_by)
    VALUES (push.queue, push.task, push.args, push.kwargs, new_state, push.priority,
            push.max_attempts, due, push.as_of, push.backoff_base, push.backoff_cap, session_user)
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
-- args), and both get that job's id. Everything is checked first, every
-- element too (the error names the element's position, counting from 1);
-- on bad input it raises the error push would raise and writes nothing.
-- Ready jobs are announced once.
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
                                        push_many.backoff_cap);
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
                              push_many.backoff_cap, push_many.as_of) AS k (id);
        RETURN;
    END IF;
    RETURN QUERY
    INSERT INTO pgtq._job AS j (queue, task, args, kwargs, state, priority, max_attempts, run_at, created_at,
                                backoff_base, backoff_cap, pushed_by)
    SELECT push_many.queue, push_many.task, e.a, coalesce(e.k, '{}'), new_state,
           push_many.priority, push_many.max_attempts, due, push_many.as_of,
           push_many.backoff_base, push_many.backoff_cap, session_user
    FROM unnest(push_many.args, push_many.kwargs) WITH ORDINALITY AS e (a, k, position)
    ORDER BY e.position
    RETURNING j.id;
    IF new_state = 'ready' AND cardinality(push_many.args) > 0 THEN
        PERFORM pgtq._announce(push_many.queue);
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
-- told at commit; a job nobody waits for notifies nobody. A NULL id,
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
    ended_id bigint;
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
    RETURNING CASE WHEN j.waiters > 0 THEN pgtq._tell_waiters(j.id) ELSE j.id END INTO ended_id;
    RETURN FOUND;
END
$$;

-- Guarantees: completes many jobs in one statement, each exactly as
-- complete() would: the pair (ids[i], leases[i]) ends job ids[i] done with
-- results[i] (NULL results: no result), or cancelled if a cancel was
-- requested, if and only if that lease is the job's current lease and the
-- job is running. Returns the ids it ended; pairs with a stale or forged
-- lease, or an unknown id, are left out and change nothing. Waiters are
-- told as by complete(). The arrays must have the same length (at most
-- 10,000); otherwise it raises PT004 and completes nothing.
CREATE OR REPLACE FUNCTION pgtq.complete_many(ids bigint[],
                                   leases uuid[],
                                   results jsonb[] DEFAULT NULL,
                                   as_of timestamptz DEFAULT now())
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
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
    RETURN QUERY
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
    RETURNING CASE WHEN j.waiters > 0 THEN pgtq._tell_waiters(j.id) ELSE j.id END;
END
$$;

-- Guarantees: records `error` for the failed attempt of a running job whose
-- current lease is `lease`, and returns the state the job moves to:
--   * a cancel was requested while it ran: cancelled, never retried;
--   * attempts remain: it is retried at as_of + retry_in, or without
--     retry_in at as_of + backoff(attempt, backoff_base, backoff_cap) with
--     the job's own policy: scheduled, or ready when that time has come. A
--     retry asked with retry_in (pgtq.Retry in Python) counts as an
--     attempt like any failure, so a handler that always asks to retry
--     still stops after max_attempts. A keyed job whose key another
--     pending job holds by now is not retried: it is cancelled, superseded
--     by that job (_requeue_keyed);
--   * no attempt left: failed, kept for inspection.
-- (_end_failed_attempt applies this rule, the lease rescue in tick too.)
-- Returns NULL (changing nothing) when the lease is stale or the job is not
-- running. Waiters are told when the job finished. A NULL id, lease, error
-- or as_of, or a retry_in outside 0..100 years, raises PT004.
CREATE OR REPLACE FUNCTION pgtq.fail(id bigint,
                          lease uuid,
                          error text,
                          retry_in interval DEFAULT NULL,
                          as_of timestamptz DEFAULT now())
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    failed_job  pgtq._job%ROWTYPE;
BEGIN
    IF fail.id IS NULL OR fail.lease IS NULL THEN
        PERFORM pgtq._reject_claim('fail', fail.id, fail.lease);
    END IF;
    IF fail.error IS NULL THEN
        RAISE EXCEPTION 'pgtq: error must not be NULL (say why the attempt failed)'
            USING ERRCODE = 'PT004';
    END IF;
    IF fail.retry_in < interval '0' OR fail.retry_in > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: retry_in must be between 0 and 100 years, got %', fail.retry_in
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(fail.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', fail.as_of);
    END IF;

    SELECT j.* INTO failed_job
    FROM pgtq._job AS j
    WHERE j.id = fail.id AND j.lease = fail.lease AND j.state = 'running'
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    RETURN pgtq._end_failed_attempt(
        failed_job, fail.error,
        fail.as_of + coalesce(fail.retry_in,
                              pgtq.backoff(failed_job.attempt, failed_job.backoff_base, failed_job.backoff_cap)),
        fail.as_of)::text;
END
$$;

-- Guarantees: ends a running job whose current lease is `lease` at once,
-- with no further attempt whatever attempts remain (pgtq.Abort in Python:
-- the handler knows retrying cannot help): it becomes failed with `error`
-- as its last error, or cancelled if a cancel was requested while it ran,
-- and is kept for inspection (retry() can run it again). Returns the new
-- state, or NULL (changing nothing) when the lease is stale or the job is
-- not running. Waiters are told. A NULL id, lease, error or as_of raises
-- PT004.
CREATE FUNCTION pgtq.abort(id bigint,
                           lease uuid,
                           error text,
                           as_of timestamptz DEFAULT now())
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    new_state pgtq.job_state;
    waiting   integer;
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
    RETURNING j.state, j.waiters INTO new_state, waiting;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF waiting > 0 THEN
        PERFORM pgtq._tell_waiters(abort.id);
    END IF;
    RETURN new_state::text;
END
$$;

-- Guarantees: heartbeat() for a whole batch in one statement, and how a
-- worker learns of cancel requests at no extra cost. For each pair
-- (ids[i], leases[i]) it extends that job's lease to as_of + extend_by
-- (never shortening it) if the lease is still the job's current one, and
-- returns one row per pair, in the order given:
--   held              the lease is current: the worker still holds the job;
--   cancel_requested  cancel() was called on the job: stop its handler;
--                     whatever the worker reports next ends it cancelled.
-- A job asked to cancel still gets its lease extended, so tick does not
-- rescue it while its handler stops. A worker that LISTENs on pgtq_cancel
-- learns sooner. The arrays must have the same length (at most 10,000)
-- and extend_by lie in (0, 100 years]; otherwise, or with a NULL or
-- infinite as_of, it raises PT004 and extends nothing.
CREATE FUNCTION pgtq.heartbeat_many(ids bigint[],
                                    leases uuid[],
                                    extend_by interval DEFAULT '5 minutes',
                                    as_of timestamptz DEFAULT now())
RETURNS TABLE (id bigint, held boolean, cancel_requested boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
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
          AND j.lease = claim.lease
          AND j.state = 'running'
        RETURNING j.id, j.lease, j.cancel_requested_at IS NOT NULL AS asked
    )
    SELECT claim.id, beaten.id IS NOT NULL, coalesce(beaten.asked, false)
    FROM claim
    LEFT JOIN beaten ON beaten.id = claim.id AND beaten.lease = claim.lease
    ORDER BY claim.position;
END
$$;

-- Guarantees: hands a running job back without counting the attempt (a
-- worker shutting down gracefully), if `lease` is its current lease: it
-- becomes ready at once with its attempt count restored. If a cancel was
-- requested it ends cancelled instead (at as_of); a keyed job whose key
-- another pending job holds by now ends cancelled, superseded by it
-- (_requeue_keyed). Returns whether it did. Waiters of a job that ended
-- are told. A NULL id or lease, or a NULL or infinite as_of, raises PT004.
CREATE FUNCTION pgtq.release(id bigint, lease uuid, as_of timestamptz DEFAULT now())
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
--      keyed job may meet its key taken (_requeue_keyed).
-- Returns how many jobs it moved. Rows are taken with FOR UPDATE SKIP
-- LOCKED and their state is rechecked, so any number of sessions may tick
-- at once (schedulers, workers, pg_cron): no job is moved twice. Waiters of
-- the jobs that finished are told; queues that got ready jobs are
-- announced. A bad queue name raises PT003, a NULL or infinite as_of PT004.
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
    expired         pgtq._job%ROWTYPE;
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
    END LOOP;

    -- Each queue that got ready jobs is announced once.
    PERFORM pgtq._announce(q.queue) FROM unnest(promoted_queues) AS q (queue);

    -- Forget workers that stopped without saying goodbye.
    SELECT s.worker_timeout INTO worker_timeout FROM pgtq._settings AS s;
    DELETE FROM pgtq._worker AS w WHERE w.last_seen_at < tick.as_of - worker_timeout;

    RETURN promoted + rescued;
END
$$;

-- Guarantees: cancels a job, and returns true:
--   * a job that has not started (scheduled or ready) is cancelled at once
--     (its waiters are told);
--   * a running job gets a cancel request (cancel_requested_at: the first
--     request's time; asking again changes nothing) and its worker is told
--     on channel pgtq_cancel, the job id as payload, at commit, and by
--     heartbeat_many at the latest. From then on the job is never retried:
--     whatever ends its attempt (complete, complete_many, fail, abort,
--     release, or the lease rescue in tick) ends it cancelled, keeping the
--     result or error that came with it for the record.
-- Returns false, changing nothing, for a finished job or an unknown id.
-- Only a cancel request notifies pgtq_cancel, so workers that listen pay
-- nothing otherwise. A NULL id or a NULL or infinite as_of raises PT004.
CREATE OR REPLACE FUNCTION pgtq.cancel(id bigint, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    new_state pgtq.job_state;
    waiting   integer;
BEGIN
    IF cancel.id IS NULL THEN
        RAISE EXCEPTION 'pgtq: id must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(cancel.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', cancel.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET state = CASE WHEN j.state = 'running' THEN j.state ELSE 'cancelled' END,
        finished_at = CASE WHEN j.state = 'running' THEN NULL ELSE cancel.as_of END,
        cancel_requested_at = CASE WHEN j.state = 'running'
                                   THEN coalesce(j.cancel_requested_at, cancel.as_of) END
    WHERE j.id = cancel.id
      AND j.state IN ('scheduled', 'ready', 'running')
    RETURNING j.state, j.waiters INTO new_state, waiting;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF new_state = 'running' THEN
        PERFORM pg_notify('pgtq_cancel', cancel.id::text);
    ELSIF waiting > 0 THEN
        PERFORM pgtq._tell_waiters(cancel.id);
    END IF;
    RETURN true;
END
$$;

-- Guarantees: gives a failed or cancelled job a fresh start: ready at once,
-- attempt count reset to 0, cancel request and waiters cleared (the
-- earlier waiters were told its outcome), error and result kept for the
-- record until the next attempt. Returns true if it did, false for any
-- other state or an unknown id. A keyed job whose key another pending job
-- holds is not retried: that raises PT006 naming the job holding the key
-- (retry that one's work through it). A NULL id or a NULL or infinite
-- as_of raises PT004.
CREATE OR REPLACE FUNCTION pgtq.retry(id bigint, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    retried_queue text;
    holder        record;
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
        RETURNING j.queue INTO retried_queue;
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
    PERFORM pgtq._announce(retried_queue);
    RETURN true;
END
$$;

-- Guarantees: the state and outcome of each job among `ids` that the
-- session user may read (_may_read: it pushed the job, or is a member of
-- the role that did), in no particular order: result for a done job (kept
-- too for one cancelled after it completed), error the last error (for a
-- failed or cancelled job: why). Unknown ids and jobs of other users are
-- left out alike, so a producer learns nothing of other users' jobs.
-- Takes no lock. NULL or more than 10,000 ids raise PT004.
CREATE FUNCTION pgtq.outcomes(ids bigint[])
RETURNS SETOF pgtq.job_outcome
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF outcomes.ids IS NULL OR cardinality(outcomes.ids) > 10000 THEN
        RAISE EXCEPTION 'pgtq: outcomes needs an array of at most 10000 ids, got %',
                coalesce(cardinality(outcomes.ids)::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    RETURN QUERY
    SELECT j.id, j.state, j.result, j.last_error, j.finished_at
    FROM pgtq._job AS j
    WHERE j.id = ANY (outcomes.ids)
      AND pgtq._may_read(j.pushed_by);
END
$$;

-- Guarantees: registers the session as a waiter of job `id` if the job is
-- unfinished and the session user may read it (as outcomes()), and
-- returns the job's state and outcome (no row for an unknown or unreadable
-- id). The protocol, free of lost wake-ups: LISTEN pgtq_finished (in its
-- own transaction, or autocommit), then call watch, and let it commit. If
-- watch returned a finished job, that is the answer. Otherwise a
-- notification on pgtq_finished with the job id as payload comes when the
-- job finishes (done, failed or cancelled); read the outcome then with
-- outcomes(). Nothing is lost in between: watch increments the job row's
-- `waiters` under the row lock, and every statement that finishes a job
-- updates that row and notifies if its waiters > 0. If the finishing
-- update came first, watch waits for it to commit, finds the job finished
-- and returns it; if watch came first, the finishing update waits for
-- watch to commit and re-reads the row (READ COMMITTED takes the newest
-- version of a row it waited for, whatever its snapshot), sees the waiter
-- and notifies at its commit, after the LISTEN. Jobs nobody waits for
-- never notify (a notifying commit takes a database-wide lock).
-- Registrations are a count on the job row, so they cannot pile up:
-- unwatch() takes one back; one of a waiter that went away costs at most
-- one unheard notification; retry() clears them. One job per call: the
-- registration holds that row's lock until commit, and holding several
-- could deadlock with a worker finishing them in another order, so wait
-- for many jobs with one watch per job, each in its own transaction
-- (autocommit, pipelined). Registering on a ready job announces its queue
-- again (a pop that met the row locked skipped it). A NULL id raises PT004.
CREATE FUNCTION pgtq.watch(id bigint)
RETURNS SETOF pgtq.job_outcome
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    ready_queue text;
BEGIN
    IF watch.id IS NULL THEN
        RAISE EXCEPTION 'pgtq: id must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    UPDATE pgtq._job AS j
    SET waiters = j.waiters + 1
    WHERE j.id = watch.id
      AND j.state IN ('scheduled', 'ready', 'running')
      AND pgtq._may_read(j.pushed_by)
    RETURNING CASE WHEN j.state = 'ready' THEN j.queue END INTO ready_queue;
    IF ready_queue IS NOT NULL THEN
        PERFORM pgtq._announce(ready_queue);
    END IF;
    RETURN QUERY SELECT * FROM pgtq.outcomes(ARRAY[watch.id]);
END
$$;

-- Guarantees: takes back one registration of the session's watch() on job
-- `id` (a waiter that gives up, e.g. at its timeout), so a job nobody
-- waits for any more does not notify. Returns whether there was one to
-- take back: false for a finished job (its registrations no longer
-- matter), an unknown or unreadable id, or a job without waiters. A NULL
-- id raises PT004.
CREATE FUNCTION pgtq.unwatch(id bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF unwatch.id IS NULL THEN
        RAISE EXCEPTION 'pgtq: id must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    UPDATE pgtq._job AS j
    SET waiters = j.waiters - 1
    WHERE j.id = unwatch.id
      AND j.state IN ('scheduled', 'ready', 'running')
      AND j.waiters > 0
      AND pgtq._may_read(j.pushed_by);
    RETURN FOUND;
END
$$;

-- ===========================================================================
-- Privileges: install_roles grants the new functions (producer: watch,
-- unwatch, outcomes; worker: abort, heartbeat_many; admin: all five).
-- Then as at the end of a fresh install: new functions are EXECUTE-able
-- by PUBLIC until revoked, and the roles get their rights again (also on
-- the recreated push, push_many and release).
-- ===========================================================================

-- Guarantees: the three roles of pgtq's privilege model exist (created
-- NOLOGIN when missing) and hold, in this database, at least these rights:
--   producer  push, push_many; watch, unwatch, outcomes (of the jobs
--             its login role pushed); version
--   worker    pop, complete, complete_many, fail, abort, heartbeat,
--             heartbeat_many, release, tick, register_worker,
--             unregister_worker; backoff, version; reads the views
--             queue_stats and workers
--   admin     every public function (cancel, retry, prune, configure
--             too) and every view (jobs and settings too)
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
                                   admin text DEFAULT 'pgtq_admin')
RETURNS text[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    role_name text;
    missing   text[] := '{}';
    granted   text[] := '{}';
    rerun     text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY[install_roles.producer, install_roles.worker, install_roles.admin] LOOP
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
                       'pgtq.backoff, pgtq.version, pgtq.abort, pgtq.heartbeat_many TO %I', install_roles.worker);
        EXECUTE format('GRANT SELECT ON pgtq.queue_stats, pgtq.workers TO %I', install_roles.worker);
        granted := granted || install_roles.worker;
    END IF;
    IF install_roles.admin <> ALL (missing) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA pgtq TO %I', install_roles.admin);
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.push, pgtq.push_many, pgtq.pop, pgtq.complete, pgtq.complete_many, pgtq.fail, '
                       'pgtq.heartbeat, pgtq.release, pgtq.tick, pgtq.cancel, pgtq.retry, pgtq.prune, '
                       'pgtq.configure, pgtq.register_worker, pgtq.unregister_worker, pgtq.backoff, '
                       'pgtq.version, pgtq.abort, pgtq.heartbeat_many, pgtq.watch, pgtq.unwatch, pgtq.outcomes TO %I',
                       install_roles.admin);
        EXECUTE format('GRANT SELECT ON pgtq.jobs, pgtq.queue_stats, pgtq.workers, pgtq.settings TO %I',
                       install_roles.admin);
        granted := granted || install_roles.admin;
    END IF;

    IF cardinality(missing) > 0 THEN
        rerun := CASE
            WHEN (install_roles.producer, install_roles.worker, install_roles.admin)
                 = ('pgtq_producer', 'pgtq_worker', 'pgtq_admin')
            THEN 'SELECT pgtq.install_roles();'
            ELSE format('SELECT pgtq.install_roles(%L, %L, %L);',
                        install_roles.producer, install_roles.worker, install_roles.admin)
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

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
