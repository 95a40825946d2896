"""Staff users of the console and the till, their sign-in attempts, and indexes for the KPI dashboard.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("last_sign_in_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_staff_users_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_users")),
        sa.UniqueConstraint("program_id", "email", name=op.f("uq_staff_users_program_id_email")),
    )
    op.create_index(op.f("ix_staff_users_email"), "staff_users", ["email"], unique=False)
    op.create_table(
        "staff_sign_ins",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_sign_ins")),
    )
    op.create_index(op.f("ix_staff_sign_ins_email_created_at"), "staff_sign_ins", ["email", "created_at"])
    op.create_index(op.f("ix_staff_sign_ins_ip_created_at"), "staff_sign_ins", ["ip", "created_at"])
    # The dashboard reads a program's purchases by period (members vs non-members, basket size).
    op.create_index(op.f("ix_events_program_id_type_occurred_at"), "events", ["program_id", "type", "occurred_at"])
    # … and its points issued, redeemed and expired by week.
    op.create_index(
        op.f("ix_ledger_transactions_program_id_effective_at"), "ledger_transactions", ["program_id", "effective_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_transactions_program_id_effective_at"), table_name="ledger_transactions")
    op.drop_index(op.f("ix_events_program_id_type_occurred_at"), table_name="events")
    op.drop_table("staff_sign_ins")
    op.drop_index(op.f("ix_staff_users_email"), table_name="staff_users")
    op.drop_table("staff_users")
