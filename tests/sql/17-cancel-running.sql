-- cancel(): ready and scheduled jobs at once; running jobs get a cancel
-- request, reported by heartbeat_many, and end cancelled whatever ends
-- their attempt: complete, complete_many, fail, abort, release, the rescue.
-- (The pgtq_cancel notification: tests/py/test_notifications.py.)
BEGIN;
SELECT plan(37);
SET LOCAL TIME ZONE 'UTC';

CREATE TEMP TABLE c AS SELECT * FROM pgtq.pop('q') LIMIT 0;

-- ------------------------------------------------- not started: at once
SELECT pgtq.push('q', 'ready_one', as_of => '2030-01-01 00:00+00') AS ready_id \gset
SELECT pgtq.push('q', 'later_one', run_at => '2030-01-02 00:00+00', as_of => '2030-01-01 00:00+00') AS scheduled_id \gset
SELECT is(pgtq.cancel(:ready_id, '2030-01-01 00:01+00'), true, 'a ready job is cancelled');
SELECT is(pgtq.cancel(:scheduled_id, '2030-01-01 00:01+00'), true, 'a scheduled job is cancelled');
SELECT is((SELECT array_agg(state::text || ' ' || finished_at || ' ' || coalesce(cancel_requested_at::text, '-')
                            ORDER BY id)
           FROM pgtq.jobs WHERE id IN (:ready_id, :scheduled_id)),
    ARRAY['cancelled 2030-01-01 00:01:00+00 -', 'cancelled 2030-01-01 00:01:00+00 -'],
    'both are cancelled at as_of, without a cancel request');
SELECT is(pgtq.cancel(:ready_id), false, 'a cancelled job is not cancelled again');
SELECT is((SELECT count(*)::int FROM pgtq.pop('q')), 0, 'cancelled jobs are never popped');

-- ---------------------------------------------------------- the request
-- Claim the next job of a queue, with a one-minute lease.
CREATE FUNCTION pg_temp.run(queue text, at timestamptz) RETURNS SETOF pgtq.claimed_job LANGUAGE sql AS $$
    SELECT p.* FROM pgtq.pop($1, 'w', 1, '1 minute', $2) AS p
$$;
SELECT pgtq.push('a', 'a', max_attempts => 5) AS a_id \gset
INSERT INTO c SELECT * FROM pg_temp.run('a', '2030-01-01 00:00+00');
SELECT is(pgtq.cancel(:a_id, '2030-01-01 00:00:10+00'), true, 'a running job takes a cancel request');
SELECT is((SELECT state::text || ' ' || cancel_requested_at FROM pgtq.jobs WHERE id = :a_id),
    'running 2030-01-01 00:00:10+00', 'it keeps running; pgtq.jobs shows when the cancel was requested');
SELECT is(pgtq.cancel(:a_id, '2030-01-01 00:00:20+00'), true, 'asking again is fine');
SELECT is((SELECT cancel_requested_at FROM pgtq.jobs WHERE id = :a_id), '2030-01-01 00:00:10+00'::timestamptz,
    'and keeps the first request''s time');
SELECT is((SELECT cancel_requested FROM pgtq.queue_stats WHERE queue = 'a' AND state = 'running'), 1::bigint,
    'queue_stats counts the running jobs asked to cancel');

-- heartbeat_many tells the worker, and still extends the lease.
SELECT pgtq.push('b', 'b') AS b_id \gset
INSERT INTO c SELECT * FROM pg_temp.run('b', '2030-01-01 00:00+00');
SELECT is((SELECT array_agg(h.id || ' ' || h.held || ' ' || h.cancel_requested)
           FROM pgtq.heartbeat_many((SELECT array_agg(id ORDER BY task DESC) FROM c),
                                    (SELECT array_agg(lease ORDER BY task DESC) FROM c),
                                    '5 minutes', '2030-01-01 00:00:30+00') AS h),
    ARRAY[:b_id || ' true false', :a_id || ' true true'],
    'heartbeat_many: one row per job in the order given, held, and whether a cancel was requested');
SELECT is((SELECT array_agg(lease_expires_at ORDER BY id) FROM pgtq.jobs WHERE id IN (:a_id, :b_id)),
    ARRAY['2030-01-01 00:05:30+00', '2030-01-01 00:05:30+00']::timestamptz[],
    'both leases are extended, the cancelled job''s too (no rescue while its handler stops)');
SELECT is(pgtq.heartbeat(c.id, c.lease, '1 minute', '2030-01-01 00:00:40+00'), true,
    'the single heartbeat still answers whether the lease is held')
FROM c WHERE task = 'a';

-- ---------------------------------------------------- complete: cancelled
SELECT is(pgtq.complete(c.id, c.lease, '{"partial": true}', '2030-01-01 00:01+00'), true,
    'complete after a cancel request is accepted')
FROM c WHERE task = 'a';
SELECT is((SELECT state::text || ' ' || result::text || ' ' || finished_at FROM pgtq.jobs WHERE id = :a_id),
    'cancelled {"partial": true} 2030-01-01 00:01:00+00', 'and ends the job cancelled, the result kept for the record');
SELECT is(pgtq.retry(:a_id, '2030-01-01 00:02+00'), true, 'a job cancelled while running can be retried');
SELECT is((SELECT state::text || ' ' || attempt || ' ' || coalesce(cancel_requested_at::text, '-')
           FROM pgtq.jobs WHERE id = :a_id),
    'ready 0 -', 'retry clears the cancel request');
