-- Writing off lapsed jobs (0.11.0): a pop that counts a running job whose
-- lease ran out as gone (its slot of a max_running queue, or its lock key,
-- free for another job) first writes the job off (slot 0), and no heartbeat
-- extends the lease of a job written off, nor a lapsed lease of a job with
-- a lock key; tick still hands the job on, and its worker may still end it
-- by its lease. The clock is the calls' as_of: jobs are claimed at 00:00
-- with a one-minute lease. (A heartbeat and a pop of two sessions at once:
-- tests/py/test_flow_control.py.)
BEGIN;
SELECT plan(19);
SET LOCAL TIME ZONE 'UTC';

CREATE TEMP TABLE c AS SELECT * FROM pgtq.pop('s') LIMIT 0;
-- Claim up to n jobs of a queue at `at` with a one-minute lease, keeping them in c.
CREATE FUNCTION pg_temp.take(queue text, n integer, at timestamptz) RETURNS integer LANGUAGE sql AS $$
    WITH got AS (INSERT INTO c SELECT * FROM pgtq.pop($1, 'w', $2, '1 minute', $3) RETURNING id)
    SELECT count(*)::integer FROM got
$$;
-- The slot of the first job claimed of a queue.
CREATE FUNCTION pg_temp.first_slot(queue text) RETURNS integer LANGUAGE sql AS $$
    SELECT j.slot FROM pgtq._job AS j WHERE j.id = (SELECT min(c.id) FROM c WHERE c.queue = $1)
$$;
-- heartbeat of the first job claimed of a queue at `at`, for ten minutes.
CREATE FUNCTION pg_temp.beat(queue text, at timestamptz) RETURNS boolean LANGUAGE sql AS $$
    SELECT pgtq.heartbeat(c.id, c.lease, '10 minutes', $2) FROM c WHERE c.queue = $1 ORDER BY c.id LIMIT 1
$$;

-- A max_running queue, claimed by slots.
SELECT pgtq.push('lim', 't', as_of => '2030-01-01 00:00+00') FROM generate_series(1, 3);
SELECT pgtq.configure_queue('lim', max_running => 1);
SELECT pg_temp.take('lim', 1, '2030-01-01 00:00+00');
SELECT is(pg_temp.take('lim', 1, '2030-01-01 00:00:30+00'), 0, 'a live lease holds the only slot');
SELECT is(pg_temp.first_slot('lim'), 1, 'and a pop leaves that job as it is');
SELECT is(pg_temp.take('lim', 1, '2030-01-01 00:02+00'), 1, 'once the lease ran out, the slot goes to the next job');
SELECT is(pg_temp.first_slot('lim'), 0, 'after the pop wrote the lapsed job off');
SELECT is(pg_temp.beat('lim', '2030-01-01 00:00:45+00'), false,
    'a heartbeat whose as_of came before the lapse no longer brings the job back beside the new one');
SELECT is((SELECT array_agg(h.held) FROM c, pgtq.heartbeat_many(ARRAY[c.id], ARRAY[c.lease], '10 minutes',
                                                               '2030-01-01 00:00:45+00') AS h
           WHERE c.id = (SELECT min(id) FROM c WHERE queue = 'lim')),
    ARRAY[false], 'nor does heartbeat_many');
SELECT is((SELECT count(*) FROM pgtq._job AS j
           WHERE j.queue = 'lim' AND j.state = 'running' AND j.lease_expires_at > '2030-01-01 00:02+00'),
    1::bigint, 'one job runs with a live lease: the limit holds');
SELECT is((SELECT pgtq.complete(c.id, c.lease, as_of => '2030-01-01 00:02:10+00') FROM c
           WHERE c.id = (SELECT min(id) FROM c WHERE queue = 'lim')),
    true, 'its worker may still end the job written off, by its lease');
SELECT is(pg_temp.take('lim', 1, '2030-01-01 00:02:20+00'), 0, 'which frees nothing: the new job holds the slot');

-- tick hands a job written off on, as any job whose lease ran out.
SELECT pgtq.push('lim-tick', 't', as_of => '2030-01-01 00:00+00');
SELECT pgtq.configure_queue('lim-tick', max_running => 1);
SELECT pg_temp.take('lim-tick', 1, '2030-01-01 00:00+00');
SELECT is(pg_temp.take('lim-tick', 1, '2030-01-01 00:02+00'), 0, 'a pop with nothing ready claims nothing');
SELECT is(pg_temp.first_slot('lim-tick'), 0, 'but writes the lapsed job off');
SELECT pgtq.tick(as_of => '2030-01-01 00:02+00');
SELECT isnt((SELECT j.state::text FROM pgtq._job AS j WHERE j.queue = 'lim-tick'), 'running',
    'and tick rescues it');

-- A max_running queue with a rate limit: pops count under the queue's row lock.
SELECT pgtq.push('rated', 't', as_of => '2030-01-01 00:00+00') FROM generate_series(1, 2);
SELECT pgtq.configure_queue('rated', max_running => 1, rate_limit => 100, rate_period => '1 minute');
SELECT pg_temp.take('rated', 1, '2030-01-01 00:00+00');
SELECT is(pg_temp.take('rated', 1, '2030-01-01 00:02+00'), 1, 'a rate-limited pop takes a lapsed job''s place');
SELECT is(pg_temp.beat('rated', '2030-01-01 00:00:45+00'), false, 'after writing that job off');

-- A lock key, in a queue without limits.
SELECT pgtq.push('keyed', 't', lock_key => 'k', as_of => '2030-01-01 00:00+00') FROM generate_series(1, 2);
SELECT pg_temp.take('keyed', 1, '2030-01-01 00:00+00');
SELECT is(pg_temp.take('keyed', 1, '2030-01-01 00:00:30+00'), 0, 'a live lease holds the key');
SELECT is(pg_temp.take('keyed', 1, '2030-01-01 00:02+00'), 1, 'once it ran out, the key goes to the next job');
SELECT is(pg_temp.beat('keyed', '2030-01-01 00:00:45+00'), false, 'and the lapsed job, written off, stays lapsed');

SELECT pgtq.push('keyed-beat', 't', lock_key => 'k2', as_of => '2030-01-01 00:00+00');
SELECT pg_temp.take('keyed-beat', 1, '2030-01-01 00:00+00');
SELECT is(pg_temp.beat('keyed-beat', '2030-01-01 00:05+00'), false,
    'a heartbeat does not bring back a lapsed lease of a job with a lock key, even before any pop looked');

SELECT is_empty('SELECT * FROM pgtq.job_rule_breaks', 'no row breaks a bookkeeping rule');

SELECT * FROM finish();
ROLLBACK;
