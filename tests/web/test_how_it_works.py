"""The public how-it-works page: written from the live configuration, in French and English."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api.helpers import ApiProgram
from tests.web.conftest import MOBILE


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
    assert "5,00 € de remise" in card.inner_text()
    assert "Bienvenue : 50 points offerts à votre inscription" in page.locator(".earn-list").inner_text()
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
