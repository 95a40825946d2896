"""A staff user's own password, for everyone signed in: the current one, then the new one twice."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from palier.errors import PalierError
from palier.staff import service as staff
from palier.web import once
from palier.web.console.access import current, open_session, requires, staff_router
from palier.web.render import render

router = staff_router()


def _page(
    request: Request, *, status: int = 200, errors: dict[str, str] | None = None, saved: bool = False
) -> Response:
    """The form; ``errors`` maps a field to the catalogue key of what is wrong with it."""
    who = current(request)
    page = "console/password.html"
    return render(request, page, status=status, staff=who, section="password", errors=errors or {}, saved=saved)


@router.get("/console/password")
@requires("account.password")
def password_page(request: Request, saved: int | None = None) -> Response:
    return _page(request, saved=bool(saved))


@router.post("/console/password")
@requires("account.password")
async def change_own_password(request: Request) -> Response:
    who = current(request)
    form = await request.form()
    new, again = str(form.get("new_password", "")), str(form.get("new_password_again", ""))
    if new != again:
        return _page(request, status=422, errors={"new_password_again": "console.password.mismatch"})
    try:
        with once.write(request) as conn:
            staff.change_password(
                conn=conn,
                clock=request.app.state.clock,
                staff_id=who.user.id,
                new_password=new,
                current_password=str(form.get("current_password", "")),
                actor=f"staff:{who.user.id}",
            )
            once.led_to(conn, request, "/console/password?saved=1")
    except PalierError as error:
        field = error.field or "new_password"
        return _page(request, status=422, errors={field: f"console.password.refused.{error.code}"})
    response = RedirectResponse("/console/password?saved=1", status_code=303)
    open_session(request, response, who.user)  # the new password ended every session; this browser opens a new one
    return response
