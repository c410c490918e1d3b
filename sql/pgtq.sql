-- pgtq: a task queue whose rules live in PostgreSQL.
--
-- This is the current script: the whole schema of the newest version, in
-- one file, edited in place. Nothing runs it as it is: the install script
-- of the version that pgtq.control names (default_version) is made from it
-- by scripts/build_extension.py, which only puts that version in place of
-- @PGTQ_VERSION@ (see sql/README.md). Every change here also goes into the
-- hand-written upgrade script of the next version (pgtq--A--B.sql), and a
-- test proves that a fresh install and the oldest release plus every
-- upgrade give the same catalog.
--
-- Conventions:
--   * Public functions are verbs (push, pop, complete, ...); helpers start
--     with an underscore. Tables are private; readers use the views.
--   * Queue and task names are data: no function builds SQL from them.
--   * Time-dependent functions take the current time as their last
--     parameter `as_of` (default now()), so tests pass literal times.
--   * Errors carry SQLSTATEs of class PT (see README "Errors").
--   * Notifications go on fixed channels, data travels as the payload:
--     pgtq (a queue got ready jobs; payload: the queue), pgtq_finished (a
--     job somebody watch()es finished; payload: its id) and pgtq_cancel
--     (a running job was asked to cancel; payload: its id). One more
--     kind (0.16.0): a job handed to an idle worker travels on the
--     worker's own channel, a name the database draws at random and
--     tells that worker's session alone (offer_handoffs); it is LISTENed
--     inside the function, so no query text shows it.
--   * Least privilege (see SECURITY.md): nothing in schema pgtq is granted
--     to PUBLIC. The roles pgtq_producer, pgtq_worker and pgtq_admin get
--     EXECUTE on the functions of their job, and the read-only
--     pgtq_observer reads the views (pgtq.install_roles, at the end).
--     Functions that write the private tables are SECURITY DEFINER;
--     every function pins `search_path = pg_catalog, pgtq, pg_temp`, so no
--     object of a schema a caller can write (public, pg_temp) is ever
--     found in place of a built-in, and pgtq objects are schema-qualified.
--   * The functions a worker calls per job (pop, complete, complete_many,
--     fail, abort, heartbeat, heartbeat_many, release) run with
--     `enable_seqscan = off` (0.7.0), so they find jobs by their indexes
--     whatever size the table had when their plans were made. A session
--     keeps a function's plans; one planned while pgtq._job was a few
--     pages read the whole table at every call as it grew (measured: two
--     sequential scans per job in a loop of push, pop and complete_many
--     on a table of 1,500 jobs, until an ANALYZE replanned them).
--     They also run with `jit = off` (0.17.0): with sequential scans
--     off, a statement they run on a table with no index it can use
--     (pgtq._worker, pgtq._settings) is planned with the cost PostgreSQL
--     gives a disabled scan (1e10), far above jit_above_cost, and was
--     compiled by JIT at every call: 25 to 60 ms per complete of a job of
--     a max_running queue (its wake-up looks at the workers), 19 times
--     slower than with JIT off.

CREATE SCHEMA IF NOT EXISTS pgtq;
COMMENT ON SCHEMA pgtq IS 'pgtq: a PostgreSQL task queue. Public API: functions and views; tables are private.';

-- ---------------------------------------------------------------------------
-- Types
-- ---------------------------------------------------------------------------

-- A new state must be added to the states that _restart and delete_job
-- name as those their jobs are not in.
CREATE TYPE pgtq.job_state AS ENUM (
    'scheduled',  -- pushed with a future run_at, or waiting for a retry
    'ready',      -- due: pushed due now, or promoted by tick, or released
    'running',    -- claimed by pop; holds a lease until it expires
    'done',       -- completed by the lease holder
    'failed',     -- its last allowed attempt failed, or it was aborted (kept for inspection)
    'cancelled'   -- cancelled before it ran; or it ran after a cancel request
                  -- and its attempt ended; or, going back to pending, it was
                  -- superseded by a pending job with its job key
);
COMMENT ON TYPE pgtq.job_state IS
    'Life cycle of a job: scheduled -> ready -> running -> done | failed, '
    'with running -> scheduled|ready on a retry, scheduled|ready -> cancelled, '
    'and running -> cancelled once a cancel was requested.';

-- What pop() hands a worker: the job, its attempt number and its lease.
CREATE TYPE pgtq.claimed_job AS (
    id                bigint,
    queue             text,
    task              text,
    args              jsonb,
    kwargs            jsonb,
    priority          integer,
    attempt           integer,
    max_attempts      integer,
    lease             uuid,
    lease_expires_at  timestamptz
);
COMMENT ON TYPE pgtq.claimed_job IS 'A job claimed by pop(): complete, fail, heartbeat or release it with its lease.';

-- What a waiter learns of a job: its state and, once it finished, its
-- outcome (outcomes(), watch()).
CREATE TYPE pgtq.job_outcome AS (
    id           bigint,
    state        pgtq.job_state,
    result       jsonb,
    error        text,
    finished_at  timestamptz
);
COMMENT ON TYPE pgtq.job_outcome IS 'A job''s state and outcome (result or error), as a waiter reads it.';

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

-- ---------------------------------------------------------------------------
-- Tables (private: use the functions and views)
-- ---------------------------------------------------------------------------

-- Queue-wide settings, one row. Only the owner and admins change them.
CREATE TABLE pgtq._settings (
    singleton          boolean PRIMARY KEY DEFAULT true,
    max_payload_bytes  integer NOT NULL DEFAULT 1048576,
    worker_timeout     interval NOT NULL DEFAULT '1 minute',
    history_retention  interval NOT NULL DEFAULT '24 hours',
    CONSTRAINT settings_singleton_ck CHECK (singleton),
    CONSTRAINT settings_max_payload_ck CHECK (max_payload_bytes > 0),
    CONSTRAINT settings_worker_timeout_ck CHECK (worker_timeout > interval '0'),
    CONSTRAINT settings_history_retention_ck CHECK (history_retention BETWEEN interval '0' AND interval '31 days')
);
INSERT INTO pgtq._settings DEFAULT VALUES;

CREATE SEQUENCE pgtq._job_id_seq AS bigint;

-- One row per job, for its whole life. Index design for the hot path:
-- finished jobs (done/failed/cancelled) are in none of the partial indexes
-- that push, pop and tick use, so those stay small however many finished
-- rows the table holds; pruning deletes finished rows by finished_at.
-- fillfactor leaves room on each page so state changes can stay on the page.
CREATE TABLE pgtq._job (
    id                bigint NOT NULL DEFAULT nextval('pgtq._job_id_seq'),
    queue             text NOT NULL,
    task              text NOT NULL,
    args              jsonb NOT NULL DEFAULT '[]',
    kwargs            jsonb NOT NULL DEFAULT '{}',
    state             pgtq.job_state NOT NULL,
    priority          integer NOT NULL DEFAULT 0,
    attempt           integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL DEFAULT 25,
    run_at            timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    lease             uuid,
    lease_expires_at  timestamptz,
    worker            text,
    last_error        text,
    result            jsonb,
    -- 0.2.0: job keys, per-job backoff, cancel requests, waiters, pusher.
    -- Their rules (a cancel request only on a running or cancelled job,
    -- waiters >= 0) are kept by the functions, not by CHECK constraints:
    -- PostgreSQL 15 rebuilds every CHECK constraint of a table from its
    -- stored text at each INSERT or UPDATE statement (measured: the six
    -- above cost 44% of a push's instructions), and these would tax every
    -- push, pop and complete. tests/sql/17-cancel-running.sql checks them.
    job_key              text,
    backoff_base         interval,
    backoff_cap          interval,
    cancel_requested_at  timestamptz,
    waiters              integer NOT NULL DEFAULT 0,
    pushed_by            text,
    -- 0.3.0: at most one job of a lock key runs at a time, in any queue
    -- (pop keeps the rule; push checks the key's length).
    lock_key             text,
    -- 0.5.0: that args is a JSON array and kwargs an object is kept by
    -- the functions that write them (push, push_many; schedule, whose table
    -- checks them), no longer by CHECK constraints here: PostgreSQL checks
    -- every CHECK constraint at every UPDATE of a row, so these read the
    -- payload (decompressing or fetching it from TOAST) at each pop,
    -- complete and fail (measured: 12% of a pop(100) + complete_many drain
    -- of small jobs, 26% with 3 kB arguments). tests/sql/09-bad-input.sql
    -- and 11-push-many.sql check each writer.
    -- 0.8.0: the bookkeeping rules (0 <= attempt <= max_attempts, and
    -- max_attempts >= 1; a running job has a started_at; a job has a
    -- finished_at exactly when it is done, failed or cancelled) are kept by
    -- the functions, no longer by CHECK constraints: PostgreSQL 15 rebuilds
    -- a table's CHECK constraints from their stored text at every INSERT or
    -- UPDATE statement, and these three took about a quarter of the own
    -- time of each one-row statement (push, a one-job pop, complete, fail,
    -- heartbeat). Measured on a copy of this table, 9 rounds: a one-row
    -- INSERT 68.8 -> 50.4 us, a one-row claim UPDATE 73.4 -> 53.1 us.
    -- pgtq.job_rule_breaks lists any row that breaks them;
    -- tests/sql/30-row-rules.sql runs every writer against it, and the
    -- model test (tests/py/test_model.py) checks it after each step. The
    -- lease rule stays a constraint: the calls that end an attempt match a
    -- job by its lease alone, so a lease must imply running.
    -- 0.9.0: the slot (1..max_running) a running job of a max_running
    -- queue holds, written by the pop that claimed it (_take_slots), NULL
    -- for a job claimed without one. Meaningful only while the job runs.
    -- 0.11.0: 0 when a pop wrote the job off after its lease ran out
    -- (_write_off_lapsed): it holds no slot and no lock key any more, and
    -- no heartbeat extends its lease again.
    slot                 integer,
    -- 0.39.0: the number of the claim that gave the job its slot, from
    -- _slot_claim_seq, taken under the slot's token (_take_slots): the
    -- claims of one slot are numbered in the order they were made, so the
    -- highest is the slot's only possible holder (job_slot_holder_idx,
    -- _take_free_slots). NULL for a job claimed without a slot. Kept when
    -- the job ends, as slot is.
    slot_claim           bigint,
    CONSTRAINT job_pkey PRIMARY KEY (id),
    CONSTRAINT job_running_has_lease_ck CHECK (
        (state = 'running') = (lease IS NOT NULL AND lease_expires_at IS NOT NULL))
) WITH (fillfactor = 85);
ALTER SEQUENCE pgtq._job_id_seq OWNED BY pgtq._job.id;
CREATE SEQUENCE pgtq._slot_claim_seq AS bigint;
ALTER SEQUENCE pgtq._slot_claim_seq OWNED BY pgtq._job.slot_claim;

-- Hot queue table: vacuum early so dead versions from state changes are
-- reclaimed before they pile up (defaults wait for 20% of the table).
ALTER TABLE pgtq._job SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- pop: the next ready job of a queue, highest priority first, then push
-- order. Jobs with a lock key are not in it (0.32.0), but in the two keyed
-- indexes below: a pop of a queue without keys reads the same entries as
-- before, and one of a keyed queue no longer steps over the backlog of its
-- busy keys to find the jobs without a key.
CREATE INDEX job_ready_idx ON pgtq._job (queue, priority DESC, id)
    WHERE state = 'ready' AND lock_key IS NULL;
-- tick: scheduled jobs that have come due.
CREATE INDEX job_scheduled_idx ON pgtq._job (run_at)
    WHERE state = 'scheduled';
-- tick: running jobs whose lease ran out, queue by queue; pop of a
-- max_running queue: its running jobs with a live lease. Keyed by queue
-- first (0.5.0; until 0.4.0 by lease_expires_at alone), so counting the
-- running jobs of one queue reads only that queue's entries, however
-- many jobs other queues run (tick of every queue walks the queues that
-- run jobs with one probe each, _running_queues).
-- The calls that find a claimed job by its id and lease (complete,
-- complete_many, fail, abort, heartbeat, heartbeat_many, release) match
-- the lease alone, not also state = 'running': a lease implies running
-- (job_running_has_lease_ck), and the state test would let the planner
-- walk this index, every running job, for each id instead of one
-- job_pkey probe (it did, in 0.3.0, whenever the statistics were taken
-- while few jobs ran: a batch of 100 leases beside 5,000 running jobs
-- took 200 ms to renew).
CREATE INDEX job_running_idx ON pgtq._job (queue, lease_expires_at)
    WHERE state = 'running';
-- prune: finished jobs by age.
CREATE INDEX job_finished_idx ON pgtq._job (finished_at)
    WHERE state IN ('done', 'failed', 'cancelled');
-- push with a job key: at most one pending job per queue and key. Only
-- keyed pending rows are in it, so jobs without a key never touch it.
CREATE UNIQUE INDEX job_key_pending_idx ON pgtq._job (queue, job_key)
    WHERE job_key IS NOT NULL AND state IN ('scheduled', 'ready');
-- retry_failed and lists of failed jobs: the few failed jobs among many
-- finished ones (only a job's final failure enters it).
CREATE INDEX job_failed_idx ON pgtq._job (queue, task, id)
    WHERE state = 'failed';
-- pop with lock keys: is a key's job running, and which ready job of the
-- key is next (priority, then push order)? Only jobs with a lock key are
-- in these three, so jobs without one never touch them.
-- The running jobs of a key are found by their lease, not by state =
-- 'running' (0.30.0; job_lock_key_running_idx until 0.29.0): a lease and
-- its expiry mean running (job_running_has_lease_ck), and a probe that
-- tested the state let the planner take job_running_idx instead, every
-- running job of every queue at each probe, whenever its statistics said
-- few jobs ran (a vacuum of an idle table says none): a pop of a keyed
-- queue then read its 3,000 jobs of busy keys times the 950 jobs running
-- in other queues, 2.6 million index entries (578 ms). The lock-key
-- probes match `lease IS NOT NULL AND lease_expires_at IS NOT NULL`, from
-- which only this index's predicate follows.
CREATE INDEX job_lock_key_leased_idx ON pgtq._job (lock_key)
    WHERE lease IS NOT NULL AND lease_expires_at IS NOT NULL AND lock_key IS NOT NULL;
CREATE INDEX job_lock_key_ready_idx ON pgtq._job (lock_key, priority DESC, id)
    WHERE state = 'ready' AND lock_key IS NOT NULL;
-- pop: does the queue have ready jobs with a lock key (its keyed path),
-- and which come first, in pop's order (0.32.0; until 0.31.0 by queue
-- alone, with the keyed jobs also in job_ready_idx)?
CREATE INDEX job_keyed_ready_idx ON pgtq._job (queue, priority DESC, id)
    WHERE state = 'ready' AND lock_key IS NOT NULL;
-- pop of a keyed queue of at most 64 keys past its first jobs: the first
-- ready job of each of the queue's lock keys, one probe per key (a loose
-- index scan), so such a pop costs its keys, not their jobs (0.32.0).
CREATE INDEX job_queue_key_ready_idx ON pgtq._job (queue, lock_key, priority DESC, id)
    WHERE state = 'ready' AND lock_key IS NOT NULL;
-- pop of a max_running queue whose running jobs all hold a slot
-- (_take_free_slots, 0.39.0): the claims of each slot, newest first, so
-- one probe per slot finds its holder (the first version the statement
-- sees) without stepping over the jobs that ran before. Only jobs claimed
-- with a slot are in it, so jobs of other queues never touch it. Its
-- entries of a job that ended stay visible until the job is deleted,
-- which is what lets the probe stop at the newest: job_running_idx, which
-- a count of the running jobs reads, keeps the entries of every job that
-- ended within its lease beside a held snapshot.
CREATE INDEX job_slot_holder_idx ON pgtq._job (queue, slot, slot_claim DESC)
    WHERE slot_claim IS NOT NULL;

-- Flow control of a queue: one row per queue that is paused or has a
-- limit, written by pause(), resume() and configure_queue(); a queue
-- without a row has neither, and pop() takes its fast path for it.
--   paused_at    when pause() paused it (NULL: not paused);
--   max_running  at most this many of its jobs run with a live lease;
--   rate_limit   at most this many of its jobs start in any window of
--   rate_period  rate_period (both NULL: no rate limit; the starts are
--                counted in _rate_start).
-- pop() of a paused or limited queue locks its row while it counts and
-- claims (_room): pops of one such queue take turns. Pops only lock the
-- row, they never write it (0.27.0: the starts of the rate window were
-- two arrays of this row, rewritten by every pop of a rate-limited queue,
-- and beside a held snapshot every read of the row walked every version),
-- but for the probing marks, which a pop sets and clears beside a
-- snapshot held open, at most a few times a minute (_take_slots, 0.39.0):
--   probe_until  set (a minute ahead) by a pop whose count of the running
--                jobs read far more index entries than the queue can have
--                running jobs (those of the jobs that ended, kept by the
--                snapshot): while it is set, the queue's claims are
--                numbered (_job.slot_claim); cleared by a pop whose count
--                after it was cheap again;
--   slotted      true when every running job of the queue that counts
--                against max_running holds a slot of its own in
--                1..max_running with a claim number: until probe_until,
--                pops find free slots by probing the slots
--                (_take_free_slots), not by counting the running jobs.
-- configure_queue clears both (NULL and false on a new row).
CREATE TABLE pgtq._queue (
    queue        text NOT NULL,
    paused_at    timestamptz,
    max_running  integer,
    rate_limit   integer,
    rate_period  interval,
    updated_at   timestamptz NOT NULL,
    slotted      boolean NOT NULL DEFAULT false,
    probe_until  timestamptz,
    CONSTRAINT queue_pkey PRIMARY KEY (queue),
    CONSTRAINT queue_max_running_ck CHECK (max_running BETWEEN 1 AND 100000),
    CONSTRAINT queue_rate_limit_ck CHECK (rate_limit BETWEEN 1 AND 1000000),
    CONSTRAINT queue_rate_period_ck CHECK (
        (rate_limit IS NULL) = (rate_period IS NULL)
        AND rate_period BETWEEN interval '10 milliseconds' AND interval '1 year'),
    CONSTRAINT queue_configured_ck CHECK (
        paused_at IS NOT NULL OR max_running IS NOT NULL OR rate_limit IS NOT NULL)
);

-- The starts of each rate-limited queue's rate window (0.27.0): how many
-- of its jobs started (`jobs`) in each bucket of rate_period / 100 (`slot`,
-- _rate_slot). A pop that starts jobs adds them to the bucket of its
-- as_of (_count_starts), so a row is updated only within its own bucket;
-- the buckets that left the window are deleted as new ones come, and
-- those of a queue whose rate_period changed or whose rate limit was
-- removed by configure_queue. Readers sum the window's buckets, at most
-- 101 rows, which the primary key's range from the window's first bucket
-- serves: neither the deleted buckets nor their versions kept for a held
-- snapshot lie in that range.
CREATE TABLE pgtq._rate_start (
    queue  text NOT NULL,
    slot   bigint NOT NULL,
    jobs   integer NOT NULL,
    CONSTRAINT rate_start_pkey PRIMARY KEY (queue, slot)
);

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

-- Live workers, registered by themselves and kept fresh while they run.
-- No foreign key from jobs: pruning jobs must never touch this table.
CREATE TABLE pgtq._worker (
    id            text NOT NULL,
    host          text NOT NULL,
    pid           integer NOT NULL,
    queues        text[] NOT NULL,
    started_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    marks_waiting boolean NOT NULL DEFAULT false,
    CONSTRAINT worker_pkey PRIMARY KEY (id)
);
COMMENT ON COLUMN pgtq._worker.marks_waiting IS
    'Whether the worker marks the queues it waits for (mark_waiting, 0.12.0). While a worker that does not is registered, every push notifies.';

-- Sessions that offer to take pushed jobs straight from push (0.16.0:
-- offer_handoffs), one row each. The channel is drawn at random and known
-- only here and to its session, since a handed job's lease and payload
-- travel on it. The offer is open while its session holds the advisory
-- lock (space, 0) (open_handoff); a push that hands it a job holds
-- (space, 1) until it ends. A row outlives its session until the next
-- offer_handoffs of any session removes it: a push skips it, as no one
-- holds its lock. Not dumped: it describes live sessions only.
CREATE TABLE pgtq._handoff (
    pid      integer NOT NULL,
    channel  text NOT NULL,
    space    integer NOT NULL,
    worker   text NOT NULL,
    queues   text[] NOT NULL,
    lease    interval NOT NULL,
    CONSTRAINT handoff_pkey PRIMARY KEY (pid),
    CONSTRAINT handoff_channel_key UNIQUE (channel)
);

-- Queue history: one sample a minute, taken by the first tick of the
-- minute (_sample_history), kept for _settings.history_retention. One row
-- per queue and task that had live jobs, finished jobs or lease expiries
-- at the sample or at the one before (so a row of zeros follows the last
-- activity; no row means zero). Counts of live states are taken at
-- sampled_at; completed, failed, cancelled and lease_expired count what
-- happened in (period_start, sampled_at].
CREATE TABLE pgtq._history (
    sampled_at       timestamptz NOT NULL,
    period_start     timestamptz NOT NULL,
    queue            text NOT NULL,
    task             text NOT NULL,
    scheduled        bigint NOT NULL,
    ready            bigint NOT NULL,
    running          bigint NOT NULL,
    oldest_ready_at  timestamptz,
    completed        bigint NOT NULL,
    failed           bigint NOT NULL,
    cancelled        bigint NOT NULL,
    lease_expired    bigint NOT NULL,
    CONSTRAINT history_pkey PRIMARY KEY (sampled_at, queue, task),
    CONSTRAINT history_period_ck CHECK (period_start < sampled_at)
);

-- When the next sample is due, one row. next_sample_at is the start of
-- the minute after the last sample ('infinity' while the history is
-- switched off, '-infinity' before the first sample).
CREATE TABLE pgtq._sampler (
    singleton        boolean NOT NULL DEFAULT true,
    next_sample_at   timestamptz NOT NULL DEFAULT '-infinity',
    last_sampled_at  timestamptz,
    CONSTRAINT sampler_pkey PRIMARY KEY (singleton),
    CONSTRAINT sampler_singleton_ck CHECK (singleton)
);
INSERT INTO pgtq._sampler DEFAULT VALUES;

-- The transaction-id clock (0.34.0): at each history sample, the id of
-- the sampling transaction, with the sample's time, kept as long as the
-- history. Ids are handed out in order, so an id below a sample's was
-- handed out before that sample: health() dates by it the xmin of a
-- standby's feedback, which has no time of its own (_xid_time).
CREATE TABLE pgtq._xid_clock (
    sampled_at  timestamptz NOT NULL,
    xid         xid8 NOT NULL,
    CONSTRAINT xid_clock_pkey PRIMARY KEY (sampled_at)
);
CREATE INDEX xid_clock_xid_idx ON pgtq._xid_clock (xid);

-- Lease expiries that tick rescued and the next sample has not counted
-- yet: tick inserts (never updates: concurrent ticks never wait on each
-- other), the sample deletes what it counts.
CREATE TABLE pgtq._lease_expiry (
    expired_at  timestamptz NOT NULL,
    queue       text NOT NULL,
    task        text NOT NULL,
    jobs        integer NOT NULL,
    CONSTRAINT lease_expiry_jobs_ck CHECK (jobs > 0)
);

-- Ready marks (0.18.0): where pop starts its claim in a queue. One row per
-- queue that workers drain: `priority` is the highest priority of its
-- ready jobs (without a lock key) when tick last looked, and no such job
-- of that priority has an id below `low_id`, so pop seeks to `low_id`
-- instead of walking the index from the queue's first entry. Without it,
-- a pop steps over the index entries of every job claimed since they were
-- last cleaned; a snapshot held open (a long transaction, a replica with
-- hot_standby_feedback) keeps them from being cleaned, and every pop paid
-- for all of them: 10,000 jobs/s fell to about 4,500 within a minute.
-- Only tick writes these rows (_raise_mark), each time afresh from what it
-- sees, so a mark that passed over a ready job is lowered by the first
-- tick that sees the job (0.28.0: while no job is pushed, the mark of an
-- idle queue that says so already stays as it is, and such a tick writes
-- nothing). `next_low_id` is
-- what the next tick may publish at most (its look, one tick behind, so a
-- push whose transaction took its id before that look and commits within
-- one tick is never passed over); set_at says how fresh the mark is (pop
-- ignores a mark older than two minutes: ticks stopped).
-- Where the tick's own look starts (0.25.0): `floor_id`, below which no
-- job of the mark's priority is ready or can turn ready unseen (see
-- _raise_mark); `settled_id`, below which every push has ended;
-- `pending_id` and `pending_xid`, a tick's view that becomes settled once
-- no transaction older than that tick runs; `looked_all_at`, the last
-- look from the queue's first entry.
-- Where the reads of _ready_mark_low start (0.26.0): `lows_from`, below
-- which every row of the queue was read by a tick and deleted, and
-- `pending_seq`, the next row's number as the pending tick read it (it
-- becomes `lows_from` when the pending pair settles).
-- Where tick's rescue looks for running jobs whose lease ran out (0.27.0):
-- `rescued_to`, below which the ticks found no running job of the queue
-- whose lease ran out (they rescued each, or saw it rescued), and
-- `rescued_all_at`, the as_of of the last rescue that looked from the
-- queue's first entry (_rescue_floor); `idle_since`, since when the queue
-- has had no ready and no running job (NULL: it had some at the last
-- tick). The mark of an idle queue stays while a tick of that queue by
-- name keeps it, so its rescues keep their floor; tick() with no queue
-- drops it after ten idle minutes.
-- A tick writes a new row, a new `generation`, and deletes the one it read
-- (0.26.0), and readers take the queue's highest generation. Until 0.26.0
-- it updated the one row: beside a snapshot held open every version of it
-- stays, and each read walked them all (pop 0.4 ms slower after 16,000
-- ticks, an hour of four workers); the newest generation comes first in
-- the index whatever stays behind it.
CREATE SEQUENCE pgtq._ready_mark_generation_seq AS bigint;
CREATE TABLE pgtq._ready_mark (
    queue          text NOT NULL,
    priority       integer NOT NULL,
    low_id         bigint NOT NULL,
    next_low_id    bigint NOT NULL,
    set_at         timestamptz NOT NULL,
    floor_id       bigint NOT NULL DEFAULT 0,
    settled_id     bigint NOT NULL DEFAULT 0,
    pending_id     bigint,
    pending_xid    xid8,
    looked_all_at  timestamptz NOT NULL DEFAULT '-infinity',
    lows_from      bigint NOT NULL DEFAULT 0,
    pending_seq    bigint,
    generation     bigint NOT NULL DEFAULT nextval('pgtq._ready_mark_generation_seq'),
    rescued_to     timestamptz NOT NULL DEFAULT '-infinity',
    rescued_all_at timestamptz NOT NULL DEFAULT '-infinity',
    idle_since     timestamptz,
    CONSTRAINT ready_mark_pkey PRIMARY KEY (queue, generation)
);
ALTER SEQUENCE pgtq._ready_mark_generation_seq OWNED BY pgtq._ready_mark.generation;

-- Jobs made ready (0.18.0) by anything but a push: a release, a retry, a
-- failure retried at once, a promotion, a replacing push of a job key
-- (_lower_marks). Pop seeks from the lowest of them too, until the next
-- tick, which folds them into the mark and deletes them. Inserts only:
-- making a job ready never waits for a tick, nor a tick for it. Since
-- 0.25.0 every such job leaves a row, whatever the mark (the tick of a
-- queue without one deletes them), so the tick's look may start at a
-- floor.
-- `seq` numbers the rows in the order they were written (0.26.0): pops and
-- ticks read a queue's rows from its mark's `lows_from` on, never the rows
-- already read and deleted. Beside a snapshot held open those deleted rows
-- stay in the table and its index, and until 0.26.0 every pop and every
-- tick stepped over all of them: 1.2 ms more per pop after 20,000 jobs
-- made ready, for as long as the snapshot stayed.
CREATE SEQUENCE pgtq._ready_mark_low_seq AS bigint;
CREATE TABLE pgtq._ready_mark_low (
    queue     text NOT NULL,
    priority  integer NOT NULL,
    id        bigint NOT NULL,
    seq       bigint NOT NULL DEFAULT nextval('pgtq._ready_mark_low_seq')
);
ALTER SEQUENCE pgtq._ready_mark_low_seq OWNED BY pgtq._ready_mark_low.seq;
CREATE INDEX ready_mark_low_seq_idx ON pgtq._ready_mark_low (queue, seq);

-- pg_dump leaves out the rows of extension tables unless they are marked:
-- mark them, so a dump keeps queued jobs and schedules. Only possible (and
-- only needed) inside CREATE EXTENSION; the alembic route owns plain tables.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pgtq') THEN
        PERFORM pg_catalog.pg_extension_config_dump('pgtq._job', '');
        PERFORM pg_catalog.pg_extension_config_dump('pgtq._job_id_seq', '');
        PERFORM pg_catalog.pg_extension_config_dump('pgtq._slot_claim_seq', '');
        PERFORM pg_catalog.pg_extension_config_dump('pgtq._settings', '');
        PERFORM pg_catalog.pg_extension_config_dump('pgtq._schedule', '');
        PERFORM pg_catalog.pg_extension_config_dump('pgtq._queue', '');
    END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- Views (the read side)
-- ---------------------------------------------------------------------------

-- Every job with its history; the lease token is left out on purpose
-- (whoever holds it may complete the job). backoff_base and backoff_cap
-- NULL mean backoff()'s defaults; waiters counts the registrations of
-- watch() (inert once the job finished); pushed_by is the session user
-- that pushed the job, who may read its outcome; lock_key the key of
-- which at most one job runs at a time.
CREATE VIEW pgtq.jobs AS
SELECT j.id, j.queue, j.task, j.args, j.kwargs, j.state, j.priority,
       j.attempt, j.max_attempts, j.run_at, j.created_at, j.started_at,
       j.finished_at, j.lease_expires_at, j.worker, j.last_error, j.result,
       j.job_key, j.backoff_base, j.backoff_cap, j.cancel_requested_at,
       j.waiters, j.pushed_by, j.lock_key
FROM pgtq._job AS j;
COMMENT ON VIEW pgtq.jobs IS 'All jobs and their history (without lease tokens).';

-- Jobs whose row breaks a bookkeeping rule that the functions keep (0.8.0;
-- until 0.7.0 CHECK constraints kept them, at a cost to every one-row
-- statement): one row per job and broken rule. Empty unless pgtq._job was
-- written by hand; it reads the whole table, so it is an operator's check,
-- not something to poll.
CREATE VIEW pgtq.job_rule_breaks AS
SELECT j.id, j.queue, j.task, j.state, r.rule
FROM pgtq._job AS j
CROSS JOIN LATERAL (VALUES
    ('attempt is between 0 and max_attempts, and max_attempts is at least 1',
     j.attempt >= 0 AND j.max_attempts >= 1 AND j.attempt <= j.max_attempts),
    ('a running job has started_at',
     j.state <> 'running' OR j.started_at IS NOT NULL),
    ('finished_at is set exactly when the job is done, failed or cancelled',
     (j.state IN ('done', 'failed', 'cancelled')) = (j.finished_at IS NOT NULL))
) AS r (rule, kept)
WHERE NOT r.kept;
COMMENT ON VIEW pgtq.job_rule_breaks IS 'Jobs whose row breaks a bookkeeping rule (empty unless written by hand).';

-- Workers that registered and were seen lately; marks_waiting (0.12.0):
-- whether each marks the queues it waits for (while one does not, every
-- push notifies).
CREATE VIEW pgtq.workers AS
SELECT w.id, w.host, w.pid, w.queues, w.started_at, w.last_seen_at, w.marks_waiting
FROM pgtq._worker AS w;
COMMENT ON VIEW pgtq.workers IS
    'Live workers: who runs where, since when, last seen when, whether it marks the queues it waits for.';

-- Per queue and state: how many jobs, how old the oldest one is, and how
-- many of them (running ones) have a cancel request they have not yet
-- acted on.
CREATE VIEW pgtq.queue_stats AS
SELECT j.queue,
       j.state,
       count(*)::bigint AS jobs,
       min(j.created_at) AS oldest_created_at,
       now() - min(j.created_at) AS oldest_age,
       count(*) FILTER (WHERE j.state = 'running' AND j.cancel_requested_at IS NOT NULL)::bigint
           AS cancel_requested
FROM pgtq._job AS j
GROUP BY j.queue, j.state;
COMMENT ON VIEW pgtq.queue_stats IS
    'Per queue and state: job count, the age of the oldest job, running jobs asked to cancel.';

-- Every known queue: one that is paused or has a limit (pause,
-- configure_queue), and one that has live jobs (scheduled, ready or
-- running). Its pause and its limits (NULL: none), and what counts
-- against them now: `running`, its running jobs whose lease is live (what
-- max_running bounds: a job whose lease ran out no longer counts, even
-- before tick rescues it), and `rate_used`, the jobs started in its rate
-- window (what rate_limit bounds; NULL without a rate limit: see
-- _rate_slot). `ready` and `scheduled` are its backlog. One pass over
-- the live jobs (their partial indexes), as pgtq.metrics() makes.
CREATE VIEW pgtq.queues AS
WITH live AS (
    SELECT l.queue,
           count(*) FILTER (WHERE l.state = 'scheduled') AS scheduled,
           count(*) FILTER (WHERE l.state = 'ready') AS ready,
           count(*) FILTER (WHERE l.state = 'running' AND l.lease_expires_at > now()) AS running
    FROM (SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j WHERE j.state = 'scheduled'
          UNION ALL
          SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j
          WHERE j.state = 'ready' AND j.lock_key IS NULL  -- job_ready_idx
          UNION ALL
          SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j
          WHERE j.state = 'ready' AND j.lock_key IS NOT NULL  -- job_keyed_ready_idx
          UNION ALL
          SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j WHERE j.state = 'running') AS l
    GROUP BY l.queue
)
SELECT coalesce(f.queue, live.queue) AS queue,
       f.paused_at IS NOT NULL AS paused,
       f.paused_at,
       f.max_running,
       f.rate_limit,
       f.rate_period,
       coalesce(live.running, 0) AS running,
       CASE WHEN f.rate_limit IS NOT NULL THEN
           (SELECT coalesce(sum(w.jobs), 0)
            FROM pgtq._rate_start AS w
            WHERE w.queue = f.queue
              AND w.slot >= floor(extract(epoch FROM now()) * 100 / extract(epoch FROM f.rate_period))::bigint - 100)
       END AS rate_used,
       coalesce(live.ready, 0) AS ready,
       coalesce(live.scheduled, 0) AS scheduled,
       f.updated_at AS configured_at
FROM pgtq._queue AS f
FULL JOIN live ON live.queue = f.queue;
COMMENT ON VIEW pgtq.queues IS
    'Every queue that is paused, has a limit or has live jobs: its pause, max_running, rate limit, what '
    'counts against them now, and its backlog.';

-- The queue-wide settings; pgtq.configure changes them.
CREATE VIEW pgtq.settings AS
SELECT s.max_payload_bytes, s.worker_timeout, s.history_retention
FROM pgtq._settings AS s;
COMMENT ON VIEW pgtq.settings IS
    'Queue-wide settings: payload limit of push, worker timeout of tick, how long the queue history is kept.';

-- The queue history, one row per sample, queue and task (see _history):
-- depth by state at the sample, the age of the oldest ready job then, and
-- what finished or lost its lease since the sample before. A queue's
-- figures are the sums over its tasks (the largest age).
CREATE VIEW pgtq.queue_history AS
SELECT h.sampled_at, h.period_start, h.queue, h.task, h.scheduled, h.ready, h.running,
       h.sampled_at - h.oldest_ready_at AS oldest_ready_age,
       h.completed, h.failed, h.cancelled, h.lease_expired
FROM pgtq._history AS h;
COMMENT ON VIEW pgtq.queue_history IS
    'Queue history sampled once a minute by tick: depth by state, oldest ready age, jobs finished and '
    'leases expired since the sample before, per queue and task.';

-- Periodic tasks: what each schedule enqueues, when it runs next, and what
-- its last run enqueued (or why it could not).
CREATE VIEW pgtq.schedules AS
SELECT s.name, s.cron, s.timezone, s.queue, s.task, s.args, s.kwargs, s.priority,
       s.max_attempts, s.next_run_at, s.last_run_at, s.last_job_id, s.last_error,
       s.created_at, s.updated_at
FROM pgtq._schedule AS s;
COMMENT ON VIEW pgtq.schedules IS 'Periodic tasks: cron, time zone, the job they enqueue, next and last run.';

-- ---------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------

