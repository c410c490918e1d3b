-- pause() and resume(): a paused queue takes pushes and keeps its running
-- jobs going, pop hands out none of its jobs; pgtq.queues shows it.
-- (Across sessions, and a pause while another session's pop holds the
-- queue: tests/py/test_flow_control.py.)
BEGIN;
SELECT plan(28);
SET LOCAL TIME ZONE 'UTC';

CREATE TEMP TABLE c AS SELECT * FROM pgtq.pop('p') LIMIT 0;
SELECT pgtq.push('p', 'first', as_of => '2030-01-01 00:00+00') AS first_id \gset
SELECT pgtq.push('p', 'second', as_of => '2030-01-01 00:00+00') AS second_id \gset
SELECT pgtq.push('other', 'elsewhere', as_of => '2030-01-01 00:00+00');

-- A claim, then the pause, in the same transaction: the claimed job runs on.
INSERT INTO c SELECT * FROM pgtq.pop('p', 'w', 1, '1 minute', '2030-01-01 00:00+00');
SELECT is((SELECT id FROM c), :first_id::bigint, 'a job is claimed before the pause');
SELECT is(pgtq.pause('p', '2030-01-01 00:00:10+00'), true, 'pause pauses the queue');
SELECT is(pgtq.pause('p', '2030-01-01 00:00:20+00'), false, 'pausing it again changes nothing');
SELECT is((SELECT paused::text || ' ' || paused_at FROM pgtq.queues WHERE queue = 'p'),
    'true 2030-01-01 00:00:10+00', 'pgtq.queues shows it paused, since the first pause');
SELECT is((SELECT count(*)::int FROM pgtq.pop('p', 'w', 10, '1 minute', '2030-01-01 00:00:30+00')), 0,
    'pop hands out none of its jobs');
SELECT is((SELECT count(*)::int FROM pgtq.pop('other', 'w', 10, '1 minute', '2030-01-01 00:00:30+00')), 1,
    'other queues are not paused');

-- Pushes, ticks and the running job go on.
SELECT isnt(pgtq.push('p', 'third', as_of => '2030-01-01 00:00:40+00'), NULL, 'a paused queue takes pushes');
SELECT is(pgtq.heartbeat(c.id, c.lease, '5 minutes', '2030-01-01 00:00:50+00'), true,
    'the running job''s lease is extended') FROM c;
SELECT pgtq.push('p', 'later', run_at => '2030-01-01 00:01+00', as_of => '2030-01-01 00:00:40+00') AS later_id \gset
SELECT is(pgtq.tick('p', '2030-01-01 00:01:30+00'), 1, 'tick promotes its scheduled job (and rescues nothing)');
SELECT is((SELECT state::text FROM pgtq.jobs WHERE id = :later_id), 'ready', 'the scheduled job is ready now');
SELECT is(pgtq.complete(c.id, c.lease, '"done while paused"', '2030-01-01 00:01:40+00'), true,
    'the running job completes normally') FROM c;
SELECT is((SELECT state::text FROM pgtq.jobs WHERE id = :first_id), 'done', 'and is done');
SELECT is((SELECT ready::int FROM pgtq.queues WHERE queue = 'p'), 3, 'its ready jobs wait: second, third, later');
SELECT is((SELECT count(*)::int FROM pgtq.pop('p', 'w', 10, '1 minute', '2030-01-01 00:02+00')), 0,
    'still nothing popped while paused');

-- A job that fails while its queue is paused is retried later by the usual rule.
SELECT pgtq.push('p2', 'flaky', as_of => '2030-01-01 00:00+00') AS flaky_id \gset
DELETE FROM c;
INSERT INTO c SELECT * FROM pgtq.pop('p2', 'w', 1, '1 minute', '2030-01-01 00:00+00');
SELECT pgtq.pause('p2', '2030-01-01 00:00:05+00');
SELECT is(pgtq.fail(c.id, c.lease, 'boom', '0', '2030-01-01 00:00:10+00'), 'ready',
    'a running job of a paused queue fails by the usual rule') FROM c;
SELECT is((SELECT count(*)::int FROM pgtq.pop('p2', 'w', 1, '1 minute', '2030-01-01 00:00:20+00')), 0,
    'its retry waits for the resume');

-- resume
SELECT is(pgtq.resume('p', '2030-01-01 00:03+00'), true, 'resume resumes the queue');
SELECT is(pgtq.resume('p', '2030-01-01 00:03+00'), false, 'resuming a queue that runs changes nothing');
SELECT is((SELECT paused FROM pgtq.queues WHERE queue = 'p'), false, 'pgtq.queues shows it running');
SELECT is((SELECT array_agg(task ORDER BY id) FROM pgtq.pop('p', 'w', 10, '1 minute', '2030-01-01 00:03+00')),
    ARRAY['second', 'third', 'later'], 'pop hands out its jobs again, in order');
SELECT is((SELECT configured_at FROM pgtq.queues WHERE queue = 'p'), NULL,
    'a resumed queue without limits has nothing configured left');

-- A pause keeps the limits, and a resume keeps them too.
SELECT pgtq.configure_queue('p3', max_running => 1, as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('p3', 't', as_of => '2030-01-01 00:00+00') FROM generate_series(1, 3);
SELECT is(pgtq.pause('p3', '2030-01-01 00:00+00'), true, 'a limited queue is paused');
SELECT is((SELECT count(*)::int FROM pgtq.pop('p3', 'w', 3, '1 minute', '2030-01-01 00:00+00')), 0,
    'and hands out nothing, though it has room');
SELECT is(pgtq.resume('p3', '2030-01-01 00:00+00'), true, 'resumed');
SELECT is((SELECT max_running FROM pgtq.queues WHERE queue = 'p3'), 1, 'it keeps its limit');
SELECT is((SELECT count(*)::int FROM pgtq.pop('p3', 'w', 3, '1 minute', '2030-01-01 00:00+00')), 1,
    'which holds again');

-- A queue need not exist to be paused: the jobs pushed later wait.
SELECT is(pgtq.pause('fresh', '2030-01-01 00:00+00'), true, 'a queue without jobs is paused');
SELECT pgtq.push('fresh', 't', as_of => '2030-01-01 00:00+00');
SELECT is((SELECT count(*)::int FROM pgtq.pop('fresh', 'w', 1, '1 minute', '2030-01-01 00:00+00')), 0,
    'and its first job waits');

SELECT * FROM finish();
ROLLBACK;
