"""Warnings before points expire, and the outbox served to the merchant's mailer.

``programs.expiry_warning_days`` (30 days by default, 0: none) is how long before expiry a member is warned;
``expiry_warnings`` remembers until when each warned member is not warned again. ``GET /v1/outbox`` now
serves the events not yet acknowledged: those written before it existed are marked delivered here, or the
first read would mail members about old tier changes and dead sign-in codes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("programs") as batch:
        batch.add_column(sa.Column("expiry_warning_days", sa.Integer(), server_default="30", nullable=False))
    op.create_table(
        "expiry_warnings",
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("quiet_until", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_expiry_warnings_program_id_programs")),
        sa.PrimaryKeyConstraint("program_id", "member_id", name=op.f("pk_expiry_warnings")),
    )
    op.execute("UPDATE outbox_events SET delivered_at = created_at WHERE delivered_at IS NULL")


def downgrade() -> None:
    op.drop_table("expiry_warnings")
    with op.batch_alter_table("programs") as batch:
        batch.drop_column("expiry_warning_days")
