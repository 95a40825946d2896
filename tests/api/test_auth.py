"""Who may call what: API keys, scopes, and programs that never see each other's members."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from unittest.mock import ANY

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from palier.activity.tables import idempotency_keys
from palier.cli.common import console
from palier.cli.main import app as cli
from palier.db import Database
from palier.programs.tables import programs
from tests.api.conftest import OPERATOR_TOKEN
from tests.api.helpers import ApiProgram, assert_problem, footprint, purchase_body, return_body, unique
from tests.api.routes import (
    ADMIN_ONLY,
    BEYOND_READ,
    BODIES,
    KEYED,
    MEMBER_ROUTES,
    POLICY,
    ROUTES,
    Route,
    World,
    make_world,
    request_for,
    route_id,
)


@pytest.fixture(scope="module")
def world(module_programs: Callable[..., ApiProgram], module_db: Database) -> World:
    """Shared by the module's tests: they are refused, or only read, and check nothing moved."""
    return make_world(module_programs(), module_db)


@pytest.fixture(scope="module")
def intruder(module_programs: Callable[..., ApiProgram]) -> ApiProgram:
    """Program B, whose admin key tries to reach program A's (the world's) members."""
    return module_programs()


@pytest.fixture(scope="module")
def stranger(module_programs: Callable[..., ApiProgram]) -> ApiProgram:
    """Program C, whose admin key sends program A's requests to every route (and may change C as it goes)."""
    return module_programs()


@pytest.fixture
def fresh_world(program: ApiProgram, db: Database) -> World:
    """A world of its own, for a test that changes it."""
    return make_world(program, db)


def state(world: World) -> dict[str, Any]:
    """What a refused call must leave as it was: every row of the program, and the member's balance."""
    return {**footprint(world.db, world.program.id), "balance": world.program.balance(world.member_id)}


# --- the policy table covers the app ---


def test_every_route_has_a_declared_scope() -> None:
    undeclared = [route_id(r) for r in ROUTES if r not in POLICY]
    assert undeclared == [], "declare the least scope of these routes in tests/api/routes.py POLICY"
    assert len(KEYED) >= 18


# --- authentication ---


