-- Hostile and bad input for every public function: each refusal with its
-- exact SQLSTATE and message, and proof that nothing was written (job
-- rows, their state, and ids: refused pushes do not even take an id,
-- because push checks everything before it inserts). Complements the
-- basic cases of 01-push and 02-pop.
BEGIN;
SELECT plan(241);
SET LOCAL TIME ZONE 'UTC';

-- ---------------------------------------------------------------- push
SELECT pgtq.push('bad', 'first') AS first_id \gset

SELECT throws_ok($$SELECT pgtq.push('bad', 't', '"a string"')$$, 'PT001',
    'pgtq: args must be a JSON array, got string', 'args a JSON string');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', 'null')$$, 'PT001',
    'pgtq: args must be a JSON array, got null', 'args JSON null (not SQL NULL)');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', 'true')$$, 'PT001',
    'pgtq: args must be a JSON array, got boolean', 'args a boolean');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', '[]', '"k"')$$, 'PT002',
    'pgtq: kwargs must be a JSON object, got string', 'kwargs a string');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', '[]', '3')$$, 'PT002',
    'pgtq: kwargs must be a JSON object, got number', 'kwargs a number');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', '[]', 'null')$$, 'PT002',
    'pgtq: kwargs must be a JSON object, got null', 'kwargs JSON null');
SELECT throws_ok($$SELECT pgtq.push('bad', NULL)$$, 'PT003',
    'pgtq: task name must not be NULL', 'NULL task');
SELECT throws_ok($$SELECT pgtq.push('bad', '')$$, 'PT003',
    'pgtq: task name must be 1 to 200 characters, got 0 characters', 'empty task');
SELECT throws_ok($$SELECT pgtq.push(repeat('q', 201), 't')$$, 'PT003',
    'pgtq: queue name must be 1 to 200 characters, got 201 characters', 'queue name of 201 characters');
SELECT throws_ok($$SELECT pgtq.push(repeat('é', 201), 't')$$, 'PT003',
    'pgtq: queue name must be 1 to 200 characters, got 201 characters', 'length counts characters, not bytes');
SELECT throws_ok($$SELECT pgtq.push(E'a\tb', 't')$$, 'PT003',
    E'pgtq: queue name ''a\tb'' contains a control character', 'tab in a queue name');
SELECT throws_ok($$SELECT pgtq.push('bad', E'\x01')$$, 'PT003',
    E'pgtq: task name ''\x01'' contains a control character', 'U+0001 in a task name');
SELECT throws_ok($$SELECT pgtq.push('bad', E'del\x7f')$$, 'PT003',
    E'pgtq: task name ''del\x7f'' contains a control character', 'DEL in a task name');
SELECT throws_ok($$SELECT pgtq.push('bad', E'c1\u0085')$$, 'PT003',
    E'pgtq: task name ''c1\u0085'' contains a control character', 'a C1 control character (U+0085) in a task name');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', max_attempts => NULL)$$, 'PT004',
    'pgtq: max_attempts must be between 1 and 1000, got NULL', 'NULL max_attempts');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', max_attempts => -1)$$, 'PT004',
    'pgtq: max_attempts must be between 1 and 1000, got -1', 'negative max_attempts');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', max_attempts => 1001)$$, 'PT004',
    'pgtq: max_attempts must be between 1 and 1000, got 1001', 'max_attempts over 1000');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', max_attempts => 2147483647)$$, 'PT004',
    'pgtq: max_attempts must be between 1 and 1000, got 2147483647', 'huge max_attempts');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', run_at => '-infinity')$$, 'PT004',
    'pgtq: run_at must be a finite time, got -infinity', 'run_at -infinity');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', as_of => NULL)$$, 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'NULL as_of');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', as_of => 'infinity')$$, 'PT004',
    'pgtq: as_of must be a finite time, got infinity', 'infinite as_of');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', '[1]', '{}', NULL, NULL, NULL, NULL)$$, 'PT004',
    'pgtq: priority must not be NULL', 'several NULLs: the first bad parameter is named');

-- Job keys and the backoff policy (push and push_many).
SELECT throws_ok($$SELECT pgtq.push('bad', 't', job_key => '')$$, 'PT004',
    'pgtq: job_key must be 1 to 200 characters, got 0 characters', 'an empty job_key');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', job_key => repeat('é', 201))$$, 'PT004',
    'pgtq: job_key must be 1 to 200 characters, got 201 characters', 'a job_key over 200 characters');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', job_key => 'k', job_key_mode => NULL)$$, 'PT004',
    'pgtq: job_key_mode must be ''keep'' or ''replace'', got NULL', 'a NULL job_key_mode');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', job_key_mode => 'upsert')$$, 'PT004',
    'pgtq: job_key_mode must be ''keep'' or ''replace'', got ''upsert''', 'an unknown job_key_mode, even without a key');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', backoff_base => '-1 second')$$, 'PT004',
    'pgtq: backoff_base must be between 0 and 100 years, got -00:00:01', 'a negative backoff_base');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', backoff_cap => '101 years')$$, 'PT004',
    'pgtq: backoff_cap must be between 0 and 100 years, got 101 years', 'a backoff_cap over 100 years');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', '{}', job_key => 'k')$$, 'PT001',
    'pgtq: args must be a JSON array, got object', 'a keyed push checks its args first');
SELECT throws_ok($$SELECT pgtq.push_many('bad', 't', ARRAY['[]', '[]']::jsonb[], job_keys => ARRAY['a'])$$, 'PT004',
    'pgtq: push_many needs one job_key per job (NULL for none), got 1 job_keys for 2 jobs',
    'push_many: fewer keys than jobs');
SELECT throws_ok($$SELECT pgtq.push_many('bad', 't', ARRAY['[]', '[]', '[]']::jsonb[], job_keys => ARRAY['a', NULL, ''])$$,
    'PT004', 'pgtq: job_key of job 3 must be 1 to 200 characters, got 0 characters',
    'push_many: a bad key is named by its position (NULL keys are fine)');
SELECT throws_ok($$SELECT pgtq.push_many('bad', 't', ARRAY['[]']::jsonb[], job_key_mode => 'merge')$$, 'PT004',
    'pgtq: job_key_mode must be ''keep'' or ''replace'', got ''merge''', 'push_many: an unknown job_key_mode');
SELECT throws_ok($$SELECT pgtq.push_many('bad', 't', ARRAY['[]']::jsonb[], backoff_base => '-1 day')$$, 'PT004',
    'pgtq: backoff_base must be between 0 and 100 years, got -1 days', 'push_many: a negative backoff_base');
