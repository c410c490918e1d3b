-- pop(): priority then push order, at most n, leases and attempts.
BEGIN;
SELECT plan(14);

SELECT pgtq.push('q', 'low_1', priority => 0);
SELECT pgtq.push('q', 'high', priority => 10);
SELECT pgtq.push('q', 'low_2', priority => 0);
SELECT pgtq.push('q', 'negative', priority => -5);
SELECT pgtq.push('other', 'elsewhere');

SELECT is((SELECT task FROM pgtq.pop('q')), 'high', 'highest priority first');
SELECT is(array_agg(task), ARRAY['low_1', 'low_2'], 'then push order, and no more than n')
FROM pgtq.pop('q', n => 2);
SELECT is((SELECT task FROM pgtq.pop('q', n => 10)), 'negative', 'negative priority last');
SELECT is((SELECT count(*)::int FROM pgtq.pop('q', n => 10)), 0, 'an empty queue gives no rows');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE queue = 'other' AND state = 'ready'), 1,
    'other queues are untouched');

SELECT pgtq.push('lease_q', 'job');
CREATE TEMP TABLE claimed AS
SELECT * FROM pgtq.pop('lease_q', worker => 'w1', lease => '30 seconds', as_of => '2030-01-01 00:00+00');
SELECT is((SELECT attempt FROM claimed), 1, 'pop counts the attempt');
SELECT isnt((SELECT lease FROM claimed), NULL, 'pop hands out a lease token');
SELECT is((SELECT lease_expires_at FROM claimed), '2030-01-01 00:00:30+00'::timestamptz,
    'the lease expires after the lease interval');
SELECT is(j.state::text, 'running', 'a popped job is running') FROM pgtq.jobs j JOIN claimed USING (id);
SELECT is(j.worker, 'w1', 'the worker is recorded') FROM pgtq.jobs j JOIN claimed USING (id);
SELECT is(j.started_at, '2030-01-01 00:00+00'::timestamptz, 'started_at is recorded')
FROM pgtq.jobs j JOIN claimed USING (id);
SELECT is((SELECT count(*)::int FROM pgtq.pop('lease_q')), 0, 'a running job is not popped again');

SELECT throws_ok($$SELECT * FROM pgtq.pop('q', n => 0)$$, 'PT004',
    'pgtq: n must be between 1 and 10000, got 0', 'n must be positive');
SELECT throws_ok($$SELECT * FROM pgtq.pop('q', lease => '-1 second')$$, 'PT004',
    'pgtq: lease must be a positive interval of at most 100 years, got -00:00:01', 'lease must be positive');

SELECT * FROM finish();
ROLLBACK;
