"""Refused console forms over HTTP: each message in the page's language, in words meant for staff, and tied
to the field it is about (``aria-invalid``, ``aria-describedby``) so that a screen reader says it there."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from palier.errors import InvalidInput
from palier.web.console.forms import parse_money
from tests.api.helpers import ApiProgram, reward_body
from tests.console.conftest import csrf_of, sign_in

SETTINGS = {"name": "Maison", "points_name": "points", "timezone": "Europe/Paris", "default_country": "FR",
            "rounding": "floor", "return_shortfall": "debt", "enrolment": "open", "earn_points": "1",
            "earn_per_amount": "100", "return_window_days": "14", "welcome_points": "0", "redeem_points": "100",
            "redeem_amount": "100", "pay_with_points_max_percent": "50", "points_lifetime_months": "",
            "expiry_warning_days": "21"}  # fmt: skip


def control(page: str, field: str) -> str:
    found = re.search(rf'<(?:input|select|textarea)[^>]*\bid="{field}"[^>]*>', page)
    assert found, f"no field {field}"
    return found[0]


def said_with(page: str, field: str) -> list[str]:
    """What a screen reader reads out with ``field``: the texts its ``aria-describedby`` names, in order."""
    described = re.search(r'aria-describedby="([^"]+)"', control(page, field))
    texts = []
    for ident in described[1].split() if described else []:
        found = re.search(rf'<(\w+)[^>]*\bid="{ident}"[^>]*>(.*?)</\1>', page, re.S)
        assert found, f"{field} names {ident}, which is not on the page"
        texts.append(" ".join(html.unescape(re.sub(r"<[^>]+>", " ", found[2])).split()))
    return texts


def field_error(page: str, field: str) -> str:
    """The refusal shown for ``field``: marked invalid, it names the message (first) with ``aria-describedby``."""
    assert 'aria-invalid="true"' in control(page, field), control(page, field)
    return said_with(page, field)[0]


def test_refused_settings_speak_english_words_to_an_english_admin_not_the_validators(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    token = csrf_of(client.get("/console/settings?lang=en").text)
    sent = SETTINGS | {"csrf": token, "timezone": "Mars/Olympus", "default_country": "ZZZ", "welcome_points": "lots"}
    page = client.post("/console/settings?lang=en", data=sent).text
    assert field_error(page, "timezone") == (
        "Unknown time zone: give a name such as Europe/Paris, Europe/Brussels or America/Montreal."
    )
    assert field_error(page, "default_country") == "This is not a country code: use two letters such as FR, BE or CH."
    assert field_error(page, "welcome_points") == "This is not the kind of value expected: a whole number, for example."
    for developers_words in ("String should match", "unknown time zone", "minor units: 12.50 is 1250"):
        assert developers_words not in html.unescape(page), developers_words
    french = client.post("/console/settings?lang=fr", data=sent).text
    assert field_error(french, "timezone").startswith("Fuseau horaire inconnu")


def test_a_colleague_and_a_customer_refused_are_told_why_in_sentences_in_english(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    token = csrf_of(client.get("/console/staff?lang=en").text)
    colleague = {"csrf": token, "display_name": "Zoé", "email": "zoe@shop.example", "role": "admin"}
    page = client.post("/console/staff?lang=en", data=colleague | {"password": "short"}).text
    assert field_error(page, "new-password") == "A password has at least 10 characters."
    customer = {"csrf": token, "first_name": "Zed", "email": "zed@example.org", "language": "en"}
    page = client.post("/till/new-member?lang=en", data=customer | {"birthday": "2999-01-01"}).text
    assert field_error(page, "birthday") == "A birthday cannot be in the future."


def test_a_refused_adjustment_is_tied_to_its_field_and_every_hint_to_its_own(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    page = client.get(f"/console/members/{ann['id']}").text
    assert said_with(page, "points") == ["Positif pour créditer, négatif pour débiter."]
    assert said_with(page, "reason") == ["Obligatoire, 3 caractères au moins."]
    sent = {"csrf": csrf_of(page), "points": "beaucoup", "reason": "Geste commercial"}
    refused = client.post(f"/console/members/{ann['id']}/adjust", data=sent)
    assert refused.status_code == 422
    assert field_error(refused.text, "points") == "Points : un nombre entier de points, par exemple 50 ou -20."
    assert "aria-invalid" not in control(refused.text, "reason")  # the reason was fine
    settings = client.get("/console/settings").text
    assert said_with(settings, "earn_per_amount") == ["En centimes : 100 = 1,00."]
    assert said_with(settings, "points_lifetime_months") == ["Vide : les points n'expirent jamais."]


def test_a_refused_payment_at_the_till_names_the_box_at_fault_and_marks_it(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 500)
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    till = f"/till/members/{ann['id']}"
    pay = {"csrf": csrf_of(client.get(till).text), "order_id": "T-1", "order_total": "10,00", "points": "0"}
    zero = client.post(f"{till}/pay", data=pay)
    assert zero.status_code == 422
    assert said_with(zero.text, "pay_points") == ["Points à utiliser : Donnez au moins 1."]
    assert 'aria-invalid="true"' in control(zero.text, "pay_points")
    assert "aria-invalid" not in control(zero.text, "order_total")
    no_total = client.post(f"{till}/pay?lang=en", data=pay | {"points": "100", "order_total": "ten"})
    assert field_error(no_total.text, "order_total") == "Ticket total: Type an amount such as 12.50."
    assert "aria-invalid" not in control(no_total.text, "pay_points")
    assert program.balance(ann["id"])["available"] == 500  # nothing paid


def test_every_table_column_has_a_header_and_a_members_language_is_named_in_the_pages(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    body = {"kind": "gift", "cost_points": 50, "title": {"fr": "Tasse", "en": "Mug"}}
    assert program.call("POST", "/v1/rewards", json=body).status_code == 201
    ann = program.enrol(first_name="Ann", language="en")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    for path in ("/console/rewards", "/console/dashboard", f"/console/members/{ann['id']}"):
        page = client.get(path).text
        assert not re.search(r"<th\b[^>]*>\s*</th>", page), path  # a column without a name
    rewards = client.get("/console/rewards").text
    assert 'Modifier<span class="visually-hidden"> Tasse</span></a>' in rewards  # which reward each link edits
    assert "<dd>Anglais</dd>" in client.get(f"/console/members/{ann['id']}?lang=fr").text  # not "English"
    assert "<dd>English</dd>" in client.get(f"/console/members/{ann['id']}?lang=en").text


def test_a_yaml_document_refused_says_why_in_either_language_with_the_choices_and_bounds(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    token = csrf_of(client.get("/console/new-reward").text)
    document = "kind: voucher\ncost_points: 0\ntitle: {fr: Tasse, en: Mug}\n"
    english = client.post("/console/new-reward?lang=en", data={"csrf": token, "document": document})
    assert english.status_code == 422
    items = re.findall(r"<li>(.*?)</li>", english.text.split('class="problem-list"')[1], re.S)
    listed = [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", item)).split()) for item in items]
    assert listed == [
        "Line 1 kind — This is not one of the possible choices: amount_off, percent_off, free_product,"
        " free_shipping, gift, store_credit. (invalid_choice)",
        "Line 2 cost_points — Give at least 1. (out_of_range)",
    ]
    french = client.post("/console/new-reward?lang=fr", data={"csrf": token, "document": document}).text
    assert "Cette valeur ne fait pas partie des choix possibles : amount_off, percent_off" in html.unescape(french)
    broken = client.post("/console/new-reward?lang=en", data={"csrf": token, "document": "kind: [gift\n"}).text
    assert "This is not valid YAML at this line: check the indentation" in html.unescape(broken)
    assert program.call("GET", "/v1/rewards").json() == []  # nothing saved


def test_an_editor_holding_a_word_or_a_list_says_a_document_of_fields_is_expected_in_the_pages_language(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """Not "a whole number, for example" (the words for a field of the wrong type), nor English on a French page."""
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    token = csrf_of(client.get("/console/new-reward").text)
    editors = ("/console/new-reward", "/console/new-segment", "/console/new-plan", "/console/tiers", "/console/rules")
    for page in editors:
        for document in ("Tasse 🎉", "- kind: gift\n"):
            for language, words in (("fr", "Le document est une suite de champs"), ("en", "The document is a set")):
                refused = client.post(f"{page}?lang={language}", data={"csrf": token, "document": document})
                assert refused.status_code == 422, (page, document)
                said = html.unescape(refused.text)
                assert words in said, (page, document, language)
                assert "nombre entier" not in said and "whole number" not in said and "mapping" not in said
    assert program.call("GET", "/v1/rewards").json() == []


def test_a_refused_sign_in_and_an_unknown_coupon_are_read_out_with_their_boxes(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    email = add_staff(program.id, "admin")
    refused = sign_in(client, email, password="not the password")
    assert refused.status_code == 401
    for box in ("email", "password"):
        assert said_with(refused.text, box) == ["E-mail ou mot de passe incorrect."]
    assert sign_in(client, email).status_code == 303
    unknown = client.get("/console/coupons", params={"code": "ZZZZ-ZZZZ-ZZ"})
    assert field_error(unknown.text, "code") == "Ce code de coupon est mal saisi : vérifiez-le caractère par caractère."


def test_the_till_reads_an_amount_as_pages_and_other_software_write_it() -> None:
    for typed in ("1234,50", "1 234,50", "1\u202f234,50\u00a0€", "1\u00a0234,50 €", "1234.50", "€1,234.50", "1.234,50"):
        assert parse_money(typed, 2, field="order_total") == 123450, typed
    for ambiguous in ("1,234", "1.234", "1,23,4.50", "1,234,50"):  # a thousand or a bit over one: asked again
        with pytest.raises(InvalidInput):
            parse_money(ambiguous, 2, field="order_total")


def test_a_nul_character_typed_in_a_form_is_refused_with_a_page_in_its_language(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """Pasted from a PDF or sent by a scanner: a page saying which box and what to do, not the API's JSON."""
    ann = program.enrol(first_name="Ann")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    token = csrf_of(client.get("/till").text)
    for language, words in (("fr", "caractère invisible (NUL)"), ("en", "an invisible character (NUL)")):
        for path, data in (
            ("/till", {"q": "MF\u000012"}),
            (f"/console/members/{ann['id']}/adjust", {"points": "5", "reason": "Geste\u0000commercial"}),
            (f"/p/{program.id}/sign-in", {"email": "ann\u0000@example.com"}),
        ):
            refused = client.post(f"{path}?lang={language}", data={"csrf": token, **data})
            assert refused.status_code == 422, (path, refused.text)
            assert refused.headers["content-type"].startswith("text/html"), (path, refused.text)
            assert words in html.unescape(refused.text), (path, language)
    assert program.balance(ann["id"])["available"] == 0  # nothing was written


