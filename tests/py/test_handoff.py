"""Hand-off (schema 0.16.0): a push hands a job due at once straight to an
idle worker's open offer, claimed for that worker, and the worker hears the
claim at commit on its own channel, with no claim of its own. First with
plain sessions doing what a worker's listener does (offer_handoffs,
mark_waiting, open_handoff), then with the real worker.

Each check on a channel ends with a sentinel notification sent after the
calls under test: notifications arrive in commit order, so whatever came
before the sentinel is everything those calls sent."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from conftest import heard_until_sentinel, scalar, wait_until

import pgtq
from pgtq._db import gateway
from pgtq.worker import Worker, WorkerSettings, _listener


@dataclass
class Offer:
    """A session offering hand-offs for its queues, as a listener does."""

    conn: psycopg.Connection[Any]
    channel: str

    def heard(self, producer: psycopg.Connection[Any]) -> list[tuple[str, str]]:
        """(channel, payload) of each notification up to the sentinel, sent now."""
        return heard_until_sentinel(self.conn, producer, self.channel)


@contextmanager
def offering(dsn: str, *queues: str, worker: str = "w1", lease: str = "30 seconds") -> Iterator[Offer]:
    """A session that LISTENs pgtq, marks ``queues`` waiting and opens a
    hand-off offer for them (what an idle worker's listener does)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("LISTEN pgtq")
        conn.execute("SELECT pgtq.mark_waiting(%s)", [list(queues)])
        channel = scalar(
            conn, "SELECT pgtq.offer_handoffs(%s, %s, %s::interval)", [worker, list(queues), lease]
        )
        assert scalar(conn, "SELECT pgtq.open_handoff()") is True
        yield Offer(conn, channel)


def job(db: psycopg.Connection[Any], job_id: int) -> dict[str, Any]:
    row = db.execute(
        "SELECT state::text, worker, attempt, lease, lease_expires_at, started_at = created_at"
        " FROM pgtq._job WHERE id = %s",
        [job_id],
    ).fetchone()
    assert row is not None, f"job {job_id} exists"
    return dict(zip(("state", "worker", "attempt", "lease", "expires", "started_at_push"), row, strict=True))


def test_a_push_hands_its_job_to_an_open_offer(dsn: str, db: psycopg.Connection[Any]) -> None:
    with offering(dsn, "mail", worker="w1") as offer, psycopg.connect(dsn, autocommit=True) as producer:
        assert offer.channel.startswith("pgtq_handoff_") and len(offer.channel) == 45
        job_id = scalar(
            producer, "SELECT pgtq.push('mail', 'send', '[1, \"a\"]', '{\"k\": 2}', priority => 3)"
        )
        row = job(db, job_id)
        assert row["state"] == "running" and row["worker"] == "w1" and row["attempt"] == 1
        assert row["started_at_push"], "claimed in the pushing transaction"
        heard = offer.heard(producer)
        assert [channel for channel, _ in heard] == [offer.channel], "the claim alone, nothing on pgtq"
        claim = json.loads(heard[0][1])
        assert claim == {
            "id": job_id,
            "queue": "mail",
            "task": "send",
            "args": [1, "a"],
            "kwargs": {"k": 2},
            "priority": 3,
            "attempt": 1,
            "max_attempts": 25,
            "lease": str(row["lease"]),
            "lease_expires_at": claim["lease_expires_at"],
        }
        task = gateway.handed_task(heard[0][1])
        assert (task.id, task.name, task.args, task.kwargs, task.lease) == (
            job_id,
            "send",
            (1, "a"),
            {"k": 2},
            row["lease"],
        )
        assert task.lease_expires_at == row["expires"]
        assert scalar(db, "SELECT pgtq.complete(%s, %s)", [job_id, row["lease"]]) is True, (
            "the claim's lease completes the job"
        )


def test_a_rolled_back_push_hands_nothing(dsn: str, db: psycopg.Connection[Any]) -> None:
    with offering(dsn, "mail") as offer, psycopg.connect(dsn) as producer:
        producer.execute("SELECT pgtq.push('mail', 'send')")
        producer.rollback()
        producer.autocommit = True
        assert offer.heard(producer) == []
        assert scalar(db, "SELECT count(*) FROM pgtq._job") == 0


def test_a_closed_offer_gets_nothing_and_the_push_is_announced(dsn: str, db: psycopg.Connection[Any]) -> None:
    with offering(dsn, "mail") as offer, psycopg.connect(dsn, autocommit=True) as producer:
        assert scalar(offer.conn, "SELECT pgtq.close_handoff()") is True, "it was open"
        assert scalar(offer.conn, "SELECT pgtq.close_handoff()") is False, "closed already"
        job_id = scalar(producer, "SELECT pgtq.push('mail', 'send')")
        assert job(db, job_id)["state"] == "ready"
        assert offer.heard(producer) == [("pgtq", "mail")]
        assert scalar(offer.conn, "SELECT pgtq.open_handoff()") is True
        assert job(db, scalar(producer, "SELECT pgtq.push('mail', 'send')"))["state"] == "running", (
            "open again"
        )


@pytest.mark.parametrize(
    ("setup", "push"),
    [
        ("SELECT pgtq.pause('mail')", "SELECT pgtq.push('mail', 'send')"),
        ("SELECT pgtq.configure_queue('mail', max_running => 5)", "SELECT pgtq.push('mail', 'send')"),
        ("SELECT 1", "SELECT pgtq.push('mail', 'send', lock_key => 'k')"),
        ("SELECT 1", "SELECT pgtq.push('mail', 'send', run_at => now() + interval '1 hour')"),
        ("SELECT 1", "SELECT pgtq.push('mail', 'send', as_of => now() - interval '1 minute')"),
        ("SELECT 1", "SELECT pgtq.push('mail', 'send', args => jsonb_build_array(repeat('x', 7000)))"),
        ("SELECT 1", "SET pgtq.notify = off; SELECT pgtq.push('mail', 'send')"),
        ("SELECT 1", "SELECT pgtq.push('other', 'send')"),
    ],
    ids=[
        "paused",
        "max_running",
        "lock_key",
        "scheduled",
        "as_of_in_the_past",
        "large_payload",
        "notify_off",
        "queue_not_offered",
    ],
)
def test_jobs_that_are_not_handed_off(dsn: str, db: psycopg.Connection[Any], setup: str, push: str) -> None:
    db.execute(setup)
    with offering(dsn, "mail") as offer, psycopg.connect(dsn, autocommit=True) as producer:
        producer.execute(push)
        states = [row[0] for row in db.execute("SELECT state::text FROM pgtq._job")]
        assert states in (["ready"], ["scheduled"]), f"inserted as pop would find it, not handed: {states}"
        assert [channel for channel, _ in offer.heard(producer)] in ([], ["pgtq"]), "no claim notified"


def test_a_transaction_hands_at_most_one_job(dsn: str, db: psycopg.Connection[Any]) -> None:
    with offering(dsn, "mail") as offer, psycopg.connect(dsn, autocommit=True) as producer:
        producer.execute(
            "SELECT count(pgtq.push('mail', 'send', jsonb_build_array(s))) FROM generate_series(1, 50) AS s"
        )
        states = dict(db.execute("SELECT state::text, count(*) FROM pgtq._job GROUP BY 1").fetchall())
        assert states == {"running": 1, "ready": 49}, "the first push handed, the others ready"
        heard = offer.heard(producer)
        assert sorted(channel for channel, _ in heard) == sorted([offer.channel, "pgtq"]), (
            "one claim, and one announcement for the rest"
        )


def keyed_jobs_with_the_first_running(db: psycopg.Connection[Any], count: int) -> tuple[list[int], uuid.UUID]:
    """``count`` jobs of queue mail, of lock keys key-0, key-1, ... in turn
    (``count // 2`` keys), with the first of each key running for worker w0;
    returns the ids in push order and the lease of the running ones."""
    ids = [
        scalar(
            db,
            "SELECT pgtq.push('mail', 'send', jsonb_build_array(%s), lock_key => %s)",
            [n, f"key-{n % (count // 2)}"],
        )
        for n in range(count)
    ]
    claimed = db.execute("SELECT id, lease FROM pgtq.pop('mail', 'w0', %s)", [count]).fetchall()
    assert sorted(row[0] for row in claimed) == ids[: count // 2], "the first job of each key runs"
    return ids, claimed[0][1]


def test_the_end_of_a_keyed_job_hands_the_keys_next_job_to_an_open_offer(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """Schema 0.31.0: the end of a keyed job hands the key's next job to an
    idle worker's open offer, claimed for it, instead of announcing the
    queue to every idle worker (each of which popped, and walked the
    queue's backlog, for one of them to take it)."""
    (first, second), lease = keyed_jobs_with_the_first_running(db, 2)
    with offering(dsn, "mail", worker="w1") as offer, psycopg.connect(dsn, autocommit=True) as ender:
        assert scalar(ender, "SELECT pgtq.complete(%s, %s)", [first, lease]) is True
        row = job(db, second)
        assert (row["state"], row["worker"], row["attempt"]) == ("running", "w1", 1), "claimed for the offer"
        heard = offer.heard(ender)
        assert [channel for channel, _ in heard] == [offer.channel], "the claim alone, nothing on pgtq"
        claim = json.loads(heard[0][1])
        assert (claim["id"], claim["attempt"], claim["lease"]) == (second, 1, str(row["lease"]))
        assert scalar(db, "SELECT pgtq.complete(%s, %s)", [second, row["lease"]]) is True, (
            "the claim's lease completes the job"
        )


@pytest.mark.parametrize("limited", [False, True], ids=["two keys freed at once", "a queue with a limit"])
def test_ends_of_keyed_jobs_that_hand_nothing_announce_the_queue(
    dsn: str, db: psycopg.Connection[Any], limited: bool
) -> None:
    """A transaction hands at most one job: a second key freed in it is
    announced. A queue with a pause or a limit hands nothing (pop alone
    keeps them): the freed key is announced."""
    ids, _ = keyed_jobs_with_the_first_running(db, 4)
    if limited:
        db.execute("SELECT pgtq.configure_queue('mail', max_running => 10)")
    leases = [
        row[0] for row in db.execute("SELECT lease FROM pgtq._job WHERE id = ANY(%s) ORDER BY id", [ids[:2]])
    ]
    with offering(dsn, "mail", worker="w1") as offer, psycopg.connect(dsn, autocommit=True) as ender:
        ended = scalar(ender, "SELECT count(*) FROM pgtq.complete_many(%s, %s)", [ids[:2], leases])
        assert ended == 2
        states = [job(db, job_id)["state"] for job_id in ids[2:]]
        channels = sorted(channel for channel, _ in offer.heard(ender))
    if limited:
        assert states == ["ready", "ready"], "nothing handed"
        assert channels == ["pgtq"], "the queue announced"
    else:
        assert sorted(states) == ["ready", "running"], "one next job handed, the other ready"
        assert channels == sorted([offer.channel, "pgtq"]), "its claim, and the other key announced"


def test_a_key_whose_next_job_the_ender_took_in_the_same_transaction_wakes_nobody(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """complete_many_and_pop ends a keyed job and, in the same transaction,
    its pop takes the key's next job: the key is held again, and its queue
    is not announced (0.31.0). Until 0.30.0 it was, and every idle worker
    of the queue popped, walking the queue's backlog, for nothing."""
    (first, second, _third), lease = keyed_jobs_with_the_first_running(db, 3)  # one key
    with psycopg.connect(dsn, autocommit=True) as idle, psycopg.connect(dsn, autocommit=True) as ender:
        idle.execute("LISTEN pgtq")
        idle.execute("SELECT pgtq.mark_waiting(ARRAY['mail'])")
        ended, taken = ender.execute(
            "SELECT completed, (claimed[1]).id FROM pgtq.complete_many_and_pop('mail', %s, %s, n => 1)",
            [[first], [lease]],
        ).fetchone() or (None, None)
        assert (ended, taken) == ([first], second), "the pop took the freed key's next job"
        assert heard_until_sentinel(idle, ender, "pgtq") == [], "nobody woken"


def test_a_payload_over_the_limit_is_refused_as_before(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("SELECT pgtq.configure(max_payload_bytes => 64)")
    with (
        offering(dsn, "mail"),
        psycopg.connect(dsn, autocommit=True) as producer,
        pytest.raises(psycopg.Error) as raised,
    ):
        producer.execute("SELECT pgtq.push('mail', 'send', jsonb_build_array(repeat('x', 100)))")
    assert raised.value.sqlstate == "PT005"
    assert scalar(db, "SELECT count(*) FROM pgtq._job") == 0


def test_one_push_at_a_time_per_offer_the_next_goes_to_another(dsn: str, db: psycopg.Connection[Any]) -> None:
    with (
        offering(dsn, "mail", worker="w1") as first,
        offering(dsn, "mail", worker="w2") as second,
        psycopg.connect(dsn) as slow,
        psycopg.connect(dsn, autocommit=True) as fast,
    ):
        held = scalar(slow, "SELECT pgtq.push('mail', 'send', '[\"slow\"]')")  # its transaction stays open
        given = scalar(fast, "SELECT pgtq.push('mail', 'send', '[\"fast\"]')")
        third = scalar(fast, "SELECT pgtq.push('mail', 'send', '[\"third\"]')")
        slow.commit()
        workers = {job(db, job_id)["worker"] for job_id in (held, given)}
        assert workers == {"w1", "w2"}, "the offer being handed a job was skipped, not waited for"
        assert job(db, third)["state"] == "running", "an offer is free again once its push committed"
        heard = [
            json.loads(payload)["id"]
            for offer in (first, second)
            for channel, payload in offer.heard(fast)
            if channel == offer.channel
        ]
        assert sorted(heard) == sorted([held, given, third]), "each claim notified once, to its offer"


def test_close_with_wait_waits_for_the_pushes_handing_it_a_job(dsn: str, db: psycopg.Connection[Any]) -> None:
    with offering(dsn, "mail") as offer, psycopg.connect(dsn) as producer:
        job_id = scalar(producer, "SELECT pgtq.push('mail', 'send')")  # handed, not committed
        offer.conn.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            offer.conn.execute("SELECT pgtq.close_handoff(wait => true)")
        offer.conn.execute("RESET lock_timeout")
        assert scalar(offer.conn, "SELECT pgtq.open_handoff()") is True
        closer = threading.Thread(
            target=lambda: offer.conn.execute("SELECT pgtq.close_handoff(wait => true)")
        )
        closer.start()
        time.sleep(0.1)  # not a synchronisation: only gives the close a chance to return too early
        assert closer.is_alive(), "it waits for the open push"
        producer.commit()
        closer.join(30)
        assert not closer.is_alive(), "and returns once the push ended"
        producer.autocommit = True
        assert [json.loads(p)["id"] for c, p in offer.heard(producer) if c == offer.channel] == [job_id], (
            "by then the handed job has been notified"
        )


def test_bad_offers_raise_and_write_nothing(db: psycopg.Connection[Any]) -> None:
    cases = [
        ("SELECT pgtq.offer_handoffs('w', NULL)", "PT004"),
        ("SELECT pgtq.offer_handoffs('', ARRAY['q'])", "PT003"),
        ("SELECT pgtq.offer_handoffs('w', ARRAY[E'bad\\x01'])", "PT003"),
        ("SELECT pgtq.offer_handoffs('w', ARRAY['q'], interval '0')", "PT004"),
    ]
    for sql, code in cases:
        with pytest.raises(psycopg.Error) as raised:
            db.execute(sql)
        assert raised.value.sqlstate == code, sql
    assert scalar(db, "SELECT count(*) FROM pgtq._handoff") == 0
    assert scalar(db, "SELECT pgtq.open_handoff()") is False, "no offer: nothing to open"
    assert scalar(db, "SELECT pgtq.close_handoff(true)") is False


def test_an_offer_again_keeps_its_channel_and_offers_of_ended_sessions_go(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(dsn, autocommit=True) as gone:
        old = scalar(gone, "SELECT pgtq.offer_handoffs('w0', ARRAY['mail'])")
    with psycopg.connect(dsn, autocommit=True) as conn:
        channel = scalar(conn, "SELECT pgtq.offer_handoffs('w1', ARRAY['mail'])")
        again = scalar(
            conn, "SELECT pgtq.offer_handoffs('w2', ARRAY['sms', 'mail', 'sms'], interval '1 minute')"
        )
        assert again == channel != old
        assert channel in [row[0] for row in conn.execute("SELECT pg_listening_channels()")]
        rows = db.execute("SELECT worker, queues, lease FROM pgtq._handoff").fetchall()
        assert [(w, q, str(lease)) for w, q, lease in rows] == [("w2", ["mail", "sms"], "0:01:00")], (
            "the ended session's offer was removed, this one's updated"
        )


# -- the real worker ---------------------------------------------------------------

QUIET = {"poll_interval": 60.0, "tick_interval": 60.0}


@contextmanager
def idle_worker(q: pgtq.PgTq, **settings: Any) -> Iterator[Worker]:
    """A worker serving ``q`` in a thread, its offer open once yielded."""
    worker = Worker(q, WorkerSettings(**(QUIET | settings)))
    thread = threading.Thread(target=worker.run, name="test-worker")
    thread.start()
    try:
        wait_until(lambda: offer_open(worker))
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the worker stopped"


def offer_open(worker: Worker) -> bool:
    listeners = [server.listener for server in worker.servers]
    return all(x is not None and x._offer_open and x.settled for x in listeners)


def record_calls(monkeypatch: pytest.MonkeyPatch, name: str, record: Callable[..., Any]) -> list[Any]:
    """Each call of ``gateway.<name>`` from now on, as ``record`` makes it
    of the call's arguments after the connection (the call still runs)."""
    calls: list[Any] = []
    real = getattr(gateway, name)

    def recording(conn: gateway.Connection, *args: Any, **kwargs: Any) -> Any:
        calls.append(record(*args, **kwargs))
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(gateway, name, recording)
    return calls


def record_closes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each close of a hand-off offer from now on, as its ``wait``."""
    return record_calls(monkeypatch, "close_handoff", lambda *, wait: wait)


def hold_handler(q: pgtq.PgTq) -> threading.Event:
    """Register task ``hold``, whose jobs wait until the returned event is set."""
    go = threading.Event()

    @q.handler()
    def hold() -> None:
        go.wait(60)

    return go


def test_an_idle_worker_runs_a_handed_job_without_a_claim_and_renews_its_lease(
    q: pgtq.PgTq, db: psycopg.Connection[Any], pops: list[str]
) -> None:
    go = hold_handler(q)

    with idle_worker(q, lease=3.0, heartbeat_interval=0.3) as worker:
        job_id = q.push("hold")
        row = job(db, job_id)
        assert row["state"] == "running" and row["worker"] == worker.worker_id, "handed in the push"
        wait_until(lambda: job(db, job_id)["expires"] > row["expires"], timeout=30)  # the dispatcher holds it
        go.set()
        wait_until(lambda: job(db, job_id)["state"] == "done")
    assert pops == [], "nobody claimed: the push handed the job"
    assert job(db, job_id)["attempt"] == 1


def test_an_idle_workers_offer_stays_open_between_its_short_jobs(
    q: pgtq.PgTq, db: psycopg.Connection[Any], pops: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_listener, "OFFER_CLOSE_DELAY", 60.0)  # no job here keeps the worker busy as long
    closes = record_closes(monkeypatch)

    @q.handler()
    def noop(n: int) -> None:
        pass

    with idle_worker(q) as worker:
        for n in range(3):
            job_id = q.push("noop", [n])
            wait_until(lambda job_id=job_id: job(db, job_id)["state"] == "done")
            # Idle again: its room lent and its wait for the queue settled. (A
            # push between the job's end and the loan is handed while no room
            # is lent, which closes the offer; one before the worker waits for
            # the queue again is not handed at all.)
            wait_until(lambda: offer_open(worker) and worker._idle.lent > 0)
        assert closes == [], "no close (and no reopening) between one job and the next"
    assert pops == [], "every job was handed by its push"
    assert closes == [True], "stopping closes the offer, waiting for the pushes handing it a job"


def test_a_handed_job_leaves_the_workers_wait_for_its_queue_as_it_was(
    q: pgtq.PgTq, db: psycopg.Connection[Any], pops: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loan of one job (batch size 1) used up by a handed job is no full
    claim: the queue may hold nothing more, so the worker keeps its waiting
    mark (letting go of it would leave the next push unannounced and
    unhanded, for the worker's own pop to find once the mark is back)."""
    monkeypatch.setattr(_listener, "OFFER_CLOSE_DELAY", 60.0)
    cleared = record_calls(monkeypatch, "clear_waiting", lambda queues: list(queues))

    @q.handler()
    def noop(n: int) -> None:
        pass

    with idle_worker(q, concurrency=1, batch_size=1) as worker:
        for n in range(3):
            job_id = q.push("noop", [n])
            assert job(db, job_id)["worker"] == worker.worker_id, f"job {n} handed by its push"
            wait_until(lambda job_id=job_id: job(db, job_id)["state"] == "done")
            wait_until(lambda: offer_open(worker) and worker._idle.lent == 1)
    assert cleared == [], "the waiting mark stayed between one handed job and the next"
    assert pops == [], "every job was handed by its push"


def test_a_handed_job_that_keeps_the_worker_busy_lets_go_of_its_waiting_mark(
    q: pgtq.PgTq, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handed job still running when the offer closes (it left the worker
    no room) lets go of the queue's waiting mark, so pushes stop announcing
    to a worker that cannot take them; once the job ended and the queue is
    drained, the worker waits for it again."""
    cleared = record_calls(monkeypatch, "clear_waiting", lambda queues: list(queues))
    go = hold_handler(q)

    with idle_worker(q, concurrency=1, batch_size=1) as worker:
        first = q.push("hold")
        assert job(db, first)["worker"] == worker.worker_id, "handed to the idle worker"
        wait_until(lambda: cleared == [[q.queue]])
        later = q.push("hold")
        assert job(db, later)["state"] == "ready", "not handed to the busy worker"
        go.set()
        wait_until(lambda: job(db, first)["state"] == job(db, later)["state"] == "done")
        wait_until(lambda: offer_open(worker))  # drained: waiting for the queue again
    assert job(db, later)["attempt"] == 1


def test_a_busy_worker_closes_its_offer_and_the_next_push_is_not_handed_to_it(
    q: pgtq.PgTq, db: psycopg.Connection[Any]
) -> None:
    go = hold_handler(q)

    with idle_worker(q, concurrency=1, batch_size=1) as worker:
        first = q.push("hold")
        assert job(db, first)["worker"] == worker.worker_id, "handed to the idle worker"
        listener = worker.servers[0].listener
        assert listener is not None
        wait_until(lambda: not listener._offer_open)  # OFFER_CLOSE_DELAY after its one slot was taken
        second = q.push("hold")
        assert job(db, second)["state"] == "ready", "not handed to a worker with no room"
        go.set()
        wait_until(lambda: job(db, first)["state"] == job(db, second)["state"] == "done")
    assert job(db, second)["attempt"] == 1


def test_a_job_handed_to_a_full_worker_goes_back_and_its_offer_closes_at_once(
    q: pgtq.PgTq, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push hands its job to the idle worker's offer, and its transaction
    stays open while the worker fills its one slot with another job: the
    claim reaches a full worker at commit, which hands it back and closes
    its offer at once (not OFFER_CLOSE_DELAY later, a minute here). (Two
    pushes in a row raced the worker: once it holds a job it no longer
    waits for the queue, and a push hands a job only to a waiting worker.)"""
    monkeypatch.setattr(_listener, "OFFER_CLOSE_DELAY", 60.0)  # only the late hand-off closes it
    released: list[int] = []
    real_release_all = gateway.release_all

    def release_all(conn: gateway.Connection, tasks: list[Any]) -> Any:
        result = real_release_all(conn, tasks)
        released.extend(task.id for task in tasks)  # once handed back
        return result

    monkeypatch.setattr(gateway, "release_all", release_all)
    go = hold_handler(q)

    with psycopg.connect(q.dsn) as producer, idle_worker(q, concurrency=1, batch_size=1) as worker:
        listener = worker.servers[0].listener
        assert listener is not None
        second = scalar(producer, "SELECT pgtq.push(%s, 'hold')", [q.queue])
        assert job(producer, second)["state"] == "running", "handed to the offer; the claim goes at commit"
        first = q.push("hold")  # not handed: the open transaction is handing the offer a job
        wait_until(lambda: job(db, first)["state"] == "running")  # claimed: the worker's one slot
        producer.commit()
        wait_until(lambda: released == [second] and not listener._offer_open)
        assert job(db, second)["state"] == "ready", "handed back"
        third = q.push("hold")
        assert job(db, third)["state"] == "ready", "not handed: the offer closed"
        go.set()
        wait_until(lambda: all(job(db, n)["state"] == "done" for n in (first, second, third)))


@pytest.mark.parametrize(
    ("concurrency", "closed_at_once"),
    [(2, []), (1, [False])],
    ids=["room-for-more-keeps-the-offer", "the-last-slot-closes-it"],
)
def test_a_job_handed_late_to_a_worker_with_room_runs(
    q: pgtq.PgTq,
    db: psycopg.Connection[Any],
    pops: list[str],
    monkeypatch: pytest.MonkeyPatch,
    concurrency: int,
    closed_at_once: list[bool],
) -> None:
    """The claim reaches the listener just after the dispatcher took its
    loan back (a late hand-off): the dispatcher runs the job, having room.
    With room for another job beside it, the offer keeps OFFER_CLOSE_DELAY
    (a minute here): no close and no reopening is paid for it. When the job
    takes the worker's last slot, the offer closes at once, so the next
    push goes to a worker with room instead of being handed back."""
    monkeypatch.setattr(_listener, "OFFER_CLOSE_DELAY", 60.0)
    closes = record_closes(monkeypatch)
    released: list[int] = []
    real_release_all = gateway.release_all

    def release_all(conn: gateway.Connection, tasks: list[Any]) -> Any:
        released.extend(task.id for task in tasks)
        return real_release_all(conn, tasks)

    monkeypatch.setattr(gateway, "release_all", release_all)

    @q.handler()
    def noop() -> None:
        pass

    with idle_worker(q, concurrency=concurrency, batch_size=concurrency) as worker:
        revoked: list[int] = []
        real_take = worker._idle.take

        def taken_back_once() -> int:
            if not revoked:
                revoked.append(1)
                worker._idle.revoke()  # as the dispatcher does when it wakes
            return real_take()

        monkeypatch.setattr(worker._idle, "take", taken_back_once)
        job_id = q.push("noop")
        wait_until(lambda: job(db, job_id)["state"] == "done", timeout=10)
        wait_until(lambda: offer_open(worker) and worker._idle.lent > 0)  # idle again
        assert closes == closed_at_once
    assert revoked == [1] and pops == [] and released == [], "handed by its push, with no room lent, and run"
    assert job(db, job_id)["attempt"] == 1
    assert closes == [*closed_at_once, True], "and stopping closed the offer"


def test_a_job_handed_by_a_push_that_outlasted_the_lease_is_renewed_before_it_runs(
    q: pgtq.PgTq, db: psycopg.Connection[Any]
) -> None:
    started = threading.Event()
    go = threading.Event()

    @q.handler()
    def hold() -> None:
        started.set()
        go.wait(60)

    # Renewals every 1.9 s of a 2 s lease: only the renewal at hand-off can
    # save the job from the tick below.
    with psycopg.connect(q.dsn) as producer, idle_worker(q, lease=2.0, heartbeat_interval=1.9) as worker:
        job_id = scalar(producer, "SELECT pgtq.push(%s, 'hold')", [q.queue])
        handed = job(producer, job_id)
        assert handed["state"] == "running" and handed["worker"] == worker.worker_id
        wait_until(lambda: scalar(db, "SELECT clock_timestamp() > %s", [handed["expires"]]), timeout=10)
        producer.commit()  # the claim reaches the worker with its lease run out
        assert started.wait(30), "the handed job started"
        db.execute("SELECT pgtq.tick()")  # would rescue a lease that ran out
        row = job(db, job_id)
        assert (row["state"], row["lease"], row["attempt"]) == ("running", handed["lease"], 1), (
            f"renewed before it started, not rescued: {row}"
        )
        assert row["expires"] > handed["expires"]
        go.set()
        wait_until(lambda: job(db, job_id)["state"] == "done")
    assert job(db, job_id)["attempt"] == 1


def test_a_burst_of_single_pushes_keeps_the_limit_and_runs_each_job_once(
    q: pgtq.PgTq, db: psycopg.Connection[Any]
) -> None:
    ran: list[int] = []
    running = 0
    most = 0
    lock = threading.Lock()

    @q.handler()
    def count(n: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
            ran.append(n)

    with idle_worker(q, concurrency=2, batch_size=2):

        def produce(first: int) -> None:
            for n in range(first, first + 20):
                q.push("count", [n])

        producers = [threading.Thread(target=produce, args=(k * 20,)) for k in range(3)]
        for producer in producers:
            producer.start()
        for producer in producers:
            producer.join()
        wait_until(lambda: scalar(db, "SELECT count(*) FROM pgtq._job WHERE state = 'done'") == 60)
    assert sorted(ran) == list(range(60)), "each job ran once"
    assert most <= 2, f"never more at once than the worker's 2 slots: {most}"
    assert scalar(db, "SELECT max(attempt) FROM pgtq._job") == 1, "no attempt lost to a lapsed lease"


def test_a_job_handed_while_the_worker_stops_is_handed_back(
    q: pgtq.PgTq, db: psycopg.Connection[Any]
) -> None:
    ran: list[str] = []

    @q.handler()
    def note(token: str) -> None:
        ran.append(token)

    with psycopg.connect(q.dsn) as producer, idle_worker(q) as worker:
        job_id = scalar(producer, "SELECT pgtq.push(%s, 'note', '[\"late\"]')", [q.queue])
        assert job(producer, job_id)["state"] == "running", "handed, its push still open"
        worker.stop()
        wait_until(lambda: worker.stopping)
        threading.Timer(0.5, producer.commit).start()  # commits while the listener waits for it
    row = job(db, job_id)
    assert row["state"] in ("ready", "done") and row["lease"] is None, f"not left to its lease: {row}"
    assert ran == (["late"] if row["state"] == "done" else []), "handed back, or run once"


def test_a_notification_on_the_channel_that_is_not_a_claim_is_ignored(
    q: pgtq.PgTq, db: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    @q.handler()
    def noop() -> None:
        pass

    with caplog.at_level(logging.WARNING, logger="pgtq.worker"), idle_worker(q) as worker:
        listener = worker.servers[0].listener
        assert listener is not None
        db.execute("SELECT pg_notify(%s, 'not a claim')", [listener._channel])
        wait_until(lambda: any("not a claim" in r.getMessage() for r in caplog.records))
        job_id = q.push("noop")
        wait_until(lambda: job(db, job_id)["state"] == "done")
    assert listener.is_alive() is False and job(db, job_id)["attempt"] == 1


def test_a_job_handed_while_the_loan_was_taken_back_still_starts_at_once(
    q: pgtq.PgTq, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    @q.handler()
    def noop() -> None:
        pass

    with idle_worker(q) as worker:  # polls every 60 s: only a wake-up starts the job soon
        refused: list[int] = []
        real_take = worker._idle.take

        def no_room_once() -> int:
            if not refused:
                refused.append(1)
                return 0  # as if the room had been taken back just before the claim arrived
            return real_take()

        monkeypatch.setattr(worker._idle, "take", no_room_once)
        job_id = q.push("noop")
        wait_until(lambda: job(db, job_id)["state"] == "done", timeout=10)
    assert refused == [1], "the handed job found no room lent"
    assert job(db, job_id)["attempt"] == 1, "run once, by the dispatcher, which had room"
