-- Slots (0.9.0): a pop of a queue whose only control is max_running claims
-- into free slots 1..max_running whose advisory locks it holds until its
-- commit, and each claimed job records its slot; a freed slot is filled
-- again. Jobs running without a distinct slot in range (running at the
-- upgrade, or over a lowered limit) make the pop count under the queue's
-- row lock until they end. Paused or rate-limited queues, and queues with
-- no control, claim without slots. (Two sessions at once:
-- tests/py/test_flow_control.py.)
BEGIN;
SELECT plan(25);
SET LOCAL TIME ZONE 'UTC';

\ir helpers/slots.psql
-- The slot locks (second key 1 and up), the settings lock (0) and the claims lock (-1, 0.39.0)
-- of a queue this session holds, in order.
CREATE FUNCTION pg_temp.held_locks(queue text) RETURNS text[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(k.second_key || ' ' || k.mode ORDER BY k.second_key, k.mode), '{}')
    FROM (SELECT (l.objid::bigint - CASE WHEN l.objid::bigint > 2147483647 THEN 4294967296 ELSE 0 END)
                     AS second_key,
                 l.mode
          FROM pg_locks AS l
          WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.objsubid = 2
            AND l.classid = hashtext('pgtq slots of ' || $1)::oid) AS k
$$;

SELECT pgtq.push('s', 't' || i, as_of => '2030-01-01 00:00+00') FROM generate_series(1, 12) AS i;
SELECT pgtq.configure_queue('s', max_running => 4, as_of => '2030-01-01 00:00+00');

SELECT is(pg_temp.take('s', 3, '2030-01-01 00:00+00'), 3, 'a pop of a max_running queue claims');
SELECT is(pg_temp.slots('s'), ARRAY[1, 2, 3], 'and each claimed job holds its own slot, from the lowest free');
SELECT is(pg_temp.held_locks('s'),
    ARRAY['-1 ExclusiveLock', '-1 ShareLock', '0 ExclusiveLock', '0 ShareLock', '1 ExclusiveLock',
          '2 ExclusiveLock', '3 ExclusiveLock'],
    'until the transaction ends, configure_queue holds the claims'' and the settings'' locks, and the pop '
    'holds both shared and holds its slots'' locks');
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:01+00'), 1, 'the next pop takes the one slot left');
SELECT is(pg_temp.slots('s'), ARRAY[1, 2, 3, 4], 'slot 4');
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:01+00'), 0, 'a full queue hands out nothing');

SELECT is(pgtq.complete(j.id, j.lease, NULL, '2030-01-01 00:00:02+00'), true, 'the job in slot 2 ends')
FROM pgtq._job AS j WHERE j.queue = 's' AND j.state = 'running' AND j.slot = 2;
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:02+00'), 1, 'its slot is free at once');
SELECT is(pg_temp.slots('s'), ARRAY[1, 2, 3, 4], 'and filled again');

-- A lease that ran out frees its slot, before tick: the slot is filled again
-- while the expired job still counts as running in its row.
UPDATE pgtq._job SET lease_expires_at = '2030-01-01 00:00:30+00' WHERE queue = 's' AND slot = 3 AND state = 'running';
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:31+00'), 1, 'an expired lease frees its slot for the next pop');
SELECT is((SELECT count(*)::integer FROM pgtq._job
           WHERE queue = 's' AND state = 'running' AND slot = 3 AND lease_expires_at > '2030-01-01 00:00:31+00'),
    1, 'one live job holds slot 3');

-- A lowered limit: jobs in slots over it count, and the pop counts under the row lock.
SELECT pgtq.configure_queue('s', max_running => 2, as_of => '2030-01-01 00:00:40+00');
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:40+00'), 0, 'none starts over a lowered limit');
SELECT is(pgtq.complete(j.id, j.lease, NULL, '2030-01-01 00:00:41+00'), true, 'a job ends') FROM pgtq._job AS j
WHERE j.queue = 's' AND j.state = 'running' AND j.lease_expires_at > '2030-01-01 00:00:41+00' AND j.slot = 1;
SELECT is(pgtq.complete(j.id, j.lease, NULL, '2030-01-01 00:00:41+00'), true, 'and another') FROM pgtq._job AS j
WHERE j.queue = 's' AND j.state = 'running' AND j.lease_expires_at > '2030-01-01 00:00:41+00' AND j.slot = 2;
SELECT is(pg_temp.take('s', 5, '2030-01-01 00:00:41+00'), 0,
    'two still run (slots 3 and 4, over the limit of 2): no room');

