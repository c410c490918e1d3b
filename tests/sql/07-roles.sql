-- Least privilege: what pgtq_producer, pgtq_worker, pgtq_admin and pgtq_observer may do,
-- and what they, and everyone else, may not. Every refusal is checked by
-- acting as the role (SET ROLE), not only by reading the ACLs.
BEGIN;
SELECT plan(96);

-- The roles exist, as group roles.
SELECT has_role('pgtq_producer');
SELECT has_role('pgtq_worker');
SELECT has_role('pgtq_admin');
SELECT has_role('pgtq_observer');
SELECT is((SELECT count(*)::int FROM pg_roles
           WHERE rolname IN ('pgtq_producer', 'pgtq_worker', 'pgtq_admin', 'pgtq_observer') AND NOT rolcanlogin), 4,
    'the pgtq roles cannot log in (grant them to login users)');

-- The rights, as the catalog states them.
SELECT is(
    ARRAY(SELECT p.proname::text FROM pg_proc p
          WHERE p.pronamespace = 'pgtq'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')),
    '{}'::text[], 'PUBLIC may execute no pgtq function');
SELECT ok(NOT has_schema_privilege('public', 'pgtq', 'USAGE') AND NOT has_schema_privilege('public', 'pgtq', 'CREATE'),
    'PUBLIC has no rights on schema pgtq');
SELECT is(
    ARRAY(SELECT p.proname::text FROM pg_proc p
          WHERE p.pronamespace = 'pgtq'::regnamespace AND has_function_privilege('pgtq_producer', p.oid, 'EXECUTE')
          ORDER BY 1),
    ARRAY['outcomes', 'push', 'push_many', 'unwatch', 'version', 'watch'],
    'pgtq_producer may execute push, push_many, the waiting functions and version only');
SELECT is(
    ARRAY(SELECT p.proname::text FROM pg_proc p
          WHERE p.pronamespace = 'pgtq'::regnamespace AND has_function_privilege('pgtq_worker', p.oid, 'EXECUTE')
          ORDER BY 1),
    ARRAY['abort', 'backoff', 'clear_waiting', 'close_handoff', 'complete', 'complete_many', 'complete_many_and_pop',
          'fail', 'health', 'heartbeat', 'heartbeat_many', 'mark_waiting', 'metrics', 'offer_handoffs', 'open_handoff',
          'pop', 'register_worker', 'release', 'schedule', 'tick', 'tick_for', 'unregister_worker', 'unschedule',
          'version', 'waiting_settled'],
    'pgtq_worker may execute the worker''s functions only (schedule: a worker registers its periodic tasks)');
SELECT is(
    ARRAY(SELECT p.proname::text FROM pg_proc p
          WHERE p.pronamespace = 'pgtq'::regnamespace AND has_function_privilege('pgtq_admin', p.oid, 'EXECUTE')
          ORDER BY 1),
    ARRAY['abort', 'backoff', 'cancel', 'clear_waiting', 'close_handoff', 'complete', 'complete_many',
          'complete_many_and_pop', 'configure', 'configure_queue', 'delete_job', 'fail', 'health', 'heartbeat',
          'heartbeat_many', 'mark_waiting', 'metrics', 'offer_handoffs', 'open_handoff', 'outcomes', 'pause', 'pop',
          'prune', 'purge', 'push', 'push_many', 'register_worker', 'release', 'resume', 'retry', 'retry_failed',
          'schedule', 'tick', 'tick_for', 'unregister_worker', 'unschedule', 'unwatch', 'version', 'waiting_settled',
          'watch'],
    'pgtq_admin may execute every public function, and no helper nor install_roles');
SELECT is(
    ARRAY(SELECT p.proname::text FROM pg_proc p
          WHERE p.pronamespace = 'pgtq'::regnamespace AND has_function_privilege('pgtq_observer', p.oid, 'EXECUTE')
          ORDER BY 1),
    ARRAY['health', 'metrics', 'version'],
    'pgtq_observer may execute health, metrics and version only: nothing that writes');
SELECT is(
    ARRAY(SELECT r.rolname || ':' || c.relname FROM pg_class c
          CROSS JOIN (VALUES ('pgtq_producer'), ('pgtq_worker'), ('pgtq_admin'), ('pgtq_observer'), ('public'))
              AS r (rolname)
          WHERE c.relnamespace = 'pgtq'::regnamespace AND c.relkind IN ('r', 'S')
            AND (has_table_privilege(r.rolname, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                 OR (c.relkind = 'S' AND has_sequence_privilege(r.rolname, c.oid, 'USAGE, SELECT, UPDATE')))),
    '{}'::text[], 'no role (nor PUBLIC) has any right on a table or sequence');
SELECT is(
    ARRAY(SELECT r.rolname || ':' || c.relname FROM pg_class c
          CROSS JOIN (VALUES ('pgtq_producer'), ('pgtq_worker'), ('pgtq_admin'), ('pgtq_observer'), ('public'))
              AS r (rolname)
          WHERE c.relnamespace = 'pgtq'::regnamespace AND c.relkind = 'v'
            AND has_table_privilege(r.rolname, c.oid, 'SELECT')
          ORDER BY 1),
    ARRAY['pgtq_admin:job_rule_breaks', 'pgtq_admin:jobs', 'pgtq_admin:queue_history', 'pgtq_admin:queue_stats',
          'pgtq_admin:queues', 'pgtq_admin:schedules', 'pgtq_admin:settings', 'pgtq_admin:workers',
          'pgtq_observer:job_rule_breaks', 'pgtq_observer:jobs', 'pgtq_observer:queue_history', 'pgtq_observer:queue_stats', 'pgtq_observer:queues',
          'pgtq_observer:schedules', 'pgtq_observer:settings', 'pgtq_observer:workers',
          'pgtq_worker:queue_stats', 'pgtq_worker:schedules', 'pgtq_worker:workers'],
    'views: the admin and the observer read all, the worker reads stats, schedules and workers, the producer none');
SELECT is(
    ARRAY(SELECT c.relname::text FROM pg_class c
          WHERE c.relnamespace = 'pgtq'::regnamespace AND c.relkind = 'v'
            AND NOT has_table_privilege('pgtq_observer', c.oid, 'SELECT')),
    '{}'::text[], 'the observer reads every view there is');
SELECT is(
    ARRAY(SELECT r.rolname || ':' || c.relname FROM pg_class c
          CROSS JOIN (VALUES ('pgtq_producer'), ('pgtq_worker'), ('pgtq_admin'), ('pgtq_observer')) AS r (rolname)
          WHERE c.relnamespace = 'pgtq'::regnamespace AND c.relkind = 'v'
            AND has_table_privilege(r.rolname, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')),
    '{}'::text[], 'no role may write through a view');
SELECT ok(NOT has_schema_privilege('pgtq_admin', 'pgtq', 'CREATE'), 'not even the admin may create objects in pgtq');

-- A login user gets rights by membership.
CREATE ROLE pgtq_test_app_producer LOGIN IN ROLE pgtq_producer;
CREATE ROLE pgtq_test_app_worker LOGIN IN ROLE pgtq_worker;
CREATE ROLE pgtq_test_app_admin LOGIN IN ROLE pgtq_admin;
CREATE ROLE pgtq_test_app_observer LOGIN IN ROLE pgtq_observer;
CREATE ROLE pgtq_test_nobody LOGIN;
CREATE TEMP TABLE ids (name text PRIMARY KEY, id bigint);
CREATE TEMP TABLE claimed AS SELECT * FROM pgtq.pop('q') LIMIT 0;
GRANT ALL ON ids, claimed TO PUBLIC;

-- The producer: push, nothing else.
SET ROLE pgtq_test_app_producer;
SELECT lives_ok($$INSERT INTO ids SELECT 'p1', pgtq.push('q', 'secret', '["top secret"]')$$,
    'the producer pushes');
INSERT INTO ids SELECT 'p2', pgtq.push('q', 'second');
INSERT INTO ids SELECT 'p3', pgtq.push('q', 'third');
SELECT is(pgtq.version(), :'pgtq_version', 'the producer may ask the version');
SELECT throws_ok($$SELECT * FROM pgtq.pop('q')$$, '42501', 'permission denied for function pop',
    'the producer cannot pop');
SELECT throws_ok($$SELECT pgtq.complete(1, gen_random_uuid())$$, '42501', 'permission denied for function complete',
    'the producer cannot complete');
SELECT throws_ok($$SELECT pgtq.cancel(1)$$, '42501', 'permission denied for function cancel',
    'the producer cannot cancel');
SELECT is((SELECT w.state::text FROM ids, pgtq.watch(ids.id) AS w WHERE ids.name = 'p1'), 'ready',
    'the producer watches the job it pushed');
SELECT is((SELECT o.state::text FROM ids, pgtq.outcomes(ARRAY[ids.id]) AS o WHERE ids.name = 'p1'), 'ready',
    'and reads its outcome (19-wait.sql: only of its own jobs)');
SELECT is((SELECT pgtq.unwatch(ids.id) FROM ids WHERE ids.name = 'p1'), true, 'and stops watching it');
SELECT throws_ok($$SELECT pgtq.abort(1, gen_random_uuid(), 'x')$$, '42501', 'permission denied for function abort',
    'the producer cannot abort');
SELECT throws_ok($$SELECT args FROM pgtq.jobs$$, '42501', 'permission denied for view jobs',
    'the producer cannot read other jobs'' args or results');
SELECT throws_ok($$SELECT * FROM pgtq.queue_stats$$, '42501', 'permission denied for view queue_stats',
    'the producer cannot read the statistics');
SELECT throws_ok($$SELECT args FROM pgtq._job$$, '42501', 'permission denied for table _job',
    'the producer cannot read the job table');
SELECT throws_ok($$INSERT INTO pgtq._job (queue, task, state, run_at) VALUES ('q', 'x', 'ready', now())$$,
    '42501', 'permission denied for table _job', 'the producer cannot insert a job past push''s checks');
SELECT throws_ok($$SELECT nextval('pgtq._job_id_seq')$$, '42501', 'permission denied for sequence _job_id_seq',
    'the producer cannot use the id sequence');
SELECT throws_ok($$SELECT pgtq.schedule('s', '* * * * *', 'q', 't')$$, '42501',
    'permission denied for function schedule', 'the producer cannot schedule periodic jobs');
SELECT throws_ok($$SELECT * FROM pgtq.schedules$$, '42501', 'permission denied for view schedules',
    'the producer cannot read the schedules');
SELECT throws_ok($$CREATE FUNCTION pgtq.evil() RETURNS int LANGUAGE sql AS 'SELECT 1'$$, '42501',
    'permission denied for schema pgtq', 'the producer cannot create objects in pgtq');
RESET ROLE;

-- The worker: pop, complete, fail, heartbeat, release, tick, register.
SET ROLE pgtq_test_app_worker;
SELECT lives_ok($$INSERT INTO claimed SELECT * FROM pgtq.pop('q', 'w1', 2, '1 minute', '2030-01-01 00:00+00')$$,
    'the worker pops');
SELECT is((SELECT count(*)::int FROM claimed), 2, 'and gets both jobs');
SELECT is(pgtq.heartbeat(c.id, c.lease, '2 minutes', '2030-01-01 00:00:30+00'), true, 'the worker heartbeats')
FROM claimed c JOIN ids USING (id) WHERE ids.name = 'p1';
SELECT is((SELECT array_agg(h.held) FROM pgtq.heartbeat_many((SELECT array_agg(id ORDER BY id) FROM claimed),
                                                             (SELECT array_agg(lease ORDER BY id) FROM claimed),
                                                             '2 minutes', '2030-01-01 00:00:30+00') AS h),
    ARRAY[true, true], 'the worker heartbeats a batch');
SELECT is(pgtq.complete(c.id, c.lease, '{"ok": 1}', '2030-01-01 00:01+00'), true, 'the worker completes')
FROM claimed c JOIN ids USING (id) WHERE ids.name = 'p1';
SELECT is(pgtq.release(c.id, c.lease), true, 'the worker releases')
FROM claimed c JOIN ids USING (id) WHERE ids.name = 'p2';
DELETE FROM claimed;
INSERT INTO claimed SELECT * FROM pgtq.pop('q', 'w1', 1, '1 minute', '2030-01-01 00:02+00');
SELECT is(pgtq.fail(c.id, c.lease, 'boom', '1 minute', '2030-01-01 00:02+00'), 'scheduled', 'the worker fails a job')
FROM claimed c;
SELECT is(pgtq.tick('q', '2030-01-01 00:03+00'), 1, 'the worker ticks');
DELETE FROM claimed;
INSERT INTO claimed SELECT * FROM pgtq.pop('q', 'w1', 1, '1 minute', '2030-01-01 00:03+00');
SELECT is(pgtq.abort(c.id, c.lease, 'hopeless', '2030-01-01 00:03+00'), 'failed', 'the worker aborts a job')
FROM claimed c;
SELECT lives_ok($$SELECT pgtq.register_worker('w1', 'host', 1, ARRAY['q'])$$, 'the worker registers');
SELECT is((SELECT count(*)::int FROM pgtq.workers WHERE id = 'w1'), 1, 'and sees itself in pgtq.workers');
SELECT is((SELECT sum(jobs)::int FROM pgtq.queue_stats WHERE queue = 'q'), 3, 'the worker reads queue_stats');
SELECT is(pgtq.unregister_worker('w1'), true, 'the worker unregisters');
SELECT is((pgtq.schedule('w1-nightly', '0 3 * * *', 'reports', 'report', as_of => '2030-01-01 00:04+00')).next_run_at,
    '2030-01-01 03:00+00', 'the worker registers a periodic task');
SELECT is((SELECT count(*)::int FROM pgtq.schedules WHERE name = 'w1-nightly'), 1, 'and sees it in pgtq.schedules');
SELECT is(pgtq.tick('reports', '2030-01-01 03:00+00'), 1, 'its tick enqueues the due occurrence');
SELECT throws_ok($$UPDATE pgtq._schedule SET next_run_at = now()$$, '42501', 'permission denied for table _schedule',
    'the worker changes schedules through schedule() only');
SELECT throws_ok($$SELECT pgtq.push('q', 't')$$, '42501', 'permission denied for function push',
    'the worker cannot push (grant pgtq_producer too if its handlers push)');
SELECT throws_ok($$SELECT pgtq.retry(1)$$, '42501', 'permission denied for function retry',
    'the worker cannot retry');
SELECT throws_ok($$SELECT pgtq.pause('q')$$, '42501', 'permission denied for function pause',
    'the worker cannot pause a queue (an operator holding pgtq_admin does)');
SELECT throws_ok($$SELECT * FROM pgtq.outcomes('{1}')$$, '42501', 'permission denied for function outcomes',
    'the worker cannot read outcomes (grant pgtq_producer too if its handlers wait for jobs)');
SELECT throws_ok($$SELECT pgtq.prune('0')$$, '42501', 'permission denied for function prune',
    'the worker cannot prune');
SELECT throws_ok($$SELECT result FROM pgtq.jobs$$, '42501', 'permission denied for view jobs',
    'the worker cannot browse jobs and results');
SELECT throws_ok($$UPDATE pgtq._job SET state = 'done'$$, '42501', 'permission denied for table _job',
    'the worker cannot change a job past the lease check');
SELECT throws_ok($$SELECT pgtq._checked_name('queue', 'q')$$, '42501', 'permission denied for function _checked_name',
    'the worker cannot call helpers');
RESET ROLE;

-- The admin: everything through the API, still no table.
SET ROLE pgtq_test_app_admin;
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE queue = 'q'), 3, 'the admin reads pgtq.jobs');
SELECT is(pgtq.cancel(ids.id), true, 'the admin cancels') FROM ids WHERE name = 'p3';
SELECT is(pgtq.retry(ids.id), true, 'the admin retries') FROM ids WHERE name = 'p3';
SELECT is(pgtq.prune('1 hour', as_of => '2030-01-02 00:00+00'), 1, 'the admin prunes');
SELECT is((SELECT max_payload_bytes FROM pgtq.configure(max_payload_bytes => 4096)), 4096, 'the admin configures');
SELECT is((SELECT max_payload_bytes FROM pgtq.settings), 4096, 'and reads the settings');
SELECT isnt(pgtq.push('q', 'by_admin'), NULL, 'the admin pushes');
SELECT is(pgtq.unschedule('w1-nightly'), true, 'the admin unschedules');
SELECT is(pgtq.configure_queue('q', max_running => 2), true, 'the admin limits a queue');
SELECT is(pgtq.pause('q'), true, 'the admin pauses a queue');
SELECT is((SELECT paused::text || ' ' || max_running FROM pgtq.queues WHERE queue = 'q'), 'true 2',
    'and reads it in pgtq.queues');
SELECT is(pgtq.resume('q') AND pgtq.configure_queue('q'), true, 'the admin resumes it and lifts its limit');
SELECT throws_ok($$DELETE FROM pgtq._job$$, '42501', 'permission denied for table _job',
    'the admin cannot write the tables either');
SELECT throws_ok($$UPDATE pgtq._settings SET max_payload_bytes = 0$$, '42501', 'permission denied for table _settings',
    'the admin changes settings through configure only');
SELECT throws_ok($$SELECT pgtq.install_roles()$$, '42501', 'permission denied for function install_roles',
    'only the owner grants rights');
RESET ROLE;

-- The observer: reads everything an admin reads, changes nothing.
SET ROLE pgtq_test_app_observer;
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE queue = 'q'), 3, 'the observer reads pgtq.jobs');
SELECT lives_ok($$SELECT * FROM pgtq.queue_stats, pgtq.workers, pgtq.settings, pgtq.queue_history$$,
    'the observer reads queue_stats, workers, settings and queue_history');
