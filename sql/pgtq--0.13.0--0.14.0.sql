-- pgtq 0.13.0 -> 0.14.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_14_0. Every definition here is the one of sql/pgtq.sql at
-- 0.14.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- pgtq.health(): what needs an operator's look, in three checks:
--   * queues whose jobs nobody handles (ready with no live worker, or
--     nothing ticks them: scheduled jobs late, leases run out);
--   * an old transaction that holds back the cleanup of dead rows (each
--     claim then steps over the index entries of every job claimed since);
--   * periodic schedules whose last run failed.
-- The admin and observer roles may call it (install_roles grants it).
-- Nothing on the hot path changes.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.14.0'::text $$;

-- ===========================================================================
-- health(): what needs an operator's look
-- ===========================================================================

-- Guarantees: `age` in words for health()'s messages, rounded down to
-- its largest unit: '45 s', '12 min', '5 h', '3 days' (under 0: '0 s').
CREATE FUNCTION pgtq._health_age(age interval)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT CASE WHEN seconds < 120 THEN floor(greatest(seconds, 0)) || ' s'
                WHEN seconds < 7200 THEN floor(seconds / 60) || ' min'
                WHEN seconds < 172800 THEN floor(seconds / 3600) || ' h'
                ELSE floor(seconds / 86400) || ' days'
           END
    FROM (SELECT extract(epoch FROM _health_age.age) AS seconds) AS a
$$;

