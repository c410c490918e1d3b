-- pgtq 0.1.0 -> 0.1.1: fixes, no new API. Hand-written; never edited once
-- released. Runs as the update script of `ALTER EXTENSION pgtq UPDATE` and
-- from the alembic revision pgtq_0_1_1. Every definition here is the one of
-- sql/pgtq.sql at 0.1.1, to the letter (a test compares the catalogs).
--
--   * backoff() is PARALLEL RESTRICTED: it calls random(), which is.
--   * The errors for a bad time and for a missing id or lease are worded by
--     two helpers (_reject_time, _reject_claim), called only when the
--     inline test fails; the messages are unchanged.
--   * tick() announces the queues it promoted with a plain PERFORM (0.1.0
--     used a CTE whose count was read only to make it run).
--   * push_many() without kwargs reports an element over the payload limit
--     as PT005 (0.1.0 said PT002, "kwargs of job N must be a JSON object").

-- ---------------------------------------------------------------------------
-- New helpers
-- ---------------------------------------------------------------------------

CREATE FUNCTION pgtq._reject_time(parameter text, value timestamptz)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'pgtq: % must be a finite time, got %', parameter, coalesce(value::text, 'NULL')
        USING ERRCODE = 'PT004';
END
$$;

CREATE FUNCTION pgtq._reject_claim(operation text, id bigint, lease uuid)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'pgtq: % needs a job id and its lease, got id % and lease %',
            operation, coalesce(id::text, 'NULL'), coalesce(lease::text, 'NULL')
        USING ERRCODE = 'PT004';
END
$$;

-- ---------------------------------------------------------------------------
-- backoff: PARALLEL RESTRICTED
-- ---------------------------------------------------------------------------

ALTER FUNCTION pgtq.backoff(integer, interval, interval) PARALLEL RESTRICTED;

-- ---------------------------------------------------------------------------
-- Functions whose checks now call the helpers (bodies otherwise unchanged),
-- tick, and version
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.1.1'::text $$;

