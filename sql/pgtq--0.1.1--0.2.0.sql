-- pgtq 0.1.1 -> 0.2.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_2_0. Every definition here is the one of sql/pgtq.sql at
-- 0.2.0, to the letter (a test compares the catalogs). Each feature has
-- its own part below; the privileges come last.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.2.0'::text $$;

-- ===========================================================================
-- Periodic (cron) schedules
--
--   * pgtq.schedule(name, cron, queue, task, ...) upserts a schedule,
--     pgtq.unschedule(name) removes one, the view pgtq.schedules shows them.
--   * tick() enqueues each due occurrence once (_tick_schedules).
--   * The cron parser and the next occurrence in a time zone are private
--     helpers (_cron_*), with the type _cron_fields.
-- ===========================================================================

-- A cron expression taken apart by _cron_parse (private): each field as
-- the ascending list of the values it allows, and the flags of the rules
-- that look at how a field was written.
CREATE TYPE pgtq._cron_fields AS (
    minutes        integer[],  -- 0-59
    hours          integer[],  -- 0-23
    days           integer[],  -- days of the month, 1-31
    months         integer[],  -- 1-12
    weekdays       integer[],  -- 0-6, Sunday = 0 (7 is read as 0)
    days_star      boolean,    -- the day-of-month field starts with '*'
    weekdays_star  boolean,    -- the day-of-week field starts with '*'
    fixed_time     boolean     -- neither the minute nor the hour field starts with '*'
);
COMMENT ON TYPE pgtq._cron_fields IS 'A parsed cron expression (private to pgtq: see _cron_parse).';

