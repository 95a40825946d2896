"""A membership paid again after its fee was refunded; a plan beside a tier."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from palier.clock import FrozenClock
from palier.db import Database
from palier.programs.models import Program
from palier.rewards import service as rewards
from tests.services.factories import enrol
from tests.services.test_memberships import add_plan, pay, refund
from tests.services.test_rewards import add_reward


def test_a_fee_paid_again_after_a_refund_buys_a_whole_period(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Withdrawn two days in, then paid again: the new fee buys a month from its own date (and its month's
    coupon), not the 28 days the refunded month had left."""
    delivery = add_reward(db, clock, program, kind="free_shipping", amount=None, cost_points=300)
    program = add_plan(db, clock, program, benefits={"period_rewards": [delivery.id]})
    ann = enrol(db, clock, program, first_name="Ann")
    first = pay(db, clock, program, ann.id, payment_id="fee-1")
    clock.advance(days=2)
    refund(db, clock, program, "fee-1")
    clock.advance(hours=1)
    again = pay(db, clock, program, ann.id, payment_id="fee-2")
    assert again.state == "active"
    assert again.period_start == clock.now()
    assert again.period_end >= first.period_end + timedelta(days=2)
    with db.read() as conn:
        states = sorted(c.state for c in rewards.member_coupons(conn=conn, program_id=program.id, member_id=ann.id))
    assert states == ["cancelled", "issued"]


def test_a_fee_paid_again_the_day_of_a_refund_gives_its_coupon(
    db: Database, clock: FrozenClock, program: Program, **_: Any
) -> None:
    delivery = add_reward(db, clock, program, kind="free_shipping", amount=None, cost_points=300)
    program = add_plan(db, clock, program, benefits={"period_rewards": [delivery.id]})
    ann = enrol(db, clock, program, first_name="Ann")
    pay(db, clock, program, ann.id, payment_id="fee-1")
    clock.advance(minutes=10)
    refund(db, clock, program, "fee-1")
    clock.advance(minutes=10)
    again = pay(db, clock, program, ann.id, payment_id="fee-2")
    assert again.state == "active" and again.period_rewards_not_given == []
    with db.read() as conn:
        states = sorted(c.state for c in rewards.member_coupons(conn=conn, program_id=program.id, member_id=ann.id))
    assert states == ["cancelled", "issued"]


def test_a_gold_member_with_a_plan_earns_the_higher_multiplier_not_both(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    from tests.services.test_tiers import spend, with_tiers

    program = with_tiers(db, clock, program)  # Gold ×1.5 from €500
    program = add_plan(db, clock, program, benefits={"multiplier_percent": 200})
    ann = enrol(db, clock, program, first_name="Ann")
    spend(db, clock, program, ann, 500)
    pay(db, clock, program, ann.id, payment_id="fee-1")
    earned = spend(db, clock, program, ann, 40)
    assert (earned.points, [a.text for a in earned.awards]) == (80, ["Club ×2: +40"])
