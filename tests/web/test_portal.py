"""The member portal in a browser: signing in (signed link, one-time code), balance, redeem, coupon, language."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api.helpers import ApiProgram
from tests.web.conftest import MOBILE, LiveServer, assert_accessible
from tests.web.world import enrol_another, make_shop, sent_codes, sign_in_by_link


def test_a_member_signs_in_by_link_sees_the_balance_redeems_and_gets_a_coupon_with_a_qr_code(
    new_program: Callable[..., ApiProgram], page: Any, new_page: Callable[..., Any], shoot: Callable[..., Any]
) -> None:
    shop = make_shop(new_program(name="Maison Portail"))
    link = shop.portal_link()

    page.goto(link["url"])  # opening the link only asks whose account to open
    assert page.locator("h1").inner_text() == "Ouvrir votre espace fidélité"
    assert "Ce lien ouvre le compte fidélité d'Alice (a•••@example.com)." in page.locator("main").inner_text()
    assert_accessible(page)
    shoot(page, "continue")
    page.get_by_role("button", name="Continuer en tant que Alice (a•••@example.com)").click()
    page.wait_for_url(f"**/p/{shop.program.id}")
    assert page.locator("h1").inner_text() == "Bonjour Alice"
    assert page.locator("#available-points").inner_text() == "350 points"
    assert page.locator("#pending-points").inner_text() == "120"  # the €120 purchase, in its return window
    assert page.locator("#held-points").inner_text() == "0"
    reach = page.locator(".reach-section .reward-card h3").all_inner_texts()
    assert reach == ["Café offert", "Bon de 5 €", "Sac en toile"]  # nearest first
    assert "Plus que 650 points pour : Sac en toile" in page.locator(".reach-section").inner_text()
    status = page.locator(".status-card").inner_text()
    assert "Argent" in status and "pour atteindre Or" in status  # €120 of €500: Silver, on the way to Gold
    assert page.locator(".tier-meter").get_attribute("aria-valuenow") == "24"
    assert "Points to spend" in page.locator(".history").inner_text()
    shoot(page, "dashboard")

    page.get_by_role("link", name="Récompenses").click()
    asked: list[str] = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))  # "sure?" — yes
    page.get_by_role("button", name="Échanger 200 points contre : Bon de 5 €").click()
    page.wait_for_url("**/coupons?new=*")
    assert asked == ["Échanger 200 points contre : Bon de 5 € ? Ce bon les réserve jusqu'à son utilisation."]
    coupon = page.locator(".coupon.fresh")
    assert coupon.locator("h2").inner_text() == "Bon de 5 €"
    code = coupon.get_attribute("data-code")
    assert code and coupon.locator(".coupon-code").inner_text().replace("-", "") == code
    qr = coupon.locator(".qr svg")
    assert qr.get_attribute("role") == "img" and code[:4] in (qr.get_attribute("aria-label") or "")
    assert qr.locator("path").count() >= 1
    shoot(page, "coupon")
    found = shop.program.call("GET", f"/v1/coupons/{code}").json()
    assert found["member_id"] == shop.member_id and found["state"] == "issued"
    balance = shop.program.balance(shop.member_id)
    assert (balance["available"], balance["held"]) == (150, 200)

    page.get_by_role("link", name="Accueil").click()
    assert page.locator("#available-points").inner_text() == "150 points"
    assert page.locator("#held-points").inner_text() == "200"

    again = new_page()
    again.goto(link["url"])  # a link works once
    assert "a déjà servi" in again.locator(".notice.error").inner_text()

    phone = new_page(viewport=MOBILE)
    sign_in_by_link(phone, shop.portal_link()["url"])
    for path, name in (("", "dashboard"), ("/rewards", "rewards"), ("/coupons", "coupons"), ("/history", "history")):
        phone.goto(f"/p/{shop.program.id}{path}")
        assert phone.evaluate("document.documentElement.scrollWidth") <= MOBILE["width"], name
        assert_accessible(phone)
        shoot(phone, f"mobile-{name}")
    for label in ("Historique", "Préférences"):  # the whole menu is in sight on a phone, none cut at the edge
        box = phone.locator(".portal-nav").get_by_role("link", name=label, exact=True).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= MOBILE["width"], label
    for path in ("/rewards", "/history", "/settings"):
        page.goto(f"/p/{shop.program.id}{path}")
        assert_accessible(page)
        shoot(page, path.strip("/"))


def test_a_member_signs_in_with_a_one_time_code_and_a_stranger_learns_nothing(
    web: LiveServer, new_program: Callable[..., ApiProgram], page: Any, shoot: Callable[..., Any]
) -> None:
    shop = make_shop(new_program())
    page.goto(f"/p/{shop.program.id}")  # not signed in: to the sign-in page
    assert page.url.endswith("/sign-in")
    assert_accessible(page)
    shoot(page, "sign-in")

    page.get_by_label("Adresse e-mail").fill("nobody@example.com")
    page.get_by_role("button", name="Recevoir un code").click()
    stranger = page.locator("main").inner_text()
    assert sent_codes(web.db, shop.program.id) == []

    page.goto(f"/p/{shop.program.id}/sign-in")
    page.get_by_label("Adresse e-mail").fill(shop.email.upper())
    page.get_by_role("button", name="Recevoir un code").click()
    member = page.locator("main").inner_text()
    assert member.replace(shop.email, "nobody@example.com") == stranger  # the same answer either way
    [sent] = sent_codes(web.db, shop.program.id)
    assert sent["email"] == shop.email and len(sent["code"]) == 6
    assert_accessible(page)
    shoot(page, "code")

    wrong = "000000" if sent["code"] != "000000" else "111111"
    page.get_by_label("Code à 6 chiffres").fill(wrong)
    page.get_by_role("button", name="Me connecter").click()
    assert "incorrect" in page.locator(".notice.error").inner_text()
    page.get_by_label("Code à 6 chiffres").fill(sent["code"])
    page.get_by_role("button", name="Me connecter").click()
    assert page.locator("#available-points").inner_text() == "350 points"


def test_the_language_switch_and_the_settings_change_the_language(
    new_program: Callable[..., ApiProgram], page: Any, shoot: Callable[..., Any]
) -> None:
    shop = make_shop(new_program())
    joined = shop.program.call(
        "POST",
        "/v1/memberships/payments",
        json={"payment_id": "fee-1", "member_id": shop.member_id, "plan": "club", "amount": 499,
              "paid_at": "2026-03-01T00:00:00Z"},
    )  # fmt: skip
    assert joined.status_code == 200, joined.text
    sign_in_by_link(page, shop.portal_link()["url"])
    assert page.locator("html").get_attribute("lang") == "fr"
    assert "Adhésion Club — active jusqu'au 1er avril 2026" in page.locator(".vip").inner_text()
    page.get_by_role("link", name="English").click()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Hello Alice"
    assert "650 points to Tote bag" in page.locator(".reach-section").inner_text()
    assert "Club membership — active until 1 April 2026" in page.locator(".vip").inner_text()

    page.get_by_role("link", name="Settings").click()
    page.get_by_label("English").check()
    page.get_by_label("Offers by e-mail").check()
    page.get_by_role("button", name="Save").click()
    assert page.locator(".notice.ok").inner_text() == "Your settings are saved."
    shoot(page, "settings")
    member = shop.program.call("GET", f"/v1/members/{shop.member_id}").json()
    assert member["language"] == "en" and member["consents"]["email_marketing"] is True

    page.get_by_role("link", name="Français").click()
    assert page.locator("h1").inner_text() == "Mes préférences"
    page.get_by_label("Offres par e-mail").uncheck()
    page.get_by_role("button", name="Enregistrer").click()
    member = shop.program.call("GET", f"/v1/members/{shop.member_id}").json()
    assert member["consents"]["email_marketing"] is False and member["language"] == "en"


def test_a_refused_redemption_shows_why_and_changes_nothing(
    new_program: Callable[..., ApiProgram], page: Any, new_page: Callable[..., Any]
) -> None:
    shop = make_shop(new_program(), points=250)
    bob = enrol_another(shop)
    bobs = shop.program.call("POST", f"/v1/members/{bob['id']}/redemptions", json={"reward_id": shop.rewards["coffee"]})
    bob_coupon = bobs.json()["coupon"]
    link = shop.portal_link()
    sign_in_by_link(page, link["url"])
    page.goto(f"/p/{shop.program.id}/coupons?new={bob_coupon['id']}&member_id={bob['id']}")  # ids choose nothing
    assert page.locator(".coupon").count() == 0 and bob_coupon["code"][:4] not in page.content()
    assert "Bob" not in page.content()
    page.goto(f"/p/{shop.program.id}/rewards")
    assert page.get_by_role("button", name="Encore 750 points").is_disabled()
    # the points go elsewhere (a till redeems the voucher) while the catalog is open in the browser
    till = shop.program.call(
        "POST", f"/v1/members/{shop.member_id}/redemptions", json={"reward_id": shop.rewards["voucher"]}
    )
    assert till.status_code == 201
    before = shop.program.snapshot(shop.member_id)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Échanger 200 points contre : Bon de 5 €").click()
    assert page.locator("#redeem-error").inner_text() == "Il vous manque 150 points pour cette récompense."
    assert shop.program.snapshot(shop.member_id) == before


def test_the_history_gives_a_reason_on_every_line_and_pages_with_htmx(
    new_program: Callable[..., ApiProgram], page: Any, shoot: Callable[..., Any]
) -> None:
    shop = make_shop(new_program(), points=10)
    for n in range(1, 28):
        shop.program.adjust(shop.member_id, n, reason=f"Gesture number {n}")
    sign_in_by_link(page, shop.portal_link()["url"])
    page.goto(f"/p/{shop.program.id}/history")
    lines = page.locator("#history-lines .history-line")
    assert lines.count() == 25  # a page; 29 lines in all (27 gestures, the purchase, the first credit)
    first = lines.first.inner_text()
    assert "Ajustement" in first and "Gesture number 27" in first and "+27" in first
    page.get_by_role("link", name="Plus ancien").click()
    lines.nth(28).wait_for()
    assert lines.count() == 29 and page.url.endswith("/history")  # appended in place
    purchase, oldest = lines.nth(27).inner_text(), lines.last.inner_text()
    assert "Achat" in purchase and "+120" in purchase and "en attente" in purchase
    assert "Points to spend" in oldest and "+10" in oldest
    assert page.get_by_role("link", name="Plus ancien").count() == 0
    shoot(page, "all")


def test_older_history_from_the_keyboard_leaves_the_focus_on_the_first_line_it_adds(
    new_program: Callable[..., ApiProgram], page: Any
) -> None:
    """The link pressed is replaced: without care the focus would fall back to the top of the page."""
    shop = make_shop(new_program(), points=10)
    for n in range(1, 28):
        shop.program.adjust(shop.member_id, n, reason=f"Gesture number {n}")
    sign_in_by_link(page, shop.portal_link()["url"])
    page.goto(f"/p/{shop.program.id}/history")
    lines = page.locator("#history-lines .history-line")
    page.get_by_role("link", name="Plus ancien").focus()
    page.keyboard.press("Enter")
    lines.nth(28).wait_for()
    page.wait_for_function("() => document.activeElement.classList.contains('history-line')")
    focused = page.evaluate(
        "() => [...document.querySelectorAll('#history-lines .history-line')].indexOf(document.activeElement)"
    )
    assert focused == 25  # the first line added: reading goes on from there
    page.keyboard.press("Tab")  # and on, past the end of the list, to what follows it
    assert page.evaluate("() => document.activeElement.tagName") in ("A", "BUTTON")


def test_older_history_after_the_session_ended_opens_the_sign_in_page(
    web: LiveServer, new_program: Callable[..., ApiProgram], page: Any
) -> None:
    """A phone keeps the history open overnight; "Plus ancien" the next morning leads to the sign-in page, instead
    of pasting that page inside the list of lines."""
    shop = make_shop(new_program(), points=10)
    for n in range(1, 28):
        shop.program.adjust(shop.member_id, n, reason=f"Gesture number {n}")
    sign_in_by_link(page, shop.portal_link()["url"])
    page.goto(f"/p/{shop.program.id}/history")
    web.clock.advance(hours=13)  # the 12-hour session is over
    page.get_by_role("link", name="Plus ancien").click()
    page.wait_for_url(f"**/p/{shop.program.id}/sign-in")
    assert page.locator("h1").count() == 1 and page.locator("#history-lines").count() == 0
