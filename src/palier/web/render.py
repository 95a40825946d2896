"""Rendering pages: one Jinja2 environment, ``render(request, template, **ctx)``, and the page errors.

Every template gets ``lang``, ``t`` (the translator for it), ``csrf`` (the browser's token, for forms),
``lang_url(code)`` (this page in another language: the visible switch) and ``static(path)``.
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from palier import __version__
from palier.programs.models import Program
from palier.text import points_word
from palier.web import i18n, once, present
from palier.web.sessions import csrf_token, remember_csrf

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


# Pages are never framed (a Redeem button under someone else's page is clickjacking), never cached, and
# never send their address (a sign-in link's token) to another site.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


class PageError(Exception):
    """A refusal shown as a page: ``status`` and a message key (rendered by ``error.html``)."""

    def __init__(self, status: int, message_key: str, **params: Any) -> None:
        super().__init__(message_key)
        self.status = status
        self.message_key = message_key
        self.params = params


class SignInRequired(Exception):
    """The page needs a session: the visitor is sent to ``sign_in_url`` (303)."""

    def __init__(self, sign_in_url: str) -> None:
        super().__init__(sign_in_url)
        self.sign_in_url = sign_in_url


def _day(program: Program | None, language: str, when: datetime, *, last: bool = False) -> str:
    """A date in the program's time zone (UTC without a program), as the page's language writes it; ``last``:
    the last day of a period ending at ``when`` (:func:`present.last_day`)."""
    if program is None:
        return f"{when:%Y-%m-%d}"
    return (present.last_day if last else present.day)(when, program, language)


def _money(program: Program | None, language: str, amount: int) -> str:
    """Minor units in the program's currency, as the page's language writes them."""
    if program is None:
        raise ValueError("money is shown for a program's page only")
    return present.money(amount, program, language)


def _moment(program: Program | None, language: str, when: datetime) -> str:
    """A date and time in the program's time zone (UTC, said so, without a program)."""
    if program is None:
        return f"{when:%Y-%m-%d %H:%M} UTC"
    return present.moment(when, program, language)


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(("html", "svg")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals["static"] = lambda path: f"/static/{path}?v={__version__}"
    env.globals["area_home"] = area_home
    env.globals["once_field"] = once.field  # a write form's one-time token: posted twice, it acts once
    # a phone number is never cut across two lines (+33 6 46 / 71 36 95 on a phone's narrow screen)
    env.filters["phone"] = lambda number: Markup('<span class="nowrap">{}</span>').format(present.phone(number))
    env.filters["after_colon"] = present.after_colon
    return env


def area_home(path: str) -> str:
    """Where an error page's way back leads: the home of the area the visitor was in (the member's portal,
    the console or the till), never the API's root."""
    parts = path.strip("/").split("/")
    if parts[0] in ("p", "how-it-works") and len(parts) > 1 and parts[1]:
        return f"/p/{quote(parts[1], safe='')}"
    if parts[0] in ("console", "till"):
        return f"/{parts[0]}"
    return "/"


def lang_url(request: Request, language: str, page: str | None = None) -> str:
    """The current page in ``language`` (its query kept); ``page``: its address when the answer is to a form
    posted elsewhere (the ``page_url`` of the page)."""
    query = {k: v for k, v in request.query_params.items() if k != "lang"}
    query["lang"] = language
    return f"{page or request.url.path}?{urlencode(query)}"


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    language: str | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered for this request; ``language`` is the preferred one (e.g. the member's)."""
    lang = i18n.request_language(request, preferred=language)
    token = csrf_token(request)
    program = context.get("program") or getattr(context.get("staff"), "program", None)  # member or console pages
    points_name = program.points_name_in(lang) if program is not None else "points"  # in the page's language
    html = (
        environment()
        .get_template(template)
        .render(
            request=request,
            lang=lang,
            t=i18n.translator(lang),
            tn=functools.partial(i18n.translate_count, lang),
            csrf=token,
            lang_url=functools.partial(lang_url, request, page=context.get("page_url")),
            fmt_int=lambda value: present.number(int(value), lang),
            points_name=points_name,
            points_word=lambda count: points_word(int(count), points_name, lang),
            local=lambda value: i18n.localized(value, lang),
            day=functools.partial(_day, program, lang),
            last_day=functools.partial(_day, program, lang, last=True),
            moment=functools.partial(_moment, program, lang),
            money=functools.partial(_money, program, lang),
            coupon_code=present.display_code,
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status, headers=headers)
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    remember_csrf(request, response)
    chosen = i18n.pick(request.query_params.get("lang"))
    if chosen is not None and chosen != request.cookies.get(i18n.LANG_COOKIE):
        response.set_cookie(i18n.LANG_COOKIE, chosen, max_age=365 * 86400, samesite="lax")
    return response
