"""Identities typed in unusual ways find the same member, never a second one."""

from __future__ import annotations

import pytest

from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import Conflict
from palier.members import service as members
from palier.members.models import MemberUpdate
from palier.programs.models import Program
from tests.services.factories import ACTOR, add_identity, enrol, get_member, lookup, luhn_card


def full_width(digits: str) -> str:
    """``4970…`` as a Japanese keyboard types it: ``４９７０…``."""
    return "".join(chr(ord(c) + 0xFEE0) for c in digits)


def test_a_payment_card_typed_in_full_width_digits_is_the_same_card(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    card = luhn_card()
    member = enrol(db, clock, program, identities=[("payment_card", card)])
    assert lookup(db, program, "payment_card", full_width(card)).id == member.id
    with pytest.raises(Conflict) as refused:
        enrol(db, clock, program, identities=[("payment_card", full_width(card))])
    assert refused.value.code == "identity_taken"
    other = enrol(db, clock, program, identities=[("payment_card", full_width(luhn_card()))])
    shown = get_member(db, program, other.id).identities[0].value
    assert shown[-4:].isascii() and shown[-4:].isdigit()  # "visa •••• 1234", not in full-width digits


def test_clearing_the_profiles_email_puts_back_the_oldest_one_still_linked(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """As unlinking it does: the mailer still has an address that finds the member."""
    member = enrol(db, clock, program, email="first@example.com")
    add_identity(db, clock, program, member, "email", "second@example.com")
    add_identity(db, clock, program, member, "email", "third@example.com")  # the profile's now
    add_identity(db, clock, program, member, "phone", "06 12 34 56 78")
    with db.write() as conn:
        cleared = members.update_member(
            conn=conn, clock=clock, program=program, member_id=member.id,
            changes=MemberUpdate.model_validate({"email": None, "phone": None}), actor=ACTOR,
        )  # fmt: skip
    assert (cleared.email, cleared.phone) == ("first@example.com", None)
    assert sorted(i.value for i in cleared.identities) == ["first@example.com", "second@example.com"]


def test_a_profile_sent_again_with_the_same_email_and_phone_keeps_their_identities(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    """A shop re-sending the whole profile (the same address, however typed) changes nothing of its identities."""
    member = enrol(db, clock, program, email="ann@example.com", phone="06 12 34 56 78")
    before = {(i.kind, i.value): (i.id, i.created_at) for i in member.identities}
    clock.advance(days=1)
    with db.write() as conn:
        again = members.update_member(
            conn=conn, clock=clock, program=program, member_id=member.id,
            changes=MemberUpdate.model_validate({"email": "ANN@example.com", "phone": "+33 6 12 34 56 78"}),
            actor=ACTOR,
        )  # fmt: skip
    assert {(i.kind, i.value): (i.id, i.created_at) for i in again.identities} == before
    assert (again.email, again.phone) == ("ann@example.com", "+33612345678")
