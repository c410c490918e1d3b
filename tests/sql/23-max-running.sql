-- configure_queue(max_running => N): at most N jobs of the queue run with
-- a live lease; every end of a running job frees its slot at once
-- (complete, complete_many, fail, abort, release, a cancelled job's end,
-- the lease rescue), and a lease that ran out counts no more even before
-- tick. (Several sessions popping at once: tests/py/test_flow_control.py.)
BEGIN;
SELECT plan(38);
SET LOCAL TIME ZONE 'UTC';

CREATE TEMP TABLE c AS SELECT * FROM pgtq.pop('m') LIMIT 0;
-- Claim up to n jobs of a queue at `at` with a one-minute lease, keeping them in c.
CREATE FUNCTION pg_temp.take(queue text, n integer, at timestamptz) RETURNS integer LANGUAGE sql AS $$
    WITH got AS (INSERT INTO c SELECT * FROM pgtq.pop($1, 'w', $2, '1 minute', $3) RETURNING id)
    SELECT count(*)::integer FROM got
$$;
-- The id of the job with this task, and its lease.
CREATE FUNCTION pg_temp.held(task text) RETURNS c LANGUAGE sql AS $$ SELECT * FROM c WHERE c.task = $1 $$;

SELECT pgtq.push('m', 't' || i, as_of => '2030-01-01 00:00+00') FROM generate_series(1, 12) AS i;
SELECT is(pgtq.configure_queue('m', max_running => 2, as_of => '2030-01-01 00:00+00'), true,
    'configure_queue sets max_running');
SELECT is(pgtq.configure_queue('m', max_running => 2, as_of => '2030-01-01 00:00+00'), false,
    'the same limit again changes nothing');
SELECT is((SELECT max_running FROM pgtq.queues WHERE queue = 'm'), 2, 'pgtq.queues shows it');

SELECT is(pg_temp.take('m', 5, '2030-01-01 00:00+00'), 2, 'pop claims no more than max_running');
SELECT is(pg_temp.take('m', 5, '2030-01-01 00:00:01+00'), 0, 'and nothing while both run');
SELECT is((SELECT running FROM pgtq.queues WHERE queue = 'm'), 2::bigint, 'pgtq.queues counts them');

-- Each way a running job ends frees its slot at once.
SELECT is(pgtq.complete((pg_temp.held('t1')).id, (pg_temp.held('t1')).lease, NULL, '2030-01-01 00:00:02+00'),
    true, 'complete');
SELECT is(pg_temp.take('m', 5, '2030-01-01 00:00:02+00'), 1, 'frees a slot: one more runs');
SELECT is((SELECT count(*)::int FROM pgtq.complete_many(ARRAY[(pg_temp.held('t2')).id],
                                                         ARRAY[(pg_temp.held('t2')).lease],
                                                         as_of => '2030-01-01 00:00:03+00')), 1,
    'complete_many');
SELECT is(pg_temp.take('m', 5, '2030-01-01 00:00:03+00'), 1, 'frees a slot');
SELECT is(pgtq.fail((pg_temp.held('t3')).id, (pg_temp.held('t3')).lease, 'boom', '1 hour', '2030-01-01 00:00:04+00'),
    'scheduled', 'fail (retried later)');
SELECT is(pg_temp.take('m', 5, '2030-01-01 00:00:04+00'), 1, 'frees a slot');
SELECT is(pgtq.abort((pg_temp.held('t4')).id, (pg_temp.held('t4')).lease, 'hopeless', '2030-01-01 00:00:05+00'),
    'failed', 'abort');
SELECT is(pg_temp.take('m', 5, '2030-01-01 00:00:05+00'), 1, 'frees a slot');
SELECT is(pgtq.release((pg_temp.held('t5')).id, (pg_temp.held('t5')).lease, '2030-01-01 00:00:06+00'), true,
    'release');
SELECT is((SELECT array_agg(p.task ORDER BY p.id) FROM pgtq.pop('m', 'w', 5, '1 minute', '2030-01-01 00:00:06+00') AS p),
    ARRAY['t5'], 'frees its slot, and the released job (first in line) takes it again');
SELECT is((SELECT count(*)::int FROM pgtq.queues WHERE queue = 'm' AND running = 2), 1, 'two run, as allowed');

