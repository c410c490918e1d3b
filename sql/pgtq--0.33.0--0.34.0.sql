-- pgtq 0.33.0 -> 0.34.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_34_0. Every definition here is the one of sql/pgtq.sql at
-- 0.34.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- health()'s cleanup check did not name a connected standby whose
-- hot_standby_feedback held back the cleanup of dead rows (a long query
-- there, or its replay running behind): such an xmin has no time of its
-- own. Each history sample now also writes the sampling transaction's id
-- with its time (_xid_clock, kept as long as the history), and the check
-- dates a standby's xmin by it (_xid_time): one older than
-- old_transaction is named, with its slot and walsender pid. The history's
-- sampling, configure() and the cleanup check change; nothing on the path
-- of a push, pop or completion.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.34.0'::text $$;

-- The transaction-id clock (0.34.0): at each history sample, the id of
-- the sampling transaction, with the sample's time, kept as long as the
-- history. Ids are handed out in order, so an id below a sample's was
-- handed out before that sample: health() dates by it the xmin of a
-- standby's feedback, which has no time of its own (_xid_time).
CREATE TABLE pgtq._xid_clock (
    sampled_at  timestamptz NOT NULL,
    xid         xid8 NOT NULL,
    CONSTRAINT xid_clock_pkey PRIMARY KEY (sampled_at)
);
CREATE INDEX xid_clock_xid_idx ON pgtq._xid_clock (xid);

