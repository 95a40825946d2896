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


def test_a_members_plans_and_their_payments_are_found_through_indexes(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Every purchase of a program with plans reads the member's plans of its day (lapsed ones included, for a
    purchase sent late): by an index on (program, member), never a scan of every membership; a refund or a
    payment finds the membership's payments by their membership."""
    from sqlalchemy import event

    from palier.memberships import service as memberships

    program = add_plan(db, clock, program)
    ann = enrol(db, clock, program, first_name="Ann")
    pay(db, clock, program, ann.id, payment_id="fee-1")
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        plans_read = "FROM plans JOIN memberships" in statement or "FROM memberships JOIN plans" in statement
        payments_read = statement.lstrip().startswith("SELECT") and "membership_payments.membership_id" in statement
        if plans_read or payments_read:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.read() as conn:
            assert memberships.live_plans(conn, program_id=program.id, member_id=ann.id, now=clock.now()) == frozenset(
                {"club"}
            )
            memberships.member_memberships(conn=conn, program_id=program.id, member_id=ann.id)
        clock.advance(days=2)
        refund(db, clock, program, "fee-1")  # looks for a later payment of the membership
        pay(db, clock, program, ann.id, payment_id="fee-2")  # and for a lapsed membership to revive
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert len(seen) >= 4
    with db.read() as conn:
        for statement, parameters in seen:
            if db.is_postgres:
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # an index if there is one to use
                plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
                scanned = [line for line in plan.splitlines() if "Seq Scan on membership" in line]
            else:
                plan = "\n".join(
                    str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
                )
                scanned = [line for line in plan.splitlines() if line.strip().startswith("SCAN membership")]
            assert scanned == [], plan
