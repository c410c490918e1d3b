-- push(..., lock_key): at most one job of a key runs at a time, in any
-- queue; the key's jobs start in their order (priority, then push order);
-- a pop skips a blocked key and takes the jobs after it. Every end of a
-- running job frees its key, and so does a lease that ran out. (Several
-- sessions popping at once, and the wake-ups: tests/py/test_flow_control.py.)
BEGIN;
SELECT plan(37);
SET LOCAL TIME ZONE 'UTC';

CREATE TEMP TABLE c AS SELECT * FROM pgtq.pop('k') LIMIT 0;
-- Claim up to n jobs of a queue at `at` (one-minute leases), keep them in c,
-- and return their tasks in the order pop gave them.
CREATE FUNCTION pg_temp.take(queue text, n integer, at timestamptz) RETURNS text[] LANGUAGE sql AS $$
    WITH got AS (INSERT INTO c SELECT * FROM pgtq.pop($1, 'w', $2, '1 minute', $3) RETURNING task, priority, id)
    SELECT coalesce(array_agg(task ORDER BY priority DESC, id), '{}') FROM got
$$;
CREATE FUNCTION pg_temp.held(task text) RETURNS c LANGUAGE sql AS $$
    SELECT * FROM c WHERE c.task = $1 ORDER BY c.lease_expires_at DESC LIMIT 1
$$;
CREATE FUNCTION pg_temp.done(task text, at timestamptz) RETURNS boolean LANGUAGE sql AS $$
    SELECT pgtq.complete((pg_temp.held($1)).id, (pg_temp.held($1)).lease, NULL, $2)
$$;