SELECT throws_ok($$SELECT pgtq.push_many('bad', 't', ARRAY['[]']::jsonb[], backoff_cap => '-1 day')$$, 'PT004',
    'pgtq: backoff_cap must be between 0 and 100 years, got -1 days', 'push_many: a negative backoff_cap');
SELECT throws_ok($$SELECT pgtq.push_many('bad', 't', ARRAY['"x"']::jsonb[], job_keys => ARRAY['a'])$$, 'PT001',
    'pgtq: args of job 1 must be a JSON array, got string', 'push_many with keys checks every element');

-- Lock keys (push and push_many).
SELECT throws_ok($$SELECT pgtq.push('bad', 't', lock_key => '')$$, 'PT004',
    'pgtq: lock_key must be 1 to 200 characters, got 0 characters', 'an empty lock_key');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', lock_key => repeat('é', 201))$$, 'PT004',
    'pgtq: lock_key must be 1 to 200 characters, got 201 characters', 'a lock_key over 200 characters');
SELECT throws_ok($$SELECT pgtq.push('bad', 't', job_key => 'k', lock_key => '')$$, 'PT004',
    'pgtq: lock_key must be 1 to 200 characters, got 0 characters', 'an empty lock_key beside a job key');
SELECT throws_ok($$SELECT pgtq.push_many('bad', 't', ARRAY['[]', '[]']::jsonb[], lock_keys => ARRAY['a'])$$, 'PT004',
    'pgtq: push_many needs one lock_key per job (NULL for none), got 1 lock_keys for 2 jobs',
    'push_many: fewer lock keys than jobs');
SELECT throws_ok($$SELECT pgtq.push_many('bad', 't', ARRAY['[]', '[]']::jsonb[], lock_keys => ARRAY[NULL, ''])$$,
    'PT004', 'pgtq: lock_key of job 2 must be 1 to 200 characters, got 0 characters',
    'push_many: a bad lock key is named by its position');
SELECT throws_ok($$SELECT pgtq.push_many('bad', 't', ARRAY['[]']::jsonb[], job_keys => ARRAY['j'],
                                         lock_keys => ARRAY[repeat('x', 201)])$$,
    'PT004', 'pgtq: lock_key of job 1 must be 1 to 200 characters, got 201 characters',
    'push_many: lock keys are checked beside job keys');

-- The payload limit, changed with configure.
SELECT is((SELECT max_payload_bytes FROM pgtq.settings), 1048576, 'the payload limit is 1 MiB by default');
SELECT throws_ok($$SELECT pgtq.push('bad', 'huge', jsonb_build_array(repeat('x', 1048576)))$$, 'PT005',
    format('pgtq: payload of task %L is %s bytes, over the limit of 1048576 bytes', 'huge',
           pg_column_size(jsonb_build_array(repeat('x', 1048576))) + pg_column_size('{}'::jsonb)),
    'a payload over 1 MiB is refused');
SELECT is((SELECT max_payload_bytes FROM pgtq.configure(max_payload_bytes => 64)), 64,
    'configure sets the payload limit');
SELECT throws_ok($$SELECT pgtq.push('bad', 'big', '[]', jsonb_build_object('k', repeat('x', 100)))$$, 'PT005',
    format('pgtq: payload of task %L is %s bytes, over the limit of 64 bytes', 'big',
           pg_column_size('[]'::jsonb) + pg_column_size(jsonb_build_object('k', repeat('x', 100)))),
    'kwargs count towards the limit');
SELECT throws_ok($$SELECT pgtq.push('bad', 'big', '[]', jsonb_build_object('k', repeat('x', 100)), job_key => 'k')$$,
    'PT005', format('pgtq: payload of task %L is %s bytes, over the limit of 64 bytes', 'big',
                    pg_column_size('[]'::jsonb) + pg_column_size(jsonb_build_object('k', repeat('x', 100)))),
    'a push with a job key keeps the limit too');
SELECT throws_ok($$SELECT pgtq.push('bad', 'big', jsonb_build_array(repeat('x', 100)), lock_key => 'k',
                                    run_at => now() + interval '1 hour')$$,
    'PT005', format('pgtq: payload of task %L is %s bytes, over the limit of 64 bytes', 'big',
                    pg_column_size(jsonb_build_array(repeat('x', 100))) + pg_column_size('{}'::jsonb)),
    'so does a scheduled push with a lock key');
SELECT throws_ok($$SELECT pgtq.configure(max_payload_bytes => 0)$$, 'PT004',
    'pgtq: max_payload_bytes must be at least 1, got 0', 'a payload limit below 1 is refused');
SELECT throws_ok($$SELECT pgtq.configure(worker_timeout => '0')$$, 'PT004',
    'pgtq: worker_timeout must be a positive interval of at most 100 years, got 00:00:00',
    'a zero worker timeout is refused');
SELECT throws_ok($$SELECT pgtq.configure(worker_timeout => '101 years')$$, 'PT004',
    'pgtq: worker_timeout must be a positive interval of at most 100 years, got 101 years',
    'a worker timeout over 100 years is refused');
SELECT throws_ok($$SELECT pgtq.configure(history_retention => '-1 second')$$, 'PT004',
    'pgtq: history_retention must be an interval between 0 and 31 days, got -00:00:01',
    'a negative history retention is refused');

-- Flow control: pause, resume, configure_queue. Nothing is written by a refusal.
SELECT throws_ok($$SELECT pgtq.pause(NULL)$$, 'PT003', 'pgtq: queue name must not be NULL', 'pause: NULL queue');
SELECT throws_ok($$SELECT pgtq.pause(E'a\nb')$$, 'PT003',
    E'pgtq: queue name ''a\nb'' contains a control character', 'pause: a control character');
SELECT throws_ok($$SELECT pgtq.pause('bad', 'infinity')$$, 'PT004',
    'pgtq: as_of must be a finite time, got infinity', 'pause: an infinite as_of');
SELECT throws_ok($$SELECT pgtq.resume('')$$, 'PT003',
    'pgtq: queue name must be 1 to 200 characters, got 0 characters', 'resume: empty queue');
SELECT throws_ok($$SELECT pgtq.resume('bad', NULL)$$, 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'resume: NULL as_of');
SELECT throws_ok($$SELECT pgtq.configure_queue(NULL, max_running => 1)$$, 'PT003',
    'pgtq: queue name must not be NULL', 'configure_queue: NULL queue');
SELECT throws_ok($$SELECT pgtq.configure_queue('bad', max_running => 0)$$, 'PT004',
    'pgtq: max_running must be between 1 and 100000 (NULL: no limit), got 0', 'configure_queue: max_running 0');
