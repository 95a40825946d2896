"""Redeeming a reward holds its points and issues a coupon; its refusals write nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import Unprocessable
from palier.ledger.tables import lots
from palier.ledger.verify import verify
from palier.members.models import Member
from palier.programs.models import Program
from palier.rewards import service as rewards
from palier.rewards.models import CouponCheck, CouponUse, RedeemIn, Redemption, Reward, RewardIn
from palier.rewards.tables import coupons
from tests.services.factories import adjust, balance, enrol, statements_run


def a_reward(db: Database, clock: FrozenClock, program: Program, **fields: Any) -> Reward:
    data = {"kind": "amount_off", "amount": 500, "cost_points": 300, "title": {"fr": "Bon", "en": "Voucher"}}
    with db.write() as conn:
        return rewards.create_reward(
            conn=conn, clock=clock, program=program, data=RewardIn.model_validate(data | fields), actor="test"
        )


def redeem(db: Database, clock: FrozenClock, program: Program, member: Member, reward: Reward) -> Redemption:
    with db.write() as conn:
        return rewards.redeem(
            conn=conn, clock=clock, program=program, member_id=member.id, data=RedeemIn(reward_id=reward.id)
        )


def coupon_count(db: Database, member: Member) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).where(coupons.c.member_id == member.id)).scalar_one())


def test_a_redemption_holds_the_points_until_the_coupon_is_used(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    adjust(db, clock, program, member, 1_000)
    reward = a_reward(db, clock, program)
    done = redeem(db, clock, program, member, reward)
    assert (done.available, done.held, done.coupon.state) == (700, 300, "issued")
    with db.read() as conn:
        check = CouponCheck(channel="store", member_id=member.id, order_total=2_000)
        valid = rewards.validate_coupon(conn=conn, clock=clock, program=program, code=done.coupon.code, check=check)
    assert valid.discount == 500
    with db.write() as conn:
        use = CouponUse(channel="store", member_id=member.id, order_total=2_000, order_id="A-1")
        used, _ = rewards.use_coupon(conn=conn, clock=clock, program=program, code=done.coupon.code, use=use)
    assert used.state == "used"
    after = balance(db, program, member)
    assert (after.available, after.held) == (700, 0)


def test_a_redemption_across_two_lots_costs_seven_statements_on_postgresql_and_tells_the_stored_balances(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """What a redemption costs the database (see bench/redeem.py): the member's lock, their status with their
    address (for the mailer's reward_redeemed event), the reward, whether any of the member's lots is due to
    mature or expire (none here: nothing to catch up), the balances, the lots it takes from, and one
    statement (ledger.post.write_with) for the transaction, its postings and balances, the hold, its allocations,
    the lots' remaining points, the coupon and the outbox's event. SQLite writes those one statement per table,
    in process. The balances it answers are computed from the ones read under the member's lock: they must be
    what is stored."""
    member = enrol(db, clock, program)
    adjust(db, clock, program, member, 200)
    adjust(db, clock, program, member, 250)
    reward = a_reward(db, clock, program)
    with statements_run(db) as seen:
        done = redeem(db, clock, program, member, reward)
    assert len(seen) == (7 if db.is_postgres else 13), seen
    stored = balance(db, program, member)
    assert (done.available, done.held) == (stored.available, stored.held) == (150, 300)
    with db.read() as conn:
        left = conn.execute(select(lots.c.remaining).where(lots.c.member_id == member.id).order_by(lots.c.earned_at))
        assert sorted(r for (r,) in left) == [0, 150]  # one lot emptied, 100 of the other taken
        assert verify(conn, program_id=program.id) == []


def test_too_few_points_is_refused_with_what_is_missing_and_writes_nothing(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    adjust(db, clock, program, member, 250)
    reward = a_reward(db, clock, program)
    with pytest.raises(Unprocessable) as refused:
        redeem(db, clock, program, member, reward)
    assert refused.value.code == "insufficient_points"
    assert (refused.value.extra["needed"], refused.value.extra["available"], refused.value.extra["missing"]) == (
        300,
        250,
        50,
    )
    assert (balance(db, program, member).available, coupon_count(db, member)) == (250, 0)


def test_too_few_points_for_store_credit_is_refused_and_writes_nothing(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    adjust(db, clock, program, member, 100)
    reward = a_reward(db, clock, program, kind="store_credit")
    with pytest.raises(Unprocessable) as refused:
        redeem(db, clock, program, member, reward)
    assert refused.value.code == "insufficient_points"
    assert (balance(db, program, member).available, coupon_count(db, member)) == (100, 0)


def test_a_member_limit_still_counts_the_member_s_coupons(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    adjust(db, clock, program, member, 1_000)
    reward = a_reward(db, clock, program, limit_per_member={"count": 1, "period": "ever"})
    redeem(db, clock, program, member, reward)
    with pytest.raises(Unprocessable) as refused:
        redeem(db, clock, program, member, reward)
    assert refused.value.code == "reward_limit_reached"
    assert (balance(db, program, member).available, coupon_count(db, member)) == (700, 1)
