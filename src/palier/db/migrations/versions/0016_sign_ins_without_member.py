"""A portal sign-in may have no member: a code asked for an e-mail that is no member's is stored all the same
(opened by no code), so that the sign-in page takes as long to answer whoever asks.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("portal_sign_ins") as batch:
        batch.alter_column("member_id", existing_type=sa.String(32), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM portal_sign_ins WHERE member_id IS NULL")  # they open nothing: nothing is lost
    with op.batch_alter_table("portal_sign_ins") as batch:
        batch.alter_column("member_id", existing_type=sa.String(32), nullable=False)
