"""Segments over HTTP: what a merchant types that no member could ever match is refused, not stored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import ApiProgram, assert_problem, purchase_body


def segment(code: str, **condition: Any) -> dict[str, Any]:
    return {"code": code, "name": {"fr": code, "en": code}, "conditions": [condition]}


@pytest.mark.parametrize(
    ("condition", "code"),
    [
        ({"field": "total_spend", "op": ">=", "value": 10**30}, "out_of_range"),
        ({"field": "order_count", "op": "in", "value": [1, -(10**13)]}, "out_of_range"),
        ({"field": "language", "op": "=", "value": "x" * 101}, "invalid_length"),
        ({"field": "order_count", "op": "in", "value": list(range(101))}, "too_many_values"),
        # a share is a percentage of orders, an RFM score 1 to 5 (their sum 3 to 15), 0 without orders
        ({"field": "web_share", "op": ">=", "value": 150}, "out_of_range"),
        ({"field": "store_share", "op": "in", "value": [50, -1]}, "out_of_range"),
        ({"field": "rfm_monetary", "op": "=", "value": 6}, "out_of_range"),
        ({"field": "rfm_recency", "op": ">=", "value": 10}, "out_of_range"),
        ({"field": "rfm_score", "op": ">", "value": 16}, "out_of_range"),
    ],
)
def test_a_value_no_member_can_reach_is_refused_and_nothing_is_stored(
    program: ApiProgram, condition: dict[str, Any], code: str
) -> None:
    refused = program.call("POST", "/v1/segments", json=segment("huge", **condition))
    said = assert_problem(refused, 422, code, "conditions[0].value")
    assert not said["detail"].startswith(code) and not said["title"].startswith(code), said  # code is its own field
    assert program.call("GET", "/v1/segments").json() == []


def test_the_largest_values_allowed_still_refresh(program: ApiProgram) -> None:
    member = program.call("POST", "/v1/members", json={"email": "big@example.com"}).json()
    program.call("POST", "/v1/events/purchases", json=purchase_body(member["id"]))
    for code, value in (("rich", 10**12), ("anyone", -(10**12))):
        made = program.call("POST", "/v1/segments", json=segment(code, field="total_spend", op=">=", value=value))
        assert made.status_code == 201, made.text
        refreshed = program.call("POST", f"/v1/segments/{code}/refresh")
        assert refreshed.status_code == 200, refreshed.text
    counts = {s["code"]: s["members_count"] for s in program.call("GET", "/v1/segments").json()}
    assert counts == {"rich": 0, "anyone": 1}


@pytest.mark.parametrize("field", ["days_since_last_purchase", "days_since_enrolment"])
@pytest.mark.parametrize("op", [">=", ">", "<=", "<", "=", "!=", "in", "not_in"])
def test_a_day_count_past_any_calendar_refreshes_instead_of_crashing(program: ApiProgram, field: str, op: str) -> None:
    """±10¹² days is allowed like any number, but no date is that far from today: the refresh (and the nightly
    job, which refreshes every segment of the program at once) must still run, judging it as "never"."""
    buyer = program.call("POST", "/v1/members", json={"email": "buyer@example.com"}).json()
    program.call("POST", "/v1/members", json={"email": "idle@example.com"})
    bought = program.call("POST", "/v1/events/purchases", json=purchase_body(buyer["id"]))
    assert bought.status_code == 201, bought.text
    for code, value in (("far", 10**12), ("ahead", -(10**12))):
        condition = {"field": field, "op": op, "value": [value] if op in ("in", "not_in") else value}
        made = program.call("POST", "/v1/segments", json=segment(code, **condition))
        assert made.status_code == 201, made.text
    for code in ("far", "ahead"):
        refreshed = program.call("POST", f"/v1/segments/{code}/refresh")
        assert refreshed.status_code == 200, refreshed.text
    counts = {s["code"]: s["members_count"] for s in program.call("GET", "/v1/segments").json()}
    # who happened that long ago, or will in that many days: nobody; "never" (no purchase) is longer ago than any
    never = 1 if field == "days_since_last_purchase" else 0
    far = {">=": never, ">": never, "<=": 2 - never, "<": 2 - never, "=": 0, "!=": 2, "in": 0, "not_in": 2}[op]
    ahead = {">=": 2, ">": 2, "<=": 0, "<": 0, "=": 0, "!=": 2, "in": 0, "not_in": 2}[op]
    assert counts == {"far": far, "ahead": ahead}, counts


@pytest.mark.parametrize(
    ("condition", "code", "field"),
    [
        ({"field": "total_spend", "op": ">=", "value": "5000"}, "number_required", "conditions[0].value"),
        ({"field": "language", "op": "=", "value": 3}, "text_required", "conditions[0].value"),
        ({"field": "order_count", "op": "in", "value": 3}, "list_required", "conditions[0].value"),
        ({"field": "order_count", "op": "=", "value": [3]}, "single_value_required", "conditions[0].value"),
        ({"field": "tier", "op": ">=", "value": "gold"}, "op_not_applicable", "conditions[0].op"),
        # values no member can have: the segment would silently stay empty
        ({"field": "birthday_month", "op": "=", "value": 13}, "invalid_choice", "conditions[0].value"),
        ({"field": "language", "op": "in", "value": ["fr", "de"]}, "invalid_choice", "conditions[0].value"),
        ({"field": "enrolment_channel", "op": "=", "value": "shop"}, "invalid_choice", "conditions[0].value"),
    ],
)
def test_a_condition_that_does_not_fit_names_its_part_at_fault(
    program: ApiProgram, condition: dict[str, Any], code: str, field: str
) -> None:
    assert_problem(program.call("POST", "/v1/segments", json=segment("wrong", **condition)), 422, code, field)


def test_a_tier_the_program_does_not_have_is_refused_rather_than_leaving_the_segment_empty(program: ApiProgram) -> None:
    gold = {"code": "gold", "name": {"fr": "Or", "en": "Gold"}, "threshold": 0}
    assert program.call("PUT", "/v1/tiers", json={"metric": "spend", "tiers": [gold]}).status_code == 200
    for value in ("Gold", ["gold", "silver"]):
        op = "in" if isinstance(value, list) else "="
        refused = program.call("POST", "/v1/segments", json=segment("golden", field="tier", op=op, value=value))
        assert "gold" in assert_problem(refused, 422, "invalid_choice", "conditions[0].value")["detail"]
    assert program.call("GET", "/v1/segments").json() == []
    made = program.call("POST", "/v1/segments", json=segment("golden", field="tier", op="=", value="gold"))
    assert made.status_code == 201, made.text
    changed = program.call("PUT", "/v1/segments/golden", json=segment("golden", field="tier", op="!=", value="gld"))
    assert_problem(changed, 422, "invalid_choice", "conditions[0].value")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (1.5, "without a decimal point"),
        (True, "not a number"),
        ({"x": 1}, "a whole number or text"),
        ([1, "2"], "not both"),
    ],
)
def test_a_value_of_the_wrong_kind_is_one_error_on_its_field(program: ApiProgram, value: Any, says: str) -> None:
    """Not four: one per shape a value may take, named after pydantic's inner types ("value.constrained-str")."""
    op = "in" if isinstance(value, list) else ">="
    refused = program.call("POST", "/v1/segments", json=segment("odd", field="total_spend", op=op, value=value))
    said = assert_problem(refused, 422, "invalid_type", "conditions[0].value")
    assert [e["field"] for e in said["errors"]] == ["conditions[0].value"], said
    assert says in said["detail"]
