"""Returns: exactly what the returned goods earned comes back, pending first, then available, then debt."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from palier.activity.service import fingerprint
from palier.activity.tables import events
from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import Conflict, InvalidInput, NotFound, Unprocessable
from palier.programs import service as programs
from palier.programs.models import Program, ProgramUpdate
from tests.services.factories import (
    ACTOR,
    add_identity,
    adjust,
    assert_ledger_sound,
    balance,
    enrol,
    expire,
    history,
    line,
    luhn_card,
    make_program,
    mature,
    purchase,
    purchase_body,
    return_,
    return_body,
    reverse,
    send_purchase,
    send_return,
)
from tests.services.test_pay_with_points import pay as pay_points
from tests.services.test_rewards import add_reward, cancel, redeem

LINES = [line("MUG", 333, quantity=3), line("TEA", 149, quantity=7, discount=20), line("PIN", 1)]
# 999 + 1023 + 1 = 2023 cents: 20 points at 1 pt/EUR, split 10 / 10 / 0 over the lines


def aged(clock: FrozenClock, days: int = 20) -> dict[str, object]:
    """Purchase arguments for an order old enough that its points are already available."""
    return {"occurred_at": clock.now() - timedelta(days=days)}


def test_a_full_return_takes_back_the_pending_points_first(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    adjust(db, clock, program, member, 100)
    order = purchase(db, clock, program, member, lines=LINES)
    assert order.points == 20 and order.pending
    result = return_(db, clock, program, order.external_id, lines=[("MUG", 3), ("TEA", 7), ("PIN", 1)])
    assert result.points == -20 and result.member_id == member.id and result.status == "processed"
    assert result.details == {"from_pending": 20, "from_available": 0, "to_debt": 0, "written_off": 0}
    shown = balance(db, program, member)
    assert (shown.available, shown.pending, shown.debt, shown.next_maturity) == (100, 0, 0, None)
    clock.advance(days=15)
    mature(db, clock, program)
    assert (balance(db, program, member).available, balance(db, program, member).pending) == (100, 0)


def test_a_return_after_maturity_takes_available_points(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=LINES)
    clock.advance(days=15)
    mature(db, clock, program)
    result = return_(db, clock, program, order.external_id, lines=[("TEA", 7)])
    assert result.points == -10
    assert result.details == {"from_pending": 0, "from_available": 10, "to_debt": 0, "written_off": 0}
    assert balance(db, program, member).available == 10


def test_partial_returns_add_up_to_the_full_return(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=LINES, shipping=499)
    steps = [("MUG", 1), ("TEA", 2), ("MUG", 1), ("PIN", 1), ("TEA", 5), ("MUG", 1)]
    taken = [return_(db, clock, program, order.external_id, lines=[step]).points for step in steps]
    assert sum(taken) == -order.points == -20
    assert taken[0] == -(10 * 1 // 3)  # each step takes what its cumulative share earned
    assert balance(db, program, member).pending == 0
    with pytest.raises(Unprocessable) as caught:
        return_(db, clock, program, order.external_id, lines=[("PIN", 1)])
    assert caught.value.code == "return_exceeds_purchase"


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    prices=st.lists(
        st.tuples(st.integers(1, 5000), st.integers(1, 6)),  # unit price, quantity
        min_size=1,
        max_size=4,
    ),
    rounding=st.sampled_from(["floor", "half_up", "half_even", "ceiling"]),
    rate=st.tuples(st.integers(1, 7), st.sampled_from([100, 300, 1000])),
    data=st.data(),
)
def test_any_sequence_of_partial_returns_adds_up_to_what_the_order_earned(
    db: Database,
    clock: FrozenClock,
    prices: list[tuple[int, int]],
    rounding: str,
    rate: tuple[int, int],
    data: st.DataObject,
) -> None:
    program = make_program(db, clock, rounding=rounding, earn_points=rate[0], earn_per_amount=rate[1])
    member = enrol(db, clock, program)
    lines = [line(f"L{i}", price, quantity=qty) for i, (price, qty) in enumerate(prices)]
    order = purchase(db, clock, program, member, lines=lines)
    units = [f"L{i}" for i, (_, qty) in enumerate(prices) for _ in range(qty)]
    order_of_units = data.draw(st.permutations(units))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(units) - 1), max_size=4)) if len(units) > 1 else set())
    taken = 0
    for start, end in zip([0, *cuts], [*cuts, len(units)], strict=True):
        chunk: dict[str, int] = {}
        for sku in order_of_units[start:end]:
            chunk[sku] = chunk.get(sku, 0) + 1
        result = return_(db, clock, program, order.external_id, lines=list(chunk.items()))
        assert result.points <= 0
        taken -= result.points
    assert taken == order.points
    assert balance(db, program, member).pending == 0
    assert_ledger_sound(db, program)


def test_refunds_by_amount_are_proportional_and_add_up(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=[line("SOFA", 9001)], shipping=999)  # 10000 total, 90 pts
    assert order.points == 90
    taken = [return_(db, clock, program, order.external_id, amount=amount).points for amount in (2500, 2501, 4999)]
    assert taken == [-24, -26, -40]  # the goods first: €50.01 of the €90.01 sofa refunded takes 50 of its 90 points
    assert sum(taken) == -90
    with pytest.raises(Unprocessable) as caught:
        return_(db, clock, program, order.external_id, amount=1)
    assert (caught.value.code, caught.value.field, caught.value.extra) == (
        "return_exceeds_purchase",
        "amount",
        {"refundable": 0},
    )


def test_a_refund_of_shipping_takes_back_no_points(db: Database, clock: FrozenClock, program: Program) -> None:
    """Shipping earns nothing here: refunding it takes nothing; refunding every good takes every point."""
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=[line("LAMP", 5000)], shipping=500)
    assert order.points == 50
    shipped = return_(db, clock, program, order.external_id, shipping=500)
    assert (shipped.points, shipped.reason) == (0, f"Shipping refunded on order #{order.external_id}")
    with pytest.raises(Unprocessable) as caught:
        return_(db, clock, program, order.external_id, shipping=1)
    assert (caught.value.code, caught.value.field, caught.value.extra) == (
        "return_exceeds_purchase",
        "shipping",
        {"refundable": 0},
    )
    assert return_(db, clock, program, order.external_id, amount=2000).points == -20
    assert return_(db, clock, program, order.external_id, amount=3000).points == -30
    assert balance(db, program, member).pending == 0


def test_a_refund_of_the_goods_alone_takes_every_point(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=[line("LAMP", 5000)], shipping=500)
    assert return_(db, clock, program, order.external_id, amount=5000).points == -50  # shipping kept by the shop
    assert return_(db, clock, program, order.external_id, amount=500).points == 0


def test_when_shipping_earns_its_refund_takes_its_share(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program = new_program(earn_on_shipping=True)
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=[line("LAMP", 5000)], shipping=1000)
    assert order.points == 60
    assert return_(db, clock, program, order.external_id, shipping=1000).points == -10
    assert return_(db, clock, program, order.external_id, lines=[("LAMP", 1)]).points == -50


@pytest.mark.parametrize("earned", [False, True])
def test_a_shipping_refund_follows_what_shipping_earned_when_the_order_was_recorded(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program], earned: bool
) -> None:
    program = new_program(earn_on_shipping=earned)
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=[line("LAMP", 5000)], shipping=500)
    assert order.points == (55 if earned else 50)
    with db.write() as conn:  # the merchant changes the setting afterwards
        program = programs.update_program(
            conn=conn, clock=clock, program_id=program.id,
            changes=ProgramUpdate(earn_on_shipping=not earned), actor=ACTOR,
        )  # fmt: skip
    assert return_(db, clock, program, order.external_id, shipping=500).points == (-5 if earned else 0)
    assert return_(db, clock, program, order.external_id, amount=5000).points == -50  # the rest, all of it
    assert balance(db, program, member).pending == 0


def test_lines_and_a_refund_together_take_back_everything_once(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=[line("A", 6000), line("B", 4000)])  # 100 pts
    assert return_(db, clock, program, order.external_id, lines=[("B", 1)]).points == -40
    assert return_(db, clock, program, order.external_id, amount=1000).points == -10
    assert return_(db, clock, program, order.external_id, amount=5000).points == -50
    assert balance(db, program, member).pending == 0
    with pytest.raises(Unprocessable) as caught:
        return_(db, clock, program, order.external_id, lines=[("A", 1)])  # already fully refunded
    assert caught.value.code == "return_exceeds_purchase"


def test_a_fully_refunded_order_takes_back_every_point_however_it_was_refunded(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=[line("GIFT", 5000, kind="gift_card"), line("SHOE", 5000)])
    assert order.points == 50
    assert return_(db, clock, program, order.external_id, lines=[("GIFT", 1)]).points == 0
    rest = return_(db, clock, program, order.external_id, amount=5000)  # the whole order is now refunded
    assert rest.points == -50
    assert balance(db, program, member).pending == 0


def test_returning_more_than_was_bought_is_refused(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=LINES)
    cases = [
        ({"lines": [("MUG", 4)]}, "lines[0].quantity", {"returnable": 3}),
        ({"lines": [("PIN", 1), ("TEA", 8)]}, "lines[1].quantity", {"returnable": 7}),
        ({"amount": 2024}, "amount", {"refundable": 2023}),
    ]
    for args, field, extra in cases:
        with pytest.raises(Unprocessable) as caught:
            return_(db, clock, program, order.external_id, **args)  # type: ignore[arg-type]
        assert (caught.value.code, caught.value.field, caught.value.extra) == ("return_exceeds_purchase", field, extra)
        if field == "amount":  # the till reads money, not minor units
            assert "Only €20.23 of order" in caught.value.detail, caught.value.detail
    return_(db, clock, program, order.external_id, lines=[("MUG", 2)])
    with pytest.raises(Unprocessable) as caught:
        return_(db, clock, program, order.external_id, lines=[("MUG", 2)])
    assert caught.value.extra == {"returnable": 1}
    assert balance(db, program, member).pending == 20 - 6


def test_a_sku_on_lines_at_different_prices_is_returned_by_its_line(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Which of two mugs came back decides the points: the till says which line, or the return is refused."""
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=[line("MUG", 100), line("MUG", 10_000)])  # 1 + 100 points
    with pytest.raises(Unprocessable) as caught:
        return_(db, clock, program, order.external_id, lines=[("MUG", 1)])
    assert (caught.value.code, caught.value.field, caught.value.extra) == (
        "line_ambiguous",
        "lines[0].line",
        {"lines": [0, 1]},
    )
    with pytest.raises(Unprocessable) as wrong:
        return_(db, clock, program, order.external_id, lines=[("SPOON", 1, 1)])
    assert (wrong.value.code, wrong.value.field) == ("line_not_in_order", "lines[0].line")
    dear = return_(db, clock, program, order.external_id, lines=[("MUG", 1, 1)])
    assert (dear.points, dear.details["from_pending"]) == (-100, 100)
    cheap = return_(db, clock, program, order.external_id, lines=[("MUG", 1)])  # one line left: no doubt
    assert cheap.points == -1
    assert balance(db, program, member).pending == 0


