-- Search-path hijacking: a user who may create objects in `public` and in
-- pg_temp plants look-alike functions and operators there, puts `public`
-- before pg_catalog on their search_path, and calls pgtq. The pgtq
-- functions must not run any of them, least of all the SECURITY DEFINER
-- ones, which run with the owner's rights.
--
-- Each trap raises 'hijacked: <what>' when called. The calls run as the
-- attacker and their outcomes (result or SQLSTATE and message) are written
-- to a temp table; the pgTAP checks run afterwards with the role and path
-- reset, so pgTAP's own functions never meet the traps.
BEGIN;
SELECT plan(58);
SET LOCAL TIME ZONE 'UTC';

-- Mallory holds every pgtq role, so every public function can be called.
CREATE ROLE pgtq_test_mallory IN ROLE pgtq_producer, pgtq_worker, pgtq_admin;
GRANT CREATE ON SCHEMA public TO pgtq_test_mallory;
CREATE TEMP TABLE outcome (step text PRIMARY KEY, result text);
CREATE TEMP TABLE claimed AS SELECT * FROM pgtq.pop('q') LIMIT 0;
GRANT ALL ON outcome, claimed TO pgtq_test_mallory;

SET ROLE pgtq_test_mallory;
SET search_path = public, pg_catalog;

-- Look-alikes of what the pgtq bodies call, each an exact or better match
-- for the argument types pgtq passes when `public` comes first.
CREATE FUNCTION public.jsonb_typeof(jsonb) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: jsonb_typeof'; END $$;
CREATE FUNCTION public.gen_random_uuid() RETURNS uuid LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: gen_random_uuid'; END $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: now'; END $$;
CREATE FUNCTION public.length(text) RETURNS integer LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: length'; END $$;
CREATE FUNCTION public.isfinite(timestamptz) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: isfinite'; END $$;
CREATE FUNCTION public.pg_column_size(jsonb) RETURNS integer LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: pg_column_size'; END $$;
CREATE FUNCTION public.format(text, timestamptz, text) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: format'; END $$;
CREATE FUNCTION public.power(integer, integer) RETURNS double precision LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: power'; END $$;
CREATE FUNCTION public.cardinality(jsonb[]) RETURNS integer LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: cardinality'; END $$;
CREATE FUNCTION public.random() RETURNS double precision LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: random'; END $$;
CREATE FUNCTION public.pg_notify(text, text) RETURNS void LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: pg_notify'; END $$;
CREATE FUNCTION public.make_interval(integer, integer, integer, integer, integer, integer, double precision)
    RETURNS interval LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: make_interval'; END $$;
CREATE FUNCTION public.pg_has_role(name, oid, text) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: pg_has_role'; END $$;
CREATE FUNCTION public.concat_ws(text, text, text) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: concat_ws'; END $$;
CREATE FUNCTION public.trap_bigint_eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: = (bigint, bigint)'; END $$;
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.trap_bigint_eq);
CREATE FUNCTION public.trap_tstz_plus(timestamptz, interval) RETURNS timestamptz LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: + (timestamptz, interval)'; END $$;
CREATE OPERATOR public.+ (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = public.trap_tstz_plus);
CREATE FUNCTION public.trap_text_match(text, text) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: ~ (text, text)'; END $$;
CREATE OPERATOR public.~ (LEFTARG = text, RIGHTARG = text, FUNCTION = public.trap_text_match);
-- What the cron parser and the next-run computation call.
CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: lower'; END $$;
CREATE FUNCTION public.btrim(text, text) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: btrim'; END $$;
CREATE FUNCTION public.array_position(text[], text) RETURNS integer LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: array_position'; END $$;
CREATE FUNCTION public.timezone(text, timestamptz) RETURNS timestamp LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: timezone'; END $$;
CREATE FUNCTION public.make_timestamp(integer, integer, integer, integer, integer, double precision)
    RETURNS timestamp LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: make_timestamp'; END $$;