def test_a_superscript_or_other_non_ascii_digit_is_refused_at_its_field_not_a_500(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """ "²" is a digit to Python's str.isdigit but no number int() reads: each box says so, nothing changes."""
    reward = program.call("POST", "/v1/rewards", json=reward_body()).json()
    ann = program.enrol(first_name="Ann")
    program.call("POST", f"/v1/members/{ann['id']}/adjustments", json={"points": 500, "reason": "Welcome"})
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    token = csrf_of(client.get("/console/settings?lang=en").text)
    for typed in ("²", "³0", "½"):
        for field in ("welcome_points", "points_lifetime_months"):
            page = client.post("/console/settings?lang=en", data=SETTINGS | {"csrf": token, field: typed})
            assert page.status_code == 422 and field_error(page.text, field), (field, typed)
        form = {"csrf": token, "title_fr": "Bon", "title_en": "Voucher", "cost_points": "500", "status": "active"}
        for field in ("cost_points", "stock"):
            page = client.post(f"/console/rewards/{reward['id']}?lang=en", data=form | {field: typed})
            assert page.status_code == 422, (field, typed, page.status_code)
        paid = client.post(
            f"/till/members/{ann['id']}/pay?lang=en",
            data={"csrf": token, "kind": "points", "points": typed, "order_total": "10", "order_id": "T-SUP"},
        )
        assert paid.status_code == 422, (typed, paid.status_code)
        assert client.get(f"/console/dashboard?weeks={typed}").status_code == 200
    assert program.call("GET", f"/v1/rewards/{reward['id']}").json()["cost_points"] == 500
    assert program.call("GET", "/v1/program").json()["welcome_points"] == 0
    assert program.balance(ann["id"])["available"] == 500


def test_a_member_with_no_points_to_spend_is_offered_no_payment_box_at_the_till(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """A box whose highest value is 0 would only get the browser's own "must be 0 or less" (in its language)."""
    ann = program.enrol(first_name="Ann")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    page = client.get(f"/till/members/{ann['id']}").text
    assert 'id="pay_points"' not in page
    assert "Pas de points à utiliser pour l&#39;instant." in page
    program.adjust(ann["id"], 500)
    assert 'id="pay_points"' in client.get(f"/till/members/{ann['id']}").text
