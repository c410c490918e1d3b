-- The queue history that tick samples once a minute, and metrics(): what a
-- sample counts, when one is due, the row of zeros after the last
-- activity, retention, switching the history off, and the figures of
-- metrics(). Concurrent ticks sampling once per minute are proved with
-- real sessions in tests/py/test_history.py.
BEGIN;
SELECT plan(57);
SET LOCAL TIME ZONE 'UTC';

CREATE TEMP TABLE made (name text PRIMARY KEY, id bigint);
CREATE TEMP TABLE claimed AS SELECT * FROM pgtq.pop('none') LIMIT 0;
-- One sample row as text: queue, task, the depth, the oldest ready age, what happened.
CREATE TEMP VIEW sample AS
SELECT sampled_at, queue, task,
       row(queue, task, scheduled, ready, running, oldest_ready_age, completed, failed, cancelled,
           lease_expired)::text AS figures
FROM pgtq.queue_history;

SELECT is((SELECT count(*)::int FROM pgtq.queue_history), 0, 'no history before the first tick');

-- Three ready t1 jobs and a scheduled t2 in q1, a ready job in q2; a worker
-- claims one t1 job with a one-minute lease and dies.
INSERT INTO made SELECT 't1-' || n, pgtq.push('q1', 't1', as_of => '2030-01-01 00:00+00') FROM generate_series(1, 3) AS n;
INSERT INTO made SELECT 't2', pgtq.push('q1', 't2', run_at => '2030-01-01 00:05+00', as_of => '2030-01-01 00:00+00');
INSERT INTO made SELECT 'q2', pgtq.push('q2', 't1', as_of => '2030-01-01 00:00:05+00');
INSERT INTO claimed SELECT * FROM pgtq.pop('q1', 'dead', 1, '1 minute', '2030-01-01 00:00+00');

-- ------------------------------------------------------- the first sample
SELECT is(pgtq.tick(as_of => '2030-01-01 00:00:10+00'), 0, 'the first tick moves nothing');
SELECT is((SELECT array_agg(DISTINCT sampled_at) FROM pgtq.queue_history),
    ARRAY['2030-01-01 00:00:10+00'::timestamptz], 'and takes the first sample at its as_of');
SELECT is((SELECT period_start FROM pgtq.queue_history LIMIT 1), '2030-01-01 00:00:10+00'::timestamptz - interval '1 minute',
    'the first sample''s period is the minute before it');
SELECT is((SELECT figures FROM sample WHERE queue = 'q1' AND task = 't1'),
    '(q1,t1,0,2,1,00:00:10,0,0,0,0)', 'q1/t1: 2 ready, 1 running, oldest ready for 10 s');
SELECT is((SELECT figures FROM sample WHERE queue = 'q1' AND task = 't2'),
    '(q1,t2,1,0,0,,0,0,0,0)', 'q1/t2: 1 scheduled, no ready job so no age');
SELECT is((SELECT figures FROM sample WHERE queue = 'q2'), '(q2,t1,0,1,0,00:00:05,0,0,0,0)',
    'q2/t1: 1 ready for 5 s');

-- --------------------------------------------- once a minute, not more often
SELECT pgtq.tick(as_of => '2030-01-01 00:00:50+00');
SELECT pgtq.tick(as_of => '2030-01-01 00:00:59.999+00');
SELECT is((SELECT count(DISTINCT sampled_at)::int FROM pgtq.queue_history), 1,
    'later ticks of the same minute take no sample');
SELECT is(pgtq._sample_history('2030-01-01 00:00:30+00'), false, 'a sample is not due within its minute');
SELECT is((SELECT next_sample_at FROM pgtq._sampler), '2030-01-01 00:01+00'::timestamptz,
    'the next one is due at the start of the next minute');

