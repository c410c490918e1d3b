-- heartbeat, release, cancel, retry, prune, workers, stats.
BEGIN;
SELECT plan(22);

CREATE TEMP TABLE c AS SELECT * FROM pgtq.pop('q') LIMIT 0;
SELECT pgtq.push('q', 'long');
INSERT INTO c SELECT * FROM pgtq.pop('q', lease => '1 minute', as_of => '2030-01-01 00:00+00');

-- heartbeat
SELECT is(pgtq.heartbeat(id, lease, '5 minutes', '2030-01-01 00:00:50+00'), true, 'heartbeat extends a live lease')
FROM c;
SELECT is(j.lease_expires_at, '2030-01-01 00:05:50+00'::timestamptz, 'to as_of + extend_by')
FROM pgtq.jobs j JOIN c USING (id);
SELECT is(pgtq.tick('q', '2030-01-01 00:02+00'), 0, 'a heartbeating job is not rescued');
SELECT is(pgtq.heartbeat(id, gen_random_uuid()), false, 'heartbeat with a forged lease is refused') FROM c;

-- release
SELECT is(pgtq.release(id, lease), true, 'release hands the job back') FROM c;
SELECT is(j.state::text || '/' || j.attempt, 'ready/0', 'ready again, the attempt not counted')
FROM pgtq.jobs j JOIN c USING (id);
SELECT is(pgtq.release(id, lease), false, 'a released lease is spent') FROM c;

-- cancel
SELECT pgtq.push('q', 'unwanted') AS unwanted_id \gset
SELECT is(pgtq.cancel(:unwanted_id), true, 'a ready job can be cancelled');
SELECT is(state::text, 'cancelled', 'it is cancelled') FROM pgtq.jobs WHERE id = :unwanted_id;
SELECT is(pgtq.cancel(:unwanted_id), false, 'cancelling twice changes nothing');
DELETE FROM c;
INSERT INTO c SELECT * FROM pgtq.pop('q');
SELECT is(pgtq.cancel(id), true, 'a running job takes a cancel request (17-cancel-running.sql)') FROM c;
SELECT is(pgtq.cancel(-1), false, 'an unknown id is not cancelled');

-- retry
SELECT is(pgtq.retry(:unwanted_id), true, 'a cancelled job can be retried');
SELECT is(state::text || '/' || attempt, 'ready/0', 'it is ready with a fresh attempt count')
FROM pgtq.jobs WHERE id = :unwanted_id;
SELECT is(pgtq.retry(:unwanted_id), false, 'a ready job is not retried');

-- prune
SELECT pgtq.complete(id, lease, as_of => '2030-01-01 00:00+00') FROM c;  -- ends it cancelled
SELECT pgtq.push('q', 'keep_me');
SELECT is(pgtq.prune('1 day', as_of => '2030-01-01 12:00+00'), 0, 'young finished jobs are kept');
SELECT is(pgtq.prune('1 hour', as_of => '2030-01-01 12:00+00'), 1, 'old finished jobs are pruned');
SELECT is((SELECT count(*)::int FROM pgtq.jobs WHERE task = 'keep_me'), 1, 'live jobs are never pruned');

-- workers
SELECT pgtq.register_worker('w1', 'host', 42, ARRAY['q'], '2030-01-01 00:00+00');
SELECT pgtq.register_worker('w1', 'host', 42, ARRAY['q'], '2030-01-01 00:00:30+00');
SELECT is((SELECT last_seen_at FROM pgtq.workers WHERE id = 'w1'), '2030-01-01 00:00:30+00'::timestamptz,
    'registering again refreshes last_seen_at');
SELECT pgtq.tick(NULL, '2030-01-01 00:05+00');
SELECT is((SELECT count(*)::int FROM pgtq.workers WHERE id = 'w1'), 0, 'tick forgets workers not seen lately');
SELECT pgtq.register_worker('w2', 'host', 43, ARRAY['q']);
SELECT is(pgtq.unregister_worker('w2'), true, 'a worker unregisters');

-- stats
SELECT is((SELECT jobs FROM pgtq.queue_stats WHERE queue = 'q' AND state = 'ready'), 2::bigint,
    'queue_stats counts jobs per queue and state');

SELECT * FROM finish();
ROLLBACK;
