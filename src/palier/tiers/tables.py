"""Tiers: a program's tier policy, each member's status, and the history of every change."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text

from palier.db.metadata import Json, Timestamp, metadata

tier_policies = Table(
    "tier_policies",
    metadata,
    Column("program_id", String(32), ForeignKey("programs.id"), primary_key=True),
    Column("document", Json, nullable=False),  # a TierPolicy
    Column("version", Integer, nullable=False),
    # the version whose tiers every member was last checked against for an upgrade (tiers.upgrades)
    Column("upgraded_version", Integer, nullable=True),
    Column("updated_at", Timestamp, nullable=False),
    Column("updated_by", Text, nullable=False),
)

# A row per member who has (or had) a tier. The status is judged on the metric of [period_start,
# period_end); at period_end the requalification job judges it again (lifetime: no period end).
member_tiers = Table(
    "member_tiers",
    metadata,
    Column("member_id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("tier", String(40), nullable=True),  # a tier code; NULL: below the first threshold
    Column("since", Timestamp, nullable=False),
    Column("period_start", Timestamp, nullable=True),
    Column("period_end", Timestamp, nullable=True),
    Column("grace_until", Timestamp, nullable=True),  # failed to requalify: kept until then
    Column("manual_until", Timestamp, nullable=True),  # assigned by hand: kept until then
    Column("manual_reason", Text, nullable=True),
    Column("updated_at", Timestamp, nullable=False),
    Index(None, "program_id", "period_end"),
    Index(None, "program_id", "grace_until"),
    Index(None, "program_id", "manual_until"),
)

tier_history = Table(
    "tier_history",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("from_tier", String(40), nullable=True),
    Column("to_tier", String(40), nullable=True),
    Column("reason", String(24), nullable=False),  # upgrade, requalified, downgrade, grace_started, manual, …
    Column("details", Json, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "program_id", "member_id", "created_at"),
)
