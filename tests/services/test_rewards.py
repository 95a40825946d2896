"""Rewards: redeem (points held, a coupon issued), use at the till (captured), cancel or expire (points back).

Every test runs on both engines and its program's ledger must verify clean at teardown.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import PalierError
from palier.members.models import Member
from palier.notify import outbox
from palier.programs.models import Program
from palier.rewards import codes
from palier.rewards import service as rewards
from palier.rewards.models import Coupon, CouponCheck, CouponUse, RedeemIn, Reward, RewardIn, RewardUpdate
from tests.services.factories import ACTOR, adjust, balance, enrol, expire, history, line, mature, purchase, return_
from tests.services.test_tiers import with_tiers

# --- helpers ---


def add_reward(db: Database, clock: FrozenClock, program: Program, **fields: Any) -> Reward:
    data = {"kind": "amount_off", "cost_points": 500, "amount": 500, "title": {"fr": "Bon de 5 €", "en": "€5 voucher"}}
    with db.write() as conn:
        return rewards.create_reward(
            conn=conn, clock=clock, program=program, data=RewardIn.model_validate(data | fields), actor=ACTOR
        )


def redeem(db: Database, clock: FrozenClock, program: Program, who: Member, reward: Reward, **extra: Any):  # type: ignore[no-untyped-def]
    with db.write() as conn:
        return rewards.redeem(
            conn=conn, clock=clock, program=program, member_id=who.id, data=RedeemIn(reward_id=reward.id, **extra)
        )


def use(db: Database, clock: FrozenClock, program: Program, code: str, **fields: Any) -> Coupon:
    body = CouponUse.model_validate({"channel": "store", "order_id": "T-1"} | fields)
    with db.write() as conn:
        coupon, _ = rewards.use_coupon(conn=conn, clock=clock, program=program, code=code, use=body)
    return coupon


def cancel(db: Database, clock: FrozenClock, program: Program, code: str) -> Coupon:
    with db.write() as conn:
        return rewards.cancel_coupon(conn=conn, clock=clock, program=program, code=code, actor=ACTOR)


def validate(db: Database, clock: FrozenClock, program: Program, code: str, **fields: Any):  # type: ignore[no-untyped-def]
    with db.read() as conn:
        return rewards.validate_coupon(
            conn=conn,
            clock=clock,
            program=program,
            code=code,
            check=CouponCheck.model_validate({"channel": "store"} | fields),
        )


def refused(code: str, call: Any, *args: Any, **kwargs: Any) -> PalierError:
    with pytest.raises(PalierError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.detail
    return caught.value


def points(db: Database, program: Program, who: Member) -> tuple[int, int]:
    b = balance(db, program, who)
    return b.available, b.held


@pytest.fixture
def alice(db: Database, clock: FrozenClock, program: Program) -> Member:
    member = enrol(db, clock, program, first_name="Alice", language="en")
    adjust(db, clock, program, member, 1200, reason="Opening balance")
    return member


# --- codes ---


def test_codes_carry_a_check_character_that_catches_typos() -> None:
    for _ in range(200):
        code = codes.new_code()
        assert len(code) == 11 and codes.is_well_formed(code)
        i = _ % 10
        typo = code[:i] + next(c for c in codes.ALPHABET if c != code[i]) + code[i + 1 :]
        assert not codes.is_well_formed(typo)
        if code[i] != code[i + 1]:
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
            # Luhn mod 32 misses only the swap of two characters whose values differ by 16 or 31
            assert not codes.is_well_formed(swapped) or abs(
                codes.ALPHABET.index(code[i]) - codes.ALPHABET.index(code[i + 1])
            ) in (16, 31)
    code = codes.new_code()
    typed = f" {code[:5].lower()}-{code[5:]} ".replace("0", "O").replace("1", "l")
    assert codes.normalise(typed) == code
    # as a phone or a word processor writes it: typographic dashes, a no-break space, full-width characters
    # (a Japanese keyboard), a zero-width space copied from an e-mail
    for typed in (
        f"{code[:4]}\u2013{code[4:8]}\u2011{code[8:]}",
        f"{code[:4]}\u2014{code[4:8]}\u2212{code[8:]}",
        f"{code[:4]}\u00a0{code[4:8]}\u200b{code[8:]}",
        "".join(chr(ord(c) + 0xFEE0) for c in code),
    ):
        assert codes.normalise(typed) == code, typed


# --- redeem, use, cancel, expire ---


def test_redeeming_holds_the_points_and_using_the_coupon_spends_them(
    db: Database, clock: FrozenClock, program: Program, alice: Member
) -> None:
    voucher = add_reward(db, clock, program)
    redemption = redeem(db, clock, program, alice, voucher)
    coupon = redemption.coupon
    assert (redemption.available, redemption.held) == (700, 500)
    assert coupon.state == "issued" and coupon.points == 500 and coupon.member_id == alice.id
    assert coupon.expires_at == clock.now() + timedelta(days=30)

    checked = validate(db, clock, program, coupon.code, member_id=alice.id, order_total=3_000)
    assert checked.discount == 500 and checked.describes == "€5.00 off"
    assert points(db, program, alice) == (700, 500)  # validating writes nothing

    clock.advance(days=2)
    used = use(db, clock, program, coupon.code, order_id="T-42", store_id="lyon-1", order_total=3_000)
    assert used.state == "used" and used.order_id == "T-42" and used.discount == 500
    assert points(db, program, alice) == (700, 0)
    again = use(db, clock, program, coupon.code, order_id="T-42", store_id="lyon-1", order_total=3_000)
    assert again == used  # the till retried: same answer, no second capture
    error = refused("coupon_used", use, db, clock, program, coupon.code, order_id="T-43")
    assert error.extra["order_id"] == "T-42"
    reasons = [h.reason for h in history(db, program, alice)]
    assert reasons[-2:] == ["Redeemed: €5 voucher", "Coupon used: €5 voucher (order #T-42)"]  # oldest first


def test_cancelling_gives_the_points_back_to_their_lots(
    db: Database, clock: FrozenClock, program: Program, alice: Member
) -> None:
    voucher = add_reward(db, clock, program, stock=3)
    coupon = redeem(db, clock, program, alice, voucher).coupon
    with db.read() as conn:
        assert rewards.get_reward(conn=conn, program_id=program.id, reward_id=voucher.id).stock_left == 2
    cancelled = cancel(db, clock, program, coupon.code)
    assert cancelled.state == "cancelled"
    assert points(db, program, alice) == (1200, 0)
    assert cancel(db, clock, program, coupon.code) == cancelled  # twice: nothing more happens
    with db.read() as conn:
        assert rewards.get_reward(conn=conn, program_id=program.id, reward_id=voucher.id).stock_left == 3
    refused("coupon_cancelled", use, db, clock, program, coupon.code)


def test_points_whose_lots_expired_while_held_expire_when_the_coupon_is_cancelled(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    program = new_program(points_lifetime_months=1)
    member = enrol(db, clock, program, first_name="Bea")
    adjust(db, clock, program, member, 300)  # expires in a month
    clock.advance(days=20)
    adjust(db, clock, program, member, 300)  # expires 20 days later
    coffee = add_reward(db, clock, program, cost_points=400, valid_days=60)
    coupon = redeem(db, clock, program, member, coffee).coupon  # 300 from the first lot, 100 from the second
    clock.advance(days=15)  # the first lot's date has passed
    expire(db, clock, program)
    cancel(db, clock, program, coupon.code)
    assert points(db, program, member) == (200 + 100, 0)  # the second lot whole again; the first lot's 300 expired
    lines = history(db, program, member)
    assert lines[-1].reason_code == "coupon_cancelled" and lines[-1].available == 100


def test_the_expiry_job_voids_unused_coupons_and_runs_safely_twice(
    db: Database, clock: FrozenClock, program: Program, alice: Member
) -> None:
    voucher = add_reward(db, clock, program, valid_days=7, stock=10)
    first = redeem(db, clock, program, alice, voucher).coupon
    clock.advance(days=3)
    second = redeem(db, clock, program, alice, voucher).coupon
    clock.advance(days=5)  # the first is 8 days old, the second 5
    refused("coupon_expired", validate, db, clock, program, first.code)
    assert rewards.expire_coupons(db, clock, program_id=program.id) == 1
    assert rewards.expire_coupons(db, clock, program_id=program.id) == 0
    assert points(db, program, alice) == (700, 500)
    with db.read() as conn:
        states = {c.code: c.state for c in rewards.member_coupons(conn=conn, program_id=program.id, member_id=alice.id)}
        assert rewards.get_reward(conn=conn, program_id=program.id, reward_id=voucher.id).stock_left == 9
    assert states == {first.code: "expired", second.code: "issued"}
    assert history(db, program, alice)[-1].reason == "Coupon expired unused: €5 voucher, points returned"


# --- refusals: each its own code, nothing written ---


def test_each_refusal_has_its_code_and_writes_nothing(
    db: Database, clock: FrozenClock, program: Program, alice: Member
) -> None:
    now = clock.now()
    pricey = add_reward(db, clock, program, cost_points=5_000)
    later = add_reward(db, clock, program, starts_at=now + timedelta(days=3))
    over = add_reward(db, clock, program, ends_at=now - timedelta(seconds=1), starts_at=now - timedelta(days=9))
    gone = add_reward(db, clock, program, stock=0)
    once = add_reward(db, clock, program, cost_points=10, limit_per_member={"count": 1, "period": "month"})
    program = with_tiers(db, clock, program)  # alice has not reached gold
    vip = add_reward(db, clock, program, cost_points=10, eligibility={"tiers": ["gold"]})
    redeem(db, clock, program, alice, once)
    before = points(db, program, alice), history(db, program, alice)

    error = refused("insufficient_points", redeem, db, clock, program, alice, pricey)
    assert (error.extra["needed"], error.extra["available"], error.extra["missing"]) == (5_000, 1_190, 3_810)
    assert "3810 more" in error.detail
    refused("reward_not_started", redeem, db, clock, program, alice, later)
    refused("reward_ended", redeem, db, clock, program, alice, over)
    refused("out_of_stock", redeem, db, clock, program, alice, gone)
    refused("reward_limit_reached", redeem, db, clock, program, alice, once)
    refused("reward_not_eligible", redeem, db, clock, program, alice, vip)
    with db.write() as conn:
        refused("reward_not_found", rewards.redeem, conn=conn, clock=clock, program=program, member_id=alice.id,
                data=RedeemIn(reward_id="rwd_01JD3Z6Q4W8K2M9T7V5X3C1B0A"))  # fmt: skip
    assert (points(db, program, alice), history(db, program, alice)) == before

    clock.advance(days=31)  # a new month: the limit allows one more
    redeem(db, clock, program, alice, once)


def test_a_reward_limited_to_some_channels_is_redeemed_anywhere_and_used_only_there(
    db: Database, clock: FrozenClock, program: Program, alice: Member
) -> None:
    """The channels of a reward say where its coupon is used: free delivery asked for at the till is issued
    (the member orders online that evening), and the web shop takes it while the till does not."""
    web = add_reward(db, clock, program, kind="free_shipping", amount=None, cost_points=10, channels=["web"])
    done = redeem(db, clock, program, alice, web, channel="store")
    assert done.coupon.state == "issued" and done.coupon.channels == ["web"]
    refused("coupon_wrong_channel", use, db, clock, program, done.coupon.code, channel="store")
    assert use(db, clock, program, done.coupon.code, channel="web", shipping=499).state == "used"


def test_coupon_refusals_at_the_till(db: Database, clock: FrozenClock, program: Program, alice: Member) -> None:
    bob = enrol(db, clock, program, first_name="Bob")
    coffee = add_reward(db, clock, program, kind="free_product", amount=None, sku="COFFEE", cost_points=100)
    web = add_reward(db, clock, program, cost_points=100, channels=["web", "app"], min_order=2_000)
    coupon = redeem(db, clock, program, alice, coffee).coupon
    web_coupon = redeem(db, clock, program, alice, web).coupon

    refused(
        "coupon_code_mistyped",
        validate,
        db,
        clock,
        program,
        coupon.code[:-1] + ("0" if coupon.code[-1] != "0" else "1"),
    )
    refused("coupon_code_mistyped", validate, db, clock, program, "HELLO")
    body = codes.new_code()[:10]
    unknown = body + codes.check_character(body)
    refused("coupon_not_found", validate, db, clock, program, unknown)
    refused("coupon_other_member", validate, db, clock, program, coupon.code, member_id=bob.id)
    refused("coupon_wrong_channel", validate, db, clock, program, web_coupon.code)
    short = refused("coupon_min_order", validate, db, clock, program, web_coupon.code, channel="web", order_total=1_999)
    assert "at least €20.00; the cart is €19.99" in short.detail, short.detail
    refused(
        "coupon_product_missing", validate, db, clock, program, coupon.code, lines=[line("BREAD", 250).model_dump()]
    )
    ok = validate(db, clock, program, coupon.code, lines=[line("COFFEE", 180, 2).model_dump()])
    assert ok.discount == 180 and ok.describes == "Free: COFFEE"
    assert points(db, program, alice) == (1000, 200)


def test_percent_off_is_capped_and_rounded_down(
    db: Database, clock: FrozenClock, program: Program, alice: Member
) -> None:
    tenth = add_reward(db, clock, program, kind="percent_off", amount=None, percent=10, max_discount=1_500)
    coupon = redeem(db, clock, program, alice, tenth).coupon
    assert validate(db, clock, program, coupon.code, order_total=12_345).discount == 1_234
    assert validate(db, clock, program, coupon.code, order_total=50_000).discount == 1_500
    assert validate(db, clock, program, coupon.code).discount is None  # no cart: the till must send one


def test_free_shipping_takes_off_the_carts_shipping(
    db: Database, clock: FrozenClock, program: Program, alice: Member
) -> None:
    delivery = add_reward(db, clock, program, kind="free_shipping", amount=None, cost_points=10)
    coupon = redeem(db, clock, program, alice, delivery).coupon
    cart = [line("BOX", 3_500).model_dump()]
    assert validate(db, clock, program, coupon.code, lines=cart, shipping=490).discount == 490
    nothing = refused("coupon_nothing_off", validate, db, clock, program, coupon.code, lines=cart)
    assert nothing.field == "shipping"  # a cart without shipping: the coupon is kept for one with some
    assert validate(db, clock, program, coupon.code).discount is None  # no cart: the till must send one


def test_store_credit_lands_in_the_wallet_at_once(
    db: Database, clock: FrozenClock, program: Program, alice: Member
) -> None:
    credit = add_reward(db, clock, program, kind="store_credit", cost_points=1_000, amount=1_000)
    redemption = redeem(db, clock, program, alice, credit)
    assert redemption.coupon.state == "used" and redemption.wallet == 1_000
    assert (redemption.available, redemption.held) == (200, 0)
    refused("coupon_used", use, db, clock, program, redemption.coupon.code)


def test_a_granted_coupon_costs_nothing_and_is_granted_once(
    db: Database, clock: FrozenClock, program: Program, alice: Member
) -> None:
    gift = add_reward(db, clock, program, cost_points=1)
    with db.write() as conn:
        first = rewards.grant_coupon(
            conn=conn, clock=clock, program=program, member_id=alice.id, reward_id=gift.id,
            reason="€10 for every €100", source_ref="spend-step:1",
        )  # fmt: skip
        again = rewards.grant_coupon(
            conn=conn, clock=clock, program=program, member_id=alice.id, reward_id=gift.id,
            reason="€10 for every €100", source_ref="spend-step:1",
        )  # fmt: skip
    assert again == first and first.points == 0 and first.source == "grant"
    with db.read() as conn:  # once, with what a mail about the gift needs
        [told] = outbox.recent(conn, program_id=program.id, types=["coupon_granted"])
    assert told["subject_id"] == alice.id and told["payload"] == {
        "member_id": alice.id,
        "email": alice.email,
        "language": alice.language,
        "reward_id": gift.id,
        "title": getattr(gift.title, alice.language),
        "kind": gift.kind,
        "code": first.code,
        "expires_at": first.expires_at.isoformat() if first.expires_at else None,
        "amount": gift.amount,
        "currency": program.currency,
        "reason": "€10 for every €100",
    }
    used = use(db, clock, program, first.code)
    assert used.state == "used" and points(db, program, alice) == (1200, 0)


# --- the catalog as a member sees it ---


def test_the_catalog_says_how_far_each_reward_is_nearest_first(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program, first_name="Chloé", language="fr")
    adjust(db, clock, program, member, 60)
    add_reward(db, clock, program, cost_points=500)
    coffee = add_reward(db, clock, program, cost_points=100, title={"fr": "Café offert", "en": "Free coffee"})
    add_reward(db, clock, program, cost_points=50, title={"fr": "Macaron", "en": "Macaron"}, stock=0)
    with db.read() as conn:
        items = rewards.catalog(conn=conn, clock=clock, program=program, member_id=member.id)
        affordable = rewards.catalog(conn=conn, clock=clock, program=program, member_id=member.id, affordable_only=True)
    assert [(i.title, i.points_needed, i.blocked_by) for i in items] == [
        ("Macaron", 0, "out_of_stock"),
        ("Café offert", 40, "insufficient_points"),
        ("Bon de 5 €", 440, "insufficient_points"),
    ]
    assert items[1].message == "Plus que 40 points pour : Café offert"
    assert affordable == []
    shown = balance_with_rewards(db, clock, program, member)
    assert [(n.reward_id, n.points_needed) for n in shown][:1] == [(coffee.id, 40)]


def test_a_member_in_debt_is_told_the_points_the_debt_asks_first(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Points earned repay a debt first: owing 50, a 100-point coffee is 150 points away, not 100."""
    member = enrol(db, clock, program, first_name="Dan", language="en")
    order = purchase(db, clock, program, member, lines=[line("A", 5_000)])  # 50 points
    clock.advance(days=40)
    mature(db, clock, program)
    redeem(db, clock, program, member, add_reward(db, clock, program, cost_points=50))  # all 50 spent
    coffee = add_reward(db, clock, program, cost_points=100, title={"fr": "Café offert", "en": "Free coffee"})
    return_(db, clock, program, order.external_id, amount=5_000)
    assert (balance(db, program, member).available, balance(db, program, member).debt) == (0, 50)
    shown = balance_with_rewards(db, clock, program, member)
    assert [(n.points_needed, n.message) for n in shown if n.reward_id == coffee.id] == [
        (150, "150 points to Free coffee")
    ]


