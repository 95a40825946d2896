"""What the member portal's pages say, over plain HTTP against the live server: a reward's last day, each
page's own tab title, and links that keep the member's language."""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Callable

import httpx
import pytest

from tests.api.helpers import ApiProgram, line
from tests.web.conftest import LiveServer
from tests.web.world import Shop, csrf_of, make_shop, signed_in_client


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


def heading_levels(page: str) -> list[int]:
    return [int(level) for level in re.findall(r"<h([1-6])\b", page)]


def test_headings_go_down_one_level_at_a_time_on_every_member_page(web: LiveServer, shop: Shop) -> None:
    """A screen reader's list of headings reads as an outline: no level is skipped (a catalog card's title
    under the page's h1 is an h2; under the home page's "Within reach" h2, an h3)."""
    alice = signed_in_client(web.url, shop.portal_link())
    for path in ("", "/rewards", "/coupons", "/history", "/settings"):
        levels = heading_levels(alice.get(f"/p/{shop.program.id}{path}").text)
        assert levels[0] == 1 and levels.count(1) == 1, (path, levels)
        assert all(after <= before + 1 for before, after in itertools.pairwise(levels)), (path, levels)
    howto = heading_levels(httpx.get(f"{web.url}/how-it-works/{shop.program.id}").text)
    assert all(after <= before + 1 for before, after in itertools.pairwise(howto)), howto


def test_the_language_choices_are_marked_with_their_own_language(web: LiveServer, shop: Shop) -> None:
    """On a French page "English" is read out in English (and "Français" on an English one)."""
    alice = signed_in_client(web.url, shop.portal_link())
    for lang in ("fr", "en"):
        page = alice.get(f"/p/{shop.program.id}/settings?lang={lang}").text
        assert '<span lang="en">English</span>' in page and '<span lang="fr">Français</span>' in page


def test_a_link_to_a_program_that_does_not_exist_offers_no_way_back_to_itself(web: LiveServer) -> None:
    for path in ("/p/prg_nothing", "/p/prg_nothing/rewards", "/how-it-works/prg_nothing"):
        page = httpx.get(web.url + path)
        assert page.status_code == 404 and 'role="alert"' in page.text, path
        assert 'href="/p/prg_nothing"' not in page.text, path  # "Back to the start" led to this same 404


def test_signing_out_everywhere_says_the_account_stays(web: LiveServer, shop: Shop) -> None:
    """The button signs out; its hint must not read as closing (deleting) the member's account."""
    alice = signed_in_client(web.url, shop.portal_link())
    said = {
        "fr": "vous êtes déconnecté partout, ici compris. Votre compte et vos points restent.",
        "en": "you are signed out everywhere, here included. Your account and points stay.",
    }
    for lang, hint in said.items():
        page = html.unescape(alice.get(f"/p/{shop.program.id}/settings?lang={lang}").text)
        assert hint in page and "se ferme" not in page and "is closed" not in page, lang


def test_the_email_consent_does_not_promise_to_stop_expiry_warnings(web: LiveServer, shop: Shop) -> None:
    """Expiry warnings and sign-in codes go to the outbox whatever the member's consents (their payload does
    not carry them): unticking "offers by e-mail" must not read as stopping them."""
    alice = signed_in_client(web.url, shop.portal_link())
    said = {
        "fr": "Nouveautés et offres. Les messages sur votre compte (code de connexion, points qui vont expirer) "
        "vous parviennent dans tous les cas.",
        "en": "News and offers. Messages about your account (sign-in codes, points about to expire) reach you "
        "either way.",
    }
    for lang, hint in said.items():
        page = html.unescape(alice.get(f"/p/{shop.program.id}/settings?lang={lang}").text)
        assert hint in page and "rappels de points" not in page and "points reminders" not in page, lang


