-- The calls that find a claimed job by its id and lease take one job_pkey
-- probe per job and never walk job_running_idx (every running job of the
-- database), even when the statistics were taken while no job ran (0.4.0;
-- 0.3.0 walked it, and heartbeat_many compared every lease with every
-- running job). Each call runs several times, past PL/pgSQL's switch to a
-- generic plan.
BEGIN;
SELECT plan(14);

SELECT count(*) FROM pgtq.push_many('q', 'job', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 300) AS n));
ANALYZE pgtq._job;  -- statistics of a table where nothing runs
CREATE TEMP TABLE c AS
SELECT p.id, p.lease, row_number() OVER (ORDER BY p.id) AS n FROM pgtq.pop('q', n => 300) AS p;

-- How many times `call` made PostgreSQL scan job_running_idx (the counts
-- of the current transaction).
CREATE FUNCTION pg_temp.running_idx_scans(call text)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    before bigint := pg_stat_get_xact_numscans('pgtq.job_running_idx'::regclass);
BEGIN
    EXECUTE call;
    RETURN pg_stat_get_xact_numscans('pgtq.job_running_idx'::regclass) - before;
END
$$;

SELECT is(pg_temp.running_idx_scans($$SELECT pgtq.heartbeat(id, lease) FROM c WHERE n BETWEEN 1 AND 8$$), 0::bigint,
    'heartbeat finds each job by its id');
SELECT is(pg_temp.running_idx_scans(
        $$SELECT pgtq.heartbeat_many(ARRAY(SELECT id FROM c WHERE n BETWEEN 9 AND 108 ORDER BY n),
                                     ARRAY(SELECT lease FROM c WHERE n BETWEEN 9 AND 108 ORDER BY n))
          FROM generate_series(1, 8)$$), 0::bigint,
    'heartbeat_many finds each job by its id');
SELECT is(pg_temp.running_idx_scans($$SELECT pgtq.complete(id, lease) FROM c WHERE n BETWEEN 1 AND 8$$), 0::bigint,
    'complete finds each job by its id');
SELECT is(pg_temp.running_idx_scans($$SELECT pgtq.fail(id, lease, 'boom') FROM c WHERE n BETWEEN 9 AND 16$$), 0::bigint,
    'fail finds each job by its id');
SELECT is(pg_temp.running_idx_scans($$SELECT pgtq.abort(id, lease, 'stop') FROM c WHERE n BETWEEN 17 AND 24$$), 0::bigint,
    'abort finds each job by its id');
SELECT is(pg_temp.running_idx_scans($$SELECT pgtq.release(id, lease) FROM c WHERE n BETWEEN 25 AND 32$$), 0::bigint,
    'release finds each job by its id');
SELECT is(pg_temp.running_idx_scans(
        $$SELECT pgtq.complete_many(ARRAY(SELECT id FROM c WHERE n BETWEEN 33 + 10 * (s - 1) AND 32 + 10 * s),
                                    ARRAY(SELECT lease FROM c WHERE n BETWEEN 33 + 10 * (s - 1) AND 32 + 10 * s))
          FROM generate_series(1, 8) AS s$$), 0::bigint,
    'complete_many finds each job by its id');

-- Each call did its work (the lease alone tells a running job: a lease is
-- set if and only if the job runs).
SELECT is((SELECT count(*)::int FROM pgtq.jobs j JOIN c USING (id) WHERE c.n BETWEEN 1 AND 8 AND j.state = 'done'), 8,
    'the completed jobs are done');
SELECT is((SELECT count(*)::int FROM pgtq.jobs j JOIN c USING (id) WHERE c.n BETWEEN 9 AND 16 AND j.state = 'scheduled'),
    8, 'the failed jobs wait for their retry');
SELECT is((SELECT count(*)::int FROM pgtq.jobs j JOIN c USING (id) WHERE c.n BETWEEN 17 AND 24 AND j.state = 'failed'),
    8, 'the aborted jobs failed');
SELECT is((SELECT count(*)::int FROM pgtq.jobs j JOIN c USING (id) WHERE c.n BETWEEN 25 AND 32 AND j.state = 'ready'),
    8, 'the released jobs are ready');
SELECT is((SELECT count(*)::int FROM pgtq.jobs j JOIN c USING (id) WHERE c.n BETWEEN 33 AND 112 AND j.state = 'done'),
    80, 'the jobs of complete_many are done');
SELECT is((SELECT count(*)::int FROM pgtq.complete_many(ARRAY(SELECT id FROM c WHERE n BETWEEN 1 AND 32),
                                                         ARRAY(SELECT lease FROM c WHERE n BETWEEN 1 AND 32))),
    0, 'a lease that ended completes nothing again');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE state = 'running'), 300 - 112,
    'the other jobs still run');

SELECT * FROM finish();
ROLLBACK;
