"""Members in the console: search by any identity, detail with balances and history, manual adjustment."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from palier.activity import service as activity
from palier.activity.models import AdjustmentIn
from palier.db import Database
from palier.errors import PalierError
from palier.web import history_text, i18n
from palier.web.console.access import current, requires, staff_router
from palier.web.console.forms import errors_by_field
from palier.web.console.people import member_view
from palier.web.console.search import display_name, posted_search
from palier.web.render import PageError, render

router = staff_router()


@router.get("/console/members")
@requires("members.view")
def members_page(request: Request) -> Response:
    return render(request, "console/members.html", staff=current(request), section="members", q="", rows=[])


@router.post("/console/members")
@requires("members.view")
async def members_search(request: Request) -> Response:
    who = current(request)
    q, found = await posted_search(request, who.program)
    if len(found) == 1:
        return RedirectResponse(f"/console/members/{found[0].id}", status_code=303)
    rows = [{"member": m, "name": display_name(m)} for m in found]
    return render(request, "console/members.html", staff=who, section="members", q=q, rows=rows)


def _detail(request: Request, member_id: str, *, status: int = 200, **ctx: Any) -> HTMLResponse:
    who = current(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        try:
            view = member_view(conn=conn, clock=request.app.state.clock, program=who.program, member_id=member_id[:40])
        except PalierError:
            raise PageError(404, "error.not_found") from None
        said = history_text.describe(conn, who.program, view.history, i18n.request_language(request))
    ctx.setdefault("errors", {})
    ctx.setdefault("sent", {})
    lines = list(zip(view.history, said, strict=True))
    return render(
        request, "console/member.html", status=status, staff=who, section="members", v=view, lines=lines, **ctx
    )


@router.get("/console/members/{member_id}")
@requires("members.view")
def member_page(request: Request, member_id: str, adjusted: int | None = None) -> HTMLResponse:
    return _detail(request, member_id, adjusted=adjusted)


@router.post("/console/members/{member_id}/adjust")
@requires("members.adjust")
async def adjust(request: Request, member_id: str) -> Response:
    """The same service as ``POST /v1/members/{id}/adjustments``: a lot or a debit, a reason, an audit entry."""
    who = current(request)
    form = await request.form()
    points_text, reason = str(form.get("points", "")).strip(), str(form.get("reason", "")).strip()
    sent = {"points": points_text, "reason": reason}
    try:
        points = int(points_text.replace("+", "").replace(" ", "")) if points_text else 0
        adjustment = AdjustmentIn.model_validate({"points": points, "reason": reason})
        db: Database = request.app.state.db
        done, _ = db.run(
            lambda conn: activity.adjust(
                conn=conn,
                clock=request.app.state.clock,
                program=who.program,
                member_id=member_id[:40],
                adjustment=adjustment,
                actor=f"staff:{who.user.id}",
            )
        )
    except ValueError as error:  # not a number, or pydantic's ValidationError
        language = i18n.request_language(request)
        errors = errors_by_field(error, language) if isinstance(error, ValidationError) else {"points": "not_a_number"}
    except PalierError as error:
        said = i18n.said(i18n.request_language(request), error, points_name=who.program.points_name)
        errors = {error.field or "points": said}
    else:
        return RedirectResponse(f"/console/members/{member_id}?adjusted={done.points}", status_code=303)
    return _detail(request, member_id, status=422, errors=errors, sent=sent, adjusted=None)
