-- The public SQL surface: every function with its exact signature, the
-- job states, the views. A change here is a change of the public API.
BEGIN;
SELECT plan(72);

SELECT has_schema('pgtq');
SELECT has_function('pgtq', 'version', ARRAY[]::text[]);
SELECT is(pgtq.version(), :'pgtq_version', 'version() is the control file''s default_version');
SELECT has_function('pgtq', 'push',
    ARRAY['text', 'text', 'jsonb', 'jsonb', 'timestamp with time zone', 'integer', 'integer',
          'text', 'text', 'interval', 'interval', 'text', 'timestamp with time zone']);
SELECT has_function('pgtq', 'push_many',
    ARRAY['text', 'text', 'jsonb[]', 'jsonb[]', 'timestamp with time zone', 'integer', 'integer',
          'text[]', 'text', 'interval', 'interval', 'text[]', 'timestamp with time zone']);
SELECT is((SELECT array_agg(pg_get_function_identity_arguments(oid) ORDER BY proname)
           FROM pg_proc WHERE pronamespace = 'pgtq'::regnamespace AND proname IN ('push', 'push_many')),
    ARRAY['queue text, task text, args jsonb, kwargs jsonb, run_at timestamp with time zone, priority integer, '
          'max_attempts integer, job_key text, job_key_mode text, backoff_base interval, backoff_cap interval, '
          'lock_key text, as_of timestamp with time zone',
          'queue text, task text, args jsonb[], kwargs jsonb[], run_at timestamp with time zone, priority integer, '
          'max_attempts integer, job_keys text[], job_key_mode text, backoff_base interval, backoff_cap interval, '
          'lock_keys text[], as_of timestamp with time zone'],
    'push takes lock_key and push_many lock_keys, before as_of (0.3.0)');
SELECT is((SELECT count(*)::int FROM pg_proc WHERE pronamespace = 'pgtq'::regnamespace
           AND proname IN ('push', 'push_many', 'release', '_state_after_failure', '_check_job_options',
                           '_push_keyed')), 6,
    'push, push_many and release have one signature each (the earlier ones are gone)');
SELECT has_function('pgtq', 'pop',
    ARRAY['text', 'text', 'integer', 'interval', 'timestamp with time zone']);
SELECT has_function('pgtq', 'complete',
    ARRAY['bigint', 'uuid', 'jsonb', 'timestamp with time zone']);
SELECT has_function('pgtq', 'complete_many',
    ARRAY['bigint[]', 'uuid[]', 'jsonb[]', 'timestamp with time zone']);
SELECT has_function('pgtq', 'complete_many_and_pop',
    ARRAY['text', 'bigint[]', 'uuid[]', 'jsonb[]', 'text', 'integer', 'interval', 'timestamp with time zone']);
SELECT has_function('pgtq', 'fail',
    ARRAY['bigint', 'uuid', 'text', 'interval', 'timestamp with time zone']);
SELECT has_function('pgtq', 'abort', ARRAY['bigint', 'uuid', 'text', 'timestamp with time zone']);
SELECT has_function('pgtq', 'backoff', ARRAY['integer', 'interval', 'interval']);
SELECT has_function('pgtq', 'tick', ARRAY['text', 'timestamp with time zone']);
SELECT has_function('pgtq', 'heartbeat',
    ARRAY['bigint', 'uuid', 'interval', 'timestamp with time zone']);
SELECT has_function('pgtq', 'heartbeat_many',
    ARRAY['bigint[]', 'uuid[]', 'interval', 'timestamp with time zone']);
SELECT is(pg_get_function_result('pgtq.heartbeat_many(bigint[], uuid[], interval, timestamptz)'::regprocedure),
    'TABLE(id bigint, held boolean, cancel_requested boolean)', 'heartbeat_many returns id, held, cancel_requested');
SELECT has_function('pgtq', 'release', ARRAY['bigint', 'uuid', 'timestamp with time zone']);
SELECT has_function('pgtq', 'cancel', ARRAY['bigint', 'timestamp with time zone']);
SELECT has_function('pgtq', 'retry', ARRAY['bigint', 'timestamp with time zone']);
SELECT has_function('pgtq', 'watch', ARRAY['bigint']);
SELECT has_function('pgtq', 'unwatch', ARRAY['bigint']);
SELECT has_function('pgtq', 'outcomes', ARRAY['bigint[]']);
SELECT has_function('pgtq', 'prune',
    ARRAY['interval', 'boolean', 'integer', 'timestamp with time zone']);