SELECT throws_ok($$SELECT pgtq.configure_queue('bad', max_running => 100001)$$, 'PT004',
    'pgtq: max_running must be between 1 and 100000 (NULL: no limit), got 100001',
    'configure_queue: max_running over 100000');
SELECT throws_ok($$SELECT pgtq.configure_queue('bad', rate_limit => 0, rate_period => '1 second')$$, 'PT004',
    'pgtq: rate_limit must be between 1 and 1000000 (NULL: no limit), got 0', 'configure_queue: rate_limit 0');
SELECT throws_ok($$SELECT pgtq.configure_queue('bad', rate_limit => 5)$$, 'PT004',
    'pgtq: rate_limit and rate_period go together (at most rate_limit jobs start in any rate_period), '
    'got rate_limit 5 and rate_period NULL', 'configure_queue: a rate limit without its period');
SELECT throws_ok($$SELECT pgtq.configure_queue('bad', rate_period => '1 second')$$, 'PT004',
    'pgtq: rate_limit and rate_period go together (at most rate_limit jobs start in any rate_period), '
    'got rate_limit NULL and rate_period 00:00:01', 'configure_queue: a period without its rate limit');
SELECT throws_ok($$SELECT pgtq.configure_queue('bad', rate_limit => 5, rate_period => '1 millisecond')$$, 'PT004',
    'pgtq: rate_period must be an interval between 10 milliseconds and 1 year, got 00:00:00.001',
    'configure_queue: a period under 10 ms');
SELECT throws_ok($$SELECT pgtq.configure_queue('bad', rate_limit => 5, rate_period => '2 years')$$, 'PT004',
    'pgtq: rate_period must be an interval between 10 milliseconds and 1 year, got 2 years',
    'configure_queue: a period over a year');
SELECT throws_ok($$SELECT pgtq.configure_queue('bad', max_running => 1, as_of => '-infinity')$$, 'PT004',
    'pgtq: as_of must be a finite time, got -infinity', 'configure_queue: an infinite as_of');
SELECT is((SELECT count(*)::int FROM pgtq.queues WHERE queue = 'bad' AND (paused OR max_running IS NOT NULL
                                                                        OR rate_limit IS NOT NULL)),
    0, 'the refused calls paused and limited nothing');
SELECT is(pgtq.resume('never-paused'), false, 'resume: a queue that is not paused');
SELECT is(pgtq.configure_queue('never-limited'), false, 'configure_queue without limits on a queue without any');
SELECT throws_ok($$SELECT pgtq.configure(history_retention => '32 days')$$, 'PT004',
    'pgtq: history_retention must be an interval between 0 and 31 days, got 32 days',
    'a history retention over 31 days is refused');
SELECT is((SELECT row(s.*)::text FROM pgtq.configure() AS s), '(64,00:01:00,24:00:00)',
    'refused changes changed nothing; configure() with no argument changes nothing');

-- Nothing written by any refusal above, not even an id taken.
SELECT is(pgtq.push('bad', 'second'), (:first_id + 1)::bigint, 'refused pushes took no job id');
SELECT is((SELECT array_agg(task ORDER BY id) FROM pgtq.jobs WHERE queue = 'bad'), ARRAY['first', 'second'],
    'refused pushes wrote no job');
SELECT pgtq.configure(max_payload_bytes => 1048576);

