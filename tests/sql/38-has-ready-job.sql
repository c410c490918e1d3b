-- _has_ready_job (0.35.0): whether a queue has a ready job without a lock
-- key, read from the queue's ready mark as pop seeks (a job above the
-- mark's priority, one of its priority from the mark on, one below it),
-- from the queue's first ready entry when it has no fresh mark. At each
-- end of a job of a max_running queue, _announce_freed asks it whether the
-- freed slot has a job to run; until 0.34.0 it read the queue's ready jobs
-- from the first entry of job_ready_idx, past the entries of every job
-- claimed since the table's last vacuum.
BEGIN;
SELECT plan(14);
\ir helpers/reads.psql

-- Without a mark.
SELECT is(pgtq._has_ready_job('h'), false, 'a queue never used has no ready job');
SELECT pgtq.push('h', 't' || i) FROM generate_series(1, 2) AS i;
SELECT is(pgtq._has_ready_job('h'), true, 'a queue with ready jobs and no mark has one');
SELECT count(*) FROM pgtq.pop('h', 'w', 2);
SELECT is(pgtq._has_ready_job('h'), false, 'and none once they are claimed');
SELECT pgtq.push('h', 'keyed', lock_key => 'k');
SELECT is(pgtq._has_ready_job('h'), false, 'a ready job with a lock key does not count');

-- With a mark: five jobs, the first claimed, two ticks; the mark is at
-- the second.
CREATE TEMP TABLE hm AS SELECT pgtq.push('hm', 't' || i) AS id, i FROM generate_series(1, 5) AS i;
CREATE TEMP TABLE hm_first AS SELECT * FROM pgtq.pop('hm', 'w', 1);
SELECT pgtq.tick('hm');
SELECT pgtq.tick('hm');
SELECT is((SELECT m.low_id FROM pgtq._ready_mark AS m WHERE m.queue = 'hm'), (SELECT id FROM hm WHERE i = 2),
    'the queue''s mark is at its second job');
SELECT is(pgtq._has_ready_job('hm'), true, 'jobs from the mark on: it has one');
SELECT count(*) FROM pgtq.pop('hm', 'w', 4);
SELECT is(pgtq._has_ready_job('hm'), false, 'all claimed: none');
SELECT pgtq.push('hm', 'urgent', priority => 9);
SELECT is(pgtq._has_ready_job('hm'), true, 'a job above the mark''s priority counts');
SELECT count(*) FROM pgtq.pop('hm', 'w', 1);
SELECT pgtq.push('hm', 'later', priority => -1);
SELECT is(pgtq._has_ready_job('hm'), true, 'so does one below it');
SELECT count(*) FROM pgtq.pop('hm', 'w', 1);
SELECT is(pgtq._has_ready_job('hm'), false, 'all claimed again: none');
SELECT ok(pgtq.release((SELECT id FROM hm_first), (SELECT lease FROM hm_first)), 'the first job is released');
SELECT is(pgtq._has_ready_job('hm'), true,
    'a job made ready below the mark counts (recorded for the mark, as pop reads it)');
UPDATE pgtq._ready_mark SET set_at = clock_timestamp() - interval '3 minutes' WHERE queue = 'hm';
SELECT is(pgtq._has_ready_job('hm'), true, 'and with a stale mark, read from the first entry');

-- What an end of a job of a max_running queue reads: 2,000 jobs claimed
-- (their entries stay in job_ready_idx until a vacuum, and in this
-- transaction none can be marked dead), then two ticks move the mark past
-- them. The look for a ready job starts at the mark.
SELECT count(*) FROM pgtq.push_many('big', 'job', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 3000) AS n));
SELECT count(*) FROM pgtq.pop('big', 'w', 2000);
SELECT pgtq.tick('big');
SELECT pgtq.tick('big');
SELECT pgtq.configure_queue('big', max_running => 5000);
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_ready_idx', $$SELECT pgtq._announce_freed(ARRAY['big'], NULL)$$),
    '<=', 5::bigint, 'the look of an end of a job of a max_running queue reads from the mark, not past 2,000 claimed jobs');

SELECT * FROM finish();
ROLLBACK;
