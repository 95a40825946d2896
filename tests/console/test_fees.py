"""A VIP membership fee given back, from the console's member page: the same service, checks and audit trail
as ``POST /v1/memberships/payments/{payment_id}/refund``, asked about first, refused in the page's words."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from palier.db import Database
from palier.programs.tables import audit_entries
from palier.web.present import display_code
from tests.api.helpers import ApiProgram, reward_body, unique
from tests.console.conftest import sign_in
from tests.console.test_once import form_of


def _pay(program: ApiProgram, member_id: str, paid_at: str = "2026-03-01T00:00:00Z") -> str:
    fee = {"payment_id": unique("ch"), "member_id": member_id, "plan": "club", "amount": 499, "paid_at": paid_at}
    paid = program.call("POST", "/v1/memberships/payments", json=fee)
    assert paid.status_code == 200, paid.text
    return fee["payment_id"]


def _vip(program: ApiProgram, *, gift: str | None = None) -> dict[str, Any]:
    plan = {"code": "club", "name": {"fr": "Club", "en": "Club"}, "price": 499, "period": "monthly", "trial_days": 0,
            "benefits": {"period_rewards": [gift] if gift else []}}  # fmt: skip
    made = program.call("POST", "/v1/plans", json=plan)
    assert made.status_code == 201, made.text
    return program.enrol(first_name="Vera")


def _audit(db: Database, member_id: str) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(select(audit_entries).where(audit_entries.c.subject_id == member_id)).mappings())


def test_an_admin_refunds_a_fee_from_the_member_page_and_the_membership_ends(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    gift = program.call("POST", "/v1/rewards", json=reward_body(cost_points=1)).json()["id"]
    vera = _vip(program, gift=gift)  # each period paid gives a coupon, taken back with the fee if unused
    payment = _pay(program, vera["id"])
    [coupon] = [c["code"] for c in program.call("GET", f"/v1/members/{vera['id']}/coupons").json()["items"]]
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    page = client.get(f"/console/members/{vera['id']}").text
    assert f'data-fee="{payment}"' in page and "4,99" in page and 'data-membership="club"' in page
    action = f"/console/members/{vera['id']}/fees/{payment}/refund"
    form = form_of(page, action)
    assert "Enregistrer le remboursement de la cotisation de 4,99\u00a0€" in page or "cotisation de 4,99 €" in page

    done = client.post(action, data=form | {"note": "Rétractation sous 14 jours"}, follow_redirects=False)
    assert done.status_code == 303, done.text
    after = client.get(done.headers["location"]).text
    assert f"Cotisation de 4,99 € remboursée (paiement {payment})." in after.replace("\u202f", " ").replace(
        "\u00a0", " "
    )
    assert "Le temps qu&#39;elle payait et qui n&#39;était pas écoulé est repris." in after
    assert f"Coupons de cette période annulés : {display_code(coupon)}." in after
    assert 'data-membership="club"' not in after  # lapsed: no more VIP line
    assert "Remboursée le" in after and action not in after  # no second button
    entries = [e for e in _audit(db, vera["id"]) if e["action"] == "membership_payment.refunded"]
    assert len(entries) == 1 and entries[0]["actor"].startswith("staff:")
    assert entries[0]["details"]["note"] == "Rétractation sous 14 jours"
    api = program.call("POST", f"/v1/memberships/payments/{payment}/refund", json={})
    assert api.status_code == 200 and api.json()["time_taken_back"] is True  # the API answers the same refund


def test_an_earlier_fee_is_refused_while_a_later_one_is_paid_in_the_pages_language(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    vera = _vip(program)
    first = _pay(program, vera["id"])
    later = _pay(program, vera["id"], paid_at="2026-03-02T08:00:00Z")  # pays the next month ahead
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    action = f"/console/members/{vera['id']}/fees/{first}/refund"
    form = form_of(client.get(f"/console/members/{vera['id']}").text, action)
    refused = client.post(action, data=form)
    assert refused.status_code == 409
    assert f"refusé : le paiement {later} paie la période suivante : remboursez-le d&#39;abord." in refused.text
    form = form_of(client.get(f"/console/members/{vera['id']}?lang=en").text, action)
    refused = client.post(action, data=form)
    assert refused.status_code == 409 and f"refused: payment {later} pays the period after this one" in refused.text
    assert program.call("POST", f"/v1/memberships/payments/{later}/refund", json={}).status_code == 200
    assert client.post(action, data=form, follow_redirects=False).status_code == 303  # now the latest: refunded


def test_a_fee_of_another_member_is_not_found_and_a_marketer_may_not_refund(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    vera = _vip(program)
    payment = _pay(program, vera["id"])
    other = program.enrol(first_name="Otto")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    form = form_of(
        client.get(f"/console/members/{vera['id']}?lang=en").text,
        f"/console/members/{vera['id']}/fees/{payment}/refund",
    )
    wrong = client.post(f"/console/members/{other['id']}/fees/{payment}/refund", data=form)
    assert wrong.status_code == 404 and "refused: no membership payment has this payment_id." in wrong.text

    assert sign_in(client, add_staff(program.id, "marketer")).status_code == 303
    page = client.get(f"/console/members/{vera['id']}").text
    assert f'data-fee="{payment}"' in page and "/refund" not in page  # the fees, no button
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    refused = client.post(f"/console/members/{vera['id']}/fees/{payment}/refund", data={"csrf": token.group(1)})
    assert refused.status_code == 403
    assert program.call("POST", f"/v1/memberships/payments/{payment}/refund", json={}).json()["time_taken_back"]


def test_store_staff_refund_a_fee_at_the_till_and_see_what_it_took_back(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    """Store staff may refund a fee (as a pos key may) but have no console member page: the till lists the
    member's fees with the same button, the same checks and the same audit entry."""
    gift = program.call("POST", "/v1/rewards", json=reward_body(cost_points=1)).json()["id"]
    vera = _vip(program, gift=gift)
    payment = _pay(program, vera["id"])
    [coupon] = [c["code"] for c in program.call("GET", f"/v1/members/{vera['id']}/coupons").json()["items"]]
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    assert client.get(f"/console/members/{vera['id']}").status_code == 403  # no console member page
    till = f"/till/members/{vera['id']}"
    page = client.get(till).text
    assert f'data-fee="{payment}"' in page and 'data-membership="club"' in page
    action = f"{till}/fees/{payment}/refund"
    form = form_of(page, action)

    done = client.post(action, data=form | {"note": "Rendu en caisse"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith(f"{till}?"), done.text
    after = client.get(done.headers["location"]).text
    said = after.replace("\u202f", " ").replace("\u00a0", " ")
    assert f"Cotisation de 4,99 € remboursée (paiement {payment})." in said
    assert f"Coupons de cette période annulés : {display_code(coupon)}." in after
    assert 'data-membership="club"' not in after and action not in after  # lapsed, and no second button
    again = client.post(action, data=form, follow_redirects=False)  # the same form sent twice: one refund
    assert again.status_code == 303
    [entry] = [e for e in _audit(db, vera["id"]) if e["action"] == "membership_payment.refunded"]
    assert entry["actor"].startswith("staff:") and entry["details"]["note"] == "Rendu en caisse"

    other = program.enrol(first_name="Otto")
    second = _pay(program, vera["id"], paid_at="2026-03-02T08:00:00Z")
    form = form_of(client.get(till).text, f"{till}/fees/{second}/refund")
    wrong = client.post(f"/till/members/{other['id']}/fees/{second}/refund", data=form)
    assert wrong.status_code == 404 and f"Remboursement de la cotisation {second} refusé" in wrong.text


def test_a_marketer_has_no_till_and_the_till_hides_fees_from_whoever_may_not_refund(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    vera = _vip(program)
    payment = _pay(program, vera["id"])
    assert sign_in(client, add_staff(program.id, "marketer")).status_code == 303
    assert client.get(f"/till/members/{vera['id']}").status_code == 403
    page = client.get(f"/console/members/{vera['id']}").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    refused = client.post(f"/till/members/{vera['id']}/fees/{payment}/refund", data={"csrf": token.group(1)})
    assert refused.status_code == 403


def test_store_staff_take_a_vip_fee_at_the_till_once_and_are_asked_before_a_second(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    """A shop whose till sends nothing takes the fee at the counter: the ticket is the payment's id."""
    vera = _vip(program)
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    till = f"/till/members/{vera['id']}"
    page = client.get(till).text
    assert "Formule VIP" in page and "Club · 4,99" in page.replace("\u00a0", " ")
    action = f"{till}/membership"
    form = form_of(page, action) | {"plan": "club", "payment_id": "T1000-VIPAA"}

    done = client.post(action, data=form, follow_redirects=False)
    assert done.status_code == 303, done.text
    after = client.get(done.headers["location"]).text.replace("\u00a0", " ").replace("\u202f", " ")
    assert "Cotisation Club de 4,99 € encaissée (ticket T1000-VIPAA) : membre VIP jusqu&#39;au" in after
    assert 'data-membership="club"' in after and 'data-fee="T1000-VIPAA"' in after
    assert client.post(action, data=form, follow_redirects=False).status_code == 303  # a second tap: the same fee
    [membership] = program.call("GET", f"/v1/members/{vera['id']}/memberships").json()
    assert membership["state"] == "active"
    paid_once = membership["period_end"]
    [entry] = [e for e in _audit(db, vera["id"]) if e["action"] == "till.membership_fee"]
    assert entry["actor"].startswith("staff:") and entry["details"]["payment_id"] == "T1000-VIPAA"

    again = form_of(client.get(till).text, action) | {"plan": "club", "payment_id": "T1001-VIPBB"}
    asked = client.post(action, data=again)  # the same plan minutes later under another ticket: asked first
    assert asked.status_code == 409
    assert "Une cotisation Club de 4,99 € a déjà été encaissée pour ce client" in asked.text.replace("\u00a0", " ")
    assert program.call("GET", f"/v1/members/{vera['id']}/memberships").json()[0]["period_end"] == paid_once
    confirmed = client.post(action, data=form_of(asked.text, action), follow_redirects=False)
    assert confirmed.status_code == 303, confirmed.text
    [renewed] = program.call("GET", f"/v1/members/{vera['id']}/memberships").json()
    assert renewed["period_end"] > paid_once  # one more period, after the one paid
    assert len([e for e in _audit(db, vera["id"]) if e["action"] == "till.membership_fee"]) == 2


def test_a_fee_the_plan_refuses_at_the_till_is_said_and_nothing_is_taken(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    plan = {"code": "cercle", "name": {"fr": "Cercle", "en": "Circle"}, "price": 9900, "period": "yearly",
            "access": "invitation"}  # fmt: skip
    assert program.call("POST", "/v1/plans", json=plan).status_code == 201
    otto = program.enrol(first_name="Otto")
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    till = f"/till/members/{otto['id']}"
    page = client.get(till).text
    assert "Code d&#39;invitation" in page and "99,00" in page and "par an" in page
    form = form_of(page, f"{till}/membership") | {"plan": "cercle", "payment_id": "T1100-VIPCC"}
    refused = client.post(f"{till}/membership", data=form)
    assert refused.status_code == 422 and 'id="till-error"' in refused.text  # invitation_required, in words
    assert "invitation" in refused.text.lower()
    assert program.call("GET", f"/v1/members/{otto['id']}/memberships").json() == []
    unknown = client.post(f"{till}/membership", data=form_of(page, f"{till}/membership") | {"plan": "nope"})
    assert unknown.status_code == 404 and 'id="till-error"' in unknown.text

    assert sign_in(client, add_staff(program.id, "marketer")).status_code == 303
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/plans").text)
    assert token
    assert client.post(f"{till}/membership", data={"csrf": token.group(1), "plan": "cercle"}).status_code == 403