SELECT is((SELECT value FROM pgtq.metrics() WHERE metric = 'jobs' AND queue = 'q' AND state = 'ready'), 2::float8,
    'the observer reads the metrics');
SELECT throws_ok($$SELECT pgtq.push('q', 't')$$, '42501', 'permission denied for function push',
    'the observer cannot push');
SELECT throws_ok($$SELECT pgtq.retry(1)$$, '42501', 'permission denied for function retry',
    'the observer cannot retry');
SELECT throws_ok($$SELECT pgtq.retry_failed()$$, '42501', 'permission denied for function retry_failed',
    'nor retry in bulk');
SELECT throws_ok($$SELECT pgtq.cancel(1)$$, '42501', 'permission denied for function cancel',
    'the observer cannot cancel');
SELECT throws_ok($$SELECT pgtq.delete_job(1)$$, '42501', 'permission denied for function delete_job',
    'nor delete');
SELECT throws_ok($$SELECT pgtq.purge('0')$$, '42501', 'permission denied for function purge',
    'nor purge');
SELECT throws_ok($$SELECT pgtq.tick()$$, '42501', 'permission denied for function tick',
    'the observer cannot tick (tick writes)');
SELECT throws_ok($$SELECT pgtq.configure(max_payload_bytes => 1)$$, '42501', 'permission denied for function configure',
    'nor configure');
