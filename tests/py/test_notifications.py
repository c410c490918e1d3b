"""What pgtq announces on channel ``pgtq``: one notification per queue and
transaction that made jobs ready, none for jobs that are not ready yet,
none from a producer that set ``pgtq.notify`` to off, and (0.12.0) none
while no worker marks the queue waiting; and on ``pgtq_cancel``: the id of
a running job asked to cancel, nothing else. (``pgtq_finished``, for
waiters: tests/py/test_waiting.py.)

Each check ends with a sentinel notification sent after the calls under
test: notifications arrive in commit order, so everything before the
sentinel is all the calls sent (no waiting for silence)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from conftest import heard_until_sentinel, wait_until, waiting_marks


@contextmanager
def waiting_worker(dsn: str, *queues: str) -> Iterator[psycopg.Connection[Any]]:
    """A session that does what a waiting worker's listener does: LISTEN
    pgtq, then mark ``queues`` waiting (pgtq.mark_waiting, 0.12.0)."""
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN pgtq")
        if queues:
            listener.execute("SELECT pgtq.mark_waiting(%s)", [list(queues)])
        yield listener


def announced(
    listener: psycopg.Connection[Any], producer: psycopg.Connection[Any], channel: str = "pgtq"
) -> list[str]:
    """The payloads on ``channel`` up to the sentinel, which is sent now."""
    return [payload for _, payload in heard_until_sentinel(listener, producer, channel)]


def test_push_many_announces_its_queue_once(dsn: str) -> None:
    with (
        waiting_worker(dsn, "mail", "other") as listener,
        psycopg.connect(dsn, autocommit=True) as producer,
    ):
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
        waiting_worker(dsn, "mail") as listener,
        psycopg.connect(dsn, autocommit=True) as producer,
    ):
        with producer.transaction(force_rollback=True):
            producer.execute("SELECT pgtq.push_many('mail', 'send', ARRAY['[1]']::jsonb[])")
        assert announced(listener, producer) == []


def test_a_tick_that_enqueues_a_periodic_job_announces_its_queue(dsn: str) -> None:
    with (
        waiting_worker(dsn, "reports") as listener,
        psycopg.connect(dsn, autocommit=True) as ticker,
    ):
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
        waiting_worker(dsn, "quiet", "loud") as listener,
        psycopg.connect(dsn, autocommit=True) as producer,
    ):
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


def test_a_push_notifies_only_while_a_worker_marks_its_queue(dsn: str, db: psycopg.Connection[Any]) -> None:
    """0.12.0: with no waiting worker, nothing is sent (and the commits of
    pushing transactions do not take turns)."""
    with waiting_worker(dsn) as listener:
        db.execute("SELECT pgtq.push('mail', 'send')")
        assert announced(listener, db) == [], "nobody waits: no notification"

        with waiting_worker(dsn, "mail") as worker:
            assert waiting_marks(db, "mail") == 1
            db.execute("SELECT pgtq.push('mail', 'send')")
            db.execute("SELECT pgtq.push('other', 'send')")
            assert announced(listener, db) == ["mail"], (
                "a worker marks mail: its pushes notify, other's do not"
            )

            worker.execute("SELECT pgtq.clear_waiting(ARRAY['mail'])")
            assert waiting_marks(db, "mail") == 0
            db.execute("SELECT pgtq.push('mail', 'send')")
            assert announced(listener, db) == [], "a worker busy with mail cleared its mark"

            worker.execute("SELECT pgtq.mark_waiting(ARRAY['mail'])")
            db.execute("SELECT pgtq.push_many('mail', 'send', ARRAY['[1]', '[2]']::jsonb[])")
            assert announced(listener, db) == ["mail"], "marked again"
        # A closed session's locks go a moment after its client: soon.
        assert wait_until(lambda: waiting_marks(db, "mail") == 0), "the mark went with the worker's session"
        db.execute("SELECT pgtq.push('mail', 'send')")
        assert announced(listener, db) == []


def test_every_push_notifies_while_a_worker_that_does_not_mark_is_registered(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """Workers before 0.12.0 wait on LISTEN alone and register without
    marks_waiting: while one is registered, every push notifies, as before."""
    with waiting_worker(dsn) as listener:
        db.execute("SELECT pgtq.register_worker('old-worker', 'host', 1, ARRAY['mail'])")
        db.execute(
            "SELECT pgtq.register_worker('new-worker', 'host', 2, ARRAY['mail'], marks_waiting => true)"
        )
        db.execute("SELECT pgtq.push('mail', 'send')")
        assert announced(listener, db) == ["mail"], "an old worker is registered"
        db.execute("SELECT pgtq.unregister_worker('old-worker')")
        db.execute("SELECT pgtq.push('mail', 'send')")
        assert announced(listener, db) == [], "only workers that mark are left"
        db.execute("SELECT pgtq.register_worker('new-worker', 'host', 2, ARRAY['mail'])")
        db.execute("SELECT pgtq.push('mail', 'send')")
        assert announced(listener, db) == ["mail"], "registered again without marks_waiting: notified again"


def test_a_mark_settles_once_the_pushes_that_found_none_have_ended(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """A push that found no mark skipped its notification: the worker that
    marks meanwhile is told it is not settled until that push ended, and a
    pop after it settled sees the job."""
    with waiting_worker(dsn) as listener, psycopg.connect(dsn) as producer:
        producer.execute("SELECT pgtq.push('mail', 'send', '[\"in flight\"]')")  # open, not committed
        marked = listener.execute("SELECT pgtq.mark_waiting(ARRAY['mail'])").fetchone()
        assert marked == (False,), "a push that found no mark is still in flight"
        assert listener.execute("SELECT pgtq.waiting_settled(ARRAY['mail'])").fetchone() == (False,)
        assert db.execute("SELECT count(*) FROM pgtq.pop('mail')").fetchone() == (0,), "not committed yet"
        producer.commit()
        assert listener.execute("SELECT pgtq.waiting_settled(ARRAY['mail'])").fetchone() == (True,)
        popped = db.execute("SELECT args FROM pgtq.pop('mail')").fetchone()
        assert popped == (["in flight"],), "the pop after the settle sees the job that notified nobody"
        assert announced(listener, db) == [], "the push found no mark: it notified nobody"


def test_a_push_that_finds_a_worker_settling_notifies(dsn: str, db: psycopg.Connection[Any]) -> None:
    """While a worker holds the push gate (waiting_settled inside a
    transaction holds it until the end), a push notifies rather than wait."""
    with waiting_worker(dsn) as listener, psycopg.connect(dsn) as settling:
        assert settling.execute("SELECT pgtq.waiting_settled(ARRAY['mail'])").fetchone() == (True,)
        db.execute("SELECT pgtq.push('mail', 'send')")  # returns at once: the gate is only tried
        assert announced(listener, db) == ["mail"], "no mark, but a worker settling: notified"
        settling.commit()
        db.execute("SELECT pgtq.push('mail', 'send')")
        assert announced(listener, db) == []
