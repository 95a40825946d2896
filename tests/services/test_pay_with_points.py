"""Paying part of an order with points or store credit: bounded, earns nothing, comes back with a return."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import PalierError
from palier.members.models import Member
from palier.programs.models import Program
from palier.rewards import payments
from palier.rewards.models import Payment, PaymentIn
from tests.services.factories import (
    CARD_KEY,
    adjust,
    balance,
    enrol,
    expire,
    line,
    luhn_card,
    make_program,
    merge,
    purchase,
    purchase_body,
    return_,
    send_purchase,
    unique,
)
from tests.services.test_rewards import add_reward, redeem
from tests.waiting import backend_pid, until_waited_on


def pay(db: Database, clock: FrozenClock, program: Program, who: Member, **fields: Any) -> Payment:
    data = PaymentIn.model_validate({"kind": "points", "order_total": 10_000} | fields)
    with db.write() as conn:
        return payments.pay(conn=conn, clock=clock, program=program, member_id=who.id, data=data)


def refused(code: str, *args: Any, **kwargs: Any) -> PalierError:
    with pytest.raises(PalierError) as caught:
        pay(*args, **kwargs)
    assert caught.value.code == code, caught.value.detail
    return caught.value


@pytest.fixture
def payer(db: Database, clock: FrozenClock, program: Program) -> Member:
    member = enrol(db, clock, program, first_name="Pia")
    adjust(db, clock, program, member, 3_000)
    return member


def test_points_pay_part_of_an_order_and_earn_nothing_on_that_part(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    program = new_program(redeem_points=100, redeem_amount=100, return_window_days=0)  # 1 point = 1 cent
    member = enrol(db, clock, program, first_name="Pia")
    adjust(db, clock, program, member, 3_000)
    paid = pay(db, clock, program, member, order_id="W-1", points=2_000, order_total=10_000)
    assert (paid.amount, paid.points, paid.available) == (2_000, 2_000, 1_000)
    assert pay(db, clock, program, member, order_id="W-1", points=2_000, order_total=10_000) == paid  # a retry
    earned = purchase(db, clock, program, member, order_id="W-1", lines=[line("BAG", 10_000)])
    assert earned.points == 80  # 1 point per euro on the €80 paid with money, not on the €20 paid with points
    assert balance(db, program, member).available == 1_080


def test_a_return_gives_the_points_back_in_proportion(db: Database, clock: FrozenClock, new_program: Any) -> None:
    program = new_program(return_window_days=0)
    member = enrol(db, clock, program, first_name="Pia")
    adjust(db, clock, program, member, 3_000)
    pay(db, clock, program, member, order_id="W-2", points=3_000, order_total=10_000)
    purchase(db, clock, program, member, order_id="W-2", lines=[line("A", 5_000), line("B", 2_500), line("C", 2_500)])
    assert balance(db, program, member).available == 70
    first = return_(db, clock, program, "W-2", lines=[("B", 1)])  # a quarter of the order
    assert first.details["points_given_back"] == 750
    return_(db, clock, program, "W-2", lines=[("A", 1), ("C", 1)])  # the rest
    assert balance(db, program, member).available == 3_000  # every point paid came back, the 70 earned went


@pytest.mark.parametrize("recorded_as", ["a walk-in", "a card nobody has linked"])
def test_points_paid_on_an_order_recorded_without_the_member_come_back_with_its_return(
    db: Database, clock: FrozenClock, new_program: Any, recorded_as: str
) -> None:
    program = new_program(return_window_days=0)
    member = enrol(db, clock, program, first_name="Pia")
    adjust(db, clock, program, member, 3_000)
    pay(db, clock, program, member, order_id="ANON-1", points=2_000, order_total=10_000)
    body = purchase_body(program, ("payment_card", luhn_card()), clock=clock, order_id="ANON-1", amount=10_000)
    if recorded_as == "a walk-in":
        body = body.model_copy(update={"member": None})
    recorded, _ = send_purchase(db, clock, program, body)
    assert recorded.member_id is None and balance(db, program, member).available == 1_000
    back = return_(db, clock, program, "ANON-1", lines=[("SKU-1", 1)])
    assert back.details["points_given_back"] == 2_000
    assert balance(db, program, member).available == 3_000  # every point paid came back to who paid them


@pytest.mark.parametrize("recorded_as", ["the member", "a walk-in"])
def test_an_order_recorded_below_the_total_points_paid_for_is_refused(
    db: Database, clock: FrozenClock, program: Program, payer: Member, recorded_as: str
) -> None:
    """Points paid half of a €50 order at checkout; the order cannot then be recorded as €20 (and the
    points have paid more than all of it): the till is told, and nothing is written."""
    pay(db, clock, program, payer, order_id="TILL-7", points=2_500, order_total=5_000)
    body = purchase_body(program, payer, clock=clock, order_id="TILL-7", amount=2_000)
    if recorded_as == "a walk-in":
        body = body.model_copy(update={"member": None})
    with pytest.raises(PalierError) as caught:
        send_purchase(db, clock, program, body)
    error = caught.value
    assert (error.code, error.field) == ("order_total_below_payment", "order_id")
    assert (error.extra["paid_for_total"], error.extra["total"]) == (5_000, 2_000)
    assert "for a total of €50.00, but is recorded with a total of €20.00" in error.detail, error.detail
    assert balance(db, program, payer).available == 500  # nothing earned, nothing given back
    recorded, _ = send_purchase(db, clock, program, body.model_copy(update={"lines": [line("SKU-1", 5_000)]}))
    assert recorded.points == (25 if recorded_as == "the member" else 0)  # on the €25 paid with money


def test_no_point_is_burnt_for_a_fraction_of_a_minor_unit(db: Database, clock: FrozenClock, new_program: Any) -> None:
    program = new_program(currency="KWD", redeem_points=3, redeem_amount=1)  # 3 points are worth 1 fils
    member = enrol(db, clock, program, first_name="Pia")
    adjust(db, clock, program, member, 3_000)
    error = refused("payment_points_not_whole", db, clock, program, member, order_id="KW-1", points=4)
    assert (error.extra["lower_points"], error.extra["higher_points"]) == (3, 6)
    assert balance(db, program, member).available == 3_000
    paid = pay(db, clock, program, member, order_id="KW-1", points=6)
    assert (paid.points, paid.amount, paid.available) == (6, 2, 2_994)


def test_points_payment_refusals_write_nothing(
    db: Database, clock: FrozenClock, program: Program, payer: Member
) -> None:
    before = balance(db, program, payer)
    error = refused("payment_above_share", db, clock, program, payer, order_id="X", points=6_000, order_total=10_000)
    assert error.extra["max_points"] == 5_000
    assert "of this order (€50.00); 6000 points are worth €60.00" in error.detail, error.detail
    refused("insufficient_points", db, clock, program, payer, order_id="X", points=4_000, order_total=100_000)
    purchase(db, clock, program, payer, order_id="DONE")
    refused("order_already_recorded", db, clock, program, payer, order_id="DONE", points=100)
    pay(db, clock, program, payer, order_id="Y", points=100, order_total=10_000)
    refused("payment_conflict", db, clock, program, payer, order_id="Y", points=200, order_total=10_000)
    assert balance(db, program, payer).available == before.available - 100


def test_points_worth_less_than_a_cent_cannot_pay(db: Database, clock: FrozenClock, new_program: Any) -> None:
    program = new_program(redeem_points=1_000, redeem_amount=100)  # 10 points to the cent
    member = enrol(db, clock, program, first_name="Tim")
    adjust(db, clock, program, member, 100)
    error = refused("payment_too_small", db, clock, program, member, order_id="T", points=5)
    assert "use at least 10." in error.detail  # 10 points make a cent


def test_cancelling_a_payment_before_the_order_gives_everything_back(
    db: Database, clock: FrozenClock, program: Program, payer: Member
) -> None:
    paid = pay(db, clock, program, payer, order_id="Z", points=1_000)
    with db.write() as conn:
        cancelled = payments.cancel(conn=conn, clock=clock, program=program, member_id=payer.id, payment_id=paid.id)
    assert cancelled.state == "cancelled" and cancelled.available == 3_000
    again = pay(db, clock, program, payer, order_id="Z", points=500)  # paying again after a cancellation is fine
    assert again.id != paid.id and again.available == 2_500


def test_a_payment_answered_after_the_points_expired_does_not_count_them(
    db: Database, clock: FrozenClock, program: Program, payer: Member
) -> None:
    paid = pay(db, clock, program, payer, order_id="LATE", points=1_000)
    assert paid.available == 2_000
    expiry = balance(db, program, payer, clock).next_expiry
    assert expiry is not None
    clock.set(expiry.expires_at + timedelta(seconds=1))  # the expiry job has not run yet

    retried = pay(db, clock, program, payer, order_id="LATE", points=1_000)  # a retry gets the payment again
    with db.write() as conn:
        cancelled = payments.cancel(conn=conn, clock=clock, program=program, member_id=payer.id, payment_id=paid.id)

    assert retried.id == paid.id and retried.available == 0  # not the 2,000 the expiry job has yet to take
    assert cancelled.available == 0  # the points paid go back to a lot that has expired: they expire too


def test_store_credit_pays_and_comes_back_with_a_return(db: Database, clock: FrozenClock, new_program: Any) -> None:
    program = new_program(return_window_days=0)
    member = enrol(db, clock, program, first_name="Cid")
    adjust(db, clock, program, member, 1_000)
    credit = add_reward(db, clock, program, kind="store_credit", cost_points=1_000, amount=1_000)
    assert redeem(db, clock, program, member, credit).wallet == 1_000
    with pytest.raises(PalierError) as short:
        pay(db, clock, program, member, kind="credit", order_id="S-1", amount=1_500, order_total=4_000)
    assert short.value.code == "insufficient_credit"
    paid = pay(db, clock, program, member, kind="credit", order_id="S-1", amount=1_000, order_total=4_000)
    assert paid.wallet == 0
    earned = purchase(db, clock, program, member, order_id="S-1", lines=[line("A", 4_000)])
    assert earned.points == 30  # only the €30 paid with money earns
    return_(db, clock, program, "S-1", lines=[("A", 1)])
    with db.read() as conn:
        assert payments.wallet(conn=conn, program=program, member_id=member.id).balance == 1_000


def test_a_merge_moves_store_credit_and_coupons(db: Database, clock: FrozenClock, program: Program) -> None:
    old, new = enrol(db, clock, program, first_name="Old"), enrol(db, clock, program, first_name="New")
    adjust(db, clock, program, old, 1_500)
    redeem(db, clock, program, old, add_reward(db, clock, program, kind="store_credit", cost_points=1_000, amount=900))
    coupon = redeem(db, clock, program, old, add_reward(db, clock, program, cost_points=100)).coupon
    merge(db, clock, program, old, new)
    with db.read() as conn:
        assert payments.wallet(conn=conn, program=program, member_id=new.id).balance == 900
        assert payments.wallet(conn=conn, program=program, member_id=old.id).balance == 0
        from palier.rewards import service as rewards

        mine = rewards.member_coupons(conn=conn, program_id=program.id, member_id=new.id)
    assert coupon.code in {c.code for c in mine}
    assert (balance(db, program, new).available, balance(db, program, new).held) == (400, 100)


def test_points_paid_from_a_lot_that_expired_come_back_expired(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    program = new_program(points_lifetime_months=1, return_window_days=0)
    member = enrol(db, clock, program, first_name="Exp")
    adjust(db, clock, program, member, 2_000)
    pay(db, clock, program, member, order_id="E-1", points=1_000, order_total=10_000)
    purchase(db, clock, program, member, order_id="E-1", lines=[line("A", 10_000)])
    clock.advance(days=40)
    expire(db, clock, program)
    back = return_(db, clock, program, "E-1", lines=[("A", 1)])
    assert back.details.get("points_expired") == 1_000 and "points_given_back" not in back.details
    assert balance(db, program, member).available == 0  # their lot had expired: they expired, not resurrected


def test_a_payment_committing_while_its_purchase_waits_is_counted(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """The till's payment is still being written when the order arrives: the purchase reads the payments
    under the member's lock, so it waits for the payment and earns on the money part only."""
    if not db.is_postgres:
        pytest.skip("SQLite runs one writer at a time: there is no race to show")
    program = new_program(redeem_points=100, redeem_amount=100, return_window_days=0)
    member = enrol(db, clock, program, first_name="Pia")
    adjust(db, clock, program, member, 3_000)
    body = purchase_body(program, member, clock=clock, order_id="RACE-1", lines=[line("BAG", 10_000)])
    recorded: list[Any] = []
    with db.write() as conn:  # the till pays 2 000 points for the order, not committed yet
        data = PaymentIn(kind="points", order_id="RACE-1", points=2_000, order_total=10_000)
        payments.pay(conn=conn, clock=clock, program=program, member_id=member.id, data=data)
        sender = threading.Thread(target=lambda: recorded.append(send_purchase(db, clock, program, body)[0]))
        sender.start()
        assert until_waited_on(db, backend_pid(conn), finished=lambda: not sender.is_alive())  # the member's lock
    sender.join()
    assert recorded[0].points == 80  # on the €80 paid with money
    assert balance(db, program, member).available == 1_080


