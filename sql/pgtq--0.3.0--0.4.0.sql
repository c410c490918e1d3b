-- pgtq 0.3.0 -> 0.4.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_4_0. Every definition here is the one of sql/pgtq.sql at
-- 0.4.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- No call changes. The calls that find a claimed job by its id and lease
-- (complete, complete_many, fail, abort, heartbeat, heartbeat_many,
-- release) match the lease alone, no longer also state = 'running': a
-- lease implies running (job_running_has_lease_ck), and with the state
-- test the planner could walk job_running_idx, every running job, for
-- each id instead of one job_pkey probe. It did whenever the statistics
-- of pgtq._job were taken while few jobs ran: complete_many of 100 jobs
-- compared each with every running job, and heartbeat_many of 100 leases
-- beside 5,000 running jobs took 200 ms.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.4.0'::text $$;

-- ===========================================================================
-- One job_pkey probe per claimed job
-- ===========================================================================

-- Guarantees: ends the attempt of a running job as a success, if and only
-- if `lease` is the job's current lease; returns whether it did. The job
-- becomes done with `result` stored; if a cancel was requested while it
-- ran it becomes cancelled instead (the result is kept for the record).
-- A stale lease (the job was rescued and handed on), a forged one or an
-- unknown id changes nothing. Calling it twice completes once: the second
-- call finds no lease and returns false. The job's waiters (watch()) are
-- told at commit; a job nobody waits for notifies nobody. Its slot of a
-- max_running queue and its lock key are free once this commits, and the
-- workers that may take them are told (_wake_after_end). A NULL id,
-- lease or as_of is a caller's bug and raises PT004.
CREATE OR REPLACE FUNCTION pgtq.complete(id bigint,
                              lease uuid,
                              result jsonb DEFAULT NULL,
                              as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    ended_id    bigint;
    ended_queue text;
    ended_key   text;
BEGIN
    IF complete.id IS NULL OR complete.lease IS NULL THEN
        PERFORM pgtq._reject_claim('complete', complete.id, complete.lease);
    END IF;
    IF NOT coalesce(isfinite(complete.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', complete.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'done' ELSE 'cancelled' END::pgtq.job_state,
        finished_at = complete.as_of,
        result = complete.result,
        lease = NULL,
        lease_expires_at = NULL
    WHERE j.id = complete.id
      AND j.lease = complete.lease  -- so running (job_running_has_lease_ck)
    RETURNING CASE WHEN j.waiters > 0 THEN pgtq._tell_waiters(j.id) ELSE j.id END, j.queue, j.lock_key
    INTO ended_id, ended_queue, ended_key;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pgtq._wake_after_end(ARRAY[ended_queue], ARRAY[ended_key]);
    RETURN true;
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
AS $$
DECLARE
    ended_ids    bigint[];
    ended_queues text[];
    ended_keys   text[];
BEGIN
    IF complete_many.ids IS NULL OR complete_many.leases IS NULL
       OR cardinality(complete_many.ids) <> cardinality(complete_many.leases)
       OR cardinality(complete_many.ids) > 10000
       OR (complete_many.results IS NOT NULL
           AND cardinality(complete_many.results) <> cardinality(complete_many.ids)) THEN
        RAISE EXCEPTION 'pgtq: complete_many needs ids and leases (and results, if given) of one length '
                        'of at most 10000, got % ids, % leases and % results',
                coalesce(cardinality(complete_many.ids)::text, 'NULL'),
                coalesce(cardinality(complete_many.leases)::text, 'NULL'),
                coalesce(cardinality(complete_many.results)::text, 'no')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(complete_many.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', complete_many.as_of);
    END IF;
    WITH ended AS (
        UPDATE pgtq._job AS j
        SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'done' ELSE 'cancelled' END::pgtq.job_state,
            finished_at = complete_many.as_of,
            result = claims.result,
            lease = NULL,
            lease_expires_at = NULL
        FROM unnest(complete_many.ids, complete_many.leases, complete_many.results) AS claims (id, lease, result)
        WHERE j.id = claims.id
          AND j.lease = claims.lease  -- so running (job_running_has_lease_ck)
        RETURNING CASE WHEN j.waiters > 0 THEN pgtq._tell_waiters(j.id) ELSE j.id END AS id, j.queue, j.lock_key
    )
    SELECT array_agg(e.id), array_agg(DISTINCT e.queue), array_agg(e.lock_key) FILTER (WHERE e.lock_key IS NOT NULL)
    INTO ended_ids, ended_queues, ended_keys
    FROM ended AS e;
    IF ended_ids IS NOT NULL THEN
        PERFORM pgtq._wake_after_end(ended_queues, ended_keys);
    END IF;
    RETURN QUERY SELECT u.id FROM unnest(ended_ids) AS u (id);
END
$$;

-- Guarantees: records `error` for the failed attempt of a running job whose
-- current lease is `lease`, and returns the state the job moves to:
--   * a cancel was requested while it ran: cancelled, never retried;
--   * attempts remain: it is retried at as_of + retry_in, or without
--     retry_in at as_of + backoff(attempt, backoff_base, backoff_cap) with
--     the job's own policy: scheduled, or ready when that time has come. A
--     retry asked with retry_in (pgtq.Retry in Python) counts as an
--     attempt like any failure, so a handler that always asks to retry
--     still stops after max_attempts. A keyed job whose key another
--     pending job holds by now is not retried: it is cancelled, superseded
--     by that job (_requeue_keyed);
--   * no attempt left: failed, kept for inspection.
-- (_end_failed_attempt applies this rule, the lease rescue in tick too.)
-- Returns NULL (changing nothing) when the lease is stale or the job is not
-- running. Waiters are told when the job finished. A NULL id, lease, error
-- or as_of, or a retry_in outside 0..100 years, raises PT004.
CREATE OR REPLACE FUNCTION pgtq.fail(id bigint,
                          lease uuid,
                          error text,
                          retry_in interval DEFAULT NULL,
                          as_of timestamptz DEFAULT now())
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    failed_job  pgtq._job%ROWTYPE;
BEGIN
    IF fail.id IS NULL OR fail.lease IS NULL THEN
        PERFORM pgtq._reject_claim('fail', fail.id, fail.lease);
    END IF;
    IF fail.error IS NULL THEN
        RAISE EXCEPTION 'pgtq: error must not be NULL (say why the attempt failed)'
            USING ERRCODE = 'PT004';
    END IF;
    IF fail.retry_in < interval '0' OR fail.retry_in > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: retry_in must be between 0 and 100 years, got %', fail.retry_in
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(fail.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', fail.as_of);
    END IF;

    SELECT j.* INTO failed_job
    FROM pgtq._job AS j
    WHERE j.id = fail.id AND j.lease = fail.lease  -- so running (job_running_has_lease_ck)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    RETURN pgtq._end_failed_attempt(
        failed_job, fail.error,
        fail.as_of + coalesce(fail.retry_in,
                              pgtq.backoff(failed_job.attempt, failed_job.backoff_base, failed_job.backoff_cap)),
        fail.as_of)::text;
END
$$;

-- Guarantees: ends a running job whose current lease is `lease` at once,
-- with no further attempt whatever attempts remain (pgtq.Abort in Python:
-- the handler knows retrying cannot help): it becomes failed with `error`
-- as its last error, or cancelled if a cancel was requested while it ran,
-- and is kept for inspection (retry() can run it again). Returns the new
-- state, or NULL (changing nothing) when the lease is stale or the job is
-- not running. Waiters are told, the slot and lock key freed announced
-- (_wake_after_end). A NULL id, lease, error or as_of raises PT004.
CREATE OR REPLACE FUNCTION pgtq.abort(id bigint,
                           lease uuid,
                           error text,
                           as_of timestamptz DEFAULT now())
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    new_state   pgtq.job_state;
    waiting     integer;
    ended_queue text;
    ended_key   text;
BEGIN
    IF abort.id IS NULL OR abort.lease IS NULL THEN
        PERFORM pgtq._reject_claim('abort', abort.id, abort.lease);
    END IF;
    IF abort.error IS NULL THEN
        RAISE EXCEPTION 'pgtq: error must not be NULL (say why the job is aborted)'
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(abort.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', abort.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'failed' ELSE 'cancelled' END::pgtq.job_state,
        finished_at = abort.as_of,
        last_error = abort.error,
        lease = NULL,
        lease_expires_at = NULL
    WHERE j.id = abort.id
      AND j.lease = abort.lease  -- so running (job_running_has_lease_ck)
    RETURNING j.state, j.waiters, j.queue, j.lock_key INTO new_state, waiting, ended_queue, ended_key;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF waiting > 0 THEN
        PERFORM pgtq._tell_waiters(abort.id);
    END IF;
    PERFORM pgtq._wake_after_end(ARRAY[ended_queue], ARRAY[ended_key]);
    RETURN new_state::text;
END
$$;

-- Guarantees: extends the lease of a running job to as_of + extend_by, if
-- `lease` is still its current lease; returns whether it did. A worker
-- calls it while a long handler runs so tick never rescues a live job.
-- It never shortens a lease. A NULL id, lease or as_of, or an extend_by
-- outside (0, 100 years], raises PT004. heartbeat_many does the same for a
-- batch and also reports cancel requests.
CREATE OR REPLACE FUNCTION pgtq.heartbeat(id bigint,
                               lease uuid,
                               extend_by interval DEFAULT '5 minutes',
                               as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF heartbeat.id IS NULL OR heartbeat.lease IS NULL THEN
        PERFORM pgtq._reject_claim('heartbeat', heartbeat.id, heartbeat.lease);
    END IF;
    IF heartbeat.extend_by IS NULL OR heartbeat.extend_by <= interval '0'
       OR heartbeat.extend_by > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: extend_by must be a positive interval of at most 100 years, got %',
                coalesce(heartbeat.extend_by::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(heartbeat.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', heartbeat.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET lease_expires_at = greatest(j.lease_expires_at, heartbeat.as_of + heartbeat.extend_by)
    WHERE j.id = heartbeat.id
      AND j.lease = heartbeat.lease;  -- so running (job_running_has_lease_ck)
    RETURN FOUND;
END
$$;

-- Guarantees: heartbeat() for a whole batch in one statement, and how a
-- worker learns of cancel requests at no extra cost. For each pair
-- (ids[i], leases[i]) it extends that job's lease to as_of + extend_by
-- (never shortening it) if the lease is still the job's current one, and
-- returns one row per pair, in the order given:
--   held              the lease is current: the worker still holds the job;
--   cancel_requested  cancel() was called on the job: stop its handler;
--                     whatever the worker reports next ends it cancelled.
-- A job asked to cancel still gets its lease extended, so tick does not
-- rescue it while its handler stops. A worker that LISTENs on pgtq_cancel
-- learns sooner. The arrays must have the same length (at most 10,000)
-- and extend_by lie in (0, 100 years]; otherwise, or with a NULL or
-- infinite as_of, it raises PT004 and extends nothing.
CREATE OR REPLACE FUNCTION pgtq.heartbeat_many(ids bigint[],
                                    leases uuid[],
                                    extend_by interval DEFAULT '5 minutes',
                                    as_of timestamptz DEFAULT now())
RETURNS TABLE (id bigint, held boolean, cancel_requested boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF heartbeat_many.ids IS NULL OR heartbeat_many.leases IS NULL
       OR cardinality(heartbeat_many.ids) <> cardinality(heartbeat_many.leases)
       OR cardinality(heartbeat_many.ids) > 10000 THEN
        RAISE EXCEPTION 'pgtq: heartbeat_many needs ids and leases of one length of at most 10000, '
                        'got % ids and % leases',
                coalesce(cardinality(heartbeat_many.ids)::text, 'NULL'),
                coalesce(cardinality(heartbeat_many.leases)::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF heartbeat_many.extend_by IS NULL OR heartbeat_many.extend_by <= interval '0'
       OR heartbeat_many.extend_by > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: extend_by must be a positive interval of at most 100 years, got %',
                coalesce(heartbeat_many.extend_by::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(heartbeat_many.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', heartbeat_many.as_of);
    END IF;
    RETURN QUERY
    WITH claim AS (
        SELECT c.id, c.lease, c.position
        FROM unnest(heartbeat_many.ids, heartbeat_many.leases) WITH ORDINALITY AS c (id, lease, position)
    ), beaten AS (
        UPDATE pgtq._job AS j
        SET lease_expires_at = greatest(j.lease_expires_at, heartbeat_many.as_of + heartbeat_many.extend_by)
        FROM claim
        WHERE j.id = claim.id
          AND j.lease = claim.lease  -- so running (job_running_has_lease_ck)
        RETURNING j.id, j.lease, j.cancel_requested_at IS NOT NULL AS asked
    )
    SELECT claim.id, beaten.id IS NOT NULL, coalesce(beaten.asked, false)
    FROM claim
    LEFT JOIN beaten ON beaten.id = claim.id AND beaten.lease = claim.lease
    ORDER BY claim.position;
END
$$;

-- Guarantees: hands a running job back without counting the attempt (a
-- worker shutting down gracefully), if `lease` is its current lease: it
-- becomes ready at once with its attempt count restored. If a cancel was
-- requested it ends cancelled instead (at as_of); a keyed job whose key
-- another pending job holds by now ends cancelled, superseded by it
-- (_requeue_keyed). Returns whether it did. Waiters of a job that ended
-- are told; the slot and lock key it held are announced free
-- (_wake_after_end). A NULL id or lease, or a NULL or infinite as_of,
-- raises PT004.
CREATE OR REPLACE FUNCTION pgtq.release(id bigint, lease uuid, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    held      pgtq._job%ROWTYPE;
    new_state pgtq.job_state;
BEGIN
    IF release.id IS NULL OR release.lease IS NULL THEN
        PERFORM pgtq._reject_claim('release', release.id, release.lease);
    END IF;
    IF NOT coalesce(isfinite(release.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', release.as_of);
    END IF;
    SELECT j.* INTO held
    FROM pgtq._job AS j
    WHERE j.id = release.id AND j.lease = release.lease  -- so running (job_running_has_lease_ck)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    IF held.cancel_requested_at IS NOT NULL THEN
        UPDATE pgtq._job AS j
        SET state = 'cancelled',
            finished_at = release.as_of,
            lease = NULL,
            lease_expires_at = NULL
        WHERE j.id = held.id;
        new_state := 'cancelled';
        IF held.waiters > 0 THEN
            PERFORM pgtq._tell_waiters(held.id);
        END IF;
    ELSIF held.job_key IS NOT NULL THEN
        new_state := pgtq._requeue_keyed(held.id, 'ready', held.run_at, held.attempt - 1, NULL, NULL,
                                         held.last_error, release.as_of);
    ELSE
        UPDATE pgtq._job AS j
        SET state = 'ready',
            attempt = j.attempt - 1,
            lease = NULL,
            lease_expires_at = NULL,
            started_at = NULL,
            worker = NULL
        WHERE j.id = held.id;
        new_state := 'ready';
    END IF;
    IF new_state = 'ready' THEN
        PERFORM pgtq._announce(held.queue);
    END IF;
    PERFORM pgtq._wake_after_end(ARRAY[held.queue], ARRAY[held.lock_key]);
    RETURN true;
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
