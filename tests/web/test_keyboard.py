"""The console from the keyboard alone, in a browser (Chromium): no box shuts a keyboard user in, and what
scrolls sideways on a phone can be scrolled without a mouse; and the editor's line numbers, which the problems
point at, are legible (contrast at least 4.5:1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api.helpers import ApiProgram
from tests.web.conftest import MOBILE
from tests.web.test_console import add_staff, shop, sign_in

__all__ = ["add_staff"]  # the fixture, shared with the console's browser tests

FOCUSED = "() => document.activeElement.id || document.activeElement.innerText"
CONTRAST = """el => {
  const rgb = (css) => css.match(/\\d+/g).slice(0, 3).map(Number);
  const lum = (channels) => channels.map(v => v / 255)
    .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const style = getComputedStyle(el), back = getComputedStyle(el.parentElement);
  const [a, b] = [lum(rgb(style.color)), lum(rgb(back.backgroundColor))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def test_tab_indents_in_the_yaml_editor_and_esc_then_tab_leaves_it_as_the_page_says(
    new_program: Callable[..., ApiProgram], page: Any, add_staff: Callable[..., str]
) -> None:
    program = new_program(name="Maison Clavier")
    sign_in(page, add_staff(program, "marketer", "Inès Laurent"), next_path="/console/rules")
    page.wait_for_url("**/console/rules")
    editor = page.locator("textarea#document")
    keys = page.locator("#editor-keys")
    assert "editor-keys" in (editor.get_attribute("aria-describedby") or "").split()  # read out with the box
    assert keys.inner_text() == "Tab insère deux espaces ; pour quitter la zone au clavier, appuyez sur Échap puis Tab."
    assert page.locator(".gutter li").first.evaluate(CONTRAST) >= 4.5  # the line numbers, legible
    before = editor.input_value()
    editor.focus()
    page.keyboard.press("Control+Home")
    page.keyboard.press("Tab")
    assert editor.input_value() == "  " + before  # Tab indents
    assert page.evaluate(FOCUSED) == "document"
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED) == "Vérifier et enregistrer"  # out, on to the next control
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(FOCUSED) == "document"
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED) == "document"  # back in: Tab indents again
    assert editor.input_value() == "    " + before


def test_on_a_phone_a_history_wider_than_the_screen_scrolls_with_the_arrow_keys(
    new_program: Callable[..., ApiProgram], new_page: Callable[..., Any], add_staff: Callable[..., str]
) -> None:
    program = new_program(name="Maison Mobile")
    member = shop(program)["member"]
    email = add_staff(program, "admin", "Camille Martin")
    desk = new_page()
    sign_in(desk, email, next_path=f"/console/members/{member['id']}")
    desk.wait_for_url(f"**/console/members/{member['id']}")
    assert desk.locator(".table-wrap").get_attribute("tabindex") is None  # it fits: no extra tab stop
    phone = new_page(viewport=MOBILE)
    sign_in(phone, email, next_path=f"/console/members/{member['id']}")
    phone.wait_for_url(f"**/console/members/{member['id']}")
    box = phone.locator(".table-wrap")
    assert box.evaluate("box => box.scrollWidth > box.clientWidth")  # the history is wider than the phone
    assert box.get_attribute("role") == "region" and box.get_attribute("aria-label") == "Historique"
    for _ in range(40):  # from the top of the page, Tab after Tab, as far as the history
        phone.keyboard.press("Tab")
        if phone.evaluate("() => document.activeElement.classList.contains('table-wrap')"):
            break
    else:
        raise AssertionError("the history is never reached with Tab")
    phone.keyboard.press("ArrowRight")
    phone.wait_for_function("() => document.querySelector('.table-wrap').scrollLeft > 0")


def test_the_dashboards_filters_wait_for_enter_when_chosen_from_the_keyboard(
    new_program: Callable[..., ApiProgram], page: Any, add_staff: Callable[..., str]
) -> None:
    """Arrows go through the period's choices and digits fill a date part by part: the page is not loaded again
    (and the focus lost) at each key, but once, with Enter, and the focus comes back to the field."""
    program = new_program(name="Maison Flèches")
    sign_in(page, add_staff(program, "marketer", "Inès Laurent"), next_path="/console/dashboard")
    page.wait_for_url("**/console/dashboard")
    page.evaluate("() => { window.stayed = true; }")  # gone once the page is loaded again
    page.locator("#weeks").focus()
    page.keyboard.press("ArrowDown")  # 12 weeks -> 26
    page.keyboard.press("ArrowDown")  # -> 52
    assert page.evaluate("() => [document.activeElement.id, window.stayed]") == ["weeks", True]
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "weeks=52" in page.url
    assert page.evaluate(FOCUSED) == "weeks"
    page.evaluate("() => { window.stayed = true; }")
    page.locator("#last").fill("2026-03-01")  # picked, with only one end of the period: nothing to apply yet
    page.locator("#first").focus()
    page.keyboard.type("02022026")  # day and month (either order), then year
    assert page.evaluate("() => [document.activeElement.id, window.stayed]") == ["first", True]
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "first=2026-02-02" in page.url and "last=2026-03-01" in page.url
    assert page.evaluate(FOCUSED) == "first"


def test_on_a_phone_a_refused_till_form_says_why_where_the_focus_lands(
    new_program: Callable[..., ApiProgram], new_page: Callable[..., Any], add_staff: Callable[..., str]
) -> None:
    program = new_program(name="Maison Caisse")
    member = shop(program)["member"]
    phone = new_page(viewport=MOBILE)
    sign_in(phone, add_staff(program, "store_staff", "Hugo Caisse"), next_path=f"/till/members/{member['id']}")
    phone.wait_for_url(f"**/till/members/{member['id']}")
    phone.locator(".refund-form summary").click()
    phone.locator("#refund_order_id").fill("T0000-NOPE")
    phone.locator("#refund_amount").fill("5")
    phone.locator("#refund_amount").press("Enter")  # the keyboard's Enter sends it
    phone.wait_for_function("() => document.activeElement.id === 'refund_order_id'")  # the box at fault
    said = "Aucun achat ne porte ce numéro de commande"
    # the words are on screen with the box, not only in the alert at the top of a page the phone has scrolled down
    shown = phone.locator(f".field-error:has-text('{said}')")
    assert shown.count() == 1 and shown.is_visible()
    on_screen = "el => { const r = el.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight }"
    assert shown.evaluate(on_screen)
    described = phone.locator("#refund_order_id").get_attribute("aria-describedby") or ""
    assert shown.get_attribute("id") in described.split()  # and read out with it
