"""Members, the identities they are found by on every channel, and the record of merges."""

from __future__ import annotations

from sqlalchemy import Column, Date, ForeignKey, Index, String, Table, Text, UniqueConstraint

from palier.db.metadata import Json, Timestamp, metadata

members = Table(
    "members",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("status", String(12), nullable=False),  # active | merged | erased
    Column("merged_into_id", String(32), nullable=True),
    Column("first_name", Text, nullable=True),
    Column("last_name", Text, nullable=True),
    Column("email", Text, nullable=True),
    Column("phone", Text, nullable=True),
    Column("birthday", Date, nullable=True),
    Column("language", String(2), nullable=False),
    Column("consents", Json, nullable=False),
    Column("enrolled_at", Timestamp, nullable=False),
    Column("enrolment_channel", String(12), nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Index(None, "program_id", "enrolled_at"),
    Index(None, "merged_into_id"),  # the duplicates merged into a member (erasure clears their profiles too)
)

# kind: card (loyalty card), email, phone, external (the merchant's customer id), payment_card.
# A payment card's value is HMAC-SHA256(number, PALIER_CARD_KEY) in hex; the number itself is never kept.
identities = Table(
    "identities",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("member_id", String(32), ForeignKey("members.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("value", Text, nullable=False),
    Column("last4", String(4), nullable=True),
    Column("brand", String(16), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("program_id", "kind", "value"),
    Index(None, "member_id"),
)

merges = Table(
    "merges",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("source_member_id", String(32), ForeignKey("members.id"), nullable=False),
    Column("target_member_id", String(32), ForeignKey("members.id"), nullable=False),
    Column("transaction_id", String(32), nullable=False),
    Column("actor", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("details", Json, nullable=False),
)