SELECT has_function('pgtq', 'register_worker',
    ARRAY['text', 'text', 'integer', 'text[]', 'timestamp with time zone', 'boolean']);
SELECT has_function('pgtq', 'mark_waiting', ARRAY['text[]']);
SELECT has_function('pgtq', 'waiting_settled', ARRAY['text[]']);
SELECT has_function('pgtq', 'clear_waiting', ARRAY['text[]']);
SELECT has_function('pgtq', 'offer_handoffs', ARRAY['text', 'text[]', 'interval']);
SELECT has_function('pgtq', 'open_handoff', ARRAY[]::text[]);
SELECT has_function('pgtq', 'close_handoff', ARRAY['boolean']);
SELECT has_function('pgtq', 'unregister_worker', ARRAY['text']);
SELECT has_function('pgtq', 'configure', ARRAY['integer', 'interval', 'interval']);
SELECT has_function('pgtq', 'install_roles', ARRAY['text', 'text', 'text', 'text']);
SELECT has_function('pgtq', 'schedule',
    ARRAY['text', 'text', 'text', 'text', 'jsonb', 'jsonb', 'text', 'integer', 'integer',
          'timestamp with time zone']);
SELECT has_function('pgtq', 'unschedule', ARRAY['text']);
SELECT has_function('pgtq', 'retry_failed', ARRAY['text', 'text', 'timestamp with time zone']);
SELECT has_function('pgtq', 'purge',
    ARRAY['interval', 'pgtq.job_state[]', 'text', 'integer', 'timestamp with time zone']);
SELECT has_function('pgtq', 'delete_job', ARRAY['bigint']);
SELECT has_function('pgtq', 'metrics', ARRAY['interval', 'timestamp with time zone']);
SELECT has_function('pgtq', 'health', ARRAY['interval', 'interval', 'timestamp with time zone']);
SELECT has_function('pgtq', 'pause', ARRAY['text', 'timestamp with time zone']);
SELECT has_function('pgtq', 'resume', ARRAY['text', 'timestamp with time zone']);
SELECT has_function('pgtq', 'configure_queue',
    ARRAY['text', 'integer', 'integer', 'interval', 'timestamp with time zone']);
SELECT is((SELECT pg_get_function_identity_arguments('pgtq.tick_for'::regproc) || ' ' || prokind::text
           FROM pg_proc WHERE oid = 'pgtq.tick_for'::regproc),
    'IN duration interval, IN every interval p', 'tick_for(duration, every) is a procedure (it commits)');

SELECT enum_has_labels('pgtq', 'job_state',
    ARRAY['scheduled', 'ready', 'running', 'done', 'failed', 'cancelled']);
SELECT has_view('pgtq', 'jobs', 'view pgtq.jobs');
SELECT has_view('pgtq', 'queue_stats', 'view pgtq.queue_stats');
SELECT has_view('pgtq', 'workers', 'view pgtq.workers');
SELECT has_view('pgtq', 'settings', 'view pgtq.settings');
SELECT has_view('pgtq', 'queue_history', 'view pgtq.queue_history');
SELECT hasnt_column('pgtq', 'jobs', 'lease', 'pgtq.jobs does not show lease tokens');
SELECT has_view('pgtq', 'schedules', 'view pgtq.schedules');
SELECT is(
    (SELECT array_agg(attname::text ORDER BY attnum)
     FROM pg_attribute
     WHERE attrelid = 'pgtq.schedules'::regclass AND attnum > 0),
    ARRAY['name', 'cron', 'timezone', 'queue', 'task', 'args', 'kwargs', 'priority', 'max_attempts',
          'next_run_at', 'last_run_at', 'last_job_id', 'last_error', 'created_at', 'updated_at'],
    'pgtq.schedules shows each schedule''s definition, next and last run, last job and last error');
