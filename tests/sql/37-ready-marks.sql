-- Ready marks (0.18.0): tick sets, per queue that runs jobs, the priority
-- of its first ready jobs and an id below which none of them is; pop seeks
-- there. Each path that turns an existing job ready records it
-- (_lower_marks), so the job is claimed in its order at once; a mark that
-- is wrong (set here by hand) is passed over only until the next tick,
-- and a stale one not at all. How much the seek saves under a held
-- snapshot: bench/ (sustained, held snapshot).
BEGIN;
SELECT plan(31);
\ir helpers/reads.psql

-- The seek reads job_ready_idx from the mark, whatever the statistics
-- say: here every row was ready when they were taken, which made
-- job_pkey look as good for `id >= mark` (it steps over every version of
-- every job from the mark on).
SELECT count(*) FROM pgtq.push_many('seek', 'job', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 3000) AS n));
ANALYZE pgtq._job;
SELECT count(*) FROM pgtq.pop('seek', 'w', 1);
SELECT pgtq.tick('seek');
SELECT pgtq.tick('seek');
SELECT count(*) FROM pgtq.pop('seek', 'w', 2000);
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_pkey', $$SELECT count(*) FROM pgtq.pop('seek', 'w', 10)$$), '<=', 12::bigint,
    'a pop that seeks from a mark reads job_pkey only for the jobs it claims');

-- Four jobs of queue rm; the first runs, so the queue is busy.
CREATE TEMP TABLE rm AS
SELECT pgtq.push('rm', 't' || i) AS id, i FROM generate_series(1, 4) AS i;
CREATE TEMP TABLE first_claim AS SELECT * FROM pgtq.pop('rm', 'w', 1);
SELECT pgtq.tick('rm');
SELECT is((SELECT row(m.priority, m.low_id, m.next_low_id)::text FROM pgtq._ready_mark AS m WHERE m.queue = 'rm'),
    (SELECT row(0, 0, min(id))::text FROM rm WHERE i > 1),
    'the first tick of a busy queue makes a mark that seeks nothing yet, and keeps what it saw for the next');
SELECT pgtq.tick('rm');
SELECT is((SELECT m.low_id FROM pgtq._ready_mark AS m WHERE m.queue = 'rm'), (SELECT id FROM rm WHERE i = 2),
    'the next tick sets it to the first ready job');

-- A queue of three jobs whose first runs, ticked twice: its mark is at
-- the second. Returns the running job.
CREATE FUNCTION pg_temp.busy(queue text)
RETURNS pgtq.claimed_job
LANGUAGE plpgsql
AS $$
DECLARE
    claimed pgtq.claimed_job;
BEGIN
    PERFORM pgtq.push(queue, 't' || i) FROM generate_series(1, 3) AS i;
    SELECT * INTO claimed FROM pgtq.pop(queue, 'w', 1);
    PERFORM pgtq.tick(queue);
    PERFORM pgtq.tick(queue);
    RETURN claimed;
END
$$;

-- Release: the job goes back below the mark and is recorded for it.
CREATE TEMP TABLE lr AS SELECT * FROM pg_temp.busy('lr');
SELECT ok(pgtq.release((SELECT id FROM lr), (SELECT lease FROM lr)), 'a job is released');
SELECT is((SELECT array_agg(l.id) FROM pgtq._ready_mark_low AS l WHERE l.queue = 'lr'),
    ARRAY[(SELECT id FROM lr)], 'the released job is recorded below the mark');
SELECT is((SELECT id FROM pgtq.pop('lr', 'w', 1)), (SELECT id FROM lr), 'and pop claims it first, in push order');
SELECT pgtq.tick('lr');
SELECT is((SELECT row(m.low_id, (SELECT count(*) FROM pgtq._ready_mark_low AS l WHERE l.queue = 'lr'))::text
           FROM pgtq._ready_mark AS m WHERE m.queue = 'lr'),
    (SELECT row(id, 0)::text FROM pgtq._job WHERE queue = 'lr' AND state = 'ready' ORDER BY id LIMIT 1),
    'the next tick folds the records into the mark and deletes them');

-- fail with a retry due at once: the same.
CREATE TEMP TABLE lf AS SELECT * FROM pg_temp.busy('lf');
SELECT is(pgtq.fail((SELECT id FROM lf), (SELECT lease FROM lf), 'boom', retry_in => '0 seconds'),
    'ready', 'a failure retried at once makes the job ready');
SELECT is((SELECT id FROM pgtq.pop('lf', 'w', 1)), (SELECT id FROM lf), 'and pop claims it first');

