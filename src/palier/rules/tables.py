"""Rule-set versions (who, when, the document), the awards they made, and running counters."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Table, Text

from palier.db.metadata import BigId, Json, Timestamp, metadata

# Every apply makes a new version; versions are never changed. A version is in force for events that
# occurred from its effective_from until the next version's.
rule_sets = Table(
    "rule_sets",
    metadata,
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("document", Json, nullable=False),
    Column("actor", Text, nullable=False),  # an API key id, or "cli"
    Column("created_at", Timestamp, nullable=False),
    Column("effective_from", Timestamp, nullable=False),
    PrimaryKeyConstraint("program_id", "version"),
)

# What each rule gave for each event: points (booked in the ledger with the event), coupons, cashback.
awards = Table(
    "awards",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("program_id", String(32), nullable=False),
    Column("member_id", String(32), nullable=True),
    Column("event_id", String(32), nullable=False),
    Column("rule_id", String(72), nullable=False),
    Column("rule_version", Integer, nullable=False),
    Column("campaign_id", String(64), nullable=True),
    Column("kind", String(12), nullable=False),  # points | coupon | cashback
    Column("points", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False, server_default="0"),  # cashback / spend counted, minor units
    Column("created_at", Timestamp, nullable=False),
    Index(None, "program_id", "event_id"),
)

# Running totals changed in SQL (value = value + n): a campaign's points given ("campaign:<id>", member_id
# "" for the whole program, or per member) and a member's running spend for a spend_step rule.
counters = Table(
    "counters",
    metadata,
    Column("program_id", String(32), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("name", String(80), nullable=False),
    Column("value", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("program_id", "member_id", "name"),
)
