"""Tiers, paid VIP membership, segments, invitations, and the outbox of domain events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
TABLES = (  # in creation order
    "outbox_events",
    "tier_policies",
    "member_tiers",
    "tier_history",
    "segments",
    "segment_members",
    "plans",
    "memberships",
    "membership_payments",
    "invitations",
)


def upgrade() -> None:
    op.create_table(
        "invitations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=12), nullable=False),
        sa.Column("plan_id", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.Column("used_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_invitations_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("code", name=op.f("uq_invitations_code")),
    )
    op.create_table(
        "member_tiers",
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("tier", sa.String(length=40), nullable=True),
        sa.Column("since", TIMESTAMP, nullable=False),
        sa.Column("period_start", TIMESTAMP, nullable=True),
        sa.Column("period_end", TIMESTAMP, nullable=True),
        sa.Column("grace_until", TIMESTAMP, nullable=True),
        sa.Column("manual_until", TIMESTAMP, nullable=True),
        sa.Column("manual_reason", sa.Text(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_member_tiers_program_id_programs")),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_tiers")),
    )
    op.create_index(
        op.f("ix_member_tiers_program_id_grace_until"), "member_tiers", ["program_id", "grace_until"], unique=False
    )
    op.create_index(
        op.f("ix_member_tiers_program_id_manual_until"), "member_tiers", ["program_id", "manual_until"], unique=False
    )
    op.create_index(
        op.f("ix_member_tiers_program_id_period_end"), "member_tiers", ["program_id", "period_end"], unique=False
    )
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("delivered_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_outbox_events_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
    )
    op.create_index(
        op.f("ix_outbox_events_program_id_type_id"), "outbox_events", ["program_id", "type", "id"], unique=False
    )
    op.create_index("ix_outbox_events_undelivered", "outbox_events", ["delivered_at", "id"], unique=False)
    op.create_table(
        "plans",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", JSON, nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("trial_days", sa.Integer(), nullable=False),
        sa.Column("benefits", JSON, nullable=False),
        sa.Column("access", sa.String(length=12), nullable=False),
        sa.Column("segment", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_plans_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("program_id", "code", name=op.f("uq_plans_program_id_code")),
    )
    op.create_table(
        "segments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", JSON, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("members_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("refreshed_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_segments_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("program_id", "code", name=op.f("uq_segments_program_id_code")),
    )
    op.create_table(
        "tier_history",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("from_tier", sa.String(length=40), nullable=True),
        sa.Column("to_tier", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("details", JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_tier_history_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_history")),
    )
    op.create_index(
        op.f("ix_tier_history_program_id_member_id_created_at"),
        "tier_history",
        ["program_id", "member_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "tier_policies",
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_tier_policies_program_id_programs")),
        sa.PrimaryKeyConstraint("program_id", name=op.f("pk_tier_policies")),
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("plan_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("period_start", TIMESTAMP, nullable=False),
        sa.Column("period_end", TIMESTAMP, nullable=False),
        sa.Column("cancelled_at", TIMESTAMP, nullable=True),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_memberships_plan_id_plans")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_memberships_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
    )
    op.create_index(
        "ix_memberships_live",
        "memberships",
        ["program_id", "member_id", "plan_id"],
        unique=True,
        postgresql_where=sa.text("state <> 'lapsed'"),
        sqlite_where=sa.text("state <> 'lapsed'"),
    )
    op.create_index(op.f("ix_memberships_state_period_end"), "memberships", ["state", "period_end"], unique=False)
    op.create_table(
        "segment_members",
        sa.Column("segment_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("since", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"], name=op.f("fk_segment_members_segment_id_segments")),
        sa.PrimaryKeyConstraint("segment_id", "member_id", name=op.f("pk_segment_members")),
    )
    op.create_index(op.f("ix_segment_members_member_id"), "segment_members", ["member_id"], unique=False)
    op.create_table(
        "membership_payments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("membership_id", sa.String(length=32), nullable=False),
        sa.Column("payment_id", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", TIMESTAMP, nullable=False),
        sa.Column("period_start", TIMESTAMP, nullable=False),
        sa.Column("period_end", TIMESTAMP, nullable=False),
        sa.Column("result", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["membership_id"], ["memberships.id"], name=op.f("fk_membership_payments_membership_id_memberships")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_membership_payments_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_membership_payments")),
        sa.UniqueConstraint("program_id", "payment_id", name=op.f("uq_membership_payments_program_id_payment_id")),
    )
    with op.batch_alter_table("programs") as batch:
        batch.add_column(sa.Column("enrolment", sa.String(length=12), server_default="open", nullable=False))
        batch.add_column(sa.Column("status_version", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("points_excused", sa.BigInteger(), server_default="0", nullable=False))
    # A member's orders, for their tier metric (on each purchase and in requalification batches): without
    # it each lookup reads every purchase of the program.
    op.create_index(op.f("ix_purchases_program_id_member_id"), "purchases", ["program_id", "member_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("points_excused")
    op.drop_index(op.f("ix_purchases_program_id_member_id"), table_name="purchases")
    for table in reversed(TABLES):
        op.drop_table(table)
    with op.batch_alter_table("programs") as batch:
        batch.drop_column("enrolment")
        batch.drop_column("status_version")
