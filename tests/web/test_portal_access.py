"""Who may use the member portal: sessions, signed links, one-time codes, CSRF, and members kept apart.

Plain HTTP against the live server (no browser needed): what a tampering client could send.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from palier.portal.service import CODE_ATTEMPTS, CODES_PER_WINDOW
from palier.portal.tables import portal_sign_ins
from palier.web import portal_view
from tests.api.helpers import ApiProgram, assert_problem, return_body, unique
from tests.web.conftest import LiveServer
from tests.web.world import Shop, csrf_of, enrol_another, enter, make_shop, sent_codes, signed_in_client

PAGES = ("", "/rewards", "/coupons", "/history", "/settings")


@pytest.fixture
def shop(new_program: Callable[..., ApiProgram]) -> Shop:
    return make_shop(new_program())


@pytest.fixture
def visitor(web: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web.url, timeout=30) as client:
        yield client


def _ask_code(client: httpx.Client, program_id: str, email: str) -> httpx.Response:
    form = client.get(f"/p/{program_id}/sign-in")
    return client.post(f"/p/{program_id}/sign-in", data={"email": email, "csrf": csrf_of(form.text)})


def _send_code(client: httpx.Client, program_id: str, code: str) -> httpx.Response:
    form = client.get(f"/p/{program_id}/sign-in/code")
    return client.post(f"/p/{program_id}/sign-in/code", data={"code": code, "csrf": csrf_of(form.text)})


def test_every_portal_page_needs_a_session(shop: Shop, visitor: httpx.Client) -> None:
    for path in PAGES:
        response = visitor.get(f"/p/{shop.program.id}{path}")
        assert response.status_code == 303 and response.headers["location"] == f"/p/{shop.program.id}/sign-in"
    assert visitor.get("/p/prg_01AAAAAAAAAAAAAAAAAAAAAAAA").status_code == 404
    page = visitor.get(f"/p/{shop.program.id}/sign-in")
    assert (
        page.headers["x-frame-options"] == "DENY"
        and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    )
    assert page.headers["referrer-policy"] == "same-origin" and page.headers["cache-control"] == "no-store"
    mistyped = visitor.get(f"/p/{shop.program.id}/coupon")
    assert mistyped.status_code == 404 and "Cette page n&#39;existe pas." in mistyped.text
    assert f'class="button secondary" href="/p/{shop.program.id}">' in mistyped.text  # back to the portal's home


def test_a_member_cannot_read_or_redeem_as_another_member(web: LiveServer, shop: Shop) -> None:
    p = shop.program
    bob = enrol_another(shop, "Bob", points=500)
    bobs = p.call("POST", f"/v1/members/{bob['id']}/redemptions", json={"reward_id": shop.rewards["coffee"]}).json()
    bob_coupon = bobs["coupon"]
    bob_before = p.snapshot(bob["id"])
    alice = signed_in_client(web.url, shop.portal_link())

    for path in PAGES:  # ids slipped into the query choose nothing
        page = alice.get(f"/p/{p.id}{path}", params={"member_id": bob["id"], "new": bob_coupon["id"]})
        assert page.status_code == 200
        assert "Bob" not in page.text and bob_coupon["code"][:4] not in page.text and bob["email"] not in page.text
    assert "Alice" in alice.get(f"/p/{p.id}").text

    token = csrf_of(alice.get(f"/p/{p.id}/rewards").text)
    redeemed = alice.post(
        f"/p/{p.id}/rewards/{shop.rewards['voucher']}/redeem",
        data={"csrf": token, "member_id": bob["id"]},
    )
    assert redeemed.status_code == 303
    assert p.snapshot(bob["id"]) == bob_before  # Bob untouched: the voucher is Alice's
    assert p.balance(shop.member_id)["held"] == 200

    # a session cookie edited to name Bob: its signature no longer matches
    cookie = alice.cookies["palier_member"]
    unsigned = URLSafeTimedSerializer("any", salt="palier.member-session")
    _, data = unsigned.loads_unsafe(cookie)
    assert data["s"] == shop.member_id
    data["s"] = bob["id"]
    _payload, _, rest = cookie.lstrip(".").partition(".")
    forged = unsigned.dump_payload(data).decode()
    alice.cookies.set("palier_member", f"{forged}.{rest}", domain="127.0.0.1")
    assert alice.get(f"/p/{p.id}").status_code == 303
    # signed with another key: refused too
    other = URLSafeTimedSerializer("not-the-key", salt="palier.member-session").dumps(data)
    alice.cookies.set("palier_member", other, domain="127.0.0.1")
    assert alice.get(f"/p/{p.id}").status_code == 303


def test_a_session_is_for_its_own_program_and_browser(
    web: LiveServer, shop: Shop, new_program: Callable[..., ApiProgram]
) -> None:
    elsewhere = make_shop(new_program(), first_name="Carol")
    alice = signed_in_client(web.url, shop.portal_link())
    assert alice.get(f"/p/{shop.program.id}").status_code == 200
    assert alice.get(f"/p/{elsewhere.program.id}").status_code == 303  # program B: sign in there
    carol_link = elsewhere.portal_link()["url"].replace(elsewhere.program.id, shop.program.id)
    assert alice.get(carol_link.removeprefix(web.url)).status_code == 400  # B's link at A's door
    # B's reward redeemed on A's portal: not found, and nobody's points move
    before = shop.program.snapshot(shop.member_id), elsewhere.program.snapshot(elsewhere.member_id)
    token = csrf_of(alice.get(f"/p/{shop.program.id}/rewards").text)
    foreign = alice.post(f"/p/{shop.program.id}/rewards/{elsewhere.rewards['voucher']}/redeem", data={"csrf": token})
    assert foreign.status_code == 404
    assert (shop.program.snapshot(shop.member_id), elsewhere.program.snapshot(elsewhere.member_id)) == before
    # the session cookie alone, in a browser with another CSRF cookie, is not a session
    with httpx.Client(base_url=web.url) as thief:
        thief.get(f"/p/{shop.program.id}/sign-in")  # gets its own CSRF cookie
        thief.cookies.set("palier_member", alice.cookies["palier_member"], domain="127.0.0.1")
        assert thief.get(f"/p/{shop.program.id}").status_code == 303


def test_signing_out_ends_the_session_on_the_server(web: LiveServer, shop: Shop) -> None:
    p = shop.program
    alice = signed_in_client(web.url, shop.portal_link())
    kept = alice.cookies["palier_member"]  # what a shared computer's browser, or a thief, may keep
    token = csrf_of(alice.get(f"/p/{p.id}").text)
    out = alice.post(f"/p/{p.id}/sign-out", data={"csrf": token})
    assert out.status_code == 303 and out.headers["location"] == f"/p/{p.id}/sign-in?signed_out=1"
    alice.cookies.set("palier_member", kept, domain="127.0.0.1")  # put back, with the same CSRF cookie
    assert alice.get(f"/p/{p.id}").headers["location"] == f"/p/{p.id}/sign-in"

    # on every device: the phone left on the bus is signed out too
    laptop = signed_in_client(web.url, shop.portal_link())
    phone = signed_in_client(web.url, shop.portal_link())
    unread = shop.portal_link()["url"]  # a link still in the lost phone's mail
    bob = enrol_another(shop, "Bob", points=10)
    bobs = signed_in_client(web.url, shop.portal_link(bob["id"]))
    settings = laptop.get(f"/p/{p.id}/settings").text
    assert "Se déconnecter sur tous les appareils" in settings
    out = laptop.post(f"/p/{p.id}/sign-out", data={"csrf": csrf_of(settings), "everywhere": "1"})
    assert out.status_code == 303
    assert laptop.get(f"/p/{p.id}").status_code == 303 and phone.get(f"/p/{p.id}").status_code == 303
    assert bobs.get(f"/p/{p.id}").status_code == 200  # another member's session is not touched
    with httpx.Client(base_url=web.url) as finder:  # whoever finds the phone cannot sign in with it
        finder.get(f"/p/{p.id}/sign-in")
        assert finder.get(unread.removeprefix(web.url)).status_code == 400
        assert finder.get(f"/p/{p.id}").status_code == 303


def test_a_portal_session_lasts_twelve_hours(web: LiveServer, shop: Shop) -> None:
    alice = signed_in_client(web.url, shop.portal_link())
    web.clock.advance(hours=11, minutes=59)
    assert alice.get(f"/p/{shop.program.id}").status_code == 200
    web.clock.advance(minutes=1)
    assert alice.get(f"/p/{shop.program.id}").status_code == 303


def test_forms_without_the_csrf_token_are_refused_and_change_nothing(web: LiveServer, shop: Shop) -> None:
    p = shop.program
    alice = signed_in_client(web.url, shop.portal_link())
    before = p.snapshot(shop.member_id)
    url = f"/p/{p.id}/rewards/{shop.rewards['voucher']}/redeem"
    for data in ({}, {"csrf": "forged"}):
        refused = alice.post(url, data=data)
        assert refused.status_code == 403 and "Rechargez la page" in refused.text
    assert alice.post(f"/p/{p.id}/settings", data={"language": "en"}).status_code == 403
    assert alice.post(f"/p/{p.id}/sign-out").status_code == 403
    assert p.snapshot(shop.member_id) == before
    assert p.call("GET", f"/v1/members/{shop.member_id}").json()["language"] == "fr"
    token = csrf_of(alice.get(f"/p/{p.id}/rewards").text)
    assert alice.post(url, headers={"X-CSRF-Token": token}).status_code == 303  # htmx sends it as a header


def _link_form(page: httpx.Response) -> dict[str, str]:
    found = re.search(r'name="token" value="([^"]+)"', page.text)
    assert found, page.text
    return {"token": found.group(1), "csrf": csrf_of(page.text)}


def _link_used(web: LiveServer, program_id: str) -> list[bool]:
    with web.db.read() as conn:
        query = select(portal_sign_ins.c.used_at).where(
            portal_sign_ins.c.program_id == program_id, portal_sign_ins.c.kind == "link"
        )
        return [used is not None for used in conn.execute(query).scalars()]


def test_portal_links_work_once_and_expire(web: LiveServer, shop: Shop, visitor: httpx.Client) -> None:
    link = shop.portal_link()
    assert set(link) == {"url", "expires_at"} and link["expires_at"] == "2026-03-02T09:15:00Z"
    late = shop.portal_link()
    url = f"/p/{shop.program.id}/enter"
    assert enter(visitor, link["url"]).status_code == 303
    assert visitor.get(f"/p/{shop.program.id}").status_code == 200
    used = visitor.get(link["url"])
    assert used.status_code == 400 and "a déjà servi" in used.text
    form = _link_form(visitor.get(late["url"]))  # a second press on a spent link's button: the same refusal
    assert visitor.post(url, data=form).status_code == 303
    again = visitor.post(url, data=form)
    assert again.status_code == 400 and "Ce lien de connexion a expiré ou a déjà servi." in again.text
    expiring = shop.portal_link()
    with httpx.Client(base_url=web.url) as other:
        form = _link_form(other.get(expiring["url"]))
        web.clock.advance(minutes=16)  # the page left open past the link's 15 minutes
        refused = other.post(url, data=form)
        assert refused.status_code == 400 and "a expiré" in refused.text
        assert other.get(expiring["url"]).status_code == 400
        assert other.get(url, params={"token": "garbage"}).status_code == 400
        assert other.post(url, data=form | {"token": "garbage"}).status_code == 400
        assert other.get(f"/p/{shop.program.id}").status_code == 303  # none of it signed in
    unknown = shop.program.call("POST", "/v1/members/mem_01AAAAAAAAAAAAAAAAAAAAAAAA/portal-link")
    assert_problem(unknown, 404, "member_not_found", field="member_id")


def test_opening_a_link_asks_whose_account_and_signs_no_one_in(
    web: LiveServer, shop: Shop, visitor: httpx.Client
) -> None:
    """Someone sent another person's link (login CSRF), or a mail scanner fetching it, opens it: nothing is
    spent and no one is signed in; the page names whose account it opens, masked."""
    link = shop.portal_link()
    for _ in range(2):
        with httpx.Client(base_url=web.url) as scanner:
            opened = scanner.get(link["url"])
            assert opened.status_code == 200 and "palier_member" not in scanner.cookies
            assert scanner.get(f"/p/{shop.program.id}").status_code == 303
    text = html.unescape(opened.text)
    assert "Continuer en tant que Alice (a•••@example.com)" in text and shop.email not in text
    assert "Ce n'est pas vous ? Ne continuez pas" in text
    assert _link_used(web, shop.program.id) == [False]
    english = visitor.get(link["url"], headers={"Accept-Language": "en"})
    assert "Continue as Alice (a•••@example.com)" in html.unescape(english.text)
    assert enter(visitor, link["url"]).status_code == 303  # the member's own press still signs them in
    assert visitor.get(f"/p/{shop.program.id}").status_code == 200
    assert _link_used(web, shop.program.id) == [True]


def test_a_links_button_needs_the_browsers_csrf_token(web: LiveServer, shop: Shop, visitor: httpx.Client) -> None:
    """A page elsewhere that posts a link to a victim's browser lacks that browser's CSRF token: refused,
    and the link is left as it was."""
    link = shop.portal_link()
    url = f"/p/{shop.program.id}/enter"
    form = _link_form(visitor.get(link["url"]))
    refused = visitor.post(url, data={"token": form["token"]})
    assert refused.status_code == 403 and "Rechargez la page" in refused.text
    with httpx.Client(base_url=web.url) as attacker:
        theirs = csrf_of(attacker.get(f"/p/{shop.program.id}/sign-in").text)
    assert visitor.post(url, data=form | {"csrf": theirs}).status_code == 403
    assert visitor.get(f"/p/{shop.program.id}").status_code == 303
    assert _link_used(web, shop.program.id) == [False]
    assert visitor.post(url, data=form).status_code == 303


def test_one_time_codes_are_hashed_single_use_limited_and_short_lived(web: LiveServer, shop: Shop) -> None:
    p = shop.program
    with httpx.Client(base_url=web.url) as client:
        _ask_code(client, p.id, shop.email)
        code = sent_codes(web.db, p.id)[0]["code"]
        with web.db.read() as conn:
            stored = conn.execute(select(portal_sign_ins.c.secret_hash).where(portal_sign_ins.c.program_id == p.id))
            assert code not in str(stored.all())
        pending = client.cookies["palier_sign_in"]
        assert _send_code(client, p.id, code).status_code == 303
        assert "palier_sign_in" not in client.cookies  # the pending sign-in is over
        client.cookies.delete("palier_member")
        client.cookies.set("palier_sign_in", pending, domain="127.0.0.1", path=f"/p/{p.id}")
        again = _send_code(client, p.id, code)  # the same pending sign-in and code once more: spent
        assert again.status_code == 422 and "incorrect" in again.text

    with httpx.Client(base_url=web.url) as guesser:  # wrong tries kill the code
        _ask_code(guesser, p.id, shop.email)
        code = sent_codes(web.db, p.id)[0]["code"]
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        for _ in range(CODE_ATTEMPTS):
            assert _send_code(guesser, p.id, wrong).status_code == 422
        assert _send_code(guesser, p.id, code).status_code == 422

    with httpx.Client(base_url=web.url) as slow:  # ten minutes, then it is gone
        _ask_code(slow, p.id, shop.email)
        code = sent_codes(web.db, p.id)[0]["code"]
        web.clock.advance(minutes=11)
        assert _send_code(slow, p.id, code).status_code == 422

    with httpx.Client(base_url=web.url) as flood:  # a few codes an hour at most, and the same answer
        assert len(sent_codes(web.db, p.id)) == 3  # asked above, within the hour
        answers = {_ask_code(flood, p.id, shop.email).status_code for _ in range(CODES_PER_WINDOW)}
        assert answers == {303}
        assert len(sent_codes(web.db, p.id)) == CODES_PER_WINDOW
        web.clock.advance(minutes=60)
        _ask_code(flood, p.id, shop.email)
        assert len(sent_codes(web.db, p.id)) == CODES_PER_WINDOW + 1


def test_an_unknown_email_costs_the_server_the_same_work_as_a_members(web: LiveServer, shop: Shop) -> None:
    """The answer is the same page, and it must not come faster for an e-mail that is no member's (a stopwatch
    would tell who is one): asking stores a sign-in either way, and a wrong code counts a try either way.
    Only the member's sign-in can ever open a session, and only the member gets a code."""
    p = shop.program

    def sign_ins() -> list[tuple[str | None, int]]:
        query = select(portal_sign_ins.c.member_id, portal_sign_ins.c.attempts).order_by(portal_sign_ins.c.id)
        with web.db.read() as conn:
            return [
                (row.member_id, row.attempts) for row in conn.execute(query.where(portal_sign_ins.c.program_id == p.id))
            ]

    for email in (shop.email, "nobody-here@example.org"):
        with httpx.Client(base_url=web.url) as client:
            assert _ask_code(client, p.id, email).status_code == 303
            sent = [int(c["code"]) for c in sent_codes(web.db, p.id)]
            wrong = f"{(sent[0] + 1) % 10**6 if sent else 0:06d}"  # never the code just sent
            assert _send_code(client, p.id, wrong).status_code == 422
    assert sign_ins() == [(shop.member_id, 1), (None, 1)]
    assert len(sent_codes(web.db, p.id)) == 1  # the member's; no code for the stranger


