"""What recording a purchase stores, built from values (no I/O): its booking, its result, its rows.

Shared by :func:`palier.activity.service.record_purchase` (one purchase as it comes) and the bulk import
(:mod:`palier.activity.bulk`, a batch written in a few set-based statements), so both store the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from palier.activity.earning import Earning
from palier.activity.models import EventResult, PurchaseIn
from palier.errors import InvalidInput
from palier.ledger.operations import Booking
from palier.programs.models import Program
from palier.rules.engine import Award, campaign_points_on_lines


def check_currency(purchase: PurchaseIn, program: Program) -> None:
    if purchase.currency != program.currency:
        raise InvalidInput(
            "currency_mismatch",
            f"This program counts in {program.currency}, not {purchase.currency}.",
            field="currency",
        )


def purchase_result(
    *, event_id: str, purchase: PurchaseIn, member_id: str | None, points: int, label: str
) -> EventResult:
    """The result before any points are booked (an unclaimed purchase keeps it so)."""
    return EventResult(
        event_id=event_id,
        type="purchase",
        external_id=purchase.order_id,
        status="processed" if member_id else "unclaimed" if purchase.member else "anonymous",
        member_id=member_id,
        points=points,
        reason=label,
    )


def note_earned(
    result: EventResult,
    *,
    transaction_id: str | None,
    pending: bool,
    matures_at: datetime,
    repaid: int,
    expired: int = 0,
) -> None:
    """Add to ``result`` what the ledger did with the points."""
    result.transaction_id, result.pending = transaction_id, pending
    result.matures_at = matures_at if pending else None
    if repaid:
        result.details["debt_repaid"] = repaid
    if expired:  # sent after the points' life had ended: issued and expired at once
        result.details["expired"] = expired


def purchase_booking(
    *,
    program_id: str,
    member_id: str,
    purchase: PurchaseIn,
    label: str,
    now: datetime,
    occurred_at: datetime,
    event_id: str,
) -> Booking:
    """The ledger transaction that issues a purchase's points, as the member reads it."""
    return Booking(
        program_id=program_id,
        member_id=member_id,
        kind="earn",
        reason=label,
        reason_code="purchase",
        now=now,
        effective_at=occurred_at,
        event_id=event_id,
        details={"order_id": purchase.order_id},
    )


def with_campaign_points(lines: list[dict[str, Any]], awards: Sequence[Award]) -> list[dict[str, Any]]:
    """``lines`` (stored order lines) with the points each campaign rule put on them, as ``campaign_points``
    (rule id -> points; left out of lines that got none)."""
    found = campaign_points_on_lines(awards, len(lines))
    out = []
    for line, campaigns in zip(lines, found, strict=True):
        line = {k: v for k, v in line.items() if k != "campaign_points"}
        out.append(line | {"campaign_points": campaigns} if campaigns else line)
    return out


def purchase_row(
    *,
    event_id: str,
    program_id: str,
    member_id: str | None,
    purchase: PurchaseIn,
    earning: Earning,
    label: str,
    lot_id: str | None,
    shipping_earns: bool,
    awards: Sequence[Award] = (),
) -> dict[str, Any]:
    """The ``purchases`` row: what the order earned, line by line, nothing returned yet; whether its shipping
    earned (``shipping_eligible``), as the program said then: a refund of shipping takes back points only then.
    Each line keeps what campaign rules' ``awards`` put on it (``campaign_points``): a return gives that back."""
    lines = with_campaign_points(
        [
            {"sku": line.sku, "quantity": line.quantity, "amount": line.amount, "points": points, "returned": 0}
            for line, points in zip(purchase.lines, earning.line_points, strict=True)
        ],
        awards,
    )
    return {
        "event_id": event_id,
        "program_id": program_id,
        "member_id": member_id,
        "order_id": purchase.order_id,
        "label": label,
        "total": earning.total,
        "eligible": earning.eligible,
        "points": earning.points,
        "lot_id": lot_id,
        "refunded": 0,
        "shipping": purchase.shipping,
        "shipping_refunded": 0,
        "shipping_eligible": purchase.shipping if shipping_earns else 0,
        "points_returned": 0,
        "points_excused": 0,
        "lines": lines,
    }
