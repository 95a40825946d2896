"""Staff users: create, list, sign in (with throttling), change password or role, deactivate.

Passwords are hashed with argon2id (argon2-cffi, its recommended parameters); a hash made with older
parameters is upgraded at the next successful sign-in. Sign-in failures are counted per account and per
client address over the last ``WINDOW``: past the limit, further attempts are refused for a while even
with the right password, so guessing is slow whatever the attacker rotates.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from palier.clock import Clock, utc
from palier.errors import Conflict, InvalidInput, NotFound, Throttled, Unauthenticated
from palier.ids import new_id
from palier.programs.service import record_audit
from palier.sessions import service as sessions
from palier.staff.models import MIN_PASSWORD, StaffCreate, StaffUser
from palier.staff.permissions import ROLES, Role
from palier.staff.tables import staff_sign_ins, staff_users

WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verifying against this when the e-mail is unknown takes as long as for a real account. Made on first need,
    not at import: a hash takes most of a second on a small machine, and every command line imports this."""
    return _hasher.hash("palier-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _user(row: object) -> StaffUser:
    return StaffUser.model_validate(row, from_attributes=True)


def create(*, conn: Connection, clock: Clock, program_id: str, data: StaffCreate, actor: str) -> StaffUser:
    """A new staff user of ``program_id``; the e-mail must be new in this program."""
    now = clock.now()
    staff_id = new_id("staff")
    row = {
        "id": staff_id,
        "program_id": program_id,
        "email": data.email.lower(),
        "display_name": data.display_name,
        "role": data.role,
        "password_hash": hash_password(data.password),
        "active": True,
        "created_at": now,
        "updated_at": now,
        "last_sign_in_at": None,
    }
    if conn.execute(
        select(staff_users.c.id).where(staff_users.c.program_id == program_id, staff_users.c.email == row["email"])
    ).first():
        raise Conflict("staff_exists", f"{row['email']} is already a staff user of this program.", field="email")
    try:
        with conn.begin_nested():
            conn.execute(insert(staff_users).values(row))
    except IntegrityError:
        raise Conflict(
            "staff_exists", f"{row['email']} is already a staff user of this program.", field="email"
        ) from None
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program_id,
        actor=actor,
        action="staff.create",
        subject_id=staff_id,
        details={"email": row["email"], "role": data.role},
    )
    return _user(_get_row(conn, staff_id))


def list_users(*, conn: Connection, program_id: str) -> list[StaffUser]:
    rows = conn.execute(
        select(staff_users).where(staff_users.c.program_id == program_id).order_by(staff_users.c.email)
    ).all()
    return [_user(r) for r in rows]


def get(*, conn: Connection, staff_id: str) -> StaffUser:
    return _user(_get_row(conn, staff_id))


def find(*, conn: Connection, program_id: str, email: str) -> StaffUser:
    row = conn.execute(
        select(staff_users).where(staff_users.c.program_id == program_id, staff_users.c.email == email.strip().lower())
    ).first()
    if row is None:
        raise NotFound("staff_not_found", f"No staff user {email!r} in this program.", field="email")
    return _user(row)


def _get_row(conn: Connection, staff_id: str):  # type: ignore[no-untyped-def]
    row = conn.execute(select(staff_users).where(staff_users.c.id == staff_id)).first()
    if row is None:
        raise NotFound("staff_not_found", f"No staff user {staff_id}.", field="staff_id")
    return row


