"""The dashboard's KPIs on a small story whose every figure is worked out by hand (both engines)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from palier.analytics.kpis import Orders, Period, kpis
from palier.clock import FrozenClock
from palier.db import Database
from palier.programs.models import Program
from palier.rewards import service as rewards
from palier.rewards.models import CouponUse, RedeemIn, RewardIn
from tests.services import factories as f

TWO_WEEKS = Period(date(2026, 3, 2), date(2026, 3, 15))  # Monday 2 to Sunday 15 March, Paris time


def at(day: int, month: int = 3, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


def buy(
    db: Database, clock: FrozenClock, program: Program, who: Any, when: datetime, amount: int, channel: str
) -> None:
    clock.set(when)
    f.purchase(db, clock, program, who, amount=amount, channel=channel)


def anonymous(db: Database, clock: FrozenClock, program: Program, when: datetime, amount: int, channel: str) -> None:
    clock.set(when)
    body = f.purchase_body(program, "mem_" + "0" * 26, clock=clock, amount=amount, channel=channel)
    body.member = None
    result, _ = f.send_purchase(db, clock, program, body)
    assert result.status == "anonymous"


@pytest.fixture
def story(db: Database, clock: FrozenClock, new_program: Callable[..., Program]) -> Program:
    """1 point per euro; points live one month; 100 points are worth 5.00 €."""
    program = new_program(points_lifetime_months=1, redeem_points=100, redeem_amount=500)
    clock.set(at(20, month=1))
    ann = f.enrol(db, clock, program, first_name="Ann", channel="web")
    clock.set(at(2, month=2))
    f.adjust(db, clock, program, ann, 50, reason="February gesture")  # expires 2 March (week 1), swept 3 March
    clock.set(at(2))
    bob = f.enrol(db, clock, program, first_name="Bob", channel="store")
    cat = f.enrol(db, clock, program, first_name="Cat", channel="web")
    # week 1 (2–8 March)
    buy(db, clock, program, ann, at(2), 4000, "store")  # +40
    buy(db, clock, program, ann, at(3), 2000, "web")  # +20
    clock.set(at(3, hour=10))
    f.expire(db, clock, program)  # Ann's 50 February points lapsed yesterday
    buy(db, clock, program, bob, at(4), 3000, "store")  # +30
    anonymous(db, clock, program, at(4, hour=11), 2500, "store")
    anonymous(db, clock, program, at(5), 1500, "web")
    clock.set(at(5, hour=12))
    f.adjust(db, clock, program, cat, 100)  # +100, no channel
    # week 2 (9–15 March)
    clock.set(at(9))
    reward_in = {"kind": "amount_off", "amount": 300, "cost_points": 60, "title": {"fr": "Bon", "en": "Voucher"}}
    with db.write() as conn:
        reward = rewards.create_reward(
            conn=conn, clock=clock, program=program, data=RewardIn.model_validate(reward_in), actor="test"
        )
        done = rewards.redeem(
            conn=conn, clock=clock, program=program, member_id=cat.id, data=RedeemIn(reward_id=reward.id)
        )
    clock.set(at(10))
    with db.write() as conn:
        use = CouponUse(channel="store", member_id=cat.id, order_total=2000, order_id="T-1")
        rewards.use_coupon(conn=conn, clock=clock, program=program, code=done.coupon.code, use=use)  # 60 redeemed
    buy(db, clock, program, bob, at(11), 1000, "store")  # +10
    clock.set(at(12))
    dan = f.enrol(db, clock, program, first_name="Dan", channel="app")
    buy(db, clock, program, dan, at(12, hour=10), 1234, "web")  # +12
    # after the period: counts in what members hold now, not in the period's flows
    buy(db, clock, program, ann, at(16), 500, "store")  # +5
    return program


def test_all_channels(db: Database, clock: FrozenClock, story: Program) -> None:
    with db.read() as conn:
        found = kpis(conn=conn, now=clock.now(), program=story, period=TWO_WEEKS)
    assert (found.members, found.new_members) == (4, 3)  # Ann joined in January
    assert [(w.week, w.issued, w.redeemed, w.expired) for w in found.weeks] == [
        (date(2026, 3, 2), 40 + 20 + 30 + 100, 0, 50),
        (date(2026, 3, 9), 10 + 12, 60, 0),
    ]
    assert (found.issued, found.redeemed, found.expired) == (212, 60, 50)
    assert found.redemption_rate == pytest.approx(60 / 212)
    assert found.breakage_rate == pytest.approx(50 / 212)  # Ann's 50 expired
    # Ann 60 pending (40 + 20, her 50 expired) + 5; Bob 40; Cat 100 - 60; Dan 12
    assert found.outstanding_points == 65 + 40 + 40 + 12
    assert found.liability == 157 * 5  # cents: 100 points are worth 5.00 €
    assert (found.active_members, found.buying_members_repeat) == (3, 2)  # Ann and Bob twice, Dan once
    assert found.repeat_rate == pytest.approx(2 / 3)
    assert found.member_orders == Orders(orders=5, revenue=4000 + 2000 + 3000 + 1000 + 1234)
    assert found.member_orders.basket == 2247  # 11 234 / 5 = 2 246.8
    assert found.non_member_orders == Orders(orders=2, revenue=4000)
    assert found.non_member_orders.basket == 2000


def test_by_channel(db: Database, clock: FrozenClock, story: Program) -> None:
    with db.read() as conn:
        store = kpis(conn=conn, now=clock.now(), program=story, period=TWO_WEEKS, channel="store")
        web = kpis(conn=conn, now=clock.now(), program=story, period=TWO_WEEKS, channel="web")
    assert (store.members, store.new_members) == (1, 1)  # Bob joined in store
    assert [(w.issued, w.redeemed, w.expired) for w in store.weeks] == [(70, 0, 0), (10, 60, 0)]
    assert store.redemption_rate == pytest.approx(60 / 80)
    assert (store.active_members, store.buying_members_repeat) == (2, 1)  # Bob twice in store, Ann once
    assert store.member_orders == Orders(orders=3, revenue=8000) and store.member_orders.basket == 2667
    assert store.non_member_orders == Orders(orders=1, revenue=2500)
    assert (web.members, web.new_members) == (2, 1)  # Ann and Cat
    assert [(w.issued, w.redeemed, w.expired) for w in web.weeks] == [(20, 0, 0), (12, 0, 0)]
    assert (web.active_members, web.buying_members_repeat, web.repeat_rate) == (2, 0, 0.0)
    assert web.non_member_orders == Orders(orders=1, revenue=1500)
    # what members hold now is not a channel figure: the same whatever the filter
    assert store.outstanding_points == web.outstanding_points == 157


def test_a_period_with_nothing_in_it(db: Database, clock: FrozenClock, story: Program) -> None:
    with db.read() as conn:
        found = kpis(
            conn=conn, now=clock.now(), program=story, period=Period(date(2025, 6, 1), date(2025, 6, 30))
        )  # Sunday 1 June: 6 weeks
    assert len(found.weeks) == 6 and found.issued == found.redeemed == found.expired == 0
    assert found.redemption_rate is None and found.repeat_rate is None and found.breakage_rate is None
    assert found.members == 0 and found.member_orders.basket is None


def test_weeks_follow_the_program_time_zone(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program = new_program(timezone="Pacific/Auckland")  # UTC+13 in March
    clock.set(at(1, hour=9))  # Sunday 1 March 09:00 UTC = Sunday 22:00 in Auckland
    member = f.enrol(db, clock, program)
    f.purchase(db, clock, program, member, amount=700)
    clock.set(at(1, hour=12))  # 01:00 on Monday 2 March in Auckland: the next week
    f.purchase(db, clock, program, member, amount=300)
    with db.read() as conn:
        found = kpis(conn=conn, now=clock.now(), program=program, period=Period(date(2026, 2, 23), date(2026, 3, 8)))
    assert [(w.week, w.issued) for w in found.weeks] == [(date(2026, 2, 23), 7), (date(2026, 3, 2), 3)]


def test_last_weeks() -> None:
    assert Period.last_weeks(date(2026, 3, 12), 4) == Period(date(2026, 2, 16), date(2026, 3, 12))


def test_a_channels_points_issued_are_net_of_the_returns_of_its_purchases(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """A return has no channel of its own: the points it takes back come off its purchase's channel."""
    program = new_program()
    ann = f.enrol(db, clock, program, first_name="Ann")
    clock.set(at(3))
    f.purchase(db, clock, program, ann, order_id="S-1", lines=[f.line("A", 4000)], channel="store")  # +40
    f.purchase(db, clock, program, ann, order_id="W-1", lines=[f.line("B", 2000)], channel="web")  # +20
    clock.set(at(10))
    f.return_(db, clock, program, "S-1", lines=[("A", 1)])  # -40, in week 2
    with db.read() as conn:
        everywhere = kpis(conn=conn, now=clock.now(), program=program, period=TWO_WEEKS)
        store = kpis(conn=conn, now=clock.now(), program=program, period=TWO_WEEKS, channel="store")
        web = kpis(conn=conn, now=clock.now(), program=program, period=TWO_WEEKS, channel="web")
    assert [w.issued for w in everywhere.weeks] == [60, -40]
    assert [w.issued for w in store.weeks] == [40, -40] and store.issued == 0
    assert web.issued == 20


