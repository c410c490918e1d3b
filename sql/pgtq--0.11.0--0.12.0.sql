-- pgtq 0.11.0 -> 0.12.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_12_0. Every definition here is the one of sql/pgtq.sql at
-- 0.12.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- A push notifies only when a worker may be waiting for its queue. Up to
-- 0.11.0 every push (and every other announcement: tick, release, retry,
-- the end of a limited job) notified channel pgtq, and PostgreSQL makes
-- the commits of notifying transactions take turns, even when no worker
-- listens or every worker is busy. Now a worker that is about to wait for
-- a queue marks it first (mark_waiting: a session-level advisory lock on
-- its listening connection), and waits for the pushes that found no mark
-- to end (waiting_settled) before it pops once more; an announcement
-- notifies only when it finds a mark (_anyone_waiting). A worker busy
-- with a queue clears its mark (clear_waiting). Workers of earlier
-- versions do not mark: while one is registered (register_worker without
-- marks_waiting, as they call it), every announcement notifies as before.
--
-- Also: the announcement after a job ends (_wake_after_end) returns after
-- one probe of _queue for a queue without a limit and a job without a
-- lock key, rather than running its whole look (20 us of a one-job
-- complete).

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.12.0'::text $$;

-- ===========================================================================
-- Workers say whether they mark the queues they wait for
-- ===========================================================================

ALTER TABLE pgtq._worker ADD COLUMN marks_waiting boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN pgtq._worker.marks_waiting IS
    'Whether the worker marks the queues it waits for (mark_waiting, 0.12.0). While a worker that does not is registered, every push notifies.';

CREATE OR REPLACE VIEW pgtq.workers AS
SELECT w.id, w.host, w.pid, w.queues, w.started_at, w.last_seen_at, w.marks_waiting
FROM pgtq._worker AS w;
COMMENT ON VIEW pgtq.workers IS
    'Live workers: who runs where, since when, last seen when, whether it marks the queues it waits for.';

DROP FUNCTION pgtq.register_worker(text, text, integer, text[], timestamptz);

