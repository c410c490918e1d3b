-- pgtq 0.12.0 -> 0.13.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_13_0. Every definition here is the one of sql/pgtq.sql at
-- 0.13.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- A push costs the server less (52 to 54 -> 48 to 49 us of CPU per
-- one-job transaction, measured with synchronous_commit off;
-- docs/performance.md):
--   * the common push (no job key, lock key or backoff of its own, good
--     names and payload) passes one test, where it took four and a query,
--     and the insert itself keeps max_payload_bytes (no row over it);
--   * the announcement helpers (_announce, _anyone_waiting) no longer
--     pin search_path with a SET clause: they run only in their pinned
--     callers and qualify all they call, and each SET clause cost two
--     changes of search_path per push.
-- push and schedule check a payload with one helper (_check_payload), so
-- its errors are worded in one place (_job_payload_problem).

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.13.0'::text $$;

-- ===========================================================================
-- One check of a payload, for push and schedule
-- ===========================================================================

-- Guarantees: raises the error push raises for `args` and `kwargs` of
-- `task` (PT001, PT002 or PT005, as _job_payload_problem words it), and
-- returns quietly when push would take them (0.13.0: push's checks of its
-- payload, once written in push itself).
CREATE FUNCTION pgtq._check_payload(task text, args jsonb, kwargs jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    problem record;
BEGIN
    SELECT * INTO problem FROM pgtq._job_payload_problem(_check_payload.task, _check_payload.args,
                                                         _check_payload.kwargs);
    IF problem.code IS NOT NULL THEN
        RAISE EXCEPTION '%', problem.message USING ERRCODE = problem.code;
    END IF;
END
$$;

-- ===========================================================================
-- The announcement runs in its callers' search_path
-- ===========================================================================

-- Guarantees: whether an announcement of `queue` must notify (0.12.0):
-- false only when no worker can be waiting for it. Never waits.
--   * A worker settling its mark holds, or waits for, the queue's push
--     gate exclusively: then true.
--   * Otherwise the caller's transaction holds the gate shared from here
--     until it ends, so a worker that marks the queue after this look
--     settles (waiting_settled) only once this transaction has ended, and
--     pops after that: it sees the jobs this transaction committed.
--   * A waiting worker holds the waiting mark shared: the test takes the
--     mark exclusively with a try and lets go of it in the same expression
--     (no interrupt comes between the two calls, so a cancelled statement
--     never leaves it held). When another announcement tests the mark at
--     the same instant, the try fails too: true, one notification more.
--   * With no mark held, still true while a registered worker does not
--     mark (_worker.marks_waiting: pgtq before 0.12.0, or a worker of
--     another language that waits on LISTEN alone).
-- A mark held by the calling session itself does not count.
-- No SET clause (0.13.0): it runs in its callers' pinned search_path (all
-- of them pin it; nobody else may run it) and qualifies what it calls, so
-- an announcement no longer pays two changes of search_path (3 us of the
-- 50 us a push costs the server).
CREATE OR REPLACE FUNCTION pgtq._anyone_waiting(queue text)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    space integer := pgtq._waiting_space(_anyone_waiting.queue);
BEGIN
    IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(space, 1) THEN
        RETURN true;
    END IF;
    IF NOT (CASE WHEN pg_catalog.pg_try_advisory_lock(space, 0) THEN pg_catalog.pg_advisory_unlock(space, 0)
                 ELSE false END) THEN
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM pgtq._worker AS w WHERE NOT w.marks_waiting);
END
$$;

