-- pgtq 0.21.0 -> 0.22.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_22_0. Every definition here is the one of sql/pgtq.sql at
-- 0.22.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- health's cleanup check says how to end what it names: a session by
-- pg_terminate_backend(pid), a prepared transaction by COMMIT PREPARED or
-- ROLLBACK PREPARED with its gid (until 0.21.0 it said "until it ends" for
-- both, though a prepared transaction never ends by itself).

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.22.0'::text $$;

-- Guarantees: the cleanup check of health(): one row. 'warning' names
-- what holds back the cleanup of dead rows, the worst first:
--   * (0.19.0) an inactive replication slot that keeps an xmin (the
--     feedback of a standby with hot_standby_feedback that is gone): it
--     holds the cleanup back in every database, however old, until its
--     standby is back or the slot is dropped, so it comes first, with the
--     age of its xmin in transactions (a slot has no time of its own);
--   * the oldest transaction of this database that began more than
--     `old_transaction` before as_of and holds a snapshot or a
--     transaction id (a client session other than the caller's, or a
--     prepared transaction): its age, pid, role, application and state,
--     and (0.22.0) how to end it: pg_terminate_backend(pid) for a
--     session, COMMIT PREPARED or ROLLBACK PREPARED for a prepared one.
-- 'ok' when there is none, 'unknown' when there is none in sight but the
-- caller (or the owner of pgtq, whose rights this runs with) may not see
-- every session. It shows only the sessions that pg_stat_activity shows
-- the session user (sessions of roles it has the rights of, or all with
-- pg_read_all_stats), so it reveals nothing more than the caller could
-- read there; pg_replication_slots is every role's to read. A slot in use
-- (its standby connected) is not named: its xmin follows the standby's
-- queries, and a long one there shows as nothing here.
CREATE OR REPLACE FUNCTION pgtq._health_cleanup(old_transaction interval, as_of timestamptz,
                                     OUT status text, OUT detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH sees_all AS (
        SELECT pg_has_role(session_user, 'pg_read_all_stats', 'USAGE')
               AND pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS yes
    ), holders AS (
        SELECT '-infinity'::timestamptz AS since,  -- it never ends by itself: first
               format('an inactive replication slot %s (%s), whose xmin is %s transactions old,',
                      quote_literal(r.slot_name), r.slot_type, age(r.xmin)) AS who,
               'its standby is back or the slot is dropped (pg_drop_replication_slot)' AS until,
               'the standby''s oldest snapshot' AS since_what
        FROM pg_replication_slots AS r
        WHERE NOT r.active AND r.xmin IS NOT NULL
        UNION ALL
        SELECT a.xact_start,
               format('a transaction open for %s (pid %s, role %s, application %s, %s)',
                      pgtq._health_age(_health_cleanup.as_of - a.xact_start), a.pid,
                      quote_literal(a.usename), quote_literal(a.application_name), a.state),
               format('it ends (pg_terminate_backend(%s) ends its session now, and rolls its work back)', a.pid),
               'it began'
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
                      quote_literal(p.owner)),
               format('it is committed or rolled back (COMMIT PREPARED %s or ROLLBACK PREPARED %s, '
                      'as its role or a superuser)', quote_literal(p.gid), quote_literal(p.gid)),
               'it began'
        FROM pg_prepared_xacts AS p
        WHERE p.database = current_database()
          AND p.prepared < _health_cleanup.as_of - _health_cleanup.old_transaction
    ), oldest AS (
        SELECT holders.who, holders.until, holders.since_what FROM holders ORDER BY holders.since LIMIT 1
    )
    SELECT CASE WHEN o.who IS NOT NULL THEN 'warning' WHEN s.yes THEN 'ok' ELSE 'unknown' END,
           CASE WHEN o.who IS NOT NULL
                THEN format('%s holds back the cleanup of dead rows: until %s, the job table and its '
                            'indexes keep every version of every job that changed since %s',
                            o.who, o.until, o.since_what)
                WHEN s.yes THEN format('no transaction of this database is older than %s',
                                       pgtq._health_age(_health_cleanup.old_transaction))
                ELSE format('no transaction older than %s in sight, but only the sessions of roles this role '
                            'has the rights of are (pg_monitor sees them all)',
                            pgtq._health_age(_health_cleanup.old_transaction))
           END
    FROM sees_all AS s
    LEFT JOIN oldest AS o ON true
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
