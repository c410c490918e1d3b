-- The bookkeeping rules of a job's row (0.8.0: kept by the functions, no
-- longer by CHECK constraints): 0 <= attempt <= max_attempts and
-- max_attempts >= 1; a running job has started_at; finished_at is set
-- exactly when the job is done, failed or cancelled. Every function that
-- writes a job runs here, through each state, and pgtq.job_rule_breaks must
-- stay empty; then rows broken by hand show that the view sees each rule.
BEGIN;
SELECT plan(11);
SET LOCAL TIME ZONE 'UTC';

CREATE TEMP TABLE made (name text PRIMARY KEY, id bigint);
CREATE TEMP TABLE held (name text PRIMARY KEY, id bigint, lease uuid);

-- push (ready, scheduled, keyed, the keyed one replaced), push_many, cancel of a ready job.
INSERT INTO made SELECT 'done', pgtq.push('rq', 'done', as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'retried', pgtq.push('rq', 'retried', max_attempts => 2, as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'failed', pgtq.push('rq', 'failed', max_attempts => 1, as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'aborted', pgtq.push('rq', 'aborted', as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'released', pgtq.push('rq', 'released', as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'cancel-running', pgtq.push('rq', 'cancel-running', as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'rescued', pgtq.push('rq', 'rescued', max_attempts => 2, as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'rescued-last', pgtq.push('rq', 'rescued-last', max_attempts => 1,
                                                  as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'keyed', pgtq.push('rq', 'keyed', job_key => 'k', as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'keyed', pgtq.push('rq', 'keyed', job_key => 'k', job_key_mode => 'replace',
                                           as_of => '2030-01-01 00:00+00')
ON CONFLICT (name) DO UPDATE SET id = excluded.id;
INSERT INTO made SELECT 'many' || n, id
FROM pgtq.push_many('rq', 'many', ARRAY['[1]', '[2]']::jsonb[], as_of => '2030-01-01 00:00+00')
     WITH ORDINALITY AS p (id, n);
INSERT INTO made SELECT 'scheduled', pgtq.push('rq', 'scheduled', run_at => '2030-01-01 00:05+00',
                                               as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'cancel-ready', pgtq.push('rq', 'cancel-ready', as_of => '2030-01-01 00:00+00');
SELECT pgtq.cancel(id, '2030-01-01 00:00+00') FROM made WHERE name = 'cancel-ready';

-- pop all that are ready, then end each attempt its own way.
INSERT INTO held SELECT CASE c.task WHEN 'many' THEN 'many' || c.id ELSE c.task END, c.id, c.lease
FROM pgtq.pop('rq', 'w', 100, '1 minute', '2030-01-01 00:01+00') AS c;
SELECT is((SELECT count(*)::int FROM held), 11, 'the eleven ready jobs run');
SELECT pgtq.complete_many(array_agg(id), array_agg(lease), as_of => '2030-01-01 00:01+00')
FROM held WHERE name LIKE 'many%';
SELECT pgtq.complete(id, lease, '{"ok": true}', '2030-01-01 00:02+00') FROM held WHERE name = 'done';
SELECT pgtq.fail(id, lease, 'once', as_of => '2030-01-01 00:02+00') FROM held WHERE name = 'retried';
SELECT pgtq.fail(id, lease, 'for good', as_of => '2030-01-01 00:02+00') FROM held WHERE name = 'failed';
SELECT pgtq.abort(id, lease, 'give up', '2030-01-01 00:02+00') FROM held WHERE name = 'aborted';
SELECT pgtq.heartbeat(id, lease, '1 minute', '2030-01-01 00:02+00') FROM held WHERE name = 'released';
SELECT pgtq.release(id, lease, '2030-01-01 00:02+00') FROM held WHERE name = 'released';
SELECT pgtq.heartbeat_many(array_agg(id), array_agg(lease), '1 minute', '2030-01-01 00:02+00')
FROM held WHERE name = 'keyed';
SELECT pgtq.cancel(id, '2030-01-01 00:02+00') FROM held WHERE name = 'cancel-running';
SELECT pgtq.fail(id, lease, 'ended after the cancel request', as_of => '2030-01-01 00:02+00')
FROM held WHERE name = 'cancel-running';
SELECT is((SELECT array_agg(m.name || ':' || j.state ORDER BY m.name COLLATE "C") FROM made m JOIN pgtq._job j USING (id)
           WHERE m.name IN ('done', 'retried', 'failed', 'aborted', 'released', 'cancel-running', 'cancel-ready')),
    ARRAY['aborted:failed', 'cancel-ready:cancelled', 'cancel-running:cancelled', 'done:done', 'failed:failed',
          'released:ready', 'retried:scheduled'],
    'each attempt ended its own way');

-- tick: rescue of expired leases (a retry left, and the last attempt), and
-- promotion of scheduled jobs.
SELECT ok(pgtq.tick('rq', '2030-01-01 00:10+00') >= 2, 'tick rescues the expired leases and promotes');
SELECT is((SELECT array_agg(m.name || ':' || j.state ORDER BY m.name COLLATE "C") FROM made m JOIN pgtq._job j USING (id)
           WHERE m.name IN ('rescued', 'rescued-last', 'scheduled')),
    ARRAY['rescued:scheduled', 'rescued-last:failed', 'scheduled:ready'],
    'the rescued job waits for its retry, the last attempt failed, the scheduled job is ready');

-- retry, retry_failed, delete_job; then everything still live runs to the end.
SELECT pgtq.retry(id, '2030-01-01 00:20+00') FROM made WHERE name = 'aborted';
SELECT ok(pgtq.retry_failed('rq', as_of => '2030-01-01 00:20+00') >= 1, 'retry_failed retries the rest');
SELECT pgtq.delete_job(id) FROM made WHERE name = 'cancel-ready';
SELECT pgtq.tick('rq', '2030-01-03 00:00+00');
SELECT pgtq.complete_many(array_agg(c.id), array_agg(c.lease), as_of => '2030-01-03 00:01+00')
FROM pgtq.pop('rq', 'w', 100, '1 minute', '2030-01-03 00:00+00') AS c;
SELECT is((SELECT count(*)::int FROM pgtq._job WHERE queue = 'rq' AND state NOT IN ('done', 'failed', 'cancelled')), 0,
    'every job reached an end');
SELECT is((SELECT max(attempt) FROM pgtq._job WHERE queue = 'rq'), 2, 'some jobs ran twice');

SELECT is_empty('SELECT id, rule FROM pgtq.job_rule_breaks',
    'no function left a row that breaks a bookkeeping rule');

-- The view sees each rule: rows broken by hand.
UPDATE pgtq._job SET attempt = max_attempts + 1 WHERE id = (SELECT id FROM made WHERE name = 'done');
UPDATE pgtq._job SET finished_at = NULL WHERE id = (SELECT id FROM made WHERE name = 'failed');
SELECT pgtq.push('rq2', 'running', as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'running', c.id FROM pgtq.pop('rq2', as_of => '2030-01-01 00:00+00') AS c;
UPDATE pgtq._job SET started_at = NULL WHERE queue = 'rq2';
SELECT set_eq(
    'SELECT m.name, b.rule FROM pgtq.job_rule_breaks b JOIN made m USING (id)',
    $$VALUES ('done', 'attempt is between 0 and max_attempts, and max_attempts is at least 1'),
             ('failed', 'finished_at is set exactly when the job is done, failed or cancelled'),
             ('running', 'a running job has started_at')$$,
    'pgtq.job_rule_breaks lists each broken row with the rule it breaks');
SELECT throws_ok(
    $$UPDATE pgtq._job SET lease = NULL WHERE queue = 'rq2'$$, '23514', NULL,
    'the lease rule is still a constraint: a running job without a lease is refused');
SELECT has_view('pgtq', 'job_rule_breaks', 'view pgtq.job_rule_breaks');

SELECT * FROM finish();
ROLLBACK;
