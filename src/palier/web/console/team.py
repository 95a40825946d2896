"""The program's staff in the console (admins only): add someone, change a role, set a new password,
deactivate or reactivate — the same service, checks and audit trail as ``palier staff``.

Palier has no mailer: an admin gives a newcomer (or someone who forgot theirs) a temporary password in
person. The program's last active admin cannot be deactivated or demoted, and nobody deactivates
themselves here, so the console never locks its own admins out.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from palier.db import Database
from palier.errors import Conflict, PalierError
from palier.staff import service as staff
from palier.staff.models import StaffCreate, StaffUser
from palier.staff.permissions import ROLES
from palier.web import i18n, once
from palier.web.console.access import Staff, current, requires, staff_router
from palier.web.console.forms import errors_by_field
from palier.web.render import PageError, render

router = staff_router()
DONE = ("added", "role", "password", "deactivated", "reactivated")


def _page(
    request: Request,
    *,
    status: int = 200,
    done: str | None = None,
    errors: dict[str, str] | None = None,
    sent: dict[str, str] | None = None,
    refused: PalierError | None = None,
) -> HTMLResponse:
    who = current(request)
    language = i18n.request_language(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        users = staff.list_users(conn=conn, program_id=who.program.id)
    return render(
        request,
        "console/team.html",
        status=status,
        staff=who,
        section="team",
        users=users,
        roles=ROLES,
        done=done if done in DONE else None,
        errors=errors or {},
        sent=sent or {},
        refused=None if refused is None else _in_words(refused, language),
    )


def _in_words(error: PalierError, language: str) -> str:
    """A refusal in the page's language when the catalogue has words for its code, else its detail."""
    return i18n.catalogs()[language].get(f"console.team.refused.{error.code}") or i18n.said(language, error)


def _actor(who: Staff) -> str:
    return f"staff:{who.user.id}"


def _colleague(conn: Any, who: Staff, staff_id: str) -> StaffUser:
    """A staff user of the admin's own program (another program's id is simply not found)."""
    try:
        user = staff.get(conn=conn, staff_id=staff_id[:40])
    except PalierError:
        raise PageError(404, "error.not_found") from None
    if user.program_id != who.program.id:
        raise PageError(404, "error.not_found")
    return user


@router.get("/console/staff")
@requires("staff.manage")
def team_page(request: Request, done: str | None = None) -> HTMLResponse:
    return _page(request, done=done)


@router.post("/console/staff")
@requires("staff.manage")
async def add_staff(request: Request) -> Response:
    who = current(request)
    form = await request.form()
    sent = {name: str(form.get(name, "")).strip() for name in ("email", "display_name", "role")}
    try:
        data = StaffCreate.model_validate(sent | {"password": str(form.get("password", ""))})
        clock = request.app.state.clock
        with once.write(request) as conn:
            staff.create(conn=conn, clock=clock, program_id=who.program.id, data=data, actor=_actor(who))
            once.led_to(conn, request, "/console/staff?done=added")
    except ValidationError as error:
        return _page(request, status=422, errors=errors_by_field(error, i18n.request_language(request)), sent=sent)
    except PalierError as error:
        language = i18n.request_language(request)
        return _page(
            request, status=error.status, errors={error.field or "email": _in_words(error, language)}, sent=sent
        )
    return RedirectResponse("/console/staff?done=added", status_code=303)


@router.post("/console/staff/{staff_id}/role")
@requires("staff.manage")
async def change_role(request: Request, staff_id: str) -> Response:
    form = await request.form()
    return _act(request, staff_id, "role", role=str(form.get("role", "")))


@router.post("/console/staff/{staff_id}/password")
@requires("staff.manage")
async def set_password(request: Request, staff_id: str) -> Response:
    form = await request.form()
    return _act(request, staff_id, "password", password=str(form.get("password", "")))


@router.post("/console/staff/{staff_id}/active")
@requires("staff.manage")
async def set_active(request: Request, staff_id: str) -> Response:
    form = await request.form()
    active = form.get("active") == "on"
    return _act(request, staff_id, "reactivated" if active else "deactivated", active=active)


def _act(request: Request, staff_id: str, done: str, **change: Any) -> Response:
    """One change to a colleague, in one transaction; a refusal re-shows the page with why."""
    who = current(request)
    clock = request.app.state.clock
    try:
        with once.write(request) as conn:
            user = _colleague(conn, who, staff_id)
            if "role" in change:
                staff.set_role(conn=conn, clock=clock, staff_id=user.id, role=change["role"], actor=_actor(who))
            elif "password" in change:
                staff.change_password(
                    conn=conn, clock=clock, staff_id=user.id, new_password=change["password"], actor=_actor(who)
                )
            else:
                if user.id == who.user.id and not change["active"]:
                    raise Conflict("own_account", "You cannot deactivate your own account.", field="active")
                staff.set_active(conn=conn, clock=clock, staff_id=user.id, active=change["active"], actor=_actor(who))
            once.led_to(conn, request, f"/console/staff?done={done}")
    except PalierError as error:
        return _page(request, status=error.status, refused=error)
    return RedirectResponse(f"/console/staff?done={done}", status_code=303)
