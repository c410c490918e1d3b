-- Periodic schedules: schedule() as an idempotent upsert, unschedule(),
-- the view, and tick() enqueuing each due occurrence once (its most recent
-- one after a downtime), with literal as_of times. The concurrent case
-- (many sessions ticking at once) is tests/py/test_periodic.py.
BEGIN;
SELECT plan(52);
SET LOCAL TIME ZONE 'UTC';

-- ------------------------------------------------------------ schedule
CREATE TEMP TABLE first AS
SELECT * FROM pgtq.schedule('reports', '*/5 * * * *', 'mail', 'send_report', '[1, "a"]', '{"to": "ops"}',
                            priority => 3, max_attempts => 2, as_of => '2030-01-01 00:02+00');
SELECT is((SELECT row(f.name, f.cron, f.timezone, f.queue, f.task, f.args, f.kwargs, f.priority, f.max_attempts)::text
           FROM first AS f),
    '(reports,"*/5 * * * *",UTC,mail,send_report,"[1, ""a""]","{""to"": ""ops""}",3,2)',
    'schedule returns the schedule it saved');
SELECT is((SELECT f.next_run_at FROM first AS f), '2030-01-01 00:05+00', 'its next run is the first occurrence after as_of');
SELECT is((SELECT row(f.last_run_at, f.last_job_id, f.last_error, f.created_at, f.updated_at)::text FROM first AS f),
    '(,,,"2030-01-01 00:02:00+00","2030-01-01 00:02:00+00")', 'it has not run yet');
SELECT is((SELECT row(v.*)::text FROM pgtq.schedules AS v), (SELECT row(f.*)::text FROM first AS f),
    'pgtq.schedules shows it as schedule returned it');
SELECT is((SELECT count(*)::int FROM pgtq.jobs), 0, 'scheduling enqueues nothing');

-- The same definition again changes nothing, not even the row.
CREATE TEMP TABLE row_version AS SELECT s.xmin::text AS version FROM pgtq._schedule AS s WHERE s.name = 'reports';
SELECT is((SELECT row(s.*)::text
           FROM pgtq.schedule('reports', '*/5 * * * *', 'mail', 'send_report', '[1, "a"]', '{"to": "ops"}',
                              priority => 3, max_attempts => 2, as_of => '2030-01-01 00:03+00') AS s),
          (SELECT row(f.*)::text FROM first AS f),
    'the same definition again: nothing changes, its next run and updated_at included');
SELECT is((SELECT s.xmin::text FROM pgtq._schedule AS s WHERE s.name = 'reports'), (SELECT version FROM row_version),
    'and the row is not even rewritten');

-- Other changes keep the next run; a changed cron or time zone moves it.
SELECT is((SELECT row(s.args, s.kwargs, s.priority, s.max_attempts, s.next_run_at, s.updated_at)::text
           FROM pgtq.schedule('reports', '*/5 * * * *', 'mail', 'send_report', '[2]', '{}',
                              priority => 0, max_attempts => 5, as_of => '2030-01-01 00:03:30+00') AS s),
    '([2],{},0,5,"2030-01-01 00:05:00+00","2030-01-01 00:03:30+00")',
    'new args, kwargs, priority and max_attempts keep the next run');
SELECT is((SELECT s.next_run_at FROM pgtq.schedule('reports', '0 * * * *', 'mail', 'send_report', '[2]',
                                                   as_of => '2030-01-01 00:04+00') AS s),
    '2030-01-01 01:00+00', 'a new cron moves the next run to its first occurrence after as_of');
SELECT is((SELECT s.next_run_at FROM pgtq.schedule('reports', '0 * * * *', 'mail', 'send_report', '[2]',
                                                   timezone => 'Asia/Kolkata', as_of => '2030-01-01 00:04+00') AS s),
    '2030-01-01 00:30+00', 'a new time zone too (Kolkata is UTC+05:30: its hours begin at :30 UTC)');
SELECT is((SELECT s.created_at FROM pgtq.schedules AS s WHERE s.name = 'reports'), '2030-01-01 00:02+00',
    'created_at stays');
SELECT is(pgtq.unschedule('reports'), true, 'unschedule removes it');
SELECT is(pgtq.unschedule('reports'), false, 'and says so when it is gone');
SELECT is((SELECT count(*)::int FROM pgtq.schedules), 0, 'pgtq.schedules is empty');

-- Names are data.
SELECT is((pgtq.schedule($$it's'); DROP TABLE pgtq._job; --$$, '@daily', $$q"; $x$$, E'caf\u00e9',
                         as_of => '2030-01-01 00:00+00')).name,
    $$it's'); DROP TABLE pgtq._job; --$$, 'a schedule name with quotes and a semicolon is stored as given');
