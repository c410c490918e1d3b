-- The next occurrences of a cron expression in a time zone (_cron_next),
-- table-driven, with literal times: month ends, Feb 29 (across 2100, not a
-- leap year), the day-of-month / day-of-week rule, and daylight-saving
-- changes in a northern (Europe/Paris, America/New_York) and a southern
-- (Australia/Sydney) zone. 2030's changes, in UTC:
--   Paris      forward 31 Mar 01:00 (02:00 CET -> 03:00 CEST), back 27 Oct 01:00 (03:00 CEST -> 02:00 CET)
--   New York   forward 10 Mar 07:00 (02:00 EST -> 03:00 EDT),  back 3 Nov 06:00 (02:00 EDT -> 01:00 EST)
--   Sydney     back 6 Apr 16:00 (3 am AEDT -> 2 am AEST),      forward 5 Oct 16:00 (2 am AEST -> 3 am AEDT)
-- The rule (Vixie cron's): a fixed-time schedule runs once per day, at the
-- jump when its time is skipped and at the first passing when its time
-- comes twice; a wildcard schedule (minute or hour field starting with
-- '*') runs at every real instant its wall-clock time matches.
BEGIN;
SELECT plan(37);
SET LOCAL TIME ZONE 'UTC';

-- The first n occurrences after `after`, each computed from the previous.
CREATE FUNCTION pg_temp.next_runs(cron text, zone text, after timestamptz, n integer)
RETURNS timestamptz[]
LANGUAGE plpgsql AS $$
DECLARE
    fields pgtq._cron_fields := pgtq._cron_parse(cron);
    runs   timestamptz[] := '{}';
BEGIN
    FOR i IN 1 .. n LOOP
        after := pgtq._cron_next(fields, zone, after);
        runs := runs || after;
    END LOOP;
    RETURN runs;
END
$$;

CREATE TEMP TABLE cases (cron text, zone text, after timestamptz, runs timestamptz[], what text);
INSERT INTO cases VALUES
    -- plain times and strictness
    ('* * * * *', 'UTC', '2030-01-01 00:00:30+00', '{2030-01-01 00:01+00, 2030-01-01 00:02+00, 2030-01-01 00:03+00}',
     'every minute, from the next whole minute'),
    ('* * * * *', 'UTC', '2030-01-01 00:01:00+00', '{2030-01-01 00:02+00}',
     'strictly after: a time on an occurrence gives the next one'),
    ('*/15 * * * *', 'UTC', '2030-01-01 23:50+00', '{2030-01-02 00:00+00, 2030-01-02 00:15+00}',
     'a step crosses midnight'),
    ('59 23 31 12 *', 'UTC', '2030-06-01 00:00+00', '{2030-12-31 23:59+00, 2031-12-31 23:59+00}',
     'the last minute of the year'),
    ('0 9 * * *', 'Asia/Kolkata', '2030-01-01 00:00+00', '{2030-01-01 03:30+00}',
     'a half-hour offset zone'),
    ('@yearly', 'Pacific/Auckland', '2030-06-01 00:00+00', '{2030-12-31 11:00+00}',
     'new year in Auckland (summer time, +13) is 11:00 UTC the day before'),
    ('@weekly', 'UTC', '2030-01-02 00:00+00', '{2030-01-06 00:00+00, 2030-01-13 00:00+00}',
     '@weekly is Sunday midnight'),
    ('0 0 * * 7', 'UTC', '2030-01-02 00:00+00', '{2030-01-06 00:00+00}', 'day-of-week 7 is Sunday'),
    -- month ends and leap days
    ('0 0 1 * *', 'UTC', '2030-01-31 12:00+00', '{2030-02-01 00:00+00, 2030-03-01 00:00+00}', 'the first of each month'),
    ('0 0 31 * *', 'UTC', '2030-01-31 00:00+00', '{2030-03-31 00:00+00, 2030-05-31 00:00+00, 2030-07-31 00:00+00}',
     'day 31 skips the months without one'),
    ('0 12 30 * *', 'UTC', '2030-01-30 12:00+00', '{2030-03-30 12:00+00, 2030-04-30 12:00+00}',
     'day 30 skips February'),
    ('0 0 29 2 *', 'UTC', '2030-01-01 00:00+00', '{2032-02-29 00:00+00, 2036-02-29 00:00+00}', 'Feb 29 of leap years'),
    ('0 0 29 2 *', 'UTC', '2096-03-01 00:00+00', '{2104-02-29 00:00+00}', '2100 has no Feb 29'),
    ('0 0 29 2 *', 'America/New_York', '2030-01-01 00:00+00', '{2032-02-29 05:00+00}', 'Feb 29 in New York'),
    -- day of month and day of week
    ('0 9 13 * FRI', 'UTC', '2030-09-01 00:00+00',
     '{2030-09-06 09:00+00, 2030-09-13 09:00+00, 2030-09-20 09:00+00, 2030-09-27 09:00+00, 2030-10-04 09:00+00,'
     ' 2030-10-11 09:00+00, 2030-10-13 09:00+00}',
     'both day fields restricted: the 13th or a Friday (Sunday 13 October too)'),
    ('0 0 */2 * MON', 'UTC', '2030-09-01 00:00+00', '{2030-09-09 00:00+00, 2030-09-23 00:00+00, 2030-10-07 00:00+00}',
     'a day field starting with * : odd days that are Mondays'),
    ('0 0 * * MON-FRI', 'UTC', '2030-01-04 12:00+00', '{2030-01-07 00:00+00}', 'weekdays skip the weekend'),
    -- spring forward: a fixed time in the skipped hour runs once, at the jump
    ('30 2 * * *', 'Europe/Paris', '2030-03-29 12:00+00',
     '{2030-03-30 01:30+00, 2030-03-31 01:00+00, 2030-04-01 00:30+00}',
     'Paris: 02:30 is skipped on 31 March, so it runs at the jump (03:00 CEST), once'),
    ('0 2 * * *', 'Europe/Paris', '2030-03-30 12:00+00', '{2030-03-31 01:00+00, 2030-04-01 00:00+00}',
     'Paris: 02:00 runs at the jump too'),
    ('30 2 * * *', 'America/New_York', '2030-03-09 12:00+00', '{2030-03-10 07:00+00, 2030-03-11 06:30+00}',
     'New York: 02:30 runs at the jump (03:00 EDT)'),
    ('30 2 * * *', 'Australia/Sydney', '2030-10-04 00:00+00',
     '{2030-10-04 16:30+00, 2030-10-05 16:00+00, 2030-10-06 15:30+00}',
     'Sydney: 02:30 is skipped on 6 October, so it runs at the jump (03:00 AEDT), once'),
    -- fall back: a fixed time in the repeated hour runs once, at its first passing
    ('30 2 * * *', 'Europe/Paris', '2030-10-26 12:00+00', '{2030-10-27 00:30+00, 2030-10-28 01:30+00}',
     'Paris: 02:30 comes twice on 27 October and runs at the first (CEST) only'),
    ('30 1 * * *', 'America/New_York', '2030-11-02 12:00+00', '{2030-11-03 05:30+00, 2030-11-04 06:30+00}',
     'New York: 01:30 comes twice on 3 November and runs at the first (EDT) only'),
    ('30 2 * * *', 'Australia/Sydney', '2030-04-05 00:00+00',
     '{2030-04-05 15:30+00, 2030-04-06 15:30+00, 2030-04-07 16:30+00}',
     'Sydney: 02:30 comes twice on 7 April and runs at the first (AEDT) only'),
    ('30 2 * * *', 'Europe/Paris', '2030-10-27 00:45+00', '{2030-10-28 01:30+00}',
     'Paris: from inside the repeated hour, the second 02:30 is not a run'),
    ('15,45 1-3 * * *', 'America/New_York', '2030-11-03 05:00+00',
     '{2030-11-03 05:15+00, 2030-11-03 05:45+00, 2030-11-03 07:15+00, 2030-11-03 07:45+00, 2030-11-03 08:15+00}',
     'New York: a list of fixed hours runs 01:15 and 01:45 once, then 02:15'),
    -- wildcard schedules follow real time
    ('0 * * * *', 'Europe/Paris', '2030-10-26 22:30+00',
     '{2030-10-26 23:00+00, 2030-10-27 00:00+00, 2030-10-27 01:00+00, 2030-10-27 02:00+00}',
     'Paris, hourly: every real hour through the fall-back, 02:00 CEST and 02:00 CET both'),
    ('*/20 * * * *', 'Europe/Paris', '2030-10-27 00:50+00',
     '{2030-10-27 01:00+00, 2030-10-27 01:20+00, 2030-10-27 01:40+00, 2030-10-27 02:00+00}',
     'Paris, every 20 minutes, from 02:50 CEST: on with the repeated hour, no gap'),
    ('*/30 * * * *', 'Europe/Paris', '2030-03-31 00:15+00',
     '{2030-03-31 00:30+00, 2030-03-31 01:00+00, 2030-03-31 01:30+00}',
     'Paris, every 30 minutes: nothing in the skipped hour, every real half hour'),
    ('* * * * *', 'America/New_York', '2030-03-10 06:58+00',
     '{2030-03-10 06:59+00, 2030-03-10 07:00+00, 2030-03-10 07:01+00}',
     'New York, every minute: 01:59 EST then 03:00 EDT'),
    ('0 * * * *', 'Australia/Sydney', '2030-04-06 14:30+00',
     '{2030-04-06 15:00+00, 2030-04-06 16:00+00, 2030-04-06 17:00+00}',
     'Sydney, hourly: 02:00 AEDT and 02:00 AEST both, one hour apart'),
    ('0 */2 * * *', 'Europe/Paris', '2030-03-30 22:30+00', '{2030-03-30 23:00+00, 2030-03-31 02:00+00}',
     'Paris, every 2 hours: the skipped 02:00 is not run (00:00 CET, then 04:00 CEST)');

SELECT is(pg_temp.next_runs(c.cron, c.zone, c.after, cardinality(c.runs)), c.runs,
          format('%s: %s in %s', c.what, c.cron, c.zone))
FROM cases AS c ORDER BY c.zone, c.after;

-- Sparse expressions step over whole months, not minutes or days: the
-- next Feb 29 after March 2096 (eight years on) costs a handful of field
-- look-ups, counted with function statistics (no clock involved).
SET LOCAL track_functions = 'pl';
SELECT pgtq._cron_next(pgtq._cron_parse('0 0 29 2 *'), 'UTC', '2096-03-01 00:00+00');
SELECT cmp_ok(pg_stat_get_xact_function_calls('pgtq._cron_first(integer[], integer)'::regprocedure), '<', 40::bigint,
    'eight years to the next Feb 29 take under 40 field look-ups (about two per year)');

-- Every zone name PostgreSQL knows works.
SELECT is((SELECT count(*)::int FROM pg_timezone_names AS z
           WHERE pgtq._cron_next(pgtq._cron_parse('0 12 * * *'), z.name, '2030-06-01 00:00+00') IS NULL),
    0, 'a next run in every zone of pg_timezone_names');
SELECT is((SELECT count(*)::int FROM pg_timezone_names AS z,
                  LATERAL pgtq._cron_next(pgtq._cron_parse('0 12 * * *'), z.name, '2030-06-01 00:00+00') AS n
           WHERE timezone(z.name, n)::time <> '12:00' OR n > '2030-06-02 00:00+00'),
    0, 'and it is the next noon on that zone''s wall clock');

-- Over all of 2030 in the three zones, through both changes: a fixed daily
-- time runs once on each of the 365 local days, and an hourly wildcard
-- runs once in each of the 8760 real hours.
CREATE FUNCTION pg_temp.runs_in_2030(cron text, zone text)
RETURNS SETOF timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    fields pgtq._cron_fields := pgtq._cron_parse(cron);
    run    timestamptz := timezone(zone, timestamp '2030-01-01 00:00') - interval '1 microsecond';
BEGIN
    LOOP
        run := pgtq._cron_next(fields, zone, run);
        EXIT WHEN run >= timezone(zone, timestamp '2031-01-01 00:00');
        RETURN NEXT run;
    END LOOP;
END
$$;
SELECT is((SELECT array_agg(DISTINCT (SELECT count(DISTINCT timezone(z.zone, r)::date) || '/' || count(*)
                                      FROM pg_temp.runs_in_2030('30 2 * * *', z.zone) AS r))
           FROM (VALUES ('Europe/Paris'), ('America/New_York'), ('Australia/Sydney')) AS z (zone)),
    ARRAY['365/365'], '30 2 * * *: 365 runs on 365 local days in each zone');
SELECT is((SELECT array_agg(DISTINCT (SELECT count(DISTINCT date_trunc('hour', r)) || '/' || count(*)
                                      FROM pg_temp.runs_in_2030('0 * * * *', z.zone) AS r
                                      WHERE r >= '2030-01-02 00:00+00' AND r < '2030-12-31 00:00+00'))
           FROM (VALUES ('Europe/Paris'), ('America/New_York'), ('Australia/Sydney')) AS z (zone)),
    ARRAY['8712/8712'], '0 * * * *: one run in each of the 8712 real hours from 2 January to 31 December');

SELECT * FROM finish();
ROLLBACK;
