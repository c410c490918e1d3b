-- pgtq 0.27.0 -> 0.28.0. Hand-written; never edited once released. Runs as
-- the update script of `ALTER EXTENSION pgtq UPDATE` and from the alembic
-- revision pgtq_0_28_0. Every definition here is the one of sql/pgtq.sql at
-- 0.28.0, to the letter (a test compares the catalogs); the privileges
-- come last.
--
-- Every tick of a queue by name wrote a new generation of the queue's
-- ready mark, whether or not anything had changed. Workers tick each of
-- their queues every second, so idle workers kept the server writing:
-- each tick took a transaction id, wrote about 430 bytes of WAL and
-- flushed it at commit, for every worker and every queue it serves (four
-- idle workers of one queue: 1,750 bytes of WAL a second, 150 MB a day,
-- to archive and replicate). While no job is pushed, the mark of an idle
-- queue that says so already now stays as it is when the tick finds
-- nothing to do (_mark_stays_idle), and such a tick writes nothing: once
-- a minute the looks from the first entry still write it. The tick's three looks for
-- the first ready job and its look for a running job are functions of
-- their own (_first_ready, _runs_jobs), which both use.
--
-- A queue with a ready job with a lock key had its mark dropped at every
-- tick (pop takes the keyed path and reads none), and with it the
-- rescue's floor: beside a held snapshot each tick's rescue of such a
-- queue looked from its first entry, past every job that ended since the
-- snapshot was taken. Its mark now stays, seeking nothing, and keeps the
-- floor.

CREATE OR REPLACE FUNCTION pgtq.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgtq, pg_temp
AS $$ SELECT '0.28.0'::text $$;

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
CREATE OR REPLACE FUNCTION pgtq._first_ready(queue text, mark_priority integer, look_from bigint,
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
CREATE OR REPLACE FUNCTION pgtq._runs_jobs(queue text, lease_from timestamptz)
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
CREATE OR REPLACE FUNCTION pgtq._mark_stays_idle(queue text, rescued_to timestamptz, rescued_all boolean, keep_idle boolean)
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
-- Privileges: as at the end of a fresh install (new objects are reachable
-- by PUBLIC until revoked), then the roles' rights again.
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtq FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA pgtq FROM PUBLIC;
SELECT pgtq.install_roles();
