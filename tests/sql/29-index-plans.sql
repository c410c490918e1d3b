-- The functions a worker calls per job run with enable_seqscan = off
-- (0.7.0), so they find jobs by their indexes whatever size pgtq._job had
-- when the session planned them. A session keeps a function's plans: pop
-- and complete_many planned while the table was a page or two read the
-- whole table at every call as it grew, until an ANALYZE replanned them.
-- Each half below plans the two on a truncated table, grows the table,
-- and counts the sequential scans of one more pop and complete_many; the
-- second half, with the setting taken away, shows the count can fail.
BEGIN;
SELECT plan(4);

SELECT is(ARRAY(SELECT p.proname::text FROM pg_proc AS p
                WHERE p.pronamespace = 'pgtq'::regnamespace AND 'enable_seqscan=off' = ANY (p.proconfig)
                ORDER BY 1),
          ARRAY['_end_done', '_lower_marks', '_raise_mark', '_write_off_lapsed', '_write_off_lapsed_key', 'abort',
                'complete', 'complete_many', 'complete_many_and_pop', 'fail', 'health', 'heartbeat',
                'heartbeat_many', 'pop', 'release'],
          'the functions a worker calls per job, the write-offs a pop makes, the ready marks (0.18.0) and '
          'health (their looks are index probes however large the table grew), run with sequential scans off');

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

SELECT * FROM finish();
ROLLBACK;
