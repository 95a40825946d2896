"""The reward form of the console sets every field a merchant sets through the API, by the same checks."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import yaml
from fastapi.testclient import TestClient

from tests.api.helpers import ApiProgram
from tests.api.routes import WORLD_SEGMENT
from tests.console.test_pages import admin
from tests.web.world import PLAN, TIERS

EVERY_FIELD: dict[str, Any] = {
    "kind": "amount_off",
    "amount": 500,
    "cost_points": 400,
    "title": {"fr": "Bon de 5 €", "en": "€5 voucher"},
    "description": {"fr": "Sur tout le magasin.", "en": "On the whole shop."},
    "image_url": "https://shop.example/bon.png",
    "min_order": 2500,
    "limit_per_member": {"count": 2, "period": "month"},
    "channels": ["store", "web"],
    "eligibility": {"tiers": ["gold"], "segments": ["top"], "plans": ["club"]},
    "valid_days": 45,
    "stock": 30,
}
THE_SAME = ("id", "created_at", "updated_at")  # what two rewards made alike may differ in


def _audiences(program: ApiProgram) -> None:
    assert program.call("PUT", "/v1/tiers", json=TIERS).status_code == 200
    assert program.call("POST", "/v1/segments", json=WORLD_SEGMENT).status_code == 201
    assert program.call("POST", "/v1/plans", json=PLAN).status_code == 201


def _as_made(reward: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in reward.items() if name not in THE_SAME}


def _form(token: str, reward: dict[str, Any]) -> dict[str, Any]:
    """The edit form as the page sends it, untouched."""
    return {"csrf": token, "title_fr": reward["title"]["fr"], "title_en": reward["title"]["en"],
            "cost_points": str(reward["cost_points"]), "stock": "" if reward["stock"] is None else str(reward["stock"]),
            "status": reward["status"], "listed": ["channels", "eligibility_tiers", "eligibility_segments",
            "eligibility_plans"]}  # fmt: skip


def test_a_reward_with_every_field_made_and_edited_in_the_console_reads_back_as_the_api_made_it(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    _audiences(program)
    twin = program.call("POST", "/v1/rewards", json=EVERY_FIELD).json()
    token = admin(client, program, add_staff)
    made = client.post("/console/new-reward", data={"csrf": token, "document": yaml.safe_dump(EVERY_FIELD)},
                       follow_redirects=False)  # fmt: skip
    assert made.status_code == 303
    created = program.call("GET", made.headers["location"].split("?")[0].replace("/console", "/v1")).json()
    assert _as_made(created) == _as_made(twin)
    page = html.unescape(client.get(f"/console/rewards/{created['id']}").text)  # every field shown to edit
    for shown in ('value="25,00"', 'value="https://shop.example/bon.png"', ">Sur tout le magasin.</textarea>",
                  'value="gold" checked', 'value="top" checked', 'value="club" checked', 'value="store" checked',
                  'value="month" selected', 'value="45"'):  # fmt: skip
        assert shown in page
    assert 'value="silver" checked' not in page and 'value="silver"' in page  # the program's tiers to tick
    bare = program.call("POST", "/v1/rewards", json={k: EVERY_FIELD[k] for k in ("kind", "amount", "cost_points",
                        "title")} | {"stock": 30}).json()  # fmt: skip
    form = _form(token, bare) | {
        "description_fr": "Sur tout le magasin.", "description_en": "On the whole shop.",
        "image_url": "https://shop.example/bon.png", "min_order": "25,00", "limit_per_member_count": "2",
        "limit_per_member_period": "month", "channels": ["web", "store"], "eligibility_tiers": ["gold"],
        "eligibility_segments": ["top"], "eligibility_plans": ["club"], "valid_days": "45",
    }  # fmt: skip
    assert client.post(f"/console/rewards/{bare['id']}", data=form, follow_redirects=False).status_code == 303
    assert _as_made(program.call("GET", f"/v1/rewards/{bare['id']}").json()) == _as_made(twin)


def test_a_description_alone_edited_in_the_console_leaves_every_other_field_as_it_was(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    _audiences(program)
    reward = program.call("POST", "/v1/rewards", json=EVERY_FIELD | {"starts_at": "2026-12-01T10:00:30Z"}).json()
    token = admin(client, program, add_staff)
    page = html.unescape(client.get(f"/console/rewards/{reward['id']}").text)
    assert 'value="2026-12-01T11:00"' in page
    form = _form(token, reward) | {
        "starts_at": "2026-12-01T11:00", "ends_at": "", "description_fr": "Sur tout le magasin, même en soldes.",
        "description_en": "On the whole shop.", "image_url": "https://shop.example/bon.png", "min_order": "25,00",
        "limit_per_member_count": "2", "limit_per_member_period": "month", "channels": ["store", "web"],
        "eligibility_tiers": ["gold"], "eligibility_segments": ["top"], "eligibility_plans": ["club"],
        "valid_days": "45",
    }  # fmt: skip
    assert client.post(f"/console/rewards/{reward['id']}", data=form, follow_redirects=False).status_code == 303
    now = program.call("GET", f"/v1/rewards/{reward['id']}").json()
    assert now["description"] == {"fr": "Sur tout le magasin, même en soldes.", "en": "On the whole shop."}
    assert _as_made(now) == _as_made(reward) | {"description": now["description"]}
    titled = {k: v for k, v in _form(token, now).items() if k != "listed"} | {"title_fr": "Bon de cinq euros"}
    assert client.post(f"/console/rewards/{reward['id']}", data=titled, follow_redirects=False).status_code == 303
    renamed = program.call("GET", f"/v1/rewards/{reward['id']}").json()  # a form of the title fields only
    assert _as_made(renamed) == _as_made(now) | {"title": {"fr": "Bon de cinq euros", "en": "€5 voucher"}}


def test_an_unknown_tier_is_refused_at_its_field_in_french_and_the_typed_values_are_kept(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    _audiences(program)
    reward = program.call("POST", "/v1/rewards", json={"kind": "gift", "cost_points": 10, "title": {"fr": "Sac",
                          "en": "Bag"}}).json()  # fmt: skip
    token = admin(client, program, add_staff)
    form = _form(token, reward) | {"eligibility_tiers": ["gold", "gld"], "min_order": "12,50",
                                   "description_fr": "Un sac en toile."}  # fmt: skip
    refused = client.post(f"/console/rewards/{reward['id']}", data=form)
    assert refused.status_code == 422
    shown = html.unescape(refused.text)
    assert ('<p class="field-error" id="eligibility_tiers-error">Ce programme n\'a pas ce niveau : vérifiez son '
            "code (gold, pas Gold), ou créez d'abord le niveau.</p>") in shown  # fmt: skip
    for kept in ('value="gld" checked', 'value="gold" checked', 'value="12,50"', ">Un sac en toile.</textarea>"):
        assert kept in shown
    assert program.call("GET", f"/v1/rewards/{reward['id']}").json() == reward  # nothing written
    bad_amount = client.post(f"/console/rewards/{reward['id']}", data=_form(token, reward) | {"min_order": "12,5x"})
    assert 'id="min_order-error">Saisissez un montant, par exemple 12,50.</p>' in html.unescape(bad_amount.text)
    half = client.post(f"/console/rewards/{reward['id']}", data=_form(token, reward) | {"limit_per_member_count": "2"})
    assert 'id="limit_per_member_period-error">Cette information est obligatoire.</p>' in html.unescape(half.text)


def test_the_rewards_list_says_the_minimum_order_of_a_reward_that_has_one(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    program.call("POST", "/v1/rewards", json={"kind": "gift", "cost_points": 10, "title": {"fr": "Sac", "en": "Bag"}})
    program.call("POST", "/v1/rewards", json={k: EVERY_FIELD[k] for k in ("kind", "amount", "cost_points", "title",
                 "min_order")})  # fmt: skip
    admin(client, program, add_staff)
    listed = html.unescape(client.get("/console/rewards").text)
    assert listed.count("dès 25,00\u00a0€ d'achat") == 1
    assert "on orders from €25.00" in html.unescape(client.get("/console/rewards?lang=en").text)
    voucher = next(r for r in program.call("GET", "/v1/rewards").json() if r["min_order"])
    assert 'name="min_order" type="text" value="25.00"' in client.get(f"/console/rewards/{voucher['id']}?lang=en").text
