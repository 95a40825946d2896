"""Purchases paid with a payment card nobody had linked, credited when a member links the card (a *claim*).

A claimed purchase earns what it would have earned had the card been linked when it paid: it is priced again
for the member by the path every purchase takes (``rules.purchase_earning``), as of the moment it was made: the
rules then in force, the member's tier and VIP plans of that day, campaign budgets and the member's caps,
spend-step rules' running spend (a step crossed gives its coupon now). Until then the purchase took nothing
from any budget. What returns recorded before the claim took back is taken off, as a return after the claim
would have taken it, and later returns take back what the claim gave.

Each purchase is claimed once: the caller holds the card's claim lock (``card_claim_key``), and a claimed
purchase is no longer ``unclaimed``, so linking the card again, a retry or a second member racing for the
card credits nothing more.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, delete, insert, select, update

from palier.activity.models import Line, MemberRef, PurchaseIn
from palier.activity.purchase_rows import with_campaign_points
from palier.activity.returns import returned_points
from palier.activity.tables import events, purchases
from palier.clock import Clock, utc
from palier.errors import Unprocessable
from palier.ledger import operations as ledger
from palier.ledger.locks import lock_members
from palier.members import service as members
from palier.notify import outbox
from palier.programs.models import Program
from palier.rewards import payments
from palier.rules import service as rules
from palier.rules.tables import awards as award_rows


def claim_unclaimed(*, conn: Connection, clock: Clock, program: Program, member_id: str, kind: str, value: str) -> int:
    """Credit ``member_id`` with the purchases made with this card before it was linked; returns how many.

    The caller holds the card's claim lock; the orders are locked so that a return being recorded on one of
    them at this moment is counted exactly once. Oldest first: each counts in the running spend and caps
    the next one reads, as they would have had the card been linked then. An order that would earn the
    member more than one purchase may (``points_too_large``, naming it) refuses the link: the caller's
    transaction is rolled back, nothing is kept.
    """
    lock_members(conn, [member_id])
    orders = (
        conn.execute(
            select(purchases, events.c.occurred_at, events.c.body)
            .join(events, events.c.id == purchases.c.event_id)
            .where(
                events.c.program_id == program.id,
                events.c.claim_kind == kind,
                events.c.claim_value == value,
                events.c.status == "unclaimed",
            )
            .order_by(events.c.occurred_at, events.c.id)
            .with_for_update(of=purchases)
        )
        .mappings()
        .all()
    )
    now = clock.now()
    for order in orders:
        try:
            _claim(conn, clock, program, member_id, dict(order), now)
        except Unprocessable as exc:  # a tier or plan bonus took it past what one purchase may earn
            if exc.code != "points_too_large":
                raise
            raise Unprocessable(
                "points_too_large",
                f"Order #{order['order_id']}, paid with this card before it was linked, would earn "
                f"{exc.extra.get('points', 0):,} points for this member, more than one purchase may earn: return "
                "it or correct its prices before linking the card.",
                points=exc.extra.get("points"),
                order_id=order["order_id"],
            ) from None
    return len(orders)


def _claim(
    conn: Connection, clock: Clock, program: Program, member_id: str, order: dict[str, Any], now: datetime
) -> None:
    event_id, total, refunded = order["event_id"], int(order["total"]), int(order["refunded"])
    occurred_at = utc(order["occurred_at"])
    _release_unclaimed_awards(conn, clock, program, order)
    purchase = _stored_purchase(order["body"], member_id)
    earning = rules.purchase_earning(
        conn=conn,
        clock=clock,
        program=program,
        purchase=purchase,
        member_id=member_id,
        event_id=event_id,
        occurred_at=occurred_at,
        paid_otherwise=payments.paid_otherwise(conn, program=program, order_id=order["order_id"], total=total),
    )
    lines = with_campaign_points(
        [{**line, "points": points} for line, points in zip(order["lines"], earning.line_points, strict=True)],
        earning.awards,
    )
    # whether its shipping earned, as it was priced (a refund of shipping takes back points only then)
    shipping_eligible = int(order["shipping"]) if program.earn_on_shipping else 0
    repriced = {**order, "points": earning.points, "shipping_eligible": shipping_eligible}
    # what the returns recorded so far take back of the purchase as it is priced now (none reached a member)
    returned = returned_points(repriced, lines, refunded)
    if earning.award_rows:
        conn.execute(insert(award_rows), list(earning.award_rows))
    # budget and cap rows before the program's accounts, in the order a purchase takes them
    rules.give_back(
        conn=conn,
        clock=clock,
        program=program,
        event_id=event_id,
        points=rules.Returned(earning.points, 0, returned),
        money=rules.Returned(total, 0, refunded),
        lines=rules.LinesReturned(lines, [0] * len(lines), [int(line["returned"]) for line in lines]),
    )
    lot_id = _credit(conn, program, member_id, order, earning.points - returned, now)
    conn.execute(update(events).where(events.c.id == event_id).values(member_id=member_id, status="processed"))
    conn.execute(
        update(purchases)
        .where(purchases.c.event_id == event_id)
        .values(
            member_id=member_id,
            lot_id=lot_id,
            eligible=earning.eligible,
            points=earning.points,
            points_returned=returned,
            shipping_eligible=shipping_eligible,
            lines=lines,
        )
    )


def _stored_purchase(body: dict[str, Any], member_id: str) -> PurchaseIn:
    """The purchase as it was received (its stored copy), now the member's. A copy kept before a check was
    added is read as it is, unchecked: it was accepted when it came."""
    sent = {**body, "member": {"member_id": member_id}}
    try:
        return PurchaseIn.model_validate(sent)
    except ValidationError:
        lines = [Line.model_construct(**line) for line in body["lines"]]
        return PurchaseIn.model_construct(**(sent | {"member": MemberRef(member_id=member_id), "lines": lines}))


def _credit(
    conn: Connection, program: Program, member_id: str, order: dict[str, Any], points: int, now: datetime
) -> str | None:
    """Book the claimed purchase's points, dated as it happened, in a lot of its own (its returns take from
    it); the lot's id, None when nothing is credited."""
    occurred_at = utc(order["occurred_at"])
    booking = ledger.Booking(
        program_id=program.id,
        member_id=member_id,
        kind="earn",
        reason=f"{order['label']} (card linked later)",
        reason_code="purchase_claimed",
        now=now,
        effective_at=occurred_at,
        event_id=order["event_id"],
        details={"order_id": order["order_id"]},
    )
    earned = ledger.earn(
        conn,
        booking,
        amount=points,
        source="purchase",
        label=order["label"],
        matures_at=occurred_at + timedelta(days=program.return_window_days),
        expires_at=members.expiry_for(program, occurred_at),
    )
    if points > 0:  # the merchant's mailer hears of the purchase now credited (the outbox, in this transaction)
        matures = occurred_at + timedelta(days=program.return_window_days)
        told = {"source": "purchase", "reason": booking.reason, "order_id": order["order_id"], "points": points}
        told |= {
            "pending": earned.pending,
            "matures_at": matures.isoformat(timespec="seconds") if earned.pending else None,
        }
        told |= {"total": int(order["total"]), "currency": program.currency}
        outbox.tell_points(conn, program.id, "points_earned", member_id, told, now)
    return earned.lot_id


def _release_unclaimed_awards(conn: Connection, clock: Clock, program: Program, order: dict[str, Any]) -> None:
    """Awards an earlier version recorded for the purchase while unclaimed: what they hold of campaign budgets
    goes back (the claim takes what the member's pricing gives), and the awards go (they credited no one)."""
    whole, taken = int(order["points"]), int(order["points_returned"])
    rules.give_back(
        conn=conn,
        clock=clock,
        program=program,
        event_id=order["event_id"],
        points=rules.Returned(whole, taken, whole),
        money=rules.Returned(0, 0, 0),
    )
    conn.execute(
        delete(award_rows).where(
            award_rows.c.program_id == program.id,
            award_rows.c.event_id == order["event_id"],
            award_rows.c.member_id.is_(None),
        )
    )
