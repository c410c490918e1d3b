-- complete() and fail(): lease checks, the retry rule, max attempts.
BEGIN;
SELECT plan(19);

CREATE TEMP TABLE c AS SELECT * FROM pgtq.pop('q', as_of => now()) LIMIT 0;

-- complete
SELECT pgtq.push('q', 'ok');
INSERT INTO c SELECT * FROM pgtq.pop('q');
SELECT is(pgtq.complete(id, gen_random_uuid()), false, 'complete with a forged lease is refused')
FROM c WHERE task = 'ok';
SELECT is(j.state::text, 'running', 'and changes nothing') FROM pgtq.jobs j JOIN c USING (id) WHERE c.task = 'ok';
SELECT is(pgtq.complete(id, lease, '{"sum": 3}'), true, 'complete with the lease succeeds')
FROM c WHERE task = 'ok';
SELECT is(j.state::text, 'done', 'the job is done') FROM pgtq.jobs j JOIN c USING (id) WHERE c.task = 'ok';
SELECT is(j.result, '{"sum": 3}'::jsonb, 'the result is stored') FROM pgtq.jobs j JOIN c USING (id) WHERE c.task = 'ok';
SELECT isnt(j.finished_at, NULL, 'finished_at is set') FROM pgtq.jobs j JOIN c USING (id) WHERE c.task = 'ok';
SELECT is(pgtq.complete(id, lease), false, 'completing twice completes once') FROM c WHERE task = 'ok';
SELECT is(pgtq.complete(-1, gen_random_uuid()), false, 'an unknown job id is refused');

-- fail with attempts left: scheduled at as_of + retry_in
SELECT pgtq.push('q', 'flaky', max_attempts => 2);
INSERT INTO c SELECT * FROM pgtq.pop('q');
SELECT is(pgtq.fail(id, lease, 'boom', '10 minutes', '2030-01-01 00:00+00'), 'scheduled',
    'a failure with attempts left schedules a retry') FROM c WHERE task = 'flaky';
SELECT is(j.run_at, '2030-01-01 00:10+00'::timestamptz, 'the retry is due at as_of + retry_in')
FROM pgtq.jobs j JOIN c USING (id) WHERE c.task = 'flaky';
SELECT is(j.last_error, 'boom', 'the error is recorded')
FROM pgtq.jobs j JOIN c USING (id) WHERE c.task = 'flaky';
SELECT is(pgtq.fail(id, lease, 'again'), NULL, 'failing with a spent lease is refused')
FROM c WHERE task = 'flaky';

-- the retry runs; its failure is the last attempt
SELECT pgtq.tick('q', '2030-01-01 00:10+00');
DELETE FROM c WHERE task = 'flaky';
INSERT INTO c SELECT * FROM pgtq.pop('q');
SELECT is(attempt, 2, 'the retry is attempt 2') FROM c WHERE task = 'flaky';
SELECT is(pgtq.fail(id, lease, 'boom twice'), 'failed', 'the last attempt failing makes the job failed')
FROM c WHERE task = 'flaky';
SELECT isnt(j.finished_at, NULL, 'a failed job has finished_at')
FROM pgtq.jobs j JOIN c USING (id) WHERE c.task = 'flaky';
SELECT is(pgtq.complete(id, lease), false, 'a failed job cannot be completed')
FROM c WHERE task = 'flaky';

-- fail without retry_in uses backoff; retry_in 0 makes it ready at once
SELECT pgtq.push('q', 'backed_off');
INSERT INTO c SELECT * FROM pgtq.pop('q');
SELECT is(pgtq.fail(id, lease, 'x', as_of => '2030-01-01 00:00+00'), 'scheduled', 'fail without retry_in')
FROM c WHERE task = 'backed_off';
SELECT ok(j.run_at BETWEEN '2030-01-01 00:00:01.6+00' AND '2030-01-01 00:00:02+00',
    'without retry_in the retry waits backoff(1), 1.6 to 2 seconds')
FROM pgtq.jobs j JOIN c USING (id) WHERE c.task = 'backed_off';

SELECT pgtq.push('q', 'instant');
INSERT INTO c SELECT * FROM pgtq.pop('q');
SELECT is(pgtq.fail(id, lease, 'x', retry_in => '0'), 'ready', 'a retry due now is ready at once')
FROM c WHERE task = 'instant';

SELECT * FROM finish();
ROLLBACK;
