-- Retry control: abort (a final failure), retry_in counting an attempt,
-- and each job's own backoff policy, applied by fail() and by the lease
-- rescue in tick().
BEGIN;
SELECT plan(24);
SET LOCAL TIME ZONE 'UTC';

CREATE TEMP TABLE c AS SELECT * FROM pgtq.pop('q') LIMIT 0;
-- Claim the next job of a queue, with a one-minute lease.
CREATE FUNCTION pg_temp.run(queue text, at timestamptz) RETURNS SETOF pgtq.claimed_job LANGUAGE sql AS $$
    SELECT p.* FROM pgtq.pop($1, 'w', 1, '1 minute', $2) AS p
$$;

-- ------------------------------------------------------------------ abort
SELECT pgtq.push('a', 'doomed', max_attempts => 10) AS doomed_id \gset
INSERT INTO c SELECT * FROM pg_temp.run('a', '2030-01-01 00:00+00');
SELECT is(pgtq.abort(c.id, c.lease, 'the account is closed', '2030-01-01 00:00:10+00'), 'failed',
    'abort fails the job at once, with 9 attempts left')
FROM c;
SELECT is((SELECT row(state, attempt, max_attempts, last_error, finished_at)::text FROM pgtq.jobs WHERE id = :doomed_id),
    '(failed,1,10,"the account is closed","2030-01-01 00:00:10+00")',
    'failed at as_of with its error; the attempt count is what it was');
SELECT is(pgtq.abort(c.id, c.lease, 'again'), NULL, 'aborting twice is refused (the lease is spent)') FROM c;
SELECT is(pgtq.tick('a', '2030-02-01 00:00+00'), 0, 'no retry comes');
SELECT is((SELECT count(*)::int FROM pg_temp.run('a', '2030-02-01 00:00+00')), 0, 'nothing to pop');
SELECT is(pgtq.retry(:doomed_id), true, 'an operator can still retry an aborted job');
DELETE FROM c;

-- -------------------------------------------- retry_in counts an attempt
SELECT pgtq.push('r', 'twice', max_attempts => 2) AS twice_id \gset
INSERT INTO c SELECT * FROM pg_temp.run('r', '2030-01-01 00:00+00');
SELECT is(pgtq.fail(c.id, c.lease, 'rate limited', '0', '2030-01-01 00:00+00'), 'ready',
    'a retry asked for with retry_in runs again when asked') FROM c;
DELETE FROM c;
INSERT INTO c SELECT * FROM pg_temp.run('r', '2030-01-01 00:00+00');
SELECT is((SELECT attempt FROM c), 2, 'it counted as an attempt (like Celery''s retry; unlike Oban''s snooze)');
SELECT is(pgtq.fail(c.id, c.lease, 'rate limited', '1 minute', '2030-01-01 00:00+00'), 'failed',
    'with no attempt left, asking to retry fails the job: a handler that always retries still stops') FROM c;
DELETE FROM c;

-- ------------------------------------------------ per-job backoff in fail
SELECT pgtq.push('b', 'slow', backoff_base => '10 seconds', backoff_cap => '15 seconds') AS slow_id \gset
SELECT is((SELECT backoff_base || ' ' || backoff_cap FROM pgtq.jobs WHERE id = :slow_id), '00:00:10 00:00:15',
    'pgtq.jobs shows the job''s backoff policy');
INSERT INTO c SELECT * FROM pg_temp.run('b', '2030-01-01 00:00+00');
SELECT is(pgtq.fail(c.id, c.lease, 'x', as_of => '2030-01-01 00:00+00'), 'scheduled', 'fail without retry_in') FROM c;
SELECT ok((SELECT run_at BETWEEN '2030-01-01 00:00:08+00' AND '2030-01-01 00:00:10+00' FROM pgtq.jobs
           WHERE id = :slow_id), 'attempt 1 waits the job''s base: 8 to 10 s');
