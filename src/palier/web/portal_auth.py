"""Signing in to the member portal: by a signed link from the merchant's site, or by a one-time code.

A link's address only shows whose account it opens, with a button; the button's POST signs in.

The member's session holds the program and the member; every portal page reads the member from it and
from nowhere else (``signed_in``), so a member can only ever see and act as themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from palier.api import ratelimit
from palier.config import Settings
from palier.db import Database
from palier.errors import InvalidInput
from palier.members.identities import ascii_digits, normalise_email
from palier.members.tables import members
from palier.portal import service as portal
from palier.programs.models import Program
from palier.web import page_router
from palier.web.howto import load_program
from palier.web.render import SignInRequired, render
from palier.web.sessions import MEMBER_SESSION

log = logging.getLogger("palier.portal")
router = page_router()
_PENDING_COOKIE = "palier_sign_in"
_PENDING_SALT = "palier.portal-code"


@dataclass(frozen=True)
class SignedIn:
    """The member of the session, and their program: what every portal page is scoped to."""

    program: Program
    member_id: str
    language: str


def home_url(program_id: str) -> str:
    return f"/p/{program_id}"


def sign_in_url(program_id: str) -> str:
    return f"/p/{program_id}/sign-in"


def signed_in(request: Request, program_id: str) -> SignedIn:
    """The session's member if it was opened for this program and the member is still active; otherwise
    the visitor is sent to the sign-in page. Ids in the URL, query or form never choose the member."""
    db: Database = request.app.state.db
    program = load_program(db, program_id)
    session = MEMBER_SESSION.read(request)
    if session is None or session.get("p") != program.id:
        raise SignInRequired(sign_in_url(program.id))
    member_id = str(session["s"])
    with db.read() as conn:
        row = conn.execute(
            members.select()
            .with_only_columns(members.c.status, members.c.language)
            .where(members.c.id == member_id, members.c.program_id == program.id)
        ).first()
    if row is None or row.status != "active":  # merged away since: sign in again (to the remaining account)
        raise SignInRequired(sign_in_url(program.id))
    return SignedIn(program=program, member_id=member_id, language=row.language)


def _start_session(request: Request, program_id: str, member_id: str) -> Response:
    response = RedirectResponse(home_url(program_id), status_code=303)
    MEMBER_SESSION.open(request, response, member_id, {"p": program_id}, path=home_url(program_id))
    response.delete_cookie(_PENDING_COOKIE, path=f"/p/{program_id}")
    return response


def _sign_in_page(request: Request, program: Program, error: str, *, status: int = 200) -> HTMLResponse:
    return render(request, "portal/sign_in.html", status=status, program=program, error=error, email="")


# --- a signed link from the merchant's site ---


def _link_refused(request: Request, program: Program) -> HTMLResponse:
    return render(request, "portal/sign_in.html", status=400, program=program, error="signin.link_invalid", email="")


@router.get("/p/{program_id}/enter", response_class=HTMLResponse)
def enter_form(program_id: str, request: Request, token: Annotated[str, Query(max_length=2000)] = "") -> HTMLResponse:
    """A page asking "Continue as …?" with a button: opening a link signs no one in and spends nothing, so a
    mail scanner that fetches it leaves it working, and a person sent someone else's link sees whose it is."""
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    program = load_program(db, program_id)
    with db.read() as conn:
        holder = portal.link_holder(
            conn=conn, clock=request.app.state.clock, program_id=program.id, token=token, secret_key=settings.secret_key
        )
    if holder is None:
        return _link_refused(request, program)
    return render(request, "portal/enter.html", program=program, holder=holder, token=token)


