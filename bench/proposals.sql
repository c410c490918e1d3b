-- Proposed additions to pgtq's SQL API, measured by the benchmark
-- (scenario "levers") in a scratch schema bench_exp. They are NOT part of
-- pgtq: sql/ is the source of truth; this file is the proposal, as SQL.
-- In sql/ they would be pgtq.push_many and pgtq.complete_many, with the
-- same grants as push and complete.

CREATE SCHEMA IF NOT EXISTS bench_exp;

-- Guarantees: inserts one job per element of `args` (with the matching
-- element of `kwargs`, '{}' when kwargs is NULL) in one statement, as part
-- of the caller's transaction, and returns their ids in the order given.
-- Every argument is checked first, each element too (the error names the
-- element's position); on bad input nothing is written. One notification
-- per call.
CREATE OR REPLACE FUNCTION bench_exp.push_many(queue text,
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
    PERFORM pgtq._checked_name('queue', push_many.queue);
    PERFORM pgtq._checked_name('task', push_many.task);
    IF push_many.args IS NULL OR cardinality(push_many.args) > 10000 THEN
        RAISE EXCEPTION 'pgtq: push_many takes 0 to 10000 jobs, got %',
                coalesce(cardinality(push_many.args)::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF push_many.kwargs IS NOT NULL AND cardinality(push_many.kwargs) <> cardinality(push_many.args) THEN
        RAISE EXCEPTION 'pgtq: push_many got % args but % kwargs',
                cardinality(push_many.args), cardinality(push_many.kwargs)
            USING ERRCODE = 'PT004';
    END IF;
    IF push_many.priority IS NULL OR push_many.max_attempts IS NULL
       OR push_many.max_attempts < 1 OR push_many.max_attempts > 1000 THEN
        RAISE EXCEPTION 'pgtq: bad priority % or max_attempts %', push_many.priority, push_many.max_attempts
            USING ERRCODE = 'PT004';
    END IF;
    IF push_many.as_of IS NULL OR NOT isfinite(push_many.as_of)
       OR (push_many.run_at IS NOT NULL AND NOT isfinite(push_many.run_at)) THEN
        RAISE EXCEPTION 'pgtq: as_of and run_at must be finite times' USING ERRCODE = 'PT004';
    END IF;

    SELECT s.max_payload_bytes INTO payload_limit FROM pgtq._settings AS s;
    SELECT e.ord, e.a, e.k INTO bad
    FROM unnest(push_many.args, push_many.kwargs) WITH ORDINALITY AS e(a, k, ord)
    WHERE e.a IS NULL OR jsonb_typeof(e.a) <> 'array'
       OR (push_many.kwargs IS NOT NULL AND (e.k IS NULL OR jsonb_typeof(e.k) <> 'object'))
       OR pg_column_size(e.a) + coalesce(pg_column_size(e.k), 0) > payload_limit
    ORDER BY e.ord
    LIMIT 1;
    IF FOUND THEN
        IF bad.a IS NULL OR jsonb_typeof(bad.a) <> 'array' THEN
            RAISE EXCEPTION 'pgtq: args of job % must be a JSON array', bad.ord USING ERRCODE = 'PT001';
        ELSIF bad.k IS NULL OR jsonb_typeof(bad.k) <> 'object' THEN
            RAISE EXCEPTION 'pgtq: kwargs of job % must be a JSON object', bad.ord USING ERRCODE = 'PT002';
        END IF;
        RAISE EXCEPTION 'pgtq: payload of job % is over the limit of % bytes', bad.ord, payload_limit
            USING ERRCODE = 'PT005';
    END IF;

    due := coalesce(push_many.run_at, push_many.as_of);
    new_state := CASE WHEN due <= push_many.as_of THEN 'ready' ELSE 'scheduled' END;
    RETURN QUERY
    INSERT INTO pgtq._job AS j (queue, task, args, kwargs, state, priority, max_attempts, run_at, created_at)
    SELECT push_many.queue, push_many.task, e.a, coalesce(e.k, '{}'), new_state,
           push_many.priority, push_many.max_attempts, due, push_many.as_of
    FROM unnest(push_many.args, push_many.kwargs) WITH ORDINALITY AS e(a, k, ord)
    ORDER BY e.ord
    RETURNING j.id;
    IF new_state = 'ready' AND cardinality(push_many.args) > 0 THEN
        PERFORM pgtq._announce(push_many.queue);
    END IF;
END
$$;

-- Guarantees: completes every job whose (id, lease) pair is current and
-- running, in one statement, storing the matching result (NULL when
-- `results` is NULL); returns the ids it completed. A stale pair changes
-- nothing and is simply not returned, as complete() returns false.
CREATE OR REPLACE FUNCTION bench_exp.complete_many(ids bigint[],
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
       OR (complete_many.results IS NOT NULL
           AND cardinality(complete_many.results) <> cardinality(complete_many.ids)) THEN
        RAISE EXCEPTION 'pgtq: complete_many needs as many leases (and results) as ids'
            USING ERRCODE = 'PT004';
    END IF;
    IF complete_many.as_of IS NULL OR NOT isfinite(complete_many.as_of) THEN
        RAISE EXCEPTION 'pgtq: as_of must be a finite time' USING ERRCODE = 'PT004';
    END IF;
    RETURN QUERY
    UPDATE pgtq._job AS j
    SET state = 'done',
        finished_at = complete_many.as_of,
        result = c.result,
        lease = NULL,
        lease_expires_at = NULL
    FROM unnest(complete_many.ids, complete_many.leases, complete_many.results) AS c(id, lease, result)
    WHERE j.id = c.id AND j.lease = c.lease AND j.state = 'running'
    RETURNING j.id;
END
$$;
