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


def test_store_credit_spent_at_many_tills_at_once_is_spent_once(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    import threading
    from collections import Counter

    from palier.ledger import operations as ledger
    from tests.services.test_concurrency import Outcome, run_threads
    from tests.services.test_rewards import add_reward
    from tests.services.test_rewards import redeem as redeem_reward

    member = enrol(db, clock, program, first_name="Cid")
    adjust(db, clock, program, member, 1_000)
    credit = add_reward(db, clock, program, kind="store_credit", cost_points=1_000, amount=1_000)
    assert redeem_reward(db, clock, program, member, credit).wallet == 1_000
    outcome = Outcome()
    paid: list[Any] = []
    lock = threading.Lock()

    def till(index: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        found = outcome.run(
            lambda: pay(db, clock, program, member, kind="credit", order_id=f"S-{index}", amount=400, order_total=900)
        )
        if found is not None:
            with lock:
                paid.append(found)

    run_threads(8, till)
    refused_as = Counter(failure.split(":")[0] for failure in outcome.failures)  # not a refusal Outcome expects
    assert len(paid) == 2 and refused_as == Counter({"insufficient_credit": 6}), outcome.failures
    with db.read() as conn:
        assert ledger.balances_of(conn, member.id, "wallet") == 200


def test_coupons_used_as_the_expiry_job_reaches_them_end_one_way(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    import threading
    from datetime import timedelta

    from palier.rewards import service as rewards
    from palier.rewards.models import CouponUse
    from tests.services.factories import balance
    from tests.services.test_concurrency import Outcome, run_threads
    from tests.services.test_rewards import add_reward
    from tests.services.test_rewards import redeem as redeem_reward

    members = [enrol(db, clock, program, first_name=f"M{i}") for i in range(6)]
    coffee = add_reward(db, clock, program, cost_points=100, valid_days=1)
    codes = []
    for member in members:
        adjust(db, clock, program, member, 100)
        codes.append(redeem_reward(db, clock, program, member, coffee).coupon.code)
    due = clock.now() + timedelta(days=1)
    till_clock, job_clock = FrozenClock(due - timedelta(microseconds=1)), FrozenClock(due)
    outcome = Outcome()
    used: list[str] = []
    lock = threading.Lock()

    def work(index: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        if index == len(codes):
            outcome.run(lambda: rewards.expire_coupons(db, job_clock, batch_size=2, program_id=program.id))
            return
        body = CouponUse(channel="store", order_id=f"T-{index}")

        def command() -> Any:
            with db.write() as conn:
                return rewards.use_coupon(conn=conn, clock=till_clock, program=program, code=codes[index], use=body)

        if outcome.run(command) is not None:
            with lock:
                used.append(codes[index])

    run_threads(len(codes) + 1, work)
    assert all(f.startswith("coupon_expired:") for f in outcome.failures), outcome.failures  # the job came first
    rewards.expire_coupons(db, job_clock, program_id=program.id)
    for member, code in zip(members, codes, strict=True):
        shown = balance(db, program, member)
        with db.read() as conn:
            coupon = rewards.find_coupon(conn=conn, program_id=program.id, code=code)
        assert coupon.state == ("used" if code in used else "expired")
        assert (shown.available, shown.held) == ((0, 0) if code in used else (100, 0))


def test_points_too_few_for_a_cent_are_told_the_fewest_that_pay(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    program = new_program(redeem_points=1_000, redeem_amount=100)  # 10 points to the cent
    member = enrol(db, clock, program, first_name="Tim")
    adjust(db, clock, program, member, 100)
    error = refused("payment_too_small", db, clock, program, member, order_id="T", points=5)
    assert error.extra["min_points"] == 10 and "use at least 10." in error.detail, error.detail
    assert pay(db, clock, program, member, order_id="T", points=10).amount == 1


def test_the_portal_does_not_offer_a_coupon_past_its_date(db: Database, clock: FrozenClock, program: Program) -> None:

    from palier.web import portal_view
    from tests.services.test_rewards import add_reward, refused, use
    from tests.services.test_rewards import redeem as redeem_reward

    member = enrol(db, clock, program, first_name="Alice", language="en")
    adjust(db, clock, program, member, 500)
    coffee = add_reward(db, clock, program, cost_points=100, valid_days=1)
    code = redeem_reward(db, clock, program, member, coffee).coupon.code
    clock.advance(days=1, minutes=5)  # the expiry job has not run yet
    refused("coupon_expired", use, db, clock, program, code)
    with db.read() as conn:
        (shown,) = portal_view.coupons(conn, program, member.id, "en", clock.now())
    assert shown.state == "expired" and shown.qr_svg is None
