"""A member's memberships are found through an index on (program, member), lapsed ones included: every purchase
of a program with plans reads the plans of its day, and a member's page lists them all. A membership's payments
are found through an index on it (a refund looks for a later one, a payment for a lapsed membership to renew).
A tier policy remembers the version whose tiers every member was checked against for an upgrade: after a change
(Gold lowered), the requalification job moves up the members it puts higher, once.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tier_policies") as batch:
        batch.add_column(sa.Column("upgraded_version", sa.Integer(), nullable=True))
    op.create_index(
        op.f("ix_memberships_program_id_member_id"), "memberships", ["program_id", "member_id"], unique=False
    )
    op.create_index(
        op.f("ix_membership_payments_membership_id"), "membership_payments", ["membership_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_membership_payments_membership_id"), table_name="membership_payments")
    op.drop_index(op.f("ix_memberships_program_id_member_id"), table_name="memberships")
    with op.batch_alter_table("tier_policies") as batch:
        batch.drop_column("upgraded_version")