-- Guarantees: takes the sample of the queue history that is due at as_of,
-- if one is, and returns whether it did. A sample is due at the first
-- tick of each minute (as_of >= next_sample_at), or when the clock went
-- back more than a minute behind the last sample; never while the history
-- is off. Exactly once a minute however many sessions tick: the one-row
-- _sampler is locked FOR UPDATE SKIP LOCKED (a session never waits for
-- another) and the condition is checked under the lock; the next due time
-- moves on before the lock is released at commit, and a transaction that
-- rolls back leaves the sample to the next tick. The sample writes one
-- _history row per queue and task with live jobs, with jobs finished in
-- (period_start, as_of] (read through job_finished_idx: the jobs of that
-- period only, never the whole history), with lease expiries counted by
-- tick (_lease_expiry, consumed here), or with a non-zero row at the last
-- sample. period_start is the last sample, at most an hour back (a minute
-- back for the first). A job whose finishing transaction commits after
-- the sample that its finished_at falls before is not counted, nor one
-- pruned before the sample. It also writes the transaction-id clock's
-- entry (0.34.0: _xid_clock, the sample's time and this transaction's
-- id), after deleting any entry above that id (restored from another
-- cluster's dump). Then rows of both older than history_retention go.
-- Cost: one pass over the live jobs (their partial indexes) and one over
-- the period's finished jobs, once a minute. tick's step 5, apart so that
-- tick stays readable; it writes, so it runs with the owner's rights, and
-- is granted to nobody (only tick calls it).
CREATE OR REPLACE FUNCTION pgtq._sample_history(as_of timestamptz)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    previous_sample  timestamptz;
    period_start     timestamptz;
    retention        interval;
BEGIN
    SELECT h.last_sampled_at INTO previous_sample
    FROM pgtq._sampler AS h
    WHERE _sample_history.as_of >= h.next_sample_at
       OR _sample_history.as_of < h.last_sampled_at - interval '1 minute'
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    period_start := CASE
        WHEN previous_sample IS NULL OR previous_sample >= _sample_history.as_of
        THEN _sample_history.as_of - interval '1 minute'
        ELSE greatest(previous_sample, _sample_history.as_of - interval '1 hour')
    END;

    WITH live AS (
        SELECT l.queue, l.task,
               count(*) FILTER (WHERE l.state = 'scheduled') AS scheduled,
               count(*) FILTER (WHERE l.state = 'ready') AS ready,
               count(*) FILTER (WHERE l.state = 'running') AS running,
               min(l.run_at) FILTER (WHERE l.state = 'ready') AS oldest_ready_at
        FROM (SELECT j.queue, j.task, j.state, j.run_at FROM pgtq._job AS j WHERE j.state = 'scheduled'
              UNION ALL
              SELECT j.queue, j.task, j.state, j.run_at FROM pgtq._job AS j
              WHERE j.state = 'ready' AND j.lock_key IS NULL  -- job_ready_idx
              UNION ALL
              SELECT j.queue, j.task, j.state, j.run_at FROM pgtq._job AS j
              WHERE j.state = 'ready' AND j.lock_key IS NOT NULL  -- job_keyed_ready_idx
              UNION ALL
              SELECT j.queue, j.task, j.state, j.run_at FROM pgtq._job AS j WHERE j.state = 'running') AS l
        GROUP BY l.queue, l.task
    ), finished AS (
        SELECT f.queue, f.task,
               count(*) FILTER (WHERE f.state = 'done') AS completed,
               count(*) FILTER (WHERE f.state = 'failed') AS failed,
               count(*) FILTER (WHERE f.state = 'cancelled') AS cancelled
        FROM pgtq._job AS f
        WHERE f.state IN ('done', 'failed', 'cancelled')
          AND f.finished_at > period_start
          AND f.finished_at <= _sample_history.as_of
        GROUP BY f.queue, f.task
    ), counted AS (
        DELETE FROM pgtq._lease_expiry AS e RETURNING e.queue, e.task, e.jobs
    ), expiries AS (
        SELECT c.queue, c.task, sum(c.jobs)::bigint AS lease_expired
        FROM counted AS c
        GROUP BY c.queue, c.task
    ), keys AS (
        SELECT live.queue, live.task FROM live
        UNION SELECT finished.queue, finished.task FROM finished
        UNION SELECT expiries.queue, expiries.task FROM expiries
        UNION SELECT p.queue, p.task
              FROM pgtq._history AS p
              WHERE p.sampled_at = previous_sample
                AND p.scheduled + p.ready + p.running + p.completed + p.failed + p.cancelled
                    + p.lease_expired > 0
    )
    INSERT INTO pgtq._history AS h (sampled_at, period_start, queue, task, scheduled, ready, running,
                                    oldest_ready_at, completed, failed, cancelled, lease_expired)
    SELECT _sample_history.as_of, period_start, k.queue, k.task,
           coalesce(l.scheduled, 0), coalesce(l.ready, 0), coalesce(l.running, 0), l.oldest_ready_at,
           coalesce(f.completed, 0), coalesce(f.failed, 0), coalesce(f.cancelled, 0),
           coalesce(x.lease_expired, 0)
    FROM keys AS k
    LEFT JOIN live AS l ON l.queue = k.queue AND l.task = k.task
    LEFT JOIN finished AS f ON f.queue = k.queue AND f.task = k.task
    LEFT JOIN expiries AS x ON x.queue = k.queue AND x.task = k.task
    ON CONFLICT ON CONSTRAINT history_pkey DO NOTHING;

    -- An entry above this transaction's id cannot be of this cluster's
    -- past (a dump restored into another cluster brings them).
    DELETE FROM pgtq._xid_clock AS c WHERE c.xid > pg_current_xact_id();
    INSERT INTO pgtq._xid_clock AS c (sampled_at, xid)
    VALUES (_sample_history.as_of, pg_current_xact_id())
    ON CONFLICT ON CONSTRAINT xid_clock_pkey DO NOTHING;

    UPDATE pgtq._sampler AS h
    SET next_sample_at = date_trunc('minute', _sample_history.as_of, 'UTC') + interval '1 minute',
        last_sampled_at = _sample_history.as_of;
    SELECT s.history_retention INTO retention FROM pgtq._settings AS s;
    DELETE FROM pgtq._history AS h WHERE h.sampled_at <= _sample_history.as_of - retention;
    DELETE FROM pgtq._xid_clock AS c WHERE c.sampled_at <= _sample_history.as_of - retention;
    RETURN true;
END
$$;

-- Guarantees: changes the queue-wide settings that are given (a NULL
-- leaves a setting as it is) in the caller's transaction, and returns all
-- of them:
--   max_payload_bytes  the largest args + kwargs (bytes, as stored) that
--                      push accepts, at least 1 (default 1048576 = 1 MiB);
--                      jobs already pushed are not touched;
--   worker_timeout     how long tick keeps a worker that stopped reporting,
--                      more than 0 and at most 100 years (default 1 minute);
--   history_retention  how long the queue history keeps its samples, 0 to
--                      31 days (default 24 hours); 0 switches the history
--                      off and deletes it (and the transaction-id clock
--                      kept beside it, 0.34.0), a positive value after 0
--                      switches it on at the next tick; a shorter one
--                      trims at the next sample.
-- A bad value raises PT004 and changes nothing. Meant for pgtq_admin.
CREATE OR REPLACE FUNCTION pgtq.configure(max_payload_bytes integer DEFAULT NULL,
                               worker_timeout interval DEFAULT NULL,
                               history_retention interval DEFAULT NULL)
RETURNS pgtq.settings
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    applied pgtq.settings;
BEGIN
    IF configure.max_payload_bytes < 1 THEN
        RAISE EXCEPTION 'pgtq: max_payload_bytes must be at least 1, got %', configure.max_payload_bytes
            USING ERRCODE = 'PT004';
    END IF;
    IF configure.worker_timeout <= interval '0' OR configure.worker_timeout > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: worker_timeout must be a positive interval of at most 100 years, got %',
                configure.worker_timeout
            USING ERRCODE = 'PT004';
    END IF;
    IF configure.history_retention < interval '0' OR configure.history_retention > interval '31 days' THEN
        RAISE EXCEPTION 'pgtq: history_retention must be an interval between 0 and 31 days, got %',
                configure.history_retention
            USING ERRCODE = 'PT004';
    END IF;
    UPDATE pgtq._settings AS s
    SET max_payload_bytes = coalesce(configure.max_payload_bytes, s.max_payload_bytes),
        worker_timeout = coalesce(configure.worker_timeout, s.worker_timeout),
        history_retention = coalesce(configure.history_retention, s.history_retention);
    IF configure.history_retention = interval '0' THEN
        UPDATE pgtq._sampler AS h SET next_sample_at = 'infinity', last_sampled_at = NULL;
        DELETE FROM pgtq._history;
        DELETE FROM pgtq._xid_clock;
    ELSIF configure.history_retention > interval '0' THEN
        UPDATE pgtq._sampler AS h SET next_sample_at = '-infinity' WHERE h.next_sample_at = 'infinity';
    END IF;
    SELECT v.* INTO applied FROM pgtq.settings AS v;
    RETURN applied;
END
$$;

-- Guarantees: the time by which the transaction id `held` (the xmin of a
-- standby's feedback) had been handed out, by the transaction-id clock
-- (0.34.0, _xid_clock): the time of the clock's entry of the lowest id
-- at or above `held`. An xmin at or below an entry's id was taken before
-- that entry's transaction ended, and the horizon it holds keeps every
-- row version changed since that id: so it is at least as old as as_of
-- minus that time, to within the minute between samples. NULL when no
-- entry is at or above it (it is younger than the last sample, or the
-- history, and with it the clock, is off) or for a NULL `held`. Entries
-- at or above the next id this snapshot knows are not of this cluster's
-- past (a dump restored into another cluster brings them, until the next
-- sample deletes them): they date nothing. `held` has 32 bits: it is placed
-- within 2^31 ids of the next id this snapshot knows, below or above (a
-- feedback read after the snapshot may be a few ids ahead of it).
-- Read-only; only _health_cleanup calls it.
CREATE OR REPLACE FUNCTION pgtq._xid_time(held xid)
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH known AS (
        SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS next_id
    ), placed AS (
        -- next_id minus the signed 32-bit distance from held up to it
        SELECT k.next_id - (((k.next_id - held::text::bigint) % 4294967296 + 6442450944) % 4294967296
                            - 2147483648) AS held_id
        FROM known AS k
    )
    SELECT c.sampled_at
    FROM placed AS p
    JOIN known AS k ON true
    JOIN pgtq._xid_clock AS c ON c.xid >= p.held_id::text::xid8 AND c.xid < k.next_id::text::xid8
    ORDER BY c.xid
    LIMIT 1
$$;

-- Guarantees: the cleanup check of health(): one row. 'warning' names
-- what holds back the cleanup of dead rows, the worst first:
--   * (0.19.0) an inactive replication slot that keeps an xmin (the
--     feedback of a standby with hot_standby_feedback that is gone): it
--     holds the cleanup back in every database, however old, until its
--     standby is back or the slot is dropped, so it comes first, with the
--     age of its xmin in transactions (a slot has no time of its own)
--     and (0.34.0) its least age in time when the transaction-id clock
--     can date it (_xid_time);
--   * the oldest transaction of this database that began more than
--     `old_transaction` before as_of and holds a snapshot or a
--     transaction id (a client session other than the caller's, or a
--     prepared transaction): its age, pid, role, application and state,
--     and (0.22.0) how to end it: pg_terminate_backend(pid) for a
--     session, COMMIT PREPARED or ROLLBACK PREPARED for a prepared one;
--   * (0.34.0) a connected standby whose hot_standby_feedback keeps an
--     xmin older than `old_transaction` (its oldest query, or its replay
--     running behind): the standby's name, its slot (or none) and its
--     walsender's pid, and the least age of that xmin, dated by the
--     transaction-id clock (_xid_time: to within the minute between
--     samples, so it is named up to a minute late; with the history off
--     there is no clock, and it is not named). A walsender without a slot
--     is seen only by a caller with pg_read_all_stats, as
--     pg_stat_replication shows it.
-- 'ok' when there is none, 'unknown' when there is none in sight but the
-- caller (or the owner of pgtq, whose rights this runs with) may not see
-- every session. It shows only the sessions that pg_stat_activity shows
-- the session user (sessions of roles it has the rights of, or all with
-- pg_read_all_stats), so it reveals nothing more than the caller could
-- read there; pg_replication_slots is every role's to read.
CREATE OR REPLACE FUNCTION pgtq._health_cleanup(old_transaction interval, as_of timestamptz,
                                     OUT status text, OUT detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH sees_all AS (
        SELECT pg_has_role(session_user, 'pg_read_all_stats', 'USAGE')
               AND pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS yes
    ), feedback AS (
        -- A connected standby's feedback: its slot's xmin while the slot
        -- is in use, else the xmin its walsender holds.
        SELECT format('slot %s', quote_literal(r.slot_name)) AS source, r.active_pid AS pid,
               pgtq._xid_time(r.xmin) AS since
        FROM pg_replication_slots AS r
        WHERE r.active AND r.xmin IS NOT NULL
        UNION ALL
        SELECT 'no slot', w.pid, pgtq._xid_time(w.backend_xmin)
        FROM pg_stat_replication AS w
        JOIN sees_all AS s ON s.yes
        WHERE w.backend_xmin IS NOT NULL
    ), holders AS (
        SELECT '-infinity'::timestamptz AS since,  -- it never ends by itself: first
               format('an inactive replication slot %s (%s), whose xmin is %s transactions old%s,',
                      quote_literal(r.slot_name), r.slot_type, age(r.xmin),
                      (SELECT format(' (at least %s)', pgtq._health_age(_health_cleanup.as_of - t.taken))
                       FROM (SELECT pgtq._xid_time(r.xmin) AS taken) AS t
                       WHERE t.taken IS NOT NULL)) AS who,
               'its standby is back or the slot is dropped (pg_drop_replication_slot)' AS until,
               'the standby''s oldest snapshot' AS since_what
        FROM pg_replication_slots AS r
        WHERE NOT r.active AND r.xmin IS NOT NULL
        UNION ALL
        SELECT f.since,
               format('the standby %s (%s, walsender pid %s), whose oldest snapshot is at least %s old,',
                      coalesce((SELECT quote_literal(w.application_name)
                                FROM pg_stat_replication AS w
                                JOIN sees_all AS s ON s.yes
                                WHERE w.pid = f.pid), 'of a name only pg_read_all_stats sees'),
                      f.source, f.pid, pgtq._health_age(_health_cleanup.as_of - f.since)),
               'its oldest query there ends (the standby''s pg_stat_activity shows it), or it catches up '
               'with its replay, or hot_standby_feedback is turned off there',
               'that snapshot'
        FROM feedback AS f
        WHERE f.since < _health_cleanup.as_of - _health_cleanup.old_transaction
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