-- Odd but valid values are stored exactly as given.
CREATE TEMP TABLE pushed (name text PRIMARY KEY, id bigint);
INSERT INTO pushed SELECT 'sql', pgtq.push('odd', $t$'; DROP TABLE pgtq._job; -- "%s" \x $$ $t$);
INSERT INTO pushed SELECT 'emoji', pgtq.push(repeat('🐘', 200), 't');
INSERT INTO pushed SELECT 'format', pgtq.push('odd', E'zero\u200bwidth \u202eright-to-left');
INSERT INTO pushed SELECT 'spaces', pgtq.push('odd', ' padded ');
INSERT INTO pushed SELECT 'json', pgtq.push('odd', 't', $j$["\u00e9", "a\nb", {"deep": [[[]]]}]$j$);
INSERT INTO pushed SELECT 'past', pgtq.push('far', 'past', run_at => '0001-01-01 00:00+00');
INSERT INTO pushed SELECT 'future', pgtq.push('far', 'future', run_at => '200000-01-01 00:00+00');
SELECT is((SELECT task FROM pgtq.jobs JOIN pushed USING (id) WHERE name = 'sql'),
    $t$'; DROP TABLE pgtq._job; -- "%s" \x $$ $t$, 'quotes, semicolons, percent, backslash, dollars: stored as data');
SELECT is((SELECT queue FROM pgtq.jobs JOIN pushed USING (id) WHERE name = 'emoji'), repeat('🐘', 200),
    '200 four-byte characters are a valid name');
SELECT is((SELECT task FROM pgtq.jobs JOIN pushed USING (id) WHERE name = 'format'),
    E'zero\u200bwidth \u202eright-to-left', 'format characters (zero-width, bidi) are not control characters');
SELECT is((SELECT task FROM pgtq.jobs JOIN pushed USING (id) WHERE name = 'spaces'), ' padded ', 'spaces are kept');
SELECT is((SELECT args FROM pgtq.jobs JOIN pushed USING (id) WHERE name = 'json'),
    $j$["\u00e9", "a\nb", {"deep": [[[]]]}]$j$::jsonb, 'escapes inside JSON are data');
SELECT pgtq.push('extremes', 'lowest', priority => -2147483648);
SELECT pgtq.push('extremes', 'highest', priority => 2147483647);
SELECT pgtq.push('extremes', 'once', max_attempts => 1);
SELECT pgtq.push('extremes', 'thousand', max_attempts => 1000);
SELECT is((SELECT array_agg(task) FROM pgtq.pop('extremes', n => 10)), ARRAY['highest', 'once', 'thousand', 'lowest'],
    'the extreme priorities are accepted and ordered');
SELECT is((SELECT state::text FROM pgtq.jobs JOIN pushed USING (id) WHERE name = 'past'), 'ready',
    'a run_at in year 1 is due at once');
SELECT is((SELECT state::text FROM pgtq.jobs JOIN pushed USING (id) WHERE name = 'future'), 'scheduled',
    'a run_at in year 200000 is scheduled');
SELECT is(pgtq.tick('far', '199999-12-31 00:00+00'), 0, 'and not promoted before its time');
SELECT is(pgtq.tick('far', '200000-01-01 00:00+00'), 1, 'but promoted at its time');

-- ----------------------------------------------------------------- pop
SELECT throws_ok($$SELECT * FROM pgtq.pop(NULL)$$, 'PT003', 'pgtq: queue name must not be NULL', 'pop: NULL queue');
SELECT throws_ok($$SELECT * FROM pgtq.pop('bad', '')$$, 'PT003',
    'pgtq: worker name must be 1 to 200 characters, got 0 characters', 'pop: empty worker name');
SELECT throws_ok($$SELECT * FROM pgtq.pop('bad', E'w\n1')$$, 'PT003',
    E'pgtq: worker name ''w\n1'' contains a control character', 'pop: control character in the worker name');
SELECT throws_ok($$SELECT * FROM pgtq.pop('bad', n => NULL)$$, 'PT004',
    'pgtq: n must be between 1 and 10000, got NULL', 'pop: NULL n');
SELECT throws_ok($$SELECT * FROM pgtq.pop('bad', n => 10001)$$, 'PT004',
    'pgtq: n must be between 1 and 10000, got 10001', 'pop: n over 10000');
SELECT throws_ok($$SELECT * FROM pgtq.pop('bad', lease => NULL)$$, 'PT004',
    'pgtq: lease must be a positive interval of at most 100 years, got NULL', 'pop: NULL lease');
SELECT throws_ok($$SELECT * FROM pgtq.pop('bad', lease => '0')$$, 'PT004',
    'pgtq: lease must be a positive interval of at most 100 years, got 00:00:00', 'pop: zero lease');
SELECT throws_ok($$SELECT * FROM pgtq.pop('bad', lease => '101 years')$$, 'PT004',
    'pgtq: lease must be a positive interval of at most 100 years, got 101 years', 'pop: lease over 100 years');
SELECT throws_ok($$SELECT * FROM pgtq.pop('bad', as_of => NULL)$$, 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'pop: NULL as_of');
SELECT throws_ok($$SELECT * FROM pgtq.pop('bad', as_of => '-infinity')$$, 'PT004',
    'pgtq: as_of must be a finite time, got -infinity', 'pop: infinite as_of');
SELECT is((SELECT array_agg(state::text || attempt ORDER BY id) FROM pgtq.jobs WHERE queue = 'bad'),
    ARRAY['ready0', 'ready0'], 'refused pops claimed nothing');
SELECT is((SELECT count(*)::int FROM pgtq.pop('nobody-pushes-here')), 0, 'an unknown queue gives no rows');

-- ------------------------------------------------- complete and its lease
CREATE TEMP TABLE c AS
SELECT * FROM pgtq.pop('bad', 'w', 2, '1 minute', '2030-01-01 00:00+00');
CREATE TEMP TABLE before AS SELECT j.* FROM pgtq.jobs j JOIN c USING (id);

SELECT throws_ok($$SELECT pgtq.complete(NULL, '00000000-0000-0000-0000-000000000000')$$, 'PT004',
    'pgtq: complete needs a job id and its lease, got id NULL and lease 00000000-0000-0000-0000-000000000000',
    'complete: NULL id');
SELECT throws_ok($$SELECT pgtq.complete(1, NULL)$$, 'PT004',
    'pgtq: complete needs a job id and its lease, got id 1 and lease NULL', 'complete: NULL lease');
SELECT throws_ok(format('SELECT pgtq.complete(%s, %L, NULL, NULL)', c.id, c.lease), 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'complete: NULL as_of')
FROM c WHERE c.task = 'first';
SELECT is(pgtq.complete(c.id, gen_random_uuid()), false, 'complete: a forged lease is refused')
FROM c WHERE c.task = 'first';
SELECT is(pgtq.complete(c.id, other.lease), false, 'complete: another job''s lease is refused')
FROM c JOIN c AS other ON other.task = 'second' WHERE c.task = 'first';
SELECT is(pgtq.complete(999999999, c.lease), false, 'complete: an unknown id is refused')
FROM c WHERE c.task = 'first';
SELECT is((SELECT count(*)::int FROM pgtq.jobs j JOIN before b USING (id)
           WHERE row(j.*)::text IS DISTINCT FROM row(b.*)::text), 0,
    'the refused completions changed nothing');
SELECT is(pgtq.complete(c.id, c.lease, '{"r": 1}', '2030-01-01 00:00:30+00'), true, 'complete with the lease')
FROM c WHERE c.task = 'first';
SELECT is(pgtq.complete(c.id, c.lease, '{"r": 2}', '2030-01-01 00:00:40+00'), false, 'completing twice is refused')
FROM c WHERE c.task = 'first';
SELECT is(pgtq.fail(c.id, c.lease, 'late failure'), NULL, 'failing a done job is refused')
FROM c WHERE c.task = 'first';
SELECT is(pgtq.heartbeat(c.id, c.lease), false, 'a done job has no lease to extend') FROM c WHERE c.task = 'first';
SELECT is(pgtq.release(c.id, c.lease), false, 'a done job cannot be released') FROM c WHERE c.task = 'first';
SELECT is(pgtq.cancel(c.id), false, 'a done job cannot be cancelled') FROM c WHERE c.task = 'first';
SELECT is(pgtq.retry(c.id), false, 'a done job cannot be retried') FROM c WHERE c.task = 'first';
SELECT is(j.state::text || ' ' || j.result::text || ' ' || j.finished_at || ' ' || coalesce(j.last_error, '-'),
    'done {"r": 1} 2030-01-01 00:00:30+00 -', 'the done job keeps its first outcome')
FROM pgtq.jobs j JOIN c USING (id) WHERE c.task = 'first';

-- ------------------------------------------------------------------ fail
SELECT throws_ok($$SELECT pgtq.fail(NULL, '00000000-0000-0000-0000-000000000000', 'x')$$, 'PT004',
    'pgtq: fail needs a job id and its lease, got id NULL and lease 00000000-0000-0000-0000-000000000000',
    'fail: NULL id');
SELECT throws_ok($$SELECT pgtq.fail(1, NULL, 'x')$$, 'PT004',
    'pgtq: fail needs a job id and its lease, got id 1 and lease NULL', 'fail: NULL lease');
SELECT throws_ok(format('SELECT pgtq.fail(%s, %L, NULL)', c.id, c.lease), 'PT004',
    'pgtq: error must not be NULL (say why the attempt failed)', 'fail: NULL error')
FROM c WHERE c.task = 'second';
SELECT throws_ok(format('SELECT pgtq.fail(%s, %L, %L, %L)', c.id, c.lease, 'x', '-1 second'), 'PT004',
    'pgtq: retry_in must be between 0 and 100 years, got -00:00:01', 'fail: negative retry_in')
FROM c WHERE c.task = 'second';
SELECT throws_ok(format('SELECT pgtq.fail(%s, %L, %L, %L)', c.id, c.lease, 'x', '101 years'), 'PT004',
    'pgtq: retry_in must be between 0 and 100 years, got 101 years', 'fail: retry_in over 100 years')
FROM c WHERE c.task = 'second';
SELECT throws_ok(format('SELECT pgtq.fail(%s, %L, %L, NULL, NULL)', c.id, c.lease, 'x'), 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'fail: NULL as_of')
FROM c WHERE c.task = 'second';
SELECT throws_ok(format('SELECT pgtq.fail(%s, %L, %L, NULL, %L)', c.id, c.lease, 'x', 'infinity'), 'PT004',
    'pgtq: as_of must be a finite time, got infinity', 'fail: infinite as_of')
FROM c WHERE c.task = 'second';
SELECT is(pgtq.fail(c.id, gen_random_uuid(), 'x'), NULL, 'fail: a forged lease is refused')
FROM c WHERE c.task = 'second';
SELECT is(pgtq.fail(999999999, c.lease, 'x'), NULL, 'fail: an unknown id is refused')
FROM c WHERE c.task = 'second';

-- ----------------------------------------------------------------- abort
SELECT throws_ok($$SELECT pgtq.abort(NULL, '00000000-0000-0000-0000-000000000000', 'x')$$, 'PT004',
    'pgtq: abort needs a job id and its lease, got id NULL and lease 00000000-0000-0000-0000-000000000000',
    'abort: NULL id');
SELECT throws_ok($$SELECT pgtq.abort(1, NULL, 'x')$$, 'PT004',
    'pgtq: abort needs a job id and its lease, got id 1 and lease NULL', 'abort: NULL lease');
SELECT throws_ok(format('SELECT pgtq.abort(%s, %L, NULL)', c.id, c.lease), 'PT004',
    'pgtq: error must not be NULL (say why the job is aborted)', 'abort: NULL error')
FROM c WHERE c.task = 'second';
SELECT throws_ok(format('SELECT pgtq.abort(%s, %L, %L, NULL)', c.id, c.lease, 'x'), 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'abort: NULL as_of')
FROM c WHERE c.task = 'second';
SELECT is(pgtq.abort(c.id, gen_random_uuid(), 'x'), NULL, 'abort: a forged lease is refused')
FROM c WHERE c.task = 'second';
SELECT is(pgtq.abort(999999999, c.lease, 'x'), NULL, 'abort: an unknown id is refused')
FROM c WHERE c.task = 'second';

-- ------------------------------------------------------------- heartbeat
SELECT throws_ok($$SELECT pgtq.heartbeat(NULL, '00000000-0000-0000-0000-000000000000')$$, 'PT004',
    'pgtq: heartbeat needs a job id and its lease, got id NULL and lease 00000000-0000-0000-0000-000000000000',
    'heartbeat: NULL id');
SELECT throws_ok($$SELECT pgtq.heartbeat(1, NULL)$$, 'PT004',
    'pgtq: heartbeat needs a job id and its lease, got id 1 and lease NULL', 'heartbeat: NULL lease');
SELECT throws_ok(format('SELECT pgtq.heartbeat(%s, %L, NULL)', c.id, c.lease), 'PT004',
    'pgtq: extend_by must be a positive interval of at most 100 years, got NULL', 'heartbeat: NULL extend_by')
FROM c WHERE c.task = 'second';
SELECT throws_ok(format('SELECT pgtq.heartbeat(%s, %L, %L)', c.id, c.lease, '0'), 'PT004',
    'pgtq: extend_by must be a positive interval of at most 100 years, got 00:00:00', 'heartbeat: zero extend_by')
FROM c WHERE c.task = 'second';
SELECT throws_ok(format('SELECT pgtq.heartbeat(%s, %L, %L)', c.id, c.lease, '101 years'), 'PT004',
    'pgtq: extend_by must be a positive interval of at most 100 years, got 101 years',
    'heartbeat: extend_by over 100 years')
FROM c WHERE c.task = 'second';
SELECT throws_ok(format('SELECT pgtq.heartbeat(%s, %L, %L, NULL)', c.id, c.lease, '1 minute'), 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'heartbeat: NULL as_of')
FROM c WHERE c.task = 'second';
SELECT is(pgtq.heartbeat(c.id, gen_random_uuid()), false, 'heartbeat: a forged lease is refused')
FROM c WHERE c.task = 'second';
SELECT throws_ok($$SELECT * FROM pgtq.heartbeat_many(NULL, '{}')$$, 'PT004',
    'pgtq: heartbeat_many needs ids and leases of one length of at most 10000, got NULL ids and 0 leases',
    'heartbeat_many: NULL ids');
SELECT throws_ok($$SELECT * FROM pgtq.heartbeat_many('{1, 2}', '{00000000-0000-0000-0000-000000000000}')$$, 'PT004',
    'pgtq: heartbeat_many needs ids and leases of one length of at most 10000, got 2 ids and 1 leases',
    'heartbeat_many: arrays of different lengths');
SELECT throws_ok($$SELECT * FROM pgtq.heartbeat_many(array_fill(1::bigint, ARRAY[10001]),
                                                     array_fill(gen_random_uuid(), ARRAY[10001]))$$, 'PT004',
    'pgtq: heartbeat_many needs ids and leases of one length of at most 10000, got 10001 ids and 10001 leases',
    'heartbeat_many: over 10000 pairs');
SELECT throws_ok($$SELECT * FROM pgtq.heartbeat_many('{}', '{}', NULL)$$, 'PT004',
    'pgtq: extend_by must be a positive interval of at most 100 years, got NULL', 'heartbeat_many: NULL extend_by');
SELECT throws_ok($$SELECT * FROM pgtq.heartbeat_many('{}', '{}', '0')$$, 'PT004',
    'pgtq: extend_by must be a positive interval of at most 100 years, got 00:00:00', 'heartbeat_many: zero extend_by');
SELECT throws_ok($$SELECT * FROM pgtq.heartbeat_many('{}', '{}', '1 minute', 'infinity')$$, 'PT004',
    'pgtq: as_of must be a finite time, got infinity', 'heartbeat_many: infinite as_of');
SELECT is((SELECT array_agg(h.id || ':' || h.held || '/' || h.cancel_requested)
           FROM pgtq.heartbeat_many(ARRAY[c.id, c.id, 999999999, NULL], ARRAY[gen_random_uuid(), NULL, c.lease, c.lease],
                                    '1 hour', '2030-01-01 00:00+00') AS h),
    ARRAY[c.id || ':false/false', c.id || ':false/false', '999999999:false/false', NULL],
    'heartbeat_many: forged, NULL and foreign pairs are reported not held, in the order given')
FROM c WHERE c.task = 'second';
SELECT is(pgtq.heartbeat(c.id, c.lease, '1 second', '2030-01-01 00:00+00'), true,
    'heartbeat: a short extension is accepted')
FROM c WHERE c.task = 'second';

-- --------------------------------------------------------------- release
SELECT throws_ok($$SELECT pgtq.release(NULL, '00000000-0000-0000-0000-000000000000')$$, 'PT004',
    'pgtq: release needs a job id and its lease, got id NULL and lease 00000000-0000-0000-0000-000000000000',
    'release: NULL id');
SELECT throws_ok($$SELECT pgtq.release(1, NULL)$$, 'PT004',
    'pgtq: release needs a job id and its lease, got id 1 and lease NULL', 'release: NULL lease');
SELECT is(pgtq.release(c.id, gen_random_uuid()), false, 'release: a forged lease is refused')
FROM c WHERE c.task = 'second';
SELECT throws_ok(format('SELECT pgtq.release(%s, %L, NULL)', c.id, c.lease), 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'release: NULL as_of')
FROM c WHERE c.task = 'second';
SELECT is((SELECT count(*)::int FROM pgtq.jobs j JOIN before b USING (id)
           WHERE j.task = 'second' AND row(j.*)::text IS DISTINCT FROM row(b.*)::text), 0,
    'refused fails, heartbeats and releases changed nothing; a heartbeat never shortens a lease');

-- Stale lease: the lease ran out, tick rescued the job and handed it on.
SELECT is(pgtq.tick('bad', '2030-01-01 00:01:01+00'), 1, 'tick rescues the expired lease');
SELECT is(pgtq.complete(c.id, c.lease), false, 'complete: the stale lease is refused') FROM c WHERE c.task = 'second';
SELECT is(pgtq.fail(c.id, c.lease, 'x'), NULL, 'fail: the stale lease is refused') FROM c WHERE c.task = 'second';
SELECT is(pgtq.heartbeat(c.id, c.lease), false, 'heartbeat: the stale lease is refused') FROM c WHERE c.task = 'second';
SELECT is(pgtq.release(c.id, c.lease), false, 'release: the stale lease is refused') FROM c WHERE c.task = 'second';
SELECT is(j.state::text || ' ' || j.attempt, 'scheduled 1', 'the rescued job waits for its retry, untouched')
FROM pgtq.jobs j JOIN c USING (id) WHERE c.task = 'second';

-- ------------------------------------------------------------------ tick
SELECT throws_ok($$SELECT pgtq.tick('')$$, 'PT003',
    'pgtq: queue name must be 1 to 200 characters, got 0 characters', 'tick: empty queue name');
SELECT throws_ok($$SELECT pgtq.tick('bad', NULL)$$, 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'tick: NULL as_of');
SELECT throws_ok($$SELECT pgtq.tick(NULL, 'infinity')$$, 'PT004',
    'pgtq: as_of must be a finite time, got infinity', 'tick: infinite as_of');

-- -------------------------------------------------------- cancel, retry
SELECT throws_ok($$SELECT pgtq.cancel(NULL)$$, 'PT004', 'pgtq: id must not be NULL', 'cancel: NULL id');
SELECT throws_ok($$SELECT pgtq.cancel(1, NULL)$$, 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'cancel: NULL as_of');
SELECT is(pgtq.cancel(-1), false, 'cancel: an unknown id changes nothing');
SELECT throws_ok($$SELECT pgtq.retry(NULL)$$, 'PT004', 'pgtq: id must not be NULL', 'retry: NULL id');
SELECT throws_ok($$SELECT pgtq.retry(1, 'infinity')$$, 'PT004',
    'pgtq: as_of must be a finite time, got infinity', 'retry: infinite as_of');
SELECT is(pgtq.retry(-1), false, 'retry: an unknown id changes nothing');
SELECT is(pgtq.retry(c.id), false, 'retry: a scheduled job is not retried') FROM c WHERE c.task = 'second';

-- ------------------------------------------------ watch, unwatch, outcomes
SELECT throws_ok($$SELECT * FROM pgtq.watch(NULL)$$, 'PT004', 'pgtq: id must not be NULL', 'watch: NULL id');
SELECT is((SELECT count(*)::int FROM pgtq.watch(-1)), 0, 'watch: an unknown id gives no row');
SELECT throws_ok($$SELECT pgtq.unwatch(NULL)$$, 'PT004', 'pgtq: id must not be NULL', 'unwatch: NULL id');
SELECT is(pgtq.unwatch(-1), false, 'unwatch: an unknown id changes nothing');
SELECT is(pgtq.unwatch(c.id), false, 'unwatch: a job nobody watches keeps waiters at 0')
FROM c WHERE c.task = 'second';
SELECT throws_ok($$SELECT * FROM pgtq.outcomes(NULL)$$, 'PT004',
    'pgtq: outcomes needs an array of at most 10000 ids, got NULL', 'outcomes: NULL ids');
SELECT throws_ok($$SELECT * FROM pgtq.outcomes(array_fill(1::bigint, ARRAY[10001]))$$, 'PT004',
    'pgtq: outcomes needs an array of at most 10000 ids, got 10001', 'outcomes: over 10000 ids');
SELECT is((SELECT count(*)::int FROM pgtq.outcomes(ARRAY[-1, NULL])), 0, 'outcomes: unknown and NULL ids give no row');

-- ----------------------------------------------------------------- prune
SELECT throws_ok($$SELECT pgtq.prune(NULL)$$, 'PT004',
    'pgtq: older_than must be an interval between 0 and 100 years, got NULL', 'prune: NULL older_than');
SELECT throws_ok($$SELECT pgtq.prune('-1 day')$$, 'PT004',
    'pgtq: older_than must be an interval between 0 and 100 years, got -1 days', 'prune: negative older_than');
SELECT throws_ok($$SELECT pgtq.prune('101 years')$$, 'PT004',
    'pgtq: older_than must be an interval between 0 and 100 years, got 101 years', 'prune: older_than over 100 years');
SELECT throws_ok($$SELECT pgtq.prune('1 day', NULL)$$, 'PT004',
    'pgtq: include_failed must not be NULL', 'prune: NULL include_failed');
SELECT throws_ok($$SELECT pgtq.prune('1 day', false, NULL)$$, 'PT004',
    'pgtq: batch must be between 1 and 1000000, got NULL', 'prune: NULL batch (it would mean no limit)');
SELECT throws_ok($$SELECT pgtq.prune('1 day', false, 0)$$, 'PT004',
    'pgtq: batch must be between 1 and 1000000, got 0', 'prune: zero batch');
SELECT throws_ok($$SELECT pgtq.prune('1 day', false, 1000001)$$, 'PT004',
    'pgtq: batch must be between 1 and 1000000, got 1000001', 'prune: batch over a million');
SELECT throws_ok($$SELECT pgtq.prune('1 day', false, 10, NULL)$$, 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'prune: NULL as_of');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE queue = 'bad'), 2, 'refused prunes deleted nothing');

