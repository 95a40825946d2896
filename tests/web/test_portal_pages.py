"""What the member portal's pages say, over plain HTTP against the live server: a reward's last day, each
page's own tab title, and links that keep the member's language."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import httpx
import pytest

from tests.api.helpers import ApiProgram
from tests.web.conftest import LiveServer
from tests.web.world import Shop, make_shop, signed_in_client


@pytest.fixture
def shop(new_program: Callable[..., ApiProgram]) -> Shop:
    return make_shop(new_program())


def test_a_reward_card_gives_the_last_day_it_is_on_offer(web: LiveServer, shop: Shop) -> None:
    ending = {"kind": "gift", "cost_points": 50, "title": {"fr": "Tasse", "en": "Mug"}}
    ending["ends_at"] = "2026-03-09T00:00:00+01:00"
    assert shop.program.call("POST", "/v1/rewards", json=ending).status_code == 201
    alice = signed_in_client(web.url, shop.portal_link())
    for path in ("/rewards", ""):  # the catalog, and the rewards within reach on the home page
        page = alice.get(f"/p/{shop.program.id}{path}").text
        assert page.count("Proposée jusqu&#39;au 8 mars 2026") == 1, path  # the mug's; the others have no end


def test_each_portal_page_has_its_own_tab_title(web: LiveServer, shop: Shop) -> None:
    alice = signed_in_client(web.url, shop.portal_link())
    titles = {}
    for path in ("", "/rewards", "/coupons", "/history", "/settings"):
        page = alice.get(f"/p/{shop.program.id}{path}").text
        titles[path] = page[page.index("<title>") + 7 : page.index("</title>")]
    assert len(set(titles.values())) == len(titles), titles
    assert titles["/history"].startswith("Historique")


def test_how_it_works_opens_in_the_language_of_the_portal_page_it_is_linked_from(web: LiveServer, shop: Shop) -> None:
    alice = signed_in_client(web.url, shop.portal_link())
    home = alice.get(f"/p/{shop.program.id}?lang=en").text
    link = re.search(r'<a href="(/how-it-works/[^"]+)">How it works</a>', home)
    assert link, "no link to how-it-works"
    howto = httpx.get(web.url + html.unescape(link.group(1)))  # a new tab: the link alone says the language
    assert '<html lang="en">' in howto.text


def test_the_coupons_page_lists_the_latest_past_coupons_and_says_older_ones_exist(web: LiveServer, shop: Shop) -> None:
    program, reward = shop.program, {"kind": "gift", "cost_points": 1, "title": {"fr": "Sachet", "en": "Bag"}}
    bag = program.call("POST", "/v1/rewards", json=reward).json()["id"]
    codes = []
    for _ in range(31):
        web.clock.advance(seconds=3)  # within the redemption rate limit
        made = program.call("POST", f"/v1/members/{shop.member_id}/redemptions", json={"reward_id": bag})
        codes.append(made.json()["coupon"]["code"])
        assert program.call("POST", f"/v1/coupons/{codes[-1]}/cancel", json={}).status_code == 200
    alice = signed_in_client(web.url, shop.portal_link())
    page = alice.get(f"/p/{program.id}/coupons").text
    past = page[page.index('id="past-title"') :]
    assert past.count("<li>") == 30 and "Les 30 derniers ; les plus anciens restent dans" in past
    assert f"/p/{program.id}/history" in past