def test_store_credit_goes_to_the_wallet_at_once_and_the_portal_says_so(web: LiveServer, shop: Shop) -> None:
    p = shop.program
    credit = p.call(
        "POST",
        "/v1/rewards",
        json={
            "kind": "store_credit",
            "amount": 1000,
            "cost_points": 300,
            "title": {"fr": "Avoir de 10 €", "en": "€10"},
        },
    )
    assert credit.status_code == 201, credit.text
    alice = signed_in_client(web.url, shop.portal_link())
    token = csrf_of(alice.get(f"/p/{p.id}/rewards").text)
    done = alice.post(f"/p/{p.id}/rewards/{credit.json()['id']}/redeem", data={"csrf": token}, follow_redirects=True)
    assert done.status_code == 200 and "C&#39;est fait : Avoir de 10 € est à vous." in done.text
    assert p.call("GET", f"/v1/members/{shop.member_id}/wallet").json()["balance"] == 1000
    assert p.balance(shop.member_id)["available"] == 50
    home = alice.get(f"/p/{p.id}")
    assert "Vous avez 10,00\u00a0€ d&#39;avoir" in home.text, home.text  # the wallet, on the member's home page
    assert "Crédité sur votre avoir" in alice.get(f"/p/{p.id}/coupons").text  # not "Utilisé": it is still to spend


