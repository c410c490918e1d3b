-- Hand-off offers (0.16.0): a session offers its worker's room to the
-- pushes (offer_handoffs), opens and closes the offer (open_handoff,
-- close_handoff: the advisory lock (space, 0), held exclusively at session
-- level while open). Here, in one session, what each call writes, holds
-- and answers; a push handing a job to another session's offer, and what
-- that session hears: tests/py/test_handoff.py.
BEGIN;
SELECT plan(17);

-- Whether this session holds its offer's lock `lock_key` in `lock_mode`.
CREATE FUNCTION pg_temp.held(lock_key integer, lock_mode text) RETURNS boolean
LANGUAGE sql AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_catalog.pg_locks AS l, pgtq._handoff AS h
        WHERE h.pid = pg_backend_pid() AND l.locktype = 'advisory' AND l.pid = pg_backend_pid()
          AND l.granted AND l.mode = lock_mode AND l.objsubid = 2 AND l.objid = lock_key
          AND l.classid = h.space::oid)
$$;

SELECT is(pgtq.open_handoff(), false, 'open_handoff without an offer: nothing to open');
SELECT is(pgtq.close_handoff(), false, 'close_handoff without an offer: nothing to close');

SELECT matches(pgtq.offer_handoffs('w1', ARRAY['mail', 'sms', 'mail'], '1 minute'), '^pgtq_handoff_[0-9a-f]{32}$',
    'offer_handoffs returns a channel drawn at random');
SELECT results_eq($$SELECT worker, queues, lease FROM pgtq._handoff WHERE pid = pg_backend_pid()$$,
    $$VALUES ('w1'::text, ARRAY['mail', 'sms'], interval '1 minute')$$,
    'one offer for the session: its worker, its distinct queues, its lease');
SELECT is((SELECT h.space FROM pgtq._handoff AS h WHERE h.pid = pg_backend_pid()),
    (SELECT hashtext('pgtq handoff ' || h.channel) FROM pgtq._handoff AS h WHERE h.pid = pg_backend_pid()),
    'the first key of its locks comes from its channel');
SELECT is(pgtq.offer_handoffs('w2', ARRAY['news']),
    (SELECT channel FROM pgtq._handoff WHERE pid = pg_backend_pid()),
    'offered again: the same channel');
SELECT results_eq($$SELECT worker, queues, lease FROM pgtq._handoff$$,
    $$VALUES ('w2'::text, ARRAY['news'], interval '30 seconds')$$,
    'and the new worker, queues and the default lease (the worker''s own default)');
SELECT ok(NOT pg_temp.held(0, 'ExclusiveLock'), 'an offer starts closed');

SELECT is(pgtq.open_handoff(), true, 'open_handoff');
SELECT is(pgtq.open_handoff(), true, 'open_handoff again');
SELECT is((SELECT count(*)::int FROM pg_locks AS l, pgtq._handoff AS h
           WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.classid = h.space::oid
             AND l.objid = 0), 1,
    'an open offer holds its lock once, exclusively, however often it was opened');
SELECT ok(pg_temp.held(0, 'ExclusiveLock'), 'the lock a push tests');

SELECT ok(pgtq.push('news', 't') > 0, 'the session pushes to a queue of its own offer');
SELECT is((SELECT state::text FROM pgtq._job ORDER BY id DESC LIMIT 1), 'ready',
    'never handed to its own offer (its own lock does not stop its own try)');

SELECT is(pgtq.close_handoff(true), true, 'close_handoff (waiting: no push is handing it a job)');
SELECT ok(NOT pg_temp.held(0, 'ExclusiveLock') AND NOT pg_temp.held(1, 'ExclusiveLock'),
    'closed: no lock left');
SELECT is(pgtq.close_handoff(), false, 'closing a closed offer changes nothing');

SELECT * FROM finish();
ROLLBACK;
