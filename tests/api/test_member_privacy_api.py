"""A member's GDPR rights through the API: erasure (nothing of the person left, the ledger still sound)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from palier.activity.tables import purchases
from palier.clock import FrozenClock
from palier.db import Database
from palier.members.tables import identities
from palier.privacy import find_mentions
from palier.text import find_card_numbers
from tests.api.conftest import assert_ledger_sound
from tests.api.helpers import (
    ANY,
    ApiProgram,
    assert_problem,
    luhn_card,
    purchase_body,
    return_body,
    reward_body,
    unique,
)
from tests.api.routes import WORLD_RULES, WORLD_TIERS
from tests.conftest import ENGINES, own_database
from tests.web.world import csrf_of, enter

ERASE = {"reason": "The member asked by e-mail to be forgotten"}
PLAN = {"code": "vip", "name": {"fr": "VIP", "en": "VIP"}, "price": 999, "period": "monthly"}


@pytest.fixture(scope="module", params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A database of this module's own, on each engine. An erasure is checked by reading every value of every
    table (``find_mentions``): in the session's shared database that grows with every test run before, to 20 s
    a check on PostgreSQL late in a run."""
    with own_database(request.param, tmp_path_factory, "privacy") as database:
        yield database


def _person() -> dict[str, Any]:
    tag = "".join(random.choice("qwxz") for _ in range(8))
    return {
        "first_name": f"Zephyrine{tag}",
        "last_name": f"Quillfeather{tag}",
        "email": f"zq.{tag}@erasure-test.example",
        "phone": f"+33 6 12 {random.randrange(10, 99)} {random.randrange(10, 99)} {random.randrange(10, 99)}",
        # a day no other test's member has: the scan of the whole database looks for it
        "birthday": f"19{random.randrange(30, 70)}-{random.randrange(1, 13):02}-{random.randrange(1, 29):02}",
    }