SELECT is(pgtq.unschedule($$it's'); DROP TABLE pgtq._job; --$$), true, 'and unscheduled by it');
SELECT has_table('pgtq', '_job', 'the job table is still there');

-- ------------------------------------------------- tick: exactly once
SELECT lives_ok($$SELECT pgtq.schedule('every-5', '*/5 * * * *', 'q', 'poll', '[7]', '{"k": 1}', priority => 4,
                                       max_attempts => 3, as_of => '2030-01-01 00:00:10+00')$$,
    'a schedule every five minutes from 00:00:10');
SELECT is(pgtq.tick(NULL, '2030-01-01 00:04:59+00'), 0, 'nothing is due before 00:05');
SELECT is(pgtq.tick(NULL, '2030-01-01 00:05+00'), 1, 'at 00:05 tick enqueues one job');
SELECT is(pgtq.tick(NULL, '2030-01-01 00:05+00'), 0, 'a second tick at the same time enqueues nothing');
SELECT is(pgtq.tick(NULL, '2030-01-01 00:09:59+00'), 0, 'nor one before the next occurrence');
SELECT is((SELECT row(j.queue, j.task, j.args, j.kwargs, j.priority, j.max_attempts, j.state, j.run_at, j.created_at)::text
           FROM pgtq.jobs AS j),
    '(q,poll,[7],"{""k"": 1}",4,3,ready,"2030-01-01 00:05:00+00","2030-01-01 00:05:00+00")',
    'the job is the schedule''s, ready, with run_at = the occurrence');
SELECT is((SELECT row(s.next_run_at, s.last_run_at, s.last_job_id = (SELECT j.id FROM pgtq.jobs AS j), s.last_error)::text
           FROM pgtq.schedules AS s WHERE s.name = 'every-5'),
    '("2030-01-01 00:10:00+00","2030-01-01 00:05:00+00",t,)', 'the schedule records its run and moves on');
SELECT is(pgtq.tick(NULL, '2030-01-01 00:10:20+00'), 1, 'a late tick (00:10:20) enqueues the 00:10 occurrence');
SELECT is((SELECT array_agg(j.run_at ORDER BY j.id) FROM pgtq.jobs AS j),
    '{2030-01-01 00:05+00, 2030-01-01 00:10+00}', 'one job per occurrence');

-- After a downtime: only the most recent missed occurrence, then on from now.
SELECT is(pgtq.tick(NULL, '2030-01-01 01:07:30+00'), 1, 'after 57 minutes without a tick: one job');
SELECT is((SELECT j.run_at FROM pgtq.jobs AS j ORDER BY j.id DESC LIMIT 1), '2030-01-01 01:05+00',
    'for the most recent occurrence (01:05); 00:15 to 01:00 are skipped');
SELECT is((SELECT s.next_run_at FROM pgtq.schedules AS s WHERE s.name = 'every-5'), '2030-01-01 01:10+00',
    'and the next run is the first occurrence after now');
SELECT is(pgtq.tick(NULL, '2030-01-01 01:10+00'), 1, 'which comes as usual');
SELECT lives_ok($$SELECT pgtq.schedule('minutely', '* * * * *', 'q', 'beat', as_of => '2030-01-01 00:00+00')$$,
    'an every-minute schedule');
SELECT is(pgtq.tick(NULL, '2031-03-04 05:06:07+00'), 2, 'a tick after more than a year enqueues one job per schedule');
SELECT is((SELECT row(s.last_run_at, s.next_run_at)::text FROM pgtq.schedules AS s WHERE s.name = 'minutely'),
    '("2031-03-04 05:06:00+00","2031-03-04 05:07:00+00")', 'the minute schedule ran its latest minute only');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE task = 'beat'), 1, 'once');

-- tick(queue) fires the schedules of that queue only.
SELECT pgtq.schedule('other-queue', '0 * * * *', 'elsewhere', 'x', as_of => '2031-03-04 05:30+00');
SELECT is(pgtq.tick('q', '2031-03-04 06:00+00'), 2, 'tick(q) enqueues the two schedules of queue q');
SELECT is((SELECT s.next_run_at FROM pgtq.schedules AS s WHERE s.name = 'other-queue'), '2031-03-04 06:00+00',
    'and leaves the other queue''s schedule due');
SELECT is(pgtq.tick('elsewhere', '2031-03-04 06:00+00'), 1, 'tick(elsewhere) enqueues it');
SELECT is(pgtq.tick(NULL, '2031-03-04 06:00+00'), 0, 'and nothing is left for a tick of every queue');

