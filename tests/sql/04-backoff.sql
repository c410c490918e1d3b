-- backoff(): exponential, jittered within [0.8 d, d], capped.
BEGIN;
SELECT plan(8);

SELECT ok(bool_and(pgtq.backoff(1) BETWEEN interval '1.6 seconds' AND interval '2 seconds'),
    'attempt 1 waits 1.6 to 2 s') FROM generate_series(1, 200);
SELECT ok(bool_and(pgtq.backoff(3) BETWEEN interval '6.4 seconds' AND interval '8 seconds'),
    'attempt 3 waits 6.4 to 8 s') FROM generate_series(1, 200);
SELECT ok(bool_and(pgtq.backoff(a) <= interval '1 hour'), 'never above the one-hour cap')
FROM generate_series(1, 1000) AS a;
SELECT ok(bool_and(pgtq.backoff(40) >= interval '48 minutes'), 'late attempts wait near the cap')
FROM generate_series(1, 200);
SELECT ok(count(DISTINCT pgtq.backoff(5)) > 1, 'delays are jittered') FROM generate_series(1, 50);
SELECT ok(bool_and(pgtq.backoff(0) BETWEEN interval '1.6 seconds' AND interval '2 seconds'
              AND pgtq.backoff(-5) BETWEEN interval '1.6 seconds' AND interval '2 seconds'
              AND pgtq.backoff(NULL) BETWEEN interval '1.6 seconds' AND interval '2 seconds'),
    'attempts below 1 (and NULL) count as 1: 1.6 to 2 s') FROM generate_series(1, 50);
SELECT ok(pgtq.backoff(3, '1 second', '5 seconds') BETWEEN interval '3.2 seconds' AND interval '4 seconds'
      AND pgtq.backoff(10, '1 second', '5 seconds') <= interval '5 seconds',
    'base and cap are parameters');

SELECT is((SELECT proparallel::text FROM pg_proc WHERE oid = 'pgtq.backoff(integer, interval, interval)'::regprocedure),
    'r', 'backoff is PARALLEL RESTRICTED, as random() is');

SELECT * FROM finish();
ROLLBACK;
