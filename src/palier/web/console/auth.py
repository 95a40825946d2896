"""Staff sign-in and sign-out (the only console pages open without a session)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from palier.api import ratelimit
from palier.db import Database
from palier.errors import Throttled, Unauthenticated
from palier.staff import service as staff
from palier.staff.permissions import allows
from palier.web import page_router
from palier.web.console.access import open_session, safe_next, signed_in
from palier.web.render import render
from palier.web.sessions import STAFF_SESSION

router = page_router()


def home_of(role: str) -> str:
    """Where a staff user lands: the dashboard, or the till for store staff."""
    return "/console/dashboard" if allows(role, "dashboard.view") else "/till"


@router.get("/console/sign-in")
def sign_in_page(request: Request, next: str | None = None, unsent: str | None = None) -> Response:
    """``unsent``: the session ended as a form was sent, which was not taken: the page says so."""
    who = signed_in(request)
    if who is not None:
        return RedirectResponse(safe_next(next) or home_of(who.user.role), status_code=303)
    return render(
        request, "console/sign_in.html", next=safe_next(next) or "", email="", error=None, unsent=unsent == "1"
    )


@router.post("/console/sign-in")
async def sign_in(request: Request) -> Response:
    form = await request.form()
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    db: Database = request.app.state.db
    ip = request.client.host if request.client else "unknown"
    ratelimit.check_sign_in(request, "console", email)
    error: str | None = None
    params: dict[str, object] = {}
    try:
        with db.write() as conn:
            try:
                user = staff.authenticate(
                    conn=conn, clock=request.app.state.clock, email=email, password=password, ip=ip
                )
            except Unauthenticated:
                conn.commit()  # the failed attempt counts towards throttling
                raise
    except Unauthenticated:
        error = "console.sign_in.failed"
    except Throttled as exc:
        error, params = (
            "console.sign_in.throttled",
            {"minutes": exc.extra["minutes"], "retry_after": exc.extra["retry_after"]},
        )
    if error is not None:
        status = 429 if error.endswith("throttled") else 401
        page = render(
            request, "console/sign_in.html", status=status, next=target or "", email=email, error=error, params=params
        )
        if status == 429:
            page.headers["Retry-After"] = str(params["retry_after"])
        return page
    response = RedirectResponse(target or home_of(user.role), status_code=303)
    open_session(request, response, user)
    return response


@router.post("/console/sign-out")
def sign_out(request: Request) -> Response:
    response = RedirectResponse("/console/sign-in", status_code=303)
    STAFF_SESSION.close(request, response)
    return response