-- -------------------------------------------------------------- the rule
SELECT pgtq.push('k', 'a1', lock_key => 'a', as_of => '2030-01-01 00:00+00') AS a1_id \gset
SELECT pgtq.push('k', 'a2', lock_key => 'a', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('k', 'a3', lock_key => 'a', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('k', 'b1', lock_key => 'b', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('k', 'b2', lock_key => 'b', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('k', 'free', as_of => '2030-01-01 00:00+00');
SELECT is((SELECT lock_key FROM pgtq.jobs WHERE id = :a1_id), 'a', 'pgtq.jobs shows the lock key');

SELECT is(pg_temp.take('k', 10, '2030-01-01 00:00+00'), ARRAY['a1', 'b1', 'free'],
    'one job per key, the first of each, and the jobs without a key: the blocked ones are skipped');
SELECT is(pg_temp.take('k', 10, '2030-01-01 00:00:01+00'), '{}'::text[], 'nothing more while a and b run');
SELECT is(pg_temp.done('a1', '2030-01-01 00:00:02+00') AND pg_temp.done('free', '2030-01-01 00:00:02+00'), true,
    'a1 and the job without a key complete');
SELECT is(pg_temp.take('k', 10, '2030-01-01 00:00:02+00'), ARRAY['a2'], 'then a2, the next of key a, starts');

-- Every end of a running job frees its key.
SELECT is(pgtq.fail((pg_temp.held('a2')).id, (pg_temp.held('a2')).lease, 'boom', '1 hour', '2030-01-01 00:00:03+00'),
    'scheduled', 'a2 fails and waits for its retry');
SELECT is(pg_temp.take('k', 10, '2030-01-01 00:00:03+00'), ARRAY['a3'],
    'the key is free: a3 starts (a job waiting for its retry does not hold the key)');
SELECT is(pgtq.abort((pg_temp.held('a3')).id, (pg_temp.held('a3')).lease, 'no', '2030-01-01 00:00:04+00'), 'failed',
    'a3 is aborted');
SELECT is(pgtq.release((pg_temp.held('b1')).id, (pg_temp.held('b1')).lease, '2030-01-01 00:00:04+00'), true,
    'b1 is released');
SELECT is(pg_temp.take('k', 10, '2030-01-01 00:00:04+00'), ARRAY['b1'],
    'the released job is first of its key again and takes it back (b2 waits)');
SELECT is((SELECT count(*)::int FROM pgtq.complete_many(ARRAY[(pg_temp.held('b1')).id],
                                                         ARRAY[(pg_temp.held('b1')).lease],
                                                         as_of => '2030-01-01 00:00:05+00')), 1,
    'b1 completes through complete_many');
SELECT is(pg_temp.take('k', 10, '2030-01-01 00:00:05+00'), ARRAY['b2'], 'b2 starts');

-- A lease that ran out frees the key, before tick; the rescue keeps it free.
SELECT is(pg_temp.take('k', 10, '2030-01-01 00:01:04+00'), '{}'::text[], 'nothing to take while b2''s lease is live');
SELECT pgtq.push('k', 'b3', lock_key => 'b', as_of => '2030-01-01 00:01:04+00');
SELECT is(pg_temp.take('k', 10, '2030-01-01 00:01:04+00'), '{}'::text[], 'b3 waits for b2');
SELECT is(pg_temp.take('k', 10, '2030-01-01 00:01:06+00'), ARRAY['b3'],
    'once b2''s lease ran out (00:01:05), b3 starts, though tick has not rescued b2');
SELECT is(pgtq.tick('k', '2030-01-01 00:01:07+00'), 1, 'tick rescues b2');
SELECT is((SELECT state::text FROM pgtq.jobs WHERE task = 'b2'), 'scheduled', 'which waits for its retry');

-- A cancel request keeps the key until the attempt ends.
SELECT pgtq.push('k', 'b4', lock_key => 'b', as_of => '2030-01-01 00:01:07+00');
SELECT is(pgtq.cancel((pg_temp.held('b3')).id, '2030-01-01 00:01:08+00'), true, 'b3 is asked to cancel');
SELECT is(pg_temp.take('k', 10, '2030-01-01 00:01:08+00'), '{}'::text[], 'b3 still holds key b');
SELECT is(pg_temp.done('b3', '2030-01-01 00:01:09+00'), true, 'b3''s attempt ends (cancelled)');
SELECT is(pg_temp.take('k', 10, '2030-01-01 00:01:09+00'), ARRAY['b4'], 'and b4 starts');

-- ---------------------------------------------------- order within a key
SELECT pgtq.push('o', 'low', lock_key => 'x', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('o', 'high', lock_key => 'x', priority => 5, as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('o', 'low2', lock_key => 'x', as_of => '2030-01-01 00:00+00');
SELECT is(pg_temp.take('o', 1, '2030-01-01 00:00+00'), ARRAY['high'], 'the key''s highest priority starts first');
SELECT is(pg_temp.done('high', '2030-01-01 00:00:01+00'), true, 'it completes');
SELECT is(pg_temp.take('o', 3, '2030-01-01 00:00:01+00'), ARRAY['low'], 'then push order: low');
SELECT is(pg_temp.done('low', '2030-01-01 00:00:02+00'), true, 'low completes');
SELECT is(pg_temp.take('o', 3, '2030-01-01 00:00:02+00'), ARRAY['low2'], 'then low2');

-- ------------------------------------------------- across queues, in order
SELECT pgtq.push('q1', 'x1', lock_key => 'shared', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('q2', 'x2', lock_key => 'shared', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('q2', 'other', as_of => '2030-01-01 00:00+00');
SELECT is(pg_temp.take('q2', 10, '2030-01-01 00:00+00'), ARRAY['other'],
    'q2 skips x2: the key''s next job is x1, in q1');
SELECT is(pg_temp.take('q1', 10, '2030-01-01 00:00+00'), ARRAY['x1'], 'q1 runs x1');
SELECT is(pg_temp.take('q2', 10, '2030-01-01 00:00:01+00'), '{}'::text[], 'x2 waits while x1 runs in the other queue');
SELECT is(pg_temp.done('x1', '2030-01-01 00:00:02+00'), true, 'x1 completes');
SELECT is(pg_temp.take('q2', 10, '2030-01-01 00:00:02+00'), ARRAY['x2'], 'and x2 starts in q2');

-- ------------------------------------- past the queue's first 64 ready jobs
-- From the 65th ready job on, the keys that the queue's own running jobs
-- hold are left out by one read of those jobs (0.31.0); a key held by a
-- job of another queue is still probed, and a lease that ran out still
-- frees its key.
SELECT pgtq.push('deep', 'lp0', lock_key => 'lp', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('deep', 'bk0', lock_key => 'bk', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('side', 'sx0', lock_key => 'sx', as_of => '2030-01-01 00:00+00');
SELECT pg_temp.take('deep', 1, '2030-01-01 00:00+00');       -- lp0: its lease runs out at 00:01
SELECT pg_temp.take('deep', 1, '2030-01-01 00:01:30+00');    -- bk0
SELECT pg_temp.take('side', 1, '2030-01-01 00:01:30+00');    -- sx0, in another queue
SELECT pgtq.push('deep', 'early', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('deep', 'g1', lock_key => 'g', as_of => '2030-01-01 00:00+00');
SELECT count(pgtq.push('deep', 'bk', lock_key => 'bk', as_of => '2030-01-01 00:00+00'))
FROM generate_series(1, 70);
SELECT pgtq.push('deep', 'sx1', lock_key => 'sx', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('deep', 'lp1', lock_key => 'lp', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('deep', 'f1', lock_key => 'f', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('deep', 'f2', lock_key => 'f', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('deep', 'g2', lock_key => 'g', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('deep', 'plain', as_of => '2030-01-01 00:00+00');
SELECT is(pg_temp.take('deep', 5, '2030-01-01 00:01:40+00'), ARRAY['early', 'g1', 'lp1', 'f1', 'plain'],
    'a pop of 5: two jobs before 70 jobs of a busy key, each taken once; past them the key whose lease ran out, one job of a free key, the job without a key, in order');
SELECT is((SELECT slot FROM pgtq._job WHERE task = 'lp0'), 0, 'lp0, whose lease ran out, is written off (slot 0)');
SELECT is(pg_temp.done('bk0', '2030-01-01 00:01:41+00') AND pg_temp.done('f1', '2030-01-01 00:01:41+00')
          AND pg_temp.done('g1', '2030-01-01 00:01:41+00'), true,
    'bk0, f1 and g1 complete');
SELECT is(pg_temp.take('deep', 10, '2030-01-01 00:01:42+00'), ARRAY['bk', 'f2', 'g2'],
    'then the next job of each freed key; sx1 waits for sx0 in the other queue');

-- --------------------------------------------- lock keys and job keys together
SELECT pgtq.push('j', 'v1', job_key => 'jk', lock_key => 'one', as_of => '2030-01-01 00:00+00') AS jk_id \gset
SELECT is(pgtq.push('j', 'v2', job_key => 'jk', job_key_mode => 'replace', lock_key => 'two',
                    as_of => '2030-01-01 00:00+00'), :jk_id::bigint, 'a job key replaces the pending job');
SELECT is((SELECT task || ' ' || lock_key FROM pgtq.jobs WHERE id = :jk_id), 'v2 two', 'and its lock key too');

SELECT * FROM finish();
ROLLBACK;