CREATE FUNCTION public.trap_tstz_le(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: <= (timestamptz, timestamptz)'; END $$;
CREATE OPERATOR public.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.trap_tstz_le);
-- What flow control calls: the key's lock and hash, the isolation check,
-- the rate window's bucket.
CREATE FUNCTION public.pg_try_advisory_xact_lock(bigint) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: pg_try_advisory_xact_lock'; END $$;
CREATE FUNCTION public.hashtextextended(text, bigint) RETURNS bigint LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: hashtextextended'; END $$;
CREATE FUNCTION public.current_setting(text) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: current_setting'; END $$;
CREATE FUNCTION public.floor(numeric) RETURNS numeric LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: floor'; END $$;
-- What the vacuum check of health reads (0.36.0): the tables' own settings.
CREATE FUNCTION public.pg_options_to_table(text[]) RETURNS TABLE (option_name text, option_value text)
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked: pg_options_to_table'; END $$;
-- What the waiting marks call (0.12.0): the queue's hash, the advisory locks.
CREATE FUNCTION public.hashtext(text) RETURNS integer LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: hashtext'; END $$;
CREATE FUNCTION public.pg_advisory_lock_shared(integer, integer) RETURNS void LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: pg_advisory_lock_shared'; END $$;
CREATE FUNCTION public.pg_advisory_unlock_shared(integer, integer) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: pg_advisory_unlock_shared'; END $$;
CREATE FUNCTION public.pg_try_advisory_lock(integer, integer) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: pg_try_advisory_lock'; END $$;
CREATE FUNCTION public.pg_advisory_unlock(integer, integer) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: pg_advisory_unlock'; END $$;
CREATE FUNCTION public.pg_try_advisory_xact_lock(integer, integer) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: pg_try_advisory_xact_lock'; END $$;
CREATE FUNCTION public.pg_try_advisory_xact_lock_shared(integer, integer) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: pg_try_advisory_xact_lock_shared'; END $$;
-- pg_temp: temporary look-alikes of a function and of pgtq's tables.
CREATE FUNCTION pg_temp.jsonb_typeof(jsonb) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'hijacked: pg_temp.jsonb_typeof'; END $$;
CREATE TEMP TABLE _settings (singleton boolean, max_payload_bytes integer, worker_timeout interval);
INSERT INTO _settings VALUES (true, 1, '1 second');
CREATE TEMP TABLE _job (id bigint);