-- Guarantees: the queues check of health(): one row, 'warning' naming up
-- to 10 queues (the longest wait first) whose jobs nobody handles, 'ok'
-- otherwise. A queue is named when its next ready job (in pop's order)
-- has been due longer than `late` while no live worker serves it and it
-- is not paused, or when a scheduled job has been due, or a running job's
-- lease has run out, longer than `late` (tick would have moved them).
-- Finds the queues with ready jobs by a loose scan of job_ready_idx (one
-- probe per queue, as _running_queues).
CREATE FUNCTION pgtq._health_queues(late interval, as_of timestamptz, OUT status text, OUT detail text)
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
    ), untended AS (
        SELECT l.queue, count(*) FILTER (WHERE l.state = 'scheduled') AS due,
               count(*) FILTER (WHERE l.state = 'running') AS lapsed,
               _health_queues.as_of - min(l.since) AS waited
        FROM (SELECT j.queue, j.state, j.run_at AS since FROM pgtq._job AS j
              WHERE j.state = 'scheduled' AND j.run_at < _health_queues.as_of - _health_queues.late
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
                                CASE WHEN t.due > 0 THEN format('%s scheduled job(s) due but not ready', t.due) END,
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

-- Guarantees: the cleanup check of health(): one row. 'warning' names the
-- oldest transaction of this database that began more than
-- `old_transaction` before as_of and holds a snapshot or a transaction id
-- (a client session other than the caller's, or a prepared transaction):
-- its age, pid, role, application and state. 'ok' when there is none,
-- 'unknown' when there is none in sight but the caller (or the owner of
-- pgtq, whose rights this runs with) may not see every session. It shows
-- only the sessions that pg_stat_activity shows the session user
-- (sessions of roles it has the rights of, or all with
-- pg_read_all_stats), so it reveals nothing more than the caller could
-- read there.
CREATE FUNCTION pgtq._health_cleanup(old_transaction interval, as_of timestamptz,
                                     OUT status text, OUT detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH sees_all AS (
        SELECT pg_has_role(session_user, 'pg_read_all_stats', 'USAGE')
               AND pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS yes
    ), holders AS (
        SELECT a.xact_start AS since,
               format('a transaction open for %s (pid %s, role %s, application %s, %s)',
                      pgtq._health_age(_health_cleanup.as_of - a.xact_start), a.pid,
                      quote_literal(a.usename), quote_literal(a.application_name), a.state) AS who
        FROM pg_stat_activity AS a
        WHERE a.datid = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())
          AND a.backend_type = 'client backend'
          AND a.pid <> pg_backend_pid()
          AND (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL)
          AND a.xact_start < _health_cleanup.as_of - _health_cleanup.old_transaction
          AND (pg_has_role(session_user, a.usesysid, 'USAGE')
               OR pg_has_role(session_user, 'pg_read_all_stats', 'USAGE'))
        UNION ALL
        SELECT p.prepared,
               format('a prepared transaction %s, prepared %s ago by role %s',
                      quote_literal(p.gid), pgtq._health_age(_health_cleanup.as_of - p.prepared),
                      quote_literal(p.owner))
        FROM pg_prepared_xacts AS p
        WHERE p.database = current_database()
          AND p.prepared < _health_cleanup.as_of - _health_cleanup.old_transaction
    ), oldest AS (
        SELECT holders.who FROM holders ORDER BY holders.since LIMIT 1
    )
    SELECT CASE WHEN o.who IS NOT NULL THEN 'warning' WHEN s.yes THEN 'ok' ELSE 'unknown' END,
           CASE WHEN o.who IS NOT NULL
                THEN o.who || ' holds back the cleanup of dead rows: until it ends, every claim steps over '
                     'the index entries of the jobs claimed since it began'
                WHEN s.yes THEN format('no transaction of this database is older than %s',
                                       pgtq._health_age(_health_cleanup.old_transaction))
                ELSE format('no transaction older than %s in sight, but only the sessions of roles this role '
                            'has the rights of are (pg_monitor sees them all)',
                            pgtq._health_age(_health_cleanup.old_transaction))
           END
    FROM sees_all AS s
    LEFT JOIN oldest AS o ON true
$$;

-- Guarantees: the schedules check of health(): one row, 'warning' naming
-- up to 10 periodic schedules whose last run failed (last_error, which
-- tick records; the next good run clears it) with that error, 'ok'
-- otherwise.
CREATE FUNCTION pgtq._health_schedules(OUT status text, OUT detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH failing AS (
        SELECT s.name, s.last_error, count(*) OVER () AS total
        FROM pgtq._schedule AS s
        WHERE s.last_error IS NOT NULL
        ORDER BY s.name
        LIMIT 10
    )
    SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'warning' END,
           CASE WHEN count(*) = 0 THEN 'no periodic schedule failed its last run'
                ELSE string_agg(format('schedule %s failed its last run: %s', quote_literal(f.name), f.last_error),
                                '; ' ORDER BY f.name)
                     || CASE WHEN max(f.total) > 10 THEN format('; and %s more', max(f.total) - 10) ELSE '' END
           END
    FROM failing AS f
$$;

-- Guarantees: what needs an operator's look (0.14.0), one row per check,
-- always in this order, each with status 'ok', 'warning' or 'unknown'
-- and a sentence saying what it found:
--   queues     queues whose jobs are not being handled: ready jobs whose
--              next one has waited longer than `late` with no live
--              worker (seen within worker_timeout) serving the queue and
--              the queue not paused; or scheduled jobs due, or leases
--              run out, longer than `late` ago (nothing ticks the queue:
--              a worker of the queue, `pgtq scheduler` or pg_cron would).
--              Up to 10 queues are named, the worst first;
--   cleanup    the oldest open transaction of this database (another
--              session's, or a prepared one) that began longer than
--              `old_transaction` ago: until it ends, vacuum keeps every
--              row version it might see, and each claim steps over the
--              index entries of every job claimed since (a snapshot held
--              for 60 s under 10,000 jobs/s halved the drain rate:
--              docs/performance.md). It sees the sessions that the
--              calling role may see in pg_stat_activity (all of them with
--              pg_read_all_stats, which pg_monitor holds): 'unknown' when
--              it found none and may not see them all;
--   schedules  periodic schedules whose last run failed (last_error), up
--              to 10 named.
-- Read-only, with the owner's rights, so the admin and observer roles see
-- it without reading jobs. Reads the running and late scheduled jobs'
-- index entries, one probe of the ready index per queue with ready jobs,
-- and the workers. A `late` or `old_transaction` that is NULL or not
-- positive, or a NULL or infinite as_of, raises PT004.
CREATE FUNCTION pgtq.health(late interval DEFAULT '1 minute',
                            old_transaction interval DEFAULT '5 minutes',
                            as_of timestamptz DEFAULT now())
RETURNS TABLE (name text, status text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
AS $$
BEGIN
    IF health.late IS NULL OR health.late <= interval '0' THEN
        RAISE EXCEPTION 'pgtq: late must be a positive interval, got %', coalesce(health.late::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF health.old_transaction IS NULL OR health.old_transaction <= interval '0' THEN
        RAISE EXCEPTION 'pgtq: old_transaction must be a positive interval, got %',
                coalesce(health.old_transaction::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(health.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', health.as_of);
    END IF;
    RETURN QUERY SELECT 'queues', f.status, f.detail FROM pgtq._health_queues(health.late, health.as_of) AS f;
    RETURN QUERY SELECT 'cleanup', f.status, f.detail
                 FROM pgtq._health_cleanup(health.old_transaction, health.as_of) AS f;
    RETURN QUERY SELECT 'schedules', f.status, f.detail FROM pgtq._health_schedules() AS f;
END
$$;

-- ===========================================================================
-- The admin and observer roles call health()
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

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
