-- The cron parser (_cron_parse), table-driven: each valid expression with
-- the values every field expands to and the flags the day and DST rules
-- read, and each invalid one with its exact error, which names the field.
BEGIN;
SELECT plan(77);

CREATE TEMP TABLE valid (
    expression text,
    minutes    integer[],
    hours      integer[],
    days       integer[],
    months     integer[],
    weekdays   integer[],
    days_star  boolean,  -- the day-of-month field starts with '*'
    wdays_star boolean,  -- the day-of-week field starts with '*'
    fixed_time boolean   -- neither minute nor hour starts with '*' (DST rule)
);
-- Shorthands for whole fields.
CREATE TEMP TABLE whole AS
SELECT ARRAY(SELECT generate_series(0, 59)) AS m, ARRAY(SELECT generate_series(0, 23)) AS h,
       ARRAY(SELECT generate_series(1, 31)) AS d, ARRAY(SELECT generate_series(1, 12)) AS mo,
       ARRAY(SELECT generate_series(0, 6)) AS w;

INSERT INTO valid
SELECT v.expression,
       coalesce(v.minutes::integer[], whole.m), coalesce(v.hours::integer[], whole.h),
       coalesce(v.days::integer[], whole.d), coalesce(v.months::integer[], whole.mo),
       coalesce(v.weekdays::integer[], whole.w), v.days_star, v.wdays_star, v.fixed_time
FROM whole, (VALUES
    -- NULL below means the whole field
    ('* * * * *', NULL, NULL, NULL, NULL, NULL, true, true, false),
    ('0 0 * * *', '{0}', '{0}', NULL, NULL, NULL, true, true, true),
    ('*/15 * * * *', '{0,15,30,45}', NULL, NULL, NULL, NULL, true, true, false),
    ('0-10/3 * * * *', '{0,3,6,9}', NULL, NULL, NULL, NULL, true, true, false),
    ('5/20 * * * *', '{5,25,45}', NULL, NULL, NULL, NULL, true, true, false),
    ('17,5,10,15-17 * * * *', '{5,10,15,16,17}', NULL, NULL, NULL, NULL, true, true, false),
    ('30 2 * * *', '{30}', '{2}', NULL, NULL, NULL, true, true, true),
    ('0 */6 * * *', '{0}', '{0,6,12,18}', NULL, NULL, NULL, true, true, false),
    ('0 9-17/4 * * *', '{0}', '{9,13,17}', NULL, NULL, NULL, true, true, true),
    ('59 23 31 12 6', '{59}', '{23}', '{31}', '{12}', '{6}', false, false, true),
    ('0 0 1,15,31 * *', '{0}', '{0}', '{1,15,31}', NULL, NULL, false, true, true),
    ('0 0 */10 * *', '{0}', '{0}', '{1,11,21,31}', NULL, NULL, true, true, true),
    ('0 0 29 2 *', '{0}', '{0}', '{29}', '{2}', NULL, false, true, true),
    ('0 0 * jan,Mar,DEC *', '{0}', '{0}', NULL, '{1,3,12}', NULL, true, true, true),
    ('0 0 * JAN-mar *', '{0}', '{0}', NULL, '{1,2,3}', NULL, true, true, true),
    ('0 0 * 2-11/3 *', '{0}', '{0}', NULL, '{2,5,8,11}', NULL, true, true, true),
    ('0 0 * * MON-FRI', '{0}', '{0}', NULL, NULL, '{1,2,3,4,5}', true, false, true),
    ('0 0 * * 0', '{0}', '{0}', NULL, NULL, '{0}', true, false, true),
    ('0 0 * * 7', '{0}', '{0}', NULL, NULL, '{0}', true, false, true),
    ('0 0 * * 5-7', '{0}', '{0}', NULL, NULL, '{0,5,6}', true, false, true),
    ('0 0 * * sun,SAT', '{0}', '{0}', NULL, NULL, '{0,6}', true, false, true),
    ('0 0 * * */2', '{0}', '{0}', NULL, NULL, '{0,2,4,6}', true, true, true),
    ('0 0 30 2 1', '{0}', '{0}', '{30}', '{2}', '{1}', false, false, true),
    ('@hourly', '{0}', NULL, NULL, NULL, NULL, true, true, false),
    ('@daily', '{0}', '{0}', NULL, NULL, NULL, true, true, true),
    ('@midnight', '{0}', '{0}', NULL, NULL, NULL, true, true, true),
    ('@DAILY', '{0}', '{0}', NULL, NULL, NULL, true, true, true),
    ('@weekly', '{0}', '{0}', NULL, NULL, '{0}', true, false, true),
    ('@monthly', '{0}', '{0}', '{1}', NULL, NULL, false, true, true),
    ('@yearly', '{0}', '{0}', '{1}', '{1}', NULL, false, true, true),
    ('@annually', '{0}', '{0}', '{1}', '{1}', NULL, false, true, true),
    (E' 0\t0  *\n* \t* ', '{0}', '{0}', NULL, NULL, NULL, true, true, true)
) AS v (expression, minutes, hours, days, months, weekdays, days_star, wdays_star, fixed_time);