-- Jobs that run without a slot (claimed before 0.9.0): the pop counts under the row lock, and gives its claims slots.
-- (As the upgrade to 0.39.0 leaves them: no claim number, and the queue not marked slotted.)
SELECT pgtq.push('u', 'u' || i, as_of => '2030-01-01 00:00+00') FROM generate_series(1, 6) AS i;
SELECT pgtq.configure_queue('u', max_running => 3, as_of => '2030-01-01 00:00+00');
SELECT pg_temp.take('u', 1, '2030-01-01 00:00+00');
UPDATE pgtq._job SET slot = NULL, slot_claim = NULL WHERE queue = 'u' AND state = 'running';
UPDATE pgtq._queue SET slotted = false WHERE queue = 'u';
SELECT is(pg_temp.take('u', 5, '2030-01-01 00:00:01+00'), 2, 'a job without a slot counts: 2 of 3 slots left');
SELECT isnt((SELECT f.xmax::text FROM pgtq._queue AS f WHERE f.queue = 'u'), '0',
    'and the pop counted under the queue''s row lock');
SELECT is(pg_temp.slots('u'), ARRAY[1, 2, NULL], 'the claims took slots');

-- No slot without max_running alone: an unlimited queue, and a rate-limited one.
SELECT pgtq.push('free', 'f'), pgtq.push('rated', 'r');
SELECT pgtq.configure_queue('rated', max_running => 5, rate_limit => 10, rate_period => '1 minute');
SELECT is(pg_temp.take('free', 1, now()) + pg_temp.take('rated', 1, now()), 2, 'unlimited and rate-limited pops claim');
SELECT is(pg_temp.slots('free') || pg_temp.slots('rated'), ARRAY[NULL, NULL]::integer[], 'without slots');

-- A lease that ran out comes back to life by heartbeat only where no limit counts it:
-- in a max_running queue its slot may be another job's by then.
SELECT pgtq.push('beat-limited', 'b', as_of => '2030-01-01 00:00+00'), pgtq.push('beat-free', 'b', as_of => '2030-01-01 00:00+00');
SELECT pgtq.configure_queue('beat-limited', max_running => 1);
SELECT pg_temp.take('beat-limited', 1, '2030-01-01 00:00+00'), pg_temp.take('beat-free', 1, '2030-01-01 00:00+00');
SELECT is(pgtq.heartbeat(c.id, c.lease, '1 minute', '2030-01-01 00:00:30+00'), true,
    'a live lease of a limited queue is extended') FROM c WHERE c.queue = 'beat-limited';
SELECT is(pgtq.heartbeat(c.id, c.lease, '1 minute', '2030-01-01 00:05+00'), false,
    'one that ran out is not: the worker learns it lost the job') FROM c WHERE c.queue = 'beat-limited';
SELECT is((SELECT array_agg(h.held) FROM pgtq.heartbeat_many(ARRAY[c.id], ARRAY[c.lease], '1 minute', '2030-01-01 00:05+00') AS h),
    ARRAY[false], 'nor by heartbeat_many') FROM c WHERE c.queue = 'beat-limited';
SELECT is(pgtq.heartbeat(c.id, c.lease, '1 minute', '2030-01-01 00:05+00'), true,
    'in a queue with no limit, a lease that ran out comes back until tick hands the job on')
FROM c WHERE c.queue = 'beat-free';

-- At most 256 slots a call: the locks one pop holds stay few.
SELECT pgtq.push_many('wide', 'w', array_fill('[]'::jsonb, ARRAY[300]));
SELECT pgtq.configure_queue('wide', max_running => 1000);
SELECT is(pg_temp.take('wide', 300, now()), 256, 'a pop of a max_running queue claims at most 256 jobs');

SELECT * FROM finish();
ROLLBACK;
