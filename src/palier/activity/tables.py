"""Facts from outside (purchases, returns, adjustments), stored once, and the per-order return state."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, Table, Text, UniqueConstraint

from palier.db.metadata import Json, Timestamp, metadata

# One row per external fact; (program, type, external_id) is unique, so a resent fact is found, not redone.
# A purchase paid with a payment card nobody has linked yet is kept with member_id NULL and its claim
# (kind, value) until the card is linked to a member.
events = Table(
    "events",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("type", String(16), nullable=False),  # purchase | return | adjustment
    Column("external_id", Text, nullable=False),
    Column("member_id", String(32), nullable=True),
    Column("status", String(12), nullable=False),  # processed | unclaimed | anonymous
    Column("claim_kind", String(16), nullable=True),
    Column("claim_value", Text, nullable=True),
    Column("channel", String(12), nullable=True),
    Column("store_id", Text, nullable=True),
    Column("occurred_at", Timestamp, nullable=False),
    Column("received_at", Timestamp, nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("body", Json, nullable=False),
    Column("result", Json, nullable=True),
    UniqueConstraint("program_id", "type", "external_id"),
    Index(None, "program_id", "member_id", "occurred_at"),
    Index("ix_events_unclaimed", "program_id", "claim_kind", "claim_value", "status"),
    Index(None, "program_id", "type", "occurred_at"),  # the dashboard: a program's purchases by period
)

# What a purchase earned, line by line, and how much of it has been returned so far.
purchases = Table(
    "purchases",
    metadata,
    Column("event_id", String(32), ForeignKey("events.id"), primary_key=True),
    Column("program_id", String(32), nullable=False),
    Column("member_id", String(32), nullable=True),
    Column("order_id", Text, nullable=False),
    Column("label", Text, nullable=False),  # "Purchase #1042 at Lyon store"
    Column("total", BigInteger, nullable=False),  # minor units, all lines + shipping + tax
    Column("eligible", BigInteger, nullable=False),  # the part that earns points
    Column("points", BigInteger, nullable=False),
    Column("lot_id", String(32), nullable=True),
    Column("refunded", BigInteger, nullable=False, server_default="0"),  # minor units, shipping included
    Column("shipping", BigInteger, nullable=False, server_default="0"),  # the order's, minor units
    Column("shipping_refunded", BigInteger, nullable=False, server_default="0"),  # by returns that say so
    Column("shipping_eligible", BigInteger, nullable=False, server_default="0"),  # shipping, if it earned
    Column("points_returned", BigInteger, nullable=False, server_default="0"),
    # returned points whose lot had already expired: they left once, at expiry, and are not taken again
    Column("points_excused", BigInteger, nullable=False, server_default="0"),
    Column("lines", Json, nullable=False),
    UniqueConstraint("program_id", "order_id"),
    Index(None, "program_id", "member_id"),  # a member's orders: tier metric, requalification, merges
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("program_id", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", BigInteger, nullable=False),
    Column("response", Json, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "created_at"),
)