SELECT is(pgtq._cron_parse(v.expression),
          ROW(v.minutes, v.hours, v.days, v.months, v.weekdays, v.days_star, v.wdays_star, v.fixed_time)::pgtq._cron_fields,
          format('parses %s', replace(replace(quote_literal(v.expression), E'\t', '\t'), E'\n', '\n')))
FROM valid AS v ORDER BY v.expression;

CREATE TEMP TABLE invalid (expression text, message text);
INSERT INTO invalid VALUES
    (NULL, 'pgtq: cron must not be NULL'),
    ('', 'pgtq: bad cron expression '''': 0 fields, expected 5 (minute hour day-of-month month day-of-week) '
         'or a macro such as @daily'),
    ('* * * *', 'pgtq: bad cron expression ''* * * *'': 4 fields, expected 5 (minute hour day-of-month month '
                'day-of-week) or a macro such as @daily'),
    ('0 * * * * *', 'pgtq: bad cron expression ''0 * * * * *'': 6 fields, expected 5 (minute hour day-of-month '
                    'month day-of-week) or a macro such as @daily'),
    ('@reboot', 'pgtq: bad cron expression ''@reboot'': unknown macro, expected @hourly, @daily, @midnight, '
                '@weekly, @monthly, @yearly or @annually'),
    ('@every 5m', 'pgtq: bad cron expression ''@every 5m'': unknown macro, expected @hourly, @daily, @midnight, '
                  '@weekly, @monthly, @yearly or @annually'),
    ('60 * * * *', 'pgtq: bad cron expression ''60 * * * *'': minute field ''60'': 60 is out of range 0-59'),
    ('0 24 * * *', 'pgtq: bad cron expression ''0 24 * * *'': hour field ''24'': 24 is out of range 0-23'),
    ('0 0 0 * *', 'pgtq: bad cron expression ''0 0 0 * *'': day-of-month field ''0'': 0 is out of range 1-31'),
    ('0 0 32 * *', 'pgtq: bad cron expression ''0 0 32 * *'': day-of-month field ''32'': 32 is out of range 1-31'),
    ('0 0 * 13 *', 'pgtq: bad cron expression ''0 0 * 13 *'': month field ''13'': 13 is out of range 1-12'),
    ('0 0 * 0 *', 'pgtq: bad cron expression ''0 0 * 0 *'': month field ''0'': 0 is out of range 1-12'),
    ('0 0 * * 8', 'pgtq: bad cron expression ''0 0 * * 8'': day-of-week field ''8'': 8 is out of range 0-7'),
    ('99999999999 * * * *', 'pgtq: bad cron expression ''99999999999 * * * *'': minute field ''99999999999'': '
                            '99999999999 is out of range 0-59'),
    ('0 0 * foo *', 'pgtq: bad cron expression ''0 0 * foo *'': month field ''foo'': ''foo'' is neither a number '
                    'nor one of JAN-DEC'),
    ('0 0 * * sunday', 'pgtq: bad cron expression ''0 0 * * sunday'': day-of-week field ''sunday'': ''sunday'' is '
                       'neither a number nor one of SUN-SAT'),
    ('0 0 * * jan', 'pgtq: bad cron expression ''0 0 * * jan'': day-of-week field ''jan'': ''jan'' is neither a '
                    'number nor one of SUN-SAT'),
    ('0 mon * * *', 'pgtq: bad cron expression ''0 mon * * *'': hour field ''mon'': ''mon'' is not a number'),
    ('? * * * *', 'pgtq: bad cron expression ''? * * * *'': minute field ''?'': ''?'' is not a number'),
    ('1.5 * * * *', 'pgtq: bad cron expression ''1.5 * * * *'': minute field ''1.5'': ''1.5'' is not a number'),
    ('*/0 * * * *', 'pgtq: bad cron expression ''*/0 * * * *'': minute field ''*/0'': step 0 is out of range 1-60'),
    ('*/61 * * * *', 'pgtq: bad cron expression ''*/61 * * * *'': minute field ''*/61'': step 61 is out of range '
                     '1-60'),
    ('0 */25 * * *', 'pgtq: bad cron expression ''0 */25 * * *'': hour field ''*/25'': step 25 is out of range 1-24'),
    ('0 0 * * */8', 'pgtq: bad cron expression ''0 0 * * */8'': day-of-week field ''*/8'': step 8 is out of range '
                    '1-7'),
    ('*/x * * * *', 'pgtq: bad cron expression ''*/x * * * *'': minute field ''*/x'': step ''x'' is not a number'),
    ('*/ * * * *', 'pgtq: bad cron expression ''*/ * * * *'': minute field ''*/'': step '''' is not a number'),
    ('5-1 * * * *', 'pgtq: bad cron expression ''5-1 * * * *'': minute field ''5-1'': range 5-1 goes backwards'),
    ('0 0 * * FRI-MON', 'pgtq: bad cron expression ''0 0 * * FRI-MON'': day-of-week field ''FRI-MON'': range '
                        'FRI-MON goes backwards'),
    ('1,,2 * * * *', 'pgtq: bad cron expression ''1,,2 * * * *'': minute field ''1,,2'': empty item in the list'),
    ('1, * * * *', 'pgtq: bad cron expression ''1, * * * *'': minute field ''1,'': empty item in the list'),
    ('1-2-3 * * * *', 'pgtq: bad cron expression ''1-2-3 * * * *'': minute field ''1-2-3'': ''1-2-3'' is not *, '
                      'a value or a range a-b, with an optional /step'),
    ('-5 * * * *', 'pgtq: bad cron expression ''-5 * * * *'': minute field ''-5'': ''-5'' is not *, a value or a '
                   'range a-b, with an optional /step'),
    ('5- * * * *', 'pgtq: bad cron expression ''5- * * * *'': minute field ''5-'': ''5-'' is not *, a value or a '
                   'range a-b, with an optional /step'),
    ('*-5 * * * *', 'pgtq: bad cron expression ''*-5 * * * *'': minute field ''*-5'': ''*-5'' is not *, a value '
                    'or a range a-b, with an optional /step'),
    ('/5 * * * *', 'pgtq: bad cron expression ''/5 * * * *'': minute field ''/5'': ''/5'' is not *, a value or a '
                   'range a-b, with an optional /step'),
    ('1/2/3 * * * *', 'pgtq: bad cron expression ''1/2/3 * * * *'': minute field ''1/2/3'': ''1/2/3'' is not *, '
                      'a value or a range a-b, with an optional /step'),
    ('0 0 30 2 *', 'pgtq: bad cron expression ''0 0 30 2 *'': day-of-month field ''30'': no month of month field '
                   '''2'' has such a day'),
    ('0 0 31 4,6,9,11 *', 'pgtq: bad cron expression ''0 0 31 4,6,9,11 *'': day-of-month field ''31'': no month '
                          'of month field ''4,6,9,11'' has such a day'),
    ('0 0 30-31 feb */2', 'pgtq: bad cron expression ''0 0 30-31 feb */2'': day-of-month field ''30-31'': no month '
                          'of month field ''feb'' has such a day'),
    ('it''s; DROP TABLE x', 'pgtq: bad cron expression ''it''''s; DROP TABLE x'': 4 fields, expected 5 (minute hour '
                            'day-of-month month day-of-week) or a macro such as @daily');

