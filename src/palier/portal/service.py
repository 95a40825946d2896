"""Signing members in to the portal: signed links from the merchant's site, and one-time codes by e-mail.

A **link** is made by the merchant's site through the API (``POST /v1/members/{id}/portal-link``) for a
member it has already signed in: a token signed with ``PALIER_SECRET_KEY``, bound to the program and
the member, valid ``LINK_MINUTES`` and usable once (its nonce is recorded, hashed, and spent on use).

A **code** is six digits a member asks for by typing their e-mail. Only its keyed hash is stored; it is
valid ``CODE_MINUTES``, usable once, and dies after ``CODE_ATTEMPTS`` wrong tries. There is no mailer in
Palier: the code goes out through the outbox as a ``portal_sign_in_code`` event for the merchant's
mailer (and the demo prints it). Asking never tells whether the e-mail belongs to a member: an unknown
e-mail gets the same answer, and no code. Nor does the time the answer takes: it stores a sign-in that no
code opens (no member, the hash of a secret nobody is told), and a wrong code counts a try on it, so the
database does the same writes either way. A member gets at most ``CODES_PER_WINDOW`` codes per
``CODE_WINDOW_MINUTES``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Connection, Row, func, insert, select, update

from palier.clock import Clock, utc
from palier.errors import InvalidInput
from palier.ids import new_id
from palier.members import service as members
from palier.members.tables import members as members_table
from palier.notify import outbox
from palier.portal.tables import portal_sign_ins
from palier.programs.models import Program

LINK_MINUTES = 15
CODE_MINUTES = 10
CODE_ATTEMPTS = 5
CODES_PER_WINDOW = 5
CODE_WINDOW_MINUTES = 60
_LINK_SALT = "palier.portal-link"


@dataclass(frozen=True)
class IssuedLink:
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class IssuedCode:
    sign_in_id: str
    code: str
    email: str
    expires_at: datetime


@dataclass(frozen=True)
class CodeRequest:
    """What asking for a code did: the sign-in the code page checks against, and the code if one was sent
    (None for an e-mail that is no active member's, or a member who asked too often)."""

    sign_in_id: str
    sent: IssuedCode | None


def _hash(secret_key: str, value: str) -> str:
    return hmac.new(secret_key.encode(), value.encode(), hashlib.sha256).hexdigest()


def _insert(
    conn: Connection,
    *,
    program_id: str,
    member_id: str | None,
    kind: str,
    secret_hash: str,
    now: datetime,
    minutes: int,
) -> tuple[str, datetime]:
    sign_in_id = new_id("sign_in")
    expires_at = now + timedelta(minutes=minutes)
    conn.execute(
        insert(portal_sign_ins).values(
            id=sign_in_id,
            program_id=program_id,
            member_id=member_id,
            kind=kind,
            secret_hash=secret_hash,
            attempts=0,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return sign_in_id, expires_at


def _spend(conn: Connection, sign_in_id: str, now: datetime) -> bool:
    """Mark a sign-in used; False if another request used it first (the UPDATE is the arbiter)."""
    done = conn.execute(
        update(portal_sign_ins)
        .where(portal_sign_ins.c.id == sign_in_id, portal_sign_ins.c.used_at.is_(None))
        .values(used_at=now)
    )
    return done.rowcount == 1


def void_open(*, conn: Connection, clock: Clock, program_id: str, member_id: str) -> int:
    """Every sign-in link and code of the member not used yet stops working (signed out everywhere: a lost
    phone may have an unread code or link on it); the number voided."""
    done = conn.execute(
        update(portal_sign_ins)
        .where(
            portal_sign_ins.c.program_id == program_id,
            portal_sign_ins.c.member_id == member_id,
            portal_sign_ins.c.used_at.is_(None),
        )
        .values(used_at=clock.now())
    )
    return done.rowcount


def _active(conn: Connection, program_id: str, member_id: str) -> bool:
    status = conn.execute(
        select(members_table.c.status).where(members_table.c.id == member_id, members_table.c.program_id == program_id)
    ).scalar()
    return status == "active"


# --- signed links ---


def issue_link(*, conn: Connection, clock: Clock, program: Program, member_id: str, secret_key: str) -> IssuedLink:
    """A single-use sign-in token for ``member_id`` (who must be an active member of ``program``)."""
    members.require_active(conn=conn, program_id=program.id, member_id=member_id)
    nonce = secrets.token_urlsafe(16)
    sign_in_id, expires_at = _insert(
        conn,
        program_id=program.id,
        member_id=member_id,
        kind="link",
        secret_hash=_hash(secret_key, nonce),
        now=clock.now(),
        minutes=LINK_MINUTES,
    )
    token = URLSafeTimedSerializer(secret_key, salt=_LINK_SALT).dumps(
        {"p": program.id, "m": member_id, "s": sign_in_id, "n": nonce}
    )
    return IssuedLink(token=token, expires_at=expires_at)


@dataclass(frozen=True)
class LinkHolder:
    """Whom an unused link signs in, as its page names them before anything is spent: the first name and
    the e-mail masked (``a•••@example.com``), either None when the profile has none."""

    member_id: str
    first_name: str | None
    masked_email: str | None


def masked_email(email: str) -> str:
    """An e-mail as a page shows it to whoever holds a link: the first letter and the domain, ``a•••@shop.fr``."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def _usable_link(conn: Connection, clock: Clock, program_id: str, token: str, secret_key: str) -> Row[Any] | None:
    """The sign-in row of a link that would sign its member in now; None if forged, for another program,
    expired or used, or its member is no longer active. Reads only."""
    try:
        data = URLSafeTimedSerializer(secret_key, salt=_LINK_SALT).loads(token, max_age=LINK_MINUTES * 60)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("p") != program_id:
        return None
    row = conn.execute(
        select(portal_sign_ins).where(
            portal_sign_ins.c.id == str(data.get("s")),
            portal_sign_ins.c.program_id == program_id,
            portal_sign_ins.c.member_id == str(data.get("m")),
            portal_sign_ins.c.kind == "link",
        )
    ).first()
    if (
        row is None
        or row.used_at is not None
        or utc(row.expires_at) <= clock.now()
        or not hmac.compare_digest(row.secret_hash, _hash(secret_key, str(data.get("n"))))
        or not _active(conn, program_id, row.member_id)
    ):
        return None
    return row


def link_holder(*, conn: Connection, clock: Clock, program_id: str, token: str, secret_key: str) -> LinkHolder | None:
    """Whom a link would sign in, without spending it (opening a link only asks "continue as …?": a mail
    scanner that fetches it, or a victim sent someone else's link, signs no one in); None if it would not."""
    row = _usable_link(conn, clock, program_id, token, secret_key)
    if row is None:
        return None
    who = conn.execute(
        select(members_table.c.first_name, members_table.c.email).where(members_table.c.id == row.member_id)
    ).one()
    return LinkHolder(
        member_id=str(row.member_id),
        first_name=who.first_name or None,
        masked_email=masked_email(who.email) if who.email else None,
    )


def redeem_link(*, conn: Connection, clock: Clock, program_id: str, token: str, secret_key: str) -> str | None:
    """The member a link signs in, spending it; None if forged, for another program, expired or used."""
    row = _usable_link(conn, clock, program_id, token, secret_key)
    if row is None or not _spend(conn, row.id, clock.now()):
        return None
    return str(row.member_id)


# --- one-time codes ---


def request_code(
    *, conn: Connection, clock: Clock, program: Program, email: str, card_key: bytes, secret_key: str
) -> CodeRequest:
    """A code for the member with this e-mail, sent through the outbox; no code (and nothing sent) when no
    active member has it or they asked too often, but a sign-in that nothing opens is stored all the same,
    so that the caller's answer is the same, and as quick, either way."""
    now = clock.now()
    try:
        member_id = members.find_member_id(conn=conn, program=program, kind="email", value=email, card_key=card_key)
    except InvalidInput:
        member_id = None
    issued = None if member_id is None else _send_code(conn, program, member_id, now, secret_key)
    if issued is not None:
        return CodeRequest(sign_in_id=issued.sign_in_id, sent=issued)
    nobody = _hash(secret_key, secrets.token_urlsafe(16))  # the hash of a code no one is told: it opens nothing
    sign_in_id, _ = _insert(
        conn, program_id=program.id, member_id=None, kind="code", secret_hash=nobody, now=now, minutes=CODE_MINUTES
    )
    return CodeRequest(sign_in_id=sign_in_id, sent=None)


def _send_code(conn: Connection, program: Program, member_id: str, now: datetime, secret_key: str) -> IssuedCode | None:
    """A code for an active member, stored hashed and sent through the outbox; None if they asked too often."""
    if not _active(conn, program.id, member_id):
        return None
    recent = conn.execute(
        select(func.count()).where(
            portal_sign_ins.c.program_id == program.id,
            portal_sign_ins.c.member_id == member_id,
            portal_sign_ins.c.kind == "code",
            portal_sign_ins.c.created_at > now - timedelta(minutes=CODE_WINDOW_MINUTES),
        )
    ).scalar_one()
    if recent >= CODES_PER_WINDOW:
        return None
    code = f"{secrets.randbelow(10**6):06d}"
    sign_in_id, expires_at = _insert(
        conn,
        program_id=program.id,
        member_id=member_id,
        kind="code",
        secret_hash=_hash(secret_key, code),
        now=now,
        minutes=CODE_MINUTES,
    )
    row = conn.execute(
        select(members_table.c.email, members_table.c.language).where(members_table.c.id == member_id)
    ).one()
    outbox.emit(
        conn,
        program_id=program.id,
        type_="portal_sign_in_code",
        subject_id=member_id,
        payload={
            "member_id": member_id,
            "email": row.email,
            "language": row.language,
            "code": code,
            "expires_at": expires_at.isoformat(),
        },
        now=now,
    )
    return IssuedCode(sign_in_id=sign_in_id, code=code, email=str(row.email), expires_at=expires_at)


def check_code(
    *, conn: Connection, clock: Clock, program_id: str, sign_in_id: str, code: str, secret_key: str
) -> str | None:
    """The member a code signs in, spending it; None if wrong, expired, used or tried too often.

    A wrong code counts an attempt; after ``CODE_ATTEMPTS`` the code is dead even if the right one comes.
    """
    query = select(portal_sign_ins).where(
        portal_sign_ins.c.id == sign_in_id,
        portal_sign_ins.c.program_id == program_id,
        portal_sign_ins.c.kind == "code",
    )
    row = conn.execute(query.with_for_update()).first()
    now = clock.now()
    if row is None or row.used_at is not None or utc(row.expires_at) <= now or row.attempts >= CODE_ATTEMPTS:
        return None
    if not hmac.compare_digest(row.secret_hash, _hash(secret_key, code.strip())):
        conn.execute(
            update(portal_sign_ins)
            .where(portal_sign_ins.c.id == sign_in_id)
            .values(attempts=portal_sign_ins.c.attempts + 1)
        )
        return None
    if row.member_id is None or not _active(conn, program_id, row.member_id) or not _spend(conn, row.id, now):
        return None
    return str(row.member_id)
