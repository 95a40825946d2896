"""Purchases: what an order earns, when it becomes spendable, idempotent resends, refusals, expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from palier.activity.service import payload_hash
from palier.activity.tables import events
from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import Conflict, InvalidInput, NotFound
from palier.ids import new_id
from palier.ledger.tables import accounts, ledger_transactions
from palier.programs import service as programs
from palier.programs.models import Program, ProgramUpdate
from palier.timeutil import add_months
from tests.services.factories import (
    CARD_KEY,
    add_identity,
    adjust,
    balance,
    enrol,
    expire,
    history,
    line,
    luhn_card,
    mature,
    purchase,
    purchase_body,
    return_,
    send_purchase,
    spaced,
    statements_run,
)


def event_count(db: Database, program: Program) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).where(events.c.program_id == program.id)).scalar_one())


def transaction_count(db: Database, program: Program) -> int:
    with db.read() as conn:
        query = select(func.count()).where(ledger_transactions.c.program_id == program.id)
        return int(conn.execute(query).scalar_one())


@pytest.mark.parametrize(
    ("rounding", "amount", "points"),
    [
        ("floor", 1250, 12),
        ("half_up", 1250, 13),
        ("floor", 1299, 12),
        ("half_up", 1249, 12),
        ("half_up", 1299, 13),
        ("half_even", 1250, 12),
        ("half_even", 1350, 14),
        ("ceiling", 1201, 13),
        ("floor", 99, 0),
    ],
)
def test_base_rate_with_the_programs_rounding(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program], rounding: str, amount: int, points: int
) -> None:
    program = new_program(rounding=rounding)
    member = enrol(db, clock, program)
    result = purchase(db, clock, program, member, lines=[line("A", amount)])
    assert result.points == points and result.status == "processed" and result.member_id == member.id
    assert balance(db, program, member).pending == points


def test_rate_applies_to_the_whole_order_not_line_by_line(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program = new_program(earn_points=3, earn_per_amount=200)  # 1.5 points per euro
    member = enrol(db, clock, program)
    result = purchase(db, clock, program, member, lines=[line("A", 150, quantity=3), line("B", 99, discount=9)])
    assert result.points == (450 + 90) * 3 // 200  # 8, where rounding each line down would give 6


ORDER = {
    "lines": [line("SHIRT", 2000, quantity=2, discount=500), line("GIFT", 5000, kind="gift_card")],
    "shipping": 490,
    "tax": 700,
}


@pytest.mark.parametrize(
    ("settings", "points"),
    [
        ({}, 35),
        ({"earn_on_shipping": True}, 39),
        ({"earn_on_tax": True}, 42),
        ({"earn_on_gift_cards": True}, 85),
        ({"earn_on_shipping": True, "earn_on_tax": True, "earn_on_gift_cards": True}, 96),
    ],
)
def test_shipping_tax_and_gift_cards_earn_only_when_enabled(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program], settings: dict[str, bool], points: int
) -> None:
    program = new_program(**settings)
    member = enrol(db, clock, program)
    assert purchase(db, clock, program, member, **ORDER).points == points
    assert balance(db, program, member).pending == points


def test_points_are_pending_until_the_return_window_closes(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    result = purchase(db, clock, program, member, amount=4200)
    assert result.pending is True and result.matures_at == clock.now() + timedelta(days=14)
    shown = balance(db, program, member)
    assert (shown.available, shown.pending) == (0, 42)
    assert shown.next_maturity is not None and shown.next_maturity.matures_at == result.matures_at

    clock.advance(days=13)
    mature(db, clock, program)
    assert (balance(db, program, member).available, balance(db, program, member).pending) == (0, 42)

    clock.advance(days=2)
    mature(db, clock, program)
    shown = balance(db, program, member)
    assert (shown.available, shown.pending, shown.next_maturity) == (42, 0, None)
    assert shown.next_expiry is not None and shown.next_expiry.points == 42
    assert [t.kind for t in history(db, program, member)] == ["earn", "mature"]
    mature(db, clock, program)  # nothing left to do: matured once
    assert [t.kind for t in history(db, program, member)] == ["earn", "mature"]
    assert balance(db, program, member).available == 42


def test_an_old_purchase_is_available_at_once(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    result = purchase(db, clock, program, member, amount=1000, occurred_at=clock.now() - timedelta(days=15))
    assert (result.pending, result.matures_at) == (False, None)
    assert (balance(db, program, member).available, balance(db, program, member).pending) == (10, 0)


def test_a_purchase_sent_after_its_points_would_have_expired_earns_them_expired(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """An order found in a drawer 13 months later: its points are recorded, and expired, never spendable."""
    member = enrol(db, clock, program)
    adjust(db, clock, program, member, 15, reason="Birthday gift")
    made = clock.now() - timedelta(days=400)
    result = purchase(db, clock, program, member, amount=4000, occurred_at=made)
    assert (result.points, result.pending, result.details) == (40, False, {"expired": 40})
    shown = balance(db, program, member)
    assert (shown.available, shown.pending, shown.debt) == (15, 0, 0)
    assert shown.next_expiry is not None and shown.next_expiry.points == 15
    expired = [t for t in history(db, program, member) if t.kind == "expire"]
    assert [(t.available, t.reason_code) for t in expired] == [(-40, "expired")]
    assert expired[0].reason == f"40 points from Purchase #{result.external_id} in store expired"
    expire(db, clock, program)  # the expiry job finds nothing more to take
    assert balance(db, program, member).available == 15
    back = return_(db, clock, program, result.external_id, lines=[("SKU-1", 1)])
    assert back.details["excused_expired"] == 40  # gone once already: not taken from the birthday points
    assert balance(db, program, member).available == 15


def test_a_time_without_an_offset_is_the_shops_local_time(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    """A Paris till sends "08:12" without an offset: that is 07:12 UTC in winter, not 08:12 UTC."""
    program = new_program(timezone="Europe/Paris")
    member = enrol(db, clock, program)
    result = purchase(db, clock, program, member, amount=1000, occurred_at=datetime(2026, 2, 20, 8, 12))
    assert result.matures_at == datetime(2026, 3, 6, 7, 12, tzinfo=UTC)  # 14 days after 07:12 UTC
    just_now = purchase(db, clock, program, member, amount=1000, occurred_at=datetime(2026, 3, 2, 9, 30))
    assert just_now.matures_at == datetime(2026, 3, 16, 8, 30, tzinfo=UTC)  # 09:30 in Paris: not in the future
    with pytest.raises(InvalidInput) as caught:
        purchase(db, clock, program, member, amount=1000, occurred_at=datetime(2026, 3, 2, 10, 30))
    assert caught.value.code == "occurred_in_future"


def test_the_same_order_sent_again_returns_the_first_result(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    body = purchase_body(program, member, clock=clock, amount=2590)
    first, replayed = send_purchase(db, clock, program, body)
    assert replayed is False and first.points == 25
    before = (event_count(db, program), transaction_count(db, program))
    clock.advance(days=20)
    mature(db, clock, program)
    again, replayed = send_purchase(db, clock, program, body)
    assert replayed is True and again == first
    assert event_count(db, program) == before[0]
    assert balance(db, program, member).available == 25  # matured once, not earned twice
    assert transaction_count(db, program) == before[1] + 1  # only the maturity


def test_an_order_recorded_by_an_earlier_version_still_replays(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """Earlier versions fingerprinted the body exactly as sent; a retry of such an order is still a replay."""
    member = enrol(db, clock, program)
    body = purchase_body(program, member, clock=clock, amount=2590)
    first, _ = send_purchase(db, clock, program, body)
    sent = payload_hash(body, timezone=program.timezone, key=CARD_KEY)
    assert sent.as_sent != sent.value  # "…Z" as pydantic writes it, "…+00:00" as an instant
    with db.write() as conn:
        conn.execute(
            update(events)
            .where(events.c.program_id == program.id, events.c.external_id == body.order_id)
            .values(payload_hash=sent.as_sent)
        )
    again, replayed = send_purchase(db, clock, program, body)
    assert replayed is True and again == first
    with pytest.raises(Conflict):
        send_purchase(db, clock, program, body.model_copy(update={"lines": [line("SKU-1", 2600)]}))


def test_an_identical_resend_after_the_time_zone_changed_is_still_the_same_order(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A time sent without an offset is compared as written: the program moving to another zone meanwhile
    does not turn a till's retry into a conflict."""
    member = enrol(db, clock, program)
    local = clock.now().astimezone(ZoneInfo(program.timezone)).replace(tzinfo=None) - timedelta(hours=1)
    body = purchase_body(program, member, clock=clock, amount=2590).model_copy(update={"occurred_at": local})
    first, _ = send_purchase(db, clock, program, body)
    with db.write() as conn:
        moved = programs.update_program(
            conn=conn, clock=clock, program_id=program.id, changes=ProgramUpdate(timezone="Europe/London"), actor="t"
        )
    again, replayed = send_purchase(db, clock, moved, body)
    assert replayed is True and again == first


