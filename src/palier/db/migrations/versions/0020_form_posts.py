"""Console and till forms act once: the one-time token of each form posted, with where its first post led.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "form_posts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("posted_by", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=300), nullable=False),
        sa.Column("answer", sa.String(length=500), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_posts")),
    )
    op.create_index(op.f("ix_form_posts_created_at"), "form_posts", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_form_posts_created_at"), table_name="form_posts")
    op.drop_table("form_posts")
