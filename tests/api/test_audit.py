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
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from palier.clock import FrozenClock
from palier.db import Database
from palier.programs.tables import audit_entries
from palier.staff import service as staff
from palier.staff.models import StaffCreate
from palier.web.console import editors
from tests.api.helpers import ApiProgram, assert_problem, footprint, reward_body, unique
from tests.api.routes import (
    ADMIN_ONLY,
    CHANGED_RULES,
    WORLD_PLAN,
    WORLD_SEGMENT,
    WORLD_TIERS,
    Route,
    World,
    app_routes,
    make_world,
    request_for,
    route_id,
)

WRITES = ("POST", "PATCH", "PUT", "DELETE")
# Admin-scope writes that need no audit entry, and why.
EXEMPT: dict[Route, str] = {
    ("POST", "/v1/outbox/ack"): "the mailer's bookkeeping of events it handled: no setting, member or point changes",
    ("POST", "/v1/webhook/test"): "sends a test event to the webhook: writes nothing",
}
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


# --- the console: its admin forms call the same services, with a staff actor ---

# The console saves a change of its own: the API's case may already have saved CHANGED_RULES in this world.
CONSOLE_RULES = {**CHANGED_RULES, "actions": [{**CHANGED_RULES["actions"][0], "points": 30}]}

CONSOLE_EXEMPT: dict[Route, str] = {
    ("POST", "/console/sign-in"): "signs a staff user in: no change to the program (attempts are in staff_sign_ins)",
    ("POST", "/console/sign-out"): "ends the browser's own session (web_sessions): no change to the program",
    ("POST", "/console/members"): "a member search (posted to keep identities out of URLs): writes nothing",
    ("POST", "/console/members/{member_id}/merge/find"): "the search for the duplicate to merge: writes nothing",
    ("POST", "/till"): "the till's search box (posted to keep card numbers out of URLs): writes nothing",
    ("POST", "/till/new-member/start"): "the enrolment form filled from the search: writes nothing",
    ("POST", "/till/members/{member_id}/coupons/{code}/use"): "store staff at the till, as POST /v1/coupons/{code}/use",
    ("POST", "/till/members/{member_id}/pay"): "store staff at the till, as POST /v1/members/{id}/payments",
    ("POST", "/till/members/{member_id}/portal-link"): "a member's sign-in link shown at the till, as POST "
    "/v1/members/{id}/portal-link (pos)",
    ("POST", "/till/members/{member_id}/rewards/{reward_id}/redeem"): "store staff at the till, as POST "
    "/v1/members/{id}/redemptions",
    ("POST", "/till/new-member"): "store staff enrolling a customer at the till, as POST /v1/members (pos)",
    ("POST", "/console/password"): "a staff user's own password (any role); audited as staff.password",
    ("POST", "/console/settings/webhook/test"): "sends a test event to the webhook: writes nothing",
    # The staff page's writes are audited (staff.create, staff.role, staff.password, staff.deactivate /
    # staff.activate) and checked with their actor in tests/console/test_team.py and tests/staff.
    ("POST", "/console/staff"): "adds a colleague: audit checked in tests/console/test_team.py",
    ("POST", "/console/staff/{staff_id}/role"): "audit checked in tests/console/test_team.py",
    ("POST", "/console/staff/{staff_id}/password"): "audit checked in tests/console/test_team.py",
    ("POST", "/console/staff/{staff_id}/active"): "audit checked in tests/staff/test_staff.py",
}
SETTINGS_FORM = {"name": "Maison Réglée", "points_name": "grains", "timezone": "Europe/Paris",
                 "default_country": "FR", "rounding": "floor", "return_shortfall": "debt", "enrolment": "open",
                 "earn_points": "1", "earn_per_amount": "100", "return_window_days": "14", "welcome_points": "50",
                 "redeem_points": "100", "redeem_amount": "100", "pay_with_points_max_percent": "50",
                 "points_lifetime_months": "", "expiry_warning_days": "30"}  # fmt: skip