def test_a_return_recorded_by_an_earlier_version_still_replays(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Earlier versions hashed return lines without ``line`` (added since): their returns still replay."""
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=LINES)
    body = return_body(order.external_id, clock=clock, lines=[("MUG", 1)])
    first, _ = send_return(db, clock, program, body)
    sent = body.model_dump(mode="json")
    earlier = {**sent, "lines": [{k: v for k, v in x.items() if k != "line"} for x in sent["lines"]]}
    with db.write() as conn:
        conn.execute(
            update(events)
            .where(events.c.program_id == program.id, events.c.external_id == body.return_id)
            .values(payload_hash=fingerprint([earlier], key=b""))
        )
    again, replayed = send_return(db, clock, program, body)
    assert replayed is True and again == first


def test_unknown_orders_and_items_are_refused(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=LINES)
    with pytest.raises(NotFound) as missing:
        return_(db, clock, program, "no-such-order", amount=100)
    assert (missing.value.code, missing.value.field, missing.value.status) == ("order_not_found", "order_id", 404)
    with pytest.raises(Unprocessable) as caught:
        return_(db, clock, program, order.external_id, lines=[("MUG", 1), ("SPOON", 1)])
    assert (caught.value.code, caught.value.field) == ("line_not_in_order", "lines[1].sku")
    with pytest.raises(InvalidInput) as early:
        return_(db, clock, program, order.external_id, amount=100, occurred_at=clock.now() - timedelta(days=1))
    assert (early.value.code, early.value.field) == ("return_before_purchase", "occurred_at")
    assert balance(db, program, member).pending == 20  # nothing was taken by the refusals


def test_an_order_of_another_program_is_not_found(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program_a, program_b = new_program(), new_program()
    order = purchase(db, clock, program_a, enrol(db, clock, program_a), amount=1000)
    with pytest.raises(NotFound):
        return_(db, clock, program_b, order.external_id, amount=100)


def test_a_return_sent_again_is_answered_once(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, lines=LINES)
    body = return_body(order.external_id, clock=clock, lines=[("TEA", 7)])
    first, replayed = send_return(db, clock, program, body)
    again, replayed_again = send_return(db, clock, program, body)
    assert (replayed, replayed_again) == (False, True)
    assert again == first and first.points == -10
    assert balance(db, program, member).pending == 10
    with pytest.raises(Conflict) as caught:
        send_return(db, clock, program, body.model_copy(update={"reason": "changed my mind"}))
    assert (caught.value.code, caught.value.field) == ("event_conflict", "return_id")


def test_a_return_of_spent_points_books_debt_repaid_by_later_earning(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, amount=10000, **aged(clock))
    adjust(db, clock, program, member, -80, reason="Redeemed a voucher")
    result = return_(db, clock, program, order.external_id, lines=[("SKU-1", 1)])
    assert result.points == -100
    assert result.details == {"from_pending": 0, "from_available": 20, "to_debt": 80, "written_off": 0}
    shown = balance(db, program, member)
    assert (shown.available, shown.pending, shown.debt) == (0, 0, 80)

    repaid = purchase(db, clock, program, member, amount=5000, **aged(clock))
    assert repaid.points == 50 and repaid.details == {"debt_repaid": 50}
    assert (balance(db, program, member).available, balance(db, program, member).debt) == (0, 30)

    pending = purchase(db, clock, program, member, amount=4500)
    assert pending.pending and "debt_repaid" not in pending.details
    assert (balance(db, program, member).pending, balance(db, program, member).debt) == (45, 30)
    clock.advance(days=15)
    mature(db, clock, program)  # maturing repays the debt before the points become available
    shown = balance(db, program, member)
    assert (shown.available, shown.pending, shown.debt) == (15, 0, 0)
    adjust(db, clock, program, member, 5)
    assert (balance(db, program, member).available, balance(db, program, member).debt) == (20, 0)


def test_with_write_off_the_shortfall_is_recorded_and_never_owed(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program = new_program(return_shortfall="write_off")
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, amount=10000, **aged(clock))
    adjust(db, clock, program, member, -80, reason="Redeemed a voucher")
    result = return_(db, clock, program, order.external_id, lines=[("SKU-1", 1)])
    assert result.points == -100
    assert result.details == {"from_pending": 0, "from_available": 20, "to_debt": 0, "written_off": 80}
    shown = balance(db, program, member)
    assert (shown.available, shown.debt) == (0, 0)
    later = purchase(db, clock, program, member, amount=3000, **aged(clock))
    assert later.details == {}
    assert balance(db, program, member).available == 30


def test_a_return_takes_its_own_pending_lot_before_other_points(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    member = enrol(db, clock, program)
    purchase(db, clock, program, member, amount=7000, **aged(clock))  # 70 available
    order = purchase(db, clock, program, member, amount=3000)  # 30 pending
    result = return_(db, clock, program, order.external_id, amount=3000)
    assert result.details["from_pending"] == 30 and result.details["from_available"] == 0
    shown = balance(db, program, member)
    assert (shown.available, shown.pending) == (70, 0)


def test_a_return_before_the_card_is_claimed_reduces_what_the_claim_credits(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    card = luhn_card()
    order = purchase(db, clock, program, ("payment_card", card), lines=[line("A", 3000), line("B", 2000)])
    result = return_(db, clock, program, order.external_id, lines=[("B", 1)])
    assert (result.status, result.member_id, result.points) == ("unclaimed", None, -20)
    member = enrol(db, clock, program, identities=[("payment_card", card)])
    assert balance(db, program, member).pending == 30
    after = return_(db, clock, program, order.external_id, lines=[("A", 1)])
    assert (after.member_id, after.points, after.details["from_pending"]) == (member.id, -30, 30)
    assert balance(db, program, member).pending == 0


def test_a_claimed_card_purchase_is_returned_from_its_own_lot(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    card = luhn_card()
    member = enrol(db, clock, program)
    adjust(db, clock, program, member, 40)
    order = purchase(db, clock, program, ("payment_card", card), amount=2000)
    add_identity(db, clock, program, member, "payment_card", card)
    result = return_(db, clock, program, order.external_id, amount=2000)
    assert result.details == {"from_pending": 20, "from_available": 0, "to_debt": 0, "written_off": 0}
    assert (balance(db, program, member).available, balance(db, program, member).pending) == (40, 0)


def test_returning_an_order_whose_points_expired_takes_nothing_more(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """Its points left the member once, at expiry: the return must not take them again from other lots."""
    program = new_program(return_window_days=0, points_lifetime_months=1)
    member = enrol(db, clock, program)
    purchase(db, clock, program, member, order_id="OLD", lines=[line("A", 6_000), line("B", 4_000)])  # 100 pts
    clock.advance(days=40)
    expire(db, clock, program)
    adjust(db, clock, program, member, 80, reason="Later goodwill")
    first = return_(db, clock, program, "OLD", lines=[("A", 1)])
    assert (first.points, first.details["excused_expired"], first.details["from_available"]) == (-60, 60, 0)
    second = return_(db, clock, program, "OLD", lines=[("B", 1)])
    assert second.details["excused_expired"] == 40
    shown = balance(db, program, member)
    assert (shown.available, shown.debt) == (80, 0)  # the later points are untouched, nothing owed


@pytest.mark.parametrize("held_by", ["a coupon", "a points payment", "a debit"])
def test_returning_an_order_whose_points_expired_while_spent_takes_nothing_more(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program], held_by: str
) -> None:
    """Points of the order that a coupon held (or a payment spent) when their lot expired expire as they come
    back; a return of the order afterwards must excuse them, not take them again from other points."""
    program = new_program(return_window_days=0, points_lifetime_months=1)
    member = enrol(db, clock, program)
    purchase(db, clock, program, member, order_id="EX-1", lines=[line("A", 5_000), line("B", 5_000)])  # 100 pts
    if held_by == "a coupon":
        coupon = redeem(db, clock, program, member, add_reward(db, clock, program, cost_points=100)).coupon
    elif held_by == "a debit":
        debit = adjust(db, clock, program, member, -100, reason="Voucher handed over")
    else:
        pay_points(db, clock, program, member, order_id="W-9", points=100)
        walk_in = purchase_body(program, member, clock=clock, order_id="W-9", amount=10_000)
        send_purchase(db, clock, program, walk_in.model_copy(update={"member": None}))
    clock.advance(days=40)
    expire(db, clock, program)  # the lot's remaining (0) expires; its 100 points are held or spent
    adjust(db, clock, program, member, 80, reason="Later goodwill")
    if held_by == "a coupon":
        cancel(db, clock, program, coupon.code)
        back = next(x for x in history(db, program, member) if x.reason_code == "coupon_cancelled")
        assert back.reason.endswith(", 100 points expired meanwhile") and back.available == 0
    elif held_by == "a debit":
        assert reverse(db, clock, program, member, debit.transaction_id).points == 0  # its lot expired: nothing back
    else:
        given = return_(db, clock, program, "W-9", amount=10_000)
        assert given.details.get("points_expired") == 100 and "points_given_back" not in given.details
    first = return_(db, clock, program, "EX-1", lines=[("A", 1)])
    assert (first.points, first.details["excused_expired"], first.details["from_available"]) == (-50, 50, 0)
    second = return_(db, clock, program, "EX-1", lines=[("B", 1)])
    assert second.details["excused_expired"] == 50
    shown = balance(db, program, member)
    assert (shown.available, shown.debt) == (80, 0)  # the goodwill points are untouched, nothing owed
    assert_ledger_sound(db, program)


@pytest.mark.parametrize("back", ["a coupon cancelled", "a points payment returned", "a debit reversed"])
def test_points_coming_back_to_a_member_in_debt_repay_it_first(
    db: Database, clock: FrozenClock, program: Program, back: str
) -> None:
    """A member never owes points while holding some to spend, whichever way points come back."""
    member = enrol(db, clock, program)
    order = purchase(db, clock, program, member, amount=20_000, **aged(clock))  # 200 points, available
    if back == "a coupon cancelled":
        coupon = redeem(db, clock, program, member, add_reward(db, clock, program, cost_points=100)).coupon
    elif back == "a points payment returned":
        pay_points(db, clock, program, member, order_id="W-77", points=100)
        walk_in = purchase_body(program, member, clock=clock, order_id="W-77", amount=10_000)
        send_purchase(db, clock, program, walk_in.model_copy(update={"member": None}))
    else:
        debit = adjust(db, clock, program, member, -100, reason="Voucher handed over")
    adjust(db, clock, program, member, -100, reason="Gift basket")
    return_(db, clock, program, order.external_id, amount=20_000)
    assert (balance(db, program, member).available, balance(db, program, member).debt) == (0, 200)
    if back == "a coupon cancelled":
        cancel(db, clock, program, coupon.code)
    elif back == "a points payment returned":
        return_(db, clock, program, "W-77", amount=10_000)
    else:
        reverse(db, clock, program, member, debit.transaction_id)
    shown = balance(db, program, member)
    assert (shown.available, shown.debt) == (0, 100)  # the 100 points back repaid half the debt
    last = history(db, program, member)[-1]  # the return took them as debt: they cancel it as they come back
    assert (last.available, last.debt) == (0, -100) and last.reason_code != "debt_repaid", last


@pytest.mark.parametrize("earn_on_tax", [False, True])
def test_an_item_returned_takes_its_tax_with_it_so_a_refund_of_the_rest_takes_the_rest(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program], earn_on_tax: bool
) -> None:
    """€50 coat and €50 boots with €20 of tax: the coat comes back (€60 refunded at the till, its tax with it),
    then the boots are refunded by amount, €60 with their tax. The order is refunded in full: every point it
    earned is taken back, not one more, and nothing is left to refund."""
    program = new_program(earn_on_tax=earn_on_tax)
    member = enrol(db, clock, program)
    lines = [line("COAT", 5_000), line("BOOTS", 5_000)]
    order = purchase(db, clock, program, member, lines=lines, tax=2_000)
    earned = 120 if earn_on_tax else 100
    assert order.points == earned
    coat = return_(db, clock, program, order.external_id, lines=[("COAT", 1)])
    assert coat.points == -earned // 2
    boots = return_(db, clock, program, order.external_id, amount=6_000)
    assert boots.points == -earned // 2
    with pytest.raises(Unprocessable) as caught:
        return_(db, clock, program, order.external_id, amount=1)
    assert (caught.value.code, caught.value.extra) == ("return_exceeds_purchase", {"refundable": 0})
    assert balance(db, program, member).pending == 0


@pytest.mark.parametrize("earn_on_tax", [False, True])
def test_returns_and_refunds_of_a_taxed_order_never_take_more_than_it_earned(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program], earn_on_tax: bool
) -> None:
    program = new_program(earn_on_tax=earn_on_tax)
    member = enrol(db, clock, program)
    adjust(db, clock, program, member, 500)
    lines = [line("COAT", 5_000), line("BOOTS", 3_000), line("HAT", 2_000)]
    order = purchase(db, clock, program, member, lines=lines, tax=2_000)
    taken = [
        return_(db, clock, program, order.external_id, lines=[("COAT", 1)]).points,
        return_(db, clock, program, order.external_id, amount=1_000).points,
        return_(db, clock, program, order.external_id, lines=[("BOOTS", 1)]).points,
        # all that is left: the hat and its tax, €24, less the €10 refunded by amount (coat €60, boots €36 with theirs)
        return_(db, clock, program, order.external_id, amount=1_400).points,
    ]
    assert all(points <= 0 for points in taken) and -sum(taken) == order.points
    with pytest.raises(Unprocessable) as caught:
        return_(db, clock, program, order.external_id, lines=[("HAT", 1)])
    assert (caught.value.code, caught.value.extra) == ("return_exceeds_purchase", {"refundable": 0})
    assert balance(db, program, member).available == 500
    assert_ledger_sound(db, program)
