"""The dashboard in a browser (Chromium): a big program's figures stay inside their cards, on a desktop and on
a phone, in French and English."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api.helpers import ApiProgram
from tests.web.conftest import MOBILE
from tests.web.test_console import add_staff, sign_in

__all__ = ["add_staff"]  # the fixture, shared with the console's browser tests

SPILLING = """() => [...document.querySelectorAll('.kpi-value')]
    .filter(v => v.scrollWidth > v.clientWidth).map(v => v.dataset.kpi + ': ' + v.textContent)"""


def test_a_big_programs_figures_stay_inside_their_cards(
    new_program: Callable[..., ApiProgram], new_page: Callable[..., Any], add_staff: Callable[..., str]
) -> None:
    program = new_program(name="Maison Grande")
    member = program.enrol(first_name="Léa")
    for _ in range(9):
        program.adjust(member["id"], 9_999_999, reason="Opening balance")  # 899 999,91 € at a cent a point
    program.purchase(member["id"], lines=[{"sku": "CAKE", "quantity": 3, "unit_price": 123_456_789}])  # 3 703 703 pts
    email = add_staff(program, "admin", "Camille Martin")
    for viewport in (None, MOBILE):
        page = new_page(viewport=viewport)
        sign_in(page, email)
        page.wait_for_url("**/console/dashboard")
        for language in ("fr", "en"):
            page.goto(f"/console/dashboard?lang={language}")
            assert page.evaluate(SPILLING) == [], (viewport, language)