# A valid form for each console admin write, and the page whose CSRF token it sends.
CONSOLE_FORMS: dict[Route, Callable[[World], dict[str, str]]] = {
    ("POST", "/console/settings"): lambda w: SETTINGS_FORM,
    ("POST", "/console/rules"): lambda w: {"document": yaml.safe_dump(CONSOLE_RULES)},
    ("POST", "/console/tiers"): lambda w: {"document": yaml.safe_dump(WORLD_TIERS)},
    ("POST", "/console/new-reward"): lambda w: {"document": editors.NEW_REWARD["en"]},
    ("POST", "/console/new-segment"): lambda w: {"document": editors.NEW_SEGMENT["en"]},
    ("POST", "/console/new-plan"): lambda w: {
        "document": editors.NEW_PLAN["en"].replace("code: club", f"code: {unique('plan').replace('-', '')[:30]}")
    },
    ("POST", "/console/plans/{code}"): lambda w: {"document": yaml.safe_dump(WORLD_PLAN | {"trial_days": 7})},
    ("POST", "/console/rewards/{reward_id}"): lambda w: {
        "title_fr": "Café",
        "title_en": "Coffee",
        "cost_points": "15",
        "status": "active",
        "stock": "",
    },
    ("POST", "/console/members/{member_id}/adjust"): lambda w: {"points": "50", "reason": "Console gesture"},
    ("POST", "/console/members/{member_id}/merge"): lambda w: {"source_id": w.program.enrol(first_name="Twin")["id"]},
    ("POST", "/console/members/{member_id}/erase"): lambda w: {"reason": "Asked by e-mail to be forgotten"},
    ("POST", "/console/segments/{code}"): lambda w: {"document": yaml.safe_dump(WORLD_SEGMENT | {"percent": 15})},
    ("POST", "/console/settings/webhook"): lambda w: {"url": "https://shop.example/palier-events"},
    ("POST", "/console/settings/webhook/remove"): lambda w: hooked(w, {}),
    ("POST", "/console/keys"): lambda w: {"name": "Lyon till", "scopes": "pos"},
    ("POST", "/console/keys/{key_id}/revoke"): lambda w: {},
    ("POST", "/console/members/{member_id}/fees/{payment_id}/refund"): lambda w: {"note": "Withdrawal within 14 days"},
    # a sale or refund recorded at the till names who recorded it: a till that sends nothing has no other trace
    ("POST", "/till/members/{member_id}/sale"): lambda w: {"order_id": unique("T"), "order_total": "12,50"},
    ("POST", "/till/members/{member_id}/refund"): lambda w: refund_of_a_sale(w),
    ("POST", "/till/members/{member_id}/fees/{payment_id}/refund"): lambda w: {"note": "Given back at the counter"},
    ("POST", "/till/members/{member_id}/membership"): lambda w: {"plan": WORLD_PLAN["code"], "payment_id": unique("T")},
}
# A new API key's secret is shown by the page that answers the form (201), never put in a redirect's address.
ANSWERED_IN_PLACE = {("POST", "/console/keys")}


def refund_of_a_sale(world: World) -> dict[str, str]:
    """A refund form for an order of the world's member (recorded through the API first)."""
    order = unique("W")
    world.program.purchase(world.member_id, order_id=order)
    return {"order_id": order, "amount": "1,00", "return_id": unique("R")}


def paid_fee(world: World) -> tuple[str, str]:
    """A new member of the world's program who paid a VIP fee; their id and the fee's payment id."""
    fee = {"payment_id": unique("fee"), "member_id": world.program.enrol(first_name="Vera")["id"], "plan": "club",
           "amount": 499, "paid_at": "2026-03-01T00:00:00Z"}  # fmt: skip
    paid = world.program.call("POST", "/v1/memberships/payments", json=fee)
    assert paid.status_code == 200, paid.text
    return fee["member_id"], fee["payment_id"]


def hooked(world: World, form: dict[str, str]) -> dict[str, str]:
    """``form``, once the world's program has a webhook (for the form that removes it)."""
    made = world.program.call("PUT", "/v1/webhook", json={"url": "https://shop.example/palier-events"})
    assert made.status_code == 200, made.text
    return form


CONSOLE_WRITES = [r for r in app_routes(pages=True) if r[0] in WRITES and r[1].startswith(("/console", "/till"))]


def test_every_console_write_is_checked_or_exempt() -> None:
    unknown = [route_id(r) for r in CONSOLE_WRITES if r not in CONSOLE_FORMS and r not in CONSOLE_EXEMPT]
    assert unknown == [], (
        f"a console write without an audit case: add it to CONSOLE_FORMS (or CONSOLE_EXEMPT): {unknown}"
    )
    stale = [route_id(r) for r in {**CONSOLE_FORMS, **CONSOLE_EXEMPT} if r not in CONSOLE_WRITES]
    assert stale == [], f"no such console write (any more): {stale}"