-- -------------------------------------------------- schedule, unschedule
-- Every argument of schedule (the cron parser's every error is in
-- 13-cron-parse.sql), each refused before anything is written.
SELECT throws_ok($$SELECT pgtq.schedule(NULL, '* * * * *', 'q', 't')$$, 'PT003',
    'pgtq: schedule name must not be NULL', 'schedule: NULL name');
SELECT throws_ok($$SELECT pgtq.schedule('', '* * * * *', 'q', 't')$$, 'PT003',
    'pgtq: schedule name must be 1 to 200 characters, got 0 characters', 'schedule: empty name');
SELECT throws_ok($$SELECT pgtq.schedule(repeat('s', 201), '* * * * *', 'q', 't')$$, 'PT003',
    'pgtq: schedule name must be 1 to 200 characters, got 201 characters', 'schedule: name of 201 characters');
SELECT throws_ok($$SELECT pgtq.schedule(E'night\nly', '* * * * *', 'q', 't')$$, 'PT003',
    E'pgtq: schedule name ''night\nly'' contains a control character', 'schedule: control character in the name');
SELECT throws_ok($$SELECT pgtq.schedule('s', NULL, 'q', 't')$$, 'PT004',
    'pgtq: cron must not be NULL', 'schedule: NULL cron');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * * *', 'q', 't')$$, 'PT004',
    'pgtq: bad cron expression ''* * * * * *'': 6 fields, expected 5 (minute hour day-of-month month day-of-week) '
    'or a macro such as @daily', 'schedule: a cron expression with seconds');