def test_the_language_switch_on_a_refused_redemption_leads_back_to_the_catalog(web: LiveServer, shop: Shop) -> None:
    """A refusal is shown at the redeem form's address; its FR/EN switch (or a reload, or a bookmark) opens that
    address again, which must lead to the catalog in that language, not to "this page does not exist"."""
    expensive = {"kind": "gift", "cost_points": 10_000, "title": {"fr": "Vélo", "en": "Bike"}}
    made = shop.program.call("POST", "/v1/rewards", json=expensive)
    assert made.status_code == 201, made.text
    alice = signed_in_client(web.url, shop.portal_link())
    catalog = alice.get(f"/p/{shop.program.id}/rewards").text
    refused = alice.post(
        f"/p/{shop.program.id}/rewards/{made.json()['id']}/redeem",
        data={"csrf": csrf_of(catalog)},
    )
    assert refused.status_code == 422
    found = re.search(r'href="([^"]*lang=en[^"]*)" hreflang="en"', refused.text)
    assert found, "no language switch on the page"
    switch = html.unescape(found.group(1))
    opened = alice.get(switch, follow_redirects=True)
    assert opened.status_code == 200 and str(opened.url).endswith(f"/p/{shop.program.id}/rewards?lang=en")
    assert "<h1>Rewards catalog</h1>" in opened.text


def test_the_redeem_button_pressed_twice_redeems_once(web: LiveServer, shop: Shop) -> None:
    """A double click without JavaScript, or Back then send again, posts the same Redeem form twice: one
    coupon, the points taken once, and the second post is shown the first one's coupon."""
    alice = signed_in_client(web.url, shop.portal_link())
    catalog = alice.get(f"/p/{shop.program.id}/rewards").text
    action = f"/p/{shop.program.id}/rewards/{shop.rewards['coffee']}/redeem"
    form = re.search(rf'<form method="post" action="{re.escape(action)}".*?</form>', catalog, re.S)
    assert form, "no Redeem form for the coffee"
    fields = dict(re.findall(r'name="(csrf|once)" value="([^"]+)"', form.group(0)))
    assert fields.get("once"), "the Redeem form carries no one-time token"
    first = alice.post(action, data=fields)
    second = alice.post(action, data=fields)
    assert first.status_code == second.status_code == 303
    assert second.headers["location"] == first.headers["location"]
    coupons = shop.program.call("GET", f"/v1/members/{shop.member_id}/coupons").json()["items"]
    assert len([c for c in coupons if c["reward_id"] == shop.rewards["coffee"]]) == 1
    balance = shop.program.call("GET", f"/v1/members/{shop.member_id}/balance").json()
    assert balance["available"] == 350 - 100
    # A new page gives a new token: redeeming again on purpose still works.
    again = alice.get(f"/p/{shop.program.id}/rewards").text
    assert csrf_of(again) and re.search(r'name="once" value="([^"]+)"', again).group(1) != fields["once"]  # type: ignore[union-attr]


def test_a_coupon_shows_the_terms_it_was_issued_with_after_its_reward_is_edited(web: LiveServer, shop: Shop) -> None:
    program = shop.program
    voucher = {"kind": "amount_off", "amount": 500, "cost_points": 10, "title": {"fr": "Bon", "en": "Voucher"}}
    reward = program.call("POST", "/v1/rewards", json=voucher).json()["id"]
    made = program.call("POST", f"/v1/members/{shop.member_id}/redemptions", json={"reward_id": reward})
    assert made.status_code == 201, made.text
    assert program.call("PATCH", f"/v1/rewards/{reward}", json={"amount": 100, "min_order": 2_000}).status_code == 200
    alice = signed_in_client(web.url, shop.portal_link())
    card = alice.get(f"/p/{program.id}/coupons").text
    card = card[card.index(f'id="{made.json()["coupon"]["id"]}"') :]
    gives = card[card.index('class="reward-gives"') : card.index("</p>", card.index('class="reward-gives"'))]
    assert "5,00\u00a0€ de remise" in gives and "dès" not in gives, gives


def test_the_points_a_refused_redemption_misses_are_written_as_the_catalog_writes_them(
    web: LiveServer, shop: Shop
) -> None:
    expensive = {"kind": "gift", "cost_points": 10_000, "title": {"fr": "Vélo", "en": "Bike"}}
    made = shop.program.call("POST", "/v1/rewards", json=expensive)
    assert made.status_code == 201, made.text
    alice = signed_in_client(web.url, shop.portal_link())
    catalog = alice.get(f"/p/{shop.program.id}/rewards").text
    refused = alice.post(f"/p/{shop.program.id}/rewards/{made.json()['id']}/redeem", data={"csrf": csrf_of(catalog)})
    assert refused.status_code == 422
    assert "Il vous manque 9\u202f650 points pour cette récompense." in html.unescape(refused.text)


