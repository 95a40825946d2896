"""A webhook whose receiver answers 410 Gone, or gives no 2xx for days, is disabled until saved again.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(sa.Column("failing_since", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("disabled_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("disabled_reason", sa.String(length=12), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("disabled_reason")
        batch.drop_column("disabled_at")
        batch.drop_column("failing_since")
