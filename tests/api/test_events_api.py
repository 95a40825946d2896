"""Purchases and returns through the API: each fact counted once, retries answered alike, bad input refused.

A refused request must write nothing: every case compares the member's balance and history, and the
count of every kind of row the program has (``footprint``), before and after.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select

from palier.activity.tables import events, purchases
from palier.db import Database
from tests.api.helpers import (
    ApiProgram,
    assert_problem,
    footprint,
    line,
    luhn_card,
    purchase_body,
    return_body,
    spaced,
    unique,
)
from tests.services.factories import statements_run

PURCHASES = "/v1/events/purchases"
RETURNS = "/v1/events/returns"


def member_state(program: ApiProgram, member_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return program.balance(member_id), program.history(member_id)


# --- the same fact twice ---


def test_purchase_earns_once_and_a_resend_gets_the_first_answer(program: ApiProgram) -> None:
    member = program.enrol(first_name="Ann")
    body = purchase_body(
        member["id"], store_id="lyon-2", store_name="Lyon Part-Dieu", lines=[line(unit_price=1999, quantity=3)]
    )
    first = program.call("POST", PURCHASES, json=body)
    assert first.status_code == 201, first.text
    assert first.headers["content-type"] == "application/json"
    result = first.json()
    assert result["event_id"].startswith("evt_") and result["transaction_id"].startswith("txn_")
    assert (result["type"], result["status"], result["external_id"]) == ("purchase", "processed", body["order_id"])
    assert (result["member_id"], result["points"], result["pending"]) == (member["id"], 59, True)
    assert result["matures_at"] == "2026-03-16T09:00:00Z"
    assert result["reason"] == f"Purchase #{body['order_id']} at Lyon Part-Dieu"
    before = member_state(program, member["id"])
    assert before[0]["pending"] == 59 and len(before[1]) == 1

    again = program.call("POST", PURCHASES, json=body)
    assert again.status_code == 200, again.text
    assert again.json() == result
    assert "idempotent-replayed" not in again.headers
    assert member_state(program, member["id"]) == before


def test_same_order_id_with_another_body_is_409(program: ApiProgram) -> None:
    member = program.enrol(first_name="Ann")
    body = purchase_body(member["id"])
    assert program.call("POST", PURCHASES, json=body).status_code == 201
    before = member_state(program, member["id"])
    for change in (
        {"lines": [line(unit_price=5000)]},
        {"channel": "web"},
        {"member": {"member_id": member["id"]}, "tax": 1},
    ):
        conflict = program.call("POST", PURCHASES, json=body | change)
        assert_problem(conflict, 409, "event_conflict", field="order_id")
    assert member_state(program, member["id"]) == before


def test_a_resend_that_writes_the_time_another_way_is_the_same_order(program: ApiProgram) -> None:
    """A queue that re-serialises times in UTC, or a till that drops the offset, resends the same order."""
    member = program.enrol(first_name="Ann")
    body = purchase_body(member["id"], occurred_at="2026-03-02T10:00:00+01:00")
    first = program.call("POST", PURCHASES, json=body)
    assert first.status_code == 201, first.text
    before = member_state(program, member["id"])
    for written in ("2026-03-02T09:00:00Z", "2026-03-02T09:00:00+00:00", "2026-03-02T10:00:00"):  # Paris
        again = program.call("POST", PURCHASES, json=body | {"occurred_at": written})
        assert again.status_code == 200, (written, again.text)
        assert again.json() == first.json()
    assert member_state(program, member["id"]) == before
    another_time = program.call("POST", PURCHASES, json=body | {"occurred_at": "2026-03-02T10:00:00Z"})
    assert_problem(another_time, 409, "event_conflict", field="order_id")
    ret = return_body(body["order_id"], occurred_at="2026-03-02T10:00:00+01:00")
    assert program.call("POST", RETURNS, json=ret).status_code == 201
    again = program.call("POST", RETURNS, json=ret | {"occurred_at": "2026-03-02T09:00:00Z"})
    assert again.status_code == 200, again.text


def test_same_return_id_with_another_body_is_409(program: ApiProgram) -> None:
    member = program.enrol(first_name="Ann")
    order = program.purchase(member["id"], lines=[line(quantity=3)])
    body = return_body(order["external_id"])
    first = program.call("POST", RETURNS, json=body)
    assert first.status_code == 201, first.text
    assert first.json()["points"] == -10
    again = program.call("POST", RETURNS, json=body)
    assert again.status_code == 200 and again.json() == first.json()
    conflict = program.call("POST", RETURNS, json=body | {"lines": [{"sku": "SKU-1", "quantity": 2}]})
    assert_problem(conflict, 409, "event_conflict", field="return_id")
    assert program.balance(member["id"])["pending"] == 20


def test_adjustment_external_id_reused_for_another_member_is_409(program: ApiProgram) -> None:
    ann, bob = program.enrol(first_name="Ann"), program.enrol(first_name="Bob")
    body = {"points": 40, "reason": "Late delivery", "external_id": unique("ticket")}
    assert program.call("POST", f"/v1/members/{ann['id']}/adjustments", json=body).status_code == 201
    other = program.call("POST", f"/v1/members/{bob['id']}/adjustments", json=body)
    assert_problem(other, 409, "event_conflict", field="external_id")
    assert program.balance(ann["id"])["available"] == 40 and program.balance(bob["id"])["available"] == 0
    again = program.call("POST", f"/v1/members/{ann['id']}/adjustments", json=body)
    assert again.status_code == 200 and program.balance(ann["id"])["available"] == 40


# --- Idempotency-Key ---


def test_idempotency_key_replays_the_first_response(program: ApiProgram) -> None:
    member = program.enrol(first_name="Ann")
    body = purchase_body(member["id"])
    first = program.call("POST", PURCHASES, json=body, idempotency_key="till-7-0001")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    before = member_state(program, member["id"])
    replay = program.call("POST", PURCHASES, json=body, idempotency_key="till-7-0001")
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["content-type"] == "application/json"
    assert member_state(program, member["id"]) == before

    reused = program.call("POST", PURCHASES, json=purchase_body(member["id"]), idempotency_key="till-7-0001")
    assert_problem(reused, 409, "idempotency_key_reused", field="Idempotency-Key")
    elsewhere = program.call("POST", "/v1/members", json={"first_name": "Bob"}, idempotency_key="till-7-0001")
    assert_problem(elsewhere, 409, "idempotency_key_reused", field="Idempotency-Key")
    assert member_state(program, member["id"]) == before
    for bad in ("", "k" * 256):
        refused = program.call("POST", PURCHASES, json=purchase_body(member["id"]), idempotency_key=bad)
        assert_problem(refused, 422, "invalid_idempotency_key", field="Idempotency-Key")
    assert member_state(program, member["id"]) == before


def test_a_refusal_replays_as_the_same_refusal(program: ApiProgram, db: Database) -> None:
    member = program.enrol(first_name="Ann")
    body = purchase_body(member["id"], currency="USD")
    first = program.call("POST", PURCHASES, json=body, idempotency_key="usd-1")
    assert_problem(first, 422, "currency_mismatch", field="currency")
    replay = program.call("POST", PURCHASES, json=body, idempotency_key="usd-1")
    assert_problem(replay, 422, "currency_mismatch", field="currency")
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"

    # a return of an order not received yet stays refused under its key, even once the order arrives
    ret = return_body(unique("late-order"))
    missing = program.call("POST", RETURNS, json=ret, idempotency_key="ret-1")
    assert_problem(missing, 404, "order_not_found", field="order_id")
    program.purchase(member["id"], order_id=ret["order_id"])
    before = footprint(db, program.id)
    still = program.call("POST", RETURNS, json=ret, idempotency_key="ret-1")
    assert_problem(still, 404, "order_not_found", field="order_id")
    assert still.json() == missing.json()
    assert footprint(db, program.id) == before
    assert program.call("POST", RETURNS, json=ret, idempotency_key="ret-2").status_code == 201


def _together(n: int, send: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Send ``n`` requests at the same moment from ``n`` threads."""
    start = threading.Barrier(n)

    def one(_: int) -> httpx.Response:
        start.wait()
        return send()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_ten_concurrent_retries_with_one_key_have_one_effect(client: TestClient, program: ApiProgram) -> None:
    member = program.enrol(first_name="Ann")
    body = purchase_body(member["id"], lines=[line(unit_price=4200)])
    headers = program.headers(idempotency_key=unique("retry-storm"))
    responses = _together(10, lambda: client.post(PURCHASES, json=body, headers=headers))
    assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]
    assert all(r.json() == responses[0].json() for r in responses)  # JSONB may reorder keys on replay
    assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
    balance, history = member_state(program, member["id"])
    assert balance["pending"] == 42
    assert len(history) == 1 and history[0]["event_id"] == responses[0].json()["event_id"]


