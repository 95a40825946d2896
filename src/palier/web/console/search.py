"""Find members by whatever the staff types: a card, an e-mail, a phone, an external id, a member id or a name."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from fastapi import Request
from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from palier.errors import PalierError
from palier.members import service as members
from palier.members.models import Member
from palier.members.tables import members as member_rows
from palier.programs.models import Program
from palier.text import ACCENTED, PLAIN, folded, mask_card_numbers

MAX_FOUND = 20


def _kinds(text: str) -> list[str]:
    """The identity kinds ``text`` could be, most likely first."""
    if "@" in text:
        return ["email", "external"]
    digits = sum(ch.isdigit() for ch in text)
    if digits and digits >= len(re.sub(r"[\s+\-.()]", "", text)) - 1:  # "06.12.34.56.78", "+33 (0)6 12…"
        return ["card", "phone", "external", "payment_card"]
    return ["card", "external"]


async def posted_search(request: Request, program: Program) -> tuple[str, list[Member]]:
    """What the search box posted (``q``: posted, so a phone or card number stays out of URLs, browser
    history and access logs), as it may be shown again (a payment card number masked), and the members
    it finds."""
    text = str((await request.form()).get("q", "")).strip()[:254]
    if not text:
        return text, []
    with request.app.state.db.read() as conn:
        card_key = request.app.state.settings.card_hash_key
        return mask_card_numbers(text), find_members(conn=conn, program=program, text=text, card_key=card_key)


def scanned_once(text: str) -> str:
    """``text`` as typed once: a barcode scanner that fires twice types the code twice ("MF1234MF1234")."""
    compact = text.strip()
    half, odd = divmod(len(compact), 2)
    if not odd and half >= 4 and compact[:half] == compact[half:]:
        return compact[:half]
    return compact


def find_members(*, conn: Connection, program: Program, text: str, card_key: bytes) -> list[Member]:
    """Every member ``text`` identifies (exactly, through ``members.find_member_id``), then name matches: at most
    :data:`MAX_FOUND` and one more, which tells there are more than a page lists (:func:`listed`).
    A code typed twice in a row (a double scan) that identifies nobody is tried once."""
    text = text.strip()
    if not text:
        return []
    found: dict[str, None] = {}
    if text.startswith("mem_") and len(text) <= 40:
        with contextlib.suppress(PalierError):
            found[members.get_member(conn=conn, program_id=program.id, member_id=text).id] = None
    for value in dict.fromkeys((text, scanned_once(text))):
        for member_id in _identified(conn=conn, program=program, text=value, card_key=card_key):
            found[member_id] = None
        if found:
            break
    if len(text) >= 2 and not any(ch.isdigit() for ch in text) and "@" not in text:
        # a prefix of the first name, the last name or both in either order ("Léa Moreau", "MOREAU Léa"), or
        # of each word ("lea mor"), whatever the accents and the case
        words = [folded(word).replace("%", "").replace("_", "") for word in text.split()]
        pattern = " ".join(words) + "%"
        first, last = (func.coalesce(c, "") for c in (member_rows.c.first_name, member_rows.c.last_name))
        either: list[ColumnElement[bool]] = [
            _folded(name).like(pattern) for name in (first, last, first + " " + last, last + " " + first)
        ]
        if len(words) > 1:
            either.append(and_(*(or_(_folded(first).like(f"{w}%"), _folded(last).like(f"{w}%")) for w in words)))
        names = conn.execute(
            select(member_rows.c.id)
            .where(
                member_rows.c.program_id == program.id,
                member_rows.c.status == "active",
                or_(*either),
            )
            .order_by(member_rows.c.last_name, member_rows.c.first_name)
            .limit(MAX_FOUND + 1)  # one more tells the page there are more than it lists
        ).scalars()
        for member_id in names:
            found[member_id] = None
    return [members.get_member(conn=conn, program_id=program.id, member_id=m) for m in list(found)[: MAX_FOUND + 1]]


def listed(found: list[Member]) -> tuple[list[dict[str, Any]], bool]:
    """The rows a page lists for the members a search found, and whether it found more than those."""
    return [{"member": m, "name": display_name(m)} for m in found[:MAX_FOUND]], len(found) > MAX_FOUND


def namesakes(*, conn: Connection, program: Program, first_name: str, last_name: str) -> list[Member]:
    """The active members with this first and last name, whatever the accents and the case."""
    first, last = folded(first_name.strip()), folded(last_name.strip())
    if not (first and last):
        return []
    same = conn.execute(
        select(member_rows.c.id)
        .where(
            member_rows.c.program_id == program.id,
            member_rows.c.status == "active",
            _folded(func.coalesce(member_rows.c.first_name, "")) == first,
            _folded(func.coalesce(member_rows.c.last_name, "")) == last,
        )
        .order_by(member_rows.c.id)
        .limit(5)
    ).scalars()
    return [members.get_member(conn=conn, program_id=program.id, member_id=m) for m in same]


def _identified(*, conn: Connection, program: Program, text: str, card_key: bytes) -> list[str]:
    """The members ``text`` identifies as a card, a phone, an e-mail… (whichever kinds it could be)."""
    identified = []
    for kind in _kinds(text):
        try:
            member_id = members.find_member_id(conn=conn, program=program, kind=kind, value=text, card_key=card_key)
        except PalierError:  # not a valid phone, e-mail or card number: try the next kind
            continue
        if member_id is not None:
            identified.append(member_id)
    return identified


def _folded(name: ColumnElement[str]) -> ColumnElement[str]:
    return func.lower(func.translate(name, ACCENTED, PLAIN))


def display_name(member: Member) -> str:
    name = " ".join(part for part in (member.first_name, member.last_name) if part)
    return name or member.email or member.phone or member.id
