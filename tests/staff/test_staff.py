"""Staff users: passwords hashed with argon2, sign-in refused after repeated failures, roles' permissions."""

from __future__ import annotations

import threading
from typing import get_args

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from palier.api.problems import validation_code
from palier.clock import FrozenClock
from palier.db import Database
from palier.errors import Conflict, InvalidInput, Throttled, Unauthenticated
from palier.programs.models import Program
from palier.programs.tables import audit_entries
from palier.staff import service as staff
from palier.staff.models import StaffCreate, StaffUser
from palier.staff.permissions import PERMISSIONS, Permission, allows
from palier.staff.tables import staff_users
from tests.api.conftest import own_address
from tests.services.factories import unique

PASSWORD = "correct horse battery"


def add(db: Database, clock: FrozenClock, program: Program, email: str = "", **extra: str) -> StaffUser:
    # sign-in attempts are counted by e-mail across programs: each test has its own people
    email = email or f"Lea.{unique('x')}@Fournil.example"
    data = StaffCreate.model_validate(
        {"email": email, "display_name": "Léa", "role": "admin", "password": PASSWORD} | extra
    )
    with db.write() as conn:
        return staff.create(conn=conn, clock=clock, program_id=program.id, data=data, actor="test")


def sign_in(db: Database, clock: FrozenClock, email: str, password: str, ip: str | None = None) -> StaffUser:
    # one transaction per attempt, as the console does: a refusal still records the attempt; an address of
    # its own unless one is named (failures per address outlive a run in the reused test databases)
    with db.write() as conn:
        try:
            return staff.authenticate(conn=conn, clock=clock, email=email, password=password, ip=ip or own_address()[0])
        except Unauthenticated:
            conn.commit()
            raise


