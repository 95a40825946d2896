"""The program's API keys in the console (admins only): see every key, make one, revoke one — the same
service, checks and audit trail as ``POST /v1/keys`` and ``DELETE /v1/keys/{id}``.

A new key's secret is on the page that answers its creation and nowhere else: it is never stored (only its
hash is), never put in an address, and the page is not cached, so a merchant copies it there and then.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from palier.db import Database
from palier.errors import PalierError
from palier.programs import service as programs
from palier.programs.models import KeyCreate, NewApiKey
from palier.web import i18n, once
from palier.web.console.access import current, requires, staff_router
from palier.web.console.forms import errors_by_field
from palier.web.render import PageError, render

router = staff_router()
SCOPES = ("pos", "read", "admin")  # as the page lists them: the everyday key first, the all-powerful one last


def _page(
    request: Request,
    *,
    status: int = 200,
    created: NewApiKey | None = None,
    revoked: str | None = None,
    made: str | None = None,
    errors: dict[str, str] | None = None,
    sent: dict[str, object] | None = None,
) -> HTMLResponse:
    who = current(request)
    db: Database = request.app.state.db
    with db.read() as conn:
        keys = programs.list_keys(conn=conn, program_id=who.program.id)
    keys.sort(key=lambda key: (key.revoked_at is not None, -key.created_at.timestamp()))  # live ones, newest first
    return render(
        request,
        "console/keys.html",
        status=status,
        staff=who,
        section="keys",
        keys=keys,
        scopes=SCOPES,
        created=created,
        revoked=next((key for key in keys if key.id == revoked and key.revoked_at), None),
        made=next((key for key in keys if key.id == made), None),
        errors=errors or {},
        sent=sent or {"scopes": ["pos"]},
    )


@router.get("/console/keys")
@requires("keys.manage")
def keys_page(request: Request, revoked: str | None = None, made: str | None = None) -> HTMLResponse:
    """``made``: the key a form posted twice made the first time (its secret was on that answer only)."""
    return _page(request, revoked=revoked, made=made)


@router.post("/console/keys")
@requires("keys.manage")
async def create_key(request: Request) -> Response:
    who = current(request)
    form = await request.form()
    sent: dict[str, object] = {
        "name": str(form.get("name", "")).strip(),
        "scopes": [str(scope) for scope in form.getlist("scopes")],
    }
    language = i18n.request_language(request)
    try:
        spec = KeyCreate.model_validate(sent)
    except ValidationError as error:
        found = errors_by_field(error, language)
        errors = {field.split("[")[0]: said for field, said in found.items()}  # a tampered scopes[0]: at scopes
        return _page(request, status=422, errors=errors, sent=sent)
    with once.write(request) as conn:
        created = programs.create_key(
            conn=conn, clock=request.app.state.clock, program_id=who.program.id, spec=spec, actor=f"staff:{who.user.id}"
        )
        once.led_to(conn, request, f"/console/keys?made={created.id}")  # a second post: the key, never its secret
    return _page(request, status=201, created=created)


@router.post("/console/keys/{key_id}/revoke")
@requires("keys.manage")
def revoke_key(request: Request, key_id: str) -> Response:
    """Revoked at once: the next request with the key is refused. Revoking it again changes nothing."""
    who = current(request)
    try:
        with once.write(request) as conn:
            programs.revoke_key(
                conn=conn,
                clock=request.app.state.clock,
                program_id=who.program.id,
                key_id=key_id[:40],
                actor=f"staff:{who.user.id}",
            )
            location = once.led_to(conn, request, f"/console/keys?revoked={key_id}")
    except PalierError:  # another program's key, or none: not found, as any page
        raise PageError(404, "error.not_found") from None
    return RedirectResponse(location, status_code=303)
