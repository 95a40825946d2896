"""Everything Palier holds about one member, as one document (GDPR right of access).

Built from the same read functions the API's routes use, so the export says what those say: the profile with
its identities (a payment card as brand and last four digits, never its HMAC), the consents (the audit entries
say when each was given or withdrawn), the balance, the whole history, every coupon, the memberships and the
fees paid for them, the tier, the segments, the purchases and returns with their lines, the parts of orders
paid with points or store credit, the store credit, the invitations they joined with (and their notes), the
messages written about them for the mailer (a sign-in code left out), the audit entries; and the profile,
history and audit entries of the duplicate accounts merged into them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Connection, Text, cast, or_, select

from palier.clock import Clock, utc
from palier.members import service as members
from palier.members.models import Balance, HistoryLine, Member
from palier.memberships.models import Membership, MembershipPaymentLine
from palier.programs.models import AuditEntry, Program
from palier.rewards.models import Coupon, Payment, Wallet
from palier.tiers.models import TierProgress

PAGE = 200
SIGN_IN_CODE = "portal_sign_in_code"


class ExportedOrder(BaseModel):
    order_id: str
    label: str
    occurred_at: datetime
    channel: str | None
    store_id: str | None
    total: int = Field(description="minor units")
    refunded: int = Field(description="minor units")
    points: int
    points_returned: int
    lines: list[dict[str, Any]]


class ExportedReturn(BaseModel):
    return_id: str
    order_id: str | None
    occurred_at: datetime
    lines: list[dict[str, Any]] | None
    amount: int | None = Field(default=None, description="a refund without lines, minor units")
    points: int | None = Field(description="points taken back (negative)")


class ExportedInvitation(BaseModel):
    code: str
    purpose: str = Field(description="enrol (joined the program) or plan (joined a VIP plan)")
    plan: str | None
    note: str | None = Field(description="what staff wrote when making it")
    used_at: datetime


class ExportedMessage(BaseModel):
    id: str
    type: str
    payload: dict[str, Any] = Field(description="as written for the mailer (a sign-in code left out)")
    created_at: datetime
    delivered_at: datetime | None = Field(description="when the mailer or the webhook took it (null: waiting)")


class MergedAccount(BaseModel):
    profile: Member
    history: list[HistoryLine] = Field(description="the account's points until it was merged, newest first")
    audit: list[AuditEntry] = Field(description="admin actions on the account, oldest first")


class MemberExport(BaseModel):
    exported_at: datetime
    program_id: str
    profile: Member = Field(description="profile, consents and identities (payment cards: brand and last four only)")
    balance: Balance
    wallet: Wallet
    history: list[HistoryLine] = Field(description="every change to the member's points, newest first")
    coupons: list[Coupon]
    memberships: list[Membership]
    membership_payments: list[MembershipPaymentLine] = Field(
        description="the fees paid for VIP plans, newest first, with their refunds"
    )
    tier: TierProgress | None = Field(description="null: the program has no tiers")
    segments: list[str]
    purchases: list[ExportedOrder]
    returns: list[ExportedReturn]
    payments: list[Payment] = Field(
        description="the parts of orders paid with points or store credit, oldest first (cancelled ones too)"
    )
    invitations: list[ExportedInvitation] = Field(description="the invitations the member joined with")
    messages: list[ExportedMessage] = Field(
        description="the outbox events about the member still held (delivered ones go after 30 days), oldest first"
    )
    audit: list[AuditEntry] = Field(
        description="admin actions on the member, oldest first (a reversal or a granted coupon of theirs too)"
    )
    merged_accounts: list[MergedAccount] = Field(
        description="the person's duplicate accounts merged into this one (and those merged into them)"
    )


def export(*, conn: Connection, clock: Clock, program: Program, member_id: str) -> MemberExport:
    from palier.memberships.service import member_memberships, member_payments
    from palier.rewards.payments import member_payments as order_payments
    from palier.rewards.payments import wallet
    from palier.rewards.service import member_coupons
    from palier.segments.service import member_segments
    from palier.tiers.service import get_policy, progress

    profile = members.get_member(conn=conn, program_id=program.id, member_id=member_id)
    has_tiers = get_policy(conn, program_id=program.id) is not None
    return MemberExport(
        exported_at=clock.now(),
        program_id=program.id,
        profile=profile,
        balance=members.balance(conn=conn, clock=clock, program=program, member_id=member_id),
        wallet=wallet(conn=conn, program=program, member_id=member_id),
        history=_history(conn, program, member_id),
        coupons=member_coupons(conn=conn, program_id=program.id, member_id=member_id),
        memberships=member_memberships(conn=conn, program_id=program.id, member_id=member_id),
        membership_payments=member_payments(conn=conn, program_id=program.id, member_id=member_id, limit=None),
        tier=progress(conn=conn, clock=clock, program=program, member_id=member_id) if has_tiers else None,
        segments=sorted(member_segments(conn, member_id=member_id)),
        purchases=_purchases(conn, program.id, member_id),
        returns=_returns(conn, program.id, member_id),
        payments=order_payments(conn=conn, program_id=program.id, member_id=member_id),
        invitations=_invitations(conn, program.id, member_id),
        messages=_messages(conn, program.id, member_id),
        audit=_audit(conn, program.id, member_id),
        merged_accounts=[
            MergedAccount(
                profile=members.get_member(conn=conn, program_id=program.id, member_id=duplicate),
                history=_history(conn, program, duplicate),
                audit=_audit(conn, program.id, duplicate),
            )
            for duplicate in members.merged_duplicates(conn, member_id)
        ],
    )


def record_export(*, conn: Connection, clock: Clock, program: Program, member_id: str, actor: str) -> None:
    """Who had the member's whole file, and when: the proof that an access request was answered (and the trace of
    an export nobody asked for). The export holds these entries too, so the person sees them."""
    from palier.programs.service import record_audit

    record_audit(
        conn=conn, clock=clock, program_id=program.id, actor=actor, action="member.exported", subject_id=member_id
    )


def _history(conn: Connection, program: Program, member_id: str) -> list[HistoryLine]:
    lines: list[HistoryLine] = []
    cursor = None
    while True:
        page = members.history(conn=conn, program=program, member_id=member_id, cursor=cursor, limit=PAGE)
        lines += page.items
        if page.next_cursor is None:
            return lines
        cursor = page.next_cursor


def _purchases(conn: Connection, program_id: str, member_id: str) -> list[ExportedOrder]:
    from palier.activity.tables import events, purchases

    rows = conn.execute(
        select(purchases, events.c.occurred_at, events.c.channel, events.c.store_id)
        .join(events, events.c.id == purchases.c.event_id)
        .where(purchases.c.program_id == program_id, purchases.c.member_id == member_id)
        .order_by(events.c.occurred_at, events.c.id)
    ).mappings()
    return [
        ExportedOrder(
            order_id=row["order_id"],
            label=row["label"],
            occurred_at=utc(row["occurred_at"]),
            channel=row["channel"],
            store_id=row["store_id"],
            total=row["total"],
            refunded=row["refunded"],
            points=row["points"],
            points_returned=row["points_returned"],
            lines=row["lines"],
        )
        for row in rows
    ]


def _returns(conn: Connection, program_id: str, member_id: str) -> list[ExportedReturn]:
    from palier.activity.tables import events

    rows = conn.execute(
        select(events.c.external_id, events.c.occurred_at, events.c.body, events.c.result)
        .where(events.c.program_id == program_id, events.c.member_id == member_id, events.c.type == "return")
        .order_by(events.c.occurred_at, events.c.id)
    ).all()
    return [
        ExportedReturn(
            return_id=row.external_id,
            order_id=row.body.get("order_id"),
            occurred_at=utc(row.occurred_at),
            lines=row.body.get("lines"),
            amount=row.body.get("amount"),
            points=(row.result or {}).get("points"),
        )
        for row in rows
    ]


def _invitations(conn: Connection, program_id: str, member_id: str) -> list[ExportedInvitation]:
    from palier.memberships.tables import invitations, plans

    rows = conn.execute(
        select(invitations, plans.c.code.label("plan"))
        .outerjoin(plans, plans.c.id == invitations.c.plan_id)
        .where(invitations.c.program_id == program_id, invitations.c.used_by == member_id)
        .order_by(invitations.c.used_at, invitations.c.id)
    ).mappings()
    return [
        ExportedInvitation(
            code=row["code"], purpose=row["purpose"], plan=row["plan"], note=row["note"], used_at=utc(row["used_at"])
        )
        for row in rows
    ]


def _messages(conn: Connection, program_id: str, member_id: str) -> list[ExportedMessage]:
    from palier.notify.tables import outbox_events

    rows = conn.execute(
        select(outbox_events)
        .where(outbox_events.c.program_id == program_id, outbox_events.c.subject_id == member_id)
        .order_by(outbox_events.c.id)
    ).mappings()
    return [
        ExportedMessage(
            id=row["id"],
            type=row["type"],
            # a sign-in code may still open the portal: the file handed over is no key to the account
            payload={k: v for k, v in row["payload"].items() if not (row["type"] == SIGN_IN_CODE and k == "code")},
            created_at=utc(row["created_at"]),
            delivered_at=utc(row["delivered_at"]) if row["delivered_at"] is not None else None,
        )
        for row in rows
    ]


def _audit(conn: Connection, program_id: str, member_id: str) -> list[AuditEntry]:
    from palier.programs.tables import audit_entries

    # about the member: filed under them, or under something of theirs that names them (a reversal under its
    # transaction, a granted coupon under the coupon: {"member_id": …})
    about = or_(
        audit_entries.c.subject_id == member_id,
        cast(audit_entries.c.details, Text).contains(member_id, autoescape=True),
    )
    rows = conn.execute(
        select(audit_entries).where(audit_entries.c.program_id == program_id, about).order_by(audit_entries.c.id)
    ).mappings()
    return [AuditEntry(**{**row, "created_at": utc(row["created_at"])}) for row in rows]