@pytest.fixture(scope="module")
def console_admin(module_client: TestClient, world: World, module_db: Database) -> str:
    """An admin staff user of the world's program, signed in on the module's client; their actor."""
    clock: FrozenClock = module_client.app.state.clock  # type: ignore[attr-defined]
    password = "a long test password"
    email = f"{unique('olga')}@staff.example"
    data = StaffCreate.model_validate({"email": email, "display_name": "Olga", "role": "admin", "password": password})
    with module_db.write() as conn:
        user = staff.create(conn=conn, clock=clock, program_id=world.program.id, data=data, actor="test")
    signed = module_client.post(
        "/console/sign-in",
        data={"csrf": csrf_of(module_client.get("/console/sign-in").text), "email": email, "password": password},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    return f"staff:{user.id}"


@pytest.mark.parametrize("route", sorted(CONSOLE_FORMS), ids=route_id)
def test_a_console_admin_write_leaves_one_entry_naming_the_staff_user(
    module_client: TestClient, world: World, console_admin: str, route: Route
) -> None:
    code = WORLD_PLAN["code"] if "/plans/" in route[1] else WORLD_SEGMENT["code"]
    ids = {"member_id": world.member_id, "reward_id": world.reward_id, "code": code}
    if "{key_id}" in route[1]:
        ids["key_id"] = world.program.make_key("pos", name="till to revoke").split(".", 1)[0]
    if route[1].endswith("/erase"):  # a member of its own: the world's members serve the other cases
        ids["member_id"] = world.program.enrol(first_name="Forget")["id"]
    if "{payment_id}" in route[1]:  # a VIP fee of a member of its own, to refund
        ids["member_id"], ids["payment_id"] = paid_fee(world)
    url = route[1].format(**ids)
    form = CONSOLE_FORMS[route](world) | {"csrf": csrf_of(module_client.get("/console/settings").text)}
    form |= {"once": unique("form")}  # the form's one-time token, as its page gives it
    before = {e["id"] for e in entries(world.db, world.program.id)}
    done = module_client.post(url, data=form, follow_redirects=False)
    succeeded = 201 if route in ANSWERED_IN_PLACE else 303
    assert done.status_code == succeeded, f"{route_id(route)} should succeed: {done.status_code} {done.text[:2000]}"
    new = [e for e in entries(world.db, world.program.id) if e["id"] not in before]
    assert len(new) == 1, f"{route_id(route)} left {len(new)} audit entries, not one: {new}"
    assert new[0]["actor"] == console_admin and new[0]["subject_id"], new[0]

    # The same form posted again (a double click, back then send again): answered with the first's page, not done
    again = module_client.post(url, data=form, follow_redirects=False)
    assert again.status_code == 303, f"{route_id(route)} posted twice: {again.status_code} {again.text[:2000]}"
    if route not in ANSWERED_IN_PLACE:
        assert again.headers["location"] == done.headers["location"], route_id(route)
    after = [e for e in entries(world.db, world.program.id) if e["id"] not in before]
    assert after == new, f"{route_id(route)} posted twice left {len(after)} audit entries, not one"


# The till's writes the audit leaves out, with a valid form: they name objects too.
TILL_FORMS: dict[Route, Callable[[World], dict[str, str]]] = {
    ("POST", "/till/members/{member_id}/pay"): lambda w: {"kind": "points", "order_total": "20,00", "points": "5"},
    ("POST", "/till/members/{member_id}/coupons/{code}/use"): lambda w: {"order_total": "20,00"},
}
OBJECT_FORMS = sorted(
    r for r in {**CONSOLE_FORMS, **TILL_FORMS} if any("{" + p + "}" in r[1] for p in (*OBJECT_PARAMS, "payment_id"))
)


@pytest.fixture(scope="module")
def other_world(module_programs: Callable[..., ApiProgram], module_db: Database) -> World:
    """Program B, whose members, rewards, keys and fees program A's staff must never reach."""
    return make_world(module_programs(), module_db)


@pytest.mark.parametrize("route", OBJECT_FORMS, ids=route_id)
def test_a_console_form_naming_another_programs_object_is_not_found_and_changes_nothing(
    module_client: TestClient, world: World, console_admin: str, other_world: World, route: Route
) -> None:
    """Program A's admin posts a valid form whose address names program B's member, reward, key or fee."""
    b = other_world
    url = route[1].format(member_id=b.member_id, reward_id=b.reward_id, key_id=b.spare_key_id,
                          payment_id=b.fee_payment_id, code=b.coupon_to_use)  # fmt: skip
    form = {**CONSOLE_FORMS, **TILL_FORMS}[route](world)
    form |= {"csrf": csrf_of(module_client.get("/console/settings").text), "once": unique("form")}
    before = footprint(b.db, b.program.id), b.program.snapshot(b.member_id), b.program.call("GET", "/v1/rewards").json()
    done = module_client.post(url, data=form, follow_redirects=False)
    assert done.status_code == 404, f"{route_id(route)}: {done.status_code} {done.headers.get('location')}"
    after = footprint(b.db, b.program.id), b.program.snapshot(b.member_id), b.program.call("GET", "/v1/rewards").json()
    assert after == before, f"{route_id(route)} changed program B"


def test_the_console_matrix_covers_the_forms_that_name_objects() -> None:
    assert len(OBJECT_FORMS) >= 10, OBJECT_FORMS
    assert set(TILL_FORMS) <= set(CONSOLE_EXEMPT), "a till form with an audit case belongs in CONSOLE_FORMS"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)
