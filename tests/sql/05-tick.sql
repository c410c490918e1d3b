-- tick(): promotes due scheduled jobs, rescues expired leases.
BEGIN;
SELECT plan(13);

SELECT pgtq.push('q', 'soon', run_at => '2030-01-01 00:01+00', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('q', 'later', run_at => '2030-01-01 01:00+00', as_of => '2030-01-01 00:00+00');
SELECT pgtq.push('other', 'soon_elsewhere', run_at => '2030-01-01 00:01+00', as_of => '2030-01-01 00:00+00');

SELECT is(pgtq.tick('q', '2030-01-01 00:00:30+00'), 0, 'nothing is due yet');
SELECT is(pgtq.tick('q', '2030-01-01 00:01+00'), 1, 'tick(queue) moves the due job of that queue');
SELECT is(state::text, 'ready', 'the due job is ready') FROM pgtq.jobs WHERE task = 'soon';
SELECT is(state::text, 'scheduled', 'the later job waits') FROM pgtq.jobs WHERE task = 'later';
SELECT is(state::text, 'scheduled', 'other queues are untouched by tick(queue)')
FROM pgtq.jobs WHERE task = 'soon_elsewhere';
SELECT is(pgtq.tick(NULL, '2030-01-01 00:01+00'), 1, 'tick() with no queue moves every queue');
SELECT is(pgtq.tick(NULL, '2030-01-01 00:01+00'), 0, 'a second tick moves nothing again');

-- rescue: the worker died holding a lease
CREATE TEMP TABLE c AS SELECT * FROM pgtq.pop('q', worker => 'dead-worker', lease => '1 minute',
                                              as_of => '2030-01-01 00:02+00');
SELECT is(pgtq.tick('q', '2030-01-01 00:02:59+00'), 0, 'a live lease is not rescued');
SELECT is(pgtq.tick('q', '2030-01-01 00:03:01+00'), 1, 'an expired lease is rescued');
SELECT is(j.state::text, 'scheduled', 'the rescued job waits for its retry')
FROM pgtq.jobs j JOIN c USING (id);
SELECT matches(j.last_error, '^lease expired at .* \(worker dead-worker stopped', 'the error says the lease expired')
FROM pgtq.jobs j JOIN c USING (id);
SELECT is(pgtq.complete(c.id, c.lease), false, 'the dead worker''s lease is stale now') FROM c;

-- rescue of the last attempt: failed
SELECT pgtq.push('q', 'last', max_attempts => 1);
DELETE FROM c;
INSERT INTO c SELECT * FROM pgtq.pop('q', lease => '1 minute', as_of => '2030-01-01 00:05+00') WHERE task = 'last';
SELECT pgtq.tick('q', '2030-01-01 00:07+00');
SELECT is(j.state::text, 'failed', 'a rescued last attempt fails the job') FROM pgtq.jobs j JOIN c USING (id);

SELECT * FROM finish();
ROLLBACK;