-- retry of a failed job.
CREATE TEMP TABLE lt AS SELECT * FROM pg_temp.busy('lt');
SELECT pgtq.abort((SELECT id FROM lt), (SELECT lease FROM lt), 'given up');
SELECT ok(pgtq.retry((SELECT id FROM lt)), 'a failed job is retried');
SELECT is((SELECT id FROM pgtq.pop('lt', 'w', 1)), (SELECT id FROM lt), 'and pop claims it first');

-- A mark set too high (by hand here; by a push whose transaction stayed
-- open across two ticks in life) is passed over until the next tick.
CREATE TEMP TABLE ready_now AS
SELECT id FROM pgtq._job WHERE queue = 'rm' AND state = 'ready' ORDER BY id;
DELETE FROM pgtq._ready_mark_low WHERE queue = 'rm';
UPDATE pgtq._ready_mark SET low_id = (SELECT max(id) FROM ready_now), next_low_id = (SELECT max(id) FROM ready_now),
                            set_at = clock_timestamp()
WHERE queue = 'rm';
SELECT is((SELECT array_agg(id) FROM pgtq.pop('rm', 'w', 10)), ARRAY[(SELECT max(id) FROM ready_now)],
    'pop seeks from a fresh mark: jobs below it are passed over');
SELECT pgtq.tick('rm');
SELECT is((SELECT array_agg(id ORDER BY id) FROM pgtq.pop('rm', 'w', 10)),
    (SELECT array_agg(id ORDER BY id) FROM ready_now WHERE id < (SELECT max(id) FROM ready_now)),
    'the next tick sets the mark afresh, and pop claims them');
UPDATE pgtq._ready_mark SET low_id = 9223372036854775807, set_at = clock_timestamp() - interval '3 minutes'
WHERE queue = 'rm';
SELECT pgtq.push('rm', 'late');
SELECT is((SELECT count(*)::integer FROM pgtq.pop('rm', 'w', 10)), 1,
    'a mark older than two minutes (ticks stopped) is not used');

-- Priorities: a job above the mark's priority is claimed first; the
-- lower priorities follow the mark's in the same pop.
CREATE TEMP TABLE pr AS
SELECT pgtq.push('pr', 't', priority => p) AS id, p FROM unnest(ARRAY[0, 0, 5, 5, 0]) AS p;
CREATE TEMP TABLE pr_first AS SELECT * FROM pgtq.pop('pr', 'w', 1);
SELECT pgtq.tick('pr');
SELECT pgtq.tick('pr');
SELECT is((SELECT row(m.priority, m.low_id)::text FROM pgtq._ready_mark AS m WHERE m.queue = 'pr'),
    (SELECT row(5, max(id))::text FROM pr WHERE p = 5),
    'the mark is in the highest priority that has ready jobs');
SELECT pgtq.push('pr', 'urgent', priority => 9);
SELECT is((SELECT array_agg(c.priority ORDER BY c.priority DESC, c.id) FROM pgtq.pop('pr', 'w', 3) AS c),
    ARRAY[9, 5, 0], 'a job above the mark''s priority comes first, then the mark''s, then the ones below');
SELECT pgtq.tick('pr');
SELECT is((SELECT row(m.priority, m.low_id)::text FROM pgtq._ready_mark AS m WHERE m.queue = 'pr'),
    '(0,0)', 'when the first priority changes, the mark seeks nothing until the next tick');
SELECT is((SELECT array_agg(c.id ORDER BY c.id) FROM pgtq.pop('pr', 'w', 10) AS c),
    (SELECT array_agg(id ORDER BY id) FROM pr WHERE p = 0 AND id > (SELECT min(id) FROM pr)),
    'and pop takes every ready job');

-- A replacing push of a job key: the kept id goes back below the mark.
SELECT pgtq.push('rk', 'keyed', run_at => now() + interval '1 hour', job_key => 'k');
SELECT pgtq.push('rk', 't' || i) FROM generate_series(1, 3) AS i;
SELECT pgtq.pop('rk', 'w', 1);
SELECT pgtq.tick('rk');
SELECT pgtq.tick('rk');
SELECT pgtq.push('rk', 'keyed', job_key => 'k', job_key_mode => 'replace');
SELECT is((SELECT c.task FROM pgtq.pop('rk', 'w', 1) AS c), 'keyed',
    'a scheduled keyed job replaced by a ready one is claimed in its order');

-- Promotion: a scheduled job due now, older than the ready ones.
SELECT pgtq.push('sp', 'later', run_at => now() + interval '1 minute');
SELECT pgtq.push('sp', 't' || i) FROM generate_series(1, 3) AS i;
SELECT pgtq.pop('sp', 'w', 1);
SELECT pgtq.tick('sp');
SELECT pgtq.tick('sp');
SELECT pgtq.tick('sp', now() + interval '2 minutes');
SELECT is((SELECT c.task FROM pgtq.pop('sp', 'w', 1) AS c), 'later',
    'a promoted job is claimed in its order');