def test_the_history_speaks_the_members_language_with_the_facts_of_each_line(web: LiveServer, shop: Shop) -> None:
    p, member = shop.program, shop.member_id
    p.purchase(member, order_id="LYO-1042", store_id="S-LYO", store_name="Fournil Lyon")
    web_order = p.purchase(member, order_id="WEB-77", channel="web")
    assert web_order["points"] > 0
    back = p.call("POST", "/v1/events/returns", json=return_body("LYO-1042"))
    assert back.status_code == 201, back.text
    redeemed = p.call("POST", f"/v1/members/{member}/redemptions", json={"reward_id": shop.rewards["coffee"]})
    assert redeemed.status_code == 201, redeemed.text
    alice = signed_in_client(web.url, shop.portal_link())

    french = alice.get(f"/p/{p.id}/history").text.replace("&#39;", "'")
    said_in_french = [
        "Commande n°LYO-1042 à Fournil Lyon",
        "Commande n°WEB-77 en ligne",
        "1 article de la commande n°LYO-1042",
        "Récompense échangée",
        "Café offert",
        "Points to spend",  # an adjustment's reason, as the staff typed it
    ]
    for said in said_in_french:
        assert said in french, said
    for english in ("Purchase #", "Redeemed:", "Returned 1 item", "online", "Free coffee"):
        assert english not in french, english

    english = alice.get(f"/p/{p.id}/history", params={"lang": "en"}).text
    said_in_english = ["Order #LYO-1042 at Fournil Lyon", "Order #WEB-77 online", "1 item from order #LYO-1042"]
    for said in [*said_in_english, "Reward redeemed", "Free coffee"]:
        assert said in english, said


