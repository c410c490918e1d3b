-- health() (0.14.0): what needs an operator's look. Queues whose jobs
-- nobody handles (ready with no live worker, or nothing ticks them:
-- scheduled jobs late, leases run out), an old transaction holding back
-- the cleanup of dead rows (0.19.0: or a replication slot that a standby
-- left), schedules whose last run failed, (0.36.0) tables with dead rows
-- that no vacuum reaches. The clock is
-- the calls' as_of; jobs are pushed at 00:00. (Another session's old
-- transaction, and the CLI: tests/py/test_health.py.)
BEGIN;
SELECT plan(28);
SET LOCAL TIME ZONE 'UTC';

-- The status of one check of health() at `at` (late: 1 minute).
CREATE FUNCTION pg_temp.status(check_name text, at timestamptz) RETURNS text LANGUAGE sql AS $$
    SELECT h.status FROM pgtq.health(as_of => $2) AS h WHERE h.name = $1
$$;
CREATE FUNCTION pg_temp.detail(check_name text, at timestamptz) RETURNS text LANGUAGE sql AS $$
    SELECT h.detail FROM pgtq.health(as_of => $2) AS h WHERE h.name = $1
$$;

SELECT is((SELECT array_agg(h.name || '=' || h.status) FROM pgtq.health() AS h),
    ARRAY['queues=ok', 'cleanup=ok', 'schedules=ok', 'vacuum=ok'], 'an empty queue is healthy: four checks, in order');

-- Ready jobs with no worker.
SELECT pgtq.push('mail', 't', as_of => '2030-01-01 00:00+00') FROM generate_series(1, 3);
SELECT is(pg_temp.status('queues', '2030-01-01 00:00:50+00'), 'ok', 'ready jobs due under a minute ago are fine');
SELECT is(pg_temp.detail('queues', '2030-01-01 00:05+00'),
    'queue ''mail'': its next ready job has waited 5 min and no live worker serves it',
    'ready jobs due longer ago with no worker of the queue: named, with the wait');
SELECT is((SELECT h.status FROM pgtq.health(late => '10 minutes', as_of => '2030-01-01 00:05+00') AS h
           WHERE h.name = 'queues'), 'ok', 'late sets how long is too long');
SELECT pgtq.register_worker('w1', 'h', 1, ARRAY['other', 'mail'], '2030-01-01 00:04:30+00');
SELECT is(pg_temp.status('queues', '2030-01-01 00:05+00'), 'ok', 'a live worker of the queue: fine');
SELECT is(pg_temp.status('queues', '2030-01-01 00:06+00'), 'warning',
    'a worker not seen for worker_timeout (1 minute) serves nothing');
SELECT pgtq.pause('mail');
SELECT is(pg_temp.status('queues', '2030-01-01 00:06+00'), 'ok', 'a paused queue waits on purpose: not named');
SELECT pgtq.resume('mail');

-- Nothing ticks: scheduled jobs late, leases run out.
SELECT pgtq.push('late', 't', run_at => '2030-01-01 00:00+00', as_of => '2029-12-31 23:00+00');
SELECT pgtq.register_worker('w2', 'h', 2, ARRAY['mail', 'late'], '2030-01-01 00:05+00');
SELECT is(pg_temp.detail('queues', '2030-01-01 00:05+00'),
    'queue ''late'': 1 scheduled job(s) due but not ready; nothing has ticked it for over 60 s '
    '(a worker of the queue, pgtq scheduler or pg_cron would)',
    'a scheduled job due longer ago than late: its queue is not ticked, though a worker serves it');
SELECT pgtq.tick('late', '2030-01-01 00:05+00');
SELECT is(pg_temp.status('queues', '2030-01-01 00:05+00'), 'ok', 'once ticked, the queue is fine');
SELECT is((SELECT count(*) FROM pgtq.pop('late', 'w2', 1, '1 minute', '2030-01-01 00:05+00')), 1::bigint,
    'a worker claims the job with a one-minute lease');
SELECT pgtq.register_worker('w2', 'h', 2, ARRAY['mail', 'late'], '2030-01-01 00:06:30+00');
SELECT is(pg_temp.status('queues', '2030-01-01 00:06:30+00'), 'ok', 'a lease that ran out under a minute ago is fine');
SELECT pgtq.register_worker('w2', 'h', 2, ARRAY['mail', 'late'], '2030-01-01 00:07:30+00');
SELECT is(pg_temp.detail('queues', '2030-01-01 00:08+00'),
    'queue ''late'': 1 lease(s) run out; nothing has ticked it for over 60 s '
    '(a worker of the queue, pgtq scheduler or pg_cron would)',
    'a lease run out longer ago than late: named');
SELECT pgtq.tick('late', '2030-01-01 00:08+00');
SELECT is(pg_temp.status('queues', '2030-01-01 00:08+00'), 'ok', 'tick rescued it: fine again');

