"""The worker's timing decisions with literal times: when to claim and how
many, from which queue, when to write outcomes, tick, renew leases, poll
and reconnect, and when a job's time is up. No database, no sleeping."""

from __future__ import annotations

import pytest

from pgtq.worker import WorkerSettings
from pgtq.worker._decisions import (
    FIRST_RECONNECT_DELAY,
    FLUSH_DELAY,
    HELD_BACK_PREFETCH_SECONDS,
    MAX_PREFETCH,
    PREFETCH_SECONDS,
    Backoff,
    ClaimLimit,
    PopTurns,
    Timers,
    claim_size,
    flush_due,
    timeout_deadline,
)


def timers(**settings: float) -> Timers:
    chosen = WorkerSettings(**settings)  # type: ignore[arg-type]
    return Timers(
        tick_interval=chosen.tick_interval,
        heartbeat_interval=chosen.heartbeat_every,
        poll_interval=chosen.poll_interval,
    )


# -- claiming ----------------------------------------------------------------------


def test_a_fixed_batch_size_is_held_whatever_the_handlers_take() -> None:
    limit = ClaimLimit(concurrency=4, batch_size=20)
    assert limit.jobs_in_hand == 20
    limit.ran(0.0001)
    assert limit.jobs_in_hand == 20
    limit.ran(60.0)
    assert limit.jobs_in_hand == 20
    assert ClaimLimit(concurrency=8, batch_size=2).jobs_in_hand == 8, "never fewer than the slots"


def test_the_adaptive_limit_starts_at_the_slots_and_prefetches_for_quick_handlers() -> None:
    limit = ClaimLimit(concurrency=2, batch_size=None)
    assert limit.jobs_in_hand == 2, "nothing ran yet: the slots only"
    limit.ran(0.00002)
    assert limit.jobs_in_hand == MAX_PREFETCH
    limit.ran(0.0)
    assert limit.jobs_in_hand == MAX_PREFETCH


def test_the_adaptive_limit_holds_what_the_slots_get_through_in_the_prefetch_time() -> None:
    limit = ClaimLimit(concurrency=2, batch_size=None)
    limit.ran(PREFETCH_SECONDS / 10)
    assert limit.jobs_in_hand == 20
    limit.ran(PREFETCH_SECONDS * 3)
    assert limit.jobs_in_hand == 2, "slow handlers: the slots only"


def test_a_held_back_queue_is_claimed_for_what_the_slots_start_soon() -> None:
    limit = ClaimLimit(concurrency=2, batch_size=None)
    assert limit.jobs_in_hand_held_back == 2, "nothing ran yet: the slots only"
    limit.ran(0.02)
    assert limit.jobs_in_hand == int(2 * PREFETCH_SECONDS / 0.02), "a quarter of a second of work"
    assert limit.jobs_in_hand_held_back == 2, "20 ms jobs: no more than the slots"
    limit.ran(HELD_BACK_PREFETCH_SECONDS / 100)  # decays slowly; a run of quick jobs brings it down
    for _ in range(100):
        limit.ran(HELD_BACK_PREFETCH_SECONDS / 100)
    assert limit.jobs_in_hand_held_back == MAX_PREFETCH, "quick jobs: as many as ever"
    fixed = ClaimLimit(concurrency=2, batch_size=40)
    fixed.ran(0.02)
    assert fixed.jobs_in_hand_held_back == 40, "a batch size set by hand stays"


def test_a_quick_run_that_waited_for_the_gil_does_not_stop_the_prefetch() -> None:
    limit = ClaimLimit(concurrency=1, batch_size=None)
    limit.ran(0.00002)
    limit.ran(0.005)  # a switch interval
    assert limit.jobs_in_hand >= MAX_PREFETCH // 2, "still prefetching"


def test_one_slow_run_stops_the_prefetch_at_once_and_quick_runs_bring_it_back_slowly() -> None:
    limit = ClaimLimit(concurrency=1, batch_size=None)
    limit.ran(0.0001)
    assert limit.jobs_in_hand == MAX_PREFETCH
    limit.ran(1.0)
    assert limit.jobs_in_hand == 1
    limit.ran(0.0001)
    assert limit.jobs_in_hand == 1, "one quick run is not enough"
    held = []
    for _ in range(60):
        limit.ran(0.0001)
        held.append(limit.jobs_in_hand)
    assert held == sorted(held) and held[-1] == MAX_PREFETCH


@pytest.mark.parametrize(
    ("jobs_in_hand", "held", "unstarted", "claim"),
    [
        (1, 0, 0, 1),  # idle, one slot: claim one
        (1, 1, 0, 0),  # its one job runs: nothing
        (8, 3, 0, 5),  # a slot may be free and nothing waits: fill every free place
        (8, 7, 2, 0),  # jobs wait for a slot and little room: wait
        (8, 4, 1, 4),  # half the jobs in hand are done: prefetch the room
        (100, 95, 85, 0),  # --batch-size 100: 5 done is not yet half a batch
        (100, 50, 40, 50),  # half a batch done: claim the next half
        (100, 100, 90, 0),  # full
    ],
)
def test_how_many_to_claim(jobs_in_hand: int, held: int, unstarted: int, claim: int) -> None:
    assert claim_size(jobs_in_hand, held, unstarted) == claim


