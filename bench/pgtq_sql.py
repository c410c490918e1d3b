"""The SQL the benchmark sends to pgtq: public functions for the measured
paths, the public ``pgtq.jobs`` view to check results; the private table
only where no public object can stand in (TRUNCATE between runs, VACUUM,
table sizes). Arrays go in binary (``%b``), as pgtq's own client sends
them (``pgtq/_db/statements.py``) and as the ceiling's are sent
(``bench/baseline.py``): in text, psycopg quotes each element in Python,
and the 100 ids and leases of a batch cost the client more than the
completion cost the server (until 2026-12-07 the SQL-only drain sent them
so, and measured the driver's text path against a ceiling sending ids
alone)."""

from __future__ import annotations

from typing import Final

PUSH: Final = "SELECT pgtq.push(queue => %s::text, task => %s::text, args => %s::jsonb)"

# Bulk enqueue through pgtq's own function (one statement per 1,000 jobs).
PUSH_MANY: Final = (
    "SELECT count(*) FROM pgtq.push_many(queue => %s::text, task => %s::text, args => %s::jsonb[])"
)

# The one-round-trip form without push_many: push once per row in one statement.
PUSH_UNNEST: Final = (
    "SELECT count(pgtq.push(queue => %s::text, task => %s::text, args => a)) FROM unnest(%s::jsonb[]) AS a"
)

PUSH_SERIES: Final = (
    "SELECT count(pgtq.push(queue => %s::text, task => %s::text, args => jsonb_build_array(s)))"
    " FROM generate_series(%s::bigint, %s::bigint) AS s"
)

POP: Final = (
    "SELECT id, lease FROM pgtq.pop(queue => %s::text, worker => %s::text, n => %s::integer,"
    " lease => '5 minutes'::interval)"
)

COMPLETE: Final = "SELECT pgtq.complete(id => %s::bigint, lease => %s::uuid)"

# Completion of a whole batch in one statement through the public function.
COMPLETE_UNNEST: Final = (
    "SELECT count(*) FILTER (WHERE pgtq.complete(id => c.id, lease => c.lease))"
    " FROM unnest(%b::bigint[], %b::uuid[]) AS c(id, lease)"
)

# pgtq's own batch completion (one statement per batch).
COMPLETE_MANY: Final = (
    "SELECT count(*) FROM pgtq.complete_many(ids => %b::bigint[], leases => %b::uuid[]) AS c"
)

# A batch's completion and the next batch's claim in one statement and one
# transaction (schema 0.10.0): the claimed jobs' ids and leases, one row each.
COMPLETE_MANY_AND_POP: Final = (
    "SELECT p.id, p.lease FROM pgtq.complete_many_and_pop(queue => %s::text, ids => %b::bigint[],"
    " leases => %b::uuid[], worker => %s::text, n => %s::integer, lease => '5 minutes'::interval) AS r"
    " CROSS JOIN LATERAL unnest(r.claimed) AS p"
)

PRUNE: Final = "SELECT pgtq.prune(older_than => %s::interval)"

RESET: Final = "TRUNCATE pgtq._job"

BACKLOG: Final = "SELECT count(*) FROM pgtq.jobs WHERE queue = %s AND state IN ('ready', 'running')"

DONE_SEQS: Final = "SELECT (args->>0)::bigint, attempt FROM pgtq.jobs WHERE queue = %s AND state = 'done'"
