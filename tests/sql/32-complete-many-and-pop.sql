-- complete_many_and_pop (0.10.0): a worker's successes completed and its
-- next jobs claimed in one call, as complete_many and then pop would; the
-- pop sees the completions (a freed slot is claimed back here); an error
-- leaves nothing completed and nothing claimed. Which slots it announces:
-- tests/py/test_flow_control.py (notifications need a commit).
BEGIN;
SELECT plan(14);
SET LOCAL TIME ZONE 'UTC';

SELECT pgtq.push('cp', 't' || i, priority => i % 2, as_of => '2030-01-01 00:00+00') FROM generate_series(1, 6) AS i;
CREATE TEMP TABLE held AS SELECT * FROM pgtq.pop('cp', 'w', 2, '1 minute', '2030-01-01 00:00+00');
CREATE TEMP TABLE r AS
SELECT * FROM pgtq.complete_many_and_pop('cp', (SELECT array_agg(id ORDER BY id) FROM held),
                                         (SELECT array_agg(lease ORDER BY id) FROM held),
                                         ARRAY['{"ok": 1}', NULL]::jsonb[],
                                         'w', 3, '1 minute', '2030-01-01 00:01+00');

SELECT is((SELECT array_agg(x.id ORDER BY x.id) FROM r, unnest(r.completed) AS x (id)),
    (SELECT array_agg(id ORDER BY id) FROM held),
    'it returns the ids it completed (in no set order)');
SELECT is((SELECT array_agg(c.id ORDER BY c.id) FROM r, unnest(r.claimed) AS c),
    (SELECT array_agg(j.id ORDER BY j.id) FROM pgtq._job AS j WHERE j.queue = 'cp' AND j.state = 'running'),
    'and the jobs it claimed, which are the running ones');
SELECT is((SELECT array_agg(c.priority) FROM r, unnest(r.claimed) AS c), ARRAY[1, 0, 0],
    'in pop''s order (priority, then push order)');
SELECT is((SELECT array_agg(j.state::text || ' ' || coalesce(j.result::text, '-') ORDER BY j.id)
           FROM pgtq._job AS j JOIN held USING (id)),
    ARRAY['done {"ok": 1}', 'done -'], 'the completed jobs are done, each with its result');
SELECT is((SELECT count(*)::integer FROM r, unnest(r.claimed) AS c
           JOIN pgtq._job AS j ON j.id = c.id AND j.lease = c.lease AND j.worker = 'w'
           AND j.lease_expires_at = '2030-01-01 00:02+00'),
    3, 'the claimed jobs are leased to the worker for the lease asked');

SELECT is((SELECT row(cardinality(x.completed), cardinality(x.claimed))::text
           FROM pgtq.complete_many_and_pop('cp', (SELECT array_agg(id) FROM held),
                                           (SELECT array_agg(lease) FROM held), NULL, 'w', 1) AS x),
    '(0,1)', 'stale leases complete nothing; the claim still claims');
SELECT is((SELECT row(cardinality(x.completed), cardinality(x.claimed))::text
           FROM pgtq.complete_many_and_pop('cp', '{}', '{}', NULL, 'w', 5) AS x),
    '(0,0)', 'with nothing to complete and nothing ready: two empty arrays');

-- A freed slot is claimed back in the same call.
SELECT pgtq.configure_queue('serial', max_running => 1, as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('serial', 't' || i, as_of => '2030-01-01 00:00+00') FROM generate_series(1, 3) AS i;
CREATE TEMP TABLE one AS SELECT * FROM pgtq.pop('serial', 'w', 1, '1 minute', '2030-01-01 00:00+00');
SELECT is((SELECT cardinality(x.claimed) FROM pgtq.complete_many_and_pop('serial', '{}', '{}', NULL, 'w', 1,
                                                                          '1 minute', '2030-01-01 00:00+00') AS x),
    0, 'a max_running 1 queue whose slot is taken claims nothing');
SELECT is((SELECT (x.claimed[1]).id FROM pgtq.complete_many_and_pop('serial', ARRAY[(SELECT id FROM one)],
                                                                     ARRAY[(SELECT lease FROM one)], NULL, 'w', 1,
                                                                     '1 minute', '2030-01-01 00:00+00') AS x),
    (SELECT min(j.id) FROM pgtq._job AS j WHERE j.queue = 'serial' AND j.state = 'ready'),
    'completing its job frees the slot for the claim of the same call');

-- Bad input: an error names the problem, and nothing is completed or claimed.
CREATE TEMP TABLE before AS SELECT id, state, lease FROM pgtq._job;
SELECT throws_ok($$SELECT pgtq.complete_many_and_pop('cp', (SELECT array_agg(id) FROM pgtq._job WHERE state = 'running'),
                                                    '{}', NULL, 'w', 1)$$,
    'PT004', 'pgtq: complete_many_and_pop needs ids and leases (and results, if given) of one length of at most 10000, got 5 ids, 0 leases and no results',
    'arrays of unequal lengths raise PT004 naming the call and the lengths');
SELECT throws_ok($$SELECT pgtq.complete_many_and_pop('cp', (SELECT array_agg(id) FROM pgtq._job WHERE state = 'running'),
                                                    (SELECT array_agg(lease) FROM pgtq._job WHERE state = 'running'),
                                                    NULL, 'w', 0)$$,
    'PT004', 'pgtq: n must be between 1 and 10000, got 0', 'a bad n raises pop''s error');
SELECT throws_ok($$SELECT pgtq.complete_many_and_pop(E'bad\x01', '{}', '{}')$$, 'PT003', NULL,
    'a bad queue name raises PT003');
SELECT is((SELECT count(*)::integer FROM pgtq._job AS j JOIN before AS b USING (id)
           WHERE j.state IS DISTINCT FROM b.state OR j.lease IS DISTINCT FROM b.lease),
    0, 'after those errors no job changed');

SELECT ok(has_function_privilege('pgtq_worker',
          'pgtq.complete_many_and_pop(text, bigint[], uuid[], jsonb[], text, integer, interval, timestamptz)', 'EXECUTE')
          AND NOT has_function_privilege('pgtq_producer',
          'pgtq.complete_many_and_pop(text, bigint[], uuid[], jsonb[], text, integer, interval, timestamptz)', 'EXECUTE'),
    'workers may call it; producers may not');

SELECT * FROM finish();
ROLLBACK;
