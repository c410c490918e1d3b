-- pgtq 0.26.0 -> 0.27.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_27_0. Every definition here is the one of sql/pgtq.sql at
-- 0.27.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- A rate-limited queue counted its starts in two arrays of its _queue
-- row, rewritten by every pop that started jobs. Beside a snapshot held
-- open (a long report, pg_dump, a replica with hot_standby_feedback)
-- every version of the row stays, and every pop of the queue read
-- through all of them, three times: 3.6 ms a pop after 20,000 pops, and
-- growing for as long as the snapshot stays. The starts are now rows of
-- _rate_start, one per bucket of the window, and pops only lock the
-- _queue row. The buckets in the window move over into it.
--
-- Each tick's rescue looked for running jobs whose lease ran out from the
-- queue's first entry of job_running_idx. Beside a held snapshot the
-- entries of every job that ended since it was taken stay there, and
-- once their leases were past every tick of every worker stepped over
-- all of them: 30 ms a tick after 100,000 jobs, growing for as long as
-- the snapshot stays. The rescue now looks from a floor kept in the
-- queue's mark (rescued_to), from the first entry once a minute; tick()
-- with no queue finds the queues that run jobs from their latest lease.
-- An idle queue keeps its mark (and so its floor) while ticks of it by
-- name come; tick() with no queue drops it after ten idle minutes. The
-- pops of a max_running queue counted the slots of its running jobs from
-- the first entry too, past every job that ended beside the snapshot
-- (8.7 ms a pop after 40,000 jobs); they read from the same floor.
--
-- retry_failed called retry() once per failed job, each in a
-- subtransaction of its own (236 us a job; past 64 in one transaction,
-- every other session's snapshot checks grow slower). It is one
-- statement now, and it no longer stops at a failed job whose job_key
-- a pending job holds: that job stays failed (the pending one does its
-- work), and of failed jobs that share a key only the newest is retried.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.27.0'::text $$;

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

INSERT INTO pgtq._rate_start (queue, slot, jobs)
SELECT f.queue, w.slot, sum(w.jobs)::integer
FROM pgtq._queue AS f,
     unnest(f.rate_slots, f.rate_starts) AS w (slot, jobs)
WHERE f.rate_limit IS NOT NULL
GROUP BY f.queue, w.slot;

-- Every known queue: one that is paused or has a limit (pause,
-- configure_queue), and one that has live jobs (scheduled, ready or
-- running). Its pause and its limits (NULL: none), and what counts
-- against them now: `running`, its running jobs whose lease is live (what
-- max_running bounds: a job whose lease ran out no longer counts, even
-- before tick rescues it), and `rate_used`, the jobs started in its rate
-- window (what rate_limit bounds; NULL without a rate limit: see
-- _rate_slot). `ready` and `scheduled` are its backlog. One pass over
-- the live jobs (their partial indexes), as pgtq.metrics() makes.
CREATE OR REPLACE VIEW pgtq.queues AS
WITH live AS (
    SELECT l.queue,
           count(*) FILTER (WHERE l.state = 'scheduled') AS scheduled,
           count(*) FILTER (WHERE l.state = 'ready') AS ready,
           count(*) FILTER (WHERE l.state = 'running' AND l.lease_expires_at > now()) AS running
    FROM (SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j WHERE j.state = 'scheduled'
          UNION ALL
          SELECT j.queue, j.state, j.lease_expires_at FROM pgtq._job AS j WHERE j.state = 'ready'
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

ALTER TABLE pgtq._queue
    DROP CONSTRAINT queue_rate_window_ck,
    DROP COLUMN rate_slots,
    DROP COLUMN rate_starts;

ALTER TABLE pgtq._ready_mark
    ADD COLUMN rescued_to timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN rescued_all_at timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN idle_since timestamptz;

DROP FUNCTION pgtq._raise_mark(text, bigint, bigint);

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
CREATE OR REPLACE FUNCTION pgtq._room_of(flow pgtq._queue, n integer, as_of timestamptz)
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
CREATE OR REPLACE FUNCTION pgtq._count_starts(queue text, jobs integer, as_of timestamptz)
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
CREATE OR REPLACE FUNCTION pgtq._rescue_floor(queue text, as_of timestamptz, full_every interval)
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
CREATE OR REPLACE FUNCTION pgtq._write_off_lapsed(queue text, as_of timestamptz)
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
CREATE OR REPLACE FUNCTION pgtq._filled_slots(queue text, capacity integer, as_of timestamptz,
                                   OUT filled integer[], OUT live bigint)
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
               count(*) FILTER (WHERE r.lease_expires_at <= _filled_slots.as_of AND r.slot IS DISTINCT FROM 0)
        INTO filled, live, lapsed
        FROM pgtq._job AS r
        WHERE r.queue = _filled_slots.queue AND r.state = 'running' AND r.lease_expires_at >= read_from;
        EXIT WHEN lapsed = 0 OR look = 2;
        PERFORM pgtq._write_off_lapsed(_filled_slots.queue, _filled_slots.as_of);
    END LOOP;
END
$$;

-- Guarantees: the queues that have running jobs, each once, in the order
-- of their names. Reads job_running_idx with one probe per such queue (a
-- loose index scan), not one entry per running job, so tick's rescue of
-- every queue costs about as much per queue as a tick of that queue
-- alone. Each probe reads the index backwards, from a queue's latest
-- lease (0.27.0): beside a snapshot held open the entries of the jobs that
-- ended since it was taken stay, with the earliest leases, and a probe
-- from the earliest stepped over all of them.
CREATE OR REPLACE FUNCTION pgtq._running_queues()
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$
    WITH RECURSIVE running (queue) AS (
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
    WHERE running.queue IS NOT NULL
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
--   * (0.21.0) neither does a queue with ready jobs with a lock key: pop
--     takes the keyed path for it (_choose_keyed) and reads no mark, and
--     the look for its first ready job without a key would step over
--     every ready job with one (23 ms a tick at 100,000). Its mark is
--     dropped, and made anew, seeking nothing at first, once the queue has
--     no ready job with a key.
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
-- Never waits: a mark another tick holds is left to that tick.
CREATE OR REPLACE FUNCTION pgtq._raise_mark(queue text, settle_below bigint, settle_seq bigint,
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
    settled        bigint;   -- every push that took a lower id has ended
    waiting_id     bigint;   -- the pending pair: settled once no transaction older than waiting_xid runs
    waiting_seq    bigint;
    waiting_xid    xid8;
    read_from      bigint;   -- the rows of _ready_mark_low that remain to read start here
    idle_since     timestamptz;  -- since when the queue has had no ready and no running job
BEGIN
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
    IF EXISTS (SELECT 1 FROM pgtq._job AS k
               WHERE k.queue = _raise_mark.queue AND k.state = 'ready' AND k.lock_key IS NOT NULL) THEN
        DELETE FROM pgtq._ready_mark_low AS l WHERE l.queue = _raise_mark.queue AND l.seq >= read_from;
        DELETE FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue AND m.generation = mark.generation;
        RETURN;  -- pop takes the keyed path and reads no mark
    END IF;
    unused_id := pgtq._unused_job_id();
    -- Taken before the look, so the look sees every push it says ended.
    oldest_xid := pg_snapshot_xmin(pg_current_snapshot());
    WITH gone AS (
        DELETE FROM pgtq._ready_mark_low AS l WHERE l.queue = _raise_mark.queue AND l.seq >= read_from
        RETURNING l.priority, l.id
    )
    SELECT min(gone.id) FILTER (WHERE gone.priority = mark.priority) INTO lows_id FROM gone;
    -- Above the mark's priority, then at it from the floor, then below it;
    -- a new mark looks at priority 0 from the first entry.
    mark_priority := coalesce(mark.priority, 0);
    SELECT r.priority, r.id INTO first_priority, first_id
    FROM pgtq._job AS r
    WHERE r.queue = _raise_mark.queue AND r.state = 'ready' AND r.lock_key IS NULL
      AND r.priority > mark_priority
    ORDER BY r.priority DESC, r.id
    LIMIT 1;
    IF first_id IS NULL THEN
        IF mark.looked_all_at > clock_timestamp() - interval '1 minute' THEN
            look_from := least(mark.floor_id, lows_id);
        END IF;
        -- The priority as a closed range, as in pop: job_ready_idx starts
        -- at the floor.
        SELECT r.priority, r.id INTO first_priority, first_id
        FROM pgtq._job AS r
        WHERE r.queue = _raise_mark.queue AND r.state = 'ready' AND r.lock_key IS NULL
          AND r.priority <= mark_priority AND r.priority >= mark_priority
          AND r.id >= look_from
        ORDER BY r.priority DESC, r.id
        LIMIT 1;
    END IF;
    IF first_id IS NULL THEN
        SELECT r.priority, r.id INTO first_priority, first_id
        FROM pgtq._job AS r
        WHERE r.queue = _raise_mark.queue AND r.state = 'ready' AND r.lock_key IS NULL
          AND r.priority < mark_priority
        ORDER BY r.priority DESC, r.id
        LIMIT 1;
    END IF;
    IF first_id IS NULL THEN
        -- No running job either (below the rescue's floor the tick left
        -- none; ordered, so that job_running_idx serves it from the
        -- latest lease): the queue is idle.
        IF (SELECT b.lease_expires_at FROM pgtq._job AS b
            WHERE b.queue = _raise_mark.queue AND b.state = 'running'
              AND b.lease_expires_at >= coalesce(_raise_mark.rescued_to, '-infinity')
            ORDER BY b.lease_expires_at DESC
            LIMIT 1) IS NULL THEN
            idle_since := coalesce(mark.idle_since, clock_timestamp());
            IF NOT _raise_mark.keep_idle
               AND (mark.generation IS NULL OR idle_since <= clock_timestamp() - interval '10 minutes') THEN
                DELETE FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue AND m.generation = mark.generation;
                RETURN;
            END IF;
        END IF;
        first_priority := mark_priority;
        first_id := unused_id;
    END IF;
    first_id := least(first_id, unused_id);

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
            CASE WHEN look_from = 0 THEN clock_timestamp() ELSE mark.looked_all_at END, read_from, waiting_seq,
            coalesce(_raise_mark.rescued_to, mark.rescued_to, '-infinity'),
            CASE WHEN _raise_mark.rescued_to IS NOT NULL AND _raise_mark.rescued_all THEN _raise_mark.rescued_to
                 ELSE coalesce(mark.rescued_all_at, '-infinity') END,
            idle_since);
    DELETE FROM pgtq._ready_mark AS m WHERE m.queue = _raise_mark.queue AND m.generation = mark.generation;
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
--      keeps).
-- Returns how many jobs it moved or enqueued. Rows are taken with FOR
-- UPDATE SKIP LOCKED and their state is rechecked, so any number of
-- sessions may tick at once (schedulers, workers, pg_cron): no job is
-- moved twice, no occurrence enqueued twice, no minute sampled twice.
-- Waiters of the jobs that finished are told; queues that got ready jobs
-- are announced. A bad queue name raises PT003, a NULL or infinite as_of
-- PT004.
CREATE OR REPLACE FUNCTION pgtq.tick(queue text DEFAULT NULL,
                          as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
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
        UPDATE pgtq._job AS j
        SET state = 'ready'
        FROM due
        WHERE j.id = due.id
        RETURNING j.queue, j.priority, j.id, j.lock_key
    ), lowered AS (
        SELECT pgtq._lower_marks(array_agg(moved.queue), array_agg(moved.priority), array_agg(moved.id),
                                 array_agg(moved.lock_key))
        FROM moved
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
    -- looked for queue by queue, ordered so that job_ready_idx serves it
    -- (0.24.0: as an EXISTS, the generic plan PL/pgSQL keeps from a
    -- session's sixth tick on read every ready job of the table, grouped
    -- by queue, before it looked at _queue, even with no limited queue at
    -- all: 30 to 50 ms a tick at 100,000 to 180,000 ready jobs).
    PERFORM pgtq._announce(f.queue)
    FROM pgtq._queue AS f
    WHERE f.queue = coalesce(tick.queue, f.queue)
      AND (f.max_running IS NOT NULL OR f.rate_limit IS NOT NULL)
      AND pgtq._room_of(f, 1, tick.as_of) > 0
      AND (SELECT r.id FROM pgtq._job AS r
           WHERE r.queue = f.queue AND r.state = 'ready'
           ORDER BY r.priority DESC, r.id
           LIMIT 1) IS NOT NULL;

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
CREATE OR REPLACE FUNCTION pgtq._restart(ids bigint[], as_of timestamptz)
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
          AND j.state IN ('failed', 'cancelled')
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
CREATE OR REPLACE FUNCTION pgtq.retry(id bigint, as_of timestamptz DEFAULT now())
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
-- nothing.
CREATE OR REPLACE FUNCTION pgtq.retry_failed(queue text DEFAULT NULL,
                                  task text DEFAULT NULL,
                                  as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pgtq, pg_temp
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
                      ORDER BY f.id
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
-- commit (those holding the queue's row finish first), and announces the
-- queue when something changed (there may be room now). A bad queue name
-- raises PT003, a bad limit or a NULL or infinite as_of PT004, changing
-- nothing. Meant for pgtq_admin.
CREATE OR REPLACE FUNCTION pgtq.configure_queue(queue text,
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
                updated_at = configure_queue.as_of
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
            updated_at = excluded.updated_at
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

-- ---------------------------------------------------------------------------
-- Privileges: as at the end of a fresh install (new objects are reachable
-- by PUBLIC until revoked), then the roles' rights again.
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
