-- Probing a max_running queue's slots (0.39.0). A pop counts the queue's
-- running jobs (job_running_idx); beside a held snapshot that count reads
-- the entries of every job that ended within its lease. A count that reads
-- more than 4 x max_running + 256 entries sets _queue.probe_until a minute
-- ahead: the queue's claims are then numbered (_job.slot_claim), and once
-- a costly count finds every running job in a numbered slot of its own
-- (_queue.slotted) the pops probe each slot's newest claim
-- (job_slot_holder_idx) instead of counting. A cheap count after
-- probe_until clears both marks; configure_queue clears them too. Here the
-- entries stay because this transaction ended the jobs itself, as a held
-- snapshot would keep them. (Beside a real held snapshot, and in several
-- sessions: tests/py/test_slot_claims.py.)
BEGIN;
SELECT plan(35);
SET LOCAL TIME ZONE 'UTC';

\ir helpers/reads.psql
\ir helpers/slots.psql
-- The queue's probing marks: 'off', 'numbering' or 'probing'.
CREATE FUNCTION pg_temp.marks(queue text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN f.probe_until IS NULL THEN 'off' WHEN f.slotted THEN 'probing' ELSE 'numbering' END
    FROM pgtq._queue AS f WHERE f.queue = $1
$$;
-- Ends every running job of a queue, as done.
CREATE FUNCTION pg_temp.end_all(queue text, at timestamptz) RETURNS integer LANGUAGE sql AS $$
    SELECT count(*) FILTER (WHERE pgtq.complete(j.id, j.lease, NULL, $2))::integer
    FROM pgtq._job AS j WHERE j.queue = $1 AND j.state = 'running'
$$;

SELECT count(*) FROM pgtq.push_many('s', 't', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 400) AS n),
                                    as_of => '2030-01-01 00:00+00');
SELECT pgtq.configure_queue('s', max_running => 4, as_of => '2030-01-01 00:00+00');

-- Without entries of ended jobs to read, pops count, and nothing is numbered.
SELECT pg_temp.take('s', 1, '2030-01-01 00:00+00');
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_running_idx', $$SELECT pg_temp.take('s', 1, '2030-01-01 00:00+00')$$),
              '>', 0::bigint, 'a pop of a max_running queue counts its running jobs');
SELECT is(pg_temp.marks('s'), 'off', 'a cheap count sets no mark');
SELECT is((SELECT count(*)::integer FROM pgtq._job WHERE queue = 's' AND slot_claim IS NOT NULL), 0,
          'and the claims are not numbered (nothing more to write)');

-- 300 jobs run and end through the 4 slots; their entries stay.
SELECT pg_temp.end_all('s', '2030-01-01 00:00:02+00');
SELECT sum(pg_temp.take('s', 4, '2030-01-01 00:00:02+00') + pg_temp.end_all('s', '2030-01-01 00:00:02+00'))
FROM generate_series(1, 75);
-- (Those pops turned the queue to probing already: as before the snapshot was taken.)
UPDATE pgtq._queue SET probe_until = NULL, slotted = false WHERE queue = 's';
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_running_idx', $$SELECT pg_temp.take('s', 2, '2030-01-01 00:00:03+00')$$),
              '>=', 600::bigint, 'a count now reads the entries of the jobs that ended');
SELECT is(pg_temp.marks('s'), 'numbering', 'and sets probe_until: the claims are numbered from then on');
SELECT ok((SELECT probe_until BETWEEN now() + interval '59 seconds' AND clock_timestamp() + interval '1 minute'
           FROM pgtq._queue WHERE queue = 's'), 'for a minute');
SELECT is((SELECT count(*)::integer FROM pgtq._job WHERE queue = 's' AND state = 'running' AND slot_claim IS NOT NULL),
          2, 'the claims of the pop that set it are numbered');
SELECT is(pg_temp.take('s', 1, '2030-01-01 00:00:03+00'), 1, 'the next costly count, every running job numbered');
SELECT is(pg_temp.marks('s'), 'probing', 'marks the queue slotted: its pops probe');
SELECT pg_temp.end_all('s', '2030-01-01 00:00:04+00');
SELECT is(pg_temp.index_reads('pgtq.job_running_idx', $$SELECT pg_temp.take('s', 4, '2030-01-01 00:00:04+00')$$), 0::bigint,
          'a pop that probes does not count the running jobs');