-- Every call pgtq offers the attacker, each recorded with its outcome.
DO $$
DECLARE
    c record;
    steps text[] := ARRAY[
        'push_object|SELECT pgtq.push(''q'', ''t'', ''{"a": 1}'')::text',
        'push_control|SELECT pgtq.push(''q'', E''a\tb'')::text',
        'push_ok|SELECT (pgtq.push(''q'', ''t'', ''[1]'') IS NOT NULL)::text',
        'pop|WITH p AS (INSERT INTO claimed SELECT * FROM pgtq.pop(''q'', ''w'', 1, ''1 minute'','
            ' ''2030-01-01 00:00+00'') RETURNING id) SELECT count(*)::text FROM p',
        'backoff|SELECT (pgtq.backoff(3) BETWEEN interval ''6.4 s'' AND interval ''8 s'')::text',
        'version|SELECT pgtq.version()',
        'push_many|SELECT count(*)::text FROM pgtq.push_many(''q2'', ''t'', ARRAY[''[1]'', ''[2]'']::jsonb[],'
            ' as_of => ''2030-01-01 00:00+00'')',
        'register_worker|SELECT ''registered'' FROM (SELECT pgtq.register_worker(''w1'', ''h'', 1, ARRAY[''q''],'
            ' ''2030-01-01 00:00+00'')) AS r',
        'unregister_worker|SELECT pgtq.unregister_worker(''w1'')::text',
        'cancel|SELECT pgtq.cancel((SELECT id FROM pgtq.jobs WHERE queue = ''q2'' ORDER BY id LIMIT 1),'
            ' ''2030-01-01 00:00+00'')::text',
        'retry|SELECT pgtq.retry((SELECT id FROM pgtq.jobs WHERE queue = ''q2'' ORDER BY id LIMIT 1),'
            ' ''2030-01-01 00:00+00'')::text',
        'configure|SELECT (pgtq.configure(worker_timeout => ''2 minutes'')).worker_timeout::text',
        'prune|SELECT pgtq.prune(''0'', as_of => ''2030-01-01 00:00+00'')::text',
        'schedule|SELECT (pgtq.schedule(''hijack'', ''30 2 * * Mon-FRI'', ''q3'', ''t'', ''[1]'','
            ' timezone => ''Europe/Paris'', as_of => ''2030-01-01 00:00+00'')).next_run_at::text',
        'tick_schedule|SELECT pgtq.tick(''q3'', ''2030-01-01 01:30+00'')::text',
        'unschedule|SELECT pgtq.unschedule(''hijack'')::text',
        'metrics|SELECT value::text FROM pgtq.metrics(as_of => ''2030-01-01 00:00+00'')'
            ' WHERE metric = ''jobs'' AND queue = ''q2'' AND state = ''ready''',
        'health|SELECT string_agg(concat(h.name, ''='', h.status), '','')'
            ' FROM pgtq.health(as_of => ''2030-01-01 00:00+00'') AS h WHERE h.name NOT IN (''cleanup'', ''vacuum'')',
        'health_vacuum|SELECT concat(h.status, '':'', left(h.detail, 5))'
            ' FROM pgtq.health() AS h WHERE h.name = ''vacuum''',
        'retry_failed|SELECT pgtq.retry_failed(''q2'', ''t'', ''2030-01-01 00:00+00'')::text',
        'purge|SELECT pgtq.purge(''0'', ''{done,cancelled}'', ''q2'', as_of => ''2030-01-01 00:00+00'')::text',
        'delete_job|SELECT pgtq.delete_job(-1)::text',
        'tick_for|CALL pgtq.tick_for(''1 second'', ''1 second'')',
        'push_keyed|SELECT (pgtq.push(''q5'', ''t'', ''[1]'', job_key => ''k'', backoff_base => ''1 second'','
            ' as_of => ''2030-01-01 00:00+00'')::text'
            ' = pgtq.push(''q5'', ''t'', ''[2]'', job_key => ''k'', job_key_mode => ''replace'','
            ' as_of => ''2030-01-01 00:00+00'')::text)::text',
        'push_many_keyed|SELECT count(DISTINCT k)::text FROM pgtq.push_many(''q6'', ''t'','
            ' ARRAY[''[1]'', ''[2]'']::jsonb[], job_keys => ARRAY[''a'', ''a'']) AS k',
        'watch|SELECT w.state::text FROM pgtq.watch((SELECT id FROM pgtq.jobs WHERE queue = ''q5'')) AS w',
        'outcomes|SELECT count(*)::text FROM pgtq.outcomes((SELECT array_agg(id) FROM pgtq.jobs WHERE queue = ''q5''))',
        'unwatch|SELECT pgtq.unwatch((SELECT id FROM pgtq.jobs WHERE queue = ''q5''))::text',
        'configure_queue|SELECT pgtq.configure_queue(''q7'', max_running => 1, rate_limit => 5,'
            ' rate_period => ''1 minute'', as_of => ''2030-01-01 00:00+00'')::text',
        'push_locked|SELECT count(*)::text FROM pgtq.push_many(''q7'', ''t'', ARRAY[''[1]'', ''[2]'', ''[3]'']::jsonb[],'
            ' lock_keys => ARRAY[''k'', ''k'', NULL], as_of => ''2030-01-01 00:00+00'')',
        'pop_limited|SELECT string_agg(p.args::text, '','') FROM pgtq.pop(''q7'', ''w'', 5, ''1 minute'','
            ' ''2030-01-01 00:00+00'') AS p',
        'pause|SELECT pgtq.pause(''q7'')::text',
        'resume|SELECT pgtq.resume(''q7'')::text',
        'mark_waiting|SELECT pgtq.mark_waiting(ARRAY[''q8''])::text',
        'waiting_settled|SELECT pgtq.waiting_settled(ARRAY[''q8''])::text',
        'clear_waiting|SELECT ''cleared'' FROM (SELECT pgtq.clear_waiting(ARRAY[''q8''])) AS c',
        'offer_handoffs|SELECT left(pgtq.offer_handoffs(''w8'', ARRAY[''q8'']), 13)',
        'open_handoff|SELECT pgtq.open_handoff()::text',
        'close_handoff|SELECT pgtq.close_handoff(true)::text'
    ];
    step text;
    answer text;