SELECT throws_ok(format('SELECT pgtq._cron_parse(%L)', i.expression), 'PT004', i.message,
                 format('refuses %s', coalesce(quote_literal(i.expression), 'NULL')))
FROM invalid AS i ORDER BY i.expression NULLS FIRST;

SELECT throws_ok(format('SELECT pgtq._cron_parse(%L)', repeat('1,', 500) || '1 * * * *'), 'PT004',
    'pgtq: cron must be at most 1000 characters, got 1009 characters', 'refuses an expression over 1000 characters');
SELECT lives_ok(format('SELECT pgtq._cron_parse(%L)', repeat('1,', 495) || '1 * * * *'),
    'takes a long list within 1000 characters');

-- The errors of pgtq.schedule are the parser's, so every one names the
-- field that is wrong: checked above, for each field.
SELECT is((SELECT count(DISTINCT substring(i.message FROM ': (minute|hour|day-of-month|month|day-of-week) field '))::int
           FROM invalid AS i),
    5, 'the invalid expressions cover an error in each of the five fields');
SELECT is((SELECT count(*)::int FROM valid), 32, 'thirty-two valid expressions');
SELECT is((SELECT count(*)::int FROM invalid), 40, 'forty invalid ones');

SELECT * FROM finish();
ROLLBACK;