SELECT is(pg_temp.slots('s'), ARRAY[1, 2, 3, 4], 'and fills the free slots, from the lowest');
SELECT pg_temp.end_all('s', '2030-01-01 00:00:05+00');
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_slot_holder_idx', $$SELECT pg_temp.take('s', 4, '2030-01-01 00:00:05+00')$$),
              '<=', 24::bigint, 'its probes read a few entries a slot, not those of the jobs that ended');

-- A slot's claims are numbered in their order: the newest is its holder.
SELECT is(pgtq.complete(j.id, j.lease, NULL, '2030-01-01 00:00:06+00'), true, 'the job in slot 1 ends')
FROM pgtq._job AS j WHERE j.queue = 's' AND j.state = 'running' AND j.slot = 1;
SELECT is(pg_temp.take('s', 1, '2030-01-01 00:00:06+00'), 1, 'the next pop claims into its slot');
SELECT ok((SELECT max(j.slot_claim) FILTER (WHERE j.state = 'running')
                  > max(j.slot_claim) FILTER (WHERE j.state = 'done')
           FROM pgtq._job AS j WHERE j.queue = 's' AND j.slot = 1),
          'with a higher claim number than the jobs that held it before');
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:06+00'), 0, 'a full queue hands out nothing');

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

-- configure_queue clears the marks; the next costly counts set them again.
SELECT pgtq.configure_queue('s', max_running => 6);
SELECT is(pg_temp.marks('s'), 'off', 'configure_queue clears the marks');
SELECT is(pg_temp.take('s', 1, '2030-01-01 00:00:43+00'), 1, 'the next pop counts (costly) and claims');
SELECT is(pg_temp.marks('s'), 'numbering', 'and numbers the claims: four jobs claimed before run unnumbered');

-- Over a lowered limit the queue is counted until the jobs over it end.
SELECT pgtq.configure_queue('s', max_running => 2);
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:44+00'), 0, 'five jobs run over a limit of 2: none starts');
SELECT is(pg_temp.marks('s'), 'numbering', 'and the queue is not probed');
SELECT pg_temp.end_all('s', '2030-01-01 00:00:45+00');
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:45+00'), 2, 'once they ended, a pop takes both slots');
SELECT is(pg_temp.marks('s'), 'probing', 'and the queue is probed');

-- A cheap count after probe_until clears the marks.
SELECT count(*) FROM pgtq.push_many('quiet', 't', array_fill('[]'::jsonb, ARRAY[4]));
SELECT pgtq.configure_queue('quiet', max_running => 2);
UPDATE pgtq._queue SET probe_until = now() - interval '1 second', slotted = true WHERE queue = 'quiet';
SELECT is(pg_temp.take('quiet', 1, now()), 1, 'a pop after probe_until counts, cheaply');
SELECT is(pg_temp.marks('quiet'), 'off', 'and clears the marks');

-- A wide limit, probed: the slots are probed a window at a time, past the filled ones.
SELECT count(*) FROM pgtq.push_many('wide', 't', array_fill('[]'::jsonb, ARRAY[200]), as_of => '2030-01-01 00:00+00');
SELECT pgtq.configure_queue('wide', max_running => 100000);
UPDATE pgtq._queue SET probe_until = 'infinity' WHERE queue = 'wide';  -- numbering
SELECT is(pg_temp.take('wide', 150, '2030-01-01 00:00+00'), 150, 'a queue of 100,000 slots: 150 jobs take slots');
UPDATE pgtq._queue SET slotted = true WHERE queue = 'wide';  -- every running job numbered: probing
SELECT is(pgtq.complete(j.id, j.lease, NULL, '2030-01-01 00:00:01+00'), true, 'the job in slot 100 ends')
FROM pgtq._job AS j WHERE j.queue = 'wide' AND j.state = 'running' AND j.slot = 100;
SELECT is(pg_temp.take('wide', 3, '2030-01-01 00:00:01+00'), 3, 'a pop of 3 claims');
SELECT is((SELECT array_agg(j.slot ORDER BY j.slot) FROM pgtq._job AS j
           WHERE j.queue = 'wide' AND j.state = 'running' AND j.started_at = '2030-01-01 00:00:01+00'),
          ARRAY[100, 151, 152], 'into the lowest free slots: 100, then 151 and 152');

SELECT * FROM finish();
ROLLBACK;