def test_the_same_order_id_with_another_body_is_a_conflict(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    body = purchase_body(program, member, clock=clock, amount=2590)
    send_purchase(db, clock, program, body)
    changed = body.model_copy(update={"lines": [line("SKU-1", 2600)]})
    with pytest.raises(Conflict) as caught:
        send_purchase(db, clock, program, changed)
    assert (caught.value.code, caught.value.status, caught.value.field) == ("event_conflict", 409, "order_id")
    assert balance(db, program, member).pending == 25


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"currency": "USD"}, "currency_mismatch", "currency"),
        ({"occurred_at": timedelta(hours=1)}, "occurred_in_future", "occurred_at"),
    ],
)
def test_refused_purchases_leave_nothing_behind(
    db: Database, clock: FrozenClock, program: Program, change: dict[str, object], code: str, field: str
) -> None:
    member = enrol(db, clock, program)
    if "occurred_at" in change:
        change = {"occurred_at": clock.now() + change["occurred_at"]}  # type: ignore[operator]
    with pytest.raises(InvalidInput) as caught:
        purchase(db, clock, program, member, amount=1000, **change)
    assert (caught.value.code, caught.value.field) == (code, field)
    assert event_count(db, program) == 0
    assert balance(db, program, member).pending == 0


def test_a_till_clock_a_little_ahead_is_tolerated(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    assert (
        purchase(db, clock, program, member, amount=1000, occurred_at=clock.now() + timedelta(minutes=4)).points == 10
    )


def test_an_unknown_buyer_is_not_found(db: Database, clock: FrozenClock, program: Program) -> None:
    for who, field in (
        (("email", "ghost@example.com"), "member.value"),
        (("card", "NOPE1234"), "member.value"),
        (new_id("member"), "member.member_id"),
    ):
        with pytest.raises(NotFound) as caught:
            purchase(db, clock, program, who, amount=1000)
        assert (caught.value.code, caught.value.field) == ("member_not_found", field)
    assert event_count(db, program) == 0


def test_a_purchase_is_found_by_any_identity(db: Database, clock: FrozenClock, program: Program) -> None:
    card = luhn_card()
    member = enrol(
        db, clock, program, phone="+33 6 11 22 33 44", identities=[("card", "LOY123456"), ("payment_card", card)]
    )
    for who in (("phone", "06 11 22 33 44"), ("card", "loy-123-456"), ("payment_card", spaced(card))):
        assert purchase(db, clock, program, who, amount=1000).member_id == member.id
    assert balance(db, program, member).pending == 30


def test_a_card_linked_later_claims_its_earlier_purchases(db: Database, clock: FrozenClock, program: Program) -> None:
    card = luhn_card()
    old = purchase(
        db, clock, program, ("payment_card", card), amount=3000, occurred_at=clock.now() - timedelta(days=20)
    )
    recent = purchase(
        db, clock, program, ("payment_card", spaced(card)), amount=1500, occurred_at=clock.now() - timedelta(days=2)
    )
    for result in (old, recent):
        assert (result.status, result.member_id, result.transaction_id) == ("unclaimed", None, None)
    assert (old.points, recent.points) == (30, 15)

    member = enrol(db, clock, program, first_name="Late")
    add_identity(db, clock, program, member, "payment_card", spaced(card))

    shown = balance(db, program, member)
    assert (shown.available, shown.pending) == (30, 15)  # the old one's window had closed already
    assert shown.next_maturity is not None
    assert shown.next_maturity.matures_at == clock.now() - timedelta(days=2) + timedelta(days=14)
    assert shown.next_expiry is not None
    assert shown.next_expiry.expires_at == add_months(clock.now() - timedelta(days=20), 12)
    assert [t.reason_code for t in history(db, program, member)] == ["purchase_claimed"] * 2
    # linking the card again credits nothing twice
    add_identity(db, clock, program, member, "payment_card", card)
    assert balance(db, program, member).available == 30
    clock.advance(days=13)
    mature(db, clock, program)
    assert (balance(db, program, member).available, balance(db, program, member).pending) == (45, 0)


def test_enrolling_with_a_card_claims_its_purchases(db: Database, clock: FrozenClock, program: Program) -> None:
    card = luhn_card()
    purchase(db, clock, program, ("payment_card", card), amount=2000, occurred_at=clock.now() - timedelta(days=30))
    member = enrol(db, clock, program, identities=[("payment_card", card)])
    assert balance(db, program, member).available == 20


def test_points_expire_after_the_programs_lifetime(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    earned_at = clock.now()
    first = purchase(db, clock, program, member, amount=10000)
    clock.advance(days=15)
    mature(db, clock, program)
    adjust(db, clock, program, member, -30, reason="Coffee voucher")
    purchase(db, clock, program, member, amount=2000)  # earned later, expires later
    shown = balance(db, program, member)
    assert shown.next_expiry is not None
    assert (shown.next_expiry.points, shown.next_expiry.expires_at) == (70, add_months(earned_at, 12))

    clock.set(add_months(earned_at, 12) - timedelta(seconds=1))
    mature(db, clock, program)
    expire(db, clock, program)
    assert balance(db, program, member).available == 70 + 20

    clock.advance(seconds=1)
    expire(db, clock, program)
    shown = balance(db, program, member)
    assert (shown.available, shown.pending) == (20, 0)
    assert shown.next_expiry is not None and shown.next_expiry.expires_at == add_months(
        earned_at + timedelta(days=15), 12
    )
    expired = [t for t in history(db, program, member) if t.kind == "expire"]
    assert len(expired) == 1
    assert expired[0].reason == f"70 points from Purchase #{first.external_id} in store expired"
    assert expired[0].reason_code == "expired"
    with db.read() as conn:  # the program's `expired` account took them (its slots sum)
        query = select(func.sum(accounts.c.balance)).where(
            accounts.c.program_id == program.id, accounts.c.kind == "expired"
        )
        assert conn.execute(query).scalar_one() == 70
    expire(db, clock, program)  # expired once
    assert len([t for t in history(db, program, member) if t.kind == "expire"]) == 1


def test_points_never_expire_when_the_program_says_so(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program = new_program(points_lifetime_months=None)
    member = enrol(db, clock, program)
    purchase(db, clock, program, member, amount=1000, occurred_at=clock.now() - timedelta(days=30))
    clock.advance(days=3650)
    expire(db, clock, program)
    shown = balance(db, program, member)
    assert (shown.available, shown.next_expiry) == (10, None)


def test_a_purchase_by_member_id_costs_six_statements_on_postgresql_and_a_resend_one(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """What a purchase costs the database (see bench/purchases.py): the resend check, the member's lock, their
    status with their address and points (what the mailer's points_earned event says), the order's lock and its
    payments with points, and one statement (ledger.post.write_with) for the ledger transaction with its
    postings, balances and lot, the event, the purchase and the outbox's event. SQLite writes those one statement
    per table, in process. A resend is one statement."""
    member = enrol(db, clock, program)
    body = purchase_body(program, member, clock=clock, amount=1000)
    with statements_run(db) as first:
        send_purchase(db, clock, program, body)
    with statements_run(db) as resent:
        assert send_purchase(db, clock, program, body)[1] is True
    assert (len(first), len(resent)) == ((6, 1) if db.is_postgres else (10, 1)), first
    assert balance(db, program, member).pending == 10