-- ------------------------------ what happens in a period, counted at its end
INSERT INTO made SELECT 't3', pgtq.push('q1', 't3', priority => 10, max_attempts => 1, as_of => '2030-01-01 00:00:30+00');
DELETE FROM claimed;
INSERT INTO claimed SELECT * FROM pgtq.pop('q1', 'w', 1, '5 minutes', '2030-01-01 00:01+00');
SELECT is(pgtq.fail(c.id, c.lease, 'boom', as_of => '2030-01-01 00:01:02+00'), 'failed', 't3 fails for good')
FROM claimed c;
DELETE FROM claimed;
INSERT INTO claimed SELECT * FROM pgtq.pop('q1', 'w', 1, '5 minutes', '2030-01-01 00:01:03+00');
SELECT is(pgtq.complete(c.id, c.lease, as_of => '2030-01-01 00:01:05+00'), true, 'a t1 job is done') FROM claimed c;
SELECT is(pgtq.cancel(id, '2030-01-01 00:01:15+00'), true, 'the q2 job is cancelled') FROM made WHERE name = 'q2';
SELECT pgtq.register_worker('w-live', 'h', 1, ARRAY['q1', 'q2'], '2030-01-01 00:01:00+00');
SELECT pgtq.register_worker('w-other', 'h', 2, ARRAY['q1'], '2030-01-01 00:01:10+00');

SELECT is(pgtq.tick(as_of => '2030-01-01 00:01:20+00'), 1, 'the next tick rescues the dead worker''s job');
SELECT is((SELECT count(*)::int FROM pgtq._lease_expiry), 0, 'and its sample consumed the lease expiry it counted');
SELECT is((SELECT count(DISTINCT sampled_at)::int FROM pgtq.queue_history), 2, 'and takes the second sample');
SELECT is((SELECT DISTINCT period_start FROM pgtq.queue_history WHERE sampled_at = '2030-01-01 00:01:20+00'),
    '2030-01-01 00:00:10+00'::timestamptz, 'whose period starts at the first sample');
SELECT is((SELECT figures FROM sample
           WHERE sampled_at = '2030-01-01 00:01:20+00' AND queue = 'q1' AND task = 't1'),
    '(q1,t1,1,1,0,00:01:20,1,0,0,1)', 'q1/t1: the rescued job waits (scheduled), one ready, one done, one lease expired');
SELECT is((SELECT h.failed || '/' || h.scheduled + h.ready + h.running FROM pgtq.queue_history h
           WHERE h.sampled_at = '2030-01-01 00:01:20+00' AND h.queue = 'q1' AND h.task = 't3'),
    '1/0', 'q1/t3: one failed for good, nothing live');
SELECT is((SELECT h.cancelled || '/' || h.ready FROM pgtq.queue_history h
           WHERE h.sampled_at = '2030-01-01 00:01:20+00' AND h.queue = 'q2'),
    '1/0', 'q2/t1: one cancelled, nothing ready');

-- ----------------------------------------------------------------- metrics
CREATE TEMP VIEW m AS SELECT * FROM pgtq.metrics('5 minutes', '2030-01-01 00:01:30+00');
SELECT is((SELECT array_agg(queue || ':' || state || '=' || value ORDER BY queue, state) FROM m WHERE metric = 'jobs'),
    ARRAY['q1:ready=1', 'q1:running=0', 'q1:scheduled=2', 'q2:ready=0', 'q2:running=0', 'q2:scheduled=0'],
    'metrics: live jobs by state, with zeros, for every queue with live jobs or recent history');
SELECT is((SELECT array_agg(queue || '=' || value ORDER BY queue) FROM m WHERE metric = 'oldest_ready_age_seconds'),
    ARRAY['q1=90', 'q2=0'], 'metrics: the oldest ready job''s wait (since its run_at), 0 without one');
SELECT is((SELECT array_agg(queue || '/' || task || '=' || value ORDER BY queue, task) FROM m
           WHERE metric = 'recent_completed' AND value > 0),
    ARRAY['q1/t1=1'], 'metrics: completions by task in the samples of the period');
SELECT is((SELECT array_agg(queue || '/' || task || '=' || value ORDER BY queue, task) FROM m
           WHERE metric = 'recent_failed' AND value > 0),
    ARRAY['q1/t3=1'], 'metrics: final failures by task');