BEGIN
    FOREACH step IN ARRAY steps LOOP
        BEGIN
            EXECUTE split_part(step, '|', 2) INTO answer;
        EXCEPTION WHEN OTHERS THEN
            answer := SQLSTATE || ' ' || SQLERRM;
        END;
        INSERT INTO outcome VALUES (split_part(step, '|', 1), answer);
    END LOOP;
END
$$;
DO $$
DECLARE
    answer text;
BEGIN
    BEGIN
        SELECT pgtq.heartbeat(c.id, c.lease, '1 minute', '2030-01-01 00:00:10+00')::text INTO answer FROM claimed c;
    EXCEPTION WHEN OTHERS THEN answer := SQLSTATE || ' ' || SQLERRM;
    END;
    INSERT INTO outcome VALUES ('heartbeat', answer);
    BEGIN
        SELECT pgtq.fail(c.id, c.lease, 'boom', '0', '2030-01-01 00:00:20+00') INTO answer FROM claimed c;
    EXCEPTION WHEN OTHERS THEN answer := SQLSTATE || ' ' || SQLERRM;
    END;
    INSERT INTO outcome VALUES ('fail', answer);
END
$$;
DELETE FROM claimed;
INSERT INTO claimed SELECT * FROM pgtq.pop('q', 'w', 1, '1 minute', '2030-01-01 00:01+00');
DO $$
DECLARE
    answer text;
BEGIN
    BEGIN
        SELECT pgtq.tick('q', '2030-01-01 00:03+00')::text INTO answer;
    EXCEPTION WHEN OTHERS THEN answer := SQLSTATE || ' ' || SQLERRM;
    END;
    INSERT INTO outcome VALUES ('tick_rescue', answer);
    BEGIN
        SELECT pgtq.complete(c.id, c.lease)::text INTO answer FROM claimed c;
    EXCEPTION WHEN OTHERS THEN answer := SQLSTATE || ' ' || SQLERRM;
    END;
    INSERT INTO outcome VALUES ('complete_stale', answer);
END
$$;
DELETE FROM claimed;
INSERT INTO claimed SELECT * FROM pgtq.pop('q2', 'w', 2, '1 minute', '2030-01-01 00:05+00');
DO $$
DECLARE
    answer text;
BEGIN
    BEGIN
        SELECT pgtq.release(c.id, c.lease)::text INTO answer FROM claimed c ORDER BY c.id LIMIT 1;
    EXCEPTION WHEN OTHERS THEN answer := SQLSTATE || ' ' || SQLERRM;
    END;
    INSERT INTO outcome VALUES ('release', answer);
    BEGIN
        SELECT count(*)::text INTO answer
        FROM pgtq.complete_many((SELECT array_agg(c.id) FROM claimed c WHERE c.id > (SELECT min(id) FROM claimed)),
                                (SELECT array_agg(c.lease) FROM claimed c
                                 WHERE c.id > (SELECT min(id) FROM claimed)));
    EXCEPTION WHEN OTHERS THEN answer := SQLSTATE || ' ' || SQLERRM;
    END;
    INSERT INTO outcome VALUES ('complete_many', answer);
    BEGIN
        SELECT cardinality(r.completed) || ',' || cardinality(r.claimed) INTO answer
        FROM pgtq.complete_many_and_pop('q2', '{}', '{}', NULL, 'w', 1, '1 minute', '2030-01-01 00:05+00') AS r;
    EXCEPTION WHEN OTHERS THEN answer := SQLSTATE || ' ' || SQLERRM;
    END;
    INSERT INTO outcome VALUES ('complete_many_and_pop', answer);
