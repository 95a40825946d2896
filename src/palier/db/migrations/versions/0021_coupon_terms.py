"""A coupon keeps the terms it was issued with (value, minimum order, channels, product, title): a reward edited
afterwards gives its new terms to new coupons only. Coupons issued before take their reward's terms as they
are at the upgrade, the best that can be known of what they were issued with.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TERMS = ("amount", "percent", "max_discount", "min_order", "sku", "channels", "title")


def upgrade() -> None:
    with op.batch_alter_table("coupons") as batch:
        batch.add_column(sa.Column("amount", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("percent", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_discount", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("min_order", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("sku", sa.Text(), nullable=True))
        batch.add_column(sa.Column("channels", JSON, nullable=True))
        batch.add_column(sa.Column("title", JSON, nullable=True))
    terms = ", ".join(f"{name} = (SELECT r.{name} FROM rewards r WHERE r.id = coupons.reward_id)" for name in TERMS)
    op.execute(f"UPDATE coupons SET {terms}")  # fixed column names, nothing sent


def downgrade() -> None:
    with op.batch_alter_table("coupons") as batch:
        for name in reversed(TERMS):
            batch.drop_column(name)
