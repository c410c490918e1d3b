-- The producer's opt-out of the wake-up (0.6.0): pgtq.notify = 'off'
-- (SET or SET LOCAL) keeps push, push_many and the other calls from
-- notifying channel pgtq; 'on', empty or unset notify; any other value is
-- refused with PT004 naming it, and the call writes nothing. (That nothing
-- is sent, and that 'on' sends: tests/py/test_notifications.py, which
-- listens.)
BEGIN;
SELECT plan(7);

SET LOCAL pgtq.notify = 'off';
SELECT isnt(pgtq.push('quiet', 'job'), NULL, 'push works with pgtq.notify off');
SELECT is((SELECT count(*) FROM pgtq.push_many('quiet', 'job', ARRAY['[1]', '[2]']::jsonb[])), 2::bigint,
          'push_many works with pgtq.notify off');
SET LOCAL pgtq.notify = 'on';
SELECT isnt(pgtq.push('quiet', 'job'), NULL, 'and with pgtq.notify on');
SET LOCAL pgtq.notify = '';
SELECT isnt(pgtq.push('quiet', 'job'), NULL, 'and with pgtq.notify empty (as after a SET LOCAL ends)');

SET LOCAL pgtq.notify = 'maybe';
SELECT throws_ok($$SELECT pgtq.push('quiet', 'job')$$, 'PT004',
    'pgtq: the setting pgtq.notify must be on or off, got ''maybe''', 'a value other than on or off is refused');
SELECT throws_ok($$SELECT pgtq.push_many('quiet', 'job', ARRAY['[1]']::jsonb[])$$, 'PT004',
    'pgtq: the setting pgtq.notify must be on or off, got ''maybe''', 'by push_many too');
SELECT is((SELECT count(*) FROM pgtq.jobs WHERE queue = 'quiet'), 5::bigint, 'and the refused calls wrote nothing');

SELECT * FROM finish();
ROLLBACK;