def test_ten_concurrent_sends_of_one_order_have_one_effect(client: TestClient, program: ApiProgram) -> None:
    member = program.enrol(first_name="Ann")
    body = purchase_body(member["id"], lines=[line(unit_price=4200)])
    headers = program.headers()
    responses = _together(10, lambda: client.post(PURCHASES, json=body, headers=headers))
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201], [r.text for r in responses]
    assert all(r.json() == responses[0].json() for r in responses)
    balance, history = member_state(program, member["id"])
    assert balance["pending"] == 42 and len(history) == 1


def test_malformed_json_is_422_invalid_json_on_the_body(program: ApiProgram) -> None:
    response = program.call(
        "POST", PURCHASES, content=b'{"order_id": oops}', headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 422, "invalid_json", field="body")


# --- bad input: refused with a stable code and field, nothing written ---


@dataclass
class Shop:
    program: ApiProgram
    db: Database
    member: dict[str, Any]
    order_id: str  # 2 x SKU-1 at 10.00


@pytest.fixture(scope="module")
def shop(module_programs: Callable[..., ApiProgram], module_db: Database) -> Shop:
    program = module_programs()
    member = program.enrol(first_name="Ann", phone="06 11 22 33 44")
    order = program.purchase(member["id"], lines=[line(quantity=2)])
    return Shop(program, module_db, member, order["external_id"])


