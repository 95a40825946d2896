"""Every console and till page checks the staff session, the role's permission and the CSRF token.

The walk below takes every page route the app serves under /console and /till (so a new page is
covered the day it is added) and tries it anonymously, with each role, and without the CSRF token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from palier.db import Database
from palier.staff import service as staff
from palier.staff.permissions import ROLES, allows
from palier.web import console
from palier.web.console.access import permission_of
from tests.api.helpers import ApiProgram
from tests.console.conftest import csrf_of, sign_in

OPEN = {"/console/sign-in", "/console/sign-out"}


def staff_routes(app: FastAPI) -> list[tuple[str, str, Any]]:
    """Every (method, path, endpoint) of the staff routers the app includes (``web.install``)."""
    found = []
    for router in console.routers():
        for route in router.routes:
            if isinstance(route, APIRoute) and route.path not in OPEN:
                assert route.path.startswith(("/console", "/till")), route.path
                found.extend((method, route.path, route.endpoint) for method in sorted(route.methods))
    return found


def test_every_staff_page_declares_its_permission(app: FastAPI) -> None:
    routes = staff_routes(app)
    assert len(routes) >= 20
    assert [(m, p) for m, p, endpoint in routes if permission_of(endpoint) is None] == []


@pytest.fixture
def shop(program: ApiProgram, db: Database, add_staff: Callable[..., str]) -> dict[str, str]:
    """A member with a coupon, a reward, a colleague and an API key: real ids for the routes' path parameters."""
    with db.read() as conn:
        colleague = staff.find(conn=conn, program_id=program.id, email=add_staff(program.id, "store_staff"))
    member = program.enrol(first_name="Ann", identities=[{"kind": "card", "value": "2900000000024"}])
    program.adjust(member["id"], 500)
    reward = program.call(
        "POST",
        "/v1/rewards",
        json={"kind": "amount_off", "amount": 500, "cost_points": 100, "title": {"fr": "Bon", "en": "Voucher"}},
    ).json()
    coupon = program.call("POST", f"/v1/members/{member['id']}/redemptions", json={"reward_id": reward["id"]}).json()
    return {
        "member_id": member["id"],
        "reward_id": reward["id"],
        "code": coupon["coupon"]["code"],
        "staff_id": colleague.id,
        "key_id": program.make_key("read", name="spare key").split(".", 1)[0],
        "payment_id": "ch_no_such_fee",  # a VIP fee to refund: none, which a refund says, once let in
    }


def _url(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, path
    return path


def test_anonymous_visitors_are_sent_to_sign_in(app: FastAPI, client: TestClient, shop: dict[str, str]) -> None:
    token = csrf_of(client.get("/console/sign-in").text)
    for method, path, _ in staff_routes(app):
        url = _url(path, shop)
        data = {"csrf": token} if method == "POST" else None
        response = client.request(method, url, data=data, follow_redirects=False)
        assert response.status_code == 303, (method, url, response.status_code)
        location = response.headers["location"]
        if method == "GET":  # back to the page once signed in
            assert location == f"/console/sign-in?next={quote(url, safe='')}", url
            continue
        # a form, not sent: said so, and back to a page (the form's own address would be a 404 or a 405)
        found = re.fullmatch(r"/console/sign-in\?next=([^&]+)&unsent=1", location)
        assert found is not None, (url, location)
        assert client.get(unquote(found.group(1)), follow_redirects=False).status_code == 303, (url, location)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_its_pages(
    role: str,
    app: FastAPI,
    client: TestClient,
    program: ApiProgram,
    shop: dict[str, str],
    add_staff: Callable[..., str],
) -> None:
    email = add_staff(program.id, role)
    assert sign_in(client, email).status_code == 303
    token = csrf_of(client.get("/console", follow_redirects=True).text)
    refused, allowed = [], []
    for method, path, endpoint in staff_routes(app):
        url = _url(path, shop)
        may = allows(role, permission_of(endpoint))  # type: ignore[arg-type]
        response = client.request(
            method, url, data={"csrf": token} if method == "POST" else None, follow_redirects=False
        )
        if may:
            assert response.status_code != 403, (role, method, url, response.text[:300])
            allowed.append(path)
        else:
            assert response.status_code == 403, (role, method, url, response.status_code)
            assert "text/html" in response.headers["content-type"]
            assert "Votre rôle ne permet pas" in response.text
            refused.append(path)
    if role == "admin":
        assert refused == []
    if role == "store_staff":
        for page in ("/console/settings", "/console/rules", "/console/tiers", "/console/dashboard"):
            assert page in refused
        assert "/till" in allowed and "/till/members/{member_id}/coupons/{code}/use" in allowed
        assert "/console/members/{member_id}/fees/{payment_id}/refund" in allowed  # as a pos key may
    if role == "marketer":
        assert "/console/rules" in allowed and "/console/settings" in refused and "/till" in refused
        assert "/console/members/{member_id}/adjust" in refused
        assert "/console/members/{member_id}/fees/{payment_id}/refund" in refused


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, program: ApiProgram, shop: dict[str, str], add_staff: Callable[..., str]
) -> None:
    sign_in(client, add_staff(program.id, "admin"))
    before = program.balance(shop["member_id"])["available"]
    url = f"/console/members/{shop['member_id']}/adjust"
    for data in ({"points": "50", "reason": "No token"}, {"points": "50", "reason": "Bad token", "csrf": "forged"}):
        response = client.post(url, data=data, follow_redirects=False)
        assert response.status_code == 403 and "Ce formulaire a expiré" in response.text
    assert program.balance(shop["member_id"])["available"] == before
    token = csrf_of(client.get(f"/console/members/{shop['member_id']}").text)
    done = client.post(url, data={"points": "50", "reason": "With token", "csrf": token}, follow_redirects=False)
    assert done.status_code == 303 and program.balance(shop["member_id"])["available"] == before + 50