-- A cancel request does not free the slot; the end of the cancelled attempt does.
SELECT is(pgtq.cancel((pg_temp.held('t6')).id, '2030-01-01 00:00:07+00'), true, 'a running job is asked to cancel');
SELECT is(pg_temp.take('m', 5, '2030-01-01 00:00:07+00'), 0, 'it still holds its slot while it stops');
SELECT is(pgtq.complete((pg_temp.held('t6')).id, (pg_temp.held('t6')).lease, NULL, '2030-01-01 00:00:08+00'), true,
    'its attempt ends');
SELECT is((SELECT state::text FROM pgtq.jobs WHERE id = (pg_temp.held('t6')).id), 'cancelled', 'cancelled');
SELECT is(pg_temp.take('m', 5, '2030-01-01 00:00:08+00'), 1, 'and its slot is free');

-- A lease that ran out counts no more, before tick rescues the job; the rescue keeps the slot free.
DELETE FROM c WHERE id IN (SELECT id FROM pgtq.jobs WHERE queue = 'm' AND state <> 'running');
SELECT is((SELECT array_agg(lease_expires_at ORDER BY id) FROM pgtq.jobs WHERE queue = 'm' AND state = 'running'),
    ARRAY['2030-01-01 00:01:06+00', '2030-01-01 00:01:08+00']::timestamptz[], 'two run, leased to 00:01:06 and 00:01:08');
SELECT is(pg_temp.take('m', 5, '2030-01-01 00:01:05+00'), 0, 'while both leases are live, no room');
SELECT is(pg_temp.take('m', 5, '2030-01-01 00:01:07+00'), 1,
    'once one lease ran out its slot is free, though tick has not rescued the job yet');
SELECT is(pgtq.tick('m', '2030-01-01 00:01:09+00'), 2, 'tick rescues both expired jobs');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE queue = 'm' AND state = 'running'), 1,
    'one job runs now (the one claimed at 00:01:07)');
SELECT is(pg_temp.take('m', 5, '2030-01-01 00:01:09+00'), 1, 'and the rescued ones hold no slot: one more runs');

-- A lowered limit stops nothing; the queue runs over it until jobs end.
SELECT is(pgtq.configure_queue('m', max_running => 1, as_of => '2030-01-01 00:01:10+00'), true, 'max_running lowered to 1');
SELECT is((SELECT running FROM pgtq.queues WHERE queue = 'm'), 2::bigint, 'the two running jobs go on');
SELECT is(pg_temp.take('m', 5, '2030-01-01 00:01:10+00'), 0, 'none starts while two run');

-- max_running => 1: a strict serial queue.
SELECT pgtq.push('serial', 's' || i, as_of => '2030-01-01 00:00+00') FROM generate_series(1, 3) AS i;
SELECT pgtq.configure_queue('serial', max_running => 1, as_of => '2030-01-01 00:00+00');
SELECT is((SELECT array_agg(p.task) FROM pgtq.pop('serial', 'w', 3, '1 minute', '2030-01-01 00:00+00') AS p),
    ARRAY['s1'], 'max_running 1 runs one job');
SELECT is((SELECT count(*)::int FROM pgtq.pop('serial', 'w', 3, '1 minute', '2030-01-01 00:00+00')), 0,
    'and no second one beside it');
SELECT is(pgtq.complete(j.id, (SELECT lease FROM pgtq._job WHERE id = j.id), NULL, '2030-01-01 00:00:01+00'), true,
    'it ends') FROM pgtq.jobs AS j WHERE j.task = 's1';
SELECT is((SELECT array_agg(p.task) FROM pgtq.pop('serial', 'w', 3, '1 minute', '2030-01-01 00:00:01+00') AS p),
    ARRAY['s2'], 'then the next one runs, in order');

-- configure_queue without limits lifts them.
SELECT is(pgtq.configure_queue('serial', as_of => '2030-01-01 00:00:02+00'), true, 'the limit is lifted');
SELECT is((SELECT count(*)::int FROM pgtq.pop('serial', 'w', 3, '1 minute', '2030-01-01 00:00:02+00')), 1,
    'the last job runs beside s2');
SELECT is((SELECT count(*)::int FROM pgtq.queues WHERE queue = 'serial' AND configured_at IS NULL), 1,
    'and nothing is configured for the queue any more');

SELECT * FROM finish();
ROLLBACK;
