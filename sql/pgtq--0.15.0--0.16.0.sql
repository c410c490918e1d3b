-- pgtq 0.15.0 -> 0.16.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_16_0. Every definition here is the one of sql/pgtq.sql at
-- 0.16.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- Hand-off: a push hands a job due at once straight to an idle worker that
-- offers to take it (offer_handoffs, open_handoff, close_handoff), claimed
-- for that worker in the pushing transaction, and the worker hears of the
-- claim at commit on a channel only it knows: no claim of its own between
-- the push and the start. push asks _must_announce (taken out of
-- _announce) once, for the offer and for the notification.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.16.0'::text $$;

-- ===========================================================================
-- Hand-off offers
-- ===========================================================================

-- Sessions that offer to take pushed jobs straight from push (0.16.0:
-- offer_handoffs), one row each. The channel is drawn at random and known
-- only here and to its session, since a handed job's lease and payload
-- travel on it. The offer is open while its session holds the advisory
-- lock (space, 0) (open_handoff); a push that hands it a job holds
-- (space, 1) until it ends. A row outlives its session until the next
-- offer_handoffs of any session removes it: a push skips it, as no one
-- holds its lock. Not dumped: it describes live sessions only.
CREATE TABLE pgtq._handoff (
    pid      integer NOT NULL,
    channel  text NOT NULL,
    space    integer NOT NULL,
    worker   text NOT NULL,
    queues   text[] NOT NULL,
    lease    interval NOT NULL,
    CONSTRAINT handoff_pkey PRIMARY KEY (pid),
    CONSTRAINT handoff_channel_key UNIQUE (channel)
);

