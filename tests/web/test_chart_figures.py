"""The dashboard's charts in a browser (Chromium): their figures are written as the page's language writes
them (1 234,5 on a French page, 1,234.5 on an English one), whatever language the browser itself speaks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api.helpers import ApiProgram
from tests.web.test_console import add_staff, shop, sign_in

__all__ = ["add_staff"]  # the fixture, shared with the console's browser tests

FIGURE = "() => Chart.getChart(document.getElementById('basket-chart')).scales.x.getLabelForValue(1234.5)"


def test_chart_figures_follow_the_pages_language_not_the_browsers(
    new_program: Callable[..., ApiProgram], new_page: Callable[..., Any], add_staff: Callable[..., str]
) -> None:
    program = new_program(name="Maison Chiffres")
    shop(program)
    email = add_staff(program, "admin", "Camille Martin")
    for browser, page_language, written in (("en-US", "fr", "1\u202f234,5"), ("fr-FR", "en", "1,234.5")):
        page = new_page(locale=browser)
        page.goto("/console/sign-in?lang=fr")  # the sign-in form in French, as the helper types in it
        sign_in(page, email)
        page.wait_for_url("**/console/dashboard")
        page.goto(f"/console/dashboard?lang={page_language}")
        page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('basket-chart'))")
        assert page.evaluate(FIGURE) == written, (browser, page_language)
