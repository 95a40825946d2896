"""Edges of paying with points and of coupons that a till or a member hits (found by a review)."""

from __future__ import annotations

from typing import Any

from palier.clock import FrozenClock
from palier.db import Database
from palier.programs.models import Program
from tests.services.factories import adjust, enrol
from tests.services.test_pay_with_points import pay, refused


def test_the_max_points_a_refusal_names_are_taken(db: Database, clock: FrozenClock, new_program: Any) -> None:
    program = new_program(redeem_points=150, redeem_amount=100)  # 150 points = €1.00
    member = enrol(db, clock, program, first_name="Pia")
    adjust(db, clock, program, member, 5_000)
    error = refused("payment_above_share", db, clock, program, member, order_id="X", points=900, order_total=1_002)
    assert error.extra["max_amount"] == 501
    paid = pay(db, clock, program, member, order_id="X", points=error.extra["max_points"], order_total=1_002)
    assert paid.amount == 501  # the most points may pay of it, as the refusal said


def test_max_points_when_a_point_is_worth_several_cents(db: Database, clock: FrozenClock, new_program: Any) -> None:
    program = new_program(redeem_points=1, redeem_amount=5)  # a point = 5 cents
    member = enrol(db, clock, program, first_name="Pia")
    adjust(db, clock, program, member, 5_000)
    error = refused("payment_above_share", db, clock, program, member, order_id="X", points=200, order_total=999)
    assert error.extra["max_points"] == 99
    paid = pay(db, clock, program, member, order_id="X", points=99, order_total=999)
    assert paid.amount == 495


def test_points_short_at_checkout_say_how_many_are_missing(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program, first_name="Pia")
    adjust(db, clock, program, member, 300)
    error = refused("insufficient_points", db, clock, program, member, order_id="X", points=400, order_total=10_000)
    assert (error.extra["needed"], error.extra["available"], error.extra["missing"]) == (400, 300, 100)


def _catalog(db: Database, clock: FrozenClock, program: Program, who: Any) -> list[Any]:
    from palier.rewards import service as rewards

    with db.read() as conn:
        return rewards.catalog(conn=conn, clock=clock, program=program, member_id=who.id)


def test_a_reward_out_of_reach_for_another_reason_is_not_yours_now(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    from palier.web import portal_view
    from tests.services.test_rewards import add_reward, redeem

    member = enrol(db, clock, program, first_name="Alice", language="fr")
    adjust(db, clock, program, member, 2_000)
    once = add_reward(db, clock, program, limit_per_member={"count": 1, "period": "day"}, cost_points=100)
    gone = add_reward(db, clock, program, stock=1, cost_points=200, title={"fr": "Sac", "en": "Bag"})
    redeem(db, clock, program, member, once)
    redeem(db, clock, program, member, gone)
    found = {item.reward.id: item for item in _catalog(db, clock, program, member)}
    assert found[once.id].blocked_by == "limit_reached" and found[once.id].points_needed == 0
    assert found[once.id].message == "Bon de 5 € : limite atteinte"
    assert found[gone.id].message == "Sac : épuisé"
    with db.read() as conn:
        views = {v.id: v for v in portal_view.catalog(conn, clock, program, member.id, "en")}
    assert "Yours now" not in views[once.id].message and "Yours now" not in views[gone.id].message


def test_a_free_product_already_free_in_the_cart_keeps_its_coupon(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    from tests.services.test_rewards import add_reward, points, use, validate
    from tests.services.test_rewards import redeem as redeem_reward
    from tests.services.test_rewards import refused as refused_call

    member = enrol(db, clock, program, first_name="Alice", language="en")
    adjust(db, clock, program, member, 500)
    coffee = add_reward(db, clock, program, kind="free_product", amount=None, sku="COFFEE", cost_points=100)
    code = redeem_reward(db, clock, program, member, coffee).coupon.code
    lines = [
        {"sku": "COFFEE", "quantity": 1, "unit_price": 320, "discount": 320},
        {"sku": "CAKE", "quantity": 1, "unit_price": 450},
    ]
    refused_call("coupon_nothing_off", validate, db, clock, program, code, lines=lines)
    error = refused_call("coupon_nothing_off", use, db, clock, program, code, lines=lines)
    assert error.field == "lines"
    assert points(db, program, member) == (400, 100)  # still held for the coupon, which is still to use
    assert use(db, clock, program, code, lines=[{"sku": "COFFEE", "quantity": 1, "unit_price": 320}]).discount == 320


def test_a_french_title_keeps_its_decimal_comma_in_the_points_still_needed(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    from tests.services.test_rewards import add_reward

    member = enrol(db, clock, program, first_name="Alice", language="fr")
    adjust(db, clock, program, member, 460)
    add_reward(db, clock, program, cost_points=1_500, title={"fr": "Bon de 7,50 €", "en": "€7.50 voucher"})
    (item,) = _catalog(db, clock, program, member)
    assert item.message == "Plus que 1\u202f040 points pour : Bon de 7,50 €"
