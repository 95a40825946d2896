"""Console tests over HTTP (TestClient) on both engines: the API fixtures, plus staff users to sign in as."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from palier.clock import FrozenClock
from palier.db import Database
from palier.staff import service as staff
from palier.staff.models import StaffCreate
from tests.api.conftest import app, client, new_program, operator_token, program
from tests.services.factories import unique

__all__ = ["app", "client", "new_program", "operator_token", "program"]
PASSWORD = "a long test password"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def add_staff(db: Database, clock: FrozenClock) -> Callable[..., str]:
    """Add a staff user to a program; returns their e-mail (unique: sign-in attempts are counted by e-mail)."""

    def add(program_id: str, role: str, *, name: str = "Test Staff") -> str:
        email = f"{role}.{unique('s')}@staff.example"
        data = StaffCreate.model_validate({"email": email, "display_name": name, "role": role, "password": PASSWORD})
        with db.write() as conn:
            staff.create(conn=conn, clock=clock, program_id=program_id, data=data, actor="test")
        return email

    return add


def sign_in(client: TestClient, email: str, password: str = PASSWORD, **extra: Any) -> Any:
    page = client.get("/console/sign-in")
    return client.post(
        "/console/sign-in",
        data={"csrf": csrf_of(page.text), "email": email, "password": password, **extra},
        follow_redirects=False,
    )
