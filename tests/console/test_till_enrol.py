"""Enrolling a customer at the till: the same service as ``POST /v1/members`` (channel store), prefilled from
what the search box held, refused without a way to find the customer again, and a second tap (or someone
already a member) leads to that member's page instead of a twin account."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from palier.db import Database
from palier.members.tables import members
from palier.rewards import codes
from tests.api.helpers import ApiProgram, luhn_card, reward_body, spaced
from tests.console.conftest import csrf_of, sign_in

CARD = "2900000000024"


def _count(db: Database, program: ApiProgram) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).where(members.c.program_id == program.id)).scalar_one())


def test_store_staff_enrol_a_customer_the_search_did_not_find(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    token = csrf_of(client.get("/till").text)
    missed = client.post("/till", data={"csrf": token, "q": CARD})
    assert "Aucun membre" in missed.text and f'<input type="hidden" name="q" value="{CARD}">' in missed.text
    form = client.post("/till/new-member/start", data={"csrf": token, "q": CARD}).text
    assert f'name="card" type="text" value="{CARD}"' in form  # the scanned card, already in its field
    token = csrf_of(form)
    sent = {"csrf": token, "first_name": "Inès", "last_name": "Garnier", "card": CARD, "phone": "06 11 22 33 44",
            "email": "", "birthday": "1991-05-14", "language": "fr", "email_marketing": "on"}  # fmt: skip
    done = client.post("/till/new-member", data=sent, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("?ok=enrolled")
    page = client.get(done.headers["location"]).text
    assert "Bienvenue ! Le membre est inscrit." in page and "Inès Garnier" in page
    member_id = done.headers["location"].split("/")[3].split("?")[0]
    found = program.call("POST", "/v1/members/lookup", json={"kind": "card", "value": CARD}).json()
    assert found["id"] == member_id and found["phone"] == "+33611223344"
    assert found["consents"]["email_marketing"] is True and found["consents"]["sms_marketing"] is False
    assert found["enrolment_channel"] == "store" and found["birthday"] == "1991-05-14"

    twice = client.post("/till/new-member", data=sent)  # the second tap
    assert twice.status_code == 409 and f'href="/till/members/{member_id}"' in twice.text
    assert _count(db, program) == 1


def test_a_customer_nobody_could_find_again_is_not_enrolled(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    token = csrf_of(client.get("/till/new-member").text)
    nameless = client.post("/till/new-member", data={"csrf": token, "first_name": "Anonyme", "language": "fr"})
    assert nameless.status_code == 422 and "Un e-mail, un téléphone ou une carte" in nameless.text
    sent = {"csrf": token, "first_name": "Léo", "email": "leo@", "language": "fr"}
    bad_mail = client.post("/till/new-member", data=sent | {"sms_marketing": "on"})
    assert bad_mail.status_code == 422 and 'id="email-error"' in bad_mail.text and 'value="Léo"' in bad_mail.text
    assert '<input type="checkbox" name="sms_marketing" checked>' in bad_mail.text  # the consent is still given
    assert '<input type="checkbox" name="email_marketing">' in bad_mail.text
    assert "corrigez les champs signalés ci-dessous" in bad_mail.text
    all_wrong = client.post("/till/new-member", data=sent | {"phone": "12", "card": spaced(luhn_card())})
    assert all_wrong.status_code == 422
    for name in ("email", "phone", "card"):  # every mistake at once, each at its field
        assert f'id="{name}-error"' in all_wrong.text, name
    assert _count(db, program) == 0


def test_a_marketer_cannot_enrol_at_the_till(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    assert sign_in(client, add_staff(program.id, "marketer")).status_code == 303
    assert client.get("/till/new-member", follow_redirects=False).status_code == 403


def test_a_bank_card_swiped_at_the_till_is_never_shown_nor_kept_as_a_loyalty_card(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    bank_card = luhn_card()
    last4 = bank_card[-4:]
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    token = csrf_of(client.get("/till").text)
    missed = client.post("/till", data={"csrf": token, "q": bank_card})
    assert "Aucun membre" in missed.text and f"****{last4}" in missed.text and bank_card not in missed.text
    form = client.post("/till/new-member/start", data={"csrf": token, "q": bank_card}).text
    assert 'name="card" type="text" value=""' in form and bank_card not in form  # not put in the card field
    typed = {"csrf": csrf_of(form), "first_name": "Inès", "card": spaced(bank_card), "language": "fr"}
    refused = client.post("/till/new-member", data=typed)
    assert refused.status_code == 422 and 'id="card-error"' in refused.text and "carte bancaire" in refused.text
    assert bank_card[4:12] not in refused.text.replace(" ", "")  # the number is not shown back
    assert _count(db, program) == 0


def test_a_card_scanned_twice_in_a_row_finds_its_member_and_is_prefilled_once(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """A scanner that fires twice types ``MF36819677MF36819677``: the member of ``MF36819677`` is found."""
    known = program.enrol(first_name="Léa", identities=[{"kind": "card", "value": "MF36819677"}])
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    token = csrf_of(client.get("/till").text)
    found = client.post("/till", data={"csrf": token, "q": "MF36819677MF36819677"}, follow_redirects=False)
    assert found.headers.get("location") == f"/till/members/{known['id']}"
    form = client.post("/till/new-member/start", data={"csrf": token, "q": "MF55501234MF55501234"}).text
    assert 'name="card" type="text" value="MF55501234"' in form  # an unknown card scanned twice, once


def test_enrolling_someone_with_the_name_of_an_active_member_asks_once_and_links_to_them(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    lea = program.enrol(first_name="Léa", last_name="Moreau", email="lea@example.fr")
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    token = csrf_of(client.get("/till/new-member").text)
    sent = {"csrf": token, "first_name": "LEA", "last_name": "moreau", "card": CARD, "language": "fr"}
    asked = client.post("/till/new-member", data=sent)
    assert asked.status_code == 409 and "Un membre actif porte déjà ce prénom et ce nom" in asked.text
    assert f'href="/till/members/{lea["id"]}"' in asked.text and f'value="{CARD}"' in asked.text
    assert '<input type="hidden" name="namesake" value="yes">' in asked.text and _count(db, program) == 1
    done = client.post("/till/new-member", data=sent | {"namesake": "yes"}, follow_redirects=False)
    assert done.status_code == 303 and _count(db, program) == 2  # someone else: enrolled all the same
    other = sent | {"first_name": "Léo", "card": "2900000000031"}
    assert client.post("/till/new-member", data=other, follow_redirects=False).status_code == 303


def test_a_bank_card_number_typed_in_a_name_is_not_shown_back(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str], db: Database
) -> None:
    bank_card = luhn_card()
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    token = csrf_of(client.get("/till/new-member").text)
    typed = {"csrf": token, "first_name": f"Inès {bank_card}", "card": CARD, "language": "fr"}
    refused = client.post("/till/new-member", data=typed)
    assert refused.status_code == 422 and 'id="first_name-error"' in refused.text
    assert bank_card[4:12] not in refused.text.replace(" ", "") and f"****{bank_card[-4:]}" in refused.text
    assert _count(db, program) == 0


def test_a_coupon_code_typed_with_a_wrong_character_is_said_mistyped_not_offered_as_a_new_card(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 100)
    reward = program.call("POST", "/v1/rewards", json=reward_body(cost_points=10)).json()
    code = program.call("POST", f"/v1/members/{ann['id']}/redemptions", json={"reward_id": reward["id"]}).json()
    real = codes.display(code["coupon"]["code"])
    typed = real[:-1] + ("Y" if real[-1] != "Y" else "Z")  # read out from the customer's phone, one slip
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    token = csrf_of(client.get("/till").text)
    missed = client.post("/till", data={"csrf": token, "q": typed.lower()})
    assert missed.status_code == 200 and "ressemble au code d&#39;un coupon" in missed.text, missed.text
    form = client.post("/till/new-member/start", data={"csrf": token, "q": typed}).text
    assert 'name="card" type="text" value=""' in form  # not a loyalty card to enrol someone with
    card = client.post("/till/new-member/start", data={"csrf": token, "q": "MF36 8196 77"}).text
    assert 'name="card" type="text" value="MF36 8196 77"' in card  # a card printed in groups is still one


def test_the_enrolment_form_opened_from_a_search_switches_language_on_its_own_page(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    assert sign_in(client, add_staff(program.id, "store_staff")).status_code == 303
    token = csrf_of(client.get("/till").text)
    form = client.post("/till/new-member/start", data={"csrf": token, "q": "06 12 34 56 78"}).text
    switch = re.search(r'<a href="([^"]+)" hreflang="en"', form)
    assert switch is not None and switch.group(1) == "/till/new-member?lang=en"  # not the search's post, a 404
    assert client.get(switch.group(1)).status_code == 200
