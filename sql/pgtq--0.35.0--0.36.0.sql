-- pgtq 0.35.0 -> 0.36.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_36_0. Every definition here is the one of sql/pgtq.sql at
-- 0.36.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- health() gains a fourth check, vacuum (_health_vacuum, new): tables of
-- pgtq whose dead row versions are over autovacuum's threshold and that
-- no vacuum reached for over 10 minutes (or ever, with autovacuum off for
-- them). Its signature and its other checks do not change.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.36.0'::text $$;

-- Guarantees: the vacuum check of health() (0.36.0): one row. 'warning'
-- names up to 10 tables of schema pgtq, the most dead row versions first,
-- whose dead row versions (as the statistics count them) are over
-- autovacuum's threshold for the table (autovacuum_vacuum_threshold +
-- autovacuum_vacuum_scale_factor x its rows, the table's own settings
-- first) and that
--   * were last vacuumed (by hand or by autovacuum) longer than `stale`
--     before as_of: greatest(10 minutes, 10 x autovacuum_naptime), while
--     autovacuum looks at each database once a naptime; or
--   * were never vacuumed since the statistics began, with autovacuum off
--     for them (nothing will vacuum them; with autovacuum on, a table not
--     yet vacuumed is new to it, and not named).
-- Each is named with its dead row versions, the threshold, when it was
-- last vacuumed and whether autovacuum is off for it (the setting
-- autovacuum, or the table's autovacuum_enabled). 'unknown' when
-- track_counts is off (nothing counts dead rows, and autovacuum does not
-- run); 'ok' otherwise. Dead rows that vacuum may not remove yet (an old
-- transaction still sees them) are the cleanup check's: a table vacuumed
-- within `stale` is not named here. Reads the statistics and pg_class
-- rows of pgtq's tables only (every role may read both).
CREATE OR REPLACE FUNCTION pgtq._health_vacuum(as_of timestamptz, OUT status text, OUT detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH config AS (
        SELECT greatest(interval '10 minutes',
                        10 * (SELECT s.setting::integer FROM pg_settings AS s
                              WHERE s.name = 'autovacuum_naptime') * interval '1 second') AS stale,
               current_setting('autovacuum')::boolean AS autovacuum_on,
               current_setting('autovacuum_vacuum_threshold')::float8 AS base_threshold,
               current_setting('autovacuum_vacuum_scale_factor')::float8 AS scale_factor
    ), tables AS (
        SELECT t.relname, t.n_dead_tup AS dead,
               greatest(t.last_vacuum, t.last_autovacuum) AS vacuumed_at,
               c.autovacuum_on AND coalesce(o.enabled, true) AS autovacuumed,
               floor(coalesce(o.base_threshold, c.base_threshold)
                     + coalesce(o.scale_factor, c.scale_factor) * greatest(r.reltuples, 0))::bigint AS threshold
        FROM pg_stat_all_tables AS t
        JOIN pg_class AS r ON r.oid = t.relid
        CROSS JOIN config AS c
        CROSS JOIN LATERAL (
            SELECT bool_and(CASE WHEN p.option_name = 'autovacuum_enabled'
                                 THEN p.option_value::boolean END) AS enabled,
                   max(CASE WHEN p.option_name = 'autovacuum_vacuum_threshold'
                            THEN p.option_value::float8 END) AS base_threshold,
                   max(CASE WHEN p.option_name = 'autovacuum_vacuum_scale_factor'
                            THEN p.option_value::float8 END) AS scale_factor
            FROM pg_options_to_table(r.reloptions) AS p
        ) AS o
        WHERE t.schemaname = 'pgtq'
    ), behind AS (
        SELECT t.relname, t.dead, t.threshold, t.vacuumed_at, t.autovacuumed,
               count(*) OVER () AS total
        FROM tables AS t
        CROSS JOIN config AS c
        WHERE t.dead > t.threshold
          AND (t.vacuumed_at < _health_vacuum.as_of - c.stale
               OR (t.vacuumed_at IS NULL AND NOT t.autovacuumed))
        ORDER BY t.dead DESC, t.relname
        LIMIT 10
    )
    SELECT CASE WHEN NOT current_setting('track_counts')::boolean THEN 'unknown'
                WHEN count(b.relname) = 0 THEN 'ok'
                ELSE 'warning'
           END,
           CASE WHEN NOT current_setting('track_counts')::boolean
                THEN 'track_counts is off: no dead rows are counted and autovacuum does not run, so only a '
                     'VACUUM by hand cleans pgtq''s tables'
                WHEN count(b.relname) = 0
                THEN format('no table of pgtq has had more dead row versions than autovacuum''s threshold '
                            'without a vacuum for over %s', pgtq._health_age(c.stale))
                ELSE string_agg(format('table pgtq.%s: %s dead row versions (autovacuum''s threshold %s), %s%s',
                                       b.relname, b.dead, b.threshold,
                                       CASE WHEN b.vacuumed_at IS NULL THEN 'never vacuumed'
                                            ELSE format('last vacuumed %s ago',
                                                        pgtq._health_age(_health_vacuum.as_of - b.vacuumed_at))
                                       END,
                                       CASE WHEN b.autovacuumed THEN '' ELSE ' (autovacuum is off for it)' END),
                                '; ' ORDER BY b.dead DESC, b.relname)
                     || CASE WHEN max(b.total) > 10 THEN format('; and %s more', max(b.total) - 10) ELSE '' END
                     || '. Until a vacuum removes them, reads step over them and the tables grow: VACUUM them '
                        'now, then see why autovacuum does not (turned off, its workers busy with larger tables, '
                        'or its cost limit)'
           END
    FROM config AS c
    LEFT JOIN behind AS b ON true
    GROUP BY c.stale
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
--   cleanup    an inactive replication slot that keeps an xmin (0.19.0),
--              else the oldest open transaction of this database (another
--              session's, or a prepared one) or (0.34.0) the oldest
--              snapshot a connected standby's feedback keeps, that
--              began longer than `old_transaction` ago: until it ends,
--              vacuum keeps every row version it might see, and the
--              table grows (until 0.18.0 each claim also stepped over the
--              index entries of every job claimed since: a snapshot held
--              for 60 s under 10,000 jobs/s halved the drain rate; pops
--              now seek from the ready mark). It sees the sessions that
--              the calling role may see in pg_stat_activity (all of them with
--              pg_read_all_stats, which pg_monitor holds): 'unknown' when
--              it found none and may not see them all;
--   schedules  periodic schedules whose last run failed (last_error), up
--              to 10 named;
--   vacuum     (0.36.0) tables of pgtq with more dead row versions than
--              autovacuum's threshold that no vacuum reached for over
--              10 minutes (10 naptimes when longer), or never with
--              autovacuum off for them (_health_vacuum says how);
--              'unknown' when track_counts is off.
-- Read-only, with the owner's rights, so the admin, observer and (0.15.0)
-- worker roles see it without reading jobs. Reads the running jobs' index
-- entries, those of at most 10,000 late scheduled jobs (0.15.0), one
-- probe of the ready index per queue with ready jobs, the workers and
-- (0.36.0) the statistics of pgtq's tables. A `late` or `old_transaction`
-- that is NULL or not positive, or a NULL or infinite as_of, raises
-- PT004.
CREATE OR REPLACE FUNCTION pgtq.health(late interval DEFAULT '1 minute',
                            old_transaction interval DEFAULT '5 minutes',
                            as_of timestamptz DEFAULT now())
RETURNS TABLE (name text, status text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
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
    RETURN QUERY SELECT 'vacuum', f.status, f.detail FROM pgtq._health_vacuum(health.as_of) AS f;
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