-- Guarantees: records a worker as alive (inserting or refreshing its row)
-- with the queues it serves. Idempotent: calling it again only moves
-- last_seen_at forward. tick() forgets workers not seen for
-- _settings.worker_timeout. A NULL host, pid or queues is stored as '',
-- 0 or no queues; a bad worker name raises PT003, a NULL or infinite
-- as_of PT004. marks_waiting (0.12.0) says that the worker marks the
-- queues it waits for (mark_waiting); while a registered worker does not
-- (false, the default, as every worker before 0.12.0 registers), every
-- announcement notifies, as it did before 0.12.0. NULL counts as false.
CREATE FUNCTION pgtq.register_worker(worker text,
                                     host text,
                                     pid integer,
                                     queues text[],
                                     as_of timestamptz DEFAULT now(),
                                     marks_waiting boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._checked_name('worker', register_worker.worker);
    IF NOT coalesce(isfinite(register_worker.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', register_worker.as_of);
    END IF;
    INSERT INTO pgtq._worker AS w (id, host, pid, queues, started_at, last_seen_at, marks_waiting)
    VALUES (register_worker.worker, coalesce(register_worker.host, ''),
            coalesce(register_worker.pid, 0), coalesce(register_worker.queues, '{}'),
            register_worker.as_of, register_worker.as_of, coalesce(register_worker.marks_waiting, false))
    ON CONFLICT ON CONSTRAINT worker_pkey DO UPDATE
    SET last_seen_at = greatest(w.last_seen_at, excluded.last_seen_at),
        queues = excluded.queues,
        marks_waiting = excluded.marks_waiting;
END
$$;

-- ===========================================================================
-- Waiting marks, and announcements that look for them
-- ===========================================================================

-- Guarantees: the first key of the two advisory locks of `queue`'s
-- waiting workers (0.12.0), the same number in every session: second key
-- 0 is the waiting mark (held shared, at session level, by each worker
-- waiting for the queue's jobs: mark_waiting), second key 1 the push gate
-- (held shared by each transaction that found no mark, until it ends;
-- taken exclusively, with a try, by a worker settling its mark:
-- waiting_settled). Two queues sharing the hash only make a push notify
-- for the other's waiting workers, or a worker settle a little later.
-- Every announcement computes it, so PostgreSQL inlines it into its
-- (pinned) caller, as _is_plain_name: no SET clause, every name qualified.
CREATE FUNCTION pgtq._waiting_space(queue text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.hashtext('pgtq waiting for ' OPERATOR(pg_catalog.||) queue)
$$;

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
CREATE FUNCTION pgtq._anyone_waiting(queue text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    space integer := pgtq._waiting_space(_anyone_waiting.queue);
BEGIN
    IF NOT pg_try_advisory_xact_lock_shared(space, 1) THEN
        RETURN true;
    END IF;
    IF NOT (CASE WHEN pg_try_advisory_lock(space, 0) THEN pg_advisory_unlock(space, 0) ELSE false END) THEN
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM pgtq._worker AS w WHERE NOT w.marks_waiting);
END
$$;

-- Guarantees: the distinct queue names of `queues` (0.12.0), each checked
-- as _checked_name checks it (PT003 naming it); a NULL list raises PT004.
CREATE FUNCTION pgtq._checked_queues(queues text[])
RETURNS SETOF text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF queues IS NULL THEN
        RAISE EXCEPTION 'pgtq: queues must be a list of queue names, got NULL'
            USING ERRCODE = 'PT004';
    END IF;
    RETURN QUERY SELECT DISTINCT pgtq._checked_name('queue', q) FROM unnest(queues) AS q;
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
CREATE OR REPLACE FUNCTION pgtq._announce(queue text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    notify text := current_setting('pgtq.notify', true);
BEGIN
    IF notify IS NULL OR notify IN ('', 'on') THEN
        IF pgtq._anyone_waiting(_announce.queue) THEN
            PERFORM pg_notify('pgtq', _announce.queue);
        END IF;
    ELSIF notify <> 'off' THEN
        RAISE EXCEPTION 'pgtq: the setting pgtq.notify must be on or off, got %', quote_literal(notify)
            USING ERRCODE = 'PT004';
    END IF;
END
$$;

-- Guarantees: marks the calling session as a worker waiting for jobs of
-- `queues` (0.12.0). From its return until the session lets go of the
-- mark (clear_waiting) or ends, every push of these queues, and every
-- other announcement of them (_announce), notifies channel pgtq at its
-- commit. Each call takes each queue's waiting mark once more (a
-- session-level advisory lock, shared with the other waiting workers),
-- and clear_waiting lets go of one. The session must LISTEN pgtq first
-- and keep listening while it is marked. Returns waiting_settled(queues):
-- true when a pop started now sees the jobs of every push that skipped
-- its notification; false while one of them is still in flight (call
-- waiting_settled until it is true, and pop each time it is). Waits only
-- for announcements testing the mark at this very instant (microseconds).
-- A NULL list raises PT004, a bad queue name PT003; then nothing is
-- marked.
CREATE FUNCTION pgtq.mark_waiting(queues text[])
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    names text[] := ARRAY(SELECT pgtq._checked_queues(mark_waiting.queues));
    name  text;
BEGIN
    FOREACH name IN ARRAY names LOOP
        PERFORM pg_advisory_lock_shared(pgtq._waiting_space(name), 0);
    END LOOP;
    RETURN pgtq.waiting_settled(names);
END
$$;

-- Guarantees: true when no transaction that found no waiting worker of
-- `queues` (and so notified no one) is still open (0.12.0): a pop started
-- after it returned true sees the jobs of all of them that committed.
-- Takes each queue's push gate exclusively with a try, until the
-- caller's transaction ends (at once, in autocommit), and never waits,
-- so it never holds up a push: a push that finds the gate taken notifies
-- instead of looking for a mark. False when a gate is held by an open
-- transaction: call it again a little later. Checks the names as
-- mark_waiting does.
CREATE FUNCTION pgtq.waiting_settled(queues text[])
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    name text;
BEGIN
    FOR name IN SELECT pgtq._checked_queues(waiting_settled.queues) LOOP
        IF NOT pg_try_advisory_xact_lock(pgtq._waiting_space(name), 1) THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;

-- Guarantees: lets go of one hold of the calling session's waiting mark
-- of each of `queues` (0.12.0): once no session marks a queue, its pushes
-- notify no one (unless a worker that does not mark is registered). A
-- worker that is busy with a queue clears its mark, so that the pushes of
-- the queue stop notifying; it marks the queue again before it waits.
-- A queue the session has not marked changes nothing (PostgreSQL warns).
-- Checks the names as mark_waiting does.
CREATE FUNCTION pgtq.clear_waiting(queues text[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pg_advisory_unlock_shared(pgtq._waiting_space(q), 0)
    FROM pgtq._checked_queues(clear_waiting.queues) AS q;
END
$$;

-- ===========================================================================
-- The announcement after a job ends returns early without limits or keys
-- ===========================================================================

-- Guarantees: after running jobs of `queues`, with the lock keys
-- `lock_keys` (NULLs ignored), ended in the calling transaction, tells the
-- idle workers that may now claim a job (_announce, at commit): each of
-- `queues` that has a max_running and ready jobs (a slot came free), and
-- the queue of the next ready job of each lock key (the key came free).
-- A worker whose pop met a limit or a busy key waits for such a wake-up.
-- For jobs of queues without a limit and without a key it costs one probe
-- of _queue and returns (0.12.0: until then the whole look below ran, 20
-- us of a one-job complete). Its plan is generic (0.5.0: plan_cache_mode;
-- until 0.4.0 it was planned anew at each call of complete,
-- complete_many, fail, abort and release).
CREATE OR REPLACE FUNCTION pgtq._wake_after_end(queues text[], lock_keys text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    IF coalesce(cardinality(array_remove(_wake_after_end.lock_keys, NULL)), 0) = 0
       AND NOT EXISTS (SELECT 1 FROM pgtq._queue AS f
                       WHERE f.queue = ANY (_wake_after_end.queues) AND f.max_running IS NOT NULL) THEN
        RETURN;
    END IF;
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

-- ===========================================================================
-- Roles: workers may mark, settle and clear
-- ===========================================================================

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
                       'pgtq.mark_waiting, pgtq.waiting_settled, pgtq.clear_waiting TO %I',
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
                       'pgtq.mark_waiting, pgtq.waiting_settled, pgtq.clear_waiting TO %I',
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