def test_a_consent_given_or_withdrawn_on_the_portal_is_in_the_audit_trail(web: LiveServer, shop: Shop) -> None:
    """The merchant must be able to say when a member withdrew a consent, and that the member did it."""
    p = shop.program
    alice = signed_in_client(web.url, shop.portal_link())
    before = p.call("GET", f"/v1/members/{shop.member_id}").json()["consents"]
    form = alice.get(f"/p/{p.id}/settings").text
    sent = alice.post(f"/p/{p.id}/settings", data={"csrf": csrf_of(form), "language": "fr", "sms_marketing": "on"})
    assert sent.status_code == 303
    changed = {
        name: given
        for name, given in p.call("GET", f"/v1/members/{shop.member_id}").json()["consents"].items()
        if given != before[name]
    }
    assert changed  # sms_marketing given, any other withdrawn
    [entry] = p.call("GET", "/v1/audit", params={"limit": 1}).json()["items"]
    assert (entry["actor"], entry["action"], entry["subject_id"]) == ("portal", "member.updated", shop.member_id)
    assert entry["details"]["consents"] == changed  # which consents changed, and to what

    again = alice.post(f"/p/{p.id}/settings", data={"csrf": csrf_of(form), "language": "fr", "sms_marketing": "on"})
    assert again.status_code == 303
    [entry] = p.call("GET", "/v1/audit", params={"limit": 1}).json()["items"]
    assert "consents" not in entry["details"]  # the same choices again: no consent changed