def _purchase(shop: Shop, **change: Any) -> tuple[str, str, dict[str, Any]]:
    return "POST", PURCHASES, purchase_body(shop.member["id"]) | change


def _anonymous_body(**change: Any) -> dict[str, Any]:
    body = purchase_body("unused") | change
    del body["member"]
    return body


def _line(**change: Any) -> dict[str, Any]:
    return {"lines": [line() | change]}


def _return(shop: Shop, **change: Any) -> tuple[str, str, dict[str, Any]]:
    return "POST", RETURNS, return_body(shop.order_id) | change


CARD = luhn_card()  # made up at import, never a real one
Case = Callable[[Shop], tuple[str, str, dict[str, Any]]]
BAD_INPUT: list[tuple[str, Case, int, str, str]] = [
    ("negative quantity", lambda s: _purchase(s, **_line(quantity=-1)), 422, "out_of_range", "lines[0].quantity"),
    ("zero quantity", lambda s: _purchase(s, **_line(quantity=0)), 422, "out_of_range", "lines[0].quantity"),
    ("quantity true", lambda s: _purchase(s, **_line(quantity=True)), 422, "invalid_type", "lines[0].quantity"),
    (
        "price in major units as text",
        lambda s: _purchase(s, **_line(unit_price="10.00")),
        422,
        "invalid_type",
        "lines[0].unit_price",
    ),
    ("shipping as a decimal", lambda s: _purchase(s, shipping="4.90"), 422, "invalid_type", "shipping"),
    (
        "card number pasted as a price",
        lambda s: _purchase(s, **_line(unit_price=spaced(CARD))),
        422,
        "invalid_type",
        "lines[0].unit_price",
    ),
    (
        "price with a fraction",
        lambda s: _purchase(s, **_line(unit_price=1000.5)),
        422,
        "invalid_type",
        "lines[0].unit_price",
    ),
    ("refund amount true", lambda s: _return(s, amount=True), 422, "invalid_type", "amount"),
    # euros sent as a JSON number: 10.00 would be read as 10 cents, a hundred times less than meant
    (
        "price in euros as a number",
        lambda s: _purchase(s, **_line(unit_price=10.00)),
        422,
        "invalid_type",
        "lines[0].unit_price",
    ),
    (
        "price with a zero fraction",
        lambda s: _purchase(s, **_line(unit_price=1000.0)),
        422,
        "invalid_type",
        "lines[0].unit_price",
    ),
    (
        "quantity with a zero fraction",
        lambda s: _purchase(s, **_line(quantity=2.0)),
        422,
        "invalid_type",
        "lines[0].quantity",
    ),
    ("shipping with a zero fraction", lambda s: _purchase(s, shipping=5.0), 422, "invalid_type", "shipping"),
    ("refund amount with a zero fraction", lambda s: _return(s, amount=300.0), 422, "invalid_type", "amount"),
    (
        "unit price above max",
        lambda s: _purchase(s, **_line(unit_price=10**11 + 1)),
        422,
        "out_of_range",
        "lines[0].unit_price",
    ),
    ("negative shipping", lambda s: _purchase(s, shipping=-5), 422, "out_of_range", "shipping"),
    ("points are not writable", lambda s: _purchase(s, points=1000), 422, "unknown_field", "points"),
    ("unknown line field", lambda s: _purchase(s, **_line(colour="red")), 422, "unknown_field", "lines[0].colour"),
    (
        "unknown member field",
        lambda s: _purchase(s, member={"member_id": s.member["id"], "tier": "gold"}),
        422,
        "unknown_field",
        "member.tier",
    ),
    ("no lines", lambda s: _purchase(s, lines=[]), 422, "invalid_length", "lines"),
    ("empty member object", lambda s: _purchase(s, member={}), 422, "invalid_value", "member"),
    (
        "anonymous purchase in another currency",
        lambda s: ("POST", PURCHASES, _anonymous_body(currency="USD")),
        422,
        "currency_mismatch",
        "currency",
    ),
    (
        "anonymous purchase with a card number as order id",
        lambda s: ("POST", PURCHASES, _anonymous_body(order_id=CARD)),
        422,
        "card_number_in_text",
        "order_id",
    ),
    ("missing currency", lambda s: _purchase(s, currency=None), 422, "missing_field", "currency"),
    ("currency mismatch", lambda s: _purchase(s, currency="USD"), 422, "currency_mismatch", "currency"),
    (
        "future occurred_at",
        lambda s: _purchase(s, occurred_at="2026-03-03T09:00:00Z"),
        422,
        "occurred_in_future",
        "occurred_at",
    ),
    (
        "occurred_at in year 1 with an offset (no such moment in UTC)",
        lambda s: _purchase(s, occurred_at="0001-01-01T00:00:00+00:01"),
        422,
        "date_out_of_range",
        "occurred_at",
    ),
    (
        "occurred_at before 1970",
        lambda s: _purchase(s, occurred_at="1969-12-31T23:59:59Z"),
        422,
        "date_out_of_range",
        "occurred_at",
    ),
    (
        "occurred_at in the year 3000",
        lambda s: _purchase(s, occurred_at="3000-01-01T00:00:00Z"),
        422,
        "date_out_of_range",
        "occurred_at",
    ),
    (
        "return dated in year 9999",
        lambda s: (
            "POST",
            "/v1/events/returns",
            {"return_id": "R-9999", "order_id": "O-1", "occurred_at": "9999-12-31T23:59:59-01:00", "amount": 100},
        ),
        422,
        "date_out_of_range",
        "occurred_at",
    ),
    # a timestamp is no date: 0 would date a purchase 1970, and 13 digits read as milliseconds
    ("occurred_at as zero", lambda s: _purchase(s, occurred_at=0), 422, "invalid_type", "occurred_at"),
    (
        "occurred_at in milliseconds",
        lambda s: _purchase(s, occurred_at=1764900000000),
        422,
        "invalid_type",
        "occurred_at",
    ),
    ("occurred_at as digits", lambda s: _purchase(s, occurred_at="1764900000"), 422, "invalid_type", "occurred_at"),
    ("return occurred_at as seconds", lambda s: _return(s, occurred_at=1764900000), 422, "invalid_type", "occurred_at"),
    (
        "naive occurred_at garbage",
        lambda s: _purchase(s, occurred_at="yesterday"),
        422,
        "invalid_type",
        "occurred_at",
    ),
    (
        "malformed phone in member",
        lambda s: _purchase(s, member={"kind": "phone", "value": "06 12"}),
        422,
        "invalid_phone",
        "member.value",
    ),
    (
        "malformed phone in lookup",
        lambda s: ("POST", "/v1/members/lookup", {"kind": "phone", "value": "+33 6"}),
        422,
        "invalid_phone",
        "value",
    ),
    (
        "unknown member by phone",
        lambda s: _purchase(s, member={"kind": "phone", "value": "06 99 98 97 96"}),
        404,
        "member_not_found",
        "member.value",
    ),
    (
        "unknown member id",
        lambda s: _purchase(s, member={"member_id": "mem_00000000000000000000000000"}),
        404,
        "member_not_found",
        "member.member_id",
    ),
    (
        "malformed member id",
        lambda s: _purchase(s, member={"member_id": "ann"}),
        422,
        "invalid_format",
        "member.member_id",
    ),
    (
        "card number in store_name",
        lambda s: _purchase(s, store_name=f"Till {spaced(CARD)}"),
        422,
        "card_number_in_text",
        "store_name",
    ),
    ("card number in order_id", lambda s: _purchase(s, order_id=CARD), 422, "card_number_in_text", "order_id"),
    (
        "card number in a line name",
        lambda s: _purchase(s, **_line(name=CARD)),
        422,
        "card_number_in_text",
        "lines[0].name",
    ),
    (
        "card number in first_name",
        lambda s: ("POST", "/v1/members", {"first_name": spaced(CARD)}),
        422,
        "card_number_in_text",
        "first_name",
    ),
    (
        "discount larger than line",
        lambda s: _purchase(s, **_line(unit_price=500, quantity=2, discount=1001)),
        422,
        "discount_exceeds_line",
        "lines[0].discount",
    ),
    ("return of nothing", lambda s: _return(s, lines=None), 422, "lines_or_amount_required", "lines"),
    (
        "return larger than bought",
        lambda s: _return(s, lines=[{"sku": "SKU-1", "quantity": 3}]),
        422,
        "return_exceeds_purchase",
        "lines[0].quantity",
    ),
    (
        "refund larger than paid",
        lambda s: _return(s, lines=None, amount=2001),
        422,
        "return_exceeds_purchase",
        "amount",
    ),
    ("card number as returned order", lambda s: _return(s, order_id=CARD), 422, "card_number_in_text", "order_id"),
    ("return of an unknown order", lambda s: _return(s, order_id="no-such-order"), 404, "order_not_found", "order_id"),
    (
        "return of an unknown sku",
        lambda s: _return(s, lines=[{"sku": "SKU-404", "quantity": 1}]),
        422,
        "line_not_in_order",
        "lines[0].sku",
    ),
    (
        "return before its purchase",
        lambda s: _return(s, occurred_at="2026-03-01T09:00:00Z"),
        422,
        "return_before_purchase",
        "occurred_at",
    ),
    (
        "return with lines and amount",
        lambda s: _return(s, amount=100),
        422,
        "amount_not_applicable",
        "amount",
    ),
    (
        "card number in a returned sku",
        lambda s: _return(s, lines=[{"sku": spaced(CARD), "quantity": 1}]),
        422,
        "card_number_in_text",
        "lines[0].sku",
    ),
    (
        "card number dotted into a line name",
        lambda s: _purchase(s, **_line(name=f"gift {spaced(CARD).replace(' ', '.')}")),
        422,
        "card_number_in_text",
        "lines[0].name",
    ),
    (
        "card number in a url-encoded reason",
        lambda s: _return(s, reason=spaced(CARD).replace(" ", "%20")),
        422,
        "card_number_in_text",
        "reason",
    ),
    (
        "card number as a customer id",
        lambda s: _purchase(s, member={"kind": "external", "value": f"CUST-{CARD}"}),
        422,
        "card_number_in_text",
        "member.value",
    ),
    (
        "card number in an e-mail address",
        lambda s: ("POST", "/v1/members", {"email": f"{CARD}@example.com"}),
        422,
        "card_number_in_text",
        "email",
    ),
    (
        "card number in an adjustment external_id",
        lambda s: (
            "POST",
            f"/v1/members/{s.member['id']}/adjustments",
            {"points": 5, "reason": "Goodwill", "external_id": CARD},
        ),
        422,
        "card_number_in_text",
        "external_id",
    ),
]


