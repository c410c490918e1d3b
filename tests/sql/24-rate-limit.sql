-- configure_queue(rate_limit => R, rate_period => P): at most R jobs of
-- the queue start in any window of length P. A burst of R when the window
-- is empty, then new starts only as old ones leave the window (kept in
-- buckets of P / 100: a start is forgotten between P and 1.01 P after it).
-- (Workers and the database clock: tests/py/test_flow_control.py.)
BEGIN;
SELECT plan(31);
SET LOCAL TIME ZONE 'UTC';

-- How many jobs of `queue` a pop of up to n claims at `at`.
CREATE FUNCTION pg_temp.starts(queue text, n integer, at timestamptz) RETURNS integer LANGUAGE sql AS $$
    SELECT count(*)::integer FROM pgtq.pop($1, 'w', $2, '1 minute', $3)
$$;

SELECT pgtq.push('r', 't', as_of => '2030-01-01 00:00+00') FROM generate_series(1, 20);
SELECT is(pgtq.configure_queue('r', rate_limit => 3, rate_period => '1 minute', as_of => '2030-01-01 00:00+00'),
    true, 'configure_queue sets a rate limit of 3 a minute');
SELECT is((SELECT rate_limit || ' per ' || rate_period FROM pgtq.queues WHERE queue = 'r'), '3 per 00:01:00',
    'pgtq.queues shows it');

SELECT is(pg_temp.starts('r', 10, '2030-01-01 00:00:00+00'), 3, 'an empty window takes a burst of 3 at once');
SELECT is(pg_temp.starts('r', 10, '2030-01-01 00:00:01+00'), 0, 'then none');
SELECT is(pg_temp.starts('r', 10, '2030-01-01 00:00:59+00'), 0, 'nor a second before the minute is over');
SELECT is(pg_temp.starts('r', 10, '2030-01-01 00:01:00+00'), 0,
    'nor at the minute itself (a start is kept up to 1.01 minutes)');
SELECT is(pg_temp.starts('r', 10, '2030-01-01 00:01:01+00'), 3, 'once the first burst left the window, 3 more');

-- Starts spread over the window leave it one by one.
SELECT is(pg_temp.starts('r', 1, '2030-01-01 00:03:00+00'), 1, 'one at 00:03:00');
SELECT is(pg_temp.starts('r', 1, '2030-01-01 00:03:20+00'), 1, 'one at 00:03:20');
SELECT is(pg_temp.starts('r', 5, '2030-01-01 00:03:40+00'), 1, 'one at 00:03:40: the window is full');
SELECT is(pg_temp.starts('r', 5, '2030-01-01 00:03:59+00'), 0, 'full at 00:03:59');
SELECT is(pg_temp.starts('r', 5, '2030-01-01 00:04:01+00'), 1, 'at 00:04:01 the start of 00:03:00 has left');
SELECT is(pg_temp.starts('r', 5, '2030-01-01 00:04:21+00'), 1, 'at 00:04:21 the one of 00:03:20');

-- No window of a minute ever saw more than 3 starts.
SELECT is((SELECT max(n)::int FROM (
               SELECT (SELECT count(*) FROM pgtq.jobs AS o
                       WHERE o.queue = 'r' AND o.started_at > s.started_at - interval '1 minute'
                         AND o.started_at <= s.started_at) AS n
               FROM pgtq.jobs AS s WHERE s.queue = 'r' AND s.started_at IS NOT NULL) AS w),
    3, 'no window of one minute holds more than 3 starts');

-- Changing rate_limit keeps the window; changing rate_period starts an empty one.
SELECT is(pgtq.configure_queue('r', rate_limit => 4, rate_period => '1 minute', as_of => '2030-01-01 00:04:30+00'),
    true, 'the limit is raised to 4');
SELECT is(pg_temp.starts('r', 5, '2030-01-01 00:04:30+00'), 1,
    'the window keeps its starts (00:03:40, 00:04:01, 00:04:21): one more fits');
SELECT is(pgtq.configure_queue('r', rate_limit => 4, rate_period => '1 hour', as_of => '2030-01-01 00:04:31+00'),
    true, 'the period changes to an hour');
SELECT is(pg_temp.starts('r', 5, '2030-01-01 00:04:31+00'), 4, 'an empty window of an hour: 4 start');

-- A rate limit and max_running together: the smaller room wins.
SELECT pgtq.push('both', 't', as_of => '2030-01-01 00:00+00') FROM generate_series(1, 10);
SELECT pgtq.configure_queue('both', max_running => 2, rate_limit => 5, rate_period => '1 second',
                            as_of => '2030-01-01 00:00+00');
