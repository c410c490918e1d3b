-- The hot calls run generic plans (0.5.0), planned once per session:
-- until 0.4.0 pop's claim and the announce step of every job end were
-- planned anew at each call (a custom plan for a known LIMIT looked
-- cheaper than the generic one). The generic claim still walks
-- job_ready_idx in order and stops after the jobs it takes, for every
-- queue, however many ready jobs other queues hold. And a pop of a full
-- max_running queue looks without locking: it leaves the queue's row
-- unlocked and writes nothing. Counting a max_running queue's running jobs
-- reads only its own entries of job_running_idx, and tick finds expired
-- leases queue by queue (0.5.0: the index is keyed by queue first).
BEGIN;
SELECT plan(23);

SELECT ok('plan_cache_mode=force_generic_plan' = ANY (p.proconfig), 'pop runs generic plans')
FROM pg_proc AS p WHERE p.oid = 'pgtq.pop(text, text, integer, interval, timestamptz)'::regprocedure;
SELECT ok('plan_cache_mode=force_generic_plan' = ANY (p.proconfig),
          'the announce step after a job ends runs generic plans')
FROM pg_proc AS p WHERE p.oid = 'pgtq._wake_after_end(text[], text[])'::regprocedure;

SELECT count(*) FROM pgtq.push_many('first', 'job', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 3000) AS n));
SELECT count(*) FROM pgtq.push_many('second', 'job', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 3000) AS n));
ANALYZE pgtq._job;

\ir helpers/reads.psql
-- Ten single pops read the ten claimed entries and the ones claimed
-- before them in this transaction (1 + 2 + ... + 10 = 55), never the
-- queue's other 2,990 or the other queue's 3,000.
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_ready_idx', $$SELECT count(*) FROM generate_series(1, 10), pgtq.pop('first')$$),
              '<=', 60::bigint, 'ten pop(1) of the first queue read only the head of job_ready_idx');
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_ready_idx', $$SELECT count(*) FROM generate_series(1, 10), pgtq.pop('second')$$),
              '<=', 60::bigint, 'ten pop(1) of a queue pushed after another read only its own head');
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_ready_idx', $$SELECT count(*) FROM generate_series(1, 3), pgtq.pop('second', n => 100)$$),
              '<=', 400::bigint, 'three pop(100) read about the 300 entries they claim');

-- A full max_running queue: a pop looks, finds no room and returns
-- without locking the queue's row (a lock would mark the row with this
-- transaction's id as its xmax, as the pop of 0.4.0 did).
SELECT pgtq.configure_queue('full', max_running => 1);
SELECT pgtq.push('full', 'job');
SELECT pgtq.push('full', 'job');
UPDATE pgtq._job  -- one job runs, as a pop would have claimed it
SET state = 'running', attempt = 1, lease = gen_random_uuid(), lease_expires_at = now() + interval '1 hour',
    started_at = now()
WHERE id = (SELECT min(id) FROM pgtq._job WHERE queue = 'full');
SELECT is((SELECT count(*) FROM pgtq.pop('full')), 0::bigint, 'a pop of a full queue claims nothing');
SELECT is((SELECT f.xmax::text FROM pgtq._queue AS f WHERE f.queue = 'full'), '0',
          'and leaves the queue''s row unlocked');

-- 3,000 jobs of another queue run; counting 'full' (max_running 1, one
-- running job) reads its own entry, not theirs.
SELECT count(*) FROM pgtq.pop('first', n => 3000);
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_running_idx', $$SELECT count(*) FROM pgtq.pop('full')$$), '<=', 2::bigint,
              'a pop of a max_running queue counts its own running jobs only');

-- Expired leases in two queues beside 3,000 live ones: a tick of one
-- queue rescues that queue's, a tick of every queue the rest.
SELECT count(*) FROM pgtq.push_many('late1', 'job', ARRAY['[1]', '[2]']::jsonb[]);
SELECT count(*) FROM pgtq.push_many('late2', 'job', ARRAY['[1]', '[2]', '[3]']::jsonb[]);
SELECT count(*) FROM pgtq.pop('late1', n => 2, lease => '1 minute', as_of => now() - interval '1 hour');
SELECT count(*) FROM pgtq.pop('late2', n => 3, lease => '1 minute', as_of => now() - interval '1 hour');
SELECT is(pgtq.tick('late2'), 3, 'a tick of one queue rescues its expired leases');
SELECT is((SELECT count(*) FROM pgtq.jobs WHERE queue = 'late1' AND state = 'running'), 2::bigint,
          'and no other queue''s');
SELECT is(pgtq.tick(), 2, 'a tick of every queue rescues the expired leases of each');
SELECT is((SELECT count(*) FROM pgtq.jobs WHERE queue IN ('late1', 'late2', 'first') AND state = 'running'),
          3000::bigint, 'and leaves the live leases running');

-- (0.23.0) A pop of a queue with lock keys looks only at the keys it
-- meets: 2,000 jobs with lock keys running in another queue are not read
-- (until 0.22.0 each such pop read every running job with a lock key).
SELECT count(*) FROM pgtq.push_many('keyed-elsewhere', 'job', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 2000) AS n),
                                    lock_keys => ARRAY(SELECT 'elsewhere-' || n FROM generate_series(1, 2000) AS n));
SELECT count(*) FROM pgtq.pop('keyed-elsewhere', n => 2000);
SELECT count(*) FROM pgtq.push_many('keyed-here', 'job', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 20) AS n),
                                    lock_keys => ARRAY(SELECT 'here-' || n FROM generate_series(1, 20) AS n));
