-- Slot claims (0.39.0): each claim of a slot of a max_running queue gets a
-- number (_job.slot_claim, ascending), and once every running job of the
-- queue holds a slot of its own (_queue.slotted) a pop finds free slots by
-- probing each slot's newest claim (job_slot_holder_idx), not by counting
-- the queue's running jobs (job_running_idx, which beside a held snapshot
-- keeps the entries of every job that ended within its lease).
-- configure_queue clears the mark; a pop that counts and finds every job
-- in a slot of its own sets it again. Every pop holds its queue's settings
-- lock shared. (Beside a held snapshot, in two sessions:
-- tests/py/test_slot_claims.py.)
BEGIN;
SELECT plan(36);
SET LOCAL TIME ZONE 'UTC';

\ir helpers/reads.psql
CREATE TEMP TABLE c AS SELECT * FROM pgtq.pop('s') LIMIT 0;
-- Claim up to n jobs of a queue at `at` with a one-minute lease, keeping them in c.
CREATE FUNCTION pg_temp.take(queue text, n integer, at timestamptz) RETURNS integer LANGUAGE sql AS $$
    WITH got AS (INSERT INTO c SELECT * FROM pgtq.pop($1, 'w', $2, '1 minute', $3) RETURNING id)
    SELECT count(*)::integer FROM got
$$;
-- The slots of a queue's running jobs, in order.
CREATE FUNCTION pg_temp.slots(queue text) RETURNS integer[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(j.slot ORDER BY j.slot), '{}') FROM pgtq._job AS j
    WHERE j.queue = $1 AND j.state = 'running'
$$;
CREATE FUNCTION pg_temp.slotted(queue text) RETURNS boolean LANGUAGE sql AS $$
    SELECT f.slotted FROM pgtq._queue AS f WHERE f.queue = $1
$$;
-- Ends every running job of a queue, as done.
CREATE FUNCTION pg_temp.end_all(queue text, at timestamptz) RETURNS integer LANGUAGE sql AS $$
    SELECT count(*) FILTER (WHERE pgtq.complete(j.id, j.lease, NULL, $2))::integer
    FROM pgtq._job AS j WHERE j.queue = $1 AND j.state = 'running'
$$;

SELECT count(*) FROM pgtq.push_many('s', 't', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 400) AS n),
                      as_of => '2030-01-01 00:00+00');
SELECT pgtq.configure_queue('s', max_running => 4, as_of => '2030-01-01 00:00+00');
SELECT is(pg_temp.slotted('s'), false, 'a queue just given a limit is not marked slotted');
SELECT is(pg_temp.take('s', 2, '2030-01-01 00:00+00'), 2, 'its first pop counts its running jobs (none) and claims');
SELECT is(pg_temp.slotted('s'), true, 'and marks the queue slotted');
SELECT is((SELECT count(*)::integer FROM pgtq._job WHERE queue = 's' AND state = 'running' AND slot_claim IS NOT NULL),
          2, 'each job claimed into a slot gets a claim number');

-- A slot's claims are numbered in their order: the newest is its holder.
SELECT is(pgtq.complete(j.id, j.lease, NULL, '2030-01-01 00:00:01+00'), true, 'the job in slot 1 ends')
FROM pgtq._job AS j WHERE j.queue = 's' AND j.state = 'running' AND j.slot = 1;
SELECT is(pg_temp.take('s', 1, '2030-01-01 00:00:01+00'), 1, 'the next pop claims');
SELECT is(pg_temp.slots('s'), ARRAY[1, 2], 'into the freed slot, the lowest');
SELECT ok((SELECT max(j.slot_claim) FILTER (WHERE j.state = 'running')
                  > max(j.slot_claim) FILTER (WHERE j.state = 'done')
           FROM pgtq._job AS j WHERE j.queue = 's' AND j.slot = 1),
          'with a higher claim number than the job that held it before');
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:01+00'), 2, 'a pop takes the two slots left');
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:01+00'), 0, 'and a full queue hands out nothing');

-- A pop counts the running jobs while that reads few entries.
SELECT pg_temp.end_all('s', '2030-01-01 00:00:02+00');
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_running_idx', $$SELECT pg_temp.take('s', 4, '2030-01-01 00:00:02+00')$$),
              '>', 0::bigint, 'a pop of a slotted queue counts its running jobs');
SELECT is((SELECT probe_until FROM pgtq._queue WHERE queue = 's'), NULL, 'and does not turn to probing');

-- 300 jobs run and end through its 4 slots, and their entries stay (as a
-- held snapshot keeps them: this transaction's own): the next count reads
-- them all, and the queue's pops probe the slots for a minute, reading
-- neither job_running_idx nor the entries of the jobs that ended.
SELECT pg_temp.end_all('s', '2030-01-01 00:00:02+00');
SELECT sum(pg_temp.take('s', 4, '2030-01-01 00:00:02+00') + pg_temp.end_all('s', '2030-01-01 00:00:02+00'))
FROM generate_series(1, 75);
UPDATE pgtq._queue SET probe_until = NULL WHERE queue = 's';
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_running_idx', $$SELECT pg_temp.take('s', 4, '2030-01-01 00:00:03+00')$$),
              '>=', 600::bigint, 'a count then reads the entries of the jobs that ended');
