"""A small shop for the portal tests: a catalog, tiers, a VIP plan and a member with points."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from palier.db import Database
from palier.notify import outbox
from tests.api.helpers import ApiProgram, unique


def _reward(kind: str, cost: int, fr: str, en: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "cost_points": cost, "title": {"fr": fr, "en": en}, **extra}


REWARDS = {
    "coffee": _reward("free_product", 100, "Café offert", "Free coffee", sku="CAFE"),
    "voucher": _reward("amount_off", 200, "Bon de 5 €", "€5 voucher", amount=500),
    "tote": _reward("gift", 1000, "Sac en toile", "Tote bag"),
}
TIERS = {
    "metric": "spend",
    "window": "calendar_year",
    "downgrade": "grace",
    "grace_months": 3,
    "tiers": [
        {"code": "silver", "name": {"fr": "Argent", "en": "Silver"}, "threshold": 100_00},
        {
            "code": "gold",
            "name": {"fr": "Or", "en": "Gold"},
            "threshold": 500_00,
            "multiplier_percent": 150,
            "perks": [{"fr": "Livraison offerte", "en": "Free delivery"}],
        },
    ],
}
PLAN = {"code": "club", "name": {"fr": "Club", "en": "Club"}, "price": 499, "period": "monthly"}


@dataclass
class Shop:
    program: ApiProgram
    rewards: dict[str, str]  # name -> reward id
    member: dict[str, Any]
    email: str

    @property
    def member_id(self) -> str:
        return str(self.member["id"])

    def portal_link(self, member_id: str | None = None) -> dict[str, Any]:
        made = self.program.call("POST", f"/v1/members/{member_id or self.member_id}/portal-link")
        assert made.status_code == 201, made.text
        link: dict[str, Any] = made.json()
        return link


def make_shop(program: ApiProgram, *, first_name: str = "Alice", points: int = 350) -> Shop:
    ids = {}
    for name, body in REWARDS.items():
        made = program.call("POST", "/v1/rewards", json=body)
        assert made.status_code == 201, made.text
        ids[name] = made.json()["id"]
    assert program.call("PUT", "/v1/tiers", json=TIERS).status_code == 200
    assert program.call("POST", "/v1/plans", json=PLAN).status_code == 201
    email = f"{unique(first_name.lower())}@example.com"
    member = program.enrol(first_name=first_name, email=email, language="fr")
    program.adjust(member["id"], points, reason="Points to spend")
    program.purchase(member["id"], lines=[{"sku": "CAKE", "quantity": 1, "unit_price": 12_000}])  # €120: Silver
    return Shop(program=program, rewards=ids, member=member, email=email)


def enrol_another(shop: Shop, first_name: str = "Bob", points: int = 500) -> dict[str, Any]:
    member = shop.program.enrol(first_name=first_name, email=f"{unique(first_name.lower())}@example.com")
    shop.program.adjust(member["id"], points)
    return member


def sent_codes(db: Database, program_id: str) -> list[dict[str, Any]]:
    """The one-time codes the program sent through the outbox, newest first."""
    with db.read() as conn:
        return [e["payload"] for e in outbox.recent(conn, program_id=program_id, types=["portal_sign_in_code"])]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def signed_in_client(base_url: str, link: dict[str, Any]) -> httpx.Client:
    """An HTTP client (not a browser) signed in to the portal through a portal link."""
    client = httpx.Client(base_url=base_url, timeout=30)
    entered = enter(client, link["url"].removeprefix(base_url))
    assert entered.status_code == 303, entered.text
    return client


def sign_in_by_link(page: Any, url: str) -> None:
    """In a browser: open a portal link and press its Continue button, as a member does."""
    page.goto(url)
    page.locator('form[action$="/enter"] button[type=submit]').click()
    page.wait_for_url(re.compile(r"/p/prg_\w+$"))


def enter(client: httpx.Client, url: str) -> httpx.Response:
    """Open a portal link and press its Continue button, as a member does."""
    opened = client.get(url)
    if opened.status_code != 200:
        return opened
    found = re.search(r'name="token" value="([^"]+)"', opened.text)
    assert found, "no Continue form on the link's page"
    form = {"csrf": csrf_of(opened.text), "token": found.group(1)}
    return client.post(url.split("?", 1)[0], data=form, follow_redirects=False)
