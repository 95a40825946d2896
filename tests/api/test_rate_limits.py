"""Rate limits over HTTP: redeem (API and portal), member lookup and sign-in (portal and console) answer 429.

Each test sets small limits on its app (``Settings.rate_limits``, as ``PALIER_RATE_LIMIT_*`` would), makes
exactly the allowed calls, and checks the next one: 429 ``rate_limited`` with a ``Retry-After`` of whole
seconds, problem+json on the API and an HTML page on the portal and console; nothing written by the
refused call; other members and keys unaffected; calls accepted again once the app's clock has moved past
the window (the limiter reads the app's clock: no sleeping).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from palier.clock import FrozenClock
from palier.config import Limit, RateLimits
from palier.db import Database
from palier.errors import InvalidInput
from palier.staff import service as staff
from palier.staff.models import StaffCreate
from tests.api.conftest import assert_ledger_sound
from tests.api.helpers import ApiProgram, assert_problem, footprint, reward_body, unique
from tests.web.world import enter, sent_codes

ALLOWED = 3
WINDOW = 60


def set_limits(app: FastAPI, **limits: Limit | None) -> None:
    """Small limits on this app only (what the PALIER_RATE_LIMIT_* variables set for a server)."""
    off = RateLimits(redeem=None, lookup=None, sign_in=None, sign_in_code=None)
    app.state.settings = dataclasses.replace(app.state.settings, rate_limits=dataclasses.replace(off, **limits))


def assert_rate_limited(response: httpx.Response, *, at_most: int = WINDOW) -> int:
    body = assert_problem(response, 429, "rate_limited")
    wait = response.headers.get("Retry-After", "")
    assert wait.isdigit() and 1 <= int(wait) <= at_most, f"Retry-After {wait!r} is not whole seconds in [1, {at_most}]"
    assert body["retry_after"] == int(wait), body
    return int(wait)


def assert_page_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, f"expected a 429 page, got {response.status_code}: {response.text[:300]}"
    assert response.headers["content-type"].startswith("text/html"), response.headers["content-type"]
    wait = response.headers.get("Retry-After", "")
    assert wait.isdigit() and int(wait) >= 1, f"Retry-After {wait!r} is not whole seconds ≥ 1"
    assert f"Réessayez dans {wait} s." in response.text, response.text[:500]


def redeemable(program: ApiProgram, points: int = 1000) -> tuple[str, str]:
    """A member with points, and a reward they can afford many times."""
    member = program.enrol(first_name="Ada")
    program.adjust(member["id"], points, reason="Points to spend")
    reward = program.call("POST", "/v1/rewards", json=reward_body(cost_points=10))
    assert reward.status_code == 201, reward.text
    return member["id"], reward.json()["id"]


def redeem(program: ApiProgram, member_id: str, reward_id: str) -> httpx.Response:
    return program.call("POST", f"/v1/members/{member_id}/redemptions", json={"reward_id": reward_id})


def test_redeem_over_the_limit_is_refused_writes_nothing_and_opens_again(
    app: FastAPI, db: Database, clock: FrozenClock, program: ApiProgram
) -> None:
    set_limits(app, redeem=Limit(ALLOWED, WINDOW))
    member_id, reward_id = redeemable(program)
    other_id = program.enrol(first_name="Bob")["id"]
    program.adjust(other_id, 100)
    for n in range(ALLOWED):
        assert redeem(program, member_id, reward_id).status_code == 201, f"redemption {n + 1} of {ALLOWED}"
    before = footprint(db, program.id)
    refused = program.call(
        "POST", f"/v1/members/{member_id}/redemptions", json={"reward_id": reward_id}, idempotency_key="late"
    )
    assert assert_rate_limited(refused) == WINDOW  # the clock has not moved: the whole window is left
    assert footprint(db, program.id) == before, "a rate-limited redemption wrote something (a hold, a coupon, a key)"
    assert_ledger_sound(db, program.id)
    assert redeem(program, other_id, reward_id).status_code == 201, "another member of the program was limited"
    clock.advance(seconds=WINDOW - 1)
    assert_rate_limited(redeem(program, member_id, reward_id), at_most=1)
    clock.advance(seconds=1)
    # The refusal was not kept under its Idempotency-Key: the same key now redeems.
    again = program.call(
        "POST", f"/v1/members/{member_id}/redemptions", json={"reward_id": reward_id}, idempotency_key="late"
    )
    assert again.status_code == 201, f"the window has passed, yet: {again.text}"


def test_lookup_is_limited_per_api_key(app: FastAPI, clock: FrozenClock, program: ApiProgram) -> None:
    set_limits(app, lookup=Limit(ALLOWED, WINDOW))
    email = f"{unique('ada')}@example.com"
    program.enrol(email=email)
    till, other_till = program.make_key("pos"), program.make_key("read")
    query = {"kind": "email", "value": email}
    for n in range(ALLOWED):
        found = program.call("POST", "/v1/members/lookup", key=till, json=query)
        assert found.status_code == 200, f"lookup {n + 1} of {ALLOWED}: {found.text}"
    assert_rate_limited(program.call("POST", "/v1/members/lookup", key=till, json=query))
    assert program.call("POST", "/v1/members/lookup", key=other_till, json=query).status_code == 200
    clock.advance(seconds=WINDOW)
    assert program.call("POST", "/v1/members/lookup", key=till, json=query).status_code == 200


def test_off_turns_the_limits_off(app: FastAPI, program: ApiProgram) -> None:
    set_limits(app)  # every limit off, as PALIER_RATE_LIMITS=off
    member_id, reward_id = redeemable(program)
    for n in range(ALLOWED * 3):
        assert redeem(program, member_id, reward_id).status_code == 201, f"redemption {n + 1} refused with limits off"


def test_the_environment_sets_the_limits() -> None:
    assert RateLimits.from_env({}) == RateLimits()
    assert RateLimits() == RateLimits(
        redeem=Limit(30, 60), lookup=Limit(600, 60), sign_in=Limit(10, 300), sign_in_code=Limit(60, 300)
    )
    off = RateLimits(redeem=None, lookup=None, sign_in=None, sign_in_code=None)
    assert RateLimits.from_env({"PALIER_RATE_LIMITS": "off"}) == off
    sent = {"REDEEM": "5/10", "SIGN_IN": "OFF", "SIGN_IN_CODE": "9/90"}
    read = RateLimits.from_env({f"PALIER_RATE_LIMIT_{kind}": value for kind, value in sent.items()})
    assert read == RateLimits(redeem=Limit(5, 10), sign_in=None, sign_in_code=Limit(9, 90))
    for bad in ("5", "0/60", "5/0", "five/60", "5/-1"):
        with pytest.raises(InvalidInput, match="PALIER_RATE_LIMIT_LOOKUP must be COUNT/SECONDS") as refused:
            RateLimits.from_env({"PALIER_RATE_LIMIT_LOOKUP": bad})
        assert (refused.value.code, refused.value.field) == ("invalid_setting", "PALIER_RATE_LIMIT_LOOKUP")


def test_the_openapi_document_declares_the_429(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in (("/v1/members/{member_id}/redemptions", "post"), ("/v1/members/lookup", "post")):
        declared = paths[path][method]["responses"].get("429")
        assert declared and "Retry-After" in declared["headers"], f"{method.upper()} {path} does not declare its 429"


# --- pages: the portal (sign-in, redeem) and the console (sign-in) ---


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def test_portal_sign_in_and_redeem_answer_a_429_page(
    app: FastAPI, db: Database, clock: FrozenClock, client: TestClient, program: ApiProgram
) -> None:
    set_limits(app, sign_in=Limit(ALLOWED, WINDOW), redeem=Limit(ALLOWED, WINDOW))
    member_id, reward_id = redeemable(program)
    email = f"{unique('ada')}@example.com"

    def ask_code(address: str) -> httpx.Response:
        form = client.get(f"/p/{program.id}/sign-in")
        data = {"email": address, "csrf": csrf_of(form.text)}
        return client.post(f"/p/{program.id}/sign-in", data=data, follow_redirects=False)

    for n in range(ALLOWED):
        assert ask_code(email).status_code == 303, f"sign-in {n + 1} of {ALLOWED}"
    assert_page_rate_limited(ask_code(email.upper()))  # the same identity, however it is typed
    assert ask_code(f"{unique('bob')}@example.com").status_code == 303, "another e-mail was limited"

    link = program.call("POST", f"/v1/members/{member_id}/portal-link")
    assert link.status_code == 201, link.text
    assert enter(client, link.json()["url"]).status_code == 303
    token = csrf_of(client.get(f"/p/{program.id}/rewards").text)
    url = f"/p/{program.id}/rewards/{reward_id}/redeem"
    for n in range(ALLOWED):
        done = client.post(url, data={"csrf": token}, follow_redirects=False)
        assert done.status_code == 303, f"portal redemption {n + 1} of {ALLOWED}: {done.status_code}"
    before = footprint(db, program.id)
    assert_page_rate_limited(client.post(url, data={"csrf": token}, follow_redirects=False))
    assert footprint(db, program.id) == before, "a rate-limited portal redemption wrote something"
    assert_rate_limited(redeem(program, member_id, reward_id))  # one count for the API and the portal
    clock.advance(seconds=WINDOW)
    assert ask_code(email).status_code == 303, "the window has passed, yet the sign-in is refused"


def test_codes_checked_from_one_address_are_limited_whoever_they_sign_in(
    app: FastAPI, db: Database, clock: FrozenClock, client: TestClient, program: ApiProgram
) -> None:
    """Guessing codes: each member's code dies after 5 wrong tries, but one address asking codes for thousands of
    members and trying 5 of each would open an account now and then. Codes checked from one address are counted
    whoever they are for: over the limit, even the right code waits (and spends none of its tries)."""
    set_limits(app, sign_in_code=Limit(ALLOWED, WINDOW))
    emails = [f"{unique(name)}@example.com" for name in ("ada", "bob")]
    for email in emails:
        program.enrol(first_name="Ada", email=email)

    def ask_code(email: str) -> None:
        form = client.get(f"/p/{program.id}/sign-in")
        data = {"email": email, "csrf": csrf_of(form.text)}
        assert client.post(f"/p/{program.id}/sign-in", data=data, follow_redirects=False).status_code == 303

    def check(code: str) -> httpx.Response:
        form = client.get(f"/p/{program.id}/sign-in/code")
        data = {"code": code, "csrf": csrf_of(form.text)}
        return client.post(f"/p/{program.id}/sign-in/code", data=data, follow_redirects=False)

    ask_code(emails[0])
    for _ in range(ALLOWED - 1):
        assert check("000000").status_code == 422
    ask_code(emails[1])
    assert check("000000").status_code == 422
    right = sent_codes(db, program.id)[0]["code"]
    assert_page_rate_limited(check(right))  # a guesser's next try, as anyone's, waits
    clock.advance(seconds=WINDOW)
    assert check(right).status_code == 303, "the window has passed, yet the right code is refused"


def test_console_sign_in_answers_a_429_page(
    app: FastAPI, db: Database, clock: FrozenClock, client: TestClient, program: ApiProgram
) -> None:
    set_limits(app, sign_in=Limit(ALLOWED, WINDOW))
    password = "a long test password"
    email = f"{unique('staff')}@staff.example"
    data = StaffCreate.model_validate({"email": email, "display_name": "Sam", "role": "marketer", "password": password})
    with db.write() as conn:
        staff.create(conn=conn, clock=clock, program_id=program.id, data=data, actor="test")

    def sign_in(**form: Any) -> httpx.Response:
        token = csrf_of(client.get("/console/sign-in").text)
        return client.post("/console/sign-in", data={"csrf": token, **form}, follow_redirects=False)

    for n in range(ALLOWED):
        assert sign_in(email=email, password=password).status_code == 303, f"sign-in {n + 1} of {ALLOWED}"
        client.cookies.clear()
    assert_page_rate_limited(sign_in(email=email, password=password))
    clock.advance(seconds=WINDOW)
    assert sign_in(email=email, password=password).status_code == 303, "the window has passed, yet refused"