def test_a_code_typed_in_another_browser_says_where_to_type_it(web: LiveServer, shop: Shop) -> None:
    """Asked for on the laptop, typed on the phone: the phone has no pending sign-in. The page must not only say
    "expired" (the member would ask again, and again type the code on the phone)."""
    p = shop.program
    with httpx.Client(base_url=web.url) as laptop, httpx.Client(base_url=web.url) as phone:
        assert _ask_code(laptop, p.id, shop.email).status_code == 303
        code = sent_codes(web.db, p.id)[0]["code"]
        for lang, said in (
            ("fr", "Tapez le code dans le navigateur où vous l'avez demandé"),
            ("en", "Type the code in the browser you asked for it in"),
        ):
            phone.cookies.set("lang", lang)
            page = phone.get(f"/p/{p.id}/sign-in/code")
            assert said in html.unescape(page.text), lang
            sent = phone.post(f"/p/{p.id}/sign-in/code", data={"code": code, "csrf": csrf_of(page.text)})
            assert sent.status_code == 400 and said in html.unescape(sent.text), lang
        assert _send_code(laptop, p.id, code).status_code == 303  # where it was asked for, it still works


def test_a_code_asked_with_another_address_of_the_member_says_where_it_went(web: LiveServer, shop: Shop) -> None:
    """The code goes to the member's profile e-mail only (an old address still linked may now be someone
    else's): typed with another of their addresses, the page must not say it went to the one typed."""
    p = shop.program
    old = f"{unique('old')}@example.com"
    linked = p.call("POST", f"/v1/members/{shop.member_id}/identities", json={"kind": "email", "value": old})
    assert linked.status_code == 200, linked.text
    main = linked.json()["email"]
    typed = next(i["value"] for i in linked.json()["identities"] if i["kind"] == "email" and i["value"] != main)
    with httpx.Client(base_url=web.url) as client:
        client.cookies.set("lang", "en")
        asked = _ask_code(client, p.id, typed)
        page = html.unescape(client.get(asked.headers["location"]).text)
    assert sent_codes(web.db, p.id)[0]["email"] == main
    assert (
        f"If {typed} belongs to a loyalty account, a 6-digit code has just been sent to that account's main e-mail"
        in page
    )


