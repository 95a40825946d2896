"""Paid VIP membership: plans, members' memberships, and the payments that start and renew them."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint, text

from palier.db.metadata import Json, Timestamp, metadata

plans = Table(
    "plans",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("code", String(40), nullable=False),
    Column("name", Json, nullable=False),  # {"fr": …, "en": …}
    Column("price", BigInteger, nullable=False),  # minor units, per period
    Column("period", String(8), nullable=False),  # monthly | yearly
    Column("trial_days", Integer, nullable=False),
    Column("benefits", Json, nullable=False),  # multiplier_percent, period_rewards, perks
    Column("access", String(12), nullable=False),  # open | segment | invitation
    Column("segment", String(40), nullable=True),  # for access segment: a segment code
    Column("status", String(12), nullable=False),  # active | archived
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("program_id", "code"),
)

memberships = Table(
    "memberships",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("plan_id", String(32), ForeignKey("plans.id"), nullable=False),
    Column("state", String(12), nullable=False),  # trial, active, cancelled (benefits to period end), lapsed
    Column("started_at", Timestamp, nullable=False),
    Column("period_start", Timestamp, nullable=False),
    Column("period_end", Timestamp, nullable=False),
    # paid periods are counted from here (31 Jan: 28 Feb, then 31 Mar); NULL: from period_start
    Column("billing_anchor", Timestamp, nullable=True),
    Column("cancelled_at", Timestamp, nullable=True),
    Column("ended_at", Timestamp, nullable=True),
    Column("updated_at", Timestamp, nullable=False),
    Index(
        "ix_memberships_live",
        "program_id",
        "member_id",
        "plan_id",
        unique=True,
        postgresql_where=text("state <> 'lapsed'"),
        sqlite_where=text("state <> 'lapsed'"),
    ),
    Index(None, "state", "period_end"),
    Index(None, "program_id", "member_id"),  # a member's plans, lapsed too (the plans of a late purchase's day)
)

membership_payments = Table(
    "membership_payments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("membership_id", String(32), ForeignKey("memberships.id"), nullable=False),
    Column("payment_id", Text, nullable=False),  # the merchant checkout's id: a payment counts once
    Column("amount", BigInteger, nullable=False),
    Column("paid_at", Timestamp, nullable=False),
    Column("period_start", Timestamp, nullable=False),
    Column("period_end", Timestamp, nullable=False),
    Column("result", Json, nullable=False),
    Column("refunded_at", Timestamp, nullable=True),
    Column("refund", Json, nullable=True),  # the refund's answer, given again to a refund sent twice
    UniqueConstraint("program_id", "payment_id"),
    Index(None, "membership_id"),  # a membership's payments: a refund's later one, a lapsed membership's
)

invitations = Table(
    "invitations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("code", String(16), nullable=False, unique=True),
    Column("purpose", String(12), nullable=False),  # enrol (join the program) | plan (join a VIP plan)
    Column("plan_id", String(32), nullable=True),
    Column("note", Text, nullable=True),
    Column("expires_at", Timestamp, nullable=True),
    Column("used_at", Timestamp, nullable=True),
    Column("used_by", String(32), nullable=True),
    Column("created_at", Timestamp, nullable=False),
)