-- Guarantees: true when `name` is a usable queue, task or worker name (1 to
-- 200 characters, no control characters), false otherwise (NULL included).
-- The same rule as _checked_name, as an expression PostgreSQL inlines into
-- its (pinned) caller, so the hot path pays no function call when the name
-- is fine. Inlining rules out a SET clause: this is the one kind of pgtq
-- function without a pinned search_path, so every name in it is qualified.
CREATE FUNCTION pgtq._is_plain_name(name text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(pg_catalog.length(name) OPERATOR(pg_catalog.>=) 1
                    AND pg_catalog.length(name) OPERATOR(pg_catalog.<=) 200
                    AND name OPERATOR(pg_catalog.!~) '[\x01-\x1f\x7f-\x9f]',
                    false)
$$;

-- Guarantees: returns the name unchanged when it is a usable queue, task or
-- worker name (1 to 200 characters, no control characters), and raises
-- PT003 naming the parameter and the value otherwise. Control characters
-- are Unicode's category Cc (U+0001-U+001F, U+007F-U+009F), listed
-- explicitly so the answer does not depend on the server's locale. Names
-- are never spliced into SQL, so quotes, semicolons and any other unicode
-- are fine.
CREATE FUNCTION pgtq._checked_name(kind text, name text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'pgtq: % name must not be NULL', kind
            USING ERRCODE = 'PT003';
    END IF;
    IF length(name) = 0 OR length(name) > 200 THEN
        RAISE EXCEPTION 'pgtq: % name must be 1 to 200 characters, got % characters', kind, length(name)
            USING ERRCODE = 'PT003';
    END IF;
    IF name ~ '[\x01-\x1f\x7f-\x9f]' THEN
        RAISE EXCEPTION 'pgtq: % name % contains a control character', kind, quote_literal(name)
            USING ERRCODE = 'PT003';
    END IF;
    RETURN name;
END
$$;

-- Guarantees: true when the options of a push are all valid (the same rules
-- as _check_push_options), as an expression PostgreSQL inlines into its
-- pinned caller: a valid push pays no extra function call. Like
-- _is_plain_name it has no SET clause, so every name in it is qualified.
CREATE FUNCTION pgtq._push_options_ok(queue text, task text, priority integer, max_attempts integer,
                                      run_at timestamptz, as_of timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(pgtq._is_plain_name(queue) AND pgtq._is_plain_name(task)
                    AND priority IS NOT NULL
                    AND max_attempts OPERATOR(pg_catalog.>=) 1
                    AND max_attempts OPERATOR(pg_catalog.<=) 1000
                    AND pg_catalog.isfinite(as_of)
                    AND (run_at IS NULL OR pg_catalog.isfinite(run_at)),
                    false)
$$;

-- Guarantees: raises PT004 saying that `parameter` must be a finite time
-- and naming the value it got. Callers test the time inline (cheap) and
-- call this only when the test fails, so every such error is worded here.
CREATE FUNCTION pgtq._reject_time(parameter text, value timestamptz)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'pgtq: % must be a finite time, got %', parameter, coalesce(value::text, 'NULL')
        USING ERRCODE = 'PT004';
END
$$;

-- Guarantees: raises PT004 saying that the call `operation` (complete,
-- fail, heartbeat, release) needs a job id and its lease, naming what it
-- got. Called only when one of them is NULL.
CREATE FUNCTION pgtq._reject_claim(operation text, id bigint, lease uuid)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'pgtq: % needs a job id and its lease, got id % and lease %',
            operation, coalesce(id::text, 'NULL'), coalesce(lease::text, 'NULL')
        USING ERRCODE = 'PT004';
END
$$;

-- Guarantees: raises the error (PT003 or PT004) naming the first invalid
-- option of a push: queue or task name, priority, max_attempts, as_of,
-- run_at. Returns quietly when all are valid. Shared by push and push_many,
-- which call it when _push_options_ok says something is wrong.
CREATE FUNCTION pgtq._check_push_options(queue text, task text, priority integer, max_attempts integer,
                                         run_at timestamptz, as_of timestamptz)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._checked_name('queue', queue);
    PERFORM pgtq._checked_name('task', task);
    IF priority IS NULL THEN
        RAISE EXCEPTION 'pgtq: priority must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    IF max_attempts IS NULL OR max_attempts < 1 OR max_attempts > 1000 THEN
        RAISE EXCEPTION 'pgtq: max_attempts must be between 1 and 1000, got %',
                coalesce(max_attempts::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', as_of);
    END IF;
    IF run_at IS NOT NULL AND NOT isfinite(run_at) THEN
        PERFORM pgtq._reject_time('run_at', run_at);
    END IF;
END
$$;

-- Guarantees: the state a job goes to after a failed attempt, by one rule
-- shared by fail() and the lease rescue in tick(): a cancel was requested
-- -> cancelled (never retried); attempts remain -> scheduled (or ready when
-- the retry is already due); none left -> failed.
-- PL/pgSQL since 0.30.0, as backoff: a SQL function with a SET clause is
-- not inlined, and is planned at each call (with both, a fail() that
-- schedules a retry took 220 us of server CPU, 140 now).
CREATE FUNCTION pgtq._state_after_failure(attempt integer, max_attempts integer,
                                          cancel_requested boolean, retry_at timestamptz,
                                          as_of timestamptz)
RETURNS pgtq.job_state
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN CASE
        WHEN _state_after_failure.cancel_requested THEN 'cancelled'::pgtq.job_state
        WHEN _state_after_failure.attempt >= _state_after_failure.max_attempts THEN 'failed'::pgtq.job_state
        WHEN _state_after_failure.retry_at <= _state_after_failure.as_of THEN 'ready'::pgtq.job_state
        ELSE 'scheduled'::pgtq.job_state
    END;
END
$$;

-- Guarantees: raises PT004 naming the first invalid job option of a push:
-- job_key (NULL, or 1 to 200 characters), job_key_mode ('keep' or
-- 'replace'), backoff_base and backoff_cap (NULL, or 0 to 100 years),
-- lock_key (NULL, or 1 to 200 characters). Returns quietly when all are
-- valid. push and push_many call it only when one of these options is not
-- its default, so a push without them pays five comparisons.
CREATE FUNCTION pgtq._check_job_options(job_key text, job_key_mode text,
                                        backoff_base interval, backoff_cap interval, lock_key text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF length(job_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'pgtq: job_key must be 1 to 200 characters, got % characters', length(job_key)
            USING ERRCODE = 'PT004';
    END IF;
    IF length(lock_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'pgtq: lock_key must be 1 to 200 characters, got % characters', length(lock_key)
            USING ERRCODE = 'PT004';
    END IF;
    IF job_key_mode IS NULL OR job_key_mode NOT IN ('keep', 'replace') THEN
        RAISE EXCEPTION 'pgtq: job_key_mode must be ''keep'' or ''replace'', got %',
                coalesce(quote_literal(job_key_mode), 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF backoff_base < interval '0' OR backoff_base > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: backoff_base must be between 0 and 100 years, got %', backoff_base
            USING ERRCODE = 'PT004';
    END IF;
    IF backoff_cap < interval '0' OR backoff_cap > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: backoff_cap must be between 0 and 100 years, got %', backoff_cap
            USING ERRCODE = 'PT004';
    END IF;
END
$$;

-- Guarantees: wakes the waiters of job `id` (watch()): a notification on
-- channel pgtq_finished with the id as its payload, sent if and only if
-- the calling transaction commits (two for one job in one transaction are
-- folded into one). Returns `id`, so a statement that finishes jobs can
-- call it in its RETURNING list, which PostgreSQL computes once for each
-- row it changed, on the row as written (after waiting for a concurrent
-- update of it, if any). Callers call it only for jobs that finished and
-- have waiters, so a job nobody waits for costs no notification (a
-- notifying commit takes a database-wide lock) and no extra statement.
CREATE FUNCTION pgtq._tell_waiters(id bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('pgtq_finished', _tell_waiters.id::text);
    RETURN _tell_waiters.id;
END
$$;

-- Guarantees: true when the session user may read the outcome of a job
-- pushed by `pushed_by`: it is that role, or a member of it (superusers
-- are members of every role). A job pushed before 0.2.0 (pushed_by NULL)
-- is readable through the view pgtq.jobs only. session_user is the role
-- that logged in (SET ROLE does not change it, a SECURITY DEFINER
-- function does not either).
CREATE FUNCTION pgtq._may_read(pushed_by text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT pushed_by = session_user::text
           OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r
                      WHERE r.rolname = pushed_by AND pg_has_role(session_user, r.oid, 'MEMBER'))
$$;

-- Guarantees: moves running job `id`, which has a job key, back to pending
-- (`state`: scheduled or ready) with the values given and its lease
-- cleared, and returns `state`. If another pending job holds its key (one
-- pushed while it ran, which carries the newer request), it is not
-- retried: it ends cancelled, superseded by that job, with
-- `last_error` saying so, its waiters are told, and it returns
-- 'cancelled'. The unique index decides, inside a subtransaction, so a
-- concurrent push of the key cannot slip in between a check and the move.
-- Jobs without a key never conflict: their callers move them directly.
CREATE FUNCTION pgtq._requeue_keyed(id bigint, state pgtq.job_state, run_at timestamptz, attempt integer,
                                    started_at timestamptz, worker text, last_error text,
                                    as_of timestamptz)
RETURNS pgtq.job_state
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    holder  bigint;
    waiting integer;
BEGIN
    BEGIN
        UPDATE pgtq._job AS j
        SET state = _requeue_keyed.state,
            run_at = _requeue_keyed.run_at,
            attempt = _requeue_keyed.attempt,
            started_at = _requeue_keyed.started_at,
            worker = _requeue_keyed.worker,
            last_error = _requeue_keyed.last_error,
            lease = NULL,
            lease_expires_at = NULL
        WHERE j.id = _requeue_keyed.id;
        RETURN _requeue_keyed.state;
    EXCEPTION WHEN unique_violation THEN
        SELECT p.id INTO holder
        FROM pgtq._job AS j
        JOIN pgtq._job AS p ON p.queue = j.queue AND p.job_key = j.job_key
                           AND p.state IN ('scheduled', 'ready')
        WHERE j.id = _requeue_keyed.id;
    END;
    UPDATE pgtq._job AS j
    SET state = 'cancelled',
        finished_at = _requeue_keyed.as_of,
        last_error = concat_ws(E'\n', _requeue_keyed.last_error,
                               format('not retried: superseded by job %s, pending with the same job_key',
                                      coalesce(holder::text, 'unknown'))),
        lease = NULL,
        lease_expires_at = NULL
    WHERE j.id = _requeue_keyed.id
    RETURNING j.waiters INTO waiting;
    IF waiting > 0 THEN
        PERFORM pgtq._tell_waiters(_requeue_keyed.id);
    END IF;
    RETURN 'cancelled';
END
$$;

-- Guarantees: ends the failed attempt of running job `job` (a row the
-- caller locked), by the one rule of fail() and of the lease rescue in
-- tick(), and returns the state it moved the job to:
--   * a cancel was requested while it ran: cancelled, never retried;
--   * attempts remain: scheduled for retry_at, or ready if that time has
--     come (a keyed job whose key another pending job holds is superseded
--     instead: _requeue_keyed);
--   * no attempt left: failed, kept for inspection.
-- Records `error`, clears the lease, tells the waiters of a job that
-- finished (the row is locked, so its waiters count is current),
-- announces the queue of a job that became ready (and records it for the
-- ready marks, 0.18.0: _lower_marks), and the slot and lock key it freed
-- (_wake_after_end).
CREATE FUNCTION pgtq._end_failed_attempt(job pgtq._job, error text, retry_at timestamptz,
                                         as_of timestamptz)
RETURNS pgtq.job_state
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    failed    pgtq._job := _end_failed_attempt.job;
    new_state pgtq.job_state;
BEGIN
    new_state := pgtq._state_after_failure(failed.attempt, failed.max_attempts,
                                           failed.cancel_requested_at IS NOT NULL,
                                           _end_failed_attempt.retry_at, _end_failed_attempt.as_of);
    IF new_state IN ('scheduled', 'ready') AND failed.job_key IS NOT NULL THEN
        new_state := pgtq._requeue_keyed(failed.id, new_state, _end_failed_attempt.retry_at, failed.attempt,
                                         failed.started_at, failed.worker, _end_failed_attempt.error,
                                         _end_failed_attempt.as_of);
    ELSE
        UPDATE pgtq._job AS j
        SET state = new_state,
            run_at = CASE WHEN new_state IN ('scheduled', 'ready') THEN _end_failed_attempt.retry_at
                          ELSE j.run_at END,
            finished_at = CASE WHEN new_state IN ('failed', 'cancelled') THEN _end_failed_attempt.as_of END,
            last_error = _end_failed_attempt.error,
            lease = NULL,
            lease_expires_at = NULL
        WHERE j.id = failed.id;
        IF new_state IN ('failed', 'cancelled') AND failed.waiters > 0 THEN
            PERFORM pgtq._tell_waiters(failed.id);
        END IF;
    END IF;
    IF new_state = 'ready' THEN
        PERFORM pgtq._lower_marks(ARRAY[failed.queue], ARRAY[failed.priority], ARRAY[failed.id],
                                  ARRAY[failed.lock_key]);
        PERFORM pgtq._announce(failed.queue);
    END IF;
    PERFORM pgtq._wake_after_end(ARRAY[failed.queue], ARRAY[failed.lock_key]);
    RETURN new_state;
END
$$;

-- Guarantees: the first key of the two advisory locks of `queue`'s
-- waiting workers (0.12.0), the same number in every session: second key
-- 0 is the waiting mark (held shared, at session level, by each worker
-- waiting for the queue's jobs: mark_waiting), second key 1 the push gate
-- (held shared by each transaction that found no mark, until it ends;
-- taken exclusively, with a try, by a worker settling its mark:
-- waiting_settled). Two queues sharing the hash only make a push notify
-- for the other's waiting workers, or a worker settle a little later.
-- Every announcement computes it, so PostgreSQL inlines it into its
-- (pinned) caller, as _is_plain_name: no SET clause, every name qualified.
CREATE FUNCTION pgtq._waiting_space(queue text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.hashtext('pgtq waiting for ' OPERATOR(pg_catalog.||) queue)
$$;

-- Guarantees: whether an announcement of `queue` must notify (0.12.0):
-- false only when no worker can be waiting for it. Never waits.
--   * A worker settling its mark holds, or waits for, the queue's push
--     gate exclusively: then true.
--   * Otherwise the caller's transaction holds the gate shared from here
--     until it ends, so a worker that marks the queue after this look
--     settles (waiting_settled) only once this transaction has ended, and
--     pops after that: it sees the jobs this transaction committed.
--   * A waiting worker holds the waiting mark shared: the test takes the
--     mark exclusively with a try and lets go of it in the same expression
--     (no interrupt comes between the two calls, so a cancelled statement
--     never leaves it held). When another announcement tests the mark at
--     the same instant, the try fails too: true, one notification more.
--   * With no mark held, still true while a registered worker does not
--     mark (_worker.marks_waiting: pgtq before 0.12.0, or a worker of
--     another language that waits on LISTEN alone).
-- A mark held by the calling session itself does not count.
-- No SET clause (0.13.0): it runs in its callers' pinned search_path (all
-- of them pin it; nobody else may run it) and qualifies what it calls, so
-- an announcement no longer pays two changes of search_path (3 us of the
-- 50 us a push costs the server).
CREATE FUNCTION pgtq._anyone_waiting(queue text)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    space integer := pgtq._waiting_space(_anyone_waiting.queue);
BEGIN
    IF NOT pg_catalog.pg_try_advisory_xact_lock_shared(space, 1) THEN
        RETURN true;
    END IF;
    IF NOT (CASE WHEN pg_catalog.pg_try_advisory_lock(space, 0) THEN pg_catalog.pg_advisory_unlock(space, 0)
                 ELSE false END) THEN
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM pgtq._worker AS w WHERE NOT w.marks_waiting);
END
$$;

-- Guarantees: the distinct queue names of `queues` (0.12.0), each checked
-- as _checked_name checks it (PT003 naming it); a NULL list raises PT004.
CREATE FUNCTION pgtq._checked_queues(queues text[])
RETURNS SETOF text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF queues IS NULL THEN
        RAISE EXCEPTION 'pgtq: queues must be a list of queue names, got NULL'
            USING ERRCODE = 'PT004';
    END IF;
    RETURN QUERY SELECT DISTINCT pgtq._checked_name('queue', q) FROM unnest(queues) AS q;
END
$$;

-- Guarantees: whether an announcement of `queue` must notify (0.16.0,
-- taken out of _announce, whose rules it keeps): false where the caller
-- set pgtq.notify to 'off', or when no worker can be waiting for the
-- queue (_anyone_waiting, which holds the queue's push gate from here to
-- the end of the caller's transaction when it finds no mark); true
-- otherwise. Any pgtq.notify other than unset, empty, 'on' or 'off'
-- raises PT004 naming it. push asks once and uses the answer twice: to
-- look for a hand-off offer, then to notify.
-- No SET clause, as _anyone_waiting.
CREATE FUNCTION pgtq._must_announce(queue text)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    notify pg_catalog.text := pg_catalog.current_setting('pgtq.notify', true);
BEGIN
    IF notify IS NULL OR notify OPERATOR(pg_catalog.=) '' OR notify OPERATOR(pg_catalog.=) 'on' THEN
        RETURN pgtq._anyone_waiting(_must_announce.queue);
    ELSIF notify OPERATOR(pg_catalog.<>) 'off' THEN
        RAISE EXCEPTION 'pgtq: the setting pgtq.notify must be on or off, got %', pg_catalog.quote_literal(notify)
            USING ERRCODE = 'PT004';
    END IF;
    RETURN false;
END
$$;

-- Guarantees: tells idle workers of `queue` that a job became ready. The
-- notification is sent only if the calling transaction commits, and
-- PostgreSQL folds identical notifications of one transaction into one, so
-- a bulk push announces each queue once. The channel is fixed and the queue
-- name travels as the payload: nothing is spliced into an identifier.
-- Only when a worker may be waiting (0.12.0, _anyone_waiting): a worker
-- that waits marks the queue first (mark_waiting), and a transaction that
-- finds no mark holds the queue's push gate until it ends, so the worker
-- pops after it committed. Without a waiting worker nothing is sent, and
-- the commits of pushing transactions no longer take turns.
-- The opt-out (0.6.0): where the caller set pgtq.notify to 'off' (SET, or
-- SET LOCAL for one transaction), it sends nothing: a notification makes
-- commits take turns (PostgreSQL serialises the commits of notifying
-- transactions), which producers of many small transactions may not want.
-- Workers then find those jobs at their next poll, or at once while they
-- are draining the queue. Unset, empty or 'on' notify; any other value
-- raises PT004 naming it, so the transaction writes nothing.
-- No SET clause (0.13.0), as _anyone_waiting. The rules are
-- _must_announce's (0.16.0).
CREATE FUNCTION pgtq._announce(queue text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF pgtq._must_announce(_announce.queue) THEN
        PERFORM pg_catalog.pg_notify('pgtq', _announce.queue);
    END IF;
END
$$;

-- Guarantees: hands a job that push is about to insert as ready to an open
-- hand-off offer of `queue` (0.16.0, offer_handoffs), and returns its id;
-- NULL when it hands nothing, and then it wrote nothing. A handed job is
-- inserted running, claimed as pop would claim it for the offer's worker
-- (attempt 1, a new lease that runs out at as_of + the offer's lease),
-- and its claim (pop's columns, as JSON) is notified on the offer's
-- channel at commit: the worker starts it without a claim of its own.
-- Rolled back, neither the job nor the notification exists.
-- Never waits. It hands nothing when:
--   * the queue has a pause or a limit (a _queue row): pop alone keeps them;
--     it holds the queue's claims lock shared first, as pop does (0.39.0),
--     and hands nothing while configure_queue holds it;
--   * as_of is more than a second away from the clock: a lease counted from
--     a time long past would run out before the worker hears of the job
--     (a transaction that stays open longer than the lease after the push
--     still hands a lapsed lease: the lease rescue then runs the job again);
--   * args and kwargs take more than 6,000 bytes, or more than
--     max_payload_bytes (the insert that follows raises the error), or the
--     claim does not fit a notification (8,000 bytes);
--   * no offer of the queue is open: its session holds (space, 0), which a
--     try to take shared fails on (taken and let go in one expression);
--   * every open offer is being handed a job by another transaction, which
--     holds (space, 1) until it ends (a try here, never a wait), so each
--     offer gets at most one job per committing push at a time;
--   * this transaction handed a job already (pgtq.handed_off, set locally
--     here): a transaction hands at most one job, however many it pushes,
--     since the lock above does not stop the transaction that holds it.
-- An offer may close between this look and the commit; its worker then
-- hands the job back (release), which announces it.
CREATE FUNCTION pgtq._hand_off(queue text, task text, args jsonb, kwargs jsonb, priority integer,
                               max_attempts integer, backoff_base interval, backoff_cap interval,
                               as_of timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    offer     record;
    new_id    bigint;
    new_lease uuid;
    expires   timestamptz;
    claim     text;
BEGIN
    IF current_setting('pgtq.handed_off', true) = 'on'
       OR abs(extract(epoch FROM clock_timestamp() - _hand_off.as_of)) > 1
       OR NOT EXISTS (SELECT 1 FROM pgtq._settings AS s
                      WHERE pg_column_size(_hand_off.args) + pg_column_size(_hand_off.kwargs)
                            <= least(s.max_payload_bytes, 6000))
       OR NOT pg_try_advisory_xact_lock_shared(pgtq._slot_space(_hand_off.queue), -1)
       OR EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = _hand_off.queue) THEN
        RETURN NULL;
    END IF;
    FOR offer IN
        SELECT h.channel, h.space, h.worker, h.lease
        FROM pgtq._handoff AS h
        WHERE _hand_off.queue = ANY (h.queues) AND h.pid <> pg_backend_pid()
        ORDER BY h.pid
    LOOP
        CONTINUE WHEN CASE WHEN pg_try_advisory_lock_shared(offer.space, 0)
                           THEN pg_advisory_unlock_shared(offer.space, 0) ELSE false END;
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(offer.space, 1);
        new_id := nextval('pgtq._job_id_seq');
        new_lease := gen_random_uuid();
        expires := _hand_off.as_of + offer.lease;
        claim := json_build_object('id', new_id, 'queue', _hand_off.queue, 'task', _hand_off.task,
                                   'args', _hand_off.args, 'kwargs', _hand_off.kwargs,
                                   'priority', _hand_off.priority, 'attempt', 1,
                                   'max_attempts', _hand_off.max_attempts, 'lease', new_lease,
                                   'lease_expires_at', expires)::text;
        IF octet_length(claim) >= 8000 THEN
            RETURN NULL;
        END IF;
        INSERT INTO pgtq._job (id, queue, task, args, kwargs, state, priority, attempt, max_attempts, run_at,
                               created_at, started_at, lease, lease_expires_at, worker, backoff_base,
                               backoff_cap, pushed_by)
        VALUES (new_id, _hand_off.queue, _hand_off.task, _hand_off.args, _hand_off.kwargs, 'running',
                _hand_off.priority, 1, _hand_off.max_attempts, _hand_off.as_of, _hand_off.as_of,
                _hand_off.as_of, new_lease, expires, offer.worker, _hand_off.backoff_base,
                _hand_off.backoff_cap, session_user);
        PERFORM pg_notify(offer.channel, claim);
        PERFORM set_config('pgtq.handed_off', 'on', true);
        RETURN new_id;
    END LOOP;
    RETURN NULL;
END
$$;

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

-- Guarantees: raises the error push raises for `args` and `kwargs` of
-- `task` (PT001, PT002 or PT005, as _job_payload_problem words it), and
-- returns quietly when push would take them (0.13.0: push's checks of its
-- payload, once written in push itself).
CREATE FUNCTION pgtq._check_payload(task text, args jsonb, kwargs jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    problem record;
BEGIN
    SELECT * INTO problem FROM pgtq._job_payload_problem(_check_payload.task, _check_payload.args,
                                                         _check_payload.kwargs);
    IF problem.code IS NOT NULL THEN
        RAISE EXCEPTION '%', problem.message USING ERRCODE = problem.code;
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

-- ---------------------------------------------------------------------------
-- Flow control: pause, limits and lock keys (helpers of pop and of the
-- calls that end a running job)
-- ---------------------------------------------------------------------------

-- Guarantees: the number of the rate-window bucket that `as_of` falls in,
-- for a rate limit over `period`: buckets are period / 100 long and
-- numbered from the epoch, so bucket b covers [b * w, (b + 1) * w) with
-- w = period / 100. The window of a pop at as_of is the buckets from
-- _rate_slot(as_of, period) - 100 to _rate_slot(as_of, period): they
-- cover (as_of - period, as_of] and at most period / 100 more before it,
-- so a start is forgotten between period and 1.01 * period after it
-- happened, never sooner (the view pgtq.queues writes the same formula).
-- PL/pgSQL since 0.30.0: a SQL function with a SET clause is not inlined,
-- and is planned at each call (a pop(1) of a rate-limited queue took 360
-- us of server CPU, 290 now).
CREATE FUNCTION pgtq._rate_slot(as_of timestamptz, period interval)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN floor(extract(epoch FROM _rate_slot.as_of) * 100 / extract(epoch FROM _rate_slot.period))::bigint;
END
$$;

-- Guarantees: raises PT007 naming `queue` unless the transaction runs at
-- READ COMMITTED, the isolation level that the counting of _room and the
-- key checks of _choose_keyed rely on: each of their statements must see
-- what committed before it started (at REPEATABLE READ or SERIALIZABLE a
-- statement sees the database as of the transaction's first one, and
-- would miss what the pops before it claimed).
CREATE FUNCTION pgtq._check_read_committed(queue text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'pgtq: pop of queue % needs READ COMMITTED isolation (it is paused, has a limit '
                        'or jobs with a lock key), the transaction runs at %',
                quote_literal(queue), upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'PT007';
    END IF;
END
$$;

-- Guarantees: how many jobs a pop may claim now from the queue whose
-- _queue row is `flow`, at most n and never below 0: none while it is
-- paused; with max_running, the slots left: max_running minus its running
-- jobs whose lease is live at as_of (a job whose lease ran out counts no
-- more, whether tick rescued it yet or not; a job that ended counts no
-- more once its end committed); with rate_limit, the starts left in its
-- rate window: rate_limit minus the jobs started in the window's buckets
-- (_rate_slot; 0.27.0: rows of _rate_start, read by the primary key from
-- the window's first bucket). Counting reads the queue's entries of
-- job_running_idx from as_of on: its live running jobs, at most
-- max_running of them (0.5.0; until 0.4.0 it looked at each live running
-- job of every queue), in index order (0.20.0, enable_bitmapscan off, as
-- in pop: tick calls it too; 0.27.0: enable_seqscan off too, for
-- _rate_start, and so jit off). Takes no lock (_room does). The window's
-- first bucket is computed once (0.26.0: it was computed again for each bucket, 4 us
-- each, 0.45 ms a pop once a busy queue filled its 101 buckets).
CREATE FUNCTION pgtq._room_of(flow pgtq._queue, n integer, as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
AS $$
DECLARE
    room         bigint := _room_of.n;
    window_start bigint;  -- the first bucket of the rate window
BEGIN
    IF flow.paused_at IS NOT NULL THEN
        RETURN 0;
    END IF;
    IF flow.max_running IS NOT NULL THEN
        room := least(room, flow.max_running - (SELECT count(*) FROM pgtq._job AS r
                                                WHERE r.state = 'running'
                                                  AND r.lease_expires_at > _room_of.as_of
                                                  AND r.queue = flow.queue));
    END IF;
    IF flow.rate_limit IS NOT NULL THEN
        window_start := pgtq._rate_slot(_room_of.as_of, flow.rate_period) - 100;
        room := least(room, flow.rate_limit - (SELECT coalesce(sum(w.jobs), 0)
                                               FROM pgtq._rate_start AS w
                                               WHERE w.queue = flow.queue AND w.slot >= window_start));
    END IF;
    RETURN greatest(room, 0);
END
$$;

-- Guarantees: the lease below which `queue` has no running job whose
-- lease ran out that a tick could see, as of as_of (0.27.0): the
-- `rescued_to` of the queue's mark, which the ticks' rescues move (tick).
-- '-infinity' (the queue's first entry) when the queue has no mark, and
-- when rescued_to lies after as_of (a tick as of a later time: a claim
-- after it may have a lease below it that ran out since). With
-- `full_every` (the rescue's, which misses nothing by looking less far,
-- only rescues later) it is no later than as_of (a tick that started
-- just before another committed looks from as_of), and '-infinity' when
-- the last look from the first entry (`rescued_all_at`) is full_every or
-- longer before as_of, or after it.
-- Reads of job_running_idx for expired or lapsed jobs start there: the
-- tick's rescue (full_every one minute), and the pops of a max_running
-- queue (_filled_slots, _write_off_lapsed; no full look). Before 0.27.0
-- they read from the first entry: beside a snapshot held open (pg_dump,
-- a long report, a replica with hot_standby_feedback) the index entries
-- of every job that ended since it was taken stay, and each rescue, once
-- their leases were past, and each pop of a max_running queue stepped
-- over all of them (30 ms a tick after 100,000 jobs, 8.7 ms a pop after
-- 40,000, growing for as long as the snapshot stays). A job can still
-- lie below rescued_to: one whose claim or heartbeat committed after the
-- tick that set it, with a lease that had run out before (its transaction
-- stayed open longer than the lease). The rescue's look from the first
-- entry, once a minute, finds it. A pop that does not see it gives no
-- slot away that the job could take back: its lease ran out before any
-- heartbeat of it could start (a worker's heartbeat comes after its claim
-- committed, as of its own start), and a heartbeat never extends a lease
-- that ran out in a max_running queue.
-- PL/pgSQL with no SET clause: its callers (pops of a max_running queue,
-- tick) pin search_path, and a SQL function with one was planned anew at
-- every call, 25 us more per pop's room check.
CREATE FUNCTION pgtq._rescue_floor(queue text, as_of timestamptz, full_every interval)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN coalesce((SELECT CASE WHEN _rescue_floor.full_every IS NULL
                                 THEN CASE WHEN m.rescued_to <= _rescue_floor.as_of THEN m.rescued_to END
                                 WHEN m.rescued_all_at > _rescue_floor.as_of - _rescue_floor.full_every
                                      AND m.rescued_all_at <= _rescue_floor.as_of
                                 THEN least(m.rescued_to, _rescue_floor.as_of) END
                     FROM pgtq._ready_mark AS m
                     WHERE m.queue = _rescue_floor.queue
                     ORDER BY m.generation DESC
                     LIMIT 1),
                    '-infinity');
END
$$;

-- Guarantees: writes off the running jobs of `queue` whose lease ran out
-- as of as_of (0.11.0): sets their slot to 0, so no heartbeat extends
-- their lease again (heartbeat's rule) and their slot and lock key are
-- free for other jobs; tick still rescues them, and their worker may
-- still end them by their lease. A pop of a max_running queue calls it
-- before it counts a lapsed job as gone: without it, a heartbeat that
-- read the lease as live (its as_of before the lapse) but committed after
-- the pop looked could bring the job back beside the one that took its
-- slot. Never waits: a lapsed job whose row another transaction is
-- writing (a heartbeat, or an end) is left as it is (FOR UPDATE SKIP
-- LOCKED). Returns how many such jobs it left: they still count as
-- running. A lapsed job rewritten since the caller's snapshot is judged
-- on its newest version, so a lease a heartbeat extended is not written
-- off. It looks from the queue's rescue floor (0.27.0, _rescue_floor:
-- below it no lapsed job can come back). With no lapsed job, the common
-- case, it costs a probe of the queue's mark and one of job_running_idx.
CREATE FUNCTION pgtq._write_off_lapsed(queue text, as_of timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    left_alone bigint;
    read_from  timestamptz := pgtq._rescue_floor(_write_off_lapsed.queue, _write_off_lapsed.as_of, NULL);
BEGIN
    IF NOT EXISTS (SELECT 1
                   FROM pgtq._job AS r
                   WHERE r.queue = _write_off_lapsed.queue AND r.state = 'running'
                     AND r.lease_expires_at >= read_from
                     AND r.lease_expires_at <= _write_off_lapsed.as_of AND r.slot IS DISTINCT FROM 0) THEN
        RETURN 0;
    END IF;
    UPDATE pgtq._job AS j
    SET slot = 0
    WHERE j.id = ANY (ARRAY(SELECT r.id
                            FROM pgtq._job AS r
                            WHERE r.queue = _write_off_lapsed.queue AND r.state = 'running'
                              AND r.lease_expires_at >= read_from
                              AND r.lease_expires_at <= _write_off_lapsed.as_of AND r.slot IS DISTINCT FROM 0
                            FOR UPDATE SKIP LOCKED));
    SELECT count(*) INTO left_alone
    FROM pgtq._job AS r
    WHERE r.queue = _write_off_lapsed.queue AND r.state = 'running'
      AND r.lease_expires_at >= read_from
      AND r.lease_expires_at <= _write_off_lapsed.as_of AND r.slot IS DISTINCT FROM 0;
    RETURN left_alone;
END
$$;

-- Guarantees: _write_off_lapsed for the running jobs of lock key
-- `lock_key` (0.23.0; 0.11.0 to 0.22.0 wrote off every lock key's at each
-- pop, _write_off_lapsed_keys): those whose lease ran out as of as_of get
-- slot 0, so the key is free and no heartbeat extends their lease again.
-- Never waits (FOR UPDATE SKIP LOCKED): a job whose row another
-- transaction is writing is left as it is and still holds its key. With
-- _is_next_of_key calls it when the key has such a job, before it counts
-- the key free.
CREATE FUNCTION pgtq._write_off_lapsed_key(lock_key text, as_of timestamptz)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
    UPDATE pgtq._job AS j
    SET slot = 0
    WHERE j.id = ANY (ARRAY(SELECT r.id
                            FROM pgtq._job AS r
                            WHERE r.lock_key = _write_off_lapsed_key.lock_key
                              AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
                              AND r.lease_expires_at <= _write_off_lapsed_key.as_of
                              AND r.slot IS DISTINCT FROM 0
                            FOR UPDATE SKIP LOCKED))
$$;

-- Guarantees: _room_of for `queue` once every other pop of it has ended:
-- locks the queue's _queue row (FOR UPDATE, waiting for a pop of the queue
-- that holds it) until the caller's transaction ends, so the room it
-- counts stays true until the claim it allows commits. Pops of one paused
-- or limited queue therefore take turns, and each one counts the jobs the
-- pops before it claimed (it reads the row and counts in statements that
-- start after the lock is granted, so after their commit): several pops
-- at once never run more than max_running jobs, nor start more than
-- rate_limit in a window. With max_running, the running jobs whose lease
-- ran out are written off first (_write_off_lapsed, 0.11.0), and those it
-- had to leave (another transaction was writing their row) still count.
-- Needs READ COMMITTED (PT007). Returns n when the queue has no row
-- (nothing to control, or no longer).
CREATE FUNCTION pgtq._room(queue text, n integer, as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    flow       pgtq._queue;
    left_alone bigint := 0;  -- lapsed running jobs not written off: they still count
BEGIN
    PERFORM pgtq._check_read_committed(_room.queue);
    SELECT f.* INTO flow FROM pgtq._queue AS f WHERE f.queue = _room.queue FOR UPDATE;
    IF NOT FOUND THEN
        RETURN _room.n;
    END IF;
    IF flow.max_running IS NOT NULL THEN
        left_alone := pgtq._write_off_lapsed(_room.queue, _room.as_of);
    END IF;
    RETURN greatest(pgtq._room_of(flow, _room.n, _room.as_of) - left_alone, 0);
END
$$;

-- Guarantees: the first key of the transaction-level advisory locks of
-- `queue`'s slots (the second key is the slot number, 1..max_running) and
-- of its settings (second key 0), the same number in every session.
-- Two queues sharing the hash only make their pops try each other's locks.
-- PL/pgSQL since 0.30.0, as _rate_slot: a SQL function with a SET clause
-- is not inlined, and is planned at each call.
CREATE FUNCTION pgtq._slot_space(queue text)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN hashtext('pgtq slots of ' || _slot_space.queue);
END
$$;

-- Guarantees: holds the lock of `queue`'s settings against every pop of
-- the queue (pg_advisory_xact_lock(_slot_space(queue), 0), exclusive,
-- until the caller's transaction ends), after waiting for the pops that
-- read its settings to end. pause, resume and configure_queue call it
-- before they write the queue's _queue row, so a pop that claims by slots
-- (_take_slots, which holds the same lock shared) ends before the change,
-- or starts after it and reads it. (0.39.0) configure_queue first takes
-- the queue's claims lock, (_slot_space(queue), -1), exclusive: every pop
-- of the queue holds it shared from before it reads the queue's row (a
-- queue with no row too), and the hand-offs try to take it (_hand_off,
-- _hand_freed_key), so no claim that read the old limits commits after
-- the new ones. pause and resume do not take it: a pop of a queue with no
-- limit still open in another transaction does not hold them up.
CREATE FUNCTION pgtq._lock_settings(queue text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT pg_advisory_xact_lock(pgtq._slot_space(queue), 0)
$$;

-- Guarantees: as of the call (its statements see every claim that
-- committed before them), the distinct slots in 1..capacity that the
-- running jobs of `queue` holding a slot have, ascending, and how many
-- running jobs hold one: live > cardinality(filled) when some of them run
-- without a distinct slot in that range. A running job holds a slot while
-- its lease is live at as_of; one whose lease ran out is written off first
-- (_write_off_lapsed, 0.11.0) and holds none, unless another transaction
-- was writing its row: then it still holds its slot. Reads the queue's
-- entries of job_running_idx and their rows; twice when a lease ran out.
-- It reads them in index order (pop's enable_bitmapscan off, 0.20.0),
-- from the queue's rescue floor (0.27.0, _rescue_floor: below it no job
-- whose lease ran out can come back to take its slot again; before, it
-- read every job of the queue that ended beside a held snapshot).
-- `unclaimed` (0.39.0): how many of the running jobs it read that hold a
-- slot (or none, but were not written off) have no claim number
-- (slot_claim): claimed before 0.39.0, or without a slot.
CREATE FUNCTION pgtq._filled_slots(queue text, capacity integer, as_of timestamptz,
                                   OUT filled integer[], OUT live bigint, OUT unclaimed bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    lapsed    bigint;  -- running jobs whose lease ran out, not written off
    read_from timestamptz := pgtq._rescue_floor(_filled_slots.queue, _filled_slots.as_of, NULL);
BEGIN
    FOR look IN 1 .. 2 LOOP
        -- A job written off has slot 0: it is neither in `filled` nor live.
        SELECT coalesce(array_agg(DISTINCT r.slot ORDER BY r.slot)
                            FILTER (WHERE r.slot BETWEEN 1 AND _filled_slots.capacity), '{}'),
               count(*) FILTER (WHERE r.lease_expires_at > _filled_slots.as_of OR r.slot IS DISTINCT FROM 0),
               count(*) FILTER (WHERE r.lease_expires_at <= _filled_slots.as_of AND r.slot IS DISTINCT FROM 0),
               count(*) FILTER (WHERE r.slot_claim IS NULL AND r.slot IS DISTINCT FROM 0)
        INTO filled, live, lapsed, unclaimed
        FROM pgtq._job AS r
        WHERE r.queue = _filled_slots.queue AND r.state = 'running' AND r.lease_expires_at >= read_from;
        EXIT WHEN lapsed = 0 OR look = 2;
        PERFORM pgtq._write_off_lapsed(_filled_slots.queue, _filled_slots.as_of);
    END LOOP;
END
$$;

-- Guarantees: _take_slots for a max_running queue whose running jobs all
-- hold a slot of their own (_queue.slotted, 0.39.0): up to `wanted` slots
-- of 1..capacity, the lowest free ones, each held by its token (as
-- _take_slots says) until the caller's transaction ends and free as of a
-- statement that started after the token was taken. A slot is free when
-- its newest claim (the highest slot_claim among the jobs that claimed it)
-- is not running, or is running with a lease that ran out as of as_of and
-- is written off here (slot 0, as _write_off_lapsed does: no heartbeat
-- extends its lease again; one whose row another transaction is writing
-- keeps its slot). The claims of a slot follow one another under its
-- token, each numbered from _slot_claim_seq after the token was taken, so
-- the newest is the slot's only possible holder, and every running job
-- that counts against max_running is the newest claim of its slot
-- (slotted). Each look probes the slots from 1 up, one probe of
-- job_slot_holder_idx each (the first version of the slot's newest claim
-- that the statement sees), until it has found enough free ones: it costs
-- the slots filled below them, never the jobs that ran and ended. A pop
-- that counts the queue's running jobs instead (_filled_slots) reads,
-- beside a held snapshot, the entries of each job that ended within its
-- lease (5.9 ms a pop at 8,000 jobs/s: the queue's drain fell to a fifth
-- until 0.38.0); _take_slots probes when its count costs that. A slot
-- whose token another pop holds is left to it; when every free slot is,
-- the pop waits for the first one's token (so a claim that is rolled back
-- does not leave it refused) and probes that slot again: a look reads the
-- free slots a few more at a time than it still wants, and goes on past
-- those whose tokens other pops hold, so pops that run at once take
-- different slots, never waiting for each other while a slot is free. A
-- pop that had to drop slots that claims filled meanwhile looks again,
-- three looks in all.
CREATE FUNCTION pgtq._take_free_slots(queue text, wanted integer, capacity integer, as_of timestamptz)
RETURNS integer[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    space        integer := pgtq._slot_space(_take_free_slots.queue);
    after        integer;            -- a look goes on from the slot after this one
    upto         integer;            -- and reads the slots up to this one, a window at a time
    free         integer[];          -- the slots a look found free, ascending
    chunk        integer;            -- how many free slots a look reads at most
    found        integer;            -- how many it read
    last         integer;            -- the last of them
    lapsed_slots integer[];          -- of those, the slots of running jobs whose lease ran out
    lapsed_ids   bigint[];           -- and those jobs
    written_off  integer[];          -- the slots of the lapsed jobs written off
    fresh        integer[];          -- the free slots whose tokens this look took
    kept         integer[];          -- of those, the ones still free after the token
    taken        integer[] := '{}';  -- the slots this pop holds, free
    busy         integer;            -- the first free slot whose token another pop holds
    looks        integer := 0;
BEGIN
    LOOP
        looks := looks + 1;
        after := 0;
        fresh := '{}';
        busy := NULL;
        -- The free slots from 1 up, a few more at a time than are wanted,
        -- so that those whose tokens other pops hold are passed over; in
        -- windows of the slot numbers, as generate_series makes all its
        -- rows first (100,000 of them took 8 ms).
        LOOP
            chunk := _take_free_slots.wanted - cardinality(taken) - cardinality(fresh) + 8;
            upto := least(_take_free_slots.capacity, after + greatest(4 * chunk, 64));
            SELECT coalesce(array_agg(p.slot ORDER BY p.slot), '{}'),
                   count(*),
                   max(p.slot),
                   coalesce(array_agg(p.slot) FILTER (WHERE p.lapsed), '{}'),
                   coalesce(array_agg(p.id) FILTER (WHERE p.lapsed), '{}')
            INTO free, found, last, lapsed_slots, lapsed_ids
            FROM (SELECT c.slot, h.id, h.state = 'running' AS lapsed
                  FROM generate_series(after + 1, upto) AS c (slot)
                  LEFT JOIN LATERAL (SELECT j.id, j.state, j.lease_expires_at
                                     FROM pgtq._job AS j
                                     WHERE j.queue = _take_free_slots.queue AND j.slot = c.slot
                                       AND j.slot_claim IS NOT NULL
                                     ORDER BY j.slot_claim DESC
                                     LIMIT 1) AS h ON true
                  WHERE c.slot <> ALL (taken)
                    AND (h.state IS DISTINCT FROM 'running' OR h.lease_expires_at <= _take_free_slots.as_of)
                  LIMIT chunk) AS p;
            IF cardinality(lapsed_ids) > 0 THEN
                -- Judged on their newest versions (a heartbeat may have
                -- extended a lease since the look); never waits.
                WITH lapsed AS (
                    SELECT r.id, r.slot
                    FROM pgtq._job AS r
                    WHERE r.id = ANY (lapsed_ids) AND r.state = 'running' AND r.slot >= 1
                      AND r.lease_expires_at <= _take_free_slots.as_of
                    FOR UPDATE SKIP LOCKED
                ), written AS (
                    UPDATE pgtq._job AS j
                    SET slot = 0
                    FROM lapsed
                    WHERE j.id = lapsed.id
                    RETURNING lapsed.slot
                )
                SELECT coalesce(array_agg(w.slot), '{}') INTO written_off FROM written AS w;
                free := ARRAY(SELECT f.slot FROM unnest(free) AS f (slot)
                              WHERE f.slot <> ALL (lapsed_slots) OR f.slot = ANY (written_off)
                              ORDER BY f.slot);
            END IF;
            FOR i IN 1 .. cardinality(free) LOOP
                EXIT WHEN cardinality(taken) + cardinality(fresh) >= _take_free_slots.wanted;
                IF pg_try_advisory_xact_lock(space, free[i]) THEN
                    fresh := fresh || free[i];
                ELSIF busy IS NULL THEN
                    busy := free[i];
                END IF;
            END LOOP;
            after := CASE WHEN found = chunk THEN last ELSE upto END;
            EXIT WHEN cardinality(taken) + cardinality(fresh) >= _take_free_slots.wanted
                      OR after >= _take_free_slots.capacity;
        END LOOP;
        IF cardinality(fresh) = 0 THEN
            IF busy IS NULL OR cardinality(taken) > 0 THEN
                RETURN taken;
            END IF;
            PERFORM pg_advisory_xact_lock(space, busy);  -- every free slot is another pop's: wait for its commit
            fresh := ARRAY[busy];
        END IF;
        -- As of now, a newer snapshot: drop the slots that claims which
        -- committed since the look filled.
        kept := ARRAY(SELECT t.slot
                      FROM unnest(fresh) AS t (slot)
                      WHERE (SELECT h.state
                             FROM pgtq._job AS h
                             WHERE h.queue = _take_free_slots.queue AND h.slot = t.slot
                               AND h.slot_claim IS NOT NULL
                             ORDER BY h.slot_claim DESC
                             LIMIT 1) IS DISTINCT FROM 'running'
                      ORDER BY t.slot);
        taken := ARRAY(SELECT u.slot FROM unnest(taken || kept) AS u (slot) ORDER BY u.slot);
        EXIT WHEN cardinality(kept) = cardinality(fresh) OR cardinality(taken) >= _take_free_slots.wanted
                  OR looks >= 3;
    END LOOP;
    RETURN taken;
END
$$;

-- Guarantees: for a pop of up to n jobs from `queue` when the queue's only
-- control is max_running (not paused, no rate limit, as read now): the
-- slots (numbers 1..max_running) the pop may fill, at most least(n, 256,
-- max_running minus the queue's running jobs whose lease is live at
-- as_of); each of them is held until the caller's transaction ends, and
-- no live running job holds it. NULL when the queue is paused, has a rate
-- limit or no row: pop then counts under the row lock (_room). Either way
-- it holds the lock of the queue's settings shared (_lock_settings) until
-- the transaction ends, so the settings stay as it read them until the
-- claim commits, and the pops of one queue all take one of the two paths.
--
-- Why no slot is ever filled twice. A slot passes to a claim only under
-- its token, the advisory lock (_slot_space(queue), slot), taken with
-- pg_try_advisory_xact_lock (never waiting, except below) and held until
-- the claim commits. The slots already filled are dropped in a statement
-- that starts after the token is held (_filled_slots), so it sees every
-- claim of that slot that committed before. Each claimed job records its
-- slot (pop writes _job.slot), so the live running jobs of a queue hold
-- distinct slots, and there are max_running of them. Pops of one queue
-- therefore never wait for each other's whole claim, unlike _room's row
-- lock. A pop that had to drop slots takes free ones again, up to three
-- looks in all, so a claim that committed meanwhile does not leave it
-- with none while slots are free.
--
-- When the queue has live running jobs without a distinct slot in
-- 1..max_running (they started before the limit was set or lowered, or
-- one lease came back to life), the count above would not bound them: the
-- pop then also locks the queue's row (FOR UPDATE) and counts again, as
-- _room does, so such pops take turns; their claims take slots too, so
-- the queue comes back to the slot path as those jobs end. When every
-- free slot is held by another pop, it waits for the first one, so a
-- claim that is rolled back does not leave this pop refused. Needs READ
-- COMMITTED (pop checks it). At most 256 slots per call bound the locks
-- one pop holds.
--
-- (0.39.0) Beside a snapshot held open, the count above reads the entries
-- of every job of the queue that ended within its lease. A count that
-- reads more than 4 x max_running + 256 entries of job_running_idx (as
-- this transaction's statistics tell; with track_counts off, never) turns
-- the queue to probing (_queue.probe_until, a minute ahead), in two steps:
--   1. from then on the queue's claims are numbered (slot_claim: pop reads
--      the mark after this function, under the settings lock it holds);
--   2. once a costly count finds every counted job in a distinct slot of
--      1..max_running with a number (from its rescue floor, as it counts:
--      below it no job whose lease ran out can come back), and again after
--      it took the settings lock whole (never waiting; then no other pop
--      of the queue runs or starts, and a claim made unnumbered that
--      committed after the first count is in the second), it marks the
--      queue slotted, and until probe_until its pops probe the
--      slots (_take_free_slots: a few entries a slot, nothing of the jobs
--      that ended; more than a cheap count costs, a probe a slot, filled
--      ones too).
-- After probe_until a pop counts again: costly, it moves probe_until a
-- minute on; cheap (the snapshot is gone), it clears both marks, when no
-- other pop of the queue runs, and claims are no longer numbered. Until
-- 0.38.0 every pop counted (5.9 ms at 8,000 jobs/s beside a held snapshot:
-- the queue drained at a fifth of that). The marks never wait for the
-- queue's row (a pop that holds it moves nothing), and no claim without a
-- number comes after `slotted` is set: each claim holds the queue's
-- settings lock shared (pop, in this function) or its claims lock (the
-- hand-offs, only for a queue with no row), and configure_queue, which
-- clears both marks, waits for them (_lock_settings).
CREATE FUNCTION pgtq._take_slots(queue text, n integer, as_of timestamptz)
RETURNS integer[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    space       integer := pgtq._slot_space(_take_slots.queue);
    capacity    integer;            -- max_running
    filled      integer[];          -- the distinct slots of live running jobs, ascending
    live        bigint;             -- the live running jobs
    wanted      integer;
    taken       integer[] := '{}';  -- the slots whose locks this pop took and that are free
    busy        integer;            -- the first free slot that another pop holds
    next_filled integer;            -- the position in filled of the next filled slot
    looks       integer := 0;
    slotted     boolean;            -- every counted running job holds a slot of its own (_take_free_slots)
    probe_until timestamptz;        -- until then, probe the slots
    unclaimed   bigint;             -- running jobs with no claim number (_filled_slots)
    read_before bigint;             -- job_running_idx's entries this transaction read before the count
    costly      boolean;            -- the count read far more entries than the queue can have running jobs
    marks       text;               -- how this pop moves the queue's probing marks, if it does
BEGIN
    PERFORM pg_advisory_xact_lock_shared(space, 0);
    SELECT f.max_running, f.slotted, f.probe_until INTO capacity, slotted, probe_until
    FROM pgtq._queue AS f
    WHERE f.queue = _take_slots.queue AND f.paused_at IS NULL AND f.rate_limit IS NULL;
    IF capacity IS NULL THEN
        RETURN NULL;
    END IF;
    IF slotted AND probe_until > statement_timestamp() THEN
        RETURN pgtq._take_free_slots(_take_slots.queue, least(_take_slots.n, 256), capacity, _take_slots.as_of);
    END IF;
    read_before := pg_stat_get_xact_tuples_returned('pgtq.job_running_idx'::regclass);
    SELECT s.filled, s.live, s.unclaimed INTO filled, live, unclaimed
    FROM pgtq._filled_slots(_take_slots.queue, capacity, _take_slots.as_of) AS s;
    costly := pg_stat_get_xact_tuples_returned('pgtq.job_running_idx'::regclass) - read_before
              > 4 * capacity + 256;
    -- (The lock is tried only in a branch of its own: an expression that
    -- came to NULL before it would still take it, until the commit.)
    IF costly AND probe_until IS NULL THEN
        marks := 'number';   -- claims get numbers from now on
    ELSIF costly AND slotted THEN
        marks := 'probe';    -- another minute
    ELSIF costly AND live = cardinality(filled) AND unclaimed = 0 THEN
        IF pg_try_advisory_xact_lock(space, 0) THEN
            -- No other pop of the queue runs now, nor starts until this
            -- one ends: counted again, a claim that committed after the
            -- count above is in this one.
            SELECT s.filled, s.live, s.unclaimed INTO filled, live, unclaimed
            FROM pgtq._filled_slots(_take_slots.queue, capacity, _take_slots.as_of) AS s;
            IF live = cardinality(filled) AND unclaimed = 0 THEN
                marks := 'probe';  -- every counted job numbered
            END IF;
        END IF;
    ELSIF NOT costly AND probe_until <= statement_timestamp() THEN
        IF pg_try_advisory_xact_lock(space, 0) THEN
            marks := 'stop';   -- no other pop of the queue runs, probing or numbering
        END IF;
    END IF;
    IF marks IS NOT NULL THEN
        UPDATE pgtq._queue AS f
        SET probe_until = CASE WHEN marks = 'stop' THEN NULL ELSE statement_timestamp() + interval '1 minute' END,
            slotted = marks = 'probe'
        WHERE f.queue = (SELECT g.queue FROM pgtq._queue AS g
                         WHERE g.queue = _take_slots.queue
                         FOR UPDATE SKIP LOCKED);
    END IF;
    IF live >= capacity THEN
        RETURN '{}';  -- full as of now: no slot or row locked
    END IF;
    IF live > cardinality(filled) THEN
        PERFORM 1 FROM pgtq._queue AS f WHERE f.queue = _take_slots.queue FOR UPDATE;
        SELECT s.filled, s.live INTO filled, live
        FROM pgtq._filled_slots(_take_slots.queue, capacity, _take_slots.as_of) AS s;
    END IF;
    LOOP
        wanted := least(_take_slots.n, 256, capacity - live);
        taken := ARRAY(SELECT t.slot FROM unnest(taken) AS t (slot) WHERE t.slot <> ALL (filled) ORDER BY t.slot);
        busy := NULL;
        next_filled := 1;
        FOR candidate IN 1 .. capacity LOOP
            EXIT WHEN cardinality(taken) >= wanted;
            IF next_filled <= cardinality(filled) AND filled[next_filled] = candidate THEN
                next_filled := next_filled + 1;
            ELSIF candidate = ANY (taken) THEN
                CONTINUE;
            ELSIF pg_try_advisory_xact_lock(space, candidate) THEN
                taken := taken || candidate;
            ELSIF busy IS NULL THEN
                busy := candidate;
            END IF;
        END LOOP;
        IF cardinality(taken) = 0 THEN
            IF busy IS NULL THEN
                RETURN taken;  -- no slot free
            END IF;
            PERFORM pg_advisory_xact_lock(space, busy);  -- every free slot is another pop's: wait for its commit
            taken := ARRAY[busy];
        END IF;
        -- As of now, a newer snapshot: the slots that pops which committed meanwhile filled.
        SELECT s.filled, s.live INTO filled, live
        FROM pgtq._filled_slots(_take_slots.queue, capacity, _take_slots.as_of) AS s;
        looks := looks + 1;
        EXIT WHEN NOT (taken && filled) OR looks >= 3;
    END LOOP;
    RETURN ARRAY(SELECT t.slot FROM unnest(taken) AS t (slot) WHERE t.slot <> ALL (filled)
                 ORDER BY t.slot LIMIT greatest(least(_take_slots.n, 256, capacity - live), 0));
END
$$;

-- Guarantees: records in the rate window of `queue` (when it has a rate
-- limit; otherwise it does nothing) that `jobs` of its jobs started at
-- as_of: adds them to the bucket of as_of (_rate_slot), its row of
-- _rate_start (0.27.0; a row per bucket, where 0.26.0 rewrote two arrays
-- of the queue's _queue row at every pop). The caller holds the lock of
-- the queue's _queue row (_room), so no start is lost to a concurrent pop
-- and the rate_period read here is the one in force. A bucket newer than
-- the queue's newest deletes the buckets that left the window: those
-- from 100 before the previous newest up to 100 before the new one. So a
-- queue keeps the buckets of one window (a start whose as_of lies more
-- than a window before the queue's newest keeps its row until
-- configure_queue changes the period), and no delete reads the range of
-- an earlier one, where the deleted buckets and every version of them
-- stay beside a held snapshot. Runs with pop's settings (sequential scans
-- off), its one caller.
CREATE FUNCTION pgtq._count_starts(queue text, jobs integer, as_of timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    now_slot    bigint;  -- the bucket of as_of
    newest_slot bigint;  -- the queue's newest bucket before this start
BEGIN
    SELECT pgtq._rate_slot(_count_starts.as_of, f.rate_period) INTO now_slot
    FROM pgtq._queue AS f
    WHERE f.queue = _count_starts.queue AND f.rate_limit IS NOT NULL;
    IF now_slot IS NULL THEN
        RETURN;
    END IF;
    SELECT max(w.slot) INTO newest_slot FROM pgtq._rate_start AS w WHERE w.queue = _count_starts.queue;
    IF newest_slot = now_slot THEN
        UPDATE pgtq._rate_start AS w
        SET jobs = w.jobs + _count_starts.jobs
        WHERE w.queue = _count_starts.queue AND w.slot = now_slot;
        RETURN;
    END IF;
    INSERT INTO pgtq._rate_start AS w (queue, slot, jobs)
    VALUES (_count_starts.queue, now_slot, _count_starts.jobs)
    ON CONFLICT ON CONSTRAINT rate_start_pkey DO UPDATE
    SET jobs = w.jobs + excluded.jobs;
    IF newest_slot < now_slot THEN
        DELETE FROM pgtq._rate_start AS w
        WHERE w.queue = _count_starts.queue
          AND w.slot >= newest_slot - 100 AND w.slot < now_slot - 100;
    END IF;
END
$$;

-- Guarantees: true when ready job `id`, of lock key `lock_key`, may start
-- now by the lock-key rule: no running job holds the key (its lease is
-- live at as_of, or it ran out but no pop wrote the job off: 0.11.0), and
-- it is the key's next ready job (highest priority, then first pushed) of
-- all queues. As of the moment it is called (statements of its own):
-- _choose_keyed calls it holding the key's advisory lock. The key's
-- running jobs whose lease ran out are written off first
-- (_write_off_lapsed_key; 0.23.0: until 0.22.0 _choose_keyed wrote off
-- every key's before its walk). Two probes of the lock-key indexes when
-- no lapsed job holds the key.
CREATE FUNCTION pgtq._is_next_of_key(id bigint, lock_key text, as_of timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    held_until timestamptz;  -- the latest lease of the running jobs that hold the key
BEGIN
    SELECT max(r.lease_expires_at) INTO held_until
    FROM pgtq._job AS r
    WHERE r.lock_key = _is_next_of_key.lock_key
      AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running (job_lock_key_leased_idx)
      AND (r.lease_expires_at > _is_next_of_key.as_of OR r.slot IS DISTINCT FROM 0);
    IF held_until IS NOT NULL THEN
        IF held_until > _is_next_of_key.as_of THEN
            RETURN false;  -- a live lease holds it
        END IF;
        -- Only lapsed jobs hold it: write them off, and look again.
        PERFORM pgtq._write_off_lapsed_key(_is_next_of_key.lock_key, _is_next_of_key.as_of);
        IF EXISTS (SELECT 1 FROM pgtq._job AS r
                   WHERE r.lock_key = _is_next_of_key.lock_key
                     AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
                     AND (r.lease_expires_at > _is_next_of_key.as_of OR r.slot IS DISTINCT FROM 0)) THEN
            RETURN false;  -- one was being written by another transaction: it still holds the key
        END IF;
    END IF;
    RETURN (SELECT h.id FROM pgtq._job AS h
                WHERE h.lock_key = _is_next_of_key.lock_key AND h.state = 'ready'
                ORDER BY h.priority DESC, h.id
                LIMIT 1) = _is_next_of_key.id;
END
$$;

-- Guarantees: chooses up to n ready jobs of `queue` that may start now by
-- the lock-key rule, locks their rows (FOR UPDATE SKIP LOCKED) and returns
-- their ids, for pop to claim. It walks the queue's ready jobs in pop's
-- order (highest priority first, then push order) and takes every job
-- without a lock key, and for each lock key at most one job: the key's
-- next one (_is_next_of_key), while no job of the key runs. A running job
-- whose lease ran out holds its key until a pop writes it off, which
-- _is_next_of_key does for the keys it looks at (0.11.0). So the jobs of
-- one key start one at a time, in their order (priority, then push order)
-- across all queues; a key that is busy, or whose next job is in another
-- queue, is skipped with all its jobs, and the jobs after them are taken:
-- no head-of-line blocking. Two pops never start two jobs of one key: a
-- pop takes the key's transaction-level advisory lock
-- (pg_try_advisory_xact_lock(hashtextextended(key, 7247)), never waiting:
-- a key another pop holds is skipped) before it checks the key, as of
-- that moment; the lock lasts until the claim commits, after which the
-- running job holds the key. (Two keys sharing the 64-bit hash only skip
-- each other now and then.) Jobs whose key a running job holds with a
-- live lease are left out of the walk itself, by one probe of
-- job_lock_key_leased_idx each (0.23.0: until 0.22.0 the walk first read
-- every running job with a lock key, of every queue, and tested each
-- candidate against all their keys: 31 ms a pop with 20,000 of them
-- running elsewhere). The walk reads the queue's first 64 ready jobs, the
-- first of job_ready_idx (no key) and of job_keyed_ready_idx merged; a pop
-- that finds its jobs there runs nothing more. If those 64 met fewer than
-- 64 keys, a loose scan of the queue's keys (one probe of
-- job_queue_key_ready_idx per key) reads up to 65 of them; if that was
-- every key, the pop takes the first job of each key it has not met,
-- beside the next jobs without a key, in pop's order (0.32.0): such a pop
-- costs the keys, however many jobs wait behind each (a pop past 100,000
-- jobs of 5 busy keys: 25 ms at 0.31.0, 0.5 ms). Otherwise it walks on,
-- job by job: the jobs taken and keys met, and the keys the queue's own
-- running jobs hold (read once from job_running_idx), are left out by
-- look-ups in hashed sets; a job of another key is probed. Where the first
-- 64 met fewer than 64 keys (a few keys ahead of the others, say one
-- flooded), the walk first reads 4,096 jobs; if it has not found its jobs
-- there and more wait (the backend's count of the entries it read says so,
-- pg_stat_get_xact_tuples_returned), the scan reads on up to 1,025 keys,
-- and if that was every key, the pop takes their first jobs as above; else
-- it walks on to the end (0.33.0: until 0.32.0 such a queue of more than
-- 64 keys was walked to the end, 26 ms a pop past 100,000 jobs of one busy
-- key, and 100 other keys). A probe per key costs 4 to 5 us, a step of the
-- walk 0.2 to 0.4: the scan pays where a few keys hold long backlogs, the
-- walk where many keys hold short ones (63 ms against 6.5 past 10,000 busy
-- keys of one waiting job each). Until 0.30.0 every step of the walk was a
-- probe. The walk stops once it has n jobs (pop's enable_bitmapscan off,
-- 0.20.0; as any FOR loop, it reads its query's rows ten at a time).
-- Needs READ COMMITTED (PT007).
CREATE FUNCTION pgtq._choose_keyed(queue text, n integer, as_of timestamptz)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    met        text[] := '{}';      -- the lock keys looked at
    chosen     bigint[] := '{}';
    missed     integer := 0;        -- jobs whose row another transaction holds
    candidate  record;
    walked     integer := 0;        -- the ready jobs the first part met
    firsts     bigint[] := '{}';    -- the first ready job of each key the scan read
    more       bigint[];
    scanned_to text := '';          -- the last key the scan read ('': none; a key is never empty)
    scan_to    integer;             -- the keys the scan may have read
    all_keys   boolean := false;    -- the scan read every key of the queue
    bounded    boolean := false;    -- the walk reads at most 4,096 jobs
    entries_read bigint;            -- ready-index entries read before the bounded walk
BEGIN
    PERFORM pgtq._check_read_committed(_choose_keyed.queue);
    -- The first 64 ready jobs, each job of a key with a probe (is a job of
    -- the key running?); a probe per job, not a join: a join reads every
    -- running job before the walk's first row, whose rows it may never need.
    FOR candidate IN
        SELECT f.id, f.lock_key,
               f.lock_key IS NOT NULL
               AND EXISTS (SELECT FROM pgtq._job AS r
                           WHERE r.lock_key = f.lock_key
                             AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running (job_lock_key_leased_idx)
                             AND r.lease_expires_at > _choose_keyed.as_of) AS busy
        FROM ((SELECT w.id, w.lock_key, w.priority
               FROM pgtq._job AS w
               WHERE w.queue = _choose_keyed.queue AND w.state = 'ready' AND w.lock_key IS NULL
               ORDER BY w.priority DESC, w.id
               LIMIT 64)
              UNION ALL
              (SELECT w.id, w.lock_key, w.priority
               FROM pgtq._job AS w
               WHERE w.queue = _choose_keyed.queue AND w.state = 'ready' AND w.lock_key IS NOT NULL
               ORDER BY w.priority DESC, w.id
               LIMIT 64)
              ORDER BY priority DESC, id
              LIMIT 64) AS f
    LOOP
        walked := walked + 1;
        IF candidate.lock_key IS NOT NULL THEN
            CONTINUE WHEN candidate.lock_key = ANY (met);
            met := met || candidate.lock_key;
            CONTINUE WHEN candidate.busy;
            CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtextextended(candidate.lock_key, 7247));
            CONTINUE WHEN NOT pgtq._is_next_of_key(candidate.id, candidate.lock_key, _choose_keyed.as_of);
        END IF;
        PERFORM 1 FROM pgtq._job AS j WHERE j.id = candidate.id AND j.state = 'ready' FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            missed := missed + 1;
            CONTINUE;
        END IF;
        chosen := chosen || candidate.id;
        IF cardinality(chosen) >= _choose_keyed.n THEN
            RETURN chosen;
        END IF;
    END LOOP;
    IF walked < 64 THEN
        RETURN chosen;  -- that was every ready job of the queue
    END IF;
    -- The rest. The first 64 met fewer than 64 keys: the queue's keys, up
    -- to 65; if that was all of them, their first jobs. If not, 4,096
    -- jobs of the walk, then the keys again, up to 1,025.
    bounded := cardinality(met) < 64;
    scan_to := CASE WHEN bounded THEN 65 ELSE 0 END;
    LOOP
        IF scan_to > cardinality(firsts) THEN
            -- A loose scan of job_queue_key_ready_idx from the last key
            -- read: the first ready job of each next key, one probe per key
            -- (4 to 5 us), however many jobs wait behind it.
            SELECT coalesce(array_agg(scan.id), '{}'), max(scan.lock_key), count(*) < scan_to - cardinality(firsts)
            INTO more, scanned_to, all_keys
            FROM (WITH RECURSIVE first_of_key AS (
                      (SELECT k.lock_key, k.id
                       FROM pgtq._job AS k
                       WHERE k.queue = _choose_keyed.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL
                         AND k.lock_key > scanned_to
                       ORDER BY k.lock_key, k.priority DESC, k.id
                       LIMIT 1)
                      UNION ALL
                      SELECT after.lock_key, after.id
                      FROM first_of_key AS f
                      CROSS JOIN LATERAL (SELECT k.lock_key, k.id
                                          FROM pgtq._job AS k
                                          WHERE k.queue = _choose_keyed.queue AND k.state = 'ready'
                                            AND k.lock_key IS NOT NULL AND k.lock_key > f.lock_key
                                          ORDER BY k.lock_key, k.priority DESC, k.id
                                          LIMIT 1) AS after
                  )
                  SELECT first_of_key.lock_key, first_of_key.id
                  FROM first_of_key
                  LIMIT scan_to - cardinality(firsts)) AS scan;
            firsts := firsts || more;
            EXIT WHEN all_keys;
        END IF;
        -- The walk: the jobs taken and keys looked at, and the keys the
        -- queue's running jobs hold, left out by look-ups in hashed sets
        -- (bounded: after its LIMIT, which then counts the jobs walked;
        -- else at each index scan).
        IF bounded THEN
            -- The entries of the two ready indexes read so far in this
            -- transaction (the backend counts them as it reads).
            entries_read := pg_stat_get_xact_tuples_returned('pgtq.job_ready_idx'::regclass)
                            + pg_stat_get_xact_tuples_returned('pgtq.job_keyed_ready_idx'::regclass);
        END IF;
        -- One statement, two forms, the one `bounded` names (a one-time
        -- filter each): a FOR loop fetches ten rows at a time, a cursor's
        -- FETCH one (about 6 us more a job taken).
        FOR candidate IN
            SELECT w.id, w.lock_key,
                   w.lock_key IS NOT NULL
                   AND EXISTS (SELECT FROM pgtq._job AS r
                               WHERE r.lock_key = w.lock_key
                                 AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
                                 AND r.lease_expires_at > _choose_keyed.as_of) AS busy
            FROM ((SELECT u.id, u.lock_key, u.priority
                   FROM pgtq._job AS u
                   WHERE u.queue = _choose_keyed.queue AND u.state = 'ready' AND u.lock_key IS NULL
                   ORDER BY u.priority DESC, u.id)
                  UNION ALL
                  (SELECT k.id, k.lock_key, k.priority
                   FROM pgtq._job AS k
                   WHERE k.queue = _choose_keyed.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL
                   ORDER BY k.priority DESC, k.id)
                  ORDER BY priority DESC, id
                  LIMIT 4096) AS w
            WHERE bounded
              AND w.id NOT IN (SELECT unnest(chosen))
              AND (w.lock_key IS NULL
                   OR (w.lock_key NOT IN (SELECT unnest(met))
                       AND w.lock_key NOT IN (SELECT h.lock_key FROM pgtq._job AS h
                                              WHERE h.queue = _choose_keyed.queue AND h.state = 'running'
                                                AND h.lease_expires_at > _choose_keyed.as_of
                                                AND h.lock_key IS NOT NULL)))
            UNION ALL
            SELECT c.id, c.lock_key,
                   c.lock_key IS NOT NULL
                   AND EXISTS (SELECT FROM pgtq._job AS r
                               WHERE r.lock_key = c.lock_key
                                 AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
                                 AND r.lease_expires_at > _choose_keyed.as_of) AS busy
            FROM ((SELECT u.id, u.lock_key, u.priority
                   FROM pgtq._job AS u
                   WHERE u.queue = _choose_keyed.queue AND u.state = 'ready' AND u.lock_key IS NULL
                     AND u.id NOT IN (SELECT unnest(chosen))
                   ORDER BY u.priority DESC, u.id)
                  UNION ALL
                  (SELECT k.id, k.lock_key, k.priority
                   FROM pgtq._job AS k
                   WHERE k.queue = _choose_keyed.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL
                     AND k.id NOT IN (SELECT unnest(chosen))
                     AND k.lock_key NOT IN (SELECT unnest(met))
                     AND k.lock_key NOT IN (SELECT h.lock_key FROM pgtq._job AS h
                                            WHERE h.queue = _choose_keyed.queue AND h.state = 'running'
                                              AND h.lease_expires_at > _choose_keyed.as_of
                                              AND h.lock_key IS NOT NULL)
                   ORDER BY k.priority DESC, k.id)
                  ORDER BY priority DESC, id) AS c
            WHERE NOT bounded
        LOOP
            IF candidate.lock_key IS NOT NULL THEN
                CONTINUE WHEN candidate.lock_key = ANY (met);
                met := met || candidate.lock_key;
                CONTINUE WHEN candidate.busy;
                CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtextextended(candidate.lock_key, 7247));
                CONTINUE WHEN NOT pgtq._is_next_of_key(candidate.id, candidate.lock_key, _choose_keyed.as_of);
            END IF;
            PERFORM 1 FROM pgtq._job AS j WHERE j.id = candidate.id AND j.state = 'ready' FOR UPDATE SKIP LOCKED;
            IF NOT FOUND THEN
                missed := missed + 1;
                CONTINUE;
            END IF;
            chosen := chosen || candidate.id;
            EXIT WHEN cardinality(chosen) >= _choose_keyed.n;
        END LOOP;
        IF cardinality(chosen) >= _choose_keyed.n OR NOT bounded THEN
            RETURN chosen;  -- enough, or every ready job walked
        END IF;
        -- Fewer than 4,096 entries read: the walk met every ready job of
        -- the queue (the LIMIT stops it only after 4,096 rows, each an
        -- entry). Without the counts (track_counts off) it cannot tell.
        IF current_setting('track_counts')::boolean
           AND pg_stat_get_xact_tuples_returned('pgtq.job_ready_idx'::regclass)
               + pg_stat_get_xact_tuples_returned('pgtq.job_keyed_ready_idx'::regclass)
               - entries_read < 4096 THEN
            RETURN chosen;
        END IF;
        -- 4,096 jobs walked and too few taken: the keys, up to 1,025
        -- (about the cost of 15,000 steps of the walk); if there are
        -- more, the walk goes on through every job.
        scan_to := 1025;
        bounded := false;
    END LOOP;
    -- Every key scanned: the first job of each key not met, and the next
    -- jobs without a key (as many as are still wanted, and as many again
    -- as rows found held above), in pop's order.
    FOR candidate IN
        SELECT c.id, c.lock_key,
               -- A probe per key, in the select list over the sorted
               -- candidates (only those the loop reads are probed): as a
               -- NOT EXISTS in WHERE the planner may join instead, reading
               -- every running job with a lock key.
               c.lock_key IS NOT NULL
               AND EXISTS (SELECT FROM pgtq._job AS r
                           WHERE r.lock_key = c.lock_key
                             AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
                             AND r.lease_expires_at > _choose_keyed.as_of) AS busy
        FROM (SELECT j.id, j.lock_key, j.priority
              FROM pgtq._job AS j
              WHERE j.id = ANY (firsts) AND j.lock_key <> ALL (met)
              UNION ALL
              (SELECT u.id, NULL, u.priority
               FROM pgtq._job AS u
               WHERE u.queue = _choose_keyed.queue AND u.state = 'ready' AND u.lock_key IS NULL
                 AND u.id <> ALL (chosen)
               ORDER BY u.priority DESC, u.id
               LIMIT _choose_keyed.n - cardinality(chosen) + missed)
              ORDER BY priority DESC, id) AS c
    LOOP
        IF candidate.lock_key IS NOT NULL THEN
            CONTINUE WHEN candidate.busy;
            CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtextextended(candidate.lock_key, 7247));
            CONTINUE WHEN NOT pgtq._is_next_of_key(candidate.id, candidate.lock_key, _choose_keyed.as_of);
        END IF;
        PERFORM 1 FROM pgtq._job AS j WHERE j.id = candidate.id AND j.state = 'ready' FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        chosen := chosen || candidate.id;
        EXIT WHEN cardinality(chosen) >= _choose_keyed.n;
    END LOOP;
    RETURN chosen;
END
$$;

-- Guarantees: hands the ready job `id`, the next job of the lock key
-- `lock_key` that the caller's transaction freed by ending its running
-- job, to an open hand-off offer of its queue `queue` (0.31.0), and
-- returns whether it did; false when it hands nothing, and then it wrote
-- nothing. The job is claimed as pop would claim it for the offer's
-- worker (the next attempt, a new lease that runs out at now() + the
-- offer's lease), and its claim (pop's columns, as JSON) is notified on
-- the offer's channel at commit: the worker starts it without a claim of
-- its own, and no other idle worker is woken to pop for it. Rolled back,
-- neither the claim nor the notification exists. As a pop does, it takes
-- the key's advisory lock (never waiting) and checks that the job is the
-- key's next and that no running job holds the key (_is_next_of_key),
-- and locks the job's row (SKIP LOCKED). The offers are looked at as
-- _hand_off looks at them, and one transaction hands at most one job,
-- pushed or freed (pgtq.handed_off). It hands nothing when the queue has
-- a pause or a limit (a _queue row: pop alone keeps them; 0.39.0: or
-- configure_queue holds its claims lock, which it takes shared first), when the
-- transaction began more than a second ago (a lease counted from its
-- start could run out before the worker hears of the job), when the claim
-- does not fit a notification, or when no offer is open; the caller then
-- announces the queue. Until 0.30.0 every end of a keyed job announced
-- the queue: each idle worker of it popped, one took the key's next job,
-- and the others walked the queue's backlog for nothing.
CREATE FUNCTION pgtq._hand_freed_key(id bigint, queue text, lock_key text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    offer     record;
    next_job  pgtq._job;
    new_lease uuid;
    expires   timestamptz;
    claim     text;
BEGIN
    IF current_setting('pgtq.handed_off', true) = 'on'
       OR abs(extract(epoch FROM clock_timestamp() - now())) > 1
       OR NOT pg_try_advisory_xact_lock_shared(pgtq._slot_space(_hand_freed_key.queue), -1)
       OR EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = _hand_freed_key.queue)
       OR NOT pg_try_advisory_xact_lock(hashtextextended(_hand_freed_key.lock_key, 7247))
       OR NOT pgtq._is_next_of_key(_hand_freed_key.id, _hand_freed_key.lock_key, now()) THEN
        RETURN false;
    END IF;
    FOR offer IN
        SELECT h.channel, h.space, h.worker, h.lease
        FROM pgtq._handoff AS h
        WHERE _hand_freed_key.queue = ANY (h.queues) AND h.pid <> pg_backend_pid()
        ORDER BY h.pid
    LOOP
        CONTINUE WHEN CASE WHEN pg_try_advisory_lock_shared(offer.space, 0)
                           THEN pg_advisory_unlock_shared(offer.space, 0) ELSE false END;
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(offer.space, 1);
        -- The job's row is locked once an offer is found: a row lock is a
        -- write, which an end with no open offer need not make.
        SELECT j.* INTO next_job FROM pgtq._job AS j
        WHERE j.id = _hand_freed_key.id AND j.state = 'ready'
        FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        new_lease := gen_random_uuid();
        expires := now() + offer.lease;
        claim := json_build_object('id', next_job.id, 'queue', next_job.queue, 'task', next_job.task,
                                   'args', next_job.args, 'kwargs', next_job.kwargs,
                                   'priority', next_job.priority, 'attempt', next_job.attempt + 1,
                                   'max_attempts', next_job.max_attempts, 'lease', new_lease,
                                   'lease_expires_at', expires)::text;
        IF octet_length(claim) >= 8000 THEN
            RETURN false;
        END IF;
        UPDATE pgtq._job AS j
        SET state = 'running',
            attempt = j.attempt + 1,
            lease = new_lease,
            lease_expires_at = expires,
            started_at = now(),
            worker = offer.worker,
            slot = NULL
        WHERE j.id = next_job.id;
        PERFORM pg_notify(offer.channel, claim);
        PERFORM set_config('pgtq.handed_off', 'on', true);
        RETURN true;
    END LOOP;
    RETURN false;
END
$$;

-- Guarantees: whether `queue` has a ready job without a lock key, as the
-- calling statement sees it (0.35.0), read as pop reads the queue: from
-- its ready mark when tick set a fresh one (a job above the mark's
-- priority, one of the mark's priority from the mark on, or one of a
-- lower priority), from the queue's first entry of job_ready_idx
-- otherwise. The mark is read by
-- pop's statement, and pop claims by it, so the two agree on what is
-- ready. With a fresh mark the look no longer steps over the entries of
-- the jobs claimed since the table's last vacuum (beside a held snapshot,
-- since the snapshot was taken); until 0.34.0 _announce_freed's look did,
-- at each end of a job of a max_running queue (84 us after 25,000 jobs
-- claimed, 365 us after 100,000). Runs with the settings of its one
-- caller, _announce_freed (generic plans; sorts, sequential and bitmap
-- scans off, as in pop; jit off), so that job_ready_idx alone serves each
-- look: a SET clause here would cost each call more than its look.
CREATE FUNCTION pgtq._has_ready_job(queue text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    mark_priority integer;  -- the queue's ready mark (_ready_mark), if fresh
    mark_id       bigint;
BEGIN
    SELECT m.priority,
           least(m.low_id, (SELECT min(l.id) FROM pgtq._ready_mark_low AS l
                            WHERE l.queue = m.queue AND l.seq >= m.lows_from
                              AND l.priority = m.priority))
    INTO mark_priority, mark_id
    FROM (SELECT g.* FROM pgtq._ready_mark AS g
          WHERE g.queue = _has_ready_job.queue
          ORDER BY g.generation DESC
          LIMIT 1) AS m
    WHERE m.set_at > statement_timestamp() - interval '2 minutes';
    IF mark_id IS NULL THEN
        RETURN (SELECT r.id FROM pgtq._job AS r
                WHERE r.queue = _has_ready_job.queue AND r.state = 'ready' AND r.lock_key IS NULL
                ORDER BY r.priority DESC, r.id
                LIMIT 1) IS NOT NULL;
    END IF;
    -- Each look ordered, so that only job_ready_idx serves it; the mark's
    -- priority as a closed range, as pop's seek.
    RETURN (SELECT r.id FROM pgtq._job AS r
            WHERE r.queue = _has_ready_job.queue AND r.state = 'ready' AND r.lock_key IS NULL
              AND r.priority > mark_priority
            ORDER BY r.priority DESC, r.id
            LIMIT 1) IS NOT NULL
        OR (SELECT r.id FROM pgtq._job AS r
            WHERE r.queue = _has_ready_job.queue AND r.state = 'ready' AND r.lock_key IS NULL
              AND r.priority <= mark_priority AND r.priority >= mark_priority AND r.id >= mark_id
            ORDER BY r.priority DESC, r.id
            LIMIT 1) IS NOT NULL
        OR (SELECT r.id FROM pgtq._job AS r
            WHERE r.queue = _has_ready_job.queue AND r.state = 'ready' AND r.lock_key IS NULL
              AND r.priority < mark_priority
            ORDER BY r.priority DESC, r.id
            LIMIT 1) IS NOT NULL;
END
$$;

-- Guarantees: _wake_after_end's look, for ends that may free a slot or a
-- lock key (0.30.0: its own function): each of `queues` that has a
-- max_running and ready jobs is announced (_announce, at commit); so is
-- the queue of the next ready job of each of `lock_keys` (NULLs ignored),
-- unless that job was handed to an idle worker's open offer (0.31.0,
-- _hand_freed_key; only where a worker may be waiting, _must_announce),
-- or a running job with a live lease holds the key again (0.31.0: the pop
-- of complete_many_and_pop took the key's next job in the same
-- transaction; until 0.30.0 its queue was announced all the same, and
-- every idle worker of it popped, and walked its backlog, for nothing).
-- The next job of a key is read from job_lock_key_ready_idx, which gives
-- the key's jobs in their order; with sorts off that is the only plan
-- without a sort (jit off with it, as 00-api.sql asks of disabled plans;
-- 0.35.0: sequential and bitmap scans off too, for _has_ready_job).
-- Until 0.29.0 a session that planned it while the job table was empty
-- could take job_ready_idx instead, every ready job of every queue at
-- each end of a keyed job (11,970 entries a complete, against 6).
CREATE FUNCTION pgtq._announce_freed(queues text[], lock_keys text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET jit = off
AS $$
DECLARE
    freed record;  -- a freed key's next ready job
BEGIN
    PERFORM pgtq._announce(f.queue)
    FROM pgtq._queue AS f
    WHERE f.queue = ANY (_announce_freed.queues)
      AND f.max_running IS NOT NULL
      -- A ready job without a lock key (0.35.0: from the queue's ready
      -- mark, _has_ready_job) or with one (0.32.0: its own index), looked
      -- for in order, as tick does: two EXISTS joined by OR may be planned
      -- as hashed subplans, which read every ready job of the table (a
      -- plan made on an empty table did).
      AND (pgtq._has_ready_job(f.queue)
           OR (SELECT r.id FROM pgtq._job AS r
               WHERE r.queue = f.queue AND r.state = 'ready' AND r.lock_key IS NOT NULL
               ORDER BY r.priority DESC, r.id
               LIMIT 1) IS NOT NULL);
    FOR freed IN
        SELECT n.id, n.queue, k.key
        FROM (SELECT DISTINCT u.key FROM unnest(_announce_freed.lock_keys) AS u (key)
              WHERE u.key IS NOT NULL) AS k
        CROSS JOIN LATERAL (SELECT h.id, h.queue FROM pgtq._job AS h
                            WHERE h.lock_key = k.key AND h.state = 'ready'
                            ORDER BY h.priority DESC, h.id
                            LIMIT 1) AS n
    LOOP
        CONTINUE WHEN NOT pgtq._must_announce(freed.queue);
        -- A key that a running job holds again wakes nobody: the pop of
        -- complete_many_and_pop, in this transaction, took its next job.
        CONTINUE WHEN EXISTS (SELECT 1 FROM pgtq._job AS r
                              WHERE r.lock_key = freed.key
                                AND r.lease IS NOT NULL AND r.lease_expires_at IS NOT NULL  -- running
                                AND r.lease_expires_at > now());
        IF NOT pgtq._hand_freed_key(freed.id, freed.queue, freed.key) THEN
            PERFORM pg_notify('pgtq', freed.queue);
        END IF;
    END LOOP;
END
$$;

-- Guarantees: after running jobs of `queues`, with the lock keys
-- `lock_keys` (NULLs ignored), ended in the calling transaction, tells the
-- idle workers that may now claim a job (_announce_freed, at commit):
-- each of `queues` that has a max_running and ready jobs (a slot came
-- free), and the queue of the next ready job of each lock key (the key
-- came free). A worker whose pop met a limit or a busy key waits for such
-- a wake-up. For jobs of queues without a limit and without a key it
-- costs one probe of _queue and returns (0.12.0: until then the whole
-- look ran, 20 us of a one-job complete). Its plan is generic (0.5.0:
-- plan_cache_mode; until 0.4.0 it was planned anew at each call of
-- complete, complete_many, fail, abort and release).
CREATE FUNCTION pgtq._wake_after_end(queues text[], lock_keys text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    IF coalesce(cardinality(array_remove(_wake_after_end.lock_keys, NULL)), 0) = 0
       AND NOT EXISTS (SELECT 1 FROM pgtq._queue AS f
                       WHERE f.queue = ANY (_wake_after_end.queues) AND f.max_running IS NOT NULL) THEN
        RETURN;
    END IF;
    PERFORM pgtq._announce_freed(_wake_after_end.queues, _wake_after_end.lock_keys);
END
$$;

-- Guarantees: the queues that have running jobs, each once, in the order
-- of their names. Reads job_running_idx with one probe per such queue (a
-- loose index scan), not one entry per running job, so tick's rescue of
-- every queue costs about as much per queue as a tick of that queue
-- alone. Each probe reads the index backwards, from a queue's latest
-- lease (0.27.0): beside a snapshot held open the entries of the jobs that
-- ended since it was taken stay, with the earliest leases, and a probe
-- from the earliest stepped over all of them. PL/pgSQL, as the two
-- below (0.30.0; SQL until 0.29.0): a session plans its statement once,
-- where a SQL function's was planned anew at each call (a tick of every
-- queue took 1,110 us of server CPU, 790 with the three in PL/pgSQL).
CREATE FUNCTION pgtq._running_queues()
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN (WITH RECURSIVE running (queue) AS (
                (SELECT r.queue FROM pgtq._job AS r
                 WHERE r.state = 'running'
                 ORDER BY r.queue DESC, r.lease_expires_at DESC
                 LIMIT 1)
                UNION ALL
                SELECT (SELECT r.queue FROM pgtq._job AS r
                        WHERE r.state = 'running' AND r.queue < running.queue
                        ORDER BY r.queue DESC, r.lease_expires_at DESC
                        LIMIT 1)
                FROM running
                WHERE running.queue IS NOT NULL
            )
            SELECT coalesce(array_agg(running.queue ORDER BY running.queue), '{}')
            FROM running
            WHERE running.queue IS NOT NULL);
END
$$;

-- Guarantees: the id the job sequence gives next (0.25.0): no job pushed
-- after this read has a lower id (the sequence is CACHE 1). Reads the
-- sequence; takes no id of it.
CREATE FUNCTION pgtq._unused_job_id()
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN (SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END FROM pgtq._job_id_seq AS s);
END
$$;

-- Guarantees: the number that the next row of _ready_mark_low will get, or
-- a higher one (0.26.0). The same reading as _unused_job_id, for the reads
-- of those rows (_raise_mark).
CREATE FUNCTION pgtq._unused_low_seq()
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN (SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END
            FROM pgtq._ready_mark_low_seq AS s);
END
$$;

-- Guarantees: records the jobs of `ids` (of queues[i], at priorities[i],
-- with lock_keys[i]) that a caller has just made ready, for the ready
-- marks (0.18.0): the lowest id per queue and priority among those
-- without a lock key gives a row of _ready_mark_low. Pops seek from it
-- at once when it is below their mark at its priority; the next tick of
-- the queue reads it before it looks for the first ready job from its
-- floor, so no job turned ready below the floor is missed (0.25.0: a row
-- for every such job, whatever the queue's mark, so that no caller's
-- view of the mark decides it; the tick of a queue without a mark
-- deletes them). Jobs with a lock key write nothing (pop's keyed path takes
-- them). Takes no lock and waits for nothing. Every caller that turns an
-- existing job ready calls it: release, retry, _end_failed_attempt
-- (fail, abort and the lease rescue, when the retry is due at once),
-- _push_keyed (a replacing push) and tick's promotion. Its transaction
-- has its id before the rows get their numbers (seq, 0.26.0), as a push
-- takes its id before its job ids: what lets a tick tell when every row
-- below a number has been written or rolled back (_raise_mark).
-- PL/pgSQL (0.30.0; SQL until 0.29.0), so a session plans its two
-- statements once: a SQL function's were planned anew at each call
-- (a release took 320 us of server CPU, 185 now).
CREATE FUNCTION pgtq._lower_marks(queues text[], priorities integer[], ids bigint[], lock_keys text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
BEGIN
    PERFORM pg_current_xact_id();
    INSERT INTO pgtq._ready_mark_low (queue, priority, id)
    SELECT r.queue, r.priority, min(r.id)
    FROM unnest(_lower_marks.queues, _lower_marks.priorities, _lower_marks.ids, _lower_marks.lock_keys)
         AS r (queue, priority, id, lock_key)
    WHERE r.lock_key IS NULL
    GROUP BY r.queue, r.priority;
END
$$;

-- Guarantees: the first ready job of `queue` without a lock key in claim
-- order (priority, then id), as a tick's look for its ready mark finds
-- it (0.25.0): above `mark_priority` from the first entry, at that
-- priority from `look_from` on (0: from the first entry), below it from
-- the first entry; NULLs when there is none. `looked_all` says whether
-- the look that found it (or, finding none, the look at `mark_priority`)
-- started at the first entry. The priority as a closed range, as in pop:
-- job_ready_idx starts at `look_from`. One function for _raise_mark and
-- _mark_stays_idle (0.28.0), so both look alike. No SET clause, as none
-- of these three helpers has: the tick's mark runs them, with
-- search_path pinned and sequential scans off, and with SET clauses of
-- their own a tick of a busy queue took 9% longer.
CREATE FUNCTION pgtq._first_ready(queue text, mark_priority integer, look_from bigint,
                                  OUT first_priority integer, OUT first_id bigint, OUT looked_all boolean)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    SELECT r.priority, r.id INTO first_priority, first_id
    FROM pgtq._job AS r
    WHERE r.queue = _first_ready.queue AND r.state = 'ready' AND r.lock_key IS NULL
      AND r.priority > _first_ready.mark_priority
    ORDER BY r.priority DESC, r.id
    LIMIT 1;
    looked_all := first_id IS NOT NULL OR _first_ready.look_from = 0;
    IF first_id IS NULL THEN
        SELECT r.priority, r.id INTO first_priority, first_id
        FROM pgtq._job AS r
        WHERE r.queue = _first_ready.queue AND r.state = 'ready' AND r.lock_key IS NULL
          AND r.priority <= _first_ready.mark_priority AND r.priority >= _first_ready.mark_priority
          AND r.id >= _first_ready.look_from
        ORDER BY r.priority DESC, r.id
        LIMIT 1;
    END IF;
    IF first_id IS NULL THEN
        SELECT r.priority, r.id INTO first_priority, first_id
        FROM pgtq._job AS r
        WHERE r.queue = _first_ready.queue AND r.state = 'ready' AND r.lock_key IS NULL
          AND r.priority < _first_ready.mark_priority
        ORDER BY r.priority DESC, r.id
        LIMIT 1;
    END IF;
END
$$;

-- Guarantees: whether a running job of `queue` has a lease that runs out
-- at `lease_from` or later (NULL: any running job). Ordered, so that
-- job_running_idx serves it from the latest lease: below a tick's rescue
-- floor the tick left no running job, and the entries of the jobs that
-- ended there are not stepped over.
CREATE FUNCTION pgtq._runs_jobs(queue text, lease_from timestamptz)
RETURNS boolean
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (SELECT b.lease_expires_at
            FROM pgtq._job AS b
            WHERE b.queue = _runs_jobs.queue AND b.state = 'running'
              AND b.lease_expires_at >= coalesce(_runs_jobs.lease_from, '-infinity')
            ORDER BY b.lease_expires_at DESC
            LIMIT 1) IS NOT NULL;
END
$$;

-- Guarantees: true when the ready mark of `queue` already says what a
-- tick would write into it again (0.28.0), so the tick (_raise_mark,
-- with its rescue's `rescued_to` and `rescued_all`, and `keep_idle`)
-- may leave it as it is and write nothing. All of these hold:
--   * the calling transaction has written nothing (it has no id);
--   * the mark says the queue is idle (idle_since) and stays (keep_idle,
--     or idle for less than ten minutes: else the tick drops it);
--   * no job id was taken since the mark was written (its next_low_id is
--     still the sequence's next): a queue whose jobs are pushed and ended
--     between two ticks looks idle at each, and with its mark left
--     standing each pop would seek from further and further behind, over
--     the entries of every job since (a first form without this rule let
--     the bench's sustained drain fall from 10,000 to 600 jobs a second in
--     a minute). So only a database where no job is pushed keeps its
--     marks unwritten;
--   * the mark's look from the first entry (looked_all_at) is less than a
--     minute old, and so is the rescue's (rescued_all_at) when this
--     tick's rescue looked from the first entry (or, in tick() with no
--     queue, knew the queue runs no job): each is written once a minute,
--     which also keeps the mark fresh for pops (set_at);
--   * no job was made ready since the mark by anything but a push (no
--     row of _ready_mark_low from its lows_from on), no ready job has a
--     lock key, the tick's own look from the mark's floor finds no ready
--     job (_first_ready), and no job runs (_runs_jobs).
-- The mark left standing is an older view than the one the tick would
-- write: its floor, settled id and rescue floor are lower or the same,
-- never higher, so no pop or tick passes over a ready job. Reads only, takes no lock:
-- an idle queue's ticks are read-only transactions, with no
-- transaction id, no WAL and no flush at commit (until 0.28.0 every tick
-- of every worker wrote a new generation of each of its queues' marks).
CREATE FUNCTION pgtq._mark_stays_idle(queue text, rescued_to timestamptz, rescued_all boolean, keep_idle boolean)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    mark pgtq._ready_mark;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RETURN false;
    END IF;
    SELECT m.* INTO mark
    FROM pgtq._ready_mark AS m
    WHERE m.queue = _mark_stays_idle.queue
    ORDER BY m.generation DESC
    LIMIT 1;
    RETURN coalesce(mark.idle_since IS NOT NULL
                    AND mark.next_low_id = pgtq._unused_job_id()
                    AND (_mark_stays_idle.keep_idle OR mark.idle_since > clock_timestamp() - interval '10 minutes')
                    AND mark.looked_all_at > clock_timestamp() - interval '1 minute'
                    AND (NOT _mark_stays_idle.rescued_all
                         OR mark.rescued_all_at > _mark_stays_idle.rescued_to - interval '1 minute')
                    AND NOT EXISTS (SELECT 1 FROM pgtq._ready_mark_low AS l
                                    WHERE l.queue = _mark_stays_idle.queue AND l.seq >= mark.lows_from)
                    AND NOT EXISTS (SELECT 1 FROM pgtq._job AS k
                                    WHERE k.queue = _mark_stays_idle.queue AND k.state = 'ready'
                                      AND k.lock_key IS NOT NULL)
                    AND (SELECT f.first_id
                         FROM pgtq._first_ready(_mark_stays_idle.queue, mark.priority, mark.floor_id) AS f) IS NULL
                    AND NOT pgtq._runs_jobs(_mark_stays_idle.queue, _mark_stays_idle.rescued_to),
                    false);
END
$$;

-- Guarantees: sets the ready mark of `queue` afresh (0.18.0), from what
-- the calling tick sees, so that pops of the queue seek from it:
--   * the mark's priority is the highest of the queue's ready jobs
--     without a lock key; the mark is the lowest of: the lowest id of such
--     a job of that priority, the next id the job sequence will give, and
--     what the previous tick saw (next_low_id). A job of that priority
--     whose push took its id before the previous tick looked, and
--     committed after this one, is the only kind a pop can pass over: it
--     is claimable from the next tick on (it waits for a tick, as a
--     scheduled job does). When the priority changed, pops seek from the
--     start of it until the next tick;
--   * a new mark starts at 0 (no seek) and takes effect at the next tick;
--   * rows of _ready_mark_low the tick sees are folded in and deleted;
--   * a queue with no ready and no running job keeps no mark, unless
--     `keep_idle` (0.27.0: a tick of that queue by name, whose worker
--     serves it) or it went idle less than ten minutes ago: its mark
--     keeps the rescue's floor, without which each tick of the queue
--     would look from its first entry, past every job that ended beside a
--     held snapshot;
--   * (0.21.0) a queue with ready jobs with a lock key gets no look: pop
--     takes the keyed path for it (_choose_keyed) and reads no mark, and
--     the look for its first ready job without a key would step over
--     every ready job with one (23 ms a tick at 100,000). Its mark seeks
--     nothing (low_id 0, and so does the first tick's once the queue has
--     no ready job with a key) and keeps the rescue's floor (0.28.0; it
--     was dropped, and every rescue of such a queue looked from its first
--     entry, past every job that ended beside a held snapshot).
-- Where the look starts (0.25.0): jobs above and below the mark's
-- priority are looked for from their first entry, those of the mark's
-- priority from the mark's floor. Until 0.25.0 every look started at the
-- queue's first entry, and beside a snapshot held open (a long report,
-- pg_dump, a replica with hot_standby_feedback) it read every job claimed
-- since the snapshot was taken: 20 ms at 180,000 claims, each tick of each
-- worker, growing for as long as the snapshot stays. The floor is the
-- lower of the first ready job this look saw and `settled_id`:
--   * no job below the floor can turn ready unseen: a job that another
--     path makes ready leaves a row of _ready_mark_low (_lower_marks),
--     which the next look reads, whatever the mark was; a push takes its
--     transaction id before its job id (push, push_many), so every push
--     with an id below `settle_below` (the next id as a tick read it
--     before its transaction had an id) has a lower transaction id than
--     that tick. That tick's (settle_below, its id) waits as the pending
--     pair; once no transaction with a lower id runs (the snapshot's
--     xmin), every such push has committed or rolled back, and
--     settle_below becomes `settled_id`;
--   * a transaction with an id that stays open (writing, or prepared)
--     holds settled_id back, and the look reads from there, as before
--     0.25.0; a snapshot held without an id (a read-only report, a
--     replica) does not;
--   * once a minute, and whenever the mark went stale (no tick for a
--     minute), the look starts at the queue's first entry again: it also
--     finds a job made ready outside pgtq's functions.
-- Which rows of _ready_mark_low it reads (0.26.0): those numbered from the
-- mark's `lows_from` on (all of them for a new mark), and it deletes what
-- it read. Below `lows_from` every row was read and deleted by an earlier
-- tick, so neither this look nor a pop steps over those deleted rows,
-- which a held snapshot keeps in the table: `settle_seq` (the next row
-- number as the tick read it before its transaction had an id) settles
-- with `settle_below`, and once it has, every row numbered below it was
-- visible to this look (_lower_marks takes its transaction id first).
-- Where the tick's rescue of the queue looks next (0.27.0, _rescue_floor):
-- the mark keeps `rescued_to` as the tick found it, and `rescued_all_at`
-- becomes it when `rescued_all` says that this tick's rescue looked from
-- the queue's first entry; a NULL rescued_to (no rescue) keeps both.
-- An idle queue whose mark says so already keeps it as it is, and the
-- tick writes nothing (0.28.0, _mark_stays_idle).
-- Never waits: a mark another tick holds is left to that tick.
CREATE FUNCTION pgtq._raise_mark(queue text, settle_below bigint, settle_seq bigint,
                                 rescued_to timestamptz, rescued_all boolean, keep_idle boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    mark           pgtq._ready_mark;
    unused_id      bigint;   -- no job pushed after this point has a lower id
    oldest_xid     xid8;     -- no transaction with a lower id runs
    lows_id        bigint;   -- the lowest job of the mark's priority made ready since the last tick
    mark_priority  integer;  -- the mark's priority (0 for a new mark)
    look_from      bigint := 0;  -- where the look at the mark's priority starts
    first_priority integer;
    first_id       bigint;
    looked_all     boolean;  -- the look that found first_id (or none) started at the first entry
    settled        bigint;   -- every push that took a lower id has ended
    waiting_id     bigint;   -- the pending pair: settled once no transaction older than waiting_xid runs
    waiting_seq    bigint;
    waiting_xid    xid8;
    read_from      bigint;   -- the rows of _ready_mark_low that remain to read start here
    idle_since     timestamptz;  -- since when the queue has had no ready and no running job
BEGIN
    IF pgtq._mark_stays_idle(_raise_mark.queue, _raise_mark.rescued_to, _raise_mark.rescued_all,
                             _raise_mark.keep_idle) THEN
        RETURN;
    END IF;
    -- The queue's highest generation (0.26.0), locked; ordered, so that the
    -- index serves it from its newest entry.
    SELECT m.* INTO mark
    FROM pgtq._ready_mark AS m
    WHERE m.queue = _raise_mark.queue
    ORDER BY m.generation DESC
    LIMIT 1
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        -- A new mark: one tick at a time makes it (the lock is held until
        -- this transaction ends), and none once another tick made one.
        IF NOT pg_try_advisory_xact_lock(hashtextextended('pgtq new ready mark of ' || _raise_mark.queue, 0))
           OR (SELECT m.generation FROM pgtq._ready_mark AS m
               WHERE m.queue = _raise_mark.queue
               ORDER BY m.generation DESC
               LIMIT 1) IS NOT NULL THEN
            RETURN;  -- another tick is setting it
        END IF;
    END IF;
    read_from := coalesce(mark.lows_from, 0);
    mark_priority := coalesce(mark.priority, 0);
    unused_id := pgtq._unused_job_id();
    -- Taken before the look, so the look sees every push it says ended.
    oldest_xid := pg_snapshot_xmin(pg_current_snapshot());
    IF EXISTS (SELECT 1 FROM pgtq._job AS k
               WHERE k.queue = _raise_mark.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL) THEN
        -- Pop takes the keyed path and reads no mark: it seeks nothing
        -- (0, and so does the first tick after), and keeps the rescue's
        -- floor (0.28.0; before, it was dropped).
        DELETE FROM pgtq._ready_mark_low AS l WHERE l.queue = _raise_mark.queue AND l.seq >= read_from;
        first_priority := mark_priority;
        first_id := 0;
        looked_all := false;
    ELSE
        WITH gone AS (
            DELETE FROM pgtq._ready_mark_low AS l WHERE l.queue = _raise_mark.queue AND l.seq >= read_from
            RETURNING l.priority, l.id
        )
        SELECT min(gone.id) FILTER (WHERE gone.priority = mark.priority) INTO lows_id FROM gone;
        -- Above the mark's priority, then at it from the floor (from the
        -- first entry once a minute), then below it (_first_ready); a new
        -- mark looks at priority 0 from the first entry.
        IF mark.looked_all_at > clock_timestamp() - interval '1 minute' THEN
            look_from := least(mark.floor_id, lows_id);
        END IF;
        SELECT f.first_priority, f.first_id, f.looked_all INTO first_priority, first_id, looked_all
        FROM pgtq._first_ready(_raise_mark.queue, mark_priority, look_from) AS f;
        IF first_id IS NULL THEN
            -- No running job either (below the rescue's floor the tick left
            -- none): the queue is idle.
            IF NOT pgtq._runs_jobs(_raise_mark.queue, _raise_mark.rescued_to) THEN
                idle_since := coalesce(mark.idle_since, clock_timestamp());
                IF NOT _raise_mark.keep_idle
                   AND (mark.generation IS NULL OR idle_since <= clock_timestamp() - interval '10 minutes') THEN
                    DELETE FROM pgtq._ready_mark AS m
                    WHERE m.queue = _raise_mark.queue AND m.generation = mark.generation;
                    RETURN;
                END IF;
            END IF;
            first_priority := mark_priority;
            first_id := unused_id;
        END IF;
        first_id := least(first_id, unused_id);
    END IF;

    settled := coalesce(mark.settled_id, 0);
    waiting_id := mark.pending_id;
    waiting_seq := mark.pending_seq;
    waiting_xid := mark.pending_xid;
    IF waiting_xid < oldest_xid THEN
        settled := greatest(settled, waiting_id);
        read_from := greatest(read_from, waiting_seq);  -- this look read every row below it
        waiting_id := NULL;
        waiting_seq := NULL;
        waiting_xid := NULL;
    END IF;
    IF waiting_xid IS NULL AND _raise_mark.settle_below IS NOT NULL THEN
        waiting_id := _raise_mark.settle_below;
        waiting_seq := _raise_mark.settle_seq;
        waiting_xid := pg_current_xact_id();
    END IF;

    -- The next generation, and the one read goes (a new mark: low_id 0,
    -- no seek until the next tick).
    INSERT INTO pgtq._ready_mark (queue, priority, low_id, next_low_id, set_at, floor_id, settled_id,
                                  pending_id, pending_xid, looked_all_at, lows_from, pending_seq,
                                  rescued_to, rescued_all_at, idle_since)
    VALUES (_raise_mark.queue, first_priority,
            CASE WHEN first_priority = mark.priority THEN least(mark.next_low_id, first_id) ELSE 0 END,
            first_id, clock_timestamp(), least(first_id, settled), settled, waiting_id, waiting_xid,
            CASE WHEN looked_all THEN clock_timestamp() ELSE coalesce(mark.looked_all_at, '-infinity') END, read_from,
            waiting_seq,
            coalesce(_raise_mark.rescued_to, mark.rescued_to, '-infinity'),
            CASE WHEN _raise_mark.rescued_to IS NOT NULL AND _raise_mark.rescued_all THEN _raise_mark.rescued_to
                 ELSE coalesce(mark.rescued_all_at, '-infinity') END,
            idle_since);
    DELETE FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue AND m.generation = mark.generation;
END
$$;

-- ---------------------------------------------------------------------------
-- Cron: parsing and the next occurrence (helpers of schedule and tick)
-- ---------------------------------------------------------------------------

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
-- tick's step 4, apart so that tick stays readable; it writes, so it runs
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

-- Guarantees: takes the sample of the queue history that is due at as_of,
-- if one is, and returns whether it did. A sample is due at the first
-- tick of each minute (as_of >= next_sample_at), or when the clock went
-- back more than a minute behind the last sample; never while the history
-- is off. Exactly once a minute however many sessions tick: the one-row
-- _sampler is locked FOR UPDATE SKIP LOCKED (a session never waits for
-- another) and the condition is checked under the lock; the next due time
-- moves on before the lock is released at commit, and a transaction that
-- rolls back leaves the sample to the next tick. The sample writes one
-- _history row per queue and task with live jobs, with jobs finished in
-- (period_start, as_of] (read through job_finished_idx: the jobs of that
-- period only, never the whole history), with lease expiries counted by
-- tick (_lease_expiry, consumed here), or with a non-zero row at the last
-- sample. period_start is the last sample, at most an hour back (a minute
-- back for the first). A job whose finishing transaction commits after
-- the sample that its finished_at falls before is not counted, nor one
-- pruned before the sample. It also writes the transaction-id clock's
-- entry (0.34.0: _xid_clock, the sample's time and this transaction's
-- id), after deleting any entry above that id (restored from another
-- cluster's dump). Then rows of both older than history_retention go.
-- Cost: one pass over the live jobs (their partial indexes) and one over
-- the period's finished jobs, once a minute. tick's step 5, apart so that
-- tick stays readable; it writes, so it runs with the owner's rights, and
-- is granted to nobody (only tick calls it).
CREATE FUNCTION pgtq._sample_history(as_of timestamptz)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    previous_sample  timestamptz;
    period_start     timestamptz;
    retention        interval;
BEGIN
    SELECT h.last_sampled_at INTO previous_sample
    FROM pgtq._sampler AS h
    WHERE _sample_history.as_of >= h.next_sample_at
       OR _sample_history.as_of < h.last_sampled_at - interval '1 minute'
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    period_start := CASE
        WHEN previous_sample IS NULL OR previous_sample >= _sample_history.as_of
        THEN _sample_history.as_of - interval '1 minute'
        ELSE greatest(previous_sample, _sample_history.as_of - interval '1 hour')
    END;

    WITH live AS (
        SELECT l.queue, l.task,
               count(*) FILTER (WHERE l.state = 'scheduled') AS scheduled,
               count(*) FILTER (WHERE l.state = 'ready') AS ready,
               count(*) FILTER (WHERE l.state = 'running') AS running,
               min(l.run_at) FILTER (WHERE l.state = 'ready') AS oldest_ready_at
        FROM (SELECT j.queue, j.task, j.state, j.run_at FROM pgtq._job AS j WHERE j.state = 'scheduled'
              UNION ALL
              SELECT j.queue, j.task, j.state, j.run_at FROM pgtq._job AS j
              WHERE j.state = 'ready' AND j.lock_key IS NULL  -- job_ready_idx
              UNION ALL
              SELECT j.queue, j.task, j.state, j.run_at FROM pgtq._job AS j
              WHERE j.state = 'ready' AND j.lock_key IS NOT NULL  -- job_keyed_ready_idx
              UNION ALL
              SELECT j.queue, j.task, j.state, j.run_at FROM pgtq._job AS j WHERE j.state = 'running') AS l
        GROUP BY l.queue, l.task
    ), finished AS (
        SELECT f.queue, f.task,
               count(*) FILTER (WHERE f.state = 'done') AS completed,
               count(*) FILTER (WHERE f.state = 'failed') AS failed,
               count(*) FILTER (WHERE f.state = 'cancelled') AS cancelled
        FROM pgtq._job AS f
        WHERE f.state IN ('done', 'failed', 'cancelled')
          AND f.finished_at > period_start
          AND f.finished_at <= _sample_history.as_of
        GROUP BY f.queue, f.task
    ), counted AS (
        DELETE FROM pgtq._lease_expiry AS e RETURNING e.queue, e.task, e.jobs
    ), expiries AS (
        SELECT c.queue, c.task, sum(c.jobs)::bigint AS lease_expired
        FROM counted AS c
        GROUP BY c.queue, c.task
    ), keys AS (
        SELECT live.queue, live.task FROM live
        UNION SELECT finished.queue, finished.task FROM finished
        UNION SELECT expiries.queue, expiries.task FROM expiries
        UNION SELECT p.queue, p.task
              FROM pgtq._history AS p
              WHERE p.sampled_at = previous_sample
                AND p.scheduled + p.ready + p.running + p.completed + p.failed + p.cancelled
                    + p.lease_expired > 0
    )
    INSERT INTO pgtq._history AS h (sampled_at, period_start, queue, task, scheduled, ready, running,
                                    oldest_ready_at, completed, failed, cancelled, lease_expired)
    SELECT _sample_history.as_of, period_start, k.queue, k.task,
           coalesce(l.scheduled, 0), coalesce(l.ready, 0), coalesce(l.running, 0), l.oldest_ready_at,
           coalesce(f.completed, 0), coalesce(f.failed, 0), coalesce(f.cancelled, 0),
           coalesce(x.lease_expired, 0)
    FROM keys AS k
    LEFT JOIN live AS l ON l.queue = k.queue AND l.task = k.task
    LEFT JOIN finished AS f ON f.queue = k.queue AND f.task = k.task
    LEFT JOIN expiries AS x ON x.queue = k.queue AND x.task = k.task
    ON CONFLICT ON CONSTRAINT history_pkey DO NOTHING;

    -- An entry above this transaction's id cannot be of this cluster's
    -- past (a dump restored into another cluster brings them).
    DELETE FROM pgtq._xid_clock AS c WHERE c.xid > pg_current_xact_id();
    INSERT INTO pgtq._xid_clock AS c (sampled_at, xid)
    VALUES (_sample_history.as_of, pg_current_xact_id())
    ON CONFLICT ON CONSTRAINT xid_clock_pkey DO NOTHING;

    UPDATE pgtq._sampler AS h
    SET next_sample_at = date_trunc('minute', _sample_history.as_of, 'UTC') + interval '1 minute',
        last_sampled_at = _sample_history.as_of;
    SELECT s.history_retention INTO retention FROM pgtq._settings AS s;
    DELETE FROM pgtq._history AS h WHERE h.sampled_at <= _sample_history.as_of - retention;
    DELETE FROM pgtq._xid_clock AS c WHERE c.sampled_at <= _sample_history.as_of - retention;
    RETURN true;
END
$$;

-- ---------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------

-- Guarantees: the version of the installed SQL API.
CREATE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '@PGTQ_VERSION@'::text $$;

-- Guarantees: the delay before retrying after failed attempt number
-- `attempt` (1 = the first attempt): exponential, with jitter, capped.
--   delay = least(cap, base * 2^(attempt - 1)) * (0.8 + 0.2 * random())
-- so it always lies in [0.8 * d, d] with d = least(cap, base * 2^(attempt-1)),
-- and never exceeds `cap`. With the defaults: about 2 s, 4 s, 8 s, ... and at
-- most one hour from attempt 12 on. Attempts below 1 (or NULL) count as 1;
-- a NULL base or cap means its default. The delay is computed in seconds
-- (as a double), so no attempt with a base and cap of up to 100 years
-- overflows an interval: fail() and tick() apply each job's own policy
-- (push's backoff_base and backoff_cap) with it. Pure computation: no
-- rights needed. PARALLEL RESTRICTED, as random() is (0.1.0 wrongly said
-- SAFE).
-- PL/pgSQL since 0.30.0, as _state_after_failure: a SQL function with a
-- SET clause is not inlined, and is planned at each call.
CREATE FUNCTION pgtq.backoff(attempt integer,
                             base interval DEFAULT '2 seconds',
                             cap interval DEFAULT '1 hour')
RETURNS interval
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN make_interval(secs => least(extract(epoch FROM coalesce(backoff.cap, interval '1 hour'))::float8,
                                       extract(epoch FROM coalesce(backoff.base, interval '2 seconds'))::float8
                                       * power(2, least(greatest(coalesce(backoff.attempt, 1), 1) - 1, 40)))
                                 * (0.8 + 0.2 * random()));
END
$$;

-- Guarantees: the keyed part of push and push_many. Pushes one job per
-- element (args[i], kwargs[i] or '{}', job_keys[i]) with the options
-- given, in one statement, and returns an id per element, in order.
-- Elements without a key get a new job each. Keyed elements go through
-- INSERT ... ON CONFLICT on job_key_pending_idx, the unique index of
-- pending keyed jobs, never through a check and then an insert:
--   * a pending (scheduled or ready) job with the key is kept (`keep`:
--     nothing changes) or replaced (`replace`: it takes this push's task,
--     args, kwargs, run_at and state, priority, max_attempts and backoff,
--     and starts again at attempt 0 with no error); its id is returned;
--   * a session meeting another's uncommitted insert of the key waits for
--     it to end, then finds the row (or inserts, if it rolled back);
--   * a conflicting row that became running meanwhile is no longer in the
--     index, so the row is inserted: a running job never blocks a push;
--   * DO UPDATE has no WHERE, so every element gets an id, never NULL
--     (the race of Graphile Worker #580).
-- Equal keys within one call act as pushes one after another: keep takes
-- the first element, replace the last, and every element of the key gets
-- the same id. Keyed rows are written in key order, so two calls pushing
-- the same keys cannot deadlock on each other. Ids are drawn in element
-- order. A ready job announces the queue, a kept one too (a pop that met
-- it locked by this push skipped it). A kept or replaced job stays locked
-- until the caller's transaction ends; so does a new one, as any insert.
-- lock_keys (NULL: none) gives each element's lock key, replaced with the
-- rest by `replace`. A replaced job that is ready is recorded for the
-- ready marks (0.18.0, _lower_marks): it keeps its id, which may be below
-- its queue's mark. The caller has checked every argument.
CREATE FUNCTION pgtq._push_keyed(queue text, task text, args jsonb[], kwargs jsonb[], job_keys text[],
                                 job_key_mode text, run_at timestamptz, state pgtq.job_state,
                                 priority integer, max_attempts integer,
                                 backoff_base interval, backoff_cap interval, lock_keys text[],
                                 as_of timestamptz)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    replacing  boolean := _push_keyed.job_key_mode = 'replace';
    pushed_ids bigint[];
    made_ready boolean;
BEGIN
    WITH element AS (
        SELECT e.a, coalesce(e.k, '{}') AS k, e.key, e.lock, e.position
        FROM unnest(_push_keyed.args, _push_keyed.kwargs, _push_keyed.job_keys, _push_keyed.lock_keys)
             WITH ORDINALITY AS e (a, k, key, lock, position)
    ), chosen AS MATERIALIZED (
        SELECT nextval('pgtq._job_id_seq') AS new_id, c.a, c.k, c.key, c.lock, c.position
        FROM (SELECT el.a, el.k, el.key, el.lock, el.position,
                     row_number() OVER (PARTITION BY el.key
                                        ORDER BY CASE WHEN replacing THEN -el.position ELSE el.position END)
                         AS rank
              FROM element AS el) AS c
        WHERE c.key IS NULL OR c.rank = 1
        ORDER BY c.position
    ), written AS (
        INSERT INTO pgtq._job AS j (id, queue, task, args, kwargs, state, priority, max_attempts, run_at,
                                    created_at, job_key, backoff_base, backoff_cap, pushed_by, lock_key)
        SELECT c.new_id, _push_keyed.queue, _push_keyed.task, c.a, c.k, _push_keyed.state,
               _push_keyed.priority, _push_keyed.max_attempts, _push_keyed.run_at, _push_keyed.as_of,
               c.key, _push_keyed.backoff_base, _push_keyed.backoff_cap, session_user, c.lock
        FROM chosen AS c
        ORDER BY c.key, c.position
        ON CONFLICT (queue, job_key) WHERE job_key IS NOT NULL AND state IN ('scheduled', 'ready')
        DO UPDATE SET
            task = CASE WHEN replacing THEN excluded.task ELSE j.task END,
            args = CASE WHEN replacing THEN excluded.args ELSE j.args END,
            kwargs = CASE WHEN replacing THEN excluded.kwargs ELSE j.kwargs END,
            state = CASE WHEN replacing THEN excluded.state ELSE j.state END,
            priority = CASE WHEN replacing THEN excluded.priority ELSE j.priority END,
            max_attempts = CASE WHEN replacing THEN excluded.max_attempts ELSE j.max_attempts END,
            run_at = CASE WHEN replacing THEN excluded.run_at ELSE j.run_at END,
            backoff_base = CASE WHEN replacing THEN excluded.backoff_base ELSE j.backoff_base END,
            backoff_cap = CASE WHEN replacing THEN excluded.backoff_cap ELSE j.backoff_cap END,
            lock_key = CASE WHEN replacing THEN excluded.lock_key ELSE j.lock_key END,
            attempt = CASE WHEN replacing THEN 0 ELSE j.attempt END,
            last_error = CASE WHEN replacing THEN NULL ELSE j.last_error END
        RETURNING j.id, j.job_key, j.state
    )
    SELECT array_agg(CASE WHEN el.key IS NULL THEN c.new_id ELSE w.id END ORDER BY el.position),
           coalesce(bool_or(CASE WHEN el.key IS NULL THEN _push_keyed.state ELSE w.state END = 'ready'), false)
    INTO pushed_ids, made_ready
    FROM element AS el
    LEFT JOIN chosen AS c ON c.position = el.position
    LEFT JOIN written AS w ON w.job_key = el.key;

    IF made_ready THEN
        -- A replaced job keeps its id: it may be below the queue's mark.
        IF replacing THEN
            PERFORM pgtq._lower_marks(array_agg(j.queue), array_agg(j.priority), array_agg(j.id),
                                      array_agg(j.lock_key))
            FROM pgtq._job AS j
            WHERE j.id = ANY (pushed_ids) AND j.state = 'ready';
        END IF;
        PERFORM pgtq._announce(_push_keyed.queue);
    END IF;
    RETURN QUERY SELECT u.id FROM unnest(pushed_ids) AS u (id);
END
$$;

-- Guarantees: inserts one job and returns its id, as part of the caller's
-- transaction (the job exists if and only if that transaction commits).
-- A job due at `as_of` is ready at once, one with a later run_at is
-- scheduled. Every argument is checked first; on bad input it raises an
-- error naming the problem (SQLSTATE class PT) and writes nothing.
-- backoff_base and backoff_cap are the job's own retry policy (NULL:
-- backoff()'s defaults), stored on the job and applied by fail() and by
-- the lease rescue in tick().
-- With a job_key there is at most one pending (scheduled or ready) job per
-- queue and key: if there is one, `keep` (the default) changes nothing and
-- returns its id, `replace` replaces its task, args, kwargs, run_at,
-- priority, max_attempts and backoff (attempts start again from 0) and
-- returns its id. A running job with the key does not count: the push
-- queues a new pending job. Concurrent pushes of one key all get the id of
-- the one pending job (_push_keyed says how). A push without a key never
-- touches the key index.
-- With a lock_key, at most one job of that key runs at a time, in any
-- queue, and the key's jobs start in their order (priority, then push
-- order): pop keeps the rule (_choose_keyed).
-- A job due at once, without a lock key, of a queue with no pause or
-- limit, pushed while a worker of its queue waits with an open hand-off
-- offer (0.16.0, offer_handoffs), is handed to that worker: it is
-- inserted running, claimed for the worker as pop would claim it, and the
-- worker hears of the claim at commit (_hand_off). Otherwise it is
-- inserted ready and announced.
-- SECURITY DEFINER: a producer may insert jobs through it, never directly.
CREATE FUNCTION pgtq.push(queue text,
                          task text,
                          args jsonb DEFAULT '[]',
                          kwargs jsonb DEFAULT '{}',
                          run_at timestamptz DEFAULT NULL,
                          priority integer DEFAULT 0,
                          max_attempts integer DEFAULT 25,
                          job_key text DEFAULT NULL,
                          job_key_mode text DEFAULT 'keep',
                          backoff_base interval DEFAULT NULL,
                          backoff_cap interval DEFAULT NULL,
                          lock_key text DEFAULT NULL,
                          as_of timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    due        timestamptz;
    new_state  pgtq.job_state;
    new_id     bigint;
    announce   boolean := false;  -- a ready job whose queue a worker may be waiting for (_must_announce)
BEGIN
    -- The transaction id comes before the job id (0.25.0, _raise_mark).
    PERFORM pg_current_xact_id();
    -- The common push (good names and options, args an array and kwargs an
    -- object, no job key, lock key or backoff of its own) passes one test
    -- (0.13.0); any other takes each check in turn, and the first that
    -- fails raises the error that names the problem.
    IF NOT coalesce(pgtq._push_options_ok(push.queue, push.task, push.priority, push.max_attempts,
                                          push.run_at, push.as_of)
                    AND push.job_key IS NULL AND push.job_key_mode = 'keep' AND push.lock_key IS NULL
                    AND push.backoff_base IS NULL AND push.backoff_cap IS NULL
                    AND jsonb_typeof(push.args) = 'array' AND jsonb_typeof(push.kwargs) = 'object',
                    false) THEN
        IF NOT pgtq._push_options_ok(push.queue, push.task, push.priority, push.max_attempts,
                                     push.run_at, push.as_of) THEN
            PERFORM pgtq._check_push_options(push.queue, push.task, push.priority, push.max_attempts,
                                             push.run_at, push.as_of);
        END IF;
        IF push.job_key IS NOT NULL OR push.job_key_mode IS DISTINCT FROM 'keep'
           OR push.backoff_base IS NOT NULL OR push.backoff_cap IS NOT NULL OR push.lock_key IS NOT NULL THEN
            PERFORM pgtq._check_job_options(push.job_key, push.job_key_mode, push.backoff_base, push.backoff_cap,
                                            push.lock_key);
        END IF;
        PERFORM pgtq._check_payload(push.task, push.args, push.kwargs);

        IF push.job_key IS NOT NULL THEN
            due := coalesce(push.run_at, push.as_of);
            new_state := CASE WHEN due <= push.as_of THEN 'ready' ELSE 'scheduled' END;
            SELECT k.id INTO new_id
            FROM pgtq._push_keyed(push.queue, push.task, ARRAY[push.args], ARRAY[push.kwargs],
                                  ARRAY[push.job_key], push.job_key_mode, due, new_state, push.priority,
                                  push.max_attempts, push.backoff_base, push.backoff_cap, ARRAY[push.lock_key],
                                  push.as_of) AS k (id);
            RETURN new_id;
        END IF;
    END IF;

    -- A job due now, of a queue a worker may be waiting for, goes straight
    -- to an open hand-off offer when there is one (0.16.0, _hand_off).
    IF coalesce(push.run_at, push.as_of) <= push.as_of THEN
        announce := pgtq._must_announce(push.queue);
        IF announce AND push.lock_key IS NULL THEN
            new_id := pgtq._hand_off(push.queue, push.task, push.args, push.kwargs, push.priority,
                                     push.max_attempts, push.backoff_base, push.backoff_cap, push.as_of);
            IF new_id IS NOT NULL THEN
                RETURN new_id;
            END IF;
        END IF;
    END IF;

    -- The insert itself keeps max_payload_bytes: over it, no row.
    INSERT INTO pgtq._job AS j (queue, task, args, kwargs, state, priority, max_attempts, run_at,
                                created_at, backoff_base, backoff_cap, pushed_by, lock_key)
    SELECT push.queue, push.task, push.args, push.kwargs,
           CASE WHEN coalesce(push.run_at, push.as_of) <= push.as_of
                THEN 'ready'::pgtq.job_state ELSE 'scheduled'::pgtq.job_state END,
           push.priority, push.max_attempts, coalesce(push.run_at, push.as_of), push.as_of,
           push.backoff_base, push.backoff_cap, session_user, push.lock_key
    FROM pgtq._settings AS s
    WHERE pg_column_size(push.args) + pg_column_size(push.kwargs) <= s.max_payload_bytes
    RETURNING j.id INTO new_id;
    IF new_id IS NULL THEN
        PERFORM pgtq._check_payload(push.task, push.args, push.kwargs);
        RAISE EXCEPTION 'pgtq: the settings row of pgtq._settings is missing';
    END IF;

    IF announce THEN
        PERFORM pg_notify('pgtq', push.queue);
    END IF;
    RETURN new_id;
END
$$;

-- Guarantees: pushes many jobs of one task in one statement, in the
-- caller's transaction: one job per element of `args` (with the element of
-- `kwargs` at the same position; '{}' when kwargs is NULL), all with the
-- same run_at, priority, max_attempts and backoff; returns their ids in
-- the order given. job_keys, if given, holds one key per element (NULL:
-- no key) and each keyed element is pushed as push would push it with
-- that key and job_key_mode; two elements with one key act as two pushes
-- one after the other (keep: the first one's job; replace: the last one's
-- args), and both get that job's id. lock_keys, if given, holds one lock
-- key per element (NULL: none), with push's rule. Everything is checked
-- first, every element too (the error names the element's position,
-- counting from 1); on bad input it raises the error push would raise and
-- writes nothing. Ready jobs are announced once.
CREATE FUNCTION pgtq.push_many(queue text,
                               task text,
                               args jsonb[],
                               kwargs jsonb[] DEFAULT NULL,
                               run_at timestamptz DEFAULT NULL,
                               priority integer DEFAULT 0,
                               max_attempts integer DEFAULT 25,
                               job_keys text[] DEFAULT NULL,
                               job_key_mode text DEFAULT 'keep',
                               backoff_base interval DEFAULT NULL,
                               backoff_cap interval DEFAULT NULL,
                               lock_keys text[] DEFAULT NULL,
                               as_of timestamptz DEFAULT now())
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    payload_limit integer;
    bad           record;
    due           timestamptz;
    new_state     pgtq.job_state;
BEGIN
    -- The transaction id comes before the job ids (0.25.0, _raise_mark).
    PERFORM pg_current_xact_id();
    IF NOT pgtq._push_options_ok(push_many.queue, push_many.task, push_many.priority,
                                 push_many.max_attempts, push_many.run_at, push_many.as_of) THEN
        PERFORM pgtq._check_push_options(push_many.queue, push_many.task, push_many.priority,
                                         push_many.max_attempts, push_many.run_at, push_many.as_of);
    END IF;
    IF push_many.job_key_mode IS DISTINCT FROM 'keep'
       OR push_many.backoff_base IS NOT NULL OR push_many.backoff_cap IS NOT NULL THEN
        PERFORM pgtq._check_job_options(NULL, push_many.job_key_mode, push_many.backoff_base,
                                        push_many.backoff_cap, NULL);
    END IF;
    IF push_many.args IS NULL OR cardinality(push_many.args) > 100000
       OR (push_many.kwargs IS NOT NULL AND cardinality(push_many.kwargs) <> cardinality(push_many.args)) THEN
        RAISE EXCEPTION 'pgtq: push_many needs args (and kwargs, if given) of one length of at most 100000, '
                        'got % args and % kwargs',
                coalesce(cardinality(push_many.args)::text, 'NULL'),
                coalesce(cardinality(push_many.kwargs)::text, 'no')
            USING ERRCODE = 'PT004';
    END IF;
    IF push_many.job_keys IS NOT NULL THEN
        IF cardinality(push_many.job_keys) <> cardinality(push_many.args) THEN
            RAISE EXCEPTION 'pgtq: push_many needs one job_key per job (NULL for none), got % job_keys for % jobs',
                    cardinality(push_many.job_keys), cardinality(push_many.args)
                USING ERRCODE = 'PT004';
        END IF;
        SELECT e.position, length(e.key) AS length INTO bad
        FROM unnest(push_many.job_keys) WITH ORDINALITY AS e (key, position)
        WHERE length(e.key) NOT BETWEEN 1 AND 200
        ORDER BY e.position
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'pgtq: job_key of job % must be 1 to 200 characters, got % characters',
                    bad.position, bad.length
                USING ERRCODE = 'PT004';
        END IF;
    END IF;
    IF push_many.lock_keys IS NOT NULL THEN
        IF cardinality(push_many.lock_keys) <> cardinality(push_many.args) THEN
            RAISE EXCEPTION 'pgtq: push_many needs one lock_key per job (NULL for none), got % lock_keys for % jobs',
                    cardinality(push_many.lock_keys), cardinality(push_many.args)
                USING ERRCODE = 'PT004';
        END IF;
        SELECT e.position, length(e.key) AS length INTO bad
        FROM unnest(push_many.lock_keys) WITH ORDINALITY AS e (key, position)
        WHERE length(e.key) NOT BETWEEN 1 AND 200
        ORDER BY e.position
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'pgtq: lock_key of job % must be 1 to 200 characters, got % characters',
                    bad.position, bad.length
                USING ERRCODE = 'PT004';
        END IF;
    END IF;

    SELECT s.max_payload_bytes INTO payload_limit FROM pgtq._settings AS s;
    SELECT e.position, e.a, e.k, pg_column_size(e.a) + coalesce(pg_column_size(e.k), 0) AS size INTO bad
    FROM unnest(push_many.args, push_many.kwargs) WITH ORDINALITY AS e (a, k, position)
    WHERE e.a IS NULL OR jsonb_typeof(e.a) <> 'array'
       OR (push_many.kwargs IS NOT NULL AND (e.k IS NULL OR jsonb_typeof(e.k) <> 'object'))
       OR pg_column_size(e.a) + coalesce(pg_column_size(e.k), 0) > payload_limit
    ORDER BY e.position
    LIMIT 1;
    IF FOUND THEN
        IF bad.a IS NULL OR jsonb_typeof(bad.a) <> 'array' THEN
            RAISE EXCEPTION 'pgtq: args of job % must be a JSON array, got %',
                    bad.position, coalesce(jsonb_typeof(bad.a), 'NULL')
                USING ERRCODE = 'PT001';
        ELSIF push_many.kwargs IS NOT NULL AND (bad.k IS NULL OR jsonb_typeof(bad.k) <> 'object') THEN
            RAISE EXCEPTION 'pgtq: kwargs of job % must be a JSON object, got %',
                    bad.position, coalesce(jsonb_typeof(bad.k), 'NULL')
                USING ERRCODE = 'PT002';
        END IF;
        RAISE EXCEPTION 'pgtq: payload of job % of task % is % bytes, over the limit of % bytes',
                bad.position, quote_literal(push_many.task), bad.size, payload_limit
            USING ERRCODE = 'PT005';
    END IF;

    due := coalesce(push_many.run_at, push_many.as_of);
    new_state := CASE WHEN due <= push_many.as_of THEN 'ready' ELSE 'scheduled' END;
    IF push_many.job_keys IS NOT NULL THEN
        RETURN QUERY
        SELECT k.id
        FROM pgtq._push_keyed(push_many.queue, push_many.task, push_many.args, push_many.kwargs,
                              push_many.job_keys, push_many.job_key_mode, due, new_state,
                              push_many.priority, push_many.max_attempts, push_many.backoff_base,
                              push_many.backoff_cap, push_many.lock_keys, push_many.as_of) AS k (id);
        RETURN;
    END IF;
    RETURN QUERY
    INSERT INTO pgtq._job AS j (queue, task, args, kwargs, state, priority, max_attempts, run_at, created_at,
                                backoff_base, backoff_cap, pushed_by, lock_key)
    SELECT push_many.queue, push_many.task, e.a, coalesce(e.k, '{}'), new_state,
           push_many.priority, push_many.max_attempts, due, push_many.as_of,
           push_many.backoff_base, push_many.backoff_cap, session_user, e.lock
    FROM unnest(push_many.args, push_many.kwargs, push_many.lock_keys) WITH ORDINALITY AS e (a, k, lock, position)
    ORDER BY e.position
    RETURNING j.id;
    IF new_state = 'ready' AND cardinality(push_many.args) > 0 THEN
        PERFORM pgtq._announce(push_many.queue);
    END IF;
END
$$;

-- Guarantees: claims up to `n` ready jobs of `queue` (highest priority
-- first, then push order) and returns them. Each claimed job becomes
-- running, its attempt count goes up by one, and it gets a fresh lease
-- token that expires `lease` after `as_of`. Rows are locked with
-- FOR UPDATE SKIP LOCKED in a MATERIALIZED step, so concurrent pops never
-- get the same job, never wait on each other and never claim more than n.
-- Flow control (0.3.0), in the same call:
--   * a paused queue hands out nothing, and a queue with max_running or a
--     rate limit at most the room it has left;
--   * a queue whose only control is max_running (0.9.0): the pop claims
--     into free slots it holds the tokens of (_take_slots), and each job
--     it claims records its slot, so pops of the queue claim side by side
--     and never overshoot;
--   * otherwise (paused, or a rate limit) the pop locks the queue's _queue
--     row until its transaction ends (_room), so pops of that queue take
--     turns and never overshoot, and its starts are counted in the rate
--     window (_count_starts);
--   * a job with a lock key starts only when no job of its key runs and it
--     is the key's next; other jobs are taken past it (_choose_keyed).
-- A queue with no pause, no limit and no ready job with a lock key pays
-- two index probes for this and claims as before.
-- Where the claim starts (0.18.0): with a fresh ready mark of the queue
-- (_ready_mark, set by tick) and no ready job of a higher priority than
-- the mark's, it seeks to the mark within that priority, then takes the
-- lower priorities from their first entry; so it no longer steps over the
-- entries of the jobs claimed since the index was last cleaned, which a
-- snapshot held open keeps. Claim order stays priority, then push order,
-- with one exception: a job whose push transaction took its id before one
-- tick and committed after the next may be passed over until the tick
-- after its commit (_raise_mark).
-- Pop may return fewer than n jobs while more are ready (a limit, at
-- most 256 a call from a queue with max_running alone, busy keys, rows
-- other pops hold);
-- whoever waits for more is told by an announcement on channel pgtq
-- when a slot or a key comes free (_wake_after_end) or the rate window
-- moves on (tick).
-- A pop of a paused or limited queue first counts its room without the
-- lock (0.5.0): when it finds none it returns at once, taking no lock and
-- writing nothing, so a pop that finds the queue full never makes the pop
-- that can claim wait for its commit (a slot freed after the look is
-- announced, and the waiting worker pops again). (0.39.0) Beside a
-- snapshot held open, a pop of a max_running queue writes the queue's
-- probing marks, a few times a minute at most (_take_slots).
-- Hot path:
--   * the plans are generic (0.5.0: plan_cache_mode = force_generic_plan).
--     Until 0.4.0 the claim was planned anew at every call, because its
--     plan for an unknown `LIMIT room` looked dearer than one for a known
--     room: 60% of the time of a pop(1). The generic plan scans
--     job_ready_idx in order (tests/sql/27-pop-costs.sql checks it);
--   * the claimed rows are updated by an array of their ids, which the
--     plan reads with one job_pkey probe each (a join with the claimed
--     rows let the generic plan merge-join along job_pkey from its first
--     row: 100,000 entries read to claim 10 jobs of a queue pushed after
--     another's);
--   * the argument checks call the helper that words the error only
--     when a cheap inline test fails;
--   * no bitmap scans (0.20.0: enable_bitmapscan off, for the helpers it
--     calls too). A bitmap scan reads every entry its index condition
--     matches and the row of each, and marks no entry of a job that ended
--     as dead, so later scans read it again. The generic plans chose one
--     once the job table was large: the count of a max_running queue's
--     running jobs (_filled_slots, twice a pop) read the row of every job
--     of the queue that ended since the last vacuum (1.5 ms at 10,000),
--     and the walk of a queue with lock keys (_choose_keyed) read and
--     sorted every ready job of the queue (1.3 ms at 10,000). In index
--     order, they read the entries they need, and mark the ones of ended
--     jobs dead once no snapshot sees them, so the next pops skip them;
--   * no sorts where an index gives the order (0.29.0: enable_sort off,
--     for the helpers too). A session keeps its generic plans from its
--     first pop; made while the job table was empty (vacuumed so, or
--     new), every plan cost about the same, and the seek from the mark
--     could take job_pkey from the mark and sort what it found: every job
--     above the mark, read at each claim. Once jobs came faster than the
--     workers took them, each claim read the whole backlog, and the
--     backlog grew, until autovacuum's next visit of the table replanned
--     it (the bench's sustained drain fell from 10,000 to 600 jobs a
--     second within a minute). job_ready_idx gives the claim order, so
--     the plan that reads it is the one without a sort, whatever the
--     table held when it was made (tests/py/test_plans_from_an_empty_table.py).
-- Bad arguments raise PT003 or PT004 and claim nothing; a paused or
-- limited queue, or one with lock keys, needs READ COMMITTED (PT007).
CREATE FUNCTION pgtq.pop(queue text,
                         worker text DEFAULT NULL,
                         n integer DEFAULT 1,
                         lease interval DEFAULT '5 minutes',
                         as_of timestamptz DEFAULT now())
RETURNS SETOF pgtq.claimed_job
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET jit = off
AS $$
DECLARE
    flow       pgtq._queue;  -- the queue's pause and limits, if it has any
    controlled boolean;      -- paused or limited: the queue has a _queue row
    room       integer := pop.n;
    slots      integer[];    -- the slots its claims fill (a queue whose only control is max_running)
    keyed_ids  bigint[];
    started    integer;
    mark_priority integer;  -- the queue's ready mark (_ready_mark), if fresh
    mark_id    bigint;
    seek_ids   bigint[];    -- claimed by the seek from the mark
    below      integer := 2147483647;  -- the claim from the queue's first entry takes priorities up to this
BEGIN
    IF NOT pgtq._is_plain_name(pop.queue)
       OR (pop.worker IS NOT NULL AND NOT pgtq._is_plain_name(pop.worker)) THEN
        PERFORM pgtq._checked_name('queue', pop.queue);
        PERFORM pgtq._checked_name('worker', coalesce(pop.worker, 'unnamed'));
    END IF;
    IF pop.n IS NULL OR pop.n < 1 OR pop.n > 10000 THEN
        RAISE EXCEPTION 'pgtq: n must be between 1 and 10000, got %', coalesce(pop.n::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF pop.lease IS NULL OR pop.lease <= interval '0' OR pop.lease > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: lease must be a positive interval of at most 100 years, got %',
                coalesce(pop.lease::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(pop.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', pop.as_of);
    END IF;

    -- Every pop holds its queue's claims lock shared (0.39.0, second key
    -- -1; _take_slots then takes the settings lock, 0): configure_queue
    -- waits for the pops that read the old settings, so none claims
    -- without a slot after it set a limit (_take_slots).
    PERFORM pg_advisory_xact_lock_shared(pgtq._slot_space(pop.queue), -1);
    SELECT f.* INTO flow FROM pgtq._queue AS f WHERE f.queue = pop.queue;
    controlled := FOUND;
    IF controlled THEN
        PERFORM pgtq._check_read_committed(pop.queue);
        slots := pgtq._take_slots(pop.queue, pop.n, pop.as_of);  -- NULL: paused or rate-limited
        IF slots IS NOT NULL THEN
            room := cardinality(slots);
        ELSIF pgtq._room_of(flow, pop.n, pop.as_of) < 1 THEN
            RETURN;  -- full or paused as of now: no lock taken, nothing written
        ELSE
            room := pgtq._room(pop.queue, pop.n, pop.as_of);
        END IF;
        IF room < 1 THEN
            RETURN;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM pgtq._job AS k
               WHERE k.queue = pop.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL) THEN
        keyed_ids := pgtq._choose_keyed(pop.queue, room, pop.as_of);
    ELSE
        -- The seek from the ready mark (0.18.0), when tick set a fresh one
        -- and no ready job ranks above its priority: that priority's jobs
        -- from the mark on, then the lower priorities from their first.
        -- The jobs made ready since the tick are read from the mark's
        -- lows_from on (0.26.0: not the rows ticks read and deleted).
        -- The mark is the queue's highest generation (0.26.0).
        SELECT m.priority,
               least(m.low_id, (SELECT min(l.id) FROM pgtq._ready_mark_low AS l
                                WHERE l.queue = m.queue AND l.seq >= m.lows_from
                                  AND l.priority = m.priority))
        INTO mark_priority, mark_id
        FROM (SELECT g.* FROM pgtq._ready_mark AS g
              WHERE g.queue = pop.queue
              ORDER BY g.generation DESC
              LIMIT 1) AS m
        WHERE m.set_at > statement_timestamp() - interval '2 minutes';
        -- (Ordered, so that only job_ready_idx serves it: EXISTS would drop
        -- the order and could walk job_pkey.)
        IF mark_id IS NOT NULL
           AND (SELECT h.priority FROM pgtq._job AS h
                WHERE h.queue = pop.queue AND h.state = 'ready' AND h.lock_key IS NULL
                  AND h.priority > mark_priority
                ORDER BY h.priority DESC, h.id
                LIMIT 1) IS NULL THEN
            -- The priority as a closed range, not `=`: then no plan can take
            -- the ids in order from job_pkey and step over every version of
            -- every job from the mark on; job_ready_idx starts at the mark.
            seek_ids := ARRAY(SELECT c.id
                              FROM pgtq._job AS c
                              WHERE c.queue = pop.queue AND c.state = 'ready' AND c.lock_key IS NULL
                                AND c.priority <= mark_priority AND c.priority >= mark_priority
                                AND c.id >= mark_id
                              ORDER BY c.priority DESC, c.id
                              LIMIT room
                              FOR UPDATE SKIP LOCKED);
            below := CASE WHEN mark_priority > -2147483648 THEN mark_priority - 1 END;  -- NULL: none below
        END IF;
    END IF;

    RETURN QUERY
    WITH claimable AS MATERIALIZED (
        SELECT c.id
        FROM pgtq._job AS c
        WHERE keyed_ids IS NULL
          AND c.queue = pop.queue AND c.state = 'ready' AND c.lock_key IS NULL
          AND c.priority <= below
        ORDER BY c.priority DESC, c.id
        LIMIT room - coalesce(cardinality(seek_ids), 0)
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE pgtq._job AS j
        SET state = 'running',
            attempt = j.attempt + 1,
            lease = gen_random_uuid(),
            lease_expires_at = pop.as_of + pop.lease,
            started_at = pop.as_of,
            worker = pop.worker,
            slot = CASE WHEN slots IS NOT NULL
                        THEN slots[array_position(seek_ids || ARRAY(SELECT claimable.id FROM claimable) || keyed_ids,
                                                  j.id)]
                   END,
            -- Numbered while the queue's pops number their claims (read
            -- after _take_slots, whose shared lock keeps the mark that
            -- lets pops probe from being set meanwhile).
            slot_claim = CASE WHEN slots IS NOT NULL
                                   AND (SELECT f.probe_until IS NOT NULL FROM pgtq._queue AS f
                                        WHERE f.queue = pop.queue)
                              THEN nextval('pgtq._slot_claim_seq') END
        WHERE j.id = ANY (seek_ids || ARRAY(SELECT claimable.id FROM claimable) || keyed_ids)
        RETURNING j.id, j.queue, j.task, j.args, j.kwargs, j.priority,
                  j.attempt, j.max_attempts, j.lease, j.lease_expires_at
    )
    SELECT claimed.* FROM claimed ORDER BY claimed.priority DESC, claimed.id;

    IF controlled AND slots IS NULL THEN
        GET DIAGNOSTICS started = ROW_COUNT;
        IF started > 0 THEN
            PERFORM pgtq._count_starts(pop.queue, started, pop.as_of);
        END IF;
    END IF;
END
$$;

-- Guarantees: ends the attempt of a running job as a success, if and only
-- if `lease` is the job's current lease; returns whether it did. The job
-- becomes done with `result` stored; if a cancel was requested while it
-- ran it becomes cancelled instead (the result is kept for the record).
-- A stale lease (the job was rescued and handed on), a forged one or an
-- unknown id changes nothing. Calling it twice completes once: the second
-- call finds no lease and returns false. The job's waiters (watch()) are
-- told at commit; a job nobody waits for notifies nobody. Its slot of a
-- max_running queue and its lock key are free once this commits, and the
-- workers that may take them are told (_wake_after_end). A NULL id,
-- lease or as_of is a caller's bug and raises PT004.
CREATE FUNCTION pgtq.complete(id bigint,
                              lease uuid,
                              result jsonb DEFAULT NULL,
                              as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    ended_id    bigint;
    ended_queue text;
    ended_key   text;
BEGIN
    IF complete.id IS NULL OR complete.lease IS NULL THEN
        PERFORM pgtq._reject_claim('complete', complete.id, complete.lease);
    END IF;
    IF NOT coalesce(isfinite(complete.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', complete.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'done' ELSE 'cancelled' END::pgtq.job_state,
        finished_at = complete.as_of,
        result = complete.result,
        lease = NULL,
        lease_expires_at = NULL
    WHERE j.id = complete.id
      AND j.lease = complete.lease  -- so running (job_running_has_lease_ck)
    RETURNING CASE WHEN j.waiters > 0 THEN pgtq._tell_waiters(j.id) ELSE j.id END, j.queue, j.lock_key
    INTO ended_id, ended_queue, ended_key;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pgtq._wake_after_end(ARRAY[ended_queue], ARRAY[ended_key]);
    RETURN true;
END
$$;

-- Guarantees: true when ids, leases and results (NULL: none) are arrays
-- of one length of at most 10,000 and as_of is a finite time: the
-- arguments complete_many and complete_many_and_pop accept, as an
-- expression PostgreSQL inlines into them (no SET clause, so every name is
-- qualified). _reject_completions words the error when it is false.
CREATE FUNCTION pgtq._completions_ok(ids bigint[], leases uuid[], results jsonb[], as_of timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT coalesce(ids IS NOT NULL AND leases IS NOT NULL
                    AND pg_catalog.cardinality(ids) OPERATOR(pg_catalog.=) pg_catalog.cardinality(leases)
                    AND pg_catalog.cardinality(ids) OPERATOR(pg_catalog.<=) 10000
                    AND (results IS NULL
                         OR pg_catalog.cardinality(results) OPERATOR(pg_catalog.=) pg_catalog.cardinality(ids))
                    AND pg_catalog.isfinite(as_of),
                    false)
$$;

-- Guarantees: raises the error naming what `operation` (complete_many or
-- complete_many_and_pop) got when _completions_ok says no: PT004 for
-- arrays of unequal lengths or over 10,000, or a time that is not finite.
-- Returns quietly when the arguments are fine.
CREATE FUNCTION pgtq._reject_completions(operation text, ids bigint[], leases uuid[], results jsonb[],
                                         as_of timestamptz)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF ids IS NULL OR leases IS NULL OR cardinality(ids) <> cardinality(leases) OR cardinality(ids) > 10000
       OR (results IS NOT NULL AND cardinality(results) <> cardinality(ids)) THEN
        RAISE EXCEPTION 'pgtq: % needs ids and leases (and results, if given) of one length '
                        'of at most 10000, got % ids, % leases and % results',
                operation,
                coalesce(cardinality(ids)::text, 'NULL'),
                coalesce(cardinality(leases)::text, 'NULL'),
                coalesce(cardinality(results)::text, 'no')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', as_of);
    END IF;
END
$$;

-- Guarantees: ends as complete() would each job ids[i] whose current lease
-- is leases[i] (so it is running): done with results[i] (NULL results: no
-- result), or cancelled if a cancel was requested; tells its waiters (at
-- commit); returns one row per job it ended: its id, queue and lock key.
-- Pairs with a stale or forged lease, or an unknown id, change nothing.
-- It announces no freed slot or key: its callers do (_wake_after_end),
-- each by its rule. The arguments are its callers' to check. Reads the
-- job_pkey entries of `ids` and hashes them with the pairs, whatever the
-- table held when the session planned it (0.29.0: the ids as an index
-- condition, nested loops and merge joins off). A session keeps its
-- generic plan from about its sixth call; made while the job table was
-- empty, it could join the pairs with every entry of job_pkey, at each
-- call, however large the table grew. (Planning at each call instead
-- costs about 250 us a call: the planner weighs every index of _job.)
-- The plan is generic from the first call (0.30.0): with the default
-- plan_cache_mode the planner kept planning anew the calls whose custom
-- plan looked cheaper than the generic one, such as those with no ids
-- (a worker's first complete_many_and_pop, 300 us against 60), and the
-- generic plan reads the same entries for any number of ids.
CREATE FUNCTION pgtq._end_done(ids bigint[], leases uuid[], results jsonb[], as_of timestamptz)
RETURNS TABLE (id bigint, queue text, lock_key text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_nestloop = off
SET enable_mergejoin = off
SET jit = off
AS $$
BEGIN
    RETURN QUERY
    UPDATE pgtq._job AS j
    SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'done' ELSE 'cancelled' END::pgtq.job_state,
        finished_at = _end_done.as_of,
        result = claims.result,
        lease = NULL,
        lease_expires_at = NULL
    FROM unnest(_end_done.ids, _end_done.leases, _end_done.results) AS claims (id, lease, result)
    WHERE j.id = ANY (_end_done.ids)  -- the jobs' job_pkey entries, whatever the join
      AND j.id = claims.id
      AND j.lease = claims.lease  -- so running (job_running_has_lease_ck)
    RETURNING CASE WHEN j.waiters > 0 THEN pgtq._tell_waiters(j.id) ELSE j.id END, j.queue, j.lock_key;
END
$$;

-- Guarantees: completes many jobs in one statement, each exactly as
-- complete() would: the pair (ids[i], leases[i]) ends job ids[i] done with
-- results[i] (NULL results: no result), or cancelled if a cancel was
-- requested, if and only if that lease is the job's current lease and the
-- job is running. Returns the ids it ended; pairs with a stale or forged
-- lease, or an unknown id, are left out and change nothing. Waiters are
-- told, and the slots and lock keys freed announced, as by complete().
-- The arrays must have the same length (at most 10,000); otherwise it
-- raises PT004 and completes nothing.
CREATE FUNCTION pgtq.complete_many(ids bigint[],
                                   leases uuid[],
                                   results jsonb[] DEFAULT NULL,
                                   as_of timestamptz DEFAULT now())
RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    ended_ids    bigint[];
    ended_queues text[];
    ended_keys   text[];
BEGIN
    IF NOT pgtq._completions_ok(complete_many.ids, complete_many.leases, complete_many.results,
                                complete_many.as_of) THEN
        PERFORM pgtq._reject_completions('complete_many', complete_many.ids, complete_many.leases,
                                         complete_many.results, complete_many.as_of);
    END IF;
    SELECT array_agg(e.id), array_agg(DISTINCT e.queue), array_agg(e.lock_key) FILTER (WHERE e.lock_key IS NOT NULL)
    INTO ended_ids, ended_queues, ended_keys
    FROM pgtq._end_done(complete_many.ids, complete_many.leases, complete_many.results,
                        complete_many.as_of) AS e;
    IF ended_ids IS NOT NULL THEN
        PERFORM pgtq._wake_after_end(ended_queues, ended_keys);
    END IF;
    RETURN QUERY SELECT u.id FROM unnest(ended_ids) AS u (id);
END
$$;

-- Guarantees: in one call, in the caller's transaction, what
-- complete_many(ids, leases, results, as_of) and then pop(queue, worker,
-- n, lease, as_of) would do: returns one row, the ids it completed and the
-- jobs it claimed (in pop's order; empty arrays for none). The pop sees
-- the completions, so a slot or lock key freed here can be claimed here.
-- Errors are theirs (PT003, PT004, PT007), and after one nothing is
-- completed and nothing claimed. One difference, in the wake-ups: the
-- slots of `queue` freed here are announced only when this call claimed
-- back fewer jobs of `queue` than it ended (the queue is then emptier at
-- commit than before); otherwise every pop that found the queue full
-- finds it as full after this commit, and waking its worker only costs
-- (notifying commits take turns, and every worker listening pops again).
-- Slots of other queues and lock keys freed are announced as by
-- complete_many. A worker's successes and its next claim, in one round
-- trip and one commit (0.10.0).
CREATE FUNCTION pgtq.complete_many_and_pop(queue text,
                                           ids bigint[],
                                           leases uuid[],
                                           results jsonb[] DEFAULT NULL,
                                           worker text DEFAULT NULL,
                                           n integer DEFAULT 1,
                                           lease interval DEFAULT '5 minutes',
                                           as_of timestamptz DEFAULT now())
RETURNS TABLE (completed bigint[], claimed pgtq.claimed_job[])
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    ended_ids    bigint[];
    ended_queues text[];  -- one element per job ended
    ended_keys   text[];
    jobs         pgtq.claimed_job[];
BEGIN
    IF NOT pgtq._completions_ok(complete_many_and_pop.ids, complete_many_and_pop.leases,
                                complete_many_and_pop.results, complete_many_and_pop.as_of) THEN
        PERFORM pgtq._reject_completions('complete_many_and_pop', complete_many_and_pop.ids,
                                         complete_many_and_pop.leases, complete_many_and_pop.results,
                                         complete_many_and_pop.as_of);
    END IF;
    SELECT array_agg(e.id), array_agg(e.queue), array_agg(e.lock_key) FILTER (WHERE e.lock_key IS NOT NULL)
    INTO ended_ids, ended_queues, ended_keys
    FROM pgtq._end_done(complete_many_and_pop.ids, complete_many_and_pop.leases, complete_many_and_pop.results,
                        complete_many_and_pop.as_of) AS e;
    SELECT array_agg(ROW(c.id, c.queue, c.task, c.args, c.kwargs, c.priority, c.attempt, c.max_attempts,
                         c.lease, c.lease_expires_at)::pgtq.claimed_job ORDER BY c.position)
    INTO jobs
    FROM pgtq.pop(complete_many_and_pop.queue, complete_many_and_pop.worker, complete_many_and_pop.n,
                  complete_many_and_pop.lease, complete_many_and_pop.as_of)
         WITH ORDINALITY AS c (id, queue, task, args, kwargs, priority, attempt, max_attempts, lease,
                               lease_expires_at, position);
    -- Nothing to announce, the common case, costs no query: every job ended
    -- was of `queue`, no more of them than were claimed, and none had a key.
    IF ended_ids IS NOT NULL
       AND (ended_keys IS NOT NULL OR cardinality(ended_ids) > coalesce(cardinality(jobs), 0)
            OR NOT complete_many_and_pop.queue = ALL (ended_queues)) THEN
        PERFORM pgtq._wake_after_end(
            ARRAY(SELECT DISTINCT q.queue
                  FROM unnest(ended_queues) AS q (queue)
                  WHERE q.queue <> complete_many_and_pop.queue
                     OR cardinality(array_positions(ended_queues, q.queue)) > coalesce(cardinality(jobs), 0)),
            ended_keys);
    END IF;
    completed := coalesce(ended_ids, '{}');
    claimed := coalesce(jobs, '{}');
    RETURN NEXT;
END
$$;

-- Guarantees: records `error` for the failed attempt of a running job whose
-- current lease is `lease`, and returns the state the job moves to:
--   * a cancel was requested while it ran: cancelled, never retried;
--   * attempts remain: it is retried at as_of + retry_in, or without
--     retry_in at as_of + backoff(attempt, backoff_base, backoff_cap) with
--     the job's own policy: scheduled, or ready when that time has come. A
--     retry asked with retry_in (pgtq.Retry in Python) counts as an
--     attempt like any failure, so a handler that always asks to retry
--     still stops after max_attempts. A keyed job whose key another
--     pending job holds by now is not retried: it is cancelled, superseded
--     by that job (_requeue_keyed);
--   * no attempt left: failed, kept for inspection.
-- (_end_failed_attempt applies this rule, the lease rescue in tick too.)
-- Returns NULL (changing nothing) when the lease is stale or the job is not
-- running. Waiters are told when the job finished. A NULL id, lease, error
-- or as_of, or a retry_in outside 0..100 years, raises PT004.
CREATE FUNCTION pgtq.fail(id bigint,
                          lease uuid,
                          error text,
                          retry_in interval DEFAULT NULL,
                          as_of timestamptz DEFAULT now())
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    failed_job  pgtq._job%ROWTYPE;
BEGIN
    IF fail.id IS NULL OR fail.lease IS NULL THEN
        PERFORM pgtq._reject_claim('fail', fail.id, fail.lease);
    END IF;
    IF fail.error IS NULL THEN
        RAISE EXCEPTION 'pgtq: error must not be NULL (say why the attempt failed)'
            USING ERRCODE = 'PT004';
    END IF;
    IF fail.retry_in < interval '0' OR fail.retry_in > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: retry_in must be between 0 and 100 years, got %', fail.retry_in
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(fail.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', fail.as_of);
    END IF;

    SELECT j.* INTO failed_job
    FROM pgtq._job AS j
    WHERE j.id = fail.id AND j.lease = fail.lease  -- so running (job_running_has_lease_ck)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    RETURN pgtq._end_failed_attempt(
        failed_job, fail.error,
        fail.as_of + coalesce(fail.retry_in,
                              pgtq.backoff(failed_job.attempt, failed_job.backoff_base, failed_job.backoff_cap)),
        fail.as_of)::text;
END
$$;

-- Guarantees: ends a running job whose current lease is `lease` at once,
-- with no further attempt whatever attempts remain (pgtq.Abort in Python:
-- the handler knows retrying cannot help): it becomes failed with `error`
-- as its last error, or cancelled if a cancel was requested while it ran,
-- and is kept for inspection (retry() can run it again). Returns the new
-- state, or NULL (changing nothing) when the lease is stale or the job is
-- not running. Waiters are told, the slot and lock key freed announced
-- (_wake_after_end). A NULL id, lease, error or as_of raises PT004.
CREATE FUNCTION pgtq.abort(id bigint,
                           lease uuid,
                           error text,
                           as_of timestamptz DEFAULT now())
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    new_state   pgtq.job_state;
    waiting     integer;
    ended_queue text;
    ended_key   text;
BEGIN
    IF abort.id IS NULL OR abort.lease IS NULL THEN
        PERFORM pgtq._reject_claim('abort', abort.id, abort.lease);
    END IF;
    IF abort.error IS NULL THEN
        RAISE EXCEPTION 'pgtq: error must not be NULL (say why the job is aborted)'
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(abort.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', abort.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET state = CASE WHEN j.cancel_requested_at IS NULL THEN 'failed' ELSE 'cancelled' END::pgtq.job_state,
        finished_at = abort.as_of,
        last_error = abort.error,
        lease = NULL,
        lease_expires_at = NULL
    WHERE j.id = abort.id
      AND j.lease = abort.lease  -- so running (job_running_has_lease_ck)
    RETURNING j.state, j.waiters, j.queue, j.lock_key INTO new_state, waiting, ended_queue, ended_key;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF waiting > 0 THEN
        PERFORM pgtq._tell_waiters(abort.id);
    END IF;
    PERFORM pgtq._wake_after_end(ARRAY[ended_queue], ARRAY[ended_key]);
    RETURN new_state::text;
END
$$;

-- Guarantees: extends the lease of a running job to as_of + extend_by, if
-- `lease` is still its current lease; returns whether it did. A worker
-- calls it while a long handler runs so tick never rescues a live job.
-- It never shortens a lease. A lease that already ran out (as of as_of)
-- is extended only when the job's queue has no max_running (0.9.0) and
-- the job has no lock key (0.11.0): the job stopped counting against the
-- limit, and stopped holding its key, when its lease ran out, and its slot
-- or key may have gone to another job since, so bringing it back to life
-- could run more than max_running jobs at once, or two jobs of one key
-- (the chaos suite's limited run caught this after a server restart). Nor
-- is a lease extended once a pop wrote its job off (0.11.0: slot 0, see
-- _write_off_lapsed): that pop saw the lease run out (as of its own
-- as_of, which may be later than this call's) and may have given the slot
-- or key away. A heartbeat that writes the row first makes the pop see the
-- extended lease instead; one that comes after waits for the pop's commit
-- and then extends nothing. The worker then learns that it lost the job,
-- and tick hands it on. A NULL id, lease or as_of, or an extend_by
-- outside (0, 100 years], raises PT004. heartbeat_many does the same for a
-- batch and also reports cancel requests.
CREATE FUNCTION pgtq.heartbeat(id bigint,
                               lease uuid,
                               extend_by interval DEFAULT '5 minutes',
                               as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
BEGIN
    IF heartbeat.id IS NULL OR heartbeat.lease IS NULL THEN
        PERFORM pgtq._reject_claim('heartbeat', heartbeat.id, heartbeat.lease);
    END IF;
    IF heartbeat.extend_by IS NULL OR heartbeat.extend_by <= interval '0'
       OR heartbeat.extend_by > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: extend_by must be a positive interval of at most 100 years, got %',
                coalesce(heartbeat.extend_by::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(heartbeat.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', heartbeat.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET lease_expires_at = greatest(j.lease_expires_at, heartbeat.as_of + heartbeat.extend_by)
    WHERE j.id = heartbeat.id
      AND j.lease = heartbeat.lease  -- so running (job_running_has_lease_ck)
      AND j.slot IS DISTINCT FROM 0  -- not written off by a pop
      AND (j.lease_expires_at > heartbeat.as_of
           OR j.lock_key IS NULL
              AND NOT EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = j.queue AND f.max_running IS NOT NULL));
    RETURN FOUND;
END
$$;

-- Guarantees: heartbeat() for a whole batch in one statement, and how a
-- worker learns of cancel requests at no extra cost. For each pair
-- (ids[i], leases[i]) it extends that job's lease to as_of + extend_by
-- (never shortening it) if the lease is still the job's current one (and
-- no pop wrote the job off, and, in a queue with max_running or for a job
-- with a lock key, the lease has not run out: heartbeat's rules), and
-- returns one row per pair, in the order given:
--   held              the lease is current: the worker still holds the job;
--   cancel_requested  cancel() was called on the job: stop its handler;
--                     whatever the worker reports next ends it cancelled.
-- A job asked to cancel still gets its lease extended, so tick does not
-- rescue it while its handler stops. A worker that LISTENs on pgtq_cancel
-- learns sooner. The arrays must have the same length (at most 10,000)
-- and extend_by lie in (0, 100 years]; otherwise, or with a NULL or
-- infinite as_of, it raises PT004 and extends nothing. Reads the
-- job_pkey entries of `ids` only, whatever the table held when the
-- session planned it (0.29.0, as _end_done), with one generic plan
-- (0.30.0, as _end_done).
CREATE FUNCTION pgtq.heartbeat_many(ids bigint[],
                                    leases uuid[],
                                    extend_by interval DEFAULT '5 minutes',
                                    as_of timestamptz DEFAULT now())
RETURNS TABLE (id bigint, held boolean, cancel_requested boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_nestloop = off
SET enable_mergejoin = off
SET jit = off
AS $$
BEGIN
    IF heartbeat_many.ids IS NULL OR heartbeat_many.leases IS NULL
       OR cardinality(heartbeat_many.ids) <> cardinality(heartbeat_many.leases)
       OR cardinality(heartbeat_many.ids) > 10000 THEN
        RAISE EXCEPTION 'pgtq: heartbeat_many needs ids and leases of one length of at most 10000, '
                        'got % ids and % leases',
                coalesce(cardinality(heartbeat_many.ids)::text, 'NULL'),
                coalesce(cardinality(heartbeat_many.leases)::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF heartbeat_many.extend_by IS NULL OR heartbeat_many.extend_by <= interval '0'
       OR heartbeat_many.extend_by > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: extend_by must be a positive interval of at most 100 years, got %',
                coalesce(heartbeat_many.extend_by::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(heartbeat_many.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', heartbeat_many.as_of);
    END IF;
    RETURN QUERY
    WITH claim AS (
        SELECT c.id, c.lease, c.position
        FROM unnest(heartbeat_many.ids, heartbeat_many.leases) WITH ORDINALITY AS c (id, lease, position)
    ), beaten AS (
        UPDATE pgtq._job AS j
        SET lease_expires_at = greatest(j.lease_expires_at, heartbeat_many.as_of + heartbeat_many.extend_by)
        FROM claim
        WHERE j.id = ANY (heartbeat_many.ids)  -- the jobs' job_pkey entries, whatever the join
          AND j.id = claim.id
          AND j.lease = claim.lease  -- so running (job_running_has_lease_ck)
          AND j.slot IS DISTINCT FROM 0  -- not written off by a pop
          AND (j.lease_expires_at > heartbeat_many.as_of
               OR j.lock_key IS NULL
                  AND NOT EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = j.queue AND f.max_running IS NOT NULL))
        RETURNING j.id, j.lease, j.cancel_requested_at IS NOT NULL AS asked
    )
    SELECT claim.id, beaten.id IS NOT NULL, coalesce(beaten.asked, false)
    FROM claim
    LEFT JOIN beaten ON beaten.id = claim.id AND beaten.lease = claim.lease
    ORDER BY claim.position;
END
$$;

-- Guarantees: hands a running job back without counting the attempt (a
-- worker shutting down gracefully), if `lease` is its current lease: it
-- becomes ready at once with its attempt count restored. If a cancel was
-- requested it ends cancelled instead (at as_of); a keyed job whose key
-- another pending job holds by now ends cancelled, superseded by it
-- (_requeue_keyed). Returns whether it did. Waiters of a job that ended
-- are told; the slot and lock key it held are announced free
-- (_wake_after_end); a job made ready is recorded for the ready marks
-- (0.18.0, _lower_marks), so pops take it in its order at once. A NULL id
-- or lease, or a NULL or infinite as_of, raises PT004.
CREATE FUNCTION pgtq.release(id bigint, lease uuid, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    held      pgtq._job%ROWTYPE;
    new_state pgtq.job_state;
BEGIN
    IF release.id IS NULL OR release.lease IS NULL THEN
        PERFORM pgtq._reject_claim('release', release.id, release.lease);
    END IF;
    IF NOT coalesce(isfinite(release.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', release.as_of);
    END IF;
    SELECT j.* INTO held
    FROM pgtq._job AS j
    WHERE j.id = release.id AND j.lease = release.lease  -- so running (job_running_has_lease_ck)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;

    IF held.cancel_requested_at IS NOT NULL THEN
        UPDATE pgtq._job AS j
        SET state = 'cancelled',
            finished_at = release.as_of,
            lease = NULL,
            lease_expires_at = NULL
        WHERE j.id = held.id;
        new_state := 'cancelled';
        IF held.waiters > 0 THEN
            PERFORM pgtq._tell_waiters(held.id);
        END IF;
    ELSIF held.job_key IS NOT NULL THEN
        new_state := pgtq._requeue_keyed(held.id, 'ready', held.run_at, held.attempt - 1, NULL, NULL,
                                         held.last_error, release.as_of);
    ELSE
        UPDATE pgtq._job AS j
        SET state = 'ready',
            attempt = j.attempt - 1,
            lease = NULL,
            lease_expires_at = NULL,
            started_at = NULL,
            worker = NULL
        WHERE j.id = held.id;
        new_state := 'ready';
    END IF;
    IF new_state = 'ready' THEN
        PERFORM pgtq._lower_marks(ARRAY[held.queue], ARRAY[held.priority], ARRAY[held.id], ARRAY[held.lock_key]);
        PERFORM pgtq._announce(held.queue);
    END IF;
    PERFORM pgtq._wake_after_end(ARRAY[held.queue], ARRAY[held.lock_key]);
    RETURN true;
END
$$;

-- Guarantees: the error recorded when tick rescues a job whose lease ran
-- out: when it expired and which worker held it.
-- PL/pgSQL since 0.30.0, as backoff: a SQL function with a SET clause is
-- not inlined, and is planned at each call (once per job rescued).
CREATE FUNCTION pgtq._lease_expired_error(lease_expires_at timestamptz, worker text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    RETURN format('lease expired at %s (worker %s stopped without completing the job)',
                  _lease_expired_error.lease_expires_at, coalesce(_lease_expired_error.worker, 'unknown'));
END
$$;

-- Guarantees: moves every due job of `queue` (all queues when NULL):
--   1. scheduled jobs with run_at <= as_of become ready;
--   2. running jobs whose lease expired before as_of (their worker died)
--      go through the same rule as fail() (_end_failed_attempt), with an
--      error saying the lease expired and a retry after backoff(attempt)
--      with the job's own backoff policy: cancelled if a cancel was
--      requested, retried if attempts remain, failed otherwise. They are
--      rescued one at a time: a worker's death leaves a handful, and a
--      keyed job may meet its key taken (_requeue_keyed). They are
--      counted for the queue history (_lease_expiry). Each queue's look
--      starts at its floor (0.27.0, _rescue_floor: where the earlier
--      ticks left no expired job, from the first entry once a minute);
--   2b. queues with a max_running or a rate limit that have room again
--      (the rate window moved on, a lease ran out) and ready jobs are
--      announced, so that workers whose pop met the limit come back (a
--      slot freed by a job's end is announced at that end); a look at
--      _queue, which holds only the paused and limited queues;
--   3. workers not seen for _settings.worker_timeout are forgotten;
--   4. periodic schedules whose next run has come enqueue one job, for
--      their most recent occurrence (_tick_schedules);
--   5. once a minute, the queue history takes a sample of every queue
--      (_sample_history); when none is due this costs one read of a
--      one-row table;
--   6. the ready mark of each queue ticked that runs jobs or has one is
--      set afresh (0.18.0, _raise_mark): where pops start their claim.
--      Jobs it promotes are recorded for the marks (_lower_marks). The
--      next job id is read first, while the transaction has no id yet
--      (0.25.0: what lets the marks' looks start at a floor), and so is
--      the next number of _ready_mark_low's rows (0.26.0); a tick called
--      in a transaction that already wrote moves no floor. The rows of
--      _ready_mark_low of each queue it ticks are read and deleted (those
--      of a queue that gets no mark too); a queue that neither runs jobs
--      nor has a mark keeps its rows until it does (tick() with no
--      queue; 0.26.0: until then every tick looked for such rows among
--      all of them, stepping over every deleted one a held snapshot
--      keeps). The mark of an idle queue that says so already stays as
--      it is while no job is pushed (0.28.0, _mark_stays_idle): a tick
--      that finds nothing to do writes nothing, takes no transaction id
--      and flushes no WAL at commit, once a minute aside (the looks from
--      the first entry).
--      Until 0.28.0 each tick of each worker wrote each of its queues'
--      marks: idle workers kept the server writing, 430 bytes of WAL and
--      a flush per tick.
-- Every step reads jobs through the index that serves it, never the whole
-- table, and takes the order of an index rather than sorting (0.29.0:
-- enable_seqscan and enable_sort off, for the helpers too, and jit off:
-- a disabled path's cost would have JIT compile the statements that have
-- no other plan at every call). A session keeps its generic plans from
-- about its sixth tick; made while the job table was empty, they could
-- read the whole table at each tick (the promotion and the rescue
-- scanned it, the look for the first ready job took job_pkey from the
-- floor), until autovacuum's next visit replanned them. Its plans, and
-- its helpers', are generic from the first tick (0.30.0): the planner
-- kept planning some statements anew at each tick of one queue, 140 us
-- of a tick's 540.
-- Returns how many jobs it moved or enqueued. Rows are taken with FOR
-- UPDATE SKIP LOCKED and their state is rechecked, so any number of
-- sessions may tick at once (schedulers, workers, pg_cron): no job is
-- moved twice, no occurrence enqueued twice, no minute sampled twice.
-- Waiters of the jobs that finished are told; queues that got ready jobs
-- are announced. A bad queue name raises PT003, a NULL or infinite as_of
-- PT004.
CREATE FUNCTION pgtq.tick(queue text DEFAULT NULL,
                          as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_sort = off
SET jit = off
AS $$
DECLARE
    promoted        integer;
    promoted_queues text[];
    rescued         integer := 0;
    rescued_queues  text[] := '{}';
    rescued_tasks   text[] := '{}';
    expired         pgtq._job%ROWTYPE;
    enqueued        integer := 0;
    worker_timeout  interval;
    busy_queues     text[];  -- the queues ticked that run jobs
    busy            text;
    rescue_from     timestamptz;     -- where the rescue of `busy` looks from (_rescue_floor)
    rescue_tos      timestamptz[] := '{}';  -- per busy queue: where the next rescue may look from
    rescue_alls     boolean[] := '{}';      -- per busy queue: this rescue looked from the first entry
    settle_below    bigint;  -- the next job id, read before this transaction had an id (_raise_mark)
    settle_seq      bigint;  -- the next row number of _ready_mark_low, read then too
BEGIN
    IF pg_current_xact_id_if_assigned() IS NULL THEN
        settle_below := pgtq._unused_job_id();
        settle_seq := pgtq._unused_low_seq();
    END IF;
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
        -- By an array of their ids, one job_pkey probe each (0.29.0: a
        -- join with `due` could hash every entry of job_pkey).
        UPDATE pgtq._job AS j
        SET state = 'ready'
        WHERE j.id = ANY (ARRAY(SELECT due.id FROM due))
        RETURNING j.queue, j.priority, j.id, j.lock_key
    ), lowered AS (
        -- Only when a job moved (0.29.0: _lower_marks takes a transaction
        -- id, and a tick that moved nothing must take none; until then the
        -- join below happened to read `moved` first).
        SELECT pgtq._lower_marks(array_agg(moved.queue), array_agg(moved.priority), array_agg(moved.id),
                                 array_agg(moved.lock_key))
        FROM moved
        HAVING count(*) > 0
    )
    SELECT count(*), coalesce(array_agg(DISTINCT moved.queue), '{}')
    INTO promoted, promoted_queues
    FROM moved, lowered;

    busy_queues := CASE WHEN tick.queue IS NULL THEN pgtq._running_queues() ELSE ARRAY[tick.queue] END;
    -- Each queue's rescue looks from its floor (0.27.0, _rescue_floor); the
    -- next floor is as_of, or the lease of the first expired job it had to
    -- leave (another transaction held its row).
    FOREACH busy IN ARRAY busy_queues LOOP
        rescue_from := pgtq._rescue_floor(busy, tick.as_of, interval '1 minute');
        FOR expired IN
            SELECT e.*
            FROM pgtq._job AS e
            WHERE e.state = 'running'
              AND e.queue = busy
              AND e.lease_expires_at >= rescue_from
              AND e.lease_expires_at < tick.as_of
            FOR UPDATE SKIP LOCKED
        LOOP
            PERFORM pgtq._end_failed_attempt(
                expired, pgtq._lease_expired_error(expired.lease_expires_at, expired.worker),
                tick.as_of + pgtq.backoff(expired.attempt, expired.backoff_base, expired.backoff_cap),
                tick.as_of);
            rescued := rescued + 1;
            rescued_queues := rescued_queues || expired.queue;
            rescued_tasks := rescued_tasks || expired.task;
        END LOOP;
        rescue_tos := rescue_tos
                      || least(tick.as_of, (SELECT e.lease_expires_at
                                            FROM pgtq._job AS e
                                            WHERE e.state = 'running'
                                              AND e.queue = busy
                                              AND e.lease_expires_at >= rescue_from
                                              AND e.lease_expires_at < tick.as_of
                                            ORDER BY e.lease_expires_at
                                            LIMIT 1));
        rescue_alls := rescue_alls || (rescue_from = '-infinity');
    END LOOP;
    -- Counted for the queue history (a statement only when there are some).
    IF rescued > 0 THEN
        INSERT INTO pgtq._lease_expiry (expired_at, queue, task, jobs)
        SELECT tick.as_of, r.queue, r.task, count(*)
        FROM unnest(rescued_queues, rescued_tasks) AS r (queue, task)
        GROUP BY r.queue, r.task;
    END IF;

    -- Each queue that got ready jobs is announced once.
    PERFORM pgtq._announce(q.queue) FROM unnest(promoted_queues) AS q (queue);

    -- Limited queues whose room came back with time. The ready job is
    -- looked for queue by queue, ordered so that job_ready_idx serves it,
    -- and job_keyed_ready_idx the jobs with a lock key (0.32.0)
    -- (0.24.0: as an EXISTS, the generic plan PL/pgSQL keeps from a
    -- session's sixth tick on read every ready job of the table, grouped
    -- by queue, before it looked at _queue, even with no limited queue at
    -- all: 30 to 50 ms a tick at 100,000 to 180,000 ready jobs).
    PERFORM pgtq._announce(f.queue)
    FROM pgtq._queue AS f
    WHERE f.queue = coalesce(tick.queue, f.queue)
      AND (f.max_running IS NOT NULL OR f.rate_limit IS NOT NULL)
      AND pgtq._room_of(f, 1, tick.as_of) > 0
      AND ((SELECT r.id FROM pgtq._job AS r
            WHERE r.queue = f.queue AND r.state = 'ready' AND r.lock_key IS NULL
            ORDER BY r.priority DESC, r.id
            LIMIT 1) IS NOT NULL
           OR (SELECT r.id FROM pgtq._job AS r
               WHERE r.queue = f.queue AND r.state = 'ready' AND r.lock_key IS NOT NULL
               ORDER BY r.priority DESC, r.id
               LIMIT 1) IS NOT NULL);

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
        enqueued := pgtq._tick_schedules(tick.queue, tick.as_of);
    END IF;

    -- Queue history: one sample a minute, by whichever tick comes first.
    IF EXISTS (SELECT 1 FROM pgtq._sampler AS h
               WHERE tick.as_of >= h.next_sample_at
                  OR tick.as_of < h.last_sampled_at - interval '1 minute') THEN
        PERFORM pgtq._sample_history(tick.as_of);
    END IF;

    -- Ready marks (0.18.0): each queue ticked that runs jobs or has a mark
    -- (tick(queue): that queue, which needs no look at the marks), in the
    -- order of their names.
    -- A queue ticked that ran no job is as if rescued to as_of from its
    -- first entry: no job of it ran as this tick saw it.
    PERFORM pgtq._raise_mark(r.queue, settle_below, settle_seq, coalesce(r.rescued_to, tick.as_of),
                             coalesce(r.rescued_all, true), tick.queue IS NOT NULL)
    FROM (SELECT b.queue, b.rescued_to, b.rescued_all
          FROM unnest(busy_queues, rescue_tos, rescue_alls) AS b (queue, rescued_to, rescued_all)
          UNION ALL
          SELECT DISTINCT m.queue, NULL::timestamptz, NULL::boolean
          FROM pgtq._ready_mark AS m
          WHERE tick.queue IS NULL AND m.queue <> ALL (busy_queues)) AS r
    ORDER BY r.queue;

    RETURN promoted + rescued + enqueued;
END
$$;

-- Guarantees: calls tick() every `every` for `duration`, committing after
-- each tick, so each tick is its own transaction; each ticks as of the
-- clock (clock_timestamp(): after a COMMIT inside a procedure, now() is the
-- time of that COMMIT, a whole `every` old by the next tick); returns
-- after the last tick that fits (the next one would come after the
-- deadline). For pg_cron before 1.5, whose shortest
-- schedule is a minute: `pgtq cron install` schedules `CALL
-- pgtq.tick_for()` every minute, and as pg_cron never starts a job while
-- its previous run goes on, about one tick a second results with no
-- overlap. A procedure that commits may have no SET clause, so this one
-- names everything with its schema, and runs with the caller's rights
-- (who needs EXECUTE on tick). It must be called outside a transaction
-- block (CALL in autocommit, as pg_cron does). A duration outside
-- (0, 1 hour] or an every outside [10 ms, duration] raises PT004.
CREATE PROCEDURE pgtq.tick_for(duration interval DEFAULT '59 seconds',
                               every interval DEFAULT '1 second')
LANGUAGE plpgsql
AS $$
DECLARE
    deadline timestamptz;
BEGIN
    IF duration IS NULL OR duration OPERATOR(pg_catalog.<=) interval '0'
       OR duration OPERATOR(pg_catalog.>) interval '1 hour' THEN
        RAISE EXCEPTION 'pgtq: duration must be a positive interval of at most 1 hour, got %',
                coalesce(duration::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF every IS NULL OR every OPERATOR(pg_catalog.<) interval '10 milliseconds'
       OR every OPERATOR(pg_catalog.>) duration THEN
        RAISE EXCEPTION 'pgtq: every must be an interval between 10 milliseconds and duration, got %',
                coalesce(every::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    deadline := pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) duration;
    LOOP
        PERFORM pgtq.tick(NULL, pg_catalog.clock_timestamp());
        COMMIT;
        EXIT WHEN pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) every OPERATOR(pg_catalog.>) deadline;
        PERFORM pg_catalog.pg_sleep(pg_catalog.date_part('epoch', every));
    END LOOP;
END
$$;

-- Guarantees: cancels a job, and returns true:
--   * a job that has not started (scheduled or ready) is cancelled at once
--     (its waiters are told);
--   * a running job gets a cancel request (cancel_requested_at: the first
--     request's time; asking again changes nothing) and its worker is told
--     on channel pgtq_cancel, the job id as payload, at commit, and by
--     heartbeat_many at the latest. From then on the job is never retried:
--     whatever ends its attempt (complete, complete_many, fail, abort,
--     release, or the lease rescue in tick) ends it cancelled, keeping the
--     result or error that came with it for the record.
-- Returns false, changing nothing, for a finished job or an unknown id.
-- Only a cancel request notifies pgtq_cancel, so workers that listen pay
-- nothing otherwise. A NULL id or a NULL or infinite as_of raises PT004.
CREATE FUNCTION pgtq.cancel(id bigint, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    new_state pgtq.job_state;
    waiting   integer;
BEGIN
    IF cancel.id IS NULL THEN
        RAISE EXCEPTION 'pgtq: id must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(cancel.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', cancel.as_of);
    END IF;
    UPDATE pgtq._job AS j
    SET state = CASE WHEN j.state = 'running' THEN j.state ELSE 'cancelled' END,
        finished_at = CASE WHEN j.state = 'running' THEN NULL ELSE cancel.as_of END,
        cancel_requested_at = CASE WHEN j.state = 'running'
                                   THEN coalesce(j.cancel_requested_at, cancel.as_of) END
    WHERE j.id = cancel.id
      AND j.state IN ('scheduled', 'ready', 'running')
    RETURNING j.state, j.waiters INTO new_state, waiting;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF new_state = 'running' THEN
        PERFORM pg_notify('pgtq_cancel', cancel.id::text);
    ELSIF waiting > 0 THEN
        PERFORM pgtq._tell_waiters(cancel.id);
    END IF;
    RETURN true;
END
$$;

-- Guarantees: gives the failed and cancelled jobs among `ids` a fresh
-- start (0.27.0; the rule of retry and retry_failed): ready at as_of,
-- attempt count reset to 0, cancel request and waiters cleared (the
-- earlier waiters were told the outcome), error and result kept for the
-- record until the next attempt; a job in any other state, or an unknown
-- id, is left as it is. The jobs made ready are recorded for the ready
-- marks (_lower_marks), and each queue that got some is announced once.
-- Returns how many it retried. A keyed job whose key another pending job
-- holds raises unique_violation (job_key_pending_idx), which each caller
-- turns into its own PT006.
CREATE FUNCTION pgtq._restart(ids bigint[], as_of timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    restarted        integer;
    restarted_queues text[];
BEGIN
    WITH moved AS (
        UPDATE pgtq._job AS j
        SET state = 'ready',
            attempt = 0,
            run_at = _restart.as_of,
            started_at = NULL,
            finished_at = NULL,
            worker = NULL,
            cancel_requested_at = NULL,
            waiters = 0
        WHERE j.id = ANY (_restart.ids)
          -- failed or cancelled, said as the states it is not (0.30.0):
          -- job_finished_idx's predicate follows from "IN ('failed',
          -- 'cancelled')", and whenever the statistics said few jobs had
          -- finished the plan read that index whole, every finished job,
          -- instead of probing job_pkey for the ids.
          AND j.state NOT IN ('scheduled', 'ready', 'running', 'done')
        RETURNING j.queue, j.priority, j.id, j.lock_key
    ), lowered AS (
        SELECT pgtq._lower_marks(array_agg(moved.queue), array_agg(moved.priority), array_agg(moved.id),
                                 array_agg(moved.lock_key))
        FROM moved
    )
    SELECT count(*), coalesce(array_agg(DISTINCT moved.queue), '{}')
    INTO restarted, restarted_queues
    FROM moved, lowered;
    PERFORM pgtq._announce(q.queue) FROM unnest(restarted_queues) AS q (queue);
    RETURN restarted;
END
$$;

-- Guarantees: gives a failed or cancelled job a fresh start (_restart):
-- ready at once, attempt count reset to 0, cancel request and waiters
-- cleared, error and result kept for the record until the next attempt.
-- Returns true if it did, false for any other state or an unknown id. A
-- keyed job whose key another pending job holds is not retried: that
-- raises PT006 naming the job holding the key (retry that one's work
-- through it). The job made ready is recorded for the ready marks
-- (0.18.0, _lower_marks). A NULL id or a NULL or infinite as_of raises
-- PT004.
CREATE FUNCTION pgtq.retry(id bigint, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    holder record;
BEGIN
    IF retry.id IS NULL THEN
        RAISE EXCEPTION 'pgtq: id must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(retry.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', retry.as_of);
    END IF;
    BEGIN
        RETURN pgtq._restart(ARRAY[retry.id], retry.as_of) > 0;
    EXCEPTION WHEN unique_violation THEN
        SELECT p.id, p.job_key INTO holder
        FROM pgtq._job AS j
        JOIN pgtq._job AS p ON p.queue = j.queue AND p.job_key = j.job_key
                           AND p.state IN ('scheduled', 'ready')
        WHERE j.id = retry.id;
        RAISE EXCEPTION 'pgtq: job % cannot be retried: job % is pending with its job_key %',
                retry.id, holder.id, quote_literal(holder.job_key)
            USING ERRCODE = 'PT006';
    END;
END
$$;

-- Guarantees: the state and outcome of each job among `ids` that the
-- session user may read (_may_read: it pushed the job, or is a member of
-- the role that did), in no particular order: result for a done job (kept
-- too for one cancelled after it completed), error the last error (for a
-- failed or cancelled job: why). Unknown ids and jobs of other users are
-- left out alike, so a producer learns nothing of other users' jobs.
-- Takes no lock. NULL or more than 10,000 ids raise PT004.
CREATE FUNCTION pgtq.outcomes(ids bigint[])
RETURNS SETOF pgtq.job_outcome
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF outcomes.ids IS NULL OR cardinality(outcomes.ids) > 10000 THEN
        RAISE EXCEPTION 'pgtq: outcomes needs an array of at most 10000 ids, got %',
                coalesce(cardinality(outcomes.ids)::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    RETURN QUERY
    SELECT j.id, j.state, j.result, j.last_error, j.finished_at
    FROM pgtq._job AS j
    WHERE j.id = ANY (outcomes.ids)
      AND pgtq._may_read(j.pushed_by);
END
$$;

-- Guarantees: registers the session as a waiter of job `id` if the job is
-- unfinished and the session user may read it (as outcomes()), and
-- returns the job's state and outcome (no row for an unknown or unreadable
-- id). The protocol, free of lost wake-ups: LISTEN pgtq_finished (in its
-- own transaction, or autocommit), then call watch, and let it commit. If
-- watch returned a finished job, that is the answer. Otherwise a
-- notification on pgtq_finished with the job id as payload comes when the
-- job finishes (done, failed or cancelled); read the outcome then with
-- outcomes(). Nothing is lost in between: watch increments the job row's
-- `waiters` under the row lock, and every statement that finishes a job
-- updates that row and notifies if its waiters > 0. If the finishing
-- update came first, watch waits for it to commit, finds the job finished
-- and returns it; if watch came first, the finishing update waits for
-- watch to commit and re-reads the row (READ COMMITTED takes the newest
-- version of a row it waited for, whatever its snapshot), sees the waiter
-- and notifies at its commit, after the LISTEN. Jobs nobody waits for
-- never notify (a notifying commit takes a database-wide lock).
-- Registrations are a count on the job row, so they cannot pile up:
-- unwatch() takes one back; one of a waiter that went away costs at most
-- one unheard notification; retry() clears them. One job per call: the
-- registration holds that row's lock until commit, and holding several
-- could deadlock with a worker finishing them in another order, so wait
-- for many jobs with one watch per job, each in its own transaction
-- (autocommit, pipelined). Registering on a ready job announces its queue
-- again (a pop that met the row locked skipped it). A NULL id raises PT004.
CREATE FUNCTION pgtq.watch(id bigint)
RETURNS SETOF pgtq.job_outcome
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    ready_queue text;
BEGIN
    IF watch.id IS NULL THEN
        RAISE EXCEPTION 'pgtq: id must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    UPDATE pgtq._job AS j
    SET waiters = j.waiters + 1
    WHERE j.id = watch.id
      AND j.state IN ('scheduled', 'ready', 'running')
      AND pgtq._may_read(j.pushed_by)
    RETURNING CASE WHEN j.state = 'ready' THEN j.queue END INTO ready_queue;
    IF ready_queue IS NOT NULL THEN
        PERFORM pgtq._announce(ready_queue);
    END IF;
    RETURN QUERY SELECT * FROM pgtq.outcomes(ARRAY[watch.id]);
END
$$;

-- Guarantees: takes back one registration of the session's watch() on job
-- `id` (a waiter that gives up, e.g. at its timeout), so a job nobody
-- waits for any more does not notify. Returns whether there was one to
-- take back: false for a finished job (its registrations no longer
-- matter), an unknown or unreadable id, or a job without waiters. A NULL
-- id raises PT004.
CREATE FUNCTION pgtq.unwatch(id bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF unwatch.id IS NULL THEN
        RAISE EXCEPTION 'pgtq: id must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    UPDATE pgtq._job AS j
    SET waiters = j.waiters - 1
    WHERE j.id = unwatch.id
      AND j.state IN ('scheduled', 'ready', 'running')
      AND j.waiters > 0
      AND pgtq._may_read(j.pushed_by);
    RETURN FOUND;
END
$$;

-- Guarantees: retries the failed jobs of `queue` and `task` (NULL: any),
-- each as retry() does (_restart: ready at once, attempt count reset,
-- cancel request and waiters cleared), in the caller's transaction, and returns
-- how many it retried. The failed jobs are found through job_failed_idx
-- (failed jobs only) and locked with FOR UPDATE SKIP LOCKED, so jobs
-- another session is changing are left alone; cancelled jobs are not
-- touched. Jobs with a job_key (0.27.0): one whose key a pending job of
-- its queue holds stays failed (that job does its work; retry() raises
-- PT006 for it), and of failed jobs that share a key only the newest is
-- retried, so the call never stops at a key. One statement for all the
-- jobs (0.27.0: one retry() call and one subtransaction each before, 236
-- us a job, and past 64 subtransactions in one transaction every other
-- session's snapshots grow slower to check). A job pushed with one of
-- the keys while it runs raises PT006, retrying nothing. A bad queue or
-- task name raises PT003, a NULL or infinite as_of PT004, and retries
-- nothing. It reads job_failed_idx in its order, with sequential scans
-- and sorts off (and jit, 0.30.0): a session that planned it while the
-- table was empty scanned the whole table at each later call.
CREATE FUNCTION pgtq.retry_failed(queue text DEFAULT NULL,
                                  task text DEFAULT NULL,
                                  as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET enable_sort = off
SET jit = off
AS $$
DECLARE
    retried integer;
BEGIN
    IF retry_failed.queue IS NOT NULL THEN
        PERFORM pgtq._checked_name('queue', retry_failed.queue);
    END IF;
    IF retry_failed.task IS NOT NULL THEN
        PERFORM pgtq._checked_name('task', retry_failed.task);
    END IF;
    IF NOT coalesce(isfinite(retry_failed.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', retry_failed.as_of);
    END IF;
    BEGIN
        retried := pgtq._restart(
            ARRAY(WITH failed AS MATERIALIZED (
                      SELECT f.id, f.queue, f.job_key
                      FROM pgtq._job AS f
                      WHERE f.state = 'failed'
                        AND f.queue = coalesce(retry_failed.queue, f.queue)
                        AND f.task = coalesce(retry_failed.task, f.task)
                      ORDER BY f.queue, f.task, f.id  -- job_failed_idx's order
                      FOR UPDATE SKIP LOCKED
                  )
                  SELECT f.id FROM failed AS f WHERE f.job_key IS NULL
                  UNION ALL
                  SELECT max(f.id)
                  FROM failed AS f
                  WHERE f.job_key IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM pgtq._job AS p
                                    WHERE p.queue = f.queue AND p.job_key = f.job_key
                                      AND p.state IN ('scheduled', 'ready'))
                  GROUP BY f.queue, f.job_key),
            retry_failed.as_of);
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'pgtq: retry_failed retried nothing: a job pushed meanwhile holds the job_key of a '
                        'failed job (call it again)'
            USING ERRCODE = 'PT006';
    END;
    RETURN retried;
END
$$;

-- Guarantees: deletes finished jobs whose state is one of `states` (done,
-- failed, cancelled), of `queue` (NULL: every queue), that finished before
-- as_of - older_than, at most `batch` rows per call, oldest first, so a
-- large backlog is deleted in short transactions; returns how many it
-- deleted (call it again while that equals batch). Live jobs are never
-- touched; rows another session holds are skipped (FOR UPDATE SKIP
-- LOCKED). Reads job_finished_idx: the cost follows the rows deleted.
-- older_than outside 0..100 years, states NULL, empty or naming a live
-- state, a batch outside 1..1000000 or a NULL or infinite as_of raise
-- PT004, a bad queue name PT003, and delete nothing.
CREATE FUNCTION pgtq.purge(older_than interval,
                           states pgtq.job_state[] DEFAULT '{done,cancelled}',
                           queue text DEFAULT NULL,
                           batch integer DEFAULT 10000,
                           as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    deleted integer;
BEGIN
    IF purge.older_than IS NULL OR purge.older_than < interval '0'
       OR purge.older_than > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: older_than must be an interval between 0 and 100 years, got %',
                coalesce(purge.older_than::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF purge.states IS NULL OR cardinality(purge.states) = 0
       OR NOT purge.states <@ ARRAY['done', 'failed', 'cancelled']::pgtq.job_state[] THEN
        RAISE EXCEPTION 'pgtq: states must name finished states only (done, failed, cancelled), got %',
                coalesce(purge.states::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF purge.queue IS NOT NULL THEN
        PERFORM pgtq._checked_name('queue', purge.queue);
    END IF;
    IF purge.batch IS NULL OR purge.batch < 1 OR purge.batch > 1000000 THEN
        RAISE EXCEPTION 'pgtq: batch must be between 1 and 1000000, got %', coalesce(purge.batch::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(purge.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', purge.as_of);
    END IF;
    WITH old AS MATERIALIZED (
        SELECT o.id
        FROM pgtq._job AS o
        WHERE o.state IN ('done', 'failed', 'cancelled')
          AND o.finished_at < purge.as_of - purge.older_than
          AND o.state = ANY (purge.states)
          AND o.queue = coalesce(purge.queue, o.queue)
        ORDER BY o.finished_at
        LIMIT purge.batch
        FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM pgtq._job AS j USING old WHERE j.id = old.id RETURNING j.id
    )
    SELECT count(*) INTO deleted FROM gone;
    RETURN deleted;
END
$$;

-- Guarantees: purge() of done and cancelled jobs (and failed ones when
-- include_failed) of every queue that finished before as_of - older_than,
-- at most `batch` rows per call; returns how many rows it deleted. Live
-- jobs are never touched. A NULL include_failed raises PT004; the other
-- arguments are checked by purge().
CREATE FUNCTION pgtq.prune(older_than interval,
                           include_failed boolean DEFAULT false,
                           batch integer DEFAULT 10000,
                           as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF prune.include_failed IS NULL THEN
        RAISE EXCEPTION 'pgtq: include_failed must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    RETURN pgtq.purge(prune.older_than,
                      CASE WHEN prune.include_failed THEN '{done,failed,cancelled}'::pgtq.job_state[]
                           ELSE '{done,cancelled}'::pgtq.job_state[] END,
                      NULL, prune.batch, prune.as_of);
END
$$;

-- Guarantees: deletes one finished job (done, failed or cancelled) and
-- returns true; returns false, deleting nothing, for a live job (cancel
-- it first) or an unknown id. A NULL id raises PT004.
CREATE FUNCTION pgtq.delete_job(id bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    IF delete_job.id IS NULL THEN
        RAISE EXCEPTION 'pgtq: id must not be NULL' USING ERRCODE = 'PT004';
    END IF;
    DELETE FROM pgtq._job AS j
    WHERE j.id = delete_job.id
      -- finished, said as the states it is not (0.30.0, as in _restart):
      -- job_finished_idx's predicate follows from "IN ('done', 'failed',
      -- 'cancelled')", and the plan read that index whole.
      AND j.state NOT IN ('scheduled', 'ready', 'running');
    RETURN FOUND;
END
$$;

-- Guarantees: the queue-level figures of every queue, one row per metric
-- and label set, the same for a Prometheus exporter, the dashboard and
-- any SQL client:
--   jobs                      (queue, state) live jobs by state: scheduled,
--                             ready and running, now (zero rows included
--                             for a queue with live jobs or recent history)
--   oldest_ready_age_seconds  (queue) how long the oldest ready job has been
--                             due (since its run_at), 0 with none ready
--   recent_completed          (queue, task) jobs done, failed for good, and
--   recent_failed             leases expired, in the history samples taken
--   recent_lease_expiries     in (as_of - period, as_of]
--   workers                   (queue) live workers serving the queue
--   workers_total             () live workers (seen within worker_timeout)
--   history_age_seconds       () since the last history sample (no row
--                             before the first): over 60 means nobody ticks
--   paused                    (queue) 1 while the queue is paused, 0 for a
--                             queue with a limit that is not
--   max_running               (queue) its concurrency limit, if it has one
--   rate_limit,               (queue) its rate limit: at most rate_limit
--   rate_period_seconds       starts in any rate_period, if it has one
-- (a queue without a row of paused is not paused and has no limit).
-- Read-only, with the owner's rights, so the worker and observer roles
-- see these aggregates without reading jobs. Costs one pass over the live
-- jobs (their partial indexes) and over the period's history rows. A
-- period outside 1 minute..31 days or a NULL or infinite as_of raises
-- PT004.
CREATE FUNCTION pgtq.metrics(period interval DEFAULT '5 minutes',
                             as_of timestamptz DEFAULT now())
RETURNS TABLE (metric text, queue text, task text, state text, value double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    worker_timeout interval;
BEGIN
    IF metrics.period IS NULL OR metrics.period < interval '1 minute' OR metrics.period > interval '31 days' THEN
        RAISE EXCEPTION 'pgtq: period must be an interval between 1 minute and 31 days, got %',
                coalesce(metrics.period::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(metrics.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', metrics.as_of);
    END IF;
    SELECT s.worker_timeout INTO worker_timeout FROM pgtq._settings AS s;
    RETURN QUERY
    WITH live AS (
        SELECT l.queue, l.state, count(*) AS jobs, min(l.run_at) AS oldest_run_at
        FROM (SELECT j.queue, j.state, j.run_at FROM pgtq._job AS j WHERE j.state = 'scheduled'
              UNION ALL
              SELECT j.queue, j.state, j.run_at FROM pgtq._job AS j
              WHERE j.state = 'ready' AND j.lock_key IS NULL  -- job_ready_idx
              UNION ALL
              SELECT j.queue, j.state, j.run_at FROM pgtq._job AS j
              WHERE j.state = 'ready' AND j.lock_key IS NOT NULL  -- job_keyed_ready_idx
              UNION ALL
              SELECT j.queue, j.state, j.run_at FROM pgtq._job AS j WHERE j.state = 'running') AS l
        GROUP BY l.queue, l.state
    ), recent AS (
        SELECT h.queue, h.task, sum(h.completed) AS completed, sum(h.failed) AS failed,
               sum(h.lease_expired) AS lease_expired
        FROM pgtq._history AS h
        WHERE h.sampled_at > metrics.as_of - metrics.period
          AND h.sampled_at <= metrics.as_of
        GROUP BY h.queue, h.task
    ), queues AS (
        SELECT live.queue FROM live UNION SELECT recent.queue FROM recent
    ), alive AS (
        SELECT w.queues
        FROM pgtq._worker AS w
        WHERE w.last_seen_at >= metrics.as_of - worker_timeout
    )
    SELECT 'jobs', q.queue, NULL::text, s.state::text, coalesce(l.jobs, 0)::double precision
    FROM queues AS q
    CROSS JOIN unnest('{scheduled,ready,running}'::pgtq.job_state[]) AS s (state)
    LEFT JOIN live AS l ON l.queue = q.queue AND l.state = s.state
    UNION ALL
    SELECT 'oldest_ready_age_seconds', q.queue, NULL, NULL,
           coalesce(greatest(extract(epoch FROM metrics.as_of - l.oldest_run_at), 0), 0)::double precision
    FROM queues AS q
    LEFT JOIN live AS l ON l.queue = q.queue AND l.state = 'ready'
    UNION ALL
    SELECT 'recent_completed', r.queue, r.task, NULL, r.completed::double precision FROM recent AS r
    UNION ALL
    SELECT 'recent_failed', r.queue, r.task, NULL, r.failed::double precision FROM recent AS r
    UNION ALL
    SELECT 'recent_lease_expiries', r.queue, r.task, NULL, r.lease_expired::double precision FROM recent AS r
    UNION ALL
    SELECT 'workers', served.queue, NULL, NULL, count(*)::double precision
    FROM alive AS a CROSS JOIN unnest(a.queues) AS served (queue)
    GROUP BY served.queue
    UNION ALL
    SELECT 'workers_total', NULL, NULL, NULL, count(*)::double precision FROM alive
    UNION ALL
    SELECT 'history_age_seconds', NULL, NULL, NULL,
           extract(epoch FROM metrics.as_of - h.last_sampled_at)::double precision
    FROM pgtq._sampler AS h
    WHERE h.last_sampled_at IS NOT NULL
    UNION ALL
    SELECT 'paused', f.queue, NULL, NULL, (f.paused_at IS NOT NULL)::integer::double precision
    FROM pgtq._queue AS f
    UNION ALL
    SELECT 'max_running', f.queue, NULL, NULL, f.max_running::double precision
    FROM pgtq._queue AS f WHERE f.max_running IS NOT NULL
    UNION ALL
    SELECT 'rate_limit', f.queue, NULL, NULL, f.rate_limit::double precision
    FROM pgtq._queue AS f WHERE f.rate_limit IS NOT NULL
    UNION ALL
    SELECT 'rate_period_seconds', f.queue, NULL, NULL, extract(epoch FROM f.rate_period)::double precision
    FROM pgtq._queue AS f WHERE f.rate_limit IS NOT NULL;
END
$$;

-- Guarantees: `age` in words for health()'s messages, rounded down to
-- its largest unit: '45 s', '12 min', '5 h', '3 days' (under 0: '0 s').
CREATE FUNCTION pgtq._health_age(age interval)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT CASE WHEN seconds < 120 THEN floor(greatest(seconds, 0)) || ' s'
                WHEN seconds < 7200 THEN floor(seconds / 60) || ' min'
                WHEN seconds < 172800 THEN floor(seconds / 3600) || ' h'
                ELSE floor(seconds / 86400) || ' days'
           END
    FROM (SELECT extract(epoch FROM _health_age.age) AS seconds) AS a
$$;

-- Guarantees: the queues check of health(): one row, 'warning' naming up
-- to 10 queues (the longest wait first) whose jobs nobody handles, 'ok'
-- otherwise. A queue is named when its next ready job (in pop's order)
-- has been due longer than `late` while no live worker serves it and it
-- is not paused, or when a scheduled job has been due, or a running job's
-- lease has run out, longer than `late` (tick would have moved them).
-- (0.32.0: of its next ready job without a lock key and its next with
-- one, the one that waited longer.) Finds the queues with ready jobs by a
-- loose scan of job_ready_idx and job_keyed_ready_idx (one probe of each
-- per queue, as _running_queues). Reads at most the 10,000 oldest
-- late scheduled jobs (0.15.0; until 0.14.0 all of them, which a day
-- without a tick could make millions, at every look of the dashboard):
-- past that a queue's count says "or more".
CREATE FUNCTION pgtq._health_queues(late interval, as_of timestamptz, OUT status text, OUT detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH RECURSIVE ready (queue) AS (
        SELECT least((SELECT r.queue FROM pgtq._job AS r
                      WHERE r.state = 'ready' AND r.lock_key IS NULL
                      ORDER BY r.queue
                      LIMIT 1),
                     (SELECT r.queue FROM pgtq._job AS r
                      WHERE r.state = 'ready' AND r.lock_key IS NOT NULL
                      ORDER BY r.queue
                      LIMIT 1))
        UNION ALL
        SELECT least((SELECT r.queue FROM pgtq._job AS r
                      WHERE r.state = 'ready' AND r.lock_key IS NULL AND r.queue > ready.queue
                      ORDER BY r.queue
                      LIMIT 1),
                     (SELECT r.queue FROM pgtq._job AS r
                      WHERE r.state = 'ready' AND r.lock_key IS NOT NULL AND r.queue > ready.queue
                      ORDER BY r.queue
                      LIMIT 1))
        FROM ready
        WHERE ready.queue IS NOT NULL
    ), alive AS (
        SELECT DISTINCT served.queue
        FROM pgtq._worker AS w
        CROSS JOIN pgtq._settings AS s
        CROSS JOIN unnest(w.queues) AS served (queue)
        WHERE w.last_seen_at >= _health_queues.as_of - s.worker_timeout
    ), unserved AS (
        SELECT ready.queue,
               _health_queues.as_of - least((SELECT n.run_at FROM pgtq._job AS n
                                             WHERE n.queue = ready.queue AND n.state = 'ready'
                                               AND n.lock_key IS NULL
                                             ORDER BY n.priority DESC, n.id
                                             LIMIT 1),
                                            (SELECT n.run_at FROM pgtq._job AS n
                                             WHERE n.queue = ready.queue AND n.state = 'ready'
                                               AND n.lock_key IS NOT NULL
                                             ORDER BY n.priority DESC, n.id
                                             LIMIT 1)) AS waited
        FROM ready
        WHERE ready.queue IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM alive WHERE alive.queue = ready.queue)
          AND NOT EXISTS (SELECT 1 FROM pgtq._queue AS f WHERE f.queue = ready.queue AND f.paused_at IS NOT NULL)
    ), late AS (
        SELECT j.queue, j.state, j.run_at AS since
        FROM pgtq._job AS j
        WHERE j.state = 'scheduled' AND j.run_at < _health_queues.as_of - _health_queues.late
        ORDER BY j.run_at
        LIMIT 10001
    ), untended AS (
        SELECT l.queue, count(*) FILTER (WHERE l.state = 'scheduled') AS due,
               count(*) FILTER (WHERE l.state = 'running') AS lapsed,
               _health_queues.as_of - min(l.since) AS waited
        FROM ((SELECT late.queue, late.state, late.since FROM late ORDER BY late.since LIMIT 10000)
              UNION ALL
              SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j
              WHERE j.state = 'running' AND j.lease_expires_at < _health_queues.as_of - _health_queues.late)
             AS l
        GROUP BY l.queue
    ), found AS (
        SELECT u.queue, u.waited,
               format('queue %s: its next ready job has waited %s and no live worker serves it',
                      quote_literal(u.queue), pgtq._health_age(u.waited)) AS finding
        FROM unserved AS u
        WHERE u.waited > _health_queues.late
        UNION ALL
        SELECT t.queue, t.waited,
               format('queue %s: %s; nothing has ticked it for over %s (a worker of the queue, pgtq scheduler '
                      'or pg_cron would)',
                      quote_literal(t.queue),
                      concat_ws(', ',
                                CASE WHEN t.due > 0
                                     THEN format('%s%s scheduled job(s) due but not ready', t.due,
                                                 CASE WHEN (SELECT count(*) FROM late) > 10000 THEN ' or more'
                                                      ELSE '' END)
                                END,
                                CASE WHEN t.lapsed > 0 THEN format('%s lease(s) run out', t.lapsed) END),
                      pgtq._health_age(_health_queues.late))
        FROM untended AS t
    ), ranked AS (
        SELECT found.finding, found.waited, count(*) OVER () AS total
        FROM found
        ORDER BY found.waited DESC, found.queue
        LIMIT 10
    )
    SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'warning' END,
           CASE WHEN count(*) = 0 THEN 'every queue with jobs due has a live worker and is ticked'
                ELSE string_agg(ranked.finding, '; ' ORDER BY ranked.waited DESC)
                     || CASE WHEN max(ranked.total) > 10 THEN format('; and %s more', max(ranked.total) - 10)
                             ELSE '' END
           END
    FROM ranked
$$;

-- Guarantees: the time by which the transaction id `held` (the xmin of a
-- standby's feedback) had been handed out, by the transaction-id clock
-- (0.34.0, _xid_clock): the time of the clock's entry of the lowest id
-- at or above `held`. An xmin at or below an entry's id was taken before
-- that entry's transaction ended, and the horizon it holds keeps every
-- row version changed since that id: so it is at least as old as as_of
-- minus that time, to within the minute between samples. NULL when no
-- entry is at or above it (it is younger than the last sample, or the
-- history, and with it the clock, is off) or for a NULL `held`. Entries
-- at or above the next id this snapshot knows are not of this cluster's
-- past (a dump restored into another cluster brings them, until the next
-- sample deletes them): they date nothing. `held` has 32 bits: it is placed
-- within 2^31 ids of the next id this snapshot knows, below or above (a
-- feedback read after the snapshot may be a few ids ahead of it).
-- Read-only; only _health_cleanup calls it.
CREATE FUNCTION pgtq._xid_time(held xid)
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH known AS (
        SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS next_id
    ), placed AS (
        -- next_id minus the signed 32-bit distance from held up to it
        SELECT k.next_id - (((k.next_id - held::text::bigint) % 4294967296 + 6442450944) % 4294967296
                            - 2147483648) AS held_id
        FROM known AS k
    )
    SELECT c.sampled_at
    FROM placed AS p
    JOIN known AS k ON true
    JOIN pgtq._xid_clock AS c ON c.xid >= p.held_id::text::xid8 AND c.xid < k.next_id::text::xid8
    ORDER BY c.xid
    LIMIT 1
$$;

-- Guarantees: the cleanup check of health(): one row. 'warning' names
-- what holds back the cleanup of dead rows, the worst first:
--   * (0.19.0) an inactive replication slot that keeps an xmin (the
--     feedback of a standby with hot_standby_feedback that is gone): it
--     holds the cleanup back in every database, however old, until its
--     standby is back or the slot is dropped, so it comes first, with the
--     age of its xmin in transactions (a slot has no time of its own)
--     and (0.34.0) its least age in time when the transaction-id clock
--     can date it (_xid_time);
--   * the oldest transaction of this database that began more than
--     `old_transaction` before as_of and holds a snapshot or a
--     transaction id (a client session other than the caller's, or a
--     prepared transaction): its age, pid, role, application and state,
--     and (0.22.0) how to end it: pg_terminate_backend(pid) for a
--     session, COMMIT PREPARED or ROLLBACK PREPARED for a prepared one;
--   * (0.34.0) a connected standby whose hot_standby_feedback keeps an
--     xmin older than `old_transaction` (its oldest query, or its replay
--     running behind): the standby's name, its slot (or none) and its
--     walsender's pid, and the least age of that xmin, dated by the
--     transaction-id clock (_xid_time: to within the minute between
--     samples, so it is named up to a minute late; with the history off
--     there is no clock, and it is not named). A walsender without a slot
--     is seen only by a caller with pg_read_all_stats, as
--     pg_stat_replication shows it.
-- 'ok' when there is none, 'unknown' when there is none in sight but the
-- caller (or the owner of pgtq, whose rights this runs with) may not see
-- every session. It shows only the sessions that pg_stat_activity shows
-- the session user (sessions of roles it has the rights of, or all with
-- pg_read_all_stats), so it reveals nothing more than the caller could
-- read there; pg_replication_slots is every role's to read.
CREATE FUNCTION pgtq._health_cleanup(old_transaction interval, as_of timestamptz,
                                     OUT status text, OUT detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH sees_all AS (
        SELECT pg_has_role(session_user, 'pg_read_all_stats', 'USAGE')
               AND pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS yes
    ), feedback AS (
        -- A connected standby's feedback: its slot's xmin while the slot
        -- is in use, else the xmin its walsender holds.
        SELECT format('slot %s', quote_literal(r.slot_name)) AS source, r.active_pid AS pid,
               pgtq._xid_time(r.xmin) AS since
        FROM pg_replication_slots AS r
        WHERE r.active AND r.xmin IS NOT NULL
        UNION ALL
        SELECT 'no slot', w.pid, pgtq._xid_time(w.backend_xmin)
        FROM pg_stat_replication AS w
        JOIN sees_all AS s ON s.yes
        WHERE w.backend_xmin IS NOT NULL
    ), holders AS (
        SELECT '-infinity'::timestamptz AS since,  -- it never ends by itself: first
               format('an inactive replication slot %s (%s), whose xmin is %s transactions old%s,',
                      quote_literal(r.slot_name), r.slot_type, age(r.xmin),
                      (SELECT format(' (at least %s)', pgtq._health_age(_health_cleanup.as_of - t.taken))
                       FROM (SELECT pgtq._xid_time(r.xmin) AS taken) AS t
                       WHERE t.taken IS NOT NULL)) AS who,
               'its standby is back or the slot is dropped (pg_drop_replication_slot)' AS until,
               'the standby''s oldest snapshot' AS since_what
        FROM pg_replication_slots AS r
        WHERE NOT r.active AND r.xmin IS NOT NULL
        UNION ALL
        SELECT f.since,
               format('the standby %s (%s, walsender pid %s), whose oldest snapshot is at least %s old,',
                      coalesce((SELECT quote_literal(w.application_name)
                                FROM pg_stat_replication AS w
                                JOIN sees_all AS s ON s.yes
                                WHERE w.pid = f.pid), 'of a name only pg_read_all_stats sees'),
                      f.source, f.pid, pgtq._health_age(_health_cleanup.as_of - f.since)),
               'its oldest query there ends (the standby''s pg_stat_activity shows it), or it catches up '
               'with its replay, or hot_standby_feedback is turned off there',
               'that snapshot'
        FROM feedback AS f
        WHERE f.since < _health_cleanup.as_of - _health_cleanup.old_transaction
        UNION ALL
        SELECT a.xact_start,
               format('a transaction open for %s (pid %s, role %s, application %s, %s)',
                      pgtq._health_age(_health_cleanup.as_of - a.xact_start), a.pid,
                      quote_literal(a.usename), quote_literal(a.application_name), a.state),
               format('it ends (pg_terminate_backend(%s) ends its session now, and rolls its work back)', a.pid),
               'it began'
        FROM pg_stat_activity AS a
        WHERE a.datid = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())
          AND a.backend_type = 'client backend'
          AND a.pid <> pg_backend_pid()
          AND (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL)
          AND a.xact_start < _health_cleanup.as_of - _health_cleanup.old_transaction
          AND (pg_has_role(session_user, a.usesysid, 'USAGE')
               OR pg_has_role(session_user, 'pg_read_all_stats', 'USAGE'))
        UNION ALL
        SELECT p.prepared,
               format('a prepared transaction %s, prepared %s ago by role %s',
                      quote_literal(p.gid), pgtq._health_age(_health_cleanup.as_of - p.prepared),
                      quote_literal(p.owner)),
               format('it is committed or rolled back (COMMIT PREPARED %s or ROLLBACK PREPARED %s, '
                      'as its role or a superuser)', quote_literal(p.gid), quote_literal(p.gid)),
               'it began'
        FROM pg_prepared_xacts AS p
        WHERE p.database = current_database()
          AND p.prepared < _health_cleanup.as_of - _health_cleanup.old_transaction
    ), oldest AS (
        SELECT holders.who, holders.until, holders.since_what FROM holders ORDER BY holders.since LIMIT 1
    )
    SELECT CASE WHEN o.who IS NOT NULL THEN 'warning' WHEN s.yes THEN 'ok' ELSE 'unknown' END,
           CASE WHEN o.who IS NOT NULL
                THEN format('%s holds back the cleanup of dead rows: until %s, the job table and its '
                            'indexes keep every version of every job that changed since %s',
                            o.who, o.until, o.since_what)
                WHEN s.yes THEN format('no transaction of this database is older than %s',
                                       pgtq._health_age(_health_cleanup.old_transaction))
                ELSE format('no transaction older than %s in sight, but only the sessions of roles this role '
                            'has the rights of are (pg_monitor sees them all)',
                            pgtq._health_age(_health_cleanup.old_transaction))
           END
    FROM sees_all AS s
    LEFT JOIN oldest AS o ON true
$$;

-- Guarantees: the schedules check of health(): one row, 'warning' naming
-- up to 10 periodic schedules whose last run failed (last_error, which
-- tick records; the next good run clears it) with that error, 'ok'
-- otherwise.
CREATE FUNCTION pgtq._health_schedules(OUT status text, OUT detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH failing AS (
        SELECT s.name, s.last_error, count(*) OVER () AS total
        FROM pgtq._schedule AS s
        WHERE s.last_error IS NOT NULL
        ORDER BY s.name
        LIMIT 10
    )
    SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'warning' END,
           CASE WHEN count(*) = 0 THEN 'no periodic schedule failed its last run'
                ELSE string_agg(format('schedule %s failed its last run: %s', quote_literal(f.name), f.last_error),
                                '; ' ORDER BY f.name)
                     || CASE WHEN max(f.total) > 10 THEN format('; and %s more', max(f.total) - 10) ELSE '' END
           END
    FROM failing AS f
$$;

-- Guarantees: the vacuum check of health() (0.36.0): one row. 'warning'
-- names up to 10 tables of schema pgtq, the most dead row versions first,
-- whose dead row versions (as the statistics count them) are over
-- autovacuum's threshold for the table (autovacuum_vacuum_threshold +
-- autovacuum_vacuum_scale_factor x its rows, the table's own settings
-- first) and that
--   * were last vacuumed (by hand or by autovacuum) longer than `stale`
--     before as_of: greatest(10 minutes, 10 x autovacuum_naptime), while
--     autovacuum looks at each database once a naptime; or
--   * were never vacuumed since the statistics began, with autovacuum off
--     for them (nothing will vacuum them; with autovacuum on, a table not
--     yet vacuumed is new to it, and not named).
-- (0.38.0) A table that a vacuum is vacuuming now, one whose transaction
-- began within `stale` before as_of, is not named: that vacuum is on it.
-- Each is named with its dead row versions, the threshold, when it was
-- last vacuumed, whether autovacuum is off for it (the setting
-- autovacuum, or the table's autovacuum_enabled) and (0.38.0) how long a
-- vacuum of it has been running, and in which phase, when one has run
-- longer than `stale`. A vacuum is seen as pg_stat_progress_vacuum shows
-- it to the owner of pgtq (autovacuum's only with pg_read_all_stats, or
-- as a superuser); one not seen counts as none. 'unknown' when
-- track_counts is off (nothing counts dead rows, and autovacuum does not
-- run); 'ok' otherwise. Dead rows that vacuum may not remove yet (an old
-- transaction still sees them) are the cleanup check's: a table vacuumed
-- within `stale` is not named here. Reads the pg_class rows of pgtq's
-- tables, their statistics (every role may read both) and the vacuums
-- running in this database; (0.37.0) the statistics by the statistics
-- functions: until 0.36.0 it read pg_stat_all_tables, which reads every
-- relation of the database (7.6 ms with 10,484 of them), and as a SQL
-- function it was planned again at each call.
CREATE FUNCTION pgtq._health_vacuum(as_of timestamptz, OUT status text, OUT detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    stale interval := greatest(interval '10 minutes', 10 * current_setting('autovacuum_naptime')::interval);
BEGIN
    IF NOT current_setting('track_counts')::boolean THEN
        status := 'unknown';
        detail := 'track_counts is off: no dead rows are counted and autovacuum does not run, so only a '
                  'VACUUM by hand cleans pgtq''s tables';
        RETURN;
    END IF;
    WITH tables AS (
        SELECT r.oid AS relid, r.relname, pg_stat_get_dead_tuples(r.oid) AS dead,
               greatest(pg_stat_get_last_vacuum_time(r.oid), pg_stat_get_last_autovacuum_time(r.oid))
                   AS vacuumed_at,
               current_setting('autovacuum')::boolean AND coalesce(o.enabled, true) AS autovacuumed,
               floor(coalesce(o.base_threshold, current_setting('autovacuum_vacuum_threshold')::float8)
                     + coalesce(o.scale_factor, current_setting('autovacuum_vacuum_scale_factor')::float8)
                       * greatest(r.reltuples, 0))::bigint AS threshold
        FROM pg_class AS r
        CROSS JOIN LATERAL (
            SELECT bool_and(CASE WHEN p.option_name = 'autovacuum_enabled'
                                 THEN p.option_value::boolean END) AS enabled,
                   max(CASE WHEN p.option_name = 'autovacuum_vacuum_threshold'
                            THEN p.option_value::float8 END) AS base_threshold,
                   max(CASE WHEN p.option_name = 'autovacuum_vacuum_scale_factor'
                            THEN p.option_value::float8 END) AS scale_factor
            FROM pg_options_to_table(r.reloptions) AS p
        ) AS o
        WHERE r.relnamespace = 'pgtq'::regnamespace AND r.relkind = 'r'
    ), running AS (
        -- The vacuums this database runs now, the longest-running first
        -- for each table (its transaction: one per table vacuumed).
        SELECT DISTINCT ON (v.relid) v.relid, v.phase, a.xact_start AS since
        FROM pg_stat_progress_vacuum AS v
        JOIN pg_stat_activity AS a ON a.pid = v.pid
        WHERE v.datname = current_database() AND v.relid IS NOT NULL
        ORDER BY v.relid, a.xact_start
    ), behind AS (
        SELECT t.relname, t.dead, t.threshold, t.vacuumed_at, t.autovacuumed, v.phase, v.since,
               count(*) OVER () AS total
        FROM tables AS t
        LEFT JOIN running AS v ON v.relid = t.relid
        WHERE t.dead > t.threshold
          AND (t.vacuumed_at < _health_vacuum.as_of - stale
               OR (t.vacuumed_at IS NULL AND NOT t.autovacuumed))
          AND NOT coalesce(v.since >= _health_vacuum.as_of - stale, false)
        ORDER BY t.dead DESC, t.relname
        LIMIT 10
    )
    SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'warning' END,
           CASE WHEN count(*) = 0
                THEN format('no table of pgtq has had more dead row versions than autovacuum''s threshold '
                            'without a vacuum for over %s', pgtq._health_age(stale))
                ELSE string_agg(format('table pgtq.%s: %s dead row versions (autovacuum''s threshold %s), %s%s%s',
                                       b.relname, b.dead, b.threshold,
                                       CASE WHEN b.vacuumed_at IS NULL THEN 'never vacuumed'
                                            ELSE format('last vacuumed %s ago',
                                                        pgtq._health_age(_health_vacuum.as_of - b.vacuumed_at))
                                       END,
                                       CASE WHEN b.autovacuumed THEN '' ELSE ' (autovacuum is off for it)' END,
                                       CASE WHEN b.since IS NOT NULL
                                            THEN format(', and a vacuum of it has been running for %s (%s)',
                                                        pgtq._health_age(_health_vacuum.as_of - b.since), b.phase)
                                            ELSE '' END),
                                '; ' ORDER BY b.dead DESC, b.relname)
                     || CASE WHEN max(b.total) > 10 THEN format('; and %s more', max(b.total) - 10) ELSE '' END
                     || '. Until a vacuum removes them, reads step over them and the tables grow: VACUUM them '
                        'now (or let a running vacuum finish), then see why autovacuum does not come or takes '
                        'so long (turned off, its workers busy with larger tables, or its cost limit)'
           END
    INTO status, detail
    FROM behind AS b;
END
$$;

-- Guarantees: what needs an operator's look (0.14.0), one row per check,
-- always in this order, each with status 'ok', 'warning' or 'unknown'
-- and a sentence saying what it found:
--   queues     queues whose jobs are not being handled: ready jobs whose
--              next one has waited longer than `late` with no live
--              worker (seen within worker_timeout) serving the queue and
--              the queue not paused; or scheduled jobs due, or leases
--              run out, longer than `late` ago (nothing ticks the queue:
--              a worker of the queue, `pgtq scheduler` or pg_cron would).
--              Up to 10 queues are named, the worst first;
--   cleanup    an inactive replication slot that keeps an xmin (0.19.0),
--              else the oldest open transaction of this database (another
--              session's, or a prepared one) or (0.34.0) the oldest
--              snapshot a connected standby's feedback keeps, that
--              began longer than `old_transaction` ago: until it ends,
--              vacuum keeps every row version it might see, and the
--              table grows (until 0.18.0 each claim also stepped over the
--              index entries of every job claimed since: a snapshot held
--              for 60 s under 10,000 jobs/s halved the drain rate; pops
--              now seek from the ready mark). It sees the sessions that
--              the calling role may see in pg_stat_activity (all of them with
--              pg_read_all_stats, which pg_monitor holds): 'unknown' when
--              it found none and may not see them all;
--   schedules  periodic schedules whose last run failed (last_error), up
--              to 10 named;
--   vacuum     (0.36.0) tables of pgtq with more dead row versions than
--              autovacuum's threshold that no vacuum reached for over
--              10 minutes (10 naptimes when longer), or never with
--              autovacuum off for them (_health_vacuum says how);
--              'unknown' when track_counts is off.
-- Read-only, with the owner's rights, so the admin, observer and (0.15.0)
-- worker roles see it without reading jobs. Reads the running jobs' index
-- entries, those of at most 10,000 late scheduled jobs (0.15.0), one
-- probe of the ready index per queue with ready jobs, the workers and
-- (0.36.0) the statistics of pgtq's tables. A `late` or `old_transaction`
-- that is NULL or not positive, or a NULL or infinite as_of, raises
-- PT004.
CREATE FUNCTION pgtq.health(late interval DEFAULT '1 minute',
                            old_transaction interval DEFAULT '5 minutes',
                            as_of timestamptz DEFAULT now())
RETURNS TABLE (name text, status text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
BEGIN
    IF health.late IS NULL OR health.late <= interval '0' THEN
        RAISE EXCEPTION 'pgtq: late must be a positive interval, got %', coalesce(health.late::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF health.old_transaction IS NULL OR health.old_transaction <= interval '0' THEN
        RAISE EXCEPTION 'pgtq: old_transaction must be a positive interval, got %',
                coalesce(health.old_transaction::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(health.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', health.as_of);
    END IF;
    RETURN QUERY SELECT 'queues', f.status, f.detail FROM pgtq._health_queues(health.late, health.as_of) AS f;
    RETURN QUERY SELECT 'cleanup', f.status, f.detail
                 FROM pgtq._health_cleanup(health.old_transaction, health.as_of) AS f;
    RETURN QUERY SELECT 'schedules', f.status, f.detail FROM pgtq._health_schedules() AS f;
    RETURN QUERY SELECT 'vacuum', f.status, f.detail FROM pgtq._health_vacuum(health.as_of) AS f;
END
$$;

-- Guarantees: changes the queue-wide settings that are given (a NULL
-- leaves a setting as it is) in the caller's transaction, and returns all
-- of them:
--   max_payload_bytes  the largest args + kwargs (bytes, as stored) that
--                      push accepts, at least 1 (default 1048576 = 1 MiB);
--                      jobs already pushed are not touched;
--   worker_timeout     how long tick keeps a worker that stopped reporting,
--                      more than 0 and at most 100 years (default 1 minute);
--   history_retention  how long the queue history keeps its samples, 0 to
--                      31 days (default 24 hours); 0 switches the history
--                      off and deletes it (and the transaction-id clock
--                      kept beside it, 0.34.0), a positive value after 0
--                      switches it on at the next tick; a shorter one
--                      trims at the next sample.
-- A bad value raises PT004 and changes nothing. Meant for pgtq_admin.
CREATE FUNCTION pgtq.configure(max_payload_bytes integer DEFAULT NULL,
                               worker_timeout interval DEFAULT NULL,
                               history_retention interval DEFAULT NULL)
RETURNS pgtq.settings
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    applied pgtq.settings;
BEGIN
    IF configure.max_payload_bytes < 1 THEN
        RAISE EXCEPTION 'pgtq: max_payload_bytes must be at least 1, got %', configure.max_payload_bytes
            USING ERRCODE = 'PT004';
    END IF;
    IF configure.worker_timeout <= interval '0' OR configure.worker_timeout > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: worker_timeout must be a positive interval of at most 100 years, got %',
                configure.worker_timeout
            USING ERRCODE = 'PT004';
    END IF;
    IF configure.history_retention < interval '0' OR configure.history_retention > interval '31 days' THEN
        RAISE EXCEPTION 'pgtq: history_retention must be an interval between 0 and 31 days, got %',
                configure.history_retention
            USING ERRCODE = 'PT004';
    END IF;
    UPDATE pgtq._settings AS s
    SET max_payload_bytes = coalesce(configure.max_payload_bytes, s.max_payload_bytes),
        worker_timeout = coalesce(configure.worker_timeout, s.worker_timeout),
        history_retention = coalesce(configure.history_retention, s.history_retention);
    IF configure.history_retention = interval '0' THEN
        UPDATE pgtq._sampler AS h SET next_sample_at = 'infinity', last_sampled_at = NULL;
        DELETE FROM pgtq._history;
        DELETE FROM pgtq._xid_clock;
    ELSIF configure.history_retention > interval '0' THEN
        UPDATE pgtq._sampler AS h SET next_sample_at = '-infinity' WHERE h.next_sample_at = 'infinity';
    END IF;
    SELECT v.* INTO applied FROM pgtq.settings AS v;
    RETURN applied;
END
$$;

-- Guarantees: pauses `queue`, and returns true; false if it was paused
-- already (it keeps the first pause's time). From the commit on, pop hands
-- out none of the queue's jobs. Pushes still enqueue its jobs, tick still
-- promotes and rescues them, and its running jobs finish normally
-- (complete, fail, heartbeat, ... work as ever). A queue needs no jobs to
-- be paused. A pop of the queue that began before the pause committed may
-- still hand out jobs, as if it had come first (a pop of a queue that is
-- already paused or limited holds the queue's row, so the pause waits for
-- it). A bad queue name raises PT003, a NULL or infinite as_of PT004.
-- Meant for pgtq_admin.
CREATE FUNCTION pgtq.pause(queue text, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._checked_name('queue', pause.queue);
    IF NOT coalesce(isfinite(pause.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', pause.as_of);
    END IF;
    PERFORM pgtq._lock_settings(pause.queue);
    INSERT INTO pgtq._queue AS f (queue, paused_at, updated_at)
    VALUES (pause.queue, pause.as_of, pause.as_of)
    ON CONFLICT ON CONSTRAINT queue_pkey DO UPDATE
    SET paused_at = excluded.paused_at,
        updated_at = excluded.updated_at
    WHERE f.paused_at IS NULL;
    RETURN FOUND;
END
$$;

-- Guarantees: resumes a paused `queue` and returns true; false if it was
-- not paused. From the commit on, pop hands out its jobs again (within its
-- limits, which a pause keeps), and idle workers are told at once
-- (_announce). A bad queue name raises PT003, a NULL or infinite as_of
-- PT004. Meant for pgtq_admin.
CREATE FUNCTION pgtq.resume(queue text, as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._checked_name('queue', resume.queue);
    IF NOT coalesce(isfinite(resume.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', resume.as_of);
    END IF;
    PERFORM pgtq._lock_settings(resume.queue);
    -- Nothing else controlled: the row goes (pop's fast path again).
    DELETE FROM pgtq._queue AS f
    WHERE f.queue = resume.queue
      AND f.paused_at IS NOT NULL
      AND f.max_running IS NULL
      AND f.rate_limit IS NULL;
    IF NOT FOUND THEN
        UPDATE pgtq._queue AS f
        SET paused_at = NULL,
            updated_at = resume.as_of
        WHERE f.queue = resume.queue
          AND f.paused_at IS NOT NULL;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
    END IF;
    PERFORM pgtq._announce(resume.queue);
    RETURN true;
END
$$;

-- Guarantees: sets the limits of `queue` to exactly those given, and
-- returns whether that changed them (the same limits again change
-- nothing, so deploys may declare them at each start):
--   max_running  at most this many of its jobs run at once, across all
--                workers (1 to 100000; 1 makes a strict serial queue);
--                a running job counts while its lease is live;
--   rate_limit,  at most rate_limit of its jobs start in any window of
--   rate_period  length rate_period, across all workers (1 to 1000000
--                jobs, 10 milliseconds to 1 year, given together);
-- a limit left out (NULL) is no limit: configure_queue(queue) removes
-- both. The pause is not touched (pause, resume). Changing rate_period
-- starts an empty rate window; changing only rate_limit keeps it. A
-- lowered max_running stops no running job: the queue runs over it until
-- enough of them end. Takes effect for the pops that start after the
-- commit (0.39.0: it waits for every pop of the queue that read the old
-- settings to end, a transaction still open after a pop of a queue with
-- no limit too, not only those of a queue that had a row), and
-- announces the queue when something changed (there may be room now).
-- The queue's pops count its running jobs until one finds them all in
-- slots of their own (_queue.slotted, cleared here). A bad queue name
-- raises PT003, a bad limit or a NULL or infinite as_of PT004, changing
-- nothing. Meant for pgtq_admin.
CREATE FUNCTION pgtq.configure_queue(queue text,
                                     max_running integer DEFAULT NULL,
                                     rate_limit integer DEFAULT NULL,
                                     rate_period interval DEFAULT NULL,
                                     as_of timestamptz DEFAULT now())
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    changed    boolean;
    old_period interval;  -- the rate_period before this call (NULL: none)
BEGIN
    PERFORM pgtq._checked_name('queue', configure_queue.queue);
    IF configure_queue.max_running NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'pgtq: max_running must be between 1 and 100000 (NULL: no limit), got %',
                configure_queue.max_running
            USING ERRCODE = 'PT004';
    END IF;
    IF configure_queue.rate_limit NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'pgtq: rate_limit must be between 1 and 1000000 (NULL: no limit), got %',
                configure_queue.rate_limit
            USING ERRCODE = 'PT004';
    END IF;
    IF (configure_queue.rate_limit IS NULL) <> (configure_queue.rate_period IS NULL) THEN
        RAISE EXCEPTION 'pgtq: rate_limit and rate_period go together (at most rate_limit jobs start in '
                        'any rate_period), got rate_limit % and rate_period %',
                coalesce(configure_queue.rate_limit::text, 'NULL'), coalesce(configure_queue.rate_period::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    IF configure_queue.rate_period NOT BETWEEN interval '10 milliseconds' AND interval '1 year' THEN
        RAISE EXCEPTION 'pgtq: rate_period must be an interval between 10 milliseconds and 1 year, got %',
                configure_queue.rate_period
            USING ERRCODE = 'PT004';
    END IF;
    IF NOT coalesce(isfinite(configure_queue.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', configure_queue.as_of);
    END IF;

    PERFORM pg_advisory_xact_lock(pgtq._slot_space(configure_queue.queue), -1);  -- the claims (pop's order)
    PERFORM pgtq._lock_settings(configure_queue.queue);
    SELECT f.rate_period INTO old_period FROM pgtq._queue AS f WHERE f.queue = configure_queue.queue;
    IF configure_queue.max_running IS NULL AND configure_queue.rate_limit IS NULL THEN
        -- No limits: a queue that is not paused has nothing left to control.
        DELETE FROM pgtq._queue AS f WHERE f.queue = configure_queue.queue AND f.paused_at IS NULL;
        changed := FOUND;
        IF NOT changed THEN
            UPDATE pgtq._queue AS f
            SET max_running = NULL,
                rate_limit = NULL,
                rate_period = NULL,
                updated_at = configure_queue.as_of,
                slotted = false,
                probe_until = NULL
            WHERE f.queue = configure_queue.queue
              AND (f.max_running IS NOT NULL OR f.rate_limit IS NOT NULL);
            changed := FOUND;
        END IF;
    ELSE
        INSERT INTO pgtq._queue AS f (queue, max_running, rate_limit, rate_period, updated_at)
        VALUES (configure_queue.queue, configure_queue.max_running, configure_queue.rate_limit,
                configure_queue.rate_period, configure_queue.as_of)
        ON CONFLICT ON CONSTRAINT queue_pkey DO UPDATE
        SET max_running = excluded.max_running,
            rate_limit = excluded.rate_limit,
            rate_period = excluded.rate_period,
            updated_at = excluded.updated_at,
            slotted = false,  -- its running jobs may hold no slot, or one above the new limit
            probe_until = NULL
        WHERE (f.max_running, f.rate_limit, f.rate_period)
              IS DISTINCT FROM (excluded.max_running, excluded.rate_limit, excluded.rate_period);
        changed := FOUND;
    END IF;
    -- The rate window starts empty under a new rate_period, and goes with
    -- the rate limit (the row's lock, taken above, waits for the pops
    -- that counted starts under the old one).
    IF changed THEN
        DELETE FROM pgtq._rate_start AS w
        WHERE w.queue = configure_queue.queue
          AND NOT EXISTS (SELECT 1 FROM pgtq._queue AS f
                          WHERE f.queue = configure_queue.queue
                            AND f.rate_period = old_period);
        PERFORM pgtq._announce(configure_queue.queue);
    END IF;
    RETURN changed;
END
$$;

-- Guarantees: records a worker as alive (inserting or refreshing its row)
-- with the queues it serves. Idempotent: calling it again only moves
-- last_seen_at forward. tick() forgets workers not seen for
-- _settings.worker_timeout. A NULL host, pid or queues is stored as '',
-- 0 or no queues; a bad worker name raises PT003, a NULL or infinite
-- as_of PT004. marks_waiting (0.12.0) says that the worker marks the
-- queues it waits for (mark_waiting); while a registered worker does not
-- (false, the default, as every worker before 0.12.0 registers), every
-- announcement notifies, as it did before 0.12.0. NULL counts as false.
CREATE FUNCTION pgtq.register_worker(worker text,
                                     host text,
                                     pid integer,
                                     queues text[],
                                     as_of timestamptz DEFAULT now(),
                                     marks_waiting boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._checked_name('worker', register_worker.worker);
    IF NOT coalesce(isfinite(register_worker.as_of), false) THEN
        PERFORM pgtq._reject_time('as_of', register_worker.as_of);
    END IF;
    INSERT INTO pgtq._worker AS w (id, host, pid, queues, started_at, last_seen_at, marks_waiting)
    VALUES (register_worker.worker, coalesce(register_worker.host, ''),
            coalesce(register_worker.pid, 0), coalesce(register_worker.queues, '{}'),
            register_worker.as_of, register_worker.as_of, coalesce(register_worker.marks_waiting, false))
    ON CONFLICT ON CONSTRAINT worker_pkey DO UPDATE
    SET last_seen_at = greatest(w.last_seen_at, excluded.last_seen_at),
        queues = excluded.queues,
        marks_waiting = excluded.marks_waiting;
END
$$;

-- Guarantees: marks the calling session as a worker waiting for jobs of
-- `queues` (0.12.0). From its return until the session lets go of the
-- mark (clear_waiting) or ends, every push of these queues, and every
-- other announcement of them (_announce), notifies channel pgtq at its
-- commit. Each call takes each queue's waiting mark once more (a
-- session-level advisory lock, shared with the other waiting workers),
-- and clear_waiting lets go of one. The session must LISTEN pgtq first
-- and keep listening while it is marked. Returns waiting_settled(queues):
-- true when a pop started now sees the jobs of every push that skipped
-- its notification; false while one of them is still in flight (call
-- waiting_settled until it is true, and pop each time it is). Waits only
-- for announcements testing the mark at this very instant (microseconds).
-- A NULL list raises PT004, a bad queue name PT003; then nothing is
-- marked.
CREATE FUNCTION pgtq.mark_waiting(queues text[])
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    names text[] := ARRAY(SELECT pgtq._checked_queues(mark_waiting.queues));
    name  text;
BEGIN
    FOREACH name IN ARRAY names LOOP
        PERFORM pg_advisory_lock_shared(pgtq._waiting_space(name), 0);
    END LOOP;
    RETURN pgtq.waiting_settled(names);
END
$$;

-- Guarantees: true when no transaction that found no waiting worker of
-- `queues` (and so notified no one) is still open (0.12.0): a pop started
-- after it returned true sees the jobs of all of them that committed.
-- Takes each queue's push gate exclusively with a try, until the
-- caller's transaction ends (at once, in autocommit), and never waits,
-- so it never holds up a push: a push that finds the gate taken notifies
-- instead of looking for a mark. False when a gate is held by an open
-- transaction: call it again a little later. Checks the names as
-- mark_waiting does.
CREATE FUNCTION pgtq.waiting_settled(queues text[])
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    name text;
BEGIN
    FOR name IN SELECT pgtq._checked_queues(waiting_settled.queues) LOOP
        IF NOT pg_try_advisory_xact_lock(pgtq._waiting_space(name), 1) THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;

-- Guarantees: lets go of one hold of the calling session's waiting mark
-- of each of `queues` (0.12.0): once no session marks a queue, its pushes
-- notify no one (unless a worker that does not mark is registered). A
-- worker that is busy with a queue clears its mark, so that the pushes of
-- the queue stop notifying; it marks the queue again before it waits.
-- A queue the session has not marked changes nothing (PostgreSQL warns).
-- Checks the names as mark_waiting does.
CREATE FUNCTION pgtq.clear_waiting(queues text[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pg_advisory_unlock_shared(pgtq._waiting_space(q), 0)
    FROM pgtq._checked_queues(clear_waiting.queues) AS q;
END
$$;

-- Guarantees: makes the calling session a hand-off offer of `worker` for
-- `queues` (0.16.0) and returns its channel: the session LISTENs to it
-- from the commit on, and a push then hands a job straight to it while its
-- offer is open (open_handoff; _hand_off says when). Each notification on
-- the channel is one job claimed for `worker` with a lease of `lease`,
-- as JSON with pop's columns (id, queue, task, args, kwargs, priority,
-- attempt, max_attempts, lease, lease_expires_at): run it, or release it.
-- The channel is drawn at random, LISTENed here and told to this session
-- alone: whoever could hear it could read the jobs and their leases.
-- Called again by the same session, it keeps the channel and takes the
-- new worker, queues and lease. Removes the offers of sessions that ended.
-- Bad names raise PT003, a NULL list or a lease that pop would refuse
-- PT004; then nothing changes.
CREATE FUNCTION pgtq.offer_handoffs(worker text, queues text[], lease interval DEFAULT '30 seconds')
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    names   text[] := ARRAY(SELECT pgtq._checked_queues(offer_handoffs.queues) ORDER BY 1);
    channel text;
BEGIN
    PERFORM pgtq._checked_name('worker', offer_handoffs.worker);
    IF offer_handoffs.lease IS NULL OR offer_handoffs.lease <= interval '0'
       OR offer_handoffs.lease > interval '100 years' THEN
        RAISE EXCEPTION 'pgtq: lease must be a positive interval of at most 100 years, got %',
                coalesce(offer_handoffs.lease::text, 'NULL')
            USING ERRCODE = 'PT004';
    END IF;
    DELETE FROM pgtq._handoff AS h
    WHERE h.pid <> pg_backend_pid()
      AND NOT EXISTS (SELECT 1 FROM pg_stat_activity AS a WHERE a.pid = h.pid);
    UPDATE pgtq._handoff AS h
    SET worker = offer_handoffs.worker, queues = names, lease = offer_handoffs.lease
    WHERE h.pid = pg_backend_pid()
    RETURNING h.channel INTO channel;
    IF channel IS NULL THEN
        channel := 'pgtq_handoff_' || replace(gen_random_uuid()::text, '-', '');
        INSERT INTO pgtq._handoff (pid, channel, space, worker, queues, lease)
        VALUES (pg_backend_pid(), channel, hashtext('pgtq handoff ' || channel), offer_handoffs.worker,
                names, offer_handoffs.lease);
    END IF;
    EXECUTE format('LISTEN %I', channel);
    RETURN channel;
END
$$;

-- Guarantees: true when the calling session holds its hand-off offer's
-- lock (space, 0): its offer is open (0.16.0). Reads pg_locks, so it is
-- for open_handoff and close_handoff, never for a push.
CREATE FUNCTION pgtq._offer_open(space integer)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_locks AS l
                   WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted
                     AND l.classid = space::oid AND l.objid = 0 AND l.objsubid = 2
                     AND l.mode = 'ExclusiveLock')
$$;

-- Guarantees: opens the calling session's hand-off offer (0.16.0): from
-- its return until close_handoff or the session's end, a push of one of
-- its queues may hand it a job (_hand_off). Returns false, changing
-- nothing, when the session made no offer (offer_handoffs). Opening an
-- open offer changes nothing. Waits only for a push testing the offer at
-- this very instant (microseconds).
CREATE FUNCTION pgtq.open_handoff()
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    offer_space integer;
BEGIN
    SELECT h.space INTO offer_space FROM pgtq._handoff AS h WHERE h.pid = pg_backend_pid();
    IF offer_space IS NULL THEN
        RETURN false;
    END IF;
    IF NOT pgtq._offer_open(offer_space) THEN
        PERFORM pg_advisory_lock(offer_space, 0);
    END IF;
    RETURN true;
END
$$;

-- Guarantees: closes the calling session's hand-off offer (0.16.0): no
-- push that starts to look after its return hands it a job. Returns
-- whether it was open. With `wait`, it also waits until no transaction
-- that handed the session a job is still open, so every job handed to it
-- has been notified to it by then (or rolled back): a worker that stops
-- reads them after this call and hands them back. Waiting is bounded by
-- the caller's lock_timeout. Closing a closed offer changes nothing.
CREATE FUNCTION pgtq.close_handoff(wait boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    offer_space integer;
    was_open    boolean;
BEGIN
    SELECT h.space INTO offer_space FROM pgtq._handoff AS h WHERE h.pid = pg_backend_pid();
    IF offer_space IS NULL THEN
        RETURN false;
    END IF;
    was_open := pgtq._offer_open(offer_space);
    IF was_open THEN
        PERFORM pg_advisory_unlock(offer_space, 0);
    END IF;
    IF close_handoff.wait THEN
        PERFORM pg_advisory_lock(offer_space, 1);
        PERFORM pg_advisory_unlock(offer_space, 1);
    END IF;
    RETURN was_open;
END
$$;

-- Guarantees: removes a worker's registration (a clean shutdown). Returns
-- whether it was registered. A bad worker name raises PT003.
CREATE FUNCTION pgtq.unregister_worker(worker text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
BEGIN
    PERFORM pgtq._checked_name('worker', unregister_worker.worker);
    DELETE FROM pgtq._worker AS w WHERE w.id = unregister_worker.worker;
    RETURN FOUND;
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
    first_run timestamptz;
    saved     pgtq.schedules;
BEGIN
    PERFORM pgtq._checked_name('schedule', schedule.name);
    fields := pgtq._cron_parse(schedule.cron);
    PERFORM pgtq._check_push_options(schedule.queue, schedule.task, schedule.priority,
                                     schedule.max_attempts, NULL, schedule.as_of);
    PERFORM pgtq._check_payload(schedule.task, schedule.args, schedule.kwargs);
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

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------

-- Guarantees: the four roles of pgtq's privilege model exist (created
-- NOLOGIN when missing) and hold, in this database, at least these rights:
--   producer  push, push_many; watch, unwatch, outcomes (of the jobs
--             its login role pushed); version
--   worker    pop, complete, complete_many, complete_many_and_pop, fail,
--             abort, heartbeat, heartbeat_many, release, tick, the procedure tick_for,
--             register_worker, unregister_worker; mark_waiting,
--             waiting_settled, clear_waiting (0.12.0); backoff, metrics,
--             version; reads the views queue_stats and workers; schedule
--             and unschedule, reads schedules (a worker registers the
--             periodic tasks of its queues when it starts)
--   admin     every public function and procedure (cancel, retry,
--             retry_failed, purge, prune, delete_job, configure, schedule,
--             unschedule, watch, unwatch, outcomes, pause, resume,
--             configure_queue too) and every view
--   observer  reads every view (jobs, queue_stats, workers, settings,
--             queue_history, schedules, queues, and any view a later
--             version adds); metrics, version; no function that writes: a
--             dashboard connects with it and uses admin only for its actions
-- and USAGE on schema pgtq. No role may touch a table: every write goes
-- through a SECURITY DEFINER function that checks its input. Idempotent;
-- the install script calls it, and the owner of pgtq's objects may call it
-- again at any time (it runs with the caller's rights, and GRANT needs the
-- owner). Roles are cluster-wide, so a role created by the install in one
-- database is reused by the next. A missing role that the caller may not
-- create (no CREATEROLE, common on managed servers) is not an error: a
-- NOTICE names what an administrator must run, after which calling this
-- function again grants its rights. Returns the roles that hold their
-- rights now. Role names are 1 to 63 bytes (PT003 otherwise).
CREATE FUNCTION pgtq.install_roles(producer text DEFAULT 'pgtq_producer',
                                   worker text DEFAULT 'pgtq_worker',
                                   admin text DEFAULT 'pgtq_admin',
                                   observer text DEFAULT 'pgtq_observer')
RETURNS text[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
DECLARE
    role_name text;
    view_name text;
    missing   text[] := '{}';
    granted   text[] := '{}';
    rerun     text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY[install_roles.producer, install_roles.worker, install_roles.admin,
                                     install_roles.observer] LOOP
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
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.push, pgtq.push_many, pgtq.version, '
                       'pgtq.watch, pgtq.unwatch, pgtq.outcomes TO %I',
                       install_roles.producer);
        granted := granted || install_roles.producer;
    END IF;
    IF install_roles.worker <> ALL (missing) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA pgtq TO %I', install_roles.worker);
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.pop, pgtq.complete, pgtq.complete_many, pgtq.fail, pgtq.heartbeat, '
                       'pgtq.complete_many_and_pop, pgtq.release, pgtq.tick, pgtq.register_worker, pgtq.unregister_worker, '
                       'pgtq.backoff, pgtq.metrics, pgtq.version, pgtq.abort, pgtq.heartbeat_many, '
                       'pgtq.mark_waiting, pgtq.waiting_settled, pgtq.clear_waiting, pgtq.health, '
                       'pgtq.offer_handoffs, pgtq.open_handoff, pgtq.close_handoff TO %I',
                       install_roles.worker);
        EXECUTE format('GRANT SELECT ON pgtq.queue_stats, pgtq.workers TO %I', install_roles.worker);
        EXECUTE format('GRANT EXECUTE ON PROCEDURE pgtq.tick_for TO %I', install_roles.worker);
        -- Periodic (cron) schedules: workers register those of their queues.
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.schedule, pgtq.unschedule TO %I', install_roles.worker);
        EXECUTE format('GRANT SELECT ON pgtq.schedules TO %I', install_roles.worker);
        granted := granted || install_roles.worker;
    END IF;
    IF install_roles.admin <> ALL (missing) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA pgtq TO %I', install_roles.admin);
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.push, pgtq.push_many, pgtq.pop, pgtq.complete, pgtq.complete_many, pgtq.fail, '
                       'pgtq.heartbeat, pgtq.release, pgtq.tick, pgtq.cancel, pgtq.retry, pgtq.retry_failed, '
                       'pgtq.purge, pgtq.prune, pgtq.delete_job, pgtq.configure, pgtq.register_worker, '
                       'pgtq.unregister_worker, pgtq.backoff, pgtq.metrics, pgtq.schedule, pgtq.unschedule, '
                       'pgtq.version, pgtq.abort, pgtq.heartbeat_many, pgtq.watch, pgtq.unwatch, pgtq.outcomes, '
                       'pgtq.pause, pgtq.resume, pgtq.configure_queue, pgtq.complete_many_and_pop, '
                       'pgtq.mark_waiting, pgtq.waiting_settled, pgtq.clear_waiting, pgtq.health, '
                       'pgtq.offer_handoffs, pgtq.open_handoff, pgtq.close_handoff TO %I',
                       install_roles.admin);
        EXECUTE format('GRANT EXECUTE ON PROCEDURE pgtq.tick_for TO %I', install_roles.admin);
        granted := granted || install_roles.admin;
    END IF;
    IF install_roles.observer <> ALL (missing) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA pgtq TO %I', install_roles.observer);
        EXECUTE format('GRANT EXECUTE ON FUNCTION pgtq.metrics, pgtq.health, pgtq.version TO %I', install_roles.observer);
        granted := granted || install_roles.observer;
    END IF;
    -- The views are the read side: the admin and the observer read them
    -- all, those of later versions included.
    FOR view_name IN
        SELECT c.relname FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'pgtq'::regnamespace AND c.relkind = 'v'
        ORDER BY c.relname
    LOOP
        FOREACH role_name IN ARRAY ARRAY[install_roles.admin, install_roles.observer] LOOP
            IF role_name <> ALL (missing) THEN
                EXECUTE format('GRANT SELECT ON pgtq.%I TO %I', view_name, role_name);
            END IF;
        END LOOP;
    END LOOP;

    IF cardinality(missing) > 0 THEN
        rerun := CASE
            WHEN (install_roles.producer, install_roles.worker, install_roles.admin, install_roles.observer)
                 = ('pgtq_producer', 'pgtq_worker', 'pgtq_admin', 'pgtq_observer')
            THEN 'SELECT pgtq.install_roles();'
            ELSE format('SELECT pgtq.install_roles(%L, %L, %L, %L);',
                        install_roles.producer, install_roles.worker, install_roles.admin, install_roles.observer)
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

-- Nothing is PUBLIC: functions are EXECUTE-able by PUBLIC unless revoked,
-- so revoke everything (procedures are not among "all functions"), then
-- grant the roles their rights. Revoking also covers helpers
-- (_checked_name, ...) and install_roles: only the owner (and the SECURITY
-- DEFINER functions, which run as the owner) call them.
REVOKE ALL ON SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