-- What _lower_marks records, and what it leaves out (0.25.0: a row per
-- queue and priority, whatever the mark, so a tick's look from its floor
-- never misses a job made ready below it).
SELECT pgtq._lower_marks(ARRAY['sp', 'sp', 'sp', 'sp', 'nomark'], ARRAY[0, 3, 0, 0, 0],
                         ARRAY[2, 1, 1, 3, 1]::bigint[], ARRAY[NULL, NULL, 'lk', NULL, NULL]);
SELECT is((SELECT array_agg(row(l.queue, l.priority, l.id)::text ORDER BY l.queue, l.priority)
           FROM pgtq._ready_mark_low AS l WHERE l.queue IN ('sp', 'nomark')),
    ARRAY['(nomark,0,1)', '(sp,0,2)', '(sp,3,1)'],
    'one row per queue and priority for its lowest job without a lock key, with a mark or without');
SELECT pgtq.tick('nomark');
SELECT is((SELECT count(*)::integer FROM pgtq._ready_mark_low AS l WHERE l.queue = 'nomark'), 0,
    'a tick deletes the rows of a queue without a mark');

-- An idle queue keeps its mark while it is ticked by name (0.27.0: the
-- mark keeps the floor of its rescue); tick() with no queue makes none
-- for it, and drops it after ten idle minutes.
SELECT pgtq.push('idle', 't');
SELECT pgtq.complete(c.id, c.lease) FROM pgtq.pop('idle', 'w', 1) AS c;
SELECT pgtq.tick('idle');
SELECT is((SELECT count(*)::integer FROM pgtq._ready_mark WHERE queue = 'idle' AND idle_since IS NOT NULL), 1,
    'a queue with no ready and no running job keeps a mark when ticked by name, idle since that tick');
SELECT pgtq.tick();
SELECT is((SELECT array_agg(queue ORDER BY queue) FROM pgtq._ready_mark),
    ARRAY['idle', 'lf', 'lr', 'lt', 'nomark', 'pr', 'rk', 'rm', 'seek', 'sp'],
    'tick() keeps the marks of the busy queues, and of the idle ones for ten minutes');
UPDATE pgtq._ready_mark SET idle_since = idle_since - interval '10 minutes' WHERE queue = 'idle';
SELECT pgtq.tick();
SELECT is((SELECT array_agg(queue ORDER BY queue) FROM pgtq._ready_mark),
    ARRAY['lf', 'lr', 'lt', 'nomark', 'pr', 'rk', 'rm', 'seek', 'sp'],
    'tick() drops the mark of a queue idle for ten minutes');
SELECT pgtq.tick('idle2');
SELECT is((SELECT count(*)::integer FROM pgtq._ready_mark WHERE queue = 'idle2'), 1,
    'a queue never used gets a mark when a worker ticks it by name');
DELETE FROM pgtq._ready_mark WHERE queue IN ('nomark', 'idle2');

-- (0.21.0) A queue with ready jobs with a lock key gets no look: pop
-- takes the keyed path for it and reads no mark, and the look for its
-- first ready job without a key would step over every keyed one. Its mark
-- seeks nothing, and keeps the rescue's floor (0.28.0: it was dropped).
SELECT pg_temp.busy('km');
SELECT ok(EXISTS (SELECT 1 FROM pgtq._ready_mark WHERE queue = 'km'), 'a busy queue has a mark');
SELECT count(*) FROM pgtq.pop('km', 'w', 2);  -- no ready job without a key is left
SELECT count(*) FROM pgtq.push_many('km', 'keyed', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 2000) AS n),
                                    lock_keys => ARRAY(SELECT 'key-' || n FROM generate_series(1, 2000) AS n));
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_ready_idx', $$SELECT pgtq.tick('km')$$), '<=', 2::bigint,
    'a tick of a queue with 2,000 ready keyed jobs reads none of them');
SELECT is((SELECT array_agg(m.low_id) FROM pgtq._ready_mark AS m WHERE m.queue = 'km'), ARRAY[0::bigint],
    'and its mark seeks nothing');
SELECT ok((SELECT m.rescued_to > '-infinity' FROM pgtq._ready_mark AS m WHERE m.queue = 'km'),
    'and keeps the rescue''s floor');
SELECT count(*) FROM pgtq.pop('km', 'w', 2100);
SELECT pgtq.tick('km');
SELECT is((SELECT m.low_id FROM pgtq._ready_mark AS m WHERE m.queue = 'km'), 0::bigint,
    'once no keyed job is ready, the next tick makes a mark anew, seeking nothing at first');

SELECT * FROM finish();
ROLLBACK;
