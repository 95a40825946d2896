"""The rewards' editors as a marketer uses them: what an edit keeps, and refusals in the page's words."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.api.helpers import ApiProgram
from tests.console.test_pages import admin


def test_saving_a_reward_keeps_its_window_to_the_second_when_the_dates_are_not_touched(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    reward = program.call(
        "POST",
        "/v1/rewards",
        json={"kind": "gift", "cost_points": 10, "title": {"fr": "Sac", "en": "Bag"},
              "starts_at": "2026-12-01T10:00:30Z", "ends_at": "2026-12-31T22:59:59Z"},
    ).json()  # fmt: skip
    token = admin(client, program, add_staff)
    page = client.get(f"/console/rewards/{reward['id']}").text  # minutes only, in Paris time
    assert 'value="2026-12-01T11:00"' in page and 'value="2026-12-31T23:59"' in page
    form = {"csrf": token, "title_fr": "Grand sac", "title_en": "Bag", "cost_points": "10", "stock": "",
            "status": "active", "starts_at": "2026-12-01T11:00", "ends_at": "2026-12-31T23:59"}  # fmt: skip
    assert client.post(f"/console/rewards/{reward['id']}", data=form, follow_redirects=False).status_code == 303
    now = program.call("GET", f"/v1/rewards/{reward['id']}").json()
    assert now["title"]["fr"] == "Grand sac"  # the title changed, the window stays as the API set it
    assert (now["starts_at"], now["ends_at"]) == ("2026-12-01T10:00:30Z", "2026-12-31T22:59:59Z")
    moved = form | {"ends_at": "2027-01-15T20:00"}  # a bound the marketer changes is taken as typed
    assert client.post(f"/console/rewards/{reward['id']}", data=moved, follow_redirects=False).status_code == 303
    now = program.call("GET", f"/v1/rewards/{reward['id']}").json()
    assert (now["starts_at"], now["ends_at"]) == ("2026-12-01T10:00:30Z", "2027-01-15T19:00:00Z")


def _problems(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.split('role="alert"', 1)[1].split("</div>", 1)[0]))


def test_a_new_reward_missing_what_its_kind_needs_is_refused_in_the_pages_words(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    token = admin(client, program, add_staff)
    no_amount = 'kind: amount_off\ncost_points: 300\ntitle: {fr: "Bon", en: "Voucher"}\n'
    with_percent = no_amount + "amount: 300\npercent: 10\n"
    french = _problems(client.post("/console/new-reward", data={"csrf": token, "document": no_amount}).text)
    assert "Indiquez le montant" in french and "needs" not in french and "amount_required:" not in french
    french = _problems(client.post("/console/new-reward", data={"csrf": token, "document": with_percent}).text)
    assert "Un pourcentage (percent) ne s'applique pas ici" in french and "has no" not in french
    english = _problems(client.post("/console/new-reward?lang=en", data={"csrf": token, "document": no_amount}).text)
    assert "an amount_off reward needs amount" in english and "amount_required:" not in english
    assert program.call("GET", "/v1/rewards").json() == []
