"""Manual adjustments: credits become a lot, debits never take a balance below zero, a reason is required."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from palier.activity.models import AdjustmentIn
from palier.activity.tables import events
from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import Conflict, NotFound, Unprocessable
from palier.ids import new_id
from palier.ledger.tables import ledger_transactions
from palier.programs.models import Program
from palier.timeutil import add_months
from tests.services.factories import adjust, balance, enrol, history, luhn_card, purchase, spaced


def written(db: Database, program: Program) -> tuple[int, int]:
    """(events, ledger transactions) recorded for the program."""
    with db.read() as conn:
        n_events = conn.execute(select(func.count()).where(events.c.program_id == program.id)).scalar_one()
        n_txns = conn.execute(select(func.count()).where(ledger_transactions.c.program_id == program.id)).scalar_one()
    return int(n_events), int(n_txns)


def test_a_credit_is_available_at_once_and_expires_with_the_program_lifetime(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    result = adjust(db, clock, program, member, 120, reason="Late delivery")
    assert (result.type, result.points, result.status, result.reason) == (
        "adjustment",
        120,
        "processed",
        "Late delivery",
    )
    assert result.transaction_id is not None and result.external_id == result.event_id
    shown = balance(db, program, member)
    assert (shown.available, shown.pending) == (120, 0)
    assert shown.next_expiry is not None
    assert (shown.next_expiry.points, shown.next_expiry.expires_at) == (120, add_months(clock.now(), 12))
    line = history(db, program, member)[-1]
    assert (line.kind, line.reason, line.reason_code, line.available) == ("adjust", "Late delivery", "adjustment", 120)


def test_a_debit_takes_from_the_soonest_expiring_points(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    purchase(db, clock, program, member, amount=5000, occurred_at=clock.now() - timedelta(days=100))
    adjust(db, clock, program, member, 100)
    result = adjust(db, clock, program, member, -70, reason="Manual redemption")
    assert result.points == -70
    shown = balance(db, program, member)
    assert shown.available == 80
    assert shown.next_expiry is not None
    # the older purchase lot (50) went first, then 20 from the credit
    assert (shown.next_expiry.points, shown.next_expiry.expires_at) == (80, add_months(clock.now(), 12))


def test_a_debit_beyond_the_available_balance_is_refused_and_writes_nothing(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    adjust(db, clock, program, member, 30)
    purchase(db, clock, program, member, amount=5000)  # 50 pending: not spendable yet
    before = written(db, program)
    with pytest.raises(Unprocessable) as caught:
        adjust(db, clock, program, member, -31, reason="Too much")
    error = caught.value
    assert (error.code, error.status, error.field) == ("insufficient_points", 422, "points")
    assert error.extra == {"needed": 31, "available": 30}
    assert written(db, program) == before
    shown = balance(db, program, member)
    assert (shown.available, shown.pending) == (30, 50)
    assert adjust(db, clock, program, member, -30, reason="Exactly all").points == -30
    assert balance(db, program, member).available == 0


def test_an_adjustment_with_an_external_id_is_applied_once(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    first = adjust(db, clock, program, member, 25, reason="Survey bonus", external_id="survey-7")
    again = adjust(db, clock, program, member, 25, reason="Survey bonus", external_id="survey-7")
    assert again == first and first.external_id == "survey-7"
    assert balance(db, program, member).available == 25
    with pytest.raises(Conflict) as caught:
        adjust(db, clock, program, member, 26, reason="Survey bonus", external_id="survey-7")
    assert (caught.value.code, caught.value.field) == ("event_conflict", "external_id")


def test_an_external_id_reused_for_another_member_is_a_conflict(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    ana, bo = enrol(db, clock, program), enrol(db, clock, program)
    adjust(db, clock, program, ana, 25, reason="Survey bonus", external_id="survey-8")
    with pytest.raises(Conflict) as caught:
        adjust(db, clock, program, bo, 25, reason="Survey bonus", external_id="survey-8")
    assert caught.value.code == "event_conflict"
    assert (balance(db, program, ana).available, balance(db, program, bo).available) == (25, 0)


def test_adjusting_an_unknown_member_is_not_found(db: Database, clock: FrozenClock, program: Program) -> None:
    with pytest.raises(NotFound) as caught:
        adjust(db, clock, program, new_id("member"), 10)
    assert caught.value.code == "member_not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"points": 10},  # no reason
        {"points": 10, "reason": "ok"},  # too short to explain anything
        {"points": 10, "reason": "   ab   "},  # spaces do not count
        {"points": 0, "reason": "Nothing at all"},
        {"points": 10_000_001, "reason": "Typo"},
        {"points": 10, "reason": f"Refund card {spaced(luhn_card())}"},
        {"points": 10, "reason": "Goodwill", "member_id": "mem_x"},  # unknown field
    ],
)
def test_invalid_adjustments_are_refused_before_the_service(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AdjustmentIn(**body)  # type: ignore[arg-type]


def test_points_earned_moments_apart_expire_on_one_day_and_are_counted_together(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    adjust(db, clock, program, member, 30)
    clock.advance(milliseconds=7)  # a welcome credit and a first order, one after the other
    adjust(db, clock, program, member, 50)
    clock.advance(days=1)
    adjust(db, clock, program, member, 5)  # a day later: expires a day later
    shown = balance(db, program, member)
    assert shown.next_expiry is not None and shown.next_expiry.points == 80