-- Periodic tasks: one row per schedule name, written by schedule() and
-- unschedule(), advanced by tick(). next_run_at is the next occurrence of
-- the cron expression in its time zone; last_run_at the occurrence last
-- enqueued (as the job's run_at), last_job_id that job. No foreign key to
-- jobs: pruning jobs must never touch this table.
CREATE TABLE pgtq._schedule (
    name          text NOT NULL,
    cron          text NOT NULL,
    timezone      text NOT NULL,
    queue         text NOT NULL,
    task          text NOT NULL,
    args          jsonb NOT NULL DEFAULT '[]',
    kwargs        jsonb NOT NULL DEFAULT '{}',
    priority      integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL DEFAULT 25,
    next_run_at   timestamptz NOT NULL,
    last_run_at   timestamptz,
    last_job_id   bigint,
    last_error    text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    CONSTRAINT schedule_pkey PRIMARY KEY (name),
    CONSTRAINT schedule_args_array_ck CHECK (jsonb_typeof(args) = 'array'),
    CONSTRAINT schedule_kwargs_object_ck CHECK (jsonb_typeof(kwargs) = 'object'),
    CONSTRAINT schedule_max_attempts_ck CHECK (max_attempts BETWEEN 1 AND 1000),
    CONSTRAINT schedule_runs_in_order_ck CHECK (last_run_at < next_run_at)
);
-- tick: schedules that have come due.
CREATE INDEX schedule_next_run_idx ON pgtq._schedule (next_run_at);

-- A table that an update script creates is a member of the extension:
-- mark it for pg_dump, as the install script does (ALTER EXTENSION UPDATE
-- only; the alembic route owns plain tables).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pgtq') THEN
        PERFORM pg_catalog.pg_extension_config_dump('pgtq._schedule', '');
    END IF;
END
$$;

-- Periodic tasks: what each schedule enqueues, when it runs next, and what
-- its last run enqueued (or why it could not).
CREATE VIEW pgtq.schedules AS
SELECT s.name, s.cron, s.timezone, s.queue, s.task, s.args, s.kwargs, s.priority,
       s.max_attempts, s.next_run_at, s.last_run_at, s.last_job_id, s.last_error,
       s.created_at, s.updated_at
FROM pgtq._schedule AS s;
COMMENT ON VIEW pgtq.schedules IS 'Periodic tasks: cron, time zone, the job they enqueue, next and last run.';

-- Guarantees: why push would refuse `args` and `kwargs` for `task`, worded
-- as push words it: code PT001 (args not a JSON array), PT002 (kwargs not
-- a JSON object) or PT005 (args + kwargs over max_payload_bytes, sizes as
-- pg_column_size gives them) with the message; both NULL when push would
-- take them. Raises nothing: schedule() raises the problem, tick() records
-- it on the schedule and goes on with the others (no subtransaction).
CREATE FUNCTION pgtq._job_payload_problem(task text, args jsonb, kwargs jsonb,
                                          OUT code text, OUT message text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    payload_limit integer;
    payload_size  integer;
BEGIN
    IF args IS NULL OR jsonb_typeof(args) <> 'array' THEN
        code := 'PT001';
        message := format('pgtq: args must be a JSON array, got %s', coalesce(jsonb_typeof(args), 'NULL'));
    ELSIF kwargs IS NULL OR jsonb_typeof(kwargs) <> 'object' THEN
        code := 'PT002';
        message := format('pgtq: kwargs must be a JSON object, got %s', coalesce(jsonb_typeof(kwargs), 'NULL'));
    ELSE
        SELECT s.max_payload_bytes INTO payload_limit FROM pgtq._settings AS s;
        payload_size := pg_column_size(args) + pg_column_size(kwargs);
        IF payload_size > payload_limit THEN
            code := 'PT005';
            message := format('pgtq: payload of task %s is %s bytes, over the limit of %s bytes',
                              quote_literal(task), payload_size, payload_limit);
        END IF;
    END IF;
END
$$;

-- Guarantees: raises PT004 naming `parameter` when its text `value` is
-- NULL or longer than max_length characters (with its length); returns
-- quietly otherwise. Bounds what the cron parser and the time zone check
-- are given.
CREATE FUNCTION pgtq._check_text(parameter text, value text, max_length integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION 'pgtq: % must not be NULL', parameter USING ERRCODE = 'PT004';
    END IF;
    IF length(value) > max_length THEN
        RAISE EXCEPTION 'pgtq: % must be at most % characters, got % characters', parameter, max_length,
                length(value)
            USING ERRCODE = 'PT004';
    END IF;
END
$$;

-- Guarantees: raises PT004 saying that `cron` is a bad cron expression
-- because of `problem`, naming the field and its text when the problem is
-- in one field (field and source NULL otherwise). Every parse error of
-- _cron_parse is worded here.
CREATE FUNCTION pgtq._cron_reject(cron text, field text, source text, problem text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF field IS NULL THEN
        RAISE EXCEPTION 'pgtq: bad cron expression %: %', quote_literal(cron), problem
            USING ERRCODE = 'PT004';
    END IF;
    RAISE EXCEPTION 'pgtq: bad cron expression %: % field %: %', quote_literal(cron), field,
            quote_literal(source), problem
        USING ERRCODE = 'PT004';
END
$$;

-- Guarantees: the number that `token` stands for in cron field `field`:
-- digits, or (where `names` is given) a name of that list in any case,
-- the first name standing for `low`. Raises PT004 (_cron_reject) naming
-- the field unless the number lies in low..high.
CREATE FUNCTION pgtq._cron_value(cron text, field text, source text, token text,
                                 low integer, high integer, names text[])
RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    name_index integer := array_position(names, lower(token));
BEGIN
    IF token <> '' AND btrim(token, '0123456789') = '' THEN
        IF length(token) <= 4 AND token::integer BETWEEN low AND high THEN
            RETURN token::integer;
        END IF;
        PERFORM pgtq._cron_reject(cron, field, source, format('%s is out of range %s-%s', token, low, high));
    ELSIF name_index IS NOT NULL THEN
        RETURN low + name_index - 1;
    ELSIF names IS NULL THEN
        PERFORM pgtq._cron_reject(cron, field, source, format('%s is not a number', quote_literal(token)));
    END IF;
    PERFORM pgtq._cron_reject(cron, field, source,
        format('%s is neither a number nor one of %s-%s', quote_literal(token),
               upper(names[1]), upper(names[cardinality(names)])));
END
$$;

-- Guarantees: the values one field of a cron expression allows, ascending
-- and without duplicates. `source` is a comma-separated list of items,
-- each `*`, a value or a range `a-b`, optionally followed by `/step`
-- (`*/15`, `1-10/2`; `a/step` runs from a to the end of the field).
-- Fields and their values: minute 0-59, hour 0-23, day-of-month 1-31,
-- month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT (0 and 7 are Sunday;
-- `*` is 0-6). Raises PT004 (_cron_reject) naming the field and the
-- problem: an empty item, a malformed item, a value out of range, an
-- unknown name, a range going backwards, a step out of 1..field width.
-- Plain string functions and loops, no regular expression or query: it
-- runs each time tick() enqueues a periodic job.
CREATE FUNCTION pgtq._cron_field(cron text, field text, source text)
RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    low      integer;
    high     integer;  -- the largest value that may be written (7 in day-of-week)
    top      integer;  -- where `*` and `a/step` end (6 in day-of-week)
    names    text[];
    item     text;
    span     text;     -- the item without its /step
    first    integer;
    last     integer;
    step     integer;
    value    integer;
    chosen   boolean[] := '{}';
    allowed  integer[] := '{}';
BEGIN
    CASE field
        WHEN 'minute' THEN low := 0; high := 59; top := 59;
        WHEN 'hour' THEN low := 0; high := 23; top := 23;
        WHEN 'day-of-month' THEN low := 1; high := 31; top := 31;
        WHEN 'month' THEN
            low := 1; high := 12; top := 12;
            names := '{jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec}';
        WHEN 'day-of-week' THEN
            low := 0; high := 7; top := 6;
            names := '{sun,mon,tue,wed,thu,fri,sat}';
    END CASE;
    FOREACH item IN ARRAY string_to_array(source, ',') LOOP
        span := split_part(item, '/', 1);
        IF item = '' THEN
            PERFORM pgtq._cron_reject(cron, field, source, 'empty item in the list');
        ELSIF span = '' OR item LIKE '%/%/%' OR span LIKE '%-%-%' OR span LIKE '-%' OR span LIKE '%-'
              OR (span LIKE '%*%' AND span <> '*') THEN
            PERFORM pgtq._cron_reject(cron, field, source,
                format('%s is not *, a value or a range a-b, with an optional /step', quote_literal(item)));
        END IF;
        IF span = '*' THEN
            first := low;
            last := top;
        ELSE
            first := pgtq._cron_value(cron, field, source, split_part(span, '-', 1), low, high, names);
            last := CASE WHEN span LIKE '%-%'
                         THEN pgtq._cron_value(cron, field, source, split_part(span, '-', 2), low, high, names)
                         WHEN item LIKE '%/%' THEN greatest(top, first)
                         ELSE first END;
            IF first > last THEN
                PERFORM pgtq._cron_reject(cron, field, source, format('range %s goes backwards', span));
            END IF;
        END IF;
        step := 1;
        IF item LIKE '%/%' THEN
            IF split_part(item, '/', 2) = '' OR btrim(split_part(item, '/', 2), '0123456789') <> '' THEN
                PERFORM pgtq._cron_reject(cron, field, source,
                    format('step %s is not a number', quote_literal(split_part(item, '/', 2))));
            ELSIF length(split_part(item, '/', 2)) > 4
                  OR split_part(item, '/', 2)::integer NOT BETWEEN 1 AND top - low + 1 THEN
                PERFORM pgtq._cron_reject(cron, field, source,
                    format('step %s is out of range 1-%s', split_part(item, '/', 2), top - low + 1));
            END IF;
            step := split_part(item, '/', 2)::integer;
        END IF;
        FOR value IN first .. last BY step LOOP
            chosen[value % (top + 1)] := true;  -- day-of-week 7 is 0
        END LOOP;
    END LOOP;
    FOR value IN low .. top LOOP
        IF chosen[value] THEN
            allowed := allowed || value;
        END IF;
    END LOOP;
    RETURN allowed;
END
$$;

-- Guarantees: the cron expression `cron` taken apart (pgtq._cron_fields),
-- or PT004 naming the problem (and the field, when it is in one). It has
-- the five fields minute, hour, day-of-month, month and day-of-week
-- (_cron_field), separated by blanks, or is one of the macros @hourly
-- (0 * * * *), @daily and @midnight (0 0 * * *), @weekly (0 0 * * 0),
-- @monthly (0 0 1 * *), @yearly and @annually (0 0 1 1 *), in any case.
-- An expression that can never come is refused: a day-of-month no allowed
-- month has (0 0 30 2 *), unless the day-of-week field offers days too.
-- A NULL cron, or one over 1000 characters, raises PT004.
CREATE FUNCTION pgtq._cron_parse(cron text)
RETURNS pgtq._cron_fields
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    expression text;
    fields     text[];
    parsed     pgtq._cron_fields;
BEGIN
    PERFORM pgtq._check_text('cron', cron, 1000);
    expression := btrim(cron, E' \t\r\n');
    IF left(expression, 1) = '@' THEN
        expression := CASE lower(expression)
            WHEN '@hourly' THEN '0 * * * *'
            WHEN '@daily' THEN '0 0 * * *'
            WHEN '@midnight' THEN '0 0 * * *'
            WHEN '@weekly' THEN '0 0 * * 0'
            WHEN '@monthly' THEN '0 0 1 * *'
            WHEN '@yearly' THEN '0 0 1 1 *'
            WHEN '@annually' THEN '0 0 1 1 *'
        END;
        IF expression IS NULL THEN
            PERFORM pgtq._cron_reject(cron, NULL, NULL,
                'unknown macro, expected @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually');
        END IF;
    END IF;
    expression := translate(expression, E'\t\r\n', '   ');
    WHILE expression LIKE '%  %' LOOP
        expression := replace(expression, '  ', ' ');
    END LOOP;
    fields := CASE WHEN expression = '' THEN '{}' ELSE string_to_array(expression, ' ') END;
    IF cardinality(fields) <> 5 THEN
        PERFORM pgtq._cron_reject(cron, NULL, NULL,
            format('%s fields, expected 5 (minute hour day-of-month month day-of-week) or a macro such as @daily',
                   cardinality(fields)));
    END IF;
    parsed.minutes := pgtq._cron_field(cron, 'minute', fields[1]);
    parsed.hours := pgtq._cron_field(cron, 'hour', fields[2]);
    parsed.days := pgtq._cron_field(cron, 'day-of-month', fields[3]);
    parsed.months := pgtq._cron_field(cron, 'month', fields[4]);
    parsed.weekdays := pgtq._cron_field(cron, 'day-of-week', fields[5]);
    parsed.days_star := left(fields[3], 1) = '*';
    parsed.weekdays_star := left(fields[5], 1) = '*';
    parsed.fixed_time := left(fields[1], 1) <> '*' AND left(fields[2], 1) <> '*';
    -- A day must match both day fields when one starts with '*' (see
    -- _cron_next_wall): then a day of the month that no allowed month has
    -- never comes.
    IF parsed.weekdays_star AND NOT parsed.days_star
       AND parsed.days[1] > (SELECT max(CASE WHEN m = 2 THEN 29 WHEN m IN (4, 6, 9, 11) THEN 30 ELSE 31 END)
                             FROM unnest(parsed.months) AS m) THEN
        PERFORM pgtq._cron_reject(cron, 'day-of-month', fields[3],
            format('no month of month field %s has such a day', quote_literal(fields[4])));
    END IF;
    RETURN parsed;
END
$$;

-- Guarantees: the smallest element of the ascending array `allowed` that
-- is at least `lowest`, or NULL when there is none.
CREATE FUNCTION pgtq._cron_first(allowed integer[], lowest integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    value integer;
BEGIN
    FOREACH value IN ARRAY allowed LOOP
        IF value >= lowest THEN
            RETURN value;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- Guarantees: the first wall-clock minute strictly after `after` that the
-- parsed expression `fields` allows, as a timestamp without time zone
-- (time zones are _cron_next's business), or NULL if none comes within
-- 100 years. It steps over whole months, days and hours that the fields
-- rule out, never over every minute: `0 0 29 2 *` costs a step per
-- February. Days follow Vixie cron (and POSIX): when both day fields are
-- restricted (neither starts with '*'), a day matching either is allowed
-- (`0 0 1,15 * MON`: the 1st, the 15th and every Monday); when one starts
-- with '*', a day must match both (`0 0 */2 * MON`: odd days that are
-- Mondays).
CREATE FUNCTION pgtq._cron_next_wall(fields pgtq._cron_fields, after timestamp)
RETURNS timestamp
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    start       timestamp := date_trunc('minute', after) + interval '1 minute';
    at_year     integer := extract(year FROM start);
    at_month    integer := extract(month FROM start);
    at_day      integer := extract(day FROM start);
    at_hour     integer := extract(hour FROM start);
    at_minute   integer := extract(minute FROM start);
    last_year   integer := extract(year FROM start) + 100;
    either_day  boolean := NOT (fields.days_star OR fields.weekdays_star);
    month_days  integer;
    first_dow   integer;  -- the day of the week of the month's first day
    candidate   integer;
BEGIN
    WHILE at_year <= last_year LOOP
        candidate := pgtq._cron_first(fields.months, at_month);
        IF candidate IS NULL THEN
            at_year := at_year + 1; at_month := 1; at_day := 1; at_hour := 0; at_minute := 0;
            CONTINUE;
        ELSIF candidate > at_month THEN
            at_month := candidate; at_day := 1; at_hour := 0; at_minute := 0;
        END IF;
        month_days := extract(day FROM make_date(at_year, at_month, 1) + interval '1 month' - interval '1 day');
        first_dow := extract(dow FROM make_date(at_year, at_month, 1));
        WHILE at_day <= month_days
              AND NOT CASE WHEN either_day
                           THEN at_day = ANY (fields.days) OR (first_dow + at_day - 1) % 7 = ANY (fields.weekdays)
                           ELSE at_day = ANY (fields.days) AND (first_dow + at_day - 1) % 7 = ANY (fields.weekdays)
                      END LOOP
            at_day := at_day + 1; at_hour := 0; at_minute := 0;
        END LOOP;
        IF at_day > month_days THEN
            at_month := at_month + 1; at_day := 1; at_hour := 0; at_minute := 0;  -- month 13: next year
            CONTINUE;
        END IF;
        candidate := pgtq._cron_first(fields.hours, at_hour);
        IF candidate IS NULL THEN
            at_day := at_day + 1; at_hour := 0; at_minute := 0;
            CONTINUE;
        ELSIF candidate > at_hour THEN
            at_hour := candidate; at_minute := 0;
        END IF;
        candidate := pgtq._cron_first(fields.minutes, at_minute);
        IF candidate IS NULL THEN
            at_hour := at_hour + 1; at_minute := 0;
            CONTINUE;
        END IF;
        RETURN make_timestamp(at_year, at_month, at_day, at_hour, candidate, 0);
    END LOOP;
    RETURN NULL;
END
$$;

-- Guarantees: the instant in (before, after] at which time zone `zone`
-- changes its UTC offset from the one it has at `before`, to the second,
-- when exactly one change lies in between (a daylight-saving change):
-- a bisection over the seconds, about 12 steps for an hour.
CREATE FUNCTION pgtq._zone_change(zone text, before timestamptz, after timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    old_offset interval := timezone(zone, before) - timezone('UTC', before);
    low        bigint := floor(extract(epoch FROM before));  -- still the old offset
    high       bigint := ceil(extract(epoch FROM after));    -- the new offset
    middle     bigint;
BEGIN
    WHILE high - low > 1 LOOP
        middle := (low + high) / 2;
        IF timezone(zone, to_timestamp(middle)) - timezone('UTC', to_timestamp(middle)) = old_offset THEN
            low := middle;
        ELSE
            high := middle;
        END IF;
    END LOOP;
    RETURN to_timestamp(high);
END
$$;

-- Guarantees: the first occurrence strictly after `after` of the parsed
-- cron expression `fields` read on the wall clock of time zone `zone`, or
-- NULL if none comes within 100 years. Daylight-saving changes follow
-- Vixie cron (Debian, Red Hat), as cron users expect:
--   * fixed-time schedules (neither the minute nor the hour field starts
--     with '*', e.g. `30 2 * * *`) run once per wall-clock match: a time
--     skipped when clocks go forward runs at the instant they jump (02:30
--     on a spring-forward night runs at 03:00 new time), a time that
--     happens twice when clocks go back runs at its first passing only;
--   * wildcard schedules (`* * * * *`, `*/5 * * * *`, `0 * * * *`,
--     @hourly) follow real time: every instant whose wall-clock time
--     matches, so the skipped hour has no runs and the repeated hour runs
--     twice, as elapsed time requires.
-- Changes are found through PostgreSQL's time zone data (any zone name it
-- knows); clock changes over 3 hours count as corrections, not as DST.
CREATE FUNCTION pgtq._cron_next(fields pgtq._cron_fields, zone text, after timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    wall     timestamp := timezone(zone, after);
    later    timestamptz;  -- the instant PostgreSQL reads `wall` as: the later one of a repeated time
    earlier  timestamptz;
    next_run timestamptz;
    change   timestamptz;
    again    timestamptz;
BEGIN
    LOOP
        wall := pgtq._cron_next_wall(fields, wall);
        IF wall IS NULL THEN
            RETURN NULL;
        END IF;
        later := timezone(zone, wall);
        IF timezone(zone, later) <> wall THEN
            -- Skipped: the clocks jumped over `wall` (PostgreSQL read it
            -- with the offset from before the jump, so `later` is past it).
            change := pgtq._zone_change(zone, later - (timezone(zone, later) - wall), later);
            IF fields.fixed_time THEN
                next_run := change;
            ELSE
                wall := timezone(zone, change) - interval '1 microsecond';
                CONTINUE;
            END IF;
        ELSE
            -- Repeated when the offset of 3 hours before gives it too.
            earlier := timezone('UTC', wall - (timezone(zone, later - interval '3 hours')
                                               - timezone('UTC', later - interval '3 hours')));
            IF earlier >= later OR timezone(zone, earlier) <> wall THEN
                earlier := later;
            END IF;
            next_run := CASE WHEN fields.fixed_time OR earlier > after THEN earlier ELSE later END;
        END IF;
        EXIT WHEN next_run > after;
    END LOOP;
    -- Wildcard schedules: when clocks go back just after `after`, wall
    -- times up to its own come again, and may come before `next_run`.
    IF NOT fields.fixed_time THEN
        again := timezone(zone, timezone(zone, after));
        IF again > after THEN
            change := pgtq._zone_change(zone, after, again);
            wall := pgtq._cron_next_wall(fields, timezone(zone, change) - interval '1 microsecond');
            later := timezone(zone, wall);
            IF later >= change AND later < next_run AND timezone(zone, later) = wall THEN
                next_run := later;
            END IF;
        END IF;
    END IF;
    RETURN next_run;
END
$$;

-- Guarantees: for a schedule that came due at `due` (an occurrence at or
-- before as_of), fire_at is its most recent occurrence at or before as_of
-- and next_at its first occurrence after as_of (NULL: none within 100
-- years). Occurrences between `due` and fire_at (a downtime) are skipped.
-- Costs one _cron_next when only `due` came; after a downtime a bisection,
-- about log2(downtime in seconds) _cron_next calls, never one call per
-- missed occurrence.
CREATE FUNCTION pgtq._cron_due(fields pgtq._cron_fields, zone text, due timestamptz, as_of timestamptz,
                               OUT fire_at timestamptz, OUT next_at timestamptz)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    bound   timestamptz := as_of;  -- no occurrence lies in (bound, as_of]
    middle  timestamptz;
    probe   timestamptz;
BEGIN
    fire_at := due;
    next_at := pgtq._cron_next(fields, zone, due);
    IF next_at <= as_of THEN
        WHILE bound - fire_at > interval '1 second' LOOP
            middle := fire_at + (bound - fire_at) / 2;
            probe := pgtq._cron_next(fields, zone, middle);
            IF probe <= as_of THEN
                fire_at := probe;
            ELSE
                bound := middle;
            END IF;
        END LOOP;
        next_at := pgtq._cron_next(fields, zone, fire_at);
        WHILE next_at <= as_of LOOP
            fire_at := next_at;
            next_at := pgtq._cron_next(fields, zone, fire_at);
        END LOOP;
    END IF;
END
$$;

-- Guarantees: returns `zone` unchanged when PostgreSQL knows it as a time
-- zone (any name of pg_timezone_names, such as 'Europe/Paris' or 'UTC',
-- or an abbreviation or POSIX zone it accepts), and raises PT004 naming it
-- otherwise: NULL, over 100 characters, or unknown.
CREATE FUNCTION pgtq._checked_zone(zone text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._check_text('timezone', zone, 100);
    BEGIN
        PERFORM timezone(zone, timestamptz '2000-01-01 00:00+00');
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'pgtq: timezone % is not a time zone PostgreSQL knows (see pg_timezone_names)',
                quote_literal(zone)
            USING ERRCODE = 'PT004';
    END;
    RETURN zone;
END
$$;

-- Guarantees: enqueues, for each schedule of `queue` (every queue when
-- NULL) whose next run has come by as_of, one job through pgtq.push (its
-- rules: checks, ready at once, announced) for the schedule's most recent
-- occurrence at or before as_of, with run_at = that occurrence; missed
-- occurrences before it (a downtime) are skipped. The schedule's next run
-- moves to its first occurrence after as_of. Exactly once however many
-- sessions tick: each schedule row is locked FOR UPDATE SKIP LOCKED (a
-- session never waits for another) and its next run is moved past the
-- occurrence before the lock is released at commit; a session locking it
-- later rechecks the moved next run. A job push would refuse (payload
-- over a limit lowered since) is not pushed: the occurrence is skipped and
-- the reason kept in last_error. Returns how many jobs it enqueued.
-- tick's step 3, apart so that tick stays readable; it writes, so it runs
-- with the owner's rights like every function that does, and is granted
-- to nobody (only tick calls it).
CREATE FUNCTION pgtq._tick_schedules(queue text, as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    due        record;
    occurrence record;
    problem    record;
    job_id     bigint;
    enqueued   integer := 0;
BEGIN
    FOR due IN
        SELECT s.name, s.cron, s.timezone, s.queue, s.task, s.args, s.kwargs, s.priority,
               s.max_attempts, s.next_run_at
        FROM pgtq._schedule AS s
        WHERE s.next_run_at <= _tick_schedules.as_of
          AND s.queue = coalesce(_tick_schedules.queue, s.queue)
        ORDER BY s.next_run_at
        FOR UPDATE SKIP LOCKED
    LOOP
        SELECT * INTO occurrence
        FROM pgtq._cron_due(pgtq._cron_parse(due.cron), due.timezone, due.next_run_at, _tick_schedules.as_of);
        SELECT * INTO problem FROM pgtq._job_payload_problem(due.task, due.args, due.kwargs);
        job_id := NULL;
        IF problem.code IS NULL THEN
            job_id := pgtq.push(due.queue, due.task, due.args, due.kwargs, run_at => occurrence.fire_at,
                                priority => due.priority, max_attempts => due.max_attempts,
                                as_of => _tick_schedules.as_of);
            enqueued := enqueued + 1;
        END IF;
        UPDATE pgtq._schedule AS s
        SET next_run_at = coalesce(occurrence.next_at, 'infinity'),
            last_run_at = CASE WHEN job_id IS NULL THEN s.last_run_at ELSE occurrence.fire_at END,
            last_job_id = coalesce(job_id, s.last_job_id),
            last_error = CASE WHEN problem.code IS NOT NULL
                              THEN format('occurrence %s not enqueued: %s', occurrence.fire_at, problem.message) END
        WHERE s.name = due.name;
    END LOOP;
    RETURN enqueued;
END
$$;

-- Guarantees: creates or changes the periodic schedule `name` (an upsert,
-- in the caller's transaction) and returns it as pgtq.schedules shows it.
-- From its next run on, tick() enqueues one job per occurrence of `cron`
-- read in time zone `timezone`: push(queue, task, args, kwargs, priority,
-- max_attempts) with run_at = the occurrence. Idempotent: the same
-- definition again changes nothing, its next run included (many workers
-- may register their schedules at start). A changed cron or timezone (as
-- text) moves the next run to the first occurrence after as_of (and after
-- the last one enqueued, so none runs twice); other changes keep it. The
-- last writer of a name wins. Everything is checked first, as push checks
-- it: a bad name raises PT003, a bad cron expression (naming its field),
-- timezone, priority, max_attempts or as_of PT004, args, kwargs or a
-- payload over the limit PT001, PT002 or PT005; nothing is written then.
CREATE FUNCTION pgtq.schedule(name text,
                              cron text,
                              queue text,
                              task text,
                              args jsonb DEFAULT '[]',
                              kwargs jsonb DEFAULT '{}',
                              timezone text DEFAULT 'UTC',
                              priority integer DEFAULT 0,
                              max_attempts integer DEFAULT 25,
                              as_of timestamptz DEFAULT now())
RETURNS pgtq.schedules
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    fields    pgtq._cron_fields;
    problem   record;
    first_run timestamptz;
    saved     pgtq.schedules;
BEGIN
    PERFORM pgtq._checked_name('schedule', schedule.name);
    fields := pgtq._cron_parse(schedule.cron);
    PERFORM pgtq._check_push_options(schedule.queue, schedule.task, schedule.priority,
                                     schedule.max_attempts, NULL, schedule.as_of);
    SELECT * INTO problem FROM pgtq._job_payload_problem(schedule.task, schedule.args, schedule.kwargs);
    IF problem.code IS NOT NULL THEN
        RAISE EXCEPTION '%', problem.message USING ERRCODE = problem.code;
    END IF;
    PERFORM pgtq._checked_zone(schedule.timezone);
    first_run := pgtq._cron_next(fields, schedule.timezone, schedule.as_of);
    IF first_run IS NULL THEN
        RAISE EXCEPTION 'pgtq: cron expression % does not come within 100 years', quote_literal(schedule.cron)
            USING ERRCODE = 'PT004';
    END IF;

    INSERT INTO pgtq._schedule AS s (name, cron, timezone, queue, task, args, kwargs, priority,
                                     max_attempts, next_run_at, created_at, updated_at)
    VALUES (schedule.name, schedule.cron, schedule.timezone, schedule.queue, schedule.task,
            schedule.args, schedule.kwargs, schedule.priority, schedule.max_attempts, first_run,
            schedule.as_of, schedule.as_of)
    ON CONFLICT ON CONSTRAINT schedule_pkey DO UPDATE
    SET cron = excluded.cron,
        timezone = excluded.timezone,
        queue = excluded.queue,
        task = excluded.task,
        args = excluded.args,
        kwargs = excluded.kwargs,
        priority = excluded.priority,
        max_attempts = excluded.max_attempts,
        next_run_at = CASE WHEN (s.cron, s.timezone) = (excluded.cron, excluded.timezone) THEN s.next_run_at
                           WHEN s.last_run_at >= schedule.as_of
                           THEN pgtq._cron_next(fields, excluded.timezone, s.last_run_at)
                           ELSE excluded.next_run_at END,
        updated_at = excluded.updated_at
    WHERE (s.cron, s.timezone, s.queue, s.task, s.args, s.kwargs, s.priority, s.max_attempts)
          IS DISTINCT FROM (excluded.cron, excluded.timezone, excluded.queue, excluded.task,
                            excluded.args, excluded.kwargs, excluded.priority, excluded.max_attempts);

    SELECT v.* INTO saved FROM pgtq.schedules AS v WHERE v.name = schedule.name;
    RETURN saved;
END
$$;

-- Guarantees: removes the periodic schedule `name` and returns whether it
-- existed. Jobs it enqueued already are not touched. A bad name raises
-- PT003.
CREATE FUNCTION pgtq.unschedule(name text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._checked_name('schedule', unschedule.name);
    DELETE FROM pgtq._schedule AS s WHERE s.name = unschedule.name;
    RETURN FOUND;
END
$$;

-- tick() also fires the schedules that are due (step 3).
CREATE OR REPLACE FUNCTION pgtq.tick(queue text DEFAULT NULL,
                          as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    promoted        integer;
    promoted_queues text[];
    rescued         integer;
    worker_timeout  interval;
BEGIN
    IF tick.queue IS NOT NULL THEN
        PERFORM pgtq._checked_name('queue', tick.queue);
    END IF;
    IF NOT coalesce(isfinite(tick.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', tick.as_of);
    END IF;
    WITH due AS MATERIALIZED (
        SELECT d.id
        FROM pgtq._job AS d
        WHERE d.state = 'scheduled'
          AND d.run_at <= tick.as_of
          AND (tick.queue IS NULL OR d.queue = tick.queue)
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        UPDATE pgtq._job AS j
        SET state = 'ready'
        FROM due
        WHERE j.id = due.id
        RETURNING j.queue
    )
    SELECT count(*), coalesce(array_agg(DISTINCT moved.queue), '{}')
    INTO promoted, promoted_queues
    FROM moved;
    -- Each queue that got ready jobs is announced once.
    PERFORM pgtq._announce(q.queue) FROM unnest(promoted_queues) AS q (queue);

    WITH expired AS MATERIALIZED (
        SELECT e.id, e.attempt, e.max_attempts,
               tick.as_of + pgtq.backoff(e.attempt) AS retry_at
        FROM pgtq._job AS e
        WHERE e.state = 'running'
          AND e.lease_expires_at < tick.as_of
          AND (tick.queue IS NULL OR e.queue = tick.queue)
        FOR UPDATE SKIP LOCKED
    ), moved AS (
        UPDATE pgtq._job AS j
        SET state = pgtq._state_after_failure(expired.attempt, expired.max_attempts,
                                              expired.retry_at, tick.as_of),
            run_at = CASE WHEN expired.attempt >= expired.max_attempts THEN j.run_at
                          ELSE expired.retry_at END,
            finished_at = CASE WHEN expired.attempt >= expired.max_attempts THEN tick.as_of END,
            last_error = format('lease expired at %s (worker %s stopped without completing the job)',
                                j.lease_expires_at, coalesce(j.worker, 'unknown')),
            lease = NULL,
            lease_expires_at = NULL
        FROM expired
        WHERE j.id = expired.id
        RETURNING j.id
    )
    SELECT count(*) INTO rescued FROM moved;

    -- Forget workers that stopped without saying goodbye.
    SELECT s.worker_timeout INTO worker_timeout FROM pgtq._settings AS s;
    DELETE FROM pgtq._worker AS w WHERE w.last_seen_at < tick.as_of - worker_timeout;

    -- Periodic schedules. None due (or none at all) costs one probe: the
    -- earliest next run, which the cached generic plan reads from
    -- schedule_next_run_idx whatever as_of is (a filter on next_run_at
    -- would make it scan the table; `(queue IS NULL OR ...)` would make it
    -- plan anew on every call).
    IF (SELECT min(s.next_run_at) FROM pgtq._schedule AS s
        WHERE s.queue = coalesce(tick.queue, s.queue)) <= tick.as_of THEN
        RETURN promoted + rescued + pgtq._tick_schedules(tick.queue, tick.as_of);
    END IF;
    RETURN promoted + rescued;
END
$$;

-- ===========================================================================
-- Privileges: install_roles grants the new functions and view; then, as at
-- the end of a fresh install, nothing for PUBLIC (new functions are
-- EXECUTE-able by PUBLIC until revoked) and the roles' rights again.
-- ===========================================================================

CREATE OR REPLACE FUNCTION pgtq.install_roles(producer text DEFAULT 'pgtq_producer',
                                   worker text DEFAULT 'pgtq_worker',
                                   admin text DEFAULT 'pgtq_admin')
RETURNS text[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    role_name text;
    missing   text[] := '{}';
    granted   text[] := '{}';
    rerun     text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY[install_roles.producer, install_roles.worker, install_roles.admin] LOOP
        IF role_name IS NULL OR octet_length(role_name) NOT BETWEEN 1 AND 63 THEN
            RAISE EXCEPTION 'pgtq: role name must be 1 to 63 bytes, got %', coalesce(quote_literal(role_name), 'NULL')
                USING ERRCODE = 'PT003';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION
                WHEN insufficient_privilege THEN
                    missing := missing || role_name;
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- created meanwhile by an install in another database
            END;
        END IF;
    END LOOP;

    IF install_roles.producer <> ALL (missing) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA pgtq TO %I', install_roles.producer);
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.push, pgtq.push_many, pgtq.version TO %I',
                       install_roles.producer);
        granted := granted || install_roles.producer;
    END IF;
    IF install_roles.worker <> ALL (missing) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA pgtq TO %I', install_roles.worker);
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.pop, pgtq.complete, pgtq.complete_many, pgtq.fail, pgtq.heartbeat, '
                       'pgtq.release, pgtq.tick, pgtq.register_worker, pgtq.unregister_worker, '
                       'pgtq.backoff, pgtq.version TO %I', install_roles.worker);
        EXECUTE format('GRANT SELECT ON pgtq.queue_stats, pgtq.workers TO %I', install_roles.worker);
        -- Periodic (cron) schedules: workers register those of their queues.
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.schedule, pgtq.unschedule TO %I', install_roles.worker);
        EXECUTE format('GRANT SELECT ON pgtq.schedules TO %I', install_roles.worker);
        granted := granted || install_roles.worker;
    END IF;
    IF install_roles.admin <> ALL (missing) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA pgtq TO %I', install_roles.admin);
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.push, pgtq.push_many, pgtq.pop, pgtq.complete, pgtq.complete_many, pgtq.fail, '
                       'pgtq.heartbeat, pgtq.release, pgtq.tick, pgtq.cancel, pgtq.retry, pgtq.prune, '
                       'pgtq.configure, pgtq.register_worker, pgtq.unregister_worker, pgtq.backoff, '
                       'pgtq.version TO %I', install_roles.admin);
        EXECUTE format('GRANT SELECT ON pgtq.jobs, pgtq.queue_stats, pgtq.workers, pgtq.settings TO %I',
                       install_roles.admin);
        -- Periodic (cron) schedules.
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.schedule, pgtq.unschedule TO %I', install_roles.admin);
        EXECUTE format('GRANT SELECT ON pgtq.schedules TO %I', install_roles.admin);
        granted := granted || install_roles.admin;
    END IF;

    IF cardinality(missing) > 0 THEN
        rerun := CASE
            WHEN (install_roles.producer, install_roles.worker, install_roles.admin)
                 = ('pgtq_producer', 'pgtq_worker', 'pgtq_admin')
            THEN 'SELECT pgtq.install_roles();'
            ELSE format('SELECT pgtq.install_roles(%L, %L, %L);',
                        install_roles.producer, install_roles.worker, install_roles.admin)
        END;
        RAISE NOTICE 'pgtq: roles % are missing and % may not create roles (no CREATEROLE): pgtq is installed, but until they exist only the owner of schema pgtq can use it',
                array_to_string(missing, ', '), current_user
            USING HINT = format('Ask an administrator to run: %s Then, as the owner of schema pgtq, run: %s',
                                (SELECT string_agg(format('CREATE ROLE %I NOLOGIN;', m), ' ')
                                 FROM unnest(missing) AS m),
                                rerun);
    END IF;
    RETURN granted;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
