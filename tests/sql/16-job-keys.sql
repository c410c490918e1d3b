-- Job keys: at most one pending job per queue and key; keep and replace;
-- a running job does not block; push_many with keys; a keyed job that
-- would go back to pending while another pending job holds its key.
-- (Concurrent pushes of one key: tests/py/test_job_keys.py.)
BEGIN;
SELECT plan(52);
SET LOCAL TIME ZONE 'UTC';

CREATE TEMP TABLE c AS SELECT * FROM pgtq.pop('q') LIMIT 0;

-- ------------------------------------------------------------------ keep
SELECT pgtq.push('q', 'sync', '[1]', '{"a": 1}', priority => 3, job_key => 'user:42',
                 as_of => '2030-01-01 00:00+00') AS first_id \gset
SELECT is(pgtq.push('q', 'sync', '[2]', '{"a": 2}', priority => 9, job_key => 'user:42',
                    as_of => '2030-01-01 00:01+00'),
    :first_id::bigint, 'keep: a second push of the key returns the pending job''s id');
SELECT is((SELECT row(args, kwargs, priority, state, run_at)::text FROM pgtq.jobs WHERE id = :first_id),
    '([1],"{""a"": 1}",3,ready,"2030-01-01 00:00:00+00")', 'keep: and changes nothing');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE job_key = 'user:42'), 1, 'one job for the key');
SELECT is((SELECT job_key FROM pgtq.jobs WHERE id = :first_id), 'user:42', 'pgtq.jobs shows the key');
SELECT is(pgtq.push('q', 'sync', job_key => 'user:42', job_key_mode => 'keep'), :first_id::bigint,
    'keep is the default mode, and can be named');
SELECT isnt(pgtq.push('other', 'sync', job_key => 'user:42'), :first_id::bigint,
    'keys are per queue: another queue gets its own job');
SELECT isnt(pgtq.push('q', 'sync', '[1]'), pgtq.push('q', 'sync', '[1]'),
    'jobs without a key are never merged');
SELECT is(pgtq.push('q', 'other_task', job_key => 'user:42'), :first_id::bigint,
    'the key alone decides, whatever the task (name keys after their task)');

-- --------------------------------------------------------------- replace
SELECT pgtq.push('r', 'mail', '[1]', job_key => 'digest', as_of => '2030-01-01 00:00+00') AS digest_id \gset
SELECT is(pgtq.push('r', 'mail_v2', '[2]', '{"b": 2}', run_at => '2030-01-01 00:10+00', priority => 5,
                    max_attempts => 3, job_key => 'digest', job_key_mode => 'replace',
                    backoff_base => '1 minute', backoff_cap => '5 minutes', as_of => '2030-01-01 00:01+00'),
    :digest_id::bigint, 'replace: returns the pending job''s id');
SELECT is((SELECT row(task, args, kwargs, state, run_at, priority, max_attempts, backoff_base, backoff_cap)::text
           FROM pgtq.jobs WHERE id = :digest_id),
    '(mail_v2,[2],"{""b"": 2}",scheduled,"2030-01-01 00:10:00+00",5,3,00:01:00,00:05:00)',
    'replace: task, args, kwargs, run_at (scheduled now), priority, max_attempts and backoff are the new ones');
SELECT is((SELECT created_at FROM pgtq.jobs WHERE id = :digest_id), '2030-01-01 00:00+00'::timestamptz,
    'replace: the job keeps its creation time');
SELECT is(pgtq.push('r', 'mail_v2', '[3]', job_key => 'digest', job_key_mode => 'replace',
                    as_of => '2030-01-01 00:02+00'),
    :digest_id::bigint, 'replace: again, due now');
SELECT is((SELECT state::text || ' ' || run_at FROM pgtq.jobs WHERE id = :digest_id),
    'ready 2030-01-01 00:02:00+00', 'replace: a due run_at makes the scheduled job ready');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE queue = 'r'), 1, 'still one job');

-- A pending job waiting for its retry starts over when replaced.
INSERT INTO c SELECT * FROM pgtq.pop('r', as_of => '2030-01-01 00:03+00');
SELECT is(pgtq.fail(c.id, c.lease, 'boom', '1 hour', '2030-01-01 00:03+00'), 'scheduled', 'the keyed job fails once')
FROM c;
SELECT is(pgtq.push('r', 'mail_v2', '[4]', job_key => 'digest', as_of => '2030-01-01 00:04+00'), :digest_id::bigint,
    'its retry is pending again: keep finds it');
SELECT is(pgtq.push('r', 'mail_v2', '[4]', job_key => 'digest', job_key_mode => 'replace',
                    as_of => '2030-01-01 00:04+00'),
    :digest_id::bigint, 'replace finds it too');
