"""A reward redeemed at the till: the customer at the counter exchanges points for a coupon, with no portal.

The same service as ``POST /v1/members/{id}/redemptions`` (``rewards.redeem``) on the ``store`` channel, so
every check of the catalog applies (stock, limits, window, audience, points); the coupon is then offered on the
same page with its *Use* button, for this ticket or a later one. The form acts once: a double tap is one coupon.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from palier.errors import PalierError
from palier.rewards import service as rewards
from palier.rewards.models import RedeemIn
from palier.web import once
from palier.web.console.access import current, requires, staff_router
from palier.web.console.till import _refused

router = staff_router()


@router.post("/till/members/{member_id}/rewards/{reward_id}/redeem")
@requires("points.pay")
async def redeem(request: Request, member_id: str, reward_id: str) -> Response:
    who = current(request)
    member_id = member_id[:40]

    def command(conn: Any) -> str:
        done = rewards.redeem(
            conn=conn,
            clock=request.app.state.clock,
            program=who.program,
            member_id=member_id,
            data=RedeemIn(reward_id=reward_id[:32], channel="store"),
        )
        query = urlencode({"ok": "redeemed", "code": done.coupon.code})
        return once.led_to(conn, request, f"/till/members/{member_id}?{query}")

    try:
        location = once.run(request, command)
    except PalierError as error:
        return _refused(request, member_id, error)
    return RedirectResponse(location, status_code=303)
