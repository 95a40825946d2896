"""Members through the API: enrol, read, update, find by any identity, link, unlink, merge, balance, history."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from palier.api.app import create_app
from palier.clock import FrozenClock
from palier.config import Settings, public_url
from palier.db import Database
from palier.demo import people
from palier.errors import InvalidInput
from tests.api.conftest import CARD_KEY, program_maker
from tests.api.helpers import ANY, ApiProgram, assert_problem, line, luhn_card, purchase_body, spaced, unique


def email() -> str:
    return f"{unique('ann')}@example.com"


def phone() -> str:
    """A fresh French mobile number, national form with spaces: ``06 12 34 56 78``."""
    digits = unique("x").split("-")[2].zfill(6)[-6:]
    return f"06 12 {digits[:2]} {digits[2:4]} {digits[4:]}"


def e164(national: str) -> str:
    return "+33" + national.replace(" ", "")[1:]


def identity(member: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(i for i in member["identities"] if i["kind"] == kind)


def lookup(program: ApiProgram, kind: str, value: str) -> Any:
    return program.call("POST", "/v1/members/lookup", json={"kind": kind, "value": value})


# --- enrol, read, update ---


def test_enrol_normalises_every_identity_and_never_shows_a_card_number(program: ApiProgram) -> None:
    card = luhn_card()
    mail, tel, loyalty = email(), phone(), unique("ab").replace("-", "")
    response = program.call(
        "POST",
        "/v1/members",
        json={
            "first_name": "  Ann ",
            "last_name": "Martin",
            "email": mail.upper(),
            "phone": tel,
            "birthday": "1990-05-17",
            "language": "en",
            "consents": {"email_marketing": True},
            "channel": "store",
            "identities": [
                {"kind": "card", "value": f" {loyalty.lower()} "},
                {"kind": "external", "value": "crm-42"},
                {"kind": "payment_card", "value": spaced(card)},
            ],
        },
    )
    assert response.status_code == 201, response.text
    member = response.json()
    assert member["id"].startswith("mem_") and member["status"] == "active"
    assert member["merged_into_id"] is None
    assert (member["first_name"], member["last_name"]) == ("Ann", "Martin")
    assert member["email"] == mail and member["phone"] == e164(tel)
    assert member["birthday"] == "1990-05-17" and member["language"] == "en"
    assert member["consents"] == {"email_marketing": True, "sms_marketing": False, "push": False, "profiling": False}
    assert member["enrolment_channel"] == "store" and member["enrolled_at"] == "2026-03-02T09:00:00Z"
    shown = {i["kind"]: i["value"] for i in member["identities"]}
    assert shown == {
        "email": mail,
        "phone": e164(tel),
        "card": loyalty.upper(),
        "external": "crm-42",
        "payment_card": f"visa •••• {card[-4:]}",
    }
    assert card not in response.text and card[:12] not in response.text
    read = program.call("GET", f"/v1/members/{member['id']}")
    assert read.status_code == 200 and read.json() == member


def test_enrol_refuses_what_a_member_cannot_set(program: ApiProgram) -> None:
    for field, value in (("status", "merged"), ("id", "mem_x"), ("balance", 1000), ("available", 5)):
        response = program.call("POST", "/v1/members", json={"first_name": "Ann", field: value})
        assert_problem(response, 422, "unknown_field", field=field)
    card = luhn_card()
    for name in (card, f"Ann {spaced(card)}", f"Ann {card[:4]}-{card[4:8]}-{card[8:12]}-{card[12:]}"):
        response = program.call("POST", "/v1/members", json={"first_name": name})
        assert_problem(response, 422, "card_number_in_text", field="first_name")
        assert card not in response.text
    assert_problem(program.call("POST", "/v1/members", json={"phone": "12"}), 422, "invalid_phone", field="phone")
    for birthday, code in (("2031-04-02", "birthday_in_future"), ("1890-04-02", "invalid_birthday")):
        response = program.call("POST", "/v1/members", json={"first_name": "Ann", "birthday": birthday})
        assert_problem(response, 422, code, field="birthday")
    assert_problem(program.call("POST", "/v1/members", json={"email": "not-mail"}), 422, "invalid_email", field="email")
    bad_card = program.call(
        "POST", "/v1/members", json={"identities": [{"kind": "payment_card", "value": "4970 0000 0000 0001"}]}
    )
    assert_problem(bad_card, 422, "invalid_payment_card", field="identities[0].value")
    taken = program.enrol(email=email())
    again = program.call("POST", "/v1/members", json={"email": taken["email"].upper()})
    assert_problem(again, 409, "identity_taken", field="email")


def test_update_changes_the_profile_and_the_identities_it_is_found_by(program: ApiProgram) -> None:
    old_mail, tel = email(), phone()
    member = program.enrol(first_name="Ann", email=old_mail, phone=tel)
    new_mail = email()
    response = program.call(
        "PATCH",
        f"/v1/members/{member['id']}",
        json={"first_name": "Anne", "email": new_mail, "phone": None, "consents": {"sms_marketing": True}},
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["first_name"] == "Anne" and updated["last_name"] is None
    assert updated["email"] == new_mail and updated["phone"] is None
    assert updated["consents"]["sms_marketing"] is True
    assert {i["kind"] for i in updated["identities"]} == {"email"}
    assert lookup(program, "email", new_mail).json()["id"] == member["id"]
    assert_problem(lookup(program, "email", old_mail), 404, "member_not_found", field="value")
    assert_problem(lookup(program, "phone", tel), 404, "member_not_found", field="value")
    assert program.call("GET", f"/v1/members/{member['id']}").json() == updated
    for field, value in (("status", "merged"), ("enrolled_at", "2020-01-01T00:00:00Z"), ("pending", 3)):
        refused = program.call("PATCH", f"/v1/members/{member['id']}", json={field: value})
        assert_problem(refused, 422, "unknown_field", field=field)
    card = luhn_card()
    refused = program.call("PATCH", f"/v1/members/{member['id']}", json={"last_name": spaced(card)})
    assert_problem(refused, 422, "card_number_in_text", field="last_name")
    unknown = program.call("PATCH", "/v1/members/mem_00000000000000000000000000", json={"first_name": "X"})
    assert_problem(unknown, 404, "member_not_found", field="member_id")
    assert program.call("GET", f"/v1/members/{member['id']}").json() == updated


# --- lookup by every kind of identity ---


def test_lookup_finds_the_member_by_each_identity_however_it_is_typed(program: ApiProgram) -> None:
    card, mail, tel = luhn_card(), email(), phone()
    loyalty = unique("LC").replace("-", "")
    member = program.enrol(
        email=mail,
        phone=tel,
        identities=[
            {"kind": "card", "value": loyalty},
            {"kind": "external", "value": "shop-customer-77"},
            {"kind": "payment_card", "value": card},
        ],
    )
    other = program.enrol(email=email())
    typed = [
        ("email", mail),
        ("email", f"  {mail.upper()} "),
        ("phone", tel),
        ("phone", e164(tel)),
        ("phone", "+33 " + tel.replace(" ", "")[1:]),
        ("card", loyalty.lower()),
        ("card", " ".join(loyalty)),
        ("external", "shop-customer-77"),
        ("payment_card", card),
        ("payment_card", spaced(card)),
        ("payment_card", f"{card[:4]}-{card[4:8]}-{card[8:12]}-{card[12:]}"),
    ]
    for kind, value in typed:
        response = lookup(program, kind, value)
        assert response.status_code == 200, (kind, value, response.text)
        assert response.json()["id"] == member["id"]
        assert card not in response.text
    assert lookup(program, "email", other["email"]).json()["id"] == other["id"]
    assert_problem(lookup(program, "external", "shop-customer-78"), 404, "member_not_found", field="value")
    assert_problem(lookup(program, "payment_card", luhn_card()), 404, "member_not_found", field="value")


@pytest.mark.parametrize(
    ("kind", "value", "code"),
    [
        ("phone", "+33 6 99", "invalid_phone"),
        ("phone", "call me maybe", "invalid_phone"),
        ("email", "ann@", "invalid_email"),
        ("card", "a!", "invalid_loyalty_card"),
        ("card", people.test_card_number(random.Random(3)), "payment_card_as_loyalty_card"),
        ("payment_card", "4970 1234", "invalid_payment_card"),
        ("payment_card", "4970 0000 0000 0001", "invalid_payment_card"),
    ],
)
def test_lookup_refuses_malformed_identities(program: ApiProgram, kind: str, value: str, code: str) -> None:
    response = lookup(program, kind, value)
    body = assert_problem(response, 422, code, field="value")
    assert value not in body["detail"]


@pytest.mark.parametrize(
    "prefix",
    ["6212", "6250", "5018", "5612", "5893", "6304", "6759", "6762", "2200", "2204"],
    ids=["unionpay", "unionpay-625", "maestro-5018", "maestro-56", "maestro-5893", "maestro-6304", "maestro-6759",
         "maestro-676", "mir-2200", "mir-2204"],
)  # fmt: skip
def test_a_unionpay_maestro_or_mir_card_is_never_stored_as_a_loyalty_card(program: ApiProgram, prefix: str) -> None:
    """Bank cards of every big network, not only Visa, Mastercard, Amex, Discover, JCB and Diners: a till that
    scans one into the loyalty card field must not store its number (and palier scan-cards must not set it aside
    as one of the program's own numbers)."""
    card = luhn_card(prefix)
    refused = program.call(
        "POST", "/v1/members", json={"first_name": "Zed", "identities": [{"kind": "card", "value": card}]}
    )
    body = assert_problem(refused, 422, "payment_card_as_loyalty_card", field="identities[0].value")
    assert card not in str(body)
    own = luhn_card("2900")  # the program's own numbers lie outside those ranges, even Luhn-valid
    kept = program.enrol(first_name="Yan", identities=[{"kind": "card", "value": own}])
    assert own in [identity["value"] for identity in kept["identities"]]


def test_lookup_refuses_unknown_kinds_and_fields(program: ApiProgram) -> None:
    assert_problem(lookup(program, "iban", "FR76"), 422, "invalid_choice", field="kind")
    extra = program.call("POST", "/v1/members/lookup", json={"kind": "email", "value": "a@b.fr", "x": 1})
    assert_problem(extra, 422, "unknown_field", field="x")
    assert_problem(
        program.call("POST", "/v1/members/lookup", json={"kind": "email"}), 422, "missing_field", field="value"
    )


# --- identities: link and unlink ---


def test_link_and_unlink_an_identity(program: ApiProgram) -> None:
    member = program.enrol(first_name="Ann", email=email())
    other = program.enrol(first_name="Bob", email=email())
    mail = email()
    linked = program.call("POST", f"/v1/members/{member['id']}/identities", json={"kind": "email", "value": mail})
    assert linked.status_code == 200, linked.text
    assert mail in [i["value"] for i in linked.json()["identities"] if i["kind"] == "email"]
    assert lookup(program, "email", mail).json()["id"] == member["id"]

    twice = program.call("POST", f"/v1/members/{member['id']}/identities", json={"kind": "email", "value": mail})
    assert twice.status_code == 200
    assert len(twice.json()["identities"]) == len(linked.json()["identities"])
    stolen = program.call("POST", f"/v1/members/{other['id']}/identities", json={"kind": "email", "value": mail})
    assert_problem(stolen, 409, "identity_taken", field="value")
    bad = program.call("POST", f"/v1/members/{member['id']}/identities", json={"kind": "phone", "value": "12"})
    assert_problem(bad, 422, "invalid_phone", field="value")

    identity_id = next(i["id"] for i in linked.json()["identities"] if i["value"] == mail)
    not_theirs = program.call("DELETE", f"/v1/members/{other['id']}/identities/{identity_id}")
    assert_problem(not_theirs, 404, "identity_not_found", field="identity_id")
    unlinked = program.call("DELETE", f"/v1/members/{member['id']}/identities/{identity_id}")
    assert unlinked.status_code == 200, unlinked.text
    assert identity_id not in [i["id"] for i in unlinked.json()["identities"]]
    assert_problem(lookup(program, "email", mail), 404, "member_not_found")
    again = program.call("DELETE", f"/v1/members/{member['id']}/identities/{identity_id}")
    assert_problem(again, 404, "identity_not_found", field="identity_id")
    # once unlinked, the identity is free for another member
    moved = program.call("POST", f"/v1/members/{other['id']}/identities", json={"kind": "email", "value": mail})
    assert moved.status_code == 200
    assert lookup(program, "email", mail).json()["id"] == other["id"]


def test_linking_a_payment_card_credits_the_purchases_it_made_before(program: ApiProgram) -> None:
    card = luhn_card()
    unclaimed = program.call(
        "POST",
        "/v1/events/purchases",
        json=purchase_body({"kind": "payment_card", "value": spaced(card)}, lines=[line(unit_price=2599)]),
    )
    assert unclaimed.status_code == 201, unclaimed.text
    assert unclaimed.json()["status"] == "unclaimed" and unclaimed.json()["member_id"] is None
    assert unclaimed.json()["points"] == 25
    member = program.enrol(first_name="Ann")
    assert program.balance(member["id"])["pending"] == 0
    linked = program.call(
        "POST", f"/v1/members/{member['id']}/identities", json={"kind": "payment_card", "value": card}
    )
    assert linked.status_code == 200, linked.text
    assert identity(linked.json(), "payment_card")["value"] == f"visa •••• {card[-4:]}"
    assert card not in linked.text
    assert program.balance(member["id"])["pending"] == 25
    [claimed] = program.history(member["id"])
    assert claimed["reason_code"] == "purchase_claimed" and claimed["pending"] == 25
    assert claimed["event_id"] == unclaimed.json()["event_id"]
    assert lookup(program, "payment_card", spaced(card)).json()["id"] == member["id"]


# --- merge ---


def test_after_a_merge_one_person_gets_no_more_than_the_campaign_member_cap(program: ApiProgram) -> None:
    weekend = {"id": "weekend", "name": {"en": "Weekend"}, "starts": "2026-03-01T00:00:00"}
    weekend |= {"ends": "2026-04-01T00:00:00", "member_cap": 200}
    bonus = {"id": "weekend-bonus", "name": {"en": "Weekend bonus"}, "event": "purchase", "campaign": "weekend"}
    bonus["effect"] = {"type": "points_per_amount", "points": 2, "per_amount": 100}
    applied = program.call("POST", "/v1/program/rules", json={"campaigns": [weekend], "rules": [bonus]})
    assert applied.status_code == 201, applied.text
    x, y = program.enrol(first_name="Ann"), program.enrol(first_name="Anne")
    assert program.purchase(x["id"], lines=[line(unit_price=20000)])["points"] == 200  # X at the cap
    assert program.purchase(y["id"], lines=[line(unit_price=9000)])["points"] == 180
    merged = program.call("POST", "/v1/members/merge", json={"source_member_id": x["id"], "target_member_id": y["id"]})
    assert merged.status_code == 200, merged.text
    after = program.purchase(y["id"], lines=[line(unit_price=20000)])
    assert (after["points"], after["awards"]) == (0, [])  # 380 campaign points already: not +20 more


def test_merge_moves_points_identities_and_orders_to_the_remaining_account(program: ApiProgram) -> None:
    source = program.enrol(first_name="Ann", email=email())
    target = program.enrol(first_name="Anne", email=email())
    order = program.purchase(source["id"], lines=[line(unit_price=3000)])
    program.adjust(source["id"], 70)
    program.purchase(target["id"])
    response = program.call(
        "POST", "/v1/members/merge", json={"source_member_id": source["id"], "target_member_id": target["id"]}
    )
    assert response.status_code == 200, response.text
    merged = response.json()
    assert merged["merge_id"].startswith("mrg_") and merged["transaction_id"].startswith("txn_")
    assert (merged["source_member_id"], merged["target_member_id"]) == (source["id"], target["id"])
    assert merged["identities_moved"] == 1 and merged["lots_moved"] == 2
    assert merged["moved"] == {"available": 70, "pending": 30}

    closed = program.call("GET", f"/v1/members/{source['id']}").json()
    assert closed["status"] == "merged" and closed["merged_into_id"] == target["id"]
    assert closed["identities"] == []
    kept = program.balance(target["id"])
    assert (kept["available"], kept["pending"]) == (70, 40)
    gone = program.balance(source["id"])
    assert (gone["available"], gone["pending"]) == (0, 0)
    assert lookup(program, "email", source["email"]).json()["id"] == target["id"]

    # the closed account takes nothing more; the remaining one can return the closed one's order
    buy = program.call("POST", "/v1/events/purchases", json=purchase_body(source["id"]))
    assert_problem(buy, 409, "member_merged", field="member.member_id")
    assert buy.json()["merged_into_id"] == target["id"]
    again = program.call(
        "POST", "/v1/members/merge", json={"source_member_id": source["id"], "target_member_id": target["id"]}
    )
    assert_problem(again, 409, "member_merged", field="source_member_id")
    itself = program.call(
        "POST", "/v1/members/merge", json={"source_member_id": target["id"], "target_member_id": target["id"]}
    )
    assert_problem(itself, 422, "merge_same_member", field="source_member_id")
    returned = program.call(
        "POST",
        "/v1/events/returns",
        json={
            "return_id": unique("r"),
            "order_id": order["external_id"],
            "occurred_at": "2026-03-02T09:00:00Z",
            "lines": [{"sku": "SKU-1", "quantity": 1}],
        },
    )
    assert returned.status_code == 201, returned.text
    assert returned.json()["member_id"] == target["id"] and returned.json()["points"] == -30
    assert program.balance(target["id"])["pending"] == 10


# --- balance ---


def test_balance_shows_available_pending_held_debt_and_what_comes_next(
    new_program: Callable[..., ApiProgram],
) -> None:
    program = new_program(points_name="étoiles", return_window_days=14, points_lifetime_months=12)
    member = program.enrol(first_name="Ann")
    empty = program.balance(member["id"])
    assert empty == {
        "member_id": member["id"],
        "points_name": "étoiles",
        "available": 0,
        "pending": 0,
        "held": 0,
        "debt": 0,
        "next_expiry": None,
        "next_maturity": None,
        "next_rewards": [],
    }
    program.adjust(member["id"], 50)
    program.purchase(member["id"], lines=[line(unit_price=1234, quantity=2)])
    balance = program.balance(member["id"])
    assert (balance["available"], balance["pending"], balance["held"], balance["debt"]) == (50, 24, 0, 0)
    assert balance["next_expiry"] == {"points": 50, "expires_at": "2027-03-02T09:00:00Z"}
    assert balance["next_maturity"] == {"points": 24, "matures_at": "2026-03-16T09:00:00Z"}
    unknown = program.call("GET", "/v1/members/mem_00000000000000000000000000/balance")
    assert_problem(unknown, 404, "member_not_found", field="member_id")


def test_points_are_gone_from_the_balance_and_from_debits_the_second_they_expire(
    new_program: Callable[..., ApiProgram], clock: FrozenClock
) -> None:
    program = new_program(points_lifetime_months=12)
    member = program.enrol(first_name="Ann")
    program.adjust(member["id"], 50)
    assert program.balance(member["id"])["next_expiry"] == {"points": 50, "expires_at": "2027-03-02T09:00:00Z"}
    clock.set(datetime(2027, 3, 2, 9, 0, 1, tzinfo=UTC))  # a second later; the expiry job has not run

    balance = program.balance(member["id"])
    debit = program.call(
        "POST", f"/v1/members/{member['id']}/adjustments", json={"points": -50, "reason": "Spent at the desk"}
    )

    assert (balance["available"], balance["next_expiry"]) == (0, None)
    assert_problem(debit, 422, "insufficient_points")
    assert [line["kind"] for line in program.history(member["id"])] == ["adjust"]  # the refusal wrote nothing


def test_a_return_of_spent_points_shows_as_debt(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program(return_window_days=0)  # points are available at once
    member = program.enrol(first_name="Ann")
    order = program.purchase(member["id"], lines=[line(unit_price=10000)])
    assert program.balance(member["id"])["available"] == 100
    program.adjust(member["id"], -80, reason="Spent at the desk")
    returned = program.call(
        "POST",
        "/v1/events/returns",
        json={
            "return_id": unique("r"),
            "order_id": order["external_id"],
            "occurred_at": "2026-03-02T09:00:00Z",
            "amount": 10000,
        },
    )
    assert returned.status_code == 201, returned.text
    assert returned.json()["details"] == {"from_pending": 0, "from_available": 20, "to_debt": 80, "written_off": 0}
    balance = program.balance(member["id"])
    assert (balance["available"], balance["pending"], balance["debt"]) == (0, 0, 80)
    assert program.history(member["id"])[0]["debt"] == 80
    repaid = program.adjust(member["id"], 100)
    assert repaid["points"] == 100
    balance = program.balance(member["id"])
    assert (balance["available"], balance["debt"]) == (20, 0)


# --- history ---


def test_history_pages_through_every_transaction_once(program: ApiProgram) -> None:
    member = program.enrol(first_name="Ann")
    for n in range(7):
        if n % 2:
            program.adjust(member["id"], 10 + n, reason=f"Gesture number {n}")
        else:
            program.purchase(member["id"], lines=[line(unit_price=100 * (n + 1))])
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        response = program.call("GET", f"/v1/members/{member['id']}/history", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10, "the cursor never ends"
    assert [len(p) for p in pages] == [3, 3, 1]
    ids = [item["id"] for p in pages for item in p]
    assert len(set(ids)) == 7
    assert ids == sorted(ids, reverse=True)  # newest first
    everything = program.call("GET", f"/v1/members/{member['id']}/history", params={"limit": 50}).json()
    assert everything["next_cursor"] is None
    assert [i["id"] for i in everything["items"]] == ids
    oldest = pages[-1][0]
    assert oldest["kind"] == "earn" and oldest["reason_code"] == "purchase" and oldest["pending"] == 1
    newest = pages[0][0]
    assert newest["reason_code"] == "purchase" and newest["pending"] == 7
    assert pages[0][1]["reason"] == "Gesture number 5" and pages[0][1]["available"] == 15
    exact = program.call("GET", f"/v1/members/{member['id']}/history", params={"limit": 7}).json()
    assert len(exact["items"]) == 7 and exact["next_cursor"] is None


def test_history_lines_are_told_in_the_members_language_or_the_one_asked_for(program: ApiProgram) -> None:
    member = program.enrol(first_name="Léa", language="fr")
    order = unique("L")
    program.purchase(member["id"], store_id="lyon-1", order_id=order)
    program.adjust(member["id"], 25, reason="Geste commercial")
    url = f"/v1/members/{member['id']}/history"
    gesture, bought = program.call("GET", url).json()["items"]
    assert (bought["title"], bought["detail"]) == ("Achat", f"Commande n°{order} à lyon-1")
    assert bought["reason"] == f"Purchase #{order} at lyon-1"  # the stored reason stays as it was
    assert (gesture["title"], gesture["detail"]) == ("Ajustement", "Geste commercial")  # her own words
    gesture, bought = program.call("GET", url, params={"language": "en"}).json()["items"]
    assert (bought["title"], bought["detail"]) == ("Purchase", f"Order #{order} at lyon-1")
    assert gesture["title"] == "Adjustment"
    assert_problem(program.call("GET", url, params={"language": "de"}), 422, ANY, field="language")


def test_history_refuses_bad_cursors_and_limits(program: ApiProgram) -> None:
    member = program.enrol(first_name="Ann")
    program.adjust(member["id"], 10)
    url = f"/v1/members/{member['id']}/history"
    for cursor in ("garbage", "mem_01ABC", "12345"):
        assert_problem(program.call("GET", url, params={"cursor": cursor}), 422, "invalid_cursor", field="cursor")
    assert_problem(
        program.call("GET", url, params={"cursor": "txn_" + "0" * 60}), 422, "invalid_length", field="cursor"
    )
    for limit in (0, 201, -1):
        assert_problem(program.call("GET", url, params={"limit": limit}), 422, "out_of_range", field="limit")
    assert_problem(program.call("GET", url, params={"limit": "ten"}), 422, "invalid_type", field="limit")
    unknown = program.call("GET", "/v1/members/mem_00000000000000000000000000/history")
    assert_problem(unknown, 404, "member_not_found", field="member_id")


# --- found by probing PATCH and unlink with what integrators send ---


@pytest.mark.parametrize("field", ["language", "consents"])
def test_patch_with_null_for_a_required_field_is_422_not_500(program: ApiProgram, field: str) -> None:
    """A 422 naming the field (or, if null means "unchanged", a 200); never a crash, never a change."""
    member = program.enrol(first_name="Ann")
    with TestClient(program.client.app, raise_server_exceptions=False) as client:
        response = client.patch(f"/v1/members/{member['id']}", json={field: None}, headers=program.headers())
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert_problem(response, 422, ANY, field=field)
    assert program.call("GET", f"/v1/members/{member['id']}").json()[field] == member[field]


def test_patch_consents_changes_only_the_consents_sent(program: ApiProgram) -> None:
    member = program.enrol(first_name="Ann", consents={"email_marketing": True, "profiling": True})
    response = program.call("PATCH", f"/v1/members/{member['id']}", json={"consents": {"sms_marketing": True}})
    assert response.status_code == 200, response.text
    assert response.json()["consents"] == {
        "email_marketing": True,
        "sms_marketing": True,
        "push": False,
        "profiling": True,
    }


def test_unlinking_one_of_two_emails_keeps_the_other_on_the_profile(program: ApiProgram) -> None:
    first, second = email(), email()
    member = program.enrol(first_name="Ann", email=first)
    linked = program.call("POST", f"/v1/members/{member['id']}/identities", json={"kind": "email", "value": second})
    assert linked.json()["email"] == second
    second_id = next(i["id"] for i in linked.json()["identities"] if i["value"] == second)
    unlinked = program.call("DELETE", f"/v1/members/{member['id']}/identities/{second_id}")
    assert lookup(program, "email", first).json()["id"] == member["id"]
    assert unlinked.json()["email"] == first


def test_portal_links_start_with_the_public_url_when_one_is_set(db: Database, clock: FrozenClock) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    public = Settings(database_url=url, card_hash_key=CARD_KEY, public_url=public_url("https://loyalty.example.com/"))
    app = create_app(public, db=db, clock=clock)
    with TestClient(app, base_url="http://10.0.0.7:8000") as inner, program_maker(db, inner) as make:
        program = make()
        member = program.enrol(first_name="Zoé")
        link = program.call("POST", f"/v1/members/{member['id']}/portal-link").json()
    assert link["url"].startswith(f"https://loyalty.example.com/p/{program.id}/enter?token=")


@pytest.mark.parametrize("typed", ["loyalty.example.com", "ftp://loyalty.example.com", "https://x.fr/?a=1", "https://"])
def test_a_public_url_that_is_not_an_address_is_refused_at_start_up(typed: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        public_url(typed)
    assert refused.value.code == "invalid_setting" and refused.value.field == "PALIER_PUBLIC_URL"
    assert public_url("  ") is None and public_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"


def test_the_program_refuses_a_default_country_that_does_not_exist(program: ApiProgram) -> None:
    refused = program.call("PATCH", "/v1/program", json={"default_country": "ZZ"})
    assert_problem(refused, 422, "invalid_country", field="default_country")
    assert program.call("GET", "/v1/program").json()["default_country"] == "FR"
    assert program.call("PATCH", "/v1/program", json={"default_country": "BE"}).status_code == 200
    found = program.call("POST", "/v1/members", json={"phone": "0470 12 34 56"})  # read as a Belgian number
    assert found.status_code == 201 and found.json()["phone"] == "+32470123456"


def test_a_correction_is_reversed_once_and_only_corrections_are(program: ApiProgram) -> None:
    member = program.call("POST", "/v1/members", json={"email": "undo@example.com"}).json()
    adjustments, undo = f"/v1/members/{member['id']}/adjustments", "/v1/members/{}/transactions/{}/reverse"
    credit = program.call("POST", adjustments, json={"points": 50, "reason": "Goodwill"}).json()
    debit = program.call("POST", adjustments, json={"points": -20, "reason": "Mistyped credit"}).json()
    assert program.balance(member["id"])["available"] == 30

    for done in (debit, credit):  # the debit first: it took its points from the credit
        reversed_ = program.call("POST", undo.format(member["id"], done["transaction_id"]), json={"reason": "Undo"})
        assert reversed_.status_code == 201, reversed_.text
        answer = reversed_.json()  # no fact was received: no event id; the reversal is a transaction of its own
        assert "event_id" not in answer and answer["external_id"] == done["transaction_id"], answer
        [line] = [h for h in program.history(member["id"]) if h["id"] == answer["transaction_id"]]
        assert (line["kind"], line["reverses_id"], line["event_id"]) == ("reversal", done["transaction_id"], None)
        again = program.call("POST", undo.format(member["id"], done["transaction_id"]), json={"reason": "Undo"})
        assert_problem(again, 409, "already_reversed", "transaction_id")
    assert program.balance(member["id"])["available"] == 0

    bought = program.purchase(member["id"])
    not_a_correction = program.call(
        "POST", undo.format(member["id"], bought["transaction_id"]), json={"reason": "x" * 5}
    )
    assert_problem(not_a_correction, 422, "not_reversible", "transaction_id")
    unknown = program.call("POST", undo.format(member["id"], "txn_nope"), json={"reason": "Undo"})
    assert_problem(unknown, 404, "transaction_not_found", "transaction_id")


def test_a_correction_on_a_merged_duplicate_is_reversed_through_the_member_that_remains(program: ApiProgram) -> None:
    source, target = program.enrol(first_name="Dup"), program.enrol(first_name="Main")
    adjustments, undo = f"/v1/members/{source['id']}/adjustments", "/v1/members/{}/transactions/{}/reverse"
    credit = program.call("POST", adjustments, json={"points": 50, "reason": "Entered twice"}).json()
    debit = program.call("POST", adjustments, json={"points": -20, "reason": "Mistyped"}).json()
    merged = program.call(
        "POST", "/v1/members/merge", json={"source_member_id": source["id"], "target_member_id": target["id"]}
    )
    assert merged.status_code == 200, merged.text

    through_source = program.call("POST", undo.format(source["id"], debit["transaction_id"]), json={"reason": "Undo"})
    assert assert_problem(through_source, 409, "member_merged")["merged_into_id"] == target["id"]
    for done, available in ((debit, 50), (credit, 0)):
        reversed_ = program.call("POST", undo.format(target["id"], done["transaction_id"]), json={"reason": "Undo"})
        assert reversed_.status_code == 201, reversed_.text
        assert reversed_.json()["member_id"] == target["id"]
        assert program.balance(target["id"])["available"] == available


def test_an_adjustment_of_nothing_or_with_a_too_short_reason_says_so_in_plain_words(program: ApiProgram) -> None:
    member = program.call("POST", "/v1/members", json={"email": "plain@example.com"}).json()
    adjustments = f"/v1/members/{member['id']}/adjustments"
    zero = program.call("POST", adjustments, json={"points": 0, "reason": "Goodwill"})
    assert_problem(zero, 422, "zero_points", field="points")
    short = assert_problem(program.call("POST", adjustments, json={"points": 5, "reason": "ok"}), 422, "invalid_length")
    assert short["detail"] == "Text should have at least 3 characters, not 2", short
    assert program.balance(member["id"])["available"] == 0


def test_a_merge_says_how_much_store_credit_it_moved(program: ApiProgram) -> None:
    source, target = program.enrol(first_name="Ann"), program.enrol(first_name="Anne")
    program.adjust(source["id"], 1000)
    credit = {"kind": "store_credit", "amount": 300, "cost_points": 100, "title": {"fr": "Avoir 3 €", "en": "€3"}}
    reward = program.call("POST", "/v1/rewards", json=credit).json()
    assert (
        program.call("POST", f"/v1/members/{source['id']}/redemptions", json={"reward_id": reward["id"]}).status_code
        == 201
    )
    merged = program.call(
        "POST", "/v1/members/merge", json={"source_member_id": source["id"], "target_member_id": target["id"]}
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["store_credit_moved"] == 300 and merged.json()["moved"] == {"available": 900}
    assert program.call("GET", f"/v1/members/{target['id']}/wallet").json()["balance"] == 300


def with_a_voucher_every_hundred_euros(program: ApiProgram) -> None:
    voucher = program.call("POST", "/v1/rewards", json={"kind": "amount_off", "cost_points": 1000, "amount": 1000,
                           "title": {"fr": "Bon de 10 €", "en": "€10 voucher"}}).json()  # fmt: skip
    step = {"id": "steps", "name": {"en": "€10 for every €100"}, "event": "purchase",
            "effect": {"type": "spend_step", "step": 10000, "reward_id": voucher["id"]}}  # fmt: skip
    applied = program.call("POST", "/v1/program/rules", json={"rules": [step]})
    assert applied.status_code == 201, applied.text


def vouchers(program: ApiProgram, member_id: str) -> int:
    return len(program.call("GET", f"/v1/members/{member_id}/coupons").json()["items"])


def merge_members(program: ApiProgram, source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    merged = program.call(
        "POST", "/v1/members/merge", json={"source_member_id": source["id"], "target_member_id": target["id"]}
    )
    assert merged.status_code == 200, merged.text
    result: dict[str, Any] = merged.json()
    return result


@pytest.mark.parametrize(
    ("source_spend", "target_spend"),
    [
        (9000, 9000),  # neither account had a voucher: 180 € in all, the first step is still to pay
        (15000, 15000),  # one voucher each: 300 € in all, the third step is still to pay
        (15000, 9000),  # one had its voucher, the other not: 240 €, the second step is still to pay
        (9000, 15000),
    ],
)
def test_after_a_merge_the_next_purchase_pays_the_spend_step_both_accounts_reached(
    program: ApiProgram, source_spend: int, target_spend: int
) -> None:
    with_a_voucher_every_hundred_euros(program)
    source, target = program.enrol(first_name="Ann"), program.enrol(first_name="Anne")
    program.purchase(source["id"], lines=[line(unit_price=source_spend)])
    program.purchase(target["id"], lines=[line(unit_price=target_spend)])
    before = vouchers(program, source["id"]) + vouchers(program, target["id"])
    merge_members(program, source, target)
    assert vouchers(program, target["id"]) == before
    bought = program.purchase(target["id"], lines=[line(unit_price=100)])  # 1 € more
    assert [a["points"] for a in bought["awards"] if a["kind"] == "coupon"] == [1]
    spent = source_spend + target_spend + 100
    assert vouchers(program, target["id"]) == spent // 10000  # one voucher a step, none lost
    again = program.purchase(target["id"], lines=[line(unit_price=100)])  # and none twice
    assert [a["points"] for a in again["awards"] if a["kind"] == "coupon"] == [0]
    assert vouchers(program, target["id"]) == spent // 10000


@pytest.mark.parametrize("older", ["source", "target"])
def test_a_merged_member_is_a_member_since_the_earlier_of_the_two_enrolments(
    program: ApiProgram, clock: FrozenClock, older: str
) -> None:
    now = clock.now()
    clock.set(now.replace(year=2019))
    first = program.enrol(first_name="Ann")
    clock.set(now)
    second = program.enrol(first_name="Anne")
    source, target = (first, second) if older == "source" else (second, first)
    loyal = {"code": "loyal", "name": {"fr": "Fidèles", "en": "Loyal"},
             "conditions": [{"field": "days_since_enrolment", "op": ">=", "value": 365}]}  # fmt: skip
    assert program.call("POST", "/v1/segments", json=loyal).status_code == 201
    merge_members(program, source, target)
    kept = program.call("GET", f"/v1/members/{target['id']}").json()
    assert kept["enrolled_at"] == first["enrolled_at"]  # a member since 2019
    [audited] = program.call("GET", "/v1/audit", params={"limit": 1}).json()["items"]
    taken = audited["details"].get("enrolled_at")  # the date the source brought, if it did
    assert (taken and datetime.fromisoformat(taken)) == (
        datetime.fromisoformat(first["enrolled_at"]) if older == "source" else None
    )
    assert program.call("POST", "/v1/segments/loyal/refresh").status_code == 200
    assert program.call("GET", f"/v1/members/{target['id']}/segments").json() == ["loyal"]


def test_a_merged_member_is_written_to_at_the_e_mail_and_phone_the_other_account_brought(program: ApiProgram) -> None:
    mail, tel, own = email(), phone(), email()
    source = program.enrol(first_name="Ann", email=mail, phone=tel)
    target = program.enrol(first_name="Anne")
    merge_members(program, source, target)
    kept = program.call("GET", f"/v1/members/{target['id']}").json()
    assert (kept["email"], kept["phone"]) == (mail, e164(tel))  # what mails and texts are sent to
    assert {i["kind"] for i in kept["identities"]} == {"email", "phone"}
    [audited] = program.call("GET", "/v1/audit", params={"limit": 1}).json()["items"]
    assert audited["details"]["profile_filled"] == ["email", "phone"]  # staff see what came
    other, third = program.enrol(email=own), program.enrol(email=email())
    merge_members(program, third, other)
    assert program.call("GET", f"/v1/members/{other['id']}").json()["email"] == own  # its own stays


def test_a_card_number_typed_as_a_phone_is_refused_never_stored(program: ApiProgram) -> None:
    """ "+4970…" and 16 digits reads as a German number: it is a Visa card's, refused wherever a phone goes."""
    card = luhn_card()
    for phone in (f"+{card}", f"+{spaced(card)}"):
        refused = program.call("POST", "/v1/members", json={"first_name": "Ann", "phone": phone})
        assert_problem(refused, 422, "card_number_in_text", field="phone")
        assert card not in refused.text
    ann = program.enrol(first_name="Ann")
    linked = program.call("POST", f"/v1/members/{ann['id']}/identities", json={"kind": "phone", "value": f"+{card}"})
    assert_problem(linked, 422, "card_number_in_text", field="value")
    assert program.call("POST", "/v1/members", json={"phone": "+49 30 901820"}).status_code == 201  # a real one


def test_a_phone_typed_with_unusual_digits_is_read_or_refused_never_a_500(program: ApiProgram) -> None:
    """Full-width digits (a Japanese keyboard) are digits: a card number typed with them is still refused; a
    superscript "²" is no digit of a phone number: invalid_phone, not a crash."""
    card = luhn_card()
    wide = "".join(chr(ord("０") + int(d)) for d in card)
    refused = program.call("POST", "/v1/members", json={"first_name": "Ann", "phone": f"+{wide}"})
    assert_problem(refused, 422, "card_number_in_text", field="phone")
    for phone in ("+4930901820²", "+33 6 12 34 56 7²"):
        odd = program.call("POST", "/v1/members", json={"first_name": "Bo", "phone": phone})
        assert_problem(odd, 422, "invalid_phone", field="phone")
    found = program.call("POST", "/v1/members/lookup", json={"kind": "phone", "value": "+4970123456789²12"})
    assert found.status_code in (404, 422), found.text


def test_history_and_audit_refuse_a_cursor_from_another_member_or_program(
    program: ApiProgram, new_program: Callable[..., ApiProgram]
) -> None:
    """A cursor of another member's history (or another program's audit) would page through the wrong rows in
    silence: the items between the two members' transactions skipped, with no error."""
    ann, bob = program.enrol(first_name="Ann"), program.enrol(first_name="Bob")
    for points in (10, 20, 30):
        program.adjust(ann["id"], points)
    program.adjust(bob["id"], 5)
    bobs = program.call("GET", f"/v1/members/{bob['id']}/history").json()["items"][0]["id"]
    url = f"/v1/members/{ann['id']}/history"
    for cursor in (bobs, "txn_\x00", "txn_zzzz"):
        assert_problem(program.call("GET", url, params={"cursor": cursor}), 422, "invalid_cursor", field="cursor")
    first = program.call("GET", url, params={"limit": 1}).json()
    rest = program.call("GET", url, params={"cursor": first["next_cursor"], "limit": 5}).json()["items"]
    assert [line["available"] for line in rest] == [20, 10]  # the page after the first: the rest, none skipped
    other = new_program()
    theirs = other.call("GET", "/v1/audit", params={"limit": 1}).json()["items"][0]["id"]
    for cursor in (theirs, "aud_\x00"):
        assert_problem(program.call("GET", "/v1/audit", params={"cursor": cursor}), 422, "invalid_cursor", "cursor")


def test_an_empty_cursor_is_the_first_page(program: ApiProgram) -> None:
    """A client filling ?cursor= from a next_cursor it has not had yet sends it empty: the first page."""
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 10)
    for url in (f"/v1/members/{ann['id']}/history", f"/v1/members/{ann['id']}/coupons", "/v1/audit"):
        empty = program.call("GET", url, params={"cursor": ""})
        assert empty.status_code == 200, (url, empty.text)
        assert empty.json() == program.call("GET", url).json(), url
