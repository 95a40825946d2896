"""Imports every domain's tables so the shared MetaData is complete (for Alembic and tests)."""

from palier.activity import tables as activity_tables
from palier.db.metadata import metadata
from palier.ledger import tables as ledger_tables
from palier.members import tables as member_tables
from palier.programs import tables as program_tables
from palier.rewards import tables as reward_tables
from palier.rules import tables as rule_tables

__all__ = [
    "activity_tables",
    "ledger_tables",
    "member_tables",
    "metadata",
    "program_tables",
    "reward_tables",
    "rule_tables",
]
