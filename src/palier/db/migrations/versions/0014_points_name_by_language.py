"""The points' name in each language where it differs from ``points_name`` (``{"en": "stars"}``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("programs") as batch:
        batch.add_column(sa.Column("points_name_by_language", JSON, server_default="{}", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("programs") as batch:
        batch.drop_column("points_name_by_language")
