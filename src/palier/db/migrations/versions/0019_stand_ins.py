"""Stand-ins: the points a return took in place of its order's own lot while that lot's points were out
(paying another order, held by a coupon), so that they come back where they were taken when those do.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stand_ins",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("lot_id", sa.String(length=32), nullable=False),
        sa.Column("from_lot_id", sa.String(length=32), nullable=True),
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_stand_ins_program_id_programs")),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_stand_ins_lot_id_lots")),
        sa.ForeignKeyConstraint(["from_lot_id"], ["lots.id"], name=op.f("fk_stand_ins_from_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_stand_ins_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stand_ins")),
    )
    op.create_index(op.f("ix_stand_ins_lot_id"), "stand_ins", ["lot_id"])
    op.create_index(op.f("ix_stand_ins_program_id_member_id"), "stand_ins", ["program_id", "member_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_stand_ins_program_id_member_id"), table_name="stand_ins")
    op.drop_index(op.f("ix_stand_ins_lot_id"), table_name="stand_ins")
    op.drop_table("stand_ins")
