-- Waiting for results: watch() registers a waiter on the job row and
-- returns the job's outcome, unwatch() takes the registration back,
-- outcomes() reads outcomes; each only for jobs the session user pushed
-- (or a member of that role). (The notifications and the race between a
-- waiter and a finishing worker: tests/py/test_waiting.py.)
BEGIN;
SELECT plan(34);
SET LOCAL TIME ZONE 'UTC';

CREATE TEMP TABLE c AS SELECT * FROM pgtq.pop('q') LIMIT 0;
GRANT ALL ON c TO PUBLIC;

-- ------------------------------------------------------- the registration
SELECT pgtq.push('w', 'report', '[1]', as_of => '2030-01-01 00:00+00') AS job_id \gset
SELECT is((SELECT row(w.*)::text FROM pgtq.watch(:job_id) AS w), format('(%s,ready,,,)', :job_id),
    'watch returns the job''s state: ready, no outcome yet');
SELECT is((SELECT waiters FROM pgtq.jobs WHERE id = :job_id), 1, 'and registers one waiter on the job row');
SELECT is((SELECT count(*)::int FROM pgtq.watch(:job_id)), 1, 'a second waiter');
SELECT is((SELECT waiters FROM pgtq.jobs WHERE id = :job_id), 2, 'two waiters');
SELECT is(pgtq.unwatch(:job_id), true, 'a waiter gives up');
SELECT is((SELECT waiters FROM pgtq.jobs WHERE id = :job_id), 1, 'its registration is taken back');
INSERT INTO c SELECT * FROM pgtq.pop('w', 'w1', 1, '1 minute', '2030-01-01 00:00+00');
SELECT is((SELECT state::text FROM pgtq.watch(:job_id)), 'running', 'watching a running job');
SELECT is(pgtq.unwatch(:job_id), true, 'and giving up on it');
SELECT is(pgtq.complete(c.id, c.lease, '{"total": 42}', '2030-01-01 00:01+00'), true, 'the job completes') FROM c;
SELECT is((SELECT row(o.*)::text FROM pgtq.outcomes(ARRAY[:job_id]) AS o),
    format('(%s,done,"{""total"": 42}",,"2030-01-01 00:01:00+00")', :job_id),
    'outcomes: done, with its result and finish time');
SELECT is((SELECT row(w.*)::text FROM pgtq.watch(:job_id) AS w),
    format('(%s,done,"{""total"": 42}",,"2030-01-01 00:01:00+00")', :job_id),
    'watch on a finished job returns its outcome at once');
SELECT is((SELECT waiters FROM pgtq.jobs WHERE id = :job_id), 1,
    'and registers nothing (the count left is inert: a finished job never notifies again)');
SELECT is(pgtq.unwatch(:job_id), false, 'unwatch on a finished job changes nothing');
DELETE FROM c;

-- Failed and cancelled outcomes; retry clears the registrations.
SELECT pgtq.push('w', 'breaks', max_attempts => 1) AS broken_id \gset
SELECT pgtq.watch(:broken_id);
INSERT INTO c SELECT * FROM pgtq.pop('w', 'w1', 1, '1 minute', '2030-01-01 00:02+00');
SELECT pgtq.fail(c.id, c.lease, E'Traceback ...\nValueError: bad', as_of => '2030-01-01 00:02+00') FROM c;
SELECT is((SELECT row(o.*)::text FROM pgtq.outcomes(ARRAY[:broken_id]) AS o),
    format('(%s,failed,,"Traceback ...%sValueError: bad","2030-01-01 00:02:00+00")', :broken_id, E'\n'),
    'outcomes: failed, with its error');
SELECT is(pgtq.retry(:broken_id), true, 'the failed job is retried');
SELECT is((SELECT waiters FROM pgtq.jobs WHERE id = :broken_id), 0,
    'retry clears its registrations (their waiters were told it failed)');
