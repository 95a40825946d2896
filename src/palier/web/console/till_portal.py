"""The member portal opened from the till: a QR code the customer scans with their phone to sign in.

Palier sends no e-mail, so a shop without a mailer has no other way to let its members in. The link is the
one of ``POST /v1/members/{id}/portal-link`` (valid 15 minutes, works once, and its page asks "Continue as
…?" first); it is on the page that answers the form only, never in an address, and that page is not cached.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from palier.config import Settings
from palier.errors import PalierError
from palier.portal import service as portal
from palier.web import i18n, once
from palier.web.console.access import current, requires, staff_router
from palier.web.console.till import _member, _refused
from palier.web.portal_view import qr_svg

router = staff_router()


@router.post("/till/members/{member_id}/portal-link")
@requires("till.use")
def portal_link(request: Request, member_id: str) -> Response:
    who = current(request)
    member_id = member_id[:40]
    settings: Settings = request.app.state.settings
    try:
        with once.write(request) as conn:
            issued = portal.issue_link(
                conn=conn,
                clock=request.app.state.clock,
                program=who.program,
                member_id=member_id,
                secret_key=settings.secret_key,
            )
            once.led_to(conn, request, f"/till/members/{member_id}")  # a second tap: the page, never the link
    except PalierError as error:
        return _refused(request, member_id, error)
    base = settings.public_url or str(request.base_url).rstrip("/")
    url = f"{base}/p/{who.program.id}/enter?token={issued.token}"
    label = i18n.translate(i18n.request_language(request), "console.till.portal_qr")
    shown = {"url": url, "qr": qr_svg(url, label), "expires_at": issued.expires_at}
    return _member(request, member_id, status=201, portal_link=shown)
