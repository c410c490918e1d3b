-- pgtq 0.37.0 -> 0.38.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_38_0. Every definition here is the one of sql/pgtq.sql at
-- 0.38.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- health()'s vacuum check (_health_vacuum) sees the vacuums running in the
-- database: a table that one began to vacuum within the check's window is
-- not named, and one that has run longer is named with how long and its
-- phase. Otherwise its findings do not change.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.38.0'::text $$;

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
-- (0.38.0) A table that a vacuum is vacuuming now, one whose transaction
-- began within `stale` before as_of, is not named: that vacuum is on it.
-- Each is named with its dead row versions, the threshold, when it was
-- last vacuumed, whether autovacuum is off for it (the setting
-- autovacuum, or the table's autovacuum_enabled) and (0.38.0) how long a
-- vacuum of it has been running, and in which phase, when one has run
-- longer than `stale`. A vacuum is seen as pg_stat_progress_vacuum shows
-- it to the owner of pgtq (autovacuum's only with pg_read_all_stats, or
-- as a superuser); one not seen counts as none. 'unknown' when
-- track_counts is off (nothing counts dead rows, and autovacuum does not
-- run); 'ok' otherwise. Dead rows that vacuum may not remove yet (an old
-- transaction still sees them) are the cleanup check's: a table vacuumed
-- within `stale` is not named here. Reads the pg_class rows of pgtq's
-- tables, their statistics (every role may read both) and the vacuums
-- running in this database; (0.37.0) the statistics by the statistics
-- functions: until 0.36.0 it read pg_stat_all_tables, which reads every
-- relation of the database (7.6 ms with 10,484 of them), and as a SQL
-- function it was planned again at each call.
CREATE OR REPLACE FUNCTION pgtq._health_vacuum(as_of timestamptz, OUT status text, OUT detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    stale interval := greatest(interval '10 minutes', 10 * current_setting('autovacuum_naptime')::interval);
BEGIN
    IF NOT current_setting('track_counts')::boolean THEN
        status := 'unknown';
        detail := 'track_counts is off: no dead rows are counted and autovacuum does not run, so only a '
                  'VACUUM by hand cleans pgtq''s tables';
        RETURN;
    END IF;
    WITH tables AS (
        SELECT r.oid AS relid, r.relname, pg_stat_get_dead_tuples(r.oid) AS dead,
               greatest(pg_stat_get_last_vacuum_time(r.oid), pg_stat_get_last_autovacuum_time(r.oid))
                   AS vacuumed_at,
               current_setting('autovacuum')::boolean AND coalesce(o.enabled, true) AS autovacuumed,
               floor(coalesce(o.base_threshold, current_setting('autovacuum_vacuum_threshold')::float8)
                     + coalesce(o.scale_factor, current_setting('autovacuum_vacuum_scale_factor')::float8)
                       * greatest(r.reltuples, 0))::bigint AS threshold
        FROM pg_class AS r
        CROSS JOIN LATERAL (
            SELECT bool_and(CASE WHEN p.option_name = 'autovacuum_enabled'
                                 THEN p.option_value::boolean END) AS enabled,
                   max(CASE WHEN p.option_name = 'autovacuum_vacuum_threshold'
                            THEN p.option_value::float8 END) AS base_threshold,
                   max(CASE WHEN p.option_name = 'autovacuum_vacuum_scale_factor'
                            THEN p.option_value::float8 END) AS scale_factor
            FROM pg_options_to_table(r.reloptions) AS p
        ) AS o
        WHERE r.relnamespace = 'pgtq'::regnamespace AND r.relkind = 'r'
    ), running AS (
        -- The vacuums this database runs now, the longest-running first
        -- for each table (its transaction: one per table vacuumed).
        SELECT DISTINCT ON (v.relid) v.relid, v.phase, a.xact_start AS since
        FROM pg_stat_progress_vacuum AS v
        JOIN pg_stat_activity AS a ON a.pid = v.pid
        WHERE v.datname = current_database() AND v.relid IS NOT NULL
        ORDER BY v.relid, a.xact_start
    ), behind AS (
        SELECT t.relname, t.dead, t.threshold, t.vacuumed_at, t.autovacuumed, v.phase, v.since,
               count(*) OVER () AS total
        FROM tables AS t
        LEFT JOIN running AS v ON v.relid = t.relid
        WHERE t.dead > t.threshold
          AND (t.vacuumed_at < _health_vacuum.as_of - stale
               OR (t.vacuumed_at IS NULL AND NOT t.autovacuumed))
          AND NOT coalesce(v.since >= _health_vacuum.as_of - stale, false)
        ORDER BY t.dead DESC, t.relname
        LIMIT 10
    )
    SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'warning' END,
           CASE WHEN count(*) = 0
                THEN format('no table of pgtq has had more dead row versions than autovacuum''s threshold '
                            'without a vacuum for over %s', pgtq._health_age(stale))
                ELSE string_agg(format('table pgtq.%s: %s dead row versions (autovacuum''s threshold %s), %s%s%s',
                                       b.relname, b.dead, b.threshold,
                                       CASE WHEN b.vacuumed_at IS NULL THEN 'never vacuumed'
                                            ELSE format('last vacuumed %s ago',
                                                        pgtq._health_age(_health_vacuum.as_of - b.vacuumed_at))
                                       END,
                                       CASE WHEN b.autovacuumed THEN '' ELSE ' (autovacuum is off for it)' END,
                                       CASE WHEN b.since IS NOT NULL
                                            THEN format(', and a vacuum of it has been running for %s (%s)',
                                                        pgtq._health_age(_health_vacuum.as_of - b.since), b.phase)
                                            ELSE '' END),
                                '; ' ORDER BY b.dead DESC, b.relname)
                     || CASE WHEN max(b.total) > 10 THEN format('; and %s more', max(b.total) - 10) ELSE '' END
                     || '. Until a vacuum removes them, reads step over them and the tables grow: VACUUM them '
                        'now (or let a running vacuum finish), then see why autovacuum does not come or takes '
                        'so long (turned off, its workers busy with larger tables, or its cost limit)'
           END
    INTO status, detail
    FROM behind AS b;
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