SELECT throws_ok($$SELECT pgtq.pause('q')$$, '42501', 'permission denied for function pause',
    'nor pause a queue');
SELECT throws_ok($$SELECT pgtq.configure_queue('q', max_running => 1)$$, '42501',
    'permission denied for function configure_queue', 'nor limit one');
SELECT throws_ok($$SELECT * FROM pgtq._history$$, '42501', 'permission denied for table _history',
    'the observer cannot read the tables');
SELECT throws_ok($$DELETE FROM pgtq.queue_history$$, '42501', 'permission denied for view queue_history',
    'nor write through a view');
RESET ROLE;

-- Someone with no pgtq role gets nothing, not even the version.
SET ROLE pgtq_test_nobody;
SELECT throws_ok($$SELECT pgtq.version()$$, '42501', 'permission denied for schema pgtq',
    'a user without a pgtq role cannot use pgtq');
SELECT throws_ok($$SELECT pgtq.push('q', 't')$$, '42501', 'permission denied for schema pgtq',
    'nor push');
RESET ROLE;

-- install_roles is idempotent and can set up roles of other names.
CREATE TEMP TABLE acl_before AS
SELECT p.proname, p.proacl::text FROM pg_proc p WHERE p.pronamespace = 'pgtq'::regnamespace;
SELECT is(pgtq.install_roles(), ARRAY['pgtq_producer', 'pgtq_worker', 'pgtq_admin', 'pgtq_observer'],
    'install_roles again grants the same roles');
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN acl_before b USING (proname)
           WHERE p.pronamespace = 'pgtq'::regnamespace AND p.proacl::text IS DISTINCT FROM b.proacl),
    0, 'and changes no right');