def test_the_portal_calls_the_points_by_the_programs_name_for_them(
    web: LiveServer, new_program: Callable[..., ApiProgram]
) -> None:
    """A program of "étoiles" ("stars" in English): no page of a member who has none yet says "points", and
    the sentences about them read right with a feminine name."""
    program = new_program(points_name="étoiles", points_name_by_language={"en": "stars"}, welcome_points=0)
    member = program.enrol(first_name="Inès", language="fr")
    link = program.call("POST", f"/v1/members/{member['id']}/portal-link").json()
    ines = signed_in_client(web.url, link)
    for lang in ("fr", "en"):
        for path in ("", "/rewards", "/coupons", "/history", "/settings"):
            page = ines.get(f"/p/{program.id}{path}?lang={lang}").text
            words = re.sub(r"<[^>]+>", " ", re.sub(r"(?s)<(head|script|svg)\b.*?</\1>", "", page))
            assert "point" not in words.lower(), (lang, path, re.findall(r".{0,30}\bpoints?\b.{0,20}", words, re.I))
    bag = {"kind": "gift", "cost_points": 1, "title": {"fr": "Sac", "en": "Bag"}}
    assert program.call("POST", "/v1/rewards", json=bag).status_code == 201
    program.adjust(member["id"], 5)
    catalog = html.unescape(ines.get(f"/p/{program.id}/rewards?lang=fr").text)
    assert "Échanger 1 étoile contre : Sac ? Ce bon les réserve jusqu'à son utilisation." in catalog
    assert "Ils sont" not in catalog


def test_a_portal_address_with_a_trailing_slash_opens_the_page(web: LiveServer, shop: Shop) -> None:
    """The merchant's e-mail or site links to /p/<id>/ (a slash added by hand or by a mail tool): the member lands
    on the page, not on "page not found"."""
    alice = signed_in_client(web.url, shop.portal_link())
    home = alice.get(f"/p/{shop.program.id}/", follow_redirects=True)
    assert home.status_code == 200 and home.url.path == f"/p/{shop.program.id}", home.url
    catalog = alice.get(f"/p/{shop.program.id}/rewards/?lang=en", follow_redirects=True)
    assert catalog.status_code == 200 and "<h1>Rewards catalog</h1>" in catalog.text
    with httpx.Client(base_url=web.url) as visitor:
        sign_in = visitor.get(f"/p/{shop.program.id}/sign-in/", follow_redirects=True)
        assert sign_in.status_code == 200 and sign_in.url.path == f"/p/{shop.program.id}/sign-in"


def test_recent_activity_no_longer_calls_points_pending_once_they_are_available(
    web: LiveServer, new_program: Callable[..., ApiProgram]
) -> None:
    """The home page leaves out the "now available" lines: a purchase of September must not read "+120 en attente"
    in December beside "En attente 0"; one still in its return window does."""
    program = new_program(return_window_days=14)
    member = program.enrol(first_name="Léo", language="fr")
    program.purchase(member["id"], order_id="OLD-1", lines=[{"sku": "CAKE", "quantity": 1, "unit_price": 12_000}])
    web.clock.advance(days=15)  # its return window is over: the points are available
    today = web.clock.now().isoformat()
    program.purchase(member["id"], order_id="NEW-2", occurred_at=today, lines=[line("CAKE", 3_000)])
    leo = signed_in_client(web.url, program.call("POST", f"/v1/members/{member['id']}/portal-link").json())
    home = leo.get(f"/p/{program.id}?lang=fr").text
    recent = home[home.index('id="recent-title"') :]
    lines = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", li)).strip() for li in recent.split("<li")[1:]]
    old, new = next(x for x in lines if "OLD-1" in x), next(x for x in lines if "NEW-2" in x)
    assert "+120" in old and "en attente" not in old, old
    assert "+30 en attente" in new, new
    assert 'id="pending-points">30<' in home


