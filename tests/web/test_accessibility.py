"""Every page of the member portal, the console and the till, in French and in English, in Chromium: what an
accessibility audit (WCAG 2.1 AA) can check by machine.

The pages are listed once (``PAGES``); a page the app serves that the list lacks fails
``test_every_page_of_the_app_is_audited``, so a new page is audited from the day it is added. On each page: the
page's language, one h1, landmarks and a skip link that leads to the content; a label on every field, alt text on
every image, a name on every button and link, header cells with a scope and a name on every table; text contrast
of at least 4.5:1 (3:1 when large) and field borders of at least 3:1; Tab goes round the whole page, from the skip
link on, showing where the focus is at every stop and never stuck; at 320 px wide (a 1280 px screen zoomed to
400 %) nothing scrolls sideways but the tables in their own boxes. Each page has a title of its own, and an error
shown next to a field is tied to it and read out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from palier.staff import service as staff
from palier.staff.models import StaffCreate
from tests.api.conftest import program_maker
from tests.api.helpers import ApiProgram, unique
from tests.api.routes import WORLD_SEGMENT, app_routes
from tests.web.conftest import DESKTOP, MOBILE, START, LiveServer
from tests.web.test_console import PASSWORD
from tests.web.world import Shop, enrol_another, make_shop

LANGUAGES = ("fr", "en")
# Markup, styles and keyboard paths are the same whichever database serves the page: one engine audits them, and
# the other engine's pages are covered by the portal, console and till tests.
ONE_ENGINE = pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)
# The Tab stops come from the template, not the words in it: one language walks them (a round is the slowest check).
KEYBOARD_LANGUAGE = "fr"
NARROW = {"width": 320, "height": 800}
FITS = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


@dataclass
class World:
    """One shop per engine, shared by this module's tests (they only read it): a member with points and a
    coupon, a second member to merge, a segment; browser contexts signed in as the member and as an admin."""

    server: LiveServer
    shop: Shop
    other: dict[str, Any]
    coupon: str
    admin_email: str
    contexts: dict[tuple[str, str], Any] = field(default_factory=dict)

    def values(self) -> dict[str, str]:
        return {
            "program": self.shop.program.id,
            "member": self.shop.member_id,
            "reward": self.shop.rewards["coffee"],
            "plan": "club",
            "segment": WORLD_SEGMENT["code"],
            "coupon": self.coupon,
        }


@dataclass(frozen=True)
class Page:
    """A page to audit: the route that serves it, who sees it (visitor, member or staff), its address, and
    what to do there first for a page that answers a form (a search, a code asked for)."""

    route: str
    who: str
    path: str
    then: Callable[[Any, World], None] | None = None
    name: str = ""

    @property
    def id(self) -> str:
        return self.name or self.route


def _ask_code(page: Any, world: World) -> None:
    page.locator("#email").fill(world.shop.email)
    with page.expect_navigation():
        page.locator("main button[type=submit]").click()


def _search(box: str, text: str) -> Callable[[Any, World], None]:
    def search(page: Any, world: World) -> None:
        page.locator(box).fill(text.format(**world.values(), other=world.other["first_name"]))
        with page.expect_navigation():
            page.locator(box).press("Enter")

    return search


def _enter_page(page: Any, world: World) -> None:
    page.goto(world.shop.portal_link()["url"])


def _broken_rules(page: Any, world: World) -> None:
    page.locator("#document").fill("rules: [")
    with page.expect_navigation():
        page.locator("main form button[type=submit]").click()


def _new_key(page: Any, world: World) -> None:
    page.locator("#new-name").fill(unique("Caisse Lyon"))
    page.locator("input[name=scopes][value=read]").check()
    with page.expect_navigation():
        page.locator("#new-name").press("Enter")


PAGES = [
    Page("/how-it-works/{program_id}", "visitor", "/how-it-works/{program}"),
    Page("/p/{program_id}/sign-in", "visitor", "/p/{program}/sign-in"),
    Page("/p/{program_id}/sign-in/code", "visitor", "/p/{program}/sign-in", then=_ask_code),
    Page("/p/{program_id}/enter", "visitor", "/p/{program}/sign-in", then=_enter_page),
    Page("/p/{program_id}", "member", "/p/{program}"),
    Page("/p/{program_id}/rewards", "member", "/p/{program}/rewards"),
    Page("/p/{program_id}/coupons", "member", "/p/{program}/coupons"),
    Page("/p/{program_id}/history", "member", "/p/{program}/history"),
    Page("/p/{program_id}/settings", "member", "/p/{program}/settings"),
    Page("/console/sign-in", "visitor", "/console/sign-in"),
    Page("/console/dashboard", "staff", "/console/dashboard"),
    Page("/console/members", "staff", "/console/members"),
    Page("/console/members", "staff", "/console/members", then=_search("#q", "example.com"), name="members found"),
    Page("/console/members/{member_id}", "staff", "/console/members/{member}"),
    Page("/console/members/{member_id}", "staff", "/console/members/{member}", name="merge candidates",
         then=_search("#merge_q", "{other}")),
    Page("/console/coupons", "staff", "/console/coupons"),
    Page("/console/coupons", "staff", "/console/coupons?code={coupon}", name="a coupon looked up"),
    Page("/console/rules", "staff", "/console/rules"),
    Page("/console/rules", "staff", "/console/rules", then=_broken_rules, name="rules refused"),
    Page("/console/rewards", "staff", "/console/rewards"),
    Page("/console/rewards/{reward_id}", "staff", "/console/rewards/{reward}"),
    Page("/console/new-reward", "staff", "/console/new-reward"),
    Page("/console/tiers", "staff", "/console/tiers"),
    Page("/console/plans", "staff", "/console/plans"),
    Page("/console/plans/{code}", "staff", "/console/plans/{plan}"),
    Page("/console/new-plan", "staff", "/console/new-plan"),
    Page("/console/segments", "staff", "/console/segments"),
    Page("/console/segments/{code}", "staff", "/console/segments/{segment}"),
    Page("/console/new-segment", "staff", "/console/new-segment"),
    Page("/console/settings", "staff", "/console/settings"),
    Page("/console/staff", "staff", "/console/staff"),
    Page("/console/keys", "staff", "/console/keys"),
    Page("/console/keys", "staff", "/console/keys", then=_new_key, name="a key just made"),
    Page("/console/password", "staff", "/console/password"),
    Page("/till", "staff", "/till"),
    Page("/till", "staff", "/till", then=_search("#q", "example.com"), name="till choices"),
    Page("/till/members/{member_id}", "staff", "/till/members/{member}"),
    Page("/till/new-member", "staff", "/till/new-member"),
    Page("(a mistyped address)", "staff", "/console/nowhere", name="not found"),
]  # fmt: skip
# GET routes that are no page: a redirect to one, or a file to download
NOT_PAGES = {"/console", "/p/{program_id}/rewards/{reward_id}/redeem", "/console/members/{member_id}/export"}


AUDIT = (Path(__file__).parent / "accessibility.js").read_text(encoding="utf-8")


def tab_round(page: Any) -> list[str]:
    """Tab from the top of the page (whatever a page focuses on its own) round to its end: what is wrong at the
    stops on the way (in the header, the focus goes row by row as the eye does). The focus stays on a field for
    a few Tabs where the field has parts (a date's day, month and year) or takes Tab in (the YAML editor: Esc lets
    it go, as the page says under it); more is a trap."""
    problems: list[str] = []
    page.evaluate("() => window.palierAudit.looks()")
    seen: list[str] = []
    header: list[dict[str, Any]] = []  # the header's stops, read as they are seen: row by row, top down
    still = 0
    for _ in range(300):
        page.keyboard.press("Tab")
        stop = page.evaluate("() => window.palierAudit.focused()")
        if stop and seen and stop["stop"] == seen[-1]:
            still += 1
            if still == 1:
                page.keyboard.press("Escape")
            if still > 6:
                return [*problems, f"the focus is stuck: {stop['what']}"]
            continue
        still = 0
        if stop is None or stop["stop"] in seen:  # round the page and out, or back to the start
            break
        if not seen and 'href="#main"' not in stop["what"]:
            problems.append(f"the first Tab stop is not the skip link: {stop['what']}")
        if not stop["shown"]:
            problems.append(f"no visible focus: {stop['what']}")
        if stop["header"] and header and stop["middle"] < header[-1]["top"]:
            problems.append(f"in the header, Tab goes back up a row: {header[-1]['what']} then {stop['what']}")
        if stop["header"]:
            header.append(stop)
        if not stop["inView"]:
            problems.append(f"focused out of sight: {stop['what']}")
        seen.append(stop["stop"])
    else:
        problems.append("Tab never gets round the page")
    if len(seen) < 2:
        problems.append(f"only {len(seen)} Tab stops")
    return problems


# --- the shop and its signed-in browsers ---


def _add_admin(server: LiveServer, program: ApiProgram) -> str:
    email = f"admin.{unique('a11y')}@maison.example"
    data = StaffCreate.model_validate(
        {"email": email, "display_name": "Inès Laurent", "role": "admin", "password": PASSWORD}
    )
    with server.db.write() as conn:
        staff.create(conn=conn, clock=server.clock, program_id=program.id, data=data, actor="test")
    return email


@pytest.fixture(scope="module")
def world(live_server: LiveServer, browser: Any) -> Iterator[World]:
    live_server.clock.set(START)
    with httpx.Client(base_url=live_server.url, timeout=30) as api, program_maker(live_server.db, api) as make:  # type: ignore[arg-type]
        program = make(name="Maison Accès")
        shop = make_shop(program)
        other = enrol_another(shop, first_name="Bertille")
        assert program.call("POST", "/v1/segments", json=WORLD_SEGMENT).status_code == 201
        made = program.call(
            "POST", f"/v1/members/{shop.member_id}/redemptions", json={"reward_id": shop.rewards["coffee"]}
        )
        assert made.status_code == 201, made.text
        there = World(live_server, shop, other, made.json()["coupon"]["code"], _add_admin(live_server, program))
        try:
            yield there
        finally:
            for context in there.contexts.values():
                context.close()
            live_server.clock.set(START)


def browser_as(world: World, browser: Any, who: str, lang: str) -> Any:
    """A browser context in ``lang`` (its cookie, as the language switch leaves it), signed in as ``who``."""
    key = (who, lang)
    if key not in world.contexts:
        context = browser.new_context(
            viewport=DESKTOP, locale="fr-FR" if lang == "fr" else "en-GB", base_url=world.server.url
        )
        context.set_default_timeout(30_000)  # a page is read in well under a second; a loaded CI machine needs more
        context.add_init_script(script=AUDIT)
        context.add_cookies([{"name": "lang", "value": lang, "url": world.server.url}])
        page = context.new_page()
        if who == "member":
            page.goto(world.shop.portal_link()["url"])
            page.locator('form[action$="/enter"] button[type=submit]').click()
            page.wait_for_url(re.compile(r"/p/prg_\w+$"))
        elif who == "staff":
            page.goto("/console/sign-in")
            page.locator("#email").fill(world.admin_email)
            page.locator("#password").fill(PASSWORD)
            with page.expect_navigation():
                page.locator("main button[type=submit]").click()
        page.close()
        world.contexts[key] = context
    return world.contexts[key]


def open_page(world: World, browser: Any, target: Page, lang: str) -> Any:
    page = browser_as(world, browser, target.who, lang).new_page()
    page.goto(target.path.format(**world.values()))
    if target.then:
        target.then(page, world)
    return page


# --- the tests ---


def test_every_page_of_the_app_is_audited() -> None:
    served = {path for method, path in app_routes(pages=True) if method == "GET" and ":path}" not in path}
    audited = {page.route for page in PAGES}
    assert served - NOT_PAGES - audited == set(), "pages no test audits: add them to PAGES"
    assert audited - served - {"(a mistyped address)"} == set(), "PAGES lists routes the app no longer serves"


@ONE_ENGINE
@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("target", PAGES, ids=lambda page: page.id)
def test_the_page_passes_the_machine_checks(world: World, browser: Any, target: Page, lang: str) -> None:
    page = open_page(world, browser, target, lang)
    try:
        problems = page.evaluate("(lang) => window.palierAudit.audit(lang)", lang)
        if lang == KEYBOARD_LANGUAGE:
            problems += tab_round(page)
        page.set_viewport_size(NARROW)
        try:  # the charts take the new width at their next frame
            page.wait_for_function(f"() => {FITS}", timeout=3_000)
        except PlaywrightTimeout:
            wide = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
            problems.append(f"at 320 px wide the page scrolls {wide} px sideways")
        narrow = [
            problem
            for problem in page.evaluate("(lang) => window.palierAudit.audit(lang)", lang)
            if "contrast" in problem
        ]
        problems += [f"at 320 px: {problem}" for problem in narrow if problem not in problems]
        assert problems == [], f"{page.url}: " + "\n".join(problems)
    finally:
        page.close()


@ONE_ENGINE
@pytest.mark.parametrize("lang", LANGUAGES)
def test_each_page_has_a_title_of_its_own(world: World, browser: Any, lang: str) -> None:
    titles: dict[str, str] = {}
    for target in PAGES:
        page = open_page(world, browser, target, lang)
        titles.setdefault(page.title(), target.id)
        assert titles[page.title()] in (target.id, target.route), f"{target.id} has the title of {titles[page.title()]}"
        page.close()


@ONE_ENGINE
@pytest.mark.parametrize("viewport", [DESKTOP, MOBILE], ids=["desktop", "phone"])
def test_the_tills_refund_opens_from_a_title_that_looks_like_the_others(
    world: World, browser: Any, viewport: dict[str, int]
) -> None:
    """The refund form folds under its title: the title names the button that opens it and looks like the
    titles of the till's other forms."""
    page = open_page(world, browser, Page("/till/members/{member_id}", "staff", "/till/members/{member}"), "fr")
    try:
        page.set_viewport_size(viewport)
        summary = page.locator(".refund-form summary")
        assert summary.inner_text().strip() == "Rembourser un ticket"
        look = "(el) => { const s = getComputedStyle(el); return [s.fontSize, s.fontWeight, s.lineHeight]; }"
        title = summary.locator(":scope > *").first
        assert title.evaluate(look) == page.locator(".vip-form h2, main .card > h2").first.evaluate(look)
        assert page.evaluate("(lang) => window.palierAudit.audit(lang)", "fr") == []
    finally:
        page.set_viewport_size(DESKTOP)
        page.close()