-- Guarantees: tells idle workers of `queue` that a job became ready. The
-- notification is sent only if the calling transaction commits, and
-- PostgreSQL folds identical notifications of one transaction into one, so
-- a bulk push announces each queue once. The channel is fixed and the queue
-- name travels as the payload: nothing is spliced into an identifier.
-- Only when a worker may be waiting (0.12.0, _anyone_waiting): a worker
-- that waits marks the queue first (mark_waiting), and a transaction that
-- finds no mark holds the queue's push gate until it ends, so the worker
-- pops after it committed. Without a waiting worker nothing is sent, and
-- the commits of pushing transactions no longer take turns.
-- The opt-out (0.6.0): where the caller set pgtq.notify to 'off' (SET, or
-- SET LOCAL for one transaction), it sends nothing: a notification makes
-- commits take turns (PostgreSQL serialises the commits of notifying
-- transactions), which producers of many small transactions may not want.
-- Workers then find those jobs at their next poll, or at once while they
-- are draining the queue. Unset, empty or 'on' notify; any other value
-- raises PT004 naming it, so the transaction writes nothing.
-- No SET clause (0.13.0), as _anyone_waiting.
CREATE OR REPLACE FUNCTION pgtq._announce(queue text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    notify pg_catalog.text := pg_catalog.current_setting('pgtq.notify', true);
BEGIN
    IF notify IS NULL OR notify OPERATOR(pg_catalog.=) '' OR notify OPERATOR(pg_catalog.=) 'on' THEN
        IF pgtq._anyone_waiting(_announce.queue) THEN
            PERFORM pg_catalog.pg_notify('pgtq', _announce.queue);
        END IF;
    ELSIF notify OPERATOR(pg_catalog.<>) 'off' THEN
        RAISE EXCEPTION 'pgtq: the setting pgtq.notify must be on or off, got %', pg_catalog.quote_literal(notify)
            USING ERRCODE = 'PT004';
    END IF;
END
$$;

-- ===========================================================================
-- push: one test for the common push; schedule: the shared payload check
-- ===========================================================================

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
BEGIN
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
    RETURNING j.id, j.state INTO new_id, new_state;
    IF new_id IS NULL THEN
        PERFORM pgtq._check_payload(push.task, push.args, push.kwargs);
        RAISE EXCEPTION 'pgtq: the settings row of pgtq._settings is missing';
    END IF;

    IF new_state = 'ready' THEN
        PERFORM pgtq._announce(push.queue);
    END IF;
    RETURN new_id;
END
$$;

-- Guarantees: creates or changes the periodic schedule `name` (an upsert,
-- in the caller's transaction) and returns it as pgtq.schedules shows it.
-- From its next run on, tick() enqueues one job per occurrence of `cron`
-- read in time zone `timezone`: push(queue, task, args, kwargs, priority,
-- max_attempts) with run_at = the occurrence. Idempotent: the same
-- definition again changes nothing, its next run included (many workers
-- may register their schedules at start). A changed cron or timezone (as
-- text) moves the next run to the first occurrence after as_of (and after
-- the last one enqueued, so none runs twice); other changes keep it. The
-- last writer of a name wins. Everything is checked first, as push checks
-- it: a bad name raises PT003, a bad cron expression (naming its field),
-- timezone, priority, max_attempts or as_of PT004, args, kwargs or a
-- payload over the limit PT001, PT002 or PT005; nothing is written then.
CREATE OR REPLACE FUNCTION pgtq.schedule(name text,
                              cron text,
                              queue text,
                              task text,
                              args jsonb DEFAULT '[]',
                              kwargs jsonb DEFAULT '{}',
                              timezone text DEFAULT 'UTC',
                              priority integer DEFAULT 0,
                              max_attempts integer DEFAULT 25,
                              as_of timestamptz DEFAULT now())
RETURNS pgtq.schedules
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    fields    pgtq._cron_fields;
    first_run timestamptz;
    saved     pgtq.schedules;
BEGIN
    PERFORM pgtq._checked_name('schedule', schedule.name);
    fields := pgtq._cron_parse(schedule.cron);
    PERFORM pgtq._check_push_options(schedule.queue, schedule.task, schedule.priority,
                                     schedule.max_attempts, NULL, schedule.as_of);
    PERFORM pgtq._check_payload(schedule.task, schedule.args, schedule.kwargs);
    PERFORM pgtq._checked_zone(schedule.timezone);
    first_run := pgtq._cron_next(fields, schedule.timezone, schedule.as_of);
    IF first_run IS NULL THEN
        RAISE EXCEPTION 'pgtq: cron expression % does not come within 100 years', quote_literal(schedule.cron)
            USING ERRCODE = 'PT004';
    END IF;

    INSERT INTO pgtq._schedule AS s (name, cron, timezone, queue, task, args, kwargs, priority,
                                     max_attempts, next_run_at, created_at, updated_at)
    VALUES (schedule.name, schedule.cron, schedule.timezone, schedule.queue, schedule.task,
            schedule.args, schedule.kwargs, schedule.priority, schedule.max_attempts, first_run,
            schedule.as_of, schedule.as_of)
    ON CONFLICT ON CONSTRAINT schedule_pkey DO UPDATE
    SET cron = excluded.cron,
        timezone = excluded.timezone,
        queue = excluded.queue,
        task = excluded.task,
        args = excluded.args,
        kwargs = excluded.kwargs,
        priority = excluded.priority,
        max_attempts = excluded.max_attempts,
        next_run_at = CASE WHEN (s.cron, s.timezone) = (excluded.cron, excluded.timezone) THEN s.next_run_at
                           WHEN s.last_run_at >= schedule.as_of
                           THEN pgtq._cron_next(fields, excluded.timezone, s.last_run_at)
                           ELSE excluded.next_run_at END,
        updated_at = excluded.updated_at
    WHERE (s.cron, s.timezone, s.queue, s.task, s.args, s.kwargs, s.priority, s.max_attempts)
          IS DISTINCT FROM (excluded.cron, excluded.timezone, excluded.queue, excluded.task,
                            excluded.args, excluded.kwargs, excluded.priority, excluded.max_attempts);

    SELECT v.* INTO saved FROM pgtq.schedules AS v WHERE v.name = schedule.name;
    RETURN saved;
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