@pytest.mark.parametrize(
    ("name", "case", "status", "code", "field"),
    BAD_INPUT,
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_is_refused_and_writes_nothing(
    shop: Shop, name: str, case: Case, status: int, code: str, field: str
) -> None:
    method, path, body = case(shop)
    body = {k: v for k, v in body.items() if v is not None}
    before = footprint(shop.db, shop.program.id), member_state(shop.program, shop.member["id"])
    response = shop.program.call(method, path, json=body, idempotency_key=unique("bad"))
    problem = assert_problem(response, status, code, field=field)
    assert CARD not in response.text and spaced(CARD) not in response.text
    if status == 422 and "errors" in problem:
        assert problem["errors"][0] == {"field": field, "code": code, "message": problem["detail"]}
    kept = footprint(shop.db, shop.program.id)
    assert kept["idempotency_keys"] in (before[0]["idempotency_keys"], before[0]["idempotency_keys"] + 1)
    kept["idempotency_keys"] = before[0]["idempotency_keys"]  # a kept refusal is the one row allowed
    assert (kept, member_state(shop.program, shop.member["id"])) == before


# --- purchases by shoppers who are not members ---


def test_an_anonymous_purchase_is_kept_earns_nothing_and_is_counted_once(program: ApiProgram, db: Database) -> None:
    body = _anonymous_body(lines=[line(unit_price=2500, quantity=2)], shipping=490)
    before = footprint(db, program.id)
    first = program.call("POST", PURCHASES, json=body)
    assert first.status_code == 201, first.text
    result = first.json()
    assert (result["status"], result["member_id"], result["points"]) == ("anonymous", None, 0)
    assert result["transaction_id"] is None and result["pending"] is False and result["awards"] == []
    assert result["reason"] == f"Purchase #{body['order_id']} in store"
    after = footprint(db, program.id)
    # the order is stored (for basket size and the members vs non-members figures); the ledger is untouched
    assert after["events"] == before["events"] + 1 and after["purchases"] == before["purchases"] + 1
    for table in ("ledger_transactions", "postings", "lots", "allocations", "members"):
        assert after[table] == before[table], table
    with db.read() as conn:
        stored = conn.execute(
            select(purchases.c.member_id, purchases.c.total, purchases.c.points, events.c.status)
            .join(events, events.c.id == purchases.c.event_id)
            .where(purchases.c.program_id == program.id, purchases.c.order_id == body["order_id"])
        ).one()
    assert tuple(stored) == (None, 5490, 0, "anonymous")

    again = program.call("POST", PURCHASES, json=body)
    assert again.status_code == 200 and again.json() == result
    assert footprint(db, program.id) == after
    changed = program.call("POST", PURCHASES, json=body | {"shipping": 0})
    assert_problem(changed, 409, "event_conflict", field="order_id")


def test_an_anonymous_order_can_be_returned_without_touching_any_balance(program: ApiProgram, db: Database) -> None:
    body = _anonymous_body(lines=[line(sku="BREAD", unit_price=400, quantity=3)])
    assert program.call("POST", PURCHASES, json=body).status_code == 201
    before = footprint(db, program.id)
    returned = program.call(
        "POST", RETURNS, json=return_body(body["order_id"], lines=[{"sku": "BREAD", "quantity": 1}])
    )
    assert returned.status_code == 201, returned.text
    answer = returned.json()
    assert (answer["status"], answer["points"], answer["member_id"]) == ("anonymous", 0, None)
    after = footprint(db, program.id)
    assert after["ledger_transactions"] == before["ledger_transactions"] and after["events"] == before["events"] + 1
    with db.read() as conn:
        refunded = conn.execute(
            select(purchases.c.refunded).where(
                purchases.c.program_id == program.id, purchases.c.order_id == body["order_id"]
            )
        ).scalar_one()
    assert refunded == 400


def test_a_member_purchase_next_to_anonymous_ones_still_earns(program: ApiProgram) -> None:
    member = program.enrol(first_name="Bea")
    assert program.call("POST", PURCHASES, json=_anonymous_body()).status_code == 201
    earned = program.purchase(member["id"])
    assert (earned["status"], earned["points"]) == ("processed", 10)
    assert program.balance(member["id"])["pending"] == 10


def test_a_keyed_purchase_does_not_look_its_key_up_first_and_a_resend_gets_the_kept_answer(
    db: Database, program: ApiProgram
) -> None:
    """Most keys are new: the command runs at once and keeps its answer with its own writes (on PostgreSQL
    the key and program read, the purchase's six statements and the kept answer). The same key again fails
    that insert on the key's unique index, the command is rolled back and the kept answer is sent."""
    member = program.enrol(first_name="Ann")
    body, key = purchase_body(member["id"]), unique("till-7")
    with statements_run(db) as first:
        sent = program.call("POST", PURCHASES, json=body, idempotency_key=key)
    assert sent.status_code == 201, sent.text
    assert not any("FROM idempotency_keys" in statement for statement in first), first
    if db.is_postgres:
        assert len(first) == 8, first
    again = program.call("POST", PURCHASES, json=body, idempotency_key=key)
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
    assert again.json() == sent.json()
    assert program.balance(member["id"])["pending"] == sent.json()["points"]  # earned once


def test_a_nul_character_anywhere_in_a_body_is_refused_at_its_field(program: ApiProgram) -> None:
    """PostgreSQL cannot store a NUL in text: refused at the field, on both engines, never a 500."""
    member = program.enrol(first_name="Ann")
    for field, body in (
        ("lines[0].sku", purchase_body(member["id"], lines=[line(sku="A\u0000B")])),
        ("store_id", purchase_body(member["id"], store_id="S\u0000")),
        ("order_id", purchase_body(member["id"]) | {"order_id": "O-\u00001"}),
    ):
        assert_problem(program.call("POST", PURCHASES, json=body), 422, "nul_character", field=field)
    named = program.call("PATCH", f"/v1/members/{member['id']}", json={"first_name": "Ann\u0000"})
    assert_problem(named, 422, "nul_character", field="first_name")
    assert program.balance(member["id"])["pending"] == 0  # nothing was written
    for reason in ("remise 100%00 bis", "C:\\u0000x"):  # what only looks like one is no NUL
        kept = program.call("POST", f"/v1/members/{member['id']}/adjustments", json={"points": 1, "reason": reason})
        assert kept.status_code == 201, kept.text
    for path in ("/console/sign-in", f"/p/{program.id}/sign-in"):  # forms too: %00 in a field, refused with a page
        form = program.client.post(path, data={"email": "ann\u0000@example.com", "password": "x", "csrf": "x"})
        assert form.status_code == 422 and form.headers["content-type"].startswith("text/html"), form.text
        assert "(NUL)" in form.text


def test_returns_that_give_points_back_to_each_others_payers_never_deadlock(
    client: TestClient, db: Database, program: ApiProgram
) -> None:
    """Ann paid part of Bob's order with her points and Bob part of Ann's; both orders come back in parts at
    once. Each return locks its buyer and its payer: in one order, so that PostgreSQL never has to roll one
    back as a deadlock's victim (under enough of them a till got a 500 once the retries ran out)."""
    ann, bob = program.enrol(first_name="Ann")["id"], program.enrol(first_name="Bob")["id"]
    orders = {}
    for payer, buyer in ((ann, bob), (bob, ann)):
        program.adjust(payer, 2000)
        order_id = unique("order")
        payment = {"kind": "points", "order_id": order_id, "order_total": 4000, "points": 2000}
        assert program.call("POST", f"/v1/members/{payer}/payments", json=payment).status_code == 201
        program.purchase(buyer, order_id=order_id, lines=[line(quantity=4, unit_price=1000)])
        orders[buyer] = order_id
    deadlocks: list[str] = []

    def note(context: Any) -> None:
        if getattr(context.original_exception, "sqlstate", None) == "40P01":
            deadlocks.append(str(context.original_exception))

    returned = [{"sku": "SKU-1", "quantity": 1}]
    sent = iter([return_body(orders[buyer], lines=returned) for _ in range(4) for buyer in (ann, bob)])
    lock = threading.Lock()

    def one() -> httpx.Response:
        with lock:
            body = next(sent)
        return client.post(RETURNS, json=body, headers=program.headers())

    sqlalchemy_event.listen(db.engine, "handle_error", note)
    try:
        responses = _together(8, one)
    finally:
        sqlalchemy_event.remove(db.engine, "handle_error", note)
    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    assert deadlocks == []
    for member in (ann, bob):  # each order fully returned: its 20 points taken, the 2000 paid given back
        assert (program.balance(member)["available"], program.balance(member)["pending"]) == (2000, 0)


def test_a_credit_that_repays_owed_points_says_so_as_a_purchase_does(new_program: Callable[..., ApiProgram]) -> None:
    """Ann spent the points of an order she then returned: she owes 100. A goodwill credit of 60 repays 60 of
    it, and the answer says so (``debt_repaid``) rather than leaving the desk to wonder where the 60 went."""
    program = new_program(return_window_days=0)
    ann = program.enrol(first_name="Ann")["id"]
    order = program.purchase(ann, lines=[line(unit_price=10_000)])
    program.adjust(ann, -100, reason="Spent at the till")
    taken = program.call("POST", RETURNS, json=return_body(order["external_id"]))
    assert taken.status_code == 201 and taken.json()["details"]["to_debt"] == 100, taken.text
    credited = program.adjust(ann, 60)
    assert (credited["points"], credited["details"]) == (60, {"debt_repaid": 60})
    balance = program.balance(ann)
    assert (balance["available"], balance["debt"]) == (0, 40)


def test_a_return_that_says_no_shipping_was_refunded_is_taken(program: ApiProgram) -> None:
    """A shop that always sends ``shipping`` sends 0 when none comes back: the return of the items is recorded
    (and is the same fact as one that leaves shipping out); 0 alone refunds nothing and is refused as such."""
    member = program.enrol(first_name="Cid")
    body = purchase_body(member["id"], lines=[line(unit_price=1000, quantity=2)], shipping=500)
    assert program.call("POST", PURCHASES, json=body).status_code == 201
    sent = return_body(body["order_id"], lines=[{"sku": "SKU-1", "quantity": 1}], shipping=0)
    returned = program.call("POST", RETURNS, json=sent)
    assert returned.status_code == 201, returned.text
    assert (returned.json()["points"], returned.json()["reason"]) == (
        -10,
        f"Returned 1 item from order #{body['order_id']}",
    )
    resent = program.call("POST", RETURNS, json={k: v for k, v in sent.items() if k != "shipping"})
    assert resent.status_code == 200 and resent.json() == returned.json()
    alone = return_body(body["order_id"], shipping=0)
    del alone["lines"]
    assert_problem(program.call("POST", RETURNS, json=alone), 422, "lines_or_amount_required", "lines")