SELECT is(pg_temp.starts('both', 10, '2030-01-01 00:00+00'), 2, 'max_running 2 holds under a rate of 5');
SELECT is(pgtq.tick('both', '2030-01-01 00:02+00'), 2, 'their leases run out and tick rescues them');
SELECT is(pg_temp.starts('both', 10, '2030-01-01 00:02+00'), 2, 'two start again');
-- pgtq.queues counts the starts in the window that ends now.
SELECT pgtq.configure_queue('live', rate_limit => 5, rate_period => '1 hour');
SELECT pgtq.push('live', 't') FROM generate_series(1, 4);
SELECT is(pg_temp.starts('live', 3, now()), 3, 'three start now');
SELECT is((SELECT rate_used::text || ' of ' || rate_limit FROM pgtq.queues WHERE queue = 'live'), '3 of 5',
    'pgtq.queues shows the starts of the window');

-- The starts are rows of _rate_start, one per bucket (0.27.0): a queue
-- keeps those of one window, however long it runs.
SELECT pgtq.push('long', 't', as_of => '2030-01-01 00:00+00') FROM generate_series(1, 400);
SELECT pgtq.configure_queue('long', rate_limit => 1000, rate_period => '1 minute', as_of => '2030-01-01 00:00+00');
SELECT is((SELECT sum(pg_temp.starts('long', 1, '2030-01-01 00:00+00'::timestamptz + n * interval '0.7 seconds'))::int
           FROM generate_series(0, 299) AS n),
    300, '300 pops, 0.7 s apart over three and a half minutes, start one job each');
-- The buckets of the starts of the last pop's window, from the jobs themselves.
CREATE TEMP VIEW long_window AS
SELECT b.slot, count(*)::integer AS jobs
FROM (SELECT pgtq._rate_slot(j.started_at, '1 minute') AS slot FROM pgtq.jobs AS j
      WHERE j.queue = 'long' AND j.started_at IS NOT NULL) AS b
WHERE b.slot >= pgtq._rate_slot('2030-01-01 00:00+00'::timestamptz + 299 * interval '0.7 seconds', '1 minute') - 100
GROUP BY b.slot;
SELECT is((SELECT array_agg(w.slot || ':' || w.jobs ORDER BY w.slot) FROM pgtq._rate_start AS w WHERE w.queue = 'long'),
    (SELECT array_agg(l.slot || ':' || l.jobs ORDER BY l.slot) FROM long_window AS l),
    'the queue keeps exactly the buckets of the last window, each with its starts');
SELECT cmp_ok((SELECT count(*)::int FROM pgtq._rate_start WHERE queue = 'long'), '<=', 101,
    'at most 101 rows, not one per pop');
SELECT is(pgtq._room_of(f, 1000, '2030-01-01 00:00+00'::timestamptz + 299 * interval '0.7 seconds'),
    1000 - (SELECT sum(jobs)::int FROM long_window), 'a pop then has room for the limit less those starts')
FROM pgtq._queue AS f WHERE f.queue = 'long';
SELECT is(pg_temp.starts('long', 1, '2030-01-01 00:00+00'::timestamptz + 298 * interval '0.7 seconds'), 1,
    'a pop whose as_of is a little older starts a job too');
SELECT is((SELECT jobs FROM pgtq._rate_start WHERE queue = 'long'
           AND slot = pgtq._rate_slot('2030-01-01 00:00+00'::timestamptz + 298 * interval '0.7 seconds', '1 minute')),
    (SELECT l.jobs FROM long_window AS l
     WHERE l.slot = pgtq._rate_slot('2030-01-01 00:00+00'::timestamptz + 298 * interval '0.7 seconds', '1 minute')
       AND l.jobs = 2),
    'and adds it to its own bucket, which holds two starts now');
SELECT pgtq.configure_queue('long', rate_limit => 999, rate_period => '1 minute');
SELECT is((SELECT count(*)::int FROM pgtq._rate_start WHERE queue = 'long'), (SELECT count(*)::int FROM long_window),
    'a new rate_limit with the same rate_period keeps the buckets');
SELECT pgtq.configure_queue('long', max_running => 5);
SELECT is((SELECT count(*)::int FROM pgtq._rate_start WHERE queue = 'long'), 0,
    'removing the rate limit deletes them');

SELECT * FROM finish();
ROLLBACK;
