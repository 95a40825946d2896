"""Members: identities normalised and found on every channel, cards never stored, welcome points, merges."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import String, cast, select, update

from palier.activity.models import PurchaseIn
from palier.activity.service import payload_hash
from palier.activity.tables import events
from palier.clock import FrozenClock
from palier.db import Database
from palier.db.schema import metadata
from palier.demo import people
from palier.errors import Conflict, InvalidInput, NotFound
from palier.ids import new_id
from palier.members.models import MemberCreate
from palier.programs.models import Program
from palier.timeutil import add_months
from tests.services.factories import (
    add_identity,
    adjust,
    balance,
    enrol,
    get_member,
    history,
    line,
    lookup,
    luhn_card,
    merge,
    purchase,
    return_,
    reverse,
    spaced,
    unique,
)

BANK_CARD = people.test_card_number(random.Random(3))  # the same on every test worker: it names a test case


def test_profile_email_and_phone_are_normalised(db: Database, clock: FrozenClock, program: Program) -> None:
    user = unique("ana")
    member = enrol(db, clock, program, first_name="Ana", email=f"{user.upper()}@Example.COM", phone="06 12 34 56 78")
    assert member.email == f"{user}@example.com"
    assert member.phone == "+33612345678"
    assert {(i.kind, i.value) for i in member.identities} == {
        ("email", f"{user}@example.com"),
        ("phone", "+33612345678"),
    }
    assert member.status == "active" and member.enrolled_at == clock.now()


def test_phone_without_plus_is_read_in_the_programs_country(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    belgian = new_program(default_country="BE")
    member = enrol(db, clock, belgian, phone="0470 12 34 56")
    assert member.phone == "+32470123456"
    assert enrol(db, clock, new_program(), phone="+32 470 12 34 57").phone == "+32470123457"


def test_a_member_is_found_by_each_identity(db: Database, clock: FrozenClock, program: Program) -> None:
    card, loyalty = luhn_card(), unique("LC").replace("-", "")
    member = enrol(
        db,
        clock,
        program,
        email="Lookup@Example.com",
        phone="+33 6 98 76 54 32",
        identities=[("card", loyalty.lower()), ("external", "CRM-42"), ("payment_card", spaced(card))],
    )
    found_by = {
        "email": ("email", " LOOKUP@example.COM "),
        "phone": ("phone", "06 98 76 54 32"),
        "card": ("card", loyalty.lower()),
        "external": ("external", "CRM-42"),
        "payment_card raw": ("payment_card", card),
        "payment_card spaced": ("payment_card", spaced(card)),
        "payment_card dashed": ("payment_card", "-".join(spaced(card).split())),
    }
    for label, (kind, value) in found_by.items():
        assert lookup(db, program, kind, value).id == member.id, label
    shown = {i.kind: i.value for i in member.identities}
    assert shown["card"] == loyalty.upper()
    assert shown["payment_card"] == f"visa •••• {card[-4:]}"


def test_lookup_of_an_unknown_identity_is_not_found(db: Database, clock: FrozenClock, program: Program) -> None:
    with pytest.raises(NotFound) as caught:
        lookup(db, program, "email", "nobody@example.com")
    assert (caught.value.code, caught.value.field) == ("member_not_found", "value")
    with pytest.raises(NotFound):
        lookup(db, program, "payment_card", luhn_card())


def test_identities_do_not_leak_between_programs(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program_a, program_b = new_program(), new_program()
    enrol(db, clock, program_a, email="shared@example.com")
    with pytest.raises(NotFound):
        lookup(db, program_b, "email", "shared@example.com")
    other = enrol(db, clock, program_b, email="shared@example.com")  # not taken in program B
    assert lookup(db, program_b, "email", "shared@example.com").id == other.id


def _all_stored_text(db: Database, program: Program) -> list[str]:
    """Every value of every column of every table, as text (JSON included), for the rows of ``program``
    (tables without a program column are read whole)."""
    found: list[str] = []
    with db.read() as conn:
        for table in metadata.sorted_tables:
            query = select(*(cast(column, String) for column in table.columns))
            if "program_id" in table.columns:
                query = query.where(table.c.program_id == program.id)
            elif table.name == "programs":
                query = query.where(table.c.id == program.id)
            for row in conn.execute(query):
                found.extend(str(value) for value in row if value is not None)
    return found


def test_a_payment_card_number_is_never_stored(db: Database, clock: FrozenClock, program: Program) -> None:
    card = luhn_card()
    member = enrol(db, clock, program, first_name="Zoé", identities=[("payment_card", spaced(card))])
    purchase(db, clock, program, ("payment_card", spaced(card)), amount=2500)
    stranger = luhn_card()
    purchase(db, clock, program, ("payment_card", stranger), amount=1000)  # unclaimed, kept for later
    assert lookup(db, program, "payment_card", card).id == member.id
    stored = _all_stored_text(db, program)
    assert len(stored) > 100  # the scan really read the program's rows
    for number in (card, stranger):
        for form in (number, spaced(number), number[4:12]):  # the BIN and last four may be kept
            leaks = [value for value in stored if form in value.replace(" ", "") or form in value]
            assert leaks == [], f"card digits {form} found in {leaks[:3]}"
    assert any(card[-4:] in value for value in stored)  # last four digits are kept, as designed


def test_the_stored_request_hash_does_not_reveal_a_card_number(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    card = luhn_card("49701234")  # an 8-digit BIN, as issuers now use and publish
    enrol(db, clock, program, identities=[("payment_card", card)])
    order = purchase(db, clock, program, ("payment_card", card), amount=1999)
    with db.read() as conn:
        row = conn.execute(select(events.c.body, events.c.payload_hash).where(events.c.id == order.event_id)).one()
    stored, stored_hash = dict(row.body), row.payload_hash
    last4 = stored["member"]["value"][-4:]
    recovered = None
    for middle in range(10_000):  # what anyone who can read the table (and this open source) would try
        candidate = f"{card[:8]}{middle:04d}{last4}"
        body = PurchaseIn.model_validate({**stored, "member": {"kind": "payment_card", "value": candidate}})
        if payload_hash(body, timezone=program.timezone).matches(stored_hash):
            recovered = candidate
            break
    assert recovered is None, "the card number was recovered from events.payload_hash"


def test_an_identity_belongs_to_one_member(db: Database, clock: FrozenClock, program: Program) -> None:
    card = luhn_card()
    first = enrol(db, clock, program, email="taken@example.com", identities=[("payment_card", card)])
    cases = [
        ({"email": "TAKEN@example.com"}, "email"),
        ({"identities": [("payment_card", spaced(card))]}, "identities[0].value"),
    ]
    for profile, field in cases:
        with pytest.raises(Conflict) as caught:
            enrol(db, clock, program, **profile)
        assert (caught.value.code, caught.value.status, caught.value.field) == ("identity_taken", 409, field)
    second = enrol(db, clock, program, first_name="Other")
    with pytest.raises(Conflict) as caught:
        add_identity(db, clock, program, second, "email", "taken@example.com")
    assert caught.value.code == "identity_taken"
    assert lookup(db, program, "email", "taken@example.com").id == first.id
    assert get_member(db, program, second.id).identities == []
    # linking again to its own owner is harmless
    again = add_identity(db, clock, program, first, "email", "Taken@Example.com")
    assert [i.kind for i in again.identities].count("email") == 1


@pytest.mark.parametrize(
    ("profile", "code", "field"),
    [
        ({"email": "not-an-address"}, "invalid_email", "email"),
        ({"phone": "12"}, "invalid_phone", "phone"),
        ({"phone": "06 12 34"}, "invalid_phone", "phone"),
        ({"identities": [("payment_card", "4970 1234 1234 1235")]}, "invalid_payment_card", "identities[0].value"),
        ({"identities": [("payment_card", "1234")]}, "invalid_payment_card", "identities[0].value"),
        ({"identities": [("card", "a!")]}, "invalid_loyalty_card", "identities[0].value"),
        ({"identities": [("card", spaced(BANK_CARD))]}, "payment_card_as_loyalty_card", "identities[0].value"),
    ],
)
def test_invalid_identities_are_refused_with_their_field(
    db: Database, clock: FrozenClock, program: Program, profile: dict[str, object], code: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        enrol(db, clock, program, **profile)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.field, caught.value.status) == (code, field, 422)


def test_a_card_number_in_a_name_is_refused() -> None:
    card = luhn_card("4111")
    for name in (spaced(card), f"Jean {spaced(card, '-')}", card):
        with pytest.raises(ValidationError, match="card_number_in_text"):
            MemberCreate(first_name=name)
    with pytest.raises(ValidationError, match="card_number_in_text"):
        MemberCreate(last_name=spaced(luhn_card("5555")))
    assert MemberCreate(first_name="Jean 1234").first_name == "Jean 1234"  # short numbers are fine


def test_welcome_points_are_available_at_once_and_expire_with_the_program_lifetime(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program = new_program(welcome_points=150, points_lifetime_months=6)
    member = enrol(db, clock, program, first_name="Ana")
    shown = balance(db, program, member)
    assert (shown.available, shown.pending, shown.debt) == (150, 0, 0)
    assert shown.next_expiry is not None
    assert shown.next_expiry.points == 150
    assert shown.next_expiry.expires_at == add_months(clock.now(), 6)
    plain = new_program()
    nothing = balance(db, plain, enrol(db, clock, plain, first_name="Bo"))
    assert (nothing.available, nothing.next_expiry) == (0, None)


def test_merge_moves_points_lots_identities_and_orders_to_the_target(
    db: Database, clock: FrozenClock, new_program: Callable[..., Program]
) -> None:
    program = new_program(welcome_points=10)
    card = luhn_card()
    source = enrol(db, clock, program, email="dup@example.com", identities=[("payment_card", card)])
    target = enrol(db, clock, program, email="main@example.com")
    old = purchase(
        db,
        clock,
        program,
        source,
        lines=[line("A", 3000), line("B", 2000)],
        occurred_at=clock.now() - timedelta(days=20),
    )
    fresh = purchase(db, clock, program, source, amount=4000)  # still pending
    adjust(db, clock, program, source, -15, reason="Spent at the till")
    assert (balance(db, program, source).available, balance(db, program, source).pending) == (45, 40)

    result = merge(db, clock, program, source, target)

    assert result.moved == {"available": 45, "pending": 40}
    assert result.lots_moved == 3 and result.identities_moved == 2
    moved = balance(db, program, target)
    assert (moved.available, moved.pending, moved.debt) == (10 + 45, 40, 0)
    assert moved.next_maturity is not None and moved.next_maturity.points == 40
    gone = balance(db, program, source)
    assert (gone.available, gone.pending, gone.held, gone.debt) == (0, 0, 0, 0)
    closed = get_member(db, program, source.id)
    assert (closed.status, closed.merged_into_id, closed.identities) == ("merged", target.id, [])
    assert {i.kind for i in get_member(db, program, target.id).identities} == {"email", "payment_card"}
    assert lookup(db, program, "email", "dup@example.com").id == target.id

    # the source's card now earns for the target; its old orders are returned against the target
    later = purchase(db, clock, program, ("payment_card", spaced(card)), amount=1000)
    assert later.member_id == target.id and later.points == 10
    assert balance(db, program, target).pending == 50
    taken = return_(db, clock, program, fresh.external_id, lines=[("SKU-1", 1)])
    assert taken.member_id == target.id and taken.points == -40
    taken = return_(db, clock, program, old.external_id, lines=[("B", 1)])
    assert taken.points == -20
    final = balance(db, program, target)
    assert (final.available, final.pending) == (10 + 45 - 20, 10)


def test_a_member_cannot_be_merged_into_itself(db: Database, clock: FrozenClock, program: Program) -> None:
    member = enrol(db, clock, program)
    with pytest.raises(InvalidInput) as caught:
        merge(db, clock, program, member, member)
    assert (caught.value.code, caught.value.field) == ("merge_same_member", "source_member_id")


def test_a_merged_member_cannot_be_merged_or_used_again(db: Database, clock: FrozenClock, program: Program) -> None:
    source, target, third = (enrol(db, clock, program) for _ in range(3))
    merge(db, clock, program, source, target)
    for args, field in (((source, third), "source_member_id"), ((third, source), "target_member_id")):
        with pytest.raises(Conflict) as caught:
            merge(db, clock, program, *args)
        assert (caught.value.code, caught.value.field) == ("member_merged", field)
        assert caught.value.extra["merged_into_id"] == target.id
    with pytest.raises(Conflict) as caught:
        purchase(db, clock, program, source, amount=1000)
    assert caught.value.code == "member_merged"
    with pytest.raises(Conflict) as caught:
        adjust(db, clock, program, source, 5)
    assert caught.value.code == "member_merged"
    with pytest.raises(NotFound) as missing:
        merge(db, clock, program, new_id("member"), target)
    assert (missing.value.code, missing.value.field) == ("member_not_found", "source_member_id")


def test_merge_carries_debt_over(db: Database, clock: FrozenClock, program: Program) -> None:
    source, target = enrol(db, clock, program), enrol(db, clock, program)
    order = purchase(db, clock, program, source, amount=5000, occurred_at=clock.now() - timedelta(days=20))
    adjust(db, clock, program, source, -50, reason="Redeemed in store")
    return_(db, clock, program, order.external_id, lines=[("SKU-1", 1)])
    assert balance(db, program, source).debt == 50
    merge(db, clock, program, source, target)
    shown = balance(db, program, target)
    assert (shown.available, shown.debt) == (0, 50)
    repaid = purchase(db, clock, program, target, amount=6000, occurred_at=clock.now() - timedelta(days=20))
    assert repaid.details == {"debt_repaid": 50}
    shown = balance(db, program, target)
    assert (shown.available, shown.debt) == (10, 0)


def test_a_mistake_on_a_merged_account_is_reversed_through_the_member_that_remains(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    source, target, last = (enrol(db, clock, program) for _ in range(3))
    kept = adjust(db, clock, program, source, 100, reason="Goodwill")
    twice = adjust(db, clock, program, source, 50, reason="Goodwill, entered twice")
    debit = adjust(db, clock, program, source, -30, reason="Mistyped debit")
    merge(db, clock, program, source, target)
    assert balance(db, program, target).available == 120
    with pytest.raises(Conflict) as caught:  # the closed account says where its points went
        reverse(db, clock, program, source, debit.transaction_id)
    assert (caught.value.code, caught.value.extra["merged_into_id"]) == ("member_merged", target.id)

    back = reverse(db, clock, program, target, debit.transaction_id)  # back to the lots, now the target's
    assert (back.member_id, back.points, balance(db, program, target).available) == (target.id, 30, 150)
    merge(db, clock, program, target, last)  # and again: the points follow every merge
    assert reverse(db, clock, program, last, twice.transaction_id).points == -50
    with pytest.raises(Conflict) as caught:
        reverse(db, clock, program, last, twice.transaction_id)
    assert caught.value.code == "already_reversed"
    with pytest.raises(NotFound) as missing:  # another member's transaction stays unknown here
        reverse(db, clock, program, enrol(db, clock, program), kept.transaction_id)
    assert missing.value.code == "transaction_not_found"
    assert balance(db, program, last).available == 100
    assert adjust(db, clock, program, last, -100, reason="Spent at the till").points == -100  # the lot is whole


@pytest.mark.parametrize("owes", ["source", "target"])
def test_merge_repays_debt_from_the_other_accounts_points(
    db: Database, clock: FrozenClock, program: Program, owes: str
) -> None:
    """A member never owes points while holding some to spend: the merged points repay the debt at once."""
    source, target = enrol(db, clock, program), enrol(db, clock, program)
    debtor, saver = (source, target) if owes == "source" else (target, source)
    order = purchase(db, clock, program, debtor, amount=5000, occurred_at=clock.now() - timedelta(days=20))
    adjust(db, clock, program, debtor, -50, reason="Redeemed in store")
    return_(db, clock, program, order.external_id, lines=[("SKU-1", 1)])
    adjust(db, clock, program, saver, 30, reason="Birthday gift")
    adjust(db, clock, program, saver, 40, reason="Survey answered")
    result = merge(db, clock, program, source, target)
    shown = balance(db, program, target)
    assert (shown.available, shown.debt, result.debt_repaid) == (20, 0, 50)
    repaid = [line for line in history(db, program, target) if line.reason_code == "debt_repaid"]
    assert [(line.available, line.debt, line.reason) for line in repaid] == [(-50, -50, "50 points owed repaid")]


def test_a_card_purchase_kept_before_a_check_was_added_is_still_credited_when_the_card_is_linked(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    card = luhn_card()
    order = purchase(db, clock, program, ("payment_card", card), amount=2500)
    with db.write() as conn:  # its stored copy holds a store name longer than today's check lets through
        body = conn.execute(select(events.c.body).where(events.c.id == order.event_id)).scalar_one()
        conn.execute(update(events).where(events.c.id == order.event_id).values(body=body | {"store_name": "S" * 200}))
    member = enrol(db, clock, program)
    add_identity(db, clock, program, member, "payment_card", card)
    assert balance(db, program, member).pending == 25