SELECT is((SELECT row(attempt, last_error, state)::text FROM pgtq.jobs WHERE id = :digest_id), '(0,,ready)',
    'replace: attempts start again from 0, the old error is gone');
DELETE FROM c;

-- ---------------------------------------------------- a running job does not block
SELECT pgtq.push('s', 'index', '[1]', job_key => 'doc:7') AS running_id \gset
INSERT INTO c SELECT * FROM pgtq.pop('s', as_of => '2030-01-01 00:00+00');
SELECT is((SELECT id FROM c), :running_id::bigint, 'the keyed job runs');
SELECT pgtq.push('s', 'index', '[2]', job_key => 'doc:7') AS next_id \gset
SELECT isnt(:next_id::bigint, :running_id::bigint, 'a push while it runs queues a new pending job');
SELECT is(pgtq.push('s', 'index', '[3]', job_key => 'doc:7'), :next_id::bigint,
    'and the next push finds that pending one');
SELECT is((SELECT array_agg(state::text || ':' || job_key ORDER BY id) FROM pgtq.jobs WHERE queue = 's'),
    ARRAY['running:doc:7', 'ready:doc:7'], 'the running job keeps its key; one pending job holds it');
SELECT is((SELECT array_agg(args ORDER BY id) FROM pgtq.jobs WHERE queue = 's'), ARRAY['[1]', '[2]']::jsonb[],
    'the change pushed while it ran is kept (keep took the first pending push)');
SELECT is(pgtq.complete(c.id, c.lease), true, 'the running job completes') FROM c;
SELECT is(pgtq.cancel(:next_id), true, 'cancelling the pending job frees the key');
SELECT isnt(pgtq.push('s', 'index', '[4]', job_key => 'doc:7'), :next_id::bigint,
    'a push after that makes a new job');
DELETE FROM c;

-- --------------------------------------------- a keyed job superseded on its way back
-- fail: attempts left, but a pending job pushed while it ran holds the key.
SELECT pgtq.push('t', 'work', '[1]', job_key => 'k1') AS a_id \gset
INSERT INTO c SELECT * FROM pgtq.pop('t', lease => '1 minute', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('t', 'work', '[2]', job_key => 'k1') AS b_id \gset
SELECT is(pgtq.fail(c.id, c.lease, 'boom', as_of => '2030-01-01 00:00:30+00'), 'cancelled',
    'fail: a keyed job whose key another pending job holds is not retried')
FROM c;
SELECT is((SELECT state::text || ' | ' || last_error FROM pgtq.jobs WHERE id = :a_id),
    format('cancelled | boom%snot retried: superseded by job %s, pending with the same job_key', E'\n', :b_id),
    'it is cancelled, its error says which job supersedes it');
SELECT is((SELECT state::text FROM pgtq.jobs WHERE id = :b_id), 'ready', 'the pending job carries on');
DELETE FROM c;
-- fail without a conflict: back to pending, holding its key again.
INSERT INTO c SELECT * FROM pgtq.pop('t', lease => '1 minute', as_of => '2030-01-01 00:01+00');
SELECT is(pgtq.fail(c.id, c.lease, 'again', '0', '2030-01-01 00:01+00'), 'ready',
    'fail: a keyed job with its key free is retried as usual')
FROM c;
SELECT is(pgtq.push('t', 'work', '[3]', job_key => 'k1'), :b_id::bigint, 'and holds its key again');
DELETE FROM c;
-- tick: the lease rescue of a keyed job meets a pending job with its key.
INSERT INTO c SELECT * FROM pgtq.pop('t', lease => '1 minute', as_of => '2030-01-01 00:02+00');
SELECT pgtq.push('t', 'work', '[4]', job_key => 'k1') AS d_id \gset
SELECT is(pgtq.tick('t', '2030-01-01 00:05+00'), 1, 'tick rescues the expired keyed job');
SELECT is((SELECT state::text FROM pgtq.jobs WHERE id = :b_id), 'cancelled',
    'tick: superseded by the pending job, it is cancelled');
SELECT matches((SELECT last_error FROM pgtq.jobs WHERE id = :b_id),
    '^lease expired at .*\nnot retried: superseded by job ' || :d_id, 'with both reasons in its error');
DELETE FROM c;
-- tick without a conflict: scheduled for its retry.
INSERT INTO c SELECT * FROM pgtq.pop('t', lease => '1 minute', as_of => '2030-01-01 00:06+00');
SELECT is(pgtq.tick('t', '2030-01-01 00:08+00'), 1, 'tick rescues a keyed job with its key free');
SELECT is((SELECT state::text FROM pgtq.jobs WHERE id = :d_id), 'scheduled', 'it waits for its retry');
DELETE FROM c;
-- release: handed back while a newer pending job holds the key.
SELECT is(pgtq.tick('t', '2030-01-01 01:00+00'), 1, 'the retry comes due');
INSERT INTO c SELECT * FROM pgtq.pop('t', lease => '1 minute', as_of => '2030-01-01 01:00+00');
SELECT pgtq.push('t', 'work', '[5]', job_key => 'k1') AS e_id \gset
SELECT is(pgtq.release(c.id, c.lease, '2030-01-01 01:00:10+00'), true, 'release of the superseded job') FROM c;
SELECT is((SELECT state::text FROM pgtq.jobs WHERE id = :d_id), 'cancelled',
    'release: superseded, it is cancelled rather than handed back');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE job_key = 'k1' AND state IN ('scheduled', 'ready')), 1,
    'never two pending jobs for one key');
