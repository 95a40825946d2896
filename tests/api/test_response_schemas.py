"""Every GET answers what the OpenAPI document declares, on a program with real activity (both engines).

The fuzzer (test_openapi_fuzz.py) sees a near-empty program; here members have purchases, returns, a
redemption, a merge and an erasure behind them, and every GET's answer is checked against the schema the
document declares for its status, with nothing allowed that the schema does not say.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
from fastapi.testclient import TestClient

from palier.db import Database
from tests.api.helpers import ApiProgram, assert_problem, luhn_card, purchase_body, return_body, reward_body
from tests.api.routes import KEYED, WORLD_PLAN, WORLD_SEGMENT, make_world, request_for, route_id

BRONZE = {"code": "bronze", "name": {"fr": "Bronze", "en": "Bronze"}, "threshold": 0}
GOLD = {"code": "gold", "name": {"fr": "Or", "en": "Gold"}, "threshold": 500_00, "multiplier_percent": 150}


def _strict(schema: Any) -> Any:
    """The schema with no property allowed that it does not name (an undocumented field is a contract break)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {k: _strict(v) for k, v in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema:
        strict["additionalProperties"] = False
    return strict


def _validator(document: dict[str, Any], path: str, method: str, status: int) -> Any:
    responses = document["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered {status}, which it does not declare"
    content = responses[str(status)]["content"]
    schema = next(iter(content.values()))["schema"]
    return jsonschema_rs.validator_for(_strict({**schema, "components": document["components"]}))


seen: set[tuple[str, int]] = set()


def _check(client: TestClient, program: ApiProgram, path: str, template: str, **params: Any) -> Any:
    response = program.call("GET", path, params=params)
    document = client.get("/openapi.json").json()
    errors = [
        f"{e.instance_path}: {e.message}"
        for e in _validator(document, template, "get", response.status_code).iter_errors(response.json())
    ]
    assert errors == [], f"GET {path} ({response.status_code}): {errors}"
    seen.add((template, response.status_code))
    return response.json()


def test_every_get_answers_as_its_schema_says(client: TestClient, program: ApiProgram) -> None:
    bare = program.enrol(first_name="Dee")["id"]  # first, every GET of a program with nothing in it yet
    for path in ("/v1/tiers", "/v1/plans", "/v1/segments", "/v1/rewards", "/v1/program/rules", "/v1/outbox"):
        _check(client, program, path, path)
    for suffix in ("", "/balance", "/history", "/export", "/memberships", "/segments", "/rewards", "/coupons"):
        _check(client, program, f"/v1/members/{bare}{suffix}", "/v1/members/{member_id}" + suffix)
    card = luhn_card()
    member = program.enrol(first_name="Ann", email="ann.schema@example.com")
    other = program.enrol(first_name="Bob", email="bob.schema@example.com")
    gone = program.enrol(first_name="Cy", email="cy.schema@example.com")
    twin = program.enrol(first_name="Ann", email="ann.twin@example.com")
    program.call("POST", f"/v1/members/{member['id']}/identities", json={"kind": "payment_card", "value": card})
    tiers = {"metric": "spend", "window": "calendar_year", "tiers": [BRONZE, GOLD]}
    assert program.call("PUT", "/v1/tiers", json=tiers).status_code == 200
    bought = program.call("POST", "/v1/events/purchases", json=purchase_body(member["id"]))
    assert bought.status_code == 201, bought.text
    order = bought.json()
    program.call("POST", "/v1/events/returns", json=return_body(purchase_body(member["id"])["order_id"]))
    program.adjust(member["id"], 2000)
    program.adjust(twin["id"], 100)
    program.adjust(gone["id"], 100)
    reward = program.call("POST", "/v1/rewards", json=reward_body()).json()
    redeemed = program.call("POST", f"/v1/members/{member['id']}/redemptions", json={"reward_id": reward["id"]})
    assert redeemed.status_code == 201, redeemed.text
    merged = program.call(
        "POST", "/v1/members/merge", json={"source_member_id": twin["id"], "target_member_id": member["id"]}
    )
    assert merged.status_code == 200, merged.text
    erased = program.call(
        "POST", f"/v1/members/{gone['id']}/erase", json={"reason": "Asked by the member on the phone"}
    )
    assert erased.status_code == 200, erased.text
    assert order
    trial = WORLD_PLAN | {"code": "club-trial", "trial_days": 30}
    for path, body in (("/v1/plans", WORLD_PLAN), ("/v1/plans", trial), ("/v1/segments", WORLD_SEGMENT),
                       (f"/v1/members/{member['id']}/memberships", {"plan": "club-trial"})):  # fmt: skip
        made = program.call("POST", path, json=body)
        assert made.status_code == 201, made.text
    assert program.call("POST", "/v1/segments/top/refresh").status_code == 200
    assert program.call("PUT", "/v1/webhook", json={"url": "http://127.0.0.1:9/palier-events"}).status_code == 200
    assert _check(client, program, f"/v1/members/{member['id']}/tier", "/v1/members/{member_id}/tier")
    coupon = redeemed.json()["coupon"]["code"]

    m = "/v1/members/{member_id}"
    for member_id in (member["id"], other["id"], gone["id"], twin["id"]):
        for suffix in ("", "/balance", "/history", "/export", "/tier", "/memberships", "/segments", "/rewards",
                       "/coupons", "/wallet"):  # fmt: skip
            _check(client, program, f"/v1/members/{member_id}{suffix}", m + suffix)
    for path in ("/v1/program", "/v1/audit", "/v1/keys", "/v1/program/rules", "/v1/program/rules/versions",
                 "/v1/how-to-earn", "/v1/tiers", "/v1/plans", "/v1/segments", "/v1/rewards", "/v1/outbox",
                 "/v1/webhook", "/health"):  # fmt: skip
        _check(client, program, path, path)
    _check(client, program, f"/v1/rewards/{reward['id']}", "/v1/rewards/{reward_id}")
    _check(client, program, f"/v1/coupons/{coupon}", "/v1/coupons/{code}")
    _check(client, program, "/v1/audit", "/v1/audit", limit=1)
    _check(client, program, f"/v1/members/{member['id']}/history", m + "/history", limit=1, language="fr")


def _declared(client: TestClient, method: str, template: str) -> dict[str, Any]:
    operation: dict[str, Any] = client.get("/openapi.json").json()["paths"][template][method.lower()]
    return operation["responses"]


def test_a_resent_adjustment_or_payment_answers_a_status_the_document_declares(
    client: TestClient, program: ApiProgram
) -> None:
    member = program.enrol(first_name="Ann")["id"]
    adjustment = {"points": 500, "reason": "Goodwill gesture", "external_id": "crm-1"}
    payment = {"kind": "points", "order_id": "W-1", "order_total": 1000, "points": 10}
    for template, body in (("/v1/members/{member_id}/adjustments", adjustment),
                           ("/v1/members/{member_id}/payments", payment)):  # fmt: skip
        path = template.replace("{member_id}", member)
        first, again = (program.call("POST", path, json=body) for _ in range(2))
        assert (first.status_code, again.status_code) == (201, 200), again.text
        assert again.json() == first.json()
        responses = _declared(client, "POST", template)
        assert "200" in responses, f"POST {template} answers a resend with 200, which it does not declare"
        schema = responses["200"]["content"]["application/json"]["schema"]
        document = client.get("/openapi.json").json()
        validator = jsonschema_rs.validator_for(_strict({**schema, "components": document["components"]}))
        assert list(validator.iter_errors(again.json())) == []


def test_every_operation_declares_the_503_it_answers_while_the_database_is_down(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    undeclared = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "Retry-After" not in operation["responses"].get("503", {}).get("headers", {})
    ]
    assert undeclared == []


def test_a_method_the_route_does_not_have_is_refused_with_the_ones_it_has(client: TestClient) -> None:
    """RFC 9110: a 405 says which methods the resource allows (``Allow``), and stays problem+json."""
    refused = client.put("/v1/program", headers={"Authorization": "Bearer key_x.y"})
    assert refused.status_code == 405 and refused.json()["code"] == "method_not_allowed"
    assert refused.headers["content-type"] == "application/problem+json"
    assert set(refused.headers["Allow"].replace(" ", "").split(",")) == {"GET", "PATCH"}


def test_every_route_answers_its_valid_request_as_its_schema_says(
    client: TestClient, program: ApiProgram, db: Database
) -> None:
    """Each route once, with the valid request tests/api/routes.py gives it, on a world of its own: the status
    it answers is one it declares, and the body is what the document says for that status (writes included)."""
    world = make_world(program, db)
    document = client.get("/openapi.json").json()
    wrong = []
    for route in KEYED:
        method, url, kwargs = request_for(route, world)
        response = program.call(method, url, **kwargs)
        responses = document["paths"][route[1]][method.lower()]["responses"]
        if str(response.status_code) not in responses:
            wrong.append(f"{route_id(route)}: {response.status_code} not declared ({response.text[:120]})")
            continue
        content = responses[str(response.status_code)].get("content", {})
        media = response.headers["content-type"].split(";")[0]
        if media not in content:
            wrong.append(f"{route_id(route)}: {response.status_code} as {media}, declared {list(content)}")
            continue
        schema = _strict({**content[media]["schema"], "components": document["components"]})
        errors = [
            f"{e.instance_path}: {e.message}" for e in jsonschema_rs.validator_for(schema).iter_errors(response.json())
        ]
        if errors:
            wrong.append(f"{route_id(route)} ({response.status_code}): {errors}")
    assert wrong == []


def test_a_body_not_sent_as_json_is_refused_as_such(client: TestClient, program: ApiProgram) -> None:
    """``curl -d`` without ``-H 'Content-Type: application/json'`` sends a form: the answer says to send JSON,
    not "Input should be a valid dictionary", and the status is one the document declares."""
    member = program.enrol(first_name="Ann")
    form, text = "application/x-www-form-urlencoded", "text/plain"
    cases = [("POST", "/v1/members", "/v1/members", '{"first_name":"Bob"}', form),
             ("PATCH", f"/v1/members/{member['id']}", "/v1/members/{member_id}", "{}", text),
             ("POST", "/v1/program/rules", "/v1/program/rules", '{"rules":[]}', text)]  # fmt: skip
    for method, path, template, body, media in cases:
        refused = program.call(method, path, content=body, headers={"Content-Type": media})
        assert_problem(refused, 415, "unsupported_media_type", field="Content-Type")
        assert "application/json" in refused.json()["detail"]
        assert "415" in _declared(client, method, template)
    assert program.call("GET", f"/v1/members/{member['id']}").json()["last_name"] is None


def test_an_answer_replayed_for_an_idempotency_key_carries_a_header_the_document_declares(
    client: TestClient, program: ApiProgram
) -> None:
    """A retry's answer says it is the kept one (``Idempotent-Replayed: true``), a success as a refusal: a client
    generated from the document knows the header."""
    member = program.enrol(first_name="Ann")["id"]
    cases = [("POST", "/v1/members", "/v1/members", {"first_name": "Bob"}, 201),
             ("POST", f"/v1/members/{member}/adjustments", "/v1/members/{member_id}/adjustments",
              {"points": -1000, "reason": "Taken back"}, 422)]  # fmt: skip
    for method, path, template, body, status in cases:
        key = f"replay-{template}"
        first = program.call(method, path, json=body, idempotency_key=key)
        again = program.call(method, path, json=body, idempotency_key=key)
        assert (first.status_code, again.status_code) == (status, status), again.text
        assert "Idempotent-Replayed" not in first.headers
        assert again.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" in _declared(client, method, template)[str(status)]["headers"]