DELETE FROM c WHERE task = 'a';

-- ----------------------------------------------- complete_many: cancelled
INSERT INTO c SELECT * FROM pg_temp.run('a', '2030-01-01 00:03+00');
SELECT pgtq.cancel(:a_id, '2030-01-01 00:03:10+00');
SELECT is((SELECT array_agg(d ORDER BY d) FROM pgtq.complete_many((SELECT array_agg(id) FROM c),
                                                                  (SELECT array_agg(lease) FROM c))
                                           AS d),
    ARRAY[:a_id, :b_id]::bigint[], 'complete_many ends both jobs');
SELECT is((SELECT array_agg(state::text ORDER BY id) FROM pgtq.jobs WHERE id IN (:a_id, :b_id)),
    ARRAY['cancelled', 'done'], 'the one asked to cancel is cancelled, the other done');
SELECT pgtq.retry(:a_id, '2030-01-01 00:04+00');
DELETE FROM c;

-- ---------------------------------------------------- fail: never retried
INSERT INTO c SELECT * FROM pg_temp.run('a', '2030-01-01 00:05+00');
SELECT pgtq.cancel(:a_id, '2030-01-01 00:05:10+00');
SELECT is(pgtq.fail(c.id, c.lease, 'interrupted', '0', '2030-01-01 00:05:20+00'), 'cancelled',
    'fail after a cancel request returns cancelled, although attempts remain and the retry is due')
FROM c;
SELECT is((SELECT state::text || ' ' || last_error FROM pgtq.jobs WHERE id = :a_id), 'cancelled interrupted',
    'the job is cancelled, the error kept for the record');
SELECT is(pgtq.tick('a', '2030-01-02 00:00+00'), 0, 'tick does not bring it back');
SELECT is((SELECT count(*)::int FROM pg_temp.run('a', '2030-01-02 00:00+00')), 0, 'nor does pop');
SELECT pgtq.retry(:a_id, '2030-01-02 00:00+00');
DELETE FROM c;

-- --------------------------------------------------- abort: cancelled
INSERT INTO c SELECT * FROM pg_temp.run('a', '2030-01-02 00:01+00');
SELECT pgtq.cancel(:a_id, '2030-01-02 00:01:10+00');
SELECT is(pgtq.abort(c.id, c.lease, 'gave up', '2030-01-02 00:01:20+00'), 'cancelled',
    'abort after a cancel request ends the job cancelled') FROM c;
SELECT pgtq.retry(:a_id, '2030-01-02 00:02+00');
DELETE FROM c;

-- -------------------------------------------------- release: cancelled
INSERT INTO c SELECT * FROM pg_temp.run('a', '2030-01-02 00:03+00');
SELECT pgtq.cancel(:a_id, '2030-01-02 00:03:10+00');
SELECT is(pgtq.release(c.id, c.lease, '2030-01-02 00:03:20+00'), true, 'release after a cancel request') FROM c;
SELECT is((SELECT state::text || ' ' || finished_at FROM pgtq.jobs WHERE id = :a_id),
    'cancelled 2030-01-02 00:03:20+00', 'ends the job cancelled instead of handing it back');
SELECT pgtq.retry(:a_id, '2030-01-02 00:04+00');
DELETE FROM c;

-- ----------------------------------------------- the lease rescue: cancelled
INSERT INTO c SELECT * FROM pg_temp.run('a', '2030-01-02 00:05+00');
SELECT pgtq.cancel(:a_id, '2030-01-02 00:05:10+00');
SELECT is(pgtq.tick('a', '2030-01-02 00:07+00'), 1, 'tick rescues the expired job asked to cancel');
SELECT is((SELECT state::text FROM pgtq.jobs WHERE id = :a_id), 'cancelled', 'it is cancelled, not retried');
SELECT matches((SELECT last_error FROM pgtq.jobs WHERE id = :a_id), '^lease expired at 2030-01-02 00:06:00',
    'its error says the lease expired');
SELECT is(pgtq.complete(c.id, c.lease), false, 'the dead worker''s lease is stale') FROM c;
DELETE FROM c;

-- ------------------------------------------------------- the edges
SELECT is(pgtq.cancel(:b_id), false, 'a done job is not cancelled');
SELECT is((SELECT state::text FROM pgtq.jobs WHERE id = :b_id), 'done', 'and stays done');
SELECT is(pgtq.cancel(-1), false, 'an unknown id is not cancelled');
SELECT pgtq.retry(:a_id, '2030-01-02 00:08+00');
INSERT INTO c SELECT * FROM pg_temp.run('a', '2030-01-02 00:09+00');
SELECT is(pgtq.complete(c.id, c.lease), true, 'without a request, the retried job completes') FROM c;
SELECT is((SELECT state::text FROM pgtq.jobs WHERE id = :a_id), 'done', 'done, as usual');
-- The functions keep these rules (no CHECK constraint: see pgtq._job).
SELECT is((SELECT count(*)::int FROM pgtq.jobs
           WHERE cancel_requested_at IS NOT NULL AND state NOT IN ('running', 'cancelled')), 0,
    'no job outside running and cancelled holds a cancel request');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE waiters < 0), 0, 'no job has fewer than no waiters');

SELECT * FROM finish();
ROLLBACK;
