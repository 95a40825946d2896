"""Expiry warnings mark the lots they announce, and remember when they were written: points that become
spendable within a window already announced (matured after the return window, or recorded late) are announced
too, and none twice.

For the windows still running, when their warning was written is taken to be the window's end less the
program's ``expiry_warning_days``; the lots spendable by then that expire within the window are marked as
announced (nobody hears of them again after the upgrade), and those that matured since are left to announce.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("lots") as batch:
        batch.add_column(sa.Column("expiry_warned_at", TIMESTAMP, nullable=True))
    with op.batch_alter_table("expiry_warnings") as batch:
        batch.add_column(sa.Column("warned_at", TIMESTAMP, nullable=True))
    now = datetime.now(UTC)
    conn = op.get_bind()
    programs = sa.table("programs", sa.column("id"), sa.column("expiry_warning_days", sa.Integer()))
    warnings = sa.table(
        "expiry_warnings",
        sa.column("program_id"),
        sa.column("member_id"),
        sa.column("quiet_until", TIMESTAMP),
        sa.column("warned_at", TIMESTAMP),
    )
    running = conn.execute(
        sa.select(warnings.c.program_id, warnings.c.member_id, warnings.c.quiet_until, programs.c.expiry_warning_days)
        .join(programs, programs.c.id == warnings.c.program_id)
        .where(warnings.c.quiet_until > now)
    ).all()
    if running:
        conn.execute(
            warnings.update()
            .where(warnings.c.program_id == sa.bindparam("p"), warnings.c.member_id == sa.bindparam("m"))
            .values(warned_at=sa.bindparam("at")),
            [{"p": p, "m": m, "at": until - timedelta(days=days)} for p, m, until, days in running],
        )
    lots = sa.table(
        "lots",
        sa.column("program_id"),
        sa.column("member_id"),
        sa.column("state"),
        sa.column("earned_at", TIMESTAMP),
        sa.column("matures_at", TIMESTAMP),
        sa.column("expires_at", TIMESTAMP),
        sa.column("expiry_warned_at", TIMESTAMP),
    )
    covered = (
        sa.select(warnings.c.member_id)
        .where(
            warnings.c.program_id == lots.c.program_id,
            warnings.c.member_id == lots.c.member_id,
            lots.c.expires_at <= warnings.c.quiet_until,
            sa.func.coalesce(lots.c.matures_at, lots.c.earned_at) <= warnings.c.warned_at,
        )
        .exists()
    )
    conn.execute(
        lots.update().where(lots.c.state == "active", lots.c.expires_at > now, covered).values(expiry_warned_at=now)
    )


def downgrade() -> None:
    with op.batch_alter_table("expiry_warnings") as batch:
        batch.drop_column("warned_at")
    with op.batch_alter_table("lots") as batch:
        batch.drop_column("expiry_warned_at")