def test_a_person_in_two_programs_stays_signed_in_to_both(
    web: LiveServer, shop: Shop, new_program: Callable[..., ApiProgram]
) -> None:
    """Two brands on one Palier: signing in to the second brand's portal does not sign out of the first's, and
    signing out of one leaves the other."""
    elsewhere = make_shop(new_program(), first_name="Alice")
    with httpx.Client(base_url=web.url, timeout=30) as browser:
        browser.cookies.set("palier_member", "left-by-an-older-palier", domain="127.0.0.1")  # for the whole site
        for link in (shop.portal_link(), elsewhere.portal_link()):
            assert enter(browser, link["url"].removeprefix(web.url)).status_code == 303
        a, b = shop.program.id, elsewhere.program.id
        assert browser.get(f"/p/{a}").status_code == 200 and browser.get(f"/p/{b}").status_code == 200
        out = browser.post(f"/p/{b}/sign-out", data={"csrf": csrf_of(browser.get(f"/p/{b}").text)})
        assert out.status_code == 303
        assert browser.get(f"/p/{b}").status_code == 303 and browser.get(f"/p/{a}").status_code == 200


def test_a_tampered_address_a_wrong_method_or_a_crash_on_a_page_answers_a_page(
    web: LiveServer, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person reads the portal: a value longer than its box, a form sent to a page's address or a bug of ours shows
    a page in their language, never the API's JSON; the API keeps its problem+json."""
    p = shop.program
    alice = signed_in_client(web.url, shop.portal_link())
    long = alice.get(f"/p/{p.id}/history", params={"before": "txn_" + "0" * 60})
    assert long.status_code == 400 and long.headers["content-type"].startswith("text/html")
    assert "Cette adresse ou ce formulaire n&#39;est pas valide" in long.text
    for foreign in ("txn_" + "0" * 26, "txn_nothing"):  # not a line of her history: her latest lines
        assert alice.get(f"/p/{p.id}/history", params={"before": foreign}).status_code == 200
    wrong = alice.post(f"/p/{p.id}/history")
    assert wrong.status_code == 405 and wrong.headers["content-type"].startswith("text/html")
    assert "GET" in wrong.headers["allow"]

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(portal_view, "history", boom)
    crashed = alice.get(f"/p/{p.id}/history")
    assert crashed.status_code == 500 and "rien n&#39;a été enregistré" in crashed.text
    assert "a bug of ours" not in crashed.text
    api = p.call("GET", "/v1/members/" + "m" * 80 + "/balance")
    assert api.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "typed",
    [
        lambda code: "".join(chr(ord(d) + 0xFEE0) for d in code),  # full-width, from a Japanese keyboard
        lambda code: "".join(chr(ord(d) - ord("0") + 0x0660) for d in code),  # an Arabic keyboard's digits
        lambda code: f"{code[:3]}-{code[3:]}",  # as a mailer may print it: 123-456
    ],
    ids=["full-width", "arabic-indic", "dashed"],
)
def test_a_code_typed_with_other_digits_or_a_dash_signs_in(
    web: LiveServer, shop: Shop, typed: Callable[[str], str]
) -> None:
    p = shop.program
    with httpx.Client(base_url=web.url) as phone:
        assert _ask_code(phone, p.id, shop.email).status_code == 303
        code = sent_codes(web.db, p.id)[0]["code"]
        signed = _send_code(phone, p.id, typed(code))
        assert signed.status_code == 303 and signed.headers["location"] == f"/p/{p.id}", signed.text[-600:]
