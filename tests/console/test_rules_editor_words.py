"""The earning rules editor as a French marketer reads it: every problem in French, the choices as they are."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.api.helpers import ApiProgram
from tests.console.test_pages import admin

EARN = "    effect: {type: points_per_amount, points: 1, per_amount: 100}\n"
BASE = "  - id: base\n    name: {en: Base}\n    event: purchase\n" + EARN
GIFT = "  - id: gift\n    name: {en: Gift}\n    event: birthday\n"


def _problems(page: str) -> str:
    listed = page.split('id="problems"', 1)[1].split("</ul>", 1)[0]
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", listed)))


def test_problems_the_rules_document_check_finds_are_said_in_french(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = admin(client, program, add_staff)
    document = "rules:\n" + BASE + BASE + "    campaign: noel\n" + GIFT + "    conditions: {channels: [store]}\n"
    document += EARN
    refused = client.post("/console/rules", data={"csrf": token, "document": document})
    assert refused.status_code == 422
    said = _problems(refused.text)
    assert "Cet identifiant est déjà utilisé" in said  # the second rule "base"
    assert "Cette campagne n'est pas dans le document" in said  # campaign: noel
    assert "Pour cet événement, l'effet peut être : fixed." in said
    assert "Cette condition ne s'applique pas à cet événement" in said  # a birthday has no channel
    assert not re.search(r"is used twice|no campaign|the effect can be|has no channel", said)
    english = _problems(client.post("/console/rules?lang=en", data={"csrf": token, "document": document}).text)
    assert "For this event the effect can be: fixed." in english and "used twice" in english


def test_a_mistyped_effect_type_is_not_offered_back_as_a_choice(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = admin(client, program, add_staff)
    document = "rules:\n" + GIFT + "    effect: {type: fixed_points, points: 5}\n"
    said = _problems(client.post("/console/rules", data={"csrf": token, "document": document}).text)
    assert "choix possibles : points_per_amount, fixed, multiplier" in said
    assert "fixed_points" not in said.split("choix possibles", 1)[1] and "type," not in said


def test_a_document_longer_than_the_editor_takes_is_refused_whole_not_saved_cut(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = admin(client, program, add_staff)
    before = program.call("GET", "/v1/program/rules").json()
    padding = "# " + "x" * 200_000 + "\n"  # a long note: what follows it would be cut off
    second = "  - id: gift\n    name: {en: Gift}\n    event: birthday\n    effect: {type: fixed, points: 50}\n"
    refused = client.post(
        "/console/rules", data={"csrf": token, "document": "rules:\n" + BASE + padding + second}, follow_redirects=False
    )
    assert refused.status_code == 422
    assert "Le document est trop long" in _problems(refused.text)
    assert program.call("GET", "/v1/program/rules").json() == before  # nothing saved
    assert "id: gift" in html.unescape(refused.text)  # what was typed is shown again, whole