@ONE_ENGINE
@pytest.mark.parametrize("lang", LANGUAGES)
def test_where_a_form_mixes_required_and_optional_fields_the_required_ones_are_marked(
    live_server: LiveServer, browser: Any, lang: str
) -> None:
    """A shop where joining and a plan take an invitation: at the till, the new member's form asks for the
    invitation code alone among optional fields, and the plan's form for the ticket but not the code. The
    required fields show a mark the form explains; forms whose fields are all required show none."""
    with httpx.Client(base_url=live_server.url, timeout=30) as api, program_maker(live_server.db, api) as make:  # type: ignore[arg-type]
        closed = make(name="Maison Close", enrolment="invitation")
        program = make(name="Maison Cercle")
        plan = {"code": "cercle", "name": {"fr": "Cercle", "en": "Circle"}, "price": 9900, "period": "yearly",
                "access": "invitation"}  # fmt: skip
        assert program.call("POST", "/v1/plans", json=plan).status_code == 201
        member = program.enrol(first_name="Otto")
        for shop, path, required, optional in (
            (closed, "/till/new-member", "#invitation_code", "#first_name"),
            (program, f"/till/members/{member['id']}", "#vip_payment_id", "#vip_invitation_code"),
        ):
            context = browser.new_context(viewport=DESKTOP, base_url=live_server.url)
            try:
                context.add_init_script(script=AUDIT)
                context.add_cookies([{"name": "lang", "value": lang, "url": live_server.url}])
                page = context.new_page()
                page.goto("/console/sign-in")
                page.locator("#email").fill(_add_admin(live_server, shop))
                page.locator("#password").fill(PASSWORD)
                with page.expect_navigation():
                    page.locator("main button[type=submit]").click()
                page.goto(path)
                label = "(el) => Array.from(el.labels).map((l) => l.innerText).join(' ')"
                assert "*" in page.locator(required).evaluate(label), path
                assert "*" not in page.locator(optional).evaluate(label), path
                assert page.evaluate("(lang) => window.palierAudit.audit(lang)", lang) == [], path
            finally:
                context.close()


