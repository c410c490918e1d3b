-- pgtq 0.34.0 -> 0.35.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_35_0. Every definition here is the one of sql/pgtq.sql at
-- 0.35.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- At each end of a job of a max_running queue, _announce_freed looked for
-- a ready job of the queue from its first entry of job_ready_idx, stepping
-- over the entries of every job claimed since the table's last vacuum (and
-- beside a held snapshot, since it was taken): 84 us after 25,000 jobs
-- claimed, 365 us after 100,000, 8.8 ms beside a held snapshot. It now
-- looks from the queue's ready mark, as pop seeks (_has_ready_job, new).
-- Nothing changes for a queue without a limit or lock keys.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.35.0'::text $$;

-- Guarantees: whether `queue` has a ready job without a lock key, as the
-- calling statement sees it (0.35.0), read as pop reads the queue: from its ready mark when
-- tick set a fresh one (a job above the mark's priority, one of the
-- mark's priority from the mark on, or one of a lower priority), from the
-- queue's first entry of job_ready_idx otherwise. The mark is read by
-- pop's statement, and pop claims by it, so the two agree on what is
-- ready. With a fresh mark the look no longer steps over the entries of
-- the jobs claimed since the table's last vacuum (beside a held snapshot,
-- since the snapshot was taken); until 0.34.0 _announce_freed's look did,
-- at each end of a job of a max_running queue (84 us after 25,000 jobs
-- claimed, 365 us after 100,000). Runs with the settings of its one
-- caller, _announce_freed (generic plans; sorts, sequential and bitmap
-- scans off, as in pop; jit off), so that job_ready_idx alone serves each
-- look: a SET clause here would cost each call more than its look.
CREATE OR REPLACE FUNCTION pgtq._has_ready_job(queue text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    mark_priority integer;  -- the queue's ready mark (_ready_mark), if fresh
    mark_id       bigint;
BEGIN
    SELECT m.priority,
           least(m.low_id, (SELECT min(l.id) FROM pgtq._ready_mark_low AS l
                            WHERE l.queue = m.queue AND l.seq >= m.lows_from
                              AND l.priority = m.priority))
    INTO mark_priority, mark_id
    FROM (SELECT g.* FROM pgtq._ready_mark AS g
          WHERE g.queue = _has_ready_job.queue
          ORDER BY g.generation DESC
          LIMIT 1) AS m
    WHERE m.set_at > statement_timestamp() - interval '2 minutes';
    IF mark_id IS NULL THEN
        RETURN (SELECT r.id FROM pgtq._job AS r
                WHERE r.queue = _has_ready_job.queue AND r.state = 'ready' AND r.lock_key IS NULL
                ORDER BY r.priority DESC, r.id
                LIMIT 1) IS NOT NULL;
    END IF;
    -- Each look ordered, so that only job_ready_idx serves it; the mark's
    -- priority as a closed range, as pop's seek.
    RETURN (SELECT r.id FROM pgtq._job AS r
            WHERE r.queue = _has_ready_job.queue AND r.state = 'ready' AND r.lock_key IS NULL
              AND r.priority > mark_priority
            ORDER BY r.priority DESC, r.id
            LIMIT 1) IS NOT NULL
        OR (SELECT r.id FROM pgtq._job AS r
            WHERE r.queue = _has_ready_job.queue AND r.state = 'ready' AND r.lock_key IS NULL
              AND r.priority <= mark_priority AND r.priority >= mark_priority AND r.id >= mark_id
            ORDER BY r.priority DESC, r.id
            LIMIT 1) IS NOT NULL
        OR (SELECT r.id FROM pgtq._job AS r
            WHERE r.queue = _has_ready_job.queue AND r.state = 'ready' AND r.lock_key IS NULL
              AND r.priority < mark_priority
            ORDER BY r.priority DESC, r.id
            LIMIT 1) IS NOT NULL;
END
$$;

-- Guarantees: _wake_after_end's look, for ends that may free a slot or a
-- lock key (0.30.0: its own function): each of `queues` that has a
-- max_running and ready jobs is announced (_announce, at commit); so is
-- the queue of the next ready job of each of `lock_keys` (NULLs ignored),
-- unless that job was handed to an idle worker's open offer (0.31.0,
-- _hand_freed_key; only where a worker may be waiting, _must_announce),
-- or a running job with a live lease holds the key again (0.31.0: the pop
-- of complete_many_and_pop took the key's next job in the same
-- transaction; until 0.30.0 its queue was announced all the same, and
-- every idle worker of it popped, and walked its backlog, for nothing).
-- The next job of a key is read from job_lock_key_ready_idx, which gives
-- the key's jobs in their order; with sorts off that is the only plan
-- without a sort (jit off with it, as 00-api.sql asks of disabled plans;
-- 0.35.0: sequential and bitmap scans off too, for _has_ready_job).
-- Until 0.29.0 a session that planned it while the job table was empty
-- could take job_ready_idx instead, every ready job of every queue at
-- each end of a keyed job (11,970 entries a complete, against 6).
CREATE OR REPLACE FUNCTION pgtq._announce_freed(queues text[], lock_keys text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET jit = off
AS $$
DECLARE
    freed record;  -- a freed key's next ready job
BEGIN
    PERFORM pgtq._announce(f.queue)
    FROM pgtq._queue AS f
    WHERE f.queue = ANY (_announce_freed.queues)
      AND f.max_running IS NOT NULL
      -- A ready job without a lock key (0.35.0: from the queue's ready
      -- mark, _has_ready_job) or with one (0.32.0: its own index), looked
      -- for in order, as tick does: two EXISTS joined by OR may be planned
      -- as hashed subplans, which read every ready job of the table (a
      -- plan made on an empty table did).
      AND (pgtq._has_ready_job(f.queue)
           OR (SELECT r.id FROM pgtq._job AS r
               WHERE r.queue = f.queue AND r.state = 'ready' AND r.lock_key IS NOT NULL
               ORDER BY r.priority DESC, r.id
               LIMIT 1) IS NOT NULL);
    FOR freed IN
        SELECT n.id, n.queue, k.key
        FROM (SELECT DISTINCT u.key FROM unnest(_announce_freed.lock_keys) AS u (key)
              WHERE u.key IS NOT NULL) AS k
        CROSS JOIN LATERAL (SELECT h.id, h.queue FROM pgtq._job AS h
                            WHERE h.lock_key = k.key AND h.state = 'ready'
                            ORDER BY h.priority DESC, h.id
                            LIMIT 1) AS n
    LOOP
        CONTINUE WHEN NOT pgtq._must_announce(freed.queue);
        -- A key that a running job holds again wakes nobody: the pop of
        -- complete_many_and_pop, in this transaction, took its next job.
        CONTINUE WHEN EXISTS (SELECT 1 FROM pgtq._job AS r
                              WHERE r.lock_key = freed.key
                                AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
                                AND r.lease_expires_at > now());
        IF NOT pgtq._hand_freed_key(freed.id, freed.queue, freed.key) THEN
            PERFORM pg_notify('pgtq', freed.queue);
        END IF;
    END LOOP;
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
