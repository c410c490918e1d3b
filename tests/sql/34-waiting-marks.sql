-- Waiting marks (0.12.0): a worker about to wait for a queue marks it
-- (mark_waiting: the waiting mark, a session-level advisory lock held
-- shared), settles (waiting_settled: the push gate taken exclusively with
-- a try, until its transaction ends) and clears it once it is busy
-- (clear_waiting). An announcement notifies only when _anyone_waiting says
-- so: a mark held by another session, a worker settling, or a registered
-- worker that does not mark. Here, in one session, what each call holds
-- and answers; what other sessions see (notifications, a push in flight
-- while a worker settles): tests/py/test_notifications.py.
BEGIN;
SELECT plan(23);

-- The advisory locks of `queue` this session holds: key 0 is the mark, key 1 the gate.
CREATE FUNCTION pg_temp.held(queue text, lock_key integer, lock_mode text) RETURNS boolean
LANGUAGE sql AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_catalog.pg_locks AS l
        WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted AND l.mode = lock_mode
          AND l.objsubid = 2 AND l.objid = lock_key
          AND l.classid::text::bigint = (pgtq._waiting_space(queue)::bigint & 4294967295))
$$;

DELETE FROM pgtq._worker;

-- Marking and clearing.
SELECT is(pgtq.mark_waiting(ARRAY['mail', 'mail', 'sms']), true,
    'mark_waiting: settled at once when no push is in flight');
SELECT ok(pg_temp.held('mail', 0, 'ShareLock') AND pg_temp.held('sms', 0, 'ShareLock'),
    'the session holds the waiting mark of each queue, shared');
SELECT ok(pg_temp.held('mail', 1, 'ExclusiveLock'),
    'settling took the push gate exclusively, until the transaction ends');
SELECT lives_ok($$SELECT pgtq.clear_waiting(ARRAY['mail'])$$, 'clear_waiting');
SELECT ok(NOT pg_temp.held('mail', 0, 'ShareLock') AND pg_temp.held('sms', 0, 'ShareLock'),
    'one clear lets go of the mark of a queue named twice (it was taken once) and of no other queue');
SELECT is(pgtq.waiting_settled(ARRAY['sms']), true, 'waiting_settled alone');
SELECT ok(pg_temp.held('sms', 1, 'ExclusiveLock'), 'it holds the gate too');
SELECT lives_ok($$SELECT pgtq.clear_waiting(ARRAY['sms'])$$, 'the last mark cleared');
SELECT ok(NOT pg_temp.held('sms', 0, 'ShareLock'), 'and gone');

-- The answer of an announcement.
SELECT is(pgtq._anyone_waiting('news'), false,
    'no mark, no worker settling, no worker that does not mark: nobody can be waiting');
SELECT ok(pg_temp.held('news', 1, 'ShareLock'),
    'the look holds the push gate shared until the transaction ends');
SELECT lives_ok($$SELECT pgtq.mark_waiting(ARRAY['news'])$$, 'the session marks news itself');
SELECT is(pgtq._anyone_waiting('news'), false, 'the session''s own mark does not count');
SELECT lives_ok($$SELECT pgtq.clear_waiting(ARRAY['news'])$$, 'cleared');

SELECT pgtq.register_worker('old', 'host', 1, ARRAY['news']);
SELECT is(pgtq._anyone_waiting('news'), true,
    'a registered worker that does not mark (pgtq before 0.12.0): every announcement notifies');
SELECT pgtq.register_worker('old', 'host', 1, ARRAY['news'], marks_waiting => true);
SELECT is(pgtq._anyone_waiting('news'), false, 'registered again, marking: nobody waits');
SELECT is((SELECT marks_waiting FROM pgtq.workers WHERE id = 'old'), true,
    'pgtq.workers shows whether a worker marks the queues it waits for');
SELECT pgtq.register_worker('old', 'host', 1, ARRAY['news'], marks_waiting => NULL);
SELECT is((SELECT marks_waiting FROM pgtq._worker WHERE id = 'old'), false, 'NULL counts as false');

-- Bad input: an error naming the problem, and nothing marked.
SELECT throws_ok($$SELECT pgtq.mark_waiting(NULL)$$, 'PT004',
    'pgtq: queues must be a list of queue names, got NULL', 'a NULL list');
SELECT throws_ok($$SELECT pgtq.mark_waiting(ARRAY['fine', ''])$$, 'PT003',
    'pgtq: queue name must be 1 to 200 characters, got 0 characters', 'an empty queue name');
SELECT ok(NOT pg_temp.held('fine', 0, 'ShareLock'), 'a refused list marks none of its queues');
SELECT throws_ok($$SELECT pgtq.waiting_settled(ARRAY[NULL::text])$$, 'PT003',
    'pgtq: queue name must not be NULL', 'a NULL queue name');
SELECT throws_ok($$SELECT pgtq.clear_waiting(ARRAY[E'a\tb'])$$, 'PT003',
    'pgtq: queue name ''a' || chr(9) || 'b'' contains a control character', 'a control character');

SELECT * FROM finish();
ROLLBACK;