-- retry() of a job whose key is taken: a clear error.
SELECT throws_ok(format('SELECT pgtq.retry(%s)', :d_id), 'PT006',
    format('pgtq: job %s cannot be retried: job %s is pending with its job_key ''k1''', :d_id, :e_id),
    'retry: refused while another pending job holds the key');
SELECT is(pgtq.cancel(:e_id), true, 'once that job is cancelled');
SELECT is(pgtq.retry(:d_id), true, 'retry works');
DELETE FROM c;

-- -------------------------------------------------------------- push_many
SELECT is(array_agg(k ORDER BY n),
          ARRAY[(SELECT id FROM pgtq.jobs WHERE queue = 'q' AND job_key = 'user:42')] || array_agg(k ORDER BY n)
              FILTER (WHERE n > 1),
          'push_many: a key with a pending job returns that job''s id')
FROM pgtq.push_many('q', 'sync', ARRAY['[10]', '[11]']::jsonb[], job_keys => ARRAY['user:42', 'user:43'])
     WITH ORDINALITY AS p (k, n);
CREATE TEMP TABLE many AS
SELECT p.n, p.id
FROM pgtq.push_many('m', 'bulk', ARRAY['[1]', '[2]', '[3]', '[4]', '[5]']::jsonb[],
                    job_keys => ARRAY['a', NULL, 'b', 'a', NULL]) WITH ORDINALITY AS p (id, n);
SELECT is((SELECT count(DISTINCT id)::int FROM many), 4, 'push_many: two elements with one key make one job');
SELECT is((SELECT array_agg(n ORDER BY n) FROM many WHERE id = (SELECT id FROM many WHERE n = 1)), ARRAY[1, 4]::bigint[],
    'push_many: both elements of the key get its id');
SELECT is((SELECT args FROM pgtq.jobs WHERE queue = 'm' AND job_key = 'a'), '[1]'::jsonb,
    'push_many keep: the first element of a key is the job, as pushes one after another');
SELECT ok((SELECT bool_and(id IS NOT NULL) FROM many), 'push_many: every element gets an id');
SELECT is((SELECT array_agg(args ORDER BY id) FROM pgtq.jobs WHERE queue = 'm'), ARRAY['[1]', '[2]', '[3]', '[5]']::jsonb[],
    'push_many: jobs are made in element order (their ids follow it)');
CREATE TEMP TABLE replaced AS
SELECT x.n, x.id
FROM pgtq.push_many('m', 'bulk', ARRAY['[6]', '[7]', '[8]']::jsonb[], job_keys => ARRAY['a', 'a', 'c'],
                    job_key_mode => 'replace') WITH ORDINALITY AS x (id, n);
SELECT is((SELECT array_agg(id ORDER BY n) FROM replaced),
    ARRAY[(SELECT id FROM many WHERE n = 1), (SELECT id FROM many WHERE n = 1),
          (SELECT id FROM pgtq.jobs WHERE queue = 'm' AND job_key = 'c')],
    'push_many replace: finds the pending job of key a, makes one for c');
SELECT is((SELECT args FROM pgtq.jobs WHERE queue = 'm' AND job_key = 'a'), '[7]'::jsonb,
    'push_many replace: the last element of a key wins');

-- The index behind it all holds keyed pending jobs only.
SELECT is((SELECT indexdef FROM pg_indexes WHERE schemaname = 'pgtq' AND indexname = 'job_key_pending_idx'),
    'CREATE UNIQUE INDEX job_key_pending_idx ON pgtq._job USING btree (queue, job_key) WHERE ((job_key IS NOT NULL) '
    'AND (state = ANY (ARRAY[''scheduled''::pgtq.job_state, ''ready''::pgtq.job_state])))',
    'the key index is unique over keyed pending jobs only: a job without a key never enters it');

SELECT * FROM finish();
ROLLBACK;
