"""Figures a merchant acts on, checked against what members really hold (both engines)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from palier.analytics.kpis import Period, dashboard, kpis
from palier.clock import FrozenClock
from palier.db import Database
from palier.programs.models import Program
from tests.services import factories as f

ANY = Period(date(2026, 1, 1), date(2026, 12, 31))


def test_points_a_member_owes_are_not_owed_to_them(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """A return of spent points leaves a debt that the member's pending points repay: they are worth nothing."""
    program = new_program(return_window_days=14, redeem_points=100, redeem_amount=100)
    ann = f.enrol(db, clock, program, first_name="Ann")
    f.purchase(db, clock, program, ann, order_id="A-1", lines=[f.line("A", 10_000)])  # 100 pending
    clock.set(clock.now() + timedelta(days=15))
    f.mature(db, clock, program)
    f.adjust(db, clock, program, ann, -100)  # spent
    f.purchase(db, clock, program, ann, order_id="A-2", lines=[f.line("B", 4_000)])  # 40 pending
    f.return_(db, clock, program, "A-1", lines=[("A", 1)])  # 100 taken back: owed
    assert (f.balance(db, program, ann, clock).pending, f.balance(db, program, ann, clock).debt) == (40, 100)
    with db.read() as conn:
        found = kpis(conn=conn, program=program, period=ANY, now=clock.now())
    assert (found.outstanding_points, found.liability) == (0, 0)


