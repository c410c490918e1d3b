"""Queues on several servers: how a worker groups its queues by server,
where each server's listener listens, and how claimed jobs, outcomes,
wake-ups and hand-backs reach their server by the job's queue. No database
(the worker never connects here); the pool is a stand-in."""

from __future__ import annotations

import uuid

import pytest
from stand_ins import HandClock, RecordingPool

import pgtq
from pgtq._db.conninfo import server_key, server_label
from pgtq._records import Outcome
from pgtq.task import Task
from pgtq.worker import Worker, WorkerSettings
from pgtq.worker._listener import ANY_QUEUE
from pgtq.worker._routing import job_key, plan_servers

A = "host=db-a port=5432 dbname=app user=pgtq password=secret"
B = "host=db-b port=6432 dbname=app user=pgtq"


def queues(*placed: tuple[str, str]) -> list[pgtq.PgTq]:
    return [pgtq.PgTq(name, dsn) for name, dsn in placed]


# -- grouping and listen DSNs -----------------------------------------------------


def test_queues_are_grouped_by_server_in_the_order_the_servers_first_appear() -> None:
    plans = plan_servers(queues(("b1", B), ("a1", A), ("b2", B), ("a2", A)))
    assert [(plan.dsn, plan.queues, plan.listen_dsn) for plan in plans] == [
        (B, ("b1", "b2"), B),
        (A, ("a1", "a2"), A),
    ], "each server listens at its own DSN by default"


def test_two_spellings_of_one_dsn_are_one_server() -> None:
    reordered = "dbname=app user=pgtq password=secret port=5432 host=db-a"
    uri = "postgresql://pgtq:secret@db-a:5432/app"
    assert server_key(reordered) == server_key(A) == server_key(uri)
    [plan] = plan_servers(queues(("a1", A), ("a2", reordered), ("a3", uri)))
    assert (plan.dsn, plan.queues) == (A, ("a1", "a2", "a3")), "the DSN as first written"
    assert server_key("not a dsn ===") == "not a dsn ===", "connecting will say what is wrong with it"


def test_a_label_names_the_server_without_its_password() -> None:
    assert server_label(A) == "db-a:5432/app"
    assert server_label("host=db1,db2 port=5432,5433 dbname=app target_session_attrs=read-write") == (
        "db1:5432,db2:5433/app"
    )
    assert server_label("host=db1,db2 port=6432 dbname=app") == "db1:6432,db2:6432/app"
    assert "secret" not in server_label(A) + server_label("postgresql://u:secret@h/app")


def test_a_listen_dsn_per_server() -> None:
    direct_a = "host=db-a-direct dbname=app"
    one_server = plan_servers(queues(("a1", A)), "host=direct dbname=app")
    assert one_server[0].listen_dsn == "host=direct dbname=app", "one DSN: the one server's"
    # Keyed by any spelling of the server's DSN; a server left out listens at its own DSN.
    plans = plan_servers(queues(("a1", A), ("b1", B)), {"postgresql://pgtq:secret@db-a:5432/app": direct_a})
    assert [plan.listen_dsn for plan in plans] == [direct_a, B]


def test_listen_dsns_that_fit_no_server_are_refused() -> None:
    with pytest.raises(ValueError, match="one listen DSN was given but the queues are on 2 servers"):
        plan_servers(queues(("a1", A), ("b1", B)), "host=direct dbname=app")
    with pytest.raises(
        ValueError,
        match=r"a listen DSN was given for server db-c:5432/app, which none of the queues is on "
        r"\(they are on db-a:5432/app, db-b:6432/app\)",
    ):
        plan_servers(queues(("a1", A), ("b1", B)), {"host=db-c dbname=app": "host=x"})


def test_a_queue_name_is_served_once_per_worker() -> None:
    with pytest.raises(ValueError, match=r"each queue may be served once, got \['a1', 'a1'\]"):
        plan_servers(queues(("a1", A), ("a1", A)))
    with pytest.raises(
        ValueError,
        match="queue 'moving' is given on two servers \\(db-a:5432/app and db-b:6432/app\\): a worker "
        "serves each queue name once; serve the other one with a second worker",
    ):
        Worker(queues(("moving", A), ("moving", B)))
    with pytest.raises(ValueError, match="a worker needs at least one queue"):
        Worker([])


