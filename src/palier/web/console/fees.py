"""A member's VIP fees on a staff page (the console's member page, the till), and a fee given back from it.

Both pages list the same fees and refund them through the same service as
``POST /v1/memberships/payments/{payment_id}/refund``: the whole fee, a note for the audit trail; the time it
paid for and not used yet is taken back, and that period's unused coupons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from pydantic import ValidationError
from sqlalchemy import Connection

from palier.errors import NotFound, PalierError
from palier.memberships import service as memberships
from palier.memberships.models import MembershipRefundIn
from palier.web import i18n, once, present
from palier.web.console.access import current
from palier.web.console.forms import errors_by_field


def fees_shown(
    conn: Connection, *, program_id: str, member_id: str, refunded: str | None, paid: str | None = None
) -> dict[str, Any]:
    """What a page needs to show the member's fees: ``fees``; ``fee_refunded`` (with the codes of the coupons it
    cancelled, ``fee_coupons``) when the page follows the refund of ``refunded``, ``fee_paid`` when it follows the
    fee ``paid`` taken at the till. What the address names is shown only if it was recorded for this member."""
    fees = memberships.member_payments(conn=conn, program_id=program_id, member_id=member_id)
    done = next((fee for fee in fees if fee.payment_id == refunded and fee.refunded_at), None)
    cancelled = done.coupons_cancelled if done else []
    return {
        "fees": fees,
        "fee_refunded": done,
        "fee_coupons": ", ".join(present.display_code(code) for code in cancelled),  # as the page shows codes
        "fee_paid": next((fee for fee in fees if fee.payment_id == paid and not fee.refunded_at), None),
    }


@dataclass(frozen=True)
class FeeRefused:
    payment_id: str
    said: str
    status: int


async def refund_fee(request: Request, member_id: str, payment_id: str, *, page: str) -> str | FeeRefused:
    """Refund the member's fee ``payment_id`` as the form asks; where to go next (``page`` saying what the refund
    did), or why it was refused. A fee of another member is not one of the page's: not found."""
    who = current(request)
    member_id, payment_id = member_id[:40], payment_id[:64]
    note = str((await request.form()).get("note", "")).strip()
    language = i18n.request_language(request)

    def command(conn: Connection) -> str:
        owner = memberships.payment_member(conn=conn, program_id=who.program.id, payment_id=payment_id)
        if owner != member_id:
            raise NotFound("payment_not_found", "No membership payment has this payment_id.", field="payment_id")
        memberships.refund_payment(
            conn=conn, clock=request.app.state.clock, program=who.program, payment_id=payment_id,
            data=MembershipRefundIn.model_validate({"note": note or None}), actor=f"staff:{who.user.id}",
        )  # fmt: skip
        return once.led_to(conn, request, f"{page}?{urlencode({'fee_refunded': payment_id})}#fees")

    try:
        return once.run(request, command)
    except ValidationError as error:
        return FeeRefused(payment_id, next(iter(errors_by_field(error, language).values())), 422)
    except PalierError as error:
        said = i18n.said(language, error, points_name=who.program.points_name_in(language))
        return FeeRefused(payment_id, said, error.status)
