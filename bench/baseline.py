"""The hand-written SQL queue: the ceiling every pgtq figure is compared to.

A minimal jobs table in its own schema ``bench_base``, claimed with
``FOR UPDATE SKIP LOCKED`` in a MATERIALIZED step, with a literal batch size
(no generic-plan trap), one partial index on ready rows in claim order
(priority, then id, as pgtq), completion of a
whole batch in one statement, and a NOTIFY only where a scenario needs a
wake-up. It keeps finished rows (as pgtq does) until pruned. No validation,
no leases, no retries: the best a PostgreSQL queue can do here.
"""

from __future__ import annotations

from typing import Final

SCHEMA_DDL: Final = """
DROP SCHEMA IF EXISTS bench_base CASCADE;
CREATE SCHEMA bench_base;
CREATE TABLE bench_base.job (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue        text NOT NULL,
    task         text NOT NULL,
    args         jsonb NOT NULL,
    state        text NOT NULL DEFAULT 'ready',
    priority     integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
) WITH (fillfactor = 85);
ALTER TABLE bench_base.job SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
-- The same shape as pgtq's ready index and claim order (priority, then
-- push order): the only index that gives this order, so the planner cannot
-- walk the primary key through every finished row instead.
CREATE INDEX job_ready_idx ON bench_base.job (queue, priority DESC, id) WHERE state = 'ready';
CREATE INDEX job_finished_idx ON bench_base.job (finished_at) WHERE state = 'done';
"""

CHANNEL: Final = "bench_base"

INSERT: Final = "INSERT INTO bench_base.job (queue, task, args) VALUES (%s, %s, %s::jsonb)"

INSERT_NOTIFY: Final = (
    "WITH j AS (INSERT INTO bench_base.job (queue, task, args) VALUES (%s, %s, %s::jsonb) RETURNING id)"
    " SELECT pg_notify('bench_base', %s) FROM j"
)

INSERT_UNNEST: Final = (
    "INSERT INTO bench_base.job (queue, task, args) SELECT %s, %s, a FROM unnest(%s::jsonb[]) AS a"
)

COPY: Final = "COPY bench_base.job (queue, task, args) FROM STDIN"

INSERT_SERIES_NOTIFY: Final = (
    "WITH j AS (INSERT INTO bench_base.job (queue, task, args)"
    " SELECT %s, %s, jsonb_build_array(s) FROM generate_series(%s::bigint, %s::bigint) AS s RETURNING 1)"
    " SELECT pg_notify('bench_base', %s) FROM (SELECT count(*) FROM j) AS c"
)


def claim_sql(batch: int) -> str:
    """The claim of up to ``batch`` jobs, with the batch size as a literal."""
    return (
        "WITH c AS MATERIALIZED ("
        " SELECT id FROM bench_base.job WHERE queue = %s AND state = 'ready'"
        f" ORDER BY priority DESC, id LIMIT {int(batch)} FOR UPDATE SKIP LOCKED)"
        " UPDATE bench_base.job AS j SET state = 'running', started_at = now()"
        " FROM c WHERE j.id = c.id RETURNING j.id, j.task, j.args"
    )


# The ids in binary (%b), as pgtq's completions are sent (bench/pgtq_sql.py).
COMPLETE_MANY: Final = (
    "UPDATE bench_base.job SET state = 'done', finished_at = now() WHERE id = ANY(%b::bigint[])"
)

PRUNE: Final = (
    "DELETE FROM bench_base.job WHERE id IN (SELECT id FROM bench_base.job"
    " WHERE state = 'done' AND finished_at < now() - %s::interval LIMIT 10000)"
)

RESET: Final = "TRUNCATE bench_base.job RESTART IDENTITY"

BACKLOG: Final = "SELECT count(*) FROM bench_base.job WHERE state IN ('ready', 'running')"

DONE_SEQS: Final = "SELECT (args->>0)::bigint FROM bench_base.job WHERE state = 'done'"
