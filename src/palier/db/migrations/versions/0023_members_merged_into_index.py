"""The accounts merged into a member are found through an index on ``merged_into_id``: erasing a member looks
for the duplicates merged into them (their profiles go too), which read every member of the database without it.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | Sequence[str] | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_members_merged_into_id"), "members", ["merged_into_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_members_merged_into_id"), table_name="members")