SELECT is((SELECT array_agg(queue || '/' || task || '=' || value ORDER BY queue, task) FROM m
           WHERE metric = 'recent_lease_expiries' AND value > 0),
    ARRAY['q1/t1=1'], 'metrics: lease expiries by task');
SELECT is((SELECT array_agg(queue || '=' || value ORDER BY queue) FROM m WHERE metric = 'workers'),
    ARRAY['q1=2', 'q2=1'], 'metrics: live workers per queue they serve');
SELECT is((SELECT value FROM m WHERE metric = 'workers_total'), 2::float8, 'metrics: live workers in all');
SELECT is((SELECT value FROM m WHERE metric = 'history_age_seconds'), 10::float8,
    'metrics: seconds since the last sample');
SELECT is((SELECT count(*)::int FROM pgtq.metrics('5 minutes', '2030-01-01 00:02:20+00') WHERE metric = 'workers_total'
           AND value = 0), 1, 'a worker not seen for worker_timeout is not live');
SELECT is((SELECT sum(value)::int FROM pgtq.metrics('1 minute', '2030-01-01 00:02:25+00') WHERE metric = 'recent_completed'),
    NULL, 'samples older than the period are not counted');

-- ------------------------------------------ a row of zeros, then no row
SELECT pgtq.tick(as_of => '2030-01-01 00:02:30+00');
SELECT is((SELECT figures FROM sample
           WHERE sampled_at = '2030-01-01 00:02:30+00' AND queue = 'q1' AND task = 't3'),
    '(q1,t3,0,0,0,,0,0,0,0)', 'after its last activity a task gets one row of zeros');
SELECT pgtq.tick(as_of => '2030-01-01 00:03:30+00');
SELECT is((SELECT array_agg(h.queue || '/' || h.task ORDER BY h.queue, h.task) FROM pgtq.queue_history h
           WHERE h.sampled_at = '2030-01-01 00:03:30+00'),
    ARRAY['q1/t1', 'q1/t2'], 'and then no row: q1/t3 and q2 are quiet');

-- ------------------------------------------------ the clock goes back
SELECT pgtq.tick(as_of => '2030-01-01 00:02:45+00');
SELECT is((SELECT count(DISTINCT sampled_at)::int FROM pgtq.queue_history WHERE sampled_at = '2030-01-01 00:02:45+00'), 0,
    'a tick a little behind the last sample (another session''s older now()) takes no sample');
SELECT pgtq.tick(as_of => '2030-01-01 00:01:40+00');
SELECT is((SELECT DISTINCT period_start FROM pgtq.queue_history WHERE sampled_at = '2030-01-01 00:01:40+00'),
    '2030-01-01 00:00:40+00'::timestamptz, 'a clock gone back over a minute samples again, over the minute before');
SELECT is((SELECT next_sample_at FROM pgtq._sampler), '2030-01-01 00:02+00'::timestamptz,
    'and the next sample is due a minute later');

-- ------------------------------------------------------------- retention
SELECT is((SELECT history_retention FROM pgtq.settings), interval '24 hours', 'the history is kept 24 h by default');
SELECT is((SELECT history_retention FROM pgtq.configure(history_retention => '2 minutes')), interval '2 minutes',
    'configure changes the retention');
SELECT pgtq.tick(as_of => '2030-01-01 00:05:00+00');
SELECT is((SELECT min(sampled_at) FROM pgtq.queue_history), '2030-01-01 00:03:30+00'::timestamptz,
    'the next sample deletes the samples older than the retention');
SELECT is((SELECT xid FROM pgtq._xid_clock WHERE sampled_at = '2030-01-01 00:05:00+00'), pg_current_xact_id(),
    'a sample writes the transaction-id clock: its time and the id of its transaction (0.34.0)');
SELECT is((SELECT min(sampled_at) FROM pgtq._xid_clock), '2030-01-01 00:03:30+00'::timestamptz,
    'the clock keeps what the history keeps');

SELECT is((SELECT history_retention FROM pgtq.configure(history_retention => '0')), interval '0',
    'a retention of 0 switches the history off');
