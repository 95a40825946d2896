"""The till records the sale itself and refunds a ticket, for shops whose till sends Palier nothing: the same
services as POST /v1/events/purchases and /returns, the ticket number as the order id, points earned only on
what was paid with money; a second tap is answered once, and a form sent again after Back asks first."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from palier.clock import FrozenClock
from palier.db import Database
from palier.programs.tables import audit_entries
from tests.api.helpers import ApiProgram
from tests.console.conftest import csrf_of, sign_in


def _till(client: TestClient, program: ApiProgram, add_staff: Callable[..., str], member_id: str) -> str:
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    return csrf_of(client.get(f"/till/members/{member_id}").text)


def _field(html: str, field_id: str) -> str:
    found = re.search(rf'id="{field_id}" name="[^"]+" type="[^"]+" value="([^"]*)"', html)
    assert found, f"no field {field_id}"
    return found.group(1)


def _post(client: TestClient, path: str, data: dict[str, Any]) -> Any:
    return client.post(path, data=data, follow_redirects=False)


def test_points_paid_then_the_sale_recorded_on_the_same_ticket_earns_on_the_money_part_only(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 300)
    token = _till(client, program, add_staff, ann["id"])
    till = f"/till/members/{ann['id']}"
    paid = _post(
        client, f"{till}/pay", {"csrf": token, "order_id": "T0930-ABCDE", "order_total": "20", "points": "100"}
    )
    assert paid.status_code == 303
    page = client.get(paid.headers["location"]).text
    assert _field(page, "sale_order_id") == "T0930-ABCDE"  # the sale goes on the ticket the points paid

    below = _post(client, f"{till}/sale", {"csrf": token, "order_id": "T0930-ABCDE", "order_total": "0,50"})
    assert below.status_code == 422  # less than the €1 the points paid: the total is at fault, and marked
    assert re.search(r'id="sale_order_total"[^>]*aria-invalid="true"', below.text), below.text
    sale = {"csrf": token, "order_id": "T0930-ABCDE", "order_total": "20,00"}
    recorded = _post(client, f"{till}/sale", sale)
    assert recorded.status_code == 303 and "ok=sale" in recorded.headers["location"]
    said = client.get(recorded.headers["location"]).text
    assert "Vente enregistrée (ticket T0930-ABCDE, 20,00\u00a0€) : +19 points, utilisables le 16 mars 2026." in said
    assert _post(client, f"{till}/sale", sale).status_code == 303  # a second tap: the same sale, once
    balance = program.balance(ann["id"])
    assert (balance["available"], balance["pending"]) == (200, 19)  # €1 paid with 100 points earns nothing
    with db.read() as conn:
        audit = conn.execute(
            select(audit_entries.c.actor, audit_entries.c.details).where(
                audit_entries.c.program_id == program.id,
                audit_entries.c.action == "till.sale",
                audit_entries.c.subject_id == "T0930-ABCDE",
            )
        ).all()
    assert len(audit) == 1 and audit[0].actor.startswith("staff:")  # who recorded it, once
    assert audit[0].details["points"] == 19 and audit[0].details["total"] == 2000

    forged = client.get(f"{till}?ok=sale&order=T9999-NOPE").text  # a made-up link shows no sale
    assert "Vente enregistrée" not in forged


def test_a_sale_sent_again_under_a_new_ticket_asks_first_and_records_only_when_confirmed(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    bo = program.enrol(first_name="Bo")
    token = _till(client, program, add_staff, bo["id"])
    till = f"/till/members/{bo['id']}"
    assert (
        _post(client, f"{till}/sale", {"csrf": token, "order_id": "T1000-AAAAA", "order_total": "8,40"}).status_code
        == 303
    )
    again = {"csrf": token, "order_id": "T1001-BBBBB", "order_total": "8,40"}
    asked = _post(client, f"{till}/sale", again)  # Back, then the button again: a new ticket number
    assert asked.status_code == 409
    assert (
        "Une vente de 8,40\u00a0€ a déjà été enregistrée pour ce client le" in asked.text
        and "T1000-AAAAA" in asked.text
    )
    assert program.balance(bo["id"])["pending"] == 8
    confirmed = _post(client, f"{till}/sale", again | {"repeat": "yes"})
    assert confirmed.status_code == 303
    assert program.balance(bo["id"])["pending"] == 16


def test_a_refund_takes_back_what_its_part_earned_and_gives_back_the_points_that_paid_it(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann, bo = program.enrol(first_name="Ann"), program.enrol(first_name="Bo")
    program.adjust(ann["id"], 300)
    program.purchase(bo["id"], order_id="WEB-BO-1")
    token = _till(client, program, add_staff, ann["id"])
    till = f"/till/members/{ann['id']}"
    _post(client, f"{till}/pay", {"csrf": token, "order_id": "T1100-CCCCC", "order_total": "40", "points": "200"})
    assert (
        _post(client, f"{till}/sale", {"csrf": token, "order_id": "T1100-CCCCC", "order_total": "40"}).status_code
        == 303
    )
    assert program.balance(ann["id"])["pending"] == 38  # €38 paid with money

    refund = {"csrf": token, "return_id": "RT1110-DDDDD", "order_id": "T1100-CCCCC", "amount": "20"}
    done = _post(client, f"{till}/refund", refund)
    assert done.status_code == 303
    said = client.get(done.headers["location"]).text
    assert "Remboursement enregistré sur le ticket T1100-CCCCC : 19 points repris. 100 points rendus au client." in said
    assert _post(client, f"{till}/refund", refund).status_code == 303  # a second tap: one refund
    balance = program.balance(ann["id"])
    assert (balance["available"], balance["pending"]) == (200, 19)

    twice = _post(client, f"{till}/refund", refund | {"return_id": "RT1111-EEEEE"})  # Back, then Refund again
    assert twice.status_code == 409 and "20,00\u00a0€ ont déjà été remboursés sur le ticket T1100-CCCCC" in twice.text
    too_much = _post(client, f"{till}/refund", refund | {"return_id": "RT1112-FFFFF", "amount": "30", "repeat": "yes"})
    assert too_much.status_code == 422  # what is left to give back on it, as the English page says it too
    assert "Montant remboursé : Il ne reste que 20,00\u00a0€ à rembourser sur ce ticket." in too_much.text
    theirs = _post(client, f"{till}/refund", refund | {"return_id": "RT1113-GGGGG", "order_id": "WEB-BO-1"})
    assert theirs.status_code == 422 and "autre client" in theirs.text
    assert program.balance(bo["id"])["pending"] > 0  # Bo's order untouched
    assert program.balance(ann["id"])["pending"] == 19


def test_a_sale_with_no_total_or_a_made_up_one_is_refused_and_nothing_is_recorded(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    cy = program.enrol(first_name="Cy")
    token = _till(client, program, add_staff, cy["id"])
    for total in ("0", "abc", "12,345", "2000000000"):
        refused = _post(
            client, f"/till/members/{cy['id']}/sale", {"csrf": token, "order_id": "T1200-HHHHH", "order_total": total}
        )
        assert refused.status_code == 422, total
        assert f'value="{total}"' in refused.text  # what was typed comes back
    assert program.balance(cy["id"])["pending"] == 0
    assert program.history(cy["id"]) == []


def test_a_second_tap_seconds_later_is_the_same_sale_and_the_same_refund_not_a_refusal(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], clock: FrozenClock, db: Database
) -> None:
    dee = program.enrol(first_name="Dee")
    token = _till(client, program, add_staff, dee["id"])
    till = f"/till/members/{dee['id']}"
    sale = {"csrf": token, "order_id": "T1300-JJJJJ", "order_total": "30"}
    assert _post(client, f"{till}/sale", sale).status_code == 303
    clock.advance(seconds=2)  # the network was slow: the button tapped again
    again = _post(client, f"{till}/sale", sale)
    assert again.status_code == 303 and "ok=sale" in again.headers["location"]
    assert "Vente enregistrée (ticket T1300-JJJJJ" in client.get(again.headers["location"]).text
    assert program.balance(dee["id"])["pending"] == 30

    refund = {"csrf": token, "return_id": "RT1301-KKKKK", "order_id": "T1300-JJJJJ", "amount": "10"}
    assert _post(client, f"{till}/refund", refund).status_code == 303
    clock.advance(seconds=2)
    again = _post(client, f"{till}/refund", refund)
    assert again.status_code == 303 and "ok=refund" in again.headers["location"]
    assert program.balance(dee["id"])["pending"] == 20
    changed = _post(client, f"{till}/sale", sale | {"order_total": "31"})  # another total on the same ticket
    assert changed.status_code == 409 and "T1300-JJJJJ" in changed.text  # a conflict, said as one
    assert program.balance(dee["id"])["pending"] == 20
    with db.read() as conn:
        audited = conn.execute(
            select(audit_entries.c.action).where(
                audit_entries.c.program_id == program.id, audit_entries.c.action.in_(["till.sale", "till.refund"])
            )
        ).all()
    assert sorted(a.action for a in audited) == ["till.refund", "till.sale"]  # each once


def test_a_refund_of_a_ticket_paid_partly_with_store_credit_says_the_credit_given_back(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """The cashier must know how much of the refund went back to the customer's credit, not to hand it in cash too."""
    eve = program.enrol(first_name="Eve")
    program.adjust(eve["id"], 600)
    credit = {"kind": "store_credit", "amount": 500, "cost_points": 500, "title": {"fr": "Avoir", "en": "Credit"}}
    reward = program.call("POST", "/v1/rewards", json=credit).json()
    assert program.call("POST", f"/v1/members/{eve['id']}/redemptions", json={"reward_id": reward["id"]}).is_success
    token = _till(client, program, add_staff, eve["id"])
    till = f"/till/members/{eve['id']}"
    paid = {"csrf": token, "kind": "credit", "order_id": "T1400-LLLLL", "order_total": "40", "amount": "5"}
    assert _post(client, f"{till}/pay", paid).status_code == 303
    assert (
        _post(client, f"{till}/sale", {"csrf": token, "order_id": "T1400-LLLLL", "order_total": "40"}).status_code
        == 303
    )

    refund = {"csrf": token, "return_id": "RT1410-MMMMM", "order_id": "T1400-LLLLL", "amount": "40"}
    done = _post(client, f"{till}/refund", refund)
    assert done.status_code == 303
    said = client.get(done.headers["location"]).text
    assert "Remboursement enregistré sur le ticket T1400-LLLLL : 35 points repris." in said
    assert "5,00\u00a0€ rendus en avoir : à ne pas rendre en espèces." in said