SELECT throws_ok(format('SELECT pgtq.schedule(%L, %L, %L, %L)', 's', repeat('*', 1001), 'q', 't'), 'PT004',
    'pgtq: cron must be at most 1000 characters, got 1001 characters', 'schedule: cron over 1000 characters');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', NULL, 't')$$, 'PT003',
    'pgtq: queue name must not be NULL', 'schedule: NULL queue');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', '')$$, 'PT003',
    'pgtq: task name must be 1 to 200 characters, got 0 characters', 'schedule: empty task');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', 't', '{"a": 1}')$$, 'PT001',
    'pgtq: args must be a JSON array, got object', 'schedule: args an object');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', 't', NULL)$$, 'PT001',
    'pgtq: args must be a JSON array, got NULL', 'schedule: NULL args');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', 't', '[]', '[]')$$, 'PT002',
    'pgtq: kwargs must be a JSON object, got array', 'schedule: kwargs an array');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', 't', '[]', NULL)$$, 'PT002',
    'pgtq: kwargs must be a JSON object, got NULL', 'schedule: NULL kwargs');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', 't', timezone => NULL)$$, 'PT004',
    'pgtq: timezone must not be NULL', 'schedule: NULL timezone');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', 't', timezone => 'Mars/Olympus_Mons')$$, 'PT004',
    'pgtq: timezone ''Mars/Olympus_Mons'' is not a time zone PostgreSQL knows (see pg_timezone_names)',
    'schedule: an unknown time zone');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', 't', timezone => '')$$, 'PT004',
    'pgtq: timezone '''' is not a time zone PostgreSQL knows (see pg_timezone_names)', 'schedule: empty time zone');
SELECT throws_ok(format('SELECT pgtq.schedule(%L, %L, %L, %L, timezone => %L)', 's', '* * * * *', 'q', 't',
                        repeat('z', 101)), 'PT004',
    'pgtq: timezone must be at most 100 characters, got 101 characters', 'schedule: time zone over 100 characters');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', 't', priority => NULL)$$, 'PT004',
    'pgtq: priority must not be NULL', 'schedule: NULL priority');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', 't', max_attempts => 0)$$, 'PT004',
    'pgtq: max_attempts must be between 1 and 1000, got 0', 'schedule: max_attempts 0');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', 't', max_attempts => NULL)$$, 'PT004',
    'pgtq: max_attempts must be between 1 and 1000, got NULL', 'schedule: NULL max_attempts');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', 't', as_of => NULL)$$, 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'schedule: NULL as_of');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', 't', as_of => 'infinity')$$, 'PT004',
    'pgtq: as_of must be a finite time, got infinity', 'schedule: infinite as_of');
SELECT pgtq.configure(max_payload_bytes => 100);
SELECT throws_ok(format('SELECT pgtq.schedule(%L, %L, %L, %L, %L)', 's', '* * * * *', 'q', 't',
                        jsonb_build_array(repeat('x', 200))), 'PT005',
    'pgtq: payload of task ''t'' is 220 bytes, over the limit of 100 bytes', 'schedule: payload over the limit');
SELECT pgtq.configure(max_payload_bytes => 1048576);
SELECT is((SELECT count(*)::int FROM pgtq.schedules), 0, 'refused schedules wrote nothing');
SELECT throws_ok($$SELECT pgtq.unschedule(NULL)$$, 'PT003',
    'pgtq: schedule name must not be NULL', 'unschedule: NULL name');
SELECT throws_ok($$SELECT pgtq.unschedule(E'a\tb')$$, 'PT003',
    E'pgtq: schedule name ''a\tb'' contains a control character', 'unschedule: control character in the name');
SELECT is(pgtq.unschedule('never-scheduled'), false, 'unschedule: an unknown name');

-- ------------------------------------- retry_failed, purge, delete_job, metrics
SELECT throws_ok($$SELECT pgtq.retry_failed('')$$, 'PT003',
    'pgtq: queue name must be 1 to 200 characters, got 0 characters', 'retry_failed: empty queue name');
SELECT throws_ok($$SELECT pgtq.retry_failed('q', E't\n')$$, 'PT003',
    E'pgtq: task name ''t\n'' contains a control character', 'retry_failed: control character in the task');
SELECT throws_ok($$SELECT pgtq.retry_failed(as_of => NULL)$$, 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'retry_failed: NULL as_of');
SELECT throws_ok($$SELECT pgtq.purge(NULL)$$, 'PT004',
    'pgtq: older_than must be an interval between 0 and 100 years, got NULL', 'purge: NULL older_than');
SELECT throws_ok($$SELECT pgtq.purge('1 day', NULL)$$, 'PT004',
    'pgtq: states must name finished states only (done, failed, cancelled), got NULL', 'purge: NULL states');
SELECT throws_ok($$SELECT pgtq.purge('1 day', '{}')$$, 'PT004',
    'pgtq: states must name finished states only (done, failed, cancelled), got {}', 'purge: no state');
SELECT throws_ok($$SELECT pgtq.purge('1 day', '{done,running}')$$, 'PT004',
    'pgtq: states must name finished states only (done, failed, cancelled), got {done,running}',
    'purge: a live state');
SELECT throws_ok($$SELECT pgtq.purge('1 day', '{done}', repeat('q', 201))$$, 'PT003',
    'pgtq: queue name must be 1 to 200 characters, got 201 characters', 'purge: overlong queue name');
SELECT throws_ok($$SELECT pgtq.purge('1 day', '{done}', NULL, 0)$$, 'PT004',
    'pgtq: batch must be between 1 and 1000000, got 0', 'purge: zero batch');
SELECT throws_ok($$SELECT pgtq.purge('1 day', '{done}', NULL, 10, 'infinity')$$, 'PT004',
    'pgtq: as_of must be a finite time, got infinity', 'purge: infinite as_of');
SELECT throws_ok($$SELECT pgtq.delete_job(NULL)$$, 'PT004', 'pgtq: id must not be NULL', 'delete_job: NULL id');
SELECT is(pgtq.delete_job(c.id), false, 'delete_job: a live job is not deleted') FROM c WHERE c.task = 'second';
SELECT throws_ok($$SELECT * FROM pgtq.metrics(NULL)$$, 'PT004',
    'pgtq: period must be an interval between 1 minute and 31 days, got NULL', 'metrics: NULL period');
SELECT throws_ok($$SELECT * FROM pgtq.metrics('59 seconds')$$, 'PT004',
    'pgtq: period must be an interval between 1 minute and 31 days, got 00:00:59', 'metrics: period under a minute');
SELECT throws_ok($$SELECT * FROM pgtq.metrics('32 days')$$, 'PT004',
    'pgtq: period must be an interval between 1 minute and 31 days, got 32 days', 'metrics: period over 31 days');
SELECT throws_ok($$SELECT * FROM pgtq.metrics(as_of => '-infinity')$$, 'PT004',
    'pgtq: as_of must be a finite time, got -infinity', 'metrics: infinite as_of');
SELECT throws_ok($$CALL pgtq.tick_for(NULL)$$, 'PT004',
    'pgtq: duration must be a positive interval of at most 1 hour, got NULL', 'tick_for: NULL duration');
SELECT throws_ok($$CALL pgtq.tick_for('0')$$, 'PT004',
    'pgtq: duration must be a positive interval of at most 1 hour, got 00:00:00', 'tick_for: zero duration');
SELECT throws_ok($$CALL pgtq.tick_for('61 minutes')$$, 'PT004',
    'pgtq: duration must be a positive interval of at most 1 hour, got 01:01:00', 'tick_for: over an hour');
SELECT throws_ok($$CALL pgtq.tick_for('1 minute', '1 millisecond')$$, 'PT004',
    'pgtq: every must be an interval between 10 milliseconds and duration, got 00:00:00.001',
    'tick_for: every under 10 ms');
SELECT throws_ok($$CALL pgtq.tick_for('1 minute', '2 minutes')$$, 'PT004',
    'pgtq: every must be an interval between 10 milliseconds and duration, got 00:02:00',
    'tick_for: every over the duration');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE queue = 'bad'), 2, 'refused purges and deletes deleted nothing');

-- --------------------------------------------------------------- workers
SELECT throws_ok($$SELECT pgtq.register_worker(NULL, 'h', 1, '{q}')$$, 'PT003',
    'pgtq: worker name must not be NULL', 'register_worker: NULL worker');
SELECT throws_ok($$SELECT pgtq.register_worker(repeat('w', 201), 'h', 1, '{q}')$$, 'PT003',
    'pgtq: worker name must be 1 to 200 characters, got 201 characters', 'register_worker: overlong worker');
SELECT throws_ok($$SELECT pgtq.register_worker('w', 'h', 1, '{q}', NULL)$$, 'PT004',
    'pgtq: as_of must be a finite time, got NULL', 'register_worker: NULL as_of');
SELECT lives_ok($$SELECT pgtq.register_worker('w-nulls', NULL, NULL, NULL)$$,
    'register_worker: NULL host, pid and queues are allowed');
SELECT is((SELECT row(host, pid, queues)::text FROM pgtq.workers WHERE id = 'w-nulls'), '("",0,{})',
    'and stored as empty host, pid 0, no queues');
SELECT throws_ok($$SELECT pgtq.unregister_worker(NULL)$$, 'PT003',
    'pgtq: worker name must not be NULL', 'unregister_worker: NULL worker');
SELECT is(pgtq.unregister_worker('never-registered'), false, 'unregister_worker: an unknown worker');

-- ------------------------------------------------- backoff, install_roles
SELECT ok(pgtq.backoff(1, NULL) BETWEEN interval '1.6 seconds' AND interval '2 seconds',
    'backoff: a NULL base means the default, 2 seconds');
SELECT ok(pgtq.backoff(30, '1 second', NULL) BETWEEN interval '48 minutes' AND interval '1 hour',
    'backoff: a NULL cap means the default, 1 hour');
SELECT ok(pgtq.backoff(2147483647) BETWEEN interval '48 minutes' AND interval '1 hour',
    'backoff: a huge attempt number stays within the cap');
SELECT ok(pgtq.backoff(-2147483648) BETWEEN interval '1.6 seconds' AND interval '2 seconds',
    'backoff: a negative attempt counts as 1');
SELECT throws_ok($$SELECT pgtq.install_roles(observer => '')$$, 'PT003',
    'pgtq: role name must be 1 to 63 bytes, got ''''', 'install_roles: empty observer role name');
SELECT throws_ok($$SELECT pgtq.install_roles(NULL)$$, 'PT003',
    'pgtq: role name must be 1 to 63 bytes, got NULL', 'install_roles: NULL role name');
SELECT throws_ok(format('SELECT pgtq.install_roles(%L)', repeat('r', 64)), 'PT003',
    format('pgtq: role name must be 1 to 63 bytes, got %L', repeat('r', 64)), 'install_roles: role name over 63 bytes');
SELECT hasnt_role(repeat('r', 63), 'and no role was created on the way');

SELECT * FROM finish();
ROLLBACK;
