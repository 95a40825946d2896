"""Sign-ins to the member portal: signed links and one-time codes, each usable once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "portal_sign_ins",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_portal_sign_ins_member_id_members")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_portal_sign_ins_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_sign_ins")),
    )
    op.create_index(
        "ix_portal_sign_ins_program_id_member_id_created_at",
        "portal_sign_ins",
        ["program_id", "member_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_portal_sign_ins_program_id_member_id_created_at", table_name="portal_sign_ins")
    op.drop_table("portal_sign_ins")