def test_an_import_waits_for_a_payment_of_one_of_its_orders_and_earns_on_the_money_part(
    postgresql_db: Database, clock: FrozenClock
) -> None:
    """Pia pays part of an order with her points while the order comes in by bulk import, recorded for Bo: the
    import reads the order's payments only once the payment has committed (their locks never met otherwise:
    Bo earned on the whole €100). PostgreSQL: SQLite runs one writer at a time."""
    from palier.activity.bulk import import_purchases

    db = postgresql_db
    program = make_program(db, clock, redeem_points=100, redeem_amount=100, return_window_days=0)
    pia, bo = enrol(db, clock, program, first_name="Pia"), enrol(db, clock, program, first_name="Bo")
    adjust(db, clock, program, pia, 3_000)
    body = purchase_body(program, bo, clock=clock, order_id=unique("IMPORT"), lines=[line("BAG", 10_000)])
    imported: list[Any] = []

    def run_import() -> None:
        with db.write() as conn:
            imported.append(
                import_purchases(conn=conn, clock=clock, program=program, purchases=[body], card_key=CARD_KEY)
            )

    with db.write() as conn:  # Pia's till pays 2 000 points of the order, not committed yet
        data = PaymentIn(kind="points", order_id=body.order_id, points=2_000, order_total=10_000)
        payments.pay(conn=conn, clock=clock, program=program, member_id=pia.id, data=data)
        importer = threading.Thread(target=run_import)
        importer.start()
        assert until_waited_on(db, backend_pid(conn), finished=lambda: not importer.is_alive())  # on the order
    importer.join()
    assert imported[0].imported == 1 and imported[0].points == 80  # on the €80 paid with money
    assert balance(db, program, bo).available == 80