def _rich_member(program: ApiProgram, db: Database) -> tuple[dict[str, Any], list[str]]:
    """A member with everything Palier can hold about a person; returns the member and the strings that name them."""
    person = _person()
    card, loyalty, customer = luhn_card(), f"LOY-{random.randrange(10**9)}", f"CRM-{random.randrange(10**9)}"
    sent = person | {
        "consents": {"email_marketing": True, "profiling": True},
        "identities": [
            {"kind": "card", "value": loyalty},
            {"kind": "payment_card", "value": card},
            {"kind": "external", "value": customer},
        ],
    }
    enrolled = program.call("POST", "/v1/members", json=sent, idempotency_key=unique("enrol"))
    assert enrolled.status_code == 201, enrolled.text
    member = enrolled.json()
    with db.read() as conn:
        rows = conn.execute(
            identities.select().where(identities.c.member_id == member["id"], identities.c.kind == "payment_card")
        ).all()
    hmac_value = rows[0].value
    for ref in (
        {"kind": "email", "value": person["email"]},
        {"kind": "payment_card", "value": card},
        {"kind": "card", "value": loyalty},
        member["id"],
    ):
        body = purchase_body(ref, lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": 40000}])
        bought = program.call("POST", "/v1/events/purchases", json=body, idempotency_key=unique("buy"))
        assert bought.status_code == 201, bought.text
    program.adjust(member["id"], 1200)  # the purchases' points are still pending: these can be spent
    reward = program.call("POST", "/v1/rewards", json=reward_body())
    assert reward.status_code == 201, reward.text
    for _ in range(2):  # one coupon used, one still holding points
        redeemed = program.call(
            "POST", f"/v1/members/{member['id']}/redemptions", json={"reward_id": reward.json()["id"]}
        )
        assert redeemed.status_code == 201, redeemed.text
    use = {"order_id": "o-used", "channel": "store"}
    used = program.call("POST", f"/v1/coupons/{redeemed.json()['coupon']['code']}/use", json=use)
    assert used.status_code == 200, used.text
    assert program.call("POST", "/v1/plans", json=PLAN).status_code == 201
    if program.call("GET", "/v1/tiers").json() is not None:  # staff naming the member in a free-text reason
        manual = {"tier": "gold", "reason": f"Gesture for {person['last_name']}", "until": "2099-01-01T00:00:00Z"}
        assert program.call("POST", f"/v1/members/{member['id']}/tier", json=manual).status_code == 200
    fee = {"payment_id": unique("fee"), "member_id": member["id"], "plan": "vip", "amount": 999}
    joined = program.call("POST", "/v1/memberships/payments", json=fee | {"paid_at": "2026-03-01T00:00:00Z"})
    assert joined.status_code == 200, joined.text
    link = program.call("POST", f"/v1/members/{member['id']}/portal-link")
    assert link.status_code == 201, link.text
    client: TestClient = program.client
    entered = enter(client, link.json()["url"].split("testserver", 1)[-1])
    assert entered.status_code in (302, 303), entered.text
    form = client.get(f"/p/{program.id}/sign-in").text
    sent_form = {"email": person["email"], "csrf": csrf_of(form)}
    asked = client.post(f"/p/{program.id}/sign-in", data=sent_form, follow_redirects=False)
    assert asked.status_code == 303, asked.text
    outbox = program.call("GET", "/v1/outbox").json()["items"]
    assert any(person["email"] in str(event["payload"]) for event in outbox)
    first = outbox[0]["id"]  # one delivered: its payload is scrubbed rather than deleted
    assert program.call("POST", "/v1/outbox/ack", json={"ids": [first]}).status_code == 200
    named = [person["first_name"], person["last_name"], person["email"], loyalty, hmac_value, f"•••• {card[-4:]}"]
    phone = program.call("GET", f"/v1/members/{member['id']}").json()["phone"]
    brand = next(
        i["value"]
        for i in program.call("GET", f"/v1/members/{member['id']}").json()["identities"]
        if i["kind"] == "payment_card"
    )
    return member, [*named, phone, phone.replace("+", ""), person["birthday"], customer, brand]


def test_an_erased_member_leaves_nothing_of_the_person_and_the_ledger_balances(
    program: ApiProgram, db: Database
) -> None:
    assert program.call("PUT", "/v1/tiers", json=WORLD_TIERS).status_code == 200
    member, named = _rich_member(program, db)
    with db.read() as conn:
        assert find_mentions(conn, named), "the test's member was not recorded where the scan looks"
    assert program.balance(member["id"])["held"] > 0

    erased = program.call("POST", f"/v1/members/{member['id']}/erase", json=ERASE)
    assert erased.status_code == 200, erased.text
    result = erased.json()
    assert result["status"] == "erased"
    assert result["coupons_cancelled"] == 1 and result["memberships_lapsed"] == 1
    # pending: 4 purchases of 400.00 (the last two gold, +50 %); available: 1200 given, 1000 spent on coupons, 500
    # back from the one cancelled
    assert (result["pending_points_removed"], result["points_removed"]) == (2000, 2000 + 200 + 500)
    assert result["identities_deleted"] == 5

    with db.read() as conn:
        assert find_mentions(conn, named) == []
    assert_ledger_sound(db, program.id)
    balance = program.balance(member["id"])
    assert (balance["available"], balance["pending"], balance["held"], balance["debt"]) == (0, 0, 0, 0)
    assert program.history(member["id"])[0]["reason"] == "Account erased at the member's request"
    profile = program.call("GET", f"/v1/members/{member['id']}").json()
    assert profile["status"] == "erased" and profile["identities"] == []
    assert [profile[k] for k in ("first_name", "last_name", "email", "phone", "birthday")] == [None] * 5
    assert not any(profile["consents"].values())
    memberships = program.call("GET", f"/v1/members/{member['id']}/memberships").json()
    assert [m["state"] for m in memberships] == ["lapsed"]

    lookup = program.call("POST", "/v1/members/lookup", json={"kind": "email", "value": named[2]})
    assert_problem(lookup, 404, "member_not_found")
    again = program.enrol(email=named[2], first_name="New")
    assert again["id"] != member["id"]

    audit = program.call("GET", "/v1/audit").json()["items"]
    assert any(a["action"] == "member.erased" and a["subject_id"] == member["id"] for a in audit)
    events = program.call("GET", "/v1/outbox", params={"types": "member_erased"}).json()["items"]
    assert [e["payload"] for e in events if e["type"] == "member_erased"] == [{"member_id": member["id"]}]

    # sent again: the same answer, nothing more done
    twice = program.call("POST", f"/v1/members/{member['id']}/erase", json=ERASE)
    assert twice.status_code == 200 and twice.json() == result
    # every later write is refused
    buy = program.call("POST", "/v1/events/purchases", json=purchase_body(member["id"]))
    assert_problem(buy, 409, "member_erased", field="member.member_id")
    patch = program.call("PATCH", f"/v1/members/{member['id']}", json={"first_name": "Back"})
    assert_problem(patch, 409, "member_erased", field="member_id")


def test_store_credit_left_refuses_an_erasure_unless_it_is_forfeited(program: ApiProgram) -> None:
    member = program.enrol(first_name="Credit")
    program.adjust(member["id"], 1000)
    credit = program.call("POST", "/v1/rewards", json=reward_body(kind="store_credit", amount=500, cost_points=500))
    assert credit.status_code == 201, credit.text
    bought = program.call("POST", f"/v1/members/{member['id']}/redemptions", json={"reward_id": credit.json()["id"]})
    assert bought.status_code == 201, bought.text
    before = program.snapshot(member["id"])

    refused = program.call("POST", f"/v1/members/{member['id']}/erase", json=ERASE)
    assert assert_problem(refused, 409, "store_credit_left", field="forfeit_store_credit")["amount"] == 500
    assert program.snapshot(member["id"]) == before
    assert program.call("GET", f"/v1/members/{member['id']}").json()["status"] == "active"

    erased = program.call("POST", f"/v1/members/{member['id']}/erase", json=ERASE | {"forfeit_store_credit": True})
    assert erased.status_code == 200, erased.text
    assert (erased.json()["store_credit_forfeited"], erased.json()["points_removed"]) == (500, 500)
    assert program.call("GET", f"/v1/members/{member['id']}/wallet").json()["balance"] == 0


def test_an_erasure_writes_off_debt_and_refuses_bad_requests(new_program: Callable[..., ApiProgram]) -> None:
    program = new_program(return_window_days=0)
    member = program.enrol(first_name="Debtor")
    bought, kept = (
        program.purchase(member["id"], lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": 10000}]) for _ in range(2)
    )
    program.adjust(member["id"], -program.balance(member["id"])["available"], "Spent elsewhere")
    returned = program.call("POST", "/v1/events/returns", json=return_body(bought["external_id"]))
    assert returned.status_code == 201, returned.text
    owed = program.balance(member["id"])["debt"]

    card = program.call("POST", f"/v1/members/{member['id']}/erase", json={"reason": f"card {luhn_card()}"})
    assert_problem(card, 422, ANY, field="reason")
    assert_problem(program.call("POST", f"/v1/members/{member['id']}/erase", json={}), 422, ANY, field="reason")
    missing = program.call("POST", "/v1/members/mem_00000000000000000000000000/erase", json=ERASE)
    assert_problem(missing, 404, "member_not_found")

    erased = program.call("POST", f"/v1/members/{member['id']}/erase", json=ERASE)
    assert erased.status_code == 200, erased.text
    assert owed > 0 and erased.json()["debt_written_off"] == owed
    assert program.balance(member["id"])["debt"] == 0
    # the shop still refunds an order bought before: accepted, and an erased member is owed nothing, nor owes
    late = program.call("POST", "/v1/events/returns", json=return_body(kept["external_id"]))
    assert late.status_code == 201, late.text
    assert late.json()["details"]["written_off"] == 100
    assert program.balance(member["id"])["debt"] == 0


def test_the_export_holds_everything_about_the_member_and_never_a_card_number_or_hmac(
    program: ApiProgram, db: Database
) -> None:
    assert program.call("PUT", "/v1/tiers", json=WORLD_TIERS).status_code == 200
    member, named = _rich_member(program, db)
    hmac_value, masked = named[4], named[5]
    returned = program.call("POST", "/v1/events/returns", json=return_body(_an_order(db, member["id"])))
    assert returned.status_code == 201, returned.text

    exported = program.call("GET", f"/v1/members/{member['id']}/export")
    assert exported.status_code == 200, exported.text
    document = exported.json()
    profile = document["profile"]
    assert (profile["first_name"], profile["email"], profile["birthday"]) == (named[0], named[2], named[8])
    assert profile["consents"]["email_marketing"] is True
    assert sorted(i["kind"] for i in profile["identities"]) == ["card", "email", "external", "payment_card", "phone"]
    card = next(i for i in profile["identities"] if i["kind"] == "payment_card")
    assert card["value"].endswith(masked)
    assert hmac_value not in exported.text and masked[-4:] in exported.text
    assert not find_card_numbers(exported.text)
    assert [line["id"] for line in document["history"]] == [line["id"] for line in program.history(member["id"])]
    assert document["balance"] == program.balance(member["id"]) | {"next_rewards": []}
    assert len(document["purchases"]) == 4 and all(p["lines"][0]["sku"] == "SKU-1" for p in document["purchases"])
    assert [r["lines"] for r in document["returns"]] == [[{"sku": "SKU-1", "quantity": 1, "line": None}]]
    assert sorted(c["state"] for c in document["coupons"]) == ["issued", "used"]
    assert [m["state"] for m in document["memberships"]] == ["active"]
    assert document["tier"]["member_id"] == member["id"]
    assert document["wallet"]["balance"] == 0 and isinstance(document["segments"], list)
    assert "member.enrolled" in [entry["action"] for entry in document["audit"]]

    refused = program.call("GET", f"/v1/members/{member['id']}/export", key=program.make_key("read"))
    assert_problem(refused, 403, "insufficient_scope")
    assert_problem(program.call("GET", "/v1/members/mem_00000000000000000000000000/export"), 404, "member_not_found")

    assert program.call("POST", f"/v1/members/{member['id']}/erase", json=ERASE).status_code == 200
    after = program.call("GET", f"/v1/members/{member['id']}/export")
    assert after.status_code == 200 and after.json()["profile"]["status"] == "erased"
    assert [n for n in named if n.casefold() in after.text.casefold()] == []


def _an_order(db: Database, member_id: str) -> str:
    with db.read() as conn:
        return str(
            conn.execute(select(purchases.c.order_id).where(purchases.c.member_id == member_id)).scalars().first()
        )


def test_erasing_a_member_also_erases_the_duplicate_accounts_merged_into_it(program: ApiProgram, db: Database) -> None:
    first, second = _person(), _person()
    kept = program.enrol(**first)
    duplicate = program.enrol(**second)
    program.adjust(duplicate["id"], 30)
    merged = program.call(
        "POST", "/v1/members/merge", json={"source_member_id": duplicate["id"], "target_member_id": kept["id"]}
    )
    assert merged.status_code == 200, merged.text
    named = [first["first_name"], first["email"], second["first_name"], second["last_name"], second["email"]]
    by_own_id = program.call("POST", f"/v1/members/{duplicate['id']}/erase", json=ERASE)
    assert assert_problem(by_own_id, 409, "member_merged", field="member_id")["merged_into_id"] == kept["id"]

    assert program.call("POST", f"/v1/members/{kept['id']}/erase", json=ERASE).status_code == 200
    with db.read() as conn:
        assert find_mentions(conn, named) == []
    closed = program.call("GET", f"/v1/members/{duplicate['id']}").json()
    assert (closed["status"], closed["merged_into_id"], closed["email"]) == ("merged", kept["id"], None)
    # the merchant's systems know the duplicate by its own id (events were about it before the merge): told too
    told = program.call("GET", "/v1/outbox", params={"type": "member_erased"}).json()["items"]
    assert sorted((e["subject_id"], e["payload"]) for e in told) == sorted(
        [
            (kept["id"], {"member_id": kept["id"]}),
            (duplicate["id"], {"member_id": duplicate["id"], "merged_into_id": kept["id"]}),
        ]
    )


def test_erasing_a_member_leaves_another_member_of_the_same_name_untouched(program: ApiProgram, db: Database) -> None:
    """Erasing one Camille Martin scrubs her records, not those of every Camille: a first name is not an
    identifier, so only records about the erased member lose it."""
    tag = "".join(random.choice("qwxz") for _ in range(8))
    erased = program.enrol(first_name=f"Camille{tag}", last_name="Martin", email=f"c1.{tag}@erasure-test.example")
    other = {"first_name": f"Camille{tag}", "last_name": "Martin", "email": f"c2.{tag}@erasure-test.example"}
    key = unique("enrol")
    kept = program.call("POST", "/v1/members", json=other, idempotency_key=key)
    assert kept.status_code == 201, kept.text
    order = program.purchase(kept.json()["id"])
    assert program.call("POST", f"/v1/members/{erased['id']}/erase", json=ERASE).status_code == 200
    with db.read() as conn:
        left = find_mentions(conn, [f"Camille{tag}"])
    assert left, "the other Camille's records lost her name"
    replayed = program.call("POST", "/v1/members", json=other, idempotency_key=key)
    assert replayed.json()["first_name"] == f"Camille{tag}"  # her stored answer is hers, whole
    assert program.call("GET", f"/v1/members/{kept.json()['id']}").json()["first_name"] == f"Camille{tag}"
    assert order["external_id"]


def test_the_export_holds_the_duplicate_accounts_merged_into_the_member(program: ApiProgram, db: Database) -> None:
    """What erasure treats as the person's (the profiles of the duplicates merged into them, even through a chain:
    A into B, then B into C) the export hands over too: their names, history and audit entries."""
    first, second, third = _person(), _person(), _person()
    kept = program.enrol(**first)
    duplicate, older = program.enrol(**second), program.enrol(**third)
    program.adjust(older["id"], 30)
    for source, target in ((older, duplicate), (duplicate, kept)):
        merged = program.call(
            "POST", "/v1/members/merge", json={"source_member_id": source["id"], "target_member_id": target["id"]}
        )
        assert merged.status_code == 200, merged.text

    exported = program.call("GET", f"/v1/members/{kept['id']}/export")
    assert exported.status_code == 200, exported.text
    accounts = {account["profile"]["id"]: account for account in exported.json()["merged_accounts"]}
    assert sorted(accounts) == sorted([duplicate["id"], older["id"]])
    assert accounts[older["id"]]["profile"]["last_name"] == third["last_name"]
    assert accounts[duplicate["id"]]["profile"]["first_name"] == second["first_name"]
    assert accounts[older["id"]]["profile"]["merged_into_id"] == duplicate["id"]
    assert [line["available"] for line in accounts[older["id"]]["history"]][-1] == 30
    assert "member.enrolled" in [entry["action"] for entry in accounts[older["id"]]["audit"]]
    assert exported.json()["profile"]["last_name"] == first["last_name"]


def test_an_erasure_also_removes_the_email_phone_and_names_the_member_had_before_changing_them(
    program: ApiProgram, db: Database
) -> None:
    """Ann enrolled with an old e-mail, phone and name (kept in the enrolment's stored answer, in a purchase sent
    by that e-mail and in a delivered outbox event), then changed them: erased, none of the old ones is left."""
    old, new = _person(), _person()
    enrolled = program.call("POST", "/v1/members", json=old, idempotency_key=unique("enrol"))
    assert enrolled.status_code == 201, enrolled.text
    member = enrolled.json()
    bought = program.call("POST", "/v1/events/purchases", json=purchase_body(member["id"]) | {
        "member": {"kind": "email", "value": old["email"]}
    })  # fmt: skip
    assert bought.status_code == 201, bought.text
    changed = program.call("PATCH", f"/v1/members/{member['id']}", json=new, idempotency_key=unique("patch"))
    assert changed.status_code == 200, changed.text
    named = [old["first_name"], old["last_name"], old["email"], member["phone"], new["first_name"], new["email"]]
    with db.read() as conn:
        assert find_mentions(conn, named)

    assert program.call("POST", f"/v1/members/{member['id']}/erase", json=ERASE).status_code == 200
    with db.read() as conn:
        assert find_mentions(conn, named) == []


def test_a_mailer_that_read_events_before_an_erasure_can_still_acknowledge_them(
    program: ApiProgram, db: Database, clock: FrozenClock
) -> None:
    """A mailer reads a page, sends its mails, then acknowledges the page: a member of that page erased meanwhile
    does not make the whole acknowledgement fail (and every other mail of the page go out again)."""
    from palier.notify import outbox

    erased, kept = program.enrol(**_person()), program.enrol(**_person())
    with db.write() as conn:
        for member in (erased, kept):
            payload = {"member_id": member["id"], "email": member["email"], "language": "fr"}
            outbox.emit(
                conn, program_id=program.id, type_="points_expiring", subject_id=member["id"], payload=payload,
                now=clock.now(),
            )  # fmt: skip
    page = program.call("GET", "/v1/outbox", params={"type": "points_expiring"}).json()["items"]
    assert [e["subject_id"] for e in page] == [erased["id"], kept["id"]]

    moved = program.call("PATCH", f"/v1/members/{erased['id']}", json={"email": f"new.{erased['email']}"})
    assert moved.status_code == 200, moved.text  # the e-mail in the waiting event is no longer the profile's
    assert program.call("POST", f"/v1/members/{erased['id']}/erase", json=ERASE).status_code == 200
    acked = program.call("POST", "/v1/outbox/ack", json={"ids": [e["id"] for e in page]})
    assert acked.status_code == 200, acked.text
    left = program.call("GET", "/v1/outbox", params={"type": "points_expiring"}).json()["items"]
    assert left == []  # the erased member's event is not served (nor pushed) any more, the other one was handled
    with db.read() as conn:
        assert find_mentions(conn, [erased["email"], f"new.{erased['email']}"]) == []


def test_an_erasure_removes_the_note_of_the_invitation_the_member_used(program: ApiProgram, db: Database) -> None:
    """Staff wrote who an invitation was for in its note: the member used it, then asked to be forgotten. The
    note goes (the invitation stays, used: the plan's seats are counted by it); another invitation's stays."""
    person = _person()
    member = program.enrol(**person)
    club = PLAN | {"code": "club", "access": "invitation"}
    assert program.call("POST", "/v1/plans", json=club).status_code == 201
    notes = [f"For {person['first_name']} {person['last_name']}", "For the Salon 2026 guests"]
    made = [program.call("POST", "/v1/invitations", json={"purpose": "plan", "plan": "club", "note": n}) for n in notes]
    assert [m.status_code for m in made] == [201, 201], made[0].text
    fee = {
        "payment_id": unique("fee"),
        "member_id": member["id"],
        "plan": "club",
        "amount": 999,
        "paid_at": "2026-03-01T00:00:00Z",
    }
    joined = program.call("POST", "/v1/memberships/payments", json=fee | {"invitation_code": made[0].json()[0]["code"]})
    assert joined.status_code == 200, joined.text

    assert program.call("POST", f"/v1/members/{member['id']}/erase", json=ERASE).status_code == 200
    with db.read() as conn:
        assert find_mentions(conn, [person["first_name"], person["last_name"]]) == []
        assert find_mentions(conn, [notes[1]]), "an invitation the member did not use lost its note"


def test_an_erasure_removes_the_member_s_name_however_staff_capitalised_it(program: ApiProgram, db: Database) -> None:
    """French staff write surnames in capitals ("Geste pour Mme MARTIN"): the name goes from a manual tier's reason
    and an invitation's note all the same."""
    assert program.call("PUT", "/v1/tiers", json=WORLD_TIERS).status_code == 200
    person = _person()
    member = program.enrol(**person)
    shouted = person["last_name"].upper()
    manual = {"tier": "gold", "reason": f"Geste pour Mme {shouted}", "until": "2099-01-01T00:00:00Z"}
    assert program.call("POST", f"/v1/members/{member['id']}/tier", json=manual).status_code == 200
    invited = program.call("POST", "/v1/invitations", json={"note": f"Pour {shouted} ({person['email'].upper()})"})
    assert invited.status_code == 201, invited.text

    assert program.call("POST", f"/v1/members/{member['id']}/erase", json=ERASE).status_code == 200
    with db.read() as conn:
        assert find_mentions(conn, [person["last_name"], person["email"]]) == []


def test_the_export_holds_the_fees_paid_the_orders_paid_with_points_and_the_consents_given_at_enrolment(
    program: ApiProgram,
) -> None:
    """What the member paid for a VIP plan (and the refund), what they paid orders with, and when they gave each
    consent: all of it is the person's data, handed over in the export."""
    sent = _person() | {"consents": {"email_marketing": True, "sms_marketing": False}}
    enrolled = program.call("POST", "/v1/members", json=sent)
    assert enrolled.status_code == 201, enrolled.text
    member = enrolled.json()
    program.adjust(member["id"], 500)
    assert program.call("POST", "/v1/plans", json=PLAN).status_code == 201
    fee = {"payment_id": unique("fee"), "member_id": member["id"], "plan": "vip", "amount": 999}
    assert program.call("POST", "/v1/memberships/payments", json=fee | {"paid_at": "2026-03-01T00:00:00Z"}).is_success
    refund = program.call("POST", f"/v1/memberships/payments/{fee['payment_id']}/refund", json={"note": "Withdrawal"})
    assert refund.status_code == 200, refund.text
    paid = {"kind": "points", "order_id": "o-paid-with-points", "order_total": 5000, "points": 300}
    payment = program.call("POST", f"/v1/members/{member['id']}/payments", json=paid)
    assert payment.status_code in (200, 201), payment.text

    exported = program.call("GET", f"/v1/members/{member['id']}/export")
    assert exported.status_code == 200, exported.text
    document = exported.json()
    fees = document["membership_payments"]
    assert [(f["payment_id"], f["amount"], f["plan"]) for f in fees] == [(fee["payment_id"], 999, "vip")]
    assert fees[0]["refunded_at"] is not None
    assert [(p["order_id"], p["kind"], p["points"]) for p in document["payments"]] == [
        ("o-paid-with-points", "points", 300)
    ]
    enrolment = next(entry for entry in document["audit"] if entry["action"] == "member.enrolled")
    assert enrolment["details"]["consents"] == {"email_marketing": True}
    assert enrolment["created_at"] == member["enrolled_at"]


def test_an_erasure_whose_reason_names_the_member_keeps_no_name_in_the_audit_trail(
    program: ApiProgram, db: Database
) -> None:
    """Staff are asked to name no one in the reason; one who writes "Asked by Zoé Martin (zoe@…)" all the same
    leaves no copy of the name or e-mail in the audit entry that records the erasure (the rest of it is kept)."""
    person = _person()
    member = program.enrol(**person)
    reason = f"Asked by {person['first_name']} {person['last_name'].upper()} ({person['email']}) on 3 March"
    erased = program.call("POST", f"/v1/members/{member['id']}/erase", json={"reason": reason})
    assert erased.status_code == 200, erased.text
    with db.read() as conn:
        assert find_mentions(conn, [person["first_name"], person["last_name"], person["email"]]) == []
    audit = program.call("GET", "/v1/audit").json()["items"]
    entry = next(a for a in audit if a["action"] == "member.erased" and a["subject_id"] == member["id"])
    assert (
        entry["details"]["result"] == erased.json()
        and entry["details"]["reason"] == "Asked by [erased] [erased] ([erased]) on 3 March"
    )
    again = program.call("POST", f"/v1/members/{member['id']}/erase", json={"reason": reason})
    assert again.status_code == 200 and again.json() == erased.json()


def test_every_export_of_a_member_s_data_is_in_the_audit_trail(
    new_program: Callable[..., ApiProgram],
) -> None:
    """Handing a person's whole file over is recorded (who, when, whose), as an erasure is: the proof that an access
    request was answered, and the trace of an export nobody asked for. A refused one records nothing."""
    program, other = new_program(), new_program()
    member = program.enrol(**_person())
    key = program.make_key("admin")
    assert program.call("GET", f"/v1/members/{member['id']}/export", key=key).status_code == 200
    assert other.call("GET", f"/v1/members/{member['id']}/export").status_code == 404
    assert program.call("GET", f"/v1/members/{member['id']}/export", key=program.make_key("read")).status_code == 403

    audit = program.call("GET", "/v1/audit").json()["items"]
    exports = [a for a in audit if a["action"] == "member.exported"]
    assert [(a["subject_id"], a["details"]) for a in exports] == [(member["id"], None)]
    assert exports[0]["actor"].startswith("key_") and exports[0]["actor"] != "operator"
    assert not [a for a in other.call("GET", "/v1/audit").json()["items"] if a["action"] == "member.exported"]
    again = program.call("GET", f"/v1/members/{member['id']}/export").json()
    assert "member.exported" in [a["action"] for a in again["audit"]]  # the person sees who had their file


def test_the_export_holds_the_invitation_the_member_joined_with_and_its_note(program: ApiProgram) -> None:
    """What staff wrote about the person is theirs to read: the note of the invitation they used is in the export."""
    person = _person()
    member = program.enrol(**person)
    assert program.call("POST", "/v1/plans", json=PLAN | {"code": "club", "access": "invitation"}).status_code == 201
    note = f"For {person['first_name']}, met at the Salon"
    made = program.call("POST", "/v1/invitations", json={"purpose": "plan", "plan": "club", "note": note})
    assert made.status_code == 201, made.text
    code = made.json()[0]["code"]
    fee = {"payment_id": unique("fee"), "member_id": member["id"], "plan": "club", "amount": 999}
    joined = program.call("POST", "/v1/memberships/payments", json=fee | {"paid_at": "2026-03-01T00:00:00Z"} | {
        "invitation_code": code
    })  # fmt: skip
    assert joined.status_code == 200, joined.text

    document = program.call("GET", f"/v1/members/{member['id']}/export").json()
    assert [(i["code"], i["purpose"], i["plan"], i["note"]) for i in document["invitations"]] == [
        (code, "plan", "club", note)
    ]
    assert document["invitations"][0]["used_at"] is not None


def test_an_erasure_removes_the_member_s_name_from_the_lines_of_their_orders(program: ApiProgram, db: Database) -> None:
    """A personalised product names the buyer ("Cake: Happy birthday Zoé", "Engraving: Z. MARTIN"): the order and
    its amounts stay for the accounts, the name goes (the stored purchase body's line names; the order's lines keep
    SKUs and amounts, no names)."""
    person = _person()
    member = program.enrol(**person)
    lines = [
        {"sku": "CAKE", "name": f"Cake: Happy birthday {person['first_name']}", "quantity": 1, "unit_price": 3000},
        {"sku": "PEN", "name": f"Engraving: {person['last_name'].upper()}", "quantity": 1, "unit_price": 2000},
        {"sku": "BREAD", "name": "Baguette", "quantity": 2, "unit_price": 120},
    ]
    bought = program.call("POST", "/v1/events/purchases", json=purchase_body(member["id"], lines=lines))
    assert bought.status_code == 201, bought.text

    assert program.call("POST", f"/v1/members/{member['id']}/erase", json=ERASE).status_code == 200
    with db.read() as conn:
        assert find_mentions(conn, [person["first_name"], person["last_name"]]) == []
        kept = conn.execute(select(purchases.c.lines, purchases.c.total).where(purchases.c.member_id == member["id"]))
        stored, total = kept.one()
    assert total == 5240 and [line["sku"] for line in stored] == ["CAKE", "PEN", "BREAD"]


def test_the_export_holds_the_audit_entries_about_the_member_filed_under_another_subject(program: ApiProgram) -> None:
    """A reversal is filed under its transaction, a granted coupon under the coupon: both are about the member (and
    the reversal says why, in staff's words), so both are in the export's audit entries."""
    member = program.enrol(**_person())
    adjusted = program.adjust(member["id"], 80, "Goodwill gesture")
    reverse = f"/v1/members/{member['id']}/transactions/{adjusted['transaction_id']}/reverse"
    reversed_ = program.call("POST", reverse, json={"reason": "Given to the wrong customer"})
    assert reversed_.status_code in (200, 201), reversed_.text
    other = program.enrol(**_person())
    other_adjusted = program.adjust(other["id"], 10)
    undo = f"/v1/members/{other['id']}/transactions/{other_adjusted['transaction_id']}/reverse"
    assert program.call("POST", undo, json={"reason": "Not theirs"}).status_code in (200, 201)

    audit = program.call("GET", f"/v1/members/{member['id']}/export").json()["audit"]
    reversals = [entry for entry in audit if entry["action"] == "transaction.reversed"]
    assert [(r["subject_id"], r["details"]["reason"]) for r in reversals] == [
        (adjusted["transaction_id"], "Given to the wrong customer")
    ]


def test_an_erasure_removes_the_references_of_the_member_s_actions(program: ApiProgram, db: Database) -> None:
    """An action is paid once per reference, and the reference may name the person: the social account they
    followed ("instagram:@zoe.quill84"). Erased, the account goes from every record of the action; the points it
    gave stay in the ledger, and the action still counts as done."""
    follow = {"id": "follow", "name": {"en": "Follow us"}, "points": 10}
    applied = program.call("POST", "/v1/program/rules", json=WORLD_RULES | {"actions": [follow]})
    assert applied.status_code == 201, applied.text
    member = program.enrol(**_person())
    handle = f"instagram:@{unique('zq')}"
    path = f"/v1/members/{member['id']}/actions"
    done = program.call("POST", path, json={"action": "follow", "reference": handle}, idempotency_key=unique("act"))
    assert done.status_code == 201, done.text
    with db.read() as conn:
        assert find_mentions(conn, [handle])

    assert program.call("POST", f"/v1/members/{member['id']}/erase", json=ERASE).status_code == 200
    with db.read() as conn:
        assert find_mentions(conn, [handle]) == []
    history = program.history(member["id"])
    assert [line["reason_code"] for line in history][-1] != "member_erased" and len(history) == 2


def test_the_export_holds_the_messages_written_for_the_member_without_a_live_sign_in_code(
    program: ApiProgram, db: Database, clock: FrozenClock
) -> None:
    """What Palier wrote for the merchant's mailer about the person (an expiry warning, a sign-in code: to their
    e-mail) is data about them, still held until housekeeping deletes it: in the export, with when it was written
    and whether it was handed over. A sign-in code still usable is not copied into a file."""
    from palier.notify import outbox

    person = _person()
    member = program.enrol(**person)
    other = program.enrol(**_person())
    with db.write() as conn:
        for who in (member, other):
            payload = {"member_id": who["id"], "email": who["email"], "points": 40}
            outbox.emit(
                conn, program_id=program.id, type_="points_expiring", subject_id=who["id"], payload=payload,
                now=clock.now(),
            )  # fmt: skip
    client: TestClient = program.client
    form = client.get(f"/p/{program.id}/sign-in").text
    asked = client.post(
        f"/p/{program.id}/sign-in", data={"email": person["email"], "csrf": csrf_of(form)}, follow_redirects=False
    )
    assert asked.status_code == 303, asked.text

    messages = program.call("GET", f"/v1/members/{member['id']}/export").json()["messages"]
    assert sorted(m["type"] for m in messages) == ["member_enrolled", "points_expiring", "portal_sign_in_code"]
    expiring = next(m for m in messages if m["type"] == "points_expiring")
    assert expiring["payload"]["email"] == person["email"] and expiring["delivered_at"] is None
    code = next(m for m in messages if m["type"] == "portal_sign_in_code")
    assert "code" not in code["payload"] and code["payload"]["email"] == person["email"]