def balance_with_rewards(db: Database, clock: FrozenClock, program: Program, who: Member) -> list[Any]:
    from palier.members import service as members

    with db.read() as conn:
        return members.balance(
            conn=conn, clock=clock, program=program, member_id=who.id, next_rewards=True
        ).next_rewards


def test_changing_a_reward_is_checked_like_creating_it(db: Database, clock: FrozenClock, program: Program) -> None:
    voucher = add_reward(db, clock, program, stock=5)
    with db.write() as conn:
        changed = rewards.update_reward(
            conn=conn, clock=clock, program=program, reward_id=voucher.id,
            changes=RewardUpdate(cost_points=450, stock=None), actor=ACTOR,
        )  # fmt: skip
    assert changed.cost_points == 450 and changed.stock is None and changed.stock_left is None
    with db.write() as conn:
        error = refused(
            "percent_not_applicable", rewards.update_reward, conn=conn, clock=clock, program=program,
            reward_id=voucher.id, changes=RewardUpdate(percent=10), actor=ACTOR,
        )  # fmt: skip
    assert error.status == 422
    with db.write() as conn:
        archived = rewards.update_reward(
            conn=conn, clock=clock, program=program, reward_id=voucher.id,
            changes=RewardUpdate(status="archived"), actor=ACTOR,
        )  # fmt: skip
        assert rewards.list_rewards(conn=conn, program_id=program.id) == []
    assert archived.status == "archived"