END
$$;
DELETE FROM claimed;
INSERT INTO claimed SELECT * FROM pgtq.pop('q5', 'w', 1, '1 minute', '2030-01-01 00:06+00');
DO $$
DECLARE
    answer text;
BEGIN
    BEGIN
        SELECT string_agg(h.held::text || '/' || h.cancel_requested::text, ',') INTO answer
        FROM pgtq.heartbeat_many((SELECT array_agg(c.id) FROM claimed c), (SELECT array_agg(c.lease) FROM claimed c),
                                 '1 minute', '2030-01-01 00:06:10+00') AS h;
    EXCEPTION WHEN OTHERS THEN answer := SQLSTATE || ' ' || SQLERRM;
    END;
    INSERT INTO outcome VALUES ('heartbeat_many', answer);
    BEGIN
        SELECT pgtq.abort(c.id, c.lease, 'hopeless', '2030-01-01 00:06:20+00') INTO answer FROM claimed c;
    EXCEPTION WHEN OTHERS THEN answer := SQLSTATE || ' ' || SQLERRM;
    END;
    INSERT INTO outcome VALUES ('abort', answer);
END
$$;
-- The traps are live: an ordinary unqualified call in this session finds them.
DO $$
DECLARE
    answer text;
BEGIN
    BEGIN
        answer := jsonb_typeof('{}');
    EXCEPTION WHEN OTHERS THEN answer := SQLERRM;
    END;
    INSERT INTO outcome VALUES ('trap_function_live', answer);
    BEGIN
        answer := (1::bigint = 1::bigint)::text;
    EXCEPTION WHEN OTHERS THEN answer := SQLERRM;
    END;
    INSERT INTO outcome VALUES ('trap_operator_live', answer);
    BEGIN
        answer := power(2, 3)::text;
    EXCEPTION WHEN OTHERS THEN answer := SQLERRM;
    END;
    INSERT INTO outcome VALUES ('trap_overload_live', answer);
END
$$;
RESET search_path;
RESET ROLE;

SELECT is((SELECT result FROM outcome WHERE step = 'trap_function_live'), 'hijacked: jsonb_typeof',
    'the planted jsonb_typeof wins for the attacker''s own unqualified calls');
SELECT is((SELECT result FROM outcome WHERE step = 'trap_operator_live'), 'hijacked: = (bigint, bigint)',
    'and so does the planted = operator');
SELECT is((SELECT result FROM outcome WHERE step = 'trap_overload_live'), 'hijacked: power',
    'and the better-matching power(integer, integer)');
SELECT is((SELECT result FROM outcome WHERE step = 'push_object'),
    'PT001 pgtq: args must be a JSON array, got object', 'push checks args with the real jsonb_typeof');
SELECT is((SELECT result FROM outcome WHERE step = 'push_control'),
    E'PT003 pgtq: task name ''a\tb'' contains a control character', 'push checks names with the real ~ and length');
SELECT is((SELECT result FROM outcome WHERE step = 'push_ok'), 'true',
    'push ignores the temp _settings (payload limit 1 byte) and the planted now()');
