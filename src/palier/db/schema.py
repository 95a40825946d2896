"""Imports every domain's tables so the shared MetaData is complete (for Alembic and tests)."""

from palier.activity import tables as activity_tables
from palier.db.metadata import metadata
from palier.ledger import tables as ledger_tables
from palier.members import tables as member_tables
from palier.memberships import tables as membership_tables
from palier.notify import tables as notify_tables
from palier.portal import tables as portal_tables
from palier.programs import tables as program_tables
from palier.rewards import tables as reward_tables
from palier.rules import tables as rule_tables
from palier.segments import tables as segment_tables
from palier.sessions import tables as session_tables
from palier.staff import tables as staff_tables
from palier.tiers import tables as tier_tables

__all__ = [
    "activity_tables",
    "ledger_tables",
    "member_tables",
    "membership_tables",
    "metadata",
    "notify_tables",
    "portal_tables",
    "program_tables",
    "reward_tables",
    "rule_tables",
    "segment_tables",
    "session_tables",
    "staff_tables",
    "tier_tables",
]
