"""The outbox: domain events written in the same transaction as the change, for webhooks to deliver."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table

from palier.db.metadata import Json, Timestamp, metadata

outbox_events = Table(
    "outbox_events",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("type", String(40), nullable=False),  # tier_upgraded, membership_started, segment_entered, …
    Column("subject_id", String(32), nullable=True),  # usually the member
    Column("payload", Json, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("delivered_at", Timestamp, nullable=True),
    Index("ix_outbox_events_undelivered", "delivered_at", "id"),
    Index(None, "program_id", "type", "id"),
)
