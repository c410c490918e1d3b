-- The operator's bulk actions: retry_failed (a queue's or a task's failed
-- jobs at once), purge (finished jobs by state, queue and age, in
-- batches) and delete_job (one finished job).
BEGIN;
SELECT plan(23);
SET LOCAL TIME ZONE 'UTC';

-- Failed jobs in two queues and two tasks, a cancelled one, a done one.
CREATE TEMP TABLE made (name text PRIMARY KEY, id bigint);
INSERT INTO made SELECT 'a' || n, pgtq.push('qa', 'ta', max_attempts => 1, as_of => '2030-01-01 00:00+00')
FROM generate_series(1, 3) AS n;
INSERT INTO made SELECT 'b', pgtq.push('qa', 'tb', max_attempts => 1, as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'other', pgtq.push('qb', 'ta', max_attempts => 1, as_of => '2030-01-01 00:00+00');
SELECT pgtq.fail(c.id, c.lease, 'boom', as_of => '2030-01-01 00:01+00')
FROM pgtq.pop('qa', n => 10, as_of => '2030-01-01 00:00+00') AS c;
SELECT pgtq.fail(c.id, c.lease, 'boom', as_of => '2030-01-01 00:01+00')
FROM pgtq.pop('qb', as_of => '2030-01-01 00:00+00') AS c;
INSERT INTO made SELECT 'cancelled', pgtq.push('qa', 'ta', as_of => '2030-01-01 00:00+00');
SELECT pgtq.cancel(id, '2030-01-01 00:02+00') FROM made WHERE name = 'cancelled';
INSERT INTO made SELECT 'done', pgtq.push('qc', 'ta', as_of => '2030-01-01 00:00+00');
SELECT pgtq.complete(c.id, c.lease, as_of => '2030-01-01 00:03+00')
FROM pgtq.pop('qc', as_of => '2030-01-01 00:00+00') AS c;
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE state = 'failed'), 5, 'five failed jobs to start with');

-- ------------------------------------------------------------ retry_failed
SELECT is(pgtq.retry_failed('qa', 'ta', '2030-01-01 01:00+00'), 3, 'retry_failed(queue, task) retries that task''s');
SELECT is((SELECT array_agg(m.name || ':' || j.state || ':' || j.attempt ORDER BY m.name) FROM made m JOIN pgtq.jobs j USING (id)
           WHERE m.name IN ('a1', 'a2', 'a3', 'b', 'other')),
    ARRAY['a1:ready:0', 'a2:ready:0', 'a3:ready:0', 'b:failed:1', 'other:failed:1'],
    'each as retry() does: ready, attempt count reset; other tasks and queues untouched');
SELECT is((SELECT DISTINCT j.run_at FROM made m JOIN pgtq.jobs j USING (id) WHERE m.name LIKE 'a_'),
    '2030-01-01 01:00+00'::timestamptz, 'due at as_of');
SELECT is(pgtq.retry_failed('qa', 'ta'), 0, 'a second call finds nothing left to retry');
SELECT is(pgtq.retry_failed('qa'), 1, 'retry_failed(queue) retries every task of the queue');
SELECT is((SELECT state::text FROM pgtq.jobs j JOIN made m USING (id) WHERE m.name = 'cancelled'), 'cancelled',
    'cancelled jobs are not retried in bulk');
SELECT is(pgtq.retry_failed(), 1, 'retry_failed() retries every queue''s');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE state = 'failed'), 0, 'no failed job is left');
SELECT is(pgtq.retry_failed('nowhere'), 0, 'an unknown queue retries nothing');

-- Job keys (0.27.0): x1 and x2 failed with key x, y1 with key y, which a
-- pending job (y2) holds now, and n1 without a key.
CREATE FUNCTION pg_temp.push_and_fail(name text, key text) RETURNS void LANGUAGE sql AS $$
    INSERT INTO made SELECT name, pgtq.push('kq', 't', max_attempts => 1, job_key => key, as_of => '2030-01-01 00:00+00');
    SELECT pgtq.fail(c.id, c.lease, 'boom', as_of => '2030-01-01 00:01+00')
    FROM pgtq.pop('kq', n => 10, as_of => '2030-01-01 00:00+00') AS c;
$$;
SELECT pg_temp.push_and_fail('x1', 'x');
SELECT pg_temp.push_and_fail('x2', 'x');
SELECT pg_temp.push_and_fail('y1', 'y');
SELECT pg_temp.push_and_fail('n1', NULL);
INSERT INTO made SELECT 'y2', pgtq.push('kq', 't', job_key => 'y', as_of => '2030-01-01 00:02+00');
SELECT is(pgtq.retry_failed('kq', as_of => '2030-01-01 01:00+00'), 2,
    'retry_failed does not stop at a job key: it retries two of the four');
SELECT is((SELECT array_agg(m.name || ':' || j.state ORDER BY m.name) FROM made m JOIN pgtq.jobs j USING (id)
           WHERE m.name IN ('x1', 'x2', 'y1', 'y2', 'n1')),
    ARRAY['n1:ready', 'x1:failed', 'x2:ready', 'y1:failed', 'y2:ready'],
    'the newest of key x, none of key y (y2 holds it), and the one without a key');
SELECT is(pgtq.retry_failed('kq', as_of => '2030-01-01 01:00+00'), 0, 'the keys stay held: nothing more to retry');

-- ------------------------------------------------------------------ purge
-- Finished: 'cancelled' (00:02), 'done' (00:03), and five more done ones.
SELECT pgtq.cancel(pgtq.push('qd', 'old', as_of => '2030-01-01 00:00+00'),
                   '2030-01-01 00:10+00'::timestamptz + n * interval '1 minute')
FROM generate_series(1, 5) AS n;
SELECT is(pgtq.purge('1 hour', '{done}', as_of => '2030-01-01 00:30+00'), 0, 'nothing finished over an hour ago');
SELECT is(pgtq.purge('10 minutes', '{done}', as_of => '2030-01-01 00:30+00'), 1,
    'purge of done jobs deletes the done one only');
SELECT is((SELECT count(*)::int FROM made m JOIN pgtq.jobs j USING (id) WHERE m.name = 'done'), 0, 'it is gone');
SELECT is(pgtq.purge('0', '{cancelled}', 'qd', 2, '2030-01-01 01:00+00'), 2, 'purge by queue, at most batch rows');
SELECT is((SELECT array_agg(finished_at ORDER BY finished_at) FROM pgtq.jobs WHERE queue = 'qd'),
    ARRAY['2030-01-01 00:13+00', '2030-01-01 00:14+00', '2030-01-01 00:15+00']::timestamptz[],
    'the oldest go first');
SELECT is(pgtq.purge('0', '{cancelled}', as_of => '2030-01-01 01:00+00'), 4,
    'without a queue, every queue''s (qd''s three and qa''s one)');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE state IN ('ready', 'scheduled', 'running')), 8,
    'live jobs are never purged (the five retried first, x2, y2 and n1)');

-- ------------------------------------------------------------- delete_job
SELECT is(pgtq.delete_job(id), false, 'delete_job leaves a live job alone (cancel it first)') FROM made WHERE name = 'b';
SELECT pgtq.cancel(id, '2030-01-01 02:00+00') FROM made WHERE name = 'b';
SELECT is(pgtq.delete_job(id), true, 'and deletes it once it is finished') FROM made WHERE name = 'b';
SELECT is(pgtq.delete_job(id), false, 'a second delete finds nothing') FROM made WHERE name = 'b';

SELECT * FROM finish();
ROLLBACK;