def test_points_past_their_expiry_are_not_owed_before_the_job_runs(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """Points are gone the instant they expire (README): the liability agrees with the members' balances."""
    program = new_program(points_lifetime_months=1, redeem_points=100, redeem_amount=500)
    ann = f.enrol(db, clock, program, first_name="Ann")
    f.adjust(db, clock, program, ann, 200)

    def shown() -> int:
        with db.read() as conn:
            return dashboard(conn=conn, program=program, period=ANY, now=clock.now()).kpis.outstanding_points

    assert shown() == 200
    clock.set(clock.now() + timedelta(days=40))  # expired; the expire job has not run yet
    assert shown() == 0  # nothing was written: the cached figure is not served all the same
    f.adjust(db, clock, program, ann, 30)
    assert f.balance(db, program, ann, clock).available == 30
    with db.read() as conn:
        found = kpis(conn=conn, program=program, period=ANY, now=clock.now())
    assert (found.outstanding_points, found.liability) == (30, 150)


def test_an_erased_member_leaves_the_member_count_at_once(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """An erasure of a member with no points writes nothing to the ledger: one member fewer all the same."""
    from palier.members.erasure import erase

    program = new_program()
    f.enrol(db, clock, program, first_name="Bob")
    ann = f.enrol(db, clock, program, first_name="Ann")

    def members() -> int:
        with db.read() as conn:
            return dashboard(conn=conn, program=program, period=ANY, now=clock.now()).kpis.members

    assert members() == 2
    with db.write() as conn:
        erase(conn=conn, clock=clock, program=program, member_id=ann.id, reason="Asked to be forgotten",
              forfeit_store_credit=True, actor="key_test")  # fmt: skip
    assert members() == 1


def test_revenue_and_basket_are_net_of_refunds(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """A returned item is not revenue: members' and walk-ins' orders alike (and the cached figures follow)."""
    program = new_program()
    ann = f.enrol(db, clock, program, first_name="Ann")
    f.purchase(db, clock, program, ann, order_id="M-1", lines=[f.line("A", 3_000), f.line("B", 1_000)])
    f.purchase(db, clock, program, ann, order_id="M-2", lines=[f.line("C", 2_000)])
    body = f.purchase_body(program, ann.id, clock=clock, order_id="W-1", lines=[f.line("D", 50), f.line("E", 4_000)])
    body.member = None
    assert f.send_purchase(db, clock, program, body)[0].status == "anonymous"

    def shown() -> tuple[tuple[int, int, int | None], tuple[int, int, int | None]]:
        with db.read() as conn:
            found = dashboard(conn=conn, program=program, period=ANY, now=clock.now()).kpis
        return (
            (found.member_orders.orders, found.member_orders.revenue, found.member_orders.basket),
            (found.non_member_orders.orders, found.non_member_orders.revenue, found.non_member_orders.basket),
        )

    assert shown() == ((2, 6_000, 3_000), (1, 4_050, 4_050))
    f.return_(db, clock, program, "M-1", lines=[("A", 1)])
    assert shown() == ((2, 3_000, 1_500), (1, 4_050, 4_050))
    f.return_(db, clock, program, "W-1", lines=[("D", 1)])  # a walk-in's return writes nothing to the ledger
    assert shown() == ((2, 3_000, 1_500), (1, 4_000, 4_000))


def test_a_card_purchase_claimed_for_no_points_moves_to_the_members_column_at_once(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """Paid with a card nobody had linked, 0.50 € earns no point: linking the card writes nothing to the ledger,
    yet the order is now a member's."""
    program = new_program()
    card = f.luhn_card()
    f.purchase(db, clock, program, ("payment_card", card), amount=50)
    ann = f.enrol(db, clock, program, first_name="Ann")

    def orders() -> tuple[int, int, int]:
        with db.read() as conn:
            found = dashboard(conn=conn, program=program, period=ANY, now=clock.now()).kpis
        return found.member_orders.orders, found.non_member_orders.orders, found.active_members

    assert orders() == (0, 1, 0)
    f.add_identity(db, clock, program, ann, "payment_card", card)
    assert orders() == (1, 0, 1)


def test_what_members_hold_is_the_sum_of_their_balances(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """Held points, debt, a merge and points past their expiry: the dashboard agrees with every balance."""
    from palier.rewards import service as rewards
    from palier.rewards.models import RedeemIn, RewardIn

    program = new_program(return_window_days=14, points_lifetime_months=2)
    ann, bob, cat = (f.enrol(db, clock, program, first_name=name) for name in ("Ann", "Bob", "Cat"))
    f.purchase(db, clock, program, ann, order_id="A-1", lines=[f.line("A", 9_000)])
    f.purchase(db, clock, program, bob, order_id="B-1", lines=[f.line("B", 5_000)])
    f.adjust(db, clock, program, cat, 300)
    clock.set(clock.now() + timedelta(days=15))
    f.mature(db, clock, program)
    data = {"kind": "amount_off", "amount": 500, "cost_points": 80, "title": {"fr": "Bon", "en": "Voucher"}}
    with db.write() as conn:
        reward = rewards.create_reward(conn=conn, clock=clock, program=program, data=RewardIn.model_validate(data),
                                       actor=f.ACTOR)  # fmt: skip
        rewards.redeem(conn=conn, clock=clock, program=program, member_id=ann.id, data=RedeemIn(reward_id=reward.id))
    f.adjust(db, clock, program, bob, -50)  # spent: the return below leaves Bob owing 50
    f.purchase(db, clock, program, bob, order_id="B-2", lines=[f.line("C", 2_000)])  # 20 pending
    f.return_(db, clock, program, "B-1", lines=[("B", 1)])
    f.merge(db, clock, program, bob, cat)  # Cat's 300 repay Bob's 50
    clock.set(clock.now() + timedelta(days=60))  # Ann's and Cat's points are past their expiry, not swept
    members = [ann.id, cat.id]
    shown = [f.balance(db, program, who, clock) for who in members]
    expected = sum(max(0, b.available + b.pending + b.held - b.debt) for b in shown)
    with db.read() as conn:
        found = kpis(conn=conn, program=program, period=ANY, now=clock.now())
    assert found.outstanding_points == expected == 80 + 20  # Ann's coupon holds 80; Bob's last 20, now Cat's


def test_points_debited_by_hand_or_erased_are_a_flow_so_the_figures_add_up(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """Issued − redeemed − expired − debited is what members hold: a debit adjustment and an erasure do not
    make points vanish from the dashboard (they go to the ledger's ``adjusted`` account); a reversed debit
    comes off again."""
    from palier.members.erasure import erase

    program = new_program()
    ann, bob = f.enrol(db, clock, program, first_name="Ann"), f.enrol(db, clock, program, first_name="Bob")
    f.adjust(db, clock, program, ann, 1_000)
    f.adjust(db, clock, program, bob, 300)
    f.adjust(db, clock, program, ann, -250, reason="Entered twice")
    wrong = f.adjust(db, clock, program, ann, -100, reason="Meant for someone else")
    f.reverse(db, clock, program, ann, wrong.transaction_id)  # the 100 come back
    with db.write() as conn:
        erase(conn=conn, clock=clock, program=program, member_id=bob.id, reason="Asked to be forgotten",
              forfeit_store_credit=True, actor="key_test")  # fmt: skip
    with db.read() as conn:
        found = kpis(conn=conn, program=program, period=ANY, now=clock.now())
        store = kpis(conn=conn, program=program, period=ANY, now=clock.now(), channel="store")
    assert (found.issued, found.redeemed, found.expired, found.debited) == (1_300, 0, 0, 250 + 300)
    assert found.outstanding_points == 750 == found.issued - found.redeemed - found.expired - found.debited
    assert sum(w.debited for w in found.weeks) == 550
    assert store.debited == 0  # taken by hand or by an erasure: no channel's


def test_points_members_owe_beyond_what_they_hold_are_shown_so_the_flows_reconcile(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """A return after the points were spent leaves a debt that is no liability (0 owed to the member) but is
    what the flows add up to: issued − redeemed − expired − debited = held − owed."""
    program = new_program(return_window_days=14)
    ann, bob = f.enrol(db, clock, program, first_name="Ann"), f.enrol(db, clock, program, first_name="Bob")
    f.purchase(db, clock, program, ann, order_id="A-1", lines=[f.line("A", 10_000)])  # 100 pending
    f.adjust(db, clock, program, bob, 70)
    clock.set(clock.now() + timedelta(days=15))
    f.mature(db, clock, program)
    f.adjust(db, clock, program, ann, -100, reason="Spent at a partner")
    f.purchase(db, clock, program, ann, order_id="A-2", lines=[f.line("B", 4_000)])  # 40 pending
    f.return_(db, clock, program, "A-1", lines=[("A", 1)])  # 100 taken back: Ann owes 100, holds 40
    with db.read() as conn:
        found = kpis(conn=conn, program=program, period=ANY, now=clock.now())
    assert (found.outstanding_points, found.owed_by_members) == (70, 60)
    assert found.issued - found.redeemed - found.expired - found.debited == 70 - 60
