"""Segments: rule-based audiences (RFM, spend, recency, birthday month, channel mix, tier…) and who is in them."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from palier.db.metadata import Json, Timestamp, metadata

segments = Table(
    "segments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("code", String(40), nullable=False),
    Column("name", Json, nullable=False),
    Column("kind", String(16), nullable=False),  # rules | top_revenue
    Column("definition", Json, nullable=False),  # the validated SegmentIn
    Column("members_count", Integer, nullable=False, server_default="0"),
    Column("refreshed_at", Timestamp, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("program_id", "code"),
)

segment_members = Table(
    "segment_members",
    metadata,
    Column("segment_id", String(32), ForeignKey("segments.id"), primary_key=True),
    Column("member_id", String(32), primary_key=True),
    Column("program_id", String(32), nullable=False),
    Column("since", Timestamp, nullable=False),
    Index(None, "member_id"),
)