SELECT ok((SELECT probe_until BETWEEN now() + interval '59 seconds' AND clock_timestamp() + interval '1 minute'
           FROM pgtq._queue WHERE queue = 's'),
          'and turns the queue''s pops to probing for a minute');
SELECT pg_temp.end_all('s', '2030-01-01 00:00:03+00');
SELECT is(pg_temp.index_reads('pgtq.job_running_idx', $$SELECT pg_temp.take('s', 4, '2030-01-01 00:00:03+00')$$), 0::bigint,
          'a pop that probes does not count the running jobs');
SELECT is(pg_temp.slots('s'), ARRAY[1, 2, 3, 4], 'and fills its free slots');
SELECT pg_temp.end_all('s', '2030-01-01 00:00:04+00');
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_slot_holder_idx', $$SELECT pg_temp.take('s', 4, '2030-01-01 00:00:04+00')$$),
              '<=', 24::bigint, 'its probes read a few entries a slot, not those of the 300 jobs that ended');

-- A lapsed lease: the probe writes its job off (slot 0, no heartbeat
-- extends it again) and hands its slot on.
UPDATE pgtq._job SET lease_expires_at = '2030-01-01 00:00:30+00' WHERE queue = 's' AND state = 'running' AND slot = 2;
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:31+00'), 1, 'a lapsed lease frees its slot for the next pop');
SELECT is(pg_temp.slots('s'), ARRAY[0, 1, 2, 3, 4], 'which fills it, and writes the lapsed job off');
SELECT is(pgtq.heartbeat(c.id, c.lease, '1 minute', '2030-01-01 00:00:20+00'), false,
          'a heartbeat of the written-off job extends nothing')
FROM c JOIN pgtq._job AS j ON j.id = c.id WHERE j.slot = 0 AND j.state = 'running';

-- A rescued job (tick hands it on) frees its slot.
UPDATE pgtq._job SET lease_expires_at = '2030-01-01 00:00:40+00' WHERE queue = 's' AND state = 'running' AND slot = 3;
SELECT cmp_ok(pgtq.tick('s', '2030-01-01 00:00:41+00'), '>=', 1, 'tick rescues the job in slot 3');
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:41+00'), 1, 'whose slot the next pop fills');

-- A claim rolled back leaves its slot free.
SELECT pg_temp.end_all('s', '2030-01-01 00:00:42+00');
SAVEPOINT claim;
SELECT pg_temp.take('s', 4, '2030-01-01 00:00:42+00');
ROLLBACK TO SAVEPOINT claim;
SELECT is(pg_temp.take('s', 4, '2030-01-01 00:00:42+00'), 4, 'the slots of a claim rolled back are free again');

-- configure_queue clears the mark; with no job over the limit the next pop sets it again.
SELECT pgtq.configure_queue('s', max_running => 6);
SELECT is(pg_temp.slotted('s'), false, 'configure_queue clears the mark');
SELECT is(pg_temp.take('s', 1, '2030-01-01 00:00:43+00'), 1, 'the next pop counts and claims');
SELECT is(pg_temp.slotted('s'), true, 'and marks the queue slotted again');

-- Over a lowered limit the queue stays counted until the jobs over it end.
SELECT pgtq.configure_queue('s', max_running => 2);
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:44+00'), 0, 'five jobs run over a limit of 2: none starts');
SELECT is(pg_temp.slotted('s'), false, 'and the queue is not marked slotted');
SELECT pg_temp.end_all('s', '2030-01-01 00:00:45+00');
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:45+00'), 2, 'once they ended, a pop takes both slots');
SELECT is(pg_temp.slotted('s'), true, 'and marks it slotted');

-- A wide limit: the slots are probed a window at a time, past the filled ones.
SELECT count(*) FROM pgtq.push_many('wide', 't', array_fill('[]'::jsonb, ARRAY[200]), as_of => '2030-01-01 00:00+00');
SELECT pgtq.configure_queue('wide', max_running => 100000);
SELECT is(pg_temp.take('wide', 150, '2030-01-01 00:00+00'), 150, 'a queue of 100,000 slots: 150 jobs take slots');
SELECT is(pgtq.complete(j.id, j.lease, NULL, '2030-01-01 00:00:01+00'), true, 'the job in slot 100 ends')
FROM pgtq._job AS j WHERE j.queue = 'wide' AND j.state = 'running' AND j.slot = 100;
SELECT is(pg_temp.take('wide', 3, '2030-01-01 00:00:01+00'), 3, 'a pop of 3 claims');
SELECT is((SELECT array_agg(j.slot ORDER BY j.slot) FROM pgtq._job AS j
           WHERE j.queue = 'wide' AND j.state = 'running' AND j.started_at = '2030-01-01 00:00:01+00'),
          ARRAY[100, 151, 152], 'into the lowest free slots: 100, then 151 and 152');

-- A job running since before 0.39.0 (a slot, no claim number) keeps the queue counted until it ends.
UPDATE pgtq._job SET slot_claim = NULL WHERE queue = 's' AND state = 'running' AND slot = 1;
UPDATE pgtq._queue SET slotted = false WHERE queue = 's';
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:46+00'), 0, 'a queue with a job claimed before 0.39.0 is counted');
SELECT is(pg_temp.slotted('s'), false, 'and not marked slotted while that job runs');

SELECT * FROM finish();
ROLLBACK;
