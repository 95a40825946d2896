"""The web pages' French and English catalogs, and how a page's language is chosen."""

from __future__ import annotations

import string

import pytest
from starlette.requests import Request

from palier.errors import Unprocessable
from palier.web import i18n, present


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_message_exists_in_both_languages_with_the_same_placeholders() -> None:
    catalogs = i18n.catalogs()
    assert set(catalogs["fr"]) == set(catalogs["en"]) and len(catalogs["fr"]) > 40
    for key, french in catalogs["fr"].items():
        english = catalogs["en"][key]
        assert french.strip() and english.strip(), key
        assert _fields(french) == _fields(english), key


def test_an_unknown_key_shows_as_itself() -> None:
    assert i18n.translate("en", "no.such.key") == "no.such.key"
    assert i18n.translate("fr", "reward.amount_off", amount="5,00 €") == "5,00 € de remise"
    assert i18n.translate("de", "reward.amount_off", amount="€5") == "€5 de remise"  # French by default


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("en-GB,en;q=0.9,fr;q=0.8", "en"),
        ("de-DE,fr;q=0.5,en;q=0.7", "en"),
        ("fr-CA", "fr"),
        ("de, it;q=0.9", None),
        ("en;q=zz, fr;q=0.2", "fr"),
        ("", None),
    ],
)
def test_accept_language(header: str, expected: str | None) -> None:
    assert i18n.from_accept_language(header) == expected


def _request(query: str = "", cookie: str = "", accept: str = "") -> Request:
    headers = [(b"accept-language", accept.encode())]
    if cookie:
        headers.append((b"cookie", f"lang={cookie}".encode()))
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query.encode(), "headers": headers})


def test_the_switch_beats_the_cookie_which_beats_the_profile_which_beats_the_browser() -> None:
    assert i18n.request_language(_request("lang=en", cookie="fr", accept="fr"), preferred="fr") == "en"
    assert i18n.request_language(_request(cookie="en", accept="fr"), preferred="fr") == "en"
    assert i18n.request_language(_request(accept="fr"), preferred="en") == "en"
    assert i18n.request_language(_request(accept="en-US")) == "en"
    assert i18n.request_language(_request("lang=xx")) == "fr"


@pytest.mark.parametrize(
    ("count", "language", "expected"),
    [(1, "fr", "1 commande"), (2, "fr", "2 commandes"), (1, "en", "1 order"), (12, "en", "12 orders")],
)
def test_a_count_of_orders_agrees_with_its_number(count: int, language: str, expected: str) -> None:
    assert i18n.translate(language, present.orders_key(count), count=str(count)) == expected


def test_a_refusals_figures_are_grouped_as_the_page_writes_numbers() -> None:
    said = i18n.refusal("fr", "insufficient_points", "…", {"available": 2646, "needed": 999_999})
    assert said == "Il faut 999\u202f999 points ; le membre en a 2\u202f646."
    named = i18n.refusal("en", "payment_above_share", "…", {"max_points": 1, "available": 5}, points_name="stars")
    assert named == "On this ticket, paying with points is limited to 1 star."  # the program's name, agreeing
    said = i18n.refusal("fr", "insufficient_points", "…", {"available": 0, "needed": 1200}, points_name="étoiles")
    assert said == "Il faut 1\u202f200 étoiles ; le membre en a 0."
    assert i18n.translate_count("fr", "dash.expiry", 1, points="1", name="point", date="5 mai") == (
        "1 point expire le 5 mai."
    )
    assert i18n.translate_count("fr", "dash.expiry", 3, points="3", name="points", date="5 mai") == (
        "3 points expirent le 5 mai."
    )


def test_an_amount_a_refusal_names_is_written_as_money_or_left_out() -> None:
    refused = Unprocessable("return_exceeds_purchase", "Only €5.00 of order #A1 can still be refunded.", refundable=500)
    assert i18n.said("fr", refused, money=lambda amount: f"{amount / 100:.2f} €".replace(".", ",")) == (
        "Il ne reste que 5,00 € à rembourser sur ce ticket."
    )
    assert i18n.said("fr", refused) == i18n.translate("fr", "refusal.return_exceeds_purchase")  # never "500"
    assert i18n.said("en", refused) == "Only €5.00 of order #A1 can still be refunded."


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Inès Laurent", "Rôle d'Inès Laurent"),
        ("Hélène Roy", "Rôle d'Hélène Roy"),
        ("Émile Roux", "Rôle d'Émile Roux"),
        ("Camille Martin", "Rôle de Camille Martin"),
    ],
)
def test_de_before_a_name_is_elided_before_a_vowel_or_a_mute_h(name: str, expected: str) -> None:
    assert i18n.translate("fr", "console.team.role_of", name=name) == expected
    assert i18n.translate("en", "console.team.role_of", name=name) == f"Role of {name}"


def test_every_de_before_a_name_in_the_console_is_elided() -> None:
    said = i18n.translate("fr", "console.merge.confirm", source="Anne", target="Octave")
    assert said.startswith("Fusionner le compte d'Anne dans celui d'Octave ?") and "Le compte d'Anne sera" in said
    assert "le solde d'Inès ?" in i18n.translate("fr", "console.adjust.confirm", name="Inès", points_name="points")
