"""The public how-it-works page: written from the live configuration, in French and English."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from tests.api.helpers import ApiProgram, reward_body
from tests.web.conftest import MOBILE, assert_accessible
from tests.web.world import TIERS


def test_how_it_works_shows_the_rewards_and_switches_language(
    new_program: Callable[..., ApiProgram], page: Any, new_page: Callable[..., Any], shoot: Callable[..., Any]
) -> None:
    program = new_program(name="Maison Test", welcome_points=50)
    made = program.call(
        "POST",
        "/v1/rewards",
        json={
            "kind": "amount_off",
            "amount": 500,
            "cost_points": 200,
            "title": {"fr": "Bon de 5 €", "en": "€5 voucher"},
        },
    )
    assert made.status_code == 201, made.text

    page.goto(f"/how-it-works/{program.id}")
    assert page.locator("html").get_attribute("lang") == "fr"  # the browser asks for French
    assert page.locator("h1").inner_text() == "Comment ça marche"
    card = page.locator(".reward-card")
    assert card.locator("h3").inner_text() == "Bon de 5 €"
    assert "5,00\u00a0€ de remise" in card.inner_text()
    assert "Bienvenue : 50 points en cadeau à votre inscription" in page.locator(".earn-list").inner_text()
    assert_accessible(page)
    shoot(page, "fr")

    page.get_by_role("link", name="English").click()
    page.wait_for_url("**lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "How it works"
    assert card.locator("h3").inner_text() == "€5 voucher"
    assert "€5.00 off" in card.inner_text()
    shoot(page, "en")

    page.goto(f"/how-it-works/{program.id}")  # the choice is remembered (lang cookie)
    assert page.locator("h1").inner_text() == "How it works"

    phone = new_page(viewport=MOBILE)
    phone.goto(f"/how-it-works/{program.id}")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= MOBILE["width"], "the page must not scroll sideways on a phone"
    shoot(phone, "mobile")


def test_an_unknown_program_is_a_404_page(page: Any) -> None:
    response = page.goto("/how-it-works/prg_01AAAAAAAAAAAAAAAAAAAAAAAA")
    assert response.status == 404
    assert "Ce programme de fidélité n'existe pas." in page.locator("main").inner_text()


def test_how_it_works_follows_the_configuration(
    new_program: Callable[..., ApiProgram], page: Any, shoot: Callable[..., Any]
) -> None:
    program = new_program(name="Boulangerie Test")
    made = program.call("POST", "/v1/rewards", json=reward_body(cost_points=300, title={"fr": "Bon", "en": "Voucher"}))
    reward_id = made.json()["id"]
    page.goto(f"/how-it-works/{program.id}?lang=en")
    before = page.locator("main").inner_text()
    assert "Purchases — 1 point per €1.00" in before
    assert "Your points from a purchase are pending for 14 days" in before
    assert "expire 12 months after" in before
    assert page.locator(".reward-card .cost-value").inner_text() == "300"
    assert page.locator(".tier-card").count() == 0

    rules = {
        "rules": [
            {
                "id": "base",
                "name": {"en": "Every euro", "fr": "Chaque euro"},
                "event": "purchase",
                "effect": {"type": "points_per_amount", "points": 2, "per_amount": 100},
            },
            {
                "id": "pastry",
                "name": {"en": "Pastry bonus", "fr": "Bonus viennoiserie"},
                "event": "purchase",
                "conditions": {"categories": ["pastry"]},
                "effect": {"type": "per_item", "points": 5},
            },
        ]
    }
    assert program.call("POST", "/v1/program/rules", json=rules).status_code == 201
    assert program.call("PATCH", f"/v1/rewards/{reward_id}", json={"cost_points": 250}).status_code == 200
    assert program.call("PUT", "/v1/tiers", json=TIERS).status_code == 200
    changed = program.call("PATCH", "/v1/program", json={"return_window_days": 30, "never_expire": True})
    assert changed.status_code == 200, changed.text

    page.reload()
    after = page.locator("main").inner_text()
    assert "Every euro — 2 points per €1.00" in after and "Purchases — 1 point" not in after
    assert "Pastry bonus — 5 points per item on pastry" in after
    assert page.locator(".reward-card .cost-value").inner_text() == "250"
    assert page.locator(".tier-card h3").all_inner_texts() == ["Silver", "Gold"]
    assert "€500.00 spent" in page.locator(".tier-card").nth(1).inner_text()
    assert "Your points from a purchase are pending for 30 days" in after
    assert "Your points never expire." in after
    assert "rules version 1" in page.locator("footer").inner_text()
    assert_accessible(page)
    shoot(page, "changed")


def test_the_fine_print_agrees_with_a_figure_of_one(new_program: Callable[..., ApiProgram], api: Any) -> None:
    """1 point worth 1 cent, points that last 1 month, a 1-day trial: each sentence reads as singular."""
    program = new_program(
        points_lifetime_months=1, redeem_points=1, redeem_amount=1, pay_with_points_max_percent=50, welcome_points=0
    )
    plan = {"code": "club", "name": {"fr": "Club", "en": "Club"}, "price": 499, "period": "monthly", "trial_days": 1}
    assert program.call("POST", "/v1/plans", json=plan).status_code == 201
    said = {lang: html.unescape(api.get(f"/how-it-works/{program.id}?lang={lang}").text) for lang in ("fr", "en")}
    assert "Vous pouvez aussi payer en points : 1 point vaut 0,01\u00a0€, jusqu'à 50 % de la commande." in said["fr"]
    assert "You can also pay with your points: 1 point is worth €0.01, up to 50% of an order." in said["en"]
    assert "Les points expirent 1 mois après leur attribution" in said["fr"]
    assert "Your points expire 1 month after they are earned" in said["en"]
    assert "1 jour d'essai gratuit" in said["fr"]
    assert "1-day free trial" in said["en"]


def test_how_often_an_action_earns_reads_as_a_number_of_times(new_program: Callable[..., ApiProgram], api: Any) -> None:
    """ "Avis produit : 10 points (une fois, 3×)" said once and three times at once: a limit reads as how many
    times, and how often."""

    def action(code: str, fr: str, en: str, count: int, per: str) -> dict[str, Any]:
        return {"id": code, "name": {"fr": fr, "en": en}, "points": 10, "limit": {"count": count, "per": per}}

    program = new_program()
    actions = [
        action("review", "Avis produit", "Product review", 3, "ever"),
        action("photo", "Photo", "Photo", 2, "month"),
        action("visit", "Visite", "Visit", 1, "day"),
        action("newsletter", "Newsletter", "Newsletter", 1, "ever"),
    ]
    assert program.call("POST", "/v1/program/rules", json={"rules": [], "actions": actions}).status_code == 201
    said = {lang: html.unescape(api.get(f"/how-it-works/{program.id}?lang={lang}").text) for lang in ("fr", "en")}
    for line in (
        "Avis produit : 10 points (jusqu'à 3 fois)",
        "Photo : 10 points (jusqu'à 2 fois par mois)",
        "Visite : 10 points (une fois par jour)",
        "Newsletter : 10 points (une fois)",
    ):
        assert line in said["fr"], line
    for line in (
        "Product review: 10 points (up to 3 times)",
        "Photo: 10 points (up to 2 times a month)",
        "Visit: 10 points (once a day)",
        "Newsletter: 10 points (once)",
    ):
        assert line in said["en"], line


def test_the_channels_a_rule_needs_are_said_in_words(new_program: Callable[..., ApiProgram], api: Any) -> None:
    """Not "canal : store, phone" (the API's codes) but where a member buys: "en magasin ou par téléphone"."""
    program = new_program()
    rule = {
        "id": "shops",
        "name": {"fr": "Bonus boutique", "en": "Shop bonus"},
        "event": "purchase",
        "conditions": {"channels": ["store", "phone"]},
        "effect": {"type": "per_item", "points": 5},
    }
    assert program.call("POST", "/v1/program/rules", json={"rules": [rule]}).status_code == 201
    said = {lang: html.unescape(api.get(f"/how-it-works/{program.id}?lang={lang}").text) for lang in ("fr", "en")}
    assert "Bonus boutique — 5 points par article en magasin ou par téléphone" in said["fr"]
    assert "Shop bonus — 5 points per item in store or by phone" in said["en"]


def test_a_reward_for_some_channels_says_where(new_program: Callable[..., ApiProgram], api: Any) -> None:
    """A tote bag to collect in store is not in the portal's catalog (it is redeemed at the till): the page says
    so, or members look for it online in vain."""
    program = new_program()
    bag = reward_body(kind="gift", cost_points=700, title={"fr": "Sac", "en": "Bag"}, channels=["store"])
    bag.pop("amount")
    made = program.call("POST", "/v1/rewards", json=bag)
    assert made.status_code == 201, made.text
    both = reward_body(cost_points=300, title={"fr": "Bon", "en": "Voucher"}, channels=["phone", "store"])
    assert program.call("POST", "/v1/rewards", json=both).status_code == 201
    said = {lang: html.unescape(api.get(f"/how-it-works/{program.id}?lang={lang}").text) for lang in ("fr", "en")}
    assert "uniquement en magasin<" in said["fr"] and "in store only<" in said["en"]
    assert "uniquement en magasin ou par téléphone<" in said["fr"]
    assert "in store or by phone only<" in said["en"]