@router.post("/p/{program_id}/enter", response_model=None)
def enter(program_id: str, request: Request, token: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """The button of the link's page (with the browser's CSRF token, as every form): spends the link and
    signs its member in."""
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    program = load_program(db, program_id)
    with db.write() as conn:
        member_id = portal.redeem_link(
            conn=conn, clock=request.app.state.clock, program_id=program.id, token=token, secret_key=settings.secret_key
        )
    if member_id is None:
        return _link_refused(request, program)
    return _start_session(request, program.id, member_id)


# --- a one-time code by e-mail ---


def _pending(request: Request) -> URLSafeTimedSerializer:
    settings: Settings = request.app.state.settings
    return URLSafeTimedSerializer(settings.secret_key, salt=_PENDING_SALT)


@router.get("/p/{program_id}/sign-in", response_class=HTMLResponse)
def sign_in_form(program_id: str, request: Request, signed_out: bool = False) -> HTMLResponse:
    program = load_program(request.app.state.db, program_id)
    notice = "portal.signed_out" if signed_out else None
    return render(request, "portal/sign_in.html", program=program, error=None, email="", notice=notice)


@router.post("/p/{program_id}/sign-in", response_model=None)
def ask_for_code(program_id: str, request: Request, email: Annotated[str, Form(max_length=254)] = "") -> Response:
    """Same answer whether or not the e-mail is a member's: the code page, and a code only if it is."""
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    program = load_program(db, program_id)
    ratelimit.check_sign_in(request, program.id, email)
    try:
        typed = normalise_email(email, field="email")
    except InvalidInput:
        return render(
            request, "portal/sign_in.html", status=422, program=program, error="signin.email_invalid", email=email
        )
    with db.write() as conn:
        asked = portal.request_code(
            conn=conn,
            clock=request.app.state.clock,
            program=program,
            email=typed,
            card_key=settings.card_hash_key,
            secret_key=settings.secret_key,
        )
    if asked.sent is not None and settings.show_sign_in_codes:
        log.warning(
            "Demo: the portal sign-in code for %s is %s (valid %d minutes)", typed, asked.sent.code, portal.CODE_MINUTES
        )
    # An unknown e-mail gets a pending sign-in too, for a stored sign-in that no code opens.
    pending = {"p": program.id, "s": asked.sign_in_id, "e": typed}
    response = RedirectResponse(f"/p/{program.id}/sign-in/code", status_code=303)
    response.set_cookie(
        _PENDING_COOKIE,
        _pending(request).dumps(pending),
        max_age=portal.CODE_MINUTES * 60,
        path=f"/p/{program.id}",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


def _read_pending(request: Request, program_id: str) -> dict[str, str] | None:
    raw = request.cookies.get(_PENDING_COOKIE)
    if not raw:
        return None
    try:
        data = _pending(request).loads(raw, max_age=portal.CODE_MINUTES * 60)
    except BadSignature:
        return None
    return data if isinstance(data, dict) and data.get("p") == program_id else None


@router.get("/p/{program_id}/sign-in/code", response_class=HTMLResponse)
def code_form(program_id: str, request: Request) -> Response:
    program = load_program(request.app.state.db, program_id)
    pending = _read_pending(request, program.id)
    if pending is None:
        return _sign_in_page(request, program, "signin.code_expired")
    return render(
        request, "portal/code.html", program=program, email=pending["e"], error=None, minutes=portal.CODE_MINUTES
    )


def _code_digits(typed: str) -> str:
    """The six digits of a typed code as 0 to 9, whichever keyboard typed them (full-width, Arabic-Indic) and
    with the spaces or dashes a mailer may print in it ("123-456"); "" if anything else is in it."""
    kept = "".join(typed.split()).replace("-", "")
    return ascii_digits(kept) if kept.isdecimal() else ""


@router.post("/p/{program_id}/sign-in/code", response_model=None)
def check_code(program_id: str, request: Request, code: Annotated[str, Form(max_length=20)] = "") -> Response:
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    program = load_program(db, program_id)
    pending = _read_pending(request, program.id)
    if pending is None:
        return render(
            request, "portal/sign_in.html", status=400, program=program, error="signin.code_expired", email=""
        )
    ratelimit.check_sign_in_code(request)  # before the code is read: over the limit, no try is spent
    digits = _code_digits(code)
    member_id = None
    if len(digits) == 6:
        with db.write() as conn:
            member_id = portal.check_code(
                conn=conn,
                clock=request.app.state.clock,
                program_id=program.id,
                sign_in_id=pending["s"],
                code=digits,
                secret_key=settings.secret_key,
            )
    if member_id is None:
        return render(
            request,
            "portal/code.html",
            status=422,
            program=program,
            email=pending["e"],
            error="signin.code_wrong",
            minutes=portal.CODE_MINUTES,
        )
    return _start_session(request, program.id, member_id)


@router.post("/p/{program_id}/sign-out")
def sign_out(program_id: str, request: Request, everywhere: Annotated[bool, Form()] = False) -> Response:
    """End this browser's session; with ``everywhere``, every session the member has open (a lost phone)."""
    program = load_program(request.app.state.db, program_id)
    session = MEMBER_SESSION.read(request) if everywhere else None
    if session is not None and session.get("p") == program.id:
        MEMBER_SESSION.end_all(request, session["s"])
        with request.app.state.db.write() as conn:  # and the codes and links still unused: they would open one
            portal.void_open(conn=conn, clock=request.app.state.clock, program_id=program.id, member_id=session["s"])
    response = RedirectResponse(f"{sign_in_url(program.id)}?signed_out=1", status_code=303)
    MEMBER_SESSION.close(request, response, path=home_url(program.id))
    return response
