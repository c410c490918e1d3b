-- The functions a worker calls per job run with enable_seqscan = off
-- (0.7.0), so they find jobs by their indexes whatever size pgtq._job had
-- when the session planned them. A session keeps a function's plans: pop
-- and complete_many planned while the table was a page or two read the
-- whole table at every call as it grew, until an ANALYZE replanned them.
-- Each half below plans the two on a truncated table, grows the table,
-- and counts the sequential scans of one more pop and complete_many; the
-- second half, with the setting taken away, shows the count can fail.
BEGIN;
SELECT plan(6);
\ir helpers/reads.psql

SELECT is(ARRAY(SELECT p.proname::text FROM pg_proc AS p
                WHERE p.pronamespace = 'pgtq'::regnamespace AND 'enable_seqscan=off' = ANY (p.proconfig)
                ORDER BY 1),
          ARRAY['_announce_freed', '_end_done', '_lower_marks', '_raise_mark', '_room_of', '_write_off_lapsed',
                '_write_off_lapsed_key', 'abort', 'complete', 'complete_many', 'complete_many_and_pop', 'fail',
                'health', 'heartbeat', 'heartbeat_many', 'pop', 'release', 'retry_failed', 'tick'],
          'the functions a worker calls per job, the write-offs a pop makes, the ready marks (0.18.0), '
          'health, the count of a rate window (0.27.0, which tick makes too), tick with all its steps '
          '(0.29.0), retry_failed (0.30.0) and the look of an end that freed a slot (0.35.0) (their looks '
          'are index probes however large the table grew), run with sequential scans off');

-- Sequential scans of pgtq._job by one pop of queue `queue` and the
-- complete_many of what it claimed (the counts of this transaction).
CREATE FUNCTION pg_temp.seq_scans_of_a_job(queue text)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    before  bigint := pg_stat_get_xact_numscans('pgtq._job'::regclass);
    claimed record;
BEGIN
    PERFORM pgtq.push(queue, 'job');
    SELECT c.id, c.lease INTO claimed FROM pgtq.pop(queue) AS c;
    PERFORM pgtq.complete_many(ARRAY[claimed.id], ARRAY[claimed.lease]);
    RETURN pg_stat_get_xact_numscans('pgtq._job'::regclass) - before;
END
$$;

-- Plan on a truncated table, then grow it: the count of one more job.
CREATE FUNCTION pg_temp.seq_scans_after_growth()
RETURNS bigint
LANGUAGE plpgsql
AS $$
BEGIN
    TRUNCATE pgtq._job;
    PERFORM pg_temp.seq_scans_of_a_job('w');
    PERFORM count(*) FROM pgtq.push_many('other', 'job', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 3000) AS n));
    RETURN pg_temp.seq_scans_of_a_job('w');
END
$$;

SELECT is(pg_temp.seq_scans_after_growth(), 0::bigint,
          'planned on a near-empty table, pop and complete_many still probe the indexes once it grew');
SELECT is((SELECT count(*) FROM pgtq.jobs WHERE queue = 'w' AND state = 'done'), 2::bigint,
          'and completed the job they claimed');

ALTER FUNCTION pgtq.pop(text, text, integer, interval, timestamptz) RESET enable_seqscan;
ALTER FUNCTION pgtq.complete_many(bigint[], uuid[], jsonb[], timestamptz) RESET enable_seqscan;
SELECT cmp_ok(pg_temp.seq_scans_after_growth(), '>', 0::bigint,
              'without the setting the same plans read the whole table (what the count above would catch)');

-- tick looks for limited queues whose room came back (max_running,
-- rate_limit) and that have ready jobs. As an EXISTS (until 0.23.0), once
-- a session had ticked five times and PL/pgSQL kept the statement's
-- generic plan, every tick read the whole job table (every ready job,
-- grouped by queue) before it looked at _queue, with no limited queue at
-- all: 50 to 80 ms a tick at 100,000 ready jobs, and more beside a held
-- snapshot, whose dead rows the scan reads too. Since 0.24.0 it probes
-- job_ready_idx once per limited queue.
CREATE FUNCTION pg_temp.seq_scans_of(call text)
RETURNS bigint
LANGUAGE sql
AS $$
    SELECT pg_temp.counted('SELECT pg_stat_get_xact_numscans(''pgtq._job''::regclass)', call)
$$;

-- The look of 0.23.0, as tick ran it.
CREATE FUNCTION pg_temp.look_of_0_23_0(queue text, as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM 1 FROM pgtq._queue AS f
    WHERE f.queue = coalesce(look_of_0_23_0.queue, f.queue)
      AND (f.max_running IS NOT NULL OR f.rate_limit IS NOT NULL)
      AND pgtq._room_of(f, 1, look_of_0_23_0.as_of) > 0
      AND EXISTS (SELECT 1 FROM pgtq._job AS r WHERE r.queue = f.queue AND r.state = 'ready');
END
$$;

TRUNCATE pgtq._job;
SELECT count(*) FROM pgtq.push_many('big', 'job', ARRAY(SELECT jsonb_build_array(n) FROM generate_series(1, 2000) AS n));
ANALYZE pgtq._job;
SELECT pgtq.tick('big');  -- the first tick of the minute also samples the history, which counts them all
SELECT is(pg_temp.seq_scans_of($$SELECT pgtq.tick('big') FROM generate_series(1, 8)$$), 0::bigint,
          'with 2,000 ready jobs and no limited queue, eight more ticks (generic plans from the sixth) '
          'read no job by a sequential scan');
SELECT cmp_ok(pg_temp.seq_scans_of($$SELECT pg_temp.look_of_0_23_0('big', now()) FROM generate_series(1, 8)$$),
              '>', 0::bigint,
              'the look of 0.23.0 read the whole table there (what the count above would catch)');

SELECT * FROM finish();
ROLLBACK;
