-- pgtq 0.14.0 -> 0.15.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_15_0. Every definition here is the one of sql/pgtq.sql at
-- 0.15.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- health() reads at most the 10,000 oldest late scheduled jobs: a day
-- without a tick could leave millions, and the dashboard looks at every
-- page of its overview and every scrape of its /metrics (a count past
-- that says "or more"). The worker role may call health() too, so a
-- worker's /metrics shows the checks. Nothing on the hot path changes.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.15.0'::text $$;

-- ===========================================================================
-- health(): at most 10,000 late scheduled jobs read
-- ===========================================================================

-- Guarantees: the queues check of health(): one row, 'warning' naming up
-- to 10 queues (the longest wait first) whose jobs nobody handles, 'ok'
-- otherwise. A queue is named when its next ready job (in pop's order)
-- has been due longer than `late` while no live worker serves it and it
-- is not paused, or when a scheduled job has been due, or a running job's
-- lease has run out, longer than `late` (tick would have moved them).
-- Finds the queues with ready jobs by a loose scan of job_ready_idx (one
-- probe per queue, as _running_queues). Reads at most the 10,000 oldest
-- late scheduled jobs (0.15.0; until 0.14.0 all of them, which a day
-- without a tick could make millions, at every look of the dashboard):
-- past that a queue's count says "or more".
CREATE OR REPLACE FUNCTION pgtq._health_queues(late interval, as_of timestamptz, OUT status text, OUT detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH RECURSIVE ready (queue) AS (
        (SELECT r.queue FROM pgtq._job AS r WHERE r.state = 'ready' ORDER BY r.queue LIMIT 1)
        UNION ALL
        SELECT (SELECT r.queue FROM pgtq._job AS r
                WHERE r.state = 'ready' AND r.queue > ready.queue
                ORDER BY r.queue
                LIMIT 1)
        FROM ready
        WHERE ready.queue IS NOT NULL
    ), alive AS (
        SELECT DISTINCT served.queue
        FROM pgtq._worker AS w
        CROSS JOIN pgtq._settings AS s
        CROSS JOIN unnest(w.queues) AS served (queue)
        WHERE w.last_seen_at >= _health_queues.as_of - s.worker_timeout
    ), unserved AS (
        SELECT ready.queue,
               _health_queues.as_of - (SELECT n.run_at FROM pgtq._job AS n
                                       WHERE n.queue = ready.queue AND n.state = 'ready'
                                       ORDER BY n.priority DESC, n.id
                                       LIMIT 1) AS waited
        FROM ready
        WHERE ready.queue IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM alive WHERE alive.queue = ready.queue)
          AND NOT EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = ready.queue AND f.paused_at IS NOT NULL)
    ), late AS (
        SELECT j.queue, j.state, j.run_at AS since
        FROM pgtq._job AS j
        WHERE j.state = 'scheduled' AND j.run_at < _health_queues.as_of - _health_queues.late
        ORDER BY j.run_at
        LIMIT 10001
    ), untended AS (
        SELECT l.queue, count(*) FILTER (WHERE l.state = 'scheduled') AS due,
               count(*) FILTER (WHERE l.state = 'running') AS lapsed,
               _health_queues.as_of - min(l.since) AS waited
        FROM ((SELECT late.queue, late.state, late.since FROM late ORDER BY late.since LIMIT 10000)
              UNION ALL
              SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j
              WHERE j.state = 'running' AND j.lease_expires_at < _health_queues.as_of - _health_queues.late)
             AS l
        GROUP BY l.queue
    ), found AS (
        SELECT u.queue, u.waited,
               format('queue %s: its next ready job has waited %s and no live worker serves it',
                      quote_literal(u.queue), pgtq._health_age(u.waited)) AS finding
        FROM unserved AS u
        WHERE u.waited > _health_queues.late
        UNION ALL
        SELECT t.queue, t.waited,
               format('queue %s: %s; nothing has ticked it for over %s (a worker of the queue, pgtq scheduler '
                      'or pg_cron would)',
                      quote_literal(t.queue),
                      concat_ws(', ',
                                CASE WHEN t.due > 0
                                     THEN format('%s%s scheduled job(s) due but not ready', t.due,
                                                 CASE WHEN (SELECT count(*) FROM late) > 10000 THEN ' or more'
                                                      ELSE '' END)
                                END,
                                CASE WHEN t.lapsed > 0 THEN format('%s lease(s) run out', t.lapsed) END),
                      pgtq._health_age(_health_queues.late))
        FROM untended AS t
    ), ranked AS (
        SELECT found.finding, found.waited, count(*) OVER () AS total
        FROM found
        ORDER BY found.waited DESC, found.queue
        LIMIT 10
    )
    SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'warning' END,
           CASE WHEN count(*) = 0 THEN 'every queue with jobs due has a live worker and is ticked'
                ELSE string_agg(ranked.finding, '; ' ORDER BY ranked.waited DESC)
                     || CASE WHEN max(ranked.total) > 10 THEN format('; and %s more', max(ranked.total) - 10)
                             ELSE '' END
           END
    FROM ranked
$$;

-- ===========================================================================
-- The worker role calls health() too
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
                       'pgtq.mark_waiting, pgtq.waiting_settled, pgtq.clear_waiting, pgtq.health TO %I',
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
                       'pgtq.mark_waiting, pgtq.waiting_settled, pgtq.clear_waiting, pgtq.health TO %I',
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

-- health()'s grants are given again in a fresh install's order (worker,
-- admin, observer), so that an upgraded catalog is the same as a fresh one:
-- the admin's and the observer's are taken back here, and install_roles()
-- below grants all three.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = 'pgtq_admin') THEN
        REVOKE EXECUTE ON FUNCTION pgtq.health(interval, interval, timestamptz) FROM pgtq_admin;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = 'pgtq_observer') THEN
        REVOKE EXECUTE ON FUNCTION pgtq.health(interval, interval, timestamptz) FROM pgtq_observer;
    END IF;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