DELETE FROM c;
SELECT pgtq.tick('b', '2030-01-01 00:01+00');
INSERT INTO c SELECT * FROM pg_temp.run('b', '2030-01-01 00:01+00');
SELECT pgtq.fail(c.id, c.lease, 'x', as_of => '2030-01-01 00:01+00') FROM c;
SELECT ok((SELECT run_at BETWEEN '2030-01-01 00:01:12+00' AND '2030-01-01 00:01:15+00' FROM pgtq.jobs
           WHERE id = :slow_id), 'attempt 2 would wait 20 s: the job''s cap of 15 s holds (12 to 15 s)');
DELETE FROM c;
SELECT pgtq.tick('b', '2030-01-01 00:02+00');
INSERT INTO c SELECT * FROM pg_temp.run('b', '2030-01-01 00:02+00');
SELECT is(pgtq.fail(c.id, c.lease, 'x', '1 hour', '2030-01-01 00:02+00'), 'scheduled', 'retry_in') FROM c;
SELECT is((SELECT run_at FROM pgtq.jobs WHERE id = :slow_id), '2030-01-01 01:02+00'::timestamptz,
    'retry_in overrides the policy');
DELETE FROM c;

SELECT pgtq.push('z', 'eager', backoff_base => '0') AS eager_id \gset
INSERT INTO c SELECT * FROM pg_temp.run('z', '2030-01-01 00:00+00');
SELECT is(pgtq.fail(c.id, c.lease, 'x', as_of => '2030-01-01 00:00+00'), 'ready',
    'a zero base retries at once') FROM c;
DELETE FROM c;

CREATE TEMP TABLE many AS
SELECT p.id FROM pgtq.push_many('m', 't', ARRAY['[1]', '[2]']::jsonb[], backoff_base => '1 minute',
                                backoff_cap => '1 day') AS p (id);
SELECT is((SELECT array_agg(DISTINCT backoff_base || '/' || backoff_cap) FROM pgtq.jobs JOIN many USING (id)),
    ARRAY['00:01:00/1 day'], 'push_many gives every job the policy');
SELECT is((SELECT backoff_base IS NULL AND backoff_cap IS NULL FROM pgtq.jobs WHERE id = :twice_id), true,
    'without a policy both are NULL: backoff()''s defaults apply');

-- ---------------------------------------- per-job backoff in tick's rescue
SELECT pgtq.push('t', 'patient', backoff_base => '1 hour', backoff_cap => '1 hour') AS patient_id \gset
INSERT INTO c SELECT * FROM pg_temp.run('t', '2030-01-01 00:00+00');
SELECT is(pgtq.tick('t', '2030-01-01 00:02+00'), 1, 'tick rescues the expired job');
SELECT ok((SELECT run_at BETWEEN '2030-01-01 00:50+00' AND '2030-01-01 01:02+00' FROM pgtq.jobs
           WHERE id = :patient_id), 'after the job''s own backoff: 48 to 60 minutes');
DELETE FROM c;

-- backoff() computes in seconds (a year is 365.25 days): a long policy
-- never overflows.
SELECT ok(bool_and(extract(epoch FROM pgtq.backoff(a, '100 years', '100 years'))
                   BETWEEN 0.8 * extract(epoch FROM interval '100 years') AND extract(epoch FROM interval '100 years')),
    'backoff with a base and cap of 100 years stays within them at any attempt')
FROM generate_series(1, 1000, 37) AS a;
SELECT pgtq.push('y', 'long', backoff_base => '100 years', backoff_cap => '100 years', max_attempts => 100) AS long_id \gset
UPDATE pgtq._job SET attempt = 98 WHERE id = :long_id;
INSERT INTO c SELECT * FROM pg_temp.run('y', '2030-01-01 00:00+00');
SELECT is(pgtq.fail(c.id, c.lease, 'x', as_of => '2030-01-01 00:00+00'), 'scheduled',
    'fail at attempt 99 with a 100-year policy works') FROM c;
SELECT ok((SELECT run_at BETWEEN '2110-01-01' AND '2130-01-02' FROM pgtq.jobs WHERE id = :long_id),
    'and schedules the retry within the cap');
SELECT is((SELECT proparallel::text FROM pg_proc WHERE oid = 'pgtq.backoff(integer, interval, interval)'::regprocedure),
    'r', 'backoff is still PARALLEL RESTRICTED');

SELECT * FROM finish();
ROLLBACK;