# --- an error next to its field ---


def _wrong_code(page: Any, world: World) -> None:
    _ask_code(page, world)
    page.locator("#code").fill("000000")
    with page.expect_navigation():
        page.locator("#code").press("Enter")


def _zero_points(page: Any, world: World) -> None:
    page.locator("#points").fill("0")
    page.locator("#reason").fill("Geste commercial")
    with page.expect_navigation():
        page.locator("#reason").press("Enter")


def _free_reward(page: Any, world: World) -> None:
    page.locator("#cost_points").fill("0")
    with page.expect_navigation():
        page.locator("#cost_points").press("Enter")


def _sale_total(page: Any, world: World) -> None:
    page.locator("#sale_order_total").fill("douze")
    with page.expect_navigation():
        page.locator("#sale_order_total").press("Enter")


def _colleague(email: Callable[[World], str], role: str = "") -> Callable[[Any, World], None]:
    def add(page: Any, world: World) -> None:
        page.locator("#new-display_name").fill("Noé Petit")
        page.locator("#new-email").fill(email(world))
        page.locator("#new-password").fill(PASSWORD)
        if role:  # a role this console does not offer (a form sent by hand, or from an older page)
            page.locator("#new-role").evaluate(
                f"(select) => {{ select.add(new Option('{role}', '{role}')); select.value = '{role}'; }}"
            )
        with page.expect_navigation():
            page.locator("#new-password").press("Enter")

    return add