def test_queues_take_turns_and_a_drained_one_waits_for_a_wake_up() -> None:
    turns = PopTurns(["a", "b", "c"])
    assert [turns.next() for _ in range(4)] == ["a", "b", "c", "a"]
    turns.drained("b")
    assert [turns.next() for _ in range(3)] == ["c", "a", "c"]
    turns.drained("a")
    turns.drained("c")
    assert turns.next() is None, "every queue drained: nothing to claim until a wake-up"
    turns.wake(["b"])
    assert [turns.next() for _ in range(2)] == ["b", "b"]


def test_a_queue_whose_pop_came_back_short_but_not_empty_is_refilled_with_its_outcomes() -> None:
    turns = PopTurns(["limited", "plain"])
    turns.drained("limited", took_some=True)
    turns.drained("plain")
    assert turns.next() is None, "neither is claimed from until woken"
    assert turns.held_back("limited") and not turns.held_back("plain")
    assert turns.refill(["plain", "limited"]) == "limited", "its outcomes free what held it back"
    assert turns.refill(["plain"]) is None, "outcomes of other queues free none of its slots"
    turns.drained("limited", took_some=False)
    assert turns.refill(["limited"]) is None, "an empty pop: the queue waits for a wake-up"
    assert not turns.held_back("limited"), "an empty pop ends the holding back"
    turns.drained("plain", took_some=True)
    turns.wake(["plain"])
    assert turns.next() == "plain", "a wake-up still makes it claimable as before"


# -- writing outcomes ----------------------------------------------------------------


def test_outcomes_gather_while_the_batch_runs_and_go_at_once_otherwise() -> None:
    def due(now: float, pending: int = 1, running: int = 3, stopping: bool = False) -> bool:
        return flush_due(
            now, pending=pending, pending_since=10.0, stopping=stopping, running=running, jobs_in_hand=10
        )

    assert not due(10.0, pending=0), "nothing to write"
    assert not due(10.0), "others of the batch still run: wait for theirs"
    assert not due(10.0 + FLUSH_DELAY / 2)
    assert due(10.0 + FLUSH_DELAY), "the first outcome waited FLUSH_DELAY"
    assert due(10.0, pending=5), "half a batch is in"
    assert due(10.0, running=0), "the last running job's outcome goes at once"
    assert due(10.0, stopping=True), "a stopping worker writes everything"


# -- ticks, renewals, polls --------------------------------------------------------------


def test_tick_is_due_at_start_then_every_tick_interval() -> None:
    clock = timers(tick_interval=1.0)
    assert clock.tick_due(100.0)
    clock.ticked(100.0)
    assert not clock.tick_due(100.999)
    assert clock.tick_due(101.0)


def test_a_tick_that_failed_is_due_again_at_once() -> None:
    clock = timers(tick_interval=1.0)
    assert clock.tick_due(100.0)
    # the tick raised (connection lost): ticked() was never called
    assert clock.tick_due(100.5)


def test_leases_are_renewed_at_start_then_every_third_of_the_lease() -> None:
    clock = timers(lease=30.0)
    assert clock.heartbeat_due(5.0)
    clock.heartbeat_sent(5.0)
    assert not clock.heartbeat_due(14.9)
    assert clock.heartbeat_due(15.0)
    explicit = timers(lease=30.0, heartbeat_interval=2.0)
    explicit.heartbeat_sent(5.0)
    assert explicit.heartbeat_due(7.0) and not explicit.heartbeat_due(6.9)


def test_the_fallback_poll_plans_the_next_one_when_it_fires() -> None:
    clock = timers(poll_interval=2.0)
    assert clock.poll_due(50.0)
    assert not clock.poll_due(51.9)
    assert clock.poll_due(52.0)
    assert not clock.poll_due(52.0), "each poll fires once"


def test_the_next_wake_up_is_the_earliest_timer_that_applies() -> None:
    clock = timers(tick_interval=1.0, lease=30.0, poll_interval=2.0)
    clock.ticked(100.0)
    clock.heartbeat_sent(100.0)
    assert clock.poll_due(100.0)
    assert clock.next_due(100.0, stopping=False) == 101.0, "the tick"
    assert clock.next_due(100.0, stopping=True) == 102.0, "stopping: only the poll fallback"


# -- after a database error ------------------------------------------------------------


def test_the_wait_after_errors_doubles_up_to_its_cap_and_resets_after_success() -> None:
    backoff = Backoff(max_delay=30.0)
    assert backoff.due(0.0), "all is well: at once"
    assert backoff.failed(100.0) == FIRST_RECONNECT_DELAY
    assert not backoff.due(100.0 + FIRST_RECONNECT_DELAY - 0.01)
    assert backoff.due(100.0 + FIRST_RECONNECT_DELAY)
    waits = [backoff.failed(0.0) for _ in range(8)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.next_attempt == 30.0
    backoff.succeeded()
    assert backoff.failed(1000.0) == FIRST_RECONNECT_DELAY
    assert backoff.next_attempt == 1000.0 + FIRST_RECONNECT_DELAY


def test_a_small_cap_bounds_even_the_first_retry() -> None:
    backoff = Backoff(max_delay=0.7)
    assert [backoff.failed(0.0) for _ in range(3)] == [0.5, 0.7, 0.7]


# -- timeouts ----------------------------------------------------------------------


def test_a_job_times_out_after_its_start_plus_timeout_plus_grace() -> None:
    assert timeout_deadline(None, 5.0, 0.0) is None, "not started yet: its clock has not started"
    assert timeout_deadline(10.0, None, 0.0) is None, "no timeout"
    assert timeout_deadline(10.0, 5.0, 0.0) == 15.0
    assert timeout_deadline(10.0, 5.0, 1.0) == 16.0, "async handlers cancel themselves; this is the backstop"