CREATE OR REPLACE FUNCTION pgtq._check_push_options(queue text, task text, priority integer, max_attempts integer,
                                         run_at timestamptz, as_of timestamptz)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._checked_name('queue', queue);
    PERFORM pgtq._checked_name('task', task);
    IF priority IS NULL THEN
        RAISE EXCEPTION 'pgtq: priority must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    IF max_attempts IS NULL OR max_attempts < 1 OR max_attempts > 1000 THEN
        RAISE EXCEPTION 'pgtq: max_attempts must be between 1 and 1000, got %',
                coalesce(max_attempts::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', as_of);
    END IF;
    IF run_at IS NOT NULL AND NOT isfinite(run_at) THEN
        PERFORM pgtq._reject_time('run_at', run_at);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION pgtq.push_many(queue text,
                               task text,
                               args jsonb[],
                               kwargs jsonb[] DEFAULT NULL,
                               run_at timestamptz DEFAULT NULL,
                               priority integer DEFAULT 0,
                               max_attempts integer DEFAULT 25,
                               as_of timestamptz DEFAULT now())
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    payload_limit integer;
    bad           record;
    due           timestamptz;
    new_state     pgtq.job_state;
BEGIN
    IF NOT pgtq._push_options_ok(push_many.queue, push_many.task, push_many.priority,
                                 push_many.max_attempts, push_many.run_at, push_many.as_of) THEN
        PERFORM pgtq._check_push_options(push_many.queue, push_many.task, push_many.priority,
                                         push_many.max_attempts, push_many.run_at, push_many.as_of);
    END IF;
    IF push_many.args IS NULL OR cardinality(push_many.args) > 100000
       OR (push_many.kwargs IS NOT NULL AND cardinality(push_many.kwargs) <> cardinality(push_many.args)) THEN
        RAISE EXCEPTION 'pgtq: push_many needs args (and kwargs, if given) of one length of at most 100000, '
                        'got % args and % kwargs',
                coalesce(cardinality(push_many.args)::text, 'NULL'),
                coalesce(cardinality(push_many.kwargs)::text, 'no')
            USING ERRCODE = 'PT004';
    END IF;

    SELECT s.max_payload_bytes INTO payload_limit FROM pgtq._settings AS s;
    SELECT e.position, e.a, e.k, pg_column_size(e.a) + coalesce(pg_column_size(e.k), 0) AS size INTO bad
    FROM unnest(push_many.args, push_many.kwargs) WITH ORDINALITY AS e (a, k, position)
    WHERE e.a IS NULL OR jsonb_typeof(e.a) <> 'array'
       OR (push_many.kwargs IS NOT NULL AND (e.k IS NULL OR jsonb_typeof(e.k) <> 'object'))
       OR pg_column_size(e.a) + coalesce(pg_column_size(e.k), 0) > payload_limit
    ORDER BY e.position
    LIMIT 1;
    IF FOUND THEN
        IF bad.a IS NULL OR jsonb_typeof(bad.a) <> 'array' THEN
            RAISE EXCEPTION 'pgtq: args of job % must be a JSON array, got %',
                    bad.position, coalesce(jsonb_typeof(bad.a), 'NULL')
                USING ERRCODE = 'PT001';
        ELSIF push_many.kwargs IS NOT NULL AND (bad.k IS NULL OR jsonb_typeof(bad.k) <> 'object') THEN
            RAISE EXCEPTION 'pgtq: kwargs of job % must be a JSON object, got %',
                    bad.position, coalesce(jsonb_typeof(bad.k), 'NULL')
                USING ERRCODE = 'PT002';
        END IF;
        RAISE EXCEPTION 'pgtq: payload of job % of task % is % bytes, over the limit of % bytes',
                bad.position, quote_literal(push_many.task), bad.size, payload_limit
            USING ERRCODE = 'PT005';
    END IF;

    due := coalesce(push_many.run_at, push_many.as_of);
    new_state := CASE WHEN due <= push_many.as_of THEN 'ready' ELSE 'scheduled' END;
    RETURN QUERY
    INSERT INTO pgtq._job AS j (queue, task, args, kwargs, state, priority, max_attempts, run_at, created_at)
    SELECT push_many.queue, push_many.task, e.a, coalesce(e.k, '{}'), new_state,
           push_many.priority, push_many.max_attempts, due, push_many.as_of
    FROM unnest(push_many.args, push_many.kwargs) WITH ORDINALITY AS e (a, k, position)
    ORDER BY e.position
    RETURNING j.id;
    IF new_state = 'ready' AND cardinality(push_many.args) > 0 THEN
        PERFORM pgtq._announce(push_many.queue);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION pgtq.pop(queue text,
                         worker text DEFAULT NULL,
                         n integer DEFAULT 1,
                         lease interval DEFAULT '5 minutes',
                         as_of timestamptz DEFAULT now())
RETURNS SETOF pgtq.claimed_job
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF NOT pgtq._is_plain_name(pop.queue)
       OR (pop.worker IS NOT NULL AND NOT pgtq._is_plain_name(pop.worker)) THEN
        PERFORM pgtq._checked_name('queue', pop.queue);
        PERFORM pgtq._checked_name('worker', coalesce(pop.worker, 'unnamed'));
    END IF;
    IF pop.n IS NULL OR pop.n < 1 OR pop.n > 10000 THEN
        RAISE EXCEPTION 'pgtq: n must be between 1 and 10000, got %', coalesce(pop.n::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF pop.lease IS NULL OR pop.lease <= interval '0' OR pop.lease > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: lease must be a positive interval of at most 100 years, got %',
                coalesce(pop.lease::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(pop.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', pop.as_of);
    END IF;

    RETURN QUERY
    WITH claimable AS MATERIALIZED (
        SELECT c.id
        FROM pgtq._job AS c
        WHERE c.queue = pop.queue AND c.state = 'ready'
        ORDER BY c.priority DESC, c.id
        LIMIT pop.n
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE pgtq._job AS j
        SET state = 'running',
            attempt = j.attempt + 1,
            lease = gen_random_uuid(),
            lease_expires_at = pop.as_of + pop.lease,
            started_at = pop.as_of,
            worker = pop.worker
        FROM claimable
        WHERE j.id = claimable.id
        RETURNING j.id, j.queue, j.task, j.args, j.kwargs, j.priority,
                  j.attempt, j.max_attempts, j.lease, j.lease_expires_at
    )
    SELECT claimed.* FROM claimed ORDER BY claimed.priority DESC, claimed.id;
END
$$;

CREATE OR REPLACE FUNCTION pgtq.complete(id bigint,
                              lease uuid,
                              result jsonb DEFAULT NULL,
                              as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF complete.id IS NULL OR complete.lease IS NULL THEN
        PERFORM pgtq._reject_claim('complete', complete.id, complete.lease);
    END IF;
    IF NOT coalesce(isfinite(complete.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', complete.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET state = 'done',
        finished_at = complete.as_of,
        result = complete.result,
        lease = NULL,
        lease_expires_at = NULL
    WHERE j.id = complete.id
      AND j.lease = complete.lease
      AND j.state = 'running';
    RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION pgtq.complete_many(ids bigint[],
                                   leases uuid[],
                                   results jsonb[] DEFAULT NULL,
                                   as_of timestamptz DEFAULT now())
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
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
    RETURN QUERY
    UPDATE pgtq._job AS j
    SET state = 'done',
        finished_at = complete_many.as_of,
        result = claims.result,
        lease = NULL,
        lease_expires_at = NULL
    FROM unnest(complete_many.ids, complete_many.leases, complete_many.results) AS claims (id, lease, result)
    WHERE j.id = claims.id
      AND j.lease = claims.lease
      AND j.state = 'running'
    RETURNING j.id;
END
$$;

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
    retry_at    timestamptz;
    new_state   pgtq.job_state;
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
    WHERE j.id = fail.id AND j.lease = fail.lease AND j.state = 'running'
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    retry_at := fail.as_of + coalesce(fail.retry_in, pgtq.backoff(failed_job.attempt));
    new_state := pgtq._state_after_failure(failed_job.attempt, failed_job.max_attempts,
                                           retry_at, fail.as_of);
    UPDATE pgtq._job AS j
    SET state = new_state,
        run_at = CASE WHEN new_state = 'failed' THEN j.run_at ELSE retry_at END,
        finished_at = CASE WHEN new_state = 'failed' THEN fail.as_of END,
        last_error = fail.error,
        lease = NULL,
        lease_expires_at = NULL
    WHERE j.id = failed_job.id;

    IF new_state = 'ready' THEN
        PERFORM pgtq._announce(failed_job.queue);
    END IF;
    RETURN new_state::text;
END
$$;

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
      AND j.lease = heartbeat.lease
      AND j.state = 'running';
    RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION pgtq.release(id bigint, lease uuid)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    released_queue text;
BEGIN
    IF release.id IS NULL OR release.lease IS NULL THEN
        PERFORM pgtq._reject_claim('release', release.id, release.lease);
    END IF;
    UPDATE pgtq._job AS j
    SET state = 'ready',
        attempt = j.attempt - 1,
        lease = NULL,
        lease_expires_at = NULL,
        started_at = NULL,
        worker = NULL
    WHERE j.id = release.id
      AND j.lease = release.lease
      AND j.state = 'running'
    RETURNING j.queue INTO released_queue;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pgtq._announce(released_queue);
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION pgtq.tick(queue text DEFAULT NULL,
                          as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    promoted        integer;
    promoted_queues text[];
    rescued         integer;
    worker_timeout  interval;
BEGIN
    IF tick.queue IS NOT NULL THEN
        PERFORM pgtq._checked_name('queue', tick.queue);
    END IF;
    IF NOT coalesce(isfinite(tick.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', tick.as_of);
    END IF;
    WITH due AS MATERIALIZED (
        SELECT d.id
        FROM pgtq._job AS d
        WHERE d.state = 'scheduled'
          AND d.run_at <= tick.as_of
          AND (tick.queue IS NULL OR d.queue = tick.queue)
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        UPDATE pgtq._job AS j
        SET state = 'ready'
        FROM due
        WHERE j.id = due.id
        RETURNING j.queue
    )
    SELECT count(*), coalesce(array_agg(DISTINCT moved.queue), '{}')
    INTO promoted, promoted_queues
    FROM moved;
    -- Each queue that got ready jobs is announced once.
    PERFORM pgtq._announce(q.queue) FROM unnest(promoted_queues) AS q (queue);

    WITH expired AS MATERIALIZED (
        SELECT e.id, e.attempt, e.max_attempts,
               tick.as_of + pgtq.backoff(e.attempt) AS retry_at
        FROM pgtq._job AS e
        WHERE e.state = 'running'
          AND e.lease_expires_at < tick.as_of
          AND (tick.queue IS NULL OR e.queue = tick.queue)
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        UPDATE pgtq._job AS j
        SET state = pgtq._state_after_failure(expired.attempt, expired.max_attempts,
                                              expired.retry_at, tick.as_of),
            run_at = CASE WHEN expired.attempt >= expired.max_attempts THEN j.run_at
                          ELSE expired.retry_at END,
            finished_at = CASE WHEN expired.attempt >= expired.max_attempts THEN tick.as_of END,
            last_error = format('lease expired at %s (worker %s stopped without completing the job)',
                                j.lease_expires_at, coalesce(j.worker, 'unknown')),
            lease = NULL,
            lease_expires_at = NULL
        FROM expired
        WHERE j.id = expired.id
        RETURNING j.id
    )
    SELECT count(*) INTO rescued FROM moved;

    -- Forget workers that stopped without saying goodbye.
    SELECT s.worker_timeout INTO worker_timeout FROM pgtq._settings AS s;
    DELETE FROM pgtq._worker AS w WHERE w.last_seen_at < tick.as_of - worker_timeout;

    RETURN promoted + rescued;
END
$$;

CREATE OR REPLACE FUNCTION pgtq.cancel(id bigint, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF cancel.id IS NULL THEN
        RAISE EXCEPTION 'pgtq: id must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(cancel.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', cancel.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET state = 'cancelled',
        finished_at = cancel.as_of
    WHERE j.id = cancel.id
      AND j.state IN ('scheduled', 'ready');
    RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION pgtq.retry(id bigint, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    retried_queue text;
BEGIN
    IF retry.id IS NULL THEN
        RAISE EXCEPTION 'pgtq: id must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(retry.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', retry.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET state = 'ready',
        attempt = 0,
        run_at = retry.as_of,
        started_at = NULL,
        finished_at = NULL,
        worker = NULL
    WHERE j.id = retry.id
      AND j.state IN ('failed', 'cancelled')
    RETURNING j.queue INTO retried_queue;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pgtq._announce(retried_queue);
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION pgtq.prune(older_than interval,
                           include_failed boolean DEFAULT false,
                           batch integer DEFAULT 10000,
                           as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    deleted integer;
BEGIN
    IF prune.older_than IS NULL OR prune.older_than < interval '0'
       OR prune.older_than > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: older_than must be an interval between 0 and 100 years, got %',
                coalesce(prune.older_than::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF prune.include_failed IS NULL THEN
        RAISE EXCEPTION 'pgtq: include_failed must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    IF prune.batch IS NULL OR prune.batch < 1 OR prune.batch > 1000000 THEN
        RAISE EXCEPTION 'pgtq: batch must be between 1 and 1000000, got %', coalesce(prune.batch::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(prune.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', prune.as_of);
    END IF;
    WITH old AS MATERIALIZED (
        SELECT o.id
        FROM pgtq._job AS o
        WHERE o.state IN ('done', 'failed', 'cancelled')
          AND o.finished_at < prune.as_of - prune.older_than
          AND (o.state <> 'failed' OR prune.include_failed)
        ORDER BY o.finished_at
        LIMIT prune.batch
        FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM pgtq._job AS j USING old WHERE j.id = old.id RETURNING j.id
    )
    SELECT count(*) INTO deleted FROM gone;
    RETURN deleted;
END
$$;

CREATE OR REPLACE FUNCTION pgtq.register_worker(worker text,
                                     host text,
                                     pid integer,
                                     queues text[],
                                     as_of timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._checked_name('worker', register_worker.worker);
    IF NOT coalesce(isfinite(register_worker.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', register_worker.as_of);
    END IF;
    INSERT INTO pgtq._worker AS w (id, host, pid, queues, started_at, last_seen_at)
    VALUES (register_worker.worker, coalesce(register_worker.host, ''),
            coalesce(register_worker.pid, 0), coalesce(register_worker.queues, '{}'),
            register_worker.as_of, register_worker.as_of)
    ON CONFLICT ON CONSTRAINT worker_pkey DO UPDATE
    SET last_seen_at = greatest(w.last_seen_at, excluded.last_seen_at),
        queues = excluded.queues;
END
$$;

-- ---------------------------------------------------------------------------
-- Privileges: as at the end of a fresh install (new functions are
-- EXECUTE-able by PUBLIC until revoked), then the roles' rights again.
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
