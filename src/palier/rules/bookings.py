"""Booking what the rules award for an event that is not a purchase (an action, a gift): the event row,
its awards and one ledger credit. Stored once: (program, type, external id) is unique."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from palier.activity.models import EventResult
from palier.activity.tables import events
from palier.clock import Clock
from palier.ids import new_id
from palier.ledger import operations as ledger
from palier.members.service import expiry_for
from palier.programs.models import Program
from palier.rules.engine import Award, CompiledRuleSet
from palier.rules.service import award_lines, book_awards


def credit(
    *,
    conn: Connection,
    clock: Clock,
    program: Program,
    rules: CompiledRuleSet,
    member_id: str,
    type_: str,
    external_id: str,
    shown_id: str,
    occurred_at: datetime,
    awards: list[Award],
    label: str,
    body: dict[str, Any],
    body_hash: str,
    channel: str | None = None,
) -> EventResult:
    """Book ``awards`` (cut to campaign limits) as one credit, available at once. The caller holds the lock."""
    now = clock.now()
    event_id = new_id("event")
    granted = book_awards(
        conn=conn, clock=clock, program=program, rules=rules, member_id=member_id, event_id=event_id, awards=awards
    )
    points = sum(a.points for a in granted if a.kind == "points")
    result = EventResult(
        event_id=event_id,
        type=type_,  # type: ignore[arg-type]
        external_id=shown_id,
        status="processed",
        member_id=member_id,
        points=points,
        reason=label,
        awards=award_lines(granted, program),
    )
    booking = ledger.Booking(
        program_id=program.id,
        member_id=member_id,
        kind="earn",
        reason=label,
        reason_code=type_,
        now=now,
        effective_at=occurred_at,
        event_id=event_id,
        details={"rules_version": rules.version},
    )
    earned = ledger.earn(
        conn,
        booking,
        amount=points,
        source=type_,
        label=label,
        matures_at=None,
        expires_at=expiry_for(program, occurred_at),
    )
    result.transaction_id = earned.transaction_id
    if earned.repaid_debt:
        result.details["debt_repaid"] = earned.repaid_debt
    conn.execute(
        insert(events).values(
            id=event_id,
            program_id=program.id,
            type=type_,
            external_id=external_id,
            member_id=member_id,
            status="processed",
            channel=channel,
            occurred_at=occurred_at,
            received_at=now,
            payload_hash=body_hash,
            body=body,
            result=result.model_dump(mode="json"),
        )
    )
    if points:  # the merchant's mailer hears of it (the outbox, in this transaction)
        from palier.notify.outbox import tell_points

        told = {"source": type_, "reason": label, "order_id": None, "points": points, "pending": False}
        told |= {"matures_at": None, "total": None, "currency": program.currency}
        tell_points(conn, program.id, "points_earned", member_id, told, now)
    return result