# --- returns after the points were spent ---


def test_a_return_after_the_points_were_redeemed_books_debt(db: Database, clock: FrozenClock, new_program: Any) -> None:
    program = new_program(return_window_days=0)
    member = enrol(db, clock, program, first_name="Dan")
    purchase(db, clock, program, member, order_id="A-1", lines=[line("TV", 60_000)])  # 600 points, available at once
    voucher = add_reward(db, clock, program)
    use(db, clock, program, redeem(db, clock, program, member, voucher).coupon.code)
    return_(db, clock, program, "A-1", lines=[("TV", 1)])
    b = balance(db, program, member)
    assert (b.available, b.held, b.debt) == (0, 0, 500)


@pytest.mark.parametrize("model", [RewardIn, RewardUpdate])
def test_a_rewards_window_is_sent_with_its_offset_on_create_and_on_change(model: Any) -> None:
    fields = {"kind": "gift", "cost_points": 10, "title": {"fr": "T", "en": "T"}} if model is RewardIn else {}
    with pytest.raises(ValidationError, match="offset_required: give a time zone"):
        model.model_validate(fields | {"ends_at": "2026-12-31T23:59:00"})
    assert model.model_validate(fields | {"ends_at": "2026-12-31T23:59:00+01:00"}).ends_at is not None
