"""The admin console, the dashboard and the till in a browser (Chromium): what staff do in a day.

An admin adjusts a member's points and sees it in the history and on the dashboard; the till goes from a
card scan to a used coupon and a payment with points; store staff are refused the settings and rules;
the rules editor points at the offending line; the console speaks French and English.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from palier.staff import service as staff
from palier.staff.models import StaffCreate
from palier.web import present
from tests.api.helpers import ApiProgram, unique
from tests.web.conftest import MOBILE, LiveServer, assert_accessible

PASSWORD = "a long test password"
CARD = "2900000000123"


@pytest.fixture
def add_staff(web: LiveServer) -> Callable[..., str]:
    def add(program: ApiProgram, role: str, name: str) -> str:
        email = f"{role}.{unique('w')}@maison.example"
        data = StaffCreate.model_validate({"email": email, "display_name": name, "role": role, "password": PASSWORD})
        with web.db.write() as conn:
            staff.create(conn=conn, clock=web.clock, program_id=program.id, data=data, actor="test")
        return email

    return add


def sign_in(page: Any, email: str, next_path: str = "") -> None:
    page.goto(f"/console/sign-in{'?next=' + next_path if next_path else ''}")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()


def navigate(page: Any, target: Any) -> None:
    """Click ``target`` and wait for the page it leads to (so that what follows reads the new page)."""
    with page.expect_navigation():
        target.click()


def shop(program: ApiProgram) -> dict[str, Any]:
    """Léa, a member with a loyalty card, 600 points and a coupon for a €5 voucher; a few sales."""
    member = program.enrol(
        first_name="Léa", last_name="Moreau", email=f"{unique('lea')}@example.com",
        identities=[{"kind": "card", "value": CARD}],
    )  # fmt: skip
    program.adjust(member["id"], 600, reason="Welcome to the club")
    program.purchase(member["id"], lines=[{"sku": "CAKE", "quantity": 2, "unit_price": 1850}])
    program.purchase(member["id"], lines=[{"sku": "BREAD", "quantity": 1, "unit_price": 420}], channel="web")
    for price in (640, 980):  # two shoppers who are not members
        line = {"sku": "CROISSANT", "quantity": 2, "unit_price": price // 2}
        body = {
            "order_id": unique("walkin"),
            "channel": "store",
            "occurred_at": "2026-03-01T10:00:00Z",
            "currency": "EUR",
            "lines": [line],
        }
        assert program.call("POST", "/v1/events/purchases", json=body).json()["status"] == "anonymous"
    voucher = program.call(
        "POST",
        "/v1/rewards",
        json={
            "kind": "amount_off",
            "amount": 500,
            "cost_points": 200,
            "title": {"fr": "Bon de 5 €", "en": "€5 voucher"},
        },
    ).json()
    coupon = program.call("POST", f"/v1/members/{member['id']}/redemptions", json={"reward_id": voucher["id"]}).json()
    return {"member": member, "code": coupon["coupon"]["code"]}


def test_an_admin_adjusts_points_with_a_reason_and_sees_history_and_dashboard_change(
    new_program: Callable[..., ApiProgram], page: Any, add_staff: Callable[..., str], shoot: Callable[..., Any]
) -> None:
    program = new_program(name="Maison Console")
    world = shop(program)
    sign_in(page, add_staff(program, "admin", "Camille Martin"))
    page.wait_for_url("**/console/dashboard")
    issued = page.locator('[data-kpi="issued"]')
    assert issued.inner_text() == "641"  # 600 welcome, 37 for the cakes, 4 for the bread
    assert page.locator('[data-kpi="non-member-orders"]').inner_text() == "2"
    assert page.locator('[data-kpi="non-member-basket"]').inner_text() == "8,10\u00a0€"
    assert page.locator("#points-chart").is_visible()
    shoot(page, "dashboard")
    assert_accessible(page)

    navigate(page, page.get_by_role("link", name="Membres"))
    page.get_by_label("Rechercher un membre").fill(CARD)
    page.get_by_label("Rechercher un membre").press("Enter")
    page.wait_for_url(f"**/console/members/{world['member']['id']}")
    assert page.locator("h1").inner_text() == "Léa Moreau"
    assert page.locator('[data-balance="available"]').inner_text() == "400"
    page.get_by_label("Points").fill("0")
    page.get_by_label("Motif (vu par le membre)").fill("Rien")
    asked: list[str] = []

    def ask(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", ask)
    navigate(page, page.get_by_role("button", name="Enregistrer l'ajustement"))  # 0: nothing to confirm
    page.remove_listener("dialog", ask)
    assert asked == [] and "un ajustement de 0 point ne change rien" in page.locator(".notice.error").inner_text()
    page.get_by_label("Points").fill("1")
    page.get_by_label("Motif (vu par le membre)").fill("Gâteau d'anniversaire raté")
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Enregistrer l'ajustement").click()
    assert asked == ["Ajuster de +1 point le solde de Léa Moreau ? L'ajustement reste dans son historique."]
    page.get_by_label("Points").fill("250")
    asked.clear()
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Enregistrer l'ajustement").click()
    assert page.locator("form.adjust-form").evaluate("form => form.dataset.sent === undefined")  # not sent
    assert asked == ["Ajuster de +250 points le solde de Léa Moreau ? L'ajustement reste dans son historique."]
    assert program.balance(world["member"]["id"])["available"] == 400
    page.once("dialog", lambda dialog: dialog.accept())
    navigate(page, page.get_by_role("button", name="Enregistrer l'ajustement"))
    assert "Ajustement enregistré : +250 points." in page.locator(".notice.ok").inner_text()
    assert page.locator('[data-balance="available"]').inner_text() == "650"
    first_line = page.locator("table.history tbody tr").first
    assert "Gâteau d'anniversaire raté" in first_line.inner_text() and "+250" in first_line.inner_text()
    months = "janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre"
    assert re.match(rf"\d{{1,2}} ({months}) \d{{4}}, \d\d:\d\d", first_line.inner_text()), first_line.inner_text()
    shoot(page, "member")
    assert_accessible(page)
    assert program.balance(world["member"]["id"])["available"] == 650

    navigate(page, page.get_by_role("link", name="Tableau de bord"))
    assert page.locator('[data-kpi="issued"]').inner_text() == "891"  # 641 + 250
    assert page.locator('[data-kpi="breakage-rate"]').inner_text() == "0,0\u202f%"  # nothing expired yet
    page.select_option("#channel", "web")
    page.wait_for_url("**channel=web**")
    assert page.locator('[data-kpi="issued"]').inner_text() == "4"  # only the bread bought online
    assert page.locator('[data-kpi="member-orders"]').inner_text() == "1"


def test_the_till_goes_from_a_card_scan_to_a_used_coupon_and_pays_with_points(
    new_program: Callable[..., ApiProgram],
    page: Any,
    new_page: Callable[..., Any],
    add_staff: Callable[..., str],
    shoot: Callable[..., Any],
) -> None:
    program = new_program(name="Maison Caisse")
    world = shop(program)
    email = add_staff(program, "store_staff", "Hugo Caisse")
    sign_in(page, email)
    page.wait_for_url("**/till")
    search = page.get_by_label("Scannez ou tapez la carte, le téléphone ou l'e-mail")
    assert search.evaluate("node => node === document.activeElement")  # a scanner types straight in
    shoot(page, "search")
    assert_accessible(page)
    search.type(CARD)
    search.press("Enter")  # what a barcode scanner sends after the digits
    page.wait_for_url(f"**/till/members/{world['member']['id']}")
    assert page.locator("h1").inner_text() == "Léa Moreau"
    assert page.locator('[data-balance="available"]').inner_text() == "400"
    assert page.locator('[data-balance="held"]').inner_text() == "200"
    shoot(page, "member")
    assert_accessible(page)

    page.get_by_label(f"N° de ticket {world['code']}").fill("R-2026-0042")  # the receipt's own number
    page.get_by_label(f"Total du ticket {world['code']}").fill("23,40")  # the minimum order is checked on it
    navigate(page, page.locator(f'button[data-code="{world["code"]}"]'))
    page.wait_for_url("**ok=coupon**")  # the post answers with a redirect to the member, with what was done
    shown = present.display_code(world["code"])  # as the portal shows it to the member: ABCD-EFGH-JKM
    assert f"Coupon {shown} utilisé : 5,00\u00a0€ à déduire du ticket." in page.locator(".notice.ok").inner_text()
    assert page.locator('[data-balance="held"]').inner_text() == "0"
    assert page.locator(f'button[data-code="{world["code"]}"]').count() == 0
    used = program.call("GET", f"/v1/coupons/{world['code']}").json()
    assert used["state"] == "used" and used["order_id"] == "R-2026-0042"

    page.get_by_label("Total du ticket", exact=True).fill("2,00")
    page.get_by_label("Points à utiliser").fill("300")  # more than half of the ticket
    ticket = page.locator("#order_id").input_value()
    navigate(page, page.get_by_role("button", name="Payer avec les points"))
    assert page.locator(".notice.error").count() == 1  # refused, and what was typed is still there
    assert page.get_by_label("Total du ticket", exact=True).input_value() == "2,00"
    assert page.get_by_label("Points à utiliser").input_value() == "300"
    assert page.locator("#order_id").input_value() == ticket
    page.get_by_label("Total du ticket", exact=True).fill("12,50")
    page.get_by_label("Points à utiliser").fill("150")
    navigate(page, page.get_by_role("button", name="Payer avec les points"))
    page.wait_for_url("**ok=paid**")
    assert "Payé avec 150 points : 1,50\u00a0€ en moins sur le ticket." in page.locator(".notice.ok").inner_text()
    assert page.locator('[data-balance="available"]').inner_text() == "250"
    shoot(page, "paid")
    assert_accessible(page)
    assert program.balance(world["member"]["id"])["available"] == 250
    assert page.locator("#sale_order_id").input_value() == ticket  # the sale goes on the ticket just paid
    pending = int(page.locator('[data-balance="pending"]').inner_text())
    page.get_by_label("Total du ticket (après remises)").fill("12,50")
    navigate(page, page.get_by_role("button", name="Enregistrer la vente"))
    said = page.locator(".notice.ok").inner_text()
    assert f"Vente enregistrée (ticket {ticket}, 12,50\u00a0€) : +11 points, utilisables le 16 mars 2026." in said
    assert int(page.locator('[data-balance="pending"]').inner_text()) == pending + 11  # not the €1.50 paid in points
    shoot(page, "sale")

    credit = {"kind": "store_credit", "amount": 300, "cost_points": 50, "title": {"fr": "Avoir 3 €", "en": "€3"}}
    reward = program.call("POST", "/v1/rewards", json=credit).json()
    bought = program.call("POST", f"/v1/members/{world['member']['id']}/redemptions", json={"reward_id": reward["id"]})
    assert bought.status_code == 201, bought.text
    tablet = new_page(viewport=MOBILE)  # a phone or a small tablet at the counter
    sign_in(tablet, email, next_path=f"/till/members/{world['member']['id']}")
    assert tablet.locator('[data-balance="available"]').inner_text() == "200"
    assert tablet.locator('[data-balance="store-credit"]').inner_text() == "3,00\u00a0€"  # the wallet, at the till
    tablet.get_by_label("Total du ticket", exact=True).nth(1).fill("8,00")
    tablet.get_by_label("Montant de l'avoir à utiliser").fill("5,00")  # more than the member has
    navigate(tablet, tablet.get_by_role("button", name="Payer avec l'avoir"))
    assert tablet.locator(".notice.error").count() == 1
    assert tablet.get_by_label("Montant de l'avoir à utiliser").input_value() == "5,00"  # kept, to be corrected
    tablet.get_by_label("Montant de l'avoir à utiliser").fill("3,00")
    navigate(tablet, tablet.get_by_role("button", name="Payer avec l'avoir"))
    assert "Avoir utilisé : 3,00\u00a0€ en moins sur le ticket." in tablet.locator(".notice.ok").inner_text()
    assert tablet.locator('[data-balance="store-credit"]').count() == 0  # spent
    assert program.call("GET", f"/v1/members/{world['member']['id']}/wallet").json()["balance"] == 0
    assert tablet.get_by_role("button", name="Payer avec les points").bounding_box()["height"] >= 56  # thumb-sized
    shoot(tablet, "mobile")
    assert_accessible(tablet)

    navigate(page, page.get_by_role("link", name="Client suivant"))
    page.get_by_label("Scannez ou tapez la carte, le téléphone ou l'e-mail").fill("0000000")
    page.keyboard.press("Enter")
    assert "Aucun membre pour « 0000000 »" in page.locator(".notice.error").inner_text()

    voucher = program.call("GET", f"/v1/coupons/{world['code']}").json()["reward_id"]
    fresh = program.call("POST", f"/v1/members/{world['member']['id']}/redemptions", json={"reward_id": voucher})
    code = fresh.json()["coupon"]["code"]
    search = page.get_by_label("Scannez ou tapez la carte, le téléphone ou l'e-mail")
    search.fill(code)  # the QR code the portal shows for the till
    search.press("Enter")
    page.wait_for_url(f"**/till/members/{world['member']['id']}**")
    shown = page.locator(".notice.ok").inner_text()
    assert f"Coupon {present.display_code(code)} de ce client : utilisez-le ci-dessous." in shown
    assert page.locator(f'button[data-code="{code}"]').count() == 1
    navigate(page, page.get_by_role("link", name="Client suivant"))
    page.get_by_label("Scannez ou tapez la carte, le téléphone ou l'e-mail").fill(world["code"])  # used earlier
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/till/members/{world['member']['id']}**")
    assert "a déjà servi le 2 mars 2026" in page.locator(".notice.error").inner_text()  # when, and on which ticket
    assert page.evaluate("document.activeElement.getAttribute('role')") == "alert"  # read out first


def test_store_staff_are_refused_the_settings_and_rules(
    new_program: Callable[..., ApiProgram], page: Any, add_staff: Callable[..., str], shoot: Callable[..., Any]
) -> None:
    program = new_program(name="Maison Refus")
    sign_in(page, add_staff(program, "store_staff", "Hugo Caisse"))
    page.wait_for_url("**/till")
    nav = page.locator(".console-nav").inner_text()
    assert "Caisse" in nav and "Réglages" not in nav and "Règles" not in nav
    for path in ("/console/settings", "/console/rules", "/console/dashboard"):
        response = page.goto(path)
        assert response.status == 403, path
        assert "Votre rôle ne permet pas d'ouvrir cette page." in page.locator(".error-card").inner_text()
    shoot(page, "refused")
    assert_accessible(page)
    assert program.call("GET", "/v1/program").json()["name"] == "Maison Refus"


def test_the_rules_editor_shows_a_yaml_error_at_its_line(
    new_program: Callable[..., ApiProgram], page: Any, add_staff: Callable[..., str], shoot: Callable[..., Any]
) -> None:
    program = new_program(name="Maison Règles")
    sign_in(page, add_staff(program, "marketer", "Inès Laurent"), next_path="/console/rules")
    page.wait_for_url("**/console/rules")
    editor = page.locator("textarea#document")
    assert "rules:" in editor.input_value()
    bad_field = "\n".join(
        [
            "rules:",
            "- id: base",
            "  name: {fr: Achats, en: Purchases}",
            "  event: purchase",
            "  effect: {type: points_per_amount, points: 1, per_amount: 100}",
            "- id: weekend",
            "  name: {fr: Week-end, en: Weekend}",
            "  event: purchase",
            "  conditions: {weekdays: [sat, sun]}",
            "  colour: blue",  # line 10: not a field of a rule
            "  effect: {type: multiplier, factor: 2}",
        ]
    )
    editor.fill(bad_field)
    navigate(page, page.get_by_role("button", name="Vérifier et enregistrer"))
    problems = page.locator("#problems")
    assert "Rien n'a été enregistré" in problems.inner_text()
    assert page.locator(".problem-list li").first.locator(".line-ref").inner_text() == "Ligne 10"
    assert "rules[1].colour" in problems.inner_text()
    assert "Cette information n'est pas attendue ici" in problems.inner_text()  # said in French
    assert page.locator(".gutter li.bad").all_inner_texts() == ["10"]
    assert page.locator(".line-marks div").nth(9).get_attribute("class") == "bad"
    assert editor.input_value() == bad_field  # what was typed is kept to be fixed
    shoot(page, "field-error")
    assert_accessible(page)

    editor.fill("rules:\n- id: base\n  event: purchase\n  effect: {type: points_per_amount, points: 1\n")
    navigate(page, page.get_by_role("button", name="Vérifier et enregistrer"))
    assert page.locator(".gutter li.bad").all_inner_texts() == ["5"]  # the mapping is never closed
    assert "Ce n'est pas du YAML valide à cette ligne" in page.locator("#problems").inner_text()
    assert program.call("GET", "/v1/program").json()["rules_version"] == 0  # nothing applied

    editor.fill(bad_field.replace("  colour: blue\n", ""))  # fixed
    navigate(page, page.get_by_role("button", name="Vérifier et enregistrer"))
    assert "la version 1 est en vigueur" in page.locator(".notice.ok").inner_text()
    assert program.call("GET", "/v1/program").json()["rules_version"] == 1
    shoot(page, "saved")
    assert_accessible(page)


def test_the_console_switches_language(
    new_program: Callable[..., ApiProgram], page: Any, add_staff: Callable[..., str], shoot: Callable[..., Any]
) -> None:
    program = new_program(name="Maison Langues")
    sign_in(page, add_staff(program, "admin", "Camille Martin"), next_path="/console/settings")
    page.wait_for_url("**/console/settings")
    assert page.locator("h1").inner_text() == "Réglages du programme"
    navigate(page, page.get_by_role("link", name="EN — English"))
    assert page.locator("h1").inner_text() == "Program settings"
    nav = page.locator(".console-nav").inner_text()
    assert "Dashboard" in nav and "Members" in nav and "Tableau de bord" not in nav
    navigate(page, page.get_by_role("link", name="Dashboard"))  # the choice is kept from page to page
    assert page.locator("h1").inner_text() == "Dashboard"
    shoot(page, "english-dashboard")
    assert_accessible(page)
    page.goto("/console/settings")
    page.get_by_label("Points earned…").fill("2")
    navigate(page, page.get_by_role("button", name="Save settings"))
    assert page.locator(".notice.ok").inner_text() == "Settings saved."
    assert program.call("GET", "/v1/program").json()["earn_points"] == 2
    shoot(page, "english-settings")
    assert_accessible(page)


def test_an_admin_adds_a_colleague_from_the_staff_page(
    new_program: Callable[..., ApiProgram], page: Any, add_staff: Callable[..., str], shoot: Callable[..., Any]
) -> None:
    program = new_program(name="Maison Équipe")
    sign_in(page, add_staff(program, "admin", "Camille Martin"), next_path="/console/dashboard")
    page.wait_for_url("**/console/dashboard")
    navigate(page, page.locator(".console-nav").get_by_role("link", name="Équipe"))
    assert page.locator("h1").inner_text() == "Équipe"
    page.get_by_label("Nom affiché").fill("Hugo Caisse")
    page.get_by_label("E-mail (identifiant de connexion)").fill(f"{unique('hugo')}@fournil.example")
    page.get_by_label("Rôle", exact=True).select_option("store_staff")
    page.get_by_label("Mot de passe provisoire").fill("chausson aux pommes 42")
    navigate(page, page.get_by_role("button", name="Ajouter", exact=True))
    assert "Personne ajoutée" in page.locator(".notice.ok").inner_text()
    row = page.locator("tr", has_text="Hugo Caisse")
    assert "Équipe magasin" in row.locator("select option:checked").inner_text()
    assert row.get_by_role("button", name="Désactiver Hugo Caisse").is_visible()
    assert page.locator("tr", has_text="Camille Martin").get_by_role("button", name="Désactiver").count() == 0
    shoot(page, "staff")
    assert_accessible(page)
    navigate(page, page.locator(".staff-menu").get_by_role("link", name="Mot de passe"))
    assert page.locator("h1").inner_text() == "Mon mot de passe"
    page.get_by_label("Mot de passe actuel").fill("not my password")
    page.get_by_label("Nouveau mot de passe", exact=True).fill("un nouveau mot de passe")
    page.get_by_label("Nouveau mot de passe, encore").fill("un nouveau mot de passe")
    navigate(page, page.get_by_role("button", name="Changer mon mot de passe"))
    assert page.locator("#current_password-error").inner_text() == "Ce n'est pas votre mot de passe actuel."
    assert page.evaluate("document.activeElement.id") == "current_password"  # the field to fix has the focus
    shoot(page, "password")
    assert_accessible(page)


def test_an_admin_makes_an_api_key_copies_it_once_and_revokes_it_after_a_question(
    new_program: Callable[..., ApiProgram], page: Any, add_staff: Callable[..., str], shoot: Callable[..., Any]
) -> None:
    program = new_program(name="Maison Clés")
    sign_in(page, add_staff(program, "admin", "Camille Martin"), next_path="/console/dashboard")
    page.wait_for_url("**/console/dashboard")
    navigate(page, page.locator(".console-nav").get_by_role("link", name="Clés d'API"))
    page.get_by_label("Nom").fill("Caisse Lyon 2")
    assert page.get_by_label("Caisse et boutique", exact=False).is_checked()  # the everyday key is the default
    navigate(page, page.get_by_role("button", name="Créer la clé"))
    secret = page.get_by_label("La clé (copiez-la maintenant", exact=False).input_value()
    assert page.locator("code").inner_text() == f"Authorization: Bearer {secret}"
    shoot(page, "key-made")
    assert_accessible(page)
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Révoquer Caisse Lyon 2").click()
    assert questions == ["Révoquer la clé Caisse Lyon 2 ? Tout ce qui l'utilise est refusé dès sa requête suivante."]
    headers = {"Authorization": f"Bearer {secret}"}
    assert program.client.get("/v1/program", headers=headers).status_code == 200  # dismissed: it still works
    page.once("dialog", lambda dialog: dialog.accept())
    navigate(page, page.get_by_role("button", name="Révoquer Caisse Lyon 2"))
    assert "Clé Caisse Lyon 2 révoquée" in page.locator(".notice.ok").inner_text()
    assert secret not in page.content()
    assert program.client.post("/v1/members", json={"first_name": "Hugo"}, headers=headers).status_code == 401


def test_a_reward_is_redeemed_at_the_till_after_a_question_and_its_coupon_used_on_the_ticket(
    new_program: Callable[..., ApiProgram],
    page: Any,
    add_staff: Callable[..., str],
    shoot: Callable[..., Any],
) -> None:
    program = new_program(name="Maison Échange")
    ann = program.enrol(first_name="Ann", last_name="Roux")
    program.adjust(ann["id"], 100)
    croissant = {"kind": "free_product", "sku": "CROISSANT", "cost_points": 60,
                 "title": {"fr": "Croissant offert", "en": "Free croissant"}}  # fmt: skip
    assert program.call("POST", "/v1/rewards", json=croissant).status_code == 201
    sign_in(page, add_staff(program, "store_staff", "Hugo Caisse"), f"/till/members/{ann['id']}")
    page.wait_for_url(f"**/till/members/{ann['id']}")
    shoot(page, "rewards")
    assert_accessible(page)
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Échanger 60 points contre : Croissant offert").click()
    assert asked == ["Échanger 60 points contre : Croissant offert ?"]
    assert program.balance(ann["id"])["available"] == 100  # dismissed: nothing spent
    page.once("dialog", lambda dialog: dialog.accept())
    navigate(page, page.get_by_role("button", name="Échanger 60 points contre : Croissant offert"))
    assert "Récompense échangée contre 60 points : Croissant offert." in page.locator(".notice.ok").inner_text()
    assert page.locator('[data-balance="held"]').inner_text() == "60"
    code = program.call("GET", f"/v1/members/{ann['id']}/coupons").json()["items"][0]["code"]
    page.get_by_label(f"Total du ticket {code}").fill("4,20")
    navigate(page, page.locator(f'button[data-code="{code}"]'))
    assert program.call("GET", f"/v1/coupons/{code}").json()["state"] == "used"


def test_the_customer_scans_the_tills_qr_code_and_lands_on_their_portal_on_a_phone(
    new_program: Callable[..., ApiProgram], new_page: Callable[..., Any], add_staff: Callable[..., str],
    shoot: Callable[..., Any],
) -> None:  # fmt: skip
    program = new_program(name="Maison QR")
    ann = program.enrol(first_name="Ann", email=f"{unique('ann')}@example.com")
    till = new_page(viewport=MOBILE)  # the shop's tablet or phone
    sign_in(till, add_staff(program, "store_staff", "Hugo Caisse"), f"/till/members/{ann['id']}")
    till.wait_for_url(f"**/till/members/{ann['id']}")
    navigate(till, till.get_by_role("button", name="Espace fidélité sur son téléphone"))
    qr = till.get_by_role("img", name="Code QR de connexion à l'espace fidélité")
    box = qr.bounding_box()
    assert box is not None and 150 <= box["width"] <= 260, box  # big enough to scan, not the whole screen
    assert till.evaluate("document.documentElement.scrollWidth") <= MOBILE["width"]  # the long address wraps
    shoot(till, "qr")
    assert_accessible(till)
    link = till.locator(".portal-link a").get_attribute("href")
    phone = new_page(viewport=MOBILE)  # the customer's own phone
    phone.goto(link)
    navigate(phone, phone.get_by_role("button", name="Continuer en tant que Ann"))
    phone.wait_for_url(f"**/p/{program.id}")


def test_a_new_customer_is_enrolled_at_the_till_from_the_card_they_were_just_given(
    new_program: Callable[..., ApiProgram], page: Any, add_staff: Callable[..., str], shoot: Callable[..., Any]
) -> None:
    program = new_program(name="Maison Nouveaux")
    sign_in(page, add_staff(program, "store_staff", "Hugo Caisse"))
    page.wait_for_url("**/till")
    search = page.get_by_label("Scannez ou tapez la carte, le téléphone ou l'e-mail")
    search.type("2900000000031")
    search.press("Enter")
    page.get_by_text("Aucun membre").wait_for()
    assert page.url.endswith("/till")  # the search is posted: the card number stays out of the address bar
    navigate(page, page.get_by_role("button", name="Inscrire un nouveau client"))
    assert page.get_by_label("Carte de fidélité (scannez-la)").input_value() == "2900000000031"
    page.get_by_label("Prénom").fill("Inès")
    page.get_by_label("Nom", exact=True).fill("Garnier")
    page.get_by_label("Téléphone").fill("06 11 22 33 44")
    page.get_by_label("les offres par SMS").check()
    shoot(page, "enrol")
    assert_accessible(page)
    navigate(page, page.get_by_role("button", name="Inscrire"))
    assert page.locator(".notice.ok").inner_text() == "Bienvenue ! Le membre est inscrit."
    assert page.locator("h1").inner_text() == "Inès Garnier"
    found = program.call("POST", "/v1/members/lookup", json={"kind": "phone", "value": "0611223344"}).json()
    assert found["first_name"] == "Inès" and found["consents"]["sms_marketing"] is True


def test_the_console_fits_a_phone_without_scrolling_sideways(
    new_program: Callable[..., ApiProgram], new_page: Callable[..., Any], add_staff: Callable[..., str]
) -> None:
    program = new_program(name="Maison Mobile")
    world = shop(program)
    phone = new_page(viewport=MOBILE)
    sign_in(phone, add_staff(program, "admin", "Camille Martin"), next_path=f"/console/members/{world['member']['id']}")
    phone.wait_for_url(f"**/console/members/{world['member']['id']}")
    member_id = world["member"]["id"]
    for path in (f"/console/members/{member_id}", "/console/staff", "/console/dashboard", f"/till/members/{member_id}"):
        phone.goto(path)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= MOBILE["width"], f"{path} is {width} px wide on a {MOBILE['width']} px phone"
    for label in ("Équipe", "Réglages", "Caisse"):  # every section is in sight, none hidden off the edge
        link = phone.locator(".console-nav").get_by_role("link", name=label, exact=True)
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= MOBILE["width"], label
    assert phone.get_by_role("link", name="Mot de passe").is_visible()  # a phone can change it too


def test_back_from_a_member_found_by_a_search_opens_the_till_again_not_a_resubmission_page(
    new_program: Callable[..., ApiProgram], page: Any, add_staff: Callable[..., str]
) -> None:
    """The search is posted (numbers stay out of URLs), so its page had no address to go back to."""
    program = new_program(name="Maison Retour")
    for first in ("Léa", "Léon"):
        program.enrol(first_name=first, last_name="Moreau", email=f"{unique(first.lower())}@example.com")
    sign_in(page, add_staff(program, "store_staff", "Hugo Caisse"))
    page.wait_for_url("**/till")
    search = page.get_by_label("Scannez ou tapez la carte, le téléphone ou l'e-mail")
    search.fill("moreau")
    search.press("Enter")
    page.wait_for_load_state()
    choices = page.get_by_role("link", name=re.compile("Moreau"))
    assert choices.count() == 2 and page.url.endswith("/till")
    navigate(page, choices.first)
    assert "/till/members/" in page.url
    back = page.go_back()
    assert back is not None and back.status == 200 and page.url.endswith("/till")
    assert page.get_by_label("Scannez ou tapez la carte, le téléphone ou l'e-mail").is_visible()
