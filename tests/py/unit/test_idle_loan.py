"""The idle worker's loan (pgtq.worker._idle_claim): lent room is taken
once, counts as in flight until its claim is taken over, and is not lent
again meanwhile."""

from __future__ import annotations

from pgtq.worker._idle_claim import IdleClaim


def test_nothing_lent_gives_nothing() -> None:
    loan: IdleClaim[str] = IdleClaim()
    assert loan.take() == 0
    assert loan.in_flight == 0


def test_a_loan_is_taken_once_and_stays_in_flight_until_its_claim_is_taken_over() -> None:
    loan: IdleClaim[str] = IdleClaim()
    loan.lend(5)
    assert loan.take() == 5
    assert loan.take() == 0, "a second listener gets nothing"
    assert loan.in_flight == 5
    loan.lend(5)
    assert loan.take() == 0, "no new loan while a claim is in flight"
    assert loan.take_over() == [], "nothing handed over yet"
    assert loan.in_flight == 5, "still in flight until the claim is handed over"
    loan.hand_over("claim")
    assert loan.in_flight == 5, "handed over, not taken over: the dispatcher does not hold it yet"
    assert loan.take_over() == ["claim"]
    assert loan.in_flight == 0
    loan.lend(3)
    assert loan.take() == 3, "lent again once the claim is taken over"


def test_a_revoked_loan_cannot_be_taken() -> None:
    loan: IdleClaim[str] = IdleClaim()
    loan.lend(4)
    loan.revoke()
    assert loan.take() == 0
    assert loan.in_flight == 0
