"""What pgtq announces on channel ``pgtq``: one notification per queue and
transaction that made jobs ready, none for jobs that are not ready yet,
none from a producer that set ``pgtq.notify`` to off; and on
``pgtq_cancel``: the id of a running job asked to cancel, nothing else.
(``pgtq_finished``, for waiters: tests/py/test_waiting.py.)

Each check ends with a sentinel notification sent after the calls under
test: notifications arrive in commit order, so everything before the
sentinel is all the calls sent (no waiting for silence)."""

from __future__ import annotations

from typing import Any

import psycopg

SENTINEL = "-- sentinel --"


def announced(
    listener: psycopg.Connection[Any], producer: psycopg.Connection[Any], channel: str = "pgtq"
) -> list[str]:
    """The payloads on ``channel`` up to the sentinel, which is sent now."""
    producer.execute("SELECT pg_notify(%s, %s)", [channel, SENTINEL])
    payloads = []
    for notify in listener.notifies(timeout=30):
        if notify.payload == SENTINEL:
            return payloads
        payloads.append(notify.payload)
    raise AssertionError(f"the sentinel did not arrive within 30 s (got {payloads})")


def test_push_many_announces_its_queue_once(dsn: str) -> None:
    with (
        psycopg.connect(dsn, autocommit=True) as listener,
        psycopg.connect(dsn, autocommit=True) as producer,
    ):
        listener.execute("LISTEN pgtq")
        producer.execute("SELECT pgtq.push_many('mail', 'send', ARRAY['[1]', '[2]', '[3]']::jsonb[])")
        assert announced(listener, producer) == ["mail"]

        producer.execute(
            "SELECT pgtq.push_many('mail', 'later', ARRAY['[1]', '[2]']::jsonb[],"
            " run_at => now() + interval '1 hour')"
        )
        assert announced(listener, producer) == [], "scheduled jobs wake nobody"

        with producer.transaction():
            producer.execute("SELECT pgtq.push_many('mail', 'send', ARRAY['[4]']::jsonb[])")
            producer.execute("SELECT pgtq.push_many('other', 'send', ARRAY['[5]']::jsonb[])")
            producer.execute("SELECT pgtq.push('mail', 'send')")
        assert sorted(announced(listener, producer)) == ["mail", "other"], "one per queue and transaction"


def test_a_rolled_back_push_announces_nothing(dsn: str) -> None:
    with (
        psycopg.connect(dsn, autocommit=True) as listener,
        psycopg.connect(dsn, autocommit=True) as producer,
    ):
        listener.execute("LISTEN pgtq")
        with producer.transaction(force_rollback=True):
            producer.execute("SELECT pgtq.push_many('mail', 'send', ARRAY['[1]']::jsonb[])")
        assert announced(listener, producer) == []


def test_a_tick_that_enqueues_a_periodic_job_announces_its_queue(dsn: str) -> None:
    with (
        psycopg.connect(dsn, autocommit=True) as listener,
        psycopg.connect(dsn, autocommit=True) as ticker,
    ):
        listener.execute("LISTEN pgtq")
        ticker.execute(
            "SELECT pgtq.schedule('beat', '* * * * *', 'reports', 'beat', as_of => '2030-01-01 00:00+00')"
        )
        assert announced(listener, ticker) == [], "scheduling wakes nobody"
        ticker.execute("SELECT pgtq.tick(as_of => '2030-01-01 00:01+00')")
        assert announced(listener, ticker) == ["reports"], "the periodic job is pushed, so announced"


def test_only_a_cancel_request_for_a_running_job_notifies_pgtq_cancel(dsn: str) -> None:
    with (
        psycopg.connect(dsn, autocommit=True) as listener,
        psycopg.connect(dsn, autocommit=True) as admin,
    ):
        listener.execute("LISTEN pgtq_cancel")
        pending = admin.execute("SELECT pgtq.push('work', 'task')").fetchone()
        running = admin.execute("SELECT pgtq.push('work', 'task')").fetchone()
        assert pending is not None and running is not None
        admin.execute("SELECT pgtq.cancel(%s)", [pending[0]])
        claimed = admin.execute("SELECT id, lease FROM pgtq.pop('work', 'w')").fetchone()
        assert claimed is not None and claimed[0] == running[0]
        assert announced(listener, admin, "pgtq_cancel") == [], "cancelling a pending job tells no worker"

        admin.execute("SELECT pgtq.cancel(%s)", [running[0]])
        assert announced(listener, admin, "pgtq_cancel") == [str(running[0])], "the running job's id"

        admin.execute("SELECT pgtq.complete(%s, %s)", claimed)
        admin.execute("SELECT pgtq.cancel(%s)", [running[0]])
        assert announced(listener, admin, "pgtq_cancel") == [], "nor does anything once it ended"


def test_a_producer_that_set_pgtq_notify_off_announces_nothing(dsn: str) -> None:
    with (
        psycopg.connect(dsn, autocommit=True) as listener,
        psycopg.connect(dsn, autocommit=True) as producer,
    ):
        listener.execute("LISTEN pgtq")
        with producer.transaction():
            producer.execute("SET LOCAL pgtq.notify = 'off'")
            producer.execute("SELECT pgtq.push('quiet', 'send')")
        producer.execute("SELECT pgtq.push('loud', 'send')")
        assert announced(listener, producer) == ["loud"], "SET LOCAL silences its own transaction only"

        producer.execute("SET pgtq.notify = 'off'")
        producer.execute("SELECT pgtq.push('quiet', 'send')")
        producer.execute("SELECT pgtq.push_many('quiet', 'send', ARRAY['[1]', '[2]']::jsonb[])")
        assert announced(listener, producer) == [], "SET silences the session"
        producer.execute("RESET pgtq.notify")
        producer.execute("SELECT pgtq.push('quiet', 'send')")
        assert announced(listener, producer) == ["quiet"], "RESET brings the wake-up back"
        assert producer.execute("SELECT count(*) FROM pgtq.jobs WHERE queue = 'quiet'").fetchone() == (5,)