ERRORS = [
    (Page("/p/{program_id}/sign-in/code", "visitor", "/p/{program}/sign-in", then=_wrong_code, name="a wrong code"),
     "#code"),
    (Page("/console/members/{member_id}", "staff", "/console/members/{member}", then=_zero_points, name="0 points"),
     "#points"),
    (Page("/console/rewards/{reward_id}", "staff", "/console/rewards/{reward}", then=_free_reward, name="0 points"),
     "#cost_points"),
    (Page("/till/members/{member_id}", "staff", "/till/members/{member}", then=_sale_total, name="a total in words"),
     "#sale_order_total"),
    (Page("/console/staff", "staff", "/console/staff", name="an e-mail taken",
          then=_colleague(lambda world: world.admin_email)), "#new-email"),
    (Page("/console/staff", "staff", "/console/staff", name="a role not offered",
          then=_colleague(lambda world: f"{unique('noe')}@maison.example", role="owner")), "#new-role"),
]  # fmt: skip


@ONE_ENGINE
@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize(("target", "at_fault"), ERRORS, ids=[f"{page.route} ({page.name})" for page, _ in ERRORS])
def test_an_error_is_read_out_with_its_field(
    world: World, browser: Any, target: Page, at_fault: str, lang: str
) -> None:
    """The field at fault is marked invalid, names the error as its description, and has the focus when the page
    comes back: a screen reader reads the field, then what is wrong with it."""
    page = open_page(world, browser, target, lang)
    try:
        field = page.locator(at_fault)
        assert field.get_attribute("aria-invalid") == "true", page.url
        said = field.evaluate(
            "(el) => (el.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean)"
            ".map((id) => document.getElementById(id)?.innerText || '').join(' ').trim()"
        )
        assert said, f"{at_fault} does not say what is wrong"
        assert field.evaluate("(el) => el === document.activeElement"), f"{at_fault} does not have the focus"
        assert page.evaluate("(lang) => window.palierAudit.audit(lang)", lang) == []
    finally:
        page.close()
