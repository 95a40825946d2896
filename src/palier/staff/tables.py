"""Staff users (who signs in to the console and the till) and their sign-in attempts (for throttling)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, String, Table, Text, UniqueConstraint

from palier.db.metadata import Timestamp, metadata

# One row per person per program; the e-mail is stored lower-cased. Passwords are argon2id hashes.
staff_users = Table(
    "staff_users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("email", String(254), nullable=False),
    Column("display_name", Text, nullable=False),
    Column("role", String(16), nullable=False),  # admin | marketer | store_staff
    Column("password_hash", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("last_sign_in_at", Timestamp, nullable=True),
    UniqueConstraint("program_id", "email"),
    Index(None, "email"),
)

# Every sign-in attempt (e-mail as typed, lower-cased, and the client's address): failures in the last
# minutes refuse further attempts for that account or that address for a while.
staff_sign_ins = Table(
    "staff_sign_ins",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("ip", String(64), nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "email", "created_at"),
    Index(None, "ip", "created_at"),
)