def test_the_catalog_says_a_rewards_minimum_order_before_the_points_are_spent(web: LiveServer, shop: Shop) -> None:
    """The coupon says "dès 20,00 € d'achat" once redeemed; the card with the Redeem button must say it first."""
    body = {"kind": "amount_off", "amount": 500, "min_order": 2000, "cost_points": 50}
    made = shop.program.call("POST", "/v1/rewards", json=body | {"title": {"fr": "Bon du midi", "en": "Lunch voucher"}})
    assert made.status_code == 201, made.text
    alice = signed_in_client(web.url, shop.portal_link())
    for path in ("/rewards", ""):  # the catalog, and the cards within reach on the home page
        page = html.unescape(alice.get(f"/p/{shop.program.id}{path}?lang=fr").text)
        card = page[page.index(f'data-reward="{made.json()["id"]}"') :]
        assert "5,00\u00a0€ de remise, dès 20,00\u00a0€ d'achat" in card[: card.index("</li>")], path


def test_a_coupon_for_some_channels_says_where_it_is_used(web: LiveServer, shop: Shop) -> None:
    """Free shipping is for the web shop and the app: its card and coupon say so, rather than "show this code at
    the till" alone, where the till would refuse it."""
    body = {"kind": "free_shipping", "cost_points": 50, "channels": ["app", "web"]}
    made = shop.program.call("POST", "/v1/rewards", json=body | {"title": {"fr": "Port offert", "en": "Free delivery"}})
    assert made.status_code == 201, made.text
    alice = signed_in_client(web.url, shop.portal_link())
    catalog = html.unescape(alice.get(f"/p/{shop.program.id}/rewards?lang=fr").text)
    card = catalog[catalog.index(f'data-reward="{made.json()["id"]}"') :]
    assert "uniquement en ligne ou dans l'appli" in card[: card.index("</li>")]
    redeemed = shop.program.call(
        "POST", f"/v1/members/{shop.member_id}/redemptions", json={"reward_id": made.json()["id"]}
    )
    assert redeemed.status_code == 201, redeemed.text
    coupons = html.unescape(alice.get(f"/p/{shop.program.id}/coupons?lang=en").text)
    coupon = coupons[coupons.index(f'id="{redeemed.json()["coupon"]["id"]}"') :]
    assert "online or in the app only" in coupon[: coupon.index("</li>")]


def test_a_reward_used_only_in_store_is_redeemed_in_the_portal_and_used_at_the_till(
    web: LiveServer, shop: Shop
) -> None:
    """A free coffee served only in the shops: the member finds it in the portal, redeems it there and shows the
    coupon at the till, where it is used; the web shop still refuses it."""
    body = {"kind": "free_product", "sku": "CAFE", "cost_points": 40, "channels": ["store"]}
    made = shop.program.call("POST", "/v1/rewards", json=body | {"title": {"fr": "Café offert", "en": "Free coffee"}})
    assert made.status_code == 201, made.text
    reward = made.json()["id"]
    alice = signed_in_client(web.url, shop.portal_link())
    for path in ("/rewards", ""):  # the catalog, and the cards within reach on the home page
        page = html.unescape(alice.get(f"/p/{shop.program.id}{path}?lang=fr").text)
        assert f'data-reward="{reward}"' in page, path
        card = page[page.index(f'data-reward="{reward}"') :]
        assert "uniquement en magasin" in card[: card.index("</li>")], path
    catalog = alice.get(f"/p/{shop.program.id}/rewards").text
    action = f"/p/{shop.program.id}/rewards/{reward}/redeem"
    form = re.search(rf'<form method="post" action="{re.escape(action)}".*?</form>', catalog, re.S)
    assert form, "no Redeem form for the coffee"
    fields = dict(re.findall(r'name="(csrf|once)" value="([^"]+)"', form.group(0)))
    assert alice.post(action, data=fields).status_code == 303
    coupons = shop.program.call("GET", f"/v1/members/{shop.member_id}/coupons").json()["items"]
    code = next(c["code"] for c in coupons if c["reward_id"] == reward)
    cart = {"order_total": 450, "lines": [line(sku="CAFE", unit_price=450)]}
    online = shop.program.call("POST", f"/v1/coupons/{code}/validate", json=cart | {"channel": "web"})
    assert online.status_code == 422 and online.json()["code"] == "coupon_wrong_channel", online.text
    till = cart | {"channel": "store", "order_id": "T-88"}
    used = shop.program.call("POST", f"/v1/coupons/{code}/use", json=till)
    assert used.status_code == 200, used.text