SELECT pgtq.watch(:broken_id);
SELECT pgtq.cancel(:broken_id, '2030-01-01 00:03+00');
SELECT is((SELECT o.state::text || ' ' || o.finished_at FROM pgtq.outcomes(ARRAY[:broken_id]) AS o),
    'cancelled 2030-01-01 00:03:00+00', 'outcomes: cancelled');
SELECT is((SELECT count(*)::int FROM pgtq.outcomes(ARRAY[:job_id, :broken_id, :job_id, -1])), 2,
    'outcomes: one row per known job, duplicates and unknown ids aside');
DELETE FROM c;

-- -------------------------------------------------- who may read what
CREATE ROLE pgtq_test_alice LOGIN IN ROLE pgtq_producer;
CREATE ROLE pgtq_test_bob LOGIN IN ROLE pgtq_producer;
CREATE ROLE pgtq_test_carol LOGIN IN ROLE pgtq_producer, pgtq_test_alice;
SET SESSION AUTHORIZATION pgtq_test_alice;
SELECT pgtq.push('w', 'alices') AS alice_job \gset
RESET SESSION AUTHORIZATION;
SELECT is((SELECT pushed_by FROM pgtq.jobs WHERE id = :alice_job), 'pgtq_test_alice',
    'push records the session user as pushed_by');
SELECT is((SELECT pushed_by FROM pgtq.jobs WHERE id = :job_id), session_user::text, 'mine too');

SET SESSION AUTHORIZATION pgtq_test_bob;
SELECT is((SELECT count(*)::int FROM pgtq.watch(:alice_job)), 0, 'bob cannot watch alice''s job: no row');
SELECT is((SELECT count(*)::int FROM pgtq.outcomes(ARRAY[:alice_job])), 0, 'nor read its outcome');
SELECT is(pgtq.unwatch(:alice_job), false, 'nor take back a registration');
SELECT throws_ok($$SELECT * FROM pgtq.jobs$$, '42501', 'permission denied for view jobs',
    'and, a producer, reads no other view');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT waiters FROM pgtq.jobs WHERE id = :alice_job), 0, 'bob registered nothing');

SET SESSION AUTHORIZATION pgtq_test_alice;
SELECT is((SELECT state::text FROM pgtq.watch(:alice_job)), 'ready', 'alice watches her job');
SELECT is((SELECT count(*)::int FROM pgtq.outcomes(ARRAY[:alice_job, :job_id])), 1,
    'and reads its outcome, not the outcome of a job she did not push');
SET ROLE pgtq_producer;
SELECT is((SELECT count(*)::int FROM pgtq.outcomes(ARRAY[:alice_job])), 1,
    'SET ROLE changes nothing: the session user decides');
RESET ROLE;
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION pgtq_test_carol;
SELECT is((SELECT count(*)::int FROM pgtq.outcomes(ARRAY[:alice_job])), 1,
    'a member of alice''s role reads her jobs');
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*)::int FROM pgtq.outcomes(ARRAY[:alice_job])), 1, 'so does a superuser');

-- Jobs pushed before 0.2.0 have no pushed_by: readable through pgtq.jobs only.
UPDATE pgtq._job SET pushed_by = NULL WHERE id = :alice_job;
SET SESSION AUTHORIZATION pgtq_test_alice;
SELECT is((SELECT count(*)::int FROM pgtq.outcomes(ARRAY[:alice_job])), 0,
    'a job without pushed_by is nobody''s to read through outcomes');
SELECT is((SELECT count(*)::int FROM pgtq.watch(:alice_job)), 0, 'nor to watch');
RESET SESSION AUTHORIZATION;

-- No waiter registers while the job is finished, whoever calls.
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE waiters > 0 AND state NOT IN ('done', 'failed', 'cancelled')),
    1, 'only alice''s live job holds a registration');
SELECT is((SELECT waiters FROM pgtq.jobs WHERE id = :alice_job), 1, 'hers');

SELECT * FROM finish();
ROLLBACK;