def test_a_refund_says_how_many_points_of_its_payment_had_expired_meanwhile(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database, clock: FrozenClock
) -> None:
    from palier.jobs import sweeps

    eve = program.enrol(first_name="Eve")
    program.adjust(eve["id"], 300)  # points live 12 months
    token = _till(client, program, add_staff, eve["id"])
    till = f"/till/members/{eve['id']}"
    _post(client, f"{till}/pay", {"csrf": token, "order_id": "T1400-KKKKK", "order_total": "10", "points": "200"})
    assert (
        _post(client, f"{till}/sale", {"csrf": token, "order_id": "T1400-KKKKK", "order_total": "10"}).status_code
        == 303
    )
    clock.advance(days=400)  # the points that paid have expired since
    sweeps.expire(db, clock, program_id=program.id)
    token = _till(client, program, add_staff, eve["id"])
    refund = {"csrf": token, "return_id": "RT1401-LLLLL", "order_id": "T1400-KKKKK", "amount": "10"}
    done = _post(client, f"{till}/refund", refund)
    said = client.get(done.headers["location"]).text
    assert "200 points de son paiement avaient expiré entre-temps : ils ne reviennent pas." in said


def test_a_refund_says_the_points_given_back_to_this_customer_apart_from_another_payers(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """Bo paid half of Ann's ticket with his points (a gift): the refund gives them back to Bo, and the till
    must not tell the cashier that Ann got them."""
    ann, bo = program.enrol(first_name="Ann"), program.enrol(first_name="Bo")
    program.adjust(ann["id"], 300)
    program.adjust(bo["id"], 300)
    token = _till(client, program, add_staff, bo["id"])
    paid = {"csrf": token, "order_id": "T1500-NNNNN", "order_total": "40", "points": "200"}
    assert _post(client, f"/till/members/{bo['id']}/pay", paid).status_code == 303
    ann_till = f"/till/members/{ann['id']}"
    sale = {"csrf": token, "order_id": "T1500-NNNNN", "order_total": "40"}
    assert _post(client, f"{ann_till}/sale", sale).status_code == 303
    assert program.balance(ann["id"])["pending"] == 38  # €38 paid with money

    refund = {"csrf": token, "return_id": "RT1510-PPPPP", "order_id": "T1500-NNNNN", "amount": "20"}
    done = _post(client, f"{ann_till}/refund", refund)
    assert done.status_code == 303
    said = client.get(done.headers["location"]).text
    assert "Remboursement enregistré sur le ticket T1500-NNNNN : 19 points repris." in said
    assert "rendus au client" not in said  # Ann got no points back
    assert "100 points rendus à un autre membre, qui avait payé une partie du ticket." in said
    english = client.get(done.headers["location"] + "&lang=en").text
    assert "given back to the customer" not in english
    assert "100 points given back to another member, who had paid part of the ticket." in english
    assert (program.balance(ann["id"])["available"], program.balance(bo["id"])["available"]) == (300, 200)


def test_a_refused_till_form_answers_with_the_members_page_address_and_its_language_switch_works(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    token = _till(client, program, add_staff, ann["id"])
    page = f"/till/members/{ann['id']}"
    refused = _post(client, f"{page}/sale", {"csrf": token, "order_id": "T1000-ABCDE", "order_total": "abc"})
    assert refused.status_code == 422
    assert f'<meta name="palier-page-url" content="{page}">' in refused.text  # the address bar: a page to reload
    switch = re.search(r'<a href="([^"]+)" hreflang="en"', refused.text)
    assert switch is not None and switch.group(1) == f"{page}?lang=en"  # not the form's address, a 404
    assert "Record the sale" in client.get(switch.group(1)).text