def _erase(db: Database, clock: FrozenClock, program: Program, who: Member) -> None:
    from palier.members.erasure import erase

    with db.write() as conn:
        erase(
            conn=conn, clock=clock, program=program, member_id=who.id, reason="Asked to be forgotten",
            forfeit_store_credit=True, actor="key_test",
        )  # fmt: skip


@pytest.mark.parametrize("recorded_as", ["the member", "a walk-in"])
def test_points_and_credit_paid_before_an_erasure_do_not_come_back_to_the_erased_member(
    db: Database, clock: FrozenClock, new_program: Any, recorded_as: str
) -> None:
    """The order is returned after its payer asked to be forgotten: what they paid with leaves the ledger
    as the rest of their points and credit did at the erasure, and the return says so."""
    program = new_program(return_window_days=0)
    member = enrol(db, clock, program, first_name="Eve")
    adjust(db, clock, program, member, 3_000)
    redeem(db, clock, program, member, add_reward(db, clock, program, kind="store_credit", cost_points=1, amount=800))
    pay(db, clock, program, member, order_id="GONE-1", points=2_000, order_total=10_000)
    pay(db, clock, program, member, kind="credit", order_id="GONE-1", amount=800, order_total=10_000)
    body = purchase_body(program, member, clock=clock, order_id="GONE-1", amount=10_000)
    if recorded_as == "a walk-in":
        body = body.model_copy(update={"member": None})
    send_purchase(db, clock, program, body)
    _erase(db, clock, program, member)
    back = return_(db, clock, program, "GONE-1", lines=[("SKU-1", 1)])
    assert (back.details["points_removed"], back.details["store_credit_forfeited"]) == (2_000, 800), back.details
    assert "points_given_back" not in back.details and "credit_given_back" not in back.details
    left = balance(db, program, member)
    assert (left.available, left.pending, left.held, left.debt) == (0, 0, 0, 0)
    with db.read() as conn:
        assert payments.wallet(conn=conn, program=program, member_id=member.id).balance == 0