ANALYZE pgtq._job;  -- as autovacuum would: plans see the running jobs
SELECT cmp_ok(pg_temp.job_rows_read($$SELECT count(*) FROM pgtq.pop('keyed-here', n => 2)$$), '<=', 20::bigint,
              'a pop of two keyed jobs reads a few rows, not the 2,000 keyed jobs running elsewhere');
SELECT is((SELECT count(*) FROM pgtq.jobs WHERE queue = 'keyed-here' AND state = 'running'), 2::bigint,
          'and claims them');

-- (0.32.0) Jobs with a lock key are not in job_ready_idx, and a pop past
-- a backlog of busy keys reads one job of each key of its queue, not the
-- backlog: 3,000 jobs of 3 keys, one running each, and one job of a free
-- key and one without a key at the end (until 0.31.0 the pop read each
-- of the 3,000 jobs, in job_ready_idx and in the table).
SELECT count(*) FROM pgtq.push_many('backlog', 'job', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 3000) AS n),
                                    lock_keys => ARRAY(SELECT 'busy-' || n % 3 FROM generate_series(1, 3000) AS n));
SELECT count(*) FROM pgtq.pop('backlog', n => 3);
SELECT pgtq.push('backlog', 'free', lock_key => 'free');
SELECT pgtq.push('backlog', 'plain');
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_ready_idx', $$SELECT count(*) FROM pgtq.pop('backlog', n => 10)$$),
              '<=', 4::bigint, 'a pop past 2,997 jobs of busy keys reads job_ready_idx only for the job without a key');
SELECT is(ARRAY(SELECT j.task FROM pgtq.jobs AS j
                WHERE j.queue = 'backlog' AND j.state = 'running' AND j.task <> 'job' ORDER BY j.id),
          ARRAY['free', 'plain'], 'and takes that job and the free key''s, past the backlog');
SELECT cmp_ok(pg_temp.job_rows_read($$SELECT count(*) FROM pgtq.pop('backlog', n => 10)$$), '<=', 200::bigint,
              'a pop past them that finds nothing reads about the first 64 jobs and one job per key');

-- (0.33.0) A queue of more than 64 keys whose first jobs are of a few
-- keys: 8,000 jobs of one key, one of them running, then one job of each
-- of 100 other keys. A pop walks 4,096 jobs, then reads the queue's keys
-- and takes the first job of free ones, in pop's order (until 0.32.0 it
-- walked every job of the flooded key: 8,000 rows read here).
SELECT count(*) FROM pgtq.push_many('flooded', 'job', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 8000) AS n),
                                    lock_keys => array_fill('flood'::text, ARRAY[8000]));
SELECT count(*) FROM pgtq.pop('flooded', n => 1);
SELECT count(*) FROM pgtq.push_many('flooded', 'other', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 100) AS n),
                                    lock_keys => ARRAY(SELECT 'other-' || n FROM generate_series(1, 100) AS n));
SELECT cmp_ok(pg_temp.job_rows_read($$SELECT count(*) FROM pgtq.pop('flooded', n => 10)$$), '<=', 5000::bigint,
              'a pop past 7,999 jobs of a busy key, in a queue of 101 keys, reads 4,096 of them and one job per key');
SELECT is(ARRAY(SELECT (j.args ->> 0)::integer FROM pgtq.jobs AS j
                WHERE j.queue = 'flooded' AND j.state = 'running' AND j.task = 'other' ORDER BY j.id),
          ARRAY(SELECT generate_series(1, 10)), 'and takes the first jobs of the first ten other keys');
-- A queue of more keys than the scan reads (1,025) is walked on to the
-- end: 4,200 jobs of a busy key, then one job of each of 1,100 others.
SELECT count(*) FROM pgtq.push_many('many-keys', 'job', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 4200) AS n),
                                    lock_keys => array_fill('flood'::text, ARRAY[4200]));
SELECT count(*) FROM pgtq.push_many('many-keys', 'other', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 1100) AS n),
                                    lock_keys => ARRAY(SELECT 'many-' || n FROM generate_series(1, 1100) AS n));
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_queue_key_ready_idx', $$SELECT count(*) FROM pgtq.pop('many-keys', n => 10)$$),
              '<=', 1030::bigint, 'a pop past 4,200 jobs of a busy key, in a queue of 1,101 keys, reads at most 1,025 keys');
SELECT is(ARRAY(SELECT (j.args ->> 0)::integer FROM pgtq.jobs AS j
                WHERE j.queue = 'many-keys' AND j.state = 'running' AND j.task = 'other' ORDER BY j.id),
          ARRAY(SELECT generate_series(1, 10)), 'and walks on to the first jobs of the first ten other keys');

-- Fewer than 4,097 ready jobs, too few free keys for the pop: the walk
-- reads them all and the pop reads no more keys than the first 65 (3,000
-- jobs of the busy key 'flood', then one job of each of 300 keys).
SELECT count(*) FROM pgtq.push_many('shallow', 'job', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 3000) AS n),
                                    lock_keys => array_fill('flood'::text, ARRAY[3000]));
SELECT count(*) FROM pgtq.push_many('shallow', 'other', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 300) AS n),
                                    lock_keys => ARRAY(SELECT 'shallow-' || n FROM generate_series(1, 300) AS n));
SELECT cmp_ok(pg_temp.index_reads('pgtq.job_queue_key_ready_idx', $$SELECT count(*) FROM pgtq.pop('shallow', n => 400)$$),
              '<=', 70::bigint, 'a pop of a queue of 3,300 ready jobs that wants more than it finds reads 65 keys, not 301');
SELECT is((SELECT count(*) FROM pgtq.jobs WHERE queue = 'shallow' AND state = 'running'), 300::bigint,
          'and takes the first job of each free key');

SELECT * FROM finish();
ROLLBACK;
