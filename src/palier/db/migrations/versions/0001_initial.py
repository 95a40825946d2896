"""Initial schema: programs, members, activity, the ledger and the rules (18 tables).

On PostgreSQL, the ledger's history is also made append-only: a trigger refuses any UPDATE or DELETE
of ledger_transactions, postings and allocations (corrections are reversing transactions).

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types as they were at this revision (a migration must not follow later edits of palier.db.metadata).
BIG_ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")  # BIGSERIAL / INTEGER PRIMARY KEY (rowid)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)

APPEND_ONLY_TABLES = ("ledger_transactions", "postings", "allocations")
TABLES = (  # in creation order: each after the tables it references
    "idempotency_keys",
    "programs",
    "accounts",
    "api_keys",
    "audit_entries",
    "events",
    "ledger_transactions",
    "members",
    "holds",
    "identities",
    "lots",
    "merges",
    "postings",
    "purchases",
    "allocations",
    "rule_sets",
    "awards",
    "counters",
)


def _is_postgres() -> bool:
    # get_context() rather than get_bind(): it also works offline (alembic upgrade --sql).
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    _create_tables()
    if _is_postgres():
        _make_ledger_append_only()


def downgrade() -> None:
    if _is_postgres():
        for table in APPEND_ONLY_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS palier_refuse_change()")
    for table in reversed(TABLES):
        op.drop_table(table)  # its indexes and constraints go with it


def _make_ledger_append_only() -> None:
    op.execute(
        """
        CREATE FUNCTION palier_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger rows are append-only: correct by reversal'
                USING DETAIL = TG_OP || ' on ' || TG_TABLE_NAME || ' refused';
        END
        $$
        """
    )
    for table in APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION palier_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION palier_refuse_change()"
        )


def _create_tables() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.BigInteger(), nullable=False),
        sa.Column("response", JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("program_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"], unique=False)

    op.create_table(
        "programs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("currency_exponent", sa.Integer(), nullable=False),
        sa.Column("points_name", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("default_country", sa.String(length=2), nullable=False),
        sa.Column("earn_points", sa.Integer(), nullable=False),
        sa.Column("earn_per_amount", sa.BigInteger(), nullable=False),
        sa.Column("rounding", sa.String(length=12), nullable=False),
        sa.Column("return_window_days", sa.Integer(), nullable=False),
        sa.Column("points_lifetime_months", sa.Integer(), nullable=True),
        sa.Column("earn_on_shipping", sa.Boolean(), nullable=False),
        sa.Column("earn_on_tax", sa.Boolean(), nullable=False),
        sa.Column("earn_on_gift_cards", sa.Boolean(), nullable=False),
        sa.Column("return_shortfall", sa.String(length=12), nullable=False),
        sa.Column("welcome_points", sa.BigInteger(), nullable=False),
        sa.Column("rules_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programs")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("slot", sa.Integer(), server_default="0", nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("kind <> 'debt' OR balance <= 0", name=op.f("ck_accounts_debt_not_positive")),
        sa.CheckConstraint(
            "kind NOT IN ('available', 'pending', 'held', 'wallet') OR balance >= 0",
            name=op.f("ck_accounts_member_not_negative"),
        ),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_accounts_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_index(op.f("ix_accounts_program_id_member_id"), "accounts", ["program_id", "member_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_api_keys_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_index(op.f("ix_api_keys_program_id"), "api_keys", ["program_id"], unique=False)

    op.create_table(
        "audit_entries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=True),
        sa.Column("details", JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_audit_entries_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    op.create_index(
        op.f("ix_audit_entries_program_id_created_at"),
        "audit_entries",
        ["program_id", "created_at"],
        unique=False,
    )

    op.create_table(
        "events",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("claim_kind", sa.String(length=16), nullable=True),
        sa.Column("claim_value", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(length=12), nullable=True),
        sa.Column("store_id", sa.Text(), nullable=True),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_events_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("program_id", "type", "external_id", name=op.f("uq_events_program_id_type_external_id")),
    )
    op.create_index(
        op.f("ix_events_program_id_member_id_occurred_at"),
        "events",
        ["program_id", "member_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_events_unclaimed", "events", ["program_id", "claim_kind", "claim_value", "status"], unique=False
    )

    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=True),
        sa.Column("reverses_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("effective_at", TIMESTAMP, nullable=False),
        sa.Column("details", JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_ledger_transactions_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_ledger_transactions_reverses_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transactions")),
    )
    op.create_index(
        op.f("ix_ledger_transactions_program_id_member_id_id"),
        "ledger_transactions",
        ["program_id", "member_id", "id"],
        unique=False,
    )
    op.create_index(op.f("ix_ledger_transactions_reverses_id"), "ledger_transactions", ["reverses_id"], unique=True)

    op.create_table(
        "members",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("merged_into_id", sa.String(length=32), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("consents", JSON, nullable=False),
        sa.Column("enrolled_at", TIMESTAMP, nullable=False),
        sa.Column("enrolment_channel", sa.String(length=12), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_members_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
    )
    op.create_index(op.f("ix_members_program_id_enrolled_at"), "members", ["program_id", "enrolled_at"], unique=False)

    op.create_table(
        "holds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("closed_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_holds_program_id_programs")),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_holds_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
    )
    op.create_index(
        op.f("ix_holds_program_id_member_id_state"),
        "holds",
        ["program_id", "member_id", "state"],
        unique=False,
    )

    op.create_table(
        "identities",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=True),
        sa.Column("brand", sa.String(length=16), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_identities_member_id_members")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_identities_program_id_programs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("program_id", "kind", "value", name=op.f("uq_identities_program_id_kind_value")),
    )
    op.create_index(op.f("ix_identities_member_id"), "identities", ["member_id"], unique=False)

    op.create_table(
        "lots",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("earned_at", TIMESTAMP, nullable=False),
        sa.Column("matures_at", TIMESTAMP, nullable=True),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("remaining >= 0 AND remaining <= amount", name=op.f("ck_lots_remaining_in_range")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_lots_program_id_programs")),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_lots_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lots")),
    )
    op.create_index("ix_lots_due_to_expire", "lots", ["state", "expires_at"], unique=False)
    op.create_index("ix_lots_due_to_mature", "lots", ["state", "matures_at"], unique=False)
    op.create_index(op.f("ix_lots_event_id"), "lots", ["event_id"], unique=False)
    op.create_index(
        op.f("ix_lots_program_id_member_id_state_expires_at"),
        "lots",
        ["program_id", "member_id", "state", "expires_at"],
        unique=False,
    )

    op.create_table(
        "merges",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("source_member_id", sa.String(length=32), nullable=False),
        sa.Column("target_member_id", sa.String(length=32), nullable=False),
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_merges_program_id_programs")),
        sa.ForeignKeyConstraint(["source_member_id"], ["members.id"], name=op.f("fk_merges_source_member_id_members")),
        sa.ForeignKeyConstraint(["target_member_id"], ["members.id"], name=op.f("fk_merges_target_member_id_members")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merges")),
    )
    op.create_table(
        "postings",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=True),
        sa.Column("account_id", sa.String(length=80), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_postings_account_id_accounts")),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_postings_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postings")),
    )
    op.create_index(op.f("ix_postings_account_id"), "postings", ["account_id"], unique=False)
    op.create_index(
        op.f("ix_postings_program_id_member_id_transaction_id"),
        "postings",
        ["program_id", "member_id", "transaction_id"],
        unique=False,
    )
    op.create_index(op.f("ix_postings_transaction_id"), "postings", ["transaction_id"], unique=False)

    op.create_table(
        "purchases",
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=True),
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("eligible", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("lot_id", sa.String(length=32), nullable=True),
        sa.Column("refunded", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("points_returned", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("lines", JSON, nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_purchases_event_id_events")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_purchases")),
        sa.UniqueConstraint("program_id", "order_id", name=op.f("uq_purchases_program_id_order_id")),
    )
    op.create_table(
        "allocations",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("lot_id", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_allocations_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_allocations_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
    )
    op.create_index(op.f("ix_allocations_lot_id"), "allocations", ["lot_id"], unique=False)
    op.create_index(op.f("ix_allocations_transaction_id"), "allocations", ["transaction_id"], unique=False)
    op.create_index(op.f("ix_allocations_program_id_lot_id"), "allocations", ["program_id", "lot_id"], unique=False)

    op.create_table(
        "rule_sets",
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("effective_from", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_rule_sets_program_id_programs")),
        sa.PrimaryKeyConstraint("program_id", "version", name=op.f("pk_rule_sets")),
    )
    op.create_table(
        "awards",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=True),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=72), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_awards")),
    )
    op.create_index(op.f("ix_awards_program_id_event_id"), "awards", ["program_id", "event_id"], unique=False)
    op.create_index(
        op.f("ix_awards_program_id_member_id_rule_id"), "awards", ["program_id", "member_id", "rule_id"], unique=False
    )
    op.create_table(
        "counters",
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("value", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("program_id", "member_id", "name", name=op.f("pk_counters")),
    )
