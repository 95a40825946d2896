"""Whether an order's shipping earned points, as the program said when the order was recorded.

A refund of shipping then takes back points only if it earned them, whatever the program says today.
Existing orders take the program's current setting.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("shipping_eligible", sa.BigInteger(), server_default="0", nullable=False))
    op.execute(
        "UPDATE purchases SET shipping_eligible = shipping WHERE shipping > 0 AND program_id IN "
        "(SELECT id FROM programs WHERE earn_on_shipping)"
    )


def downgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("shipping_eligible")