SELECT is(
    (SELECT array_agg(attname::text ORDER BY attnum)
     FROM pg_attribute WHERE attrelid = 'pgtq.jobs'::regclass AND attnum > 0),
    ARRAY['id', 'queue', 'task', 'args', 'kwargs', 'state', 'priority', 'attempt', 'max_attempts', 'run_at',
          'created_at', 'started_at', 'finished_at', 'lease_expires_at', 'worker', 'last_error', 'result',
          'job_key', 'backoff_base', 'backoff_cap', 'cancel_requested_at', 'waiters', 'pushed_by', 'lock_key'],
    'pgtq.jobs shows each job''s key, backoff policy, cancel request, waiters, pusher and lock key');
SELECT has_view('pgtq', 'queues', 'view pgtq.queues');
SELECT is(
    (SELECT array_agg(attname::text ORDER BY attnum)
     FROM pg_attribute WHERE attrelid = 'pgtq.queues'::regclass AND attnum > 0),
    ARRAY['queue', 'paused', 'paused_at', 'max_running', 'rate_limit', 'rate_period', 'running', 'rate_used',
          'ready', 'scheduled', 'configured_at'],
    'pgtq.queues: each queue''s pause and limits, what counts against them, its backlog');
SELECT has_column('pgtq', 'queue_stats', 'cancel_requested', 'queue_stats counts the cancel requests');

-- The pop result carries what a worker needs.
SELECT is(
    (SELECT array_agg(attname::text ORDER BY attnum)
     FROM pg_attribute
     WHERE attrelid = 'pgtq.claimed_job'::regclass AND attnum > 0),
    ARRAY['id', 'queue', 'task', 'args', 'kwargs', 'priority', 'attempt', 'max_attempts',
          'lease', 'lease_expires_at'],
    'pop() returns id, queue, task, args, kwargs, priority, attempt, max_attempts, lease, lease_expires_at');
SELECT is(
    (SELECT array_agg(attname::text ORDER BY attnum)
     FROM pg_attribute
     WHERE attrelid = 'pgtq.job_outcome'::regclass AND attnum > 0),
    ARRAY['id', 'state', 'result', 'error', 'finished_at'],
    'watch() and outcomes() return id, state, result, error, finished_at');

-- Which functions run with the owner's rights: exactly those that write the
-- private tables, metrics and health, which read them for roles that may
-- not (they return aggregates and findings only), and outcomes, which reads one for the jobs
-- the caller pushed. Every function pins a search_path without writable
-- schemas.
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname)
     FROM pg_proc p WHERE p.pronamespace = 'pgtq'::regnamespace AND p.prosecdef),
    ARRAY['_sample_history', '_tick_schedules', 'abort', 'cancel', 'clear_waiting', 'close_handoff', 'complete',
          'complete_many', 'complete_many_and_pop', 'configure', 'configure_queue', 'delete_job', 'fail', 'health',
          'heartbeat', 'heartbeat_many', 'mark_waiting', 'metrics', 'offer_handoffs', 'open_handoff', 'outcomes',
          'pause', 'pop', 'prune', 'purge', 'push', 'push_many', 'register_worker', 'release', 'resume', 'retry',
          'retry_failed', 'schedule', 'tick', 'unregister_worker', 'unschedule', 'unwatch', 'waiting_settled', 'watch'],
    'the SECURITY DEFINER functions are the ones that write the tables, metrics, health, outcomes, waiting marks '
    'and hand-off offers');
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname)
     FROM pg_proc p WHERE p.pronamespace = 'pgtq'::regnamespace AND p.prosecdef AND p.provolatile <> 'v'),
    ARRAY['health', 'metrics', 'outcomes'], 'health, metrics and outcomes are the ones that only read (STABLE)');