SELECT is((SELECT result FROM outcome WHERE step = 'pop'), '1', 'pop uses the real + and gen_random_uuid');
SELECT is((SELECT result FROM outcome WHERE step = 'backoff'), 'true', 'backoff uses the real power and random');
SELECT is((SELECT result FROM outcome WHERE step = 'version'), :'pgtq_version', 'version answers');
SELECT is((SELECT result FROM outcome WHERE step = 'heartbeat'), 'true', 'heartbeat uses the real = and +');
SELECT is((SELECT result FROM outcome WHERE step = 'fail'), 'ready', 'fail uses the real operators');
SELECT is((SELECT result FROM outcome WHERE step = 'tick_rescue'), '1', 'tick rescues with the real format');
SELECT matches((SELECT last_error FROM pgtq.jobs WHERE queue = 'q'),
    '^lease expired at 2030-01-01 00:02:00', 'the rescue message was written by the real format');
SELECT is((SELECT result FROM outcome WHERE step = 'complete_stale'), 'false', 'complete refuses the stale lease');
SELECT is((SELECT result FROM outcome WHERE step = 'push_many'), '2',
    'push_many uses the real cardinality, jsonb_typeof and pg_column_size');
SELECT is((SELECT result FROM outcome WHERE step = 'register_worker'), 'registered', 'register_worker runs');
SELECT is((SELECT result FROM outcome WHERE step = 'unregister_worker'), 'true', 'unregister_worker uses the real =');
SELECT is((SELECT result FROM outcome WHERE step = 'cancel'), 'true', 'cancel uses the real isfinite and =');
SELECT is((SELECT result FROM outcome WHERE step = 'retry'), 'true', 'retry uses the real operators');
SELECT is((SELECT result FROM outcome WHERE step = 'configure'), '00:02:00',
    'configure writes the real settings, not the temp _settings');
SELECT is((SELECT result FROM outcome WHERE step = 'prune'), '0', 'prune uses the real operators and table');
SELECT is((SELECT result FROM outcome WHERE step = 'release'), 'true', 'release uses the real =');
SELECT is((SELECT result FROM outcome WHERE step = 'complete_many'), '1',
    'complete_many uses the real cardinality and =');
SELECT is((SELECT result FROM outcome WHERE step = 'complete_many_and_pop'), '0,1',
    'complete_many_and_pop uses the real cardinality, array_positions and operators');
SELECT is((SELECT result FROM outcome WHERE step = 'schedule'), '2030-01-01 01:30:00+00',
    'schedule parses with the real lower, btrim and array_position and computes with the real timezone');
SELECT is((SELECT result FROM outcome WHERE step = 'tick_schedule'), '1',
    'tick enqueues the due occurrence with the real <= and make_timestamp');
SELECT is((SELECT row(task, args, run_at)::text FROM pgtq.jobs WHERE queue = 'q3'),
    '(t,[1],"2030-01-01 01:30:00+00")', 'the job it enqueued is the schedule''s');
SELECT is((SELECT result FROM outcome WHERE step = 'unschedule'), 'true', 'unschedule uses the real =');
SELECT is((SELECT result FROM outcome WHERE step = 'metrics'), '2', 'metrics uses the real operators');
SELECT is((SELECT result FROM outcome WHERE step = 'health'), 'queues=ok,schedules=ok',
    'health uses the real pg_has_role, concat_ws, format and operators');
SELECT ok((SELECT result FROM outcome WHERE step = 'health_vacuum')
          IN ('ok:no ta', 'warning:table', 'unknown:track'),
    'the vacuum check of health uses the real current_setting, pg_options_to_table, format and operators');
SELECT is((SELECT result FROM outcome WHERE step = 'retry_failed'), '0', 'retry_failed uses the real operators');
SELECT is((SELECT result FROM outcome WHERE step = 'purge'), '0', 'purge uses the real operators and table');
SELECT is((SELECT result FROM outcome WHERE step = 'delete_job'), 'false', 'delete_job uses the real =');
SELECT is((SELECT result FROM outcome WHERE step = 'tick_for'), '2D000 invalid transaction termination',
    'tick_for ticks with the real functions and operators up to its COMMIT (which needs autocommit)');
