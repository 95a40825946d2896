"""Ledger tables: accounts with cached balances, immutable transactions, postings and allocations, lots, holds."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    literal_column,
    text,
)

from palier.db.metadata import BigId, Json, Timestamp, metadata

# Account ids are derived from their owner (see ledger/accounts.py), so the hot path never looks one up.
accounts = Table(
    "accounts",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("member_id", String(32), nullable=True),  # NULL for program accounts
    Column("kind", String(40), nullable=False),  # available, pending, held, debt, wallet, issued, …
    Column("asset", String(16), nullable=False),  # PTS, or money such as EUR/2
    Column("slot", Integer, nullable=False, server_default="0"),
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("version", BigInteger, nullable=False, server_default="0"),
    CheckConstraint(
        "kind NOT IN ('available', 'pending', 'held', 'wallet') OR balance >= 0", name="member_not_negative"
    ),
    CheckConstraint("kind <> 'debt' OR balance <= 0", name="debt_not_positive"),
    Index(None, "program_id", "member_id"),
)

ledger_transactions = Table(
    "ledger_transactions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("member_id", String(32), nullable=True),
    Column("kind", String(24), nullable=False),  # earn, mature, return, adjust, expire, merge, reversal, …
    Column("reason", Text, nullable=False),  # what the member reads in their history
    Column("reason_code", String(40), nullable=False),
    Column("event_id", String(32), nullable=True),
    Column("reverses_id", String(32), ForeignKey("ledger_transactions.id"), nullable=True),
    Column("created_at", Timestamp, nullable=False),  # when it was booked
    Column("effective_at", Timestamp, nullable=False),  # when the fact happened
    Column("details", Json, nullable=True),
    Index(None, "program_id", "member_id", "id"),
    # A transaction is reversed at most once (the index holds reversals only).
    Index(
        None,
        "reverses_id",
        unique=True,
        postgresql_where=text("reverses_id IS NOT NULL"),
        sqlite_where=text("reverses_id IS NOT NULL"),
    ),
    Index(None, "program_id", "effective_at"),  # the dashboard: a program's points flows by week
)

postings = Table(
    "postings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("transaction_id", String(32), ForeignKey("ledger_transactions.id"), nullable=False),
    Column("program_id", String(32), nullable=False),
    Column("member_id", String(32), nullable=True),  # the account's member, for history queries
    Column("account_id", String(80), ForeignKey("accounts.id"), nullable=False),
    Column("asset", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Index(None, "transaction_id"),
    Index(None, "account_id"),
    Index(None, "program_id", "member_id", "transaction_id"),
)

lots = Table(
    "lots",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("transaction_id", String(32), ForeignKey("ledger_transactions.id"), nullable=False),
    Column("event_id", String(32), nullable=True),
    Column("source", String(24), nullable=False),  # purchase, welcome, adjustment, …
    Column("label", Text, nullable=False),  # "Purchase #1042", used in maturity / expiry reasons
    Column("amount", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("state", String(12), nullable=False),  # pending, active, expired, reversed, spent
    Column("earned_at", Timestamp, nullable=False),
    Column("matures_at", Timestamp, nullable=True),
    Column("expires_at", Timestamp, nullable=True),
    # When the member was warned that this lot expires (notify/expiry.py): each lot is announced once.
    Column("expiry_warned_at", Timestamp, nullable=True),
    CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_in_range"),
    Index(None, "program_id", "member_id", "state", "expires_at"),
    # What the sweeps look for, and only that: a matured lot leaves the first, an expired one the second.
    Index(
        "ix_lots_due_to_mature",
        "matures_at",
        postgresql_where=text("state = 'pending'"),
        sqlite_where=text("state = 'pending'"),
    ),
    Index(
        "ix_lots_due_to_expire",
        "expires_at",
        postgresql_where=text("state = 'active'"),
        sqlite_where=text("state = 'active'"),
    ),
    Index(None, "event_id"),
)


def lot_state_is(state: str) -> ColumnElement[bool]:
    """``lots.state = '<state>'`` with the state written into the SQL, not bound: the planner then sees that a
    partial index on that state (the due-lot indexes above) can serve the query."""
    return lots.c.state == literal_column(f"'{state}'")


allocations = Table(
    "allocations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("transaction_id", String(32), ForeignKey("ledger_transactions.id"), nullable=False),
    Column("program_id", String(32), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("lot_id", String(32), ForeignKey("lots.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),  # > 0 taken from the lot, < 0 given back to it
    Column("purpose", String(16), nullable=False),  # spend, hold, return, expire, repay_debt, merge, restore
    Index(None, "lot_id"),
    Index(None, "transaction_id"),
    Index(None, "program_id", "lot_id"),  # palier verify --program
)

# Points a return took in place of its order's own lot: that lot's points were out (paying another order,
# held by a coupon, debited) so the return took other points (``from_lot_id``) or booked a debt (NULL).
# When the lot's points come back, they go where the return took these, not to the lot: rows with a
# negative amount record that. Append-only, like allocations.
stand_ins = Table(
    "stand_ins",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("lot_id", String(32), ForeignKey("lots.id"), nullable=False),
    Column("from_lot_id", String(32), ForeignKey("lots.id"), nullable=True),
    Column("transaction_id", String(32), ForeignKey("ledger_transactions.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),  # > 0 taken in the lot's place, < 0 given back there since
    Index(None, "lot_id"),
    Index(None, "program_id", "member_id"),
)

# Redemption holds (two-phase): open while points sit in `held`. Filled by the rewards domain.
holds = Table(
    "holds",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("program_id", String(32), ForeignKey("programs.id"), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("transaction_id", String(32), ForeignKey("ledger_transactions.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("state", String(12), nullable=False),  # open, captured, voided
    Column("created_at", Timestamp, nullable=False),
    Column("closed_at", Timestamp, nullable=True),
    Index(None, "program_id", "member_id", "state"),
)
