"""Awards drop their index by member and rule: no query reads awards that way.

Awards are read by event (what a purchase earned, what a return gives back); the second index only
cost one more index page written with every award, at a random place in it since members buy in no
order. A later report by member or rule would bring the index it needs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_awards_program_id_member_id_rule_id"


def upgrade() -> None:
    op.drop_index(INDEX, table_name="awards")


def downgrade() -> None:
    op.create_index(INDEX, "awards", ["program_id", "member_id", "rule_id"], unique=False)
