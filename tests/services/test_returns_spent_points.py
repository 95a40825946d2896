"""Returning an order whose points paid another order: nothing lost, nothing invented, in any order of events.

Order A earns 100 points; they pay 100 points of order B at the till (a walk-in, so B earns nothing). When A
is returned first, its points are out paying B: the return takes other points (or books a debt) in their
place. When B is returned afterwards, A's points come back: they go back where A's return took their
stand-ins, not to A's lot (which may have expired since), so they are not taken twice.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from palier.clock import FrozenClock
from palier.db import Database
from palier.members.models import Member
from palier.programs.models import Program
from tests.services.factories import (
    adjust,
    assert_ledger_sound,
    balance,
    enrol,
    expire,
    line,
    purchase,
    purchase_body,
    return_,
    reverse,
    send_purchase,
)
from tests.services.test_pay_with_points import pay as pay_points
from tests.services.test_rewards import add_reward, cancel, redeem


def _spend_a_on_b(db: Database, clock: FrozenClock, program: Program) -> Member:
    """Day 0: order A earns 100 points (they expire in a month) and pays 100 points of walk-in order B."""
    member = enrol(db, clock, program)
    purchase(db, clock, program, member, order_id="A", lines=[line("A1", 5_000), line("A2", 5_000)])
    pay_points(db, clock, program, member, order_id="B", points=100)
    walk_in = purchase_body(program, member, clock=clock, order_id="B", lines=[line("B1", 5_000), line("B2", 5_000)])
    send_purchase(db, clock, program, walk_in.model_copy(update={"member": None}))
    assert balance(db, program, member).available == 0
    return member


def _shown(db: Database, program: Program, member: Member) -> tuple[int, int]:
    shown = balance(db, program, member)
    return shown.available, shown.debt


@pytest.fixture
def monthly(new_program: Callable[..., Program]) -> Program:
    return new_program(return_window_days=0, points_lifetime_months=1)


@pytest.mark.parametrize("other_points", [0, 80], ids=["in debt", "with other points"])
def test_order_returned_while_its_points_paid_another_then_that_one_after_they_expired(
    db: Database, clock: FrozenClock, monthly: Program, other_points: int
) -> None:
    member = _spend_a_on_b(db, clock, monthly)
    clock.advance(days=20)
    if other_points:
        adjust(db, clock, monthly, member, other_points, reason="Later goodwill")  # lasts to day 50
    a = return_(db, clock, monthly, "A", amount=10_000)
    assert (a.points, a.details["from_available"], a.details["to_debt"]) == (-100, other_points, 100 - other_points)
    clock.advance(days=20)
    expire(db, clock, monthly)  # A's lot expires (nothing left in it: its points paid B)
    b = return_(db, clock, monthly, "B", amount=10_000)
    # A's points come back in place of what A's return took: the goodwill points, and the debt
    assert "points_expired" not in b.details, b.details
    assert b.details["points_given_back"] == 100
    assert _shown(db, monthly, member) == (other_points, 0)
    assert_ledger_sound(db, monthly)


SEQUENCES = {
    "A returned, A's lot expires, B returned": ["A", "expire", "B"],
    "A's lot expires, B returned, A returned": ["expire", "B", "A"],
    "A returned, B returned, A's lot expires": ["A", "B", "expire"],
    "B returned, A returned": ["B", "A"],
    "A half returned, A's lot expires, B returned, A's other half": ["A/2", "expire", "B", "A/2"],
    "A returned, A's lot expires, B half returned twice": ["A", "expire", "B/2", "B/2"],
    "A half, B half, A's lot expires, A's other half, B's other half": ["A/2", "B/2", "expire", "A/2", "B/2"],
}


@pytest.mark.parametrize("steps", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_every_order_of_events_leaves_the_member_the_same(
    db: Database, clock: FrozenClock, monthly: Program, steps: list[str]
) -> None:
    """Whatever the order of the two returns and the expiry of A's lot, the member keeps the 80 points given
    on day 20 (they last to day 50) and owes nothing: A's 100 points are gone, B's 100 came back."""
    member = _spend_a_on_b(db, clock, monthly)
    clock.advance(days=20)
    adjust(db, clock, monthly, member, 80, reason="Later goodwill")
    returned = {"A": 0, "B": 0}  # lines of each order returned so far: a half return takes the next line
    for step in steps:
        clock.advance(hours=1)
        if step == "expire":
            clock.advance(days=20)
            expire(db, clock, monthly)
            continue
        order, count = step[0], 1 if step.endswith("/2") else 2
        lines = [(f"{order}{n}", 1) for n in range(returned[order] + 1, returned[order] + count + 1)]
        returned[order] += count
        return_(db, clock, monthly, order, lines=lines)
    assert _shown(db, monthly, member) == (80, 0)
    assert_ledger_sound(db, monthly)


@pytest.mark.parametrize("held_by", ["a coupon", "a debit"])
def test_points_of_a_returned_order_held_by_a_coupon_or_a_debit_come_back_where_its_return_took_them(
    db: Database, clock: FrozenClock, monthly: Program, held_by: str
) -> None:
    """The same for a coupon cancelled, or a debit reversed, after the order was returned and its lot expired."""
    member = enrol(db, clock, monthly)
    purchase(db, clock, monthly, member, order_id="A", lines=[line("A1", 5_000), line("A2", 5_000)])  # 100 pts
    if held_by == "a coupon":
        coupon = redeem(db, clock, monthly, member, add_reward(db, clock, monthly, cost_points=100)).coupon
    else:
        debit = adjust(db, clock, monthly, member, -100, reason="Voucher handed over")
    clock.advance(days=20)
    adjust(db, clock, monthly, member, 80, reason="Later goodwill")  # lasts to day 50
    return_(db, clock, monthly, "A", amount=10_000)  # 80 from the goodwill, 20 owed
    clock.advance(days=20)
    expire(db, clock, monthly)
    if held_by == "a coupon":
        cancel(db, clock, monthly, coupon.code)
    else:
        reverse(db, clock, monthly, member, debit.transaction_id)
    assert _shown(db, monthly, member) == (80, 0)
    assert_ledger_sound(db, monthly)