def test_a_job_key_tells_apart_equal_ids_of_two_servers_and_two_claims() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    on_a = Task(id=7, queue="a1", name="t", args=(), lease=first)
    on_b = Task(id=7, queue="b1", name="t", args=(), lease=first)
    claimed_again = Task(id=7, queue="a1", name="t", args=(), lease=second)
    assert len({job_key(on_a), job_key(on_b), job_key(claimed_again)}) == 3


# -- a worker of two servers ------------------------------------------------------


def two_server_worker() -> tuple[Worker, RecordingPool]:
    served = queues(("a1", A), ("a2", A), ("b1", B))
    for queue in served:
        queue.handler(name="t")(lambda: None)
    worker = Worker(served, WorkerSettings(concurrency=4), clock=HandClock(100.0))
    pool = RecordingPool()
    worker._pool = pool
    return worker, pool


def test_claimed_jobs_and_their_outcomes_reach_the_server_of_their_queue() -> None:
    worker, pool = two_server_worker()
    server_a, server_b = worker.servers
    assert (server_a.queues, server_b.queues) == (("a1", "a2"), ("b1",))
    assert server_a.identity.queues == ("a1", "a2"), "registered on A with A's queues only"
    lease = uuid.uuid4()
    on_a = Task(id=7, queue="a2", name="t", args=(), lease=lease)
    on_b = Task(id=7, queue="b1", name="t", args=(), lease=lease)  # the same id on the other server
    worker._hand_to_pool(on_a)
    worker._hand_to_pool(on_b)
    assert pool.submitted == [on_a, on_b], "both held at once"
    assert worker._held_on(server_a) == [on_a] and worker._held_on(server_b) == [on_b]

    worker._handle(Outcome(on_b, "done", 0.1))
    assert [o.task for o in server_b.pending] == [on_b] and server_a.pending == []
    assert worker._held_on(server_a) == [on_a], "A's job with the same id still runs"

    unknown = Task(id=8, queue="a1", name="nobody", args=())
    worker._hand_to_pool(unknown)
    assert [o.task for o in server_a.pending] == [unknown], "an unknown task fails on its server"


def test_a_wake_up_reaches_only_the_queues_it_names_and_any_queue_means_the_listeners_server() -> None:
    worker, _pool = two_server_worker()
    server_a, server_b = worker.servers
    for server in worker.servers:
        for name in server.queues:
            server.turns.drained(name)
    server_b._heard("b1")  # as the listener of B calls it
    worker._wait(0)
    assert (server_a.turns.next(), server_b.turns.next()) == (None, "b1")
    server_b.turns.drained("b1")
    server_a._heard(ANY_QUEUE)  # A's listener (re)connected: every queue of A, none of B
    worker._wait(0)
    assert sorted([server_a.turns.next(), server_a.turns.next()]) == ["a1", "a2"]
    assert server_b.turns.next() is None


def test_unstarted_jobs_are_handed_back_on_their_servers_when_stopping() -> None:
    worker, pool = two_server_worker()
    server_a, server_b = worker.servers
    tasks = [Task(id=n, queue=name, name="t", args=()) for n, name in enumerate(["a1", "b1", "a2"])]
    for task in tasks:
        worker._hand_to_pool(task)
    pool.starts[job_key(tasks[0])] = 100.0  # the first one runs; the others wait for a slot
    worker._take_back_unstarted()
    assert server_a.releasing == [tasks[2]] and server_b.releasing == [tasks[1]]
    assert worker._held_on(server_a) == [tasks[0]] and worker._held_on(server_b) == []


def test_the_servers_take_turns_at_the_free_slots() -> None:
    worker, _pool = two_server_worker()
    firsts = [worker._in_turn()[0] for _ in range(4)]
    assert firsts == [worker.servers[1], worker.servers[0], worker.servers[1], worker.servers[0]]
    assert all(len(worker._in_turn()) == 2 for _ in range(3))