def test_sign_in_refusals_throttling_and_sign_out(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    email = add_staff(program.id, "marketer")
    wrong = sign_in(client, email, "not the password")
    assert wrong.status_code == 401 and "E-mail ou mot de passe incorrect." in wrong.text
    for _ in range(4):
        sign_in(client, email, "still wrong")
    throttled = sign_in(client, email)  # the right password, too late
    assert throttled.status_code == 429 and "Trop de tentatives échouées. Réessayez dans 15 min." in throttled.text
    other = add_staff(program.id, "marketer")
    ok = sign_in(client, other, next="https://evil.example/")  # no open redirect
    assert ok.status_code == 303 and ok.headers["location"] == "/console/dashboard"
    assert client.get("/console/rules", follow_redirects=False).status_code == 200
    kept = client.cookies.get("palier_staff")  # a copy of the session cookie, taken before signing out
    token = csrf_of(client.get("/console/rules").text)
    assert client.post("/console/sign-out", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert client.get("/console/rules", follow_redirects=False).status_code == 303
    client.cookies.set("palier_staff", kept)  # put back in the same browser: the session has ended on the server
    assert client.get("/console/rules", follow_redirects=False).headers["location"].startswith("/console/sign-in")


def test_a_staff_session_ends_after_ten_hours(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], clock: Any
) -> None:
    assert sign_in(client, add_staff(program.id, "marketer")).status_code == 303
    clock.advance(hours=9, minutes=59)
    assert client.get("/console/rules", follow_redirects=False).status_code == 200
    clock.advance(minutes=1)
    assert client.get("/console/rules", follow_redirects=False).headers["location"].startswith("/console/sign-in")


def test_a_till_form_sent_after_the_session_ended_leads_back_to_its_page_once_signed_in_and_records_nothing(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], clock: Any
) -> None:
    ann = program.enrol(first_name="Ann")
    email = add_staff(program.id, "store_staff")
    assert sign_in(client, email).status_code == 303
    page = f"/till/members/{ann['id']}"
    token = csrf_of(client.get(page).text)
    clock.advance(hours=10)  # the cashier types the ticket's total as the session runs out
    sale = {"csrf": token, "order_id": "T1900-ABCDE", "order_total": "20,00"}
    on_page = {"Referer": f"http://testserver{page}/pay"}  # as the browser sends it, on a refused payment's page
    sent = client.post(f"{page}/sale", data=sale, headers=on_page, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"].startswith("/console/sign-in")
    form = client.get(sent.headers["location"]).text
    assert "Votre session a pris fin : ce formulaire n&#39;a pas été envoyé." in form  # to send again, once back
    next_path = re.search(r'name="next" value="([^"]*)"', form)
    assert next_path is not None
    back = sign_in(client, email, next=next_path.group(1))
    assert back.status_code == 303 and back.headers["location"] == page  # the till page, not the form's address
    assert client.get(back.headers["location"]).status_code == 200
    assert program.balance(ann["id"])["pending"] == 0  # the sale was not recorded: the cashier sends it again


def test_store_staff_land_on_the_till_and_a_deactivated_user_is_signed_out(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Any, clock: Any
) -> None:
    from palier.staff import service as staff

    email = add_staff(program.id, "store_staff")
    landed = sign_in(client, email)
    assert landed.headers["location"] == "/till"
    assert client.get("/till").status_code == 200
    with db.write() as conn:
        user = staff.find(conn=conn, program_id=program.id, email=email)
        staff.set_active(conn=conn, clock=clock, staff_id=user.id, active=False, actor="test")
    assert client.get("/till", follow_redirects=False).status_code == 303
    with db.write() as conn:
        staff.set_active(conn=conn, clock=clock, staff_id=user.id, active=True, actor="test")
    assert client.get("/till", follow_redirects=False).status_code == 303  # back at work: signs in again
    assert sign_in(client, email).headers["location"] == "/till"


@pytest.mark.parametrize("path", ["/console/rules", "/console/tiers"])
def test_a_cleared_editor_saves_nothing(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], path: str
) -> None:
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    before = client.get(path).text
    for blank in ("", "   \n", "# every rule removed\n"):
        refused = client.post(path, data={"csrf": csrf_of(before), "document": blank})
        assert refused.status_code == 422 and "Le document est vide" in refused.text
    assert tokenless(client.get(path).text) == tokenless(before)  # the same document, the same version in force


def tokenless(html: str) -> str:
    """A page without its forms' one-time tokens (new each time it is shown)."""
    return re.sub(r'name="once" value="[^"]*"', 'name="once"', html)


def test_a_mistyped_console_or_till_address_is_a_page_not_problem_json(client: TestClient) -> None:
    for path in ("/console/audit", "/console/members/x/y/z", "/till/nope"):
        response = client.get(path)
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/html"), path
        assert "/console" in response.text or "/till" in response.text  # the way back to the console or till


def test_a_console_or_till_address_with_a_trailing_slash_leads_to_its_page(client: TestClient) -> None:
    """``/console/`` typed or bookmarked, ``/till/`` from a shortcut on the shop's tablet: the page, not a 404."""
    for path, page in (
        ("/console/", "/console"),
        ("/till/", "/till"),
        ("/console/rewards/?q=1", "/console/rewards?q=1"),
    ):
        response = client.get(path, follow_redirects=False)
        assert (response.status_code, response.headers.get("location")) == (307, page), path
