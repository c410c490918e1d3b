-- prune(): what it deletes and keeps, in batches; configure(): the worker
-- timeout that tick applies, and the payload limit push_many applies.
BEGIN;
SELECT plan(18);
SET LOCAL TIME ZONE 'UTC';

-- One finished job of each kind, all finished at 00:00, and a live one.
CREATE TEMP TABLE made (kind text PRIMARY KEY, id bigint);
INSERT INTO made SELECT 'done', pgtq.push('p', 'done', as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'failed', pgtq.push('p2', 'failed', max_attempts => 1, as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'cancelled', pgtq.push('p3', 'cancelled', as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'live', pgtq.push('p4', 'live', run_at => '2030-06-01', as_of => '2030-01-01 00:00+00');
SELECT pgtq.complete(c.id, c.lease, as_of => '2030-01-01 00:00+00')
FROM pgtq.pop('p', as_of => '2030-01-01 00:00+00') AS c;
SELECT pgtq.fail(c.id, c.lease, 'boom', as_of => '2030-01-01 00:00+00')
FROM pgtq.pop('p2', as_of => '2030-01-01 00:00+00') AS c;
SELECT pgtq.cancel(id, '2030-01-01 00:00+00') FROM made WHERE kind = 'cancelled';

SELECT is(pgtq.prune('1 hour', as_of => '2030-01-01 00:30+00'), 0, 'jobs younger than older_than are kept');
SELECT is(pgtq.prune('1 hour', as_of => '2030-01-01 02:00+00'), 2, 'done and cancelled jobs are pruned');
SELECT is((SELECT array_agg(m.kind ORDER BY m.kind) FROM made m JOIN pgtq.jobs j USING (id)),
    ARRAY['failed', 'live'], 'failed jobs are kept by default, live ones always');
SELECT is(pgtq.prune('1 hour', include_failed => true, as_of => '2030-01-01 02:00+00'), 1,
    'include_failed prunes failed jobs too');
SELECT is((SELECT array_agg(m.kind) FROM made m JOIN pgtq.jobs j USING (id)), ARRAY['live'],
    'only the live job is left');

-- batch: at most `batch` rows per call, oldest first.
SELECT pgtq.cancel(pgtq.push('b', 'old' || n, as_of => '2030-01-01 00:00+00'),
                   '2030-01-01 00:00+00'::timestamptz + n * interval '1 minute')
FROM generate_series(1, 5) AS n;
SELECT is(pgtq.prune('0', batch => 2, as_of => '2030-01-02'), 2, 'batch bounds one call');
SELECT is((SELECT array_agg(task ORDER BY task) FROM pgtq.jobs WHERE queue = 'b'), ARRAY['old3', 'old4', 'old5'],
    'the oldest finished jobs go first');
SELECT is(pgtq.prune('0', batch => 2, as_of => '2030-01-02'), 2, 'the next call takes the next batch');
SELECT is(pgtq.prune('0', batch => 2, as_of => '2030-01-02'), 1, 'and the last one what is left');
SELECT is(pgtq.prune('0', batch => 2, as_of => '2030-01-02'), 0, 'until nothing is left');

-- configure(worker_timeout): tick forgets workers not seen for that long.
SELECT pgtq.register_worker('w-old', 'h', 1, ARRAY['q'], '2030-01-01 00:00+00');
SELECT pgtq.register_worker('w-new', 'h', 2, ARRAY['q'], '2030-01-01 00:04+00');
SELECT is((SELECT worker_timeout FROM pgtq.configure(worker_timeout => '5 minutes')), interval '5 minutes',
    'configure sets the worker timeout');
SELECT pgtq.tick(as_of => '2030-01-01 00:04:59+00');
SELECT is((SELECT array_agg(id ORDER BY id) FROM pgtq.workers), ARRAY['w-new', 'w-old'],
    'a worker seen within the timeout is kept');
SELECT pgtq.tick(as_of => '2030-01-01 00:05:01+00');
SELECT is((SELECT array_agg(id) FROM pgtq.workers), ARRAY['w-new'],
    'a worker not seen for longer than the timeout is forgotten by tick');
SELECT pgtq.configure(worker_timeout => '1 minute');
SELECT pgtq.tick(as_of => '2030-01-01 00:05:01+00');
SELECT is((SELECT count(*)::int FROM pgtq.workers), 0, 'a shorter timeout forgets sooner');

-- push_many and the payload limit: one element over it refuses the lot.
SELECT pgtq.configure(max_payload_bytes => 64);
SELECT throws_ok($$SELECT pgtq.push_many('big', 't', ARRAY['[1]', jsonb_build_array(repeat('x', 100)), '[2]'])$$,
    'PT005', NULL, 'push_many refuses an element over the payload limit');
SELECT throws_like($$SELECT pgtq.push_many('big', 't', ARRAY['[1]', jsonb_build_array(repeat('x', 100))])$$,
    'pgtq: payload of job 2 of task ''t'' is % bytes, over the limit of 64 bytes',
    'the error names the element by its position');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE queue = 'big'), 0, 'and writes none of them');
SELECT lives_ok($$SELECT pgtq.push_many('big', 't', ARRAY['[1]', '[2]']::jsonb[])$$,
    'elements within the limit are accepted');
SELECT pgtq.configure(max_payload_bytes => 1048576);

SELECT * FROM finish();
ROLLBACK;
