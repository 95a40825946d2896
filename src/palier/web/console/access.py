"""Who may open a console or till page: one guard for every staff route, driven by the permissions table.

Each page declares what it needs with ``@requires("rules.edit")`` (see ``palier.staff.permissions``);
the guard, a dependency of every staff router, reads that mark from the matched endpoint. A visitor
without a staff session is sent to the sign-in page; a staff user whose role lacks the permission gets
the 403 page; a page without a mark is refused to everyone (fail closed). The user and their role are
read from the database on each request, so a deactivation or a role change applies at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Request, Response
from starlette.routing import Match

from palier.db import Database
from palier.errors import NotFound, PalierError
from palier.programs.models import Program
from palier.programs.service import get_program
from palier.staff import service as staff
from palier.staff.models import StaffUser
from palier.staff.permissions import Permission, allows
from palier.web import once, page_router
from palier.web.render import PageError, SignInRequired
from palier.web.sessions import STAFF_SESSION

SIGN_IN = "/console/sign-in"
_ROUTERS: list[APIRouter] = []  # every staff router, whose pages a form's address leads back to
_MARK = "__palier_permission__"
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


@dataclass(frozen=True)
class Staff:
    """The signed-in staff user and their program, for a page."""

    user: StaffUser
    program: Program

    def may(self, permission: Permission) -> bool:
        return allows(self.user.role, permission)


def requires(permission: Permission) -> Callable[[F], F]:
    """Mark a page with the permission it needs (read by :func:`staff_guard`)."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _MARK, permission)
        return endpoint

    return mark


def permission_of(endpoint: Any) -> Permission | None:
    found: Permission | None = getattr(endpoint, _MARK, None)
    return found


def signed_in(request: Request) -> Staff | None:
    """The staff user of this browser's session, if it is live (not signed out, expired, or ended by a
    new password) and the user still active."""
    cached = getattr(request.state, "staff", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    session = STAFF_SESSION.read(request)
    if session is None:
        return None
    db: Database = request.app.state.db
    with db.read() as conn:
        try:
            user = staff.get(conn=conn, staff_id=session["s"])
        except NotFound:
            return None
        if not user.active:
            return None
        program = get_program(conn=conn, program_id=user.program_id)
    found = Staff(user=user, program=program)
    request.state.staff = found
    return found


def staff_guard(request: Request) -> Staff:
    """The dependency of every staff router: signed in, and allowed this page's permission."""
    who = signed_in(request)
    if who is None:
        target = _back_to(request)
        unsent = "" if request.method in ("GET", "HEAD") else "unsent=1"  # a form that was not sent: said so
        query = "&".join(part for part in (f"next={quote(target, safe='')}" if target else "", unsent) if part)
        raise SignInRequired(f"{SIGN_IN}?{query}" if query else SIGN_IN)
    permission = permission_of(request.scope.get("endpoint"))
    if permission is None or not who.may(permission):
        raise PageError(403, "console.forbidden")
    return who


def _back_to(request: Request) -> str | None:
    """Where signing in leads back to: the page asked for or, for a form sent after the session ended, the page
    the form was on (the browser's Referer, else the form's own address), as a page: the address a refused form
    answered at, like the form's own, only takes forms and would be a 404 once signed in."""
    url = request.url
    if request.method in ("GET", "HEAD"):
        return url.path + (f"?{url.query}" if url.query else "")
    came_from = urlsplit(request.headers.get("referer", ""))
    path = came_from.path if came_from.netloc == url.netloc and came_from.path else url.path
    return _page_at(path)  # without its query: "?ok=sale…" would show a sale not this form's


def _page_at(path: str) -> str | None:
    """``path`` if a staff page is shown there, else the nearest one above it (``/till/members/m1/sale`` →
    ``/till/members/m1``)."""
    while safe_next(path):
        scope = {"type": "http", "method": "GET", "path": path, "root_path": ""}
        for route in (route for router in _ROUTERS for route in router.routes):  # the staff pages only
            if route.matches(scope)[0] == Match.FULL:
                return path
        path = path.rsplit("/", 1)[0]
    return None


def staff_router(**kwargs: Any) -> APIRouter:
    """A page router whose every route needs a staff session and the route's permission."""
    router = page_router(**kwargs)
    _ROUTERS.append(router)
    router.dependencies.append(Depends(staff_guard))  # after the CSRF check
    router.dependencies.append(Depends(once.read_token))  # a write form's one-time token (palier.web.once)
    return router


def open_session(request: Request, response: Response, user: StaffUser) -> None:
    """Sign this browser in as ``user``."""
    STAFF_SESSION.open(request, response, user.id, {})


def current(request: Request) -> Staff:
    """The staff user the guard let in (for the page's own use)."""
    who: Staff = request.state.staff
    return who


def safe_next(value: str | None) -> str | None:
    """A post-sign-in destination: a path of this site only (no open redirect)."""
    if value and value.startswith(("/console", "/till")) and "//" not in value and "\\" not in value:
        return value
    return None


def own_or_404(request: Request, get: Callable[..., T], **ids: str) -> T:
    """``get(conn=…, program_id=<the staff user's program>, **ids)``, each id cut to 40 characters: something of
    the staff user's own program, or the 404 page (another program's id is simply not found)."""
    db: Database = request.app.state.db
    with db.read() as conn:
        try:
            return get(conn=conn, program_id=current(request).program.id, **{k: v[:40] for k, v in ids.items()})
        except PalierError:
            raise PageError(404, "error.not_found") from None
