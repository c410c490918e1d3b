-- push(): ready or scheduled, every argument checked, nothing half-written.
BEGIN;
SELECT plan(24);

SELECT isnt(pgtq.push('q', 'add', '[1, 2]', '{"x": 1}'), NULL, 'push returns a job id');
SELECT is(state::text, 'ready', 'a job due now is ready')
FROM pgtq.jobs WHERE task = 'add';
SELECT is((SELECT args FROM pgtq.jobs WHERE task = 'add'), '[1, 2]'::jsonb, 'args stored');
SELECT is((SELECT kwargs FROM pgtq.jobs WHERE task = 'add'), '{"x": 1}'::jsonb, 'kwargs stored');
SELECT is((SELECT attempt FROM pgtq.jobs WHERE task = 'add'), 0, 'no attempt yet');
SELECT is((SELECT max_attempts FROM pgtq.jobs WHERE task = 'add'), 25, 'max_attempts defaults to 25');

SELECT pgtq.push('q', 'later', run_at => '2030-01-01 12:00+00', as_of => '2030-01-01 11:00+00');
SELECT is(state::text, 'scheduled', 'a job with a future run_at is scheduled')
FROM pgtq.jobs WHERE task = 'later';
SELECT pgtq.push('q', 'past', run_at => '1999-01-01 00:00+00');
SELECT is(state::text, 'ready', 'a job with a past run_at is ready at once')
FROM pgtq.jobs WHERE task = 'past';

-- Bad input: a clear error with a pgtq SQLSTATE.
SELECT throws_ok($$SELECT pgtq.push('q', 't', '{"a": 1}')$$, 'PT001',
    'pgtq: args must be a JSON array, got object', 'args must be an array');
SELECT throws_ok($$SELECT pgtq.push('q', 't', '1')$$, 'PT001',
    'pgtq: args must be a JSON array, got number', 'args must not be a number');
SELECT throws_ok($$SELECT pgtq.push('q', 't', NULL)$$, 'PT001',
    'pgtq: args must be a JSON array, got NULL', 'args must not be NULL');
SELECT throws_ok($$SELECT pgtq.push('q', 't', '[]', '[]')$$, 'PT002',
    'pgtq: kwargs must be a JSON object, got array', 'kwargs must be an object');
SELECT throws_ok($$SELECT pgtq.push('q', 't', '[]', NULL)$$, 'PT002',
    'pgtq: kwargs must be a JSON object, got NULL', 'kwargs must not be NULL');
SELECT throws_ok($$SELECT pgtq.push('', 't')$$, 'PT003',
    'pgtq: queue name must be 1 to 200 characters, got 0 characters', 'empty queue name');
SELECT throws_ok($$SELECT pgtq.push(NULL, 't')$$, 'PT003',
    'pgtq: queue name must not be NULL', 'NULL queue name');
SELECT throws_ok($$SELECT pgtq.push('q', repeat('x', 201))$$, 'PT003',
    'pgtq: task name must be 1 to 200 characters, got 201 characters', 'overlong task name');
SELECT throws_ok($$SELECT pgtq.push('q', E'a\nb')$$, 'PT003',
    E'pgtq: task name ''a\nb'' contains a control character', 'control character in a name');
SELECT throws_ok($$SELECT pgtq.push('q', 't', max_attempts => 0)$$, 'PT004',
    'pgtq: max_attempts must be between 1 and 1000, got 0', 'max_attempts below 1');
SELECT throws_ok($$SELECT pgtq.push('q', 't', priority => NULL)$$, 'PT004',
    'pgtq: priority must not be NULL', 'NULL priority');
SELECT throws_ok($$SELECT pgtq.push('q', 't', run_at => 'infinity')$$, 'PT004',
    'pgtq: run_at must be a finite time, got infinity', 'infinite run_at');

-- Names are data: quotes and semicolons are stored as they are.
SELECT lives_ok($$SELECT pgtq.push('q''; DROP TABLE pgtq._job; --', 'ta"sk')$$,
    'a queue name with quotes and a semicolon is just data');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE queue = 'q''; DROP TABLE pgtq._job; --'), 1,
    'that job is stored under its odd queue name');

-- Transactional: a rolled-back push leaves no job.
SAVEPOINT before_push;
SELECT pgtq.push('rollback_q', 'gone');
ROLLBACK TO SAVEPOINT before_push;
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE queue = 'rollback_q'), 0,
    'a rolled-back push leaves no job');

-- Failed pushes wrote nothing.
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE task = 't'), 0, 'refused pushes wrote nothing');

SELECT * FROM finish();
ROLLBACK;