def test_no_api_key_is_401_missing_api_key_on_every_route(module_client: TestClient, world: World) -> None:
    before = state(world)
    for route in KEYED:
        method, url, kwargs = request_for(route, world)
        for headers in ({}, {"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, {"Authorization": "Bearer"}):
            response = module_client.request(method, url, headers=headers, **kwargs)
            assert_problem(response, 401, "missing_api_key", field="Authorization")
    assert state(world) == before


@pytest.mark.parametrize(
    "token",
    ["garbage", "key_", "key_01HZZZZZZZZZZZZZZZZZZZZZZZ.not-the-secret", "Bearer key_x.y", "x" * 2000],
    ids=["garbage", "bare-prefix", "unknown-key", "doubled-scheme", "very-long"],
)
def test_unknown_key_is_401_invalid_api_key(module_client: TestClient, world: World, token: str) -> None:
    response = module_client.get("/v1/program", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "invalid_api_key", field="Authorization")
    assert "not-the-secret" not in response.text and "xxxxxxxx" not in response.text


def test_wrong_secret_unknown_and_revoked_keys_get_the_same_answer(fresh_world: World) -> None:
    """No oracle: a caller cannot tell a real key id with a wrong secret from a made-up or revoked key."""
    p = fresh_world.program
    read = fresh_world.keys["read"]
    key_id = read.split(".")[0]
    answers = [p.call("GET", "/v1/program", key=f"{key_id}.wrong-secret")]
    answers.append(p.call("GET", "/v1/program", key="key_01HZZZZZZZZZZZZZZZZZZZZZZZ.wrong-secret"))
    assert p.call("DELETE", f"/v1/keys/{key_id}").status_code == 200
    answers.append(p.call("GET", "/v1/program", key=read))
    for answer in answers:
        assert_problem(answer, 401, "invalid_api_key", field="Authorization")
    assert len({a.text for a in answers}) == 1


def test_revoked_key_is_401_from_then_on(fresh_world: World) -> None:
    world = fresh_world
    p = world.program
    pos = world.keys["pos"]
    assert p.call("GET", "/v1/program", key=pos).status_code == 200
    revoked = p.call("DELETE", f"/v1/keys/{pos.split('.')[0]}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert_problem(p.call("GET", "/v1/program", key=pos), 401, "invalid_api_key", field="Authorization")
    refused = p.call("POST", "/v1/events/purchases", key=pos, json=purchase_body(world.member_id))
    assert_problem(refused, 401, "invalid_api_key")
    assert p.balance(world.member_id)["pending"] == 10  # the purchase of make_world only
    again = p.call("DELETE", f"/v1/keys/{pos.split('.')[0]}")  # revoking twice changes nothing
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]


def test_a_key_revoked_from_the_cli_is_401_at_once(
    fresh_world: World, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`palier program keys revoke`: the same revocation as the console's and DELETE /v1/keys/{id}."""
    p = fresh_world.program
    pos = fresh_world.keys["pos"]
    key_id = pos.split(".")[0]
    assert p.call("GET", "/v1/program", key=pos).status_code == 200
    monkeypatch.setenv("PALIER_DATABASE_URL", db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("PALIER_CARD_KEY", "a-card-key-of-at-least-32-characters")  # PostgreSQL needs one
    monkeypatch.setattr(console, "width", 250)
    listed = CliRunner().invoke(cli, ["program", "keys", "list", p.id])
    assert listed.exit_code == 0, listed.output
    assert re.search(rf"{key_id}\s*│[^│]*│\s*pos\s*│", listed.output), listed.output
    revoked = CliRunner().invoke(cli, ["program", "keys", "revoke", p.id, key_id])
    assert revoked.exit_code == 0, revoked.output
    assert f"API key {key_id}" in revoked.output and "revoked" in revoked.output
    assert_problem(p.call("GET", "/v1/program", key=pos), 401, "invalid_api_key", field="Authorization")
    trail = p.call("GET", "/v1/audit", params={"limit": 1}).json()["items"][0]
    assert (trail["action"], trail["actor"], trail["subject_id"]) == ("key.revoked", "cli", key_id)
    again = CliRunner().invoke(cli, ["program", "keys", "revoke", p.id, key_id])  # twice: nothing changes
    assert again.exit_code == 0 and "already revoked" in again.output, again.output
    assert p.call("GET", "/v1/audit", params={"limit": 1}).json()["items"][0]["id"] == trail["id"]
    unknown = CliRunner().invoke(cli, ["program", "keys", "revoke", p.id, "key_nope"])
    assert (
        unknown.exit_code == 2
        and "error key_not_found" in unknown.output
        and unknown.output.rstrip().endswith("(key_id)")
    )


def test_401_says_how_to_authenticate(module_client: TestClient, world: World) -> None:
    for headers in ({}, {"Authorization": "Bearer garbage"}):
        response = module_client.get("/v1/program", headers=headers)
        assert response.status_code == 401  # RFC 9110 §15.5.2: a 401 MUST say how to authenticate
        assert response.headers.get("www-authenticate", "").startswith("Bearer")


@pytest.mark.parametrize("route", KEYED, ids=route_id)
def test_a_refused_key_is_answered_before_the_fields_it_sent(world: World, route: Route) -> None:
    """An unknown key gets 401 and a key without the scope 403 on every route, whatever the body: the fields of
    a caller who may not call are not judged (422), and nothing is written."""
    method, url, _ = request_for(route, world)
    sent = {"json": {"no_such_field": 1}} if route in BODIES else {}
    before = state(world)
    unknown = world.program.call(method, url, key="key_01HZZZZZZZZZZZZZZZZZZZZZZZ.wrong", **sent)
    assert_problem(unknown, 401, "invalid_api_key", field="Authorization")
    if route in BEYOND_READ:
        weak = world.program.call(method, url, key=world.keys["read"], **sent)
        assert_problem(weak, 403, "insufficient_scope", field="Authorization")
    if sent:
        allowed = world.program.call(method, url, key=world.keys["admin"], **sent)
        assert allowed.status_code == 422, allowed.text  # the body is refused once the key may call
    assert state(world) == before


def test_a_refused_key_is_answered_before_its_query(world: World) -> None:
    url = f"/v1/members/{world.member_id}/history?limit=0"
    unknown = world.program.call("GET", url, key="key_01HZZZZZZZZZZZZZZZZZZZZZZZ.wrong")
    assert_problem(unknown, 401, "invalid_api_key", field="Authorization")
    assert_problem(world.program.call("GET", url, key=world.keys["read"]), 422, "out_of_range", field="limit")


# --- scopes ---


@pytest.mark.parametrize("route", BEYOND_READ, ids=route_id)
def test_read_key_is_403_on_every_route_beyond_read(world: World, route: Route) -> None:
    method, url, kwargs = request_for(route, world)
    before = state(world)
    response = world.program.call(method, url, key=world.keys["read"], **kwargs)
    body = assert_problem(response, 403, "insufficient_scope", field="Authorization")
    assert "read" in body["detail"]
    assert state(world) == before


@pytest.mark.parametrize("route", ADMIN_ONLY, ids=route_id)
def test_pos_key_is_403_on_admin_routes(world: World, route: Route) -> None:
    method, url, kwargs = request_for(route, world)
    before = state(world)
    response = world.program.call(method, url, key=world.keys["pos"], **kwargs)
    assert_problem(response, 403, "insufficient_scope", field="Authorization")
    assert state(world) == before


def test_admin_only_routes_are_the_ones_integrators_expect() -> None:
    """The routes a till (pos key) must never reach, pinned by name."""
    expected = {
        ("PATCH", "/v1/program"),
        ("GET", "/v1/keys"),
        ("POST", "/v1/keys"),
        ("DELETE", "/v1/keys/{key_id}"),
        ("POST", "/v1/members/merge"),
        ("POST", "/v1/members/{member_id}/erase"),
        ("POST", "/v1/members/{member_id}/adjustments"),
        ("DELETE", "/v1/members/{member_id}/identities/{identity_id}"),
    }
    assert expected <= set(ADMIN_ONLY)


def test_a_key_with_the_least_scope_is_let_through_every_route(fresh_world: World) -> None:
    """Each route, called with a key of exactly its least scope, does its work (reads first, then writes)."""
    order = sorted(
        KEYED,
        key=lambda r: (r[0] != "GET", r[0] == "DELETE", "merge" in r[1], "reverse" in r[1], r[1].endswith("/use")),
    )
    refused = {}
    for route in order:
        method, url, kwargs = request_for(route, fresh_world)
        response = fresh_world.program.call(method, url, key=fresh_world.keys[POLICY[route]], **kwargs)
        if response.status_code >= 300:
            refused[route_id(route)] = response.text
    assert refused == {}


def test_operator_route_refuses_program_keys(module_client: TestClient, world: World) -> None:
    for key in world.keys.values():
        response = module_client.post("/v1/programs", json={"name": "X"}, headers={"Authorization": f"Bearer {key}"})
        assert_problem(response, 403, "operator_token_required", field="Authorization")
    assert_problem(module_client.post("/v1/programs", json={"name": "X"}), 403, "operator_token_required")


def test_no_operator_token_configured_means_nobody_creates_programs(
    module_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PALIER_OPERATOR_TOKEN")
    for header in ("Bearer ", "Bearer", f"Bearer {OPERATOR_TOKEN}"):
        response = module_client.post("/v1/programs", json={"name": "X"}, headers={"Authorization": header})
        assert_problem(response, 403, "operator_token_required")


def test_a_retried_program_creation_makes_one_program(module_client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}", "Idempotency-Key": unique("create-program")}
    name = unique("Program")
    first = module_client.post("/v1/programs", json={"name": name}, headers=headers)
    again = module_client.post("/v1/programs", json={"name": name}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["program"]["id"] == first.json()["program"]["id"]
    assert again.headers.get("idempotent-replayed") == "true"


def test_unknown_routes_and_methods_answer_problem_json(module_client: TestClient, world: World) -> None:
    headers = world.program.headers()
    assert_problem(module_client.get("/v1/nowhere", headers=headers), 404, "not_found")
    assert_problem(module_client.get("/v1/nowhere"), 404, "not_found")
    assert_problem(module_client.put("/v1/program", headers=headers), 405, "method_not_allowed")


# --- keys: secrets shown once ---


def test_key_secret_is_shown_once_and_never_listed(world: World) -> None:
    p = world.program
    created = p.call("POST", "/v1/keys", json={"name": "till 3", "scopes": ["pos", "read", "pos"]})
    assert created.status_code == 201, created.text
    new = created.json()
    assert new["scopes"] == ["pos", "read"]
    key_id, _, secret = new["secret"].partition(".")
    assert key_id == new["id"] and len(secret) >= 32
    assert p.call("GET", "/v1/program", key=new["secret"]).status_code == 200

    listed = p.call("GET", "/v1/keys")
    assert listed.status_code == 200
    assert {k["id"] for k in listed.json()} >= {new["id"], world.spare_key_id}
    for item in listed.json():
        assert set(item) == {"id", "name", "scopes", "created_at", "revoked_at"}
    every_secret = [new["secret"], *world.keys.values()]
    for full in every_secret:
        assert full.partition(".")[2] not in listed.text
    revoked = p.call("DELETE", f"/v1/keys/{new['id']}")
    assert "secret" not in revoked.json() and secret not in revoked.text


def test_keys_list_shows_only_this_programs_keys(world: World, intruder: ApiProgram) -> None:
    mine = {k["id"] for k in world.program.call("GET", "/v1/keys").json()}
    theirs = {k["id"] for k in intruder.call("GET", "/v1/keys").json()}
    assert mine and theirs and not mine & theirs


def test_key_secret_is_never_stored_in_clear(world: World, module_db: Database) -> None:
    p = world.program
    created = p.call("POST", "/v1/keys", idempotency_key="make-key-1", json={"name": "till 4", "scopes": ["pos"]})
    assert created.status_code == 201
    secret = created.json()["secret"].partition(".")[2]
    with module_db.read() as conn:
        kept = conn.execute(select(idempotency_keys.c.response).where(idempotency_keys.c.program_id == p.id)).all()
    assert kept and all(secret not in str(row.response) for row in kept)
    replay = p.call("POST", "/v1/keys", idempotency_key="make-key-1", json={"name": "till 4", "scopes": ["pos"]})
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == created.json()["id"] and secret not in replay.text
    assert p.call("GET", "/v1/program", key=created.json()["secret"]).status_code == 200


# --- object-level authorisation: program B's key never reaches program A's members ---


@pytest.mark.parametrize("route", MEMBER_ROUTES, ids=route_id)
def test_another_programs_key_never_reaches_a_member(world: World, intruder: ApiProgram, route: Route) -> None:
    method, url, kwargs = request_for(route, world)
    before = state(world)
    response = intruder.call(method, url, **kwargs)  # program B's admin key, program A's member
    assert_problem(response, 404, "member_not_found", field="member_id")
    for secret in ("Alice", world.member["email"], world.identity_id, world.order_id):
        assert secret not in response.text
    assert state(world) == before


def world_ids(world: World) -> set[str]:
    """What names one of the world's objects: its members, their e-mail, identity, order, credit, reward,
    coupons, payments, membership and spare key (plan and segment codes are per program: another may own
    the same code)."""
    return {
        world.member_id, world.other_member["id"], world.erasable_id, world.member["email"], world.identity_id,
        world.order_id, world.adjustment_transaction_id, world.reward_id, world.coupon_to_use,
        world.coupon_to_cancel, world.payment_id, world.membership_id, world.fee_payment_id, world.spare_key_id,
    }  # fmt: skip


@pytest.mark.parametrize("route", KEYED, ids=route_id)
def test_another_programs_admin_key_never_reaches_its_objects(world: World, stranger: ApiProgram, route: Route) -> None:
    """Every route, sent by program B's admin key with program A's request: whatever names one of A's objects
    (in the path or the body: a member, order, reward, coupon, payment, membership, key, outbox event) is
    404 ``*_not_found`` and leaves A as it was; the rest acts on B only. Generated from the routes."""
    method, url, kwargs = request_for(route, world)
    before = state(world)
    response = stranger.call(method, url, **kwargs)
    sent = url + json.dumps(kwargs.get("json"))
    if any(name in sent for name in world_ids(world)) or "/v1/outbox/ack" in url:  # an event of A's outbox
        body = assert_problem(response, 404, ANY)
        assert body["code"].endswith("_not_found"), f"{route_id(route)}: {body}"
    for secret in ("Alice", world.member["email"], world.identity_id, world.order_id, world.coupon_to_use):
        if secret not in sent:
            assert secret not in response.text, f"{route_id(route)} shows A's {secret!r}"
    assert state(world) == before, f"{route_id(route)} changed program A"


SECOND_OBJECT = [r for r in MEMBER_ROUTES if r in KEYED and r[1].count("{") > 1]


@pytest.mark.parametrize("route", SECOND_OBJECT, ids=route_id)
def test_another_members_object_is_not_reached_through_a_member(world: World, route: Route) -> None:
    """A's identity, credit, payment or membership named under Bob's id (same program, admin key) is 404."""
    method, url, kwargs = request_for(route, world)
    url = url.replace(world.member_id, world.other_member["id"], 1)
    before = state(world)
    response = world.program.call(method, url, **kwargs)
    body = assert_problem(response, 404, ANY)
    assert body["code"].endswith("_not_found") and body["code"] != "member_not_found", f"{route_id(route)}: {body}"
    assert state(world) == before, f"{route_id(route)} changed something"


def test_the_member_matrix_covers_every_object_a_route_names() -> None:
    assert len(SECOND_OBJECT) >= 4, SECOND_OBJECT
    assert {p for r in KEYED for p in re.findall(r"{(\w+)}", r[1])} >= {"member_id", "code", "reward_id", "key_id",
        "payment_id", "membership_id", "identity_id", "transaction_id"}  # fmt: skip


def test_another_programs_key_cannot_lookup_merge_buy_return_or_revoke(world: World, intruder: ApiProgram) -> None:
    before = state(world)
    lookup = intruder.call("POST", "/v1/members/lookup", json={"kind": "email", "value": world.member["email"]})
    assert_problem(lookup, 404, "member_not_found", field="value")
    merge = intruder.call(
        "POST",
        "/v1/members/merge",
        json={"source_member_id": world.other_member["id"], "target_member_id": world.member_id},
    )
    assert_problem(merge, 404, "member_not_found", field="source_member_id")
    own = intruder.enrol(first_name="Trudy")
    merge_into_own = intruder.call(
        "POST", "/v1/members/merge", json={"source_member_id": world.member_id, "target_member_id": own["id"]}
    )
    assert_problem(merge_into_own, 404, "member_not_found", field="source_member_id")
    buy = intruder.call("POST", "/v1/events/purchases", json=purchase_body(world.member_id))
    assert_problem(buy, 404, "member_not_found")
    by_identity = intruder.call(
        "POST",
        "/v1/events/purchases",
        json=purchase_body({"kind": "email", "value": world.member["email"]}),
    )
    assert_problem(by_identity, 404, "member_not_found", field="member.value")
    ret = intruder.call("POST", "/v1/events/returns", json=return_body(world.order_id))
    assert_problem(ret, 404, "order_not_found", field="order_id")
    revoke = intruder.call("DELETE", f"/v1/keys/{world.spare_key_id}")
    assert_problem(revoke, 404, "key_not_found", field="key_id")
    assert state(world) == before
    assert intruder.balance(own["id"])["pending"] == 0


def test_idempotency_keys_do_not_cross_programs(world: World, intruder: ApiProgram) -> None:
    """The same Idempotency-Key in two programs is two requests, never a replay of the other's answer."""
    mine = world.program.call("POST", "/v1/members", idempotency_key="shared-key", json={"first_name": "Alice"})
    theirs = intruder.call("POST", "/v1/members", idempotency_key="shared-key", json={"first_name": "Alice"})
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    assert intruder.call("GET", f"/v1/members/{mine.json()['id']}").status_code == 404


@pytest.mark.parametrize("currency", ["XYZ", "EUX", "XAU"])
def test_a_program_in_no_iso_currency_is_refused_and_not_created(
    module_client: TestClient, module_db: Database, currency: str
) -> None:
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    with module_db.read() as conn:
        before = conn.execute(select(func.count()).select_from(programs)).scalar_one()
    response = module_client.post("/v1/programs", json={"name": "X", "currency": currency}, headers=headers)
    assert_problem(response, 422, "invalid_currency", field="currency")
    with module_db.read() as conn:
        assert conn.execute(select(func.count()).select_from(programs)).scalar_one() == before


@pytest.mark.parametrize(
    ("currency", "exponent"), [("EUR", 2), ("JPY", 0), ("KWD", 3), ("CLF", 4), ("CHF", 2), ("chf", 2), (" eur", 2)]
)
def test_a_program_in_an_iso_currency_counts_its_minor_units(
    module_client: TestClient, currency: str, exponent: int
) -> None:
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    response = module_client.post("/v1/programs", json={"name": "X", "currency": currency}, headers=headers)
    assert response.status_code == 201, response.text
    assert (response.json()["program"]["currency"], response.json()["program"]["currency_exponent"]) == (
        currency.strip().upper(),  # "chf" is CHF, as the CLI reads it
        exponent,
    )