-- A schedule whose job push would refuse (the payload limit was lowered
-- after it was saved) is skipped with its reason; the others go on.
SELECT pgtq.schedule('big', '0 * * * *', 'q', 'big', jsonb_build_array(repeat('x', 100)), as_of => '2031-03-04 06:00+00');
SELECT pgtq.configure(max_payload_bytes => 64);
SELECT is(pgtq.tick(NULL, '2031-03-04 07:00+00'), 3, 'tick still enqueues the three schedules push takes');
SELECT is((SELECT row(s.last_run_at, s.last_job_id, s.next_run_at, s.last_error)::text
           FROM pgtq.schedules AS s WHERE s.name = 'big'),
    '(,,"2031-03-04 08:00:00+00","occurrence 2031-03-04 07:00:00+00 not enqueued: pgtq: payload of task ''big'' is 114 bytes, over the limit of 64 bytes")',
    'the refused one moves on, with the reason in last_error');
SELECT pgtq.configure(max_payload_bytes => 1048576);
SELECT is(pgtq.tick(NULL, '2031-03-04 08:00+00'), 4, 'once the limit is back, it runs again');
SELECT is((SELECT s.last_error FROM pgtq.schedules AS s WHERE s.name = 'big'), NULL, 'and its error is cleared');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE task = 'big'), 1, 'one job for it');

-- Unscheduling stops it and leaves its jobs.
SELECT is(pgtq.unschedule('big'), true, 'unschedule big');
SELECT is(pgtq.tick(NULL, '2031-03-04 09:00+00'), 3, 'its next occurrence is not enqueued');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE task = 'big'), 1, 'the job it enqueued stays');

-- A cron change just after a run never enqueues that occurrence again.
SELECT is((SELECT s.next_run_at FROM pgtq.schedule('minutely', '*/2 * * * *', 'q', 'beat',
                                                   as_of => '2031-03-04 08:59+00') AS s),
    '2031-03-04 09:02+00',
    'a cron changed with an as_of before the last run (09:00) moves the next run past that run');

-- ------------------------------------------------- tick across DST changes
DELETE FROM pgtq._schedule;
DELETE FROM pgtq._job;
SELECT pgtq.schedule('paris-0230', '30 2 * * *', 'dst', 'nightly', timezone => 'Europe/Paris',
                     as_of => '2030-03-30 12:00+00');
SELECT pgtq.schedule('paris-hourly', '0 * * * *', 'dst', 'hourly', timezone => 'Europe/Paris',
                     as_of => '2030-03-30 23:30+00');
-- Spring forward, 31 March 2030: 02:30 does not exist in Paris. A tick
-- every 10 minutes of the night.
SELECT is((SELECT sum(pgtq.tick('dst', t))::int
           FROM generate_series(timestamptz '2030-03-30 23:40+00', '2030-03-31 04:00+00', '10 minutes') AS t),
    6, 'spring night (ticks every 10 minutes, 00:40 to 06:00 CEST): 02:30 once, the hourly job 5 times');
SELECT is((SELECT array_agg(j.task || ' ' || to_char(timezone('Europe/Paris', j.run_at), 'HH24:MI') ORDER BY j.run_at, j.task)
           FROM pgtq.jobs AS j),
    '{"hourly 01:00","hourly 03:00","nightly 03:00","hourly 04:00","hourly 05:00","hourly 06:00"}',
    'the 02:30 job runs at the jump (03:00 CEST); the hourly job has no skipped hour to run');
-- Fall back, 27 October 2030: 02:00-02:59 comes twice in Paris.
DELETE FROM pgtq._schedule;
DELETE FROM pgtq._job;
SELECT pgtq.schedule('paris-0230', '30 2 * * *', 'dst', 'nightly', timezone => 'Europe/Paris',
                     as_of => '2030-10-26 12:00+00');
SELECT pgtq.schedule('paris-hourly', '30 * * * *', 'dst', 'hourly', timezone => 'Europe/Paris',
                     as_of => '2030-10-26 22:50+00');
SELECT is((SELECT sum(pgtq.tick('dst', t))::int
           FROM generate_series(timestamptz '2030-10-26 23:00+00', '2030-10-27 03:00+00', '10 minutes') AS t),
    5, 'fall-back night (ticks every 10 minutes, 01:00 CEST to 04:00 CET): 02:30 once, :30 every real hour');
SELECT is((SELECT array_agg(j.task || ' ' || to_char(j.run_at, 'HH24:MI') || 'Z' ORDER BY j.run_at, j.task)
           FROM pgtq.jobs AS j),
    '{"hourly 23:30Z","hourly 00:30Z","nightly 00:30Z","hourly 01:30Z","hourly 02:30Z"}',
    'the 02:30 job runs at the first 02:30 (CEST, 00:30Z) only; the hourly one at both 02:30s');
SELECT is((SELECT s.next_run_at FROM pgtq.schedules AS s WHERE s.name = 'paris-0230'), '2030-10-28 01:30+00',
    'and its next run is 02:30 CET the next day');

SELECT * FROM finish();
ROLLBACK;
