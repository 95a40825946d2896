"""The outbox: domain events written in the same transaction as the change, for webhooks to deliver."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Table, Text

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
    # The program's webhook: failed deliveries so far, when the next may be tried, and why the last failed.
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Timestamp, nullable=True),
    Column("last_error", String(200), nullable=True),
    Index("ix_outbox_events_undelivered", "delivered_at", "id"),
    Index(None, "program_id", "type", "id"),
)

# Members warned that points expire soon: the points the next windows bring are not announced before
# ``quiet_until`` (the end of the window the last warning covered), so a member hears once per window; points
# that became spendable after ``warned_at`` (the last warning) are announced at once. Each lot is marked when
# announced (``lots.expiry_warned_at``), so no point is announced twice.
expiry_warnings = Table(
    "expiry_warnings",
    metadata,
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("quiet_until", Timestamp, nullable=False),
    Column("warned_at", Timestamp, nullable=True),  # NULL: a window that ended before it was recorded
    PrimaryKeyConstraint("program_id", "member_id"),
)

# Where a program's events are pushed (one webhook per program), and the secret their signature is made with.
webhooks = Table(
    "webhooks",
    metadata,
    Column("program_id", String(32), ForeignKey("programs.id"), primary_key=True),
    Column("url", Text, nullable=False),
    Column("secret", String(64), nullable=False),  # kept as is: each delivery is signed with it
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    # since when every delivery has failed (none while the last one got a 2xx); and when and why Palier stopped
    # sending (reason: gone — the receiver answered 410; failing — no 2xx for FAILING_FOR), until saved again
    Column("failing_since", Timestamp, nullable=True),
    Column("disabled_at", Timestamp, nullable=True),
    Column("disabled_reason", String(12), nullable=True),
)
