"""VIP membership at the till: a plan's fee taken at the counter, and a fee given back.

A shop whose till sends Palier nothing records the fee itself, as it records a sale: the ticket number is
the payment's id (``POST /v1/memberships/payments``), so a second tap is the same payment, and a fee for the
same plan taken minutes ago under another ticket is asked about first. A fee given back is the console's
refund (:mod:`palier.web.console.fees`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import Connection

from palier.errors import PalierError
from palier.memberships import service as memberships
from palier.memberships.models import MembershipPaymentIn
from palier.programs.service import record_audit
from palier.web import once
from palier.web.console import fees
from palier.web.console.access import current, requires, staff_router
from palier.web.console.till import _ask_if_repeated, _member, _refused, _Repeated, _sent, _ticket

router = staff_router()


@router.post("/till/members/{member_id}/membership")
@requires("sales.record")
async def take_fee(request: Request, member_id: str) -> Response:
    """The plan's fee paid at the counter: the membership starts, or renews from the end of the paid period."""
    who = current(request)
    member_id = member_id[:40]
    form = await request.form()
    sent = _sent(form, "vip", "plan", "payment_id", "invitation_code")
    clock = request.app.state.clock
    try:
        with request.app.state.db.read() as conn:
            plan = memberships.get_plan(conn=conn, program_id=who.program.id, code=sent["plan"][:40])
        payment = MembershipPaymentIn.model_validate(
            {
                "payment_id": sent["payment_id"] or _ticket(request),
                "member_id": member_id,
                "plan": plan.code,
                "amount": plan.price,
                "paid_at": clock.now(),
                "invitation_code": sent["invitation_code"] or None,
            }
        )

        def command(conn: Connection) -> str:
            def repeated_fee(since: datetime) -> dict[str, Any] | None:
                paid = memberships.member_payments(conn=conn, program_id=who.program.id, member_id=member_id, limit=5)
                twin = next(
                    (fee for fee in paid if fee.plan == plan.code and fee.paid_at >= since and not fee.refunded_at
                     and fee.payment_id != payment.payment_id),
                    None,
                )  # fmt: skip
                return None if twin is None else {"kind": "vip", "order_id": twin.payment_id, "amount": twin.amount,
                                                  "plan": twin.plan_name, "created_at": twin.paid_at}  # fmt: skip

            _ask_if_repeated(request, conn, member_id, form, repeated_fee)
            membership, replayed = memberships.record_payment(conn=conn, clock=clock, program=who.program, data=payment)
            if not replayed:  # like a sale recorded at the till: anyone at the counter could do it
                record_audit(
                    conn=conn, clock=clock, program_id=who.program.id, actor=f"staff:{who.user.id}",
                    action="till.membership_fee", subject_id=member_id,
                    details={"payment_id": payment.payment_id, "plan": plan.code, "amount": plan.price,
                             "period_end": membership.period_end.isoformat()},
                )  # fmt: skip
            query = urlencode({"fee_paid": payment.payment_id})
            return once.led_to(conn, request, f"/till/members/{member_id}?{query}#fees")

        location = once.run(request, command)
    except _Repeated as asked:
        return _member(request, member_id, status=409, repeat=asked.repeat, sent=sent)
    except (ValidationError, PalierError) as error:
        return _refused(request, member_id, error, sent)
    return RedirectResponse(location, status_code=303)


@router.post("/till/members/{member_id}/fees/{payment_id}/refund")
@requires("memberships.refund")
async def refund_fee(request: Request, member_id: str, payment_id: str) -> Response:
    """A VIP fee given back at the counter, as on the console's member page."""
    done = await fees.refund_fee(request, member_id, payment_id, page=f"/till/members/{member_id[:40]}")
    if isinstance(done, fees.FeeRefused):
        return _member(request, member_id, status=done.status, fee_refused=done)
    return RedirectResponse(done, status_code=303)