SELECT is((SELECT count(*)::int FROM pgtq.queue_history), 0, 'and deletes it');
SELECT is((SELECT count(*)::int FROM pgtq._xid_clock), 0, 'and the transaction-id clock');
SELECT pgtq.tick(as_of => '2030-01-01 00:06:00+00');
SELECT pgtq.tick(as_of => '2029-01-01 00:00:00+00');
SELECT is((SELECT count(*)::int FROM pgtq.queue_history), 0, 'no tick samples while it is off');
SELECT is((SELECT count(*)::int FROM pgtq.metrics(as_of => '2030-01-01 00:06:05+00') WHERE metric = 'history_age_seconds'),
    0, 'and metrics has no sample age');
SELECT pgtq.configure(history_retention => '1 hour');
SELECT pgtq.tick(as_of => '2030-01-01 00:06:10+00');
SELECT is((SELECT array_agg(DISTINCT sampled_at) FROM pgtq.queue_history), ARRAY['2030-01-01 00:06:10+00'::timestamptz],
    'switched on again, the next tick samples');
SELECT is((SELECT DISTINCT period_start FROM pgtq.queue_history), '2030-01-01 00:05:10+00'::timestamptz,
    'over the minute before it');

-- A tick of one queue samples every queue (the history is global).
SELECT pgtq.tick('q2', '2030-01-01 00:07:00+00');
SELECT is((SELECT array_agg(DISTINCT queue) FROM pgtq.queue_history WHERE sampled_at = '2030-01-01 00:07:00+00'),
    ARRAY['q1'], 'tick(queue) samples every queue');

-- ------------------------------------------------ the transaction-id clock
-- _xid_time (0.34.0): the time of the clock's entry of the lowest id at or
-- above a 32-bit xid, placed within 2^31 ids of the next id (ahead of it too).
CREATE FUNCTION pg_temp.id_at(distance bigint) RETURNS xid8 LANGUAGE sql AS $$
    SELECT (pg_current_xact_id()::text::bigint + distance)::text::xid8
$$;
CREATE FUNCTION pg_temp.time_of(distance bigint) RETURNS timestamptz LANGUAGE sql AS $$
    SELECT pgtq._xid_time(((pg_current_xact_id()::text::bigint + distance) % 4294967296)::text::xid)
$$;
DELETE FROM pgtq._xid_clock;
SELECT is(pg_temp.time_of(-1), NULL, 'an empty clock dates nothing');
INSERT INTO pgtq._xid_clock (sampled_at, xid)
VALUES ('2030-01-01 01:00+00', pg_temp.id_at(-500)), ('2030-01-01 01:01+00', pg_temp.id_at(-100)),
       ('2030-01-01 01:02+00', pg_temp.id_at(-50)), ('2030-01-01 01:03+00', pg_temp.id_at(-10)),
       ('2030-01-01 01:04+00', pg_temp.id_at(1000));  -- ahead of every id: restored from another cluster
SELECT is(pg_temp.time_of(-600), '2030-01-01 01:00+00'::timestamptz,
    'an id below every entry: handed out before the first');
SELECT is(pg_temp.time_of(-500), '2030-01-01 01:00+00'::timestamptz,
    'an entry''s own id: that entry (its transaction had not ended)');
SELECT is(pg_temp.time_of(-101), '2030-01-01 01:01+00'::timestamptz, 'an id between two entries: the later');
SELECT is(pg_temp.time_of(-10), '2030-01-01 01:03+00'::timestamptz, 'the last entry of this cluster''s past');
SELECT is(pg_temp.time_of(-9), NULL,
    'an id above it: too young to date (the entry ahead of every id dates nothing)');
SELECT is(pg_temp.time_of(2), NULL,
    'an id a little ahead of this transaction''s: placed ahead, not an epoch back (which the first entry would date)');
SELECT is(pgtq._xid_time(NULL), NULL, 'a NULL id: none');
SELECT pgtq.tick(as_of => '2030-01-01 02:00+00');
SELECT is((SELECT count(*)::int FROM pgtq._xid_clock WHERE xid > pg_current_xact_id()), 0,
    'a sample deletes the entries above its own id (restored from another cluster)');

SELECT * FROM finish();
ROLLBACK;