SELECT is(pgtq.install_roles('pgtq_test_p', 'pgtq_test_w', 'pgtq_test_a', 'pgtq_test_o'),
    ARRAY['pgtq_test_p', 'pgtq_test_w', 'pgtq_test_a', 'pgtq_test_o'], 'install_roles creates roles of other names');
SELECT ok(has_function_privilege('pgtq_test_p', 'pgtq.push(text, text, jsonb, jsonb, timestamptz, integer, integer, text, text, interval, interval, text, timestamptz)', 'EXECUTE')
      AND has_function_privilege('pgtq_test_p', 'pgtq.watch(bigint)', 'EXECUTE')
      AND has_function_privilege('pgtq_test_w', 'pgtq.heartbeat_many(bigint[], uuid[], interval, timestamptz)', 'EXECUTE')
      AND NOT has_function_privilege('pgtq_test_w', 'pgtq.watch(bigint)', 'EXECUTE')
      AND NOT has_function_privilege('pgtq_test_o', 'pgtq.watch(bigint)', 'EXECUTE')
      AND NOT has_function_privilege('pgtq_test_p', 'pgtq.cancel(bigint, timestamptz)', 'EXECUTE')
      AND has_function_privilege('pgtq_test_a', 'pgtq.cancel(bigint, timestamptz)', 'EXECUTE')
      AND has_function_privilege('pgtq_test_a', 'pgtq.pause(text, timestamptz)', 'EXECUTE')
      AND NOT has_function_privilege('pgtq_test_w', 'pgtq.pause(text, timestamptz)', 'EXECUTE')
      AND has_table_privilege('pgtq_test_o', 'pgtq.queue_history', 'SELECT')
      AND NOT has_function_privilege('pgtq_test_o', 'pgtq.cancel(bigint, timestamptz)', 'EXECUTE'),
    'and grants them the rights of their kind');

-- Without CREATEROLE a missing role is a NOTICE, not an error (the pytest
-- suite checks the notice's text): pgtq is usable by its owner meanwhile.
CREATE ROLE pgtq_test_owner NOCREATEROLE;
GRANT USAGE ON SCHEMA pgtq TO pgtq_test_owner;
GRANT EXECUTE ON FUNCTION pgtq.install_roles TO pgtq_test_owner;
SET ROLE pgtq_test_owner;
SET client_min_messages = warning;
SELECT is(pgtq.install_roles('pgtq_test_missing_p', 'pgtq_test_missing_w', 'pgtq_test_missing_a',
                             'pgtq_test_missing_o'), '{}'::text[],
    'without CREATEROLE, install_roles grants nothing and does not fail');
RESET ROLE;
RESET client_min_messages;
SELECT hasnt_role('pgtq_test_missing_p', 'and creates no role');

SELECT * FROM finish();
ROLLBACK;
