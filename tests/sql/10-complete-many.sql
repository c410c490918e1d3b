-- complete_many(): many completions in one statement, each as complete() would.
BEGIN;
SELECT plan(10);

SELECT pgtq.push('q', 'job_' || n) FROM generate_series(1, 4) AS n;
CREATE TEMP TABLE c AS SELECT * FROM pgtq.pop('q', n => 4);

SELECT is(
    (SELECT array_agg(done ORDER BY done) FROM pgtq.complete_many(
        (SELECT array_agg(id ORDER BY id) FROM c WHERE task <> 'job_4'),
        (SELECT array_agg(CASE WHEN task = 'job_3' THEN gen_random_uuid() ELSE lease END ORDER BY id)
         FROM c WHERE task <> 'job_4'),
        ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[]) AS done),
    (SELECT array_agg(id ORDER BY id) FROM c WHERE task IN ('job_1', 'job_2')),
    'it completes the pairs with a current lease and returns their ids');
SELECT is((SELECT result FROM pgtq.jobs WHERE task = 'job_2'), '{"n": 2}'::jsonb, 'each job gets its own result');
SELECT is((SELECT state::text FROM pgtq.jobs WHERE task = 'job_3'), 'running', 'a forged lease changes nothing');
SELECT is((SELECT count(*)::int FROM pgtq.complete_many(ARRAY(SELECT id FROM c), ARRAY(SELECT lease FROM c))),
    2, 'again: only the two still running with their lease are completed, without results');
SELECT is((SELECT result FROM pgtq.jobs WHERE task = 'job_4'), NULL, 'no results: no result');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE state = 'done'), 4, 'all four are done');
SELECT is((SELECT count(*)::int FROM pgtq.complete_many('{}', '{}')), 0, 'empty arrays complete nothing');

SELECT throws_ok($$SELECT pgtq.complete_many(ARRAY[1, 2]::bigint[], ARRAY[gen_random_uuid()])$$, 'PT004',
    'pgtq: complete_many needs ids and leases (and results, if given) of one length of at most 10000, got 2 ids, 1 leases and no results',
    'mismatched arrays are refused');
SELECT throws_ok($$SELECT pgtq.complete_many(NULL, NULL)$$, 'PT004',
    'pgtq: complete_many needs ids and leases (and results, if given) of one length of at most 10000, got NULL ids, NULL leases and no results',
    'NULL arrays are refused');
SELECT throws_ok($$SELECT pgtq.complete_many('{}', '{}', as_of => NULL)$$, 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'NULL as_of is refused');

SELECT * FROM finish();
ROLLBACK;