SELECT is(
    (SELECT array_agg(attname::text ORDER BY attnum)
     FROM pg_attribute WHERE attrelid = 'pgtq.queue_history'::regclass AND attnum > 0),
    ARRAY['sampled_at', 'period_start', 'queue', 'task', 'scheduled', 'ready', 'running', 'oldest_ready_age',
          'completed', 'failed', 'cancelled', 'lease_expired'],
    'pgtq.queue_history: per sample, queue and task, the depth, the oldest ready age and what happened since');
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname)
     FROM pg_proc p WHERE p.pronamespace = 'pgtq'::regnamespace
       AND NOT coalesce('search_path=pg_catalog, pgtq, pg_temp' = ANY (p.proconfig), false)),
    ARRAY['_announce', '_anyone_waiting', '_completions_ok', '_first_ready', '_is_plain_name', '_mark_stays_idle',
          '_must_announce', '_push_options_ok', '_rescue_floor', '_runs_jobs', '_waiting_space', 'tick_for'],
    'every pgtq function pins search_path = pg_catalog, pgtq, pg_temp, but the inlined expression helpers, '
    'the announcement helpers, the rescue floor and the ready mark''s looks (run by pinned callers only) and '
    'tick_for (a procedure that commits may not have a SET clause)');
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname)
     FROM pg_proc p WHERE p.pronamespace = 'pgtq'::regnamespace
       AND p.proconfig && ARRAY['enable_seqscan=off', 'enable_sort=off']
       AND NOT coalesce('jit=off' = ANY (p.proconfig), false)),
    NULL,
    'every pgtq function that runs with enable_seqscan = off (0.17.0) or enable_sort = off (0.30.0) also '
    'runs with jit = off: a disabled scan''s or sort''s cost would have JIT compile its statements at every call');
SELECT cmp_ok(
    (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'pgtq'::regnamespace AND 'jit=off' = ANY (p.proconfig)),
    '>=', 13::bigint,
    'pop, complete, fail and the other per-job calls run with jit = off');
-- That helper is inlined into its pinned callers, names nothing unqualified
-- and may be run by nobody else.
SELECT ok((SELECT bool_and(p.prosrc !~ '(^|[^.a-z_])(length|isfinite|_is_plain_name|hashtext)\s*\(|[^)] [<>]=? |[^)] \|\| ')
           FROM pg_proc p WHERE p.proname IN ('_is_plain_name', '_push_options_ok', '_completions_ok', '_waiting_space')
             AND p.pronamespace = 'pgtq'::regnamespace),
    'the inlined helpers qualify the functions and operators they use');
SELECT ok((SELECT bool_and(NOT p.prosecdef
                           AND p.prosrc !~ '(^|[^.a-z_])(current_setting|pg_notify|pg_try_advisory_xact_lock_shared|pg_try_advisory_lock|pg_advisory_unlock|quote_literal|hashtext|_anyone_waiting|_waiting_space)\s*\('
                           AND regexp_replace(p.prosrc, 'USING ERRCODE = ', '', 'g') !~ ' (=|<>|<|>|<=|>=|\|\|) '
                           AND p.prosrc !~ '(^|[^.a-z_])text\M')
           FROM pg_proc p WHERE p.proname IN ('_announce', '_anyone_waiting', '_must_announce')
             AND p.pronamespace = 'pgtq'::regnamespace),
    'the announcement helpers run with the caller''s rights and qualify the functions, types and operators they use');
SELECT ok((SELECT NOT p.prosecdef AND p.prosrc !~ '(^|[^.a-z_])(clock_timestamp|pg_sleep|date_part|tick)\s*\('
                  AND p.prosrc !~ '(^|[^)]) [<>+]=? '
           FROM pg_proc p WHERE p.oid = 'pgtq.tick_for'::regproc),
    'tick_for runs with the caller''s rights and qualifies the functions and operators it uses');
SELECT ok(NOT has_function_privilege('public', 'pgtq._is_plain_name(text)', 'EXECUTE')
          AND NOT has_function_privilege('public',
              'pgtq._push_options_ok(text, text, integer, integer, timestamptz, timestamptz)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'pgtq._completions_ok(bigint[], uuid[], jsonb[], timestamptz)',
                                         'EXECUTE')
          AND NOT has_function_privilege('public', 'pgtq._waiting_space(text)', 'EXECUTE'),
    'PUBLIC may not run them');
-- A function marked PARALLEL SAFE calls nothing that is not (random(),
-- gen_random_uuid(), nextval(), pg_notify(), or a write).
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname)
     FROM pg_proc p WHERE p.pronamespace = 'pgtq'::regnamespace AND p.proparallel = 's'
       AND p.prosrc ~* '(random|gen_random_uuid|nextval|setval|pg_notify|_announce)\s*\(|\m(insert|update|delete)\M'),
    NULL,
    'no PARALLEL SAFE function calls a parallel-restricted or -unsafe one');

SELECT * FROM finish();
ROLLBACK;