def authenticate(
    *, conn: Connection, clock: Clock, email: str, password: str, ip: str, program_id: str | None = None
) -> StaffUser:
    """The active staff user with this e-mail and password; every attempt is recorded.

    Refused with ``sign_in_throttled`` (429) after too many recent failures for the account or the
    address, and with ``sign_in_failed`` (401, the same answer for an unknown e-mail and a wrong
    password) otherwise.
    """
    now = clock.now()
    email = email.strip().lower()
    wait = _throttled_for(conn, email=email, ip=ip, now=now)
    if wait is not None:
        minutes = max(1, int(wait.total_seconds() + 59) // 60)
        raise Throttled(
            "sign_in_throttled",
            f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
            field="email",
            retry_after=int(wait.total_seconds()) + 1,
            minutes=minutes,
        )
    query = select(staff_users).where(staff_users.c.email == email, staff_users.c.active.is_(True))
    if program_id is not None:
        query = query.where(staff_users.c.program_id == program_id)
    candidates = conn.execute(query.order_by(staff_users.c.created_at)).all()
    found = None
    for row in candidates:
        if _verify(row.password_hash, password):
            found = row
            break
    if not candidates:
        _verify(_dummy_hash(), password)
    conn.execute(
        insert(staff_sign_ins).values(
            id=new_id("staff_sign_in"), email=email, ip=ip[:64], succeeded=found is not None, created_at=now
        )
    )
    if found is None:
        raise Unauthenticated("sign_in_failed", "Wrong e-mail or password.", field="password")
    values: dict[str, object] = {"last_sign_in_at": now}
    if _hasher.check_needs_rehash(found.password_hash):
        values["password_hash"] = hash_password(password)
    conn.execute(update(staff_users).where(staff_users.c.id == found.id).values(**values))
    return _user(_get_row(conn, found.id))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _throttled_for(conn: Connection, *, email: str, ip: str, now: datetime) -> timedelta | None:
    """How long sign-in stays refused for this account or address, or None when it is allowed.

    Failures count from the account's last success (a success clears its slate), within ``WINDOW``.
    """
    since = now - WINDOW
    last_ok = conn.execute(
        select(func.max(staff_sign_ins.c.created_at)).where(
            staff_sign_ins.c.email == email, staff_sign_ins.c.succeeded.is_(True), staff_sign_ins.c.created_at >= since
        )
    ).scalar()
    account_since = max(since, utc(last_ok)) if last_ok is not None else since
    waits = []
    for column, value, start, limit in (
        (staff_sign_ins.c.email, email, account_since, MAX_FAILURES_PER_ACCOUNT),
        (staff_sign_ins.c.ip, ip[:64], since, MAX_FAILURES_PER_ADDRESS),
    ):
        failures = conn.execute(
            select(staff_sign_ins.c.created_at)
            .where(column == value, staff_sign_ins.c.succeeded.is_(False), staff_sign_ins.c.created_at >= start)
            .order_by(staff_sign_ins.c.created_at.desc())
            .limit(limit)
        ).all()
        if len(failures) >= limit:
            # refused until the oldest of the last `limit` failures leaves the window
            waits.append(utc(failures[-1].created_at) + WINDOW - now)
    return max(waits) if waits else None


def change_password(
    *, conn: Connection, clock: Clock, staff_id: str, new_password: str, actor: str, current_password: str | None = None
) -> None:
    """Set a new password; ``current_password`` is checked when given (a user changing their own). Every
    session of the user ends: one opened with the old password, a stolen one included, is signed out."""
    if len(new_password) < MIN_PASSWORD:
        raise InvalidInput(
            "password_too_short", f"A password has at least {MIN_PASSWORD} characters.", field="new_password"
        )
    row = _get_row(conn, staff_id)
    if current_password is not None and not _verify(row.password_hash, current_password):
        raise Unauthenticated("wrong_password", "The current password is not right.", field="current_password")
    now = clock.now()
    conn.execute(
        update(staff_users)
        .where(staff_users.c.id == staff_id)
        .values(password_hash=hash_password(new_password), updated_at=now)
    )
    sessions.end_all(conn=conn, clock=clock, kind="staff", subject_id=staff_id)
    record_audit(
        conn=conn, clock=clock, program_id=row.program_id, actor=actor, action="staff.password", subject_id=staff_id
    )


def set_active(*, conn: Connection, clock: Clock, staff_id: str, active: bool, actor: str) -> StaffUser:
    row = _get_row(conn, staff_id)
    if not active:
        _keep_an_admin(conn, row, field="active")
    now = clock.now()
    conn.execute(update(staff_users).where(staff_users.c.id == staff_id).values(active=active, updated_at=now))
    if not active:  # reactivating the user later does not bring their old sessions back
        sessions.end_all(conn=conn, clock=clock, kind="staff", subject_id=staff_id)
    record_audit(
        conn=conn,
        clock=clock,
        program_id=row.program_id,
        actor=actor,
        action="staff.activate" if active else "staff.deactivate",
        subject_id=staff_id,
    )
    return get(conn=conn, staff_id=staff_id)


def set_role(*, conn: Connection, clock: Clock, staff_id: str, role: Role, actor: str) -> StaffUser:
    """Give a staff user another role (it applies at their next request)."""
    if role not in ROLES:
        raise InvalidInput("invalid_role", f"Unknown role {role!r}: use {', '.join(ROLES)}.", field="role")
    row = _get_row(conn, staff_id)
    if role == row.role:
        return _user(row)
    if row.role == "admin":
        _keep_an_admin(conn, row, field="role")
    conn.execute(update(staff_users).where(staff_users.c.id == staff_id).values(role=role, updated_at=clock.now()))
    record_audit(
        conn=conn,
        clock=clock,
        program_id=row.program_id,
        actor=actor,
        action="staff.role",
        subject_id=staff_id,
        details={"from": row.role, "to": role},
    )
    return get(conn=conn, staff_id=staff_id)


def _keep_an_admin(conn: Connection, row: Any, *, field: str) -> None:
    """Refuse to deactivate or demote the program's last active admin: nobody could manage staff after.

    The active admins are locked in id order, so two admins removing each other at once are served one
    after the other (the second is refused) instead of leaving the program with none."""
    if row.role != "admin" or not row.active:
        return
    admins = conn.execute(
        select(staff_users.c.id)
        .where(
            staff_users.c.program_id == row.program_id,
            staff_users.c.role == "admin",
            staff_users.c.active.is_(True),
        )
        .order_by(staff_users.c.id)
        .with_for_update()
    ).scalars()
    if set(admins) <= {row.id}:
        raise Conflict(
            "last_admin",
            f"{row.email} is the program's last active admin: make another admin first.",
            field=field,
        )
