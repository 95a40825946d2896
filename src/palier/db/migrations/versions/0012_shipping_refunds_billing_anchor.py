"""Shipping refunds, and the billing date a paid membership renews on.

An order keeps its shipping and how much of it returns have refunded: a refund by amount then refunds
the goods first, and a refund of shipping takes back no points unless shipping earns. Existing orders get
their shipping from the purchase as it was sent.

A membership keeps the moment its paid periods are counted from (``billing_anchor``), so that one paid on
31 January renews on 28 February, then 31 March, instead of drifting to the 28th. Existing memberships
count from their current period's start (NULL).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("shipping", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("shipping_refunded", sa.BigInteger(), server_default="0", nullable=False))
    with op.batch_alter_table("memberships") as batch:
        batch.add_column(sa.Column("billing_anchor", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE purchases SET shipping = (events.body->>'shipping')::bigint FROM events "
            "WHERE events.id = purchases.event_id AND COALESCE(events.body->>'shipping', '0') <> '0'"
        )
    else:
        op.execute(
            "UPDATE purchases SET shipping = (SELECT json_extract(events.body, '$.shipping') FROM events "
            "WHERE events.id = purchases.event_id) WHERE EXISTS (SELECT 1 FROM events WHERE events.id = "
            "purchases.event_id AND COALESCE(json_extract(events.body, '$.shipping'), 0) <> 0)"
        )


def downgrade() -> None:
    with op.batch_alter_table("memberships") as batch:
        batch.drop_column("billing_anchor")
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("shipping_refunded")
        batch.drop_column("shipping")
