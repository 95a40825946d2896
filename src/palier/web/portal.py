"""The member portal: balance, rewards within reach, status, history, catalog with redeem, coupons, settings.

Every page starts from ``signed_in(request, program_id)``: the member comes from the session only.
Redeeming calls ``rewards.service.redeem``, as ``POST /v1/members/{id}/redemptions`` does, so every
ledger rule applies; a refusal is shown on the catalog with the problem's message.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from palier.api import ratelimit
from palier.db import Database
from palier.errors import PalierError
from palier.members import service as members
from palier.members.models import ConsentsUpdate, MemberUpdate
from palier.rewards import service as rewards
from palier.rewards.models import RedeemIn
from palier.text import points_word
from palier.web import i18n, once, page_router, portal_view
from palier.web.portal_auth import SignedIn, signed_in
from palier.web.render import PageError, render

router = page_router()
CONSENTS = ("email_marketing", "sms_marketing", "push", "profiling")
HISTORY_PAGE = 25


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _page(request: Request, who: SignedIn, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    return render(
        request,
        template,
        status=status,
        language=who.language,
        program=who.program,
        section=template.removeprefix("portal/").removesuffix(".html"),
        **context,
    )


@router.get("/p/{program_id}", response_class=HTMLResponse)
def dashboard(program_id: str, request: Request) -> HTMLResponse:
    who = signed_in(request, program_id)
    language = i18n.request_language(request, preferred=who.language)
    with _db(request).read() as conn:
        view = portal_view.dashboard(conn, request.app.state.clock, who.program, who.member_id, language)
    return _page(request, who, "portal/dashboard.html", view=view)


@router.get("/p/{program_id}/history", response_class=HTMLResponse)
def history(
    program_id: str, request: Request, before: Annotated[str | None, Query(max_length=40)] = None
) -> HTMLResponse:
    who = signed_in(request, program_id)
    language = i18n.request_language(request, preferred=who.language)
    cursor = before if before and before.startswith("txn_") else None
    with _db(request).read() as conn:
        lines, next_cursor = portal_view.history(
            conn, who.program, who.member_id, language, cursor=cursor, limit=HISTORY_PAGE
        )
    more = request.headers.get("HX-Request") == "true" and cursor is not None  # htmx: "Older" appends lines
    template = "portal/history_more.html" if more else "portal/history.html"
    return _page(request, who, template, lines=lines, next_cursor=next_cursor)


def _catalog_page(request: Request, who: SignedIn, *, status: int = 200, error: str | None = None) -> HTMLResponse:
    language = i18n.request_language(request, preferred=who.language)
    with _db(request).read() as conn:
        items = portal_view.catalog(conn, request.app.state.clock, who.program, who.member_id, language)
        available = members.balance(
            conn=conn, clock=request.app.state.clock, program=who.program, member_id=who.member_id
        ).available
    return _page(request, who, "portal/rewards.html", status=status, items=items, available=available, error=error)


@router.get("/p/{program_id}/rewards", response_class=HTMLResponse)
def catalog(program_id: str, request: Request) -> HTMLResponse:
    return _catalog_page(request, signed_in(request, program_id))


@router.post("/p/{program_id}/rewards/{reward_id}/redeem", response_model=None, dependencies=[Depends(once.read_token)])
def redeem(program_id: str, reward_id: str, request: Request) -> Response:
    """Redeem from the catalog; the form acts once (a double click or a resend shows the first coupon)."""
    who = signed_in(request, program_id)
    ratelimit.check(request, "redeem", who.program.id, who.member_id)  # the same count as the API's redemptions
    language = i18n.request_language(request, preferred=who.language)

    def command(conn: Connection) -> str:
        done = rewards.redeem(
            conn=conn,
            clock=request.app.state.clock,
            program=who.program,
            member_id=who.member_id,
            data=RedeemIn(reward_id=reward_id[:32], channel="web"),
        )
        return once.led_to(conn, request, f"/p/{who.program.id}/coupons?new={done.coupon.id}")

    try:
        location = once.run(request, command, posted_by=who.member_id)
    except PalierError as refused:
        key = f"redeem.error.{refused.code}"
        if key in i18n.catalogs()[language]:
            figures = {k: v for k, v in refused.extra.items() if isinstance(v, int)}
            name = points_word(figures.get("missing", 2), who.program.points_name_in(language), language)
            shown = {k: i18n.grouped(v, language) for k, v in figures.items()}  # 9 650 in French, as the catalog
            message = i18n.translate(language, key, name=name, **shown)
        else:
            detail = i18n.said(language, refused, points_name=who.program.points_name_in(language))
            message = i18n.translate(language, "redeem.error.other", detail=detail)
        return _catalog_page(request, who, status=refused.status, error=message)
    return RedirectResponse(location, status_code=303)


@router.get("/p/{program_id}/rewards/{reward_id}/redeem", response_model=None)
def redeem_address(program_id: str, reward_id: str, request: Request) -> Response:
    """A refused redemption is shown at the form's address: opened again (its language switch, a reload, a
    bookmark), that address leads to the catalog, where the Redeem button is, with the query kept (``lang``)."""
    who = signed_in(request, program_id)
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"/p/{who.program.id}/rewards{query}", status_code=303)


@router.get("/p/{program_id}/coupons", response_class=HTMLResponse)
def coupons(program_id: str, request: Request, new: Annotated[str | None, Query(max_length=40)] = None) -> HTMLResponse:
    who = signed_in(request, program_id)
    language = i18n.request_language(request, preferred=who.language)
    with _db(request).read() as conn:
        found = portal_view.coupons(conn, who.program, who.member_id, language, request.app.state.clock.now())
    ready = [c for c in found if c.state == "issued"]
    past = [c for c in found if c.state != "issued"]
    fresh = new if any(c.id == new for c in ready) else None  # only the member's own coupon is highlighted
    done = next((c.title for c in past if c.id == new), None)  # store credit: in the wallet at once
    older = len(past) > portal_view.PAST_COUPONS
    return _page(
        request, who, "portal/coupons.html", ready=ready, past=past[: portal_view.PAST_COUPONS], older=older,
        fresh=fresh, done=done,
    )  # fmt: skip


@router.get("/p/{program_id}/settings", response_class=HTMLResponse)
def settings_form(program_id: str, request: Request, saved: bool = False) -> HTMLResponse:
    who = signed_in(request, program_id)
    with _db(request).read() as conn:
        member = members.get_member(conn=conn, program_id=who.program.id, member_id=who.member_id)
    return _page(request, who, "portal/settings.html", member=member, consents=CONSENTS, saved=saved)


@router.post("/p/{program_id}/settings", response_model=None)
async def save_settings(program_id: str, request: Request) -> Response:
    """Language and consents only: a checkbox left unticked is a consent withdrawn."""
    form = await request.form()
    who = signed_in(request, program_id)
    language = i18n.pick(str(form.get("language", ""))) or i18n.pick(who.language) or i18n.DEFAULT_LANGUAGE
    changes = MemberUpdate(
        language=language,
        consents=ConsentsUpdate(**{name: form.get(name) == "on" for name in CONSENTS}),
    )
    with _db(request).write() as conn:
        members.update_member(
            conn=conn,
            clock=request.app.state.clock,
            program=who.program,
            member_id=who.member_id,
            changes=changes,
            actor="portal",
        )
    response = RedirectResponse(f"/p/{who.program.id}/settings?saved=1", status_code=303)
    response.set_cookie(i18n.LANG_COOKIE, language, max_age=365 * 86400, samesite="lax")
    return response


@router.get("/p/{program_id}/{rest:path}", response_model=None)
def not_found(program_id: str, rest: str, request: Request) -> Response:
    """A mistyped portal address: a page saying so (not the API's problem+json), for people. An address with a
    trailing slash (``/p/<id>/``, as links in e-mails often end) leads to the page without it, query kept."""
    if rest == "" or rest.endswith("/"):
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/p/{program_id}/{rest}".rstrip("/") + query, status_code=307)
    raise PageError(404, "error.not_found")