def test_a_staff_user_signs_in_with_their_password_stored_only_as_an_argon2_hash(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    user = add(db, clock, program)
    assert user.email.startswith("lea.x") and user.email == user.email.lower()
    assert (user.role, user.active, user.last_sign_in_at) == ("admin", True, None)
    with db.read() as conn:
        stored = conn.execute(select(staff_users.c.password_hash).where(staff_users.c.id == user.id)).scalar_one()
        audit = conn.execute(select(audit_entries.c.action).where(audit_entries.c.subject_id == user.id)).scalars()
        assert list(audit) == ["staff.create"]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    signed = sign_in(db, clock, f" {user.email.upper()} ", PASSWORD)
    assert signed.id == user.id and signed.last_sign_in_at == clock.now()
    with pytest.raises(Unauthenticated) as wrong:
        sign_in(db, clock, user.email, "correct horse battery!")
    with pytest.raises(Unauthenticated) as unknown:
        sign_in(db, clock, unique("nobody") + "@fournil.example", PASSWORD)
    # the same answer whether the e-mail exists or not
    assert (
        (wrong.value.code, wrong.value.detail)
        == (unknown.value.code, unknown.value.detail)
        == (
            "sign_in_failed",
            "Wrong e-mail or password.",
        )
    )


def test_the_same_email_twice_in_a_program_and_short_passwords_are_refused(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    user = add(db, clock, program)
    with pytest.raises(Conflict) as twice:
        add(db, clock, program, email=user.email.upper())
    assert (twice.value.code, twice.value.field) == ("staff_exists", "email")
    with pytest.raises(ValidationError) as short:
        StaffCreate.model_validate({"email": "a@b.example", "display_name": "A", "role": "admin", "password": "short"})
    assert validation_code(dict(short.value.errors()[0])) == "password_too_short"  # said as such in the console
    with pytest.raises(ValueError):
        StaffCreate.model_validate({"email": "a@b.example", "display_name": "A", "role": "owner", "password": PASSWORD})


def test_five_failures_refuse_the_account_for_a_while_even_with_the_right_password(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    email = add(db, clock, program).email
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            sign_in(db, clock, email, "guess")
        clock.advance(seconds=30)
    with pytest.raises(Throttled) as refused:
        sign_in(db, clock, email, PASSWORD, ip="10.9.9.9")  # another address: still refused
    assert refused.value.status == 429 and refused.value.code == "sign_in_throttled"
    # the first failure was 2.5 minutes ago: it leaves the 15-minute window in 12.5 minutes
    assert refused.value.detail == "Too many failed sign-in attempts. Try again in 13 minutes."
    clock.advance(minutes=12, seconds=31)
    assert sign_in(db, clock, email, PASSWORD).email == email
    # a success clears the account's slate: one new failure does not lock it again
    with pytest.raises(Unauthenticated):
        sign_in(db, clock, email, "guess")
    assert sign_in(db, clock, email, PASSWORD).email == email


def test_an_address_trying_many_accounts_is_refused(db: Database, clock: FrozenClock, program: Program) -> None:
    email = add(db, clock, program).email
    ip = own_address()[0]
    for n in range(20):
        with pytest.raises(Unauthenticated):
            sign_in(db, clock, f"user{n}.{unique('u')}@fournil.example", "guess", ip=ip)
    with pytest.raises(Throttled):
        sign_in(db, clock, email, PASSWORD, ip=ip)
    assert sign_in(db, clock, email, PASSWORD).role == "admin"  # from another address


def test_changing_a_password_and_deactivating(db: Database, clock: FrozenClock, program: Program) -> None:
    user = add(db, clock, program, role="marketer")
    with db.write() as conn, pytest.raises(Unauthenticated):
        staff.change_password(
            conn=conn, clock=clock, staff_id=user.id, new_password="a new long one", actor="t", current_password="x"
        )
    with db.write() as conn, pytest.raises(InvalidInput):
        staff.change_password(conn=conn, clock=clock, staff_id=user.id, new_password="short", actor="t")
    with db.write() as conn:
        staff.change_password(conn=conn, clock=clock, staff_id=user.id, new_password="a new long one", actor="t")
    with pytest.raises(Unauthenticated):
        sign_in(db, clock, user.email, PASSWORD)
    assert sign_in(db, clock, user.email, "a new long one").id == user.id
    with db.write() as conn:
        staff.set_active(conn=conn, clock=clock, staff_id=user.id, active=False, actor="t")
    with pytest.raises(Unauthenticated):
        sign_in(db, clock, user.email, "a new long one")


def test_each_role_may_do_exactly_what_the_table_says() -> None:
    every_permission = frozenset(get_args(Permission))
    assert PERMISSIONS["admin"] == every_permission and all(allows("admin", p) for p in every_permission)
    assert allows("marketer", "rules.edit") and allows("marketer", "dashboard.view")
    assert not allows("marketer", "settings.edit") and not allows("marketer", "members.adjust")
    assert not allows("marketer", "till.use")
    assert (
        allows("store_staff", "till.use")
        and allows("store_staff", "coupons.use")
        and allows("store_staff", "points.pay")
    )
    for refused in ("settings.edit", "rules.edit", "rewards.edit", "dashboard.view", "members.adjust", "staff.manage"):
        assert not allows("store_staff", refused), refused  # type: ignore[arg-type]
    assert not allows("owner", "till.use")


def test_the_last_active_admin_is_never_deactivated_or_demoted(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    first = add(db, clock, program)
    with db.write() as conn, pytest.raises(Conflict) as refused:
        staff.set_role(conn=conn, clock=clock, staff_id=first.id, role="marketer", actor="test")
    assert (refused.value.code, refused.value.field) == ("last_admin", "role")
    with db.write() as conn, pytest.raises(Conflict) as refused:
        staff.set_active(conn=conn, clock=clock, staff_id=first.id, active=False, actor="test")
    assert (refused.value.code, refused.value.field) == ("last_admin", "active")
    second = add(db, clock, program)
    with db.write() as conn:
        staff.set_role(conn=conn, clock=clock, staff_id=first.id, role="marketer", actor="test")
    with db.write() as conn:  # the marketer may go: an admin remains
        assert not staff.set_active(conn=conn, clock=clock, staff_id=first.id, active=False, actor="test").active
    with db.read() as conn:
        actions = conn.execute(
            select(audit_entries.c.action).where(audit_entries.c.subject_id == first.id).order_by(audit_entries.c.id)
        ).scalars()
        assert list(actions) == ["staff.create", "staff.role", "staff.deactivate"]
        assert staff.get(conn=conn, staff_id=second.id).role == "admin"


def test_two_admins_removing_each_other_at_once_leave_one_admin(
    db: Database, clock: FrozenClock, program: Program
) -> None:
    admins = [add(db, clock, program), add(db, clock, program)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def remove(target: StaffUser) -> None:
        barrier.wait()
        try:
            with db.write() as conn:
                staff.set_active(conn=conn, clock=clock, staff_id=target.id, active=False, actor="test")
            outcomes.append("done")
        except Conflict as refused:
            outcomes.append(refused.code)

    threads = [threading.Thread(target=remove, args=(a,)) for a in admins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["done", "last_admin"]
    with db.read() as conn:
        assert [u.active for u in staff.list_users(conn=conn, program_id=program.id)].count(True) == 1
