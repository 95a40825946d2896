"""Rewards: the catalog, coupons, payments with points or store credit; redemption settings of programs.

Also opens the store-credit accounts (credit_issued, credit_spent, in the program's currency) of
programs created before this revision.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
SLOTS = 32
MONEY_KINDS = ("credit_issued", "credit_spent")
PROGRAM_COLUMNS = ("redeem_points", "redeem_amount", "pay_with_points_max_percent")


def upgrade() -> None:
    with op.batch_alter_table("programs") as batch:
        batch.add_column(sa.Column("redeem_points", sa.BigInteger(), server_default="100", nullable=False))
        batch.add_column(sa.Column("redeem_amount", sa.BigInteger(), server_default="100", nullable=False))
        batch.add_column(sa.Column("pay_with_points_max_percent", sa.Integer(), server_default="50", nullable=False))
    _open_money_accounts()

    op.create_table(
        "rewards",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("cost_points", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("percent", sa.Integer(), nullable=True),
        sa.Column("max_discount", sa.BigInteger(), nullable=True),
        sa.Column("min_order", sa.BigInteger(), nullable=True),
        sa.Column("sku", sa.Text(), nullable=True),
        sa.Column("title", JSON, nullable=False),
        sa.Column("description", JSON, nullable=True),
        sa.Column("image_url", sa.Text(), nullable=True),
        sa.Column("starts_at", TIMESTAMP, nullable=True),
        sa.Column("ends_at", TIMESTAMP, nullable=True),
        sa.Column("stock", sa.BigInteger(), nullable=True),
        sa.Column("stock_used", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("member_limit", sa.Integer(), nullable=True),
        sa.Column("limit_period", sa.String(length=8), nullable=True),
        sa.Column("channels", JSON, nullable=True),
        sa.Column("eligibility", JSON, nullable=True),
        sa.Column("valid_days", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("stock IS NULL OR stock_used <= stock", name=op.f("ck_rewards_stock_not_exceeded")),
        sa.CheckConstraint("stock_used >= 0", name=op.f("ck_rewards_stock_used_not_negative")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_rewards_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rewards")),
    )
    op.create_index(op.f("ix_rewards_program_id_status"), "rewards", ["program_id", "status"], unique=False)

    op.create_table(
        "coupons",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("reward_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("hold_id", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("source_ref", sa.Text(), nullable=True),
        sa.Column("issued_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.Column("order_id", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(length=12), nullable=True),
        sa.Column("store_id", sa.Text(), nullable=True),
        sa.Column("discount", sa.BigInteger(), nullable=True),
        sa.Column("closed_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_coupons_program_id_programs")),
        sa.ForeignKeyConstraint(["reward_id"], ["rewards.id"], name=op.f("fk_coupons_reward_id_rewards")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
        sa.UniqueConstraint("code", name=op.f("uq_coupons_code")),
    )
    op.create_index(
        op.f("ix_coupons_program_id_member_id_state"), "coupons", ["program_id", "member_id", "state"], unique=False
    )
    op.create_index(
        op.f("ix_coupons_program_id_member_id_reward_id_issued_at"),
        "coupons",
        ["program_id", "member_id", "reward_id", "issued_at"],
        unique=False,
    )
    op.create_index("ix_coupons_due_to_expire", "coupons", ["state", "expires_at"], unique=False)
    op.create_index("ix_coupons_grant", "coupons", ["program_id", "source_ref"], unique=True)

    op.create_table(
        "order_payments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("order_total", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("points_returned", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("amount_returned", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("closed_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_order_payments_program_id_programs")),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_order_payments_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_payments")),
    )
    op.create_index(
        "ix_order_payments_order",
        "order_payments",
        ["program_id", "order_id", "kind"],
        unique=True,
        postgresql_where=sa.text("state = 'paid'"),
        sqlite_where=sa.text("state = 'paid'"),
    )
    op.create_index(
        op.f("ix_order_payments_program_id_member_id"), "order_payments", ["program_id", "member_id"], unique=False
    )


def _open_money_accounts() -> None:
    conn = op.get_bind()
    programs = conn.execute(sa.text("SELECT id, currency, currency_exponent FROM programs")).all()
    rows = [
        {"id": f"{pid}:{kind}:{slot:02d}", "program_id": pid, "kind": kind, "asset": f"{cur}/{exp}", "slot": slot}
        for pid, cur, exp in programs
        for kind in MONEY_KINDS
        for slot in range(SLOTS)
    ]
    if rows:
        conn.execute(
            sa.text(
                "INSERT INTO accounts (id, program_id, member_id, kind, asset, slot, balance, version) "
                "VALUES (:id, :program_id, NULL, :kind, :asset, :slot, 0, 0)"
            ),
            rows,
        )


def downgrade() -> None:
    op.drop_table("order_payments")
    op.drop_table("coupons")
    op.drop_table("rewards")
    op.execute(sa.text("DELETE FROM accounts WHERE kind IN ('credit_issued', 'credit_spent', 'wallet')"))
    with op.batch_alter_table("programs") as batch:
        for column in PROGRAM_COLUMNS:
            batch.drop_column(column)