-- Many queues: the worst first, ten named, the rest counted (mail and late
-- have a live worker, and late is ticked).
SELECT pgtq.register_worker('w3', 'h', 3, ARRAY['mail', 'late'], '2030-01-01 00:09:30+00');
SELECT pgtq.tick('late', '2030-01-01 00:10+00');
SELECT pgtq.push('q' || n, 't', as_of => '2030-01-01 00:00+00'::timestamptz + n * interval '1 second')
FROM generate_series(1, 12) AS n;
SELECT is(split_part(pg_temp.detail('queues', '2030-01-01 00:10+00'), ';', 1),
    'queue ''q1'': its next ready job has waited 9 min and no live worker serves it',
    'the queue that waited longest comes first');
SELECT is((SELECT count(*)::integer FROM regexp_matches(pg_temp.detail('queues', '2030-01-01 00:10+00'),
                                                         'queue ''', 'g')),
    10, 'ten queues are named');
SELECT ok(pg_temp.detail('queues', '2030-01-01 00:10+00') LIKE '%; and 2 more',
    'the other two are counted');

-- A flood of late scheduled jobs: at most 10,000 are read (0.15.0).
SELECT count(*) FROM pgtq.push_many('flood', 't', array_fill('[]'::jsonb, ARRAY[10001]),
                                    run_at => '2030-01-01 00:00+00', as_of => '2029-12-31 00:00+00');
SELECT ok(pg_temp.detail('queues', '2030-01-01 00:10+00')
          LIKE '%queue ''flood'': 10000 or more scheduled job(s) due but not ready; nothing has ticked it%',
    'a queue past the 10,000 late scheduled jobs read says "or more"');
DELETE FROM pgtq._job WHERE queue = 'flood';

-- Schedules whose last run failed.
SELECT pgtq.schedule('nightly', '0 3 * * *', 'mail', 't', as_of => '2030-01-01 00:00+00');
SELECT is(pg_temp.status('schedules', '2030-01-01 00:10+00'), 'ok', 'a schedule that did not fail is fine');
UPDATE pgtq._schedule SET last_error = 'pgtq: payload of task ''t'' is 2000000 bytes, over the limit'
WHERE name = 'nightly';
SELECT is(pg_temp.detail('schedules', '2030-01-01 00:10+00'),
    'schedule ''nightly'' failed its last run: pgtq: payload of task ''t'' is 2000000 bytes, over the limit',
    'one whose last run failed is named with its error');

-- A replication slot that keeps no xmin (no standby ever sent feedback)
-- holds nothing back (0.19.0; a slot left by a standby with
-- hot_standby_feedback is named: tests/py/test_health.py). Slots are not
-- transactional: this one is dropped here, not by the rollback.
SELECT pg_create_physical_replication_slot('pgtq_health_test');
SELECT is(pg_temp.status('cleanup', now()), 'ok', 'an inactive slot without an xmin is not named');
SELECT pg_drop_replication_slot('pgtq_health_test');

-- This session's own transaction is not counted.
SELECT is(pg_temp.status('cleanup', now() + interval '1 hour'), 'ok',
    'the caller''s own transaction does not count against it');

-- The vacuum check (0.36.0): dead row versions that no vacuum reaches.
-- Those of a committed change only (a test's transaction leaves none to
-- count): tests/py/test_health.py makes them. Here the check runs, within
-- a fresh cluster's first minutes, and says when it cannot tell.
SELECT is(pg_temp.detail('vacuum', now()),
    'no table of pgtq has had more dead row versions than autovacuum''s threshold without a vacuum for over '
    '10 min', 'a vacuum within 10 minutes, or none due: fine');
SET LOCAL track_counts = off;
SELECT is(pg_temp.status('vacuum', now()), 'unknown', 'with track_counts off nothing counts dead rows');
SELECT is(pg_temp.detail('vacuum', now()),
    'track_counts is off: no dead rows are counted and autovacuum does not run, so only a VACUUM by hand '
    'cleans pgtq''s tables', 'and the check says why it cannot tell');
RESET track_counts;

-- Bad arguments.
SELECT throws_ok($$SELECT * FROM pgtq.health(late => '0')$$, 'PT004',
    'pgtq: late must be a positive interval, got 00:00:00', 'late must be positive');
SELECT throws_ok($$SELECT * FROM pgtq.health(old_transaction => NULL)$$, 'PT004',
    'pgtq: old_transaction must be a positive interval, got NULL', 'old_transaction must be given');
SELECT throws_ok($$SELECT * FROM pgtq.health(as_of => 'infinity')$$, 'PT004',
    'pgtq: as_of must be a finite time, got infinity', 'as_of must be finite');

-- Ages in words.
SELECT is(ARRAY[pgtq._health_age('45.9 seconds'), pgtq._health_age('12 minutes 59 seconds'),
                pgtq._health_age('5 hours 10 minutes'), pgtq._health_age('3 days 2 hours'),
                pgtq._health_age('-1 second')],
    ARRAY['45 s', '12 min', '5 h', '3 days', '0 s'], 'ages are rounded down to their largest unit');

SELECT * FROM finish();
ROLLBACK;
