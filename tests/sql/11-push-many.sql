-- push_many(): many jobs of one task in one statement, all or nothing.
BEGIN;
SELECT plan(13);

SELECT is(
    (SELECT count(*)::int FROM pgtq.push_many('q', 'bulk', ARRAY['[1]', '[2]', '[3]']::jsonb[],
                                              ARRAY['{}', '{"x": 2}', '{}']::jsonb[])),
    3, 'three jobs pushed in one call');
SELECT is((SELECT array_agg(args ORDER BY id) FROM pgtq.jobs WHERE task = 'bulk'),
    ARRAY['[1]', '[2]', '[3]']::jsonb[], 'in the order given');
SELECT is((SELECT kwargs FROM pgtq.jobs WHERE task = 'bulk' AND args = '[2]'), '{"x": 2}'::jsonb,
    'each with its kwargs');
SELECT is((SELECT array_agg(DISTINCT state::text) FROM pgtq.jobs WHERE task = 'bulk'), ARRAY['ready'],
    'due now: ready');
SELECT is((SELECT array_agg(task ORDER BY task) FROM pgtq.pop('q', n => 10)), ARRAY['bulk', 'bulk', 'bulk'],
    'and popped like pushed jobs');

SELECT pgtq.push_many('q', 'later', ARRAY['[]', '[]']::jsonb[], run_at => '2100-01-01', priority => 5,
                      max_attempts => 3);
SELECT is((SELECT array_agg(DISTINCT state::text || '/' || priority || '/' || max_attempts)
           FROM pgtq.jobs WHERE task = 'later'),
    ARRAY['scheduled/5/3'], 'run_at, priority and max_attempts apply to every job');
SELECT is((SELECT count(*)::int FROM pgtq.push_many('q', 'none', '{}')), 0, 'an empty array pushes nothing');

SELECT throws_ok($$SELECT pgtq.push_many('q', 'bad', ARRAY['[]', '{"a": 1}', '[]']::jsonb[])$$, 'PT001',
    'pgtq: args of job 2 must be a JSON array, got object', 'a bad element is named by its position');
SELECT throws_ok($$SELECT pgtq.push_many('q', 'bad', ARRAY['[]']::jsonb[], ARRAY['[]']::jsonb[])$$, 'PT002',
    'pgtq: kwargs of job 1 must be a JSON object, got array', 'kwargs elements are checked');
SELECT throws_ok($$SELECT pgtq.push_many('q', 'bad', ARRAY['[]', '[]']::jsonb[], ARRAY['{}']::jsonb[])$$, 'PT004',
    'pgtq: push_many needs args (and kwargs, if given) of one length of at most 100000, got 2 args and 1 kwargs',
    'mismatched lengths are refused');
SELECT throws_ok($$SELECT pgtq.push_many('', 'bad', ARRAY['[]']::jsonb[])$$, 'PT003',
    'pgtq: queue name must be 1 to 200 characters, got 0 characters', 'names are checked as in push');
SELECT throws_ok($$SELECT pgtq.push_many('q', 'bad', ARRAY['[]']::jsonb[], max_attempts => 0)$$, 'PT004',
    'pgtq: max_attempts must be between 1 and 1000, got 0', 'options are checked as in push');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE task = 'bad'), 0, 'refused calls wrote nothing');

SELECT * FROM finish();
ROLLBACK;
