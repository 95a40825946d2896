"""Indexes hold only the rows someone looks for: due lots by state, reversals by what they reverse.

Before, each due-lot index covered every lot by (state, date), so maturing a lot added two index
entries (its new state in both) and expiring one two more, and each claim walked the entries of lots
swept before. Now maturing a lot adds one entry (to the expiry index) and expiring it none. Likewise
the unique index on ``reverses_id`` took an entry (NULL) for every transaction; it now takes one for
reversals only, which is all its uniqueness is about. The two due-lot indexes take half the space
(14 MB instead of 28 MB for 2,000,000 lots). The time of the sweeps did not change measurably on a
2-core machine (mature + expire of 2,000,000 due lots: 149 and 156 s, against 146-159 s before): there
they are bound by the database server's CPU, not by these index pages.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE = {"ix_lots_due_to_mature": ("matures_at", "pending"), "ix_lots_due_to_expire": ("expires_at", "active")}


REVERSES = "ix_ledger_transactions_reverses_id"


def upgrade() -> None:
    for name, (due_at, state) in DUE.items():
        op.drop_index(name, table_name="lots")
        only = sa.text(f"state = '{state}'")
        op.create_index(name, "lots", [due_at], postgresql_where=only, sqlite_where=only)
    op.drop_index(REVERSES, table_name="ledger_transactions")
    reversals = sa.text("reverses_id IS NOT NULL")
    op.create_index(
        REVERSES,
        "ledger_transactions",
        ["reverses_id"],
        unique=True,
        postgresql_where=reversals,
        sqlite_where=reversals,
    )


def downgrade() -> None:
    for name, (due_at, _) in DUE.items():
        op.drop_index(name, table_name="lots")
        op.create_index(name, "lots", ["state", due_at])
    op.drop_index(REVERSES, table_name="ledger_transactions")
    op.create_index(REVERSES, "ledger_transactions", ["reverses_id"], unique=True)
