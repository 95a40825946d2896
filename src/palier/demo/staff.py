"""The demo's staff users: an admin, a marketer and a till account, with fresh passwords on every run."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from palier.clock import SystemClock
from palier.db import Database
from palier.errors import NotFound
from palier.staff import service as staff
from palier.staff.models import StaffCreate

DEMO_STAFF = (  # (role, e-mail, display name)
    ("admin", "admin@maison-fournil.example", "Camille Martin"),
    ("marketer", "marketing@maison-fournil.example", "Inès Laurent"),
    ("store_staff", "caisse.lyon@maison-fournil.example", "Hugo Caisse Lyon"),
)


@dataclass(frozen=True)
class DemoStaff:
    role: str
    email: str
    name: str
    password: str


def demo_staff(db: Database, program_id: str) -> list[DemoStaff]:
    """Create the demo's staff users if missing and give each a new random password (shown once)."""
    clock = SystemClock()
    found = []
    with db.write() as conn:
        for role, email, name in DEMO_STAFF:
            password = secrets.token_urlsafe(9)
            try:
                user = staff.find(conn=conn, program_id=program_id, email=email)
                staff.change_password(conn=conn, clock=clock, staff_id=user.id, new_password=password, actor="demo")
            except NotFound:
                data = StaffCreate.model_validate(
                    {"email": email, "display_name": name, "role": role, "password": password}
                )
                staff.create(conn=conn, clock=clock, program_id=program_id, data=data, actor="demo")
            found.append(DemoStaff(role, email, name, password))
    return found
