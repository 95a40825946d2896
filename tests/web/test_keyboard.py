"""The console from the keyboard alone, in a browser (Chromium): no box shuts a keyboard user in, and what
scrolls sideways on a phone can be scrolled without a mouse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api.helpers import ApiProgram
from tests.web.test_console import add_staff, sign_in

__all__ = ["add_staff"]  # the fixture, shared with the console's browser tests

FOCUSED = "() => document.activeElement.id || document.activeElement.innerText"


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
