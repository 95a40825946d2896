"""The audit trail: every admin write leaves exactly one entry, and the merchant can read it back.

The routes come from the app itself (``tests/api/routes.py``): every route whose least scope is ``admin``
and whose method writes (POST, PATCH, PUT, DELETE) is called once, successfully, on a world of its own
program; it must add exactly one ``audit_entries`` row naming the caller's key, an action, the object
acted on and the time, and ``GET /v1/audit`` must show that row first. A new admin write route without an
audit entry fails here unless ``EXEMPT`` says why it needs none. The console's admin forms call the same
services with a ``staff:<id>`` actor; one of them is checked at the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from palier.clock import FrozenClock
from palier.db import Database
from palier.programs.tables import audit_entries
from palier.staff import service as staff
from palier.staff.models import StaffCreate
from tests.api.helpers import ApiProgram, assert_problem, reward_body, unique
from tests.api.routes import ADMIN_ONLY, Route, World, make_world, request_for, route_id

WRITES = ("POST", "PATCH", "PUT", "DELETE")
# Admin-scope writes that need no audit entry, and why. None today: every admin write changes something.
EXEMPT: dict[Route, str] = {}
ADMIN_WRITES = [r for r in ADMIN_ONLY if r[0] in WRITES and r not in EXEMPT]
# Path parameters that name an object: the entry's subject must be one of those in the URL.
OBJECT_PARAMS = ("member_id", "key_id", "reward_id", "transaction_id")


@pytest.fixture(scope="module")
def world(module_programs: Callable[..., ApiProgram], module_db: Database) -> World:
    """One world for the module: each route below is called once and changes a different thing."""
    return make_world(module_programs(), module_db)


def entries(db: Database, program_id: str) -> list[dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(select(audit_entries).where(audit_entries.c.program_id == program_id)).mappings()
        return [dict(row) for row in rows]


def test_the_exemptions_are_admin_writes_and_there_are_writes_to_check() -> None:
    stale = [route_id(r) for r in EXEMPT if r not in ADMIN_ONLY or r[0] not in WRITES]
    assert stale == [], f"EXEMPT lists routes that are not admin writes (any more): {stale}"
    assert len(ADMIN_WRITES) >= 15, [route_id(r) for r in ADMIN_WRITES]


@pytest.mark.parametrize("route", ADMIN_WRITES, ids=route_id)
def test_an_admin_write_leaves_one_audit_entry(module_client: TestClient, world: World, route: Route) -> None:
    method, url, kwargs = request_for(route, world)
    before = {e["id"] for e in entries(world.db, world.program.id)}
    done = world.program.call(method, url, **kwargs)
    assert done.status_code < 300, f"{route_id(route)} should succeed: {done.status_code} {done.text}"
    new = [e for e in entries(world.db, world.program.id) if e["id"] not in before]
    assert len(new) == 1, f"{route_id(route)} left {len(new)} audit entries, not one: {new}"
    entry = new[0]
    admin_key_id = world.program.admin_key.split(".")[0]
    assert entry["actor"] == admin_key_id, f"{route_id(route)}: the entry names {entry['actor']!r}, not the key"
    assert re.fullmatch(r"[a-z_]+\.[a-z_]+", entry["action"]), f"{route_id(route)}: action {entry['action']!r}"
    assert entry["subject_id"], f"{route_id(route)}: the entry names no object: {entry}"
    named = [p for p in OBJECT_PARAMS if "{" + p + "}" in route[1]]
    if named:
        in_url = [part for part in url.split("/") if part]
        assert entry["subject_id"] in in_url, f"{route_id(route)}: subject {entry['subject_id']} is not in {url}"
    clock: FrozenClock = module_client.app.state.clock  # type: ignore[attr-defined]
    assert entry["created_at"].replace(tzinfo=None) == clock.now().replace(tzinfo=None), entry

    trail = world.program.call("GET", "/v1/audit", params={"limit": 1})
    assert trail.status_code == 200, trail.text
    shown = trail.json()["items"]
    assert [e["id"] for e in shown] == [entry["id"]], f"GET /v1/audit does not show the newest entry first: {shown}"
    assert shown[0]["actor"] == admin_key_id and shown[0]["action"] == entry["action"], shown


def test_the_audit_trail_pages_newest_first(new_program: Callable[..., ApiProgram], db: Database) -> None:
    program = new_program()
    for n in range(5):
        made = program.call("POST", "/v1/rewards", json=reward_body(cost_points=10 + n))
        assert made.status_code == 201, made.text
    everything = [e["id"] for e in sorted(entries(db, program.id), key=lambda e: e["id"], reverse=True)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = program.call("GET", "/v1/audit", params=params)
        assert page.status_code == 200, page.text
        seen += [e["id"] for e in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == everything and len(seen) >= 6, f"pages gave {seen}, the table holds {everything}"
    assert_problem(program.call("GET", "/v1/audit", params={"cursor": "txn_1"}), 422, "invalid_cursor", "cursor")
    reader = program.make_key("read")
    assert_problem(program.call("GET", "/v1/audit", key=reader), 403, "insufficient_scope")


def test_a_console_admin_write_names_the_staff_user(
    client: TestClient, db: Database, clock: FrozenClock, program: ApiProgram
) -> None:
    password = "a long test password"
    email = f"{unique('owner')}@staff.example"
    data = StaffCreate.model_validate({"email": email, "display_name": "Olga", "role": "admin", "password": password})
    with db.write() as conn:
        user = staff.create(conn=conn, clock=clock, program_id=program.id, data=data, actor="test")
    form = client.get("/console/sign-in").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token, "no CSRF field on the sign-in page"
    signed = client.post(
        "/console/sign-in",
        data={"csrf": token.group(1), "email": email, "password": password},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    member = program.enrol(first_name="Ada")
    before = {e["id"] for e in entries(db, program.id)}
    page = client.get(f"/console/members/{member['id']}").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token, "no CSRF field on the member page"
    done = client.post(
        f"/console/members/{member['id']}/adjust",
        data={"points": "50", "reason": "Console gesture", "csrf": token.group(1)},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    new = [e for e in entries(db, program.id) if e["id"] not in before]
    assert [(e["actor"], e["action"], e["subject_id"]) for e in new] == [
        (f"staff:{user.id}", "member.adjusted", member["id"])
    ], new