SELECT is((SELECT array_agg(DISTINCT sampled_at ORDER BY sampled_at) FROM pgtq.queue_history),
    ARRAY['2030-01-01 00:03+00', '2030-01-01 01:30+00']::timestamptz[],
    'the ticks took their history samples with the real operators and tables');
SELECT is((SELECT result FROM outcome WHERE step = 'push_keyed'), 'true',
    'a keyed push, kept then replaced, uses the real length, = and unnest');
SELECT is((SELECT result FROM outcome WHERE step = 'push_many_keyed'), '1',
    'push_many with keys uses the real cardinality and length');
SELECT is((SELECT args FROM pgtq.jobs WHERE queue = 'q5'), '[2]'::jsonb, 'the replace wrote the real job');
SELECT is((SELECT result FROM outcome WHERE step = 'watch'), 'ready',
    'watch uses the real session check and pg_notify');
SELECT is((SELECT result FROM outcome WHERE step = 'outcomes'), '1', 'outcomes uses the real pg_has_role');
SELECT is((SELECT result FROM outcome WHERE step = 'unwatch'), 'true', 'unwatch uses the real operators');
SELECT is((SELECT result FROM outcome WHERE step = 'heartbeat_many'), 'true/false',
    'heartbeat_many uses the real cardinality and +');
SELECT is((SELECT result FROM outcome WHERE step = 'abort'), 'failed', 'abort uses the real operators');
SELECT is((SELECT result FROM outcome WHERE step = 'configure_queue'), 'true', 'configure_queue writes the real table');
SELECT is((SELECT result FROM outcome WHERE step = 'push_locked'), '3',
    'push_many with lock keys uses the real cardinality and length');
SELECT is((SELECT result FROM outcome WHERE step = 'pop_limited'), '[1]',
    'a pop with a limit and lock keys uses the real current_setting, floor, hashtextextended and advisory lock');
SELECT is((SELECT result FROM outcome WHERE step = 'pause'), 'true', 'pause uses the real table');
SELECT is((SELECT result FROM outcome WHERE step = 'resume'), 'true', 'resume uses the real table and pg_notify');
SELECT is((SELECT result FROM outcome WHERE step = 'mark_waiting'), 'true',
    'mark_waiting uses the real hashtext and advisory locks');
SELECT is((SELECT result FROM outcome WHERE step = 'waiting_settled'), 'true',
    'waiting_settled uses the real hashtext and advisory lock');
SELECT is((SELECT result FROM outcome WHERE step = 'clear_waiting'), 'cleared',
    'clear_waiting uses the real hashtext and advisory unlock');
SELECT is((SELECT result FROM outcome WHERE step = 'offer_handoffs'), 'pgtq_handoff_',
    'offer_handoffs uses the real gen_random_uuid, replace, format and table');
SELECT is((SELECT result FROM outcome WHERE step = 'open_handoff'), 'true',
    'open_handoff uses the real pg_locks and advisory lock');
SELECT is((SELECT result FROM outcome WHERE step = 'close_handoff'), 'true',
    'close_handoff uses the real pg_locks and advisory locks');
-- Every public function was called by the attacker above (install_roles is
-- the owner's alone: PUBLIC and the roles may not run it).
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname)
     FROM pg_proc p
     WHERE p.pronamespace = 'pgtq'::regnamespace AND p.proname !~ '^_' AND p.proname <> 'install_roles'
       AND NOT EXISTS (SELECT 1 FROM outcome o WHERE o.step = p.proname OR o.step LIKE p.proname || '\_%')),
    NULL,
    'the hijack test calls every public function');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE queue = 'q'), 1,
    'the refused push wrote nothing; the accepted one wrote one job');
SELECT is((SELECT count(*)::int FROM outcome WHERE result LIKE '%hijacked%'), 3,
    'no pgtq call ran a trap (only the three direct calls did)');

SELECT * FROM finish();
ROLLBACK;
