"""Signed session cookies and CSRF protection for the web pages.

Every browser gets a CSRF token in the signed ``palier_csrf`` cookie (made on its first page). Forms carry
it in a hidden ``csrf`` input, htmx sends it as ``X-CSRF-Token`` (``base.html`` sets that up); every
POST, PUT, PATCH or DELETE to a web page must carry the same token, or it is refused with a 403 page.

A session (a member's in the portal, a staff user's in the console) is a row on the server and a cookie
signed with itsdangerous under its own salt, so one cannot stand for the other; the cookie is HttpOnly,
SameSite=Lax, Secure over https, and expires; a member's is sent to its program's portal only (``/p/<id>``).
It records the CSRF token of the browser it was opened in: a session cookie copied into another browser is
not accepted there (``SessionCookie.read`` returns None), nor anywhere once its session is signed out.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer

from palier.config import Settings
from palier.db import Database
from palier.sessions import service as sessions

CSRF_COOKIE = "palier_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfRefused(Exception):
    """A form or htmx request without the browser's CSRF token (rendered as a 403 page)."""


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def csrf_token(request: Request) -> str:
    """This browser's CSRF token (made, and set on the response by ``render``, on its first visit)."""
    token = getattr(request.state, "csrf", None)
    if token is not None:
        return str(token)
    signer = URLSafeSerializer(_settings(request).secret_key, salt="palier.csrf")
    raw = request.cookies.get(CSRF_COOKIE)
    token = None
    if raw:
        try:
            token = str(signer.loads(raw))
        except BadSignature:
            token = None
    if token is None:
        token = secrets.token_urlsafe(24)
        request.state.csrf_cookie = signer.dumps(token)
    request.state.csrf = token
    return token


def remember_csrf(request: Request, response: Response) -> None:
    """Set the CSRF cookie on ``response`` if this request made the browser's token."""
    cookie = getattr(request.state, "csrf_cookie", None)
    if cookie is not None:
        response.set_cookie(
            CSRF_COOKIE, cookie, httponly=True, samesite="lax", secure=_secure(request), max_age=365 * 86400
        )


async def csrf_guard(request: Request) -> None:
    """A dependency of every web router: unsafe methods must carry the browser's CSRF token."""
    token = csrf_token(request)
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()  # cached on the request: the route reads the same form afterwards
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if getattr(request.state, "csrf_cookie", None) is not None or not sent or not hmac.compare_digest(sent, token):
        raise CsrfRefused()


@dataclass(frozen=True)
class SessionCookie:
    """A kind of session: its cookie name, its signing salt, whose it is and how long it lasts.

    The cookie is signed and holds the session's token; the session itself is a row on the server
    (``palier.sessions``), so signing out ends it even for a copy of the cookie."""

    name: str
    salt: str
    kind: sessions.Kind
    max_age: int  # seconds

    def _serializer(self, request: Request) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(_settings(request).secret_key, salt=self.salt)

    def _signed(self, request: Request) -> dict[str, Any] | None:
        raw = request.cookies.get(self.name)
        if not raw:
            return None
        try:
            data = self._serializer(request).loads(raw, max_age=self.max_age)
        except BadSignature:  # SignatureExpired is one
            return None
        if not isinstance(data, dict) or not isinstance(data.get("t"), str) or not isinstance(data.get("s"), str):
            return None
        return data

    def read(self, request: Request) -> dict[str, Any] | None:
        """The session's data (its subject under ``"s"``), or None: no cookie, forged, opened in another
        browser, signed out or expired."""
        data = self._signed(request)
        if data is None or not hmac.compare_digest(str(data.get("csrf", "")), csrf_token(request)):
            return None
        db: Database = request.app.state.db
        with db.read_one() as conn:
            subject = sessions.find(conn=conn, clock=request.app.state.clock, kind=self.kind, token=data["t"])
        return data if subject == data["s"] else None

    def open(
        self, request: Request, response: Response, subject_id: str, data: dict[str, Any], *, path: str = "/"
    ) -> None:
        """Start a session of ``subject_id`` holding ``data`` (bound to this browser's CSRF token); its cookie
        is sent to ``path`` and below only (a member's to their program's portal, so that a person in two
        programs keeps a session in each)."""
        db: Database = request.app.state.db
        with db.write() as conn:
            token = sessions.open_session(
                conn=conn,
                clock=request.app.state.clock,
                kind=self.kind,
                subject_id=subject_id,
                lasts=timedelta(seconds=self.max_age),
            )
        value = self._serializer(request).dumps({**data, "s": subject_id, "t": token, "csrf": csrf_token(request)})
        response.set_cookie(
            self.name, value, max_age=self.max_age, path=path, httponly=True, samesite="lax", secure=_secure(request)
        )
        if path != "/":  # a cookie of this name for the whole site (as member sessions had) would be read instead
            response.delete_cookie(self.name, httponly=True, samesite="lax", secure=_secure(request))
        remember_csrf(request, response)

    def end_all(self, request: Request, subject_id: str) -> None:
        """Sign ``subject_id`` out on every browser."""
        db: Database = request.app.state.db
        with db.write() as conn:
            sessions.end_all(conn=conn, clock=request.app.state.clock, kind=self.kind, subject_id=subject_id)

    def close(self, request: Request, response: Response, *, path: str = "/") -> None:
        """Sign out: end the session on the server and remove the cookie (the one ``open`` set for ``path``)."""
        data = self._signed(request)
        if data is not None:
            db: Database = request.app.state.db
            with db.write() as conn:
                sessions.end(conn=conn, clock=request.app.state.clock, token=data["t"])
        response.delete_cookie(self.name, path=path, httponly=True, samesite="lax", secure=_secure(request))


MEMBER_SESSION = SessionCookie("palier_member", "palier.member-session", "member", max_age=12 * 3600)
STAFF_SESSION = SessionCookie("palier_staff", "palier.staff-session", "staff", max_age=10 * 3600)
