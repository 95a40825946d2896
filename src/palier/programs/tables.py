"""Program settings, API keys and the audit trail of admin actions."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, String, Table, Text

from palier.db.metadata import Json, Timestamp, metadata

programs = Table(
    "programs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("currency_exponent", Integer, nullable=False),
    Column("points_name", Text, nullable=False),
    Column("points_name_by_language", Json, nullable=False, server_default="{}"),  # {"en": "stars"}: where it differs
    Column("timezone", Text, nullable=False),
    Column("default_country", String(2), nullable=False),
    Column("earn_points", Integer, nullable=False),  # … points
    Column("earn_per_amount", BigInteger, nullable=False),  # … per this many minor units
    Column("rounding", String(12), nullable=False),
    Column("return_window_days", Integer, nullable=False),
    Column("points_lifetime_months", Integer, nullable=True),  # NULL: points never expire
    Column("earn_on_shipping", Boolean, nullable=False),
    Column("earn_on_tax", Boolean, nullable=False),
    Column("earn_on_gift_cards", Boolean, nullable=False),
    Column("return_shortfall", String(12), nullable=False),  # debt | write_off
    Column("welcome_points", BigInteger, nullable=False),
    Column("rules_version", Integer, nullable=False, server_default="0"),  # 0: no rules, the base rate applies
    # bumped by tier policies and VIP plans: 0 means no member can have a status, and purchases skip the lookups
    Column("status_version", Integer, nullable=False, server_default="0"),
    Column("redeem_points", BigInteger, nullable=False, server_default="100"),  # … points are worth
    Column("redeem_amount", BigInteger, nullable=False, server_default="100"),  # … minor units
    Column("pay_with_points_max_percent", Integer, nullable=False, server_default="50"),
    Column("enrolment", String(12), nullable=False, server_default="open"),  # open | invitation
    Column("expiry_warning_days", Integer, nullable=False, server_default="30"),  # 0: no warnings
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("scopes", Text, nullable=False),  # comma-separated: admin, pos, read
    Column("secret_hash", String(64), nullable=False),  # sha256 of the secret: keys are 256-bit random
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp, nullable=True),
    Index(None, "program_id"),
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("actor", Text, nullable=False),  # an API key id, or "cli"
    Column("action", String(40), nullable=False),
    Column("subject_id", String(32), nullable=True),
    Column("details", Json, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "program_id", "created_at"),
)
