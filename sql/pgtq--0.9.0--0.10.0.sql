-- pgtq 0.9.0 -> 0.10.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_10_0. Every definition here is the one of sql/pgtq.sql at
-- 0.10.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- A new call for workers: pgtq.complete_many_and_pop(queue, ids, leases,
-- results, worker, n, lease, as_of) completes a worker's successes and
-- claims its next jobs in one call, as complete_many and then pop in one
-- statement did, but it announces the slots of `queue` that it freed only
-- when it claimed back fewer jobs of the queue than it completed: a worker
-- that recycles its slots of a saturated max_running queue no longer
-- wakes every other worker at each batch (measured: that wake-up cost a
-- quarter of the drain of a max_running queue at settings where the limit
-- binds; docs/performance.md). complete_many's work moved into helpers
-- that both share (_completions_ok, _reject_completions, _end_done); it
-- does what it did. Every other call is unchanged.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.10.0'::text $$;

-- ===========================================================================
-- Completions: the shared helpers, complete_many on them, and the new call
-- ===========================================================================

-- Guarantees: true when ids, leases and results (NULL: none) are arrays
-- of one length of at most 10,000 and as_of is a finite time: the
-- arguments complete_many and complete_many_and_pop accept, as an
-- expression PostgreSQL inlines into them (no SET clause, so every name is
-- qualified). _reject_completions words the error when it is false.
CREATE FUNCTION pgtq._completions_ok(ids bigint[], leases uuid[], results jsonb[], as_of timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(ids IS NOT NULL AND leases IS NOT NULL
                    AND pg_catalog.cardinality(ids) OPERATOR(pg_catalog.=) pg_catalog.cardinality(leases)
                    AND pg_catalog.cardinality(ids) OPERATOR(pg_catalog.<=) 10000
                    AND (results IS NULL
                         OR pg_catalog.cardinality(results) OPERATOR(pg_catalog.=) pg_catalog.cardinality(ids))
                    AND pg_catalog.isfinite(as_of),
                    false)
$$;

-- Guarantees: raises the error naming what `operation` (complete_many or
-- complete_many_and_pop) got when _completions_ok says no: PT004 for
-- arrays of unequal lengths or over 10,000, or a time that is not finite.
-- Returns quietly when the arguments are fine.
CREATE FUNCTION pgtq._reject_completions(operation text, ids bigint[], leases uuid[], results jsonb[],
                                         as_of timestamptz)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF ids IS NULL OR leases IS NULL OR cardinality(ids) <> cardinality(leases) OR cardinality(ids) > 10000
       OR (results IS NOT NULL AND cardinality(results) <> cardinality(ids)) THEN
        RAISE EXCEPTION 'pgtq: % needs ids and leases (and results, if given) of one length '
                        'of at most 10000, got % ids, % leases and % results',
                operation,
                coalesce(cardinality(ids)::text, 'NULL'),
                coalesce(cardinality(leases)::text, 'NULL'),
                coalesce(cardinality(results)::text, 'no')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', as_of);
    END IF;
END
$$;

-- Guarantees: ends as complete() would each job ids[i] whose current lease
-- is leases[i] (so it is running): done with results[i] (NULL results: no
-- result), or cancelled if a cancel was requested; tells its waiters (at
-- commit); returns one row per job it ended: its id, queue and lock key.
-- Pairs with a stale or forged lease, or an unknown id, change nothing.
-- It announces no freed slot or key: its callers do (_wake_after_end),
-- each by its rule. The arguments are its callers' to check.
CREATE FUNCTION pgtq._end_done(ids bigint[], leases uuid[], results jsonb[], as_of timestamptz)
RETURNS TABLE (id bigint, queue text, lock_key text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
AS $$
BEGIN
    RETURN QUERY
    UPDATE pgtq._job AS j
    SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'done' ELSE 'cancelled' END::pgtq.job_state,
        finished_at = _end_done.as_of,
        result = claims.result,
        lease = NULL,
        lease_expires_at = NULL
    FROM unnest(_end_done.ids, _end_done.leases, _end_done.results) AS claims (id, lease, result)
    WHERE j.id = claims.id
      AND j.lease = claims.lease  -- so running (job_running_has_lease_ck)
    RETURNING CASE WHEN j.waiters > 0 THEN pgtq._tell_waiters(j.id) ELSE j.id END, j.queue, j.lock_key;
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
SET enable_seqscan = off
AS $$
DECLARE
    ended_ids    bigint[];
    ended_queues text[];
    ended_keys   text[];
BEGIN
    IF NOT pgtq._completions_ok(complete_many.ids, complete_many.leases, complete_many.results,
                                complete_many.as_of) THEN
        PERFORM pgtq._reject_completions('complete_many', complete_many.ids, complete_many.leases,
                                         complete_many.results, complete_many.as_of);
    END IF;
    SELECT array_agg(e.id), array_agg(DISTINCT e.queue), array_agg(e.lock_key) FILTER (WHERE e.lock_key IS NOT NULL)
    INTO ended_ids, ended_queues, ended_keys
    FROM pgtq._end_done(complete_many.ids, complete_many.leases, complete_many.results,
                        complete_many.as_of) AS e;
    IF ended_ids IS NOT NULL THEN
        PERFORM pgtq._wake_after_end(ended_queues, ended_keys);
    END IF;
    RETURN QUERY SELECT u.id FROM unnest(ended_ids) AS u (id);
END
$$;

-- Guarantees: in one call, in the caller's transaction, what
-- complete_many(ids, leases, results, as_of) and then pop(queue, worker,
-- n, lease, as_of) would do: returns one row, the ids it completed and the
-- jobs it claimed (in pop's order; empty arrays for none). The pop sees
-- the completions, so a slot or lock key freed here can be claimed here.
-- Errors are theirs (PT003, PT004, PT007), and after one nothing is
-- completed and nothing claimed. One difference, in the wake-ups: the
-- slots of `queue` freed here are announced only when this call claimed
-- back fewer jobs of `queue` than it ended (the queue is then emptier at
-- commit than before); otherwise every pop that found the queue full
-- finds it as full after this commit, and waking its worker only costs
-- (notifying commits take turns, and every worker listening pops again).
-- Slots of other queues and lock keys freed are announced as by
-- complete_many. A worker's successes and its next claim, in one round
-- trip and one commit (0.10.0).
CREATE FUNCTION pgtq.complete_many_and_pop(queue text,
                                           ids bigint[],
                                           leases uuid[],
                                           results jsonb[] DEFAULT NULL,
                                           worker text DEFAULT NULL,
                                           n integer DEFAULT 1,
                                           lease interval DEFAULT '5 minutes',
                                           as_of timestamptz DEFAULT now())
RETURNS TABLE (completed bigint[], claimed pgtq.claimed_job[])
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
AS $$
DECLARE
    ended_ids    bigint[];
    ended_queues text[];  -- one element per job ended
    ended_keys   text[];
    jobs         pgtq.claimed_job[];
BEGIN
    IF NOT pgtq._completions_ok(complete_many_and_pop.ids, complete_many_and_pop.leases,
                                complete_many_and_pop.results, complete_many_and_pop.as_of) THEN
        PERFORM pgtq._reject_completions('complete_many_and_pop', complete_many_and_pop.ids,
                                         complete_many_and_pop.leases, complete_many_and_pop.results,
                                         complete_many_and_pop.as_of);
    END IF;
    SELECT array_agg(e.id), array_agg(e.queue), array_agg(e.lock_key) FILTER (WHERE e.lock_key IS NOT NULL)
    INTO ended_ids, ended_queues, ended_keys
    FROM pgtq._end_done(complete_many_and_pop.ids, complete_many_and_pop.leases, complete_many_and_pop.results,
                        complete_many_and_pop.as_of) AS e;
    SELECT array_agg(ROW(c.id, c.queue, c.task, c.args, c.kwargs, c.priority, c.attempt, c.max_attempts,
                         c.lease, c.lease_expires_at)::pgtq.claimed_job ORDER BY c.position)
    INTO jobs
    FROM pgtq.pop(complete_many_and_pop.queue, complete_many_and_pop.worker, complete_many_and_pop.n,
                  complete_many_and_pop.lease, complete_many_and_pop.as_of)
         WITH ORDINALITY AS c (id, queue, task, args, kwargs, priority, attempt, max_attempts, lease,
                               lease_expires_at, position);
    -- Nothing to announce, the common case, costs no query: every job ended
    -- was of `queue`, no more of them than were claimed, and none had a key.
    IF ended_ids IS NOT NULL
       AND (ended_keys IS NOT NULL OR cardinality(ended_ids) > coalesce(cardinality(jobs), 0)
            OR NOT complete_many_and_pop.queue = ALL (ended_queues)) THEN
        PERFORM pgtq._wake_after_end(
            ARRAY(SELECT DISTINCT q.queue
                  FROM unnest(ended_queues) AS q (queue)
                  WHERE q.queue <> complete_many_and_pop.queue
                     OR cardinality(array_positions(ended_queues, q.queue)) > coalesce(cardinality(jobs), 0)),
            ended_keys);
    END IF;
    completed := coalesce(ended_ids, '{}');
    claimed := coalesce(jobs, '{}');
    RETURN NEXT;
END
$$;

-- ===========================================================================
-- Privileges: install_roles grants the new call to workers and admins;
-- as at the end of a fresh install (new objects are reachable by PUBLIC
-- until revoked), then the roles' rights again.
-- ===========================================================================

-- Guarantees: the four roles of pgtq's privilege model exist (created
-- NOLOGIN when missing) and hold, in this database, at least these rights:
--   producer  push, push_many; watch, unwatch, outcomes (of the jobs
--             its login role pushed); version
--   worker    pop, complete, complete_many, complete_many_and_pop, fail,
--             abort, heartbeat, heartbeat_many, release, tick, the procedure tick_for,
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
                       'pgtq.complete_many_and_pop, pgtq.release, pgtq.tick, pgtq.register_worker, pgtq.unregister_worker, '
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
                       'pgtq.pause, pgtq.resume, pgtq.configure_queue, pgtq.complete_many_and_pop TO %I',
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

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