def test_the_dashboard_is_computed_once_per_data_version(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    from palier.analytics.kpis import dashboard
    from palier.programs import service as programs
    from palier.programs.models import ProgramUpdate

    program = new_program(return_window_days=0)
    member = f.enrol(db, clock, program)
    f.purchase(db, clock, program, member, amount=1500)
    period = Period.last_weeks(date(2026, 3, 2), 4)

    def shown(p: Program) -> Any:
        with db.read() as conn:
            return dashboard(conn=conn, now=clock.now(), program=p, period=period)

    first = shown(program)
    assert first is shown(program)  # nothing written since: the same figures, not computed again
    assert first.kpis.issued == 15 and first.mix == {"store": 1}
    f.adjust(db, clock, program, member, 5)
    after_adjustment = shown(program)
    assert after_adjustment.kpis.issued == 20  # a ledger write: computed again
    anonymous(db, clock, program, clock.now(), 700, "web")
    after_walk_in = shown(program)
    assert after_walk_in.mix == {"store": 1, "web": 1} and after_walk_in.kpis.non_member_orders.orders == 1
    f.enrol(db, clock, program)
    assert shown(program).kpis.members == 2
    with db.write() as conn:
        changed = programs.update_program(
            conn=conn, clock=clock, program_id=program.id, changes=ProgramUpdate(redeem_amount=200), actor="t"
        )
    assert shown(program).kpis.liability == 20 and shown(changed).kpis.liability == 40  # 20 points at 2 cents


def test_the_dashboard_counts_a_merged_member_out_at_once(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """A merge posts nothing on the program's accounts nor adds a member row: one member fewer all the same."""
    from palier.analytics.kpis import dashboard

    program = new_program()
    ann, twin = f.enrol(db, clock, program, first_name="Ann"), f.enrol(db, clock, program, first_name="Ann")
    period = Period.last_weeks(clock.now().date(), 4)

    def members() -> int:
        with db.read() as conn:
            return dashboard(conn=conn, now=clock.now(), program=program, period=period).kpis.members

    assert members() == 2
    f.merge(db, clock, program, twin, ann)
    assert members() == 1


def test_what_the_program_owes_counts_store_credit_with_points(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """Turning 1 000 points into €10 of store credit does not lower what the program owes its members."""
    program = new_program(redeem_points=100, redeem_amount=100)  # 100 points are worth 1.00 €
    eve = f.enrol(db, clock, program, first_name="Eve")
    f.adjust(db, clock, program, eve, 1_500)
    data = {"kind": "store_credit", "cost_points": 1_000, "amount": 1_000, "title": {"fr": "Avoir", "en": "Credit"}}
    with db.write() as conn:
        credit = rewards.create_reward(conn=conn, clock=clock, program=program, data=RewardIn.model_validate(data),
                                       actor=f.ACTOR)  # fmt: skip
        rewards.redeem(conn=conn, clock=clock, program=program, member_id=eve.id, data=RedeemIn(reward_id=credit.id))
    with db.read() as conn:
        found = kpis(conn=conn, now=clock.now(), program=program, period=TWO_WEEKS)
    assert (found.outstanding_points, found.liability, found.store_credit) == (500, 500, 1_000)
    assert found.owed == 1_500  # what it owed before the redemption: 1 500 points at a cent each


def test_points_expired_while_the_worker_was_off_count_in_the_week_they_expired(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """The expiry job ran days late: the points still lapsed in their own week, on the dashboard as in the history."""
    from palier.analytics.kpis import dashboard

    program = new_program(points_lifetime_months=1)
    clock.set(at(5, month=2))
    ann = f.enrol(db, clock, program, first_name="Ann")
    f.purchase(db, clock, program, ann, amount=3000, channel="store")  # +30, expire Thursday 5 March (week 1)
    clock.set(at(11))  # Wednesday of week 2: the worker is back

    def expired_by_week(channel: str | None = None) -> list[int]:
        with db.read() as conn:
            found = dashboard(conn=conn, now=clock.now(), program=program, period=TWO_WEEKS, channel=channel)
        return [w.expired for w in found.kpis.weeks]

    assert expired_by_week() == [0, 0]  # gone from the balance, not yet booked
    f.mature(db, clock, program)
    f.expire(db, clock, program)
    assert expired_by_week() == [30, 0]
    assert expired_by_week("store") == [30, 0]