def test_a_payment_of_an_erased_member_cannot_be_cancelled(
    db: Database, clock: FrozenClock, program: Program, payer: Member
) -> None:
    paid = pay(db, clock, program, payer, order_id="GONE-2", points=1_000)
    _erase(db, clock, program, payer)
    with pytest.raises(PalierError) as caught, db.write() as conn:
        payments.cancel(conn=conn, clock=clock, program=program, member_id=payer.id, payment_id=paid.id)
    assert caught.value.code == "member_erased"
    assert balance(db, program, payer).available == 0


def test_returning_every_item_of_a_taxed_order_gives_back_every_point_and_cent_paid(
    db: Database, clock: FrozenClock, new_program: Any
) -> None:
    """Refunding an item refunds its tax: the points and credit that paid the tax come back with the items."""
    program = new_program(return_window_days=0)
    member = enrol(db, clock, program, first_name="Tax")
    adjust(db, clock, program, member, 3_000)
    redeem(db, clock, program, member, add_reward(db, clock, program, kind="store_credit", cost_points=1, amount=600))
    # €30 of goods, €5 of shipping, €7 of tax: €42
    pay(db, clock, program, member, order_id="TAX-1", points=2_000, order_total=4_200)
    pay(db, clock, program, member, kind="credit", order_id="TAX-1", amount=600, order_total=4_200)
    purchase(db, clock, program, member, order_id="TAX-1", lines=[line("A", 1_000, 3)], shipping=500, tax=700)
    first = return_(db, clock, program, "TAX-1", lines=[("A", 1)])  # a third of the goods, and of their tax
    assert (first.details["points_given_back"], first.details["credit_given_back"]) == (587, 176), first.details
    return_(db, clock, program, "TAX-1", lines=[("A", 2)], shipping=500)  # the rest: the whole order
    assert balance(db, program, member).available == 3_000 - 1  # every point paid is back (1 bought the credit)
    with db.read() as conn:
        assert payments.wallet(conn=conn, program=program, member_id=member.id).balance == 600