-- Guarantees: whether an announcement of `queue` must notify (0.16.0,
-- taken out of _announce, whose rules it keeps): false where the caller
-- set pgtq.notify to 'off', or when no worker can be waiting for the
-- queue (_anyone_waiting, which holds the queue's push gate from here to
-- the end of the caller's transaction when it finds no mark); true
-- otherwise. Any pgtq.notify other than unset, empty, 'on' or 'off'
-- raises PT004 naming it. push asks once and uses the answer twice: to
-- look for a hand-off offer, then to notify.
-- No SET clause, as _anyone_waiting.
CREATE OR REPLACE FUNCTION pgtq._must_announce(queue text)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    notify pg_catalog.text := pg_catalog.current_setting('pgtq.notify', true);
BEGIN
    IF notify IS NULL OR notify OPERATOR(pg_catalog.=) '' OR notify OPERATOR(pg_catalog.=) 'on' THEN
        RETURN pgtq._anyone_waiting(_must_announce.queue);
    ELSIF notify OPERATOR(pg_catalog.<>) 'off' THEN
        RAISE EXCEPTION 'pgtq: the setting pgtq.notify must be on or off, got %', pg_catalog.quote_literal(notify)
            USING ERRCODE = 'PT004';
    END IF;
    RETURN false;
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
-- No SET clause (0.13.0), as _anyone_waiting. The rules are
-- _must_announce's (0.16.0).
CREATE OR REPLACE FUNCTION pgtq._announce(queue text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF pgtq._must_announce(_announce.queue) THEN
        PERFORM pg_catalog.pg_notify('pgtq', _announce.queue);
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

-- Guarantees: makes the calling session a hand-off offer of `worker` for
-- `queues` (0.16.0) and returns its channel: the session LISTENs to it
-- from the commit on, and a push then hands a job straight to it while its
-- offer is open (open_handoff; _hand_off says when). Each notification on
-- the channel is one job claimed for `worker` with a lease of `lease`,
-- as JSON with pop's columns (id, queue, task, args, kwargs, priority,
-- attempt, max_attempts, lease, lease_expires_at): run it, or release it.
-- The channel is drawn at random, LISTENed here and told to this session
-- alone: whoever could hear it could read the jobs and their leases.
-- Called again by the same session, it keeps the channel and takes the
-- new worker, queues and lease. Removes the offers of sessions that ended.
-- Bad names raise PT003, a NULL list or a lease that pop would refuse
-- PT004; then nothing changes.
CREATE OR REPLACE FUNCTION pgtq.offer_handoffs(worker text, queues text[], lease interval DEFAULT '30 seconds')
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    names   text[] := ARRAY(SELECT pgtq._checked_queues(offer_handoffs.queues) ORDER BY 1);
    channel text;
BEGIN
    PERFORM pgtq._checked_name('worker', offer_handoffs.worker);
    IF offer_handoffs.lease IS NULL OR offer_handoffs.lease <= interval '0'
       OR offer_handoffs.lease > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: lease must be a positive interval of at most 100 years, got %',
                coalesce(offer_handoffs.lease::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    DELETE FROM pgtq._handoff AS h
    WHERE h.pid <> pg_backend_pid()
      AND NOT EXISTS (SELECT 1 FROM pg_stat_activity AS a WHERE a.pid = h.pid);
    UPDATE pgtq._handoff AS h
    SET worker = offer_handoffs.worker, queues = names, lease = offer_handoffs.lease
    WHERE h.pid = pg_backend_pid()
    RETURNING h.channel INTO channel;
    IF channel IS NULL THEN
        channel := 'pgtq_handoff_' || replace(gen_random_uuid()::text, '-', '');
        INSERT INTO pgtq._handoff (pid, channel, space, worker, queues, lease)
        VALUES (pg_backend_pid(), channel, hashtext('pgtq handoff ' || channel), offer_handoffs.worker,
                names, offer_handoffs.lease);
    END IF;
    EXECUTE format('LISTEN %I', channel);
    RETURN channel;
END
$$;

-- Guarantees: true when the calling session holds its hand-off offer's
-- lock (space, 0): its offer is open (0.16.0). Reads pg_locks, so it is
-- for open_handoff and close_handoff, never for a push.
CREATE OR REPLACE FUNCTION pgtq._offer_open(space integer)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_locks AS l
                   WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted
                     AND l.classid = space::oid AND l.objid = 0 AND l.objsubid = 2
                     AND l.mode = 'ExclusiveLock')
$$;

-- Guarantees: opens the calling session's hand-off offer (0.16.0): from
-- its return until close_handoff or the session's end, a push of one of
-- its queues may hand it a job (_hand_off). Returns false, changing
-- nothing, when the session made no offer (offer_handoffs). Opening an
-- open offer changes nothing. Waits only for a push testing the offer at
-- this very instant (microseconds).
CREATE OR REPLACE FUNCTION pgtq.open_handoff()
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    offer_space integer;
BEGIN
    SELECT h.space INTO offer_space FROM pgtq._handoff AS h WHERE h.pid = pg_backend_pid();
    IF offer_space IS NULL THEN
        RETURN false;
    END IF;
    IF NOT pgtq._offer_open(offer_space) THEN
        PERFORM pg_advisory_lock(offer_space, 0);
    END IF;
    RETURN true;
END
$$;

-- Guarantees: closes the calling session's hand-off offer (0.16.0): no
-- push that starts to look after its return hands it a job. Returns
-- whether it was open. With `wait`, it also waits until no transaction
-- that handed the session a job is still open, so every job handed to it
-- has been notified to it by then (or rolled back): a worker that stops
-- reads them after this call and hands them back. Waiting is bounded by
-- the caller's lock_timeout. Closing a closed offer changes nothing.
CREATE OR REPLACE FUNCTION pgtq.close_handoff(wait boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    offer_space integer;
    was_open    boolean;
BEGIN
    SELECT h.space INTO offer_space FROM pgtq._handoff AS h WHERE h.pid = pg_backend_pid();
    IF offer_space IS NULL THEN
        RETURN false;
    END IF;
    was_open := pgtq._offer_open(offer_space);
    IF was_open THEN
        PERFORM pg_advisory_unlock(offer_space, 0);
    END IF;
    IF close_handoff.wait THEN
        PERFORM pg_advisory_lock(offer_space, 1);
        PERFORM pg_advisory_unlock(offer_space, 1);
    END IF;
    RETURN was_open;
END
$$;

-- Guarantees: the four roles of pgtq's privilege model exist (created
-- NOLOGIN when missing) and hold, in this database, at least these rights:
--   producer  push, push_many; watch, unwatch, outcomes (of the jobs
--             its login role pushed); version
--   worker    pop, complete, complete_many, complete_many_and_pop, fail,
--             abort, heartbeat, heartbeat_many, release, tick, the procedure tick_for,
--             register_worker, unregister_worker; mark_waiting,
--             waiting_settled, clear_waiting (0.12.0); backoff, metrics,
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
                       'pgtq.complete_many_and_pop, pgtq.release, pgtq.tick, pgtq.register_worker, pgtq.unregister_worker, '
                       'pgtq.backoff, pgtq.metrics, pgtq.version, pgtq.abort, pgtq.heartbeat_many, '
                       'pgtq.mark_waiting, pgtq.waiting_settled, pgtq.clear_waiting, pgtq.health, '
                       'pgtq.offer_handoffs, pgtq.open_handoff, pgtq.close_handoff TO %I',
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
                       'pgtq.pause, pgtq.resume, pgtq.configure_queue, pgtq.complete_many_and_pop, '
                       'pgtq.mark_waiting, pgtq.waiting_settled, pgtq.clear_waiting, pgtq.health, '
                       'pgtq.offer_handoffs, pgtq.open_handoff, pgtq.close_handoff TO %I',
                       install_roles.admin);
        EXECUTE format('GRANT EXECUTE ON PROCEDURE pgtq.tick_for TO %I', install_roles.admin);
        granted := granted || install_roles.admin;
    END IF;
    IF install_roles.observer <> ALL (missing) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA pgtq TO %I', install_roles.observer);
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.metrics, pgtq.health, pgtq.version TO %I', install_roles.observer);
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
